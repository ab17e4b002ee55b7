//! Several replicas against one real kube-apiserver + etcd and one git daemon: one leader runs the
//! core, every replica serves the webhook and forwards its records to the leader, and failover
//! loses nothing and names nobody wrongly.
//!
//! The replicas share a serving certificate (as the pods of a Deployment share their Secret), so
//! that each accepts the others on the forwarding endpoint. Short lease timings keep failover in
//! seconds.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::cluster::{
    eventually, eventually_within, mirror_configmaps, namespace, repo_config, watch_rule, Cluster,
    Operator, Remote,
};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Lease timings for tests: 3 s lease, 2 s renew deadline, 250 ms retry.
const LEASE: [&str; 6] = [
    "--lease-duration",
    "3s",
    "--lease-renew-deadline",
    "2s",
    "--lease-retry-period",
    "250ms",
];

/// A replica in `dir`, with the serving certificate of `cert_from` (if given) and its own
/// forwarding endpoint on loopback.
fn replica(c: &Cluster, dir: &Path, cert_from: Option<&Path>, name: &str) -> Operator {
    let args = replica_args(name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    std::fs::create_dir_all(dir).unwrap();
    if let Some(from) = cert_from {
        for f in ["tls.crt", "tls.key"] {
            std::fs::copy(from.join(f), dir.join(f)).unwrap();
        }
    }
    Operator::start(c, dir, &args)
}

/// A replica's flags: election with the test timings, and a forwarding endpoint of its own.
fn replica_args(name: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--leader-election",
        "--lease-identity",
        name,
        "--forward-addr",
        &format!("127.0.0.1:{}", support::free_port()),
        "--shutdown-timeout",
        "5s",
        // The leader narrows the webhook's rules to the watched types, as in a cluster: with
        // the test's `*` rules every Lease renewal would wait on the webhook.
        "--webhook-configuration",
        "gitops-reverser",
    ]
    .map(String::from)
    .to_vec();
    args.extend(LEASE.map(String::from));
    args
}

fn is_leader(op: &Operator) -> bool {
    op.metric("gitopsreverser_leader") == Some(1.0)
}

fn config_map(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: team-a}}\ndata: {data}\n")
}

/// Each commit's (author, subject), oldest first.
fn authored(remote: &Remote) -> Vec<(String, String)> {
    remote
        .log()
        .iter()
        .filter_map(|l| {
            let (author, subject) = l.split_once('|')?;
            Some((author.to_string(), subject.to_string()))
        })
        .collect()
}

fn kill(op: &Operator, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &op.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Two replicas: a leads, b follows and is the one the API server calls; team-a's ConfigMaps
/// are mirrored. Bound in the order of the fields, they drop in reverse: the replicas first, the
/// lock last.
struct Pair {
    _one: std::sync::MutexGuard<'static, ()>,
    c: Cluster,
    root: tempfile::TempDir,
    remote: Remote,
    b: Operator,
    a: Operator,
}

fn two_replicas() -> Pair {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start();
    let remote = Remote::new();
    let root = tempfile::tempdir().unwrap();
    let a = replica(&c, &root.path().join("a"), None, "replica-a");
    eventually("replica a to lead", || is_leader(&a).then_some(()));
    // Started second, b follows; its start registers the webhook at b's port only.
    let b = replica(
        &c,
        &root.path().join("b"),
        Some(&root.path().join("a")),
        "replica-b",
    );
    assert!(!is_leader(&b), "one leader: a leads, b follows");
    namespace(&c, "team-a");
    mirror_configmaps(&c, &a, &remote);
    Pair {
        _one,
        c,
        root,
        remote,
        b,
        a,
    }
}

#[test]
fn a_follower_forwards_its_records_and_the_leader_commits_them_under_the_users_names() {
    let Pair {
        _one,
        c,
        root,
        remote,
        b,
        a,
    } = two_replicas();
    let recorded = "gitopsreverser_webhook_requests_total{result=\"recorded\"}";
    let a_recorded = a.metric(recorded).unwrap_or(0.0);

    c.apply("alice", &config_map("app", "{k: alice}"));
    remote.await_commit("[CREATE] v1/configmaps/team-a/app");
    c.apply("bob", &config_map("app", "{k: bob}"));
    remote.await_commit("[UPDATE] v1/configmaps/team-a/app");
    let log = authored(&remote);
    let create = log
        .iter()
        .find(|(_, s)| s.contains("[CREATE] v1/configmaps/team-a/app"));
    let update = log
        .iter()
        .find(|(_, s)| s.contains("[UPDATE] v1/configmaps/team-a/app"));
    assert_eq!(create.map(|(a, _)| a.as_str()), Some("alice"), "{log:?}");
    assert_eq!(update.map(|(a, _)| a.as_str()), Some("bob"), "{log:?}");
    assert!(
        b.metric("gitopsreverser_records_delivered_total")
            .unwrap_or(0.0)
            >= 2.0
    );
    assert!(
        a.metric("gitopsreverser_records_received_total")
            .unwrap_or(0.0)
            >= 2.0
    );
    assert_eq!(
        a.metric(recorded).unwrap_or(0.0),
        a_recorded,
        "the API server calls only b: a learned alice and bob from b"
    );

    // Only the operator's own certificate opens the endpoint: a client with none, and one with a
    // certificate of its own, are refused in the handshake, and no author changes.
    let endpoint = forward_endpoint(&c);
    let other = root.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    support::cluster::serving_cert(&other);
    let forged = forged_record(&c, "carol");
    for cert in [None, Some(&other)] {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-quiet", "-connect", &endpoint]);
        if let Some(dir) = cert {
            cmd.arg("-cert")
                .arg(dir.join("tls.crt"))
                .arg("-key")
                .arg(dir.join("tls.key"));
        }
        let out = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let _ = child.stdin.take().unwrap().write_all(forged.as_bytes());
                child.wait_with_output()
            })
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains('1'),
            "a record without the operator's certificate was taken"
        );
    }
    eventually("both refusals counted", || {
        (a.metric("gitopsreverser_records_forward_refused_connections_total")? >= 2.0).then_some(())
    });
    // carol's real change now: the forged record (mallory for carol's content) must not name it.
    c.apply("carol", &config_map("app", "{k: carol}"));
    eventually("carol's change on the remote", || {
        remote
            .file("clusters/prod/v1/configmaps/team-a/app.yaml")?
            .contains("k: carol")
            .then_some(())
    });
    let log = authored(&remote);
    assert_eq!(
        log.last().map(|(a, _)| a.as_str()),
        Some("carol"),
        "{log:?}"
    );
    // The leader's core settled the records whose commits landed, and told b: b's window (what
    // it would hand the next leader) holds none of them any more.
    eventually("b's window to forget the records of landed commits", || {
        unsettled(&root.path().join("b/work"), "app")
            .is_empty()
            .then_some(())
    });
}

