use super::*;
use crate::selector::LabelSelector;
use serde_json::{json, Map, Value};

impl Labels for Option<&Map<String, Value>> {
    fn label(&self, key: &str) -> Option<&str> {
        self.and_then(|l| l.get(key)).and_then(Value::as_str)
    }
}

fn dest(folder: &str) -> Destination {
    Destination::new(NamespacedName::new("team-a", "repo"), "main", folder)
}

fn rule(folder: &str, res: (&str, &str, &str), reach: RuleReach) -> CompiledRule {
    CompiledRule {
        destination: Arc::new(dest(folder)),
        resources: vec![ResourceSelector {
            group: res.0.into(),
            version: res.1.into(),
            resource: res.2.into(),
        }],
        operations: OpSet::ALL,
        object_selector: None,
        reach,
    }
}

/// A store watching `gvrs`, each served as its group's preferred version (namespaced unless
/// a rule needs it cluster-scoped: scope is left to the rules' tests that name it).
fn store(rules: Vec<CompiledRule>, gvrs: &[Gvr]) -> RuleStore {
    let mut s = RuleStore::new(rules);
    s.index(&gvrs.iter().cloned().collect(), &BTreeMap::new());
    s
}

fn store_served(rules: Vec<CompiledRule>, discovered: &BTreeMap<Gvr, Served>) -> RuleStore {
    let mut s = RuleStore::new(rules);
    let watched = s.watched_gvrs(discovered);
    s.index(&watched, discovered);
    s
}

fn facts<'a>(
    ns: Option<&'a str>,
    labels: &'a Option<&'a Map<String, Value>>,
    op: Operation,
) -> ObjectFacts<'a> {
    ObjectFacts {
        namespace: ns,
        labels,
        op: Some(op),
    }
}

fn no_ns(_: &str) -> Option<&'static BTreeMap<String, String>> {
    None
}

/// A served type as discovery describes it: the preferred version of its group.
fn served(namespaced: bool) -> Served {
    Served {
        namespaced,
        preferred: true,
    }
}

#[test]
fn wildcards_match_any_value_of_their_field() {
    let cm = Gvr::new("", "v1", "configmaps");
    let dep = Gvr::new("apps", "v1", "deployments");
    let s = store(
        vec![rule("a", ("*", "v1", "*"), RuleReach::Namespaced(None))],
        &[cm.clone(), dep.clone()],
    );
    assert!(s.watches(&cm) && s.watches(&dep));
    let discovered = [(cm.clone(), served(true)), (dep.clone(), served(true))].into();
    let s = store_served(
        vec![rule(
            "a",
            ("apps", "*", "deployments"),
            RuleReach::Namespaced(None),
        )],
        &discovered,
    );
    assert!(!s.watches(&cm) && s.watches(&dep));
}

#[test]
fn a_watch_rule_only_sees_its_own_namespace() {
    let cm = Gvr::new("", "v1", "configmaps");
    let s = store(
        vec![rule(
            "a",
            ("", "v1", "configmaps"),
            RuleReach::OwnNamespace("team-a".into()),
        )],
        std::slice::from_ref(&cm),
    );
    assert_eq!(
        s.route(&cm, &facts(Some("team-a"), &None, Operation::Create), no_ns)
            .len(),
        1
    );
    assert!(s
        .route(&cm, &facts(Some("team-b"), &None, Operation::Create), no_ns)
        .is_empty());
    assert!(s
        .route(&cm, &facts(None, &None, Operation::Create), no_ns)
        .is_empty());
}

#[test]
fn cluster_scope_and_namespaced_scope_are_kept_apart() {
    let nodes = Gvr::new("", "v1", "nodes");
    let s = store(
        vec![rule("c", ("", "v1", "*"), RuleReach::ClusterScoped)],
        std::slice::from_ref(&nodes),
    );
    assert_eq!(
        s.route(&nodes, &facts(None, &None, Operation::Update), no_ns)
            .len(),
        1
    );
    assert!(s
        .route(&nodes, &facts(Some("x"), &None, Operation::Update), no_ns)
        .is_empty());
}

