//! Sanitization by denylist: remove known server-set noise, keep everything else.
//!
//! An allowlist would drop real configuration of kinds it does not know (CRDs, StorageClass
//! `provisioner`, …), so only the fields listed in REFERENCE.md are removed. Secrets' values are
//! redacted so they never reach Git.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happens to `v1` Secrets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretPolicy {
    /// Keep the keys, replace every value with [`REDACTED`] (the default).
    #[default]
    Redact,
    /// Never write Secrets at all.
    Exclude,
}

/// The value written in place of every Secret value.
pub const REDACTED: &str = "<redacted>";

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

/// Kinds of the built-in workload APIs whose `spec.template` is a pod template.
const POD_TEMPLATE_KINDS: [&str; 6] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "ReplicationController",
];

/// Whether `obj` is a core `v1` Secret.
pub fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Removes server-set noise from `obj` in place and redacts Secret values.
pub fn sanitize(obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    root.remove("status");
    let kind_rule = kind_rule(root);
    if let Some(Value::Object(meta)) = root.get_mut("metadata") {
        sanitize_metadata(meta);
    }
    match kind_rule {
        KindRule::None => {}
        KindRule::Remove(path, fields) => remove_fields(root, path, fields),
        KindRule::Redact => redact_secret(root),
        KindRule::TemplateTimestamp(path) => drop_template_timestamp(root, path),
    }
}

/// What a kind adds to the common rules; decided by borrow so sanitizing allocates nothing.
enum KindRule {
    None,
    Remove(&'static [&'static str], &'static [&'static str]),
    Redact,
    TemplateTimestamp(&'static [&'static str]),
}

fn kind_rule(root: &Map<String, Value>) -> KindRule {
    let kind = root.get("kind").and_then(Value::as_str).unwrap_or_default();
    let core_api = root.get("apiVersion").and_then(Value::as_str) == Some("v1");
    match (kind, core_api) {
        ("Service", true) => KindRule::Remove(&["spec"], &SERVICE_SPEC_REMOVED),
        ("Pod", true) => KindRule::Remove(&["spec"], &["nodeName"]),
        ("PersistentVolumeClaim", true) => {
            KindRule::Remove(&["spec"], &["volumeName", "volumeMode"])
        }
        ("Secret", true) => KindRule::Redact,
        ("CronJob", _) => KindRule::TemplateTimestamp(&["spec", "jobTemplate", "spec", "template"]),
        (k, _) if POD_TEMPLATE_KINDS.contains(&k) => {
            KindRule::TemplateTimestamp(&["spec", "template"])
        }
        ("PodTemplate", true) => KindRule::TemplateTimestamp(&["template"]),
        _ => KindRule::None,
    }
}

fn sanitize_metadata(meta: &mut Map<String, Value>) {
    for field in METADATA_REMOVED {
        meta.remove(field);
    }
    if meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        meta.remove("generateName");
    }
    prune_keys(meta, "annotations", |k| {
        ANNOTATIONS_REMOVED.contains(&k)
            || ANNOTATION_PREFIXES_REMOVED.iter().any(|p| k.starts_with(p))
    });
    prune_keys(meta, "labels", |k| {
        LABEL_PREFIXES_REMOVED.iter().any(|p| k.starts_with(p))
    });
}

/// Removes keys of `meta[field]` for which `remove` holds; drops the map if that left it empty.
fn prune_keys(meta: &mut Map<String, Value>, field: &str, remove: impl Fn(&str) -> bool) {
    let Some(Value::Object(map)) = meta.get_mut(field) else {
        return;
    };
    map.retain(|k, _| !remove(k));
    if map.is_empty() {
        meta.remove(field);
    }
}

fn get_path_mut<'a>(
    root: &'a mut Map<String, Value>,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = root;
    for seg in path {
        cur = cur.get_mut(*seg)?.as_object_mut()?;
    }
    Some(cur)
}

fn remove_fields(root: &mut Map<String, Value>, path: &[&str], fields: &[&str]) {
    if let Some(map) = get_path_mut(root, path) {
        for f in fields {
            map.remove(*f);
        }
    }
}

/// Pod templates carry `metadata.creationTimestamp: null` from the Go encoder; an empty template
/// `metadata` left behind goes too.
fn drop_template_timestamp(root: &mut Map<String, Value>, template_path: &[&str]) {
    let Some(template) = get_path_mut(root, template_path) else {
        return;
    };
    let Some(Value::Object(meta)) = template.get_mut("metadata") else {
        return;
    };
    if meta.remove("creationTimestamp").is_some() && meta.is_empty() {
        template.remove("metadata");
    }
}

fn redact_secret(root: &mut Map<String, Value>) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = root.get_mut(field) {
            for v in map.values_mut() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sanitized(mut v: Value) -> Value {
        sanitize(&mut v);
        v
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
        let v = sanitized(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"template": {"metadata": {"creationTimestamp": null},
                "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}}}));
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
        let svc = sanitized(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster", "healthCheckNodePort": 3,
                "ports": [{"port": 80, "protocol": "TCP"}]}}),
        );
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"port": 80, "protocol": "TCP"}]})
        );
        let pod = sanitized(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": []}}),
        );
        assert_eq!(pod["spec"], json!({"containers": []}));
        let pvc = sanitized(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
            "spec": {"volumeName": "pv-1", "volumeMode": "Filesystem", "resources": {}}}),
        );
        assert_eq!(pvc["spec"], json!({"resources": {}}));
        let cron = sanitized(
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
        assert_eq!(sanitized(v.clone()), v);
    }

    #[test]
    fn secret_values_are_redacted_keys_kept() {
        let v = sanitized(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "hunter2"}}),
        );
        assert_eq!(v["data"], json!({"password": REDACTED}));
        assert_eq!(v["stringData"], json!({"token": REDACTED}));
        assert!(!v.to_string().contains("hunter2") && !v.to_string().contains("aHVudGVyMg"));
    }
}
