//! Replays a recording ([`crate::record`]) into a fresh core and reports what it pushed.
//!
//! The recording holds every input the driver gave the core, git results included, so the core
//! replays exactly: a push counts as landed when the recording's `GitDone` for its op says
//! `Pushed`, and its writes are applied to an in-memory tree per branch. No cluster and no git
//! server are involved. At a restart the core is rebuilt from the restart's configuration and its
//! pushes still in flight are forgotten (whether they landed, the recording cannot say).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::NamespacedName;
use crate::core::{Core, Counters};
use crate::io::{GitOpKind, GitResult, Identity, Input, Output, PlannedCommit};
use crate::record::Recording;

/// One commit that landed.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayedCommit {
    /// The GitRepoConfig.
    pub repo: NamespacedName,
    /// Its URL.
    pub url: String,
    /// The branch.
    pub branch: String,
    /// When the push that carried it was reported landed (the recording's monotonic ms).
    pub landed_ms: u64,
    /// The author.
    pub author: Identity,
    /// The committer.
    pub committer: Identity,
    /// The message, whole.
    pub message: String,
    /// Each changed path with its new content (`None`: deleted), as the core wrote it.
    pub writes: Vec<(String, Option<String>)>,
}

/// What a replay produced.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    /// Every commit that landed, in order.
    pub commits: Vec<ReplayedCommit>,
    /// Each branch's files at the end: `repo`, branch, path and content.
    pub trees: BTreeMap<String, BTreeMap<String, String>>,
    /// The core's counters at the end.
    pub counters: BTreeMap<&'static str, u64>,
}

fn counters(c: Counters) -> BTreeMap<&'static str, u64> {
    BTreeMap::from([
        ("events_received_total", c.events_received_total),
        ("events_processed_total", c.events_processed_total),
        (
            "watch_duplicates_skipped_total",
            c.watch_duplicates_skipped_total,
        ),
        ("commits_total", c.commits_total),
        ("commit_bytes_total", c.commit_bytes_total),
        ("files_deleted_total", c.files_deleted_total),
        ("orphans_found_total", c.orphans_found_total),
        ("rebase_retries_total", c.rebase_retries_total),
        ("git_operations_total", c.git_operations_total),
        ("git_failures_total", c.git_failures_total),
        ("admissions_total", c.admissions_total),
        ("refused_total", c.refused_total),
    ])
}

/// A push the core planned: where, and its commits.
struct Push {
    repo: NamespacedName,
    url: String,
    branch: String,
    commits: Vec<PlannedCommit>,
}

/// Replays `rec` into a core built from its header. A push lands when its result says
/// `Pushed`, or when it was `Unknown` and the branch's next verification found it landed.
pub fn replay(rec: &Recording) -> Replay {
    let mut core = Core::new(rec.header.config.clone());
    let mut pushes: BTreeMap<u64, Push> = BTreeMap::new();
    // Verifications in flight, by op id: the branch they look at.
    let mut verifies: BTreeMap<u64, (NamespacedName, String)> = BTreeMap::new();
    // Per branch, the push whose result was `Unknown`, until a verification says.
    let mut unknown: BTreeMap<(NamespacedName, String), Push> = BTreeMap::new();
    let mut restarts = rec.restarts.iter().peekable();
    let mut out = Replay {
        commits: Vec::new(),
        trees: BTreeMap::new(),
        counters: BTreeMap::new(),
    };
    for (i, entry) in rec.entries.iter().enumerate() {
        while let Some(r) = restarts.next_if(|r| r.at == i) {
            core = Core::new(r.config.clone());
            pushes.clear();
            verifies.clear();
            unknown.clear();
        }
        if let Input::GitDone(op_id, result) = &entry.input {
            let landed = match (pushes.remove(op_id), verifies.remove(op_id), result) {
                (Some(p), _, GitResult::Pushed { .. }) => Some(p),
                (Some(p), _, GitResult::Unknown) => {
                    unknown.insert((p.repo.clone(), p.branch.clone()), p);
                    None
                }
                (_, Some(branch), GitResult::Verified { landed, .. }) => {
                    unknown.remove(&branch).filter(|_| *landed)
                }
                _ => None,
            };
            if let Some(p) = landed {
                out.land(p, entry.now.mono_ms);
            }
        }
        core.handle(entry.now, entry.input.clone());
        while let Some(o) = core.poll_output() {
            let Output::Git(op) = o else { continue };
            match op.kind {
                GitOpKind::Push { commits, .. } => {
                    let push = Push {
                        repo: op.repo,
                        url: op.repo_url,
                        branch: op.branch,
                        commits,
                    };
                    pushes.insert(op.op_id, push);
                }
                GitOpKind::Verify { .. } => {
                    verifies.insert(op.op_id, (op.repo, op.branch));
                }
                GitOpKind::ReadPaths { .. } => {}
            }
        }
    }
    out.counters = counters(core.counters());
    out
}

impl Replay {
    fn land(&mut self, p: Push, landed_ms: u64) {
        let tree = self
            .trees
            .entry(format!("{} {}", p.repo, p.branch))
            .or_default();
        for c in p.commits {
            let writes: Vec<(String, Option<String>)> = c
                .writes
                .iter()
                .map(|(path, body)| {
                    let text = body.as_ref().map(|b| match b.sealed() {
                        Some(s) => String::from_utf8_lossy(&s.redacted_view()).into_owned(),
                        None => String::from_utf8_lossy(&b.render()).into_owned(),
                    });
                    (path.clone(), text)
                })
                .collect();
            for (path, text) in &writes {
                match text {
                    Some(t) => tree.insert(path.clone(), t.clone()),
                    None => tree.remove(path),
                };
            }
            self.commits.push(ReplayedCommit {
                repo: p.repo.clone(),
                url: p.url.clone(),
                branch: p.branch.clone(),
                landed_ms,
                author: c.author,
                committer: c.committer,
                message: c.message,
                writes,
            });
        }
    }

    /// The stable, readable text form: commits, then the final trees, then the counters.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (i, c) in self.commits.iter().enumerate() {
            let _ = writeln!(
                s,
                "commit {} on {} {} (landed at {} ms)",
                i + 1,
                c.repo,
                c.branch,
                c.landed_ms
            );
            let _ = writeln!(s, "  author:    {} <{}>", c.author.name, c.author.email);
            let _ = writeln!(
                s,
                "  committer: {} <{}>",
                c.committer.name, c.committer.email
            );
            for line in c.message.lines() {
                let _ = writeln!(s, "  | {line}");
            }
            for (path, text) in &c.writes {
                match text {
                    Some(t) => {
                        let _ = writeln!(s, "  write {path}");
                        for line in t.lines() {
                            let _ = writeln!(s, "    {line}");
                        }
                    }
                    None => {
                        let _ = writeln!(s, "  delete {path}");
                    }
                }
            }
        }
        for (branch, files) in &self.trees {
            let _ = writeln!(s, "tree {branch}");
            for (path, text) in files {
                let _ = writeln!(s, "  {path} ({} bytes)", text.len());
            }
        }
        let _ = writeln!(s, "counters");
        for (name, n) in &self.counters {
            let _ = writeln!(s, "  {name}: {n}");
        }
        s
    }
}
