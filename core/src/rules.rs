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
pub(crate) enum RuleReach {
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
    pub(crate) fn reaches_scope(&self, namespaced: bool) -> bool {
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
pub(crate) struct Served {
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
mod tests;
