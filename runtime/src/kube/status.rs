//! Writes the core's conditions to each custom resource's status subresource, with
//! `observedGeneration` and transition times. Coalesced (only the latest conditions per resource
//! are written) and rate-limited (one write per resource per [`STATUS_INTERVAL_MS`]); a failed
//! write is kept and retried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gitops_reverser_core::config::{Condition, CrRef, NamespacedName};
use kube::core::params::{Patch, PatchParams};
use kube::core::Request;
use kube::Client;
use tokio::sync::mpsc;

use super::config::Shared;
use super::stream::{send_request, StreamError};
use crate::crd::{CrStatus, StatusCondition, GROUP, VERSION};

/// Shortest time between two status writes of one resource, in milliseconds.
pub const STATUS_INTERVAL_MS: u64 = 1_000;

/// What the status writer is told.
#[derive(Debug)]
pub enum StatusMsg {
    /// New conditions for a resource.
    Conditions(CrRef, Vec<Condition>),
    /// A push of this GitRepoConfig landed at this wall time (RFC 3339).
    Pushed(NamespacedName, String),
}

#[derive(Default)]
struct Entry {
    conditions: Vec<Condition>,
    last_push: Option<String>,
    /// What was last written (to keep transition times and skip identical writes).
    written: Option<CrStatus>,
    dirty: bool,
    next_write: Option<Instant>,
}

/// The path of a custom resource.
pub fn cr_path(cr: &CrRef) -> (String, String) {
    match cr {
        CrRef::GitRepoConfig(n) => (
            format!(
                "/apis/{GROUP}/{VERSION}/namespaces/{}/gitrepoconfigs",
                n.namespace
            ),
            n.name.clone(),
        ),
        CrRef::WatchRule(n) => (
            format!(
                "/apis/{GROUP}/{VERSION}/namespaces/{}/watchrules",
                n.namespace
            ),
            n.name.clone(),
        ),
        CrRef::ClusterWatchRule(n) => (
            format!("/apis/{GROUP}/{VERSION}/clusterwatchrules"),
            n.clone(),
        ),
    }
}

/// The status to write: `conditions` stamped with `now` where their status changed since
/// `before`, and with the old transition time where it did not.
pub fn stamp(
    conditions: &[Condition],
    before: Option<&CrStatus>,
    generation: Option<i64>,
    last_push: Option<String>,
    now: &str,
) -> CrStatus {
    let conditions = conditions
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = before
                .and_then(|b| b.conditions.iter().find(|o| o.type_ == c.type_))
                .filter(|o| o.status == status)
                .map(|o| o.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            StatusCondition {
                type_: c.type_.clone(),
                status: status.into(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect();
    CrStatus {
        observed_generation: generation,
        conditions,
        last_push_time: last_push,
    }
}

/// The writer's task.
pub async fn run(client: Client, shared: Arc<Shared>, mut rx: mpsc::Receiver<StatusMsg>) {
    let mut entries: BTreeMap<CrRef, Entry> = BTreeMap::new();
    let interval = Duration::from_millis(STATUS_INTERVAL_MS);
    loop {
        let next = entries
            .values()
            .filter(|e| e.dirty)
            .map(|e| e.next_write.unwrap_or_else(Instant::now))
            .min();
        let msg = match next {
            Some(at) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(at.into()) => None,
            },
            None => match rx.recv().await {
                Some(m) => Some(m),
                None => return,
            },
        };
        match msg {
            Some(StatusMsg::Conditions(cr, conditions)) => {
                let e = entries.entry(cr).or_default();
                e.conditions = conditions;
                e.dirty = true;
                continue;
            }
            Some(StatusMsg::Pushed(repo, at)) => {
                let e = entries.entry(CrRef::GitRepoConfig(repo)).or_default();
                e.last_push = Some(at);
                e.dirty = true;
                continue;
            }
            None => {}
        }
        let now = Instant::now();
        let due: Vec<CrRef> = entries
            .iter()
            .filter(|(_, e)| e.dirty && e.next_write.is_none_or(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for cr in due {
            let generation = shared
                .generations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&cr)
                .copied();
            let e = entries.get_mut(&cr).expect("listed above");
            e.dirty = false;
            e.next_write = Some(now + interval);
            let status = stamp(
                &e.conditions,
                e.written.as_ref(),
                generation,
                e.last_push.clone(),
                &rfc3339_now(),
            );
            if e.written.as_ref() == Some(&status) {
                continue;
            }
            match write(&client, &cr, &status).await {
                Ok(()) => e.written = Some(status),
                // The resource is gone: nothing to report on.
                Err(StreamError::Api { code: 404, .. }) => {
                    entries.remove(&cr);
                }
                Err(err) => {
                    tracing::warn!(cr = %cr, "status write failed, retrying: {err}");
                    e.dirty = true;
                }
            }
        }
    }
}

async fn write(client: &Client, cr: &CrRef, status: &CrStatus) -> Result<(), StreamError> {
    let (path, name) = cr_path(cr);
    let patch = serde_json::json!({ "status": status });
    let req = Request::new(path)
        .patch_subresource(
            "status",
            &name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .map_err(|e| StreamError::Protocol(e.to_string()))?;
    send_request(client, req).await.map(|_| ())
}

/// The wall clock as RFC 3339 in UTC, seconds precision (as `metav1.Time` serialises).
pub fn rfc3339_now() -> String {
    rfc3339(unix_now_s())
}

/// The wall clock in seconds since the Unix epoch.
pub fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch as RFC 3339 in UTC.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_083_200), "2026-12-01T00:00:00Z");
    }

    #[test]
    fn a_transition_time_moves_only_when_the_status_changes() {
        let bad = Condition::not_ready("BranchNotAllowed", "x");
        let first = stamp(std::slice::from_ref(&bad), None, Some(1), None, "T1");
        assert_eq!(first.conditions[0].last_transition_time, "T1");
        assert_eq!(first.conditions[0].status, "False");
        let other_reason = Condition::not_ready("CredentialsInvalid", "y");
        let second = stamp(&[other_reason], Some(&first), Some(2), None, "T2");
        assert_eq!(second.conditions[0].last_transition_time, "T1");
        assert_eq!(second.observed_generation, Some(2));
        let third = stamp(&[Condition::ready()], Some(&second), Some(2), None, "T3");
        assert_eq!(third.conditions[0].last_transition_time, "T3");
        assert_eq!(third.conditions[0].status, "True");
    }
}
