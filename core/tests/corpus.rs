//! Every recording in `corpus/` replayed into the core, its pushed history and final trees compared
//! with the reviewed snapshot in `tests/snapshots/`. A change of the core's behaviour shows here as
//! a readable diff of commits and files; review it, then accept it with `INSTA_UPDATE=always` (or
//! `cargo insta review`).

use gitops_reverser_core::record;
use gitops_reverser_core::replay::replay;

#[test]
fn every_corpus_recording_replays_to_its_reviewed_history() {
    insta::glob!("../../corpus", "*.jsonl", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let rec = record::read(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            rec.bad_lines.is_empty(),
            "{}: {:?}",
            path.display(),
            rec.bad_lines
        );
        insta::assert_snapshot!(replay(&rec).text());
    });
}
