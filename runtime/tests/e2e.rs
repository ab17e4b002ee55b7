//! End to end against a real kube-apiserver 1.20 + etcd on loopback and a real git daemon: the
//! API server itself calls the operator's webhook, and every assertion reads the remote.
//!
//! Each test starts its own cluster and operator; they run one at a time (one control plane on
//! two cores at once is plenty).

mod support;

use std::path::Path;
use std::sync::Mutex;

use support::cluster::{
    await_rule, eventually, mirror_configmaps, namespace, repo_config, watch_rule, Cluster,
    Operator, Remote,
};
use support::git;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The head of team-a's credentials Secret `creds`, labelled so that the operator may use it.
const CREDS_SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: team-a, labels: {configbutler.ai/credentials: \"true\"}}\n";

/// An https:// URL for GitRepoConfigs that carry credentials (never sent over git://). Nothing
/// listens there: these tests read statuses, and no rule writes through them.
const SECURE_URL: &str = "https://127.0.0.1:9/repo.git";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// One test's world, started in this order: its cluster, a git daemon with an empty repository, the
/// operator (its webhook registered) and namespace `team-a`. Bound in the order of the fields, they
/// drop in reverse: the operator first, the lock last.
struct World {
    one: std::sync::MutexGuard<'static, ()>,
    c: Cluster,
    remote: Remote,
    dir: tempfile::TempDir,
    op: Operator,
}

fn world() -> World {
    let one = serial();
    let c = Cluster::start();
    let remote = Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let op = Operator::start(&c, dir.path(), &[]);
    namespace(&c, "team-a");
    World {
        one,
        c,
        remote,
        dir,
        op,
    }
}

/// Installs the Widget CRD (namespaced, `example.com`) serving `versions`, the first the storage
/// version, and waits until it is established.
fn install_widgets(c: &Cluster, versions: &[&str]) {
    let versions: String = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "  - name: {v}\n    served: true\n    storage: {}\n    schema:\n      \
                 openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
                i == 0
            )
        })
        .collect();
    c.apply(
        "admin",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {{name: widgets.example.com}}\nspec:\n  group: example.com\n  \
             names: {{kind: Widget, plural: widgets, singular: widget}}\n  scope: Namespaced\n  \
             versions:\n{versions}"
        ),
    );
    c.kubectl(
        "admin",
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/widgets.example.com",
        ],
    );
}

fn config_map(ns: &str, name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {data}\n")
}

#[test]
fn each_commit_is_authored_by_the_user_who_made_the_change() {
    let World {
        one: _one,
        c,
        remote,
        dir,
        mut op,
    } = world();
    mirror_configmaps(&c, &op, &remote);

    let path = "clusters/prod/v1/configmaps/team-a/app-config.yaml";
    c.apply(
        "alice",
        &config_map("team-a", "app-config", "{LOG_LEVEL: info}"),
    );
    let created = remote.await_commit("[CREATE] v1/configmaps/team-a/app-config");
    assert_eq!(created, "alice|[CREATE] v1/configmaps/team-a/app-config");
    let yaml = remote.file(path).expect("the file at the documented path");
    assert!(yaml.contains("LOG_LEVEL: info"), "{yaml}");
    for noise in [
        "resourceVersion",
        "uid:",
        "managedFields",
        "creationTimestamp",
        "last-applied-configuration",
    ] {
        assert!(!yaml.contains(noise), "{noise} left in:\n{yaml}");
    }

    c.apply(
        "bob",
        &config_map("team-a", "app-config", "{LOG_LEVEL: debug}"),
    );
    let updated = remote.await_commit("[UPDATE] v1/configmaps/team-a/app-config");
    assert_eq!(updated, "bob|[UPDATE] v1/configmaps/team-a/app-config");
    assert!(remote.file(path).unwrap().contains("LOG_LEVEL: debug"));

    c.kubectl(
        "alice",
        &["delete", "configmap", "app-config", "-n", "team-a"],
    );
    let deleted = remote.await_commit("[DELETE] v1/configmaps/team-a/app-config");
    assert_eq!(deleted, "alice|[DELETE] v1/configmaps/team-a/app-config");
    assert_eq!(remote.file(path), None, "the deleted object's file is gone");

    // The recording of the run replays into a fresh core as the same commits.
    assert!(op.stop().success());
    assert_eq!(
        replayed_commits(&dir.path().join("inputs.jsonl")),
        remote.log()
    );
}

