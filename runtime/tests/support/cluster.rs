//! A real control plane (etcd + kube-apiserver v1.20.2 on loopback, from `tests/cluster/`) and
//! the operator binary run against it, for the end-to-end tests. Everything started is stopped
//! on drop. A missing prerequisite fails the test with the command that installs it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::{bare_repo, free_port, git, git_daemon, Server};

/// How long the end-to-end tests wait for something the cluster or the operator does.
pub const E2E_TIMEOUT_MS: u64 = 60_000;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Polls `f` until it returns `Some`, or fails with `what`.
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    eventually_within(what, E2E_TIMEOUT_MS, f)
}

/// [`eventually`] with a wait of its own, for what takes longer (a certificate rotation).
pub fn eventually_within<T>(what: &str, ms: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// etcd and kube-apiserver, with users admin, alice, bob, carol and gitops-reverser.
pub struct Cluster {
    /// Its folder (certificates, kubeconfigs, logs).
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a fresh cluster with the reverser's CRDs installed.
    pub fn start() -> Cluster {
        let root = repo_root();
        let cache = std::env::var("GITOPS_REVERSER_CACHE")
            .unwrap_or_else(|_| "/var/cache/gitops-reverser".into());
        let apiserver = Path::new(&cache).join("kube-apiserver-v1.20.2/kube-apiserver");
        assert!(
            apiserver.is_file(),
            "{} is missing: run tests/cluster/install (it builds kube-apiserver once per machine)",
            apiserver.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(root.join("tests/cluster/up"))
            .arg(dir.path())
            .output()
            .expect("tests/cluster/up runs");
        assert!(
            out.status.success(),
            "tests/cluster/up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Cluster { dir };
        c.kubectl(
            "admin",
            &["apply", "-k", root.join("deploy/crds").to_str().unwrap()],
        );
        for crd in ["gitrepoconfigs", "watchrules", "clusterwatchrules"] {
            c.kubectl(
                "admin",
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    &format!("crd/{crd}.configbutler.ai"),
                ],
            );
        }
        c
    }

    /// A user's kubeconfig.
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("kubeconfig-{user}"))
    }

    /// Runs kubectl as `user`.
    pub fn kubectl_output(&self, user: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig(user))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Runs kubectl as `user`, asserts success and returns stdout.
    pub fn kubectl(&self, user: &str, args: &[&str]) -> String {
        let out = self.kubectl_output(user, args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?} as {user} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply -f -` as `user`.
    pub fn apply(&self, user: &str, yaml: &str) -> String {
        let out = self.kubectl_output(user, &["apply", "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "kubectl apply as {user} failed: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A JSONPath of one object, read as admin (empty when absent).
    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut a = args.to_vec();
        let p = format!("jsonpath={path}");
        a.extend(["-o", &p]);
        let out = self.kubectl_output("admin", &a, None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until a custom resource's `Ready` condition has `status` and returns its reason.
    pub fn await_ready(&self, kind_name: &str, ns: Option<&str>, status: &str) -> (String, String) {
        self.await_ready_with(kind_name, ns, status, |_| true)
    }

    /// Waits until a custom resource's condition `type_` has `status`; returns its reason and
    /// message.
    pub fn await_condition(
        &self,
        kind_name: &str,
        ns: Option<&str>,
        type_: &str,
        status: &str,
    ) -> (String, String) {
        let mut args = vec!["get", kind_name];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let at = |field: &str| format!("{{.status.conditions[?(@.type==\"{type_}\")].{field}}}");
        eventually(&format!("{kind_name} {type_}={status}"), || {
            (self.jsonpath(&args, &at("status")) == status).then(|| {
                (
                    self.jsonpath(&args, &at("reason")),
                    self.jsonpath(&args, &at("message")),
                )
            })
        })
    }

    /// [`Cluster::await_ready`] until the message also satisfies `message_ok` (a status that
    /// stays False while its reason's text changes).
    pub fn await_ready_with(
        &self,
        kind_name: &str,
        ns: Option<&str>,
        status: &str,
        message_ok: impl Fn(&str) -> bool,
    ) -> (String, String) {
        let mut args = vec!["get", kind_name];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        eventually(&format!("{kind_name} Ready={status}"), || {
            let s = self.jsonpath(&args, "{.status.conditions[?(@.type==\"Ready\")].status}");
            if s != status {
                return None;
            }
            let message =
                self.jsonpath(&args, "{.status.conditions[?(@.type==\"Ready\")].message}");
            message_ok(&message).then(|| {
                (
                    self.jsonpath(&args, "{.status.conditions[?(@.type==\"Ready\")].reason}"),
                    message,
                )
            })
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("tests/cluster/down"))
            .arg(self.dir.path())
            .status();
    }
}

/// The operator binary, run against a [`Cluster`], with its webhook registered.
pub struct Operator {
    child: Option<Child>,
    /// Its folder: certificate, clones, log, input recording.
    pub dir: PathBuf,
    /// The webhook's port.
    pub webhook_port: u16,
    /// The admin port.
    pub admin_port: u16,
    kubeconfig: PathBuf,
}

/// A self-signed serving certificate for 127.0.0.1 in `dir` (`tls.crt`, `tls.key`).
pub fn serving_cert(dir: &Path) {
    super::self_signed_cert(&dir.join("tls.crt"), &dir.join("tls.key"));
}

/// A plain HTTP GET on loopback: status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

impl Operator {
    /// Starts the operator in `dir` (made if missing) and waits until it is ready and the API
    /// server calls its webhook.
    pub fn start(cluster: &Cluster, dir: &Path, extra: &[&str]) -> Operator {
        std::fs::create_dir_all(dir).unwrap();
        if !dir.join("tls.crt").exists() {
            serving_cert(dir);
        }
        let mut op = Operator {
            child: None,
            dir: dir.to_path_buf(),
            webhook_port: free_port(),
            admin_port: free_port(),
            kubeconfig: cluster.kubeconfig("gitops-reverser"),
        };
        op.spawn(extra);
        op.register_webhook(cluster);
        op
    }

    fn spawn(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("operator.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gitops-reverser"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "--webhook-addr",
                &format!("127.0.0.1:{}", self.webhook_port),
            ])
            .args(["--admin-addr", &format!("127.0.0.1:{}", self.admin_port)])
            .args(["--cluster-rule-namespaces", "team-a"])
            .arg("--tls-cert")
            .arg(self.dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(self.dir.join("tls.key"))
            .arg("--work-dir")
            .arg(self.dir.join("work"))
            .arg("--record-inputs")
            .arg(self.dir.join("inputs.jsonl"))
            .args(extra)
            .env("RUST_LOG", "info,gitops_reverser_runtime=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the operator starts");
        self.child = Some(child);
        let port = self.admin_port;
        eventually("the operator's /readyz", || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the operator exited with {status}:\n{}", self.log());
            }
            http_get(port, "/readyz").filter(|(c, _)| *c == 200)
        });
    }

    /// Registers the webhook and waits until the API server calls it (`register-webhook`).
    fn register_webhook(&self, cluster: &Cluster) {
        let out = Command::new(repo_root().join("tests/cluster/register-webhook"))
            .arg(cluster.kubeconfig("admin"))
            .arg(self.webhook_port.to_string())
            .arg(self.dir.join("tls.crt"))
            .arg(self.admin_port.to_string())
            .output()
            .expect("register-webhook runs");
        assert!(
            out.status.success(),
            "register-webhook failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A metric's value.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http_get(self.admin_port, "/metrics")?;
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l[name.len()..].trim().parse().ok())
    }

    /// The operator's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("operator.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit. With `GITOPS_REVERSER_SAVE_RECORDINGS=DIR` the run's input
    /// recording is kept as `DIR/<test>-<n>.jsonl` (how `corpus/`'s real recordings are made).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        if let Some(dir) = std::env::var_os("GITOPS_REVERSER_SAVE_RECORDINGS") {
            let test = std::thread::current()
                .name()
                .unwrap_or("run")
                .replace("::", "-");
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            let n = (1..)
                .find(|n| !dir.join(format!("{test}-{n}.jsonl")).exists())
                .unwrap();
            let to = dir.join(format!("{test}-{n}.jsonl"));
            std::fs::copy(self.dir.join("inputs.jsonl"), to).unwrap();
        }
        status
    }

    /// Starts it again with the same folder and ports.
    pub fn restart(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn(extra);
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- operator log ----\n{}", self.log());
        }
    }
}

/// A bare repository behind `git daemon`, read back with git.
pub struct Remote {
    /// The daemon.
    pub server: Server,
    /// The bare repository.
    pub repo: PathBuf,
}

impl Remote {
    pub fn new() -> Remote {
        let server = git_daemon();
        let repo = bare_repo(server.dir.path(), "repo.git");
        Remote { server, repo }
    }

    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo.git", self.server.port)
    }

    pub fn has_branch(&self) -> bool {
        git(&self.repo, &["branch", "--list", "main"]).contains("main")
    }

    /// `author|subject` of every commit on main, oldest first.
    pub fn log(&self) -> Vec<String> {
        if !self.has_branch() {
            return Vec::new();
        }
        git(&self.repo, &["log", "--reverse", "--format=%an|%s", "main"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn file(&self, path: &str) -> Option<String> {
        if !self.has_branch() {
            return None;
        }
        let out = std::process::Command::new("git")
            .args(["show", &format!("main:{path}")])
            .current_dir(&self.repo)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    pub fn await_commit(&self, what: &str) -> String {
        eventually(what, || self.log().into_iter().find(|l| l.ends_with(what)))
    }
}

/// A GitRepoConfig `repo` in `ns` for `url`, main only, pushing every second; `extra` is more
/// spec lines.
pub fn repo_config(ns: &str, url: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: configbutler.ai/v1alpha1
kind: GitRepoConfig
metadata: {{name: repo, namespace: {ns}}}
spec:
  repoURL: {url}
  allowedBranches: [main]
  push: {{interval: "1s", maxCommits: 1}}
{extra}"#
    )
}

pub fn watch_rule(ns: &str, name: &str, base: &str, resources: &str) -> String {
    format!(
        r#"apiVersion: configbutler.ai/v1alpha1
kind: WatchRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  gitRepoConfigRef: repo
  baseFolder: {base}
  resources: {resources}
"#
    )
}

pub fn namespace(c: &Cluster, ns: &str) {
    c.apply(
        "admin",
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
    );
}

/// A rule is in force once its status says so and the operator has listed its streams again.
pub fn await_rule(c: &Cluster, op: &Operator, ns: &str, name: &str) {
    c.await_ready(&format!("watchrule/{name}"), Some(ns), "True");
    eventually("the operator synced", || {
        http_get(op.admin_port, "/readyz").filter(|(code, _)| *code == 200)
    });
}

/// team-a's ConfigMaps mirrored to `remote` under `clusters/prod` (GitRepoConfig `repo`,
/// WatchRule `cms`), the rule in force on `op` (the leader, with several replicas).
pub fn mirror_configmaps(c: &Cluster, op: &Operator, remote: &Remote) {
    c.apply("admin", &repo_config("team-a", &remote.url(), ""));
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "cms",
            "clusters/prod",
            "[{version: v1, resource: configmaps}]",
        ),
    );
    await_rule(c, op, "team-a", "cms");
}
