//! [`Core`]: the whole pipeline as one sans-IO state machine.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::admission::AdmissionRequest;
use crate::attribution::{Attribution, AttributionCounters, Attributor, CorrKey, Record};
use crate::batch::{CommitKind, Content, PendingWrite, PushBounds, Queue};
use crate::canonical::{DigestOut, Digester};
use crate::config::{
    self, ClusterWatchRuleSpec, Condition, CrRef, NamespacedName, RepoSettings, WatchRuleSpec,
};
use crate::correlation::{CorrelationCounters, CorrelationLimits};
use crate::coverage;
use crate::gitplan::{self, Identities};
use crate::ids::{layout_segments, write_file_path, Gvr, Operation, ResourceRef};
use crate::io::{
    ApiResource, Blobs, CommitId, FileBody, GitOp, GitOpKind, GitResult, Identity, Input, Output,
    SigningVerdict, WatchEvent,
};
use crate::json::{Doc, JsonError, Kind, RawObject};
use crate::live::{key128, tag64, KeyHash, LiveEntry, StreamLive, Terminating};
use crate::namespaces::{Labels, NamespaceLabels};
use crate::paths::{BranchPaths, Held, Member};
use crate::rules::{
    CompiledRule, Destination, DocLabels, ObjectFacts, RuleReach, RuleStore, Served,
};
use crate::sanitize::{sanitize, with_secret_values, SecretPolicy, TypeRules};
use crate::seal::Sealing;
use crate::selector::Selector;
use crate::time::{MonoClamp, Now};

mod branch;
mod branches;
mod ingest;
mod object;
mod reconfigure;

use branch::{Branch, GitEffect, NextOp};
use ingest::*;

pub(crate) use branch::{Deadline, Reason};

/// Largest sanitized object written, in canonical bytes; larger ones are refused and counted.
pub const OBJECT_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Types given an id (and watched) before the first discovery, when nothing shows them served
/// yet, at most (see `Core::bound_watched`).
pub const UNSERVED_TYPES_MAX: usize = 1024;

/// How the core is set up.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoreConfig {
    /// Distinguishes this process's ops in commit trailers across restarts (the runtime passes a
    /// random or time-derived value, the simulator a seeded one).
    pub instance_id: u64,
    /// Committer, fallback author and e-mail domain.
    pub identities: Identities,
    /// What happens to Secrets.
    pub secret_policy: SecretPolicy,
    /// Correlation store limits.
    pub correlation: CorrelationLimits,
    /// The namespaces whose GitRepoConfigs a ClusterWatchRule may write to; `None` trusts every
    /// namespace. A ClusterWatchRule mirrors what only an admin may see: whoever can edit (or
    /// create, while it is missing) the GitRepoConfig it names would redirect that mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_namespaces: Option<BTreeSet<String>>,
    /// Whether GitRepoConfigs may name `file://` remotes (`--allow-file-remotes`; tests and the
    /// demo). Off in an installed operator: a tenant would point it at its own filesystem.
    #[serde(default)]
    pub file_remotes: bool,
    /// How much one push carries (the executor's memory per push) and how large a resync part is.
    #[serde(default)]
    pub push_bounds: PushBounds,
    /// The key of sealed files' fingerprints (a Secret in the operator's namespace); without
    /// it, a GitRepoConfig's `spec.encryption` cannot be used and its Secrets are not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_key: Option<crate::seal::SealKey>,
}

/// Why `spec.encryption` is unusable when the runtime gave the core no [`CoreConfig::seal_key`].
const NO_SEAL_KEY: &str = "the operator has no fingerprint key (the Secret gitops-reverser-seal-key in its namespace could not be read or created; see its log), so it cannot tell a changed Secret from an unchanged one";

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            instance_id: 0,
            identities: Identities {
                committer: Identity {
                    name: "gitops-reverser".into(),
                    email: "gitops-reverser@configbutler.ai".into(),
                },
                fallback_author: Identity {
                    name: "gitops-reverser".into(),
                    email: "gitops-reverser@configbutler.ai".into(),
                },
                user_email_domain: "cluster.local".into(),
            },
            secret_policy: SecretPolicy::Redact,
            correlation: CorrelationLimits::default(),
            trusted_namespaces: None,
            file_remotes: false,
            push_bounds: PushBounds::default(),
            seal_key: None,
        }
    }
}

