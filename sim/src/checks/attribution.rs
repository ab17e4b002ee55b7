//! Attribution never wrong: an event commit's author is the user who made that change, or the
//! fallback identity. The commits of one path form a subsequence of the object's writes; each is
//! matched to the earliest later write with the same file and author. A removal without an author
//! is matched to the earliest later write: it may be a delete or a write that unselected the object,
//! which the history (kept per object, not per destination) cannot tell apart.
//!
//! Tolerated and counted apart (`ambiguous`): the author made an identical UPDATE or DELETE (same
//! base, same content) that was rejected after admission, within the correlation TTL of when its
//! admission reached the core (a late one lives longer after the write than the TTL), and the true
//! write's own admission was missing or late, so the core never held the true author's record
//! when the watch event came. With the true record there on time, two fitting records are the
//! core's to tell apart (or to name neither), and choosing the refused one is wrong. A CREATE
//! never excuses: its record carries the uid the API server assigned, which a refused twin's
//! object never gets. The commit of the real write may remove the file (the write unselected the
//! object); that is the same ambiguity.

use std::collections::BTreeMap;

use crate::checks::limits::SPEC_TTL_MS as TTL_MS;
use gitops_reverser_core::ids::Operation;
use gitops_reverser_core::io::PlannedCommit;

use crate::checks::event_subject;
use crate::cluster::WriteRecord;
use crate::oracle;
use serde_json::Value;

/// An admission that reaches the core later than this after its write may come after the write's
/// watch event (the world's on-time latency is at most 2 ms, the watch's at least 3 ms).
const ON_TIME_MS: u64 = 2;

/// Attribution outcomes over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttrCounts {
    /// Authored by the true user.
    pub hit: u64,
    /// Authored by the fallback identity.
    pub miss: u64,
    /// Authored by someone else.
    pub wrong: u64,
    /// The documented ambiguous case.
    pub ambiguous: u64,
}

/// Per-path matching state.
pub struct AttributionCheck {
    matched: BTreeMap<(String, String, String), usize>,
    fallback: String,
    /// Every event commit must name its true user (no fault that can lose attribution is on).
    strict: bool,
    /// Outcomes.
    pub counts: AttrCounts,
}

impl AttributionCheck {
    /// A checker; `fallback` is the fallback author's name.
    pub fn new(fallback: &str, strict: bool) -> Self {
        Self {
            matched: BTreeMap::new(),
            fallback: fallback.into(),
            strict,
            counts: AttrCounts::default(),
        }
    }

    /// Checks one commit the remote accepted.
    pub fn on_commit(
        &mut self,
        url: &str,
        branch: &str,
        commit: &PlannedCommit,
        history: &BTreeMap<String, Vec<WriteRecord>>,
        out: &mut Vec<String>,
    ) {
        let Some((_, ident)) = event_subject(&commit.message) else {
            return;
        };
        let author = commit.author.name.as_str();
        let empty = Vec::new();
        let writes = history.get(ident).unwrap_or(&empty);
        // A write that leaves the file as the previous persisted write left it (a no-op
        // apply, a managedFields-only update) makes no commit: never a match.
        let noop: Vec<bool> = writes
            .iter()
            .scan(None::<&Option<Value>>, |prev, w| {
                if w.rejected {
                    return Some(false);
                }
                let same_as_prev = prev.is_some_and(|p| *p == w.file);
                *prev = Some(&w.file);
                Some(same_as_prev)
            })
            .collect();
        for (path, bytes) in &commit.writes {
            let key = (url.to_string(), branch.to_string(), path.clone());
            // The committed file's content, read back: the oracle judges values, not bytes.
            let have = bytes.as_ref().map(|b| oracle::parse(&b.render()));
            let start = self.matched.get(&key).map_or(0, |k| k + 1);
            // The file a write leaves; a deletion matches a delete first, and only failing that
            // a write that unselected the object (its labels changed).
            let same = |w: &WriteRecord| match &have {
                Some(v) => v.is_some() && w.file == *v,
                None => w.file.is_none(),
            };
            let later = || {
                writes
                    .iter()
                    .enumerate()
                    .skip(start)
                    .filter(|(j, w)| !w.rejected && !noop[*j])
            };
            if author == self.fallback {
                self.counts.miss += 1;
                if self.strict {
                    out.push(format!(
                        "{url} {branch}: {ident} committed with the fallback author in a run without attribution faults"
                    ));
                }
                // A removal with no author may be a delete or a write that unselected the object
                // (which changes the file, so is no no-op): the earliest later write, not the
                // first delete, or the delete's own commit would find its write taken (seed 3508).
                let matched = match bytes {
                    Some(_) => later().find(|(_, w)| same(w)),
                    None => later().next(),
                };
                if let Some((j, _)) = matched {
                    self.matched.insert(key, j);
                }
                continue;
            }
            if let Some((j, _)) = later().find(|(_, w)| same(w) && w.user == author) {
                self.counts.hit += 1;
                self.matched.insert(key, j);
                continue;
            }
            // The commit may also remove the file because the twin write unselected the object
            // (its labels changed): then the writes are identical to each other, not to the file.
            let twin_commit = |x: &WriteRecord| same(x) || (bytes.is_none() && x.file.is_some());
            let rejected_twin = writes.iter().any(|w| {
                w.rejected
                    && w.op != Operation::Create
                    && w.user == author
                    && writes.iter().any(|x| {
                        !x.rejected
                            && x.op == w.op
                            && x.at_ms >= w.at_ms
                            && x.at_ms <= w.admitted_ms.unwrap_or(w.at_ms) + TTL_MS
                            && x.admitted_ms.is_none_or(|a| a > x.at_ms + ON_TIME_MS)
                            && x.file == w.file
                            && twin_commit(x)
                    })
            });
            if rejected_twin {
                self.counts.ambiguous += 1;
                if let Some((j, _)) = later().find(|(_, w)| same(w)) {
                    self.matched.insert(key, j);
                }
                continue;
            }
            if bytes.is_none() {
                if let Some((j, _)) = later().find(|(_, w)| w.user == author) {
                    self.counts.hit += 1;
                    self.matched.insert(key, j);
                    continue;
                }
            }
            self.counts.wrong += 1;
            let trail: Vec<String> = writes
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    format!(
                        "  #{i} t={} {} {:?}{} {}",
                        w.at_ms,
                        w.user,
                        w.op,
                        if w.rejected { " (rejected)" } else { "" },
                        w.file
                            .as_ref()
                            .map_or(String::from("<deleted>"), value_hash)
                    )
                })
                .collect();
            out.push(format!(
                "{url} {branch}: {ident} attributed to {author}, who did not make that change (matched up to #{}); file {}; writes:\n{}",
                start as i64 - 1,
                have.as_ref().map_or(String::from("<deleted>"), |v| v.as_ref().map_or(String::from("<not YAML>"), value_hash)),
                trail.join("\n")
            ));
        }
    }
}

/// A short fingerprint of a file's content for the violation's trail.
fn value_hash(v: &Value) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes())
    )
}
