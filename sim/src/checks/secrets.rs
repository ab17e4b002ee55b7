//! Secrets never reach git: every tree of every commit is scanned for the plaintext and the
//! base64 of every value any Secret ever carried (persisted, refused or dry run). Under
//! `SecretPolicy::Exclude` no file in a Secret's layout may exist at all.
//!
//! The workload draws Secret values from their own set ([`crate::workload::SECRET_VALUES`]), which
//! no other object's content shares, so a hit is a leak and not a coincidence.

use std::collections::BTreeSet;

use base64::Engine as _;
use gitops_reverser_core::SecretPolicy;
use serde_json::Value;

use crate::checks::{Checker, Event, Landed, Scene};
use crate::git::Tree;

/// The values seen so far and the policy in force.
pub struct SecretCheck {
    /// Every needle: each value's plaintext and its base64, as the API server stores it.
    needles: BTreeSet<String>,
    policy: SecretPolicy,
}

impl SecretCheck {
    /// A checker for a run under `policy`.
    pub fn new(policy: SecretPolicy) -> Self {
        Self {
            needles: BTreeSet::new(),
            policy,
        }
    }

    /// Notes the values of a Secret a client sent or the server stored (`data` is base64,
    /// `stringData` plaintext).
    pub fn note(&mut self, secret: &Value) {
        let engine = base64::engine::general_purpose::STANDARD;
        for (field, encoded) in [("data", true), ("stringData", false)] {
            let Some(map) = secret.get(field).and_then(Value::as_object) else {
                continue;
            };
            for v in map.values().filter_map(Value::as_str) {
                let plain = if encoded {
                    engine
                        .decode(v)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                } else {
                    Some(v.to_string())
                };
                if let Some(p) = plain {
                    self.needles.insert(engine.encode(&p));
                    self.needles.insert(p);
                }
            }
        }
    }

    /// Scans the tree a commit left.
    pub fn check_commit(
        &self,
        url: &str,
        branch: &str,
        message: &str,
        after: &Tree,
        out: &mut Vec<String>,
    ) {
        let subject = message.lines().next().unwrap_or_default();
        for (path, bytes) in after.iter() {
            if self.policy == SecretPolicy::Exclude && is_secret_path(path) {
                out.push(format!(
                    "{url} {branch}: {path} exists after {subject:?} although Secrets are excluded"
                ));
            }
            let text = String::from_utf8_lossy(bytes);
            for needle in &self.needles {
                if text.contains(needle.as_str()) {
                    out.push(format!(
                        "{url} {branch}: {path} holds the Secret value {needle:?} after {subject:?}"
                    ));
                }
            }
        }
    }
}

/// Sealed files ([`crate::sealing`]): a repository that seals writes every Secret sealed, and a
/// sealed file is written again only when its values, or whom it is encrypted for, changed. Its
/// bytes change on every encryption, so an operator that took an unchanged Secret for a changed
/// one (after a restart, a relist, a retried push) would commit it again: caught here, by reading
/// both versions back.
fn check_sealed(l: &Landed<'_>, sealing: bool, out: &mut Vec<String>) {
    let subject = l.commit.message.lines().next().unwrap_or_default();
    for (path, bytes) in l.after.iter() {
        let before = l.before.get(path);
        if before == Some(bytes) {
            continue;
        }
        let now = crate::sealing::unseal(bytes);
        if sealing && is_secret_path(path) && now.is_none() {
            out.push(format!(
                "{} {}: {path} is written unsealed by {subject:?} in a repository that seals Secrets",
                l.url, l.branch
            ));
        }
        let was = before.and_then(|b| crate::sealing::unseal(b));
        if let (Some(now), Some(was)) = (now, was) {
            if now == was {
                out.push(format!(
                    "{} {}: {path} is rewritten by {subject:?} though neither its values nor its recipients changed",
                    l.url, l.branch
                ));
            }
        }
    }
}

/// Whether `path` is in a core Secret's layout (`…v1/secrets/<namespace>/<name>.yaml`).
pub fn is_secret_path(path: &str) -> bool {
    path.starts_with("v1/secrets/") || path.contains("/v1/secrets/")
}

impl Checker for SecretCheck {
    fn on_event(&mut self, event: &Event<'_>, _out: &mut Vec<String>) {
        if let Event::Written { gvr, body } = event {
            if gvr.resource == "secrets" {
                self.note(body);
            }
        }
    }

    fn on_commit(&mut self, l: &Landed<'_>, scene: &Scene<'_>, out: &mut Vec<String>) {
        self.check_commit(l.url, l.branch, &l.commit.message, l.after, out);
        let sealing = scene.topo.repos.iter().any(|r| r.url == l.url && r.sealed);
        check_sealed(l, sealing, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files
            .iter()
            .map(|(p, b)| (p.to_string(), Arc::from(b.as_bytes())))
            .collect()
    }

    #[test]
    fn plaintext_and_base64_are_both_leaks_and_redaction_is_not() {
        let mut c = SecretCheck::new(SecretPolicy::Redact);
        c.note(&json!({"data": {"password": "aHVudGVyMg=="}}));
        let mut out = Vec::new();
        c.check_commit(
            "u",
            "main",
            "[CREATE] x",
            &tree(&[("a/v1/secrets/n/db.yaml", "password: \"<redacted>\"\n")]),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        c.check_commit(
            "u",
            "main",
            "[CREATE] x",
            &tree(&[("a/v1/configmaps/n/x.yaml", "k: hunter2\n")]),
            &mut out,
        );
        c.check_commit(
            "u",
            "main",
            "[CREATE] x",
            &tree(&[("a/v1/secrets/n/db.yaml", "password: aHVudGVyMg==\n")]),
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
    }

    #[test]
    fn under_exclude_a_secret_file_is_a_violation_whatever_it_holds() {
        let c = SecretCheck::new(SecretPolicy::Exclude);
        let mut out = Vec::new();
        c.check_commit(
            "u",
            "main",
            "[CREATE] x",
            &tree(&[("v1/secrets/n/db.yaml", "x\n")]),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(!is_secret_path("example.com/v1/secretsx/n/a.yaml"));
    }
}
