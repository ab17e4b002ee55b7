//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics.
//!
//! Every replica tries to hold one Lease. The holder renews it every retry period; a renewal is a
//! replace guarded by the Lease's resourceVersion, so two replicas never both succeed. A replica
//! that has not renewed within the renew deadline steps down at once, before the others may take
//! the Lease (they wait a whole lease duration, measured on their own monotonic clocks from the
//! last change of the record they saw, so clock skew between nodes does not matter). A released
//! Lease (no holder) is taken at once.
//!
//! The holder advertises where followers forward admission records, in an annotation of the
//! Lease ([`ENDPOINT_ANNOTATION`]); followers learn it at their next retry.
//!
//! Neither kube-lease-manager nor kubert's lease module is used: the first has no renew deadline
//! (a leader cut off from the API server goes on believing it leads past its lease) and does not
//! expose the holder's record; the second is built on another kube and k8s-openapi release.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::sync::watch;

/// The Lease annotation naming the holder's forwarding endpoint (`host:port`).
pub const ENDPOINT_ANNOTATION: &str = "gitops-reverser.io/forward-endpoint";
/// Default `--lease-duration`, in milliseconds.
pub const DURATION_DEFAULT_MS: u64 = 15_000;
/// Default `--lease-renew-deadline`, in milliseconds.
pub const RENEW_DEADLINE_DEFAULT_MS: u64 = 10_000;
/// Default `--lease-retry-period`, in milliseconds.
pub const RETRY_PERIOD_DEFAULT_MS: u64 = 2_000;

/// Who this replica is and how it competes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Lease's namespace (the operator's).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its pod name); unique among replicas.
    pub identity: String,
    /// Where this replica takes forwarded records, advertised while it leads.
    pub endpoint: Option<String>,
    /// How long a Lease not renewed stays another's.
    pub duration_ms: u64,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline_ms: u64,
    /// How often every replica tries to acquire or renew.
    pub retry_period_ms: u64,
}

impl Settings {
    /// Why these timings cannot elect safely, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.identity.is_empty() {
            return Err("the lease identity is empty (set POD_NAME or --lease-identity)".into());
        }
        if self.retry_period_ms == 0 || self.renew_deadline_ms <= self.retry_period_ms {
            return Err(format!(
                "--lease-renew-deadline ({} ms) must be longer than --lease-retry-period ({} ms), which must be more than 0",
                self.renew_deadline_ms, self.retry_period_ms
            ));
        }
        if self.duration_ms <= self.renew_deadline_ms {
            return Err(format!(
                "--lease-duration ({} ms) must be longer than --lease-renew-deadline ({} ms)",
                self.duration_ms, self.renew_deadline_ms
            ));
        }
        Ok(())
    }
}

/// What this replica is, as the election last decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leadership {
    /// This replica holds the Lease: it runs the core.
    Leader,
    /// Another replica holds the Lease (its identity and endpoint, if it advertises one), or
    /// nobody does yet.
    Follower {
        /// The holder, if any.
        leader: Option<Holder>,
    },
}

impl Leadership {
    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader)
    }
}

/// The replica that holds the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its identity.
    pub identity: String,
    /// Its forwarding endpoint.
    pub endpoint: Option<String>,
}

/// The leader's own view of its Lease: when it last renewed. Checked before every write, so that
/// a replica paused past its renew deadline (a stopped process, a long GC, a frozen VM) writes
/// nothing when it wakes, even before its next round has told it that it lost.
#[derive(Debug)]
pub struct Fence {
    renewed_at: Mutex<Option<Instant>>,
    deadline: Duration,
}

impl Fence {
    /// A fence for leaders that must renew within `renew_deadline_ms`.
    pub fn new(renew_deadline_ms: u64) -> Self {
        Self {
            renewed_at: Mutex::new(None),
            deadline: Duration::from_millis(renew_deadline_ms),
        }
    }

