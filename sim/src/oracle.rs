//! The independent oracle: the file GitOps Reverser should write for an object, from the
//! sanitization lists of the product's specification, over plain `serde_json::Value`, with paths
//! from the specification's layout. It shares no code with the core's sanitizer, canonical
//! writer or YAML emitter: committed files are parsed back and compared as values, so formatting
//! is the emitter's business and content is the oracle's.
//!
//! The specification's lists (docs/simulation.md, "The oracle", states them too):
//! - always removed: `status`; `metadata.managedFields`, `uid`, `resourceVersion`, `generation`,
//!   `creationTimestamp`, `deletionTimestamp`, `deletionGracePeriodSeconds`, `selfLink`,
//!   `ownerReferences`; `metadata.generateName` when `name` is set;
//! - annotations: `kubectl.kubernetes.io/last-applied-configuration`, `argocd.argoproj.io/tracking-id`,
//!   `argocd.argoproj.io/installation-id`, `kcp.io/cluster`, and the prefixes
//!   `control-plane.alpha.kubernetes.io/`, `deployment.kubernetes.io/`,
//!   `autoscaling.alpha.kubernetes.io/`, `kustomize.toolkit.fluxcd.io/`, `applyset.kubernetes.io/`;
//! - labels by prefix: `kustomize.toolkit.fluxcd.io/`, `kro.run/`, `applyset.kubernetes.io/`;
//! - per type: a core Service's cluster-allocated `spec` fields, a Pod's `spec.nodeName`, a
//!   PersistentVolumeClaim's `spec.volumeName` and `spec.volumeMode: Filesystem`, a pod
//!   template's `metadata.creationTimestamp: null` (a headless Service keeps `clusterIP: None`);
//! - values equal to what the API server's defaulting would set ([`crate::defaults`]);
//! - maps that a removal left empty go; a core Secret's `data`/`stringData` values become
//!   `<redacted>`.

use gitops_reverser_core::Gvr;
use serde_json::{Map, Value};

const METADATA: [&str; 9] = [
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
const ANNOTATIONS: [&str; 4] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "argocd.argoproj.io/tracking-id",
    "argocd.argoproj.io/installation-id",
    "kcp.io/cluster",
];
const ANNOTATION_PREFIXES: [&str; 5] = [
    "control-plane.alpha.kubernetes.io/",
    "deployment.kubernetes.io/",
    "autoscaling.alpha.kubernetes.io/",
    "kustomize.toolkit.fluxcd.io/",
    "applyset.kubernetes.io/",
];
const LABEL_PREFIXES: [&str; 3] = [
    "kustomize.toolkit.fluxcd.io/",
    "kro.run/",
    "applyset.kubernetes.io/",
];
const SERVICE: [&str; 6] = [
    "clusterIP",
    "clusterIPs",
    "healthCheckNodePort",
    "ipFamilies",
    "ipFamilyPolicy",
    "internalTrafficPolicy",
];
/// What the product writes in place of a Secret's values.
const REDACTED: &str = "<redacted>";

/// The content of the file for `body`, an object of type `gvr` as the API server holds it.
pub fn expected(gvr: &Gvr, body: &Value) -> Value {
    expected_in(gvr, body, false)
}

/// [`expected`] in a repository that seals Secrets (`spec.encryption`): their values are kept
/// (the file holds them encrypted; the checkers read it decrypted).
pub fn expected_in(gvr: &Gvr, body: &Value, sealed: bool) -> Value {
    let mut v = body.clone();
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    obj.remove("status");
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in METADATA {
            meta.remove(f);
        }
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
        {
            meta.remove("generateName");
        }
        prune(meta, "annotations", |k| {
            ANNOTATIONS.contains(&k) || ANNOTATION_PREFIXES.iter().any(|p| k.starts_with(p))
        });
        prune(meta, "labels", |k| {
            LABEL_PREFIXES.iter().any(|p| k.starts_with(p))
        });
    }
    let spec_fields = |obj: &mut Map<String, Value>, fields: &[&str]| {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            for f in fields {
                spec.remove(*f);
            }
        }
    };
    match (gvr.group.as_str(), gvr.resource.as_str()) {
        ("", "services") => {
            let headless =
                obj.get("spec").and_then(|s| s.get("clusterIP")) == Some(&Value::from("None"));
            spec_fields(obj, if headless { &SERVICE[1..] } else { &SERVICE })
        }
        ("", "pods") => spec_fields(obj, &["nodeName"]),
        ("", "persistentvolumeclaims") => {
            spec_fields(obj, &["volumeName"]);
            let filesystem = obj.get("spec").and_then(|s| s.get("volumeMode"))
                == Some(&Value::from("Filesystem"));
            if filesystem {
                spec_fields(obj, &["volumeMode"]);
            }
        }
        ("", "secrets") if !sealed => redact(obj),
        ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets")
        | ("batch", "jobs")
        | ("", "replicationcontrollers") => template(obj, &["spec", "template"]),
        ("batch", "cronjobs") => template(obj, &["spec", "jobTemplate", "spec", "template"]),
        ("", "podtemplates") => template(obj, &["template"]),
        _ => {}
    }
    crate::defaults::leave_out(&gvr.group, &gvr.version, &gvr.resource, &mut v);
    v
}

