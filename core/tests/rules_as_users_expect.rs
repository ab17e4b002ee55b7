//! Rules that mean what users expect: a version wildcard is one file per object, a resource
//! wildcard leaves out the churn types, and an entry that can select nothing, or a repository
//! that cannot take pushes, shows in the rule's status.

mod common;

use common::{gvr, repo_name, Harness};
use gitops_reverser_core::config::{ClusterWatchRuleSpec, Condition, CrRef, NamespacedName};
use gitops_reverser_core::io::{ApiResource, CredentialsVerdict, Input, Output, WatchEvent};
use gitops_reverser_core::Gvr;
use gitops_reverser_core::RawObject;
use serde_json::json;

fn hpa_gvr(version: &str) -> Gvr {
    gvr("autoscaling", version, "horizontalpodautoscalers")
}

/// Discovery of a 1.20 API server's HPAs, `preferred` the version a wildcard selects.
fn discovery(preferred: &str) -> Input {
    let mut list: Vec<ApiResource> = ["v1", "v2beta1", "v2beta2"]
        .into_iter()
        .map(|v| ApiResource {
            gvr: hpa_gvr(v),
            namespaced: true,
            kind: "HorizontalPodAutoscaler".into(),
            preferred: v == preferred,
        })
        .collect();
    for (g, v, r, k, namespaced) in [
        ("", "v1", "configmaps", "ConfigMap", true),
        ("", "v1", "events", "Event", true),
        ("coordination.k8s.io", "v1", "leases", "Lease", true),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
        ),
    ] {
        list.push(ApiResource {
            gvr: gvr(g, v, r),
            namespaced,
            kind: k.into(),
            preferred: true,
        });
    }
    Input::ApiResources(list)
}

