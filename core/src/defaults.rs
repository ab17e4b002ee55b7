//! Values the API server's defaulting fills in, left out of files.
//!
//! A file holds what a user would write: a value goes only where it differs from what the API
//! server would set at that place, so that applying the file gives back the same object. The
//! table is written from Kubernetes' defaulting functions (`SetDefaults_*` in
//! `pkg/apis/{core,apps,batch,autoscaling,networking,rbac,storage,scheduling}/<version>/defaults.go`)
//! as of **Kubernetes 1.20**, the version the end-to-end tests run; where a later version differs
//! the test server's answer decides. Besides defaulting proper it leaves out three values the API
//! server always fills on a create the same way: a pod spec's `serviceAccount` (the deprecated
//! copy of `serviceAccountName` conversion writes), and a Pod's `priority: 0` without a
//! `priorityClassName` and `serviceAccountName: default` (the Priority and ServiceAccount
//! admission plugins).
//!
//! Only values equal to their default go, each at its own place and under its own conditions
//! (an image's tag decides `imagePullPolicy`; a Service port's `targetPort` defaults to its
//! `port`; `strategy.rollingUpdate` exists only for `RollingUpdate`). An object left empty
//! because it held only defaults goes too, but only where an empty object is itself the default
//! (`resources: {}`, `securityContext: {}`): `emptyDir: {}` is a volume and stays. Nothing here
//! reads anything but the document and its type.

use crate::json::{Doc, Kind, NodeId, REMOVED};
use crate::type_rules::TypeRules;

/// A pod spec's place: a Pod's own spec has defaults (and admission values) a template's has not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PodSpecOf {
    Pod,
    Template,
}

