//! Files without server-filled defaults, end to end against a real kube-apiserver (1.20) and a
//! real git daemon: every committed file, created again with a server-side dry run in a scratch
//! namespace, gives back the live object (both sanitized with every default kept), and no file
//! is larger than the same object with its defaults.

mod support;

use gitops_reverser_core::schema_defaults::SchemaDefaults;
use gitops_reverser_core::{
    render_custom_object, render_object, render_object_keeping_defaults, Gvr, TypeRules,
};
use serde_json::Value;
use support::cluster::{
    await_rule, eventually, namespace, repo_config, watch_rule, Cluster, Operator, Remote,
};

/// (group, version, resource, kind) of every type the test creates.
const TYPES: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "configmaps", "ConfigMap"),
    ("", "v1", "services", "Service"),
    ("", "v1", "pods", "Pod"),
    ("", "v1", "replicationcontrollers", "ReplicationController"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("", "v1", "serviceaccounts", "ServiceAccount"),
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("apps", "v1", "daemonsets", "DaemonSet"),
    ("apps", "v1", "replicasets", "ReplicaSet"),
    ("batch", "v1", "jobs", "Job"),
    ("batch", "v1beta1", "cronjobs", "CronJob"),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
    ),
    ("networking.k8s.io", "v1", "ingresses", "Ingress"),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
    ),
    (
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
    ),
    (
        "policy",
        "v1beta1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
    ),
    ("example.com", "v1", "gizmos", "Gizmo"),
];

/// A custom resource type whose schema declares defaults, some nested in a defaulted object
/// and in array items.
const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, default: 1}
              mode: {type: string, default: auto}
              tuning:
                type: object
                default: {}
                properties:
                  level: {type: integer, default: 3}
              ports:
                type: array
                items:
                  type: object
                  properties:
                    port: {type: integer}
                    protocol: {type: string, default: TCP}
"#;

/// The objects: typical manifests and awkward ones (defaults written out, values that are not
/// defaults, `:latest` and digest images, multi-port Services with named target ports, Jobs with
/// and without `completions`, empty maps and lists).
const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
data: {LOG_LEVEL: info}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: empty}
data: {}
---
apiVersion: v1
kind: Service
metadata: {name: multi-port}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 80, protocol: TCP}
  - {name: https, port: 443, targetPort: web-tls}
  - {name: dns, port: 53, protocol: UDP}
  - {name: metrics, port: 9090, targetPort: 9100}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  type: ClusterIP
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky-short}
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: latest}
spec:
  containers:
  - name: app
    image: nginx:latest
    imagePullPolicy: Always
    resources: {limits: {cpu: 500m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: digest}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: nginx@sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac
    resources: {limits: {cpu: "1"}, requests: {cpu: 250m}}
    ports: [{containerPort: 80}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: app, image: "busybox:1.36", command: [sleep, "3600"]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: raw}
spec:
  accessModes: [ReadWriteOnce]
  volumeMode: Block
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: minimal}
spec:
  selector: {matchLabels: {app: minimal}}
  template:
    metadata: {labels: {app: minimal}}
    spec:
      containers: [{name: app, image: "nginx:1.25"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: explicit}
spec:
  replicas: 1
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}
  selector: {matchLabels: {app: explicit}}
  template:
    metadata: {labels: {app: explicit}}
    spec:
      dnsPolicy: ClusterFirst
      restartPolicy: Always
      schedulerName: default-scheduler
      terminationGracePeriodSeconds: 30
      securityContext: {}
      containers:
      - name: app
        image: nginx
        imagePullPolicy: Always
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: File
        resources: {}
        ports: [{containerPort: 80, protocol: TCP}]
        livenessProbe:
          httpGet: {path: /, port: 80, scheme: HTTP}
          timeoutSeconds: 1
          periodSeconds: 10
          successThreshold: 1
          failureThreshold: 3
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: custom}
spec:
  replicas: 3
  revisionHistoryLimit: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: custom}}
  template:
    metadata: {labels: {app: custom}}
    spec:
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      serviceAccountName: builder
      containers:
      - name: app
        image: registry.example.com:5000/team/app:v2
        imagePullPolicy: Always
        ports: [{containerPort: 8080}, {containerPort: 8125, protocol: UDP, hostPort: 8125}]
        env:
        - name: NODE
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        readinessProbe:
          httpGet: {path: /ready, port: 8080, scheme: HTTPS}
          periodSeconds: 5
          failureThreshold: 1
        lifecycle:
          preStop: {httpGet: {path: /, port: 8080}}
        volumeMounts: [{name: cache, mountPath: /cache}, {name: cfg, mountPath: /cfg}]
      volumes:
      - {name: cache, emptyDir: {}}
      - {name: cfg, configMap: {name: plain, defaultMode: 256}}
      - {name: plain, configMap: {name: plain}}
      - {name: logs, hostPath: {path: /var/log}}
      - name: info
        downwardAPI:
          items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
      - name: token
        projected:
          sources: [{serviceAccountToken: {path: token}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: headless
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "postgres:16", volumeMounts: [{name: pgdata, mountPath: /var/lib/postgresql}]}]
  volumeClaimTemplates:
  - metadata: {name: pgdata}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: queue}
