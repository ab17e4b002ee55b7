//! The defaults table, one specification per rule; conditional defaults each on both sides.

use serde_json::{json, Value};

use super::default_pull_policy;
use crate::ids::Gvr;
use crate::sanitize::TypeRules;

/// `v` as the file of an object of `group`/`version`/`resource` writes it.
fn file(group: &str, version: &str, resource: &str, v: Value) -> Value {
    let rules = TypeRules::of(&Gvr::new(group, version, resource));
    let json = serde_json::to_vec(&v).unwrap();
    let bytes = crate::canonical::sanitized_bytes(&json, rules).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn deployment(spec: Value) -> Value {
    file(
        "apps",
        "v1",
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}),
    )
}

fn pod_template(pod_spec: Value) -> Value {
    json!({"selector": {"matchLabels": {"app": "web"}},
           "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}}, "spec": pod_spec}})
}

/// A Deployment as the API server gives back `kubectl create deployment web --image=nginx`.
fn defaulted_deployment() -> Value {
    json!({
        "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "securityContext": {}, "terminationGracePeriodSeconds": 30}}
    })
}

#[test]
fn a_defaulted_deployment_is_what_its_user_wrote() {
    assert_eq!(
        deployment(defaulted_deployment())["spec"],
        json!({"selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}})
    );
}

#[test]
fn values_that_differ_from_their_defaults_stay() {
    let mut spec = defaulted_deployment();
    spec["replicas"] = json!(3);
    spec["revisionHistoryLimit"] = json!(0);
    spec["template"]["spec"]["dnsPolicy"] = json!("Default");
    spec["template"]["spec"]["terminationGracePeriodSeconds"] = json!(5);
    spec["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    spec["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
    let out = deployment(spec)["spec"].clone();
    assert_eq!(out["replicas"], json!(3));
    assert_eq!(out["revisionHistoryLimit"], json!(0));
    let pod = &out["template"]["spec"];
    assert_eq!(pod["dnsPolicy"], json!("Default"));
    assert_eq!(pod["terminationGracePeriodSeconds"], json!(5));
    assert_eq!(
        pod["containers"][0]["imagePullPolicy"],
        json!("IfNotPresent")
    );
    assert_eq!(
        pod["containers"][0]["resources"],
        json!({"limits": {"cpu": "1"}})
    );
}

#[test]
fn the_pull_policy_default_follows_the_images_tag_and_digest() {
    assert_eq!(default_pull_policy("nginx"), "Always");
    assert_eq!(default_pull_policy("nginx:latest"), "Always");
    assert_eq!(default_pull_policy("registry:5000/team/app"), "Always");
    assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
    assert_eq!(
        default_pull_policy("registry:5000/team/app:v2"),
        "IfNotPresent"
    );
    let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(
        default_pull_policy(&format!("nginx@{digest}")),
        "IfNotPresent"
    );
    assert_eq!(
        default_pull_policy(&format!("nginx:latest@{digest}")),
        "Always"
    );
    // What the API server cannot parse has no tag: IfNotPresent.
    assert_eq!(default_pull_policy("Nginx"), "IfNotPresent");
    assert_eq!(default_pull_policy(""), "IfNotPresent");
    // A domain may be upper case.
    assert_eq!(default_pull_policy("Registry.Example.com/app"), "Always");
}

#[test]
fn a_pull_policy_goes_only_where_it_is_the_images_default() {
    let container = |image: &str, policy: &str| {
        let spec = pod_template(
            json!({"containers": [{"name": "c", "image": image, "imagePullPolicy": policy}]}),
        );
        deployment(spec)["spec"]["template"]["spec"]["containers"][0].clone()
    };
    assert_eq!(
        container("nginx:1.25", "IfNotPresent"),
        json!({"name": "c", "image": "nginx:1.25"})
    );
    assert_eq!(
        container("nginx:1.25", "Always")["imagePullPolicy"],
        json!("Always")
    );
    assert_eq!(
        container("nginx", "Always"),
        json!({"name": "c", "image": "nginx"})
    );
    assert_eq!(
        container("nginx", "IfNotPresent")["imagePullPolicy"],
        json!("IfNotPresent")
    );
}

#[test]
fn a_rolling_update_goes_with_its_defaults_and_a_recreate_stays() {
    let mut spec = defaulted_deployment();
    spec["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}});
    assert_eq!(
        deployment(spec.clone())["spec"]["strategy"],
        json!({"rollingUpdate": {"maxSurge": 1}})
    );
    spec["strategy"] = json!({"type": "Recreate"});
    assert_eq!(
        deployment(spec)["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
}

#[test]
fn a_daemonsets_max_unavailable_of_one_is_its_default() {
    let ds = |strategy: Value| {
        file(
            "apps",
            "v1",
            "daemonsets",
            json!({"metadata": {"name": "d"}, "spec": {
            "revisionHistoryLimit": 10, "updateStrategy": strategy}}),
        )["spec"]
            .clone()
    };
    assert_eq!(
        ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})),
        json!({})
    );
    assert_eq!(
        ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "1"}})),
        json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": "1"}}})
    );
    assert_eq!(
        ds(json!({"type": "OnDelete"})),
        json!({"updateStrategy": {"type": "OnDelete"}})
    );
}

#[test]
fn a_statefulsets_update_strategy_goes_only_as_the_api_server_defaults_it_whole() {
    let sts = |strategy: Value| {
        file(
            "apps",
            "v1",
            "statefulsets",
            json!({"metadata": {"name": "s"}, "spec": {
            "replicas": 1, "podManagementPolicy": "OrderedReady", "updateStrategy": strategy,
            "volumeClaimTemplates": [{"metadata": {"creationTimestamp": null, "name": "data"},
                "spec": {"volumeMode": "Filesystem", "accessModes": ["ReadWriteOnce"]},
                "status": {"phase": "Pending"}}]}}),
        )["spec"]
            .clone()
    };
    let out = sts(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
    assert_eq!(
        out,
        json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"]}}]})
    );
    // Set to RollingUpdate without rollingUpdate, it stays so: no partition is filled in.
    let out = sts(json!({"type": "RollingUpdate"}));
    assert_eq!(out["updateStrategy"], json!({"type": "RollingUpdate"}));
    let out = sts(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}));
    assert_eq!(
        out["updateStrategy"]["rollingUpdate"],
        json!({"partition": 2})
    );
}

