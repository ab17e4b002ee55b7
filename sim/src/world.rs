//! The world: a discrete-event loop that drives the real `Core` against the modelled cluster,
//! API server, git remotes and clock, injecting the seed's faults, and runs the checkers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use gitops_reverser_core::admission::AdmissionRequest;
use gitops_reverser_core::batch::PushBounds;
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::core::{Core, CoreConfig};
use gitops_reverser_core::gitplan::Identities;
use gitops_reverser_core::ids::{Gvr, Operation};
use gitops_reverser_core::io::{
    blob_ids, CommitId, GitOp, GitOpKind, GitResult, Identity, Input, Output, WatchEvent,
};
use gitops_reverser_core::json::RawObject;
use gitops_reverser_core::record::{Entry, Header, Recording, Restart};
use gitops_reverser_core::sanitize::SecretPolicy;
use gitops_reverser_core::time::Now;
use rand::Rng;
use serde_json::{json, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::checks::attribution::{AttrCounts, AttributionCheck};
use crate::checks::delivery::DeliveryCheck;
use crate::checks::orphans::OrphanCheck;
use crate::checks::secrets::SecretCheck;
use crate::checks::{convergence, empty_commits, history, limits, watches};
use crate::cluster::{
    api_resources, file_of, meta_mut, Cluster, Destination, ObjKey, WriteRecord, PASSING_NAMESPACE,
};
use crate::git::{PushError, Remotes};
use crate::oracle;
use crate::rng::{chance, Rngs};
use crate::swarm::{Fault, FaultChoice, Swarm};
use crate::topology::{Subject, Topology};
use crate::workload::{self, Action, CONTROLLER};

/// Who deletes a deleted CRD's objects.
const CRD_CLEANUP: &str = "system:apiserver";
/// Who deletes a deleted namespace's objects.
const NAMESPACE_CONTROLLER: &str = "system:serviceaccount:kube-system:namespace-controller";
/// Wall clock at simulated time zero (2026-11-26T00:00:00Z).
const WALL_EPOCH_MS: i64 = 1_795_651_200_000;
/// The fallback author's name in the simulated operator.
pub const FALLBACK: &str = "unknown-author";
/// Simulated time the liveness phase runs at least (beyond the longest retry backoff).
const LIVENESS_MS_MIN: u64 = 600_000;
/// Longest time from a write to the core receiving its admission request, when on time.
const WEBHOOK_LATENCY_MS_MAX: u64 = 2;
/// Ticks at one instant before the run counts as a busy loop (a deadline that never advances).
const TICKS_AT_ONCE_MAX: u32 = 100;
/// Simulated time the liveness phase may take to reach quiescence.
const LIVENESS_BUDGET_MS: u64 = 3_600_000;

/// What one run does.
#[derive(Clone, Debug)]
pub struct Params {
    /// The seed.
    pub seed: u64,
    /// Workload steps in the safety phase.
    pub steps: usize,
    /// Which faults.
    pub faults: FaultChoice,
    /// Keep every input the core is handed, in the core's recording format
    /// ([`Report::recording`]), with the cluster's write history ([`Report::truth`]).
    pub record: bool,
}

impl Params {
    /// The command that reproduces this run.
    pub fn command(&self) -> String {
        let faults = match &self.faults {
            FaultChoice::Seeded => String::new(),
            FaultChoice::Only(list) if list.is_empty() => " --faults none".into(),
            FaultChoice::Only(list) => format!(
                " --faults {}",
                list.iter().map(|f| f.name()).collect::<Vec<_>>().join(",")
            ),
        };
        format!(
            "cargo run -p gitops-reverser-sim --release -- --seed {} --steps {}{faults}",
            self.seed, self.steps
        )
    }
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The parameters.
    pub params: Params,
    /// The faults and weights the seed drew.
    pub swarm: Swarm,
    /// `push.maxCommits` and `push.interval` the seed drew.
    pub push: (u32, &'static str),
    /// The API server's and operator's variations the seed drew.
    pub behaviours: String,
    /// Watch events delivered to the core.
    pub watch_events: u64,
    /// Admission requests delivered to the core.
    pub admissions: u64,
    /// Commits the operator landed.
    pub commits: u64,
    /// Attribution outcomes.
    pub attribution: AttrCounts,
    /// Faults injected, by kind.
    pub injected: BTreeMap<&'static str, u64>,
    /// Simulated time at the end, ms.
    pub sim_ms: u64,
    /// Hash of every output of the core and of the final remotes.
    pub output_hash: u64,
    /// Invariant violations.
    pub violations: Vec<String>,
    /// With [`Params::record`]: every input the core was handed, restarts included.
    pub recording: Option<Arc<Recording>>,
    /// With [`Params::record`]: every write per identifier, what the checkers judge commits by.
    pub truth: Option<Arc<BTreeMap<String, Vec<WriteRecord>>>>,
}

enum Ev {
    Step,
    Deliver(Gvr, u64),
    Admission(u64, AdmissionRequest),
    GitDone(u64, u64),
    Tick,
    Heal,
    /// The controller removes the finalizer of a deletion that began: the object goes.
    Finalize(Finalize),
    /// A user edits an object whose deletion began (its uid), before the finalizer goes.
    EditTerminating(ObjKey, Value),
    /// The namespace controller finishes deleting a namespace once its objects are gone.
    NamespaceGone(String),
    /// The CRD's deletion goes on: its objects are deleted, then the type is no longer served.
    CrdGone(usize),
}

impl Ev {
    /// A step of a deletion the cluster is still carrying out (finalizer, namespace, CRD).
    fn settles_cluster(&self) -> bool {
        matches!(
            self,
            Ev::Finalize(..) | Ev::NamespaceGone(..) | Ev::CrdGone(..)
        )
    }
}

/// A deletion the finalizer holds, waiting for the controller.
struct Finalize {
    key: ObjKey,
    uid: Value,
    /// Who deleted it, and when the DELETE's admission reached the core.
    deleter: &'static str,
    admitted_ms: Option<u64>,
}

struct Stream {
    /// Events and when each may be delivered (never before the one ahead of it).
    queue: VecDeque<(u64, WatchEvent)>,
    paused_until: u64,
    /// Identifies the one outstanding delivery; others are stale.
    token: u64,
}

struct InFlight {
    op: GitOp,
    planned_ms: u64,
}

struct World {
    now: u64,
    wall_offset_ms: i64,
    /// The largest wall offset so far: a commit's author time (the wall clock when the core saw
    /// the change) is at least this far ahead of the monotonic time it was seen at.
    wall_offset_max_ms: i64,
    sched: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    rng: Rngs,
    swarm: Swarm,
    cluster: Cluster,
    topo: Topology,
    streams: BTreeMap<Gvr, Stream>,
    core: Core,
    generation: u64,
    /// When the last admission reaches the core: the webhook hands requests to the core in the
    /// order the API server calls it (the runtime queues each before it answers), so a slow
    /// delivery holds back the ones behind it instead of being overtaken.
    admissions_due_ms: u64,
    remotes: Remotes,
    ops: BTreeMap<u64, InFlight>,
    busy: BTreeSet<(NamespacedName, String)>,
    next_tick: Option<u64>,
    steps_left: usize,
    healed_at: Option<u64>,
    hash: Xxh3,
    violations: Vec<String>,
    attribution: AttributionCheck,
    orphans: OrphanCheck,
    delivery: DeliveryCheck,
    injected: BTreeMap<&'static str, u64>,
    watch_events: u64,
    admissions: u64,
    commits: u64,
    pushes: u64,
    request_seq: u64,
    last_tick_ms: Option<u64>,
    ticks_at_now: u32,
    /// Per (URL, branch): the expected head of the last push the remote refused as stale. A push
    /// planned on it again would conflict forever: the core must re-read the branch first.
    stale_heads: BTreeMap<(String, String), Option<CommitId>>,
    /// `SIM_TRACE=1`: every input and output on stderr.
    trace: bool,
    /// With [`Params::record`]: the inputs so far.
    recording: Option<Recording>,
    /// What the core does with Secrets in this run.
    secret_policy: SecretPolicy,
    /// List items come without `apiVersion`/`kind`.
    bare_lists: bool,
    /// Per write: admission runs twice.
    admit_twice: f64,
    /// Per update: the client sends the object unchanged.
    unchanged_updates: f64,
    /// Per update or delete: another user makes the identical write from the same version at
    /// the same moment; both pass admission and the rival loses at storage (a conflict, or the
    /// object already gone). Its record fits the change as well as the true one.
    racing: f64,
    /// Per new object: it carries a finalizer, so its deletion takes two steps.
    finalizers: f64,
    /// The webhook's rules include subresources (`*/*`): `status` and `scale` writes call it.
    subresources: bool,
    /// Per step: a namespace is created, relabelled or deleted (with its objects).
    namespace_changes: f64,
    /// Per namespace: when it was relabelled, and its `env` before. Until the watch has surely
    /// shown a relabel, the core may route a later write by the labels before it.
    relabels: BTreeMap<String, Vec<(u64, Option<String>)>>,
    /// The `env` a deleted namespace had, until one of that name is created again.
    gone_env: BTreeMap<String, Option<String>>,
    /// The CRD's life: the step it is installed at (it is not served before), and the step it
    /// is deleted at, if any. `None`: installed before the run.
    crd_life: Option<(usize, Option<usize>)>,
    /// The step at which the Widget CRD is upgraded (`v1` added and preferred over `v1beta1`):
    /// the version wildcard's files move. `None`: served at `v1` (and `v1beta1`) all along.
    crd_upgrade: Option<usize>,
    /// When it was upgraded.
    upgraded_at_ms: Option<u64>,
    /// Steps taken.
    steps_done: usize,
    secrets: SecretCheck,
    /// How much one push and one resync part carry (drawn per seed).
    push_bounds: PushBounds,
}

pub(crate) fn core_config(
    generation: u64,
    secret_policy: SecretPolicy,
    push_bounds: PushBounds,
) -> CoreConfig {
    let bot = Identity {
        name: "gitops-reverser".into(),
        email: "bot@sim".into(),
    };
    CoreConfig {
        instance_id: generation,
        identities: Identities {
            committer: bot,
            fallback_author: Identity {
                name: FALLBACK.into(),
                email: "unknown@sim".into(),
            },
            user_email_domain: "sim".into(),
        },
        secret_policy,
        push_bounds,
        ..CoreConfig::default()
    }
}

/// Runs one seed through both phases and all checkers.
pub fn run(params: &Params) -> Report {
    let mut rng = Rngs::new(params.seed);
    let swarm = Swarm::draw(&mut rng.swarm, &params.faults);
    let max_commits = rng.swarm.gen_range(1..=20);
    let interval = ["1s", "5s", "30s"][rng.swarm.gen_range(0..3)];
    let strict = !swarm.enabled().iter().any(|f| f.loses_attribution());
    // How the modelled API server and operator differ from run to run (not faults: both ways
    // are correct, and the core must not care).
    let secret_policy = if rng.swarm.gen_bool(0.5) {
        SecretPolicy::Redact
    } else {
        SecretPolicy::Exclude
    };
    // The real API server leaves `apiVersion`/`kind` out of list items; the runtime adds them
    // back from discovery. Half the runs deliver them bare.
    let bare_lists = rng.swarm.gen_bool(0.5);
    // Per write, the chance that admission runs twice for it (the API server retries a write
    // after a storage conflict and calls the webhook again), and per update, that the client
    // sends the object unchanged (admission runs; no resourceVersion, no event).
    let admit_twice = if rng.swarm.gen_bool(0.5) {
        rng.swarm.gen_range(0.02..0.2)
    } else {
        0.0
    };
    let unchanged_updates = if rng.swarm.gen_bool(0.5) {
        rng.swarm.gen_range(0.02..0.2)
    } else {
        0.0
    };
    // Per new object, the chance it carries a finalizer: its delete sets `deletionTimestamp`,
    // and a controller removes the finalizer a little later, when the object goes.
    let finalizers = if rng.swarm.gen_bool(0.5) {
        rng.swarm.gen_range(0.1..0.6)
    } else {
        0.0
    };
    // Whether the webhook is registered for subresources too (`resources: ["*", "*/*"]`).
    let subresources = rng.swarm.gen_bool(0.5);
    // Per step, the chance that a namespace is created, relabelled or deleted.
    let namespace_changes = if rng.swarm.gen_bool(0.5) {
        rng.swarm.gen_range(0.005..0.03)
    } else {
        0.0
    };
    // Half the runs install the Widget CRD during the run (its streams wait until then), and
    // half of those delete it again later.
    let crd_life = rng.swarm.gen_bool(0.5).then(|| {
        let steps = params.steps.max(10);
        let installed = rng.swarm.gen_range(steps / 10..steps / 2);
        let removed = rng
            .swarm
            .gen_bool(0.5)
            .then(|| rng.swarm.gen_range(steps * 6 / 10..steps * 9 / 10));
        (installed, removed)
    });
    // Drawn last, so that runs without racing writes keep the histories they had before.
    let racing = if rng.swarm.gen_bool(0.5) {
        rng.swarm.gen_range(0.02..0.2)
    } else {
        0.0
    };
    // Drawn after everything else, for the same reason: a quarter of the runs start with the
    // Widget CRD at `v1beta1` alone and upgrade it to `v1` (preferred) during the run.
    let crd_upgrade = rng.swarm.gen_bool(0.25).then(|| {
        let steps = params.steps.max(10);
        rng.swarm.gen_range(steps / 5..steps * 4 / 5)
    });
    // Drawn after everything else too: half the runs cut pushes and resync parts small (a few
    // commits, files or hundreds of bytes), so that seeds, relists and bursts go out in several
    // parts, and crashes, conflicts and lost pushes land between them.
    let push_bounds = if rng.swarm.gen_bool(0.5) {
        PushBounds {
            commits_max: rng.swarm.gen_range(1..=8),
            bytes_max: rng.swarm.gen_range(200..=4_000),
            part_writes_max: rng.swarm.gen_range(1..=6),
        }
    } else {
        PushBounds::default()
    };
    let mut cluster = Cluster::new();
    let widgets = cluster.kind_index("widgets");
    if crd_life.is_some() {
        cluster.kinds[widgets].served = false;
    }
    if crd_upgrade.is_some() {
        cluster.set_version(widgets, "v1beta1", &[]);
    }
    let mut w = World {
        now: 0,
        wall_offset_ms: 0,
        wall_offset_max_ms: 0,
        sched: BTreeMap::new(),
        seq: 0,
        rng,
        swarm: swarm.clone(),
        cluster,
        topo: Topology::new(max_commits, interval),
        streams: BTreeMap::new(),
        core: Core::new(core_config(0, secret_policy, push_bounds)),
        push_bounds,
        secret_policy,
        bare_lists,
        secrets: SecretCheck::new(secret_policy),
        admit_twice,
        racing,
        unchanged_updates,
        finalizers,
        subresources,
        namespace_changes,
        relabels: BTreeMap::new(),
        gone_env: BTreeMap::new(),
        crd_life,
        crd_upgrade,
        upgraded_at_ms: None,
        steps_done: 0,
        generation: 0,
        admissions_due_ms: 0,
        remotes: Remotes::default(),
        ops: BTreeMap::new(),
        busy: BTreeSet::new(),
        next_tick: None,
        steps_left: params.steps,
        healed_at: None,
        hash: Xxh3::new(),
        violations: Vec::new(),
        attribution: AttributionCheck::new(FALLBACK, strict),
        orphans: OrphanCheck::default(),
        delivery: DeliveryCheck::new(swarm.enabled().contains(&Fault::OutsideWriter)),
        injected: BTreeMap::new(),
        watch_events: 0,
        admissions: 0,
        commits: 0,
        pushes: 0,
        request_seq: 0,
        last_tick_ms: None,
        ticks_at_now: 0,
        stale_heads: BTreeMap::new(),
        trace: std::env::var_os("SIM_TRACE").is_some(),
        recording: params.record.then(|| Recording {
            header: Header::new(core_config(0, secret_policy, push_bounds)),
            entries: Vec::new(),
            restarts: Vec::new(),
            bad_lines: Vec::new(),
        }),
    };
    w.configure();
    w.at(1, Ev::Step);
    w.run_loop();
    history::check(&w.remotes, &mut w.violations);
    w.delivery.check(&mut w.violations);
    let excluded = secret_policy == SecretPolicy::Exclude;
    convergence::check(&w.topo, &w.cluster, &w.remotes, excluded, &mut w.violations);
    let running = w.streams.keys().cloned().collect();
    watches::check(&w.topo, &w.cluster.kinds, &running, &mut w.violations);
    for (url, branch) in w.remotes.branches() {
        w.hash.update(url.as_bytes());
        w.hash.update(branch.as_bytes());
        for (p, b) in w.remotes.tree(&url, &branch).iter() {
            w.hash.update(p.as_bytes());
            w.hash.update(b);
        }
    }
    Report {
        params: params.clone(),
        swarm,
        push: (max_commits, interval),
        behaviours: format!(
            "secrets={} lists={} admit-twice={admit_twice:.2} unchanged-updates={unchanged_updates:.2} racing={racing:.2} finalizers={finalizers:.2} subresources={} namespace-changes={namespace_changes:.3} crd={}",
            if excluded { "exclude" } else { "redact" },
            if bare_lists { "bare" } else { "typed" },
            if subresources { "admitted" } else { "unseen" },
            match crd_life {
                None => "installed".to_string(),
                Some((i, None)) => format!("installed-at-{i}"),
                Some((i, Some(r))) => format!("installed-at-{i}-deleted-at-{r}"),
            } + &crd_upgrade.map_or(String::new(), |u| format!("-upgraded-at-{u}"))
                + &if push_bounds == PushBounds::default() {
                    " parts=default".to_string()
                } else {
                    format!(
                        " parts=commits<={},bytes<={},files<={}",
                        push_bounds.commits_max, push_bounds.bytes_max, push_bounds.part_writes_max
                    )
                }
        ),
        watch_events: w.watch_events,
        admissions: w.admissions,
        commits: w.commits,
        attribution: w.attribution.counts,
        injected: w.injected,
        sim_ms: w.now,
        output_hash: w.hash.digest(),
        violations: w.violations,
        truth: w
            .recording
            .is_some()
            .then(|| Arc::new(std::mem::take(&mut w.cluster.history))),
        recording: w.recording.map(Arc::new),
    }
}

impl World {
    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.sched.insert((t.max(self.now), self.seq), ev);
    }

    fn inject(&mut self, f: Fault) -> bool {
        let hit = chance(&mut self.rng.faults, self.swarm.p(f));
        if hit {
            *self.injected.entry(f.name()).or_default() += 1;
        }
        hit
    }

    fn configure(&mut self) {
        self.feed(Input::ApiResources(api_resources(&self.cluster.kinds)));
        for input in self.topo.config_inputs() {
            self.feed(input);
        }
    }

    fn run_loop(&mut self) {
        while let Some(((t, _), ev)) = self.sched.pop_first() {
            self.now = t;
            let seen = self.violations.len();
            match ev {
                Ev::Step => self.step(),
                Ev::Deliver(gvr, token) => self.deliver(gvr, token),
                Ev::Admission(generation, req) => {
                    if generation == self.generation {
                        self.admissions += 1;
                        self.feed(Input::Admission(req));
                    }
                }
                Ev::GitDone(op_id, generation) => self.git_done(op_id, generation),
                Ev::Tick => {
                    self.next_tick = None;
                    self.ticks_at_now = if self.last_tick_ms == Some(t) {
                        self.ticks_at_now + 1
                    } else {
                        0
                    };
                    self.last_tick_ms = Some(t);
                    if self.ticks_at_now > TICKS_AT_ONCE_MAX {
                        self.violations.push(format!(
                            "[t={t} ms] busy loop: the core keeps asking for a wake-up at {:?} and a tick changes nothing",
                            self.core.poll_deadline()
                        ));
                        return;
                    }
                    self.feed(Input::Tick);
                }
                Ev::Heal => self.heal(),
                Ev::Finalize(f) => self.finalize(f),
                Ev::EditTerminating(key, uid) => self.edit_terminating(&key, &uid),
                Ev::NamespaceGone(ns) => self.namespace_gone(&ns),
                Ev::CrdGone(kind) => self.crd_gone(kind),
            }
            for v in &mut self.violations[seen..] {
                *v = format!("[t={t} ms] {v}");
            }
            if let Some(h) = self.healed_at {
                if self.now >= h + LIVENESS_MS_MIN && self.quiescent() {
                    return;
                }
                if self.now > h + LIVENESS_BUDGET_MS {
                    self.violations.push(format!(
                        "no quiescence within {LIVENESS_BUDGET_MS} ms of healing"
                    ));
                    return;
                }
            }
        }
    }

    fn quiescent(&self) -> bool {
        self.ops.is_empty()
            && self.streams.values().all(|s| s.queue.is_empty())
            && !self.sched.values().any(|e| {
                matches!(e, Ev::Deliver(..) | Ev::Admission(..) | Ev::GitDone(..))
                    || e.settles_cluster()
            })
            && self.topo.branches().iter().all(|(repo, _, branch)| {
                self.core
                    .branch(repo, branch)
                    .is_none_or(|b| b.pending_commits == 0 && !b.op_in_flight)
            })
    }

    // ---- the core ----------------------------------------------------------------------------

    fn feed(&mut self, input: Input) {
        let now = Now {
            mono_ms: self.now,
            wall_ms: WALL_EPOCH_MS + self.now as i64 + self.wall_offset_ms,
        };
        if self.trace {
            eprintln!("{:>9} in  {}", self.now, brief_input(&input));
        }
        if let Some(rec) = &mut self.recording {
            rec.entries.push(Entry {
                now,
                input: input.clone(),
            });
        }
        self.core.handle(now, input);
        while let Some(out) = self.core.poll_output() {
            // The executor renders the files it writes; so does the simulated one, here.
            let out = rendered(out);
            let s = format!("{out:?}");
            if self.trace {
                eprintln!("{:>9} out {}", self.now, brief(&out, &s));
            }
            self.hash.update(s.as_bytes());
            self.output(out);
        }
        limits::check(&self.core, &self.topo, &mut self.violations);
        if let Some(d) = self.core.poll_deadline() {
            if self.next_tick.is_none_or(|t| d < t) {
                self.next_tick = Some(d);
                self.at(d, Ev::Tick);
            }
        }
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::EnsureWatches(set) => {
                self.streams.retain(|g, _| set.contains(g));
                for gvr in set {
                    if !self.streams.contains_key(&gvr) {
                        self.relist(gvr);
                    }
                }
            }
            Output::Resync(gvr) => {
                if self.streams.contains_key(&gvr) {
                    self.relist(gvr);
                }
            }
            Output::Git(op) => {
                if let GitOpKind::Push { expected_head, .. } = &op.kind {
                    let target = (op.repo_url.clone(), op.branch.clone());
                    if self.stale_heads.get(&target) == Some(expected_head) {
                        self.violations.push(format!(
                            "{} {}: a push planned on {expected_head:?}, the head the remote already refused as stale",
                            op.repo_url, op.branch
                        ));
                    }
                }
                let key = (op.repo.clone(), op.branch.clone());
                if !self.busy.insert(key) {
                    self.violations.push(format!(
                        "{} {}: a second git op while one is in flight",
                        op.repo, op.branch
                    ));
                }
                let slow = self.inject(Fault::GitLatency);
                let lat = if slow {
                    self.rng.git.gen_range(1_000..20_000)
                } else {
                    self.rng.git.gen_range(2..50)
                };
                let id = op.op_id;
                self.ops.insert(
                    id,
                    InFlight {
                        op,
                        planned_ms: self.now,
                    },
                );
                self.at(self.now + lat, Ev::GitDone(id, self.generation));
            }
            Output::Status(..) | Output::Refused { .. } => {}
        }
    }

    // ---- the API server ----------------------------------------------------------------------

    /// Starts (or restarts) a stream with a fresh list: whatever was queued is lost.
    fn relist(&mut self, gvr: Gvr) {
        let kind = self.cluster.kinds.iter().position(|k| k.gvr == gvr);
        // A type the API server does not serve (yet): the stream waits, and shows nothing.
        let mut events = if kind.is_some_and(|k| !self.cluster.kinds[k].served) {
            Vec::new()
        } else {
            vec![WatchEvent::Init]
        };
        if let Some(k) = kind.filter(|_| !events.is_empty()) {
            events.extend(self.cluster.list(k).into_iter().map(|mut o| {
                if self.bare_lists {
                    let m = o.as_object_mut().expect("an object");
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                WatchEvent::InitApply(o.into())
            }));
        }
        if !events.is_empty() {
            events.push(WatchEvent::InitDone);
        }
        let queue: VecDeque<(u64, WatchEvent)> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (self.now + 1 + i as u64, e))
            .collect();
        let token = self.streams.get(&gvr).map_or(0, |s| s.token) + 1;
        self.streams.insert(
            gvr.clone(),
            Stream {
                queue,
                paused_until: 0,
                token,
            },
        );
        self.schedule_delivery(&gvr);
    }

    /// Schedules the stream's one outstanding delivery: its front event, when it is due.
    fn schedule_delivery(&mut self, gvr: &Gvr) {
        let Some(s) = self.streams.get_mut(gvr) else {
            return;
        };
        let Some(&(ready, _)) = s.queue.front() else {
            return;
        };
        s.token += 1;
        let (t, token) = (ready.max(s.paused_until), s.token);
        self.at(t, Ev::Deliver(gvr.clone(), token));
    }

    fn emit(&mut self, gvr: &Gvr, ev: WatchEvent) {
        // The API server persists only after the webhook answered, and the webhook handed the
        // request to the core before answering: an on-time admission always comes first.
        let lat = self.rng.apiserver.gen_range(WEBHOOK_LATENCY_MS_MAX + 1..50);
        let Some(s) = self.streams.get_mut(gvr) else {
            return;
        };
        let behind = s.queue.back().map_or(0, |(t, _)| *t);
        let was_empty = s.queue.is_empty();
        s.queue.push_back(((self.now + lat).max(behind), ev));
        if was_empty {
            self.schedule_delivery(gvr);
        }
    }

    fn deliver(&mut self, gvr: Gvr, token: u64) {
        if self.streams.get(&gvr).is_none_or(|s| s.token != token) {
            return;
        }
        if self.healed_at.is_none() {
            if self.inject(Fault::WatchGone) {
                // 410 Gone: the queued events (deletes among them) are never seen; relist.
                self.relist(gvr);
                return;
            }
            if self.inject(Fault::WatchDisconnect) {
                // Mostly a blip; one in ten an outage that spans many writes by different users
                // (within the correlation TTL: a longer one costs attribution, and is a 410 here).
                // Outages do not chain: a stream already behind gets blips only, so no event is
                // ever later than `orphans::WATCH_DELAY_MS_MAX`.
                let behind = self.streams[&gvr]
                    .queue
                    .front()
                    .is_some_and(|(ready, _)| self.now > ready + 5_000);
                let pause = if self.rng.faults.gen_bool(0.1) && !behind {
                    self.rng.faults.gen_range(10_000..45_000)
                } else {
                    self.rng.faults.gen_range(100..5_000)
                };
                self.streams.get_mut(&gvr).expect("checked").paused_until = self.now + pause;
                self.schedule_delivery(&gvr);
                return;
            }
        }
        let Some((_, ev)) = self.streams.get_mut(&gvr).and_then(|s| s.queue.pop_front()) else {
            return;
        };
        self.schedule_delivery(&gvr);
        let dup = matches!(ev, WatchEvent::Apply(_) | WatchEvent::Delete(_))
            && self.inject(Fault::WatchDuplicate);
        self.watch_events += 1;
        if dup {
            self.feed(Input::Watch(gvr.clone(), ev.clone()));
        }
        self.feed(Input::Watch(gvr, ev));
    }

    /// The webhook's view of a write: delivered now-ish, late, or never. Returns when it reaches
    /// the core.
    fn webhook(&mut self, req: AdmissionRequest) -> Option<u64> {
        if self.inject(Fault::WebhookMissed) {
            return None;
        }
        let late = self.inject(Fault::WebhookLate);
        let lat = if late {
            self.rng.apiserver.gen_range(60..2_000)
        } else {
            self.rng.apiserver.gen_range(0..=WEBHOOK_LATENCY_MS_MAX)
        };
        let due = (self.now + lat).max(self.admissions_due_ms);
        self.admissions_due_ms = due;
        self.at(due, Ev::Admission(self.generation, req));
        Some(due)
    }

    /// The AdmissionReview the API server sends for a write, read by the core's own parser as
    /// the runtime reads it. A create by `generateName` names no object in the request (the
    /// server picked the name; the object carries it); `sub` is the subresource written.
    #[allow(clippy::too_many_arguments)]
    fn review(
        &mut self,
        key: &ObjKey,
        op: Operation,
        user: &str,
        object: Option<Value>,
        old: Option<Value>,
        dry_run: bool,
        sub: Option<&str>,
    ) -> AdmissionRequest {
        self.request_seq += 1;
        let k = &self.cluster.kinds[key.0];
        let (group, version) = (k.gvr.group.clone(), k.gvr.version.clone());
        let generated = op == Operation::Create
            && object
                .as_ref()
                .is_some_and(|o| o.pointer("/metadata/generateName").is_some());
        let mut request = json!({
            "uid": format!("req-{}", self.request_seq),
            "kind": {"group": group, "version": version, "kind": k.kind},
            "resource": {"group": group, "version": version, "resource": k.gvr.resource},
            "name": if generated { "" } else { key.2.as_str() },
            "operation": op.as_str(),
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": dry_run,
        });
        if let Some(ns) = &key.1 {
            request["namespace"] = json!(ns);
        }
        if let Some(sub) = sub {
            request["subResource"] = json!(sub);
        }
        let review = json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request});
        let body = serde_json::to_vec(&review).expect("a Value serializes");
        match gitops_reverser_core::admission::parse_review(&body) {
            Ok(req) => req,
            Err(e) => {
                self.violations.push(format!(
                    "the core's parser refused a review the API server sends: {e}"
                ));
                AdmissionRequest {
                    uid: format!("req-{}", self.request_seq),
                    gvr: k.gvr.clone(),
                    namespace: key.1.clone(),
                    name: key.2.clone(),
                    operation: op,
                    username: user.into(),
                    dry_run,
                    object: None,
                    old_object: None,
                    sub_resource: None,
                }
            }
        }
    }

    /// A user's write through admission; returns whether it was persisted.
    fn write(&mut self, key: &ObjKey, op: Operation, user: &'static str, body: Option<Value>) {
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let body = match op {
            Operation::Create => body.map(|b| self.cluster.with_new_uid(b)),
            _ => body,
        };
        let old = self.cluster.objects.get(key).map(|o| o.body.clone());
        if gvr.resource == "secrets" {
            if let Some(b) = &body {
                self.secrets.note(b);
            }
        }
        if op == Operation::Update && chance(&mut self.rng.apiserver, self.unchanged_updates) {
            // The object as it is: admission sees it, storage finds nothing to change.
            let req = self.review(key, op, user, old.clone(), old.clone(), false, None);
            self.webhook(req);
            return;
        }
        let req = self.review(key, op, user, body.clone(), old.clone(), false, None);
        if chance(&mut self.rng.apiserver, self.admit_twice) {
            // The first attempt lost a storage conflict; the retry runs admission again.
            let mut first = req.clone();
            first.uid.push_str("-conflicted");
            self.webhook(first);
        }
        // (No draw at all without racing writes: the histories of those runs stay as they were.)
        let raced = self.racing > 0.0
            && op != Operation::Create
            && old.is_some()
            && chance(&mut self.rng.apiserver, self.racing);
        let rival = raced.then(|| {
            let others: Vec<&'static str> =
                workload::USERS.into_iter().filter(|u| *u != user).collect();
            let rival = others[self.rng.apiserver.gen_range(0..others.len())];
            let first = self.rng.apiserver.gen_bool(0.5);
            (rival, first)
        });
        let mut rival_admitted = None;
        if let Some((rival, true)) = rival {
            let req = self.review(key, op, rival, body.clone(), old.clone(), false, None);
            rival_admitted = Some(self.webhook(req));
        }
        let admitted = self.webhook(req);
        if let Some((rival, false)) = rival {
            let req = self.review(key, op, rival, body.clone(), old.clone(), false, None);
            rival_admitted = Some(self.webhook(req));
        }
        if let (Some((rival, _)), Some(at)) = (rival, rival_admitted) {
            // The rival's write loses at storage; it leaves what the true one leaves.
            self.note_write(key, rival, op, body.as_ref(), None, true, at);
        }
        match (op, &old) {
            // The name is taken (by an object being deleted): storage refuses the create.
            (Operation::Create, Some(_)) => {
                self.note_write(key, user, op, body.as_ref(), None, true, admitted);
                return;
            }
            // Being deleted already: nothing changes, no event.
            (Operation::Delete, Some(o)) if workload::terminating(o) => return,
            _ => {}
        }
        if self.inject(Fault::RejectedDownstream) {
            self.note_write(key, user, op, body.as_ref(), None, true, admitted);
            return;
        }
        if let (Operation::Delete, Some(o)) = (op, &old) {
            if workload::finalized(o) {
                self.begin_deletion(key, o.clone(), user, admitted);
                return;
            }
        }
        let mut removed = None;
        let (stored, ev) = match op {
            Operation::Create => {
                let b = self
                    .cluster
                    .persist_create(key.clone(), body.expect("object"), self.now);
                (Some(b.clone()), WatchEvent::Apply((&b).into()))
            }
            Operation::Update => {
                let b = self
                    .cluster
                    .persist_update(key, body.expect("object"), self.now);
                (Some(b.clone()), WatchEvent::Apply((&b).into()))
            }
            Operation::Delete => {
                let gone = self.cluster.persist_delete(key, self.now);
                removed = Some(gone.clone());
                (None, WatchEvent::Delete(gone.into()))
            }
        };
        self.note_write(
            key,
            user,
            op,
            stored.as_ref(),
            removed.as_ref(),
            false,
            admitted,
        );
        self.emit(&gvr, ev);
    }

    /// `kubectl scale`: the `scale` subresource. Where the webhook's rules include it, its
    /// admission carries Scale objects, which the core does not record (their content is not the
    /// Deployment's): the change has no admission the core can use, and its commit is the
    /// fallback author's.
    fn scale(&mut self, key: &ObjKey, replicas: u64, user: &'static str) {
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let old = self.cluster.objects[key].body.clone();
        if old.pointer("/spec/replicas") == Some(&json!(replicas)) {
            return;
        }
        if self.subresources {
            let scale = |b: &Value, n: &Value| {
                json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": key.2, "namespace": key.1,
                        "uid": b["metadata"]["uid"], "resourceVersion": b["metadata"]["resourceVersion"]},
                    "spec": {"replicas": n}})
            };
            let (object, old_scale) = (
                scale(&old, &json!(replicas)),
                scale(&old, &old["spec"]["replicas"]),
            );
            let req = self.review(
                key,
                Operation::Update,
                user,
                Some(object),
                Some(old_scale),
                false,
                Some("scale"),
            );
            self.webhook(req);
        }
        let mut body = old;
        body["spec"]["replicas"] = json!(replicas);
        let stored = self.cluster.persist_update(key, body, self.now);
        self.note_write(
            key,
            user,
            Operation::Update,
            Some(&stored),
            None,
            false,
            None,
        );
        let id = self.cluster.identifier(key);
        if let Some(w) = self.cluster.history.get_mut(&id).and_then(|h| h.last_mut()) {
            w.via_subresource = true;
        }
        self.emit(&gvr, WatchEvent::Apply(stored.into()));
    }

    /// A user creates the passing namespace, relabels one (its objects move in or out of
    /// namespace selectors), or deletes the passing one with everything in it.
    fn change_namespace(&mut self) {
        let ns_kind = self.cluster.kind_index("namespaces");
        let user = workload::USERS[self.rng.workload.gen_range(0..workload::USERS.len())];
        let env = ["prod", "dev"][self.rng.workload.gen_range(0..2)];
        let passing = (ns_kind, None, PASSING_NAMESPACE.to_string());
        let live = self.cluster.objects.get(&passing).map(|o| o.body.clone());
        match live {
            None => {
                let body = json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": PASSING_NAMESPACE, "labels": {"env": env,
                        "kubernetes.io/metadata.name": PASSING_NAMESPACE}}});
                self.write(&passing, Operation::Create, user, Some(body));
                if self.cluster.objects.contains_key(&passing) {
                    // Until the watch shows it, the core may route its objects as if it had no
                    // labels, or the labels of the namespace of that name it saw deleted.
                    let before = self.gone_env.remove(PASSING_NAMESPACE).flatten();
                    let entry = self.relabels.entry(PASSING_NAMESPACE.into()).or_default();
                    entry.push((self.now, None));
                    entry.push((self.now, before));
                }
            }
            Some(ns) if workload::terminating(&ns) => {}
            Some(ns) if self.rng.workload.gen_bool(0.4) => self.delete_namespace(ns, user),
            Some(_) => {
                let name = ["team-b", PASSING_NAMESPACE][self.rng.workload.gen_range(0..2)];
                let key = (ns_kind, None, name.to_string());
                let mut body = self.cluster.objects[&key].body.clone();
                let was = self.cluster.ns_env(Some(name)).map(str::to_owned);
                body["metadata"]["labels"]["env"] = json!(env);
                self.write(&key, Operation::Update, user, Some(body));
                if was.as_deref() != Some(env) && self.cluster.ns_env(Some(name)) == Some(env) {
                    self.cluster.touch_namespace(name, self.now);
                    self.note_relabel(name, was.as_deref(), env);
                    self.relabels
                        .entry(name.to_string())
                        .or_default()
                        .push((self.now, was));
                }
            }
        }
    }

    /// Namespace `ns` went from `was` to `env`: each object's last write, and any the watch may
    /// not have shown yet, may show in the folders whose selection of it that changed either way.
    fn note_relabel(&mut self, ns: &str, was: Option<&str>, env: &str) {
        for key in self.cluster.in_namespace(ns) {
            let labels = self.cluster.objects[&key]
                .body
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_default();
            let under = |ns_env| {
                self.topo.selecting(&Subject {
                    kind: &self.cluster.kinds[key.0],
                    namespace: Some(ns),
                    ns_env,
                    labels: &labels,
                })
            };
            let (before, after) = (under(was), under(Some(env)));
            let dests: Vec<Destination> = before
                .iter()
                .filter(|d| !after.contains(d))
                .chain(after.iter().filter(|d| !before.contains(d)))
                .copied()
                .collect();
            // The last write, and every one the watch may still show after the relabel.
            let id = self.cluster.identifier(&key);
            let since = self
                .now
                .saturating_sub(crate::checks::orphans::WATCH_DELAY_MS_MAX);
            if let Some(history) = self.cluster.history.get_mut(&id) {
                let mut last = true;
                for w in history.iter_mut().rev().filter(|w| !w.rejected) {
                    if !last && w.at_ms < since {
                        break;
                    }
                    w.moved.extend(dests.iter().copied());
                    last = false;
                }
            }
        }
    }

    /// The Widget CRD is created: discovery serves the type, and a stream waiting for it lists.
    fn install_crd(&mut self) {
        let kind = self.cluster.kind_index("widgets");
        self.cluster.kinds[kind].served = true;
        self.delivery.forgive_all(self.now);
        self.feed(Input::ApiResources(api_resources(&self.cluster.kinds)));
        let gvr = self.cluster.kinds[kind].gvr.clone();
        if self.streams.contains_key(&gvr) {
            self.relist(gvr);
        }
    }

    /// The Widget CRD is upgraded: `v1` is added and preferred, `v1beta1` still served. The API
    /// server shows every object at `v1` from now on; discovery tells the core, whose version
    /// wildcard moves the files.
    fn upgrade_crd(&mut self) {
        let kind = self.cluster.kind_index("widgets");
        let old = format!("{}/", self.cluster.kinds[kind].gvr);
        self.cluster.set_version(kind, "v1", &["v1beta1"]);
        self.upgraded_at_ms = Some(self.now);
        // The objects are the same: their histories go on under the new identifier (the
        // checkers judge the commits at the new path against every write of the object, so that
        // the first one after the upgrade is not taken for its first ever).
        let new = format!("{}/", self.cluster.kinds[kind].gvr);
        self.cluster.carry_history(&old, &new);
        self.delivery.forgive_all(self.now);
        self.feed(Input::ApiResources(api_resources(&self.cluster.kinds)));
    }

    /// The Widget CRD is deleted: no new widgets; the API server deletes every one (through
    /// admission, as a client), and then no longer serves the type.
    fn delete_crd(&mut self) {
        let kind = self.cluster.kind_index("widgets");
        self.cluster.kinds[kind].removing = true;
        self.crd_gone(kind);
    }

    /// The CRD's cleanup pass: deletes the objects left (those a finalizer holds go when it
    /// does); once none is left, and the watch has had time to show their deletes, the type goes
    /// from discovery and its streams stop.
    fn crd_gone(&mut self, kind: usize) {
        let left: Vec<ObjKey> = self
            .cluster
            .objects
            .keys()
            .filter(|k| k.0 == kind)
            .cloned()
            .collect();
        for key in &left {
            if !workload::terminating(&self.cluster.objects[key].body) {
                self.write(key, Operation::Delete, CRD_CLEANUP, None);
            }
        }
        let gvr = self.cluster.kinds[kind].gvr.clone();
        let drained = self.streams.get(&gvr).is_none_or(|s| s.queue.is_empty());
        if !left.is_empty() || !drained {
            self.at(self.now + 2_500, Ev::CrdGone(kind));
            return;
        }
        self.cluster.kinds[kind].served = false;
        self.cluster.kinds[kind].removing = false;
        self.delivery.forgive_all(self.now);
        self.feed(Input::ApiResources(api_resources(&self.cluster.kinds)));
        if let Some(s) = self.streams.get_mut(&gvr) {
            s.queue.clear();
            s.token += 1;
        }
    }

    /// A namespace's delete: it is marked terminating, and the namespace controller deletes its
    /// objects (through admission, as any client), then the namespace.
    fn delete_namespace(&mut self, ns: Value, user: &'static str) {
        let ns_kind = self.cluster.kind_index("namespaces");
        let gvr = self.cluster.kinds[ns_kind].gvr.clone();
        let key = (ns_kind, None, PASSING_NAMESPACE.to_string());
        let req = self.review(
            &key,
            Operation::Delete,
            user,
            None,
            Some(ns.clone()),
            false,
            None,
        );
        self.webhook(req);
        let mut body = ns;
        meta_mut(&mut body).insert("deletionTimestamp".into(), json!("2026-11-26T00:00:02Z"));
        let stored = self.cluster.persist_update(&key, body, self.now);
        self.emit(&gvr, WatchEvent::Apply(stored.into()));
        self.namespace_gone(PASSING_NAMESPACE);
    }

    /// The namespace controller's pass: it deletes what is left in the namespace, and the
    /// namespace itself once nothing is (objects a finalizer holds go first; a refused delete is
    /// tried again on the next pass).
    fn namespace_gone(&mut self, ns: &str) {
        let left = self.cluster.in_namespace(ns);
        for key in &left {
            let live = &self.cluster.objects[key].body;
            if !workload::terminating(live) {
                self.write(key, Operation::Delete, NAMESPACE_CONTROLLER, None);
            }
        }
        if !self.cluster.in_namespace(ns).is_empty() {
            self.at(self.now + 2_500, Ev::NamespaceGone(ns.to_string()));
            return;
        }
        let ns_kind = self.cluster.kind_index("namespaces");
        let key = (ns_kind, None, ns.to_string());
        let gvr = self.cluster.kinds[ns_kind].gvr.clone();
        let env = self.cluster.ns_env(Some(ns)).map(str::to_owned);
        self.gone_env.insert(ns.to_string(), env);
        let gone = self.cluster.persist_delete(&key, self.now);
        self.emit(&gvr, WatchEvent::Delete(gone.into()));
    }

    /// A delete the finalizer holds: the object gets `deletionTimestamp` (a new version, the same
    /// content once sanitized) and stays until the controller removes the finalizer.
    fn begin_deletion(
        &mut self,
        key: &ObjKey,
        mut body: Value,
        deleter: &'static str,
        admitted_ms: Option<u64>,
    ) {
        let gvr = self.cluster.kinds[key.0].gvr.clone();
        let meta = meta_mut(&mut body);
        meta.insert("deletionTimestamp".into(), json!("2026-11-26T00:00:01Z"));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        let uid = meta.get("uid").cloned().unwrap_or_default();
        let stored = self.cluster.persist_update(key, body, self.now);
        self.emit(&gvr, WatchEvent::Apply(stored.into()));
        // Well within the correlation TTL, watch outages included: a controller slower than that
        // costs the deleter's attribution (the fallback author), which a strict run would flag.
        let delay = self.rng.apiserver.gen_range(5..2_000);
        // A third of the time someone edits it meanwhile: the API server allows that until the
        // finalizers are gone, and the DELETED event then carries the edited version, not the
        // one the DELETE was admitted on.
        if self.rng.apiserver.gen_bool(0.3) {
            let edit_at = self.now + self.rng.apiserver.gen_range(1..delay);
            self.at(edit_at, Ev::EditTerminating(key.clone(), uid.clone()));
        }
        self.at(
            self.now + delay,
            Ev::Finalize(Finalize {
                key: key.clone(),
                uid,
                deleter,
                admitted_ms,
            }),
        );
    }

    /// A user edits the terminating object `key` (if it is still the one with `uid`).
    fn edit_terminating(&mut self, key: &ObjKey, uid: &Value) {
        let Some(old) = self.cluster.objects.get(key).map(|o| o.body.clone()) else {
            return;
        };
        if old.pointer("/metadata/uid") != Some(uid) || !workload::terminating(&old) {
            return;
        }
        let user = workload::USERS[self.rng.workload.gen_range(0..workload::USERS.len())];
        let body = workload::mutate(&mut self.rng.workload, old);
        self.write(key, Operation::Update, user, Some(body));
    }

    /// The controller removes the finalizer (an update through admission); the API server then
    /// deletes the object. The DELETED event carries the last stored version, finalizer included.
    fn finalize(&mut self, f: Finalize) {
        let Some(old) = self.cluster.objects.get(&f.key).map(|o| o.body.clone()) else {
            return;
        };
        if old.pointer("/metadata/uid") != Some(&f.uid) || !workload::terminating(&old) {
            return;
        }
        let gvr = self.cluster.kinds[f.key.0].gvr.clone();
        let mut released = old.clone();
        meta_mut(&mut released).remove("finalizers");
        let req = self.review(
            &f.key,
            Operation::Update,
            CONTROLLER,
            Some(released),
            Some(old),
            false,
            None,
        );
        self.webhook(req);
        let gone = self.cluster.persist_delete(&f.key, self.now);
        self.note_write(
            &f.key,
            f.deleter,
            Operation::Delete,
            None,
            Some(&gone),
            false,
            f.admitted_ms,
        );
        self.emit(&gvr, WatchEvent::Delete(gone.into()));
    }

    /// Adds a write to the object's history (what the checkers judge commits against): the file
    /// the object `body` makes (`None` for a delete) and the destinations whose active rules
    /// select it then. `removed` is the object a delete removed (what its watch event shows).
    #[allow(clippy::too_many_arguments)]
    fn note_write(
        &mut self,
        key: &ObjKey,
        user: &str,
        op: Operation,
        body: Option<&Value>,
        removed: Option<&Value>,
        rejected: bool,
        admitted_ms: Option<u64>,
    ) {
        let kind = &self.cluster.kinds[key.0];
        let file = body.map(|b| oracle::expected(&kind.gvr, b));
        let ns_env = self.cluster.ns_env(key.1.as_deref());
        let labels_of = |b: &Value| b.pointer("/metadata/labels").cloned().unwrap_or_default();
        let on = |b: &Value, f: &dyn Fn(&Subject<'_>) -> Vec<Destination>| {
            let labels = labels_of(b);
            f(&Subject {
                kind,
                namespace: key.1.as_deref(),
                ns_env,
                labels: &labels,
            })
        };
        let dests = body.map_or_else(Vec::new, |b| on(b, &|s| self.topo.selecting(s)));
        // Its namespace's labels changed just before: the core may see this write first.
        let mut moved = Vec::new();
        if let (Some(b), Some(ns)) = (body, key.1.as_deref()) {
            let recent = self
                .relabels
                .get(ns)
                .into_iter()
                .flatten()
                .filter(|(t, _)| self.now <= t + crate::checks::orphans::WATCH_DELAY_MS_MAX);
            for (_, was) in recent {
                let labels = labels_of(b);
                let before = self.topo.selecting(&Subject {
                    kind,
                    namespace: Some(ns),
                    ns_env: was.as_deref(),
                    labels: &labels,
                });
                moved.extend(
                    before
                        .iter()
                        .filter(|d| !dests.contains(d))
                        .chain(dests.iter().filter(|d| !before.contains(d)))
                        .copied(),
                );
            }
        }
        // The object the watch event shows: the one written, or for a delete the one removed.
        let shown = body.or(removed);
        let held = shown.map_or_else(Vec::new, |b| on(b, &|s| self.topo.holding(s, op)));
        let at_ms = self.now;
        let across_versions = self
            .upgraded_at_ms
            .is_some_and(|u| kind.gvr.resource == "widgets" && admitted_ms.is_some_and(|a| a < u));
        self.cluster.record(
            key,
            WriteRecord {
                at_ms,
                user: user.into(),
                op,
                file,
                dests,
                held,
                moved,
                rejected,
                admitted_ms,
                via_subresource: false,
                across_versions,
            },
        );
    }

    fn step(&mut self) {
        if self.steps_left == 0 {
            self.at(self.now + 1, Ev::Heal);
            return;
        }
        self.steps_left -= 1;
        // Mostly a busy cluster; now and then a lull longer than the correlation TTL.
        let gap = if self.rng.workload.gen_bool(0.03) {
            self.rng.workload.gen_range(20_000..90_000)
        } else {
            self.rng.workload.gen_range(1..400)
        };
        self.at(self.now + gap, Ev::Step);
        self.world_faults();
        self.steps_done += 1;
        if let Some((installed, removed)) = self.crd_life {
            if self.steps_done == installed {
                self.install_crd();
            }
            if removed == Some(self.steps_done) {
                self.delete_crd();
            }
        }
        if self.crd_upgrade == Some(self.steps_done) {
            self.upgrade_crd();
        }
        if chance(&mut self.rng.workload, self.namespace_changes) {
            self.change_namespace();
            return;
        }
        match workload::next(&mut self.rng.workload, &self.cluster, self.finalizers) {
            Action::Create(key, body, user) => {
                self.write(&key, Operation::Create, user, Some(body))
            }
            Action::Update(key, body, user) => {
                self.write(&key, Operation::Update, user, Some(body))
            }
            Action::Delete(key, user) => self.write(&key, Operation::Delete, user, None),
            Action::Recreate(key, body, user) => {
                self.write(&key, Operation::Delete, user, None);
                if !self.cluster.objects.contains_key(&key) {
                    self.write(&key, Operation::Create, user, Some(body));
                }
            }
            Action::Noop(key, user) => {
                let mut body = self.cluster.objects[&key].body.clone();
                meta_mut(&mut body).insert(
                    "managedFields".into(),
                    json!([{"manager": "kubectl", "operation": "Apply", "n": self.request_seq}]),
                );
                self.write(&key, Operation::Update, user, Some(body));
            }
            Action::Status(key) => {
                // The status subresource: a new resourceVersion, the same content; the webhook
                // is called only where its rules include subresources.
                let gvr = self.cluster.kinds[key.0].gvr.clone();
                let old = self.cluster.objects[&key].body.clone();
                let mut body = old.clone();
                body["status"] = json!({"observedGeneration": self.request_seq, "ready": true});
                self.request_seq += 1;
                if self.subresources {
                    let req = self.review(
                        &key,
                        Operation::Update,
                        CONTROLLER,
                        Some(body.clone()),
                        Some(old),
                        false,
                        Some("status"),
                    );
                    self.webhook(req);
                }
                let stored = self.cluster.persist_update(&key, body, self.now);
                self.note_write(
                    &key,
                    CONTROLLER,
                    Operation::Update,
                    Some(&stored),
                    None,
                    false,
                    None,
                );
                self.emit(&gvr, WatchEvent::Apply(stored.into()));
            }
            Action::Scale(key, replicas, user) => self.scale(&key, replicas, user),
            Action::DryRun(key, body, user) => {
                let old = self.cluster.objects.get(&key).map(|o| o.body.clone());
                let (op, body) = if old.is_some() {
                    (Operation::Update, body)
                } else {
                    (Operation::Create, self.cluster.with_new_uid(body))
                };
                if self.cluster.kinds[key.0].gvr.resource == "secrets" {
                    self.secrets.note(&body);
                }
                let req = self.review(&key, op, user, Some(body), old, true, None);
                self.webhook(req);
            }
            Action::ToggleRule => {
                let toggles: Vec<usize> = (0..self.topo.rules.len())
                    .filter(|&i| self.topo.rules[i].toggles)
                    .collect();
                let i = toggles[self.rng.workload.gen_range(0..toggles.len())];
                self.topo.active[i] = !self.topo.active[i];
                let input = self.topo.rule_input(i, self.topo.active[i]);
                let rule = &self.topo.rules[i];
                let url = self.topo.repos[rule.repo].url;
                self.delivery
                    .forgive_folder(url, rule.branch, rule.folder, self.now);
                self.feed(input);
            }
        }
    }

    /// Faults that strike the world rather than one write: crash, clock, outside writers.
    fn world_faults(&mut self) {
        if self.inject(Fault::Crash) {
            self.crash();
        }
        if self.inject(Fault::ClockJump) {
            let jump = self.rng.faults.gen_range(-7_200_000i64..7_200_000);
            self.wall_offset_ms += jump;
            self.wall_offset_max_ms = self.wall_offset_max_ms.max(self.wall_offset_ms);
        }
        if self.inject(Fault::OutsideWriter) {
            self.outside_write(None);
        }
    }

    /// The operator restarts: memory lost, in-flight pushes may or may not have landed.
    fn crash(&mut self) {
        let ops = std::mem::take(&mut self.ops);
        for (_, f) in ops {
            if let GitOpKind::Push {
                expected_head,
                commits,
            } = &f.op.kind
            {
                if self.rng.faults.gen_bool(0.5) {
                    let _ = self.apply_push(&f.op, expected_head.as_ref(), commits, f.planned_ms);
                }
            }
        }
        self.busy.clear();
        self.streams.clear();
        self.delivery.forgive_all(self.now);
        self.generation += 1;
        self.next_tick = None;
        self.core = Core::new(core_config(
            self.generation,
            self.secret_policy,
            self.push_bounds,
        ));
        if let Some(rec) = &mut self.recording {
            rec.restarts.push(Restart {
                at: rec.entries.len(),
                config: core_config(self.generation, self.secret_policy, self.push_bounds),
            });
        }
        self.configure();
    }

    // ---- git ----------------------------------------------------------------------------------

    /// Someone else pushes to one of the operator's branches: notes, edits of the operator's
    /// files, deletions of them, stray files in the operator's layout.
    fn outside_write(&mut self, target: Option<(String, String)>) {
        let (url, branch) = match target {
            Some(t) => t,
            None => {
                let all = self.topo.branches();
                let (_, url, branch) = all[self.rng.git.gen_range(0..all.len())].clone();
                (url.to_string(), branch.to_string())
            }
        };
        let tree = self.remotes.tree(&url, &branch);
        let ours: Vec<String> = tree
            .keys()
            .filter(|p| p.ends_with(".yaml"))
            .cloned()
            .collect();
        let what = self.rng.git.gen_range(0..4);
        let n = self.rng.git.gen_range(0..1000);
        let folder = self
            .topo
            .rules
            .iter()
            .find(|r| self.topo.repos[r.repo].url == url && r.branch == branch)
            .map_or("", |r| r.folder);
        let pick = (!ours.is_empty()).then(|| ours[n % ours.len()].clone());
        self.remotes
            .outside_commit(&url, &branch, |t| match (what, pick) {
                (1, Some(p)) => {
                    let mut b = t[&p].to_vec();
                    b.extend_from_slice(b"# edited by hand\n");
                    t.insert(p, b.into());
                }
                (2, Some(p)) => {
                    t.remove(&p);
                }
                (3, _) => {
                    let base = if folder.is_empty() {
                        String::new()
                    } else {
                        format!("{folder}/")
                    };
                    t.insert(
                        format!("{base}v1/configmaps/team-a/stray-{n}.yaml"),
                        b"kind: ConfigMap\n".to_vec().into(),
                    );
                }
                _ => {
                    t.insert(
                        format!("notes/{n}.md"),
                        format!("note {n}\n").into_bytes().into(),
                    );
                }
            });
    }

    fn apply_push(
        &mut self,
        op: &GitOp,
        expected: Option<&String>,
        commits: &[gitops_reverser_core::io::PlannedCommit],
        planned_ms: u64,
    ) -> Result<String, PushError> {
        let World {
            remotes,
            violations,
            attribution,
            orphans,
            secrets,
            delivery,
            topo,
            cluster,
            commits: count,
            pushes,
            wall_offset_max_ms,
            ..
        } = self;
        let wall_offset_max_ms = *wall_offset_max_ms;
        *pushes += 1;
        let push = *pushes;
        remotes.push(
            &op.repo_url,
            &op.branch,
            expected,
            commits,
            |c, before, after| {
                *count += 1;
                empty_commits::on_commit(c, before, after, violations);
                // When the core saw the change, at the earliest (pushes are bounded, so a commit
                // may wait behind others long after it was seen).
                let seen_ms = c.author_time_ms - WALL_EPOCH_MS - wall_offset_max_ms;
                let seen_ms = u64::try_from(seen_ms).unwrap_or(0).min(planned_ms);
                orphans.on_commit(
                    &op.repo_url,
                    &op.branch,
                    push,
                    seen_ms,
                    planned_ms,
                    c,
                    before,
                    topo,
                    cluster,
                    violations,
                );
                attribution.on_commit(&op.repo_url, &op.branch, c, &cluster.history, violations);
                delivery.on_landed(&op.repo_url, &op.branch, c);
                secrets.on_commit(&op.repo_url, &op.branch, &c.message, after, violations);
            },
        )
    }

    fn git_done(&mut self, op_id: u64, generation: u64) {
        if generation != self.generation {
            return;
        }
        let Some(f) = self.ops.remove(&op_id) else {
            return;
        };
        self.busy.remove(&(f.op.repo.clone(), f.op.branch.clone()));
        let op = f.op;
        let (url, branch) = (op.repo_url.clone(), op.branch.clone());
        let failed = |what: &str| GitResult::Failed {
            retryable: true,
            reason: format!("{what}: connection reset by peer"),
            cause: "RemoteUnreachable".into(),
        };
        let result = match &op.kind {
            GitOpKind::ReadPaths { folder } => {
                if self.inject(Fault::GitTransient) {
                    failed("fetch")
                } else {
                    GitResult::Paths {
                        head: self.remotes.head(&url, &branch),
                        entries: self.remotes.paths(&url, &branch, folder),
                    }
                }
            }
            GitOpKind::Push {
                expected_head,
                commits,
            } => {
                if self.inject(Fault::OutsideWriter) {
                    // Another writer pushed just before us.
                    self.outside_write(Some((url.clone(), branch.clone())));
                }
                if self.inject(Fault::GitTransient) {
                    self.delivery
                        .on_refused(&url, &branch, commits, f.planned_ms, self.now);
                    failed("push")
                } else if self.inject(Fault::PushUnknown) {
                    if self.rng.faults.gen_bool(0.5) {
                        let _ = self.apply_push(&op, expected_head.as_ref(), commits, f.planned_ms);
                    } else {
                        self.delivery
                            .on_refused(&url, &branch, commits, f.planned_ms, self.now);
                    }
                    GitResult::Unknown
                } else {
                    match self.apply_push(&op, expected_head.as_ref(), commits, f.planned_ms) {
                        Ok(head) => {
                            self.stale_heads.remove(&(url.clone(), branch.clone()));
                            GitResult::Pushed {
                                head,
                                blobs: blob_ids(commits),
                            }
                        }
                        Err(PushError::NotFastForward(remote_head)) => {
                            self.stale_heads
                                .insert((url.clone(), branch.clone()), expected_head.clone());
                            GitResult::Conflict { remote_head }
                        }
                    }
                }
            }
            GitOpKind::Verify {
                expected_head,
                op_tag,
            } => {
                if self.inject(Fault::GitTransient) {
                    failed("fetch")
                } else {
                    GitResult::Verified {
                        head: self.remotes.head(&url, &branch),
                        landed: self
                            .remotes
                            .landed(&url, &branch, expected_head.as_ref(), op_tag),
                    }
                }
            }
        };
        self.feed(Input::GitDone(op_id, result));
    }

    // ---- phases -------------------------------------------------------------------------------

    /// The liveness phase: faults off, workload stopped, every stream relisted (a resync).
    fn heal(&mut self) {
        // The cluster comes to rest first: deletions the finalizer holds finish (a change after
        // the relist that a rule's `operations` leaves out would stay unseen for good).
        if let Some(&(t, _)) = self
            .sched
            .iter()
            .filter(|(_, e)| e.settles_cluster())
            .map(|(k, _)| k)
            .next_back()
        {
            self.at(t + 1, Ev::Heal);
            return;
        }
        self.swarm.heal();
        self.healed_at = Some(self.now);
        let gvrs: Vec<Gvr> = self.streams.keys().cloned().collect();
        for gvr in gvrs {
            self.relist(gvr);
        }
    }
}