spec:
  serviceName: queue
  replicas: 2
  podManagementPolicy: Parallel
  updateStrategy: {type: OnDelete}
  selector: {matchLabels: {app: queue}}
  template:
    metadata: {labels: {app: queue}}
    spec:
      containers: [{name: q, image: "redis:7"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: rolling}
spec:
  serviceName: rolling
  updateStrategy: {type: RollingUpdate}
  selector: {matchLabels: {app: rolling}}
  template:
    metadata: {labels: {app: rolling}}
    spec:
      containers: [{name: r, image: "redis:7"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      tolerations: []
      containers: [{name: agent, image: "fluent/fluent-bit:3.0", resources: {limits: {memory: 128Mi}}}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: frontend}
spec:
  replicas: 2
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      containers: [{name: app, image: "nginx:1.25", imagePullPolicy: IfNotPresent}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: job, image: "busybox:1.36", command: ["true"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 5
  parallelism: 2
  backoffLimit: 2
  template:
    metadata: {labels: {team: data}}
    spec:
      restartPolicy: OnFailure
      containers: [{name: job, image: "busybox:1.36", command: ["true"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: workers, labels: {owner: data}}
spec:
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: job, image: "busybox:1.36", command: ["true"]}]
---
apiVersion: batch/v1beta1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: job, image: "busybox:1.36", command: ["true"]}]
---
apiVersion: batch/v1beta1
kind: CronJob
metadata: {name: paused}
spec:
  schedule: "*/5 * * * *"
  concurrencyPolicy: Forbid
  suspend: true
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      backoffLimit: 1
      template:
        spec:
          restartPolicy: Never
          containers: [{name: job, image: "busybox:1.36", command: ["true"]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports: [{port: 80}, {port: 53, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: multi-port, port: {number: 80}}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {kind: Group, name: auditors}
- {kind: ServiceAccount, name: builder, namespace: apps}
---
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: minimal}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: minimal}
  maxReplicas: 4
  targetCPUUtilizationPercentage: 70
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: db}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: db}}
---
apiVersion: example.com/v1
kind: Gizmo
metadata: {name: minimal}
spec:
  ports: [{port: 80}]
---
apiVersion: example.com/v1
kind: Gizmo
metadata: {name: explicit}
spec:
  size: 1
  mode: manual
  tuning: {level: 3}
  ports: [{port: 53, protocol: UDP}, {port: 80, protocol: TCP}]
"#;

/// The file the core writes for `live`: a custom resource's without its schema's defaults.
fn render(live: &[u8], rules: TypeRules, kind: &str) -> Vec<u8> {
    match kind {
        "Gizmo" => {
            let crd: Value = serde_yaml::from_str(CRD).unwrap();
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let defaults = SchemaDefaults::from_schema(schema);
            render_custom_object(live, &defaults).unwrap()
        }
        _ => render_object(live, rules).unwrap(),
    }
}

/// A value's labels and selectors that carry a Job's generated `controller-uid`, made equal: a
/// dry run generates another.
fn without_uids(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "controller-uid" {
                    *x = Value::from("<uid>");
                } else {
                    without_uids(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(without_uids),
        _ => {}
    }
}

/// `obj` sanitized with every default kept, in namespace `ns`, as YAML.
fn kept(obj: &Value, rules: TypeRules, ns: &str) -> String {
    let mut obj = obj.clone();
    obj["metadata"]["namespace"] = Value::from(ns);
    without_uids(&mut obj);
    let json = serde_json::to_vec(&obj).unwrap();
    String::from_utf8(render_object_keeping_defaults(&json, rules).unwrap()).unwrap()
}

#[test]
fn every_file_restores_to_the_live_object_and_holds_no_default() {
    let c = Cluster::start();
    let remote = Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let op = Operator::start(&c, dir.path(), &[]);
    for ns in ["apps", "scratch"] {
        namespace(&c, ns);
        // Pods need their namespace's default ServiceAccount (no controller manager makes it
        // here), and without a token controller it must not ask for a token.
        c.apply(
            "admin",
            &format!("apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: default, namespace: {ns}}}\nautomountServiceAccountToken: false\n"),
        );
    }
    c.apply("admin", CRD);
    c.kubectl(
        "admin",
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/gizmos.example.com",
        ],
    );
    c.apply("admin", &repo_config("apps", &remote.url(), ""));
    let resources: Vec<String> = TYPES
        .iter()
        .map(|(g, v, r, _)| format!("{{group: \"{g}\", version: {v}, resource: {r}}}"))
        .collect();
    c.apply(
        "admin",
        &watch_rule(
            "apps",
            "all",
            "live",
            &format!("[{}]", resources.join(", ")),
        ),
    );
    await_rule(&c, &op, "apps", "all");

    let out = c.kubectl_output(
        "admin",
        &["apply", "-n", "apps", "-f", "-"],
        Some(MANIFESTS),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<(usize, String)> = MANIFESTS
        .split("\n---\n")
        .map(|doc| {
            let v: Value = serde_yaml::from_str(doc).unwrap();
            let kind = v["kind"].as_str().unwrap();
            let t = TYPES.iter().position(|t| t.3 == kind).unwrap();
            (t, v["metadata"]["name"].as_str().unwrap().to_string())
        })
        .collect();
    let kinds: std::collections::BTreeSet<usize> = objects.iter().map(|(t, _)| *t).collect();
    assert!(
        objects.len() >= 25 && kinds.len() >= 15,
        "{} objects of {} kinds",
        objects.len(),
        kinds.len()
    );

    let path = |t: usize, name: &str| {
        let (g, v, r, _) = TYPES[t];
        match g {
            "" => format!("live/{v}/{r}/apps/{name}.yaml"),
            g => format!("live/{g}/{v}/{r}/apps/{name}.yaml"),
        }
    };
    // Every object's file, once the remote holds them all.
    let files: Vec<String> = eventually("every object's file", || {
        objects
            .iter()
            .map(|(t, name)| remote.file(&path(*t, name)))
            .collect()
    });

    let (mut lines, mut bytes) = ((0, 0), (0, 0));
    let mut lives = Vec::new();
    let mut failures = Vec::new();
    for ((t, name), file) in objects.iter().zip(&files) {
        let (g, v, r, kind) = TYPES[*t];
        let rules = TypeRules::of(&Gvr::new(g, v, r));
        let api_version = if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        };
        let resource = if g.is_empty() {
            r.to_string()
        } else {
            format!("{r}.{v}.{g}")
        };
        let live: Value = serde_json::from_str(&c.kubectl(
            "admin",
            &["get", &resource, name, "-n", "apps", "-o", "json"],
        ))
        .unwrap();
        // The file is what the core writes for the live object.
        let live_json = serde_json::to_vec(&live).unwrap();
        assert_eq!(
            file.as_bytes(),
            &render(&live_json, rules, kind)[..],
            "{kind} {name}: the committed file is not the live object's"
        );
        let with_defaults = render_object_keeping_defaults(&live_json, rules).unwrap();
        assert!(
            file.len() <= with_defaults.len(),
            "{kind} {name}: the file grew"
        );
        lives.push((live_json.clone(), rules, kind));
        lines.0 += String::from_utf8_lossy(&with_defaults).lines().count();
        lines.1 += file.lines().count();
        bytes.0 += with_defaults.len();
        bytes.1 += file.len();

        // Created again from the file alone, in another namespace.
        let mut restore: Value = serde_yaml::from_str(file).unwrap();
        assert_eq!(restore["apiVersion"], Value::from(api_version.as_str()));
        restore["metadata"]["namespace"] = Value::from("scratch");
        let out = c.kubectl_output(
            "admin",
            &["create", "--dry-run=server", "-o", "json", "-f", "-"],
            Some(&serde_json::to_string(&restore).unwrap()),
        );
        if !out.status.success() {
            failures.push(format!(
                "{kind} {name}: refused: {}\n{file}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let restored: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (want, have) = (
            kept(&live, rules, "scratch"),
            kept(&restored, rules, "scratch"),
        );
        if want != have {
            failures.push(format!("{kind} {name}: restores differently\n--- live\n{want}--- restored\n{have}--- file\n{file}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} objects:\n{}",
        failures.len(),
        objects.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} objects of {} kinds: with defaults {} lines, {} bytes; files {} lines, {} bytes",
        objects.len(),
        kinds.len(),
        lines.0,
        bytes.0,
        lines.1,
        bytes.1
    );
    assert!(bytes.1 < bytes.0 && lines.1 < lines.0);

    // The switch, both ways: every file that holds a default rewritten, in [RESYNC] commits
    // only (one per burst of relists: the streams list again one by one).
    let explicit = path(
        TYPES.iter().position(|t| t.3 == "Deployment").unwrap(),
        "explicit",
    );
    let live = c.kubectl(
        "admin",
        &["get", "deployment", "explicit", "-n", "apps", "-o", "json"],
    );
    let rules = TypeRules::of(&Gvr::new("apps", "v1", "deployments"));
    let with_defaults = render_object_keeping_defaults(live.as_bytes(), rules).unwrap();
    let without = render_object(live.as_bytes(), rules).unwrap();
    for (mode, want) in [("Keep", &with_defaults), ("Omit", &without)] {
        let commits = remote.log().len();
        c.apply(
            "admin",
            &repo_config(
                "apps",
                &remote.url(),
                &format!("  output: {{defaults: {mode}}}\n"),
            ),
        );
        eventually(&format!("the files written with defaults: {mode}"), || {
            (remote.file(&explicit)?.as_bytes() == &want[..]).then_some(())
        });
        // Every file written the new way, by resyncs alone.
        eventually(&format!("every file written with defaults: {mode}"), || {
            objects
                .iter()
                .zip(&lives)
                .all(|((t, name), (live, rules, kind))| {
                    let want = match mode {
                        "Keep" => render_object_keeping_defaults(live, *rules).unwrap(),
                        _ => render(live, *rules, kind),
                    };
                    remote
                        .file(&path(*t, name))
                        .is_some_and(|f| f.as_bytes() == &want[..])
                })
                .then_some(())
        });
        let log = remote.log();
        let resyncs = &log[commits..];
        assert!(
            !resyncs.is_empty() && resyncs.iter().all(|l| l.contains("|[RESYNC] ")),
            "{mode}: {resyncs:?}"
        );
        eprintln!("defaults: {mode}: {resyncs:?}");
    }
}
