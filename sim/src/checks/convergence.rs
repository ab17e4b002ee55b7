//! Convergence: after the liveness phase, every active destination's folder holds exactly the
//! rule-selected live objects, each file's content what the independent oracle
//! ([`crate::oracle`]) says, at the oracle's path, and nothing else of its layout.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::checks::secrets::is_secret_path;
use crate::checks::{Checker, End};
use crate::cluster::Cluster;
use crate::git::Remotes;
use crate::oracle;
use crate::topology::{Subject, Topology};

/// Compares every active destination with the cluster.
/// Under `secrets_excluded`, Secrets are expected nowhere.
pub fn check(
    topo: &Topology,
    cluster: &Cluster,
    remotes: &Remotes,
    secrets_excluded: bool,
    out: &mut Vec<String>,
) {
    for (url, branch, folder) in topo.destinations() {
        let rules: Vec<usize> = (0..topo.rules.len())
            .filter(|&i| {
                let r = &topo.rules[i];
                topo.active[i]
                    && topo.repos[r.repo].url == url
                    && r.branch == branch
                    && r.folder == folder
            })
            .collect();
        let base = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        let sealed = topo.repos.iter().any(|r| r.url == url && r.sealed);
        let mut prefixes = Vec::new();
        let mut expected: BTreeMap<String, Value> = BTreeMap::new();
        for (key, obj) in &cluster.objects {
            let kind = &cluster.kinds[key.0];
            if secrets_excluded && kind.gvr.group.is_empty() && kind.gvr.resource == "secrets" {
                continue;
            }
            let labels = obj
                .body
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_default();
            let subject = Subject {
                kind,
                namespace: key.1.as_deref(),
                ns_env: cluster.ns_env(key.1.as_deref()),
                labels: &labels,
            };
            if rules.iter().any(|&i| topo.selects(i, &subject)) {
                expected.insert(
                    oracle::path(folder, &kind.gvr, key.1.as_deref(), &key.2),
                    oracle::expected_in(&kind.gvr, &obj.body, sealed),
                );
            }
        }
        for kind in &cluster.kinds {
            // Files of a type the API server no longer serves (its CRD deleted) may stay: no list
            // of the type can show the core which of its objects went, and a type missing from
            // discovery may only be unreachable, so the core never takes them for orphans.
            if kind.served
                && rules.iter().any(|&i| {
                    let r = &topo.rules[i];
                    r.entries.iter().any(|e| r.names(e, kind))
                })
            {
                // Its other served versions too: one file per object, at the preferred
                // version, and none left at another.
                for version in std::iter::once(kind.gvr.version.as_str())
                    .chain(kind.other_versions.iter().copied())
                {
                    let mut p = base.clone();
                    if !kind.gvr.group.is_empty() {
                        p.push_str(&kind.gvr.group);
                        p.push('/');
                    }
                    p.push_str(&format!("{version}/{}/", kind.gvr.resource));
                    prefixes.push(p);
                }
            }
        }
        let tree = remotes.tree(url, branch);
        let actual: BTreeMap<&String, &[u8]> = tree
            .iter()
            .filter(|(p, _)| prefixes.iter().any(|x| p.starts_with(x.as_str())))
            .map(|(p, b)| (p, &b[..]))
            .collect();
        for (path, want) in &expected {
            match actual.get(path) {
                None => out.push(format!("{url} {branch}: missing {path}")),
                // A sealed repository's Secret is read decrypted (and must be sealed).
                Some(have) if sealed && is_secret_path(path) => {
                    if crate::sealing::unseal(have).map(|(doc, _)| doc).as_ref() != Some(want) {
                        out.push(format!(
                            "{url} {branch}: {path} does not decrypt to the live object\n--- git\n{}--- oracle\n{}",
                            String::from_utf8_lossy(have),
                            serde_json::to_string_pretty(want).unwrap_or_default()
                        ));
                    }
                }
                Some(have) if oracle::parse(have).as_ref() != Some(want) => out.push(format!(
                    "{url} {branch}: {path} differs\n--- git\n{}--- oracle\n{}",
                    String::from_utf8_lossy(have),
                    serde_json::to_string_pretty(want).unwrap_or_default()
                )),
                Some(_) => {}
            }
        }
        for path in actual.keys() {
            if !expected.contains_key(*path) {
                out.push(format!("{url} {branch}: {path} has no live object"));
            }
        }
    }
}

/// The [`Checker`] of this file.
pub struct Convergence;

impl Checker for Convergence {
    fn at_end(&mut self, end: &End<'_>, out: &mut Vec<String>) {
        check(
            end.topo,
            end.cluster,
            end.remotes,
            end.secrets_excluded,
            out,
        );
    }
}