#[test]
fn a_service_ports_target_port_goes_when_it_is_its_port() {
    let svc = |spec: Value| {
        file(
            "",
            "v1",
            "services",
            json!({"metadata": {"name": "s"}, "spec": spec}),
        )["spec"]
            .clone()
    };
    let out = svc(
        json!({"type": "ClusterIP", "sessionAffinity": "None", "clusterIP": "10.0.0.9",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
                  {"name": "metrics", "port": 9090, "protocol": "UDP", "targetPort": 9091},
                  {"name": "named", "port": 8080, "protocol": "TCP", "targetPort": "web"}]}),
    );
    assert_eq!(
        out,
        json!({"ports": [{"name": "http", "port": 80},
        {"name": "metrics", "port": 9090, "protocol": "UDP", "targetPort": 9091},
        {"name": "named", "port": 8080, "targetPort": "web"}]})
    );
}

#[test]
fn external_traffic_policy_is_a_default_only_for_node_ports_and_load_balancers() {
    let svc = |kind: &str| {
        file(
            "",
            "v1",
            "services",
            json!({"metadata": {"name": "s"},
            "spec": {"type": kind, "externalTrafficPolicy": "Cluster"}}),
        )["spec"]
            .clone()
    };
    assert_eq!(svc("NodePort"), json!({"type": "NodePort"}));
    assert_eq!(svc("LoadBalancer"), json!({"type": "LoadBalancer"}));
    assert_eq!(
        svc("ClusterIP"),
        json!({"externalTrafficPolicy": "Cluster"})
    );
}

#[test]
fn client_ip_affinity_loses_only_its_default_timeout() {
    let svc = |timeout: u32| {
        file(
            "",
            "v1",
            "services",
            json!({"metadata": {"name": "s"}, "spec": {"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": timeout}}}}),
        )["spec"]
            .clone()
    };
    assert_eq!(svc(10800), json!({"sessionAffinity": "ClientIP"}));
    assert_eq!(
        svc(60)["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 60}})
    );
}

#[test]
fn a_headless_services_cluster_ip_stays_and_an_allocated_one_goes() {
    let svc = |ip: &str| {
        file(
            "",
            "v1",
            "services",
            json!({"metadata": {"name": "s"},
            "spec": {"clusterIP": ip, "clusterIPs": [ip]}}),
        )["spec"]
            .clone()
    };
    assert_eq!(svc("None"), json!({"clusterIP": "None"}));
    assert_eq!(svc("10.0.0.3"), json!({}));
}

