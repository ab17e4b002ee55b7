//! The operator's configuration in the world: repositories and rules, some of which come and go.

use gitops_reverser_core::config::{
    ClusterWatchRuleSpec, GitRepoConfigSpec, NamespacedName, WatchRuleSpec,
};
use gitops_reverser_core::io::Input;
use gitops_reverser_core::Operation;
use serde_json::{json, Value};

use crate::cluster::{Destination, Kind};

/// What a rule looks at in an object.
pub struct Subject<'a> {
    /// Its type.
    pub kind: &'a Kind,
    /// Its namespace (`None`: cluster-scoped).
    pub namespace: Option<&'a str>,
    /// The `env` label of its namespace, as the namespace is now.
    pub ns_env: Option<&'a str>,
    /// Its labels.
    pub labels: &'a Value,
}

/// A GitRepoConfig.
#[derive(Clone, Debug)]
pub struct Repo {
    /// Its name.
    pub name: NamespacedName,
    /// Its URL in the in-memory remote.
    pub url: &'static str,
    /// Allowed branches.
    pub branches: &'static [&'static str],
    /// Seals Secrets (`spec.encryption.sops` for [`SIM_RECIPIENT`]) rather than redacting them.
    pub sealed: bool,
}

/// The age recipient sealed repositories encrypt for (the simulation's cipher is a stand-in, but
/// the core checks the recipient as it would in a cluster).
pub const SIM_RECIPIENT: &str = "age16tjsgvucfgtk0wxch0cncf09m83chnnl455599azkkxsraucu4sqle5wvm";

/// One selection entry of a rule.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Resource names selected; `["*"]` is every resource of every group and version.
    pub resources: &'static [&'static str],
    /// `operations`: the live changes it commits (empty: all). A change it leaves out leaves its
    /// file as it is until a resync.
    pub operations: &'static [Operation],
    /// For ClusterWatchRules: `Namespaced` (true) or `Cluster` scope.
    pub namespaced_scope: bool,
    /// `namespaceSelector` as one `key=value`.
    pub ns_selector: Option<(&'static str, &'static str)>,
    /// `objectSelector` as one `key=value`.
    pub obj_selector: Option<(&'static str, &'static str)>,
}

/// The group and version a rule names `resource` by. Widgets go by the version wildcard: their
/// CRD serves two versions, and `*` is the preferred one (one file per object), which is
/// watched only while the type is served.
pub fn group_version_named(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "deployments" => ("apps", "v1"),
        "widgets" => ("example.com", "*"),
        "clusterroles" => ("rbac.authorization.k8s.io", "v1"),
        _ => ("", "v1"),
    }
}

impl Rule {
    /// Whether entry `e` of this rule names `kind`: by name, or by `*` when the kind is of the
    /// scope the entry reaches (namespaced for a WatchRule or a `Namespaced` entry).
    pub fn names(&self, e: &Entry, kind: &Kind) -> bool {
        if e.resources == ["*"] {
            kind.namespaced == (self.namespace.is_some() || e.namespaced_scope)
        } else {
            e.resources.contains(&kind.gvr.resource.as_str())
        }
    }
}

/// A WatchRule (`namespace` set) or ClusterWatchRule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its name.
    pub name: &'static str,
    /// `Some(ns)` for a WatchRule in `ns`.
    pub namespace: Option<&'static str>,
    /// Index into [`Topology::repos`].
    pub repo: usize,
    /// Branch.
    pub branch: &'static str,
    /// baseFolder.
    pub folder: &'static str,
    /// What it selects.
    pub entries: Vec<Entry>,
    /// Added and removed during the run.
    pub toggles: bool,
}

/// Repositories, rules and which rules are active.
#[derive(Clone, Debug)]
pub struct Topology {
    /// GitRepoConfigs.
    pub repos: Vec<Repo>,
    /// Rules.
    pub rules: Vec<Rule>,
    /// Whether each rule exists now.
    pub active: Vec<bool>,
    /// `push.maxCommits` of every repository.
    pub max_commits: u32,
    /// `push.interval`.
    pub interval: &'static str,
}

const fn entry(resources: &'static [&'static str]) -> Entry {
    Entry {
        resources,
        operations: &[],
        namespaced_scope: true,
        ns_selector: None,
        obj_selector: None,
    }
}

