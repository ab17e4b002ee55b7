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
//! use gitops_reverser_core::{Core, CoreConfig};
//! use gitops_reverser_core::config::NamespacedName;
//! use gitops_reverser_core::Gvr;
//! use gitops_reverser_core::io::{blob_ids, GitOpKind, GitResult, Input, Output, WatchEvent};
//! use gitops_reverser_core::Now;
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

// The contract and the configuration: what a driver and an operator's users speak.
pub mod admission;
pub mod config;
#[doc(hidden)]
pub mod fuzz;
pub mod io;
pub mod limits;
pub mod record;
pub mod replay;
#[cfg(feature = "schema")]
pub mod schema;

// The pipeline's internals, reached through the re-exports below.
mod attribution;
mod batch;
mod canonical;
mod core;
mod correlation;
mod coverage;
mod defaults;
mod gitplan;
mod ids;
mod json;
mod live;
mod namespaces;
mod paths;
mod rules;
mod sanitize;
pub mod schema_defaults;
pub mod seal;
mod selector;
mod time;
mod type_rules;
mod yaml;

pub use crate::core::{Core, CoreConfig, Counters};
pub use batch::PushBounds;
pub use canonical::{git_blob_id, sanitized_bytes, Digester};
pub use correlation::CorrelationLimits;
pub use gitplan::{Identities, OP_TRAILER};
pub use ids::{validate_base_folder, Gvr, Operation};
pub use json::{split_watch_line, RawObject};
pub use sanitize::{SecretPolicy, TypeRules};
pub use time::Now;
pub use yaml::{render_custom_object, render_object, render_object_keeping_defaults};
