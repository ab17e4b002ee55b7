//! `spec.output.defaults`: files leave out the API server's defaults unless a repository keeps
//! them, and switching rewrites the folder's files in one `[RESYNC]` commit, both ways.

mod common;

use common::*;
use gitops_reverser_core::io::{Input, Output, WatchEvent};
use gitops_reverser_core::CoreConfig;
use serde_json::{json, Value};

fn repo(defaults: Option<&str>) -> Value {
    let mut r = json!({"repoURL": "https://git.example/org/repo", "allowedBranches": ["main"]});
    if let Some(d) = defaults {
        r["output"] = json!({"defaults": d});
    }
    r
}

fn deployments() -> gitops_reverser_core::Gvr {
    gvr("apps", "v1", "deployments")
}

/// A Deployment as the API server holds it: its defaults filled in.
fn deployment(name: &str, image: &str, rv: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "team-a", "uid": format!("u-{name}"), "resourceVersion": rv},
        "spec": {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"creationTimestamp": null, "labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "resources": {}}],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30}}}})
}

fn relist(h: &mut Harness, objects: &[Value]) {
    h.input(Input::Watch(deployments(), WatchEvent::Init));
    for o in objects {
        h.input(Input::Watch(
            deployments(),
            WatchEvent::InitApply(o.clone().into()),
        ));
    }
    h.input(Input::Watch(deployments(), WatchEvent::InitDone));
}

fn file(h: &Harness, name: &str) -> String {
    String::from_utf8(h.files[&format!("apps/v1/deployments/team-a/{name}.yaml")].to_vec()).unwrap()
}

/// Switches the repository's `spec.output.defaults` and answers the relist it asks for.
fn switch(h: &mut Harness, defaults: &str, objects: &[Value]) -> Vec<String> {
    h.outputs.clear();
    let spec = serde_json::from_value(repo(Some(defaults))).unwrap();
    h.input(Input::GitRepoConfig(repo_name(), Some(spec)));
    assert!(
        h.outputs.contains(&Output::Resync(deployments())),
        "{:?}",
        h.outputs
    );
    relist(h, objects);
    h.flush_and_push().into_iter().map(|c| c.message).collect()
}

#[test]
fn files_leave_defaults_out_unless_kept_and_a_switch_rewrites_them_in_one_commit_each_way() {
    let mut h = Harness::with_repo(
        CoreConfig::default(),
        repo(None),
        &[("apps", "v1", "deployments")],
        "",
    );
    relist(&mut h, &[]);
    h.answer_all();
    let objects = [
        deployment("web", "nginx:1.25", "1"),
        deployment("api", "api:v2", "2"),
    ];
    for o in &objects {
        h.input(Input::Watch(
            deployments(),
            WatchEvent::Apply(o.clone().into()),
        ));
    }
    h.flush_and_push();
    let omitted = file(&h, "web");
    assert!(
        !omitted.contains("replicas") && !omitted.contains("dnsPolicy"),
        "{omitted}"
    );
    assert!(omitted.contains("image: nginx:1.25"), "{omitted}");

    let messages = switch(&mut h, "Keep", &objects);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("[RESYNC] 2 changes"),
        "{messages:?}"
    );
    let kept = file(&h, "web");
    for field in [
        "replicas: 1",
        "dnsPolicy: ClusterFirst",
        "maxSurge: \"25%\"",
        "terminationGracePeriodSeconds: 30",
    ] {
        assert!(kept.contains(field), "{field} in\n{kept}");
    }
    // Still sanitized: no server-set metadata.
    assert!(
        !kept.contains("resourceVersion") && !kept.contains("creationTimestamp"),
        "{kept}"
    );

    // A change to a kept file keeps its defaults; no change is no commit.
    h.input(Input::Watch(
        deployments(),
        WatchEvent::Apply(deployment("web", "nginx:1.26", "3").into()),
    ));
    let pushed = h.flush_and_push();
    assert_eq!(pushed.len(), 1);
    assert!(
        file(&h, "web").contains("image: nginx:1.26") && file(&h, "web").contains("replicas: 1")
    );
    let objects = [
        deployment("web", "nginx:1.26", "3"),
        deployment("api", "api:v2", "2"),
    ];

    let messages = switch(&mut h, "Omit", &objects);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(!file(&h, "web").contains("replicas") && !file(&h, "api").contains("dnsPolicy"));

    // Omit is also what no setting means: switching between them changes nothing.
    h.outputs.clear();
    let spec = serde_json::from_value(repo(None)).unwrap();
    h.input(Input::GitRepoConfig(repo_name(), Some(spec)));
    assert!(
        !h.outputs.contains(&Output::Resync(deployments())),
        "{:?}",
        h.outputs
    );
}

