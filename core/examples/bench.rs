//! Throughput and memory of the core on a generated history.
//!
//! `cargo run -p gitops-reverser-core --release --example bench -- [objects] [updates]`
//!
//! With `BENCH_KIND=deployments` the objects are Deployments as the API server writes them (Go's
//! field order, every default filled in, about the same size), so the figures include leaving
//! the defaults out.
//!
//! Every object (~1 KiB ConfigMap) is created, then `updates` rounds change each once; every change
//! is an admission request followed by the watch event it caused, as on a real cluster. Git ops are
//! answered at once (outside the timed sections), by a stand-in executor that renders the files and
//! reports their blob ids, as the runtime's does off the core's thread. Objects are handed over as JSON text, as the
//! runtime does, so every figure includes reading it. Reports admissions/s, watch events/s (changing
//! ones, per round, and status churn), baselines on the same bytes measured in the same run, and
//! the core's heap per tracked object once every queue has drained.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gitops_reverser_core::admission::AdmissionRequest;
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{GitOpKind, GitResult, Input, Output, WatchEvent};
use gitops_reverser_core::Digester;
use gitops_reverser_core::Now;
use gitops_reverser_core::RawObject;
use gitops_reverser_core::TypeRules;
use gitops_reverser_core::{Core, CoreConfig};
use gitops_reverser_core::{Gvr, Operation};
use serde_json::{json, Value};

/// [`Digester::digest`] or a variant, on valid JSON.
type DigestFn = fn(&mut Digester, &[u8], TypeRules) -> (u64, usize);

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Events generated, then timed, per step: 64 objects' admissions and watch events are about 230 KB
/// of text, within one core's L2 cache, as an event is when the runtime hands it over right after
/// reading it. (With 1,000 per step the text had gone cold between generation and use, and the
/// figures measured memory more than the core.)
const CHUNK: usize = 64;

fn object(i: usize, round: usize, rv: u64) -> RawObject {
    if DEPLOYMENTS.load(Ordering::Relaxed) {
        return RawObject::new(deployment_text(i, round, rv, None).into_bytes());
    }
    object_value(i, round, rv).into()
}

/// Whether the objects are Deployments (`BENCH_KIND=deployments`), else ConfigMaps.
static DEPLOYMENTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn object_value(i: usize, round: usize, rv: u64) -> Value {
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
            "annotations": {"owner": "payments"},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2026-11-26T17:33:21Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]},
        "data": data})
}