    /// Whether this replica still leads: it renewed within the deadline.
    pub fn holds(&self) -> bool {
        let at = *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner());
        at.is_some_and(|at| at.elapsed() < self.deadline)
    }

    fn set(&self, at: Option<Instant>) {
        *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

/// What one round saw of the Lease's record, to time its expiry on this replica's clock.
struct Observed {
    holder: String,
    renew: Option<String>,
    at: Instant,
}

/// Competes for the Lease until `shutdown` turns true, publishing every change of leadership;
/// at shutdown a holder releases the Lease, so that another replica takes over at once.
pub async fn run(
    client: Client,
    settings: Settings,
    fence: Arc<Fence>,
    tx: watch::Sender<Leadership>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut observed: Option<Observed> = None;
    let mut renewed_at: Option<Instant> = None;
    let retry = Duration::from_millis(settings.retry_period_ms);
    loop {
        // Timed from before the request: the Lease's renewTime is no earlier than this.
        let started = Instant::now();
        let round = round(&api, &settings, &mut observed).await;
        let now = Instant::now();
        let next = match round {
            Ok(Round::Holding) => {
                renewed_at = Some(started);
                Leadership::Leader
            }
            Ok(Round::Other(leader)) => {
                renewed_at = None;
                Leadership::Follower { leader }
            }
            Err(e) => {
                let within = renewed_at.is_some_and(|at| {
                    now.duration_since(at) < Duration::from_millis(settings.renew_deadline_ms)
                });
                tracing::warn!(lease = %settings.name, "lease round failed: {e}");
                if within {
                    Leadership::Leader
                } else {
                    renewed_at = None;
                    Leadership::Follower { leader: None }
                }
            }
        };
        fence.set(match &next {
            Leadership::Leader => renewed_at,
            Leadership::Follower { .. } => None,
        });
        tx.send_if_modified(|current| {
            if *current == next {
                return false;
            }
            match &next {
                Leadership::Leader => {
                    tracing::info!(identity = %settings.identity, "this replica leads now")
                }
                Leadership::Follower { leader } if current.is_leader() => tracing::warn!(
                    identity = %settings.identity,
                    leader = ?leader.as_ref().map(|h| &h.identity),
                    "this replica no longer leads"
                ),
                Leadership::Follower { leader } => tracing::info!(
                    leader = ?leader.as_ref().map(|h| &h.identity),
                    "following"
                ),
            }
            *current = next.clone();
            true
        });
        // A holder renews early enough to step down before the deadline if renewals fail.
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = crate::shutdown::until_true(&mut shutdown) => break,
        }
    }
    if tx.borrow().is_leader() {
        fence.set(None);
        tx.send_replace(Leadership::Follower { leader: None });
        match release(&api, &settings).await {
            Ok(()) => tracing::info!(lease = %settings.name, "lease released"),
            Err(e) => tracing::warn!(lease = %settings.name, "releasing the lease failed: {e}"),
        }
    }
}

enum Round {
    Holding,
    Other(Option<Holder>),
}

fn micro_now() -> MicroTime {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    MicroTime(Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn holder_of(lease: &Lease) -> Option<Holder> {
    let identity = lease.spec.as_ref()?.holder_identity.clone()?;
    if identity.is_empty() {
        return None;
    }
    let endpoint = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ENDPOINT_ANNOTATION).cloned());
    Some(Holder { identity, endpoint })
}

fn duration_s(settings: &Settings) -> i32 {
    settings
        .duration_ms
        .div_ceil(1000)
        .clamp(1, i32::MAX as u64) as i32
}

