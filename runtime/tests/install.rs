//! The install, end to end: `deploy/` renders, applies to the real kube-apiserver, and the
//! operator runs as the installed ServiceAccount (a TokenRequest token, never admin) with the
//! Deployment's own arguments from the `local` overlay: self-managed certificates, its webhook
//! configuration kept by itself, the API server calling it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::cluster::{
    eventually, eventually_within, http_get, namespace, repo_config, watch_rule, Cluster, Remote,
};
use support::free_port;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `to` as a path relative to `from` (kustomize takes no absolute paths).
fn rel(from: &Path, to: &Path) -> String {
    let up = from.components().count() - 1;
    let down = to.strip_prefix("/").unwrap();
    format!("{}{}", "../".repeat(up), down.display())
}

/// A kustomization in `dir` of `resources` and `components` (paths anywhere).
fn kustomization(dir: &Path, resources: &[PathBuf], components: &[PathBuf]) {
    let list = |ps: &[PathBuf]| {
        ps.iter()
            .map(|p| rel(dir, p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "resources: [{}]\ncomponents: [{}]\n",
            list(resources),
            list(components)
        ),
    )
    .unwrap();
}

fn docs(yaml: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn kind(d: &serde_yaml::Value) -> &str {
    d["kind"].as_str().unwrap_or_default()
}

/// `kubectl apply --server-side` of `yaml` as admin; every object must be accepted.
fn apply_server_side(c: &Cluster, yaml: &str) {
    let out = c.kubectl_output(
        "admin",
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(yaml),
    );
    assert!(
        out.status.success(),
        "server-side apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Installed {
    child: Child,
    log: PathBuf,
    admin_port: u16,
}

impl Installed {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, body) = http_get(self.admin_port, "/metrics").unwrap_or_default();
        body.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- the operator's log, last lines first:\n{}",
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary as the Deployment of `rendered` would: its args and env, as its
/// ServiceAccount (`kubeconfig`), with a work dir and admin port of this test's.
fn run_as_deployment(
    rendered: &[serde_yaml::Value],
    kubeconfig: &Path,
    dir: &Path,
    extra: &[&str],
) -> Installed {
    let deploy = rendered
        .iter()
        .find(|d| kind(d) == "Deployment")
        .expect("a Deployment");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        // This test's own values of a flag replace the Deployment's.
        .filter(|a| {
            let name = a.split('=').next().unwrap_or_default();
            name != "--work-dir" && !extra.iter().any(|e| e.starts_with(&format!("{name}=")))
        })
        .collect();
    // Replicas of one host need endpoints of their own, and short lease timings keep a test's
    // handovers in seconds.
    let forward_port = free_port();
    let election = [
        format!("--forward-addr=127.0.0.1:{forward_port}"),
        "--lease-duration=3s".into(),
        "--lease-renew-deadline=2s".into(),
        "--lease-retry-period=250ms".into(),
    ];
    assert_eq!(args[0], "run");
    let admin_port = free_port();
    let log = dir.join("operator.log");
    let child = Command::new(env!("CARGO_BIN_EXE_gitops-reverser"))
        .args(&args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg(format!("--work-dir={}", dir.join("work").display()))
        .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
        .args(&election)
        .args(extra)
        // The Deployment's env from the downward API: POD_NAMESPACE, and the pod's name and IP.
        .env(
            "POD_NAMESPACE",
            deploy["metadata"]["namespace"].as_str().unwrap(),
        )
        .env("POD_NAME", dir.file_name().unwrap())
        .env("POD_IP", "127.0.0.1")
        .env("RUST_LOG", "info,gitops_reverser_runtime=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the operator starts");
    Installed {
        child,
        log,
        admin_port,
    }
}

/// A kubeconfig for the installed ServiceAccount, with a token from the TokenRequest API.
fn service_account_kubeconfig(c: &Cluster, dir: &Path) -> PathBuf {
    let token = c.kubectl(
        "admin",
        &[
            "create",
            "token",
            "gitops-reverser",
            "-n",
            "gitops-reverser-system",
            "--duration=1h",
        ],
    );
    let admin = std::fs::read_to_string(c.kubeconfig("admin")).unwrap();
    let path = dir.join("kubeconfig-sa");
    std::fs::write(
        &path,
        admin.replace("token: admin", &format!("token: {}", token.trim())),
    )
    .unwrap();
    path
}

/// What `cmd` prints with `input` on its standard input.
fn piped(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn base64_decode(text: &str) -> Vec<u8> {
    piped(Command::new("base64").arg("-d"), text.as_bytes()).stdout
}

/// The SHA-256 fingerprint of a PEM certificate.
fn fingerprint(pem: &[u8]) -> String {
    let out = piped(
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256"]),
        pem,
    );
    assert!(out.status.success(), "not a certificate");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The fingerprint of the certificate served on 127.0.0.1:`port`.
fn served_fingerprint(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    fingerprint(&out.stdout)
}

fn webhook_field(c: &Cluster, path: &str) -> String {
    c.jsonpath(
        &["get", "validatingwebhookconfiguration", "gitops-reverser"],
        &format!("{{.webhooks[0].{path}}}"),
    )
}

#[test]
fn every_overlay_and_component_renders() {
    let root = repo_root();
    for dir in [
        "deploy/crds",
        "deploy/base",
        "deploy/overlays/local",
        "deploy/overlays/cert-manager",
    ] {
        let rendered = docs(&kustomize(&root.join(dir)));
        assert!(!rendered.is_empty(), "{dir} renders nothing");
    }
    // The overlays change what they say they change (the cert-manager one patches an argument
    // by position: a reordered base would show here).
    let args_of = |rendered: &[serde_yaml::Value]| {
        let d = rendered.iter().find(|d| kind(d) == "Deployment").unwrap();
        serde_yaml::to_string(&d["spec"]["template"]["spec"]).unwrap()
    };
    let hook_of = |rendered: &[serde_yaml::Value]| {
        let d = rendered
            .iter()
            .find(|d| kind(d) == "ValidatingWebhookConfiguration")
            .unwrap();
        serde_yaml::to_string(d).unwrap()
    };
    let cm = docs(&kustomize(&root.join("deploy/overlays/cert-manager")));
    let pod = args_of(&cm);
    assert!(
        pod.contains("--webhook-certs=files")
            && !pod.contains("self-managed")
            && pod.contains("--webhook-configuration=gitops-reverser")
            && pod.contains("mountPath: /tls"),
        "{pod}"
    );
    assert!(hook_of(&cm).contains("cert-manager.io/inject-ca-from"));
    assert!(cm.iter().any(|d| kind(d) == "Certificate"));
    let local = docs(&kustomize(&root.join("deploy/overlays/local")));
    assert!(args_of(&local).contains("--webhook-certs=self-managed"));
    let hook = hook_of(&local);
    assert!(
        hook.contains("url: https://127.0.0.1:19443/") && !hook.contains("service:"),
        "{hook}"
    );
    let base = docs(&kustomize(&root.join("deploy/base")));
    let kinds: Vec<&str> = base.iter().map(kind).collect();
    for k in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "ValidatingWebhookConfiguration",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&k), "the base has no {k}: {kinds:?}");
    }
    // The pod as the issue of least privilege wants it.
    let deploy = base.iter().find(|d| kind(d) == "Deployment").unwrap();
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"],
        serde_yaml::Value::Bool(true)
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        serde_yaml::Value::from("RuntimeDefault")
    );
    let sc = &pod["containers"][0]["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], serde_yaml::Value::Bool(true));
    assert_eq!(
        sc["allowPrivilegeEscalation"],
        serde_yaml::Value::Bool(false)
    );
    assert_eq!(
        sc["capabilities"]["drop"][0],
        serde_yaml::Value::from("ALL")
    );
    // Two replicas, one leader; on different nodes where there are several; one at a time.
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(2));
    let env = serde_yaml::to_string(&pod["containers"][0]["env"]).unwrap();
    assert!(env.contains("POD_NAME") && env.contains("POD_IP"), "{env}");
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
            ["podAffinityTerm"]["topologyKey"],
        serde_yaml::Value::from("kubernetes.io/hostname")
    );
    let pdb = base
        .iter()
        .find(|d| kind(d) == "PodDisruptionBudget")
        .unwrap();
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let args = serde_yaml::to_string(&pod["containers"][0]["args"]).unwrap();
    assert!(
        args.contains("--shutdown-timeout=20s") && grace > 20,
        "{args}"
    );
    assert!(args.contains("--leader-election"), "{args}");
    assert!(
        !args.contains("allow-file-remotes"),
        "the manifests never allow file://"
    );
    // The webhook: fails open, no side effects, no rules until the operator writes them.
    let hook = &base
        .iter()
        .find(|d| kind(d) == "ValidatingWebhookConfiguration")
        .unwrap()["webhooks"][0];
    assert_eq!(hook["failurePolicy"], serde_yaml::Value::from("Ignore"));
    assert_eq!(hook["sideEffects"], serde_yaml::Value::from("None"));
    assert!(hook["rules"].is_null() && hook["clientConfig"]["caBundle"].is_null());
    let selector = serde_yaml::to_string(&hook["namespaceSelector"]).unwrap();
    for needle in [
        "gitops-reverser-webhook",
        "kube-system",
        "kube-node-lease",
        "gitops-reverser-system",
    ] {
        assert!(selector.contains(needle), "{selector}");
    }

    // The components, through a kustomization of this test's.
    let dir = tempfile::tempdir().unwrap();
    kustomization(
        dir.path(),
        &[root.join("deploy/base")],
        &[
            root.join("deploy/components/network-policy"),
            root.join("deploy/components/read-narrow"),
        ],
    );
    let with = docs(&kustomize(dir.path()));
    assert!(with.iter().any(|d| kind(d) == "NetworkPolicy"));
    let role = with.iter().find(|d| kind(d) == "ClusterRole").unwrap();
    assert!(!serde_yaml::to_string(&role["rules"][0])
        .unwrap()
        .contains("'*'"));
}

#[test]
fn installed_it_runs_as_its_service_account_with_certificates_and_webhook_rules_of_its_own() {
    let root = repo_root();
    let c = Cluster::start();
    let dir = tempfile::tempdir().unwrap();

    // The base applies (its PodDisruptionBudget is policy/v1, which this v1.20 API server does
    // not serve; the local overlay gives it as v1beta1 and applies whole).
    let base = kustomize(&root.join("deploy/base"));
    let base_but_pdb: Vec<String> = docs(&base)
        .into_iter()
        .filter(|d| kind(d) != "PodDisruptionBudget")
        .map(|d| serde_yaml::to_string(&d).unwrap())
        .collect();
    apply_server_side(&c, &base_but_pdb.join("---\n"));
    // The local overlay with the narrow read role, applied whole.
    kustomization(
        dir.path(),
        &[root.join("deploy/overlays/local")],
        &[root.join("deploy/components/read-narrow")],
    );
    let local = kustomize(dir.path());
    apply_server_side(&c, &local);
    assert_eq!(
        webhook_field(&c, "clientConfig.caBundle"),
        "",
        "the manifest sets no caBundle"
    );
    assert_eq!(webhook_field(&c, "rules"), "", "nor rules");

    namespace(&c, "team-a");

    let kubeconfig = service_account_kubeconfig(&c, dir.path());
    // Least privilege, as the API server sees that token: reads, but writes no ConfigMap.
    let can = |verb: &str, what: &str| {
        let (what, sub) = what.split_once('/').unwrap_or((what, ""));
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["auth", "can-i", verb, what, "-n", "team-a"])
            .arg(format!("--subresource={sub}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(can("list", "configmaps"), "yes");
    assert_eq!(can("create", "configmaps"), "no");
    assert_eq!(can("update", "watchrules.configbutler.ai/status"), "yes");
    assert_eq!(can("update", "watchrules.configbutler.ai"), "no");
    // Two replicas starting at once end with one Secret, and both serve its certificate.
    let racers: Vec<(Installed, u16)> = (0..2)
        .map(|i| {
            let d = dir.path().join(format!("racer-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let port = free_port();
            let addr = format!("--webhook-addr=127.0.0.1:{port}");
            (
                run_as_deployment(&docs(&local), &kubeconfig, &d, &[&addr]),
                port,
            )
        })
        .collect();
    for (r, _) in &racers {
        eventually("a racing replica's /readyz", || {
            http_get(r.admin_port, "/readyz").filter(|(code, _)| *code == 200)
        });
    }
    let stored = fingerprint(&base64_decode(&c.jsonpath(
        &[
            "get",
            "secret",
            "gitops-reverser-webhook-tls",
            "-n",
            "gitops-reverser-system",
        ],
        "{.data.tls\\.crt}",
    )));
    for (_, port) in &racers {
        assert_eq!(
            served_fingerprint(*port),
            stored,
            "each replica serves the one Secret's pair"
        );
    }
    drop(racers);

    // A short certificate lifetime, so that a rotation happens during the test: staged at 40 s,
    // serving at 50 s.
    let op = run_as_deployment(
        &docs(&local),
        &kubeconfig,
        dir.path(),
        &["--webhook-cert-lifetime=60s"],
    );
    eventually("the installed operator's /readyz", || {
        http_get(op.admin_port, "/readyz").filter(|(code, _)| *code == 200)
    });
    let bundle = eventually("the operator to fill the caBundle", || {
        Some(webhook_field(&c, "clientConfig.caBundle")).filter(|b| !b.is_empty())
    });
    let secret_ca = c.jsonpath(
        &[
            "get",
            "secret",
            "gitops-reverser-webhook-tls",
            "-n",
            "gitops-reverser-system",
        ],
        "{.data.ca\\.crt}",
    );
    assert_eq!(bundle, secret_ca, "the bundle is the Secret's CA");

    // Rules follow the watched types.
    let remote = Remote::new();
    c.apply("admin", &repo_config("team-a", &remote.url(), ""));
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "cms",
            "live",
            "[{version: v1, resource: configmaps}]",
        ),
    );
    c.await_ready("watchrule/cms", Some("team-a"), "True");
    eventually("the webhook's rules to list configmaps", || {
        let r = webhook_field(&c, "rules");
        (r.contains("configmaps") && !r.contains("deployments")).then_some(())
    });
    let resources = webhook_field(&c, "rules[*].resources[*]");
    assert_eq!(resources, "configmaps", "exactly the watched types");

    // The API server calls it, and alice is the author.
    let alice_cm = |name: &str, v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: team-a}}\ndata: {{v: \"{v}\"}}\n")
    };
    c.apply("alice", &alice_cm("first", "1"));
    let line = remote.await_commit("v1/configmaps/team-a/first");
    assert!(line.starts_with("alice|"), "{line}");

    // A namespace labelled out of the webhook is still mirrored, but the API server does not
    // call for it: its commits carry the fallback author.
    c.apply(
        "admin",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: quiet, labels: {gitops-reverser-webhook: disabled}}\n",
    );
    let quiet_remote = Remote::new();
    c.apply("admin", &repo_config("quiet", &quiet_remote.url(), ""));
    c.apply(
        "admin",
        &watch_rule(
            "quiet",
            "cms",
            "live",
            "[{version: v1, resource: configmaps}]",
        ),
    );
    c.await_ready("watchrule/cms", Some("quiet"), "True");
    let calls = "gitopsreverser_webhook_requests_total";
    let before = op.metric(calls);
    c.apply(
        "alice",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unseen, namespace: quiet}\ndata: {a: b}\n",
    );
    let line = quiet_remote.await_commit("v1/configmaps/quiet/unseen");
    assert!(line.starts_with("gitops-reverser|"), "{line}");
    assert_eq!(
        op.metric(calls),
        before,
        "the API server did not call for the opted-out namespace"
    );

    // A rotation: the new CA is trusted first, then the new pair serves.
    eventually_within("a certificate rotation", 90_000, || {
        op.log()
            .contains("webhook certificate rotated")
            .then_some(())
    });
    let rotated = webhook_field(&c, "clientConfig.caBundle");
    assert_ne!(rotated, bundle, "the bundle changed with the rotation");
    c.apply("bob", &alice_cm("first", "2"));
    let line = eventually("bob's update committed", || {
        remote
            .log()
            .into_iter()
            .find(|l| l.contains("[UPDATE] v1/configmaps/team-a/first"))
    });
    assert!(
        line.starts_with("bob|"),
        "attribution survives the rotation: {line}"
    );

    // A rule on a new type: the API server is asked for it too, and its changes are attributed.
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "apps",
            "live",
            "[{group: apps, version: v1, resource: deployments}]",
        ),
    );
    c.await_ready("watchrule/apps", Some("team-a"), "True");
    eventually("the webhook's rules to list deployments", || {
        webhook_field(&c, "rules")
            .contains("deployments")
            .then_some(())
    });
    let deployment = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: team-a}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        )
    };
    c.apply("alice", &deployment("web"));
    let line = remote.await_commit("apps/v1/deployments/team-a/web");
    assert!(line.starts_with("alice|"), "{line}");

    // The rule removed: the rules drop the type, and the API server stops calling for it.
    c.kubectl("admin", &["delete", "watchrule", "apps", "-n", "team-a"]);
    eventually("the webhook's rules to drop deployments", || {
        (!webhook_field(&c, "rules").contains("deployments")).then_some(())
    });
    eventually("the API server to stop calling for deployments", || {
        let before = op.metric(calls);
        c.apply("alice", &deployment(&format!("probe-{}", before as u64)));
        // A configmap write after it: once that one is counted, the deployment's call would have
        // been counted already (the API server calls in order for one client).
        c.apply("alice", &alice_cm("marker", &format!("{before}")));
        let after = eventually("the marker's call", || {
            Some(op.metric(calls)).filter(|a| *a > before)
        });
        (after == before + 1.0).then_some(())
    });

    // A rule on a type the installed role may not list says so.
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "daemons",
            "live",
            "[{group: apps, version: v1, resource: daemonsets}]",
        ),
    );
    let (reason, message) = c.await_ready("watchrule/daemons", Some("team-a"), "False");
    assert_eq!(reason, "Forbidden", "{message}");
    assert!(
        message.contains("daemonsets") && message.contains("ServiceAccount"),
        "{message}"
    );
    assert!(
        http_get(op.admin_port, "/readyz").is_some_and(|(code, _)| code == 200),
        "a forbidden type does not make the operator unready"
    );

    // file:// is refused by the installed operator, and nothing is written at that path.
    namespace(&c, "team-b");
    let planted = dir.path().join("planted.git");
    c.apply(
        "admin",
        &repo_config("team-b", &format!("file://{}", planted.display()), ""),
    );
    c.apply(
        "admin",
        &watch_rule(
            "team-b",
            "cms",
            "live",
            "[{version: v1, resource: configmaps}]",
        ),
    );
    c.apply(
        "alice",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: team-b}\ndata: {a: b}\n",
    );
    let (reason, _) = c.await_ready("gitrepoconfig/repo", Some("team-b"), "False");
    assert_eq!(reason, "FileRemoteRefused");
    assert!(!planted.exists(), "nothing is written at a refused path");

    // Every example applies (last: its rules would add types to the webhook's).
    for f in std::fs::read_dir(root.join("deploy/examples")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        c.apply("admin", &text);
    }

    assert!(
        !op.log().contains("\u{1b}["),
        "no colour codes in a log that is not a terminal"
    );
}

