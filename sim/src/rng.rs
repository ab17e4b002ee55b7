//! One seed, one independent ChaCha8 stream per subsystem.
//!
//! Subsystems draw from their own stream so that changing how often one of them draws (a new fault,
//! a longer workload) does not shift what the others do: a shrunk run keeps the same world.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The random streams of one run.
pub struct Rngs {
    /// What users and controllers do.
    pub workload: ChaCha8Rng,
    /// Which faults fire, and when.
    pub faults: ChaCha8Rng,
    /// Watch and webhook latencies, stream interleaving.
    pub apiserver: ChaCha8Rng,
    /// Git latencies and outside writers.
    pub git: ChaCha8Rng,
    /// The swarm: which faults are on for this seed, and their weights.
    pub swarm: ChaCha8Rng,
}

impl Rngs {
    /// Derives every stream from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut root = ChaCha8Rng::seed_from_u64(seed);
        let mut sub = || ChaCha8Rng::seed_from_u64(root.gen());
        Self {
            workload: sub(),
            faults: sub(),
            apiserver: sub(),
            git: sub(),
            swarm: sub(),
        }
    }
}

/// `true` with probability `p` (0 never draws true, but still draws, keeping streams aligned).
pub fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.gen::<f64>() < p
}