impl Topology {
    /// The world's configuration: two repositories, three branches, seven rules (four toggle).
    /// `sealed`: repo-a seals Secrets.
    pub fn new(max_commits: u32, interval: &'static str, sealed: bool) -> Self {
        let repos = vec![
            Repo {
                name: NamespacedName::new("team-a", "repo-a"),
                url: "https://git.sim/repo-a.git",
                branches: &["main", "dev"],
                sealed,
            },
            Repo {
                name: NamespacedName::new("ops", "repo-b"),
                url: "https://git.sim/repo-b.git",
                branches: &["main"],
                sealed: false,
            },
        ];
        let rules = vec![
            Rule {
                name: "apps",
                namespace: Some("team-a"),
                repo: 0,
                branch: "main",
                folder: "apps",
                entries: vec![entry(&["configmaps", "secrets"])],
                toggles: false,
            },
            Rule {
                name: "deploys",
                namespace: Some("team-a"),
                repo: 0,
                branch: "dev",
                folder: "",
                entries: vec![entry(&["deployments"])],
                toggles: false,
            },
            Rule {
                name: "cluster",
                namespace: None,
                repo: 1,
                branch: "main",
                folder: "cluster",
                entries: vec![
                    Entry {
                        namespaced_scope: false,
                        ..entry(&["clusterroles"])
                    },
                    Entry {
                        obj_selector: Some(("tier", "web")),
                        ..entry(&["widgets"])
                    },
                ],
                toggles: false,
            },
            Rule {
                name: "widgets",
                namespace: Some("team-a"),
                repo: 0,
                branch: "main",
                folder: "widgets",
                entries: vec![entry(&["widgets"])],
                toggles: true,
            },
            // Shares repo-a's main branch and the configmaps type with `apps`, in its own folder.
            Rule {
                name: "prod-config",
                namespace: None,
                repo: 0,
                branch: "main",
                folder: "prod",
                entries: vec![Entry {
                    ns_selector: Some(("env", "prod")),
                    ..entry(&["configmaps"])
                }],
                toggles: true,
            },
            // Every namespaced type in dev namespaces (wildcards), creations and updates only:
            // deletes leave the files until a resync.
            Rule {
                name: "dev-audit",
                namespace: None,
                repo: 1,
                branch: "main",
                folder: "audit",
                entries: vec![Entry {
                    ns_selector: Some(("env", "dev")),
                    operations: &[Operation::Create, Operation::Update],
                    ..entry(&["*"])
                }],
                // Comes and goes, so that no namespace selector is always on: the namespaces
                // stream must stop when neither this rule nor `prod-config` is there.
                toggles: true,
            },
            // Team a's ConfigMaps, created and deleted: updates leave the files until a resync.
            Rule {
                name: "config-log",
                namespace: Some("team-a"),
                repo: 0,
                branch: "dev",
                folder: "log",
                entries: vec![Entry {
                    operations: &[Operation::Create, Operation::Delete],
                    ..entry(&["configmaps"])
                }],
                toggles: true,
            },
        ];
        let active = rules.iter().map(|r| !r.toggles).collect();
        // The attribution checker reads a folder's file from the one rule that writes it.
        let mut dests: Vec<_> = rules.iter().map(|r| (r.repo, r.branch, r.folder)).collect();
        dests.sort();
        dests.dedup();
        assert_eq!(
            dests.len(),
            rules.len(),
            "every rule has a destination of its own"
        );
        Self {
            repos,
            rules,
            active,
            max_commits,
            interval,
        }
    }

    /// The inputs that configure a fresh core.
    pub fn config_inputs(&self) -> Vec<Input> {
        let mut out: Vec<Input> = self
            .repos
            .iter()
            .map(|r| {
                let mut spec = json!({
                    "repoURL": r.url, "allowedBranches": r.branches,
                    "push": {"interval": self.interval, "maxCommits": self.max_commits}});
                if r.sealed {
                    spec["encryption"] = json!({"sops": {"ageRecipients": [SIM_RECIPIENT]}});
                }
                let spec: GitRepoConfigSpec =
                    serde_json::from_value(spec).expect("valid GitRepoConfig");
                Input::GitRepoConfig(r.name.clone(), Some(spec))
            })
            .collect();
        for i in 0..self.rules.len() {
            if self.active[i] {
                out.push(self.rule_input(i, true));
            }
        }
        out
    }