/// Marks every value of the document equal to its default removed.
pub(crate) fn omit(doc: &mut Doc, rules: TypeRules) {
    let root = Doc::ROOT;
    let spec = doc.get(root, "spec");
    let template_spec = |doc: &Doc| {
        let template = spec.and_then(|s| doc.get(s, "template"));
        template.and_then(|t| doc.get(t, "spec"))
    };
    match rules {
        TypeRules::Plain | TypeRules::PersistentVolumeClaim => {}
        TypeRules::Secret | TypeRules::SealedSecret => drop_str(doc, Some(root), "type", "Opaque"),
        TypeRules::Service => service(doc, spec),
        TypeRules::Pod => pod_spec(doc, spec, PodSpecOf::Pod),
        TypeRules::PodTemplate => {
            let s = doc.path(&["template", "spec"]);
            pod_spec(doc, s, PodSpecOf::Template);
        }
        TypeRules::Deployment => {
            let Some(spec) = spec else { return };
            // One pass over the spec's members: Deployments are the commonest workload.
            let [replicas, history, deadline, strategy, template] = doc.lookup(
                spec,
                [
                    "replicas",
                    "revisionHistoryLimit",
                    "progressDeadlineSeconds",
                    "strategy",
                    "template",
                ],
            );
            drop_node(doc, spec, replicas, |d, v| is_int(d, v, 1));
            drop_node(doc, spec, history, |d, v| is_int(d, v, 10));
            drop_node(doc, spec, deadline, |d, v| is_int(d, v, 600));
            rolling_update(
                doc,
                spec,
                strategy,
                &[("maxUnavailable", "25%"), ("maxSurge", "25%")],
                None,
            );
            let template_spec = template.and_then(|t| doc.get(t, "spec"));
            pod_spec(doc, template_spec, PodSpecOf::Template);
        }
        TypeRules::DaemonSet => {
            let Some(spec) = spec else { return };
            drop_int(doc, Some(spec), "revisionHistoryLimit", 10);
            let strategy = doc.get(spec, "updateStrategy");
            rolling_update(doc, spec, strategy, &[], Some(("maxUnavailable", 1)));
            pod_spec(doc, template_spec(doc), PodSpecOf::Template);
        }
        TypeRules::StatefulSet => {
            drop_int(doc, spec, "replicas", 1);
            drop_int(doc, spec, "revisionHistoryLimit", 10);
            drop_str(doc, spec, "podManagementPolicy", "OrderedReady");
            stateful_update_strategy(doc, spec);
            volume_claim_templates(doc, spec);
            pod_spec(doc, template_spec(doc), PodSpecOf::Template);
        }
        TypeRules::ReplicaSet => {
            drop_int(doc, spec, "replicas", 1);
            pod_spec(doc, template_spec(doc), PodSpecOf::Template);
        }
        TypeRules::ReplicationController => {
            drop_int(doc, spec, "replicas", 1);
            let labels = doc.path(&["spec", "template", "metadata", "labels"]);
            // Both the selector and the controller's own labels default to the template's.
            drop_when(doc, spec, "selector", |d, s| {
                labels.is_some_and(|l| maps_equal(d, s, l))
            });
            let meta = doc.get(root, "metadata");
            drop_when(doc, meta, "labels", |d, s| {
                labels.is_some_and(|l| maps_equal(d, s, l))
            });
            pod_spec(doc, template_spec(doc), PodSpecOf::Template);
        }
        TypeRules::Job => {
            job(doc, spec);
            pod_spec(doc, template_spec(doc), PodSpecOf::Template);
        }
        TypeRules::CronJob => {
            drop_str(doc, spec, "concurrencyPolicy", "Allow");
            drop_bool(doc, spec, "suspend", false);
            drop_int(doc, spec, "successfulJobsHistoryLimit", 3);
            drop_int(doc, spec, "failedJobsHistoryLimit", 1);
            if let Some(job_template) = spec.and_then(|s| doc.get(s, "jobTemplate")) {
                drop_null_timestamp(doc, job_template);
            }
            let s = doc.path(&["spec", "jobTemplate", "spec", "template", "spec"]);
            pod_spec(doc, s, PodSpecOf::Template);
        }
        TypeRules::Namespace => {
            drop_when(doc, spec, "finalizers", |d, f| {
                strings_are(d, f, &["kubernetes"])
            });
            drop_empty(doc, Some(root), "spec");
        }
        TypeRules::PersistentVolume => {
            drop_str(doc, spec, "persistentVolumeReclaimPolicy", "Retain");
            drop_str(doc, spec, "volumeMode", "Filesystem");
        }
        TypeRules::NetworkPolicy => network_policy(doc, spec),
        TypeRules::IngressBeta => {
            let mut items = elements(doc, spec.and_then(|s| doc.get(s, "rules")));
            while let Some(rule) = items.next(doc) {
                let paths = doc.get(rule, "http").and_then(|h| doc.get(h, "paths"));
                let mut items = elements(doc, paths);
                while let Some(path) = items.next(doc) {
                    drop_str(doc, Some(path), "pathType", "ImplementationSpecific");
                }
            }
        }
        TypeRules::RoleBinding => {
            // `roleRef.apiGroup` is defaulted too, but the published schema requires it:
            // kubectl refuses a file without it, so it stays.
            let mut items = elements(doc, doc.get(root, "subjects"));
            while let Some(subject) = items.next(doc) {
                let kind = doc.get_str(subject, "kind");
                if matches!(kind, Some("User" | "Group")) {
                    drop_str(doc, Some(subject), "apiGroup", RBAC_GROUP);
                }
            }
        }
        TypeRules::HorizontalPodAutoscaler => drop_int(doc, spec, "minReplicas", 1),
        TypeRules::StorageClass => {
            drop_str(doc, Some(root), "reclaimPolicy", "Delete");
            drop_str(doc, Some(root), "volumeBindingMode", "Immediate");
        }
        TypeRules::PriorityClass => {
            drop_str(doc, Some(root), "preemptionPolicy", "PreemptLowerPriority");
        }
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `SetDefaults_PodSpec` and what it reaches (containers, probes, volumes), plus a Pod's own.
fn pod_spec(doc: &mut Doc, spec: Option<NodeId>, of: PodSpecOf) {
    let Some(spec) = spec.filter(|&s| doc.kind(s) == Kind::Object) else {
        return;
    };
    // One pass over the spec's members (a pod spec is in every workload event).
    let [dns, restart, scheduler, grace, security, account, account_name, links, priority, priority_class, host_network, containers, init_containers, ephemeral, volumes] =
        doc.lookup(
            spec,
            [
                "dnsPolicy",
                "restartPolicy",
                "schedulerName",
                "terminationGracePeriodSeconds",
                "securityContext",
                "serviceAccount",
                "serviceAccountName",
                "enableServiceLinks",
                "priority",
                "priorityClassName",
                "hostNetwork",
                "containers",
                "initContainers",
                "ephemeralContainers",
                "volumes",
            ],
        );
    drop_node(doc, spec, dns, |d, v| d.str_is(v, "ClusterFirst"));
    drop_node(doc, spec, restart, |d, v| d.str_is(v, "Always"));
    drop_node(doc, spec, scheduler, |d, v| {
        d.str_is(v, "default-scheduler")
    });
    drop_node(doc, spec, grace, |d, v| is_int(d, v, 30));
    drop_node(doc, spec, security, is_empty_object);
    drop_node(doc, spec, account, |d, v| {
        account_name.is_some_and(|n| {
            d.kind(n) == Kind::String && d.kind(v) == Kind::String && d.str(n) == d.str(v)
        })
    });
    if of == PodSpecOf::Pod {
        drop_node(doc, spec, links, |d, v| {
            d.kind(v) == Kind::Bool && d.is_true(v)
        });
        if priority_class.is_none() {
            drop_node(doc, spec, priority, |d, v| is_int(d, v, 0));
        }
        drop_node(doc, spec, account_name, |d, v| d.str_is(v, "default"));
    }
    let host_network = host_network.is_some_and(|h| doc.is_true(h));
    for list in [containers, init_containers, ephemeral] {
        let mut items = elements(doc, list);
        while let Some(c) = items.next(doc) {
            container(doc, c, of, host_network);
        }
    }
    let mut items = elements(doc, volumes);
    while let Some(v) = items.next(doc) {
        volume(doc, v);
    }
}

fn container(doc: &mut Doc, c: NodeId, of: PodSpecOf, host_network: bool) {
    if doc.kind(c) != Kind::Object {
        return;
    }
    let [message_path, message_policy, image, pull_policy, resources, ports, liveness, readiness, startup, lifecycle, env] =
        doc.lookup(
            c,
            [
                "terminationMessagePath",
                "terminationMessagePolicy",
                "image",
                "imagePullPolicy",
                "resources",
                "ports",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
                "lifecycle",
                "env",
            ],
        );
    drop_node(doc, c, message_path, |d, v| {
        d.str_is(v, "/dev/termination-log")
    });
    drop_node(doc, c, message_policy, |d, v| d.str_is(v, "File"));
    let policy = default_pull_policy(image.and_then(|i| doc.str(i)).unwrap_or(""));
    drop_node(doc, c, pull_policy, |d, v| d.str_is(v, policy));
    if let (Some(r), PodSpecOf::Pod) = (resources, of) {
        requests_from_limits(doc, r);
    }
    drop_node(doc, c, resources, is_empty_object);
    let mut items = elements(doc, ports);
    while let Some(port) = items.next(doc) {
        drop_str(doc, Some(port), "protocol", "TCP");
        if host_network {
            // With the host's network a port's hostPort defaults to its containerPort.
            drop_same_number(doc, port, "hostPort", "containerPort");
        }
    }
    for p in [liveness, readiness, startup].into_iter().flatten() {
        if doc.kind(p) != Kind::Object {
            continue;
        }
        let [timeout, period, success, failure, get] = doc.lookup(
            p,
            [
                "timeoutSeconds",
                "periodSeconds",
                "successThreshold",
                "failureThreshold",
                "httpGet",
            ],
        );
        drop_node(doc, p, timeout, |d, v| is_int(d, v, 1));
        drop_node(doc, p, period, |d, v| is_int(d, v, 10));
        drop_node(doc, p, success, |d, v| is_int(d, v, 1));
        drop_node(doc, p, failure, |d, v| is_int(d, v, 3));
        http_get_defaults(doc, get);
    }
    if let Some(lifecycle) = lifecycle {
        for hook in ["postStart", "preStop"] {
            let h = doc.get(lifecycle, hook);
            http_get(doc, h);
        }
    }
    let mut items = elements(doc, env);
    while let Some(env) = items.next(doc) {
        let field_ref = doc
            .get(env, "valueFrom")
            .and_then(|v| doc.get(v, "fieldRef"));
        drop_str(doc, field_ref, "apiVersion", "v1");
    }
}

/// `SetDefaults_Pod`: a container's requests default to its limits, resource by resource.
fn requests_from_limits(doc: &mut Doc, resources: NodeId) {
    let [limits, requests] = doc.lookup(resources, ["limits", "requests"]);
    let (Some(limits), Some(requests)) = (limits, requests) else {
        return;
    };
    if doc.kind(limits) != Kind::Object || doc.kind(requests) != Kind::Object {
        return;
    }
    let equal: Vec<NodeId> = doc
        .children(requests)
        .filter(|&r| {
            let key = std::str::from_utf8(doc.key(r)).unwrap_or("");
            doc.get(limits, key).is_some_and(|l| same_scalar(doc, l, r))
        })
        .collect();
    for r in equal {
        doc.mark_member(requests, r, REMOVED);
    }
    if !doc.has_members(requests) {
        doc.mark_member(resources, requests, REMOVED);
    }
}

/// `SetDefaults_Container`: `Always` for the `latest` tag or no tag and no digest, else
/// `IfNotPresent` (also for a reference the API server cannot parse).
pub(crate) fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A tag follows the last `:` of the last path component (a registry's port is before a `/`).
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, tag)| tag);
    match (reference_parses(name), tag, digest) {
        (false, ..) => "IfNotPresent",
        (true, Some("latest"), _) | (true, None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// Whether a reference's name (without digest) is one the API server's parser takes: the
/// repository path, after a domain if the first component is one, is lower case.
fn reference_parses(name: &str) -> bool {
    let remainder = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            rest
        }
        _ => name,
    };
    let path = remainder.split_once(':').map_or(remainder, |(p, _)| p);
    !path.is_empty() && !path.bytes().any(|b| b.is_ascii_uppercase())
}

/// `SetDefaults_HTTPGetAction` under a handler (a probe or a lifecycle hook).
fn http_get(doc: &mut Doc, handler: Option<NodeId>) {
    let get = handler.and_then(|h| doc.get(h, "httpGet"));
    http_get_defaults(doc, get);
}

fn http_get_defaults(doc: &mut Doc, get: Option<NodeId>) {
    drop_str(doc, get, "path", "/");
    drop_str(doc, get, "scheme", "HTTP");
}

fn volume(doc: &mut Doc, v: NodeId) {
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        let s = doc.get(v, source);
        drop_int(doc, s, "defaultMode", 420);
    }
    drop_str(doc, doc.get(v, "hostPath"), "type", "");
    let items = doc.get(v, "downwardAPI").and_then(|d| doc.get(d, "items"));
    downward_items(doc, items);
    let sources = doc.get(v, "projected").and_then(|p| doc.get(p, "sources"));
    let mut items = elements(doc, sources);
    while let Some(source) = items.next(doc) {
        let token = doc.get(source, "serviceAccountToken");
        drop_int(doc, token, "expirationSeconds", 3600);
        let items = doc
            .get(source, "downwardAPI")
            .and_then(|d| doc.get(d, "items"));
        downward_items(doc, items);
    }
}

