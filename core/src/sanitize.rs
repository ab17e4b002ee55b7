//! Sanitization by denylist: remove known server-set noise, keep everything else.
//!
//! An allowlist would drop real configuration of kinds it does not know (CRDs, StorageClass
//! `provisioner`, …), so only the fields listed below are removed. Secrets' values are
//! redacted so they never reach Git.

use serde::{Deserialize, Serialize};

use crate::json::{Doc, Kind, NodeId, REDACTED as REDACT, REMOVED};
pub use crate::type_rules::TypeRules;

/// What happens to `v1` Secrets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretPolicy {
    /// Keep the keys, replace every value with `<redacted>` (the default).
    #[default]
    Redact,
    /// Never write Secrets at all.
    Exclude,
}

/// The value written in place of every Secret value.
pub(crate) const REDACTED: &str = "<redacted>";

/// `metadata` fields the server sets, always removed.
const METADATA_REMOVED: [&str; 9] = [
    "managedFields",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "ownerReferences",
];

/// Annotation key prefixes removed (tooling bookkeeping, controller state).
const ANNOTATION_PREFIXES_REMOVED: [&str; 5] = [
    "control-plane.alpha.kubernetes.io/",
    "deployment.kubernetes.io/",
    "autoscaling.alpha.kubernetes.io/",
    "kustomize.toolkit.fluxcd.io/",
    "applyset.kubernetes.io/",
];

/// Annotation keys removed exactly.
const ANNOTATIONS_REMOVED: [&str; 4] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "argocd.argoproj.io/tracking-id",
    "argocd.argoproj.io/installation-id",
    "kcp.io/cluster",
];

/// Label key prefixes removed.
const LABEL_PREFIXES_REMOVED: [&str; 3] = [
    "kustomize.toolkit.fluxcd.io/",
    "kro.run/",
    "applyset.kubernetes.io/",
];

/// Service `spec` fields the cluster allocates.
const SERVICE_SPEC_REMOVED: [&str; 6] = [
    "clusterIP",
    "clusterIPs",
    "healthCheckNodePort",
    "ipFamilies",
    "ipFamilyPolicy",
    "internalTrafficPolicy",
];

/// Marks server-set noise and values equal to their defaults ([`crate::defaults`]) removed and
/// Secret values redacted; [`crate::canonical`] writes the result. Nothing is copied or freed.
pub(crate) fn sanitize(doc: &mut Doc, rules: TypeRules) {
    sanitize_keeping_defaults(doc, rules);
    crate::defaults::omit(doc, rules);
}

/// [`sanitize`] without leaving defaults out: a repository's `spec.output.defaults: Keep`.
pub(crate) fn sanitize_keeping_defaults(doc: &mut Doc, rules: TypeRules) {
    let root = Doc::ROOT;
    let [status, meta] = doc.lookup(root, ["status", "metadata"]);
    if let Some(status) = status {
        doc.mark_member(root, status, REMOVED);
    }
    if let Some(meta) = meta {
        sanitize_metadata(doc, meta);
    }
    let remove_under = |doc: &mut Doc, path: &[&str], fields: &[&str]| {
        if let Some(map) = doc.path(path) {
            for f in fields {
                remove(doc, map, f);
            }
        }
    };
    match rules {
        TypeRules::Secret => redact_secret(doc),
        TypeRules::Service => {
            // A headless Service's `None` is the user's, not an allocated address.
            let headless = doc
                .path(&["spec", "clusterIP"])
                .is_some_and(|ip| doc.str_is(ip, "None"));
            // `clusterIP` leads the list, so a headless Service's fields are the rest of it.
            const { assert!(matches!(SERVICE_SPEC_REMOVED[0].as_bytes(), b"clusterIP")) };
            let fields = match headless {
                true => &SERVICE_SPEC_REMOVED[1..],
                false => &SERVICE_SPEC_REMOVED[..],
            };
            remove_under(doc, &["spec"], fields)
        }
        TypeRules::Pod => remove_under(doc, &["spec"], &["nodeName"]),
        TypeRules::PersistentVolumeClaim => {
            remove_under(doc, &["spec"], &["volumeName"]);
            // The default mode; `Block` is the user's.
            if let Some(spec) = doc.path(&["spec"]) {
                if doc
                    .get(spec, "volumeMode")
                    .is_some_and(|m| doc.str_is(m, "Filesystem"))
                {
                    remove(doc, spec, "volumeMode");
                }
            }
        }
        TypeRules::Deployment
        | TypeRules::StatefulSet
        | TypeRules::DaemonSet
        | TypeRules::ReplicaSet
        | TypeRules::ReplicationController
        | TypeRules::Job => drop_template_timestamp(doc, &["spec", "template"]),
        TypeRules::CronJob => {
            drop_template_timestamp(doc, &["spec", "jobTemplate", "spec", "template"])
        }
        TypeRules::PodTemplate => drop_template_timestamp(doc, &["template"]),
        _ => {}
    }
}

