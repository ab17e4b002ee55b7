//! The admin server on its own port: `/metrics` (Prometheus text), `/healthz` (the process
//! serves), `/readyz` (watches synced and the webhook's certificate loaded).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::listen::{self, Handler, Limits, OnRefused, Plain};
use crate::metrics::Metrics;
use crate::tls::ReloadingTls;

/// What readiness is made of.
pub struct Health {
    /// Set by the driver once every stream it runs has listed (and cleared while one relists
    /// after a reconfiguration has not).
    pub synced: AtomicBool,
    /// The webhook's certificate.
    pub tls: Arc<ReloadingTls>,
    /// The operator's own CRDs whose streams last found them not installed.
    pub missing_crds: Mutex<BTreeSet<String>>,
}

impl Health {
    /// Readiness of a fresh process: nothing synced, no CRD known to be missing.
    pub fn new(tls: Arc<ReloadingTls>) -> Self {
        Self {
            synced: AtomicBool::new(false),
            tls,
            missing_crds: Mutex::new(BTreeSet::new()),
        }
    }

    /// Whether the operator is ready, and if not, why.
    pub fn ready(&self) -> Result<(), String> {
        let missing = self.missing_crds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(crd) = missing.iter().next() {
            return Err(crate::kube::stream::crd_missing_message(crd));
        }
        drop(missing);
        if !self.tls.loaded() && self.tls.current().is_err() {
            return Err("the webhook's certificate is not loaded".into());
        }
        if !self.synced.load(Ordering::Relaxed) {
            return Err("watches are not synced yet".into());
        }
        Ok(())
    }
}

fn reply(code: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response builds")
}

/// The admin server's connection bounds: scrapers and probes keep few connections.
pub const LIMITS: Limits = Limits {
    connections_max: 64,
    idle_ms: 60_000,
    header_ms: 10_000,
    handshake_ms: 10_000,
};

/// Serves the admin endpoints until `shutdown` turns true, within [`LIMITS`].
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) {
    let handler: Handler = Arc::new(move |req: Request<hyper::body::Incoming>| {
        let res = match req.uri().path() {
            "/metrics" => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.render(),
            ),
            "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            "/readyz" => match health.ready() {
                Ok(()) => reply(StatusCode::OK, "text/plain", "ready\n".into()),
                Err(why) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("{why}\n"),
                ),
            },
            other => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                format!("no such path {other}\n"),
            ),
        };
        Box::pin(async move { res })
    });
    let on_refused: OnRefused = Arc::new(|peer| {
        tracing::warn!(
            "admin connection from {peer} closed: {} connections are open",
            LIMITS.connections_max
        );
    });
    listen::serve(
        listener,
        LIMITS,
        Arc::new(Plain),
        handler,
        on_refused,
        shutdown,
    )
    .await
}
