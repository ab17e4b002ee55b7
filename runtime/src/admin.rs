//! The admin server on its own port: `/metrics` (Prometheus text), `/healthz` (the process
//! serves), `/readyz` (watches synced and the webhook's certificate loaded).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::tls::ReloadingTls;

/// What readiness is made of.
pub struct Health {
    /// Set by the driver once every stream it runs has listed (and cleared while one relists
    /// after a reconfiguration has not).
    pub synced: AtomicBool,
    /// The webhook's certificate.
    pub tls: Arc<ReloadingTls>,
}

impl Health {
    /// Whether the operator is ready, and if not, why.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.tls.loaded() && self.tls.current().is_err() {
            return Err("the webhook's certificate is not loaded");
        }
        if !self.synced.load(Ordering::Relaxed) {
            return Err("watches are not synced yet");
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

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let tcp = tokio::select! {
            a = listener.accept() => match a {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
            _ = crate::driver::until_true(&mut shutdown) => return,
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
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
                async move { Ok::<_, Infallible>(res) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
