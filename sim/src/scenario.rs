//! Scripted scenarios: the real core driven through one story at a time (who writes what, when,
//! which webhook call is late or missing, which push conflicts), recorded in the core's input
//! format. `gitops-reverser-sim scenarios --out corpus` writes every scenario of
//! [`crate::scenarios`] as a corpus file.
//!
//! A script plays the API server and the executor the way the simulator's world does: a write's
//! admission reaches the core before its watch event unless the script says otherwise, streams
//! start with a full list when the core asks for them, and every git op completes after
//! [`GIT_LATENCY_MS`] against the in-memory remote of [`crate::git`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use gitops_reverser_core::admission::AdmissionRequest;
use gitops_reverser_core::config::{ClusterWatchRuleSpec, NamespacedName, WatchRuleSpec};
use gitops_reverser_core::io::{blob_ids, GitOp, GitOpKind, GitResult, Input, Output, WatchEvent};
use gitops_reverser_core::limits::CORRELATION_TTL_MS;
use gitops_reverser_core::record::{Entry, Header, Recording, Restart};
use gitops_reverser_core::Now;
use gitops_reverser_core::PushBounds;
use gitops_reverser_core::SecretPolicy;
use gitops_reverser_core::{Core, CoreConfig};
use gitops_reverser_core::{Gvr, Operation};
use serde_json::{json, Value};

use crate::cluster::{discovery_inputs, Cluster, ObjKey};
use crate::git::{PushError, Remotes};
use crate::world::{core_config, rendered};

/// Time from a git op to its result.
pub const GIT_LATENCY_MS: u64 = 10;
/// Wall clock at script time zero (2026-12-01T00:00:00Z).
const WALL_EPOCH_MS: i64 = 1_796_083_200_000;

/// How the webhook sees one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Webhook {
    /// Called before the write is persisted (the usual case).
    OnTime,
    /// Never called.
    Missed,
    /// Its admission reaches the core this long after the watch event.
    LateMs(u64),
    /// Called, then a later admission step refused the write: nothing is persisted.
    Rejected,
}

/// What the remote does with the next push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitFault {
    /// Someone else pushed just before: the push is refused as not a fast-forward.
    Conflict,
    /// The connection breaks: a retryable failure.
    Fail,
}

/// One scenario being played.
pub struct Script {
    now: u64,
    core: Core,
    config: CoreConfig,
    rec: Recording,
    /// The latest configuration input per object, replayed into a core after a restart.
    config_inputs: BTreeMap<String, Input>,
    cluster: Cluster,
    remotes: Remotes,
    running: BTreeSet<Gvr>,
    /// Types whose watch events are being lost (a broken stream before a 410).
    losing: BTreeSet<Gvr>,
    ops: VecDeque<(u64, GitOp)>,
    git_faults: VecDeque<GitFault>,
    /// Every branch the core has planned a git op on.
    branches: BTreeSet<(NamespacedName, String)>,
    requests: u64,
    /// The operator is stopped: nothing reaches the core.
    down: bool,
}

impl Script {
    /// A fresh cluster (namespaces `team-a` env=prod and `team-b` env=dev) and a fresh core.
    pub fn new() -> Self {
        let config = core_config(
            0,
            SecretPolicy::Redact,
            PushBounds::default(),
            CORRELATION_TTL_MS,
        );
        let mut s = Self {
            now: 0,
            core: Core::new(config.clone()),
            rec: Recording {
                header: Header::new(config.clone()),
                entries: Vec::new(),
                restarts: Vec::new(),
                bad_lines: Vec::new(),
            },
            config,
            config_inputs: BTreeMap::new(),
            cluster: Cluster::new(),
            remotes: Remotes::default(),
            running: BTreeSet::new(),
            losing: BTreeSet::new(),
            ops: VecDeque::new(),
            git_faults: VecDeque::new(),
            branches: BTreeSet::new(),
            requests: 0,
            down: false,
        };
        for input in discovery_inputs(&s.cluster.kinds) {
            s.feed(input);
        }
        s
    }