/// Counters for metrics (the names docs/operations.md lists, without the `gitopsreverser_` prefix).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Watch events received.
    pub events_received_total: u64,
    /// Watch events that queued a change.
    pub events_processed_total: u64,
    /// Watch events whose content equalled what the repo holds or what is pending.
    pub watch_duplicates_skipped_total: u64,
    /// Commits pushed.
    pub commits_total: u64,
    /// Bytes of files written by pushed commits.
    pub commit_bytes_total: u64,
    /// Files deleted by pushed commits.
    pub files_deleted_total: u64,
    /// Orphan files found by seeds and queued for deletion.
    pub orphans_found_total: u64,
    /// Pushes re-planned after a conflict.
    pub rebase_retries_total: u64,
    /// Git ops issued.
    pub git_operations_total: u64,
    /// Git ops that failed.
    pub git_failures_total: u64,
    /// Admission requests received.
    pub admissions_total: u64,
    /// Objects or admissions refused (bad names, oversized, invalid).
    pub refused_total: u64,
}

#[derive(Debug)]
struct DestState {
    /// Names the folder in its branch's [`Member`] records.
    id: u32,
    gvrs: BTreeSet<u16>,
    /// Streams whose list must be complete before the folder's orphans are judged: `gvrs`, plus
    /// namespaces when a namespace selector routes here.
    gate: BTreeSet<u16>,
    /// Streams whose list the folder waits for, with the list epoch that will do: a list that
    /// began before a relist was asked for does not count.
    awaiting: BTreeMap<u16, u32>,
    listed: bool,
    want_read: bool,
}

#[derive(Debug)]
enum OpInFlight {
    Read {
        op_id: u64,
        dest: Arc<Destination>,
    },
    Push {
        op_id: u64,
        tag: String,
        expected_head: Option<CommitId>,
    },
    Verify {
        op_id: u64,
        tag: String,
        expected_head: Option<CommitId>,
    },
}

impl OpInFlight {
    fn op_id(&self) -> u64 {
        match self {
            OpInFlight::Read { op_id, .. }
            | OpInFlight::Push { op_id, .. }
            | OpInFlight::Verify { op_id, .. } => *op_id,
        }
    }
}

type BranchKey = (NamespacedName, String);

/// A push whose result was lost: its op tag and the head it was planned on.
type Unverified = (String, Option<CommitId>);

/// A GitRepoConfig as last seen.
struct RepoEntry {
    /// Its validated settings, or the condition saying what to fix in its spec. Its branches
    /// share them.
    settings: Result<Arc<RepoSettings>, Condition>,
    /// What is wrong with its credentials Secret, if anything (the runtime's verdict).
    credentials_problem: Option<String>,
    /// The runtime's verdict on its signing key, once it has one.
    signing: Option<SigningVerdict>,
}

/// What the branch has (or will have once pending commits land) at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Have {
    Content(u64),
    /// A file of unknown content.
    Present,
    Absent,
    /// The folder was never listed.
    Unknown,
}

/// A read-only view of one branch's pipeline state, for checkers and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchView {
    /// Commits waiting (not in flight).
    pub pending_commits: usize,
    /// Pending sanitized bytes.
    pub pending_bytes: usize,
    /// Commits in flight.
    pub in_flight_commits: usize,
    /// Whether a git op is in flight.
    pub op_in_flight: bool,
    /// The last known head.
    pub head: Option<CommitId>,
    /// Commits removed or merged by coalescing.
    pub coalesced_total: u64,
}

