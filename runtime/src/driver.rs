//! The event loop: one task owns the [`Core`], reads the clocks (here and only here), feeds it
//! every input from bounded channels, executes its outputs, and sleeps until its deadline or the
//! next input.
//!
//! Admission records are taken before anything else that is ready: the API server calls the
//! webhook before it stores the write, so the record is queued before the watch event it explains.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gitops_reverser_core::admission::AdmissionRequest;
use gitops_reverser_core::config::{Condition, CrRef};
use gitops_reverser_core::io::{GitOpKind, GitResult, Input, Output, WatchEvent};
use gitops_reverser_core::Core;
use gitops_reverser_core::Gvr;
use gitops_reverser_core::Now;
use tokio::sync::{mpsc, watch};

use crate::crd::CrKind;
use crate::git::GitExecutor;
use crate::health::Health;
use crate::kube::config::Shared;
use crate::kube::status::{rfc3339, StatusMsg};
use crate::kube::watches::Watches;
use crate::metrics::{CauseLabels, Metrics};
use crate::msg::{GitDone, Msg};
use crate::record::Recorder;
use crate::shutdown::until_true;

/// How long metrics are left between copies from the core, in milliseconds.
pub(crate) const METRICS_SYNC_MS: u64 = 1_000;
/// How long watch inputs wait for the admission record that explains them, in milliseconds: a
/// record takes a hop or two (the webhook's queue; a follower's forward to the leader) while the
/// API server writes etcd and sends the watch event, which under load is sometimes faster.
pub(crate) const WATCH_GRACE_MS: u64 = 100;
/// Watch inputs waiting out their grace at most; the channel waits beyond.
pub(crate) const DELAYED_INPUTS_MAX: usize = 4096;
/// Admission records held at most while the configuration lists (the webhook's queue's size).
pub(crate) const HELD_RECORDS_MAX: usize = 8192;
/// How often clones no branch uses are looked for, in milliseconds. One goes at its second
/// look, so between one and two of these after its GitRepoConfig, URL or branch went.
pub(crate) const CLONE_GC_MS: u64 = 60_000;

/// Everything the loop drives.
pub(crate) struct Driver {
    /// The pipeline.
    pub core: Core,
    /// A sender into [`Inbox::rx`], for git completions.
    pub tx: mpsc::Sender<Msg>,
    /// The object streams.
    pub watches: Watches,
    /// The git executor.
    pub git: GitExecutor,
    /// Credentials and generations.
    pub shared: Arc<Shared>,
    /// The status writer.
    pub status_tx: mpsc::Sender<StatusMsg>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Readiness.
    pub health: Arc<Health>,
    /// `--record-inputs`.
    pub recorder: Option<Recorder>,
    /// How long a shutdown waits for pending pushes.
    pub shutdown_timeout: Duration,
    /// How long watch inputs wait before the core sees them ([`WATCH_GRACE_MS`]).
    pub watch_grace: Duration,
    /// Where the records the core settled go: this replica's window, and every follower's.
    pub settled: Option<tokio::sync::broadcast::Sender<Arc<Vec<u64>>>>,
    /// With an election: whether this replica still leads. Checked before every output, so a
    /// deposed leader writes nothing (no git op, no status) in the moment before its term ends.
    pub fence: Option<Arc<crate::lease::Fence>>,
}

/// What the loop waits on.
pub(crate) struct Inbox {
    /// Watch events, configuration, git completions.
    pub rx: mpsc::Receiver<Msg>,
    /// Admission records from the webhook.
    pub admissions: mpsc::Receiver<AdmissionRequest>,
    /// Turns true on the first SIGTERM.
    pub shutdown: watch::Receiver<bool>,
}

struct Clock {
    origin: Instant,
}

impl Clock {
    fn now(&self) -> Now {
        let wall_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Now {
            mono_ms: self.origin.elapsed().as_millis() as u64,
            wall_ms,
        }
    }

