//! Prometheus metrics (prometheus-client, text format), prefix `gitopsreverser_`.
//!
//! The core's counters are its own totals; the driver copies them here with [`Metrics::sync_core`]
//! (counters advance by the difference, gauges are set). The runtime's own events (webhook
//! requests, watch restarts, git op latency) are counted where they happen.

use std::sync::Mutex;

use gitops_reverser_core::Core;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of per-branch gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BranchLabels {
    /// `namespace/name` of the GitRepoConfig.
    pub repo: String,
    /// The branch.
    pub branch: String,
}

/// Labels of webhook requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `recorded`, `dropped`, `ignored` or `rejected`.
    pub result: String,
}

/// Labels of failed git ops.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    /// The failure's kind: the `Pushed` condition's reason (`RemoteTimeout`, ...).
    pub cause: String,
}

/// Labels of stream restarts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// The stream (a GVR or a CR kind).
    pub stream: String,
}

/// The core's counters mirrored here: name (docs/operations.md, less the prefix and `_total`), help, and
/// how to read it. One table, so a name can never be paired with another counter's value.
type CoreReading = (&'static str, &'static str, fn(&Core) -> u64);

const CORE_COUNTERS: [CoreReading; 16] = [
    (
        "correlation_entries",
        "Admission records stored for correlation",
        |c| c.correlation_counters().entries_total,
    ),
    (
        "correlation_hits",
        "Watch events attributed to a user",
        |c| c.correlation_counters().hits_total,
    ),
    (
        "correlation_misses",
        "Watch events with no admission record (fallback author)",
        |c| c.correlation_counters().misses_total,
    ),
    (
        "correlation_evictions",
        "Correlation keys evicted by the key limit",
        |c| c.correlation_counters().evictions_total,
    ),
    ("events_received", "Watch events received", |c| {
        c.counters().events_received_total
    }),
    (
        "events_processed",
        "Watch events that queued a change",
        |c| c.counters().events_processed_total,
    ),
    (
        "watch_duplicates_skipped",
        "Watch events equal to what the repository holds",
        |c| c.counters().watch_duplicates_skipped_total,
    ),
    ("commits", "Commits pushed", |c| c.counters().commits_total),
    (
        "commit_bytes",
        "Bytes of files written by pushed commits",
        |c| c.counters().commit_bytes_total,
    ),
    ("files_deleted", "Files deleted by pushed commits", |c| {
        c.counters().files_deleted_total
    }),
    (
        "rebase_retries",
        "Pushes re-planned after a conflict",
        |c| c.counters().rebase_retries_total,
    ),
    ("git_operations", "Git operations issued", |c| {
        c.counters().git_operations_total
    }),
    ("git_failures", "Git operations that failed", |c| {
        c.counters().git_failures_total
    }),
    (
        "admissions",
        "Admission requests handed to the pipeline",
        |c| c.counters().admissions_total,
    ),
    (
        "refused",
        "Objects or requests refused (bad names, oversized, invalid)",
        |c| c.counters().refused_total,
    ),
    (
        "orphans_found",
        "Orphan files found by seeding and queued for deletion",
        |c| c.counters().orphans_found_total,
    ),
];