/// `author|subject` of every commit a recording's replay pushes.
fn replayed_commits(recording: &Path) -> Vec<String> {
    use gitops_reverser_core::io::{GitOpKind, Output};
    use gitops_reverser_core::Core;
    let text = std::fs::read_to_string(recording).unwrap();
    let rec = gitops_reverser_core::record::read(&text).unwrap();
    assert!(rec.bad_lines.is_empty(), "{:?}", rec.bad_lines);
    let mut core = Core::new(rec.header.config.clone());
    let mut pushed = Vec::new();
    for e in rec.entries {
        core.handle(e.now, e.input);
        while let Some(out) = core.poll_output() {
            if let Output::Git(op) = out {
                if let GitOpKind::Push { commits, .. } = op.kind {
                    for c in commits {
                        let subject = c.message.lines().next().unwrap_or_default().to_string();
                        pushed.push(format!("{}|{subject}", c.author.name));
                    }
                }
            }
        }
    }
    pushed
}

#[test]
fn a_secret_that_existed_before_the_operator_started_is_redacted_everywhere_in_history() {
    let _one = serial();
    let c = Cluster::start();
    let remote = Remote::new();
    namespace(&c, "team-a");
    let value = "pre-existing-s3cr3t-value-8d1f";
    c.apply(
        "alice",
        &format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: team-a}}\nstringData: {{password: {value}}}\n"),
    );
    c.apply("admin", &repo_config("team-a", &remote.url(), ""));
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "secrets",
            "live",
            "[{version: v1, resource: secrets}]",
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let _op = Operator::start(&c, dir.path(), &[]);

    let path = "live/v1/secrets/team-a/db.yaml";
    let yaml = eventually("the Secret's file", || remote.file(path));
    assert!(yaml.contains("password: \"<redacted>\""), "{yaml}");
    assert!(yaml.contains("kind: Secret"), "{yaml}");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    let history = git(&remote.repo, &["log", "-p", "--all"]);
    assert!(!history.contains(value), "plaintext in history");
    assert!(!history.contains(&b64), "base64 in history");
}

#[test]
fn a_crd_created_after_the_operator_started_is_watched_once_established() {
    let World {
        one: _one,
        c,
        remote,
        dir: _dir,
        op,
    } = world();
    c.apply("admin", &repo_config("team-a", &remote.url(), ""));
    install_widgets(&c, &["v1"]);
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "widgets",
            "live",
            "[{group: example.com, version: v1, resource: widgets}]",
        ),
    );
    await_rule(&c, &op, "team-a", "widgets");
    c.apply(
        "carol",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: team-a}\nspec: {size: 3}\n",
    );
    let commit = remote.await_commit("[CREATE] example.com/v1/widgets/team-a/w1");
    assert_eq!(commit, "carol|[CREATE] example.com/v1/widgets/team-a/w1");
    let yaml = remote
        .file("live/example.com/v1/widgets/team-a/w1.yaml")
        .unwrap();
    assert!(yaml.contains("size: 3"), "{yaml}");

    // The type goes away: its stream stops, and the operator goes on serving.
    c.kubectl("admin", &["delete", "crd", "widgets.example.com"]);
    eventually("the widgets stream stopped", || {
        op.log()
            .lines()
            .any(|l| l.contains("watch stopped") && l.contains("example.com/v1/widgets"))
            .then_some(())
    });
    let ready = support::cluster::http_get(op.admin_port, "/readyz");
    assert_eq!(ready.map(|(code, _)| code), Some(200));
}