/// Removes member `key` of `obj` if it is an object that has one; returns whether it did.
fn remove(doc: &mut Doc, obj: NodeId, key: &str) -> bool {
    let found = doc.get(obj, key);
    if let Some(c) = found {
        doc.mark_member(obj, c, REMOVED);
    }
    found.is_some()
}

fn sanitize_metadata(doc: &mut Doc, meta: NodeId) {
    if doc.kind(meta) != Kind::Object {
        return;
    }
    let [name, generate_name, annotations, labels] =
        doc.lookup(meta, ["name", "generateName", "annotations", "labels"]);
    // One pass over the members; marking every duplicate of a removed key is what removing the
    // one that counts (the last) means.
    mark_children(doc, meta, REMOVED, |doc, c| {
        let key = doc.key(c);
        METADATA_REMOVED.iter().any(|f| key == f.as_bytes())
    });
    if let Some(g) = generate_name {
        if name.and_then(|n| doc.str(n)).is_some_and(|n| !n.is_empty()) {
            doc.mark_member(meta, g, REMOVED);
        }
    }
    // Keys are compared as bytes: the listed ones are ASCII, so no other key can match them.
    prune_keys(doc, meta, annotations, |k| {
        ANNOTATIONS_REMOVED.iter().any(|a| k == a.as_bytes())
            || ANNOTATION_PREFIXES_REMOVED
                .iter()
                .any(|p| k.starts_with(p.as_bytes()))
    });
    prune_keys(doc, meta, labels, |k| {
        LABEL_PREFIXES_REMOVED
            .iter()
            .any(|p| k.starts_with(p.as_bytes()))
    });
}

/// Removes keys of the map `field` (a member of `meta`) for which `remove` holds; drops the map
/// if that left it empty.
fn prune_keys(doc: &mut Doc, meta: NodeId, field: Option<NodeId>, remove: impl Fn(&[u8]) -> bool) {
    invariant!(field.is_none_or(|f| f > meta && f < doc.subtree_end(meta)));
    let Some(map) = field.filter(|&m| doc.kind(m) == Kind::Object) else {
        return;
    };
    mark_children(doc, map, REMOVED, |doc, c| remove(doc.key(c)));
    if !doc.has_members(map) {
        doc.mark_member(meta, map, REMOVED);
    }
}

/// Pod templates carry `metadata.creationTimestamp: null` from the Go encoder; an empty template
/// `metadata` left behind goes too.
fn drop_template_timestamp(doc: &mut Doc, template_path: &[&str]) {
    let Some((template, meta)) = doc
        .path(template_path)
        .and_then(|t| Some((t, doc.get(t, "metadata")?)))
        .filter(|&(_, m)| doc.kind(m) == Kind::Object)
    else {
        return;
    };
    if remove(doc, meta, "creationTimestamp") && !doc.has_members(meta) {
        doc.mark_member(template, meta, REMOVED);
    }
}

/// Marks the children of `parent` for which `pick` holds with `flag`.
fn mark_children(doc: &mut Doc, parent: NodeId, flag: u8, pick: impl Fn(&Doc, NodeId) -> bool) {
    let (mut c, end) = (parent + 1, doc.subtree_end(parent));
    while c < end {
        if pick(doc, c) {
            doc.mark_member(parent, c, flag);
        }
        c = doc.subtree_end(c);
    }
}

fn redact_secret(doc: &mut Doc) {
    for field in ["data", "stringData"] {
        let Some(map) = doc
            .get(Doc::ROOT, field)
            .filter(|&m| doc.kind(m) == Kind::Object)
        else {
            continue;
        };
        mark_children(doc, map, REDACT, |_, _| true);
    }
}