#[test]
fn namespace_selector_uses_the_namespaces_labels() {
    let cm = Gvr::new("", "v1", "configmaps");
    let sel = Selector::compile(&LabelSelector {
        match_labels: [("env".into(), "prod".into())].into(),
        ..Default::default()
    })
    .unwrap();
    let s = store(
        vec![rule(
            "n",
            ("", "v1", "configmaps"),
            RuleReach::Namespaced(Some(sel)),
        )],
        std::slice::from_ref(&cm),
    );
    let prod: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
    let lookup = |ns: &str| if ns == "shop" { Some(&prod) } else { None };
    assert_eq!(
        s.route(&cm, &facts(Some("shop"), &None, Operation::Create), lookup)
            .len(),
        1
    );
    assert!(s
        .route(&cm, &facts(Some("dev"), &None, Operation::Create), lookup)
        .is_empty());
    assert!(s.needs_namespace_labels());
}

#[test]
fn operations_and_object_selectors_filter() {
    let cm = Gvr::new("", "v1", "configmaps");
    let mut r = rule("a", ("", "v1", "configmaps"), RuleReach::Namespaced(None));
    r.operations = OpSet::parse(&["CREATE".into()]).unwrap();
    r.object_selector = Some(
        Selector::compile(
            &serde_json::from_value(json!({"matchLabels": {"app": "shop"}})).unwrap(),
        )
        .unwrap(),
    );
    let s = store(vec![r], std::slice::from_ref(&cm));
    let shop = json!({"app": "shop"});
    let labels = &shop.as_object();
    assert_eq!(
        s.route(&cm, &facts(Some("n"), labels, Operation::Create), no_ns)
            .len(),
        1
    );
    assert!(s
        .route(&cm, &facts(Some("n"), labels, Operation::Delete), no_ns)
        .is_empty());
    assert!(s
        .route(&cm, &facts(Some("n"), &None, Operation::Create), no_ns)
        .is_empty());
}

#[test]
fn two_rules_to_one_destination_route_once_and_destinations_are_ordered() {
    let cm = Gvr::new("", "v1", "configmaps");
    let s = store(
        vec![
            rule("b", ("", "v1", "configmaps"), RuleReach::Namespaced(None)),
            rule("a", ("", "v1", "*"), RuleReach::Namespaced(None)),
            rule("a", ("", "v1", "configmaps"), RuleReach::Namespaced(None)),
        ],
        std::slice::from_ref(&cm),
    );
    let routed: Vec<_> = s
        .route(&cm, &facts(Some("n"), &None, Operation::Update), no_ns)
        .into_iter()
        .map(|d| d.base_folder.clone())
        .collect();
    assert_eq!(s.destinations_of_gvr(&cm).len(), 2);
    assert_eq!(routed, vec!["a", "b"]);
    assert_eq!(s.gvrs_of_destination(&dest("a")).len(), 1);
}

#[test]
fn exact_gvrs_are_watched_without_discovery_wildcards_need_it() {
    let s = RuleStore::new(vec![
        rule("a", ("", "v1", "configmaps"), RuleReach::Namespaced(None)),
        rule("b", ("apps", "*", "*"), RuleReach::Namespaced(None)),
    ]);
    let none = s.watched_gvrs(&BTreeMap::new());
    assert_eq!(none, [Gvr::new("", "v1", "configmaps")].into());
    let discovered = [
        (Gvr::new("apps", "v1", "deployments"), served(true)),
        (Gvr::new("batch", "v1", "jobs"), served(true)),
    ]
    .into();
    assert_eq!(s.watched_gvrs(&discovered).len(), 2);
}

#[test]
fn a_partly_wildcarded_selector_is_watched_only_through_discovery() {
    // `apps/*/deployments` names no one GVR: watched as written, it would start a stream for
    // a version called `*`.
    let s = RuleStore::new(vec![
        rule(
            "v",
            ("apps", "*", "deployments"),
            RuleReach::Namespaced(None),
        ),
        rule("r", ("apps", "v1", "*"), RuleReach::Namespaced(None)),
        rule("g", ("*", "v1", "configmaps"), RuleReach::Namespaced(None)),
    ]);
    assert!(s.watched_gvrs(&BTreeMap::new()).is_empty());
    let discovered = [(Gvr::new("apps", "v1", "deployments"), served(true))].into();
    assert_eq!(
        s.watched_gvrs(&discovered),
        [Gvr::new("apps", "v1", "deployments")].into()
    );
}