    fn instant(&self, mono_ms: u64) -> Instant {
        self.origin + Duration::from_millis(mono_ms)
    }
}

/// What the loop tracks to say whether the operator is ready.
#[derive(Default)]
struct Sync {
    config: BTreeSet<&'static str>,
    discovered: bool,
    listing: BTreeSet<Gvr>,
    listed_once: BTreeSet<Gvr>,
    /// Whether the log has said what readiness waits for (once per term).
    warned: bool,
}

/// How long after a term starts a readiness still waiting is worth a warning that names what
/// it waits for.
const SYNC_WARN_MS: u64 = 30_000;

impl Sync {
    /// What readiness still waits for, in words; empty when synced. A type the API server
    /// refuses to list (`denied`) says so in its rules' status and holds no readiness: a
    /// tenant's rule must not take the webhook out of its Service.
    fn waiting_for(&self, denied: impl Fn(&Gvr) -> bool) -> String {
        // Asked after every input: the synced case allocates nothing.
        let synced = self.config.len() == CrKind::ALL.len()
            && self.discovered
            && self.listing.iter().all(&denied);
        if synced {
            return String::new();
        }
        let mut parts = Vec::new();
        let unlisted: Vec<&str> = CrKind::ALL
            .iter()
            .map(|k| k.kind())
            .filter(|k| !self.config.contains(k))
            .collect();
        if !unlisted.is_empty() {
            parts.push(format!("the first list of {}", unlisted.join(", ")));
        }
        if !self.discovered {
            parts.push("discovery".to_string());
        }
        let listing: Vec<String> = self
            .listing
            .iter()
            .filter(|g| !denied(g))
            .map(|g| g.to_string())
            .collect();
        if !listing.is_empty() {
            parts.push(format!("the list of {}", listing.join(", ")));
        }
        parts.join("; ")
    }
}

