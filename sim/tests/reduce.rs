//! Shrinking on recorded inputs keeps the failure and drops what it does not need.

use gitops_reverser_core::replay::replay;
use gitops_reverser_core::Operation;
use gitops_reverser_sim::cluster::WriteRecord;
use gitops_reverser_sim::reduce::{reduce, replay_violations, reproduces, signature, Truth};
use gitops_reverser_sim::scenarios;

/// A truth in which `user` made every write the replay committed: every other author is wrong.
fn everything_written_by(user: &str, rec: &gitops_reverser_core::record::Recording) -> Truth {
    let mut truth = Truth::new();
    for c in replay(rec).commits {
        let Some((op, ident)) = c.message.lines().next().unwrap().split_once("] ") else {
            continue;
        };
        let op = match op {
            "[CREATE" => Operation::Create,
            "[DELETE" => Operation::Delete,
            _ => Operation::Update,
        };
        // Selected in the folder of each file the commit wrote.
        let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
        for (path, text) in &c.writes {
            let folder = path
                .strip_suffix(&format!("{ident}.yaml"))
                .unwrap()
                .trim_end_matches('/');
            truth
                .entry(ident.to_string())
                .or_default()
                .push(WriteRecord {
                    at_ms: 0,
                    user: user.into(),
                    op,
                    file: text
                        .as_ref()
                        .map(|t| gitops_reverser_sim::oracle::parse(t.as_bytes()).unwrap()),
                    sealed_file: None,
                    dests: vec![(leak(&c.url), leak(&c.branch), leak(folder))],
                    rejected: false,
                    admitted_ms: None,
                    redelivered_ms: None,
                    via_subresource: false,
                    across_versions: false,
                    held: Vec::new(),
                    moved: Vec::new(),
                });
        }
    }
    truth
}

#[test]
fn a_wrong_author_survives_delta_debugging_on_far_fewer_inputs() {
    let sc = scenarios::ALL
        .iter()
        .find(|s| s.name == "rapid-changes-by-different-users")
        .unwrap();
    let rec = scenarios::play(sc);
    let truth = everything_written_by("bob", &rec);
    let violations = replay_violations(&rec, &truth);
    let first = violations
        .iter()
        .find(|v| v.contains("attributed to alice"))
        .expect("alice's commits are wrong against this truth");
    let sig = signature(first).unwrap();
    assert!(reproduces(&rec, &truth, &sig));

    let reduced = reduce(&rec, &truth, &sig, 10_000);
    assert!(reproduces(&reduced.recording, &truth, &sig));
    assert!(
        reduced.recording.entries.len() < rec.entries.len(),
        "{} of {} inputs left",
        reduced.recording.entries.len(),
        rec.entries.len()
    );
    // 1-minimal: no single input left can go.
    for i in 0..reduced.recording.entries.len() {
        let mut fewer = reduced.recording.clone();
        fewer.entries.remove(i);
        assert!(
            !reproduces(&fewer, &truth, &sig),
            "input {i} was not needed"
        );
    }
    // What is left reads back from its text.
    let text = reduced.recording.to_text().unwrap();
    let back = gitops_reverser_core::record::read(&text).unwrap();
    assert!(reproduces(&back, &truth, &sig));
}

#[test]
fn only_attribution_is_judged_on_replays() {
    assert_eq!(
        signature("[t=5 ms] https://git.sim/a.git main: v1/configmaps/x attributed to bob, who did not make that change (matched up to #0); file 00"),
        Some("https://git.sim/a.git main: v1/configmaps/x attributed to bob".into())
    );
    assert_eq!(
        signature("[t=5 ms] empty commit: \"[DELETE] v1/configmaps/x\" changes nothing"),
        None
    );
    assert_eq!(
        signature("https://git.sim/a.git main: apps/x.yaml has no live object"),
        None
    );
}

#[test]
fn a_recorded_run_replays_to_the_commits_the_world_saw() {
    use gitops_reverser_sim::swarm::{Fault, FaultChoice};
    use gitops_reverser_sim::{run, Params};
    // Every fault but the crash and the failover, whose in-flight pushes may land with no
    // result recorded.
    let faults: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| !matches!(f.name(), "crash" | "failover"))
        .collect();
    for seed in 1..=10 {
        let report = run(&Params {
            seed,
            steps: 150,
            faults: FaultChoice::Only(faults.clone()),
            record: true,
        });
        let rec = report.recording.as_deref().unwrap();
        let text = rec.to_text().unwrap();
        let back = gitops_reverser_core::record::read(&text).unwrap();
        assert!(back.bad_lines.is_empty());
        let replayed = replay(&back);
        assert_eq!(
            replayed.commits.len() as u64,
            report.commits,
            "seed {seed}: the replay's commits"
        );
        let v = replay_violations(&back, report.truth.as_deref().unwrap());
        assert!(v.is_empty(), "seed {seed}: {v:?}");
    }
}
