//! One raw list+watch stream: list → watch from the list's resourceVersion → (410 Gone) → relist,
//! with bookmarks and backoff, in kube-runtime's watcher vocabulary.
//!
//! Objects reach the core as the API server's bytes. A watch line from the API server is
//! `{"type":"ADDED","object":{...}}`; the object's text is sliced out of it (by the encoder's fixed
//! layout, with a `RawValue` parse as the fallback) and copied once. Nothing builds a document per
//! event: the resourceVersion to resume from is read only from the last object before a reconnect.
//!
//! List items from a real API server carry no `apiVersion`/`kind`; they are added from discovery
//! before the item leaves here, so the core sees every object with its type.

use bytes::BytesMut;
use futures_util::StreamExt;
use gitops_reverser_core::io::WatchEvent;
use gitops_reverser_core::RawObject;
use http_body_util::BodyExt;
use kube::core::params::{ListParams, WatchParams};
use kube::core::Request;
use kube::Client;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch, Notify};

use super::backoff::Backoff;
use crate::health::crd_missing_message;

/// Objects per list page (kube-runtime's default).
pub const PAGE_ITEMS_MAX: u32 = 500;
/// How long the server keeps a watch open before it ends it, in seconds (kube-runtime's default).
pub const WATCH_TIMEOUT_S: u32 = 290;

/// How long a request that is not a watch (a list page, a status write) may take, headers and
/// body. The client's own read timeout is per read and long enough for an idle watch; without
/// this bound a request the server never answers would hold a list, and readiness, with no
/// word in the log.
pub const REQUEST_MS_MAX: u64 = 30_000;
/// Longest watch line accepted, in bytes: a bigger object than the API server stores (1.5 MiB by
/// default, 3 MiB request limit) means a broken stream.
pub const LINE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What one stream lists and watches.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// The collection's URL path: `/api/v1/configmaps`, `/apis/apps/v1/namespaces/ns/deployments`.
    pub path: String,
    /// A field selector (`metadata.name=x`), if any.
    pub field_selector: Option<String>,
    /// `apiVersion` and `kind` of the stream's objects, added to list items that lack them.
    pub type_meta: (String, String),
    /// For logs and metrics.
    pub label: String,
    /// The CustomResourceDefinition that serves `path`, for the operator's own types: a 404
    /// then means it is not installed, which the log and `/readyz` say in those words.
    pub crd: Option<String>,
    /// The watched type, for the streams the core asked for: a 403 is then reported to it.
    pub gvr: Option<gitops_reverser_core::Gvr>,
}

/// Why one list or watch request ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stored version is too old: relist.
    #[error("resourceVersion too old (410 Gone)")]
    Gone,
    /// The server answered with an error status.
    #[error("API server answered {code}: {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// The Status message.
        message: String,
    },
    /// The connection or the client failed.
    #[error("{0}")]
    Transport(String),
    /// The body was not what a list or watch sends.
    #[error("unreadable response: {0}")]
    Protocol(String),
    /// The core's side of the channel is gone: the operator is stopping.
    #[error("the operator is stopping")]
    Closed,
}

/// Hooks a stream reports through, besides its events.
pub trait StreamObserver: Send + Sync + 'static {
    /// A list or watch request failed and will be retried.
    fn restarted(&self, label: &str, why: &StreamError);
    /// A list request ended: `Ok` when it listed everything.
    fn listed(&self, _spec: &StreamSpec, _outcome: Result<(), &StreamError>) {}
}

