//! The admission webhook: HTTPS at [`WEBHOOK_PATH`], AdmissionReview v1 in, `allowed: true` out.
//!
//! It never waits on the core: a parsed request is queued with `try_send` (so requests reach the
//! core in the order the API server called) and answered at once. A full queue costs attribution,
//! never latency, and is counted. Bodies that are not a usable AdmissionReview get a 4xx naming
//! what is wrong; the server keeps serving.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gitops_reverser_core::admission::{
    parse_review, review_uid, AdmissionError, AdmissionRequest, REVIEW_BYTES_MAX,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::tls::ReloadingTls;

/// The path the API server posts to.
pub const WEBHOOK_PATH: &str = "/process-validating-webhook";
/// How much of an oversized body is read (and dropped) before the answer, in bytes.
pub const DRAIN_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How long a client has to finish the TLS handshake, in milliseconds.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// What each request needs.
pub struct Webhook {
    /// Where parsed requests go.
    pub tx: mpsc::Sender<AdmissionRequest>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

fn text(code: StatusCode, msg: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(msg + "\n")))
        .expect("a static response builds")
}

fn allow(uid: &str) -> Response<Full<Bytes>> {
    // The review the core's `allow_response` describes, written without building a document.
    let uid = serde_json::to_string(uid).expect("a string serializes");
    let body = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":{uid},"allowed":true}}}}"#
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a static response builds")
}

fn too_large() -> Response<Full<Bytes>> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("AdmissionReview body is over {REVIEW_BYTES_MAX} bytes"),
    )
}

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Reads a body of at most [`REVIEW_BYTES_MAX`]. A larger one is read on to its end (up to
/// [`DRAIN_BYTES_MAX`]) and dropped: an HTTP/2 client still sending when the answer comes may
/// take the stream's reset for a failure and never read the 413.
async fn read_body(mut body: Incoming) -> Result<Bytes, BodyError> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Some(data) = frame.data_ref() {
            seen += data.len();
            if seen <= REVIEW_BYTES_MAX {
                buf.extend_from_slice(data);
            } else if seen > DRAIN_BYTES_MAX {
                return Err(BodyError::TooLarge);
            }
        }
    }
    match seen <= REVIEW_BYTES_MAX {
        true => Ok(buf.freeze()),
        false => Err(BodyError::TooLarge),
    }
}

impl Webhook {
    /// Answers one HTTP request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let res = self.answer(req).await;
        self.metrics
            .webhook_latency_seconds
            .observe(started.elapsed().as_secs_f64());
        res
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::POST, WEBHOOK_PATH) => {}
            (_, WEBHOOK_PATH) => {
                self.metrics.webhook("rejected");
                return text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{WEBHOOK_PATH} takes POST"),
                );
            }
            (_, path) => {
                self.metrics.webhook("rejected");
                return text(
                    StatusCode::NOT_FOUND,
                    format!("no such path {path}; the webhook is at {WEBHOOK_PATH}"),
                );
            }
        }
        // HTTP/1: a declared length over the limit is refused before the body is read, so that a
        // client waiting for `100 Continue` gets the answer instead of a closed connection.
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        let http1 = req.version() < hyper::Version::HTTP_2;
        if http1 && declared.is_some_and(|n| n > REVIEW_BYTES_MAX) {
            self.metrics.webhook("rejected");
            return too_large();
        }
        let body = match read_body(req.into_body()).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                self.metrics.webhook("rejected");
                return too_large();
            }
            Err(BodyError::Read(e)) => {
                self.metrics.webhook("rejected");
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("body could not be read: {e}"),
                );
            }
        };
        match parse_review(&body) {
            Ok(request) => {
                let uid = request.uid.clone();
                match self.tx.try_send(request) {
                    Ok(()) => self.metrics.webhook("recorded"),
                    Err(_) => {
                        self.metrics.webhook("dropped");
                        self.metrics.webhook_dropped_records.inc();
                    }
                }
                allow(&uid)
            }
            // A request the pipeline does not use (CONNECT, say) is still answered: never deny.
            Err(e @ (AdmissionError::Unrecorded(_) | AdmissionError::Incomplete(_))) => {
                self.metrics.webhook("ignored");
                tracing::debug!("admission request not recorded: {e}");
                match review_uid(&body) {
                    Some(uid) => allow(&uid),
                    None => text(StatusCode::BAD_REQUEST, AdmissionError::NoUid.to_string()),
                }
            }
            Err(e) => {
                self.metrics.webhook("rejected");
                tracing::warn!("webhook request refused: {e}");
                let code = match e {
                    AdmissionError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                text(code, e.to_string())
            }
        }
    }
}

/// Serves HTTPS on `listener` until `shutdown` turns true. The certificate is re-read per
/// connection when its files changed.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
    hook: Arc<Webhook>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("webhook accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::driver::until_true(&mut shutdown) => return,
        };
        let config = match tls.current() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "webhook has no usable certificate, connection from {peer} closed: {e}"
                );
                continue;
            }
        };
        let hook = hook.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let stream = match tokio::time::timeout(
                Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {peer} timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let hook = hook.clone();
                async move { Ok::<_, Infallible>(hook.handle(req).await) }
            });
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("webhook connection from {peer} ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_reverser_core::admission::allow_response;

    #[test]
    fn the_answer_is_the_allow_response_of_the_core() {
        for uid in ["705ab4f5-6393-11e8-b7cc-42010a800002", "we\"ird\\uid"] {
            let res = allow(uid);
            let body = futures_util::FutureExt::now_or_never(res.into_body().collect())
                .unwrap()
                .unwrap()
                .to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v, allow_response(uid, None));
        }
    }
}