fn hpa(version: &str, rv: u64) -> RawObject {
    json!({"apiVersion": format!("autoscaling/{version}"), "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "team-a", "uid": "u1", "resourceVersion": rv.to_string()},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "web"}}})
    .into()
}

fn list(h: &mut Harness, g: Gvr, objects: Vec<RawObject>) {
    h.input(Input::Watch(g.clone(), WatchEvent::Init));
    for o in objects {
        h.input(Input::Watch(g.clone(), WatchEvent::InitApply(o)));
    }
    h.input(Input::Watch(g, WatchEvent::InitDone));
}

fn last_watches(h: &Harness) -> Vec<String> {
    h.outputs
        .iter()
        .rev()
        .find_map(|o| match o {
            Output::EnsureWatches(w) => Some(w.iter().map(|g| g.to_string()).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

fn conditions(h: &Harness, cr: &CrRef) -> Vec<Condition> {
    h.core.status(cr).map(<[_]>::to_vec).unwrap_or_default()
}

/// A WatchRule on HPAs with the version left at `*`, discovery given, the HPA listed and pushed.
fn hpa_at_preferred_v1() -> Harness {
    let mut h = Harness::with_rule(&[("autoscaling", "*", "horizontalpodautoscalers")], "prod");
    h.input(discovery("v1"));
    list(&mut h, hpa_gvr("v1"), vec![hpa("v1", 10)]);
    h.answer_all();
    h.flush_and_push();
    h
}

#[test]
fn a_version_wildcard_writes_one_file_per_object_at_the_preferred_version() {
    let h = hpa_at_preferred_v1();
    assert_eq!(
        last_watches(&h),
        ["autoscaling/v1/horizontalpodautoscalers"]
    );
    assert_eq!(
        h.files.keys().collect::<Vec<_>>(),
        ["prod/autoscaling/v1/horizontalpodautoscalers/team-a/web.yaml"]
    );
}

#[test]
fn when_the_preferred_version_changes_the_files_move_in_one_commit() {
    let mut h = hpa_at_preferred_v1();
    let before = h.commits.len();
    h.input(discovery("v2beta2"));
    assert_eq!(
        last_watches(&h),
        ["autoscaling/v2beta2/horizontalpodautoscalers"]
    );
    list(&mut h, hpa_gvr("v2beta2"), vec![hpa("v2beta2", 10)]);
    h.answer_all();
    h.flush_and_push();
    let moved = &h.commits[before..];
    assert_eq!(moved.len(), 1, "one commit: {moved:#?}");
    let mut writes: Vec<(String, bool)> = moved[0]
        .writes
        .iter()
        .map(|(p, b)| (p.clone(), b.is_some()))
        .collect();
    writes.sort();
    assert_eq!(
        writes,
        [
            (
                "prod/autoscaling/v1/horizontalpodautoscalers/team-a/web.yaml".into(),
                false
            ),
            (
                "prod/autoscaling/v2beta2/horizontalpodautoscalers/team-a/web.yaml".into(),
                true
            ),
        ]
    );
    assert_eq!(
        h.files.keys().collect::<Vec<_>>(),
        ["prod/autoscaling/v2beta2/horizontalpodautoscalers/team-a/web.yaml"]
    );
}

#[test]
fn two_versions_of_one_type_in_a_rule_are_refused() {
    let mut h = Harness::with_rule(
        &[
            ("autoscaling", "v1", "horizontalpodautoscalers"),
            ("autoscaling", "v2beta2", "horizontalpodautoscalers"),
        ],
        "prod",
    );
    h.input(discovery("v1"));
    let c = conditions(&h, &CrRef::WatchRule(NamespacedName::new("team-a", "rule")));
    assert_eq!(
        (c[0].status, c[0].reason.as_str()),
        (false, "ConflictingVersions")
    );
    assert!(last_watches(&h).is_empty(), "{:?}", last_watches(&h));
}

#[test]
fn a_resource_wildcard_watches_no_events_and_no_leases() {
    let mut h = Harness::with_rule(&[("*", "*", "*")], "prod");
    h.input(discovery("v1"));
    assert_eq!(
        last_watches(&h),
        ["v1/configmaps", "autoscaling/v1/horizontalpodautoscalers"]
    );
}

fn cluster_rule(h: &mut Harness, entries: serde_json::Value) -> CrRef {
    let spec: ClusterWatchRuleSpec = serde_json::from_value(json!({
        "gitRepoConfigRef": {"namespace": "team-a", "name": "my-repo"},
        "baseFolder": "cluster", "rules": entries}))
    .unwrap();
    h.input(Input::ClusterWatchRule("all".into(), Some(spec)));
    CrRef::ClusterWatchRule("all".into())
}

#[test]
fn a_cluster_rule_entry_of_the_wrong_scope_says_so_and_the_rule_is_not_ready() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.input(discovery("v1"));
    // `scope` defaults to Cluster; ConfigMaps are namespaced.
    let cr = cluster_rule(
        &mut h,
        json!([{"resources": [{"group": "", "resource": "configmaps"}]}]),
    );
    let c = conditions(&h, &cr);
    assert_eq!((c[0].status, c[0].reason.as_str()), (false, "WrongScope"));
    assert_eq!(
        (c[1].type_.as_str(), c[1].status, c[1].reason.as_str()),
        ("ResourcesResolved", false, "WrongScope")
    );
    assert!(
        c[1].message.contains("scope: Namespaced"),
        "{}",
        c[1].message
    );
}

#[test]
fn a_partly_working_rule_is_ready_and_names_the_entry_that_selects_nothing() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.input(discovery("v1"));
    let cr = cluster_rule(
        &mut h,
        json!([{"resources": [
            {"group": "rbac.authorization.k8s.io", "resource": "clusterroles"},
            {"group": "example.com", "version": "v1", "resource": "widgets"}]}]),
    );
    let c = conditions(&h, &cr);
    assert!(c[0].status, "{c:?}");
    assert_eq!(
        (c[1].status, c[1].reason.as_str()),
        (false, "ResourceNotServed")
    );
    assert!(
        c[1].message.starts_with("rules[0].resources[1]: "),
        "{}",
        c[1].message
    );
}

#[test]
fn a_repository_whose_credentials_are_invalid_makes_its_rules_not_ready() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.input(discovery("v1"));
    let rule = CrRef::WatchRule(NamespacedName::new("team-a", "rule"));
    assert!(conditions(&h, &rule)[0].status);
    h.input(Input::Credentials(
        repo_name(),
        CredentialsVerdict::Invalid("Secret team-a/git-creds has no key `identity`".into()),
    ));
    let c = conditions(&h, &rule);
    assert_eq!(
        (c[0].status, c[0].reason.as_str()),
        (false, "GitRepoConfigNotReady")
    );
    assert!(
        c[0].message.contains("CredentialsInvalid"),
        "{}",
        c[0].message
    );
    assert!(
        last_watches(&h).contains(&"v1/configmaps".to_string()),
        "the rule keeps its streams: nothing is lost once the Secret is fixed"
    );
}

/// Found by the simulator's served-versions model: a new folder whose rule selects nothing served
/// (here a CRD not installed yet, named by the version wildcard) had no list to wait for, was
/// never read, and held back every push of its branch.
#[test]
fn a_rule_that_selects_nothing_yet_does_not_hold_back_its_branch() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.input(discovery("v1"));
    h.gvrs = vec![gvr("", "v1", "configmaps")];
    let spec: gitops_reverser_core::config::WatchRuleSpec = serde_json::from_value(json!({
        "gitRepoConfigRef": "my-repo", "baseFolder": "widgets",
        "resources": [{"group": "example.com", "resource": "widgets"}]}))
    .unwrap();
    h.input(Input::WatchRule(
        NamespacedName::new("team-a", "widgets"),
        Some(spec),
    ));
    h.seed_empty();
    h.input(Input::Watch(
        gvr("", "v1", "configmaps"),
        WatchEvent::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "namespace": "team-a", "uid": "u1", "resourceVersion": "5"},
                "data": {"k": "v"}})
            .into(),
        ),
    ));
    h.flush_and_push();
    assert_eq!(
        h.files.keys().collect::<Vec<_>>(),
        ["prod/v1/configmaps/team-a/a.yaml"]
    );
}
