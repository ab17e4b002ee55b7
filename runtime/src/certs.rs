//! Self-managed webhook certificates: a CA and a serving certificate the operator issues itself,
//! kept in a Secret in its namespace, and rotated before expiry with no window in which the API
//! server's calls fail.
//!
//! Each serving certificate has its own CA, made with it; the CA's key signs that one certificate
//! and is then dropped, so no key that could sign another certificate is stored anywhere.
//! Rotation is in two steps, each a write of the Secret:
//!
//! 1. **Stage** (at [`STAGE_AT`] of the lifetime): a new pair is issued and kept beside the
//!    serving one. The webhook configuration's `caBundle` now trusts both CAs.
//! 2. **Promote** (an overlap later, [`OVERLAP`] of the lifetime): the new pair serves. The old
//!    CA stays in the bundle until the old certificate expires, for a replica still serving it.
//!
//! [`plan`] is pure: from the stored state, the time and the wanted names it gives the next
//! state, so every replica decides alike and a write conflict only means "read it again".

use serde::{Deserialize, Serialize};

/// When a new pair is staged, as a fraction (numerator, denominator) of the lifetime.
pub const STAGE_AT: (i64, i64) = (2, 3);
/// How long the staged pair's CA is trusted before the pair serves, as a fraction of the
/// lifetime: time for every API server to read the new `caBundle` (it watches the webhook
/// configuration and reads it within seconds).
pub const OVERLAP: (i64, i64) = (1, 6);
/// Shortest lifetime accepted (`--webhook-cert-lifetime`), in seconds: the overlap must outlast
/// an API server's reading of the bundle.
pub const LIFETIME_MIN_S: i64 = 30;
/// How far a certificate's validity starts before its issue, at most, in seconds: for clocks
/// behind the operator's.
pub const BACKDATE_S_MAX: i64 = 3600;

/// One issued serving certificate with the CA that signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The serving certificate (PEM).
    pub cert: String,
    /// Its private key (PEM).
    pub key: String,
    /// The CA certificate that signed it (PEM).
    pub ca: String,
    /// The names it is valid for (DNS names and IP addresses).
    pub names: Vec<String>,
    /// When it was issued, in seconds since the epoch.
    pub issued_s: i64,
    /// When it expires, in seconds since the epoch.
    pub not_after_s: i64,
}

/// A CA still trusted after its certificate stopped serving, until that certificate expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retired {
    /// The CA certificate (PEM).
    pub ca: String,
    /// When the certificate it signed expires, in seconds since the epoch.
    pub not_after_s: i64,
}

/// What the Secret holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The pair that serves.
    pub current: Issued,
    /// The staged pair, trusted already, serving after the overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Issued>,
    /// CAs of pairs that served before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<Retired>,
}

impl State {
    /// The CAs the API server must trust: the serving one, the staged one, the retired ones.
    pub fn ca_bundle(&self) -> String {
        let mut out = self.current.ca.clone();
        for ca in self
            .next
            .iter()
            .map(|n| &n.ca)
            .chain(self.retired.iter().map(|r| &r.ca))
        {
            out.push_str(ca);
        }
        out
    }

    /// The earliest time, in seconds since the epoch, at which [`plan`] would change this state.
    pub fn next_change_s(&self, policy: &Policy) -> i64 {
        let mut at = match &self.next {
            Some(n) => n.issued_s + fraction(policy.lifetime_s, OVERLAP),
            None => self.current.issued_s + fraction(policy.lifetime_s, STAGE_AT),
        };
        at = at.min(self.current.not_after_s);
        for r in &self.retired {
            at = at.min(r.not_after_s);
        }
        at
    }
}

/// What the operator wants of its certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Names the serving certificate must hold: the webhook Service's DNS names, and any given.
    pub names: Vec<String>,
    /// Validity of each pair, in seconds.
    pub lifetime_s: i64,
}

impl Policy {
    /// The names of Service `service` in `namespace`, as the API server dials it, and `extra`.
    pub fn for_service(service: &str, namespace: &str, extra: &[String], lifetime_s: i64) -> Self {
        let mut names = vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            format!("{service}.{namespace}"),
            service.to_string(),
        ];
        for e in extra {
            if !names.contains(e) {
                names.push(e.clone());
            }
        }
        Self {
            names,
            lifetime_s: lifetime_s.max(LIFETIME_MIN_S),
        }
    }
}

