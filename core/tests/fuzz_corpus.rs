//! Every input of the committed fuzz corpus (`core/fuzz/corpus/`, grown by `scripts/fuzz`) goes
//! through the fuzz targets' bodies on every test run: what once crashed stays fixed. Also a few
//! shapes written by hand that a fuzzer finds slowly.

use std::path::Path;

use gitops_reverser_core::fuzz;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn every_admission_input_of_the_corpus_is_handled_without_a_panic() {
    for input in corpus("admission") {
        fuzz::admission(&input);
    }
}

#[test]
fn every_watch_line_of_the_corpus_is_handled_without_a_panic() {
    for input in corpus("watch_line") {
        fuzz::watch_line(&input);
    }
}

#[test]
fn hand_written_shapes_are_handled_without_a_panic() {
    let deep = "[".repeat(100_000);
    let shapes: Vec<Vec<u8>> = vec![
        deep.clone().into_bytes(),
        format!(r#"{{"type":"ADDED","object":{deep}}}"#).into_bytes(),
        br#"{"type":"ADDED","object":{"metadata":{"name":"..","namespace":"a/b"}}}"#.to_vec(),
        br#"{"type":"ADDED","object":{"metadata":{"name":"\u0000","namespace":"team-a"}}}"#.to_vec(),
        br#"{"type":"DELETED","object":{}}"#.to_vec(),
        br#"{"type":"ADDED","object":{"metadata":{"name":"x","namespace":"team-a","resourceVersion":"-1"},"data":{"k":"\ud800"}}}"#.to_vec(),
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"UPDATE","userInfo":{"username":"a"},"resource":{"group":"","version":"v1","resource":"configmaps"},"namespace":"team-a","name":"x","object":[],"oldObject":7}}"#.to_vec(),
        vec![0xff, 0xfe, b'{'],
    ];
    for s in &shapes {
        fuzz::admission(s);
        fuzz::watch_line(s);
    }
}
