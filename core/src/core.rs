//! [`Core`]: the whole pipeline as one sans-IO state machine.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::admission::AdmissionRequest;
use crate::attribution::{Attribution, AttributionCounters, Attributor, CorrKey, Record};
use crate::batch::{CommitKind, Content, PendingWrite, Queue};
use crate::canonical::{DigestOut, Digester};
use crate::config::{
    self, ClusterWatchRuleSpec, Condition, CrRef, GitRepoConfigSpec, NamespacedName, RepoSettings,
    WatchRuleSpec,
};
use crate::correlation::{CorrelationCounters, CorrelationLimits};
use crate::coverage;
use crate::gitplan::{self, Identities};
use crate::ids::{layout_segments, write_file_path, Gvr, Operation, ResourceRef};
use crate::io::{
    ApiResource, Blobs, CommitId, FileBody, GitOp, GitOpKind, GitResult, Identity, Input, Output,
    WatchEvent,
};
use crate::json::{Doc, JsonError, Kind, RawObject};
use crate::live::{key128, tag64, KeyHash, LiveEntry, StreamLive, Terminating};
use crate::namespaces::{Labels, NamespaceLabels};
use crate::paths::{BranchPaths, Held, Member};
use crate::rules::{
    CompiledRule, Destination, DocLabels, ObjectFacts, RuleReach, RuleStore, Served,
};
use crate::sanitize::{sanitize, SecretPolicy, TypeRules};
use crate::selector::Selector;
use crate::time::{MonoClamp, Now};

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
}

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
    branch: BranchKey,
    gvrs: BTreeSet<u16>,
    /// Streams whose list must be complete before the folder is read: `gvrs`, plus namespaces
    /// when a namespace selector routes here.
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

#[derive(Debug)]
struct BranchState {
    settings: RepoSettings,
    queue: Queue,
    /// What the branch holds at each path, and which paths are live objects' files.
    paths: BranchPaths,
    head: Option<CommitId>,
    op: Option<OpInFlight>,
    /// A push whose result was lost, to verify before anything else: (tag, expected head).
    unverified: Option<Unverified>,
    failures_in_row: u32,
    conflicts_in_row: u32,
    retry_at_ms: u64,
    retry_now: bool,
    /// The last failure's condition reason and message, until a push lands.
    last_push_error: Option<(String, String)>,
}

type BranchKey = (NamespacedName, String);

/// A push whose result was lost: its op tag and the head it was planned on.
type Unverified = (String, Option<CommitId>);

/// The git op a branch has next (see `Core::next_op`).
enum NextOp {
    Verify,
    Read(Arc<Destination>),
    Push,
}

/// A GitRepoConfig as last seen: spec, validation result, credentials problem.
type RepoEntry = (
    GitRepoConfigSpec,
    Result<RepoSettings, Condition>,
    Option<String>,
);

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
    now: Now,
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
    rules: RuleStore,
    watched: BTreeSet<Gvr>,
    gvr_ids: BTreeMap<Gvr, u16>,
    live: Vec<StreamLive>,
    ns_labels: NamespaceLabels,
    attributor: Attributor,
    dests: BTreeMap<Arc<Destination>, DestState>,
    branches: BTreeMap<BranchKey, BranchState>,
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
/// Writes that were in flight when their destination was removed come back to the queue after a
/// failed, conflicting or lost push. As at the removal itself they are dropped: their folder is no
/// longer kept, and nothing would re-read it to check them against the new head.
fn drop_writes_of_removed_destinations(
    queue: &mut Queue,
    dests: &BTreeMap<Arc<Destination>, DestState>,
    gvr_ids: &BTreeMap<Gvr, u16>,
    key: &BranchKey,
) {
    let layouts: Vec<_> = dests
        .iter()
        .filter(|(_, d)| d.branch == *key)
        .map(|(dest, d)| layout_of(gvr_ids, &d.gvrs, &dest.base_folder))
        .collect();
    queue.drop_writes(|w| !layouts.iter().any(|ours| ours(&w.path)));
}

/// Marks every listed folder on branch `key` to be read again: what the core believes the branch
/// holds may be stale, because others wrote it (a conflict, a head that moved past our push).
fn reread_folders(dests: &mut BTreeMap<Arc<Destination>, DestState>, key: &BranchKey) {
    for d in dests.values_mut() {
        if d.branch == *key && d.listed {
            d.want_read = true;
        }
    }
}

/// What the core reads off an admission request's object.
struct AdmissionDigest {
    /// Content hash after sanitization.
    hash: u64,
    /// Fingerprint of `metadata.resourceVersion`.
    rv: Option<u64>,
    /// Fingerprint of `metadata.uid`.
    uid: Option<u64>,
    /// Being deleted and held by finalizers: a DELETE of it changes nothing.
    held: bool,
}

/// What [`Core::handle_doc`] made of an object.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// Handled.
    Done,
    /// Not handled: it has no `apiVersion`/`kind`, and discovery knows its kind.
    Untyped,
}

fn layout_of<'a>(
    gvr_ids: &BTreeMap<Gvr, u16>,
    gvrs: &BTreeSet<u16>,
    base_folder: &'a str,
) -> impl Fn(&str) -> bool + 'a {
    let prefixes: Vec<(String, usize)> = gvr_ids
        .iter()
        .filter(|(_, id)| gvrs.contains(id))
        .map(|(g, _)| (g.to_string(), if g.group.is_empty() { 2 } else { 3 }))
        .collect();
    move |path: &str| {
        layout_segments(base_folder, path).is_some_and(|segs| {
            prefixes.iter().any(|(prefix, n)| {
                let rest = segs.len() - n;
                (rest == 1 || rest == 2) && segs[..*n].join("/") == *prefix
            })
        })
    }
}

/// Like [`layout_of`], at any version: the files of `gvrs`' group and resource under another
/// version. When the version a wildcard selects changes (the cluster or a CRD was upgraded), the
/// folder's files of the old version are its orphans, and go in the commit that writes the new
/// version's: one file per object, with no gap and nothing left behind.
fn layout_any_version<'a>(
    gvr_ids: &BTreeMap<Gvr, u16>,
    gvrs: &BTreeSet<u16>,
    base_folder: &'a str,
) -> impl Fn(&str) -> bool + 'a {
    let kinds: Vec<(String, String)> = gvr_ids
        .iter()
        .filter(|(_, id)| gvrs.contains(id))
        .map(|(g, _)| (g.group.clone(), g.resource.clone()))
        .collect();
    // Kubernetes versions: v1, v2beta1, v1alpha3.
    let version_like = |v: &str| {
        v.strip_prefix('v')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    move |path: &str| {
        layout_segments(base_folder, path).is_some_and(|segs| {
            kinds.iter().any(|(group, resource)| {
                let (n, version) = if group.is_empty() {
                    (2, segs[0])
                } else {
                    (3, segs[1])
                };
                let rest = segs.len() - n;
                (rest == 1 || rest == 2)
                    && (group.is_empty() || segs[0] == group)
                    && segs[n - 1] == resource
                    && version_like(version)
            })
        })
    }
}

/// Where one routed write goes, with what [`Enqueue::write`] needs besides the branch: borrowed
/// field by field from the core, so that the watch path looks each map up once.
struct Enqueue<'a> {
    dest: &'a Destination,
    listed: bool,
    now: Now,
    wake: &'a mut BTreeSet<BranchKey>,
    branch_key: &'a BranchKey,
}

