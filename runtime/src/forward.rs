//! Admission records between replicas. Every replica serves the webhook; only the leader runs the
//! core. A follower forwards each record its webhook parsed to the leader's forwarding endpoint,
//! which hands it to the leader's core as if its own webhook had served it.
//!
//! - **Who may send.** The endpoint speaks TLS, and both ends present the operator's own serving
//!   certificate: each accepts the other only if its leaf certificate is the one it serves itself
//!   (or served last, across a rotation). Anything else is refused in the handshake, because a
//!   forged record would name the wrong author.
//! - **The wire.** One JSON [`AdmissionRequest`] per line; the leader answers each with one line,
//!   `1` (handed to its core) or `0` (dropped: it no longer leads, or its core's queue is full).
//!   The follower times each record from send to answer.
//! - **Bounds.** A follower queues at most [`FORWARD_QUEUE_MAX`] records. A record that cannot be
//!   delivered (no leader known, leader unreachable, queue full) is dropped and counted, never
//!   retried late: attribution falls back, never guesses. The webhook's own answer never waits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitops_reverser_core::admission::AdmissionRequest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};

use crate::lease::Leadership;
use crate::metrics::Metrics;
use crate::shutdown::until_true;
use crate::tls::ReloadingTls;

/// Records a follower holds for the leader at most; more are dropped and counted.
pub const FORWARD_QUEUE_MAX: usize = 4096;
/// Longest line the endpoint reads: a review's body bound, with room for JSON escaping.
pub const LINE_BYTES_MAX: usize = 2 * gitops_reverser_core::admission::REVIEW_BYTES_MAX;
/// How long a record waits for the core of a term that is starting, in milliseconds.
pub const TERM_START_WAIT_MS: u64 = 2_000;
/// How long a follower waits to connect and finish the handshake, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long a follower waits for the leader's answer to a record, in milliseconds; past it the
/// connection is dropped and the records in flight counted as dropped.
pub const ANSWER_TIMEOUT_MS: u64 = 5_000;

/// The certificates a replica accepts from its peers: the leaf it serves now and the one before.
#[derive(Debug, Default)]
struct Known {
    leaves: Mutex<Vec<CertificateDer<'static>>>,
}

impl Known {
    fn note(&self, leaf: &CertificateDer<'static>) {
        let mut leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        if leaves.first() != Some(leaf) {
            leaves.insert(0, leaf.clone().into_owned());
            leaves.truncate(2);
        }
    }

    fn accepts(&self, leaf: &CertificateDer<'_>) -> bool {
        let leaves = self.leaves.lock().unwrap_or_else(|p| p.into_inner());
        leaves.iter().any(|l| l.as_ref() == leaf.as_ref())
    }
}

/// Verifies that the other end presents one of [`Known`]'s leaves and proves it holds its key.
#[derive(Debug)]
struct OwnCertificate {
    known: Arc<Known>,
    provider: Arc<CryptoProvider>,
}

