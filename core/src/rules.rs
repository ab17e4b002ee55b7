//! The rule store: WatchRules and ClusterWatchRules compiled for matching, and the destinations
//! (repository, branch, base folder) they route to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::{NamespacedName, OpSet, ResourceSelector};
use crate::ids::{normalize_base_folder, Gvr, Operation};
use crate::json::{Doc, NodeId};
use crate::selector::Selector;

/// Where matching objects are written: a branch of a GitRepoConfig's repository, under a folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    /// The GitRepoConfig.
    pub repo: NamespacedName,
    /// The branch.
    pub branch: String,
    /// The folder, normalised (no trailing slash; empty is the root).
    pub base_folder: String,
}

impl Destination {
    /// Builds a destination, normalising the folder.
    pub fn new(repo: NamespacedName, branch: &str, base_folder: &str) -> Self {
        Self {
            repo,
            branch: branch.into(),
            base_folder: normalize_base_folder(base_folder),
        }
    }
}

/// Which objects a compiled rule may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleReach {
    /// A WatchRule: namespaced objects of its own namespace only.
    OwnNamespace(String),
    /// A ClusterWatchRule entry with `scope: Cluster`.
    ClusterScoped,
    /// A ClusterWatchRule entry with `scope: Namespaced` and an optional namespace selector.
    Namespaced(Option<Selector>),
}

impl RuleReach {
    /// Whether a rule of this reach can select objects of a type that is `namespaced` (or
    /// cluster-scoped).
    pub fn reaches_scope(&self, namespaced: bool) -> bool {
        match self {
            RuleReach::ClusterScoped => !namespaced,
            RuleReach::OwnNamespace(_) | RuleReach::Namespaced(_) => namespaced,
        }
    }
}

/// One valid rule (a WatchRule, or one entry of a ClusterWatchRule), ready to match.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    /// Where it writes.
    pub destination: Arc<Destination>,
    /// Resources it selects.
    pub resources: Vec<ResourceSelector>,
    /// Operations it records.
    pub operations: OpSet,
    /// Object label selector.
    pub object_selector: Option<Selector>,
    /// Scope.
    pub reach: RuleReach,
}

/// What discovery says of a served type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// Whether a version wildcard selects this version ([`crate::io::ApiResource::preferred`]).
    pub preferred: bool,
}

/// Types a resource wildcard (`resource: "*"`) leaves out: they change all the time by design
/// (an Event per happening, a Lease per renewal, Endpoints and EndpointSlices per Pod change),
/// and a commit for each would bury every change a person made. A rule that names one of them
/// watches it.
pub(crate) const WILDCARD_EXCLUDED: [(&str, &str); 5] = [
    ("", "events"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("", "endpoints"),
    ("discovery.k8s.io", "endpointslices"),
];

/// Whether a resource wildcard leaves `gvr` out ([`WILDCARD_EXCLUDED`]).
pub(crate) fn wildcard_excludes(gvr: &Gvr) -> bool {
    WILDCARD_EXCLUDED
        .iter()
        .any(|&(g, r)| gvr.group == g && gvr.resource == r)
}

/// The legacy group a group wildcard (`group: "*"`) leaves out: every type it still serves
/// (Ingresses until 1.22) is served by another group too, with the same objects, which would
/// get a second file each. A rule that names the group watches it.
pub(crate) const GROUP_WILDCARD_EXCLUDED: &str = "extensions";

/// Whether `sel` selects `gvr`. A version wildcard selects only the version discovery prefers
/// (one object, one file: every served version of a type shows the same objects); of a type
/// discovery has not described (`served` is `None`: a stream some other rule names exactly), it
/// selects what is watched. A resource wildcard leaves out the churn types
/// ([`WILDCARD_EXCLUDED`]).
pub(crate) fn selector_selects(sel: &ResourceSelector, gvr: &Gvr, served: Option<Served>) -> bool {
    let version = if sel.version == "*" {
        served.is_none_or(|s| s.preferred)
    } else {
        sel.version == gvr.version
    };
    let resource = if sel.resource == "*" {
        !wildcard_excludes(gvr)
    } else {
        sel.resource == gvr.resource
    };
    let group = if sel.group == "*" {
        gvr.group != GROUP_WILDCARD_EXCLUDED
    } else {
        sel.group == gvr.group
    };
    group && version && resource
}

impl CompiledRule {
    /// Whether it can select objects of a type that is `namespaced` (or cluster-scoped).
    pub(crate) fn reaches_scope(&self, namespaced: bool) -> bool {
        self.reach.reaches_scope(namespaced)
    }

    /// Whether it selects `gvr`, as discovery describes it (`None`: not discovered, any scope).
    fn selects_type(&self, gvr: &Gvr, served: Option<Served>) -> bool {
        self.selects_gvr(gvr, served) && served.is_none_or(|s| self.reaches_scope(s.namespaced))
    }

    /// Whether this rule's resources select `gvr`, as discovery describes it.
    pub(crate) fn selects_gvr(&self, gvr: &Gvr, served: Option<Served>) -> bool {
        self.resources
            .iter()
            .any(|r| selector_selects(r, gvr, served))
    }
}

/// The facts about one object a rule looks at.
pub(crate) struct ObjectFacts<'a> {
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<&'a str>,
    /// `metadata.labels`.
    pub labels: &'a dyn Labels,
    /// The operation of a live change; `None` for a list's object, which every rule that selects
    /// it routes whatever its `operations` (a resync brings a folder to the cluster's state).
    pub op: Option<Operation>,
}

