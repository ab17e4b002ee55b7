//! `known_hosts` parsing and host-key verification, in OpenSSH's format and with its rules:
//! plain and hashed (`|1|salt|hash`) host names, `[host]:port`, `*`/`?` wildcards, `!` negation and
//! `@revoked` keys. A host that is missing or whose key differs fails closed.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// One usable line of a `known_hosts` file.
#[derive(Clone, Debug)]
struct Entry {
    revoked: bool,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

#[derive(Clone, Debug)]
enum Hosts {
    /// Comma-separated patterns, each maybe negated with `!`.
    Patterns(Vec<(bool, String)>),
    /// `|1|salt|hmac-sha1(salt, host)`.
    Hashed { salt: Vec<u8>, hash: [u8; 20] },
}

/// A parsed `known_hosts` file.
#[derive(Clone, Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// The verdict on a key a server offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A listed key for this host.
    Trusted,
    /// The host is listed, but with other keys: possibly a man in the middle.
    Mismatch {
        /// Key types listed for the host.
        listed_types: Vec<String>,
    },
    /// The key is listed as `@revoked`.
    Revoked,
    /// The host is not listed at all.
    Unknown,
}

impl KnownHosts {
    /// Parses a `known_hosts` file. Comments, blank lines and `@cert-authority` lines (host
    /// certificates are not supported by libssh2) are skipped; a line that cannot be read is an error
    /// naming its line number.
    pub fn parse(text: &str) -> Result<KnownHosts, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if first.starts_with('@') {
                match first {
                    "@revoked" => revoked = true,
                    "@cert-authority" => continue,
                    other => {
                        return Err(format!(
                            "known_hosts line {}: unknown marker {other}",
                            n + 1
                        ))
                    }
                }
                first = fields.next().unwrap_or_default();
            }
            let (Some(key_type), Some(key_b64)) = (fields.next(), fields.next()) else {
                return Err(format!(
                    "known_hosts line {}: expected `host key-type base64-key`",
                    n + 1
                ));
            };
            let key = B64
                .decode(key_b64)
                .map_err(|_| format!("known_hosts line {}: the key is not valid base64", n + 1))?;
            let hosts = parse_hosts(first).ok_or_else(|| {
                format!("known_hosts line {}: unreadable hashed host name", n + 1)
            })?;
            entries.push(Entry {
                revoked,
                hosts,
                key_type: key_type.to_string(),
                key,
            });
        }
        if entries.iter().all(|e| e.revoked) {
            return Err("known_hosts lists no host keys".into());
        }
        Ok(KnownHosts { entries })
    }

    /// Checks the key (`key_type` as in `ssh-ed25519`, `key` the raw public key blob) offered by
    /// `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key_type: &str, key: &[u8]) -> Verdict {
        let name = if port == super::url::SSH_PORT_DEFAULT {
            host.to_ascii_lowercase()
        } else {
            format!("[{}]:{port}", host.to_ascii_lowercase())
        };
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.hosts.matches(&name))
            .collect();
        if matching.iter().any(|e| e.revoked && e.key == key) {
            return Verdict::Revoked;
        }
        if matching
            .iter()
            .any(|e| !e.revoked && e.key == key && e.key_type == key_type)
        {
            return Verdict::Trusted;
        }
        let mut listed_types: Vec<String> = matching
            .iter()
            .filter(|e| !e.revoked)
            .map(|e| e.key_type.clone())
            .collect();
        listed_types.sort();
        listed_types.dedup();
        if listed_types.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Mismatch { listed_types }
        }
    }
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let salt = B64.decode(salt).ok()?;
        let hash: [u8; 20] = B64.decode(hash).ok()?.try_into().ok()?;
        return Some(Hosts::Hashed { salt, hash });
    }
    Some(Hosts::Patterns(
        field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| match p.strip_prefix('!') {
                Some(neg) => (true, neg.to_ascii_lowercase()),
                None => (false, p.to_ascii_lowercase()),
            })
            .collect(),
    ))
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => hmac_sha1(salt, name.as_bytes()) == *hash,
            Hosts::Patterns(patterns) => {
                let mut hit = false;
                for (negated, p) in patterns {
                    if wildcard(p.as_bytes(), name.as_bytes()) {
                        if *negated {
                            return false;
                        }
                        hit = true;
                    }
                }
                hit
            }
        }
    }
}

