//! Many objects through the operator's real list+watch and git paths, with its memory.
//!
//! `cargo run -p gitops-reverser-runtime --release --example scale_bench -- [objects] [changes]`
//! (defaults 1000000 and 20000; `scripts/bench-scale` runs it).
//!
//! A loopback HTTP server speaks the API server's wire format for ConfigMaps of about 1 KiB in 100
//! namespaces: the list in pages of the client's `limit` with `continue` tokens (items without
//! `apiVersion`/`kind`, as the API server sends them), then a watch with `changes` MODIFIED events
//! and a BOOKMARK every 1,000. The runtime's stream code (`kube/stream.rs`, kube's client) feeds
//! the core; the core's git ops run on the git executor (`git::execute`, libgit2) against a bare
//! repository on disk, as the driver runs them, and the streams pause while the core's queue is
//! backlogged, as the driver pauses them. Reported: the time until the remote holds every
//! object's final file, the process's peak RSS up to then (the server and its pages included, so
//! an upper bound for the operator), its RSS once idle, and `git fast-import` writing the same
//! files into an empty repository in the same run, as the baseline.

use std::convert::Infallible;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{GitResult, Input, Output, WatchEvent};
use gitops_reverser_core::Gvr;
use gitops_reverser_core::Now;
use gitops_reverser_core::{Core, CoreConfig};
use gitops_reverser_runtime::git::{execute, Workspace};
use gitops_reverser_runtime::kube::stream::{self, StreamError, StreamObserver, StreamSpec};
use gitops_reverser_runtime::msg::Msg;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

/// The operator's allocator: its RSS figures mean the operator's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Namespaces the objects are spread over.
const NAMESPACES: usize = 100;
/// The list's resourceVersion; the watch's events follow it.
const LIST_RV: u64 = 100;
/// A BOOKMARK after this many watch events.
const BOOKMARK_EVERY: usize = 1_000;

/// Object `i` at `round` (0: as listed), without `apiVersion`/`kind` when it is a list item.
fn object(i: usize, round: usize, rv: u64, typed: bool) -> String {
    let data: serde_json::Map<String, serde_json::Value> = (0..8)
        .map(|k| {
            (
                format!("key-{k}"),
                json!(format!("value-{i}-{round}-{k}-{}", "x".repeat(90))),
            )
        })
        .collect();
    let mut o = json!({
        "metadata": {"name": format!("config-{i:07}"), "namespace": format!("ns-{:03}", i % NAMESPACES),
            "uid": format!("uid-{i}"), "resourceVersion": rv.to_string(),
            "creationTimestamp": "2026-12-06T10:00:00Z", "labels": {"app": format!("app-{}", i % 50)}},
        "data": data});
    if typed {
        o["apiVersion"] = json!("v1");
        o["kind"] = json!("ConfigMap");
    }
    o.to_string()
}

