//! Every scripted scenario plays to a short, quiet recording whose replay lands commits.

use gitops_reverser_core::replay::replay;
use gitops_reverser_sim::scenarios;

#[test]
fn every_scenario_settles_and_commits() {
    assert!(scenarios::ALL.len() >= 14);
    for sc in scenarios::ALL {
        let rec = scenarios::play(sc);
        // A busy loop (a relist or read every few ms) would leave thousands of inputs.
        assert!(
            rec.entries.len() < 200,
            "{}: {} inputs",
            sc.name,
            rec.entries.len()
        );
        let replayed = replay(&rec);
        assert!(!replayed.commits.is_empty(), "{}: no commits", sc.name);
    }
}
