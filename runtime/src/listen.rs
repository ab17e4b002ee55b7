//! Serving connections within bounds: at most so many open at once, each closed once idle, HTTP/1
//! headers read within a deadline, and accept errors (out of descriptors, say) backed off instead
//! of retried in a busy loop. The webhook and the admin server both serve through [`serve`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// How long accepting waits after an error (out of descriptors, say), in milliseconds.
pub(crate) const ACCEPT_BACKOFF_MS: u64 = 100;

/// The bounds of one server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once at most; one over is closed at once (and counted by the caller).
    pub connections_max: usize,
    /// A connection with no byte read or written for this long is closed, in milliseconds.
    pub idle_ms: u64,
    /// An HTTP/1 request's headers must arrive within this time, in milliseconds.
    pub header_ms: u64,
    /// The TLS handshake must finish within this time, in milliseconds (TLS servers only).
    pub handshake_ms: u64,
}

/// What a server answers with; `Arc` so that each connection shares it.
pub(crate) type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// How a connection's bytes are made into a stream hyper serves: plain TCP, or TLS on top.
pub(crate) trait Upgrade: Send + Sync + 'static {
    /// The stream served.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Upgrades `tcp`; an error closes the connection.
    fn upgrade(
        &self,
        tcp: Tracked<TcpStream>,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send>>;
}

/// Plain TCP.
pub(crate) struct Plain;

impl Upgrade for Plain {
    type Stream = Tracked<TcpStream>;
    fn upgrade(
        &self,
        tcp: Tracked<TcpStream>,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Stream>> + Send>> {
        Box::pin(async move { Ok(tcp) })
    }
}

/// Called when a connection is refused for the cap, with the peer's address.
pub(crate) type OnRefused = Arc<dyn Fn(std::net::SocketAddr) + Send + Sync>;

/// Serves `listener` until `shutdown` turns true, each connection within `limits`.
pub(crate) async fn serve<U: Upgrade>(
    listener: TcpListener,
    limits: Limits,
    upgrade: Arc<U>,
    handler: Handler,
    on_refused: OnRefused,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    loop {
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed, retrying in {ACCEPT_BACKOFF_MS} ms: {e}");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
                    continue;
                }
            },
            _ = crate::shutdown::until_true(&mut shutdown) => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            on_refused(peer);
            drop(tcp);
            continue;
        };
        let (upgrade, handler) = (upgrade.clone(), handler.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let stamp = Arc::new(Stamp::new());
            let tracked = Tracked {
                inner: tcp,
                stamp: stamp.clone(),
            };
            let handshake = Duration::from_millis(limits.handshake_ms);
            let stream = match tokio::time::timeout(handshake, upgrade.upgrade(tracked)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!("handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("handshake with {peer} timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let fut = handler(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(limits.header_ms));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!("connection from {peer} ended: {e}");
                },
                _ = stamp.idle_for(Duration::from_millis(limits.idle_ms)) => {
                    tracing::debug!("connection from {peer} closed after {} ms idle", limits.idle_ms);
                }
            }
        });
    }
}

/// When a connection last moved a byte, in milliseconds since its start.
pub(crate) struct Stamp {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Stamp {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let due = last + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

/// A stream that stamps each read and write that moves bytes.
pub(crate) struct Tracked<S> {
    inner: S,
    stamp: Arc<Stamp>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.stamp.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// How long a test waits for what it expects before it fails; never a synchronisation.
    const GUARD: Duration = Duration::from_secs(10);

    async fn server(limits: Limits) -> (std::net::SocketAddr, Arc<AtomicU64>, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = Arc::new(AtomicU64::new(0));
        let counted = refused.clone();
        let handler: Handler = Arc::new(|_req| {
            Box::pin(async { Response::new(Full::new(Bytes::from_static(b"ok"))) })
        });
        let on_refused: OnRefused = Arc::new(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            limits,
            Arc::new(Plain),
            handler,
            on_refused,
            stop_rx,
        ));
        (addr, refused, stop)
    }

    /// Reads until the peer closes; the bytes read.
    async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
        let mut all = Vec::new();
        tokio::time::timeout(GUARD, tcp.read_to_end(&mut all))
            .await
            .expect("the server closes the connection")
            .ok();
        all
    }

    async fn get(tcp: &mut TcpStream) -> String {
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(GUARD, tcp.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    const WIDE: Limits = Limits {
        connections_max: 64,
        idle_ms: 60_000,
        header_ms: 60_000,
        handshake_ms: 60_000,
    };

    #[tokio::test]
    async fn a_connection_over_the_cap_is_closed_at_once_and_a_freed_slot_serves_again() {
        let (addr, refused, _stop) = server(Limits {
            connections_max: 2,
            ..WIDE
        })
        .await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        // Both are served: the server has accepted them before the third arrives.
        assert!(get(&mut a).await.starts_with("HTTP/1.1 200"));
        assert!(get(&mut b).await.starts_with("HTTP/1.1 200"));
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(until_closed(&mut c).await.is_empty(), "closed unanswered");
        assert_eq!(refused.load(Ordering::Relaxed), 1);
        drop(a);
        // The slot frees once the server sees the close; a connection may race it and be refused.
        let served = loop {
            let mut d = TcpStream::connect(addr).await.unwrap();
            d.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 1024];
            match tokio::time::timeout(GUARD, d.read(&mut buf)).await.unwrap() {
                Ok(n) if n > 0 => break String::from_utf8_lossy(&buf[..n]).into_owned(),
                _ => tokio::task::yield_now().await,
            }
        };
        assert!(served.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_once_idle() {
        let (addr, _, _stop) = server(Limits {
            idle_ms: 200,
            ..WIDE
        })
        .await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut tcp).await.starts_with("HTTP/1.1 200"));
        let started = Instant::now();
        assert!(until_closed(&mut tcp).await.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn headers_trickled_a_byte_at_a_time_are_cut_off_at_the_header_deadline() {
        let (addr, _, _stop) = server(Limits {
            header_ms: 300,
            ..WIDE
        })
        .await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = tcp.into_split();
        // Never idle: a byte every 20 ms, for ever (until the server closes).
        let trickle = tokio::spawn(async move {
            wr.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            while wr.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut all = Vec::new();
        tokio::time::timeout(GUARD, rd.read_to_end(&mut all))
            .await
            .expect("the server gives up on the headers")
            .ok();
        assert!(!String::from_utf8_lossy(&all).contains("200 OK"));
        trickle.abort();
    }
}