/// The users whose records of ConfigMap `name` a replica's window in `work` still holds.
fn unsettled(work: &Path, name: &str) -> Vec<String> {
    use gitops_reverser_core::admission::{record_id, AdmissionRequest};
    let text = std::fs::read_to_string(work.join("admission-records.jsonl")).unwrap_or_default();
    let mut held: Vec<(u64, String)> = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(ids) = v.get("settled") {
            let ids: Vec<u64> = serde_json::from_value(ids.clone()).unwrap();
            held.retain(|(id, _)| !ids.contains(id));
        } else if let Ok(req) = serde_json::from_value::<AdmissionRequest>(v["request"].clone()) {
            if req.name == name {
                held.push((record_id(&req), req.username.clone()));
            }
        }
    }
    held.into_iter().map(|(_, user)| user).collect()
}

/// The endpoint the leader advertises in the Lease.
fn forward_endpoint(c: &Cluster) -> String {
    eventually("the leader's endpoint in the Lease", || {
        let e = c.jsonpath(
            &[
                "get",
                "lease",
                "gitops-reverser",
                "-n",
                "gitops-reverser-system",
            ],
            "{.metadata.annotations.gitops-reverser\\.io/forward-endpoint}",
        );
        (!e.trim().is_empty()).then(|| e.trim().to_string())
    })
}

/// The holder the Lease names now.
fn lease_holder(c: &Cluster) -> String {
    c.jsonpath(
        &[
            "get",
            "lease",
            "gitops-reverser",
            "-n",
            "gitops-reverser-system",
        ],
        "{.spec.holderIdentity}",
    )
    .trim()
    .to_string()
}

/// An admission record claiming that mallory made `value` the data of ConfigMap `team-a/app`,
/// on the version the cluster holds now: exactly what the leader would join to that change.
fn forged_record(c: &Cluster, value: &str) -> String {
    use gitops_reverser_core::admission::AdmissionRequest;
    use gitops_reverser_core::{Gvr, Operation};
    let current: serde_json::Value = serde_json::from_str(&c.kubectl(
        "admin",
        &["get", "configmap", "app", "-n", "team-a", "-o", "json"],
    ))
    .unwrap();
    let mut next = current.clone();
    next["data"]["k"] = value.into();
    let req = AdmissionRequest {
        uid: "forged".into(),
        gvr: Gvr::new("", "v1", "configmaps"),
        namespace: Some("team-a".into()),
        name: "app".into(),
        operation: Operation::Update,
        username: "mallory".into(),
        dry_run: false,
        object: Some(next.into()),
        old_object: Some(current.into()),
        sub_resource: None,
    };
    format!("{}\n", serde_json::to_string(&req).unwrap())
}