impl Enqueue<'_> {
    /// Queues a write unless the repo already holds, or the queue already has, that content.
    fn write(
        self,
        b: &mut BranchState,
        write: PendingWrite,
        author: Option<Arc<str>>,
        kind: CommitKind,
        resync: bool,
    ) -> bool {
        let listed = self.listed;
        let redundant = |have: Have| match (&write.content, have) {
            (Some(c), Have::Content(h)) => c.hash == h,
            (None, Have::Absent) => true,
            _ => false,
        };
        let queued = b
            .queue
            .latest(write.path_key)
            .map(|c| c.map_or(Have::Absent, Have::Content));
        if queued.is_some_and(redundant) {
            return false;
        }
        // A resync write that replaces the path's only pending one (in the same open resync
        // commit) is judged against the repository too, and where the repository already holds
        // it, the replaced write goes as well (seed 85336: a namespace relabelled there and back
        // before the push, and the listed objects' additions, replaced by removals, became a
        // commit of deletes of files the repository never had).
        let replaces = resync
            && b.queue
                .only_in_open_resync(write.path_key, &self.dest.base_folder);
        if queued.is_some() && !replaces {
            return self.enqueue(b, write, author, kind, resync);
        }
        let have = match b.paths.held(write.path_key) {
            Some(Held {
                content: Some(h), ..
            }) => Have::Content(h),
            // Listed but not yet compared: render once to learn whether it is the same file.
            Some(h) => match &write.content {
                Some(c) if c.file.blob_id() == h.blob => {
                    let known = Held {
                        content: Some(c.hash),
                        blob: h.blob,
                    };
                    b.paths.set_held(write.path_key, Some(known));
                    Have::Content(c.hash)
                }
                _ => Have::Present,
            },
            None if listed => Have::Absent,
            None => Have::Unknown,
        };
        if redundant(have) {
            if replaces {
                b.queue.drop_from_open_resync(write.path_key);
            }
            return false;
        }
        self.enqueue(b, write, author, kind, resync)
    }

    /// Queues a write that changes something.
    fn enqueue(
        self,
        b: &mut BranchState,
        write: PendingWrite,
        author: Option<Arc<str>>,
        kind: CommitKind,
        resync: bool,
    ) -> bool {
        let (now, wall) = (self.now.mono_ms, self.now.wall_ms);
        if resync {
            b.queue
                .push_resync(now, wall, &self.dest.base_folder, write);
        } else {
            b.queue.push_event(now, wall, author, kind, write);
        }
        // Count and byte triggers act at once; the time trigger comes with a tick.
        if b.op.is_none()
            && b.queue
                .due(now, b.settings.max_commits, b.settings.push_interval_ms)
            && !self.wake.contains(self.branch_key)
        {
            self.wake.insert(self.branch_key.clone());
        }
        true
    }
}

fn namespaces_gvr() -> Gvr {
    Gvr::new("", "v1", "namespaces")
}

/// The deletion state an object is left in by an event: `prev` is what the watch knew of this
/// very object (same uid), `being_deleted` whether the event carries `deletionTimestamp`.
fn terminating_after(
    prev: Option<LiveEntry>,
    being_deleted: bool,
    initial: bool,
    content: u64,
) -> Terminating {
    match prev {
        _ if !being_deleted => Terminating::No,
        Some(p) if p.terminating != Terminating::No => p.terminating,
        // Seen live just before it began: that version is the one the DELETE was admitted on.
        Some(p) if !initial => Terminating::Since {
            rv: p.rv,
            content: p.content,
        },
        // It began in a gap the watch did not see (a relist), or before the watch knew it.
        _ => Terminating::SinceUnseen { content },
    }
}

/// Whether `gvr` is the namespaces stream, without building one to compare (every event asks).
fn is_namespaces(gvr: &Gvr) -> bool {
    gvr.resource == "namespaces" && gvr.version == "v1" && gvr.group.is_empty()
}