/// The file's path: `{baseFolder}/{group}/{version}/{resource}/{namespace}/{name}.yaml`, the core
/// group and a cluster-scoped object's namespace left out.
pub fn path(folder: &str, gvr: &Gvr, namespace: Option<&str>, name: &str) -> String {
    let segments = [
        Some(folder).filter(|f| !f.is_empty()),
        Some(gvr.group.as_str()).filter(|g| !g.is_empty()),
        Some(gvr.version.as_str()),
        Some(gvr.resource.as_str()),
        namespace,
    ];
    let mut p: Vec<&str> = segments.into_iter().flatten().collect();
    let file = format!("{name}.yaml");
    p.push(&file);
    p.join("/")
}

/// A committed file's content as a value (`None` when it is not YAML).
pub fn parse(file: &[u8]) -> Option<Value> {
    serde_yaml::from_slice(file).ok()
}

/// Replaces a Secret's `data`/`stringData` values with what the product writes in their place.
pub fn redact(obj: &mut Map<String, Value>) {
    for field in ["data", "stringData"] {
        if let Some(m) = obj.get_mut(field).and_then(Value::as_object_mut) {
            for value in m.values_mut() {
                *value = Value::String(REDACTED.into());
            }
        }
    }
}

/// Removes the keys of map `field` that `remove` picks; the map too, if that left it empty.
fn prune(meta: &mut Map<String, Value>, field: &str, remove: impl Fn(&str) -> bool) {
    let Some(m) = meta.get_mut(field).and_then(Value::as_object_mut) else {
        return;
    };
    let before = m.len();
    m.retain(|k, _| !remove(k));
    if m.is_empty() && before > 0 {
        meta.remove(field);
    }
}

/// Drops the pod template's `metadata.creationTimestamp: null`, and its `metadata` if emptied.
fn template(obj: &mut Map<String, Value>, path: &[&str]) {
    let mut cur = obj;
    for p in path {
        match cur.get_mut(*p).and_then(Value::as_object_mut) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(meta) = cur.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta.get("creationTimestamp") == Some(&Value::Null) {
            meta.remove("creationTimestamp");
            if meta.is_empty() {
                cur.remove("metadata");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_follow_the_layout() {
        let cm = Gvr::new("", "v1", "configmaps");
        assert_eq!(path("", &cm, Some("n"), "a"), "v1/configmaps/n/a.yaml");
        let cr = Gvr::new("rbac.authorization.k8s.io", "v1", "clusterroles");
        assert_eq!(
            path("cluster", &cr, None, "system:x"),
            "cluster/rbac.authorization.k8s.io/v1/clusterroles/system:x.yaml"
        );
    }

    #[test]
    fn the_lists_apply_and_user_fields_stay() {
        let d = Gvr::new("apps", "v1", "deployments");
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "uid": "u", "labels": {"kro.run/x": "1"},
                "annotations": {"deployment.kubernetes.io/revision": "2", "team": "a"}},
            "spec": {"template": {"metadata": {"creationTimestamp": null}, "spec": {"x": {}}}},
            "status": {"ready": 1}});
        assert_eq!(
            expected(&d, &body),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "w", "annotations": {"team": "a"}},
                "spec": {"template": {"spec": {"x": {}}}}})
        );
    }

    #[test]
    fn the_core_yaml_reads_back_as_the_oracles_value() {
        let s = Gvr::new("", "v1", "secrets");
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "n",
            "resourceVersion": "5"}, "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"});
        let file = crate::cluster::file_of(&s, &body);
        assert_eq!(parse(&file), Some(expected(&s, &body)));
    }
}
