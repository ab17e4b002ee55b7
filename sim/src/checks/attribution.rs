//! Attribution never wrong: an event commit's author is the user who made that change, or the
//! fallback identity. The commits of one path form a subsequence of the object's writes as that
//! path's folder saw them: each write leaves the object's file there, or leaves it absent (a
//! delete, or a write that the folder's active rules did not select). Each commit is matched to
//! the earliest later write that leaves the committed file, from its author (or from anyone, for
//! the fallback author). Writes that leave the folder's file as it was make no commit and match
//! nothing.
//!
//! Tolerated and counted apart (`ambiguous`): the author made an identical UPDATE or DELETE (same
//! base, same content) that was rejected after admission, within the correlation TTL of when its
//! admission reached the core (a late one lives longer after the write than the TTL), and the true
//! write's own admission was missing or late, so the core never held the true author's record
//! when the watch event came. With the true record there on time, two fitting records are the
//! core's to tell apart (or to name neither), and choosing the refused one is wrong. A CREATE
//! never excuses: its record carries the uid the API server assigned, which a refused twin's
//! object never gets.

use std::collections::BTreeMap;

use gitops_reverser_core::io::PlannedCommit;
use gitops_reverser_core::Operation;

use crate::checks::{event_subject, identifier_of, Checker, Landed, Scene};
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
    /// Authored by the fallback identity for a write with no admission the core can use
    /// (`kubectl scale`), by design.
    pub unadmitted: u64,
}

/// Per-path matching state.
pub struct AttributionCheck {
    matched: BTreeMap<(String, String, String), usize>,
    fallback: String,
    /// Every event commit must name its true user (no fault that can lose attribution is on).
    strict: bool,
    /// The core's correlation TTL in this run: how long a record can wait for its write.
    ttl_ms: u64,
    /// Outcomes.
    pub counts: AttrCounts,
}

impl AttributionCheck {
    /// A checker; `fallback` is the fallback author's name, `ttl_ms` the core's correlation TTL.
    pub fn new(fallback: &str, strict: bool, ttl_ms: u64) -> Self {
        Self {
            matched: BTreeMap::new(),
            fallback: fallback.into(),
            strict,
            ttl_ms,
            counts: AttrCounts::default(),
        }
    }