/// `hash` (a Secret's content hash, over its redacted form) with its values mixed in. Redaction
/// hides them from the file, but a Secret whose values changed did change: a sealed file
/// ([`crate::seal`]) holds them, and an admission's content must still match its watch event's.
/// Files that redact compare by the redacted hash (`Change::redacted_hash` in the core).
pub(crate) fn with_secret_values(doc: &Doc, hash: u64) -> u64 {
    let mut bytes = Vec::new();
    for field in ["data", "stringData"] {
        let Some(map) = doc
            .get(Doc::ROOT, field)
            .filter(|&m| doc.kind(m) == Kind::Object)
        else {
            continue;
        };
        bytes.extend_from_slice(field.as_bytes());
        bytes.push(0);
        for c in doc.children(map) {
            bytes.extend_from_slice(doc.key(c));
            bytes.push(0);
            match doc.str(c) {
                Some(text) => bytes.extend_from_slice(text.as_bytes()),
                None => bytes.extend_from_slice(doc.raw(c)),
            }
            bytes.push(0);
        }
    }
    match bytes.is_empty() {
        true => hash,
        false => xxhash_rust::xxh64::xxh64(&bytes, hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Gvr;
    use serde_json::{json, Value};

    /// `v` sanitized as an object of `group`/`resource`.
    fn sanitized_as(group: &str, resource: &str, v: Value) -> Value {
        let rules = TypeRules::of(&Gvr::new(group, "v1", resource));
        let json = serde_json::to_vec(&v).unwrap();
        let bytes = crate::canonical::sanitized_bytes(&json, rules).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn sanitized(v: Value) -> Value {
        sanitized_as("", "configmaps", v)
    }

    #[test]
    fn server_set_metadata_and_status_are_removed() {
        let v = sanitized(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "t", "deletionTimestamp": "t", "deletionGracePeriodSeconds": 30,
                "selfLink": "/x", "ownerReferences": [{}], "managedFields": [{}], "generateName": "a-",
                "finalizers": ["keep/me"]},
            "status": {"phase": "x"}, "data": {"k": "v"}
        }));
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "n", "finalizers": ["keep/me"]}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn generate_name_survives_when_there_is_no_name() {
        let v = sanitized(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "job-"}}),
        );
        assert_eq!(v["metadata"]["generateName"], "job-");
    }

    #[test]
    fn noise_annotations_and_labels_go_user_ones_stay() {
        let v = sanitized(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                "kubectl.kubernetes.io/default-container": "app", "deployment.kubernetes.io/revision": "3",
                "argocd.argoproj.io/tracking-id": "x", "kcp.io/cluster": "c", "owner": "payments"},
            "labels": {"kustomize.toolkit.fluxcd.io/name": "x", "kro.run/owned": "true", "app": "shop"}}}),
        );
        assert_eq!(
            v["metadata"]["annotations"],
            json!({"kubectl.kubernetes.io/default-container": "app", "owner": "payments"})
        );
        assert_eq!(v["metadata"]["labels"], json!({"app": "shop"}));
    }

    #[test]
    fn maps_emptied_by_removal_are_dropped_but_user_empty_values_kept() {
        let v = sanitized_as(
            "apps",
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"template": {"metadata": {"creationTimestamp": null},
                "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}}}),
        );
        assert!(v["metadata"].get("annotations").is_none());
        assert!(v["spec"]["template"].get("metadata").is_none());
        assert_eq!(
            v["spec"]["template"]["spec"]["volumes"][0]["emptyDir"],
            json!({})
        );
    }

    #[test]
    fn unknown_top_level_fields_survive() {
        let sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
            "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}, "reclaimPolicy": "Retain"});
        assert_eq!(sanitized(sc.clone()), sc);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "immutable": true});
        assert_eq!(sanitized(cm.clone()), cm);
    }

    #[test]
    fn per_kind_allocated_fields_are_removed() {
        let svc = sanitized_as(
            "",
            "services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster", "healthCheckNodePort": 3,
                "ports": [{"port": 80, "protocol": "UDP"}]}}),
        );
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"port": 80, "protocol": "UDP"}]})
        );
        let pod = sanitized_as(
            "",
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}}),
        );
        assert_eq!(pod["spec"], json!({"containers": []}));
        let pvc = sanitized_as(
            "",
            "persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
            "spec": {"volumeName": "pv-1", "volumeMode": "Filesystem", "resources": {}}}),
        );
        assert_eq!(pvc["spec"], json!({"resources": {}}));
        let cron = sanitized_as(
            "batch",
            "cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"creationTimestamp": null, "labels": {"a": "b"}}}}}}}),
        );
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
            json!({"labels": {"a": "b"}})
        );
    }

    #[test]
    fn a_crd_kind_named_service_keeps_its_fields() {
        let v = json!({"apiVersion": "mesh.example.com/v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "keep"}});
        assert_eq!(sanitized_as("mesh.example.com", "services", v.clone()), v);
    }

    #[test]
    fn secret_values_are_redacted_keys_kept() {
        let v = sanitized_as(
            "",
            "secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "hunter2"}}),
        );
        assert_eq!(v["data"], json!({"password": REDACTED}));
        assert_eq!(v["stringData"], json!({"token": REDACTED}));
        assert!(!v.to_string().contains("hunter2") && !v.to_string().contains("aHVudGVyMg"));
    }

    #[test]
    fn a_secret_listed_without_api_version_and_kind_is_still_redacted() {
        // List items come without `apiVersion`/`kind`: the type is the stream's.
        let v = sanitized_as(
            "",
            "secrets",
            json!({"metadata": {"name": "s"}, "data": {"password": "aHVudGVyMg=="}}),
        );
        assert_eq!(v["data"], json!({"password": REDACTED}));
    }

    #[test]
    fn an_objects_own_kind_text_changes_nothing() {
        // A ConfigMap stream's object that calls itself a Secret keeps its data; a Secret stream's
        // object that calls itself a ConfigMap is redacted.
        let cm = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}, "data": {"k": "v"}});
        assert_eq!(sanitized(cm.clone()), cm);
        let secret = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        assert_eq!(
            sanitized_as("", "secrets", secret)["data"],
            json!({"k": REDACTED})
        );
    }

    #[test]
    fn only_workloads_lose_their_pod_templates_timestamp() {
        let v = json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"template": {"metadata": {"creationTimestamp": null}}}});
        assert_eq!(sanitized_as("example.com", "deployments", v.clone()), v);
    }
}
