//! The admission webhook: HTTPS at [`WEBHOOK_PATH`], AdmissionReview v1 in, `allowed: true` out.
//!
//! It never waits on the core: a parsed request is queued with `try_send` (so requests reach the
//! core in the order the API server called) and answered at once. A full queue costs attribution,
//! never latency, and is counted. Bodies that are not a usable AdmissionReview get a 4xx naming
//! what is wrong; the server keeps serving.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gitops_reverser_core::admission::{
    parse_review, review_uid, AdmissionError, AdmissionRequest, REVIEW_BYTES_MAX,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::listen::{self, Handler, Limits, OnRefused, Tracked, Upgrade};
use crate::metrics::Metrics;
use crate::tls::ReloadingTls;

/// The path the API server posts to.
pub const WEBHOOK_PATH: &str = "/process-validating-webhook";
/// How much of an oversized body is read (and dropped) before the answer, in bytes.
pub const DRAIN_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How long a client has to finish the TLS handshake, in milliseconds.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// How long a client has to send a request's body once its headers are in, in milliseconds. The
/// API server gives a webhook at most 30 s in all, and by default 10 s, so a slower body is of
/// no use to anyone.
pub const BODY_TIMEOUT_MS: u64 = 10_000;

/// What each request needs.
pub struct Webhook {
    /// Where parsed requests go.
    pub tx: mpsc::Sender<AdmissionRequest>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// How long a request's body may take once its headers are in, in milliseconds
    /// ([`BODY_TIMEOUT_MS`] in the operator).
    pub body_timeout_ms: u64,
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
        let body = match tokio::time::timeout(
            Duration::from_millis(self.body_timeout_ms),
            read_body(req.into_body()),
        )
        .await
        {
            Err(_) => {
                self.metrics.webhook("rejected");
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body did not arrive within {} ms", self.body_timeout_ms),
                );
            }
            Ok(Ok(b)) => b,
            Ok(Err(BodyError::TooLarge)) => {
                self.metrics.webhook("rejected");
                return too_large();
            }
            Ok(Err(BodyError::Read(e))) => {
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
                // Debug-formatted: the text may quote the request, and must not forge log lines.
                tracing::debug!(error = ?e.to_string(), "admission request not recorded");
                match review_uid(&body) {
                    Some(uid) => allow(&uid),
                    None => text(StatusCode::BAD_REQUEST, AdmissionError::NoUid.to_string()),
                }
            }
            Err(e) => {
                self.metrics.webhook("rejected");
                tracing::warn!(error = ?e.to_string(), "webhook request refused");
                let code = match e {
                    AdmissionError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                text(code, e.to_string())
            }
        }
    }
}

/// The webhook's connection bounds. The API server keeps a few connections open and reuses them; a
/// client that opens more, trickles its headers or holds a connection silent is cut off.
pub const LIMITS: Limits = Limits {
    connections_max: 256,
    idle_ms: 60_000,
    header_ms: 10_000,
    handshake_ms: HANDSHAKE_TIMEOUT_MS,
};

/// The webhook as a [`Handler`].
pub fn handler(hook: Arc<Webhook>) -> Handler {
    Arc::new(move |req| {
        let hook = hook.clone();
        Box::pin(async move { hook.handle(req).await })
    })
}

/// TLS with the certificate as of the connection's arrival.
struct Tls(Arc<ReloadingTls>);

impl Upgrade for Tls {
    type Stream = tokio_rustls::server::TlsStream<Tracked<TcpStream>>;
    fn upgrade(
        &self,
        tcp: Tracked<TcpStream>,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send>> {
        let config = self.0.current();
        Box::pin(async move {
            let config = config.map_err(|e| {
                tracing::error!("the webhook has no usable certificate, connection closed: {e}");
                io::Error::other(e.to_string())
            })?;
            tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
        })
    }
}

/// Serves HTTPS on `listener` until `shutdown` turns true, within [`LIMITS`]. The certificate is
/// re-read per connection when its files changed.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
    hook: Arc<Webhook>,
    shutdown: watch::Receiver<bool>,
) {
    let metrics = hook.metrics.clone();
    let handler = handler(hook);
    let on_refused: OnRefused = Arc::new(move |peer| {
        metrics.webhook_connections_refused.inc();
        tracing::warn!(
            "webhook connection from {peer} closed: {} connections are open",
            LIMITS.connections_max
        );
    });
    listen::serve(
        listener,
        LIMITS,
        Arc::new(Tls(tls)),
        handler,
        on_refused,
        shutdown,
    )
    .await
}

/// Serves the webhook on a thread of its own, with its own single-threaded runtime, so that
/// admission answers never queue behind the core or git work on the main runtime (which runs at a
/// lower priority, see [`crate::priority`]). Returns once `listener` is handed over.
pub fn spawn_thread(
    listener: std::net::TcpListener,
    tls: Arc<ReloadingTls>,
    hook: Arc<Webhook>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("webhook".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => serve(l, tls, hook, shutdown).await,
                    Err(e) => tracing::error!("the webhook cannot listen: {e}"),
                }
            })
        })
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

#[cfg(test)]
mod limits {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_gets_408_and_records_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let metrics = Arc::new(Metrics::new());
        let hook = Arc::new(Webhook {
            tx,
            metrics,
            body_timeout_ms: 200,
        });
        let (_stop, stop_rx) = watch::channel(false);
        let limits = Limits {
            idle_ms: 60_000,
            ..LIMITS
        };
        tokio::spawn(listen::serve(
            listener,
            limits,
            Arc::new(listen::Plain),
            handler(hook),
            Arc::new(|_| {}),
            stop_rx,
        ));
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            format!(
                "POST {WEBHOOK_PATH} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{{\"kind\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("an answer before the guard")
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(rx.try_recv().is_err());
    }
}
