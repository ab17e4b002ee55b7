//! The admin server on its own port: `/metrics` (Prometheus text), `/healthz` (the process
//! serves and its driver's loop turns), `/readyz` (watches synced and the webhook's certificate loaded).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::health::Health;
use crate::listen::{self, Handler, Limits, OnRefused, Plain};
use crate::metrics::Metrics;

fn reply(code: StatusCode, ctype: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response builds")
}

/// A probe's answer: 200 with `ok`, or 503 with the reason.
fn verdict(outcome: Result<(), String>, ok: &str) -> Response<Full<Bytes>> {
    match outcome {
        Ok(()) => reply(StatusCode::OK, "text/plain", format!("{ok}\n")),
        Err(why) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{why}\n"),
        ),
    }
}

/// The admin server's connection bounds: scrapers and probes keep few connections.
pub(crate) const LIMITS: Limits = Limits {
    connections_max: 64,
    idle_ms: 60_000,
    header_ms: 10_000,
    handshake_ms: 10_000,
};

/// Serves the admin endpoints until `shutdown` turns true, within [`LIMITS`].
pub(crate) async fn serve(
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
            "/healthz" => verdict(health.live(), "ok"),
            "/readyz" => verdict(health.ready(), "ready"),
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