impl Core {
    /// A core with no configuration yet.
    pub fn new(config: CoreConfig) -> Self {
        let attributor = Attributor::new(config.correlation);
        Self {
            config,
            clock: MonoClamp::default(),
            now: Now::default(),
            repos: BTreeMap::new(),
            watch_rules: BTreeMap::new(),
            cluster_rules: BTreeMap::new(),
            discovered: BTreeMap::new(),
            discovery_seen: false,
            denied: BTreeMap::new(),
            kinds: BTreeMap::new(),
            rules: RuleStore::default(),
            watched: BTreeSet::new(),
            gvr_ids: BTreeMap::new(),
            live: Vec::new(),
            ns_labels: NamespaceLabels::default(),
            attributor,
            dests: BTreeMap::new(),
            branches: BTreeMap::new(),
            statuses: BTreeMap::new(),
            outputs: VecDeque::new(),
            ops: BTreeMap::new(),
            wake: BTreeSet::new(),
            next_op_id: 1,
            next_dest_id: 0,
            counters: Counters::default(),
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
        self.now = now;
        let tick = matches!(input, Input::Tick);
        match input {
            Input::GitRepoConfig(name, spec) => {
                match spec {
                    Some(spec) => {
                        let settings = config::validate_repo(&spec, self.config.file_remotes);
                        let cred = self.repos.get(&name).and_then(|r| r.2.clone());
                        self.repos.insert(name, (spec, settings, cred));
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
            Input::Credentials(name, problem) => {
                if let Some(r) = self.repos.get_mut(&name) {
                    r.2 = problem;
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
            Input::WatchDenied(gvr, why) => {
                let changed = match why {
                    Some(why) => self.denied.insert(gvr, why.clone()).as_ref() != Some(&why),
                    None => self.denied.remove(&gvr).is_some(),
                };
                if changed {
                    self.reconfigure();
                }
            }
            Input::Admission(req) => self.handle_admission(req),
            Input::Watch(gvr, event) => self.handle_watch(gvr, event),
            Input::GitDone(op_id, result) => self.handle_git(op_id, result),
            Input::Tick => self.wake.extend(self.branches.keys().cloned()),
            Input::Flush => {
                self.flushing = true;
                self.wake.extend(self.branches.keys().cloned());
            }
        }
        self.drive();
        // A deadline that has passed makes the driver tick again at once: after a tick every
        // branch has acted on what was due, or the driver would spin.
        invariant!(
            !tick
                || self
                    .branches
                    .iter()
                    .all(|(k, b)| self.next_op(k, b).is_none_or(|(at, _)| at > now.mono_ms)),
            "a branch's op is due after a tick"
        );
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs a [`Input::Tick`] (monotonic ms); `None` when idle.
    pub fn poll_deadline(&self) -> Option<u64> {
        let ops = self
            .branches
            .iter()
            .filter_map(|(key, b)| self.next_op(key, b).map(|(at, _)| at));
        self.attributor
            .next_expiry_ms()
            .into_iter()
            .chain(ops)
            .min()
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
        self.dests.keys().map(|d| Destination::clone(d)).collect()
    }

    /// The last conditions emitted for a custom resource.
    pub fn status(&self, cr: &CrRef) -> Option<&[Condition]> {
        self.statuses.get(cr).map(Vec::as_slice)
    }

    // ---- configuration ----

    fn compile_rules(&self) -> (Vec<CompiledRule>, BTreeMap<CrRef, Vec<Condition>>) {
        let mut rules = Vec::new();
        let mut status = BTreeMap::new();
        for (name, (_, settings, cred)) in &self.repos {
            let mut conds = vec![match settings {
                Ok(_) => Condition::ready(),
                Err(c) => c.clone(),
            }];
            if let (Ok(_), Some(problem)) = (settings, cred) {
                // A spec that cannot be used says so first: its credentials may not even apply.
                conds[0] = Condition::not_ready("CredentialsInvalid", problem.clone());
            }
            if let Some((reason, message)) = self
                .branches
                .iter()
                .filter(|(k, _)| &k.0 == name)
                .find_map(|(_, b)| b.last_push_error.clone())
            {
                conds.push(Condition {
                    type_: "Pushed".into(),
                    status: false,
                    reason,
                    message,
                });
            }
            status.insert(CrRef::GitRepoConfig(name.clone()), conds);
        }
        for (name, spec) in &self.watch_rules {
            let result = (|| {
                let repo =
                    config::resolve_watch_rule_repo(&name.namespace, &spec.git_repo_config_ref)?;
                let branch = config::validate_destination(
                    self.repos.get(&repo).map(|r| &r.1),
                    &repo,
                    spec.branch.as_deref(),
                    spec.base_folder.as_deref(),
                )?;
                config::validate_resources(&spec.resources)?;
                coverage::conflicting_versions(&spec.resources, &self.discovered)?;
                Ok::<_, Condition>(CompiledRule {
                    source: CrRef::WatchRule(name.clone()),
                    destination: Arc::new(Destination::new(
                        repo,
                        &branch,
                        spec.base_folder.as_deref().unwrap_or_default(),
                    )),
                    resources: spec.resources.clone(),
                    operations: config::OpSet::parse(&spec.operations)?,
                    object_selector: config::compile_selector(
                        spec.object_selector.as_ref(),
                        "objectSelector",
                    )?,
                    reach: RuleReach::OwnNamespace(name.namespace.clone()),
                })
            })();
            let conds = match &result {
                Err(c) => vec![c.clone()],
                Ok(rule) => {
                    let problems = self.discovery_seen.then(|| {
                        rule.resources
                            .iter()
                            .enumerate()
                            .filter_map(|(i, sel)| {
                                coverage::entry_problem(
                                    sel,
                                    &rule.reach,
                                    &self.discovered,
                                    &self.denied,
                                )
                                .map(|p| (format!("resources[{i}]"), p))
                            })
                            .collect::<Vec<_>>()
                    });
                    coverage::rule_conditions(
                        problems.as_deref(),
                        rule.resources.len(),
                        self.repo_problem(&rule.destination.repo),
                    )
                }
            };
            status.insert(CrRef::WatchRule(name.clone()), conds);
            rules.extend(result);
        }
        for (name, spec) in &self.cluster_rules {
            let repo = &spec.git_repo_config_ref;
            let result = (|| {
                if let Some(trusted) = &self.config.trusted_namespaces {
                    if !trusted.contains(&repo.namespace) {
                        return Err(Condition::not_ready(
                            "UntrustedNamespace",
                            format!(
                                "GitRepoConfig {repo} is in namespace {}, which the operator does not trust for ClusterWatchRules (trusted: {}); use a GitRepoConfig in a trusted namespace, or have the operator's admin add this one (--cluster-rule-namespaces)",
                                repo.namespace,
                                trusted.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
                let branch = config::validate_destination(
                    self.repos.get(repo).map(|r| &r.1),
                    repo,
                    spec.branch.as_deref(),
                    spec.base_folder.as_deref(),
                )?;
                if spec.rules.is_empty() {
                    return Err(Condition::not_ready(
                        "NoResources",
                        "rules is empty; add at least one entry with resources",
                    ));
                }
                config::validate_cluster_rule_entries(&spec.rules)?;
                let every: Vec<_> = spec
                    .rules
                    .iter()
                    .flat_map(|r| r.resources.clone())
                    .collect();
                coverage::conflicting_versions(&every, &self.discovered)?;
                let dest = Arc::new(Destination::new(
                    repo.clone(),
                    &branch,
                    spec.base_folder.as_deref().unwrap_or_default(),
                ));
                spec.rules
                    .iter()
                    .map(|r| {
                        config::validate_resources(&r.resources)?;
                        let ns_sel = config::compile_selector(
                            r.namespace_selector.as_ref(),
                            "namespaceSelector",
                        )?;
                        Ok(CompiledRule {
                            source: CrRef::ClusterWatchRule(name.clone()),
                            destination: dest.clone(),
                            resources: r.resources.clone(),
                            operations: config::OpSet::parse(&r.operations)?,
                            object_selector: config::compile_selector(
                                r.object_selector.as_ref(),
                                "objectSelector",
                            )?,
                            reach: match r.scope {
                                config::RuleScope::Cluster => RuleReach::ClusterScoped,
                                config::RuleScope::Namespaced => RuleReach::Namespaced(ns_sel),
                            },
                        })
                    })
                    .collect::<Result<Vec<_>, Condition>>()
            })();
            let conds = match &result {
                Err(c) => vec![c.clone()],
                Ok(entries) => {
                    let problems = self.discovery_seen.then(|| {
                        entries
                            .iter()
                            .enumerate()
                            .flat_map(|(i, rule)| {
                                rule.resources
                                    .iter()
                                    .enumerate()
                                    .filter_map(move |(j, sel)| {
                                        coverage::entry_problem(
                                            sel,
                                            &rule.reach,
                                            &self.discovered,
                                            &self.denied,
                                        )
                                        .map(|p| (format!("rules[{i}].resources[{j}]"), p))
                                    })
                            })
                            .collect::<Vec<_>>()
                    });
                    coverage::rule_conditions(
                        problems.as_deref(),
                        entries.iter().map(|r| r.resources.len()).sum(),
                        self.repo_problem(repo),
                    )
                }
            };
            status.insert(CrRef::ClusterWatchRule(name.clone()), conds);
            rules.extend(result.into_iter().flatten());
        }
        (rules, status)
    }

    /// Why the repository `repo` cannot take pushes although its settings are valid (they are
    /// checked with the rule's destination): its credentials. A rule that writes there says so,
    /// and keeps its streams and folders, so that nothing is lost once they are fixed.
    fn repo_problem(&self, repo: &NamespacedName) -> Option<Condition> {
        let (_, _, problem) = self.repos.get(repo)?;
        problem.as_ref().map(|p| {
            Condition::not_ready(
                "GitRepoConfigNotReady",
                format!("GitRepoConfig {repo} is not ready: CredentialsInvalid: {p}"),
            )
        })
    }

    /// The id of a watched type (or of one watched before): [`Self::bound_watched`] gave it one.
    fn gvr_id(&self, gvr: &Gvr) -> u16 {
        *self
            .gvr_ids
            .get(gvr)
            .expect("every type watched has an id (bound_watched)")
    }

    /// The types to watch among `wanted`, each given an id. Ids are never reused, so only types
    /// that can matter get one: those discovery shows served, those watched before, and before
    /// the first discovery at most [`UNSERVED_TYPES_MAX`] in all. Once discovery is in, a type a
    /// rule names that the API server does not serve waits, id-less, until it is served: made-up
    /// names in a tenant's rules cost nothing, however many there are. A type that cannot get an
    /// id (all 65,536 given out) is left unwatched rather than failing every other.
    fn bound_watched(&mut self, wanted: BTreeSet<Gvr>) -> BTreeSet<Gvr> {
        let mut out = BTreeSet::new();
        for g in wanted {
            if !self.gvr_ids.contains_key(&g) {
                let served = self.discovered.contains_key(&g) || is_namespaces(&g);
                // Before the first discovery nothing is known served: every id counts.
                if !served && (self.discovery_seen || self.live.len() >= UNSERVED_TYPES_MAX) {
                    continue;
                }
                let Ok(id) = u16::try_from(self.live.len()) else {
                    continue;
                };
                self.gvr_ids.insert(g.clone(), id);
                self.live.push(StreamLive::default());
            }
            out.insert(g);
        }
        out
    }

    /// Whether the API server serves `gvr` (every type does until discovery has been received).
    fn served(&self, gvr: &Gvr) -> bool {
        !self.discovery_seen || self.discovered.contains_key(gvr)
    }

    fn reconfigure(&mut self) {
        let (compiled, status) = self.compile_rules();
        let mut rules = RuleStore::new(compiled);
        let mut watched = rules.watched_gvrs(&self.discovered);
        if rules.needs_namespace_labels() {
            watched.insert(namespaces_gvr());
        } else {
            // The stream stops: labels kept from now on would go stale unseen.
            self.ns_labels.forget();
        }
        let watched = self.bound_watched(watched);
        rules.index(&watched, &self.discovered);
        self.rules = rules;
        if watched != self.watched {
            self.watched = watched.clone();
            self.outputs
                .push_back(Output::EnsureWatches(watched.clone()));
        }
        // Destinations: new ones (or ones fed by a changed set of streams) need a seed.
        let mut new_dests = BTreeMap::new();
        let mut resync = BTreeSet::new();
        for dest in self.rules.destinations() {
            let gvrs: Vec<Gvr> = self
                .rules
                .gvrs_of_destination(&dest)
                .into_iter()
                .cloned()
                .collect();
            let ids: BTreeSet<u16> = gvrs.iter().map(|g| self.gvr_id(g)).collect();
            // A namespace selector routes on namespace labels: until the namespaces are listed,
            // objects would look unselected and their files like orphans.
            let ns_gated = self.rules.rules().iter().any(|r| {
                *r.destination == *dest && matches!(r.reach, RuleReach::Namespaced(Some(_)))
            });
            // The folder waits for the lists of the types the API server serves only: a stream
            // of one it does not (a CRD not installed yet, or deleted) shows nothing, and waiting
            // for it would leave the folder unread and its branch held back. Files of such a
            // type are not taken for orphans meanwhile (`apply_listing` scans served types only):
            // while it cannot be listed, nothing shows they are.
            let mut gate: BTreeSet<u16> = gvrs
                .iter()
                .filter(|g| self.served(g))
                .map(|g| self.gvr_ids[g])
                .collect();
            if let (true, Some(&ns)) = (ns_gated, self.gvr_ids.get(&namespaces_gvr())) {
                gate.insert(ns);
            }
            let branch = (dest.repo.clone(), dest.branch.clone());
            let known = self.dests.contains_key(&dest);
            let mut state = match self.dests.remove(&dest) {
                Some(state) => state,
                None => {
                    self.next_dest_id += 1;
                    DestState {
                        id: self.next_dest_id,
                        branch,
                        gvrs: BTreeSet::new(),
                        gate: BTreeSet::new(),
                        awaiting: BTreeMap::new(),
                        listed: false,
                        want_read: false,
                    }
                }
            };
            // A new folder is read even if no stream feeds it (a rule whose entries select
            // nothing served yet): unread, it would hold back its whole branch.
            if !known || state.gvrs != ids || state.gate != gate {
                // New, or fed by other streams now: list its streams again and rescan the folder.
                // A stream that no longer feeds it takes its objects and unpushed writes along,
                // as a destination that went does: their files are no longer the folder's, and
                // members whose files a listing does not count would look diverged for ever.
                let dropped: BTreeSet<u16> = state.gvrs.difference(&ids).copied().collect();
                if let (false, Some(b)) = (dropped.is_empty(), self.branches.get_mut(&state.branch))
                {
                    let theirs = layout_of(&self.gvr_ids, &dropped, &dest.base_folder);
                    b.queue.drop_writes(|w| theirs(&w.path));
                    let id = state.id;
                    b.paths
                        .drop_members(|m| m.dest == id && dropped.contains(&m.gid));
                }
                // A type no longer served has no live objects: forgotten, they would look like
                // members whose files went missing, and no list of the type could ever settle
                // that. Their files stay (outside the listed layout) until it is served again.
                let unserved: BTreeSet<u16> = ids.difference(&gate).copied().collect();
                if let (false, Some(b)) =
                    (unserved.is_empty(), self.branches.get_mut(&state.branch))
                {
                    let id = state.id;
                    b.paths
                        .drop_members(|m| m.dest == id && unserved.contains(&m.gid));
                }
                state.gvrs = ids;
                state.awaiting = gate
                    .iter()
                    .map(|g| (*g, self.live[*g as usize].epoch() + 1))
                    .collect();
                state.gate = gate;
                state.listed = false;
                if state.awaiting.is_empty() {
                    // Fed by no stream the API server serves now: no list to wait for, and
                    // unread, the folder would hold back its whole branch.
                    state.want_read = true;
                    self.wake.insert(state.branch.clone());
                }
                resync.extend(gvrs);
                if ns_gated {
                    resync.insert(namespaces_gvr());
                }
            }
            new_dests.insert(dest, state);
        }
        // A destination that went takes its unpushed writes with it: its folder is no longer
        // kept, and after a conflict nothing could re-read the folder to check them.
        for (gone, d) in self
            .dests
            .iter()
            .filter(|(d, _)| !new_dests.contains_key(*d))
        {
            if let Some(b) = self
                .branches
                .get_mut(&(gone.repo.clone(), gone.branch.clone()))
            {
                let ours = layout_of(&self.gvr_ids, &d.gvrs, &gone.base_folder);
                b.queue.drop_writes(|w| ours(&w.path));
                b.paths.drop_members(|m| m.dest == d.id);
            }
        }
        self.dests = new_dests;
        // Branches follow destinations; one whose destinations went keeps draining its queue, one
        // whose GitRepoConfig went or became invalid cannot push and goes with it.
        let keys: BTreeSet<BranchKey> = self
            .dests
            .keys()
            .map(|d| (d.repo.clone(), d.branch.clone()))
            .collect();
        for key in keys {
            let Some(Ok(settings)) = self.repos.get(&key.0).map(|r| r.1.clone()) else {
                continue;
            };
            match self.branches.get_mut(&key) {
                Some(b) => b.settings = settings,
                None => {
                    self.branches.insert(
                        key,
                        BranchState {
                            settings,
                            queue: Queue::default(),
                            paths: BranchPaths::default(),
                            head: None,
                            op: None,
                            unverified: None,
                            failures_in_row: 0,
                            conflicts_in_row: 0,
                            retry_at_ms: 0,
                            retry_now: false,
                            last_push_error: None,
                        },
                    );
                }
            }
        }
        let repos = &self.repos;
        self.branches
            .retain(|k, _| repos.get(&k.0).is_some_and(|r| r.1.is_ok()));
        self.wake.extend(self.branches.keys().cloned());
        // A stream that is not running yet starts with a list anyway.
        let running: Vec<Gvr> = resync
            .into_iter()
            .filter(|g| self.watched.contains(g))
            .collect();
        self.resync(running);
        self.emit_statuses(status);
    }

    fn emit_statuses(&mut self, status: BTreeMap<CrRef, Vec<Condition>>) {
        for (cr, conds) in &status {
            if self.statuses.get(cr) != Some(conds) {
                self.outputs
                    .push_back(Output::Status(cr.clone(), conds.clone()));
            }
        }
        self.statuses = status;
    }

    fn refresh_statuses(&mut self) {
        let (_, status) = self.compile_rules();
        self.emit_statuses(status);
    }

    // ---- ingestion ----

    /// Sanitizes an admission's object: its content hash and the fingerprints of its
    /// `metadata.resourceVersion` and `metadata.uid`.
    fn digest_admission(
        &mut self,
        obj: &RawObject,
        rules: TypeRules,
    ) -> Result<AdmissionDigest, JsonError> {
        self.digester.with_doc(obj.as_bytes(), |doc, out| {
            let fingerprint = |doc: &Doc, field: &str| {
                doc.path(&["metadata", field])
                    .and_then(|v| doc.str_raw(v))
                    .map(tag64)
            };
            let (rv, uid) = (fingerprint(doc, "resourceVersion"), fingerprint(doc, "uid"));
            let deleting = doc
                .path(&["metadata", "deletionTimestamp"])
                .is_some_and(|d| doc.kind(d) != Kind::Null);
            let finalized = doc
                .path(&["metadata", "finalizers"])
                .is_some_and(|f| doc.children(f).next().is_some());
            sanitize(doc, rules);
            AdmissionDigest {
                hash: out.finish(doc).0,
                rv,
                uid,
                held: deleting && finalized,
            }
        })
    }

    fn refuse(&mut self, subject: String, reason: String) {
        self.counters.refused_total += 1;
        self.outputs.push_back(Output::Refused { subject, reason });
    }

    fn handle_admission(&mut self, req: AdmissionRequest) {
        self.counters.admissions_total += 1;
        if req.dry_run {
            self.attributor.skip_dry_run();
            return;
        }
        if req.sub_resource.is_some() {
            // `status` changes nothing a file holds (status is never written), and `scale`
            // carries a Scale, not the object: its content cannot be joined to the object's
            // event. Kept, such a record could only ever be wrong.
            self.attributor.skip_subresource();
            return;
        }
        if !self.rules.watches(&req.gvr) {
            return;
        }
        let r = ResourceRef {
            gvr: &req.gvr,
            namespace: req.namespace.as_deref(),
            name: &req.name,
        };
        if let Err(e) = r.validate() {
            self.refuse(r.identifier(), format!("admission not recorded: {e}"));
            return;
        }
        let ident = key128(&r.identifier());
        let digests = match req.operation {
            Operation::Create => req.object.as_ref().map(|o| (o, None)),
            Operation::Update => req.object.as_ref().zip(req.old_object.as_ref().map(Some)),
            Operation::Delete => req.old_object.as_ref().map(|o| (o, None)),
        };
        let Some((primary, old)) = digests else {
            self.refuse(
                r.identifier(),
                format!(
                    "admission not recorded: {} without the objects it needs",
                    req.operation
                ),
            );
            return;
        };
        let rules = TypeRules::of(&req.gvr);
        let digested = self.digest_admission(primary, rules).and_then(|d| {
            let old = old.map(|o| self.digest_admission(o, rules)).transpose()?;
            Ok((d, old.map(|o| (o.hash, o.rv))))
        });
        let (primary, old) = match digested {
            Ok(d) => d,
            Err(e) => {
                self.refuse(r.identifier(), format!("admission not recorded: {e}"));
                return;
            }
        };
        let hash = primary.hash;
        if req.operation == Operation::Delete && primary.held {
            // A delete of an object already being deleted, that finalizers still hold, changes
            // nothing: the deletion the watch will show is the first DELETE's. Kept, this record
            // would make that deletion look like two users' after a relist.
            self.attributor.skip_noop();
            return;
        }
        let (content, base) = match (req.operation, old) {
            (Operation::Create, _) => (hash, None),
            (Operation::Update, Some((old_hash, old_rv))) => {
                if old_hash == hash {
                    // A content no-op (managedFields-only migration, a no-op apply): no watch event
                    // will carry a change for it to explain.
                    self.attributor.skip_noop();
                    return;
                }
                (hash, old_rv)
            }
            // DELETE's object is the old one: its version is the base. (An UPDATE always has
            // its old object's digest: `digests` required both.)
            (Operation::Delete, _) | (Operation::Update, None) => (hash, primary.rv),
        };
        let key = CorrKey {
            ident,
            op: req.operation,
            content,
        };
        // The version of the object the watch showed last, if this core saw it. (A version
        // names one object: a record made on it is that object's, whatever uid it carries.)
        let current_rv = self
            .gvr_ids
            .get(&req.gvr)
            .and_then(|&gid| self.live[gid as usize].get(ident))
            .map(|e| e.rv);
        self.attributor.record(
            self.now.mono_ms,
            key,
            Record {
                user: req.username.into(),
                base_rv: base,
                // Every operation's: an UPDATE or DELETE record explains only a change of the
                // object it was made for (seeds 40542, 40889: a finalizer's removal, recorded as an
                // UPDATE no event would show, named the author of the next incarnation's update).
                uid: primary.uid,
                content,
                seq: 0,
                exact_only: false,
            },
            current_rv,
        );
    }

    fn handle_watch(&mut self, gvr: Gvr, event: WatchEvent) {
        let is_ns_stream = is_namespaces(&gvr);
        if !self.watched.contains(&gvr) {
            return;
        }
        let gid = self.gvr_id(&gvr);
        match event {
            WatchEvent::Init => {
                let epoch = self.live[gid as usize].begin_list();
                for d in self.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                    let needed = d.awaiting.entry(gid).or_insert(epoch);
                    *needed = (*needed).max(epoch);
                }
            }
            WatchEvent::InitDone => {
                self.live[gid as usize].finish_list();
                let epoch = self.live[gid as usize].epoch();
                if is_ns_stream {
                    // Namespaces deleted while the stream was down: their objects' selection
                    // changed too.
                    let gone = self.ns_labels.finish_list(epoch);
                    if !gone.is_empty() {
                        self.resync_namespace_selected();
                    }
                }
                let mut fed = BTreeSet::new();
                for d in self.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                    fed.insert(d.branch.clone());
                    let done = d.awaiting.get(&gid).is_some_and(|needed| *needed <= epoch);
                    if done && d.awaiting.remove(&gid).is_some() && d.awaiting.is_empty() {
                        d.want_read = true;
                        self.wake.insert(d.branch.clone());
                    }
                }
                // Objects of this stream not seen by the list are gone.
                for key in fed {
                    if let Some(b) = self.branches.get_mut(&key) {
                        b.paths.drop_members(|m| m.gid == gid && m.epoch != epoch);
                    }
                }
            }
            WatchEvent::InitApply(obj) | WatchEvent::Apply(obj) if is_ns_stream => {
                self.handle_object(gvr, gid, &obj, false, true);
            }
            WatchEvent::InitApply(obj) => self.handle_object(gvr, gid, &obj, false, true),
            WatchEvent::Apply(obj) => self.handle_object(gvr, gid, &obj, false, false),
            WatchEvent::Delete(obj) => self.handle_object(gvr, gid, &obj, true, false),
        }
    }

    /// Remembers a namespace's labels (for namespace selectors), read from its watch object.
    fn note_namespace(&mut self, name: &str, labels: Labels, deleted: bool, epoch: u32) {
        if self.ns_labels.note(name, labels, deleted, epoch) {
            self.resync_namespace_selected();
        }
    }

    /// A namespace's labels changed: objects in it may now match different rules, so what the
    /// namespace selectors cover is listed again.
    fn resync_namespace_selected(&mut self) {
        if self.rules.needs_namespace_labels() {
            let gvrs: BTreeSet<Gvr> = self
                .rules
                .rules()
                .iter()
                .filter(|r| matches!(r.reach, RuleReach::Namespaced(Some(_))))
                .flat_map(|r| {
                    self.watched
                        .iter()
                        .filter(|g| {
                            r.selects_gvr(g, self.discovered.get(*g).copied()) && !is_namespaces(g)
                        })
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            self.resync(gvrs);
        }
    }

    /// Asks the driver to relist `gvrs`. The folders those streams feed wait for the new lists
    /// before they are read: until then the core's idea of their members is about to change (a
    /// namespace's labels moved objects in or out), and a listing taken now would make live
    /// objects' files look like orphans.
    fn resync(&mut self, gvrs: impl IntoIterator<Item = Gvr>) {
        for gvr in gvrs {
            if !self.served(&gvr) {
                // No list of it can come: asked for, it would stay due for ever (and the
                // runtime, waiting for it, would never report ready).
                continue;
            }
            let gid = self.gvr_id(&gvr);
            // The list this asks for, not one already running.
            let next = self.live[gid as usize].epoch() + 1;
            for d in self.dests.values_mut().filter(|d| d.gate.contains(&gid)) {
                let needed = d.awaiting.entry(gid).or_insert(next);
                *needed = (*needed).max(next);
            }
            self.outputs.push_back(Output::Resync(gvr));
        }
    }

    fn handle_object(&mut self, gvr: Gvr, gid: u16, obj: &RawObject, deleted: bool, initial: bool) {
        self.counters.events_received_total += 1;
        let mut digester = std::mem::take(&mut self.digester);
        let mut read = digester.with_doc(obj.as_bytes(), |doc, out| {
            self.handle_doc(&gvr, gid, obj, doc, out, deleted, initial)
        });
        // A list item without `apiVersion`/`kind` (as the API server lists) gets them from
        // discovery, so its file, its content hash and its joins are those of a watch event's.
        if let (Ok(Read::Untyped), Some(kind)) = (&read, self.kinds.get(&gvr)) {
            let typed = obj.with_type_meta(&gvr.api_version(), kind);
            read = digester.with_doc(typed.as_bytes(), |doc, out| {
                self.handle_doc(&gvr, gid, &typed, doc, out, deleted, initial)
            });
        }
        self.digester = digester;
        if let Err(e) = read {
            self.refuse(format!("{gvr}"), format!("watch object not read: {e}"));
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[must_use]
    fn handle_doc(
        &mut self,
        gvr: &Gvr,
        gid: u16,
        obj: &RawObject,
        doc: &mut Doc,
        out: &mut DigestOut,
        deleted: bool,
        initial: bool,
    ) -> Read {
        if self.kinds.contains_key(gvr) {
            let [api_version, kind] = doc.lookup(Doc::ROOT, ["apiVersion", "kind"]);
            if api_version.is_none() && kind.is_none() {
                return Read::Untyped;
            }
        }
        // Read by borrow: an event that changes nothing (status churn) allocates nothing here.
        let mut routed = std::mem::take(&mut self.routed);
        let [name, namespace, rv, uid, labels, deletion] = doc
            .get(Doc::ROOT, "metadata")
            .map(|m| {
                doc.lookup(
                    m,
                    [
                        "name",
                        "namespace",
                        "resourceVersion",
                        "uid",
                        "labels",
                        "deletionTimestamp",
                    ],
                )
            })
            .unwrap_or_default();
        let being_deleted = deletion.is_some_and(|d| doc.kind(d) != Kind::Null);
        let text = |node: Option<_>| node.and_then(|n| doc.str(n));
        let head = text(name).map(|name| {
            let r = ResourceRef {
                gvr,
                namespace: text(namespace),
                name,
            };
            let valid = r.validate();
            self.ident.clear();
            r.write_identifier(&mut self.ident);
            // Only hashed: read as bytes.
            let bytes = |node: Option<_>| node.and_then(|n| doc.str_raw(n));
            let rv = bytes(rv).map_or(0, tag64);
            let uid = bytes(uid).map_or(0, tag64);
            (valid, rv, uid, r.namespace)
        });
        let Some((valid, rv, uid, namespace)) = head else {
            self.routed = routed;
            self.refuse(
                format!("{gvr}"),
                "watch object without metadata.name".into(),
            );
            return Read::Done;
        };
        if is_namespaces(gvr) {
            let labels_of_namespace: BTreeMap<String, String> = labels
                .filter(|&l| doc.kind(l) == Kind::Object)
                .map(|l| {
                    doc.children(l)
                        .filter_map(|c| {
                            let key = std::str::from_utf8(doc.key(c)).ok()?;
                            Some((key.to_owned(), doc.str(c)?.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let epoch = self.live[gid as usize].epoch();
            self.note_namespace(
                text(name).unwrap_or_default(),
                labels_of_namespace,
                deleted,
                epoch,
            );
        }
        if let Err(e) = valid {
            self.routed = routed;
            self.refuse(self.ident.clone(), format!("not written: {e}"));
            return Read::Done;
        }
        let ident = key128(&self.ident);
        let prev = self.live[gid as usize].get(ident).copied();
        let same_object = prev.is_some_and(|p| p.uid == uid);
        let op = match (deleted, same_object) {
            (true, _) => Operation::Delete,
            (false, true) => Operation::Update,
            (false, false) => Operation::Create,
        };
        // Route on the labels as the cluster has them (before sanitization removes tooling labels).
        let labels = DocLabels(doc, labels);
        let facts = ObjectFacts {
            namespace,
            labels: &labels,
            op: (!initial).then_some(op),
        };
        let ns_labels = &self.ns_labels;
        let labelled =
            |sel: &Selector, ns: &str| ns_labels.get(ns).is_some_and(|l| sel.matches_map(l));
        self.rules.route_into(gvr, &facts, labelled, &mut routed);
        // A live change of an operation a rule leaves out (`operations`) leaves that rule's file
        // as it is: neither written nor removed, until a resync brings the folder up to date.
        // So does any change while its namespace's labels are unknown (the namespaces stream is
        // still listing): the namespace selectors' folders wait for the list, whose namespaces
        // each ask for a resync of what those selectors cover.
        let mut held = std::mem::take(&mut self.held);
        held.clear();
        let pending = namespace.is_some_and(|ns| ns_labels.pending(ns));
        if !initial || pending {
            let any = ObjectFacts { op: None, ..facts };
            let maybe = |sel: &Selector, ns: &str| pending || labelled(sel, ns);
            self.rules.route_into(gvr, &any, maybe, &mut held);
        }
        held.retain(|d| routed.binary_search(d).is_err());
        let rules = TypeRules::of(gvr);
        sanitize(doc, rules);
        let (hash, bytes) = out.finish(doc);
        let terminating =
            terminating_after(prev.filter(|_| same_object), being_deleted, initial, hash);
        let live = &mut self.live[gid as usize];
        if deleted {
            live.remove(ident);
        } else {
            live.set(ident, rv, uid, hash, terminating);
        }
        if !deleted && !initial && same_object && prev.is_some_and(|p| p.content == hash) {
            // Status churn, managedFields-only writes, resync duplicates: nothing to write. The
            // version before is history all the same (see `note_replaced` below).
            if let Some(p) = prev.filter(|p| p.rv != rv && p.terminating == terminating) {
                self.attributor.note_replaced(self.now.mono_ms, ident, p.rv);
            }
            self.counters.watch_duplicates_skipped_total += 1;
            self.routed = routed;
            self.held = held;
            return Read::Done;
        }
        // The final event of a deletion that finalizers held: the DELETE was admitted against the
        // version before the deletion began, not the `deletionTimestamp` one the watch showed last.
        // Its content too: users may have edited it since, and the DELETE's record holds the
        // content of the version it was admitted on.
        let (base_rv, base_certain, joined_content) = match prev.filter(|_| same_object) {
            Some(p) if deleted => match p.terminating {
                Terminating::No => (Some(p.rv), !initial, hash),
                Terminating::Since { rv, content } => (Some(rv), !initial, content),
                // Seen first in a list (seed 83539: the API server's delete of a CRD's object,
                // shown by a relist, then edited by alice before the finalizer went).
                Terminating::SinceUnseen { content } => (Some(p.rv), false, content),
            },
            Some(p) => (Some(p.rv), !initial, hash),
            None => (None, !initial && prev.is_some(), hash),
        };
        let key = CorrKey {
            ident,
            op,
            content: joined_content,
        };
        // A relist that shows a version this core already saw is no new change: it has no author
        // to find, and taking a record here would steal one that arrived late for a past write.
        // Nor is a new version with the content already seen (writes in the gap that changed
        // nothing a file holds, or changed it back): noted as a change seen without an author,
        // it made every identical write's record within the TTL look late, each such write
        // noted again in turn (seed 2095: carol's annotation-only update, listed after a gap,
        // cost the deployer and then alice their authorship of later changes to that content).
        let seen_before =
            initial && same_object && prev.is_some_and(|p| p.rv == rv || p.content == hash);
        let attribution = if seen_before {
            Attribution::Miss
        } else {
            self.attributor
                .attribute(self.now.mono_ms, key, rv, uid, base_rv, base_certain)
        };
        // The version before this one is history now: a record made on it, stored or still to
        // come, can explain no later change (seeds 64343572 and 7001982: such a record, kept,
        // named its user for someone else's identical change that a relist showed later). Also
        // when a list shows the replacement: a list is no older than the watch before it.
        // Not the version a deletion begins from: the DELETE was made on it, and its final
        // event is still to come.
        if let Some(p) = prev.filter(|_| same_object) {
            let begins_deletion =
                p.terminating == Terminating::No && terminating != Terminating::No;
            if p.rv != rv && !begins_deletion {
                self.attributor.note_replaced(self.now.mono_ms, ident, p.rv);
            }
            if let (true, Terminating::Since { rv: since, .. }) = (deleted, p.terminating) {
                self.attributor
                    .note_replaced(self.now.mono_ms, ident, since);
            }
        }
        if initial && !deleted && !prev.is_some_and(|p| same_object && p.rv == rv) {
            self.attributor
                .retire_listed(self.now.mono_ms, ident, uid, hash);
        }
        let author = attribution.user().cloned();
        if rules.is_secret() && self.config.secret_policy == SecretPolicy::Exclude {
            self.routed = routed;
            self.held = held;
            return Read::Done;
        }
        if bytes > OBJECT_BYTES_MAX && !deleted {
            self.routed = routed;
            self.held = held;
            self.refuse(
                self.ident.clone(),
                format!(
                    "sanitized object is {bytes} bytes; at most {OBJECT_BYTES_MAX} are written"
                ),
            );
            return Read::Done;
        }
        // The file is the executor's to render (see `FileBody`): the object's text is shared.
        let file = (!deleted).then(|| FileBody::Object(obj.clone(), rules));
        let epoch = self.live[gid as usize].epoch();
        let resync = initial && attribution.user().is_none();
        let mut queued = false;
        let mut dests = std::mem::take(&mut self.dests_of_gvr);
        dests.extend_from_slice(self.rules.destinations_of_gvr(gvr));
        for dest in dests.drain(..) {
            if held.binary_search(&dest).is_ok() {
                continue;
            }
            let selected = routed.contains(&dest);
            write_file_path(&dest.base_folder, &self.ident, &mut self.path);
            let path_key = key128(&self.path);
            let Some(d) = self.dests.get_mut(&dest) else {
                continue;
            };
            let Some(b) = self.branches.get_mut(&d.branch) else {
                continue;
            };
            let content = match &file {
                Some(file) if selected => {
                    let member = Member {
                        dest: d.id,
                        gid,
                        epoch,
                    };
                    b.paths.add_member(path_key, member);
                    Some(Content {
                        hash,
                        file: file.clone(),
                        bytes,
                    })
                }
                // Deleted, or no longer selected (labels changed): the file goes if it is there.
                _ => {
                    let was_member = b.paths.remove_member(path_key, d.id);
                    if !selected && !was_member {
                        continue;
                    }
                    None
                }
            };
            let write = PendingWrite {
                path: self.path.as_str().into(),
                path_key,
                content,
            };
            let kind = CommitKind::Event {
                op,
                identifier: self.ident.clone(),
            };
            let queue = Enqueue {
                dest: &dest,
                listed: d.listed,
                now: self.now,
                wake: &mut self.wake,
                branch_key: &d.branch,
            };
            queued |= queue.write(b, write, author.clone(), kind, resync);
        }
        self.dests_of_gvr = dests;
        self.routed = routed;
        self.held = held;
        // A live change nobody was found for is noted whether or not a destination took it: its
        // admission may still come (the webhook's path is slower), and kept, that record would
        // name the author of the next same-content creation. A relist's object is noted only if it
        // was written (it may be old news, not a change), and so is the delete of an object we did
        // not know (a duplicate event): noted, it would make a later genuine record look late.
        // Not after an ambiguous join: its admissions are here already, and noted as missed, the
        // change would make a later identical write's own record look late (found with racing
        // writes: carol lost a race to bob, then made bob's change herself within the TTL, and
        // her record was dropped as late).
        let live_change = !initial && (!deleted || prev.is_some());
        let ambiguous = attribution == Attribution::Ambiguous;
        if author.is_none() && !seen_before && !ambiguous && (queued || live_change) {
            let uid = (uid != 0).then_some(uid);
            self.attributor.note_missed(self.now.mono_ms, key, uid);
            // A listed object this core did not know: its version was made by a CREATE or by
            // an UPDATE, which one is unknown, so the late admission of either is late for it
            // (seed 7001982: after a restart, alice's late UPDATE record of the version the
            // first list showed was kept, and 14 s later named her for bob's identical change).
            if initial && !same_object && !deleted {
                let update = CorrKey {
                    op: Operation::Update,
                    ..key
                };
                self.attributor.note_missed(self.now.mono_ms, update, uid);
            }
        }
        if queued {
            self.counters.events_processed_total += 1;
        } else {
            self.counters.watch_duplicates_skipped_total += 1;
        }
        Read::Done
    }

    // ---- git ----

    /// The destinations that write to branch `key`.
    fn dests_on<'a>(
        &'a self,
        key: &'a BranchKey,
    ) -> impl Iterator<Item = (&'a Arc<Destination>, &'a DestState)> {
        self.dests.iter().filter(move |(_, s)| s.branch == *key)
    }

    fn gate_open(&self, key: &BranchKey) -> bool {
        self.dests_on(key).all(|(_, s)| s.listed)
    }

    /// The first destination on branch `key` whose folder must be read.
    fn wanted_read<'a>(&'a self, key: &'a BranchKey) -> Option<&'a Arc<Destination>> {
        self.dests_on(key)
            .find(|(_, s)| s.want_read)
            .map(|(d, _)| d)
    }

    fn drive(&mut self) {
        self.attributor.sweep(self.now.mono_ms);
        for key in std::mem::take(&mut self.wake) {
            if self.branches.contains_key(&key) {
                self.schedule(&key);
            }
        }
    }

    fn new_op(&mut self, key: &BranchKey, kind: GitOpKind) -> u64 {
        let op_id = self.next_op_id;
        self.next_op_id += 1;
        self.ops.insert(op_id, key.clone());
        let b = &self.branches[key];
        self.outputs.push_back(Output::Git(GitOp {
            op_id,
            repo: key.0.clone(),
            repo_url: b.settings.repo_url.clone(),
            secret_name: b.settings.secret_name.clone(),
            branch: key.1.clone(),
            kind,
        }));
        op_id
    }

    /// What branch `key` does next and from when (monotonic ms); `None` while it waits for its op
    /// in flight, for its folders' lists, or for something to push. This is the branch's whole
    /// schedule: [`Self::schedule`] acts on it once it is due and [`Self::poll_deadline`] wakes the
    /// core for it, so the two cannot disagree (bugs 5 and 14 were such disagreements: a branch
    /// with work the deadline did not see).
    fn next_op(&self, key: &BranchKey, b: &BranchState) -> Option<(u64, NextOp)> {
        if b.op.is_some() {
            return None;
        }
        // A push whose result was lost is checked before anything else is planned on the branch.
        if b.unverified.is_some() {
            return Some((b.retry_at_ms, NextOp::Verify));
        }
        // A wanted folder read needs no open gate: the gate opens only when the read succeeds.
        if let Some(dest) = self.wanted_read(key) {
            return Some((b.retry_at_ms, NextOp::Read(dest.clone())));
        }
        if !self.gate_open(key) {
            return None;
        }
        // A retry goes when its backoff ends, unless nothing is left to push (a re-read found
        // it all there); otherwise the batching triggers decide, never before the backoff ends.
        if b.retry_now && !b.queue.is_empty() {
            return Some((b.retry_at_ms, NextOp::Push));
        }
        // Flushing, one pending commit is a full batch with no interval to wait.
        let (max_commits, interval_ms) = match self.flushing {
            true => (1, 0),
            false => (b.settings.max_commits, b.settings.push_interval_ms),
        };
        let due = b.queue.due_at_ms(max_commits, interval_ms)?;
        Some((due.max(b.retry_at_ms), NextOp::Push))
    }

    fn schedule(&mut self, key: &BranchKey) {
        let now = self.now;
        let Some((at, next)) = self.next_op(key, &self.branches[key]) else {
            return;
        };
        if now.mono_ms < at {
            return;
        }
        match next {
            NextOp::Verify => self.start_verify(key),
            NextOp::Read(dest) => self.start_read(key, dest),
            NextOp::Push => self.start_push(key),
        }
    }

    fn start_verify(&mut self, key: &BranchKey) {
        let b = self.branches.get_mut(key).expect("branch");
        let (tag, expected_head) = b.unverified.take().expect("a verify is due");
        let kind = GitOpKind::Verify {
            expected_head: expected_head.clone(),
            op_tag: tag.clone(),
        };
        let op_id = self.new_op(key, kind);
        self.branches.get_mut(key).expect("branch").op = Some(OpInFlight::Verify {
            op_id,
            tag,
            expected_head,
        });
    }

    fn start_read(&mut self, key: &BranchKey, dest: Arc<Destination>) {
        let folder = dest.base_folder.clone();
        let op_id = self.new_op(key, GitOpKind::ReadPaths { folder });
        self.dests.get_mut(&dest).expect("dest").want_read = false;
        self.branches.get_mut(key).expect("branch").op = Some(OpInFlight::Read { op_id, dest });
    }

    fn start_push(&mut self, key: &BranchKey) {
        let now = self.now;
        let op_id = self.next_op_id;
        let tag = format!("{:x}-{op_id}", self.config.instance_id);
        let b = self.branches.get_mut(key).expect("branch");
        let commits = gitplan::plan(
            b.queue.start_push(),
            &self.config.identities,
            now.wall_ms,
            &tag,
        );
        let expected_head = b.head.clone();
        b.retry_now = false;
        let issued = self.new_op(
            key,
            GitOpKind::Push {
                expected_head: expected_head.clone(),
                commits,
            },
        );
        invariant_eq!(issued, op_id);
        self.branches.get_mut(key).expect("branch").op = Some(OpInFlight::Push {
            op_id,
            tag,
            expected_head,
        });
    }

    fn handle_git(&mut self, op_id: u64, result: GitResult) {
        let Some(key) = self.ops.remove(&op_id) else {
            return;
        };
        self.wake.insert(key.clone());
        let Some(b) = self.branches.get_mut(&key) else {
            return;
        };
        if b.op.as_ref().map(OpInFlight::op_id) != Some(op_id) {
            return;
        }
        let now_ms = self.now.mono_ms;
        let op = b.op.take().expect("checked");
        if matches!(result, GitResult::Failed { .. }) {
            self.counters.git_failures_total += 1;
        }
        match (op, result) {
            (OpInFlight::Read { dest, .. }, GitResult::Paths { head, entries }) => {
                if b.head.is_some() && head != b.head {
                    // Others wrote the branch since we last knew it: re-read the other folders
                    // too before planning on it.
                    for (od, d) in self.dests.iter_mut() {
                        if d.branch == key && d.listed && **od != *dest {
                            d.want_read = true;
                        }
                    }
                }
                b.head = head;
                b.failures_in_row = 0;
                self.apply_listing(&key, &dest, entries);
            }
            (OpInFlight::Read { dest, .. }, other) => {
                if let Some(d) = self.dests.get_mut(&dest) {
                    d.want_read = true;
                }
                self.failed(&key, other);
            }
            (
                OpInFlight::Push { .. } | OpInFlight::Verify { .. },
                GitResult::Pushed { head, blobs },
            ) => self.landed(&key, head, blobs),
            (
                OpInFlight::Verify { .. },
                GitResult::Verified {
                    head: Some(head),
                    landed: true,
                },
            ) => {
                self.landed(&key, head, Vec::new());
                // The head is the branch's now, not our push's: others may have written on top
                // (seed 20283). Read again before planning on it, as after a conflict.
                reread_folders(&mut self.dests, &key);
            }
            (OpInFlight::Push { .. }, GitResult::Conflict { remote_head }) => {
                self.counters.rebase_retries_total += 1;
                b.head = remote_head;
                // Someone else wrote the branch: what we believe it holds may be stale (files
                // edited or removed), so read every folder again before planning on the new head.
                reread_folders(&mut self.dests, &key);
                b.queue.push_failed(now_ms);
                drop_writes_of_removed_destinations(&mut b.queue, &self.dests, &self.gvr_ids, &key);
                b.conflicts_in_row += 1;
                if b.conflicts_in_row > gitplan::CONFLICTS_BEFORE_BACKOFF {
                    b.retry_at_ms = now_ms
                        + gitplan::backoff_ms(
                            b.conflicts_in_row - gitplan::CONFLICTS_BEFORE_BACKOFF,
                        );
                }
                b.retry_now = true;
            }
            (
                OpInFlight::Push {
                    tag, expected_head, ..
                },
                GitResult::Unknown,
            ) => {
                b.unverified = Some((tag, expected_head));
            }
            (OpInFlight::Verify { expected_head, .. }, GitResult::Verified { head, .. }) => {
                if head != expected_head {
                    // Others wrote meanwhile: read again, as after a conflict.
                    reread_folders(&mut self.dests, &key);
                }
                b.head = head;
                b.queue.push_failed(now_ms);
                drop_writes_of_removed_destinations(&mut b.queue, &self.dests, &self.gvr_ids, &key);
                b.retry_now = true;
            }
            (
                OpInFlight::Verify {
                    tag, expected_head, ..
                },
                other,
            ) => {
                b.unverified = Some((tag, expected_head));
                self.failed(&key, other);
            }
            (OpInFlight::Push { .. }, other) => {
                b.queue.push_failed(now_ms);
                drop_writes_of_removed_destinations(&mut b.queue, &self.dests, &self.gvr_ids, &key);
                b.retry_now = true;
                self.failed(&key, other);
            }
        }
    }

    fn failed(&mut self, key: &BranchKey, result: GitResult) {
        let b = self.branches.get_mut(key).expect("branch");
        b.failures_in_row += 1;
        let (retryable, reason, cause) = match result {
            GitResult::Failed {
                retryable,
                reason,
                cause,
            } => (retryable, reason, cause),
            other => (
                true,
                format!("unexpected git result {other:?}"),
                String::new(),
            ),
        };
        // A failure a user must fix is retried at the longest interval; nothing is dropped either way.
        let delay = if retryable {
            gitplan::backoff_ms(b.failures_in_row)
        } else {
            gitplan::BACKOFF_MAX_MS
        };
        b.retry_at_ms = self.now.mono_ms + delay;
        let cause = if cause.is_empty() {
            "PushFailed".to_string()
        } else {
            cause
        };
        b.last_push_error = Some((cause, format!("branch {}: {reason}", key.1)));
        self.refresh_statuses();
    }

    /// A push landed. `blobs` are the executor's blob ids in planned order (see [`gitplan::plan`]:
    /// each commit's writes sorted by path); where it gave none (a push verified after its result
    /// was lost), the core renders the file to learn it.
    fn landed(&mut self, key: &BranchKey, head: CommitId, blobs: Blobs) {
        // The folder each pushed file is in: the branch's destination whose layout the path fits.
        let folders: Vec<(String, u32)> = self
            .dests
            .iter()
            .filter(|(_, d)| d.branch == *key)
            .map(|(dest, d)| (dest.base_folder.clone(), d.id))
            .collect();
        let folder_of = |path: &str| {
            folders
                .iter()
                .filter(|(base, _)| layout_segments(base, path).is_some())
                .max_by_key(|(base, _)| base.len())
                .map(|(_, id)| *id)
        };
        let b = self.branches.get_mut(key).expect("branch");
        let commits = b.queue.push_landed();
        for (i, c) in commits.iter().enumerate() {
            let given = blobs.get(i).filter(|g| g.len() == c.writes.len());
            for (k, w) in gitplan::in_planned_order(&c.writes).enumerate() {
                match &w.content {
                    Some(ct) => {
                        self.counters.commit_bytes_total += ct.bytes as u64;
                        let blob = given
                            .and_then(|g| g[k])
                            .unwrap_or_else(|| ct.file.blob_id());
                        let held = Held {
                            content: Some(ct.hash),
                            blob,
                        };
                        b.paths.set_held(w.path_key, Some(held));
                        if let Some(f) = folder_of(&w.path) {
                            b.paths.set_folder(w.path_key, f);
                        }
                    }
                    None => {
                        self.counters.files_deleted_total += 1;
                        b.paths.set_held(w.path_key, None);
                    }
                }
            }
        }
        self.counters.commits_total += commits.len() as u64;
        b.head = Some(head);
        b.failures_in_row = 0;
        b.conflicts_in_row = 0;
        b.retry_at_ms = 0;
        b.retry_now = false;
        if b.last_push_error.take().is_some() {
            self.refresh_statuses();
        }
    }

    /// Applies a listing of `dest`'s folder: learn what the repo holds, queue deletes of orphans, drop
    /// pending writes the repo already has, and relist if the repo diverged from what we believed.
    fn apply_listing(
        &mut self,
        key: &BranchKey,
        dest: &Destination,
        entries: Vec<(String, [u8; 20])>,
    ) {
        let Some(d) = self.dests.get_mut(dest) else {
            return;
        };
        // A stream feeding this folder began a relist after the read was sent (or one was asked
        // for): what the core knows of the folder's members is incomplete, so nothing is an
        // orphan yet. What the repo holds is still learnt; the relist's end reads again.
        let members_complete = d.awaiting.is_empty();
        // Orphans only among the types whose lists it waited for (those served): see
        // `reconfigure`. Their files at another version are orphans too (`layout_any_version`).
        let listed_types: BTreeSet<u16> = d.gvrs.intersection(&d.gate).copied().collect();
        let (exact, moved) = (
            layout_of(&self.gvr_ids, &d.gvrs, &dest.base_folder),
            layout_any_version(&self.gvr_ids, &listed_types, &dest.base_folder),
        );
        let ours = |p: &str| exact(p) || moved(p);
        let listed_exact = layout_of(&self.gvr_ids, &listed_types, &dest.base_folder);
        let scanned = |p: &str| listed_exact(p) || moved(p);
        let b = self.branches.get_mut(key).expect("branch");
        let mut listed: HashMap<u128, [u8; 20], KeyHash> = HashMap::default();
        let mut orphans = Vec::new();
        for (path, blob) in entries.into_iter().filter(|(p, _)| ours(p)) {
            let pk = key128(&path);
            listed.insert(pk, blob);
            let known = b
                .paths
                .held(pk)
                .filter(|h| h.blob == blob)
                .and_then(|h| h.content);
            let held = Held {
                content: known,
                blob,
            };
            b.paths.set_held(pk, Some(held));
            b.paths.set_folder(pk, d.id);
            // Not a live object's file, and no delete already pending for it.
            if members_complete
                && scanned(&path)
                && !b.paths.is_member(pk, d.id)
                && !matches!(b.queue.latest(pk), Some(None))
            {
                orphans.push(path);
            }
        }
        // Writes still pending for objects a relist no longer shows (deleted in the gap): their
        // files would be created and never removed.
        let mut gone: Vec<String> = b
            .queue
            .writes()
            .filter(|w| {
                members_complete
                    && !listed.contains_key(&w.path_key)
                    && !b.paths.is_member(w.path_key, d.id)
                    && matches!(b.queue.latest(w.path_key), Some(Some(_)))
                    && scanned(&w.path)
            })
            .map(|w| w.path.to_string())
            .collect();
        gone.sort();
        gone.dedup();
        orphans.extend(gone);
        // Hash-map iteration here only removes entries or answers "any": order reaches no output.
        let unlisted: Vec<u128> = b
            .paths
            .members_of(d.id)
            .filter(|pk| !listed.contains_key(pk))
            .collect();
        for pk in unlisted {
            b.paths.set_held(pk, None);
        }
        // And every other file this folder showed before (seed 920001054: an object's file, its
        // object gone unseen and forgotten by a relist, then removed by an outside writer; its
        // identical re-creation looked already written, and the next delete was an empty commit).
        b.paths.forget_unlisted(d.id, |pk| listed.contains_key(&pk));
        d.listed = true;
        // Deletes go in before the redundancy pass: a delete for a write pending in the open
        // resync commit replaces it there, and if the listing lacks the file too, the pass drops
        // the delete (seed 25571: a re-created object listed after a restart, deleted again before
        // its file was pushed, left a `[RESYNC]` deleting a file that was never there).
        let (now, wall) = (self.now.mono_ms, self.now.wall_ms);
        self.counters.orphans_found_total += orphans.len() as u64;
        for path in orphans {
            let path_key = key128(&path);
            b.queue.push_resync(
                now,
                wall,
                &dest.base_folder,
                PendingWrite {
                    path: path.into(),
                    path_key,
                    content: None,
                },
            );
        }
        let paths = &mut b.paths;
        b.queue.drop_redundant(|w| match &w.content {
            Some(c) => match listed.get(&w.path_key) {
                Some(blob) if c.file.blob_id() == *blob => {
                    let held = Held {
                        content: Some(c.hash),
                        blob: *blob,
                    };
                    paths.set_held(w.path_key, Some(held));
                    true
                }
                _ => false,
            },
            // A delete under this folder is redundant when the listing lacks the file; elsewhere,
            // when we believe the file is not there.
            None if ours(&w.path) => {
                let absent = !listed.contains_key(&w.path_key);
                if absent {
                    paths.set_held(w.path_key, None);
                }
                absent
            }
            None => paths.held(w.path_key).is_none(),
        });
        // A member whose file differs from what we pushed (an outside edit) or is missing, with
        // nothing pending to fix it: relist so its content is written again.
        let diverged = b.paths.members_of(d.id).any(|pk| {
            b.queue.latest(pk).is_none() && b.paths.held(pk).is_none_or(|h| h.content.is_none())
        });
        if diverged {
            let gvrs: Vec<Gvr> = self
                .gvr_ids
                .iter()
                .filter(|(_, id)| d.gvrs.contains(id))
                .map(|(g, _)| g.clone())
                .collect();
            self.resync(gvrs);
        }
    }
}