fn downward_items(doc: &mut Doc, items: Option<NodeId>) {
    let mut items = elements(doc, items);
    while let Some(item) = items.next(doc) {
        drop_str(doc, doc.get(item, "fieldRef"), "apiVersion", "v1");
    }
}

/// `SetDefaults_Service`.
fn service(doc: &mut Doc, spec: Option<NodeId>) {
    let Some(spec) = spec else { return };
    let s = Some(spec);
    let node_facing = matches!(doc.get_str(spec, "type"), Some("NodePort" | "LoadBalancer"));
    drop_str(doc, s, "type", "ClusterIP");
    drop_str(doc, s, "sessionAffinity", "None");
    if let Some(config) = doc.get(spec, "sessionAffinityConfig") {
        let client_ip = doc.get(config, "clientIP");
        drop_int(doc, client_ip, "timeoutSeconds", 10800);
        drop_empty(doc, Some(config), "clientIP");
        drop_empty(doc, s, "sessionAffinityConfig");
    }
    if node_facing {
        drop_str(doc, s, "externalTrafficPolicy", "Cluster");
    }
    let mut items = elements(doc, doc.get(spec, "ports"));
    while let Some(port) = items.next(doc) {
        drop_str(doc, Some(port), "protocol", "TCP");
        drop_same_number(doc, port, "targetPort", "port");
    }
}

