//! The world: a discrete-event loop that drives the real `Core` against the modelled cluster,
//! API server, git remotes and clock, injecting the seed's faults, and runs the checkers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use gitops_reverser_core::admission::AdmissionRequest;
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{
    blob_ids, CommitId, GitOp, GitOpKind, GitResult, Identity, Input, Output, WatchEvent,
};
use gitops_reverser_core::limits::CORRELATION_TTL_MS as CORRELATION_TTL_MS_DEFAULT;
use gitops_reverser_core::record::{Entry, Header, Recording, Restart};
use gitops_reverser_core::CorrelationLimits;
use gitops_reverser_core::Identities;
use gitops_reverser_core::Now;
use gitops_reverser_core::PushBounds;
use gitops_reverser_core::RawObject;
use gitops_reverser_core::SecretPolicy;
use gitops_reverser_core::{Core, CoreConfig};
use gitops_reverser_core::{Gvr, Operation};
use rand::Rng;
use serde_json::{json, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::checks::attribution::AttrCounts;
use crate::checks::{Checkers, End, Event, Landed, Scene};
use crate::cluster::{
    discovery_inputs, file_of, meta_mut, Cluster, Destination, ObjKey, WriteRecord,
    PASSING_NAMESPACE,
};
use crate::git::{PushError, Remotes};
use crate::oracle;
use crate::rng::{chance, Rngs};
use crate::swarm::{Fault, FaultChoice, Swarm};
use crate::topology::{Subject, Topology};
use crate::workload::{self, Action, CONTROLLER};

mod apiserver;
mod behaviours;
mod controllers;
mod faults;
mod remotes;

use behaviours::Behaviours;

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
    /// A deposed leader's push, in flight when it lost the Lease, reaches the remote now.
    DeposedPush(GitOp, u64),
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
    /// The records the webhook handed the core within the last TTL and the core has not settled,
    /// oldest first, with when: the runtime keeps them (in its work dir) and hands them to the
    /// core of the next process.
    window: std::collections::VecDeque<(u64, AdmissionRequest)>,
    remotes: Remotes,
    ops: BTreeMap<u64, InFlight>,
    busy: BTreeSet<(NamespacedName, String)>,
    next_tick: Option<u64>,
    steps_left: usize,
    healed_at: Option<u64>,
    hash: Xxh3,
    /// Every checker of the run, with the violations found.
    checkers: Checkers,
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
    /// This seed's behaviours.
    behaviours: Behaviours,
    /// Per namespace: when it was relabelled, and its `env` before. Until the watch has surely
    /// shown a relabel, the core may route a later write by the labels before it.
    relabels: BTreeMap<String, Vec<(u64, Option<String>)>>,
    /// The `env` a deleted namespace had, until one of that name is created again.
    gone_env: BTreeMap<String, Option<String>>,
    /// When it was upgraded.
    upgraded_at_ms: Option<u64>,
    /// Steps taken.
    steps_done: usize,
}

pub(crate) fn core_config(
    generation: u64,
    secret_policy: SecretPolicy,
    push_bounds: PushBounds,
    correlation_ttl_ms: u64,
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
        correlation: CorrelationLimits {
            ttl_ms: correlation_ttl_ms,
            ..CorrelationLimits::default()
        },
        // Every generation of the operator reads the same key, as replicas and restarts do.
        seal_key: Some(gitops_reverser_core::seal::SealKey([0x5e; 32])),
        ..CoreConfig::default()
    }
}