#[test]
fn configuration_a_user_must_fix_shows_in_the_status_with_its_reason() {
    let World {
        one: _one,
        c,
        remote,
        dir: _dir,
        op: _op,
    } = world();
    // Credentials are never sent in plaintext: git:// with a Secret is refused outright.
    c.apply(
        "admin",
        &repo_config("team-a", &remote.url(), "  secretRef: {name: creds}\n"),
    );
    let (reason, message) =
        c.await_ready_with("gitrepoconfig/repo", Some("team-a"), "False", |m| {
            m.contains("plaintext")
        });
    assert_eq!(reason, "PlaintextCredentials", "{message}");
    assert!(message.contains("https:// or ssh://"), "{message}");
    // A path on the operator's own filesystem is refused (no --allow-file-remotes here).
    let elsewhere = _dir.path().join("planted.git");
    c.apply(
        "admin",
        &repo_config("team-a", &format!("file://{}", elsewhere.display()), ""),
    );
    let (reason, message) =
        c.await_ready_with("gitrepoconfig/repo", Some("team-a"), "False", |m| {
            m.contains("--allow-file-remotes")
        });
    assert_eq!(reason, "FileRemoteRefused", "{message}");

    // A Secret that does not opt in is not used, and the status tells nothing of it.
    c.apply(
        "admin",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: team-a}\nstringData: {username: git}\n",
    );
    c.apply(
        "admin",
        &repo_config("team-a", SECURE_URL, "  secretRef: {name: creds}\n"),
    );
    let (reason, message) =
        c.await_ready_with("gitrepoconfig/repo", Some("team-a"), "False", |m| {
            m.contains("not labelled")
        });
    assert_eq!(reason, "CredentialsInvalid");
    assert!(
        message.contains("not labelled configbutler.ai/credentials=true")
            && !message.contains("username"),
        "{message}"
    );
    // Labelled, it is read, and what is wrong with it is said.
    c.apply(
        "admin",
        &format!("{CREDS_SECRET}stringData: {{username: git}}\n"),
    );
    let (reason, message) =
        c.await_ready_with("gitrepoconfig/repo", Some("team-a"), "False", |m| {
            m.contains("password")
        });
    assert_eq!(reason, "CredentialsInvalid");
    assert!(
        message.contains("username") && message.contains("password"),
        "{message}"
    );

    // Fixing the Secret fixes the status.
    c.apply(
        "admin",
        &format!("{CREDS_SECRET}stringData: {{username: git, password: pw}}\n"),
    );
    c.await_ready("gitrepoconfig/repo", Some("team-a"), "True");

    // Tenancy: a GitRepoConfig's Secret is read from its own namespace only.
    namespace(&c, "team-b");
    c.apply(
        "admin",
        &repo_config("team-b", SECURE_URL, "  secretRef: {name: creds}\n"),
    );
    let (reason, message) = c.await_ready("gitrepoconfig/repo", Some("team-b"), "False");
    assert_eq!(reason, "CredentialsInvalid");
    assert!(
        message.contains("not found in namespace team-b"),
        "{message}"
    );

    let mut rule = watch_rule(
        "team-a",
        "wrong-branch",
        "live",
        "[{version: v1, resource: configmaps}]",
    );
    rule.push_str("  branch: release\n");
    c.apply("admin", &rule);
    let (reason, message) = c.await_ready("watchrule/wrong-branch", Some("team-a"), "False");
    assert!(
        !reason.is_empty() && message.contains("release"),
        "{reason}: {message}"
    );

    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "bad-folder",
            "'teams\\prod'",
            "[{version: v1, resource: configmaps}]",
        ),
    );
    let (reason, message) = c.await_ready("watchrule/bad-folder", Some("team-a"), "False");
    assert!(
        !reason.is_empty() && message.contains("teams\\prod"),
        "{reason}: {message}"
    );

    // What the CRD's schema can say, the API server refuses before the operator sees it.
    let out = c.kubectl_output(
        "admin",
        &["apply", "-f", "-"],
        Some(&watch_rule(
            "team-a",
            "absolute",
            "/abs",
            "[{version: v1, resource: configmaps}]",
        )),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("baseFolder"));

    let table = c.kubectl("admin", &["get", "gitrepoconfigs", "-n", "team-a"]);
    for column in ["READY", "REASON", "BRANCHES", "LAST PUSH"] {
        assert!(table.contains(column), "{table}");
    }
}