/// A `RollingUpdate` strategy (a Deployment's `strategy`, a DaemonSet's `updateStrategy`, a
/// member of `spec`): its type is the default, and its `rollingUpdate` exists, with its
/// defaults, only for that type.
fn rolling_update(
    doc: &mut Doc,
    spec: NodeId,
    strategy: Option<NodeId>,
    strings: &[(&str, &str)],
    int: Option<(&str, i64)>,
) {
    let Some(strategy) = strategy.filter(|&s| doc.kind(s) == Kind::Object) else {
        return;
    };
    let [kind, rolling] = doc.lookup(strategy, ["type", "rollingUpdate"]);
    if !kind.is_none_or(|t| doc.str_is(t, "RollingUpdate")) {
        return;
    }
    if let Some(rolling) = rolling {
        let r = Some(rolling);
        for (key, value) in strings {
            drop_str(doc, r, key, value);
        }
        if let Some((key, value)) = int {
            drop_int(doc, r, key, value);
        }
        drop_node(doc, strategy, Some(rolling), is_empty_object);
    }
    drop_node(doc, strategy, kind, |_, _| true);
    drop_node(doc, spec, Some(strategy), is_empty_object);
}

/// A StatefulSet's `updateStrategy` defaults to `RollingUpdate` with `partition: 0` only when
/// its type is unset: a `RollingUpdate` without `rollingUpdate` stays as it is.
fn stateful_update_strategy(doc: &mut Doc, spec: Option<NodeId>) {
    drop_when(doc, spec, "updateStrategy", |d, u| {
        let [kind, rolling] = d.lookup(u, ["type", "rollingUpdate"]);
        let members = d.children(u).filter(|&c| !d.has(c, REMOVED)).count();
        let rolling_default = rolling.is_some_and(|r| {
            d.children(r).count() == 1 && d.get(r, "partition").is_some_and(|p| is_int(d, p, 0))
        });
        members == 2 && kind.is_some_and(|k| d.str_is(k, "RollingUpdate")) && rolling_default
    });
}

