//! Credentials from a GitRepoConfig's Secret (the keys docs/operations.md lists), validated once and
//! never printed: `Debug` names which keys are present, not their values.

use std::collections::BTreeMap;
use std::fmt;

use super::known_hosts::KnownHosts;

/// Secret key of an SSH private key (PEM or OpenSSH format).
pub const KEY_SSH_PRIVATE: &str = "ssh-privatekey";
/// Secret key of the private key's passphrase.
pub const KEY_SSH_PASSPHRASE: &str = "ssh-password";
/// Secret key of the `known_hosts` lines the SSH server's key must match.
pub const KEY_KNOWN_HOSTS: &str = "known_hosts";
/// Secret key of an HTTPS user name.
pub const KEY_USERNAME: &str = "username";
/// Secret key of an HTTPS password or token.
pub const KEY_PASSWORD: &str = "password";
/// Secret key of an HTTPS bearer token.
pub const KEY_BEARER: &str = "bearerToken";

/// SSH key authentication with mandatory host-key verification.
#[derive(Clone)]
pub struct SshAuth {
    /// The private key, PEM or OpenSSH format.
    pub private_key: String,
    /// Its passphrase, if encrypted.
    pub passphrase: Option<String>,
    /// The public half (`type base64`), read from an OpenSSH-format key's clear header: libssh2
    /// cannot derive it from an encrypted key.
    pub public_key: Option<String>,
    /// Host keys the server must present.
    pub known_hosts: KnownHosts,
}

/// HTTP(S) authentication.
#[derive(Clone)]
pub enum HttpAuth {
    /// Basic authentication; a token goes in `password`.
    Basic {
        /// User name (`git`, `x-access-token`, `oauth2`… for tokens, as the host requires).
        username: String,
        /// Password or token.
        password: String,
    },
    /// `Authorization: Bearer` header.
    Bearer(String),
}

/// The usable contents of a credentials Secret.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The Secret's name, for error messages.
    pub secret_name: String,
    /// SSH key, if the Secret has one.
    pub ssh: Option<SshAuth>,
    /// HTTP authentication, if the Secret has it.
    pub http: Option<HttpAuth>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_name", &self.secret_name)
            .field("ssh", &self.ssh.as_ref().map(|_| "<ssh key, redacted>"))
            .field(
                "http",
                &self.http.as_ref().map(|h| match h {
                    HttpAuth::Basic { .. } => "<basic, redacted>",
                    HttpAuth::Bearer(_) => "<bearer, redacted>",
                }),
            )
            .finish()
    }
}