/// Runs one seed through both phases and all checkers.
pub fn run(params: &Params) -> Report {
    let mut rng = Rngs::new(params.seed);
    let swarm = Swarm::draw(&mut rng.swarm, &params.faults);
    let behaviours = Behaviours::draw(&mut rng.swarm, params.steps);
    let strict = !swarm.enabled().iter().any(|f| f.loses_attribution());
    let Behaviours {
        max_commits,
        interval,
        secret_policy,
        crd_life,
        crd_upgrade,
        push_bounds,
        correlation_ttl_ms,
        ..
    } = behaviours;
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
        topo: Topology::new(max_commits, interval, behaviours.sealed),
        streams: BTreeMap::new(),
        core: Core::new(core_config(
            0,
            secret_policy,
            push_bounds,
            correlation_ttl_ms,
        )),
        behaviours: behaviours.clone(),
        relabels: BTreeMap::new(),
        gone_env: BTreeMap::new(),
        upgraded_at_ms: None,
        steps_done: 0,
        generation: 0,
        admissions_due_ms: 0,
        window: Default::default(),
        remotes: Remotes::default(),
        ops: BTreeMap::new(),
        busy: BTreeSet::new(),
        next_tick: None,
        steps_left: params.steps,
        healed_at: None,
        hash: Xxh3::new(),
        checkers: Checkers::new(
            FALLBACK,
            strict,
            correlation_ttl_ms,
            secret_policy,
            swarm.enabled().contains(&Fault::OutsideWriter),
        ),
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
            header: Header::new(core_config(
                0,
                secret_policy,
                push_bounds,
                correlation_ttl_ms,
            )),
            entries: Vec::new(),
            restarts: Vec::new(),
            bad_lines: Vec::new(),
        }),
    };
    w.configure();
    w.at(1, Ev::Step);
    w.run_loop();
    let excluded = secret_policy == SecretPolicy::Exclude;
    let running = w.streams.keys().cloned().collect();
    w.checkers.at_end(&End {
        topo: &w.topo,
        cluster: &w.cluster,
        remotes: &w.remotes,
        running: &running,
        secrets_excluded: excluded,
    });
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
        behaviours: behaviours.describe(),
        watch_events: w.watch_events,
        admissions: w.admissions,
        commits: w.commits,
        attribution: w.checkers.attribution.counts,
        injected: w.injected,
        sim_ms: w.now,
        output_hash: w.hash.digest(),
        violations: w.checkers.violations,
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
        for input in discovery_inputs(&self.cluster.kinds) {
            self.feed(input);
        }
        for input in self.topo.config_inputs() {
            self.feed(input);
        }
    }

    fn run_loop(&mut self) {
        while let Some(((t, _), ev)) = self.sched.pop_first() {
            self.now = t;
            let seen = self.checkers.violations.len();
            match ev {
                Ev::Step => self.step(),
                Ev::Deliver(gvr, token) => self.deliver(gvr, token),
                Ev::Admission(generation, req) => {
                    if generation == self.generation {
                        self.admissions += 1;
                        self.window.push_back((self.now, req.clone()));
                        self.feed(Input::Admission(req));
                    } else {
                        self.lose_admission(&req);
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
                        self.checkers.violations.push(format!(
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
                Ev::DeposedPush(op, planned_ms) => {
                    if let GitOpKind::Push {
                        expected_head,
                        commits,
                    } = &op.kind
                    {
                        if self.trace {
                            eprintln!(
                                "{:>9} deposed leader's push #{} lands or is refused",
                                self.now, op.op_id
                            );
                        }
                        let _ = self.apply_push(&op, expected_head.as_ref(), commits, planned_ms);
                    }
                }
            }
            for v in &mut self.checkers.violations[seen..] {
                *v = format!("[t={t} ms] {v}");
            }
            if let Some(h) = self.healed_at {
                if self.now >= h + LIVENESS_MS_MIN && self.quiescent() {
                    return;
                }
                if self.now > h + LIVENESS_BUDGET_MS {
                    self.checkers.violations.push(format!(
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

    /// An admission on its way to a replica that went down before its record was kept: for the
    /// checkers its write was never admitted (the API server's call failed, and the write went
    /// through without a record).
    fn lose_admission(&mut self, req: &AdmissionRequest) {
        let now = self.now;
        for w in self.cluster.writes_admitted(req, now) {
            w.admitted_ms = None;
        }
        // A deletion the finalizer holds is noted when the object goes.
        let ident = crate::cluster::request_identifier(req);
        for ev in self.sched.values_mut() {
            if let Ev::Finalize(f) = ev {
                if f.admitted_ms == Some(now)
                    && f.deleter == req.username
                    && self.cluster.identifier(&f.key) == ident
                {
                    f.admitted_ms = None;
                }
            }
        }
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
        // The runtime's window keeps only records the core has not settled.
        let settled = self.core.take_settled_records();
        if !settled.is_empty() {
            let (now, trace) = (self.now, self.trace);
            self.window.retain(|(_, r)| {
                let keep = !settled.contains(&gitops_reverser_core::admission::record_id(r));
                if trace && !keep {
                    eprintln!(
                        "{now:>9} settled {} {} {:?}/{} by {}",
                        r.operation, r.gvr.resource, r.namespace, r.name, r.username
                    );
                }
                keep
            });
        }
        self.checkers.on_event(Event::Handled {
            core: &self.core,
            topo: &self.topo,
        });
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
                        self.checkers.violations.push(format!(
                            "{} {}: a push planned on {expected_head:?}, the head the remote already refused as stale",
                            op.repo_url, op.branch
                        ));
                    }
                }
                let key = (op.repo.clone(), op.branch.clone());
                if !self.busy.insert(key) {
                    self.checkers.violations.push(format!(
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

    fn step(&mut self) {
        if self.steps_left == 0 {
            self.at(self.now + 1, Ev::Heal);
            return;
        }
        self.steps_left -= 1;
        // Mostly a busy cluster; now and then a lull longer than the correlation TTL.
        let ttl_ms = self.behaviours.correlation_ttl_ms;
        let gap = if self.rng.workload.gen_bool(0.03) {
            self.rng.workload.gen_range(ttl_ms / 3..ttl_ms * 3 / 2)
        } else {
            self.rng.workload.gen_range(1..400)
        };
        self.at(self.now + gap, Ev::Step);
        self.world_faults();
        self.steps_done += 1;
        if let Some((installed, removed)) = self.behaviours.crd_life {
            if self.steps_done == installed {
                self.install_crd();
            }
            if removed == Some(self.steps_done) {
                self.delete_crd();
            }
        }
        if self.behaviours.crd_upgrade == Some(self.steps_done) {
            self.upgrade_crd();
        }
        if chance(&mut self.rng.workload, self.behaviours.namespace_changes) {
            self.change_namespace();
            return;
        }
        match workload::next(
            &mut self.rng.workload,
            &self.cluster,
            self.behaviours.finalizers,
        ) {
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
                if self.behaviours.subresources {
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
                self.checkers.on_event(Event::Written {
                    gvr: &self.cluster.kinds[key.0].gvr,
                    body: &body,
                });
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
                self.checkers.on_event(Event::FolderChanged {
                    url,
                    branch: rule.branch,
                    folder: rule.folder,
                    now_ms: self.now,
                });
                self.feed(input);
            }
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