/// The list page from `start`, at most `limit` items.
fn page(objects: usize, start: usize, limit: usize) -> Bytes {
    let end = (start + limit).min(objects);
    let mut out = String::with_capacity((end - start) * 1_200 + 200);
    let cont = if end < objects {
        format!(r#","continue":"{end}""#)
    } else {
        String::new()
    };
    out.push_str(&format!(
        r#"{{"kind":"ConfigMapList","apiVersion":"v1","metadata":{{"resourceVersion":"{LIST_RV}"{cont}}},"items":["#
    ));
    for i in start..end {
        if i > start {
            out.push(',');
        }
        out.push_str(&object(i, 0, 10 + i as u64, false));
    }
    out.push_str("]}");
    Bytes::from(out)
}

/// Which object the `n`th watch event changes: spread over the whole range.
fn changed(n: usize, objects: usize, changes: usize) -> usize {
    (n * (objects / changes.max(1)).max(1)) % objects
}

/// The watch: `changes` MODIFIED events with a BOOKMARK every [`BOOKMARK_EVERY`], made as they are
/// sent (the body is never whole in memory), then silence.
fn watch_lines(objects: usize, changes: usize) -> impl futures_util::Stream<Item = Bytes> {
    let mut n = 0;
    futures_util::stream::iter(std::iter::from_fn(move || {
        if n >= changes {
            return None;
        }
        let rv = LIST_RV + 1 + n as u64;
        let i = changed(n, objects, changes);
        let mut line = format!(
            "{{\"type\":\"MODIFIED\",\"object\":{}}}\n",
            object(i, 1, rv, true)
        );
        n += 1;
        if n % BOOKMARK_EVERY == 0 {
            line.push_str(&format!(
                "{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}}}}}}\n"
            ));
        }
        Some(Bytes::from(line))
    }))
}

fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn serve(listener: TcpListener, objects: usize, changes: usize) {
    let watched = Arc::new(AtomicBool::new(false));
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let watched = watched.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let watched = watched.clone();
                async move {
                    let q = req.uri().query().unwrap_or("").to_string();
                    type Body = http_body_util::Either<
                        Full<Bytes>,
                        StreamBody<
                            futures_util::stream::BoxStream<
                                'static,
                                Result<Frame<Bytes>, Infallible>,
                            >,
                        >,
                    >;
                    let body: Body = if query(&q, "watch") != Some("true") {
                        let start = query(&q, "continue")
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(0);
                        let limit = query(&q, "limit")
                            .and_then(|l| l.parse().ok())
                            .unwrap_or(500);
                        http_body_util::Either::Left(Full::new(page(objects, start, limit)))
                    } else if !watched.swap(true, Ordering::SeqCst) {
                        use futures_util::StreamExt;
                        let lines = watch_lines(objects, changes)
                            .map(|b| Ok(Frame::data(b)))
                            .chain(futures_util::stream::pending());
                        http_body_util::Either::Right(StreamBody::new(lines.boxed()))
                    } else {
                        // A reconnect: nothing more to say.
                        use futures_util::StreamExt;
                        http_body_util::Either::Right(StreamBody::new(
                            futures_util::stream::pending().boxed(),
                        ))
                    };
                    Ok::<_, Infallible>(Response::new(body))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

struct Restarts(AtomicU64);
impl StreamObserver for Restarts {
    fn restarted(&self, label: &str, why: &StreamError) {
        self.0.fetch_add(1, Ordering::Relaxed);
        eprintln!("stream {label} restarted: {why}");
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> u64 {
    kib / 1024
}

/// Files on `branch` of the bare repository at `dir`.
fn files_on(dir: &std::path::Path, branch: &str) -> usize {
    let out = Command::new("git")
        .args([
            "-C",
            dir.to_str().unwrap(),
            "ls-tree",
            "-r",
            "--name-only",
            branch,
        ])
        .output()
        .unwrap();
    out.stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

/// `git fast-import` of one file per object (its final JSON) into an empty repository, in seconds.
fn fast_import_baseline(dir: &std::path::Path, objects: usize, changes: usize) -> f64 {
    let ok = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main", dir.to_str().unwrap()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut final_round = vec![0u8; objects];
    for n in 0..changes {
        final_round[changed(n, objects, changes)] = 1;
    }
    let t = Instant::now();
    let mut child = Command::new("git")
        .args(["-C", dir.to_str().unwrap(), "fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        w.write_all(
            b"commit refs/heads/main\ncommitter bench <bench@example.com> 0 +0000\ndata 5\nseed\n",
        )
        .unwrap();
        for (i, round) in final_round.iter().enumerate() {
            let body = object(i, *round as usize, 0, true);
            writeln!(
                w,
                "M 100644 inline v1/configmaps/ns-{:03}/config-{i:07}.yaml\ndata {}",
                i % NAMESPACES,
                body.len()
            )
            .unwrap();
            w.write_all(body.as_bytes()).unwrap();
            w.write_all(b"\n").unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (objects, changes) = (n(0, 1_000_000), n(1, 20_000));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    println!("scale_bench: {objects} ConfigMaps in {NAMESPACES} namespaces, then {changes} watch changes");
    let base = fast_import_baseline(&tmp.path().join("baseline.git"), objects, changes);
    println!("baseline: git fast-import of the {objects} final files: {base:.1} s");
    let hwm_before = status_kib("VmHWM");
    let (seed_s, peak_kib, idle_kib, files, commits) =
        rt.block_on(run(tmp.path(), objects, changes));
    println!(
        "operator path: every file on the remote after {seed_s:.1} s ({files} files, {commits} commits), {:.2}x the fast-import baseline",
        seed_s / base
    );
    println!(
        "RSS: peak {} MiB up to then (the process's before the run: {} MiB), {} MiB idle 10 s later, with {objects} objects watched",
        mib(peak_kib),
        mib(hwm_before),
        mib(idle_kib)
    );
    assert_eq!(files, objects, "every object's file is on the remote");
}

async fn run(dir: &std::path::Path, objects: usize, changes: usize) -> (f64, u64, u64, usize, u64) {
    let remote = dir.join("remote.git");
    git2::Repository::init_bare(&remote).unwrap();
    let ws = Arc::new(Workspace::new(dir.join("clones")).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve(listener, objects, changes));

    let gvr = Gvr::new("", "v1", "configmaps");
    let mut core = Core::new(CoreConfig {
        file_remotes: true,
        ..CoreConfig::default()
    });
    let origin = Instant::now();
    let now = move || Now {
        mono_ms: origin.elapsed().as_millis() as u64,
        wall_ms: 1_796_083_200_000 + origin.elapsed().as_millis() as i64,
    };
    let repo = NamespacedName::new("bench", "repo");
    core.handle(
        now(),
        Input::GitRepoConfig(
            repo.clone(),
            Some(
                serde_json::from_value(json!({
        "repoURL": format!("file://{}", remote.display()), "allowedBranches": ["main"],
        "push": {"maxCommits": 20, "interval": "1s"}}))
                .unwrap(),
            ),
        ),
    );
    core.handle(now(), Input::ClusterWatchRule("all".into(), Some(serde_json::from_value(json!({
        "gitRepoConfigRef": {"namespace": "bench", "name": "repo"},
        "rules": [{"resources": [{"version": "v1", "resource": "configmaps"}], "scope": "Namespaced"}]})).unwrap())));

    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let (tx, mut rx) = mpsc::channel::<Msg>(4096);
    let g = gvr.clone();
    let spec = StreamSpec {
        path: "/api/v1/configmaps".into(),
        field_selector: None,
        type_meta: ("v1".into(), "ConfigMap".into()),
        label: "configmaps".into(),
        crd: None,
        gvr: None,
    };
    // Paused while the core's queue is backlogged, as the driver does (`Watches::set_paused`).
    let (paused_tx, paused_rx) = watch::channel(false);
    let stream_task = tokio::spawn(stream::run(
        client,
        spec,
        tx,
        move |ev| Msg::Input(Input::Watch(g.clone(), ev)),
        Arc::new(Notify::new()),
        paused_rx,
        Arc::new(Restarts(AtomicU64::new(0))),
    ));
    let (git_tx, mut git_rx) = mpsc::unbounded_channel::<(u64, GitResult)>();

    let t0 = Instant::now();
    let (mut listed, mut changes_seen, mut in_flight) = (false, 0usize, 0usize);
    loop {
        while let Some(out) = core.poll_output() {
            if let Output::Git(op) = out {
                in_flight += 1;
                let (ws, git_tx) = (ws.clone(), git_tx.clone());
                tokio::task::spawn_blocking(move || {
                    let r = execute(&ws, &op, None);
                    if let GitResult::Failed { reason, .. } = &r {
                        eprintln!("git op failed: {reason}");
                    }
                    let _ = git_tx.send((op.op_id, r));
                });
            }
        }
        paused_tx.send_if_modified(|p| {
            let now = core.backlogged();
            std::mem::replace(p, now) != now
        });
        if listed && changes_seen == changes && core.unfinished() == (0, 0) {
            break;
        }
        let deadline = core
            .poll_deadline()
            .map(|ms| tokio::time::Instant::from_std(origin + Duration::from_millis(ms)));
        let tick = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some((id, r)) = git_rx.recv() => {
                in_flight -= 1;
                core.handle(now(), Input::GitDone(id, r));
            }
            Some(Msg::Input(input)) = rx.recv() => {
                match &input {
                    Input::Watch(_, WatchEvent::InitDone) => listed = true,
                    Input::Watch(_, WatchEvent::Apply(_)) => changes_seen += 1,
                    _ => {}
                }
                core.handle(now(), input);
            }
            _ = tick => core.handle(now(), Input::Tick),
        }
    }
    let seed_s = t0.elapsed().as_secs_f64();
    assert_eq!(in_flight, 0);
    let peak = status_kib("VmHWM");
    let commits = core.counters().commits_total;
    // Idle: the watch stays open with nothing to say, the clone closed.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = status_kib("VmRSS");
    stream_task.abort();
    server.abort();
    (seed_s, peak, idle, files_on(&remote, "main"), commits)
}