/// Marks `lease` as held by this replica, now.
fn claim(lease: &mut Lease, settings: &Settings, acquired: bool) {
    let now = micro_now();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if acquired {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(settings.identity.clone());
    spec.lease_duration_seconds = Some(duration_s(settings));
    spec.renew_time = Some(now);
    let annotations = lease
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    match &settings.endpoint {
        Some(e) => {
            annotations.insert(ENDPOINT_ANNOTATION.into(), e.clone());
        }
        None => {
            annotations.remove(ENDPOINT_ANNOTATION);
        }
    }
}

async fn round(
    api: &Api<Lease>,
    settings: &Settings,
    observed: &mut Option<Observed>,
) -> Result<Round, kube::Error> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        let mut lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                namespace: Some(settings.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                lease_transitions: Some(-1),
                ..Default::default()
            }),
        };
        claim(&mut lease, settings, true);
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Round::Holding),
            // Another replica created it first: theirs, until the next round reads it.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Other(None)),
            Err(e) => Err(e),
        };
    };
    let now = Instant::now();
    let holder = holder_of(&lease);
    let renew = lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string());
    let mine = holder
        .as_ref()
        .is_some_and(|h| h.identity == settings.identity);
    if !mine {
        if let Some(h) = &holder {
            let changed = observed
                .as_ref()
                .is_none_or(|o| o.holder != h.identity || o.renew != renew);
            if changed {
                *observed = Some(Observed {
                    holder: h.identity.clone(),
                    renew: renew.clone(),
                    at: now,
                });
            }
            let seen = observed.as_ref().map(|o| o.at).unwrap_or(now);
            let lease_ms = lease
                .spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds)
                .map(|s| s.max(1) as u64 * 1000)
                .unwrap_or(settings.duration_ms);
            if now.duration_since(seen) < Duration::from_millis(lease_ms) {
                return Ok(Round::Other(holder));
            }
            tracing::info!(holder = %h.identity, "the lease expired; taking it");
        }
    }
    claim(&mut lease, settings, !mine);
    match api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => {
            *observed = None;
            Ok(Round::Holding)
        }
        // Someone else wrote the Lease since it was read: theirs now.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Other(None)),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up: no holder and a one-second duration, so the next replica to try takes it.
async fn release(api: &Api<Lease>, settings: &Settings) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        return Ok(());
    };
    if holder_of(&lease).is_none_or(|h| h.identity != settings.identity) {
        return Ok(());
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(micro_now());
    if let Some(a) = lease.metadata.annotations.as_mut() {
        a.remove(ENDPOINT_ANNOTATION);
    }
    api.replace(&settings.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            namespace: "ns".into(),
            name: "gitops-reverser".into(),
            identity: "pod-a".into(),
            endpoint: None,
            duration_ms: DURATION_DEFAULT_MS,
            renew_deadline_ms: RENEW_DEADLINE_DEFAULT_MS,
            retry_period_ms: RETRY_PERIOD_DEFAULT_MS,
        }
    }

    #[test]
    fn the_usual_timings_are_accepted_and_unsafe_ones_refused_with_a_reason() {
        assert_eq!(settings().check(), Ok(()));
        let deadline_past_duration = Settings {
            renew_deadline_ms: 20_000,
            ..settings()
        };
        assert!(deadline_past_duration
            .check()
            .unwrap_err()
            .contains("--lease-duration"));
        let retry_past_deadline = Settings {
            retry_period_ms: 10_000,
            ..settings()
        };
        assert!(retry_past_deadline
            .check()
            .unwrap_err()
            .contains("--lease-retry-period"));
        let nameless = Settings {
            identity: String::new(),
            ..settings()
        };
        assert!(nameless.check().unwrap_err().contains("identity"));
    }

    #[test]
    fn a_fence_holds_only_within_the_renew_deadline_of_the_last_renewal() {
        let fence = Fence::new(50);
        assert!(!fence.holds(), "never renewed");
        fence.set(Some(Instant::now()));
        assert!(fence.holds());
        fence.set(Some(Instant::now() - Duration::from_millis(60)));
        assert!(!fence.holds(), "renewed longer ago than the deadline");
        fence.set(None);
        assert!(!fence.holds(), "lost");
    }

    #[test]
    fn a_claim_sets_holder_times_and_endpoint_and_counts_a_transition_only_when_acquired() {
        let s = Settings {
            endpoint: Some("10.0.0.7:9444".into()),
            ..settings()
        };
        let mut lease = Lease::default();
        claim(&mut lease, &s, true);
        claim(&mut lease, &s, false);
        let spec = lease.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(1));
        assert!(spec.renew_time.is_some() && spec.acquire_time.is_some());
        assert_eq!(
            holder_of(&lease),
            Some(Holder {
                identity: "pod-a".into(),
                endpoint: Some("10.0.0.7:9444".into())
            })
        );
    }
}