fn fraction(total: i64, (num, den): (i64, i64)) -> i64 {
    total * num / den
}

/// What to store next, given what is stored (`None`: nothing, or nothing readable), the time and
/// the policy; `None` when the stored state stays. `issue` makes a new pair valid from the given
/// time for the policy's names and lifetime.
pub fn plan(
    stored: Option<&State>,
    now_s: i64,
    policy: &Policy,
    issue: &mut dyn FnMut(i64, &Policy) -> Result<Issued, String>,
) -> Result<Option<State>, String> {
    let Some(stored) = stored else {
        return Ok(Some(State {
            current: issue(now_s, policy)?,
            next: None,
            retired: Vec::new(),
        }));
    };
    let mut s = stored.clone();
    s.retired.retain(|r| r.not_after_s > now_s);
    if s.current.not_after_s <= now_s {
        // Expired (the operator was down through the whole rotation): nothing can overlap with
        // a certificate no client accepts any more. Start afresh.
        return Ok(Some(State {
            current: issue(now_s, policy)?,
            next: None,
            retired: s.retired,
        }));
    }
    match s.next.take() {
        Some(next) if now_s >= next.issued_s + fraction(policy.lifetime_s, OVERLAP) => {
            let old = std::mem::replace(&mut s.current, next);
            s.retired.push(Retired {
                ca: old.ca,
                not_after_s: old.not_after_s,
            });
        }
        Some(next) => s.next = Some(next),
        None => {
            let due = now_s >= s.current.issued_s + fraction(policy.lifetime_s, STAGE_AT);
            if due || s.current.names != policy.names {
                s.next = Some(issue(now_s, policy)?);
            }
        }
    }
    Ok((s != *stored).then_some(s))
}