    /// The recording so far.
    pub fn recording(&self) -> &Recording {
        &self.rec
    }

    // ---- configuration ---------------------------------------------------------------------

    /// A GitRepoConfig `namespace/name` for `url`, pushing every `interval` or `max_commits`.
    pub fn repo(
        &mut self,
        namespace: &str,
        name: &str,
        url: &str,
        interval: &str,
        max_commits: u32,
    ) {
        let id = NamespacedName::new(namespace, name);
        let spec = serde_json::from_value(json!({"repoURL": url, "allowedBranches": ["main"],
            "push": {"interval": interval, "maxCommits": max_commits}}))
        .expect("a valid GitRepoConfig");
        self.configure(format!("repo {id}"), Input::GitRepoConfig(id, Some(spec)));
    }

    /// A WatchRule `namespace/name` from its spec as JSON (`None`: deleted).
    pub fn watch_rule(&mut self, namespace: &str, name: &str, spec: Option<Value>) {
        let spec: Option<WatchRuleSpec> =
            spec.map(|v| serde_json::from_value(v).expect("a valid WatchRule"));
        let id = NamespacedName::new(namespace, name);
        self.configure(format!("rule {id}"), Input::WatchRule(id, spec));
    }

    /// A ClusterWatchRule from its spec as JSON (`None`: deleted).
    pub fn cluster_watch_rule(&mut self, name: &str, spec: Option<Value>) {
        let spec: Option<ClusterWatchRuleSpec> =
            spec.map(|v| serde_json::from_value(v).expect("a valid ClusterWatchRule"));
        self.configure(
            format!("cluster rule {name}"),
            Input::ClusterWatchRule(name.into(), spec),
        );
    }

    fn configure(&mut self, key: String, input: Input) {
        self.config_inputs.insert(key, input.clone());
        self.feed(input);
    }

    // ---- the cluster -----------------------------------------------------------------------

    fn key(&self, resource: &str, namespace: Option<&str>, name: &str) -> ObjKey {
        (
            self.cluster.kind_index(resource),
            namespace.map(Into::into),
            name.into(),
        )
    }

    /// `user` creates, updates (`body` given, object live) or deletes (`body` absent) an object.
    /// `body` is the whole object as the user sends it; the server adds its own fields.
    pub fn write(
        &mut self,
        user: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        body: Option<Value>,
        webhook: Webhook,
    ) {
        let key = self.key(resource, namespace, name);
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let old = self.cluster.objects.get(&key).map(|o| o.body.clone());
        let operation = match (&old, &body) {
            (None, Some(_)) => Operation::Create,
            (Some(_), Some(_)) => Operation::Update,
            (Some(_), None) => Operation::Delete,
            (None, None) => panic!("script: delete of {name}, which does not exist"),
        };
        let body = match operation {
            Operation::Create => body.map(|b| self.cluster.with_new_uid(b)),
            _ => body,
        };
        self.requests += 1;
        let req = AdmissionRequest {
            uid: format!("req-{}", self.requests),
            gvr: gvr.clone(),
            namespace: key.1.clone(),
            name: key.2.clone(),
            operation,
            username: user.into(),
            dry_run: false,
            object: body.as_ref().map(Into::into),
            old_object: old.as_ref().map(Into::into),
            sub_resource: None,
        };
        if webhook == Webhook::OnTime || webhook == Webhook::Rejected {
            self.feed(Input::Admission(req.clone()));
        }
        if webhook == Webhook::Rejected {
            return;
        }
        self.wait(1);
        let event = match (operation, body) {
            (Operation::Create, Some(b)) => {
                WatchEvent::Apply((&self.cluster.persist_create(key, b, self.now)).into())
            }
            (Operation::Update, Some(b)) => {
                WatchEvent::Apply((&self.cluster.persist_update(&key, b, self.now)).into())
            }
            _ => WatchEvent::Delete((&self.cluster.persist_delete(&key, self.now)).into()),
        };
        if self.running.contains(&gvr) && !self.losing.contains(&gvr) {
            self.feed(Input::Watch(gvr, event));
        }
        if let Webhook::LateMs(ms) = webhook {
            self.wait(ms);
            self.feed(Input::Admission(req));
        }
    }