    /// Checks one commit the remote accepted, against the cluster's `history` of writes.
    pub fn check_commit(
        &mut self,
        url: &str,
        branch: &str,
        commit: &PlannedCommit,
        history: &BTreeMap<String, Vec<WriteRecord>>,
        sealed: bool,
        out: &mut Vec<String>,
    ) {
        let Some((op, ident)) = event_subject(&commit.message) else {
            return;
        };
        // An authored commit's operation is its record's: the core joins a watch event only to an
        // admission of the operation it saw, so the author made a write of this operation.
        let op = match op {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            _ => Operation::Delete,
        };
        let author = commit.author.name.as_str();
        let empty = Vec::new();
        let writes = history.get(ident).unwrap_or(&empty);
        for (path, bytes) in &commit.writes {
            // The file each write left in this commit's folder: absent where the folder's rule did
            // not select the object, so a write that unselected it is a removal here.
            // A write whose operation the folder's rule leaves out leaves the file as the last
            // persisted write left it, unless the core saw it in a relist (which every rule
            // takes): then it leaves its own (`relisted`).
            let ours = |dests: &[crate::cluster::Destination]| {
                dests.iter().any(|&(u, b, folder)| {
                    u == url && b == branch && identifier_of(path, folder) == Some(ident)
                })
            };
            let mut last: Option<&Value> = None;
            let here: Vec<Option<&Value>> = writes
                .iter()
                .map(|w| {
                    let f = if ours(&w.held) {
                        last
                    } else {
                        file_in(w, sealed).filter(|_| ours(&w.dests))
                    };
                    if !w.rejected {
                        last = f;
                    }
                    f
                })
                .collect();
            // And where its namespace was relabelled into or out of the folder's selection, the
            // write may leave its own file there or none (`moved`).
            let alternatives: Vec<Vec<Option<&Value>>> = writes
                .iter()
                .map(|w| {
                    let mut alt = Vec::new();
                    if ours(&w.moved) {
                        alt.extend([file_in(w, sealed), None]);
                    }
                    if ours(&w.held) {
                        alt.push(file_in(w, sealed).filter(|_| ours(&w.dests)));
                    }
                    alt
                })
                .collect();
            // A write that leaves the file as the previous persisted write left it (a no-op
            // apply, a managedFields-only update, an update while the object stays unselected)
            // makes no commit: never a match.
            // Where the previous persisted write's namespace was relabelled (`moved`), what it
            // left here is uncertain, and so is whether this one changes it (seed 75253: carol's
            // delete after team-b became prod looked like a no-op, and her commit was matched to
            // her next delete instead).
            let mut prev: Option<&Value> = None;
            let mut prev_moved = false;
            let noop: Vec<bool> = writes
                .iter()
                .zip(&here)
                .map(|(w, &f)| {
                    if w.rejected {
                        return false;
                    }
                    let same_as_prev = prev == f && !prev_moved;
                    prev = f;
                    // After a write the folder's rule leaves out (`held`), what the folder holds
                    // is uncertain too: a resync may have brought it to the cluster's state since
                    // (seed 710027782: the namespace controller's held delete, then a relist
                    // removed the file, and bob's re-create of the same content was a change).
                    prev_moved = ours(&w.moved) || ours(&w.held);
                    same_as_prev
                })
                .collect();
            let key = (url.to_string(), branch.to_string(), path.clone());
            // The committed file's content, read back: the oracle judges values, not bytes.
            let have = bytes.as_ref().map(|b| match b.sealed() {
                // A sealed Secret is judged as it reads decrypted, values and all.
                Some(s) => {
                    let plain = gitops_reverser_core::render_object(s.object.as_bytes(), s.rules);
                    plain.ok().and_then(|p| oracle::parse(&p))
                }
                None => oracle::parse(&b.render()),
            });
            let start = self.matched.get(&key).map_or(0, |k| k + 1);
            let same = |j: usize| {
                let leaves = |f: Option<&Value>| match &have {
                    Some(v) => v.is_some() && f == v.as_ref(),
                    None => f.is_none(),
                };
                leaves(here[j]) || alternatives[j].iter().any(|&f| leaves(f))
            };
            // The persisted writes after the cursor that leave the committed file: those that
            // changed it (`noops` false) or those that left it as it was (`noops` true).
            let (noop, same) = (&noop, &same);
            let later = |noops: bool| {
                (start..writes.len())
                    .filter(move |&j| !writes[j].rejected && noop[j] == noops && same(j))
            };
            if author == self.fallback {
                // A write with no admission the core can use (`kubectl scale`) is the fallback
                // author's by design.
                // So is the next change to the same content within the TTL: its record looks
                // late for the one seen without an author and is dropped (bug 15's trade-off;
                // seed 55877: alice's scale, then the deployer's identical update).
                // Any write after the cursor that leaves the file may be the one committed: the
                // cursor lags where the folder's earlier commits were resyncs (seed 209522067:
                // bob scaled back to the replicas of alice's create, made before the folder's
                // rule existed).
                // So is a write admitted at another version than its event is seen at (no-ops
                // included: the identifier's history at the new version may begin with it).
                let across = (start..writes.len())
                    .any(|j| writes[j].across_versions && !writes[j].rejected && same(j));
                let unadmitted = across
                    || later(false).any(|j| {
                        let x = &writes[j];
                        x.via_subresource
                            || writes[..j].iter().any(|w| {
                                w.via_subresource
                                    && !w.rejected
                                    && w.op == x.op
                                    && file_in(w, sealed) == file_in(x, sealed)
                                    && x.at_ms <= w.at_ms + self.ttl_ms
                            })
                    });
                // A racing rival's write (another user's identical UPDATE or DELETE from the
                // same version, refused at storage after admission) fits the change exactly as
                // the true one does: the core rightly names nobody.
                // (No-ops included: where a relabel moved the folder's selection, the last
                // persisted write before the race may look like the raced one: seed 73094.)
                let raced = (start..writes.len()).any(|j| {
                    let x = &writes[j];
                    !x.rejected && same(j) && {
                        x.op != Operation::Create
                            && writes.iter().any(|w| {
                                w.rejected
                                    && w.user != x.user
                                    && w.op == x.op
                                    && file_in(w, sealed) == file_in(x, sealed)
                                    && w.at_ms.abs_diff(x.at_ms) <= self.ttl_ms
                            })
                    }
                });
                if unadmitted {
                    self.counts.unadmitted += 1;
                } else if raced {
                    self.counts.ambiguous += 1;
                } else {
                    self.counts.miss += 1;
                }
                if self.strict && !unadmitted && !raced {
                    out.push(format!(
                        "{url} {branch}: {ident} committed with the fallback author in a run without attribution faults (matched up to #{}); writes:\n{}",
                        start as i64 - 1,
                        trail(writes, &here, sealed)
                    ));
                }
                // The cursor goes to the earliest write that could leave this file, no-ops
                // included: an authorless commit is never wrong, so it must not use up a write a
                // later authored commit needs (seed 42691: a relabel made bob's delete look like
                // a no-op, and the next candidate was alice's create).
                let earliest = (start..writes.len()).find(|&j| !writes[j].rejected && same(j));
                if let Some(j) = earliest {
                    self.matched.insert(key, j);
                }
                continue;
            }
            // A write that changed nothing since the previous one can still be the one the
            // core saw, when it missed those between (a relist after a gap shows only the last):
            // carol's delete and re-create that left the object unselected (seed 152).
            let by_author = |j: &usize| writes[*j].user == author && writes[*j].op == op;
            let authored = later(false)
                .find(by_author)
                .or_else(|| later(true).find(by_author));
            // The earliest write after the cursor that a rejected twin by the author explains.
            let twin_of = |j: usize| {
                let x = &writes[j];
                !x.rejected
                    && x.op == op
                    && op != Operation::Create
                    && x.admitted_ms.is_none_or(|a| a > x.at_ms + ON_TIME_MS)
                    && same(j)
                    && writes.iter().any(|w| {
                        w.rejected
                            && w.op == op
                            && w.user == author
                            && x.at_ms >= w.at_ms
                            && x.at_ms
                                <= w.admitted_ms
                                    .unwrap_or(w.at_ms)
                                    .max(w.redelivered_ms.unwrap_or(0))
                                    + self.ttl_ms
                            && file_in(x, sealed) == file_in(w, sealed)
                    })
            };
            let twin = (start..writes.len()).find(|&j| twin_of(j));
            match (authored, twin) {
                // The twin comes first: the author's own later write is left for its own commit
                // (seed 44252: the deployer's refused delete named for alice's, then his own).
                (Some(a), Some(t)) if t < a => {
                    self.counts.ambiguous += 1;
                    self.matched.insert(key, t);
                    continue;
                }
                (Some(a), _) => {
                    self.counts.hit += 1;
                    self.matched.insert(key, a);
                    continue;
                }
                (None, Some(t)) => {
                    self.counts.ambiguous += 1;
                    self.matched.insert(key, t);
                    continue;
                }
                (None, None) => {}
            }
            self.counts.wrong += 1;
            out.push(format!(
                "{url} {branch}: {ident} attributed to {author}, who did not make that change (matched up to #{}); file {}; writes:\n{}",
                start as i64 - 1,
                have.as_ref().map_or(String::from("<deleted>"), |v| v.as_ref().map_or(String::from("<not YAML>"), value_hash)),
                trail(writes, &here, sealed)
            ));
        }
    }
}