/// Issues a CA and a serving certificate it signs, valid from a little before `now_s` for the
/// policy's lifetime. The CA's key is dropped here.
pub fn issue(now_s: i64, policy: &Policy) -> Result<Issued, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let at =
        |s: i64| time::OffsetDateTime::from_unix_timestamp(s).map_err(|e| format!("time {s}: {e}"));
    let not_before = at(now_s - (policy.lifetime_s / 10).min(BACKDATE_S_MAX))?;
    let not_after_s = now_s + policy.lifetime_s;
    let err = |e: rcgen::Error| format!("issuing the webhook's certificate: {e}");

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("gitops-reverser webhook CA {now_s}"),
    );
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = at(not_after_s)?;
    let ca = ca.self_signed(&ca_key).map_err(err)?;

    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(policy.names.clone()).map_err(err)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        policy.names.first().cloned().unwrap_or_default(),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.not_before = not_before;
    leaf.not_after = at(not_after_s)?;
    let leaf = leaf.signed_by(&key, &ca, &ca_key).map_err(err)?;
    Ok(Issued {
        cert: leaf.pem(),
        key: key.serialize_pem(),
        ca: ca.pem(),
        names: policy.names.clone(),
        issued_s: now_s,
        not_after_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(lifetime_s: i64) -> Policy {
        Policy::for_service("hook", "ops", &["127.0.0.1".into()], lifetime_s)
    }

    /// A stand-in issuer that numbers its pairs, so the steps can be followed.
    fn counter() -> impl FnMut(i64, &Policy) -> Result<Issued, String> {
        let mut n = 0;
        move |now_s, p| {
            n += 1;
            Ok(Issued {
                cert: format!("cert{n}\n"),
                key: format!("key{n}\n"),
                ca: format!("ca{n}\n"),
                names: p.names.clone(),
                issued_s: now_s,
                not_after_s: now_s + p.lifetime_s,
            })
        }
    }

    #[test]
    fn a_rotation_trusts_the_new_ca_before_it_serves_and_the_old_until_it_expires() {
        let p = policy(600);
        let mut issue = counter();
        let mut s = plan(None, 1000, &p, &mut issue).unwrap().expect("created");
        assert_eq!(s.current.cert, "cert1\n");
        assert_eq!(s.ca_bundle(), "ca1\n");
        assert_eq!(plan(Some(&s), 1399, &p, &mut issue).unwrap(), None);
        assert_eq!(s.next_change_s(&p), 1400);

        // Staged at 2/3 of the lifetime: both CAs trusted, the old pair still serves.
        s = plan(Some(&s), 1400, &p, &mut issue)
            .unwrap()
            .expect("staged");
        assert_eq!(s.current.cert, "cert1\n");
        assert_eq!(s.ca_bundle(), "ca1\nca2\n");
        assert_eq!(s.next_change_s(&p), 1500);
        assert_eq!(plan(Some(&s), 1499, &p, &mut issue).unwrap(), None);

        // Promoted an overlap later: the new pair serves, the old CA stays until cert1 expires.
        s = plan(Some(&s), 1500, &p, &mut issue)
            .unwrap()
            .expect("promoted");
        assert_eq!(s.current.cert, "cert2\n");
        assert_eq!(s.ca_bundle(), "ca2\nca1\n");
        assert_eq!(s.next_change_s(&p), 1600);
        s = plan(Some(&s), 1600, &p, &mut issue)
            .unwrap()
            .expect("retired");
        assert_eq!(s.ca_bundle(), "ca2\n");
        assert_eq!(plan(Some(&s), 1601, &p, &mut issue).unwrap(), None);
    }

    #[test]
    fn at_no_time_does_the_serving_ca_miss_from_the_bundle_that_was_published_before() {
        // Walk a long run second by second: whatever serves at t was in the bundle published at
        // every earlier step since it was staged, at least an overlap before it served.
        let p = policy(60);
        let mut issue = counter();
        let mut s = plan(None, 0, &p, &mut issue).unwrap().unwrap();
        let mut trusted_since = std::collections::BTreeMap::from([(s.current.ca.clone(), 0)]);
        for t in 1..2000 {
            if let Some(n) = plan(Some(&s), t, &p, &mut issue).unwrap() {
                s = n;
            }
            for ca in s.ca_bundle().lines() {
                trusted_since.entry(format!("{ca}\n")).or_insert(t);
            }
            let since = trusted_since[&s.current.ca];
            assert!(
                s.current.ca == "ca1\n" || t - since >= fraction(60, OVERLAP),
                "at {t}: {} serves, trusted only since {since}",
                s.current.cert
            );
            assert!(s.current.not_after_s > t, "at {t} the serving pair expired");
        }
    }

    #[test]
    fn changed_names_are_staged_at_once_and_an_expired_pair_is_replaced_at_once() {
        let p = policy(600);
        let mut issue = counter();
        let s = plan(None, 0, &p, &mut issue).unwrap().unwrap();
        let renamed = Policy::for_service("other", "ops", &[], 600);
        let staged = plan(Some(&s), 1, &renamed, &mut issue).unwrap().unwrap();
        assert_eq!(staged.next.as_ref().unwrap().names, renamed.names);
        assert_eq!(
            staged.current, s.current,
            "the old one serves through the overlap"
        );

        let fresh = plan(Some(&s), 600, &p, &mut issue).unwrap().unwrap();
        assert_eq!(fresh.current.issued_s, 600);
        assert!(fresh.next.is_none());
    }

    #[test]
    fn issued_pairs_are_real_and_serve_tls() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let p = policy(3600);
        let pair = issue(1_700_000_000, &p).unwrap();
        assert!(pair.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.key.contains("PRIVATE KEY"));
        let tls = crate::tls::ReloadingTls::managed();
        assert!(tls.current().is_err());
        tls.install_pem(pair.cert.as_bytes(), pair.key.as_bytes())
            .unwrap();
        assert!(tls.current().is_ok());
        // The CA verifies the leaf for the Service's name.
        let verify = std::process::Command::new("openssl")
            .args([
                "verify",
                "-attime",
                "1700000100",
                "-verify_hostname",
                "hook.ops.svc",
            ])
            .args(["-CAfile", "/dev/stdin"])
            .arg({
                let f = std::env::temp_dir().join(format!("leaf-{}.pem", std::process::id()));
                std::fs::write(&f, &pair.cert).unwrap();
                f
            })
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(pair.ca.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
}