impl Driver {
    /// Runs until shutdown; then flushes within the deadline and returns.
    pub(crate) async fn run(mut self, mut inbox: Inbox) {
        let clock = Clock {
            origin: Instant::now(),
        };
        // The watchdog looks at this loop's turns from now until it returns or is dropped.
        let running = Running::start(self.health.clone());
        let mut sync = Sync::default();
        let mut pending_status: BTreeMap<CrRef, Vec<Condition>> = BTreeMap::new();
        let mut metrics_tick = tokio::time::interval(Duration::from_millis(METRICS_SYNC_MS));
        let mut last_resources = None;
        let mut clone_gc_tick = tokio::time::interval(Duration::from_millis(CLONE_GC_MS));
        // Admission records that came before every kind of configuration listed: the core keeps
        // a record only for a type its rules watch, and it knows no rule yet. A fresh term is
        // handed its replicas' windows at once (`records`), before its configuration.
        let mut held: Vec<AdmissionRequest> = Vec::new();
        // Watch inputs wait `watch_grace` before the core sees them (in order), so that a record
        // a follower forwards, one hop longer than the API server's way to the watch, is here
        // before the change it explains.
        let mut delayed: VecDeque<(Instant, Input)> = VecDeque::new();
        loop {
            self.health.beat.turn(Instant::now());
            let timeout = self.core.poll_timeout();
            let deadline = timeout.map(|d| clock.instant(d.at_ms));
            tokio::select! {
                biased;
                _ = until_true(&mut inbox.shutdown) => break,
                Some(req) = inbox.admissions.recv() => {
                    if sync.config.len() < CrKind::ALL.len() {
                        if held.len() < HELD_RECORDS_MAX {
                            held.push(req);
                        } else {
                            self.metrics.webhook_dropped_records.inc();
                        }
                        continue;
                    }
                    self.feed(&clock, Input::Admission(req), &mut sync, &mut pending_status);
                }
                _ = sleep_until(delayed.front().map(|(at, _)| *at)), if !delayed.is_empty() => {
                    let now = Instant::now();
                    while delayed.front().is_some_and(|(at, _)| *at <= now) {
                        let (_, input) = delayed.pop_front().expect("looked at");
                        self.feed(&clock, input, &mut sync, &mut pending_status);
                    }
                }
                Some(msg) = inbox.rx.recv(), if delayed.len() < DELAYED_INPUTS_MAX => match msg {
                    Msg::Input(input @ Input::Watch(..)) if !self.watch_grace.is_zero() => {
                        delayed.push_back((Instant::now() + self.watch_grace, input));
                    }
                    Msg::Input(input) => self.feed(&clock, input, &mut sync, &mut pending_status),
                    Msg::Discovered(d) => {
                        let resources = d.api_resources();
                        if last_resources.as_ref() != Some(&resources) {
                            last_resources = Some(resources.clone());
                            self.feed(&clock, Input::ApiResources(resources), &mut sync, &mut pending_status);
                        }
                        self.watches.set_discovered(d);
                        sync.discovered = true;
                        self.note_started(&mut sync);
                    }
                    Msg::GitDone(done) => self.git_done(&clock, done, &mut sync, &mut pending_status),
                    Msg::ConfigSynced(kind) => {
                        sync.config.insert(kind.kind());
                        if sync.config.len() == CrKind::ALL.len() {
                            for req in std::mem::take(&mut held) {
                                self.feed(&clock, Input::Admission(req), &mut sync, &mut pending_status);
                            }
                        }
                    }
                    Msg::InvalidSpec(cr, message) => {
                        pending_status.insert(cr, vec![Condition::not_ready("InvalidSpec", message)]);
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    tracing::trace!(reason = ?timeout.map(|d| d.reason), "deadline");
                    self.feed(&clock, Input::Tick, &mut sync, &mut pending_status);
                }
                _ = metrics_tick.tick() => {
                    self.health.beat.doing("the metrics tick");
                    self.sync_metrics(&inbox);
                }
                // Only once every kind of configuration has listed: before that, every clone
                // would look unused.
                _ = clone_gc_tick.tick(), if sync.config.len() == CrKind::ALL.len() => {
                    let (git, used) = (self.git.clone(), self.core.branch_remotes());
                    tokio::spawn(async move { git.collect_garbage(&used).await });
                }
            }
            self.send_status(&mut pending_status);
            let settled = self.core.take_settled_records();
            if let (false, Some(tx)) = (settled.is_empty(), &self.settled) {
                let _ = tx.send(Arc::new(settled));
            }
            let waiting = sync.waiting_for(|g| self.core.list_denied(g));
            if !waiting.is_empty()
                && !sync.warned
                && clock.origin.elapsed() >= Duration::from_millis(SYNC_WARN_MS)
            {
                sync.warned = true;
                tracing::warn!("not ready {SYNC_WARN_MS} ms after start: waiting for {waiting}");
            }
            self.health.set_waiting(waiting);
            if let Some(r) = &mut self.recorder {
                if inbox.rx.is_empty() && inbox.admissions.is_empty() {
                    r.flush();
                }
            }
        }
        drop(running);
        self.drain(&mut inbox, &clock, &mut sync, &mut pending_status)
            .await;
    }

    /// Shutdown: stop intake, push everything pending, wait for it within the deadline.
    async fn drain(
        &mut self,
        inbox: &mut Inbox,
        clock: &Clock,
        sync: &mut Sync,
        pending_status: &mut BTreeMap<CrRef, Vec<Condition>>,
    ) {
        tracing::info!("shutting down: intake stopped, pushing pending commits");
        self.watches.stop_all();
        inbox.admissions.close();
        self.feed(clock, Input::Flush, sync, pending_status);
        let give_up = Instant::now() + self.shutdown_timeout;
        while self.core.unfinished() != (0, 0) {
            let deadline = self.core.poll_deadline().map(|ms| clock.instant(ms));
            tokio::select! {
                msg = inbox.rx.recv() => match msg {
                    Some(Msg::GitDone(done)) => self.git_done(clock, done, sync, pending_status),
                    Some(_) => {}
                    None => break,
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.feed(clock, Input::Tick, sync, pending_status);
                }
                _ = tokio::time::sleep_until(give_up.into()) => break,
            }
        }
        let (commits, ops) = self.core.unfinished();
        if commits > 0 {
            tracing::warn!(
                commits,
                ops,
                "shutdown deadline passed with commits unpushed: the next start recomputes the files from the cluster (their attribution is lost)"
            );
        } else {
            tracing::info!("every pending commit pushed");
        }
        self.sync_metrics(inbox);
        if let Some(r) = &mut self.recorder {
            r.flush();
        }
    }

    fn git_done(
        &mut self,
        clock: &Clock,
        done: GitDone,
        sync: &mut Sync,
        pending_status: &mut BTreeMap<CrRef, Vec<Condition>>,
    ) {
        if let GitResult::Failed { cause, .. } = &done.result {
            self.metrics
                .git_op_failures
                .get_or_create(&CauseLabels {
                    cause: if cause.is_empty() { "GitFailed" } else { cause }.to_string(),
                })
                .inc();
        }
        if done.push {
            self.metrics
                .git_push_duration_seconds
                .observe(done.took.as_secs_f64());
            if matches!(done.result, GitResult::Pushed { .. }) {
                let at = rfc3339(clock.now().wall_ms / 1000);
                let _ = self
                    .status_tx
                    .try_send(StatusMsg::Pushed(done.repo.clone(), at));
            }
        }
        self.feed(
            clock,
            Input::GitDone(done.op_id, done.result),
            sync,
            pending_status,
        );
    }

    /// Hands one input to the core and executes what it asks for.
    fn feed(
        &mut self,
        clock: &Clock,
        input: Input,
        sync: &mut Sync,
        pending_status: &mut BTreeMap<CrRef, Vec<Condition>>,
    ) {
        if let Input::Watch(gvr, ev) = &input {
            match ev {
                WatchEvent::Init => {
                    sync.listing.insert(gvr.clone());
                }
                WatchEvent::InitDone => {
                    sync.listing.remove(gvr);
                    sync.listed_once.insert(gvr.clone());
                }
                _ => {}
            }
        }
        self.health.beat.doing(input_name(&input));
        let now = clock.now();
        if let Some(r) = &mut self.recorder {
            r.write(now, &input);
        }
        self.core.handle(now, input);
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::EnsureWatches(set) => {
                    sync.listing.retain(|g| set.contains(g));
                    self.watches.ensure(set);
                    self.note_started(sync);
                }
                Output::Resync(gvr) => {
                    sync.listing.insert(gvr.clone());
                    self.watches.resync(&gvr);
                }
                Output::Git(op) => {
                    let creds = self.shared.creds_of(&op.repo);
                    let signer = self.shared.signer_of(&op.repo);
                    let (git, tx) = (self.git.clone(), self.tx.clone());
                    let repo = op.repo.clone();
                    let push = matches!(op.kind, GitOpKind::Push { .. });
                    let op_id = op.op_id;
                    let fence = self.fence.clone();
                    tokio::spawn(async move {
                        let started = Instant::now();
                        // Checked when the op starts: a leader that has not renewed within its
                        // deadline writes nothing. The op fails as a retryable one, so the core
                        // tries again once the Lease is renewed, or the term ends first.
                        let result = if fence.as_ref().is_some_and(|f| !f.holds()) {
                            tracing::warn!(op = op_id, "the Lease is not renewed: git op not run");
                            GitResult::Failed {
                                retryable: true,
                                reason: "this replica has not renewed the leader Lease within its deadline".into(),
                                cause: "NotLeader".into(),
                            }
                        } else {
                            git.run(op, creds, signer).await
                        };
                        let done = GitDone {
                            op_id,
                            result,
                            took: started.elapsed(),
                            repo,
                            push,
                        };
                        // A completion is never dropped: wait for room.
                        let _ = tx.send(Msg::GitDone(done)).await;
                    });
                }
                Output::Status(cr, conditions) => {
                    pending_status.insert(cr, conditions);
                }
                Output::Refused { subject, reason } => {
                    // Debug-formatted: both may quote an object's name, which must not forge
                    // log lines (a name is whatever its creator chose).
                    tracing::warn!(subject = ?subject.to_string(), reason = ?reason.to_string(), "refused");
                }
            }
        }
        // Back-pressure: a listing read faster than its pushes land waits in the API server, not
        // in the queue.
        let backlogged = self.core.backlogged();
        if self.watches.set_paused(backlogged) {
            tracing::debug!(
                backlogged,
                "object streams paused while pushes catch up (or resumed)"
            );
        }
    }

    /// Streams just started have not listed yet: not ready until they have.
    fn note_started(&self, sync: &mut Sync) {
        for gvr in self.watches.running() {
            if !sync.listed_once.contains(gvr) {
                sync.listing.insert(gvr.clone());
            }
        }
    }

    /// Whether this replica may write: always without an election, else while it leads.
    fn holds(&self) -> bool {
        self.fence.as_ref().is_none_or(|f| f.holds())
    }

    fn send_status(&self, pending: &mut BTreeMap<CrRef, Vec<Condition>>) {
        if !self.holds() {
            return;
        }
        while let Some((cr, conditions)) = pending.pop_first() {
            if let Err(e) = self
                .status_tx
                .try_send(StatusMsg::Conditions(cr, conditions))
            {
                // The writer is behind: keep the latest conditions and hand them over later.
                if let StatusMsg::Conditions(cr, conditions) = e.into_inner() {
                    pending.insert(cr, conditions);
                }
                return;
            }
        }
    }

    fn sync_metrics(&self, inbox: &Inbox) {
        self.metrics.sync_core(&self.core);
        let depth = inbox.rx.max_capacity() - inbox.rx.capacity();
        self.metrics.input_queue_depth.set(depth as i64);
        let depth = inbox.admissions.max_capacity() - inbox.admissions.capacity();
        self.metrics.admission_queue_depth.set(depth as i64);
    }
}