/// Commits that change no file (a duplicate of a change, or an empty delete).
fn empty_commits(remote: &Remote) -> Vec<String> {
    let ids = support::git(&remote.repo, &["log", "--format=%H", "main"]);
    ids.lines()
        .filter(|id| {
            support::git(
                &remote.repo,
                &[
                    "diff-tree",
                    "--root",
                    "--no-commit-id",
                    "-r",
                    "--name-only",
                    id,
                ],
            )
            .trim()
            .is_empty()
        })
        .map(str::to_owned)
        .collect()
}

/// Users write `rounds` changes each to ConfigMaps `c0`..`c5`, every value naming its writer
/// (`alice-7`), so that each commit's content says who made it; `mid` runs halfway.
fn write_stream(c: &Cluster, rounds: usize, mid: impl FnOnce()) {
    let users = ["alice", "bob", "carol"];
    let mut mid = Some(mid);
    for i in 0..rounds {
        if i == rounds / 2 {
            (mid.take().unwrap())();
        }
        let write = |u: usize, user: &str| {
            let name = format!("c{}", (i + u) % 6);
            c.apply(user, &config_map(&name, &format!("{{k: {user}-{i}}}")));
        };
        std::thread::scope(|s| {
            for (u, user) in users.iter().enumerate() {
                s.spawn(move || write(u, user));
            }
        });
    }
}

/// Every commit whose author is a user made that content: the value in its file names its
/// writer. The fallback author is never wrong, only unattributed.
fn wrong_authors(remote: &Remote) -> Vec<String> {
    let ids = support::git(&remote.repo, &["log", "--format=%H|%an|%s", "main"]);
    let mut wrong = Vec::new();
    for line in ids.lines() {
        let mut parts = line.splitn(3, '|');
        let (id, author, subject) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        if author == "gitops-reverser" || !subject.contains("configmaps/team-a/c") {
            continue;
        }
        let path = subject
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_start_matches("v1/");
        let file = format!("clusters/prod/v1/{path}.yaml");
        let body = support::git(&remote.repo, &["show", &format!("{id}:{file}")]);
        let writer = body
            .lines()
            .find_map(|l| l.trim().strip_prefix("k: "))
            .and_then(|v| v.split('-').next())
            .unwrap_or("");
        if subject.contains("[DELETE]") || writer != author {
            wrong.push(format!("{line}: content by {writer}"));
        }
    }
    wrong
}

/// The remote holds each of `c0`..`c5` as the cluster does.
fn converged(c: &Cluster, remote: &Remote) -> bool {
    converged_some(c, remote, &["c0", "c1", "c2", "c3", "c4", "c5"])
}

#[test]
fn kill_9_of_the_leader_hands_over_and_the_remote_converges_with_no_wrong_author() {
    let Pair {
        _one,
        c,
        root: _root,
        remote,
        b,
        a,
    } = two_replicas();

    let mut killed_at = None;
    write_stream(&c, 16, || {
        kill(&a, "-KILL");
        killed_at = Some(Instant::now());
    });
    let killed_at = killed_at.unwrap();
    let commits_at_kill = remote.log().len();
    eventually_within("b to lead", 15_000, || is_leader(&b).then_some(()));
    let took = killed_at.elapsed();
    eventually_within("the remote to converge on the live state", 60_000, || {
        converged(&c, &remote).then_some(())
    });
    assert!(
        remote.log().len() > commits_at_kill,
        "b committed after the kill"
    );
    assert!(
        took < Duration::from_millis(3_000 + 5_000),
        "b took over in {took:?}: more than the lease duration and a few seconds"
    );
    assert_eq!(wrong_authors(&remote), Vec::<String>::new());
    assert_eq!(empty_commits(&remote), Vec::<String>::new());
    assert_eq!(lease_holder(&c), "replica-b");
    // b served every admission, before the kill and after, and kept them in its window: its new
    // core was handed them, so no change falls back, not even those a took and never pushed.
    let fallback: Vec<_> = authored(&remote)
        .into_iter()
        .filter(|(a, s)| a == "gitops-reverser" && s.contains("team-a"))
        .collect();
    assert_eq!(fallback, Vec::<(String, String)>::new());
}