    /// A controller writes an object's `status` only (no admission: the webhook's rules leave
    /// the status subresource out).
    pub fn status(&mut self, resource: &str, namespace: Option<&str>, name: &str, status: Value) {
        let key = self.key(resource, namespace, name);
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let mut body = self.cluster.objects[&key].body.clone();
        body["status"] = status;
        let stored = self.cluster.persist_update(&key, body, self.now);
        if self.running.contains(&gvr) && !self.losing.contains(&gvr) {
            self.feed(Input::Watch(gvr, WatchEvent::Apply((&stored).into())));
        }
    }

    /// From now on the watch events of `resource` are lost, until [`Script::relist`].
    pub fn lose_events(&mut self, resource: &str) {
        let gvr = self.cluster.kinds[self.cluster.kind_index(resource)]
            .gvr
            .clone();
        self.losing.insert(gvr);
    }

    /// The stream of `resource` got 410 Gone and lists again.
    pub fn relist(&mut self, resource: &str) {
        let gvr = self.cluster.kinds[self.cluster.kind_index(resource)]
            .gvr
            .clone();
        self.losing.remove(&gvr);
        self.list(gvr);
    }

    fn list(&mut self, gvr: Gvr) {
        let k = self
            .cluster
            .kinds
            .iter()
            .position(|k| k.gvr == gvr)
            .expect("a known type");
        self.feed(Input::Watch(gvr.clone(), WatchEvent::Init));
        for o in self.cluster.list(k) {
            self.feed(Input::Watch(
                gvr.clone(),
                WatchEvent::InitApply((&o).into()),
            ));
        }
        self.feed(Input::Watch(gvr, WatchEvent::InitDone));
    }

    // ---- git -------------------------------------------------------------------------------

    /// Files someone else committed on `url`'s `branch` before the operator started.
    pub fn seed_remote(&mut self, url: &str, branch: &str, files: &[(&str, &str)]) {
        self.remotes.outside_commit(url, branch, |t| {
            for (p, body) in files {
                t.insert(p.to_string(), body.as_bytes().to_vec().into());
            }
        });
    }

    /// What the remote does with the next push (faults queue up, one per push).
    pub fn fail_next_push(&mut self, fault: GitFault) {
        self.git_faults.push_back(fault);
    }

    fn complete(&mut self, op: GitOp) {
        let (url, branch) = (op.repo_url.clone(), op.branch.clone());
        let result = match &op.kind {
            GitOpKind::ReadPaths { folder } => GitResult::Paths {
                head: self.remotes.head(&url, &branch),
                entries: self
                    .remotes
                    .paths(&url, &branch, folder, op.sealing.is_some()),
            },
            GitOpKind::Verify {
                expected_head,
                op_tag,
            } => GitResult::Verified {
                head: self.remotes.head(&url, &branch),
                landed: self
                    .remotes
                    .landed(&url, &branch, expected_head.as_ref(), op_tag),
            },
            GitOpKind::Push {
                expected_head,
                commits,
            } => match self.git_faults.pop_front() {
                Some(GitFault::Fail) => GitResult::Failed {
                    retryable: true,
                    reason: "push: connection reset by peer".into(),
                    cause: "RemoteUnreachable".into(),
                },
                fault => {
                    if fault == Some(GitFault::Conflict) {
                        self.remotes.outside_commit(&url, &branch, |t| {
                            t.insert("NOTES.md".into(), b"edited by hand\n".to_vec().into());
                        });
                    }
                    match self.remotes.push(
                        &url,
                        &branch,
                        expected_head.as_ref(),
                        commits,
                        |_, _, _| {},
                    ) {
                        Ok(head) => GitResult::Pushed {
                            head,
                            blobs: blob_ids(commits),
                        },
                        Err(PushError::NotFastForward(remote_head)) => {
                            GitResult::Conflict { remote_head }
                        }
                    }
                }
            },
        };
        self.feed(Input::GitDone(op.op_id, result));
    }