fn curl_post(op: &Operator, body_file: &Path, extra: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(op.dir.join("tls.crt"))
        .args(extra)
        .args(["-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body_file.display()))
        .arg(format!(
            "https://127.0.0.1:{}/process-validating-webhook",
            op.webhook_port
        ))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn bad_webhook_bodies_get_a_4xx_while_a_valid_request_beside_them_is_allowed() {
    let World {
        one: _one,
        c: _c,
        remote: _remote,
        dir,
        op,
    } = world();
    let valid = include_str!("../../core/tests/fixtures/kube-apiserver-1.20/admission.jsonl")
        .lines()
        .next()
        .unwrap();
    let bodies = [
        ("valid", valid.to_string()),
        ("malformed", "{not json".to_string()),
        ("truncated", valid[..valid.len() / 2].to_string()),
        (
            "wrong kind",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#.to_string(),
        ),
        (
            "oversized",
            format!("{{\"x\":\"{}\"}}", "a".repeat(4 * 1024 * 1024)),
        ),
        // Text the error quotes back, with a newline that would start a log line of its own.
        (
            "forged log line",
            r#"{"apiVersion":"v1","kind":"Pod\nFORGED-LINE INFO alice did it"}"#.to_string(),
        ),
    ];
    let files: Vec<_> = bodies
        .iter()
        .map(|(name, body)| {
            let path = dir.path().join(name.replace(' ', "-"));
            std::fs::write(&path, body).unwrap();
            (*name, path)
        })
        .collect();
    let answers: Vec<(&str, (u16, String))> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|(name, path)| (*name, s.spawn(|| curl_post(&op, path, &[]))))
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| (n, h.join().unwrap()))
            .collect()
    });
    for (name, (code, body)) in answers {
        match name {
            "valid" => {
                assert_eq!(code, 200, "{body}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["response"]["allowed"], true);
                assert_eq!(v["kind"], "AdmissionReview");
                assert!(!v["response"]["uid"].as_str().unwrap().is_empty());
            }
            "oversized" => assert_eq!(code, 413, "{name}: {body}"),
            _ => {
                assert_eq!(code, 400, "{name}: {body}");
                assert!(!body.trim().is_empty(), "{name} has a message");
            }
        }
    }
    // And it keeps serving.
    let (code, _) = curl_post(&op, &files[0].1, &[]);
    assert_eq!(code, 200);
    // What a client sent is logged escaped: it cannot start a log line of its own.
    let log = op.log();
    assert!(log.contains("FORGED-LINE"), "the refusal is logged");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED-LINE")),
        "a client forged a log line"
    );
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_the_admin_server_backs_off_and_serves_again_once_they_are_free() {
    let World {
        one: _one,
        c: _c,
        remote: _remote,
        dir: _dir,
        op,
    } = world();
    let pid = op.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    // A few descriptors to spare, then far more clients than that: accept runs out. Only the
    // soft limit moves (raising it back needs no privilege).
    let prlimit = |nofile: &str| {
        let out = std::process::Command::new("prlimit")
            .args(["--pid", &pid.to_string(), nofile])
            .args(["--output", "SOFT", "--noheadings"])
            .output()
            .unwrap();
        assert!(out.status.success(), "prlimit {nofile}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let soft = prlimit("--nofile");
    prlimit(&format!("--nofile={}:", open + 8));
    let clients: Vec<std::net::TcpStream> = (0..40)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", op.admin_port)).ok())
        .collect();
    eventually("accept to fail for want of descriptors", || {
        op.log().contains("accept failed").then_some(())
    });
    let failures = || op.log().matches("accept failed").count();
    let (before, failed_before) = (cpu_ticks(pid), failures());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (spent, retries) = (cpu_ticks(pid) - before, failures() - failed_before);
    // Retried every ACCEPT_BACKOFF_MS (100 ms): about 20 tries in 2 s, not thousands, and
    // little CPU (a loop retrying at once burns a core: 200 ticks in 2 s).
    assert!(retries <= 40, "{retries} accept retries in 2 s");
    assert!(
        spent < 60,
        "{spent} ticks of CPU in 2 s while out of descriptors"
    );
    drop(clients);
    prlimit(&format!("--nofile={soft}:"));
    eventually("/healthz once descriptors are free", || {
        support::cluster::http_get(op.admin_port, "/healthz").filter(|(code, _)| *code == 200)
    });
}

#[test]
fn sigterm_pushes_pending_commits_and_a_restart_converges_on_changes_made_while_down() {
    let World {
        one: _one,
        c,
        remote,
        dir: _dir,
        mut op,
    } = world();
    // A long interval and a large batch: nothing is pushed until shutdown flushes.
    c.apply(
        "admin",
        &repo_config("team-a", &remote.url(), "").replace(
            "push: {interval: \"1s\", maxCommits: 1}",
            "push: {interval: \"1h\", maxCommits: 100}",
        ),
    );
    c.apply(
        "admin",
        &watch_rule("team-a", "cms", "", "[{version: v1, resource: configmaps}]"),
    );
    await_rule(&c, &op, "team-a", "cms");
    c.apply("alice", &config_map("team-a", "one", "{v: \"1\"}"));
    c.apply("alice", &config_map("team-a", "three", "{v: \"3\"}"));
    eventually("both changes queued", || {
        op.metric("gitopsreverser_events_processed_total")
            .filter(|n| *n >= 2.0)
    });
    assert!(
        remote.log().is_empty(),
        "nothing pushed before the interval"
    );
    let status = op.stop();
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        remote.log(),
        [
            "alice|[CREATE] v1/configmaps/team-a/one",
            "alice|[CREATE] v1/configmaps/team-a/three"
        ]
    );

    // While the operator is down (and the batching back to pushing at once).
    c.apply("admin", &repo_config("team-a", &remote.url(), ""));
    c.apply("bob", &config_map("team-a", "one", "{v: \"1b\"}"));
    c.apply("bob", &config_map("team-a", "two", "{v: \"2\"}"));
    c.kubectl("bob", &["delete", "configmap", "three", "-n", "team-a"]);

    op.restart(&["--shutdown-timeout", "5s"]);
    eventually("the remote converged", || {
        let one = remote.file("v1/configmaps/team-a/one.yaml")?;
        let two = remote.file("v1/configmaps/team-a/two.yaml")?;
        (one.contains("1b")
            && two.contains("v:")
            && remote.file("v1/configmaps/team-a/three.yaml").is_none())
        .then_some(())
    });
    assert!(op.stop().success());
}

/// Files of the remote's main branch under `folder`, sorted.
fn files_under(remote: &Remote, folder: &str) -> Vec<String> {
    if !remote.has_branch() {
        return Vec::new();
    }
    git(&remote.repo, &["ls-tree", "-r", "--name-only", "main"])
        .lines()
        .filter(|p| p.starts_with(&format!("{folder}/")))
        .map(str::to_owned)
        .collect()
}

/// Rules mean what users expect (one cluster for all five checks): a version wildcard writes one
/// file per object, at the preferred version, for built-in types and for a CRD serving two
/// versions; a resource wildcard leaves out Events and Leases; an entry for the wrong scope and a
/// repository with bad credentials show in the rules' status.
#[test]
fn rules_select_one_version_leave_out_churn_and_say_what_selects_nothing() {
    let World {
        one: _one,
        c,
        remote,
        dir: _dir,
        op,
    } = world();
    c.apply("admin", &repo_config("team-a", &remote.url(), ""));
    install_widgets(&c, &["v1", "v2"]);
    // The version is left at its default, `*`.
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "versions",
            "live",
            "[{group: autoscaling, resource: horizontalpodautoscalers}, \
             {group: networking.k8s.io, resource: ingresses}, \
             {group: example.com, resource: widgets}]",
        ),
    );
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "everything",
            "all",
            "[{group: '*', resource: '*'}]",
        ),
    );
    await_rule(&c, &op, "team-a", "versions");
    await_rule(&c, &op, "team-a", "everything");
    c.apply(
        "admin",
        "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: team-a}\n\
         spec: {maxReplicas: 3, scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}}\n",
    );
    c.apply(
        "admin",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: team-a}\n\
         spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n",
    );
    c.apply(
        "carol",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: team-a}\nspec: {size: 3}\n",
    );
    c.apply(
        "admin",
        "apiVersion: v1\nkind: Event\nmetadata: {name: web.1, namespace: team-a}\n\
         involvedObject: {kind: ConfigMap, name: web, namespace: team-a}\nreason: Tested\nmessage: noise\n",
    );
    c.apply(
        "admin",
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: web, namespace: team-a}\n\
         spec: {holderIdentity: web, leaseDurationSeconds: 15}\n",
    );
    // Written last: once its commit is in, everything before it has been seen.
    c.apply("bob", &config_map("team-a", "last", "{k: v}"));
    remote.await_commit("[CREATE] v1/configmaps/team-a/last");
    remote.await_commit("[CREATE] example.com/v2/widgets/team-a/w1");
    remote.await_commit("[CREATE] networking.k8s.io/v1/ingresses/team-a/web");
    remote.await_commit("[CREATE] autoscaling/v1/horizontalpodautoscalers/team-a/web");
    assert_eq!(
        files_under(&remote, "live"),
        [
            "live/autoscaling/v1/horizontalpodautoscalers/team-a/web.yaml",
            "live/example.com/v2/widgets/team-a/w1.yaml",
            "live/networking.k8s.io/v1/ingresses/team-a/web.yaml",
        ],
        "one file per object, at the preferred version"
    );
    let all = files_under(&remote, "all");
    assert!(
        all.contains(&"all/v1/configmaps/team-a/last.yaml".to_string()),
        "{all:?}"
    );
    assert!(
        !all.iter()
            .any(|p| p.contains("/events/") || p.contains("/leases/")),
        "{all:?}"
    );
    assert_eq!(
        all.iter()
            .filter(|p| p.ends_with("/ingresses/team-a/web.yaml"))
            .count(),
        1,
        "the Ingress once, not again under the legacy extensions group: {all:?}"
    );
    let log = op.log();
    assert!(
        !log.lines().any(|l| l.contains("watch started")
            && (l.contains("v1/events") || l.contains("coordination.k8s.io/v1/leases"))),
        "a resource wildcard started a stream of churn"
    );

    // A ClusterWatchRule entry defaults to scope: Cluster; ConfigMaps are namespaced.
    c.apply(
        "admin",
        "apiVersion: configbutler.ai/v1alpha1\nkind: ClusterWatchRule\nmetadata: {name: scoped}\n\
         spec:\n  gitRepoConfigRef: {name: repo, namespace: team-a}\n  baseFolder: scoped\n  \
         rules:\n  - resources: [{resource: configmaps}]\n",
    );
    let (reason, message) = c.await_ready("clusterwatchrule/scoped", None, "False");
    assert_eq!(reason, "WrongScope", "{message}");
    assert!(message.contains("scope: Namespaced"), "{message}");

    // A repository whose credentials are invalid shows on the rule that writes there.
    c.apply(
        "admin",
        &format!("{CREDS_SECRET}stringData: {{username: git}}\n"),
    );
    c.apply(
        "admin",
        &repo_config("team-a", SECURE_URL, "  secretRef: {name: creds}\n"),
    );
    let (reason, message) = c.await_ready("watchrule/versions", Some("team-a"), "False");
    assert_eq!(reason, "GitRepoConfigNotReady", "{message}");
    assert!(message.contains("CredentialsInvalid"), "{message}");
}