/// A Deployment of about the ConfigMap's size as the API server writes it (Go's encoder: struct
/// fields in declaration order, not sorted), its defaults filled in.
fn deployment_text(i: usize, round: usize, rv: u64, status: Option<u64>) -> String {
    let env: Vec<String> = (0..4)
        .map(|k| {
            format!(
                r#"{{"name":"KEY_{k}","value":"value-{i}-{round}-{k}-{}"}}"#,
                "x".repeat(40)
            )
        })
        .collect();
    let app = format!("app-{}", i % 50);
    let status = match status {
        Some(g) => format!(r#"{{"observedGeneration":{g},"replicas":1}}"#),
        None => "{}".into(),
    };
    format!(
        r#"{{"kind":"Deployment","apiVersion":"apps/v1","metadata":{{"name":"config-{i:06}","namespace":"ns-{ns:03}","uid":"uid-{i}","resourceVersion":"{rv}","generation":1,"creationTimestamp":"2026-11-26T17:33:21Z","labels":{{"app":"{app}","tier":"backend"}},"annotations":{{"deployment.kubernetes.io/revision":"1","owner":"payments"}},"managedFields":[{{"manager":"kubectl","operation":"Update","apiVersion":"apps/v1","time":"2026-11-26T17:33:21Z","fieldsType":"FieldsV1","fieldsV1":{{"f:spec":{{}}}}}}]}},"spec":{{"replicas":1,"selector":{{"matchLabels":{{"app":"{app}"}}}},"template":{{"metadata":{{"creationTimestamp":null,"labels":{{"app":"{app}"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.example.com/app:{round}","ports":[{{"containerPort":8080,"protocol":"TCP"}}],"env":[{env}],"resources":{{"limits":{{"cpu":"500m","memory":"256Mi"}}}},"readinessProbe":{{"httpGet":{{"path":"/ready","port":8080,"scheme":"HTTP"}},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{{}},"schedulerName":"default-scheduler"}}}},"strategy":{{"type":"RollingUpdate","rollingUpdate":{{"maxUnavailable":"25%","maxSurge":"25%"}}}},"revisionHistoryLimit":10,"progressDeadlineSeconds":600}},"status":{status}}}"#,
        ns = i % 100,
        env = env.join(","),
    )
}

fn drain(core: &mut Core, now: Now) {
    let mut results = Vec::new();
    while let Some(o) = core.poll_output() {
        if let Output::Git(op) = o {
            let r = match op.kind {
                GitOpKind::ReadPaths { .. } => GitResult::Paths {
                    head: None,
                    entries: Vec::new(),
                },
                // The executor renders and hashes the files (off the core's thread).
                GitOpKind::Push { commits, .. } => GitResult::Pushed {
                    head: format!("h{}", op.op_id),
                    blobs: gitops_reverser_core::io::blob_ids(&commits),
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
        drain(core, now);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let objects: usize = args.next().map_or(100_000, |a| a.parse().expect("objects"));
    let updates: usize = args.next().map_or(1, |a| a.parse().expect("updates"));
    let deployments = std::env::var("BENCH_KIND").is_ok_and(|k| k == "deployments");
    DEPLOYMENTS.store(deployments, Ordering::Relaxed);
    let gvr = match deployments {
        true => Gvr::new("apps", "v1", "deployments"),
        false => Gvr::new("", "v1", "configmaps"),
    };
    let heap_before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut core = Core::new(CoreConfig::default());
    let mut now = Now::at(0);
    let repo = serde_json::from_value(json!({"repoURL": "https://git.example/bench.git", "allowedBranches": ["main"], "push": {"maxCommits": 100}})).unwrap();
    core.handle(
        now,
        Input::GitRepoConfig(NamespacedName::new("ops", "repo"), Some(repo)),
    );
    let rule = serde_json::from_value(json!({"gitRepoConfigRef": {"name": "repo", "namespace": "ops"},
        "rules": [{"scope": "Namespaced", "resources": [{"group": gvr.group, "version": "v1", "resource": gvr.resource}]}]})).unwrap();
    core.handle(now, Input::ClusterWatchRule("all".into(), Some(rule)));
    core.handle(now, Input::Watch(gvr.clone(), WatchEvent::Init));
    core.handle(now, Input::Watch(gvr.clone(), WatchEvent::InitDone));
    drain(&mut core, now);

    let (mut adm_time, mut watch_time) = (Duration::ZERO, Duration::ZERO);
    let (mut adm_n, mut watch_n) = (0usize, 0usize);
    let mut rv = 1u64;
    let mut last_rv = vec![0u64; objects];
    let mut round_times = Vec::new();
    for round in 0..=updates {
        let round_start = watch_time;
        for start in (0..objects).step_by(CHUNK) {
            let end = (start + CHUNK).min(objects);
            let mut adm = Vec::with_capacity(CHUNK);
            let mut watch = Vec::with_capacity(CHUNK);
            for (i, last) in last_rv.iter_mut().enumerate().take(end).skip(start) {
                let op = if round == 0 {
                    Operation::Create
                } else {
                    Operation::Update
                };
                let old = (round > 0).then(|| object(i, round - 1, *last));
                let new_for_admission = object(i, round, *last);
                adm.push(Input::Admission(AdmissionRequest {
                    uid: format!("req-{rv}"),
                    gvr: gvr.clone(),
                    namespace: Some(format!("ns-{:03}", i % 100)),
                    name: format!("config-{i:06}"),
                    operation: op,
                    username: format!("user-{}", i % 17),
                    dry_run: false,
                    object: Some(new_for_admission),
                    old_object: old,
                    sub_resource: None,
                }));
                watch.push(Input::Watch(
                    gvr.clone(),
                    WatchEvent::Apply(object(i, round, rv)),
                ));
                *last = rv;
                rv += 1;
            }
            now.mono_ms += 10;
            now.wall_ms += 10;
            let t = Instant::now();
            for input in adm {
                core.handle(now, input);
            }
            adm_time += t.elapsed();
            adm_n += end - start;
            let t = Instant::now();
            for input in watch {
                core.handle(now, input);
            }
            watch_time += t.elapsed();
            watch_n += end - start;
            drain(&mut core, now);
        }
        round_times.push(watch_time - round_start);
    }
    // Status churn: every object again with a new resourceVersion and a status, same content.
    // Baselines measured in the same run, on the same bytes:
    // - serde_json into a `Value` and dropping it: what the core paid per event, before doing any
    //   work, when events arrived as `Value`s;
    // - serde_json reading the text into nothing (`IgnoredAny`): one pass over the text with the
    //   standard crate;
    // - the core's digest alone: parse, sanitize, canonical bytes and xxh64, nothing else.
    let (mut churn_time, churn_n) = (Duration::ZERO, objects);
    // - the same digest keeping the defaults: the defaults pass's net cost is the difference.
    let (mut value_time, mut ignored_time, mut digest_time, mut keep_time) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut digester = Digester::default();
    for start in (0..objects).step_by(CHUNK) {
        let raws: Vec<RawObject> = (start..(start + CHUNK).min(objects))
            .map(|i| {
                rv += 1;
                if DEPLOYMENTS.load(Ordering::Relaxed) {
                    return RawObject::new(deployment_text(i, updates, rv, Some(rv)).into_bytes());
                }
                let mut o = object_value(i, updates, rv);
                o["status"] = json!({"observedGeneration": rv});
                o.into()
            })
            .collect();
        let t = Instant::now();
        for raw in &raws {
            let v: Value = serde_json::from_slice(raw.as_bytes()).unwrap();
            drop(std::hint::black_box(v));
        }
        value_time += t.elapsed();
        let t = Instant::now();
        for raw in &raws {
            let v: serde::de::IgnoredAny = serde_json::from_slice(raw.as_bytes()).unwrap();
            std::hint::black_box(v);
        }
        ignored_time += t.elapsed();
        // The digest as the core takes it, then keeping the defaults, on the same bytes.
        for (digest, total) in [
            (
                (|d, json, rules| d.digest(json, rules).unwrap()) as DigestFn,
                &mut digest_time,
            ),
            (
                |d, json, rules| d.digest_keeping_defaults(json, rules).unwrap(),
                &mut keep_time,
            ),
        ] {
            let t = Instant::now();
            for raw in &raws {
                std::hint::black_box(digest(&mut digester, raw.as_bytes(), TypeRules::of(&gvr)));
            }
            *total += t.elapsed();
        }
        let batch: Vec<Input> = raws
            .into_iter()
            .map(|o| Input::Watch(gvr.clone(), WatchEvent::Apply(o)))
            .collect();
        let t = Instant::now();
        for input in batch {
            core.handle(now, input);
        }
        churn_time += t.elapsed();
    }
    now.mono_ms += 120_000;
    core.handle(now, Input::Tick);
    drain(&mut core, now);
    let heap = LIVE_BYTES.load(Ordering::Relaxed) - heap_before;
    let a = core.attribution_counters();
    let c = core.counters();
    let per_object = heap as f64 / core.live_objects() as f64;
    println!(
        "objects: {objects} {}, rounds: {} (create + {updates} update)",
        gvr.resource,
        updates + 1
    );
    println!(
        "admissions: {adm_n} in {:.3} s = {:.0}/s",
        adm_time.as_secs_f64(),
        adm_n as f64 / adm_time.as_secs_f64()
    );
    println!("watch events: {watch_n} in {:.3} s = {:.0}/s (includes planning every commit; the stand-in executor's rendering is not timed)", watch_time.as_secs_f64(), watch_n as f64 / watch_time.as_secs_f64());
    let per_round: Vec<String> = round_times
        .iter()
        .map(|d| format!("{:.0}/s", objects as f64 / d.as_secs_f64()))
        .collect();
    println!(
        "  per round (create, then updates): {}",
        per_round.join(", ")
    );
    println!(
        "status-churn watch events (no commit): {churn_n} in {:.3} s = {:.0}/s",
        churn_time.as_secs_f64(),
        churn_n as f64 / churn_time.as_secs_f64()
    );
    let rate = |d: Duration| churn_n as f64 / d.as_secs_f64();
    println!(
        "baselines on the same bytes: serde_json to Value {:.0}/s, serde_json to IgnoredAny {:.0}/s, core digest alone {:.0}/s",
        rate(value_time),
        rate(ignored_time),
        rate(digest_time)
    );
    let watch_rate = watch_n as f64 / watch_time.as_secs_f64();
    // Per event, in µs: what leaving defaults out adds to the digest, against what a changing
    // watch event and a status-churn event cost the core in all.
    let us = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / n as f64;
    let pass_us = us(digest_time, churn_n) - us(keep_time, churn_n);
    println!(
        "defaults pass: digest {:.0}/s, keeping defaults {:.0}/s: {pass_us:.2} us per event = {:.1} % of a changing watch event ({:.2} us), {:.1} % of a status-churn event ({:.2} us)",
        rate(digest_time),
        rate(keep_time),
        100.0 * pass_us / us(watch_time, watch_n),
        us(watch_time, watch_n),
        100.0 * pass_us / us(churn_time, churn_n),
        us(churn_time, churn_n),
    );
    println!(
        "status churn vs serde_json to Value: {:.2}x its rate; changing watch event: {:.2}x",
        rate(churn_time) / rate(value_time),
        watch_rate / rate(value_time),
    );
    println!(
        "admissions + changing watch events: {:.0}/s",
        (adm_n + watch_n) as f64 / (adm_time + watch_time).as_secs_f64()
    );
    println!(
        "attribution: exact {} hash-only {} miss {}",
        a.exact_total, a.hash_only_total, a.miss_total
    );
    println!(
        "commits pushed: {}, pending: {:?}",
        c.commits_total,
        core.branch(&NamespacedName::new("ops", "repo"), "main")
            .map(|b| b.pending_commits)
    );
    println!("core heap after drain: {heap} bytes = {per_object:.0} bytes per tracked object ({} tracked)", core.live_objects());
    assert_eq!(
        a.exact_total as usize, watch_n,
        "every change is attributed exactly"
    );
}