#[test]
fn sigterm_hands_over_at_once_and_a_paused_deposed_leader_overwrites_nothing() {
    let Pair {
        _one,
        c,
        root: _root,
        remote,
        b,
        mut a,
    } = two_replicas();
    c.apply("alice", &config_map("c0", "{k: alice-0}"));
    remote.await_commit("[CREATE] v1/configmaps/team-a/c0");

    // A planned handover: a releases the Lease once its pushes are out, b takes it at its next try.
    c.apply("bob", &config_map("c1", "{k: bob-0}"));
    let asked = Instant::now();
    a.stop();
    let released = asked.elapsed();
    eventually_within("b to lead", 10_000, || is_leader(&b).then_some(()));
    let handover = asked.elapsed() - released;
    assert!(
        handover < Duration::from_secs(2),
        "b led {handover:?} after a exited"
    );
    eventually_within("bob's change on the remote", 30_000, || {
        remote
            .file("clusters/prod/v1/configmaps/team-a/c1.yaml")?
            .contains("bob-0")
            .then_some(())
    });

    // a comes back as a follower. b is paused past its lease right after bob's change reached
    // it, a takes over, and carol changes the same object; then b wakes with bob's change
    // perhaps still unpushed, and must not write it over carol's.
    let args = replica_args("replica-a");
    a.restart(&args.iter().map(String::as_str).collect::<Vec<_>>());
    c.apply("bob", &config_map("c0", "{k: bob-1}"));
    kill(&b, "-STOP");
    eventually_within("a to lead while b sleeps", 15_000, || {
        is_leader(&a).then_some(())
    });
    c.apply("carol", &config_map("c0", "{k: carol-1}"));
    eventually_within("carol's change on the remote", 30_000, || {
        remote
            .file("clusters/prod/v1/configmaps/team-a/c0.yaml")?
            .contains("carol-1")
            .then_some(())
    });
    let head = support::head_of(&remote.repo, "main");
    kill(&b, "-CONT");
    eventually_within("b to see that it no longer leads", 15_000, || {
        (!is_leader(&b)).then_some(())
    });
    c.apply("alice", &config_map("c2", "{k: alice-2}"));
    eventually_within("alice's change on the remote", 30_000, || {
        converged_some(&c, &remote, &["c0", "c1", "c2"]).then_some(())
    });
    assert_eq!(
        support::git(
            &remote.repo,
            &[
                "merge-base",
                "--is-ancestor",
                head.as_deref().unwrap(),
                "main"
            ]
        ),
        "",
        "the new leader's commits stay in history"
    );
    assert_eq!(wrong_authors(&remote), Vec::<String>::new());
    assert_eq!(empty_commits(&remote), Vec::<String>::new());
}

/// The remote holds each of team-a's ConfigMaps `names` as the cluster does.
fn converged_some(c: &Cluster, remote: &Remote, names: &[&str]) -> bool {
    names.iter().all(|n| {
        let live = c.jsonpath(&["get", "configmap", n, "-n", "team-a"], "{.data.k}");
        remote
            .file(&format!("clusters/prod/v1/configmaps/team-a/{n}.yaml"))
            .is_some_and(|f| f.contains(&format!("k: {}", live.trim())))
    })
}

#[test]
fn kill_9_of_a_single_replica_then_a_restart_keeps_the_authors_from_its_records_file() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start();
    let remote = Remote::new();
    let root = tempfile::tempdir().unwrap();
    let mut op = Operator::start(&c, &root.path().join("op"), &[]);
    namespace(&c, "team-a");
    // Nothing is pushed for a minute: every change below is admitted and watched, not pushed.
    let slow = repo_config("team-a", &remote.url(), "").replace(
        "interval: \"1s\", maxCommits: 1",
        "interval: \"60s\", maxCommits: 100",
    );
    c.apply("admin", &slow);
    c.apply(
        "admin",
        &watch_rule(
            "team-a",
            "cms",
            "clusters/prod",
            "[{version: v1, resource: configmaps}]",
        ),
    );
    c.await_ready("watchrule/cms", Some("team-a"), "True");
    c.apply("alice", &config_map("a", "{k: alice-0}"));
    c.apply("bob", &config_map("a", "{k: bob-1}"));
    c.apply("carol", &config_map("c", "{k: carol-0}"));
    eventually("the three records to reach the core", || {
        (op.metric("gitopsreverser_admissions_total")? >= 3.0).then_some(())
    });
    assert!(remote.log().is_empty(), "nothing pushed before the kill");
    kill(&op, "-KILL");
    let _ = op.stop();
    // While it is down the push interval becomes a second, so the restart pushes at once.
    c.apply("admin", &repo_config("team-a", &remote.url(), ""));
    op.restart(&[]);
    eventually_within("the remote to converge", 60_000, || {
        converged_some(&c, &remote, &["a", "c"]).then_some(())
    });
    let log = authored(&remote);
    let by = |path: &str| {
        log.iter()
            .filter(|(_, s)| s.contains(path))
            .map(|(a, s)| format!("{a} {s}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by("team-a/a"),
        ["bob [UPDATE] v1/configmaps/team-a/a"],
        "{log:?}"
    );
    assert_eq!(
        by("team-a/c"),
        ["carol [CREATE] v1/configmaps/team-a/c"],
        "{log:?}"
    );
}
