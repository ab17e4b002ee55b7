//! The modelled cluster: resource types, live objects, and the history of every write.

use std::collections::BTreeMap;

use gitops_reverser_core::io::ApiResource;
use gitops_reverser_core::TypeRules;
use gitops_reverser_core::{Gvr, Operation};
use serde_json::{json, Map, Value};

/// One resource type the modelled API server serves.
#[derive(Clone, Debug)]
pub struct Kind {
    /// Its GVR.
    pub gvr: Gvr,
    /// `kind`.
    pub kind: &'static str,
    /// `apiVersion`.
    pub api_version: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether a controller writes its `status`.
    pub has_status: bool,
    /// Whether users write it (namespaces are fixed).
    pub written: bool,
    /// Whether the API server serves it now (a CRD installed; false before and after).
    pub served: bool,
    /// Its CRD is being deleted: served, but no new objects.
    pub removing: bool,
    /// Other versions the API server serves it at, none preferred (the same objects: a version
    /// wildcard must pick `gvr`'s alone, or each object gets a file per version).
    pub other_versions: &'static [&'static str],
}

/// The types: core and apps built-ins, a CRD, a cluster-scoped type, Secrets and the namespaces.
pub fn kinds() -> Vec<Kind> {
    let k = |g: &str, v: &str, r: &str, kind, api_version, namespaced, has_status, written| Kind {
        gvr: Gvr::new(g, v, r),
        kind,
        api_version,
        namespaced,
        has_status,
        written,
        served: true,
        removing: false,
        other_versions: &[],
    };
    vec![
        k("", "v1", "configmaps", "ConfigMap", "v1", true, false, true),
        k("", "v1", "secrets", "Secret", "v1", true, false, true),
        k(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            "apps/v1",
            true,
            true,
            true,
        ),
        // The CRD serves v1 (preferred: the storage version) and v1beta1.
        Kind {
            other_versions: &["v1beta1"],
            ..k(
                "example.com",
                "v1",
                "widgets",
                "Widget",
                "example.com/v1",
                true,
                true,
                true,
            )
        },
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            "rbac.authorization.k8s.io/v1",
            false,
            false,
            true,
        ),
        k(
            "",
            "v1",
            "namespaces",
            "Namespace",
            "v1",
            false,
            false,
            false,
        ),
    ]
}

/// Discovery as the core gets it: each served type at its preferred version, and at the other
/// versions it is served at.
pub fn api_resources(kinds: &[Kind]) -> Vec<ApiResource> {
    kinds
        .iter()
        .filter(|k| k.served)
        .flat_map(|k| {
            let at = |version: &str, preferred| ApiResource {
                gvr: Gvr::new(&k.gvr.group, version, &k.gvr.resource),
                namespaced: k.namespaced,
                kind: k.kind.into(),
                preferred,
            };
            std::iter::once(at(&k.gvr.version, true))
                .chain(k.other_versions.iter().map(move |v| at(v, false)))
        })
        .collect()
}

/// What the core hears of the API server's types, in the runtime's order: the schema defaults of
/// the CRD's versions (sent before the discovery that starts their streams), then discovery.
pub fn discovery_inputs(kinds: &[Kind]) -> Vec<gitops_reverser_core::io::Input> {
    use gitops_reverser_core::io::Input;
    let mut inputs: Vec<Input> = kinds
        .iter()
        .filter(|k| k.gvr.resource == "widgets")
        .flat_map(|k| {
            std::iter::once(k.gvr.version.as_str())
                .chain(k.other_versions.iter().map(|v| &**v))
                .map(move |v| {
                    let gvr = Gvr::new(&k.gvr.group, v, &k.gvr.resource);
                    Input::SchemaDefaults(gvr, k.served.then(crate::defaults::widget_schema))
                })
        })
        .collect();
    inputs.push(Input::ApiResources(api_resources(kinds)));
    inputs
}

/// The namespaces at the start and their `env` labels. They stay; `team-b` may be relabelled.
pub const NAMESPACES: [(&str, &str); 2] = [("team-a", "prod"), ("team-b", "dev")];

/// The namespace that is created and deleted during a run (with its objects).
pub const PASSING_NAMESPACE: &str = "team-c";