/// Every metric of the operator.
pub struct Metrics {
    registry: Registry,
    /// Mirrored from the core, in [`CORE_COUNTERS`]' order.
    core: [Counter; CORE_COUNTERS.len()],
    /// Push latency (a push op from dispatch to result), seconds.
    pub git_push_duration_seconds: Histogram,
    /// Failed git ops by kind.
    pub git_op_failures: Family<CauseLabels, Counter>,
    /// Pending commits per branch.
    pub repo_branch_queue_depth: Family<BranchLabels, Gauge>,
    /// Git ops in flight per branch (0 or 1).
    pub repo_branch_active_workers: Family<BranchLabels, Gauge>,
    /// Inputs waiting in the driver's channel.
    pub input_queue_depth: Gauge,
    /// Admission records waiting for the driver.
    pub admission_queue_depth: Gauge,
    /// Correlation keys held.
    pub correlation_keys: Gauge,
    /// Webhook requests by result.
    pub webhook_requests: Family<ResultLabels, Counter>,
    /// Admission records dropped because the driver's channel was full (attribution lost).
    pub webhook_dropped_records: Counter,
    /// Time from a webhook request's arrival to its answer, seconds.
    pub webhook_latency_seconds: Histogram,
    /// Webhook connections closed on arrival because the connection cap was reached.
    pub webhook_connections_refused: Counter,
    /// List or watch requests that failed or expired and were retried.
    pub watch_restarts: Family<StreamLabels, Counter>,
    /// Objects tracked by the core.
    pub live_objects: Gauge,
    /// 1 while this replica leads (runs the core), else 0.
    pub leader: Gauge,
    /// Times this replica became the leader.
    pub leadership_transitions: Counter,
    /// Records this follower sent to the leader.
    pub records_forwarded: Counter,
    /// Records this follower sent that the leader handed to its core.
    pub records_delivered: Counter,
    /// Records this leader took from followers and handed to its core.
    pub records_received: Counter,
    /// Records a follower could not deliver, by reason (`no_leader`, `unreachable`,
    /// `queue_full`, `leader_refused`): attribution falls back for them.
    pub records_forward_dropped: Family<ReasonLabels, Counter>,
    /// Time from a forwarded record's send to the leader's answer, seconds.
    pub forward_latency_seconds: Histogram,
    /// Connections to the forwarding endpoint refused in the handshake (not the operator's
    /// certificate).
    pub forward_refused: Counter,
    last: Mutex<[u64; CORE_COUNTERS.len()]>,
    /// The counters of `webhook_requests`, made once: a request must not pay a label lookup.
    webhook_by_result: [Counter; 4],
}

/// The label of a dropped forwarded record.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why it was dropped.
    pub reason: String,
}