/// An object's labels, wherever they are read from.
pub(crate) trait Labels {
    /// The value of label `key`.
    fn label(&self, key: &str) -> Option<&str>;
}

/// The labels of an object read from its JSON tree: the `metadata.labels` node, if any.
pub(crate) struct DocLabels<'d, 's>(pub &'d Doc<'s>, pub Option<NodeId>);

impl Labels for DocLabels<'_, '_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.1.and_then(|l| self.0.get_str(l, key))
    }
}

/// All valid rules, indexed by the GVRs being watched.
#[derive(Debug, Default)]
pub(crate) struct RuleStore {
    rules: Vec<CompiledRule>,
    by_gvr: BTreeMap<Gvr, Vec<usize>>,
    dests_by_gvr: BTreeMap<Gvr, Vec<Arc<Destination>>>,
}

impl RuleStore {
    /// A store over the given rules (in a deterministic order chosen by the caller).
    pub(crate) fn new(rules: Vec<CompiledRule>) -> Self {
        Self {
            rules,
            by_gvr: BTreeMap::new(),
            dests_by_gvr: BTreeMap::new(),
        }
    }

    /// The compiled rules.
    pub(crate) fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// Every destination of a valid rule.
    pub(crate) fn destinations(&self) -> BTreeSet<Arc<Destination>> {
        self.rules.iter().map(|r| r.destination.clone()).collect()
    }

    /// The GVRs among `known` (discovered resources plus exact GVRs named by rules) that some rule
    /// selects. Wildcards only expand over discovered resources, and only over those of the scope
    /// the rule can reach: a `Namespaced` entry's `*` watches no cluster-scoped type. `discovered`
    /// describes each served resource.
    pub(crate) fn watched_gvrs(&self, discovered: &BTreeMap<Gvr, Served>) -> BTreeSet<Gvr> {
        let mut out: BTreeSet<Gvr> = discovered
            .iter()
            .filter(|(g, &s)| self.rules.iter().any(|r| r.selects_type(g, Some(s))))
            .map(|(g, _)| g.clone())
            .collect();
        for r in &self.rules {
            for sel in &r.resources {
                if sel.group != "*" && sel.version != "*" && sel.resource != "*" {
                    out.insert(Gvr::new(&sel.group, &sel.version, &sel.resource));
                }
            }
        }
        out
    }

    /// Builds the per-GVR index for the watched GVRs; call after [`Self::new`] and whenever the
    /// watched set changes.
    pub(crate) fn index(&mut self, watched: &BTreeSet<Gvr>, discovered: &BTreeMap<Gvr, Served>) {
        self.by_gvr = watched
            .iter()
            .map(|g| {
                let scope = discovered.get(g).copied();
                (
                    g.clone(),
                    (0..self.rules.len())
                        .filter(|&i| self.rules[i].selects_type(g, scope))
                        .collect(),
                )
            })
            .collect();
        self.dests_by_gvr = self
            .by_gvr
            .iter()
            .map(|(g, rules)| {
                let set: BTreeSet<&Arc<Destination>> =
                    rules.iter().map(|&i| &self.rules[i].destination).collect();
                (g.clone(), set.into_iter().cloned().collect())
            })
            .collect();
    }

