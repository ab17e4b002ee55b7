//! Invariant checkers, one concern per file, each a [`Checker`]; the world owns them as one
//! [`Checkers`] set and calls its hooks. Each appends human-readable violations.

use std::collections::BTreeSet;

use gitops_reverser_core::io::PlannedCommit;
use gitops_reverser_core::Core;
use gitops_reverser_core::Gvr;
use gitops_reverser_core::SecretPolicy;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::git::{Remotes, Tree};
use crate::topology::Topology;

pub mod attribution;
pub mod convergence;
pub mod delivery;
pub mod empty_commits;
pub mod history;
pub mod limits;
pub mod orphans;
pub mod secrets;
pub mod watches;

/// The operation and identifier of an event commit (`[UPDATE] v1/configmaps/ns/name`).
pub fn event_subject(message: &str) -> Option<(&str, &str)> {
    let subject = message.lines().next()?;
    let (op, ident) = subject.strip_prefix('[')?.split_once("] ")?;
    matches!(op, "CREATE" | "UPDATE" | "DELETE").then_some((op, ident))
}

/// The identifier a path stands for under `folder` (`{folder}/{identifier}.yaml`).
pub fn identifier_of<'a>(path: &'a str, folder: &str) -> Option<&'a str> {
    let rel = if folder.is_empty() {
        path
    } else {
        path.strip_prefix(folder)?.strip_prefix('/')?
    };
    rel.strip_suffix(".yaml")
}

/// A commit the remote accepted, as the checkers see it.
pub struct Landed<'a> {
    pub url: &'a str,
    pub branch: &'a str,
    /// The push it came in, numbered in the run.
    pub push: u64,
    /// When the core saw the change it stands for, at the earliest.
    pub seen_ms: u64,
    /// When its push was planned.
    pub planned_ms: u64,
    pub commit: &'a PlannedCommit,
    /// The branch's tree before and after it.
    pub before: &'a Tree,
    pub after: &'a Tree,
}

/// The world around a hook: what the checkers compare the remotes with.
pub struct Scene<'a> {
    pub topo: &'a Topology,
    pub cluster: &'a Cluster,
}

/// The world at the end of a run.
pub struct End<'a> {
    pub topo: &'a Topology,
    pub cluster: &'a Cluster,
    pub remotes: &'a Remotes,
    /// The watch streams running.
    pub running: &'a BTreeSet<Gvr>,
    /// Secrets are excluded: expected nowhere.
    pub secrets_excluded: bool,
}

/// What the world does that a checker follows, besides commits.
pub enum Event<'a> {
    /// An object is written to the cluster (its values, for the leak checker).
    Written { gvr: &'a Gvr, body: &'a Value },
    /// The core has handled an input.
    Handled { core: &'a Core, topo: &'a Topology },
    /// The remote refused a push of `commits` (they did not land).
    Refused {
        url: &'a str,
        branch: &'a str,
        commits: &'a [PlannedCommit],
        planned_ms: u64,
        now_ms: u64,
    },
    /// A rule toggled: what was in flight for its folder may never land.
    FolderChanged {
        url: &'a str,
        branch: &'a str,
        folder: &'a str,
        now_ms: u64,
    },
    /// Every folder may have changed (a CRD came or went, the operator restarted).
    AllChanged { now_ms: u64 },
}

/// One checker: hooks the world calls, each appending violations to `out`. A checker overrides
/// the hooks it needs.
pub trait Checker {
    /// Something the world did.
    fn on_event(&mut self, _event: &Event<'_>, _out: &mut Vec<String>) {}
    /// A commit landed.
    fn on_commit(&mut self, _landed: &Landed<'_>, _scene: &Scene<'_>, _out: &mut Vec<String>) {}
    /// The run has settled.
    fn at_end(&mut self, _end: &End<'_>, _out: &mut Vec<String>) {}
}

/// Every checker of a run, owned by the world and called from its hooks in one fixed order, with
/// the violations they found.
pub struct Checkers {
    pub limits: limits::Limits,
    pub empty_commits: empty_commits::EmptyCommits,
    pub orphans: orphans::OrphanCheck,
    pub attribution: attribution::AttributionCheck,
    pub history: history::History,
    pub delivery: delivery::DeliveryCheck,
    pub secrets: secrets::SecretCheck,
    pub convergence: convergence::Convergence,
    pub watches: watches::Watches,
    pub violations: Vec<String>,
}

impl Checkers {
    /// The checkers of a run. `strict`: no fault of the run may cost an author, so every
    /// commit's author must be right; `ttl_ms`: the core's correlation TTL; `outside_writers`:
    /// others write the branches too.
    pub fn new(
        fallback: &str,
        strict: bool,
        ttl_ms: u64,
        policy: SecretPolicy,
        outside_writers: bool,
    ) -> Self {
        Self {
            limits: limits::Limits,
            empty_commits: empty_commits::EmptyCommits,
            orphans: orphans::OrphanCheck::default(),
            attribution: attribution::AttributionCheck::new(fallback, strict, ttl_ms),
            history: history::History,
            delivery: delivery::DeliveryCheck::new(outside_writers),
            secrets: secrets::SecretCheck::new(policy),
            convergence: convergence::Convergence,
            watches: watches::Watches,
            violations: Vec::new(),
        }
    }

    fn each(&mut self) -> ([&mut dyn Checker; 9], &mut Vec<String>) {
        (
            [
                &mut self.limits,
                &mut self.empty_commits,
                &mut self.orphans,
                &mut self.attribution,
                &mut self.history,
                &mut self.delivery,
                &mut self.secrets,
                &mut self.convergence,
                &mut self.watches,
            ],
            &mut self.violations,
        )
    }

    /// Something the world did.
    pub fn on_event(&mut self, event: Event<'_>) {
        let (checkers, out) = self.each();
        for c in checkers {
            c.on_event(&event, out);
        }
    }

    /// A commit landed.
    pub fn on_commit(&mut self, landed: &Landed<'_>, scene: &Scene<'_>) {
        let (checkers, out) = self.each();
        for c in checkers {
            c.on_commit(landed, scene, out);
        }
    }

    /// The run has settled.
    pub fn at_end(&mut self, end: &End<'_>) {
        let (checkers, out) = self.each();
        for c in checkers {
            c.at_end(end, out);
        }
    }
}