/// An object's key: kind index, namespace, name.
pub type ObjKey = (usize, Option<String>, String);

/// A live object as the server holds it.
#[derive(Clone, Debug)]
pub struct Obj {
    /// The full server object (uid, resourceVersion, managedFields, status, …).
    pub body: Value,
}

/// A rule's destination: repository URL, branch and base folder.
pub type Destination = (&'static str, &'static str, &'static str);

/// One write the cluster saw, persisted or not.
#[derive(Clone, Debug)]
pub struct WriteRecord {
    /// Simulated monotonic time of the write.
    pub at_ms: u64,
    /// Who made it.
    pub user: String,
    /// What the API server did.
    pub op: Operation,
    /// The content of the file the write leaves, from the independent oracle
    /// ([`crate::oracle::expected`]); `None` for a delete.
    pub file: Option<Value>,
    /// A Secret's file in a repository that seals Secrets, as it reads decrypted: its values
    /// kept ([`crate::oracle::expected_in`]). `None` for other types (their `file` holds) and
    /// in runs where no repository seals.
    pub sealed_file: Option<Value>,
    /// The destinations (url, branch, folder) whose rules select the object the write left; the
    /// file is in those folders and absent from every other.
    pub dests: Vec<Destination>,
    /// The destinations whose rules select the object but leave this write's operation out
    /// (`operations`): there it leaves the file as it was.
    pub held: Vec<Destination>,
    /// Destinations where it may leave its file or none: its namespace was relabelled into or
    /// out of their selection around it (before the object's next write, or shortly before this
    /// one), and the watch may show the write and the relabel in either order.
    pub moved: Vec<Destination>,
    /// Rejected after admission: never persisted.
    pub rejected: bool,
    /// When its admission reached the core (late ones later than `at_ms`); `None` when the webhook
    /// call was missed or the write made none. The core's record lives a TTL from here.
    pub admitted_ms: Option<u64>,
    /// When its record last reached a core again, handed from the window after a crash: the
    /// core's record then lives a TTL from here.
    pub redelivered_ms: Option<u64>,
    /// Made through a subresource whose admission the core does not record (`scale`): its
    /// commit is the fallback author's by design.
    pub via_subresource: bool,
    /// Admitted at another version than the one the core's stream shows it at (the CRD was
    /// upgraded in between, as for a delete a finalizer held across the upgrade): the record
    /// names another identifier and content, so its commit is the fallback author's (a known
    /// limitation, docs/operations.md).
    pub across_versions: bool,
}

/// Objects, the resourceVersion counter and per-identifier histories.
pub struct Cluster {
    /// The types.
    pub kinds: Vec<Kind>,
    /// Live objects.
    pub objects: BTreeMap<ObjKey, Obj>,
    rv: u64,
    uids: u64,
    /// Every write per identifier, in order.
    pub history: BTreeMap<String, Vec<WriteRecord>>,
    /// Per identifier: every time it was created, deleted or relabelled. Orphan safety needs
    /// "this object was there, selected, all along".
    pub changes: BTreeMap<String, Vec<u64>>,
}

/// The identifier of an object of `gvr`: group (unless core), version, resource, namespace, name.
fn identifier_of(gvr: &Gvr, namespace: Option<&str>, name: &str) -> String {
    let mut segments: Vec<&str> = Vec::with_capacity(5);
    if !gvr.group.is_empty() {
        segments.push(&gvr.group);
    }
    segments.extend([gvr.version.as_str(), gvr.resource.as_str()]);
    segments.extend(namespace);
    segments.push(name);
    segments.join("/")
}

/// The identifier of the object an admission request is for.
pub fn request_identifier(req: &gitops_reverser_core::admission::AdmissionRequest) -> String {
    identifier_of(&req.gvr, req.namespace.as_deref(), &req.name)
}

impl Cluster {
    /// The writes whose admission `req` is, admitted (reaching a core) at `admitted_ms`.
    pub fn writes_admitted<'a>(
        &'a mut self,
        req: &'a gitops_reverser_core::admission::AdmissionRequest,
        admitted_ms: u64,
    ) -> impl Iterator<Item = &'a mut WriteRecord> + 'a {
        let identifier = request_identifier(req);
        self.history
            .get_mut(&identifier)
            .into_iter()
            .flatten()
            .filter(move |w| w.admitted_ms == Some(admitted_ms) && w.user == req.username)
    }

    /// A cluster with the namespaces and no other objects.
    pub fn new() -> Self {
        let mut c = Self {
            kinds: kinds(),
            objects: BTreeMap::new(),
            rv: 100,
            uids: 0,
            history: BTreeMap::new(),
            changes: BTreeMap::new(),
        };
        let ns_kind = c.kind_index("namespaces");
        for (ns, env) in NAMESPACES {
            let body = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"env": env, "kubernetes.io/metadata.name": ns}}});
            c.persist_create((ns_kind, None, ns.into()), body, 0);
        }
        c
    }

    /// Index of the kind with this resource name.
    pub fn kind_index(&self, resource: &str) -> usize {
        self.kinds
            .iter()
            .position(|k| k.gvr.resource == resource)
            .expect("known kind")
    }

    /// Serves `kind` at `version` (preferred) and `others`, its objects shown at `version` from
    /// now on (a CRD upgrade: conversion changes `apiVersion`, not the resourceVersion).
    pub fn set_version(&mut self, kind: usize, version: &str, others: &'static [&'static str]) {
        let k = &mut self.kinds[kind];
        k.gvr = Gvr::new(&k.gvr.group, version, &k.gvr.resource);
        k.api_version = match (k.gvr.group.as_str(), version) {
            ("example.com", "v1") => "example.com/v1",
            ("example.com", "v1beta1") => "example.com/v1beta1",
            other => panic!("no apiVersion modelled for {other:?}"),
        };
        k.other_versions = others;
        let api_version = k.api_version;
        for (key, obj) in self.objects.iter_mut() {
            if key.0 == kind {
                obj.body["apiVersion"] = json!(api_version);
            }
        }
    }

    /// Copies every history and change list of an identifier under `old` (a prefix such as
    /// `example.com/v1beta1/widgets/`) to the same identifier under `new`, ahead of what is there.
    pub fn carry_history(&mut self, old: &str, new: &str) {
        let moved: std::collections::BTreeSet<(String, String)> = self
            .history
            .keys()
            .chain(self.changes.keys())
            .filter_map(|id| Some((id.clone(), format!("{new}{}", id.strip_prefix(old)?))))
            .collect();
        for (from, to) in moved {
            if let Some(h) = self.history.get(&from).cloned() {
                let e = self.history.entry(to.clone()).or_default();
                e.splice(0..0, h);
            }
            if let Some(c) = self.changes.get(&from).cloned() {
                let e = self.changes.entry(to).or_default();
                e.splice(0..0, c);
            }
        }
    }

    /// The identifier of an object key: `{group}/{version}/{resource}/{namespace}/{name}`, an
    /// empty group and namespace left out. Written here from the path format, not taken from the
    /// core, so that the checkers that compare paths do not agree with the core by construction.
    pub fn identifier(&self, key: &ObjKey) -> String {
        identifier_of(&self.kinds[key.0].gvr, key.1.as_deref(), &key.2)
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// A new uid. The API server assigns it before it calls admission, so a CREATE's admission
    /// request carries the uid its object will have (or would have had, if refused).
    pub fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("uid-{:06}", self.uids)
    }

    /// `body` with `metadata.uid` set to a new uid, as a CREATE reaches admission.
    pub fn with_new_uid(&mut self, mut body: Value) -> Value {
        let uid = self.next_uid();
        meta_mut(&mut body).insert("uid".into(), json!(uid));
        body
    }

    /// Stamps server fields onto a new object and stores it; returns the stored body. A uid
    /// already in `body` (assigned before admission) is kept.
    pub fn persist_create(&mut self, key: ObjKey, mut body: Value, at_ms: u64) -> Value {
        if body.pointer("/metadata/uid").is_none() {
            body = self.with_new_uid(body);
        }
        let rv = self.next_rv();
        let meta = meta_mut(&mut body);
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("creationTimestamp".into(), json!("2026-11-26T00:00:00Z"));
        meta.insert(
            "managedFields".into(),
            json!([{"manager": "kubectl-client-side-apply", "operation": "Update"}]),
        );
        let id = self.identifier(&key);
        self.changes.entry(id).or_default().push(at_ms);
        self.objects.insert(key, Obj { body: body.clone() });
        body
    }

    /// Stores a changed object (server fields carried over, new resourceVersion).
    pub fn persist_update(&mut self, key: &ObjKey, mut body: Value, at_ms: u64) -> Value {
        let old = &self.objects[key].body;
        let old_labels = old.pointer("/metadata/labels").cloned();
        let keep: Vec<(String, Value)> = ["uid", "creationTimestamp"]
            .iter()
            .filter_map(|f| {
                Some((
                    f.to_string(),
                    old.pointer(&format!("/metadata/{f}"))?.clone(),
                ))
            })
            .collect();
        let rv = self.next_rv();
        let meta = meta_mut(&mut body);
        for (f, v) in keep {
            meta.insert(f, v);
        }
        meta.insert("resourceVersion".into(), json!(rv));
        if body.pointer("/metadata/labels").cloned() != old_labels {
            let id = self.identifier(key);
            self.changes.entry(id).or_default().push(at_ms);
        }
        self.objects.get_mut(key).expect("live").body = body.clone();
        body
    }

    /// Removes an object; returns its last state with the deletion's resourceVersion.
    pub fn persist_delete(&mut self, key: &ObjKey, at_ms: u64) -> Value {
        let mut body = self.objects.remove(key).expect("live").body;
        let rv = self.next_rv();
        meta_mut(&mut body).insert("resourceVersion".into(), json!(rv));
        let id = self.identifier(key);
        self.changes.entry(id).or_default().push(at_ms);
        body
    }

    /// Appends to an identifier's history.
    pub fn record(&mut self, key: &ObjKey, write: WriteRecord) {
        let id = self.identifier(key);
        self.history.entry(id).or_default().push(write);
    }

    /// The live objects of one kind, in key order.
    pub fn list(&self, kind: usize) -> Vec<Value> {
        self.objects
            .range((kind, None, String::new())..)
            .take_while(|(k, _)| k.0 == kind)
            .map(|(_, o)| o.body.clone())
            .collect()
    }

    /// The namespaces objects may be written in now: live and not being deleted.
    pub fn open_namespaces(&self) -> Vec<String> {
        let ns_kind = self.kind_index("namespaces");
        self.list(ns_kind)
            .iter()
            .filter(|n| n.pointer("/metadata/deletionTimestamp").is_none())
            .filter_map(|n| n.pointer("/metadata/name")?.as_str().map(str::to_owned))
            .collect()
    }

    /// The `env` label of namespace `ns`, if it is live and has one.
    pub fn ns_env(&self, ns: Option<&str>) -> Option<&str> {
        let key = (self.kind_index("namespaces"), None, ns?.to_string());
        self.objects
            .get(&key)?
            .body
            .pointer("/metadata/labels/env")?
            .as_str()
    }

    /// The live objects of namespace `ns`, in key order.
    pub fn in_namespace(&self, ns: &str) -> Vec<ObjKey> {
        self.objects
            .keys()
            .filter(|k| k.1.as_deref() == Some(ns))
            .cloned()
            .collect()
    }

    /// Notes that every object of namespace `ns` changed selection at `at_ms` (its labels moved).
    pub fn touch_namespace(&mut self, ns: &str, at_ms: u64) {
        for key in self.in_namespace(ns) {
            let id = self.identifier(&key);
            self.changes.entry(id).or_default().push(at_ms);
        }
    }

    /// The live object at `identifier`, if any.
    pub fn by_identifier(&self, id: &str) -> Option<(&ObjKey, &Obj)> {
        self.objects.iter().find(|(k, _)| self.identifier(k) == id)
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

/// `metadata` of `body` as a map (created if missing).
pub fn meta_mut(body: &mut Value) -> &mut Map<String, Value> {
    body.as_object_mut()
        .expect("object")
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("metadata is a map")
}

/// The file GitOps Reverser should write for a server object of type `gvr`.
pub fn file_of(gvr: &Gvr, body: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(body).expect("a Value serializes");
    gitops_reverser_core::render_object(&json, TypeRules::of(gvr))
        .expect("a serialized Value is JSON")
}