/// `out` with every file of a push rendered, as the runtime's executor renders them.
pub(crate) fn rendered(mut out: Output) -> Output {
    if let Output::Git(GitOp {
        kind: GitOpKind::Push { commits, .. },
        ..
    }) = &mut out
    {
        for c in commits {
            for (_, file) in &mut c.writes {
                if let Some(f) = file {
                    *f = f.rendered();
                }
            }
        }
    }
    out
}

/// One line per output for `SIM_TRACE`; pushes list their commits.
fn brief(out: &Output, debug: &str) -> String {
    match out {
        Output::Git(op) => match &op.kind {
            GitOpKind::Push {
                expected_head,
                commits,
            } => {
                let cs: Vec<String> = commits
                    .iter()
                    .map(|c| {
                        let paths: Vec<String> = c
                            .writes
                            .iter()
                            .map(|(p, b)| format!("{}{p}", if b.is_some() { "+" } else { "-" }))
                            .collect();
                        format!(
                            "{} by {} [{}]",
                            c.message.lines().next().unwrap_or_default(),
                            c.author.name,
                            paths.join(" ")
                        )
                    })
                    .collect();
                format!(
                    "Git#{} push {} {} on {:?}: {}",
                    op.op_id,
                    op.repo_url,
                    op.branch,
                    expected_head.as_deref().map(|h| &h[32..]),
                    cs.join(" | ")
                )
            }
            other => format!("Git#{} {} {} {other:?}", op.op_id, op.repo_url, op.branch),
        },
        _ => debug[..debug.len().min(300)].to_string(),
    }
}

