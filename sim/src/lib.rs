//! Deterministic simulation of GitOps Reverser (after TigerBeetle's VOPR).
//!
//! One `u64` seed drives a modelled cluster, API server (webhook and watch streams), git remotes
//! and clock, with faults switched on per seed (swarm testing), around the real
//! [`gitops_reverser_core::Core`]. A run has a safety phase (workload and faults) and a
//! liveness phase (faults healed, workload stopped, every stream relisted, run to quiescence);
//! checkers watch every commit and the final state. The same seed always gives the same run.

pub mod checks;
pub mod cluster;
pub mod defaults;
pub mod git;
pub mod oracle;
pub mod reduce;
pub mod rng;
pub mod scenario;
pub mod scenarios;
pub mod sealing;
pub mod shrink;
pub mod swarm;
pub mod topology;
pub mod workload;
pub mod world;

pub use world::{run, Params, Report};

// Every simulator build checks the core's invariants, `--release` included (the dependency turns
// on the core's `invariants` feature); a build without them does not compile.
const _: () = assert!(
    gitops_reverser_core::INVARIANTS,
    "the simulator runs the core with its invariants checked"
);