    // ---- time and the core -----------------------------------------------------------------

    /// Lets `ms` pass: timers fire and git ops complete, in time order.
    pub fn wait(&mut self, ms: u64) {
        let until = self.now + ms;
        loop {
            let git = self.ops.front().map(|(t, _)| *t);
            let tick = self.core.poll_deadline();
            let Some(next) = git.into_iter().chain(tick).min() else {
                break;
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if git.is_some_and(|g| g <= self.now) {
                let (_, op) = self.ops.pop_front().expect("checked");
                self.complete(op);
            } else {
                self.feed(Input::Tick);
            }
        }
        self.now = until;
    }

    /// The operator stops: the core's memory is lost, a git op in flight never reports, and
    /// until [`Script::start`] no webhook call or watch event reaches it.
    pub fn stop(&mut self) {
        self.ops.clear();
        self.running.clear();
        self.down = true;
    }

    /// The operator starts again after [`Script::stop`]: a fresh core, configured as before.
    pub fn start(&mut self) {
        assert!(self.down, "script: start without stop");
        self.down = false;
        self.config = core_config(
            self.config.instance_id + 1,
            self.config.secret_policy,
            self.config.push_bounds,
            self.config.correlation.ttl_ms,
        );
        self.core = Core::new(self.config.clone());
        self.rec.restarts.push(Restart {
            at: self.rec.entries.len(),
            config: self.config.clone(),
        });
        for input in discovery_inputs(&self.cluster.kinds) {
            self.feed(input);
        }
        let inputs: Vec<Input> = self.config_inputs.values().cloned().collect();
        for i in inputs {
            self.feed(i);
        }
    }

    /// Waits until nothing is pending (at most ten simulated minutes) and returns the recording.
    pub fn finish(mut self) -> Recording {
        for _ in 0..600 {
            if self.ops.is_empty()
                && self.branches.iter().all(|(repo, b)| {
                    self.core
                        .branch(repo, b)
                        .is_none_or(|v| v.pending_commits == 0 && !v.op_in_flight)
                })
            {
                break;
            }
            self.wait(1_000);
        }
        self.rec
    }

    fn feed(&mut self, input: Input) {
        if self.down {
            return;
        }
        let now = Now {
            mono_ms: self.now,
            wall_ms: WALL_EPOCH_MS + self.now as i64,
        };
        self.rec.entries.push(Entry {
            now,
            input: input.clone(),
        });
        self.core.handle(now, input);
        let mut lists = Vec::new();
        while let Some(out) = self.core.poll_output() {
            match rendered(out) {
                Output::EnsureWatches(set) => {
                    for gvr in &set {
                        if !self.running.contains(gvr) {
                            lists.push(gvr.clone());
                        }
                    }
                    self.running = set.into_iter().collect();
                }
                Output::Resync(gvr) => lists.push(gvr),
                Output::Git(op) => {
                    self.branches.insert((op.repo.clone(), op.branch.clone()));
                    self.ops.push_back((self.now + GIT_LATENCY_MS, op));
                }
                // A scenario's configuration is valid: a refused CR is a mistake in the script.
                Output::Status(cr, conditions) => {
                    let bad = conditions.iter().find(|c| c.type_ == "Ready" && !c.status);
                    assert!(bad.is_none(), "script: {cr:?} is not ready: {bad:?}");
                }
                Output::Refused { .. } => {}
            }
        }
        for gvr in lists {
            if self.running.contains(&gvr) {
                self.list(gvr);
            }
        }
    }
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}
