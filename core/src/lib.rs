//! The pure, deterministic pipeline of GitOps Reverser.
//!
//! Everything between "the cluster changed" and "this commit goes to that branch" lives here:
//! sanitization, identifiers and paths, rule matching, admission-to-watch attribution, dedup,
//! per-branch batching, git op planning with retries, seeding and orphan detection, configuration
//! validation and the status it implies. There is no I/O, no clock, no entropy and no thread: the
//! runtime (real cluster, real git) and the simulator (seeded world, in-memory git) drive the same
//! [`core::Core`] through one contract.
//!
//! # The drive loop
//!
//! 1. Hand the core one [`io::Input`] with the current time: `core.handle(now, input)`.
//! 2. Drain `core.poll_output()` and execute each [`io::Output`]; a [`io::GitOp`]'s result comes back
//!    later as [`io::Input::GitDone`] with its `op_id`.
//! 3. Sleep until `core.poll_deadline()` (monotonic ms) or the next input, whichever is first, then
//!    send [`io::Input::Tick`]. A spurious tick does nothing.
//!
//! Objects enter as the JSON text the API server sent ([`json::RawObject`]; `From<serde_json::Value>`
//! is there for tests and tools): the core reads them through a borrowed tree and never builds a
//! document per event.
//!
//! Time enters only as [`time::Now`]: `mono_ms` drives timers (and is clamped so it never runs
//! backwards), `wall_ms` only stamps commits.
//!
//! ```
//! use gitops_reverser_core::core::{Core, CoreConfig};
//! use gitops_reverser_core::config::NamespacedName;
//! use gitops_reverser_core::ids::Gvr;
//! use gitops_reverser_core::io::{blob_ids, GitOpKind, GitResult, Input, Output, WatchEvent};
//! use gitops_reverser_core::time::Now;
//! use serde_json::json;
//!
//! let mut core = Core::new(CoreConfig::default());
//! let mut now = Now::at(0);
//! let repo = NamespacedName::new("team-a", "my-repo");
//! core.handle(now, Input::GitRepoConfig(repo.clone(), Some(serde_json::from_value(json!({
//!     "repoURL": "https://git.example/org/repo", "allowedBranches": ["main"]})).unwrap())));
//! core.handle(now, Input::WatchRule(NamespacedName::new("team-a", "cms"), Some(serde_json::from_value(json!({
//!     "gitRepoConfigRef": "my-repo", "resources": [{"version": "v1", "resource": "configmaps"}]})).unwrap())));
//! let cms = Gvr::new("", "v1", "configmaps");
//! core.handle(now, Input::Watch(cms.clone(), WatchEvent::Init));
//! core.handle(now, Input::Watch(cms.clone(), WatchEvent::InitDone));
//! core.handle(now, Input::Watch(cms, WatchEvent::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "app", "namespace": "team-a", "resourceVersion": "7"}, "data": {"k": "v"}}).into())));
//!
//! let mut pushed = Vec::new();
//! loop {
//!     while let Some(out) = core.poll_output() {
//!         if let Output::Git(op) = out {
//!             // A real driver runs the op; this one answers as an empty, cooperative remote.
//!             let result = match &op.kind {
//!                 GitOpKind::ReadPaths { .. } => GitResult::Paths { head: None, entries: vec![] },
//!                 GitOpKind::Push { commits, .. } => {
//!                     pushed.extend(commits.iter().map(|c| c.message.lines().next().unwrap().to_owned()));
//!                     GitResult::Pushed { head: "c1".into(), blobs: blob_ids(commits) }
//!                 }
//!                 GitOpKind::Verify { .. } => GitResult::Verified { head: None, landed: false },
//!             };
//!             core.handle(now, Input::GitDone(op.op_id, result));
//!         }
//!     }
//!     match core.poll_deadline() {
//!         Some(at) if pushed.is_empty() => { now = Now::at(at); core.handle(now, Input::Tick); }
//!         _ => break,
//!     }
//! }
//! assert_eq!(pushed, ["[CREATE] v1/configmaps/team-a/app"]);
//! ```
#![warn(missing_docs)]
#![warn(unreachable_pub)]

/// Whether the core checks its invariants: in debug builds, and wherever the `invariants` feature
/// is on (the simulator turns it on, so that its `--release` runs check every one).
pub const INVARIANTS: bool = cfg!(any(debug_assertions, feature = "invariants"));

/// `assert!` when [`INVARIANTS`] holds; nothing (not even the evaluation) otherwise.
macro_rules! invariant {
    ($($t:tt)*) => {
        if $crate::INVARIANTS {
            assert!($($t)*);
        }
    };
}

/// `assert_eq!` when [`INVARIANTS`] holds.
macro_rules! invariant_eq {
    ($($t:tt)*) => {
        if $crate::INVARIANTS {
            assert_eq!($($t)*);
        }
    };
}

pub mod admission;
pub(crate) mod attribution;
pub mod batch;
pub mod canonical;
pub mod config;
pub mod core;
pub mod correlation;
pub mod coverage;
#[doc(hidden)]
pub mod fuzz;
pub mod gitplan;
pub mod ids;
pub mod io;
pub mod json;
pub(crate) mod live;
pub(crate) mod namespaces;
mod paths;
pub mod record;
pub mod replay;
pub(crate) mod rules;
pub mod sanitize;
#[cfg(feature = "schema")]
pub mod schema;
pub(crate) mod selector;
pub mod time;
pub mod yaml;