/// Claim templates are PersistentVolumeClaims: `status.phase: Pending` and
/// `volumeMode: Filesystem`, with the Go encoder's `creationTimestamp: null`.
fn volume_claim_templates(doc: &mut Doc, spec: Option<NodeId>) {
    let templates = spec.and_then(|s| doc.get(s, "volumeClaimTemplates"));
    let mut items = elements(doc, templates);
    while let Some(t) = items.next(doc) {
        drop_null_timestamp(doc, t);
        drop_str(doc, doc.get(t, "spec"), "volumeMode", "Filesystem");
        let status = doc.get(t, "status");
        drop_str(doc, status, "phase", "Pending");
        drop_empty(doc, Some(t), "status");
    }
}

/// `SetDefaults_Job`, and the selector the API server generates for a Job without
/// `manualSelector` (its `controller-uid` label on the selector, the pod template and, when
/// the Job had no labels of its own, the Job).
fn job(doc: &mut Doc, spec: Option<NodeId>) {
    let Some(spec) = spec else { return };
    let s = Some(spec);
    drop_int(doc, s, "backoffLimit", 6);
    let [completions, parallelism] = doc.lookup(spec, ["completions", "parallelism"]);
    let one = |n: Option<NodeId>| n.is_some_and(|n| is_int(doc, n, 1));
    // Both unset default to 1; an unset parallelism alone defaults to 1.
    match (one(completions), one(parallelism)) {
        (true, true) => {
            drop_int(doc, s, "completions", 1);
            drop_int(doc, s, "parallelism", 1);
        }
        (false, true) if completions.is_some() => drop_int(doc, s, "parallelism", 1),
        _ => {}
    }
    let manual = doc
        .get(spec, "manualSelector")
        .is_some_and(|m| doc.is_true(m));
    if manual {
        return;
    }
    let uid = doc
        .path(&["spec", "selector", "matchLabels", "controller-uid"])
        .and_then(|u| doc.str(u))
        .map(str::to_owned);
    let Some(uid) = uid else { return };
    let name = doc
        .path(&["metadata", "name"])
        .and_then(|n| doc.str(n))
        .map(str::to_owned);
    drop_when(doc, s, "selector", |d, sel| {
        d.children(sel).count() == 1
            && d.get(sel, "matchLabels")
                .is_some_and(|m| d.children(m).count() == 1)
    });
    let template_labels = doc.path(&["spec", "template", "metadata", "labels"]);
    let meta = doc.get(Doc::ROOT, "metadata");
    if let Some(labels) = template_labels {
        drop_when(doc, meta, "labels", |d, own| maps_equal(d, own, labels));
        drop_when(doc, Some(labels), "controller-uid", |d, v| {
            d.str_is(v, &uid)
        });
        drop_when(doc, Some(labels), "job-name", |d, v| {
            name.as_deref().is_some_and(|n| d.str_is(v, n))
        });
        let template_meta = doc.path(&["spec", "template", "metadata"]);
        drop_empty(doc, template_meta, "labels");
        let template = doc.path(&["spec", "template"]);
        drop_empty(doc, template, "metadata");
    }
}