/// The pipeline state machine. See the crate docs for the drive loop.
pub struct Core {
    config: CoreConfig,
    clock: MonoClamp,
    /// Admission records whose commits landed since the last [`Core::take_settled_records`].
    settled_records: Vec<u64>,
    repos: BTreeMap<NamespacedName, RepoEntry>,
    watch_rules: BTreeMap<NamespacedName, WatchRuleSpec>,
    cluster_rules: BTreeMap<String, ClusterWatchRuleSpec>,
    /// Discovered resources, each with whether it is namespaced.
    discovered: BTreeMap<Gvr, Served>,
    /// Whether discovery has been received: until then every type counts as served.
    discovery_seen: bool,
    /// Watched types the API server refused to list, with its message.
    denied: BTreeMap<Gvr, String>,
    /// Discovery's `kind` per type: what a list item without `apiVersion`/`kind` is given.
    kinds: BTreeMap<Gvr, String>,
    /// The defaults custom resource types' schemas declare, left out of their files.
    schema_defaults: BTreeMap<Gvr, Arc<crate::schema_defaults::SchemaDefaults>>,
    rules: RuleStore,
    watched: BTreeSet<Gvr>,
    gvr_ids: BTreeMap<Gvr, u16>,
    live: Vec<StreamLive>,
    ns_labels: NamespaceLabels,
    attributor: Attributor,
    /// Each branch with the destinations that write to it.
    branches: BTreeMap<BranchKey, Branch>,
    /// The branch each destination writes to: the watch path's route from a rule's destination
    /// to its branch.
    branch_of: BTreeMap<Arc<Destination>, BranchKey>,
    statuses: BTreeMap<CrRef, Vec<Condition>>,
    outputs: VecDeque<Output>,
    ops: BTreeMap<u64, BranchKey>,
    /// Branches whose schedule may have changed since the last drive (all of them on a tick).
    wake: BTreeSet<BranchKey>,
    next_op_id: u64,
    next_dest_id: u32,
    counters: Counters,
    /// Set by [`Input::Flush`]: every pending commit is due at once.
    flushing: bool,
    /// Scratch buffers of the watch path, reused so that an event allocates only what it keeps.
    digester: Digester,
    ident: String,
    routed: Vec<Arc<Destination>>,
    /// Reused buffer: the destinations whose rules select an object but leave its live change
    /// out (`operations`).
    held: Vec<Arc<Destination>>,
    dests_of_gvr: Vec<Arc<Destination>>,
    path: String,
}

