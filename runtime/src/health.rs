//! Readiness and liveness: what `/readyz` and `/healthz` answer and why. A leaf beside the TLS
//! state and the heartbeat it reads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::tls::ReloadingTls;
use crate::watchdog::{Heartbeat, STALL_UNHEALTHY_MS};

/// What to tell an operator whose own CRD is not installed.
pub(crate) fn crd_missing_message(crd: &str) -> String {
    format!(
        "the CustomResourceDefinition {crd} is not installed: install the operator's CRDs (kubectl apply --server-side -k deploy/crds, or gitops-reverser crds | kubectl apply --server-side -f -)"
    )
}

/// What readiness is made of.
pub(crate) struct Health {
    /// Set by the driver once every stream it runs has listed (and cleared while one relists
    /// after a reconfiguration has not).
    pub synced: AtomicBool,
    /// What the driver waits for while not synced, in words, for `/readyz`.
    waiting: Mutex<String>,
    /// Whether this replica runs the core now (always, without an election). A follower is
    /// ready when it can serve the webhook: readiness never waits for leadership.
    pub core_running: AtomicBool,
    /// The webhook's certificate.
    pub tls: Arc<ReloadingTls>,
    /// The operator's own CRDs whose streams last found them not installed.
    pub missing_crds: Mutex<BTreeSet<String>>,
    /// The driver's loop, for liveness.
    pub beat: Heartbeat,
}

impl AsRef<Heartbeat> for Health {
    fn as_ref(&self) -> &Heartbeat {
        &self.beat
    }
}

impl Health {
    /// Readiness of a fresh process: nothing synced, no CRD known to be missing.
    pub(crate) fn new(tls: Arc<ReloadingTls>) -> Self {
        Self {
            synced: AtomicBool::new(false),
            waiting: Mutex::new("the first lists".into()),
            core_running: AtomicBool::new(false),
            tls,
            missing_crds: Mutex::new(BTreeSet::new()),
            beat: Heartbeat::default(),
        }
    }

    /// Whether the operator is ready, and if not, why.
    pub(crate) fn ready(&self) -> Result<(), String> {
        let missing = self.missing_crds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(crd) = missing.iter().next() {
            return Err(crd_missing_message(crd));
        }
        drop(missing);
        if !self.tls.loaded() && self.tls.current().is_err() {
            return Err("the webhook's certificate is not loaded".into());
        }
        if self.core_running.load(Ordering::Relaxed) && !self.synced.load(Ordering::Relaxed) {
            let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            return Err(format!("watches are not synced yet: waiting for {waiting}"));
        }
        Ok(())
    }

    /// Whether the process is alive: not while the driver's loop has been stuck for
    /// [`STALL_UNHEALTHY_MS`] (a restart is the way out of it).
    pub(crate) fn live(&self) -> Result<(), String> {
        match self
            .beat
            .stall(std::time::Instant::now(), STALL_UNHEALTHY_MS)
        {
            None => Ok(()),
            Some(stall) => Err(stall.to_string()),
        }
    }

    /// Records what the driver waits for; empty means synced.
    pub(crate) fn set_waiting(&self, waiting: String) {
        self.synced.store(waiting.is_empty(), Ordering::Relaxed);
        if !waiting.is_empty() {
            *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = waiting;
        }
    }
}