#[test]
fn a_wildcard_watches_only_the_types_of_the_scope_its_rule_reaches() {
    let s = RuleStore::new(vec![
        rule("ns", ("*", "*", "*"), RuleReach::Namespaced(None)),
        rule(
            "cl",
            ("rbac.authorization.k8s.io", "*", "*"),
            RuleReach::ClusterScoped,
        ),
    ]);
    let discovered: BTreeMap<Gvr, Served> = [
        (Gvr::new("", "v1", "configmaps"), served(true)),
        (Gvr::new("", "v1", "namespaces"), served(false)),
        (
            Gvr::new("rbac.authorization.k8s.io", "v1", "clusterroles"),
            served(false),
        ),
        (
            Gvr::new("rbac.authorization.k8s.io", "v1", "roles"),
            served(true),
        ),
    ]
    .into();
    let watched = s.watched_gvrs(&discovered);
    assert_eq!(
        watched
            .iter()
            .map(|g| g.resource.as_str())
            .collect::<Vec<_>>(),
        ["configmaps", "clusterroles", "roles"]
    );
    let mut s = s;
    s.index(&watched, &discovered);
    assert_eq!(
        s.destinations_of_gvr(&Gvr::new("rbac.authorization.k8s.io", "v1", "roles"))
            .len(),
        1,
        "roles feed the namespaced wildcard's folder only"
    );
}
#[test]
fn a_version_wildcard_selects_the_preferred_version_only() {
    let hpa = |v: &str| Gvr::new("autoscaling", v, "horizontalpodautoscalers");
    let discovered: BTreeMap<Gvr, Served> = [
        (hpa("v1"), served(true)),
        (
            hpa("v2beta1"),
            Served {
                namespaced: true,
                preferred: false,
            },
        ),
        (
            hpa("v2beta2"),
            Served {
                namespaced: true,
                preferred: false,
            },
        ),
    ]
    .into();
    let wildcard = store_served(
        vec![rule(
            "a",
            ("autoscaling", "*", "horizontalpodautoscalers"),
            RuleReach::Namespaced(None),
        )],
        &discovered,
    );
    assert_eq!(wildcard.watched_gvrs(&discovered), [hpa("v1")].into());
    assert!(wildcard.watches(&hpa("v1")) && !wildcard.watches(&hpa("v2beta2")));
    let explicit = store_served(
        vec![rule(
            "a",
            ("autoscaling", "v2beta2", "horizontalpodautoscalers"),
            RuleReach::Namespaced(None),
        )],
        &discovered,
    );
    assert_eq!(
        explicit.watched_gvrs(&discovered),
        [hpa("v2beta2")].into(),
        "an explicit version selects that version only"
    );
}

#[test]
fn a_resource_wildcard_leaves_out_the_churn_types_a_named_one_does_not() {
    let discovered: BTreeMap<Gvr, Served> = [
        (Gvr::new("", "v1", "configmaps"), served(true)),
        (Gvr::new("", "v1", "events"), served(true)),
        (Gvr::new("", "v1", "endpoints"), served(true)),
        (Gvr::new("events.k8s.io", "v1", "events"), served(true)),
        (
            Gvr::new("coordination.k8s.io", "v1", "leases"),
            served(true),
        ),
        (
            Gvr::new("discovery.k8s.io", "v1beta1", "endpointslices"),
            served(true),
        ),
    ]
    .into();
    let all = RuleStore::new(vec![rule(
        "a",
        ("*", "*", "*"),
        RuleReach::Namespaced(None),
    )]);
    assert_eq!(
        all.watched_gvrs(&discovered),
        [Gvr::new("", "v1", "configmaps")].into()
    );
    let named = RuleStore::new(vec![rule(
        "a",
        ("coordination.k8s.io", "*", "leases"),
        RuleReach::Namespaced(None),
    )]);
    assert_eq!(
        named.watched_gvrs(&discovered),
        [Gvr::new("coordination.k8s.io", "v1", "leases")].into()
    );
    let legacy = Gvr::new("extensions", "v1beta1", "ingresses");
    let ingress = ResourceSelector {
        group: "*".into(),
        version: "*".into(),
        resource: "ingresses".into(),
    };
    assert!(!selector_selects(&ingress, &legacy, Some(served(true))));
    let named = ResourceSelector {
        group: "extensions".into(),
        ..ingress
    };
    assert!(selector_selects(&named, &legacy, Some(served(true))));
    for (g, r) in WILDCARD_EXCLUDED {
        assert!(wildcard_excludes(&Gvr::new(g, "v1", r)), "{g}/{r}");
    }
}