#[test]
fn with_a_client_ca_the_webhook_serves_the_api_server_and_refuses_anyone_else() {
    let one = serial();
    let c = Cluster::start();
    let remote = Remote::new();
    let dir = tempfile::tempdir().unwrap();
    let pki = c.dir.path().join("pki");
    let ca = pki.join("ca.crt");
    // `start` waits until a write is recorded through the webhook: the API server presented its
    // webhook client certificate (tests/cluster/up configures it) and was let in.
    let op = Operator::start(
        &c,
        dir.path(),
        &["--webhook-client-ca", ca.to_str().unwrap()],
    );
    namespace(&c, "team-a");
    mirror_configmaps(&c, &op, &remote);
    c.apply("alice", &config_map("team-a", "app", "{k: v}"));
    assert_eq!(
        remote.await_commit("[CREATE] v1/configmaps/team-a/app"),
        "alice|[CREATE] v1/configmaps/team-a/app"
    );

    // A client without a certificate (a pod forging a review that names alice) is refused in
    // the handshake: no HTTP answer at all.
    let review = dir.path().join("review.json");
    let valid = include_str!("../../core/tests/fixtures/kube-apiserver-1.20/admission.jsonl")
        .lines()
        .next()
        .unwrap();
    std::fs::write(&review, valid).unwrap();
    let (code, _) = curl_post(&op, &review, &[]);
    assert_eq!(code, 0, "refused before HTTP");
    // The same request with a certificate the CA signed is answered.
    let cert = pki.join("webhook-client.crt");
    let key = pki.join("webhook-client.key");
    let (code, body) = curl_post(
        &op,
        &review,
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 200, "{body}");
    drop(one);
}