/// Whether a path is one of a destination's own files: under its folder, in the reverser's
/// layout, of one of its streams' resource types.
impl Core {
    /// A core with no configuration yet.
    pub fn new(config: CoreConfig) -> Self {
        let attributor = Attributor::new(config.correlation);
        Self {
            config,
            clock: MonoClamp::default(),
            repos: BTreeMap::new(),
            watch_rules: BTreeMap::new(),
            cluster_rules: BTreeMap::new(),
            discovered: BTreeMap::new(),
            discovery_seen: false,
            denied: BTreeMap::new(),
            kinds: BTreeMap::new(),
            schema_defaults: BTreeMap::new(),
            rules: RuleStore::default(),
            watched: BTreeSet::new(),
            gvr_ids: BTreeMap::new(),
            live: Vec::new(),
            ns_labels: NamespaceLabels::default(),
            attributor,
            branches: BTreeMap::new(),
            branch_of: BTreeMap::new(),
            statuses: BTreeMap::new(),
            outputs: VecDeque::new(),
            ops: BTreeMap::new(),
            wake: BTreeSet::new(),
            next_op_id: 1,
            next_dest_id: 0,
            counters: Counters::default(),
            settled_records: Vec::new(),
            flushing: false,
            digester: Digester::default(),
            ident: String::with_capacity(128),
            routed: Vec::new(),
            held: Vec::new(),
            dests_of_gvr: Vec::new(),
            path: String::new(),
        }
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, now: Now, input: Input) {
        let now = self.clock.observe(now);
        let tick = matches!(input, Input::Tick);
        match input {
            Input::GitRepoConfig(name, spec) => {
                match spec {
                    Some(spec) => {
                        let settings =
                            config::validate_repo(&spec, self.config.file_remotes).map(|mut s| {
                                if s.sealing.is_some() && self.config.seal_key.is_none() {
                                    s.sealing_problem.get_or_insert_with(|| NO_SEAL_KEY.into());
                                }
                                Arc::new(s)
                            });
                        let old = self.repos.get(&name);
                        let credentials_problem = old.and_then(|r| r.credentials_problem.clone());
                        let signing = old.and_then(|r| r.signing.clone());
                        self.repos.insert(
                            name,
                            RepoEntry {
                                settings,
                                credentials_problem,
                                signing,
                            },
                        );
                    }
                    None => {
                        self.repos.remove(&name);
                    }
                }
                self.reconfigure();
            }
            Input::WatchRule(name, spec) => {
                match spec {
                    Some(s) => self.watch_rules.insert(name, s),
                    None => self.watch_rules.remove(&name),
                };
                self.reconfigure();
            }
            Input::ClusterWatchRule(name, spec) => {
                match spec {
                    Some(s) => self.cluster_rules.insert(name, s),
                    None => self.cluster_rules.remove(&name),
                };
                self.reconfigure();
            }
            Input::Credentials(name, verdict) => {
                if let Some(r) = self.repos.get_mut(&name) {
                    r.credentials_problem = verdict.into();
                }
                self.reconfigure();
            }
            Input::Signing(name, verdict) => {
                if let Some(r) = self.repos.get_mut(&name) {
                    r.signing = Some(verdict);
                }
                self.reconfigure();
            }
            Input::ApiResources(list) => {
                self.kinds = list
                    .iter()
                    .filter(|r| !r.kind.is_empty())
                    .map(|r| (r.gvr.clone(), r.kind.clone()))
                    .collect();
                self.discovered = list
                    .into_iter()
                    .map(|r: ApiResource| {
                        let served = Served {
                            namespaced: r.namespaced,
                            preferred: r.preferred,
                        };
                        (r.gvr, served)
                    })
                    .collect();
                self.discovery_seen = true;
                self.reconfigure();
            }
            Input::SchemaDefaults(gvr, defaults) => {
                let defaults = defaults.filter(|d| !d.is_empty()).map(Arc::new);
                let before = match &defaults {
                    Some(d) => self.schema_defaults.insert(gvr.clone(), d.clone()),
                    None => self.schema_defaults.remove(&gvr),
                };
                // New defaults rewrite the type's files: a relist compares every one again.
                if before != defaults && self.watched.contains(&gvr) {
                    self.resync(vec![gvr]);
                }
            }
            Input::WatchDenied(gvr, why) => {
                let changed = match why {
                    Some(why) => self.denied.insert(gvr, why.clone()).as_ref() != Some(&why),
                    None => self.denied.remove(&gvr).is_some(),
                };
                if changed {
                    self.reconfigure();
                }
            }
            Input::Admission(req) => self.handle_admission(now, req),
            Input::Watch(gvr, event) => self.handle_watch(now, gvr, event),
            Input::GitDone(op_id, result) => self.handle_git(now, op_id, result),
            Input::Tick => self.wake.extend(self.branches.keys().cloned()),
            Input::Flush => {
                self.flushing = true;
                self.wake.extend(self.branches.keys().cloned());
            }
        }
        self.drive(now);
        // A deadline that has passed makes the driver tick again at once: after a tick every
        // branch has acted on what was due, or the driver would spin.
        invariant!(
            !tick
                || self.branches.values().all(|b| b
                    .poll_op(self.flushing)
                    .is_none_or(|(d, _)| d.at_ms > now.mono_ms)),
            "a branch's op is due after a tick"
        );
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs a [`Input::Tick`] (monotonic ms); `None` when idle.
    pub fn poll_deadline(&self) -> Option<u64> {
        self.poll_timeout().map(|d| d.at_ms)
    }

    /// [`Self::poll_deadline`] with what is due then: the soonest of the branches' deadlines
    /// (in branch order) and the correlation stores' next expiry.
    pub fn poll_timeout(&self) -> Option<Deadline> {
        let expiry = self.attributor.next_expiry_ms().map(|at_ms| Deadline {
            at_ms,
            reason: Reason::Expiry,
        });
        self.branches
            .values()
            .filter_map(|b| b.poll_op(self.flushing).map(|(d, _)| d))
            .fold(expiry, |soonest, d| Some(d.soonest(soonest)))
    }

    /// Pipeline counters.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.git_operations_total = self.next_op_id - 1;
        c
    }

    /// Correlation store counters.
    pub fn correlation_counters(&self) -> CorrelationCounters {
        self.attributor.store_counters()
    }

    /// Attribution outcome counters.
    pub fn attribution_counters(&self) -> AttributionCounters {
        self.attributor.counters()
    }

    /// Correlation keys and entries held.
    pub fn correlation_size(&self) -> (usize, usize) {
        self.attributor.store_size()
    }

