//! What users, service accounts and controllers do to the cluster.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::cluster::{Cluster, ObjKey};

/// People and service accounts that write objects.
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "system:serviceaccount:ci:deployer"];

/// The controller that writes `status` (through the status subresource: no webhook call).
pub const CONTROLLER: &str = "system:serviceaccount:kube-system:status-controller";

/// What Secrets hold, in plaintext: a set of their own, which no other object's content shares,
/// so the leak checker ([`crate::checks::secrets`]) can look for them anywhere.
pub const SECRET_VALUES: [&str; 3] = ["hunter2-q7x", "s3cr3t-k9w", "p4ss-z2m"];

/// Names the API server generates for a `generateName: job-` create (two, so that some are
/// written again by name and some re-created).
const GENERATED: [&str; 2] = ["job-x7k2p", "job-q9m4z"];

/// Names: a few hot ones (many writes collide on them) and a longer cold tail.
const HOT: [&str; 2] = ["web", "db"];
const COLD: usize = 12;

/// One thing that happens.
#[derive(Clone, Debug)]
pub enum Action {
    /// A user creates an object (updates it if it exists).
    Create(ObjKey, Value, &'static str),
    /// A user changes an object's content, labels or tooling annotations.
    Update(ObjKey, Value, &'static str),
    /// A user deletes an object.
    Delete(ObjKey, &'static str),
    /// A user deletes an object and creates it again at once (new uid).
    Recreate(ObjKey, Value, &'static str),
    /// A write that changes nothing but `managedFields` (kubectl's migration, a no-op re-apply).
    Noop(ObjKey, &'static str),
    /// The controller updates `status`.
    Status(ObjKey),
    /// A user scales a Deployment through the `scale` subresource.
    Scale(ObjKey, u64, &'static str),
    /// A dry-run write: admission only.
    DryRun(ObjKey, Value, &'static str),
    /// A rule is added or removed.
    ToggleRule,
}

/// The finalizer objects may carry; the modelled controller removes it once a delete began.
pub const FINALIZER: &str = "example.com/cleanup";

/// Draws the next action. `finalizers` is the chance that a new object carries [`FINALIZER`].
pub fn next(rng: &mut ChaCha8Rng, cluster: &Cluster, finalizers: f64) -> Action {
    let writable: Vec<usize> = (0..cluster.kinds.len())
        .filter(|&k| {
            let k = &cluster.kinds[k];
            k.written && k.served && !k.removing
        })
        .collect();
    let kind = writable[rng.gen_range(0..writable.len())];
    let k = &cluster.kinds[kind];
    let name = if rng.gen_bool(0.6) {
        HOT[rng.gen_range(0..HOT.len())].to_string()
    } else {
        // Names as real clusters have them: dots anywhere, colons in cluster-scoped RBAC names.
        match rng.gen_range(0..COLD) {
            n @ 0..=1 if !k.namespaced => format!("system:controller:obj-{n}"),
            n @ 2..=3 => format!("obj-{n}.example.com"),
            // Names the server generated: created by `generateName`, written by name after.
            n @ 4..=5 => GENERATED[n - 4].to_string(),
            n => format!("obj-{n}"),
        }
    };
    let open = cluster.open_namespaces();
    let ns = k
        .namespaced
        .then(|| open[rng.gen_range(0..open.len())].clone());
    let key: ObjKey = (kind, ns, name);
    let user = USERS[rng.gen_range(0..USERS.len())];
    let live = cluster.objects.get(&key).map(|o| o.body.clone());
    let roll = rng.gen_range(0..100);
    if let Some(b) = live.as_ref().filter(|b| terminating(b)) {
        // Being deleted: users delete it again, try to create its name anew (refused: the name
        // is still taken), or edit it (the API server allows that until the finalizers are gone;
        // the DELETED event then carries the edited version, not the one the DELETE was
        // admitted on).
        return match roll {
            0..=34 => Action::Delete(key, user),
            35..=69 => {
                let body = fresh(rng, cluster, &key, finalizers);
                Action::Create(key, body, user)
            }
            _ => Action::Update(key, mutate(rng, b.clone()), user),
        };
    }
    match (roll, live) {
        (0..=1, _) => Action::ToggleRule,
        (2..=4, live) => {
            let body = match live {
                Some(b) => mutate(rng, b),
                None => fresh(rng, cluster, &key, finalizers),
            };
            Action::DryRun(key, body, user)
        }
        (_, None) => {
            let body = fresh(rng, cluster, &key, finalizers);
            Action::Create(key, body, user)
        }
        (5..=14, Some(_)) => Action::Delete(key, user),
        (15..=19, Some(_)) => {
            let body = fresh(rng, cluster, &key, finalizers);
            Action::Recreate(key, body, user)
        }
        (20..=29, Some(_)) => Action::Noop(key, user),
        (30..=44, Some(_)) if k.has_status => Action::Status(key),
        (45..=49, Some(_)) if k.kind == "Deployment" => {
            Action::Scale(key, rng.gen_range(1..=3), user)
        }
        (_, Some(b)) => Action::Update(key, mutate(rng, b), user),
    }
}

/// Whether the server object is being deleted (finalizers hold it).
pub fn terminating(body: &Value) -> bool {
    body.pointer("/metadata/deletionTimestamp").is_some()
}

/// Whether the server object carries a finalizer.
pub fn finalized(body: &Value) -> bool {
    body.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// A new object as a client sends it.
fn fresh(rng: &mut ChaCha8Rng, cluster: &Cluster, key: &ObjKey, finalizers: f64) -> Value {
    let k = &cluster.kinds[key.0];
    let mut meta = json!({"name": key.2, "labels": {"app": key.2, "tier": tier(rng)}});
    if crate::rng::chance(rng, finalizers) {
        meta["finalizers"] = json!([FINALIZER]);
    }
    if GENERATED.contains(&key.2.as_str()) {
        // The client asked for a generated name; the server chose this one before admission.
        meta["generateName"] = json!("job-");
    }
    if let Some(ns) = &key.1 {
        meta["namespace"] = json!(ns);
    }
    let mut body = json!({"apiVersion": k.api_version, "kind": k.kind, "metadata": meta});
    let v = value(rng);
    match k.kind {
        "ConfigMap" => body["data"] = json!({"mode": v}),
        "Secret" => {
            body["type"] = json!("Opaque");
            body["data"] = json!({"password": secret_of(v)});
        }
        "Deployment" => {
            // As the API server holds it: its defaults filled in.
            body["spec"] = json!({"replicas": 1, "selector": {"matchLabels": {"app": key.2}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"creationTimestamp": null, "labels": {"app": key.2}},
                    "spec": {"containers": [{"name": "app", "image": format!("app:{v}"),
                        "imagePullPolicy": "IfNotPresent", "resources": {},
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                        "securityContext": {}, "terminationGracePeriodSeconds": 30}}})
        }
        "Widget" => body["spec"] = json!({"size": v}),
        "ClusterRole" => {
            body["rules"] = json!([{"apiGroups": [""], "resources": [v], "verbs": ["get"]}])
        }
        _ => {}
    }
    body
}

/// A changed copy: a value from a small set (so content toggles back), the tier label, or only a
/// tooling annotation that sanitization removes.
pub fn mutate(rng: &mut ChaCha8Rng, mut body: Value) -> Value {
    match rng.gen_range(0..10) {
        0..=5 => {
            let v = value(rng);
            let kind = body["kind"].as_str().unwrap_or_default().to_string();
            let v = if kind == "Secret" {
                secret_of(v)
            } else {
                v.to_string()
            };
            let slot = match kind.as_str() {
                "ConfigMap" => "/data/mode",
                "Secret" => "/data/password",
                "Deployment" => "/spec/template/spec/containers/0/image",
                "Widget" => "/spec/size",
                _ => "/rules/0/resources/0",
            };
            if let Some(x) = body.pointer_mut(slot) {
                *x = json!(v);
            }
            if kind == "Deployment" {
                // Sometimes a value other than its default, which the file must keep.
                let history = if v == "one" { 5 } else { 10 };
                body["spec"]["revisionHistoryLimit"] = json!(history);
            }
        }
        6..=7 => body["metadata"]["labels"]["tier"] = json!(tier(rng)),
        _ => {
            body["metadata"]["annotations"] = json!({
                "kubectl.kubernetes.io/last-applied-configuration": format!("{{\"n\":{}}}", rng.gen_range(0..1000))})
        }
    }
    body
}

fn value(rng: &mut ChaCha8Rng) -> &'static str {
    ["one", "two", "three"][rng.gen_range(0..3)]
}

/// The base64 of the Secret value standing for a drawn value (one draw, as for other kinds).
fn secret_of(v: &str) -> String {
    use base64::Engine as _;
    let i = ["one", "two", "three"]
        .iter()
        .position(|x| *x == v)
        .unwrap_or(0);
    base64::engine::general_purpose::STANDARD.encode(SECRET_VALUES[i])
}

fn tier(rng: &mut ChaCha8Rng) -> &'static str {
    if rng.gen_bool(0.5) {
        "web"
    } else {
        "db"
    }
}