/// Runs one stream for ever (until its task is aborted or the channel closes). `resync` makes it
/// relist at once. While `paused` holds true, no event goes out and nothing more is read (the
/// server's connection waits; its sender gone means never paused). Every error is retried with
/// backoff; the stream never ends on one.
pub async fn run<T: Send + 'static>(
    client: Client,
    spec: StreamSpec,
    tx: mpsc::Sender<T>,
    wrap: impl Fn(WatchEvent) -> T + Send + Sync + 'static,
    resync: std::sync::Arc<Notify>,
    paused: watch::Receiver<bool>,
    observer: std::sync::Arc<dyn StreamObserver>,
) {
    let mut backoff = Backoff::default();
    let send = |ev: WatchEvent| {
        let tx = tx.clone();
        let mut paused = paused.clone();
        let item = wrap(ev);
        async move {
            // An error means the sender is gone: nobody pauses this stream any more.
            let _ = paused.wait_for(|p| !*p).await;
            tx.send(item).await.map_err(|_| StreamError::Closed)
        }
    };
    'relist: loop {
        let listed = list(&client, &spec, &send).await;
        if !matches!(listed, Err(StreamError::Closed)) {
            observer.listed(&spec, listed.as_ref().map(|_| ()));
        }
        let mut rv = match listed {
            Ok(rv) => rv,
            Err(StreamError::Closed) => return,
            Err(e @ StreamError::Api { code: 404, .. }) if spec.crd.is_some() => {
                let crd = spec.crd.as_deref().unwrap_or_default();
                tracing::error!(stream = %spec.label, "{}; retrying", crd_missing_message(crd));
                observer.restarted(&spec.label, &e);
                tokio::time::sleep(backoff.next_delay()).await;
                continue 'relist;
            }
            Err(e) => {
                tracing::warn!(stream = %spec.label, "list failed, retrying: {e}");
                observer.restarted(&spec.label, &e);
                tokio::time::sleep(backoff.next_delay()).await;
                continue 'relist;
            }
        };
        loop {
            let mut last: Option<RawObject> = None;
            let watched = tokio::select! {
                _ = resync.notified() => {
                    tracing::debug!(stream = %spec.label, "relist asked for");
                    continue 'relist;
                }
                r = watch(&client, &spec, &rv, &send, &mut last, &mut backoff) => r,
            };
            if let Some(obj) = last.take() {
                if let Some(v) = resource_version(obj.as_bytes()) {
                    rv = v;
                }
            }
            match watched {
                Ok(()) => {}
                Err(StreamError::Closed) => return,
                Err(StreamError::Gone) => {
                    tracing::info!(stream = %spec.label, "watch expired (410 Gone): relisting");
                    observer.restarted(&spec.label, &StreamError::Gone);
                    continue 'relist;
                }
                Err(e) => {
                    tracing::warn!(stream = %spec.label, "watch failed, retrying: {e}");
                    observer.restarted(&spec.label, &e);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// Starts a stream whose events are read as they are (no relist on demand), for streams the
/// runtime itself consumes: CRs, credentials Secrets, CRDs.
pub fn spawn_events(
    client: &Client,
    spec: StreamSpec,
    capacity: usize,
    observer: &std::sync::Arc<dyn StreamObserver>,
) -> (tokio::task::JoinHandle<()>, mpsc::Receiver<WatchEvent>) {
    let (tx, rx) = mpsc::channel(capacity);
    // Never paused: the runtime's own streams are small, and it needs them to make progress.
    let (_, never_paused) = watch::channel(false);
    let task = tokio::spawn(run(
        client.clone(),
        spec,
        tx,
        |ev| ev,
        std::sync::Arc::new(Notify::new()),
        never_paused,
        observer.clone(),
    ));
    (task, rx)
}

#[derive(Deserialize)]
struct ListPage<'a> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct ListMeta {
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

/// Lists the collection page by page (`Init`, `InitApply`…, `InitDone`); returns the list's
/// resourceVersion to watch from. A failed page fails the whole list: it starts over with `Init`.
async fn list<F, Fut>(client: &Client, spec: &StreamSpec, send: &F) -> Result<String, StreamError>
where
    F: Fn(WatchEvent) -> Fut,
    Fut: std::future::Future<Output = Result<(), StreamError>>,
{
    send(WatchEvent::Init).await?;
    let mut continue_token = None;
    loop {
        let params = ListParams {
            limit: Some(PAGE_ITEMS_MAX),
            continue_token: continue_token.take(),
            field_selector: spec.field_selector.clone(),
            ..ListParams::default()
        };
        let req = Request::new(&spec.path)
            .list(&params)
            .map_err(|e| StreamError::Protocol(e.to_string()))?;
        let body = send_request(client, req).await?;
        let page: ListPage =
            serde_json::from_slice(&body).map_err(|e| StreamError::Protocol(e.to_string()))?;
        for item in page.items {
            send(WatchEvent::InitApply(with_type_meta(item, &spec.type_meta))).await?;
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => continue_token = Some(token),
            _ => {
                send(WatchEvent::InitDone).await?;
                return Ok(page.metadata.resource_version);
            }
        }
    }
}

/// One watch request from `rv` until the server ends it. `last` keeps the last object seen, so
/// the caller can resume after it.
async fn watch<F, Fut>(
    client: &Client,
    spec: &StreamSpec,
    rv: &str,
    send: &F,
    last: &mut Option<RawObject>,
    backoff: &mut Backoff,
) -> Result<(), StreamError>
where
    F: Fn(WatchEvent) -> Fut,
    Fut: std::future::Future<Output = Result<(), StreamError>>,
{
    let params = WatchParams {
        field_selector: spec.field_selector.clone(),
        timeout: Some(WATCH_TIMEOUT_S),
        bookmarks: true,
        ..WatchParams::default()
    };
    let req = Request::new(&spec.path)
        .watch(&params, rv)
        .map_err(|e| StreamError::Protocol(e.to_string()))?;
    let res = client
        .send(req.map(kube::client::Body::from))
        .await
        .map_err(|e| StreamError::Transport(e.to_string()))?;
    if !res.status().is_success() {
        let code = res.status().as_u16();
        let body = res.into_body().collect().await.map(|b| b.to_bytes());
        return Err(api_error(code, body.as_deref().unwrap_or_default()));
    }
    let mut body = res.into_body().into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StreamError::Transport(e.to_string()))?;
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(end + 1);
            let line = &line[..end];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (kind, object) = split_line(line)?;
            match kind {
                "ADDED" | "MODIFIED" => {
                    let obj = RawObject::new(object);
                    *last = Some(obj.clone());
                    send(WatchEvent::Apply(obj)).await?;
                }
                "DELETED" => {
                    let obj = RawObject::new(object);
                    *last = Some(obj.clone());
                    send(WatchEvent::Delete(obj)).await?;
                }
                "BOOKMARK" => *last = Some(RawObject::new(object)),
                "ERROR" => return Err(status_error(object)),
                other => {
                    return Err(StreamError::Protocol(format!(
                        "unknown watch event type {other:?}"
                    )))
                }
            }
            backoff.reset();
        }
        if buf.len() > LINE_BYTES_MAX {
            return Err(StreamError::Protocol(format!(
                "a watch line is over {LINE_BYTES_MAX} bytes"
            )));
        }
    }
    Ok(())
}

/// Splits a watch line into its event type and the object's text.
pub fn split_line(line: &[u8]) -> Result<(&str, &[u8]), StreamError> {
    // The API server's encoder writes `{"type":"T","object":{...}}`: slice it without a parse.
    const HEAD: &[u8] = br#"{"type":""#;
    const MID: &[u8] = br#"","object":"#;
    if let Some(rest) = line.strip_prefix(HEAD) {
        if let Some(q) = rest.iter().position(|&b| b == b'"') {
            let (kind, tail) = rest.split_at(q);
            if let (Some(obj), Ok(kind)) = (tail.strip_prefix(MID), std::str::from_utf8(kind)) {
                if let Some(obj) = obj.strip_suffix(b"}") {
                    if obj.first() == Some(&b'{') && obj.last() == Some(&b'}') {
                        return Ok((kind, obj));
                    }
                }
            }
        }
    }
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(borrow)]
        object: &'a RawValue,
    }
    let parsed: Line = serde_json::from_slice(line)
        .map_err(|e| StreamError::Protocol(format!("bad watch line: {e}")))?;
    let start = parsed.object.get().as_ptr() as usize - line.as_ptr() as usize;
    let obj = &line[start..start + parsed.object.get().len()];
    let kind_start = parsed.kind.as_ptr() as usize - line.as_ptr() as usize;
    let kind = std::str::from_utf8(&line[kind_start..kind_start + parsed.kind.len()])
        .expect("a borrowed str is UTF-8");
    Ok((kind, obj))
}