#[test]
fn without_its_crds_it_names_the_missing_one_in_the_log_and_readyz() {
    let root = repo_root();
    let c = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    c.kubectl("admin", &["delete", "crd", "watchrules.configbutler.ai"]);
    support::cluster::serving_cert(dir.path());
    let admin_port = free_port();
    let log = dir.path().join("operator.log");
    let child = Command::new(env!("CARGO_BIN_EXE_gitops-reverser"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(c.kubeconfig("gitops-reverser"))
        .arg(format!("--webhook-addr=127.0.0.1:{}", free_port()))
        .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let op = Installed {
        child,
        log,
        admin_port,
    };
    let why = "the CustomResourceDefinition watchrules.configbutler.ai is not installed";
    let (code, body) = eventually("/readyz to name the missing CRD", || {
        http_get(op.admin_port, "/readyz").filter(|(_, body)| body.contains(why))
    });
    assert_eq!(code, 503);
    assert!(
        body.contains("kubectl apply --server-side -k deploy/crds"),
        "{body}"
    );
    assert!(op.log().contains(why), "the log names it too");
    assert!(
        !op.log().contains("\u{1b}["),
        "no colour codes in a log that is not a terminal"
    );

    // Installed, it is ready.
    c.kubectl(
        "admin",
        &["apply", "-k", root.join("deploy/crds").to_str().unwrap()],
    );
    eventually("/readyz once the CRD is back", || {
        http_get(op.admin_port, "/readyz").filter(|(code, _)| *code == 200)
    });
}
