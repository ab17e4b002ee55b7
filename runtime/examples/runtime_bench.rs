//! What the runtime adds to the core, measured against baselines in the same run.
//!
//! `cargo run -p gitops-reverser-runtime --release --example runtime_bench -- webhook [conns] [reqs]`
//!   The webhook's answer latency with `conns` concurrent clients (HTTP/1.1 keep-alive over TLS,
//!   each sending `reqs` recorded AdmissionReview bodies), beside a no-op hyper + rustls server
//!   that reads the body and answers a fixed review. Rounds alternate between the two.
//!
//! `cargo run -p gitops-reverser-runtime --release --example runtime_bench -- forward [conns] [reqs]`
//!   The same clients against two replicas' webhooks in one process, rounds alternating: the
//!   leader's (records to its own core) and a follower's (records forwarded over TLS to the
//!   leader's endpoint, whose core takes them). The figure is the follower's added latency.
//!
//! `cargo run -p gitops-reverser-runtime --release --example runtime_bench -- watch [objects] [rounds]`
//!   Watch events read from an HTTP stream on loopback by the runtime's list+watch code (kube's
//!   client, line slicing, the bounded channel, the clock reads) into the core, beside the core
//!   alone handling the same events from memory. `RUNTIME_BENCH_THREADS=1` runs it all on one
//!   thread (default: two workers, as the operator runs on a two-core machine).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{blob_ids, GitOpKind, GitResult, Input, Output, WatchEvent};
use gitops_reverser_core::Gvr;
use gitops_reverser_core::Now;
use gitops_reverser_core::RawObject;
use gitops_reverser_core::{Core, CoreConfig};
use gitops_reverser_runtime::forward::{PeerTls, Router};
use gitops_reverser_runtime::kube::stream::{
    self, split_line, StreamError, StreamObserver, StreamSpec,
};
use gitops_reverser_runtime::lease::{Holder, Leadership};
use gitops_reverser_runtime::metrics::Metrics;
use gitops_reverser_runtime::msg::Msg;
use gitops_reverser_runtime::tls::ReloadingTls;
use gitops_reverser_runtime::webhook::{self, Webhook};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};

const REVIEW: &str = include_str!("../../core/tests/fixtures/kube-apiserver-1.20/admission.jsonl");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match args.first().map(String::as_str) {
        Some("webhook") => rt.block_on(webhook_bench(n(1, 200), n(2, 50))),
        Some("forward") => rt.block_on(forward_bench(n(1, 200), n(2, 50))),
        Some("watch") => rt.block_on(watch_bench(n(1, 20_000), n(2, 3))),
        _ => eprintln!(
            "usage: runtime_bench webhook [conns] [reqs] | forward [conns] [reqs] | watch [objects] [rounds]"
        ),
    }
}

// ---- webhook ----

/// A CA (`ca.crt`, trusted by the clients) and a serving certificate it signed for 127.0.0.1
/// (`tls.crt`, `tls.key`): webpki refuses a CA certificate as a server's own.
fn cert(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=bench-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=bench",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "tls.crt",
    ]);
}

/// The webhook's serving certificate (made in `dir`) and a client configuration that trusts it.
fn serving_and_client(dir: &std::path::Path) -> (Arc<ReloadingTls>, Arc<rustls::ClientConfig>) {
    cert(dir);
    let tls = Arc::new(ReloadingTls::new(dir.join("tls.crt"), dir.join("tls.key")));
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(dir.join("ca.crt")).unwrap();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    (tls, client)
}