/// The object's text with `apiVersion` and `kind` first when it has neither (a list item).
pub fn with_type_meta(item: &RawValue, (api_version, kind): &(String, String)) -> RawObject {
    RawObject::new(item.get().as_bytes()).with_type_meta(api_version, kind)
}

/// `metadata.resourceVersion` of an object's text.
pub fn resource_version(text: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Obj {
        metadata: Meta,
    }
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "resourceVersion")]
        resource_version: String,
    }
    serde_json::from_slice::<Obj>(text)
        .ok()
        .map(|o| o.metadata.resource_version)
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
}

fn status_error(object: &[u8]) -> StreamError {
    match serde_json::from_slice::<Status>(object) {
        Ok(s) if s.code == 410 || s.reason == "Expired" || s.reason == "Gone" => StreamError::Gone,
        Ok(s) => StreamError::Api {
            code: s.code,
            message: s.message,
        },
        Err(e) => StreamError::Protocol(format!("bad ERROR event: {e}")),
    }
}

fn api_error(code: u16, body: &[u8]) -> StreamError {
    if code == 410 {
        return StreamError::Gone;
    }
    let message = serde_json::from_slice::<Status>(body)
        .map(|s| s.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    StreamError::Api { code, message }
}

/// Sends a request and returns its body; an error status becomes [`StreamError`].
pub async fn send_request(
    client: &Client,
    req: http::Request<Vec<u8>>,
) -> Result<bytes::Bytes, StreamError> {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let exchange = async {
        let res = client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|e| StreamError::Transport(e.to_string()))?;
        let code = res.status().as_u16();
        let ok = res.status().is_success();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| StreamError::Transport(e.to_string()))?
            .to_bytes();
        if !ok {
            return Err(api_error(code, &body));
        }
        Ok(body)
    };
    tokio::time::timeout(std::time::Duration::from_millis(REQUEST_MS_MAX), exchange)
        .await
        .unwrap_or_else(|_| {
            Err(StreamError::Transport(format!(
                "{method} {uri}: no complete answer within {REQUEST_MS_MAX} ms"
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_line_is_sliced_without_a_parse_and_with_one() {
        let line = br#"{"type":"MODIFIED","object":{"kind":"ConfigMap","metadata":{"name":"a"}}}"#;
        let (kind, obj) = split_line(line).unwrap();
        assert_eq!(kind, "MODIFIED");
        assert_eq!(obj, br#"{"kind":"ConfigMap","metadata":{"name":"a"}}"#);
        // Another encoder's layout (spaces, other order) goes through the RawValue fallback.
        let line = br#"{ "object" : {"kind":"ConfigMap"} , "type" : "DELETED" }"#;
        let (kind, obj) = split_line(line).unwrap();
        assert_eq!((kind, obj), ("DELETED", &br#"{"kind":"ConfigMap"}"#[..]));
        assert!(split_line(br#"{"type":"ADDED","object":"#).is_err());
    }

    #[test]
    fn a_list_item_gets_its_type_first_and_a_typed_one_is_left_alone() {
        let meta = ("v1".to_string(), "Secret".to_string());
        let item: Box<RawValue> =
            serde_json::from_str(r#"{"metadata":{"name":"s"},"data":{"k":"dg=="}}"#).unwrap();
        let obj = with_type_meta(&item, &meta);
        assert_eq!(
            obj.as_bytes(),
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"dg=="}}"#
        );
        let typed: Box<RawValue> =
            serde_json::from_str(r#"{"apiVersion":"x/v1","kind":"Thing","metadata":{}}"#).unwrap();
        assert_eq!(
            with_type_meta(&typed, &meta).as_bytes(),
            typed.get().as_bytes()
        );
        let empty: Box<RawValue> = serde_json::from_str("{}").unwrap();
        assert_eq!(
            with_type_meta(&empty, &meta).as_bytes(),
            br#"{"apiVersion":"v1","kind":"Secret"}"#
        );
    }

    #[test]
    fn an_expired_watch_is_gone_and_other_errors_keep_their_message() {
        let gone = br#"{"kind":"Status","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}"#;
        assert!(matches!(status_error(gone), StreamError::Gone));
        let other = br#"{"kind":"Status","message":"forbidden","code":403}"#;
        assert!(
            matches!(status_error(other), StreamError::Api { code: 403, ref message } if message == "forbidden")
        );
        assert!(matches!(api_error(410, b""), StreamError::Gone));
    }
}