fn widgets() -> gitops_reverser_core::Gvr {
    gvr("example.com", "v1", "widgets")
}

fn widget(size: u32) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "team-a", "uid": "u-w", "resourceVersion": "1"},
        "spec": {"size": size, "mode": "auto", "tuning": {"level": 3}}})
}

fn widget_defaults(mode: &str) -> gitops_reverser_core::schema_defaults::SchemaDefaults {
    gitops_reverser_core::schema_defaults::SchemaDefaults::from_schema(&json!({"type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer", "default": 1},
            "mode": {"type": "string", "default": mode},
            "tuning": {"type": "object", "default": {}, "properties": {"level": {"type": "integer", "default": 3}}}}}}}))
}

#[test]
fn a_custom_resources_schema_defaults_are_left_out_and_its_author_still_found() {
    use gitops_reverser_core::admission::AdmissionRequest;
    use gitops_reverser_core::Operation;
    let mut h = Harness::with_repo(
        CoreConfig::default(),
        repo(None),
        &[("example.com", "v1", "widgets")],
        "",
    );
    h.input(Input::SchemaDefaults(
        widgets(),
        Some(widget_defaults("auto")),
    ));
    h.input(Input::Watch(widgets(), WatchEvent::Init));
    h.input(Input::Watch(widgets(), WatchEvent::InitDone));
    h.answer_all();
    // The API server applied the schema's defaults before it asked the webhook.
    h.input(Input::Admission(AdmissionRequest {
        uid: "req-1".into(),
        gvr: widgets(),
        namespace: Some("team-a".into()),
        name: "w".into(),
        operation: Operation::Create,
        username: "alice".into(),
        dry_run: false,
        object: Some(widget(2).into()),
        old_object: None,
        sub_resource: None,
    }));
    h.input(Input::Watch(widgets(), WatchEvent::Apply(widget(2).into())));
    let pushed = h.flush_and_push();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].author.name, "alice");
    let file = String::from_utf8(h.files["example.com/v1/widgets/team-a/w.yaml"].to_vec()).unwrap();
    assert!(file.contains("size: 2"), "{file}");
    assert!(!file.contains("mode") && !file.contains("tuning"), "{file}");

    // A CRD whose defaults change rewrites its objects' files.
    h.outputs.clear();
    h.input(Input::SchemaDefaults(
        widgets(),
        Some(widget_defaults("manual")),
    ));
    assert!(
        h.outputs.contains(&Output::Resync(widgets())),
        "{:?}",
        h.outputs
    );
    h.input(Input::Watch(widgets(), WatchEvent::Init));
    h.input(Input::Watch(
        widgets(),
        WatchEvent::InitApply(widget(2).into()),
    ));
    h.input(Input::Watch(widgets(), WatchEvent::InitDone));
    h.flush_and_push();
    let file = String::from_utf8(h.files["example.com/v1/widgets/team-a/w.yaml"].to_vec()).unwrap();
    assert!(
        file.contains("mode: auto") && !file.contains("tuning"),
        "{file}"
    );
    // The same defaults again change nothing.
    h.outputs.clear();
    h.input(Input::SchemaDefaults(
        widgets(),
        Some(widget_defaults("manual")),
    ));
    assert!(
        !h.outputs.contains(&Output::Resync(widgets())),
        "{:?}",
        h.outputs
    );
}