async fn noop_server(listener: TcpListener, tls: Arc<ReloadingTls>) {
    let answer = Bytes::from(
        serde_json::to_vec(
            &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": "fixed", "allowed": true}}),
        )
        .unwrap(),
    );
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current().unwrap());
        let answer = answer.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let answer = answer.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(Response::new(Full::new(answer)))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn client_round(
    port: u16,
    roots: Arc<rustls::ClientConfig>,
    conns: usize,
    reqs: usize,
) -> Vec<Duration> {
    let body = Bytes::from(REVIEW.lines().nth(1).unwrap().to_string());
    let mut tasks = Vec::new();
    let start = Arc::new(tokio::sync::Barrier::new(conns));
    for _ in 0..conns {
        let (roots, body, start) = (roots.clone(), body.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(roots)
                .connect(name, tcp)
                .await
                .unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            start.wait().await;
            let mut lat = Vec::with_capacity(reqs);
            for _ in 0..reqs {
                let req = Request::post("/process-validating-webhook")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .unwrap();
                let t = Instant::now();
                let res = send.send_request(req).await.unwrap();
                assert!(res.status().is_success());
                let _ = res.into_body().collect().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn webhook_bench(conns: usize, reqs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (tls, client) = serving_and_client(dir.path());

    let noop = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let noop_port = noop.local_addr().unwrap().port();
    tokio::spawn(noop_server(noop, tls.clone()));

    let ours = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ours_port = ours.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::channel(8192);
    // The core's side: taken off the channel as the driver would.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let metrics = Arc::new(Metrics::new());
    let hook = Arc::new(Webhook {
        tx,
        metrics: metrics.clone(),
        body_timeout_ms: webhook::BODY_TIMEOUT_MS,
    });
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(webhook::serve(ours, tls, hook, stop_rx));

    println!(
        "webhook: {conns} concurrent connections x {reqs} requests per round, p50 / p99 in ms"
    );
    let (mut base, mut mine) = (Vec::new(), Vec::new());
    for round in 0..4 {
        let b = client_round(noop_port, client.clone(), conns, reqs).await;
        let m = client_round(ours_port, client.clone(), conns, reqs).await;
        println!(
            "round {round}: no-op hyper+rustls {:.3} / {:.3}   webhook {:.3} / {:.3}",
            pct(&b, 0.5),
            pct(&b, 0.99),
            pct(&m, 0.5),
            pct(&m, 0.99)
        );
        base.extend(b);
        mine.extend(m);
    }
    base.sort();
    mine.sort();
    println!(
        "all rounds: no-op {:.3} / {:.3} ms, webhook {:.3} / {:.3} ms; added p50 {:+.3} ms, p99 {:+.3} ms",
        pct(&base, 0.5), pct(&base, 0.99), pct(&mine, 0.5), pct(&mine, 0.99),
        pct(&mine, 0.5) - pct(&base, 0.5), pct(&mine, 0.99) - pct(&base, 0.99)
    );
    let text = metrics.render();
    let recorded = text
        .lines()
        .find(|l| l.contains("result=\"recorded\""))
        .unwrap_or("");
    println!("{recorded}");
}

// ---- forward ----

/// One replica's webhook whose records go through a [`Router`] to `local` (while it leads) or to
/// the leader that `leadership` names.
async fn replica_webhook(
    tls: Arc<ReloadingTls>,
    peer: Arc<PeerTls>,
    local: Option<mpsc::Sender<gitops_reverser_core::admission::AdmissionRequest>>,
    leadership: Leadership,
    metrics: Arc<Metrics>,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel(8192);
    let (_local_tx, local_rx) = watch::channel(local);
    let (_lead_tx, lead_rx) = watch::channel(leadership);
    std::mem::forget((_local_tx, _lead_tx));
    tokio::spawn(
        Router {
            from_webhook: rx,
            local: local_rx,
            leadership: lead_rx,
            tls: peer,
            metrics: metrics.clone(),
            window: gitops_reverser_runtime::records::Window::in_memory(60_000),
            settled: tokio::sync::broadcast::channel(16).1,
        }
        .run(),
    );
    let hook = Arc::new(Webhook {
        tx,
        metrics,
        body_timeout_ms: webhook::BODY_TIMEOUT_MS,
    });
    let (stop, stop_rx) = watch::channel(false);
    std::mem::forget(stop);
    tokio::spawn(webhook::serve(listener, tls, hook, stop_rx));
    port
}

async fn forward_bench(conns: usize, reqs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (tls, client) = serving_and_client(dir.path());
    // The leader's core: takes records off its channel as the driver would.
    let (core_tx, mut core_rx) = mpsc::channel(8192);
    let taken = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = taken.clone();
    tokio::spawn(async move {
        while core_rx.recv().await.is_some() {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let peer = Arc::new(PeerTls::new(tls.clone()));
    let (leader_metrics, follower_metrics) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
    let endpoint = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint_addr = endpoint.local_addr().unwrap().to_string();
    let (_ep_local, ep_local_rx) = watch::channel(Some(core_tx.clone()));
    let (_ep_stop, ep_stop_rx) = watch::channel(false);
    tokio::spawn(gitops_reverser_runtime::forward::serve(
        endpoint,
        peer.clone(),
        ep_local_rx,
        tokio::sync::broadcast::channel(16).0,
        leader_metrics.clone(),
        ep_stop_rx,
    ));
    let leader_port = replica_webhook(
        tls.clone(),
        peer.clone(),
        Some(core_tx),
        Leadership::Leader,
        leader_metrics.clone(),
    )
    .await;
    let follower_port = replica_webhook(
        tls.clone(),
        peer,
        None,
        Leadership::Follower {
            leader: Some(Holder {
                identity: "leader".into(),
                endpoint: Some(endpoint_addr),
            }),
        },
        follower_metrics.clone(),
    )
    .await;

    println!(
        "forward: {conns} concurrent connections x {reqs} requests per round, p50 / p99 in ms"
    );
    let (mut lead, mut follow) = (Vec::new(), Vec::new());
    for round in 0..4 {
        let l = client_round(leader_port, client.clone(), conns, reqs).await;
        let f = client_round(follower_port, client.clone(), conns, reqs).await;
        println!(
            "round {round}: leader's webhook {:.3} / {:.3}   follower's webhook {:.3} / {:.3}",
            pct(&l, 0.5),
            pct(&l, 0.99),
            pct(&f, 0.5),
            pct(&f, 0.99)
        );
        lead.extend(l);
        follow.extend(f);
    }
    // Forwarding is asynchronous: let the last records land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lead.sort();
    follow.sort();
    println!(
        "all rounds: leader {:.3} / {:.3} ms, follower {:.3} / {:.3} ms; follower adds p50 {:+.3} ms, p99 {:+.3} ms",
        pct(&lead, 0.5), pct(&lead, 0.99), pct(&follow, 0.5), pct(&follow, 0.99),
        pct(&follow, 0.5) - pct(&lead, 0.5), pct(&follow, 0.99) - pct(&lead, 0.99)
    );
    let text = follower_metrics.render();
    for name in [
        "records_forwarded_total",
        "records_delivered_total",
        "records_forward_dropped_total",
    ] {
        for l in text
            .lines()
            .filter(|l| l.starts_with(&format!("gitopsreverser_{name}")))
        {
            println!("follower {l}");
        }
    }
    for l in text.lines().filter(|l| {
        l.starts_with("gitopsreverser_records_forward_latency_seconds_sum")
            || l.starts_with("gitopsreverser_records_forward_latency_seconds_count")
    }) {
        println!("follower {l}");
    }
    println!(
        "the leader's core took {} records",
        taken.load(std::sync::atomic::Ordering::Relaxed)
    );
}

// ---- watch ----

fn object(i: usize, round: usize, rv: u64) -> Value {
    let data: serde_json::Map<String, Value> = (0..8)
        .map(|k| {
            (
                format!("key-{k}"),
                Value::String(format!("value-{i}-{round}-{k}-{}", "x".repeat(80))),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("config-{i:06}"), "namespace": format!("ns-{:03}", i % 100), "uid": format!("uid-{i}"),
            "resourceVersion": rv.to_string(), "creationTimestamp": "2026-11-26T17:33:21Z",
            "labels": {"app": format!("app-{}", i % 50), "tier": "backend"},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2026-11-26T17:33:21Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]},
        "data": data})
}

/// The watch body: every object created, then `rounds - 1` rounds changing each.
fn watch_body(objects: usize, rounds: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rv = 10;
    for round in 0..rounds {
        for i in 0..objects {
            rv += 1;
            let kind = if round == 0 { "ADDED" } else { "MODIFIED" };
            let line = json!({"type": kind, "object": object(i, round, rv)});
            // The API server's layout: `type` first (serde_json sorts `object` before `type`).
            let obj = serde_json::to_string(&line["object"]).unwrap();
            out.extend_from_slice(format!("{{\"type\":\"{kind}\",\"object\":{obj}}}\n").as_bytes());
            let _ = line;
        }
    }
    out
}

fn configured_core() -> Core {
    let mut core = Core::new(CoreConfig::default());
    let now = Now::at(0);
    core.handle(now, Input::GitRepoConfig(NamespacedName::new("bench", "repo"), Some(serde_json::from_value(json!({
        "repoURL": "https://git.example/nowhere.git", "allowedBranches": ["main"], "push": {"maxCommits": 1000, "interval": "1h"}})).unwrap())));
    core.handle(now, Input::ClusterWatchRule("all".into(), Some(serde_json::from_value(json!({
        "gitRepoConfigRef": {"namespace": "bench", "name": "repo"},
        "rules": [{"resources": [{"version": "v1", "resource": "configmaps"}], "scope": "Namespaced"}]})).unwrap())));
    core
}

/// Answers git ops at once, as a cooperative empty remote.
fn drain(core: &mut Core, now: Now) {
    let mut results = Vec::new();
    while let Some(out) = core.poll_output() {
        if let Output::Git(op) = out {
            let r = match &op.kind {
                GitOpKind::ReadPaths { .. } => GitResult::Paths {
                    head: None,
                    entries: vec![],
                },
                GitOpKind::Push { commits, .. } => GitResult::Pushed {
                    head: format!("h{}", op.op_id),
                    blobs: blob_ids(commits),
                },
                GitOpKind::Verify { .. } => GitResult::Verified {
                    head: None,
                    landed: false,
                },
            };
            results.push((op.op_id, r));
        }
    }
    for (id, r) in results {
        core.handle(now, Input::GitDone(id, r));
        while core.poll_output().is_some() {}
    }
}

struct NoObserver;
impl StreamObserver for NoObserver {
    fn restarted(&self, _: &str, _: &StreamError) {}
}

async fn watch_server(listener: TcpListener, body: Bytes) {
    let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let (body, served) = (body.clone(), served.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (body, served) = (body.clone(), served.clone());
                async move {
                    let watch = req.uri().query().unwrap_or("").contains("watch=true");
                    let bytes = if !watch {
                        Bytes::from_static(br#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"10"},"items":[]}"#)
                    } else if !served.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        body
                    } else {
                        // Later watches stay open with nothing to say.
                        std::future::pending::<()>().await;
                        unreachable!()
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(bytes)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn watch_bench(objects: usize, rounds: usize) {
    let gvr = Gvr::new("", "v1", "configmaps");
    let body = watch_body(objects, rounds);
    let events = objects * rounds;
    println!(
        "watch: {events} events ({} MB of watch stream), {objects} objects x {rounds} rounds",
        body.len() / 1_000_000
    );

    let mut added = Vec::new();
    for trial in 0..TRIALS {
        // The core alone on the same bytes, sliced in advance.
        let evs: Vec<WatchEvent> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| WatchEvent::Apply(RawObject::new(split_line(l).unwrap().1)))
            .collect();
        let mut core = configured_core();
        let origin = Instant::now();
        let now = || Now {
            mono_ms: origin.elapsed().as_millis() as u64,
            wall_ms: 1,
        };
        core.handle(now(), Input::Watch(gvr.clone(), WatchEvent::Init));
        core.handle(now(), Input::Watch(gvr.clone(), WatchEvent::InitDone));
        drain(&mut core, now());
        let t = Instant::now();
        for ev in evs {
            core.handle(now(), Input::Watch(gvr.clone(), ev));
            drain(&mut core, now());
        }
        let alone = t.elapsed();
        drop(core);

        // The runtime's stream into the core.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(watch_server(listener, Bytes::from(body.clone())));
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let (tx, mut rx) = mpsc::channel::<Msg>(4096);
        let g = gvr.clone();
        let spec = StreamSpec {
            path: "/api/v1/configmaps".into(),
            field_selector: None,
            type_meta: ("v1".into(), "ConfigMap".into()),
            label: "bench".into(),
            crd: None,
            gvr: None,
        };
        let mut core = configured_core();
        let origin = Instant::now();
        let now = || Now {
            mono_ms: origin.elapsed().as_millis() as u64,
            wall_ms: 1,
        };
        let task = tokio::spawn(stream::run(
            client,
            spec,
            tx,
            move |ev| Msg::Input(Input::Watch(g.clone(), ev)),
            Arc::new(Notify::new()),
            watch::channel(false).1,
            Arc::new(NoObserver),
        ));
        let mut seen = 0;
        let mut t = None;
        while let Some(Msg::Input(input)) = rx.recv().await {
            let applied = matches!(input, Input::Watch(_, WatchEvent::Apply(_)));
            if applied && t.is_none() {
                t = Some(Instant::now());
            }
            core.handle(now(), input);
            drain(&mut core, now());
            if applied {
                seen += 1;
                if seen == events {
                    break;
                }
            }
        }
        let through = t.unwrap().elapsed();
        task.abort();
        server.abort();
        assert_eq!(seen, events);
        let c = core.counters();
        println!(
            "trial {trial}: core alone {:>8.0} events/s   runtime stream -> core {:>8.0} events/s   added cost {:>5.1} % of the core's ({} processed)",
            events as f64 / alone.as_secs_f64(),
            events as f64 / through.as_secs_f64(),
            (through.as_secs_f64() / alone.as_secs_f64() - 1.0) * 100.0,
            c.events_processed_total
        );
        added.push(through.as_secs_f64() / alone.as_secs_f64() - 1.0);
    }
    added.sort_by(f64::total_cmp);
    println!(
        "median added cost over {TRIALS} trials: {:.1} % of the core's own (target: at most 50 %)",
        added[added.len() / 2] * 100.0
    );
}

/// Interleaved trials of the watch benchmark: the machine's noise moves single ones by tens of
/// percent.
const TRIALS: usize = 7;