/// The driver's loop runs while this lives (see [`crate::watchdog`]).
struct Running(Arc<Health>);

impl Running {
    fn start(health: Arc<Health>) -> Self {
        health.beat.set_running(true, Instant::now());
        Self(health)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.beat.set_running(false, Instant::now());
    }
}

/// What the watchdog's log calls an input the loop is handling.
fn input_name(input: &Input) -> &'static str {
    match input {
        Input::GitRepoConfig(..) => "a GitRepoConfig",
        Input::WatchRule(..) => "a WatchRule",
        Input::ClusterWatchRule(..) => "a ClusterWatchRule",
        Input::Credentials(..) => "credentials",
        Input::Signing(..) => "a signing key",
        Input::ApiResources(..) => "discovery's resources",
        Input::SchemaDefaults(..) => "a CRD's schema defaults",
        Input::WatchDenied(..) => "a denied list",
        Input::Admission(..) => "an admission record",
        Input::Watch(..) => "a watch event",
        Input::GitDone(..) => "a git op's result",
        Input::Tick => "a deadline",
        Input::Flush => "the shutdown's flush",
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_it_waits_for_and_not_a_denied_type() {
        let mut sync = Sync::default();
        assert_eq!(
            sync.waiting_for(|_| false),
            "the first list of GitRepoConfig, WatchRule, ClusterWatchRule; discovery"
        );
        sync.config.extend(CrKind::ALL.iter().map(|k| k.kind()));
        sync.discovered = true;
        let (cm, secrets) = (
            Gvr::new("", "v1", "configmaps"),
            Gvr::new("", "v1", "secrets"),
        );
        sync.listing.extend([cm.clone(), secrets.clone()]);
        assert_eq!(
            sync.waiting_for(|g| *g == secrets),
            "the list of v1/configmaps"
        );
        assert_eq!(sync.waiting_for(|_| true), "");
    }
}