/// One line per input for `SIM_TRACE`.
fn brief_input(input: &Input) -> String {
    let obj = |gvr: &Gvr, raw: &RawObject| {
        let v = &raw.to_value().unwrap_or_default();
        let m = |f: &str| {
            v.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        format!(
            "{}/{} rv={} uid={} {}",
            m("namespace"),
            m("name"),
            m("resourceVersion"),
            m("uid"),
            xxhash_rust::xxh3::xxh3_64(&file_of(gvr, v)) as u16
        )
    };
    match input {
        Input::Watch(g, ev) => {
            let e = match ev {
                WatchEvent::Init => "Init".to_string(),
                WatchEvent::InitDone => "InitDone".to_string(),
                WatchEvent::InitApply(v) => format!("InitApply {}", obj(g, v)),
                WatchEvent::Apply(v) => format!("Apply {}", obj(g, v)),
                WatchEvent::Delete(v) => format!("Delete {}", obj(g, v)),
            };
            format!("Watch {} {e}", g.resource)
        }
        Input::Admission(r) => format!(
            "Admission {} {} {:?}/{} by {}{}",
            r.operation.as_str(),
            r.gvr.resource,
            r.namespace,
            r.name,
            r.username,
            if r.dry_run { " (dry run)" } else { "" }
        ),
        other => {
            let s = format!("{other:?}");
            s[..s.len().min(300)].to_string()
        }
    }
}