    /// Whether any rule selects `gvr`.
    pub(crate) fn watches(&self, gvr: &Gvr) -> bool {
        self.by_gvr.get(gvr).is_some_and(|v| !v.is_empty())
    }

    /// Destinations fed by `gvr`'s stream, ordered.
    pub(crate) fn destinations_of_gvr(&self, gvr: &Gvr) -> &[Arc<Destination>] {
        self.dests_by_gvr.get(gvr).map_or(&[], Vec::as_slice)
    }

    /// The GVRs (among the watched ones) that feed `dest`.
    pub(crate) fn gvrs_of_destination(&self, dest: &Destination) -> BTreeSet<&Gvr> {
        self.by_gvr
            .iter()
            .filter(|(_, rules)| rules.iter().any(|&i| *self.rules[i].destination == *dest))
            .map(|(g, _)| g)
            .collect()
    }

    /// The destinations an object's change is routed to, deduplicated and ordered. `ns_labels` gives
    /// a namespace's labels for namespace selectors. (The core routes into buffers it reuses,
    /// [`Self::route_into`]; this is the tests' form.)
    #[cfg(test)]
    pub(crate) fn route<'s, 'n>(
        &'s self,
        gvr: &Gvr,
        obj: &ObjectFacts<'_>,
        ns_labels: impl Fn(&str) -> Option<&'n BTreeMap<String, String>>,
    ) -> Vec<&'s Arc<Destination>> {
        let in_namespace =
            |sel: &Selector, ns: &str| ns_labels(ns).is_some_and(|l| sel.matches_map(l));
        let mut out: Vec<_> = self.routed(gvr, obj, in_namespace).collect();
        out.sort();
        out.dedup();
        out
    }

    /// [`RuleStore::route`] into a caller's buffer (cleared first), so the hot path allocates
    /// nothing. `in_namespace` says whether a namespace selector selects a namespace (the caller
    /// may answer for a namespace whose labels it does not know yet).
    pub(crate) fn route_into(
        &self,
        gvr: &Gvr,
        obj: &ObjectFacts<'_>,
        in_namespace: impl Fn(&Selector, &str) -> bool,
        out: &mut Vec<Arc<Destination>>,
    ) {
        out.clear();
        out.extend(self.routed(gvr, obj, in_namespace).cloned());
        out.sort();
        out.dedup();
    }

    /// The destinations of every rule that selects the object, possibly repeated.
    fn routed<'s, 'o>(
        &'s self,
        gvr: &Gvr,
        obj: &'o ObjectFacts<'o>,
        in_namespace: impl Fn(&Selector, &str) -> bool + 'o,
    ) -> impl Iterator<Item = &'s Arc<Destination>> + 'o
    where
        's: 'o,
    {
        let candidates = self.by_gvr.get(gvr).map_or(&[][..], Vec::as_slice);
        candidates.iter().filter_map(move |&i| {
            let r = &self.rules[i];
            if obj.op.is_some_and(|op| !r.operations.contains(op)) {
                return None;
            }
            let in_reach = match (&r.reach, obj.namespace) {
                (RuleReach::OwnNamespace(own), Some(ns)) => own == ns,
                (RuleReach::ClusterScoped, None) => true,
                (RuleReach::Namespaced(None), Some(_)) => true,
                (RuleReach::Namespaced(Some(sel)), Some(ns)) => in_namespace(sel, ns),
                _ => false,
            };
            let selected = in_reach
                && r.object_selector
                    .as_ref()
                    .is_none_or(|s| s.matches(|k| obj.labels.label(k)));
            selected.then_some(&r.destination)
        })
    }

    /// Whether some rule selects `gvr` through a namespace selector (so namespaces must be watched).
    pub(crate) fn needs_namespace_labels(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.reach, RuleReach::Namespaced(Some(_))))
    }
}

#[cfg(test)]
mod tests {
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
}