impl Credentials {
    /// Reads a Secret's `data` (decoded bytes). The error names the Secret and the key at fault,
    /// never a value.
    pub fn from_secret_data(
        secret_name: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Credentials, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match data.get(key) {
                None => Ok(None),
                Some(bytes) => String::from_utf8(bytes.clone())
                    .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
                    .map_err(|_| format!("Secret {secret_name}: key {key} is not UTF-8 text")),
            }
        };
        let mut creds = Credentials {
            secret_name: secret_name.to_string(),
            ..Default::default()
        };
        if let Some(private_key) = text(KEY_SSH_PRIVATE)? {
            let Some(known) = text(KEY_KNOWN_HOSTS)? else {
                return Err(format!(
                    "Secret {secret_name} has {KEY_SSH_PRIVATE} but no {KEY_KNOWN_HOSTS}: SSH host keys are always verified; add the server's keys (ssh-keyscan HOST)"
                ));
            };
            let known_hosts = KnownHosts::parse(&known)
                .map_err(|e| format!("Secret {secret_name}: {KEY_KNOWN_HOSTS}: {e}"))?;
            if !private_key.contains("PRIVATE KEY-----") {
                return Err(format!(
                    "Secret {secret_name}: {KEY_SSH_PRIVATE} is not a PEM or OpenSSH private key"
                ));
            }
            let passphrase = text(KEY_SSH_PASSPHRASE)?.filter(|p| !p.is_empty());
            creds.ssh = Some(SshAuth {
                public_key: openssh_public_key(&private_key),
                private_key: format!("{private_key}\n"),
                passphrase,
                known_hosts,
            });
        }
        let username = text(KEY_USERNAME)?;
        let password = text(KEY_PASSWORD)?;
        let bearer = text(KEY_BEARER)?;
        creds.http = match (username, password, bearer) {
            (_, _, Some(token)) if !token.is_empty() => Some(HttpAuth::Bearer(token)),
            (Some(username), Some(password), _) => Some(HttpAuth::Basic { username, password }),
            (None, Some(password), _) => {
                Some(HttpAuth::Basic { username: "git".to_string(), password })
            }
            (Some(_), None, _) => {
                return Err(format!(
                    "Secret {secret_name} has {KEY_USERNAME} but no {KEY_PASSWORD} (put a token in {KEY_PASSWORD})"
                ))
            }
            (None, None, _) => None,
        };
        if creds.ssh.is_none() && creds.http.is_none() {
            return Err(format!(
                "Secret {secret_name} holds no credentials: expected {KEY_SSH_PRIVATE} + {KEY_KNOWN_HOSTS}, {KEY_USERNAME} + {KEY_PASSWORD}, or {KEY_BEARER}"
            ));
        }
        Ok(creds)
    }

    /// Every secret string this holds, to scrub from any message that might echo one.
    pub fn secrets(&self) -> Vec<&str> {
        let mut out = Vec::new();
        if let Some(ssh) = &self.ssh {
            out.extend(
                ssh.private_key
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.len() >= 8 && !l.starts_with("-----")),
            );
            out.extend(ssh.passphrase.as_deref());
        }
        match &self.http {
            Some(HttpAuth::Basic { password, .. }) => out.push(password),
            Some(HttpAuth::Bearer(t)) => out.push(t),
            None => {}
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// The public key of an `openssh-key-v1` private key, as `type base64`. The format keeps public keys
/// in clear before the (possibly encrypted) private part: magic, cipher, kdf, kdf options, count,
/// then the public key blobs.
fn openssh_public_key(pem: &str) -> Option<String> {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .map(str::trim)
        .collect();
    let bytes = B64.decode(body).ok()?;
    let mut rest = bytes.strip_prefix(b"openssh-key-v1\0")?;
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head)
    }
    fn string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(take(rest, 4)?.try_into().ok()?) as usize;
        take(rest, len)
    }
    let (_cipher, _kdf, _kdf_options) =
        (string(&mut rest)?, string(&mut rest)?, string(&mut rest)?);
    let count = u32::from_be_bytes(take(&mut rest, 4)?.try_into().ok()?);
    if count != 1 {
        return None;
    }
    let blob = string(&mut rest)?;
    let mut inner = blob;
    let key_type = std::str::from_utf8(string(&mut inner)?).ok()?;
    Some(format!("{key_type} {}", B64.encode(blob)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n";
    const KH: &str = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn an_ssh_key_without_known_hosts_is_refused() {
        let err = Credentials::from_secret_data("repo-creds", &data(&[(KEY_SSH_PRIVATE, KEY)]))
            .unwrap_err();
        assert!(
            err.contains("repo-creds") && err.contains("known_hosts"),
            "{err}"
        );
        assert!(!err.contains("b3BlbnNzaC1rZXkt"));
    }

    #[test]
    fn ssh_key_with_known_hosts_and_passphrase() {
        let c = Credentials::from_secret_data(
            "s",
            &data(&[
                (KEY_SSH_PRIVATE, KEY),
                (KEY_KNOWN_HOSTS, KH),
                (KEY_SSH_PASSPHRASE, "pp-secret\n"),
            ]),
        )
        .unwrap();
        let ssh = c.ssh.as_ref().unwrap();
        assert_eq!(ssh.passphrase.as_deref(), Some("pp-secret"));
        assert!(c.http.is_none());
        assert!(c.secrets().contains(&"pp-secret"));
    }

    #[test]
    fn http_basic_bearer_and_token_only() {
        let c = Credentials::from_secret_data(
            "s",
            &data(&[(KEY_USERNAME, "bob"), (KEY_PASSWORD, "pw")]),
        )
        .unwrap();
        assert!(matches!(c.http, Some(HttpAuth::Basic { ref username, .. }) if username == "bob"));
        let c = Credentials::from_secret_data("s", &data(&[(KEY_BEARER, "tok")])).unwrap();
        assert!(matches!(c.http, Some(HttpAuth::Bearer(ref t)) if t == "tok"));
        let c = Credentials::from_secret_data("s", &data(&[(KEY_PASSWORD, "tok")])).unwrap();
        assert!(matches!(c.http, Some(HttpAuth::Basic { ref username, .. }) if username == "git"));
        assert!(Credentials::from_secret_data("s", &data(&[(KEY_USERNAME, "bob")])).is_err());
        assert!(Credentials::from_secret_data("s", &data(&[]))
            .unwrap_err()
            .contains("no credentials"));
    }

    #[test]
    fn debug_output_never_shows_values() {
        let c = Credentials::from_secret_data(
            "s",
            &data(&[
                (KEY_USERNAME, "bob"),
                (KEY_PASSWORD, "hunter2"),
                (KEY_SSH_PRIVATE, KEY),
                (KEY_KNOWN_HOSTS, KH),
            ]),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("b3BlbnNzaC1rZXkt"),
            "{shown}"
        );
    }
}
