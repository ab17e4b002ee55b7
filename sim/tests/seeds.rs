//! The CI seed set: every seed passes every checker, and runs twice to the same output hash.
//!
//! `SIM_SEEDS=N` runs N seeds instead of 300 and `SIM_SEED_START=S` starts elsewhere (the long
//! mode: `SIM_SEEDS=5000 cargo test -p gitops-reverser-sim --release --test seeds`).

use gitops_reverser_sim::swarm::FaultChoice;
use gitops_reverser_sim::{run, Params};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

#[test]
fn the_ci_seed_set_passes_every_checker_and_is_deterministic() {
    let start = env("SIM_SEED_START", 1);
    let count = env("SIM_SEEDS", 300);
    let mut failures = Vec::new();
    let mut injected = 0u64;
    for seed in start..start + count {
        let params = Params {
            seed,
            steps: 300,
            faults: FaultChoice::Seeded,
            record: false,
        };
        let a = run(&params);
        let b = run(&params);
        injected += a.injected.values().sum::<u64>();
        if a.output_hash != b.output_hash {
            failures.push(format!(
                "seed {seed}: two runs differ ({:016x} vs {:016x})",
                a.output_hash, b.output_hash
            ));
        }
        if let Some(v) = a.violations.first() {
            failures.push(format!(
                "seed {seed}: {} violation(s), first: {}\n  reproduce: {}",
                a.violations.len(),
                v.lines().next().unwrap_or_default(),
                params.command()
            ));
        }
    }
    assert!(
        injected > count,
        "the swarm injects faults ({injected} in {count} runs)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_run_without_faults_attributes_every_change_to_its_user() {
    for seed in 1..=20 {
        let r = run(&Params {
            seed,
            steps: 200,
            faults: FaultChoice::Only(Vec::new()),
            record: false,
        });
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.commits > 0 && r.attribution.hit > 0, "seed {seed}: {r:?}");
        assert_eq!(
            (r.attribution.miss, r.attribution.wrong),
            (0, 0),
            "seed {seed}"
        );
    }
}

/// A Secret whose values alone change is a change in a repository that seals Secrets: the
/// checker judged sealed Secrets by their redacted files, took bob's new password for a no-op,
/// and called his commit and alice's after it wrong (seed 2722849, shrunk to 68 steps).
#[test]
fn a_sealed_secrets_value_change_is_its_writers_commit() {
    let r = run(&Params {
        seed: 2722849,
        steps: 68,
        faults: FaultChoice::Only(Vec::new()),
        record: false,
    });
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!((r.attribution.miss, r.attribution.wrong), (0, 0));
    assert!(r.attribution.hit > 20, "{r:?}");
}