/// rustls's check that a handshake message was signed with a certificate's key.
type SignatureCheck = fn(
    &[u8],
    &CertificateDer<'_>,
    &DigitallySignedStruct,
    &rustls::crypto::WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error>;

impl OwnCertificate {
    /// That the peer holds the key of the certificate it presented (both ends check the same).
    fn signed(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        check: SignatureCheck,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        check(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }

    fn check(&self, leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.known.accepts(leaf) {
            Ok(())
        } else {
            Err(rustls::Error::General(
                "the peer's certificate is not the operator's own".into(),
            ))
        }
    }
}

impl ClientCertVerifier for OwnCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signed(message, cert, dss, verify_tls12_signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signed(message, cert, dss, verify_tls13_signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signed(message, cert, dss, verify_tls12_signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signed(message, cert, dss, verify_tls13_signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// The TLS configurations of both ends, from the serving certificate of the moment.
pub struct PeerTls {
    serving: Arc<ReloadingTls>,
    known: Arc<Known>,
    provider: Arc<CryptoProvider>,
}

impl PeerTls {
    /// Peers authenticated by `serving`'s certificate, whatever it is when they connect.
    pub fn new(serving: Arc<ReloadingTls>) -> Self {
        Self {
            serving,
            known: Arc::default(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    fn pair(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let (certs, key) = self.serving.pair()?;
        self.known.note(&certs[0]);
        Ok((certs, key))
    }

    fn verifier(&self) -> Arc<OwnCertificate> {
        Arc::new(OwnCertificate {
            known: self.known.clone(),
            provider: self.provider.clone(),
        })
    }

    /// The endpoint's side: the client must present the operator's own certificate.
    pub fn server(&self) -> Result<Arc<ServerConfig>, String> {
        let (certs, key) = self.pair()?;
        ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(self.verifier())
            .with_single_cert(certs, key)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    /// The follower's side: presents the operator's certificate and accepts only a leader that
    /// presents it too.
    pub fn client(&self) -> Result<Arc<ClientConfig>, String> {
        let (certs, key) = self.pair()?;
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier())
            .with_client_auth_cert(certs, key)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }
}

/// Where the records this replica's webhook parsed go: to its own core while it runs one, to the
/// leader's endpoint otherwise.
pub struct Router {
    /// Records from the webhook.
    pub from_webhook: mpsc::Receiver<AdmissionRequest>,
    /// The local core's admission channel, while this replica runs one.
    pub local: watch::Receiver<Option<mpsc::Sender<AdmissionRequest>>>,
    /// Who leads.
    pub leadership: watch::Receiver<Leadership>,
    /// The follower's side of the endpoint.
    pub tls: Arc<PeerTls>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The records this replica's webhook served within the last TTL.
    pub window: crate::records::Window,
    /// The records this replica's core settled.
    pub settled: broadcast::Receiver<Arc<Vec<u64>>>,
}

impl Router {
    /// Routes records until the webhook's channel closes. Each record joins the window first;
    /// when a core starts here, or another replica becomes the leader, the window goes to it
    /// before any newer record.
    pub async fn run(mut self) {
        let (queue_tx, queue_rx) = mpsc::channel(FORWARD_QUEUE_MAX);
        // The records the leader's core settled, as its endpoint tells.
        let (peer_settled_tx, mut peer_settled) = mpsc::unbounded_channel();
        let sender = tokio::spawn(send_forever(
            queue_rx,
            self.leadership.clone(),
            self.tls.clone(),
            peer_settled_tx,
            self.metrics.clone(),
        ));
        // The core or the leader the window was last handed to.
        let mut handed: Option<Handed> = None;
        loop {
            self.hand_window(&mut handed, &queue_tx).await;
            let req = tokio::select! {
                // Records first: a settled notice can wait, a record racing its watch event not.
                biased;
                r = self.from_webhook.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
                r = self.local.changed() => if r.is_err() { break } else { continue },
                r = self.leadership.changed() => if r.is_err() { break } else { continue },
                r = self.settled.recv() => {
                    if let Ok(ids) = r {
                        self.window.settle(&ids);
                    }
                    continue;
                }
                Some(ids) = peer_settled.recv() => {
                    self.window.settle(&ids);
                    continue;
                }
            };
            let mut local = self.local.borrow().clone();
            if local.is_none() && self.leadership.borrow().is_leader() {
                // This replica's term is starting: its core takes the record in a moment.
                let wait = Duration::from_millis(TERM_START_WAIT_MS);
                if let Ok(Ok(core)) =
                    tokio::time::timeout(wait, self.local.wait_for(Option::is_some)).await
                {
                    local = core.clone();
                }
                // Its window first: `req` joins the window only once it is on its way.
                self.hand_window(&mut handed, &queue_tx).await;
            }
            // Kept after it is on its way: the window's file write is not on the record's path.
            let served = req.clone();
            match local {
                Some(core) => {
                    if core.try_send(req).is_err() {
                        self.metrics.webhook_dropped_records.inc();
                    }
                }
                None => match queue_tx.try_send(req) {
                    Ok(()) => {}
                    Err(_) => self.metrics.forward_dropped("queue_full"),
                },
            }
            self.window.push(served, crate::records::wall_ms());
        }
        sender.abort();
    }

    /// Hands the window to a core that started here, or to a leader not handed it yet.
    async fn hand_window(
        &mut self,
        handed: &mut Option<Handed>,
        queue: &mpsc::Sender<AdmissionRequest>,
    ) {
        let local = self.local.borrow().clone();
        let target = match (local, &*self.leadership.borrow()) {
            (Some(core), _) => Some(Handed::Core(core)),
            (None, Leadership::Follower { leader: Some(h) }) => {
                Some(Handed::Leader(h.identity.clone()))
            }
            _ => None,
        };
        let Some(target) = target else {
            return;
        };
        if handed.as_ref() == Some(&target) {
            return;
        }
        let records = self.window.current(crate::records::wall_ms());
        match &target {
            Handed::Core(core) => {
                if !records.is_empty() {
                    tracing::info!(
                        records = records.len(),
                        "handing the admission records of the last TTL to this replica's core"
                    );
                }
                for r in records {
                    if core.send(r).await.is_err() {
                        break;
                    }
                }
            }
            Handed::Leader(leader) => {
                if !records.is_empty() {
                    tracing::info!(records = records.len(), %leader, "handing the admission records of the last TTL to the leader");
                }
                for r in records {
                    if queue.try_send(r).is_err() {
                        self.metrics.forward_dropped("queue_full");
                    }
                }
            }
        }
        *handed = Some(target);
    }
}

/// Where the window went last.
#[derive(Debug)]
enum Handed {
    /// This replica's core (its channel: a new term has a new one).
    Core(mpsc::Sender<AdmissionRequest>),
    /// The leader of this identity.
    Leader(String),
}

impl PartialEq for Handed {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Handed::Core(a), Handed::Core(b)) => a.same_channel(b),
            (Handed::Leader(a), Handed::Leader(b)) => a == b,
            _ => false,
        }
    }
}

type Conn = (
    tokio::io::WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>,
    mpsc::UnboundedSender<Instant>,
    tokio::task::JoinHandle<()>,
);

/// The follower's sender: one connection to the leader of the moment, opened when a record is
/// to go and kept while it works.
async fn send_forever(
    mut queue: mpsc::Receiver<AdmissionRequest>,
    leadership: watch::Receiver<Leadership>,
    tls: Arc<PeerTls>,
    settled: mpsc::UnboundedSender<Vec<u64>>,
    metrics: Arc<Metrics>,
) {
    let mut conn: Option<(String, Conn)> = None;
    while let Some(req) = queue.recv().await {
        let endpoint = match &*leadership.borrow() {
            Leadership::Follower {
                leader: Some(holder),
            } => holder.endpoint.clone(),
            _ => None,
        };
        let Some(endpoint) = endpoint else {
            metrics.forward_dropped("no_leader");
            continue;
        };
        if conn
            .as_ref()
            .is_some_and(|(to, c)| *to != endpoint || c.2.is_finished())
        {
            if let Some((_, c)) = conn.take() {
                c.2.abort();
            }
        }
        if conn.is_none() {
            match connect(&endpoint, &tls, &settled, &metrics).await {
                Ok(c) => conn = Some((endpoint.clone(), c)),
                Err(e) => {
                    tracing::warn!(%endpoint, "forwarding a record to the leader failed: {e}");
                    metrics.forward_dropped("unreachable");
                    continue;
                }
            }
        }
        let Some((_, (writer, sent, _))) = conn.as_mut() else {
            continue;
        };
        let mut line = match serde_json::to_vec(&req) {
            Ok(l) => l,
            Err(_) => continue,
        };
        line.push(b'\n');
        let _ = sent.send(Instant::now());
        let written = async {
            writer.write_all(&line).await?;
            writer.flush().await
        };
        if let Err(e) = written.await {
            tracing::warn!(%endpoint, "forwarding a record to the leader failed: {e}");
            metrics.forward_dropped("unreachable");
            if let Some((_, c)) = conn.take() {
                c.2.abort();
            }
            continue;
        }
        metrics.records_forwarded.inc();
    }
}

async fn connect(
    endpoint: &str,
    tls: &PeerTls,
    settled: &mpsc::UnboundedSender<Vec<u64>>,
    metrics: &Arc<Metrics>,
) -> Result<Conn, String> {
    let config = tls.client()?;
    let connect = async {
        let tcp = TcpStream::connect(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        // The name is not checked (the certificate is compared whole), but SNI needs one.
        let name = ServerName::try_from("gitops-reverser-peer").map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    };
    let stream = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT_MS} ms"))??;
    let (reader, writer) = tokio::io::split(stream);
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let answers = tokio::spawn(read_answers(
        reader,
        sent_rx,
        settled.clone(),
        metrics.clone(),
    ));
    Ok((writer, sent_tx, answers))
}

/// Matches the leader's answers to the records sent, in order, and times them; passes the
/// records the leader's core settled (`s` lines) to this replica's window.
async fn read_answers(
    reader: tokio::io::ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>,
    mut sent: mpsc::UnboundedReceiver<Instant>,
    settled: mpsc::UnboundedSender<Vec<u64>>,
    metrics: Arc<Metrics>,
) {
    let mut lines = BufReader::new(reader).lines();
    let mut waiting: VecDeque<Instant> = VecDeque::new();
    let lost = |waiting: &mut VecDeque<Instant>| {
        // The connection broke or the leader stopped answering: what is in flight is lost.
        for _ in waiting.drain(..) {
            metrics.forward_dropped("unreachable");
        }
    };
    loop {
        let overdue = waiting
            .front()
            .map(|at| *at + Duration::from_millis(ANSWER_TIMEOUT_MS));
        tokio::select! {
            at = sent.recv() => match at {
                Some(at) => waiting.push_back(at),
                None => return,
            },
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if let Some(ids) = line.strip_prefix("s ") {
                        let ids: Vec<u64> = ids
                            .split(',')
                            .filter_map(|i| u64::from_str_radix(i.trim(), 16).ok())
                            .collect();
                        let _ = settled.send(ids);
                        continue;
                    }
                    let at = waiting.pop_front().unwrap_or_else(Instant::now);
                    if line.trim() == "1" {
                        metrics.records_delivered.inc();
                        metrics
                            .forward_latency_seconds
                            .observe(at.elapsed().as_secs_f64());
                    } else {
                        metrics.forward_dropped("leader_refused");
                    }
                }
                _ => {
                    lost(&mut waiting);
                    return;
                }
            },
            _ = sleep_until(overdue), if overdue.is_some() => {
                lost(&mut waiting);
                return;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The leader's side: takes records from followers and hands them to the local core, while this
/// replica runs one.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<PeerTls>,
    local: watch::Receiver<Option<mpsc::Sender<AdmissionRequest>>>,
    settled: broadcast::Sender<Arc<Vec<u64>>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = until_true(&mut shutdown) => return,
        };
        let Ok((tcp, peer)) = accepted else {
            continue;
        };
        let config = match tls.server() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("the forwarding endpoint has no certificate yet: {e}");
                continue;
            }
        };
        let (local, metrics) = (local.clone(), metrics.clone());
        // Subscribed before the handshake: a notice sent meanwhile is not missed.
        let settled = settled.subscribe();
        tokio::spawn(async move {
            let stream = match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    metrics.forward_refused.inc();
                    tracing::warn!(%peer, "forwarding connection refused: {e}");
                    return;
                }
            };
            take_records(stream, local, settled, metrics).await;
        });
    }
}

async fn take_records(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    mut local: watch::Receiver<Option<mpsc::Sender<AdmissionRequest>>>,
    mut settled: broadcast::Receiver<Arc<Vec<u64>>>,
    metrics: Arc<Metrics>,
) {
    let (reader, mut writer) = tokio::io::split(stream);
    // One writer: the answers, in order, and the records the core settled, as they come.
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let notices = {
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            loop {
                match settled.recv().await {
                    Ok(ids) => {
                        let hex: Vec<String> = ids.iter().map(|i| format!("{i:x}")).collect();
                        if out_tx
                            .send(format!("s {}\n", hex.join(",")).into_bytes())
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    };
    let written = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if writer.write_all(&line).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    });
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) if n > LINE_BYTES_MAX => {
                tracing::warn!(
                    "a forwarded record is over {LINE_BYTES_MAX} bytes; connection closed"
                );
                break;
            }
            Ok(_) => {}
        }
        let delivered = match serde_json::from_slice::<AdmissionRequest>(&line) {
            Ok(req) => {
                let mut core = local.borrow().clone();
                if core.is_none() {
                    // Elected a moment ago: the term's core takes the record once it starts.
                    let wait = Duration::from_millis(TERM_START_WAIT_MS);
                    if let Ok(Ok(c)) =
                        tokio::time::timeout(wait, local.wait_for(Option::is_some)).await
                    {
                        core = c.clone();
                    }
                }
                core.is_some_and(|c| c.try_send(req).is_ok())
            }
            Err(e) => {
                tracing::warn!(error = ?e.to_string(), "a forwarded record is not an admission request");
                false
            }
        };
        if delivered {
            metrics.records_received.inc();
        }
        let answer: &[u8] = if delivered { b"1\n" } else { b"0\n" };
        if out_tx.send(answer.to_vec()).is_err() {
            break;
        }
    }
    notices.abort();
    written.abort();
}
