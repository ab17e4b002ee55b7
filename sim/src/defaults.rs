//! The oracle's own account of the API server's defaults (Kubernetes 1.20's `SetDefaults_*`
//! functions), written from those facts as a table of places and values over plain
//! `serde_json::Value`, apart from the core's table: where they disagree, a checker says so.
//!
//! A place is a path of keys, `*` standing for every element of an array. A value goes when it
//! equals its default there (and the rule's condition holds); an object the rule names as
//! "empty is default" goes when nothing is left in it.

use serde_json::{json, Map, Value};

/// A field and its default value.
type Default = (&'static str, fn() -> Value);

/// Unconditional defaults of a pod spec, relative to it.
const POD_SPEC: &[Default] = &[
    ("dnsPolicy", || json!("ClusterFirst")),
    ("restartPolicy", || json!("Always")),
    ("schedulerName", || json!("default-scheduler")),
    ("terminationGracePeriodSeconds", || json!(30)),
];

/// Unconditional defaults of a container, relative to it.
const CONTAINER: &[Default] = &[
    ("terminationMessagePath", || json!("/dev/termination-log")),
    ("terminationMessagePolicy", || json!("File")),
];

/// Unconditional defaults of a probe.
const PROBE: &[Default] = &[
    ("timeoutSeconds", || json!(1)),
    ("periodSeconds", || json!(10)),
    ("successThreshold", || json!(1)),
    ("failureThreshold", || json!(3)),
];

/// The Widget CRD's schema, as its versions declare it: `spec.size` defaults to `one`.
pub fn widget_schema() -> gitops_reverser_core::schema_defaults::SchemaDefaults {
    gitops_reverser_core::schema_defaults::SchemaDefaults::from_schema(&json!({"type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "string", "default": "one"}}}}}))
}

/// Leaves out what the API server would fill in for an object of `group`/`version`/`resource`.
pub fn leave_out(group: &str, version: &str, resource: &str, obj: &mut Value) {
    match (group, resource) {
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec(spec, true);
            }
        }
        ("", "podtemplates") => at(obj, &["template", "spec"], |s| pod_spec(s, false)),
        ("apps", "deployments") => {
            at(obj, &["spec"], |spec| {
                for (k, v) in [
                    ("replicas", json!(1)),
                    ("revisionHistoryLimit", json!(10)),
                    ("progressDeadlineSeconds", json!(600)),
                ] {
                    remove_eq(spec, k, &v);
                }
                strategy(
                    spec,
                    "strategy",
                    &[("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))],
                );
            });
            at(obj, &["spec", "template", "spec"], |s| pod_spec(s, false));
        }
        ("apps", "daemonsets") => {
            at(obj, &["spec"], |spec| {
                remove_eq(spec, "revisionHistoryLimit", &json!(10));
                strategy(spec, "updateStrategy", &[("maxUnavailable", json!(1))]);
            });
            at(obj, &["spec", "template", "spec"], |s| pod_spec(s, false));
        }
        ("apps", "statefulsets") => {
            at(obj, &["spec"], |spec| {
                remove_eq(spec, "replicas", &json!(1));
                remove_eq(spec, "revisionHistoryLimit", &json!(10));
                remove_eq(spec, "podManagementPolicy", &json!("OrderedReady"));
                remove_eq(
                    spec,
                    "updateStrategy",
                    &json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                for t in elements(spec, "volumeClaimTemplates") {
                    if let Some(meta) = t.get_mut("metadata") {
                        remove_eq(meta, "creationTimestamp", &Value::Null);
                    }
                    remove_if_empty(t, "metadata");
                    at(t, &["spec"], |s| {
                        remove_eq(s, "volumeMode", &json!("Filesystem"))
                    });
                    remove_eq(t, "status", &json!({"phase": "Pending"}));
                }
            });
            at(obj, &["spec", "template", "spec"], |s| pod_spec(s, false));
        }
        ("apps", "replicasets") => {
            at(obj, &["spec"], |spec| {
                remove_eq(spec, "replicas", &json!(1))
            });
            at(obj, &["spec", "template", "spec"], |s| pod_spec(s, false));
        }
        ("batch", "jobs") => {
            at(obj, &["spec", "template", "spec"], |s| pod_spec(s, false));
            job(obj);
        }
        ("batch", "cronjobs") => {
            at(obj, &["spec"], |spec| {
                for (k, v) in [
                    ("concurrencyPolicy", json!("Allow")),
                    ("suspend", json!(false)),
                    ("successfulJobsHistoryLimit", json!(3)),
                    ("failedJobsHistoryLimit", json!(1)),
                ] {
                    remove_eq(spec, k, &v);
                }
                if let Some(t) = spec.get_mut("jobTemplate") {
                    remove_eq(t, "metadata", &json!({"creationTimestamp": null}));
                }
            });
            at(
                obj,
                &["spec", "jobTemplate", "spec", "template", "spec"],
                |s| pod_spec(s, false),
            );
        }
        ("", "secrets") => remove_eq(obj, "type", &json!("Opaque")),
        // The Widget CRD's schema default (every version): a widget's size is `one` unless set.
        ("example.com", "widgets") => at(obj, &["spec"], |s| remove_eq(s, "size", &json!("one"))),
        ("", "services") => service(obj),
        ("", "namespaces") => {
            at(obj, &["spec"], |spec| {
                remove_eq(spec, "finalizers", &json!(["kubernetes"]))
            });
            remove_if_empty(obj, "spec");
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let group = json!("rbac.authorization.k8s.io");
            for s in elements(obj, "subjects") {
                if matches!(
                    s.get("kind").and_then(Value::as_str),
                    Some("User" | "Group")
                ) {
                    remove_eq(s, "apiGroup", &group);
                }
            }
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            at(obj, &["spec"], |s| remove_eq(s, "minReplicas", &json!(1)))
        }
        ("networking.k8s.io" | "extensions", "ingresses") if version == "v1beta1" => {
            for rule in at_all(obj, &["spec", "rules"]) {
                if let Some(http) = rule.get_mut("http") {
                    for p in elements(http, "paths") {
                        remove_eq(p, "pathType", &json!("ImplementationSpecific"));
                    }
                }
            }
        }
        _ => {}
    }
}

fn pod_spec(spec: &mut Value, pod: bool) {
    for (k, v) in POD_SPEC {
        remove_eq(spec, k, &v());
    }
    remove_if_empty(spec, "securityContext");
    if let Some(name) = spec.get("serviceAccountName").cloned() {
        remove_eq(spec, "serviceAccount", &name);
    }
    if pod {
        remove_eq(spec, "enableServiceLinks", &json!(true));
        if spec.get("priorityClassName").is_none() {
            remove_eq(spec, "priority", &json!(0));
        }
        remove_eq(spec, "serviceAccountName", &json!("default"));
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in elements(spec, list) {
            container(c, pod);
        }
    }
    for v in elements(spec, "volumes") {
        for source in ["secret", "configMap", "downwardAPI", "projected"] {
            at(v, &[source], |s| remove_eq(s, "defaultMode", &json!(420)));
        }
        at(v, &["hostPath"], |h| remove_eq(h, "type", &json!("")));
    }
}

fn container(c: &mut Value, pod: bool) {
    for (k, v) in CONTAINER {
        remove_eq(c, k, &v());
    }
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    remove_eq(c, "imagePullPolicy", &json!(pull_policy(&image)));
    if pod {
        // A Pod's requests default to its limits, one resource at a time.
        if let Some(r) = c.get_mut("resources").and_then(Value::as_object_mut) {
            let limits = r.get("limits").cloned().unwrap_or(json!({}));
            if let Some(req) = r.get_mut("requests").and_then(Value::as_object_mut) {
                req.retain(|k, v| limits.get(k) != Some(v));
            }
            if r.get("requests").is_some_and(|q| q == &json!({})) {
                r.remove("requests");
            }
        }
    }
    remove_if_empty(c, "resources");
    for p in elements(c, "ports") {
        remove_eq(p, "protocol", &json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        at(c, &[probe], |p| {
            for (k, v) in PROBE {
                remove_eq(p, k, &v());
            }
            at(p, &["httpGet"], |g| {
                remove_eq(g, "path", &json!("/"));
                remove_eq(g, "scheme", &json!("HTTP"));
            });
        });
    }
    for e in elements(c, "env") {
        at(e, &["valueFrom", "fieldRef"], |f| {
            remove_eq(f, "apiVersion", &json!("v1"))
        });
    }
}

/// The image's default pull policy: `Always` when its tag is `latest`, or it has neither a tag
/// nor a digest; else `IfNotPresent`.
fn pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or("");
    let has_digest = image.contains('@');
    let last_component = without_digest.rsplit('/').next().unwrap_or("");
    match last_component.rsplit_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if has_digest || image.is_empty() => "IfNotPresent",
        None => "Always",
    }
}

fn service(obj: &mut Value) {
    at(obj, &["spec"], |spec| {
        let kind = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        remove_eq(spec, "type", &json!("ClusterIP"));
        remove_eq(spec, "sessionAffinity", &json!("None"));
        remove_eq(
            spec,
            "sessionAffinityConfig",
            &json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
        if kind == "NodePort" || kind == "LoadBalancer" {
            remove_eq(spec, "externalTrafficPolicy", &json!("Cluster"));
        }
        for p in elements(spec, "ports") {
            remove_eq(p, "protocol", &json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                remove_eq(p, "targetPort", &port);
            }
        }
    });
}

fn job(obj: &mut Value) {
    let name = obj.pointer("/metadata/name").cloned();
    let template_labels = obj.pointer("/spec/template/metadata/labels").cloned();
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    remove_eq(spec, "backoffLimit", &json!(6));
    let (c, p) = (
        spec.get("completions").cloned(),
        spec.get("parallelism").cloned(),
    );
    if c == Some(json!(1)) && p == Some(json!(1)) {
        remove_eq(spec, "completions", &json!(1));
        remove_eq(spec, "parallelism", &json!(1));
    } else if c.is_some() {
        remove_eq(spec, "parallelism", &json!(1));
    }
    if spec.get("manualSelector") == Some(&json!(true)) {
        return;
    }
    let Some(uid) = spec
        .pointer("/selector/matchLabels/controller-uid")
        .cloned()
    else {
        return;
    };
    remove_eq(
        spec,
        "selector",
        &json!({"matchLabels": {"controller-uid": uid}}),
    );
    if let Some(labels) = spec.pointer_mut("/template/metadata/labels") {
        remove_eq(labels, "controller-uid", &uid);
        if let Some(name) = &name {
            remove_eq(labels, "job-name", name);
        }
    }
    at(spec, &["template", "metadata"], |m| {
        remove_if_empty(m, "labels")
    });
    at(spec, &["template"], |t| remove_if_empty(t, "metadata"));
    if let (Some(labels), Some(meta)) = (template_labels, obj.get_mut("metadata")) {
        remove_eq(meta, "labels", &labels);
    }
}

/// A strategy whose type is `RollingUpdate` (or unset): `rollingUpdate`'s defaults, then the
/// type, then whatever is left empty.
fn strategy(spec: &mut Value, field: &str, rolling: &[(&str, Value)]) {
    let Some(s) = spec.get_mut(field) else { return };
    if !matches!(
        s.get("type").and_then(Value::as_str),
        None | Some("RollingUpdate")
    ) {
        return;
    }
    if let Some(r) = s.get_mut("rollingUpdate") {
        for (k, v) in rolling {
            remove_eq(r, k, v);
        }
    }
    remove_if_empty(s, "rollingUpdate");
    remove_eq(s, "type", &json!("RollingUpdate"));
    remove_if_empty(spec, field);
}

fn remove_eq(obj: &mut Value, key: &str, default: &Value) {
    if let Some(m) = obj.as_object_mut() {
        if m.get(key) == Some(default) {
            m.remove(key);
        }
    }
}

fn remove_if_empty(obj: &mut Value, key: &str) {
    remove_eq(obj, key, &Value::Object(Map::new()));
}

fn at(obj: &mut Value, path: &[&str], f: impl FnOnce(&mut Value)) {
    let mut cur = obj;
    for p in path {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if cur.is_object() {
        f(cur);
    }
}

fn elements<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn at_all<'a>(obj: &'a mut Value, path: &[&str]) -> impl Iterator<Item = &'a mut Value> {
    let mut cur = Some(obj);
    for p in path {
        cur = cur.and_then(|c| c.get_mut(*p));
    }
    cur.and_then(Value::as_array_mut).into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_defaulted_deployment_leaves_what_its_user_wrote() {
        let mut d = json!({"spec": {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"spec": {"dnsPolicy": "ClusterFirst", "securityContext": {},
                "containers": [{"name": "a", "image": "app:v1", "imagePullPolicy": "IfNotPresent", "resources": {}}]}}}});
        leave_out("apps", "v1", "deployments", &mut d);
        assert_eq!(
            d,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "app:v1"}]}}}})
        );
    }

    #[test]
    fn what_differs_from_a_default_stays() {
        let mut d = json!({"spec": {"replicas": 2, "strategy": {"type": "Recreate"},
            "template": {"spec": {"containers": [{"name": "a", "image": "app", "imagePullPolicy": "IfNotPresent"}]}}}});
        let before = d.clone();
        leave_out("apps", "v1", "deployments", &mut d);
        assert_eq!(d, before);
    }
}
