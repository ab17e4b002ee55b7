//! GitOps Reverser's runtime: the I/O around the deterministic core.
//!
//! - [`git`]: the executor that turns the core's git ops into commits and pushes on real remotes.

pub mod git;
