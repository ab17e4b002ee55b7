//! No change given up: an event commit the remote refused (a transient push failure, or a push
//! of unknown outcome that did not land) lands later, the same commit (author, subject and
//! writes). The liveness phase's resync would restore the files of a dropped batch, hiding it
//! from convergence; without this check the history could silently lose authored commits.
//!
//! Forgiven, because the core may then drop unpushed writes by design: a folder whose rule was
//! added or removed (its writes go with it), any change of discovery (a folder's streams change),
//! an operator restart (the queue is memory), and every run with outside writers (a pending write
//! that an outside commit made redundant is dropped when the folder is read again).

use gitops_reverser_core::io::PlannedCommit;
use xxhash_rust::xxh3::xxh3_64;

use crate::checks::{event_subject, Checker, End, Event, Landed, Scene};

/// A commit as the check tells commits apart: the same change of the same branch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Commit {
    url: String,
    branch: String,
    author: String,
    subject: String,
    /// Path and a fingerprint of the rendered file (`None`: removed).
    writes: Vec<(String, Option<u64>)>,
}

/// A commit owed, and when the remote refused it.
#[derive(Clone, Debug)]
struct Owed {
    commit: Commit,
    refused_ms: u64,
}

impl Commit {
    fn of(url: &str, branch: &str, c: &PlannedCommit) -> Self {
        Self {
            url: url.into(),
            branch: branch.into(),
            author: c.author.name.clone(),
            subject: c.message.lines().next().unwrap_or_default().into(),
            writes: c
                .writes
                .iter()
                .map(|(p, f)| {
                    let id = f.as_ref().map(|f| match f.sealed() {
                        // A sealed file is its fingerprint: its bytes are the executor's.
                        Some(s) => xxh3_64(&s.listed_id()),
                        None => xxh3_64(&f.render()),
                    });
                    (p.clone(), id)
                })
                .collect(),
        }
    }
}

/// Event commits refused and not landed since.
#[derive(Debug, Default)]
pub struct DeliveryCheck {
    owed: Vec<Owed>,
    /// Off for runs with outside writers.
    off: bool,
    /// When folders' rules came or went: (time, URL, branch, folder).
    folder_changes: Vec<(u64, String, String, String)>,
    /// The last time any unpushed write could go.
    all_changed_ms: Option<u64>,
}

fn under(path: &str, folder: &str) -> bool {
    folder.is_empty()
        || path
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl DeliveryCheck {
    /// A checker; `outside_writers`: the run has them (the check is off).
    pub fn new(outside_writers: bool) -> Self {
        Self {
            owed: Vec::new(),
            off: outside_writers,
            folder_changes: Vec::new(),
            all_changed_ms: None,
        }
    }

    /// The remote refused a push of `commits` planned at `planned_ms` (they did not land). Those
    /// of a folder whose rule came or went since it was planned may go (a removed destination's
    /// writes in flight are dropped when the push fails).
    pub fn on_refused(
        &mut self,
        url: &str,
        branch: &str,
        commits: &[PlannedCommit],
        planned_ms: u64,
        now_ms: u64,
    ) {
        if self.off || self.all_changed_ms.is_some_and(|t| t >= planned_ms) {
            return;
        }
        let changed: Vec<&str> = self
            .folder_changes
            .iter()
            .filter(|(t, u, b, _)| *t >= planned_ms && u == url && b == branch)
            .map(|(_, _, _, f)| f.as_str())
            .collect();
        let spared = |c: &PlannedCommit| {
            c.writes
                .iter()
                .any(|(p, _)| changed.iter().any(|f| under(p, f)))
        };
        let commits: Vec<&PlannedCommit> = commits.iter().filter(|c| !spared(c)).collect();
        // A commit refused again is owed once: the queue puts refused commits back in front, so
        // the next push starts with those already owed. Identical commits within one push (the
        // same change made twice) are owed as often as they occur.
        let refused: Vec<Commit> = commits
            .iter()
            .filter(|c| event_subject(&c.message).is_some())
            .map(|c| Commit::of(url, branch, c))
            .collect();
        for (i, commit) in refused.iter().enumerate() {
            let in_push = refused[..=i].iter().filter(|r| *r == commit).count();
            let owed = self.owed.iter().filter(|o| o.commit == *commit).count();
            if owed < in_push {
                self.owed.push(Owed {
                    commit: commit.clone(),
                    refused_ms: now_ms,
                });
            }
        }
    }

    /// The remote accepted `c`: it pays the oldest identical commit owed.
    pub fn on_landed(&mut self, url: &str, branch: &str, c: &PlannedCommit) {
        if self.owed.is_empty() {
            return;
        }
        let landed = Commit::of(url, branch, c);
        if let Some(i) = self.owed.iter().position(|o| o.commit == landed) {
            self.owed.remove(i);
        }
    }

    /// The rule writing `folder` on (`url`, `branch`) came or went: its unpushed writes may go.
    pub fn forgive_folder(&mut self, url: &str, branch: &str, folder: &str, now_ms: u64) {
        self.owed.retain(|Owed { commit: o, .. }| {
            !(o.url == url && o.branch == branch && o.writes.iter().any(|(p, _)| under(p, folder)))
        });
        self.folder_changes
            .push((now_ms, url.into(), branch.into(), folder.into()));
    }

    /// Discovery changed or the operator restarted: any unpushed write may go.
    pub fn forgive_all(&mut self, now_ms: u64) {
        self.owed.clear();
        self.all_changed_ms = Some(now_ms);
    }

    /// At the end of the run, after the liveness phase: nothing is owed.
    pub fn check(&self, out: &mut Vec<String>) {
        for Owed {
            commit: o,
            refused_ms,
        } in &self.owed
        {
            out.push(format!(
                "{} {}: {:?} by {} refused at t={refused_ms} ms never landed",
                o.url, o.branch, o.subject, o.author
            ));
        }
    }
}

impl Checker for DeliveryCheck {
    fn on_event(&mut self, event: &Event<'_>, _out: &mut Vec<String>) {
        match *event {
            Event::Refused {
                url,
                branch,
                commits,
                planned_ms,
                now_ms,
            } => self.on_refused(url, branch, commits, planned_ms, now_ms),
            Event::FolderChanged {
                url,
                branch,
                folder,
                now_ms,
            } => self.forgive_folder(url, branch, folder, now_ms),
            Event::AllChanged { now_ms } => self.forgive_all(now_ms),
            Event::Written { .. } | Event::Handled { .. } => {}
        }
    }

    fn on_commit(&mut self, l: &Landed<'_>, _scene: &Scene<'_>, _out: &mut Vec<String>) {
        self.on_landed(l.url, l.branch, l.commit);
    }

    fn at_end(&mut self, _end: &End<'_>, out: &mut Vec<String>) {
        self.check(out);
    }
}
