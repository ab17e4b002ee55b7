//! The fuzz targets' bodies (`core/fuzz/`, cargo-fuzz), here so that the committed corpus is also
//! replayed by an ordinary test on every run (`core/tests/fuzz_corpus.rs`). Each takes arbitrary
//! bytes where the API server's would go; the property is that nothing panics, however wrong the
//! bytes are, and that a bad input loses only itself.

use crate::admission::{parse_review, review_uid};
use crate::config::NamespacedName;
use crate::core::{Core, CoreConfig};
use crate::ids::Gvr;
use crate::io::{Input, WatchEvent};
use crate::json::split_watch_line;
use crate::time::Now;

/// A core with a GitRepoConfig and a WatchRule on ConfigMaps, its stream listed empty.
fn configured() -> (Core, Gvr) {
    let mut core = Core::new(CoreConfig::default());
    let now = Now::at(0);
    let repo = NamespacedName::new("team-a", "repo");
    let spec = serde_json::json!({"repoURL": "https://git.example/r", "allowedBranches": ["main"]});
    core.handle(
        now,
        Input::GitRepoConfig(
            repo,
            Some(serde_json::from_value(spec).expect("a valid spec")),
        ),
    );
    let rule = serde_json::json!({"gitRepoConfigRef": "repo", "resources": [{"version": "v1", "resource": "configmaps"}]});
    core.handle(
        now,
        Input::WatchRule(
            NamespacedName::new("team-a", "cms"),
            Some(serde_json::from_value(rule).expect("a valid rule")),
        ),
    );
    let cms = Gvr::new("", "v1", "configmaps");
    core.handle(now, Input::Watch(cms.clone(), WatchEvent::Init));
    core.handle(now, Input::Watch(cms.clone(), WatchEvent::InitDone));
    (core, cms)
}

fn drain(core: &mut Core, at_ms: u64) {
    core.handle(Now::at(at_ms), Input::Tick);
    while core.poll_output().is_some() {}
}

/// An AdmissionReview body: parsed, and when it parses, fed to a core.
pub fn admission(data: &[u8]) {
    let _ = review_uid(data);
    if let Ok(req) = parse_review(data) {
        let (mut core, _) = configured();
        core.handle(Now::at(1), Input::Admission(req));
        drain(&mut core, 120_000);
    }
}

/// One line of a watch stream: split, and when it splits, fed to a core as the event it names,
/// then pushed.
pub fn watch_line(data: &[u8]) {
    let Ok((kind, object)) = split_watch_line(data) else {
        return;
    };
    let (mut core, cms) = configured();
    let event = match kind.as_str() {
        "DELETED" => WatchEvent::Delete(object),
        _ => WatchEvent::Apply(object),
    };
    core.handle(Now::at(1), Input::Watch(cms, event));
    drain(&mut core, 120_000);
}