#[test]
fn a_jobs_parallelism_and_completions_go_as_the_api_server_fills_them() {
    let job = |spec: Value| {
        file(
            "batch",
            "v1",
            "jobs",
            json!({"metadata": {"name": "j"}, "spec": spec}),
        )["spec"]
            .clone()
    };
    // Both unset: both 1.
    assert_eq!(
        job(json!({"completions": 1, "parallelism": 1, "backoffLimit": 6})),
        json!({})
    );
    // Completions set: parallelism alone defaults.
    assert_eq!(
        job(json!({"completions": 5, "parallelism": 1})),
        json!({"completions": 5})
    );
    // Parallelism set without completions: nothing to leave out.
    assert_eq!(job(json!({"parallelism": 3})), json!({"parallelism": 3}));
    // completions: 1 with another parallelism was written so.
    assert_eq!(
        job(json!({"completions": 1, "parallelism": 2})),
        json!({"completions": 1, "parallelism": 2})
    );
}

#[test]
fn a_jobs_generated_selector_and_labels_go_unless_it_chose_its_own() {
    let labels = json!({"app": "batch", "controller-uid": "u-1", "job-name": "j"});
    let job = |manual: bool| {
        let mut spec = json!({"selector": {"matchLabels": {"controller-uid": "u-1"}},
            "template": {"metadata": {"creationTimestamp": null, "labels": labels.clone()},
                         "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "Never"}}});
        if manual {
            spec["manualSelector"] = json!(true);
        }
        file(
            "batch",
            "v1",
            "jobs",
            json!({"metadata": {"name": "j", "labels": labels.clone()}, "spec": spec}),
        )
    };
    let out = job(false);
    assert_eq!(out["metadata"], json!({"name": "j"}));
    assert_eq!(out["spec"]["selector"], json!(null));
    assert_eq!(
        out["spec"]["template"]["metadata"],
        json!({"labels": {"app": "batch"}})
    );
    let out = job(true);
    assert_eq!(
        out["spec"]["selector"],
        json!({"matchLabels": {"controller-uid": "u-1"}})
    );
    assert_eq!(out["spec"]["template"]["metadata"]["labels"], labels);
}

#[test]
fn a_pods_requests_equal_to_its_limits_go_but_not_a_templates() {
    let resources = json!({"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "500m", "memory": "32Mi"}});
    let spec = json!({"containers": [{"name": "c", "image": "nginx:1", "resources": resources.clone()}],
        "enableServiceLinks": true, "priority": 0, "serviceAccountName": "default", "serviceAccount": "default"});
    let pod = file(
        "",
        "v1",
        "pods",
        json!({"metadata": {"name": "p"}, "spec": spec.clone()}),
    );
    assert_eq!(
        pod["spec"],
        json!({"containers": [{"name": "c", "image": "nginx:1",
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"memory": "32Mi"}}}]})
    );
    let template = deployment(pod_template(spec))["spec"]["template"]["spec"].clone();
    assert_eq!(template["containers"][0]["resources"], resources);
    assert_eq!(template["enableServiceLinks"], json!(true));
    assert_eq!(template["serviceAccountName"], json!("default"));
    assert_eq!(template["serviceAccount"], json!(null));
}

#[test]
fn a_pods_priority_stays_with_a_priority_class() {
    let pod = file(
        "",
        "v1",
        "pods",
        json!({"metadata": {"name": "p"},
        "spec": {"priority": 0, "priorityClassName": "zero"}}),
    );
    assert_eq!(
        pod["spec"],
        json!({"priority": 0, "priorityClassName": "zero"})
    );
}

#[test]
fn probes_volumes_and_field_refs_lose_their_defaults_and_empty_dir_stays() {
    let spec = pod_template(json!({
        "containers": [{"name": "c", "image": "nginx:1",
            "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}],
            "livenessProbe": {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"},
                "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 80, "scheme": "HTTPS"}, "periodSeconds": 5},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}]}],
        "volumes": [
            {"name": "cache", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
            {"name": "key", "secret": {"secretName": "key", "defaultMode": 256}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
            {"name": "token", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}}]}));
    let out = deployment(spec)["spec"]["template"]["spec"].clone();
    let c = &out["containers"][0];
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}])
    );
    assert_eq!(c["livenessProbe"], json!({"httpGet": {"port": 80}}));
    assert_eq!(
        c["readinessProbe"],
        json!({"httpGet": {"path": "/ready", "port": 80, "scheme": "HTTPS"}, "periodSeconds": 5})
    );
    assert_eq!(
        c["env"][0]["valueFrom"],
        json!({"fieldRef": {"fieldPath": "spec.nodeName"}})
    );
    assert_eq!(
        out["volumes"],
        json!([
        {"name": "cache", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "key", "secret": {"secretName": "key", "defaultMode": 256}},
        {"name": "host", "hostPath": {"path": "/var/log"}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}])
    );
}

#[test]
fn a_host_network_ports_host_port_is_its_container_port() {
    let spec = |host_network: bool| {
        pod_template(json!({"hostNetwork": host_network,
            "containers": [{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80, "hostPort": 80}]}]}))
    };
    let port = |s| deployment(s)["spec"]["template"]["spec"]["containers"][0]["ports"][0].clone();
    assert_eq!(port(spec(true)), json!({"containerPort": 80}));
    assert_eq!(
        port(spec(false)),
        json!({"containerPort": 80, "hostPort": 80})
    );
}

#[test]
fn network_policy_types_are_a_default_only_as_its_rules_imply_them() {
    let np = |spec: Value| {
        file(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            json!({"metadata": {"name": "n"}, "spec": spec}),
        )["spec"]
            .clone()
    };
    let ingress = json!([{"ports": [{"port": 80, "protocol": "TCP"}]}]);
    assert_eq!(
        np(json!({"podSelector": {}, "ingress": ingress, "policyTypes": ["Ingress"]})),
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]})
    );
    assert_eq!(
        np(json!({"podSelector": {}, "egress": [{}], "policyTypes": ["Ingress", "Egress"]})),
        json!({"podSelector": {}, "egress": [{}]})
    );
    // Egress without egress rules denies all egress: it was written.
    assert_eq!(
        np(json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))["policyTypes"],
        json!(["Ingress", "Egress"])
    );
}