    /// The input that creates (`present`) or deletes rule `i`.
    pub fn rule_input(&self, i: usize, present: bool) -> Input {
        let r = &self.rules[i];
        let repo = &self.repos[r.repo].name;
        let sel = |s: Option<(&str, &str)>| s.map(|(k, v)| json!({"matchLabels": {k: v}}));
        let res = |e: &Entry| -> Vec<Value> {
            if e.resources == ["*"] {
                return vec![json!({"group": "*", "version": "*", "resource": "*"})];
            }
            e.resources
                .iter()
                .map(|x| {
                    let (g, v) = group_version_named(x);
                    json!({"group": g, "version": v, "resource": x})
                })
                .collect()
        };
        let ops = |e: &Entry| -> Vec<&str> { e.operations.iter().map(|o| o.as_str()).collect() };
        match r.namespace {
            Some(ns) => {
                let spec: Option<WatchRuleSpec> = present.then(|| {
                    let e = &r.entries[0];
                    let mut v = json!({"gitRepoConfigRef": repo.name, "branch": r.branch,
                        "baseFolder": r.folder, "resources": res(e), "operations": ops(e)});
                    if let Some(s) = sel(e.obj_selector) {
                        v["objectSelector"] = s;
                    }
                    serde_json::from_value(v).expect("valid WatchRule")
                });
                Input::WatchRule(NamespacedName::new(ns, r.name), spec)
            }
            None => {
                let spec: Option<ClusterWatchRuleSpec> = present.then(|| {
                    let rules: Vec<Value> = r
                        .entries
                        .iter()
                        .map(|e| {
                            let mut v = json!({"resources": res(e), "operations": ops(e),
                                "scope": if e.namespaced_scope { "Namespaced" } else { "Cluster" }});
                            if let Some(s) = sel(e.ns_selector) {
                                v["namespaceSelector"] = s;
                            }
                            if let Some(s) = sel(e.obj_selector) {
                                v["objectSelector"] = s;
                            }
                            v
                        })
                        .collect();
                    serde_json::from_value(json!({
                        "gitRepoConfigRef": {"name": repo.name, "namespace": repo.namespace},
                        "branch": r.branch, "baseFolder": r.folder, "rules": rules}))
                    .expect("valid ClusterWatchRule")
                });
                Input::ClusterWatchRule(r.name.into(), spec)
            }
        }
    }

    /// Whether rule `i` selects `obj`, whatever its `operations` (as a resync does).
    pub fn selects(&self, i: usize, obj: &Subject<'_>) -> bool {
        self.routes(i, obj, None)
    }

    /// Whether rule `i` commits a live change of `op` (any, for `None`) to `obj`.
    pub fn routes(&self, i: usize, obj: &Subject<'_>, op: Option<Operation>) -> bool {
        let r = &self.rules[i];
        let label = |(k, v): (&str, &str)| obj.labels.get(k).and_then(Value::as_str) == Some(v);
        r.entries.iter().any(|e| {
            let reach = match (r.namespace, obj.namespace) {
                (Some(own), Some(ns)) => own == ns,
                (Some(_), None) => false,
                (None, ns) => {
                    e.namespaced_scope == ns.is_some()
                        && e.ns_selector
                            .is_none_or(|(k, v)| k == "env" && obj.ns_env == Some(v))
                }
            };
            r.names(e, obj.kind)
                && op.is_none_or(|op| e.operations.is_empty() || e.operations.contains(&op))
                && reach
                && e.obj_selector.is_none_or(label)
        })
    }

    /// The destinations of the rules that select `obj`, sorted, each once. Switched-off rules
    /// count: one switched on later puts the file in by a resync and commits its object's later
    /// writes, even one whose watch event was still on its way when it came on. (Each rule has a
    /// destination of its own.)
    pub fn selecting(&self, obj: &Subject<'_>) -> Vec<Destination> {
        self.destinations_where(|i| self.selects(i, obj))
    }

    /// The destinations whose rules select `obj` but leave a live change of `op` out: there the
    /// change leaves the file as it was.
    pub fn holding(&self, obj: &Subject<'_>, op: Operation) -> Vec<Destination> {
        let routed = self.destinations_where(|i| self.routes(i, obj, Some(op)));
        let mut held = self.selecting(obj);
        held.retain(|d| !routed.contains(d));
        held
    }

    /// Every (url, branch, folder) destination of an active rule.
    pub fn destinations(&self) -> Vec<Destination> {
        self.destinations_where(|i| self.active[i])
    }

    /// The destinations of the rules `keep` accepts, sorted, each once.
    fn destinations_where(&self, keep: impl Fn(usize) -> bool) -> Vec<Destination> {
        let mut out: Vec<Destination> = (0..self.rules.len())
            .filter(|&i| keep(i))
            .map(|i| {
                let r = &self.rules[i];
                (self.repos[r.repo].url, r.branch, r.folder)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every (repo, branch) any rule may write.
    pub fn branches(&self) -> Vec<(NamespacedName, &'static str, &'static str)> {
        let mut out: Vec<_> = self
            .rules
            .iter()
            .map(|r| {
                let repo = &self.repos[r.repo];
                (repo.name.clone(), repo.url, r.branch)
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