/// `SetDefaults_NetworkPolicy` and its ports'.
fn network_policy(doc: &mut Doc, spec: Option<NodeId>) {
    let Some(spec) = spec else { return };
    for direction in ["ingress", "egress"] {
        let mut items = elements(doc, doc.get(spec, direction));
        while let Some(rule) = items.next(doc) {
            let mut items = elements(doc, doc.get(rule, "ports"));
            while let Some(port) = items.next(doc) {
                drop_str(doc, Some(port), "protocol", "TCP");
            }
        }
    }
    // Unset, the types are Ingress, and Egress too when there are egress rules.
    let egress = doc
        .get(spec, "egress")
        .is_some_and(|e| doc.children(e).next().is_some());
    let default: &[&str] = if egress {
        &["Ingress", "Egress"]
    } else {
        &["Ingress"]
    };
    drop_when(doc, Some(spec), "policyTypes", |d, t| {
        strings_are(d, t, default)
    });
}

/// A template's `metadata.creationTimestamp: null` (the Go encoder's), and the `metadata` it
/// leaves empty.
fn drop_null_timestamp(doc: &mut Doc, holder: NodeId) {
    let meta = doc.get(holder, "metadata");
    drop_when(doc, meta, "creationTimestamp", |d, t| {
        d.kind(t) == Kind::Null
    });
    drop_empty(doc, Some(holder), "metadata");
}

/// The elements of an array (none for anything else).
fn elements(doc: &Doc, array: Option<NodeId>) -> Elements {
    match array.filter(|&a| doc.kind(a) == Kind::Array) {
        Some(a) => Elements {
            next: a + 1,
            end: doc.subtree_end(a),
        },
        None => Elements { next: 0, end: 0 },
    }
}

/// The elements of an array, one after the other, without holding the document (marking a
/// value removed changes no node's place) and without allocating.
struct Elements {
    next: NodeId,
    end: NodeId,
}

impl Elements {
    fn next(&mut self, doc: &Doc) -> Option<NodeId> {
        let at = self.next;
        if at >= self.end {
            return None;
        }
        self.next = doc.subtree_end(at);
        Some(at)
    }
}

