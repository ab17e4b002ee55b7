//! Replays the admission requests and watch streams recorded from a real kube-apiserver 1.20
//! (tests/fixtures/kube-apiserver-1.20/README.md tells the story), each admission before the watch
//! event it caused, and checks the commits the core plans.

mod common;

use common::*;
use gitops_reverser_core::admission::parse_review;
use gitops_reverser_core::io::{Input, WatchEvent};
use gitops_reverser_core::{split_watch_line, RawObject};

const ADMISSION: &str = include_str!("fixtures/kube-apiserver-1.20/admission.jsonl");
const WATCH_CM: &str = include_str!("fixtures/kube-apiserver-1.20/watch-configmaps.jsonl");
const WATCH_DEP: &str = include_str!("fixtures/kube-apiserver-1.20/watch-deployments.jsonl");

fn watch_event(line: &str) -> WatchEvent {
    let (kind, obj) = split_watch_line(line.as_bytes()).unwrap();
    match kind.as_str() {
        "DELETED" => WatchEvent::Delete(obj),
        _ => WatchEvent::Apply(obj),
    }
}

#[test]
fn recorded_history_yields_exactly_the_five_real_changes_with_their_authors() {
    let mut h = Harness::with_rule(
        &[("", "v1", "configmaps"), ("apps", "v1", "deployments")],
        "clusters/prod",
    );
    h.seed_empty();
    let adm: Vec<_> = ADMISSION
        .lines()
        .map(|l| Input::Admission(parse_review(l.as_bytes()).unwrap()))
        .collect();
    let cm: Vec<_> = WATCH_CM.lines().map(watch_event).collect();
    let dep: Vec<_> = WATCH_DEP.lines().map(watch_event).collect();
    let cm_gvr = gvr("", "v1", "configmaps");
    let dep_gvr = gvr("apps", "v1", "deployments");
    // The real order: each admission reached the webhook before the watch event it caused.
    h.input(adm[0].clone()); // CREATE alice
    h.input(Input::Watch(cm_gvr.clone(), cm[0].clone())); // ADDED 202
    h.input(adm[1].clone()); // UPDATE bob (base 202)
    h.input(Input::Watch(cm_gvr.clone(), cm[1].clone())); // MODIFIED 203
    h.input(adm[2].clone()); // UPDATE alice label (base 203)
    h.input(Input::Watch(cm_gvr.clone(), cm[2].clone())); // MODIFIED 204
    h.input(adm[3].clone()); // CREATE deployment alice
    h.input(Input::Watch(dep_gvr.clone(), dep[0].clone())); // ADDED 205
    for i in 0..4 {
        h.input(adm[4 + i].clone()); // server-side-apply migration by bob, content no-op
        h.input(Input::Watch(cm_gvr.clone(), cm[3 + i].clone())); // MODIFIED 206..209
    }
    h.input(adm[8].clone()); // dry-run CREATE: no event follows
    h.input(adm[9].clone()); // DELETE alice (base 209)
    h.input(Input::Watch(cm_gvr.clone(), cm[7].clone())); // DELETED 210
    let commits = h.flush_and_push();
    let summary: Vec<(String, String)> = commits
        .iter()
        .map(|c| {
            (
                c.author.name.clone(),
                c.message.lines().next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "alice".into(),
                "[CREATE] v1/configmaps/team-a/app-config".into()
            ),
            (
                "bob".into(),
                "[UPDATE] v1/configmaps/team-a/app-config".into()
            ),
            (
                "alice".into(),
                "[UPDATE] v1/configmaps/team-a/app-config".into()
            ),
            (
                "alice".into(),
                "[CREATE] apps/v1/deployments/team-a/web".into()
            ),
            (
                "alice".into(),
                "[DELETE] v1/configmaps/team-a/app-config".into()
            ),
        ]
    );
    let a = h.core.attribution_counters();
    assert_eq!(
        (
            a.exact_total,
            a.miss_total,
            a.noop_skipped_total,
            a.dry_run_skipped_total
        ),
        (5, 0, 4, 1)
    );
    let first = &commits[0].writes[0];
    assert_eq!(
        first.0,
        "clusters/prod/v1/configmaps/team-a/app-config.yaml"
    );
    insta::assert_snapshot!(String::from_utf8(first.1.as_ref().unwrap().render().to_vec()).unwrap(), @r#"
    apiVersion: v1
    kind: ConfigMap
    metadata:
      annotations:
        owner: payments
      labels:
        app: shop
      name: app-config
      namespace: team-a
    data:
      FEATURE_X: "true"
      LOG_LEVEL: info
    "#);
    assert_eq!(
        commits[4].writes,
        vec![(
            "clusters/prod/v1/configmaps/team-a/app-config.yaml".to_string(),
            None
        )]
    );
}

#[test]
fn admission_and_watch_shapes_of_one_object_have_identical_canonical_bytes() {
    use gitops_reverser_core::sanitized_bytes;
    use gitops_reverser_core::TypeRules;
    let reqs: Vec<_> = ADMISSION
        .lines()
        .map(|l| parse_review(l.as_bytes()).unwrap())
        .collect();
    let canon = |o: RawObject| sanitized_bytes(o.as_bytes(), TypeRules::Plain).unwrap();
    let added = split_watch_line(WATCH_CM.lines().next().unwrap().as_bytes())
        .unwrap()
        .1;
    let added_value = added.to_value().unwrap();
    assert!(
        added_value["metadata"]["resourceVersion"].is_string()
            && added_value["metadata"]["managedFields"].is_array()
    );
    // admission CREATE `object` (no resourceVersion) vs the watch ADDED object (server fields added)
    assert_eq!(canon(reqs[0].object.clone().unwrap()), canon(added));
    // admission DELETE `oldObject` (rv 209) vs the watch DELETED object (rv 210)
    let deleted = split_watch_line(WATCH_CM.lines().last().unwrap().as_bytes())
        .unwrap()
        .1;
    assert_eq!(canon(reqs[9].old_object.clone().unwrap()), canon(deleted));
    // the four migration updates change nothing once sanitized
    for r in &reqs[4..8] {
        assert_eq!(
            canon(r.object.clone().unwrap()),
            canon(r.old_object.clone().unwrap())
        );
    }
}