/// OpenSSH's pattern match: `*` any run, `?` any one character. Linear in the pattern times the
/// name at worst, whatever the pattern: the file comes from a tenant's Secret, and a pattern of
/// stars must not pin a thread in the host-key callback (a backtracking match is exponential).
fn wildcard(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // After the last `*` seen: where the pattern goes on, and where in the name that try began.
    // Only the last star is ever retried: what an earlier one matched cannot change the outcome.
    let mut retry: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                retry = Some((pi, si));
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match retry {
                Some((after, from)) => {
                    pi = after;
                    si = from + 1;
                    retry = Some((after, from + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// HMAC-SHA1 (RFC 2104), as OpenSSH hashes host names.
fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&sha1_smol::Sha1::from(key).digest().bytes());
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha1_smol::Sha1::new();
    inner.update(&k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = sha1_smol::Sha1::new();
    outer.update(&k.map(|b| b ^ 0x5c));
    outer.update(&inner.digest().bytes());
    outer.digest().bytes()
}

/// OpenSSH's `SHA256:` fingerprint of a key, from its SHA-256 digest.
pub fn fingerprint(sha256: &[u8; 32]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha256);
    format!("SHA256:{b64}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's published ed25519 host key, and a second well-formed ed25519 blob.
    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHv2v9mVFG0Zqk9m1Ck5yZ/X8uOe9nUY0F1i8Jq+3dAB";

    fn key(b64: &str) -> Vec<u8> {
        B64.decode(b64).unwrap()
    }

    #[test]
    fn a_listed_key_is_trusted_and_another_key_is_a_mismatch() {
        let kh = KnownHosts::parse(&format!("# comment\n\ngithub.com ssh-ed25519 {ED}\n")).unwrap();
        assert_eq!(
            kh.check("github.com", 22, "ssh-ed25519", &key(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            kh.check("GitHub.com", 22, "ssh-ed25519", &key(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            kh.check("github.com", 22, "ssh-ed25519", &key(ED2)),
            Verdict::Mismatch {
                listed_types: vec!["ssh-ed25519".into()]
            }
        );
        assert_eq!(
            kh.check("gitlab.com", 22, "ssh-ed25519", &key(ED)),
            Verdict::Unknown
        );
    }

    #[test]
    fn a_non_default_port_is_part_of_the_host_name() {
        let kh = KnownHosts::parse(&format!("[127.0.0.1]:2222 ssh-ed25519 {ED}")).unwrap();
        assert_eq!(
            kh.check("127.0.0.1", 2222, "ssh-ed25519", &key(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            kh.check("127.0.0.1", 22, "ssh-ed25519", &key(ED)),
            Verdict::Unknown
        );
        assert_eq!(
            kh.check("127.0.0.1", 2223, "ssh-ed25519", &key(ED)),
            Verdict::Unknown
        );
    }

    #[test]
    fn hashed_host_names_match_like_openssh() {
        // The HMAC itself is checked against RFC 2202 below, and against `ssh-keyscan -H` output in
        // the sshd tests.
        let salt = [7u8; 20];
        let hash = hmac_sha1(&salt, b"[127.0.0.1]:2222");
        let line = format!(
            "|1|{}|{} ssh-ed25519 {ED}",
            B64.encode(salt),
            B64.encode(hash)
        );
        let kh = KnownHosts::parse(&line).unwrap();
        assert_eq!(
            kh.check("127.0.0.1", 2222, "ssh-ed25519", &key(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            kh.check("127.0.0.2", 2222, "ssh-ed25519", &key(ED)),
            Verdict::Unknown
        );
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2.
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn wildcards_negation_and_revocation() {
        let text = format!(
            "*.example.com,!evil.example.com ssh-ed25519 {ED}\n@revoked * ssh-ed25519 {ED2}\n"
        );
        let kh = KnownHosts::parse(&text).unwrap();
        assert_eq!(
            kh.check("git.example.com", 22, "ssh-ed25519", &key(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            kh.check("evil.example.com", 22, "ssh-ed25519", &key(ED)),
            Verdict::Unknown
        );
        assert_eq!(
            kh.check("git.example.com", 22, "ssh-ed25519", &key(ED2)),
            Verdict::Revoked
        );
    }

    #[test]
    fn unreadable_files_are_refused_with_the_line_number() {
        assert!(KnownHosts::parse("host ssh-ed25519")
            .unwrap_err()
            .contains("line 1"));
        assert!(KnownHosts::parse("# only\nh ssh-rsa !!!")
            .unwrap_err()
            .contains("line 2"));
        assert!(KnownHosts::parse("").unwrap_err().contains("no host keys"));
        assert!(KnownHosts::parse("@bogus h ssh-rsa AAAA")
            .unwrap_err()
            .contains("marker"));
    }

    /// The plain backtracking definition, as a reference for the linear one.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => reference(&p[1..], s) || (!s.is_empty() && reference(p, &s[1..])),
            (Some(b'?'), Some(_)) => reference(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => reference(&p[1..], &s[1..]),
            _ => false,
        }
    }

    #[test]
    fn wildcard_matching_agrees_with_the_definition_on_every_short_pattern_and_name() {
        // Every pattern over {a, b, *, ?} up to 5 long against every name over {a, b} up to 5.
        fn all(alphabet: &[u8], len_max: usize) -> Vec<Vec<u8>> {
            let mut out = vec![Vec::new()];
            let mut last = vec![Vec::new()];
            for _ in 0..len_max {
                last = last
                    .iter()
                    .flat_map(|w: &Vec<u8>| {
                        alphabet.iter().map(move |&c| {
                            let mut w = w.clone();
                            w.push(c);
                            w
                        })
                    })
                    .collect();
                out.extend(last.iter().cloned());
            }
            out
        }
        let (patterns, names) = (all(b"ab*?", 5), all(b"ab", 5));
        for p in &patterns {
            for s in &names {
                assert_eq!(
                    wildcard(p, s),
                    reference(p, s),
                    "{:?} {:?}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(s)
                );
            }
        }
    }

    #[test]
    fn a_pattern_of_hundreds_of_stars_is_checked_at_once() {
        let line = format!("{}x ssh-ed25519 {ED}\n", "*".repeat(200));
        let kh = KnownHosts::parse(&line).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // On a thread, so that a backtracking match fails this test instead of hanging it.
        std::thread::spawn(move || {
            let host = "a".repeat(60) + ".example.com";
            let _ = tx.send(kh.check(&host, 22, "ssh-ed25519", &key(ED)));
        });
        let verdict = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the check ends");
        assert!(matches!(verdict, Verdict::Unknown), "{verdict:?}");
    }
}
