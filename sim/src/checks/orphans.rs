//! Orphan safety: no file is deleted while its object lived, selected, all along.
//!
//! A deletion planned at `t` is justified when the object was created, deleted or relabelled at
//! some point since the change the operator last wrote to the file was seen (minus the longest
//! watch delay), or when it is not live and selected when the push is planned. Anything else
//! deleted a live object's file.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::checks::{identifier_of, Checker, Landed, Scene};
use crate::topology::Subject;

/// Longest time between a write and the watch event that shows it (latency plus disconnects: one
/// outage of at most 45 s, then blips of at most 5 s each).
pub const WATCH_DELAY_MS_MAX: u64 = 60_000;

/// When the operator last wrote each file: (push, seen at) of the last push that wrote it and of
/// the push before that one, where "seen at" is when the core saw the change the write stands for
/// (a push carries a bounded part of the queue: its commits may have waited long).
#[derive(Default)]
pub struct OrphanCheck {
    written: BTreeMap<(String, String, String), [(u64, u64); 2]>,
}

impl OrphanCheck {
    /// Checks one commit of push number `push` (unique in the run), planned at `planned_ms`, whose
    /// change the core saw at `seen_ms` at the earliest.
    fn check_commit(&mut self, l: &Landed<'_>, scene: &Scene<'_>, out: &mut Vec<String>) {
        let Landed {
            url,
            branch,
            push,
            seen_ms,
            planned_ms,
            commit,
            before,
            ..
        } = *l;
        let Scene { topo, cluster } = *scene;
        for (path, bytes) in &commit.writes {
            let key = (url.to_string(), branch.to_string(), path.clone());
            let w = self.written.entry(key).or_insert([(u64::MAX, 0); 2]);
            if bytes.is_some() {
                if w[0].0 != push {
                    *w = [(push, seen_ms), w[0]];
                } else {
                    w[0].1 = w[0].1.min(seen_ms);
                }
                continue;
            }
            if !before.contains_key(path) {
                continue;
            }
            // A write earlier in this same push may stand for a state before the deletion; the
            // last write of an earlier push is the one the cluster had moved on from.
            let last = if w[0].0 == push { w[1] } else { w[0] };
            let since = last.1.saturating_sub(WATCH_DELAY_MS_MAX);
            for i in (0..topo.rules.len()).filter(|&i| topo.active[i]) {
                let r = &topo.rules[i];
                if topo.repos[r.repo].url != url || r.branch != branch {
                    continue;
                }
                let Some(id) = identifier_of(path, r.folder) else {
                    continue;
                };
                let Some((okey, obj)) = cluster.by_identifier(id) else {
                    continue;
                };
                let labels = obj
                    .body
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(Value::Null);
                let obj = Subject {
                    kind: &cluster.kinds[okey.0],
                    namespace: okey.1.as_deref(),
                    ns_env: cluster.ns_env(okey.1.as_deref()),
                    labels: &labels,
                };
                let selected = topo.selects(i, &obj);
                let changed = cluster
                    .changes
                    .get(id)
                    .is_some_and(|ts| ts.iter().any(|&t| t >= since && t <= planned_ms));
                if selected && !changed {
                    out.push(format!(
                        "{url} {branch}: {path} deleted by {:?} (planned at {planned_ms} ms) while its object lived and was selected since before {since} ms",
                        commit.message.lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
}

impl Checker for OrphanCheck {
    fn on_commit(&mut self, l: &Landed<'_>, scene: &Scene<'_>, out: &mut Vec<String>) {
        self.check_commit(l, scene, out);
    }
}
