//! The corpus's scripted scenarios, one story each. `gitops-reverser-sim scenarios --out corpus`
//! writes them as `corpus/scenario-<name>.jsonl`; `core/tests/corpus.rs` replays every corpus file
//! against its reviewed snapshot.

use serde_json::{json, Value};

use crate::scenario::{GitFault, Script, Webhook};

/// One scenario: its file name's stem, a one-line description, and the script.
pub struct Scenario {
    /// `scenario-<name>.jsonl`.
    pub name: &'static str,
    /// What it shows, for `corpus/README.md`.
    pub what: &'static str,
    /// Plays it.
    pub play: fn(&mut Script),
}

const URL: &str = "https://git.example/fleet.git";

fn cm(ns: &str, name: &str, data: Value) -> Option<Value> {
    Some(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": data}))
}

fn resources(list: &[(&str, &str, &str)]) -> Value {
    list.iter()
        .map(|(g, v, r)| json!({"group": g, "version": v, "resource": r}))
        .collect()
}

/// A repository pushing every `interval` (or 10 commits) and a WatchRule for ConfigMaps of
/// `team-a` under `clusters/prod`.
fn standard(s: &mut Script, interval: &str) {
    s.repo("team-a", "fleet", URL, interval, 10);
    s.watch_rule(
        "team-a",
        "config",
        Some(
            json!({"gitRepoConfigRef": "fleet", "branch": "main", "baseFolder": "clusters/prod",
            "resources": resources(&[("", "v1", "configmaps")])}),
        ),
    );
    s.wait(100);
}

/// Every scenario, in the order `corpus/README.md` lists them.
pub const ALL: &[Scenario] = &[
    Scenario {
        name: "rapid-changes-by-different-users",
        what: "alice, bob, carol and alice again change one ConfigMap within a second: one commit each, each by its author, in one push",
        play: |s| {
            standard(s, "5s");
            let o = |v: &str| cm("team-a", "app", json!({"mode": v}));
            s.write("alice", "configmaps", Some("team-a"), "app", o("a"), Webhook::OnTime);
            s.wait(200);
            s.write("bob", "configmaps", Some("team-a"), "app", o("b"), Webhook::OnTime);
            s.wait(200);
            s.write("carol", "configmaps", Some("team-a"), "app", o("c"), Webhook::OnTime);
            s.wait(200);
            s.write("alice", "configmaps", Some("team-a"), "app", o("d"), Webhook::OnTime);
        },
    },
    Scenario {
        name: "identical-content-by-two-users",
        what: "alice sets mode=x, bob sets mode=y, then bob sets mode=x again: the last commit is bob's, not alice's (her record was used)",
        play: |s| {
            standard(s, "1s");
            let o = |v: &str| cm("team-a", "app", json!({"mode": v}));
            s.write("alice", "configmaps", Some("team-a"), "app", o("x"), Webhook::OnTime);
            s.wait(300);
            s.write("bob", "configmaps", Some("team-a"), "app", o("y"), Webhook::OnTime);
            s.wait(300);
            s.write("bob", "configmaps", Some("team-a"), "app", o("x"), Webhook::OnTime);
        },
    },
    Scenario {
        name: "status-only-churn",
        what: "alice creates a Deployment, its controller rewrites status five times: one commit, status never in git",
        play: |s| {
            s.repo("team-a", "fleet", URL, "1s", 10);
            s.watch_rule(
                "team-a",
                "apps",
                Some(json!({"gitRepoConfigRef": "fleet", "branch": "main", "baseFolder": "",
                    "resources": resources(&[("apps", "v1", "deployments")])})),
            );
            s.wait(100);
            let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "team-a"},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
            s.write("alice", "deployments", Some("team-a"), "web", Some(d), Webhook::OnTime);
            for i in 0..5 {
                s.wait(400);
                s.status(
                    "deployments",
                    Some("team-a"),
                    "web",
                    json!({"observedGeneration": 1, "readyReplicas": i % 3, "replicas": 2}),
                );
            }
        },
    },
    Scenario {
        name: "delete-and-recreate",
        what: "alice creates, bob deletes, carol recreates the same ConfigMap with other data: create, delete and create, each by its author",
        play: |s| {
            standard(s, "1s");
            s.write("alice", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "1"})), Webhook::OnTime);
            s.wait(2_000);
            s.write("bob", "configmaps", Some("team-a"), "app", None, Webhook::OnTime);
            s.wait(2_000);
            s.write("carol", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "2"})), Webhook::OnTime);
        },
    },
    Scenario {
        name: "webhook-after-watch",
        what: "bob's admission reaches the operator 800 ms after the watch event of his update: the commit carries the fallback author (the late record is dropped, never kept for a later identical write)",
        play: |s| {
            standard(s, "5s");
            s.write("alice", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "1"})), Webhook::OnTime);
            s.wait(500);
            s.write("bob", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "2"})), Webhook::LateMs(800));
        },
    },
    Scenario {
        name: "missed-webhook",
        what: "the webhook is never called for bob's update: that commit carries the fallback author; alice's create before it keeps hers",
        play: |s| {
            standard(s, "1s");
            s.write("alice", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "1"})), Webhook::OnTime);
            s.wait(2_000);
            s.write("bob", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "2"})), Webhook::Missed);
        },
    },
    Scenario {
        name: "relist-after-410-with-deletes",
        what: "the ConfigMap stream breaks while one object is deleted and another changed, then relists after 410 Gone: one [RESYNC] commit with the delete and the change",
        play: |s| {
            standard(s, "1s");
            for n in ["a", "b", "c"] {
                s.write("alice", "configmaps", Some("team-a"), n, cm("team-a", n, json!({"v": "1"})), Webhook::OnTime);
            }
            s.wait(2_000);
            s.lose_events("configmaps");
            s.write("bob", "configmaps", Some("team-a"), "b", None, Webhook::OnTime);
            s.write("bob", "configmaps", Some("team-a"), "c", cm("team-a", "c", json!({"v": "2"})), Webhook::OnTime);
            s.wait(90_000);
            s.relist("configmaps");
        },
    },
    Scenario {
        name: "orphans-beside-unrelated-files",
        what: "the remote already holds a stale file of ours under clusters/prod, a README, a note inside the folder and another team's folder: only the stale file goes",
        play: |s| {
            s.seed_remote(URL, "main", &[
                ("README.md", "# fleet\n"),
                ("clusters/prod/NOTES.md", "hand-written notes\n"),
                ("clusters/prod/v1/configmaps/team-a/gone.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
                ("clusters/staging/v1/configmaps/team-a/other.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
                ("other-team/v1/configmaps/team-a/gone.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
            ]);
            s.write("alice", "configmaps", Some("team-a"), "kept", cm("team-a", "kept", json!({"v": "1"})), Webhook::OnTime);
            standard(s, "1s");
        },
    },
    Scenario {
        name: "push-conflict-and-retry",
        what: "someone else pushes just before the operator: its push is refused, it re-reads the branch and lands on top of the outside commit",
        play: |s| {
            standard(s, "1s");
            s.fail_next_push(GitFault::Conflict);
            s.write("alice", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "1"})), Webhook::OnTime);
        },
    },
    Scenario {
        name: "failed-push-with-backoff",
        what: "three pushes in a row fail with a connection reset; the operator backs off, keeps the commit (and bob's later one) and lands both",
        play: |s| {
            standard(s, "1s");
            for _ in 0..3 {
                s.fail_next_push(GitFault::Fail);
            }
            s.write("alice", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "1"})), Webhook::OnTime);
            s.wait(3_000);
            s.write("bob", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "2"})), Webhook::OnTime);
        },
    },
    Scenario {
        name: "crash-and-restart",
        what: "alice's change lands; bob's is still batched when the operator stops; carol creates another ConfigMap while it is down; the new process commits both as one [RESYNC]",
        play: |s| {
            standard(s, "30s");
            s.write("alice", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "1"})), Webhook::OnTime);
            s.wait(31_000);
            s.write("bob", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "2"})), Webhook::OnTime);
            s.wait(1_000);
            s.stop();
            s.write("carol", "configmaps", Some("team-a"), "db", cm("team-a", "db", json!({"v": "1"})), Webhook::OnTime);
            s.wait(5_000);
            s.start();
        },
    },
    Scenario {
        name: "rule-added-and-removed",
        what: "a second WatchRule adds Deployments to the ConfigMaps' folder mid-stream (the existing Deployment comes in as a [RESYNC]), bob scales it, the rule goes, and carol's later Deployment change is not committed (her new ConfigMap is)",
        play: |s| {
            standard(s, "1s");
            let deploy = |replicas: u32| Some(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "team-a"},
                "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}));
            s.write("alice", "deployments", Some("team-a"), "web", deploy(1), Webhook::OnTime);
            s.wait(2_000);
            let rule = json!({"gitRepoConfigRef": "fleet", "branch": "main", "baseFolder": "clusters/prod",
                "resources": resources(&[("apps", "v1", "deployments")])});
            s.watch_rule("team-a", "deployments", Some(rule));
            s.wait(2_000);
            s.write("bob", "deployments", Some("team-a"), "web", deploy(3), Webhook::OnTime);
            s.wait(2_000);
            s.watch_rule("team-a", "deployments", None);
            s.wait(2_000);
            s.write("carol", "deployments", Some("team-a"), "web", deploy(5), Webhook::OnTime);
            s.write("carol", "configmaps", Some("team-a"), "app", cm("team-a", "app", json!({"v": "1"})), Webhook::OnTime);
        },
    },
    Scenario {
        name: "secret-redaction",
        what: "alice creates a Secret with data, stringData and a last-applied annotation holding a value: the file keeps the keys with redacted values; bob's change of a value makes no commit (the redacted file is the same)",
        play: |s| {
            s.repo("team-a", "fleet", URL, "1s", 10);
            s.watch_rule(
                "team-a",
                "secrets",
                Some(json!({"gitRepoConfigRef": "fleet", "branch": "main", "baseFolder": "",
                    "resources": resources(&[("", "v1", "secrets")])})),
            );
            s.wait(100);
            let secret = |pw: &str| Some(json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "db", "namespace": "team-a",
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
                "data": {"password": pw, "user": "YWRtaW4="}, "stringData": {"token": "plain-token"}}));
            s.write("alice", "secrets", Some("team-a"), "db", secret("aHVudGVyMg=="), Webhook::OnTime);
            s.wait(2_000);
            s.write("bob", "secrets", Some("team-a"), "db", secret("czNjcjN0"), Webhook::OnTime);
        },
    },
    Scenario {
        name: "namespace-selector-routing-change",
        what: "a ClusterWatchRule selects namespaces labelled env=prod; team-b is relabelled prod (its ConfigMap appears), then team-a dev (its file goes)",
        play: |s| {
            s.repo("team-a", "fleet", URL, "1s", 10);
            s.cluster_watch_rule(
                "prod-config",
                Some(json!({"gitRepoConfigRef": {"name": "fleet", "namespace": "team-a"},
                    "branch": "main", "baseFolder": "prod",
                    "rules": [{"resources": resources(&[("", "v1", "configmaps")]), "scope": "Namespaced",
                        "namespaceSelector": {"matchLabels": {"env": "prod"}}}]})),
            );
            s.write("alice", "configmaps", Some("team-a"), "a", cm("team-a", "a", json!({"v": "1"})), Webhook::OnTime);
            s.write("bob", "configmaps", Some("team-b"), "b", cm("team-b", "b", json!({"v": "1"})), Webhook::OnTime);
            s.wait(2_000);
            let ns = |name: &str, env: &str| Some(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": {"env": env, "kubernetes.io/metadata.name": name}}}));
            s.write("admin", "namespaces", None, "team-b", ns("team-b", "prod"), Webhook::OnTime);
            s.wait(2_000);
            s.write("admin", "namespaces", None, "team-a", ns("team-a", "dev"), Webhook::OnTime);
        },
    },
];

/// Plays one scenario to the end.
pub fn play(sc: &Scenario) -> gitops_reverser_core::record::Recording {
    let mut s = Script::new();
    (sc.play)(&mut s);
    s.finish()
}