    /// How full the correlation stores are, per key included.
    pub fn correlation_bounds(&self) -> crate::attribution::StoreBounds {
        self.attributor.bounds()
    }

    /// Live objects tracked over all streams.
    pub fn live_objects(&self) -> usize {
        self.live.iter().map(StreamLive::len).sum()
    }

    /// The GVRs being watched.
    pub fn watched(&self) -> &BTreeSet<Gvr> {
        &self.watched
    }

    /// Whether the API server refused the last list of `gvr` ([`Input::WatchDenied`]).
    pub fn list_denied(&self, gvr: &Gvr) -> bool {
        self.denied.contains_key(gvr)
    }

    /// The state of one branch's pipeline.
    pub fn branch(&self, repo: &NamespacedName, branch: &str) -> Option<BranchView> {
        let b = self.branches.get(&(repo.clone(), branch.to_string()))?;
        Some(BranchView {
            pending_commits: b.queue.len(),
            pending_bytes: b.queue.bytes(),
            in_flight_commits: b.queue.in_flight().len(),
            op_in_flight: b.op.is_some(),
            head: b.head.clone(),
            coalesced_total: b.queue.coalesced_total(),
        })
    }

    /// Whether the object streams should pause until this turns false: a branch whose pushes land
    /// (no failure, conflict or unverified push since the last one that landed) holds more than
    /// [`crate::batch::BACKLOG_BYTES_MAX`] of unpushed content. A branch whose pushes fail does
    /// not count: one tenant's broken remote must not stop every other tenant's intake (its queue
    /// coalesces instead, [`crate::batch::PENDING_BYTES_MAX`]).
    pub fn backlogged(&self) -> bool {
        self.branches
            .values()
            .any(|b| b.pushes_land() && b.queue.bytes() > crate::batch::BACKLOG_BYTES_MAX)
    }

    /// Commits not yet pushed and git ops in flight, over every branch: what a shutdown waits for.
    pub fn unfinished(&self) -> (usize, usize) {
        self.branches.values().fold((0, 0), |(commits, ops), b| {
            (
                commits + b.queue.len() + b.queue.in_flight().len(),
                ops + usize::from(b.op.is_some()),
            )
        })
    }

    /// Every branch with its view, in order: for metrics.
    pub fn branch_views(&self) -> Vec<(NamespacedName, String, BranchView)> {
        self.branches
            .keys()
            .filter_map(|(repo, branch)| {
                Some((repo.clone(), branch.clone(), self.branch(repo, branch)?))
            })
            .collect()
    }

    /// The admission records ([`crate::admission::record_id`]) settled since the last call: those
    /// whose change's commit went out in a push, those whose change made no commit (its file was
    /// already so, or a later write replaced it before it went out), and those dropped as late
    /// or retired. A runtime keeps a
    /// window of records for the core of its next process, and hands it only records not
    /// settled: a record the last core used for a commit that landed, or found late, would name
    /// its user again for a change already committed.
    pub fn take_settled_records(&mut self) -> Vec<u64> {
        let mut out = std::mem::take(&mut self.settled_records);
        out.extend(self.attributor.drain_settled());
        for b in self.branches.values_mut() {
            out.extend(b.queue.take_dropped_records());
        }
        out
    }

    /// Every branch the pipeline writes to, as (GitRepoConfig, URL, branch), in order: what the
    /// executor keeps clones of. A branch stays while its GitRepoConfig is valid, so a destination
    /// that went still drains its queue.
    pub fn branch_remotes(&self) -> Vec<(NamespacedName, String, String)> {
        self.branches
            .iter()
            .map(|((repo, branch), b)| (repo.clone(), b.settings.repo_url.clone(), branch.clone()))
            .collect()
    }

    /// The destinations of valid rules, in order.
    pub fn destinations(&self) -> Vec<Destination> {
        self.branches
            .values()
            .flat_map(|b| b.dests.keys())
            .map(|d| Destination::clone(d))
            .collect()
    }

    /// The last conditions emitted for a custom resource.
    pub fn status(&self, cr: &CrRef) -> Option<&[Condition]> {
        self.statuses.get(cr).map(Vec::as_slice)
    }
}