/// Removes member `key` of `obj` (an object) when `is_default` holds for its value.
fn drop_when(
    doc: &mut Doc,
    obj: Option<NodeId>,
    key: &str,
    is_default: impl FnOnce(&Doc, NodeId) -> bool,
) {
    let Some(obj) = obj.filter(|&o| doc.kind(o) == Kind::Object) else {
        return;
    };
    if let Some(v) = doc.get(obj, key) {
        if is_default(doc, v) {
            doc.mark_member(obj, v, REMOVED);
        }
    }
}

fn drop_str(doc: &mut Doc, obj: Option<NodeId>, key: &str, value: &str) {
    drop_when(doc, obj, key, |d, v| d.str_is(v, value));
}

fn drop_int(doc: &mut Doc, obj: Option<NodeId>, key: &str, value: i64) {
    drop_when(doc, obj, key, |d, v| is_int(d, v, value));
}

fn drop_bool(doc: &mut Doc, obj: Option<NodeId>, key: &str, value: bool) {
    drop_when(doc, obj, key, |d, v| {
        d.kind(v) == Kind::Bool && d.is_true(v) == value
    });
}

/// Removes member `key` when it is an object with nothing left in it.
fn drop_empty(doc: &mut Doc, obj: Option<NodeId>, key: &str) {
    drop_when(doc, obj, key, is_empty_object);
}

/// Removes `node`, a member of `obj` found by one [`Doc::lookup`], when `is_default` holds.
fn drop_node(
    doc: &mut Doc,
    obj: NodeId,
    node: Option<NodeId>,
    is_default: impl FnOnce(&Doc, NodeId) -> bool,
) {
    if let Some(v) = node {
        if is_default(doc, v) {
            doc.mark_member(obj, v, REMOVED);
        }
    }
}

/// Removes member `key` of `obj` when it is the same number as member `source`, which its
/// default copies (a Service port's `targetPort`, a host-network port's `hostPort`).
fn drop_same_number(doc: &mut Doc, obj: NodeId, key: &str, source: &str) {
    let source = doc.get(obj, source);
    drop_when(doc, Some(obj), key, |d, v| {
        source.is_some_and(|s| {
            d.kind(v) == Kind::Number && d.kind(s) == Kind::Number && d.raw(v) == d.raw(s)
        })
    });
}

fn is_empty_object(doc: &Doc, v: NodeId) -> bool {
    doc.kind(v) == Kind::Object && !doc.has_members(v)
}

/// Whether `v` is the integer `value`, written plainly (no allocation: this runs per field).
fn is_int(doc: &Doc, v: NodeId, value: i64) -> bool {
    if doc.kind(v) != Kind::Number {
        return false;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let raw = doc.raw(v);
    match value < 0 {
        true => raw.first() == Some(&b'-') && raw[1..] == digits[at..],
        false => raw == &digits[at..],
    }
}

/// Two scalars with the same JSON value (strings by their text, anything else by its source).
fn same_scalar(doc: &Doc, a: NodeId, b: NodeId) -> bool {
    match (doc.kind(a), doc.kind(b)) {
        (Kind::String, Kind::String) => doc.str(a) == doc.str(b),
        (Kind::Object | Kind::Array, _) | (_, Kind::Object | Kind::Array) => false,
        (x, y) => x == y && doc.raw(a) == doc.raw(b),
    }
}

/// Whether two objects of scalars hold the same members (each key's last value counting).
fn maps_equal(doc: &Doc, a: NodeId, b: NodeId) -> bool {
    if doc.kind(a) != Kind::Object || doc.kind(b) != Kind::Object {
        return false;
    }
    let within = |x: NodeId, y: NodeId| {
        doc.children(x).all(|c| {
            let key = std::str::from_utf8(doc.key(c)).unwrap_or("");
            let last = doc.get(x, key);
            last != Some(c) || doc.get(y, key).is_some_and(|o| same_scalar(doc, c, o))
        })
    };
    within(a, b) && within(b, a)
}

/// Whether `v` is an array of exactly these strings, in this order.
fn strings_are(doc: &Doc, v: NodeId, expected: &[&str]) -> bool {
    doc.kind(v) == Kind::Array
        && doc.children(v).count() == expected.len()
        && doc.children(v).zip(expected).all(|(c, e)| doc.str_is(c, e))
}

#[cfg(test)]
mod tests;
