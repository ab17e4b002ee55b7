//! What one tenant's custom resources can cost everyone else: bounded, never a panic.

mod common;

use common::{gvr, Harness};
use gitops_reverser_core::config::{
    ClusterWatchRuleSpec, CrRef, NamespacedName, WatchRuleSpec, CLUSTER_RULE_ENTRIES_MAX,
    RESOURCES_PER_RULE_MAX,
};
use gitops_reverser_core::io::{ApiResource, Input};
use gitops_reverser_core::limits::UNSERVED_TYPES_MAX;
use serde_json::json;

fn discovery() -> Input {
    Input::ApiResources(vec![ApiResource {
        gvr: gvr("", "v1", "configmaps"),
        namespaced: true,
        kind: "ConfigMap".into(),
        preferred: true,
    }])
}

/// A WatchRule `rule-{n}` in team-a naming `count` made-up types.
fn made_up_rule(h: &mut Harness, n: usize, count: usize) -> CrRef {
    let resources: Vec<_> = (0..count)
        .map(|i| json!({"group": "made.up", "version": "v1", "resource": format!("r{n}x{i}")}))
        .collect();
    let spec: WatchRuleSpec = serde_json::from_value(json!({
        "gitRepoConfigRef": "my-repo", "baseFolder": format!("t{n}"), "resources": resources}))
    .unwrap();
    let name = NamespacedName::new("team-a", &format!("rule-{n}"));
    h.input(Input::WatchRule(name.clone(), Some(spec)));
    CrRef::WatchRule(name)
}

fn made_up_watched(h: &Harness) -> usize {
    h.core
        .watched()
        .iter()
        .filter(|g| g.group == "made.up")
        .count()
}

#[test]
fn types_a_rule_names_that_are_not_served_are_not_watched_once_discovery_is_in() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.input(discovery());
    for n in 0..5 {
        made_up_rule(&mut h, n, RESOURCES_PER_RULE_MAX);
    }
    assert_eq!(made_up_watched(&h), 0);
    assert!(h.core.watched().contains(&gvr("", "v1", "configmaps")));
}

#[test]
fn before_discovery_only_a_bounded_number_of_unserved_types_is_watched() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    for n in 0..(2 * UNSERVED_TYPES_MAX / RESOURCES_PER_RULE_MAX + 1) {
        made_up_rule(&mut h, n, RESOURCES_PER_RULE_MAX);
    }
    assert!(
        made_up_watched(&h) < UNSERVED_TYPES_MAX,
        "{}",
        made_up_watched(&h)
    );
    // Discovery in: they go, what is served stays.
    h.input(discovery());
    assert!(h.core.watched().contains(&gvr("", "v1", "configmaps")));
}

#[test]
fn a_rule_over_the_resource_entry_limit_says_so_and_watches_nothing() {
    let mut h = Harness::with_rule(&[("", "v1", "configmaps")], "prod");
    h.input(discovery());
    let cr = made_up_rule(&mut h, 1, RESOURCES_PER_RULE_MAX + 1);
    let conds = h.core.status(&cr).unwrap();
    assert_eq!(conds[0].reason, "TooManyResources", "{conds:?}");
    assert!(conds[0].message.contains("at most 100"));

    let entries: Vec<_> = (0..=CLUSTER_RULE_ENTRIES_MAX)
        .map(|_| json!({"resources": [{"group": "", "version": "v1", "resource": "configmaps"}], "scope": "Namespaced"}))
        .collect();
    let spec: ClusterWatchRuleSpec = serde_json::from_value(json!({
        "gitRepoConfigRef": {"namespace": "team-a", "name": "my-repo"},
        "baseFolder": "cluster", "rules": entries}))
    .unwrap();
    h.input(Input::ClusterWatchRule("all".into(), Some(spec)));
    let conds = h
        .core
        .status(&CrRef::ClusterWatchRule("all".into()))
        .unwrap();
    assert_eq!(conds[0].reason, "TooManyResources", "{conds:?}");
}

#[test]
fn a_cluster_rule_may_write_only_through_a_gitrepoconfig_in_a_trusted_namespace() {
    let config = gitops_reverser_core::CoreConfig {
        trusted_namespaces: Some(["ops".to_string()].into()),
        ..Default::default()
    };
    // The harness's GitRepoConfig is in team-a, which a tenant controls.
    let mut h = Harness::with_config(config, &[("", "v1", "configmaps")], "prod");
    h.input(discovery());
    let spec: ClusterWatchRuleSpec = serde_json::from_value(json!({
        "gitRepoConfigRef": {"namespace": "team-a", "name": "my-repo"},
        "baseFolder": "cluster",
        "rules": [{"resources": [{"group": "rbac.authorization.k8s.io", "version": "v1", "resource": "clusterroles"}]}]}))
    .unwrap();
    h.input(Input::ClusterWatchRule("mirror".into(), Some(spec)));
    let conds = h
        .core
        .status(&CrRef::ClusterWatchRule("mirror".into()))
        .unwrap();
    assert_eq!(conds[0].reason, "UntrustedNamespace", "{conds:?}");
    assert!(conds[0].message.contains("trusted: ops"), "{conds:?}");
    assert!(!h
        .core
        .destinations()
        .iter()
        .any(|d| d.base_folder == "cluster"));
}