/// The file a write leaves. In a repository that seals Secrets a Secret's file changes with its
/// values: writes that change only values are changes there (seed 2722849: bob's new password
/// looked like a no-op, and his commit was matched to his later write).
fn file_in(w: &WriteRecord, sealed: bool) -> Option<&Value> {
    match sealed {
        true => w.sealed_file.as_ref().or(w.file.as_ref()),
        false => w.file.as_ref(),
    }
}

/// An object's writes as a violation shows them.
fn trail(writes: &[WriteRecord], here: &[Option<&Value>], sealed: bool) -> String {
    let lines: Vec<String> = writes
        .iter()
        .enumerate()
        .map(|(i, w)| {
            format!(
                "  #{i} t={} {} {:?}{}{} {}{}",
                w.at_ms,
                w.user,
                w.op,
                if w.rejected { " (rejected)" } else { "" },
                if w.via_subresource {
                    " (subresource)"
                } else {
                    ""
                },
                file_in(w, sealed).map_or(String::from("<deleted>"), value_hash),
                if w.file.is_some() && here[i].is_none() {
                    " (not selected here)"
                } else {
                    ""
                }
            )
        })
        .collect();
    lines.join("\n")
}

/// A short fingerprint of a file's content for the violation's trail.
fn value_hash(v: &Value) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(v.to_string().as_bytes())
    )
}

impl Checker for AttributionCheck {
    fn on_commit(&mut self, l: &Landed<'_>, scene: &Scene<'_>, out: &mut Vec<String>) {
        let sealed = scene.topo.repos.iter().any(|r| r.url == l.url && r.sealed);
        self.check_commit(
            l.url,
            l.branch,
            l.commit,
            &scene.cluster.history,
            sealed,
            out,
        );
    }
}
