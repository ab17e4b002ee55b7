//! Shrinking a failing run: fewer workload steps, then fewer faults, keeping the seed.
//!
//! Every subsystem draws from its own stream, so a shorter workload is a prefix of the longer one
//! and switching a fault off leaves the others' draws alone: the smaller run is the same world.

use crate::swarm::{FaultChoice, Swarm};
use crate::world::{run, Params, Report};

/// The smallest failing variant found of a failing run.
pub fn shrink(failing: &Report) -> Report {
    let mut best = failing.clone();
    // Fewest steps that still fail (failures are not monotone in steps; bisect, then walk down).
    let (mut lo, mut hi) = (0usize, best.params.steps);
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        let r = run(&Params {
            steps: mid,
            ..best.params.clone()
        });
        if r.violations.is_empty() {
            lo = mid;
        } else {
            hi = mid;
            best = r;
        }
    }
    // Then drop faults one at a time while it keeps failing.
    let mut faults = swarm_faults(&best.swarm);
    let mut i = 0;
    while i < faults.len() {
        let mut fewer = faults.clone();
        fewer.remove(i);
        let r = run(&Params {
            faults: FaultChoice::Only(fewer.clone()),
            ..best.params.clone()
        });
        if r.violations.is_empty() {
            i += 1;
        } else {
            faults = fewer;
            best = r;
        }
    }
    best
}

fn swarm_faults(s: &Swarm) -> Vec<crate::swarm::Fault> {
    s.enabled()
}