#[test]
fn rbac_subjects_api_groups_go_for_users_and_groups_and_the_required_role_ref_stays() {
    let rb = file(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        json!({"metadata": {"name": "r"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
                     {"kind": "ServiceAccount", "name": "bot", "namespace": "ns"}]}),
    );
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "view"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "bot", "namespace": "ns"}])
    );
}

#[test]
fn a_cron_jobs_defaults_and_its_templates_go() {
    let out = file(
        "batch",
        "v1beta1",
        "cronjobs",
        json!({"metadata": {"name": "c"}, "spec": {
        "schedule": "*/5 * * * *", "concurrencyPolicy": "Allow", "suspend": false,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
        "jobTemplate": {"metadata": {"creationTimestamp": null}, "spec": {"template": {
            "metadata": {"creationTimestamp": null},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "OnFailure",
                     "dnsPolicy": "ClusterFirst"}}}}}}),
    );
    assert_eq!(
        out["spec"],
        json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], "restartPolicy": "OnFailure"}}}}})
    );
}

#[test]
fn the_small_tables() {
    let ns = file(
        "",
        "v1",
        "namespaces",
        json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]}}),
    );
    assert_eq!(ns, json!({"metadata": {"name": "n"}}));
    let secret = file(
        "",
        "v1",
        "secrets",
        json!({"metadata": {"name": "s"}, "type": "Opaque"}),
    );
    assert_eq!(secret, json!({"metadata": {"name": "s"}}));
    let tls = file(
        "",
        "v1",
        "secrets",
        json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"}),
    );
    assert_eq!(tls["type"], json!("kubernetes.io/tls"));
    let hpa = file(
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        json!({"metadata": {"name": "h"}, "spec": {"minReplicas": 1, "maxReplicas": 4}}),
    );
    assert_eq!(hpa["spec"], json!({"maxReplicas": 4}));
    let sc = file(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        json!({"metadata": {"name": "s"}, "provisioner": "p",
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
    );
    assert_eq!(
        sc,
        json!({"metadata": {"name": "s"}, "provisioner": "p", "volumeBindingMode": "WaitForFirstConsumer"})
    );
    let beta = file(
        "networking.k8s.io",
        "v1beta1",
        "ingresses",
        json!({"metadata": {"name": "i"}, "spec": {"rules": [
        {"http": {"paths": [{"path": "/", "pathType": "ImplementationSpecific"}]}}]}}),
    );
    assert_eq!(
        beta["spec"]["rules"][0]["http"]["paths"][0],
        json!({"path": "/"})
    );
    let v1 = file(
        "networking.k8s.io",
        "v1",
        "ingresses",
        json!({"metadata": {"name": "i"}, "spec": {"rules": [
        {"http": {"paths": [{"path": "/", "pathType": "ImplementationSpecific"}]}}]}}),
    );
    assert_eq!(
        v1["spec"]["rules"][0]["http"]["paths"][0]["pathType"],
        json!("ImplementationSpecific")
    );
    let pvc = file(
        "",
        "v1",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "c"}, "spec": {"volumeMode": "Block"}}),
    );
    assert_eq!(pvc["spec"], json!({"volumeMode": "Block"}));
}

#[test]
fn a_crd_type_named_like_a_built_in_keeps_everything() {
    let v = json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "a"},
        "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate"}}});
    assert_eq!(file("example.com", "v1", "deployments", v.clone()), v);
}