/// The results a webhook request is counted under.
pub const WEBHOOK_RESULTS: [&str; 4] = ["recorded", "dropped", "ignored", "rejected"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gitopsreverser");
        let core: [Counter; CORE_COUNTERS.len()] = Default::default();
        for ((name, help, _), counter) in CORE_COUNTERS.iter().zip(&core) {
            registry.register(*name, *help, counter.clone());
        }
        let git_push_duration_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "git_push_duration_seconds",
            "Push latency",
            git_push_duration_seconds.clone(),
        );
        let git_op_failures = Family::default();
        registry.register(
            "git_op_failures",
            "Failed git ops by cause (RemoteTimeout, RemoteUnreachable, PushRejected, ...)",
            git_op_failures.clone(),
        );
        let repo_branch_queue_depth = Family::default();
        registry.register(
            "repo_branch_queue_depth",
            "Pending commits per branch",
            repo_branch_queue_depth.clone(),
        );
        let repo_branch_active_workers = Family::default();
        registry.register(
            "repo_branch_active_workers",
            "Git ops in flight per branch",
            repo_branch_active_workers.clone(),
        );
        let input_queue_depth = Gauge::default();
        registry.register(
            "input_queue_depth",
            "Inputs waiting for the core",
            input_queue_depth.clone(),
        );
        let admission_queue_depth = Gauge::default();
        registry.register(
            "admission_queue_depth",
            "Admission records waiting for the core",
            admission_queue_depth.clone(),
        );
        let correlation_keys = Gauge::default();
        registry.register(
            "correlation_keys",
            "Correlation keys held",
            correlation_keys.clone(),
        );
        let webhook_requests: Family<ResultLabels, Counter> = Family::default();
        registry.register(
            "webhook_requests",
            "Webhook requests by result",
            webhook_requests.clone(),
        );
        let webhook_dropped_records = Counter::default();
        registry.register(
            "webhook_dropped_records",
            "Admission records dropped because the pipeline's channel was full (attribution lost, admission unaffected)",
            webhook_dropped_records.clone(),
        );
        let webhook_latency_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "webhook_latency_seconds",
            "Webhook answer latency",
            webhook_latency_seconds.clone(),
        );
        let webhook_connections_refused = Counter::default();
        registry.register(
            "webhook_connections_refused",
            "Webhook connections closed on arrival because the connection cap was reached",
            webhook_connections_refused.clone(),
        );
        let watch_restarts = Family::default();
        registry.register(
            "watch_restarts",
            "List or watch requests retried",
            watch_restarts.clone(),
        );
        let live_objects = Gauge::default();
        registry.register(
            "live_objects",
            "Objects tracked by the pipeline",
            live_objects.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica leads and runs the core",
            leader.clone(),
        );
        let leadership_transitions = Counter::default();
        registry.register(
            "leadership_transitions",
            "Times this replica became the leader",
            leadership_transitions.clone(),
        );
        let records_forwarded = Counter::default();
        registry.register(
            "records_forwarded",
            "Admission records this follower sent to the leader",
            records_forwarded.clone(),
        );
        let records_delivered = Counter::default();
        registry.register(
            "records_delivered",
            "Admission records this follower sent that the leader handed to its core",
            records_delivered.clone(),
        );
        let records_received = Counter::default();
        registry.register(
            "records_received",
            "Admission records this leader took from followers",
            records_received.clone(),
        );
        let records_forward_dropped = Family::default();
        registry.register(
            "records_forward_dropped",
            "Admission records a follower could not deliver, by reason (attribution falls back)",
            records_forward_dropped.clone(),
        );
        let forward_latency_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "records_forward_latency_seconds",
            "Time from a forwarded record's send to the leader's answer",
            forward_latency_seconds.clone(),
        );
        let forward_refused = Counter::default();
        registry.register(
            "records_forward_refused_connections",
            "Connections to the forwarding endpoint refused in the handshake",
            forward_refused.clone(),
        );
        let webhook_by_result = WEBHOOK_RESULTS.map(|r| {
            webhook_requests
                .get_or_create(&ResultLabels { result: r.into() })
                .clone()
        });
        Self {
            webhook_by_result,
            registry,
            core,
            git_push_duration_seconds,
            git_op_failures,
            repo_branch_queue_depth,
            repo_branch_active_workers,
            input_queue_depth,
            admission_queue_depth,
            correlation_keys,
            webhook_requests,
            webhook_dropped_records,
            webhook_latency_seconds,
            webhook_connections_refused,
            watch_restarts,
            live_objects,
            leader,
            leadership_transitions,
            records_forwarded,
            records_delivered,
            records_received,
            records_forward_dropped,
            forward_latency_seconds,
            forward_refused,
            last: Mutex::new([0; CORE_COUNTERS.len()]),
        }
    }

    /// Copies the core's counters and gauges.
    pub fn sync_core(&self, core: &Core) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for (((_, _, read), counter), seen) in
            CORE_COUNTERS.iter().zip(&self.core).zip(last.iter_mut())
        {
            let now = read(core);
            counter.inc_by(now.saturating_sub(*seen));
            *seen = now;
        }
        drop(last);
        self.repo_branch_queue_depth.clear();
        self.repo_branch_active_workers.clear();
        for (repo, branch, view) in core.branch_views() {
            let labels = BranchLabels {
                repo: repo.to_string(),
                branch,
            };
            self.repo_branch_queue_depth
                .get_or_create(&labels)
                .set((view.pending_commits + view.in_flight_commits) as i64);
            self.repo_branch_active_workers
                .get_or_create(&labels)
                .set(i64::from(view.op_in_flight));
        }
        self.correlation_keys.set(core.correlation_size().0 as i64);
        self.live_objects.set(core.live_objects() as i64);
    }

    /// Counts one webhook request (`recorded`, `dropped`, `ignored` or `rejected`).
    pub fn webhook(&self, result: &'static str) {
        let i = WEBHOOK_RESULTS
            .iter()
            .position(|r| *r == result)
            .expect("a known webhook result");
        self.webhook_by_result[i].inc();
    }

    /// Counts one forwarded record dropped for `reason`.
    pub fn forward_dropped(&self, reason: &str) {
        self.records_forward_dropped
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_reverser_core::CoreConfig;

    #[test]
    fn the_reference_names_are_exposed_with_their_prefix() {
        let m = Metrics::new();
        m.sync_core(&Core::new(CoreConfig::default()));
        m.webhook("recorded");
        let text = m.render();
        for name in [
            "gitopsreverser_correlation_entries_total",
            "gitopsreverser_correlation_hits_total",
            "gitopsreverser_correlation_misses_total",
            "gitopsreverser_correlation_evictions_total",
            "gitopsreverser_events_received_total",
            "gitopsreverser_events_processed_total",
            "gitopsreverser_watch_duplicates_skipped_total",
            "gitopsreverser_commits_total",
            "gitopsreverser_commit_bytes_total",
            "gitopsreverser_files_deleted_total",
            "gitopsreverser_rebase_retries_total",
            "gitopsreverser_git_operations_total",
            "gitopsreverser_git_push_duration_seconds",
            "gitopsreverser_repo_branch_queue_depth",
            "gitopsreverser_repo_branch_active_workers",
            "gitopsreverser_webhook_requests_total{result=\"recorded\"} 1",
            "gitopsreverser_webhook_dropped_records_total",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
