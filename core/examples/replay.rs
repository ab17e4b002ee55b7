//! Replays a recorded history (AdmissionReview bodies and watch streams from a real kube-apiserver)
//! through the core, answering git ops from an in-memory branch, and prints the commits it made.
//!
//! `cargo run -p gitops-reverser-core --example replay -- [fixture-dir]`
//! (default: the kube-apiserver 1.20 recording in `core/tests/fixtures`). Each admission is fed
//! before the watch event that follows it in the recording's resourceVersion order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gitops_reverser_core::admission::parse_review;
use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{GitOpKind, GitResult, Input, Output, PlannedCommit, WatchEvent};
use gitops_reverser_core::split_watch_line;
use gitops_reverser_core::Gvr;
use gitops_reverser_core::Now;
use gitops_reverser_core::{Core, CoreConfig};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kube-apiserver-1.20")
        });
    let mut inputs: Vec<(u64, u8, Input)> = Vec::new();
    // Order: by resourceVersion; an admission goes right before the event whose version follows its base.
    for line in std::fs::read_to_string(dir.join("admission.jsonl"))?.lines() {
        let req = parse_review(line.as_bytes())?;
        let base: u64 = req
            .old_object
            .as_ref()
            .and_then(|o| {
                o.to_value()?
                    .pointer("/metadata/resourceVersion")?
                    .as_str()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        inputs.push((base, 0, Input::Admission(req)));
    }
    let mut gvrs = Vec::new();
    for (file, gvr) in [
        ("watch-configmaps.jsonl", Gvr::new("", "v1", "configmaps")),
        (
            "watch-deployments.jsonl",
            Gvr::new("apps", "v1", "deployments"),
        ),
    ] {
        gvrs.push(gvr.clone());
        for line in std::fs::read_to_string(dir.join(file))?.lines() {
            let v: Value = serde_json::from_str(line)?;
            let rv: u64 = v
                .pointer("/object/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("0")
                .parse()?;
            let (kind, object) = split_watch_line(line.as_bytes())?;
            let ev = if kind == "DELETED" {
                WatchEvent::Delete(object)
            } else {
                WatchEvent::Apply(object)
            };
            inputs.push((rv, 1, Input::Watch(gvr.clone(), ev)));
        }
    }
    // A CREATE has no base: place it just before the ADDED event of its object.
    let mut creates: Vec<(String, usize)> = Vec::new();
    for (i, (_, kind, input)) in inputs.iter().enumerate() {
        if let (0, Input::Admission(r)) = (kind, input) {
            if r.old_object.is_none() {
                creates.push((r.name.clone(), i));
            }
        }
    }
    for (name, i) in creates {
        let added = inputs.iter().filter(|(_, k, inp)| *k == 1 && matches!(inp, Input::Watch(_, WatchEvent::Apply(o)) if o.to_value().is_some_and(|o| o["metadata"]["name"] == name.as_str()))).map(|(rv, ..)| *rv).min();
        inputs[i].0 = added.map_or(0, |rv| rv - 1);
    }
    inputs.sort_by_key(|(rv, kind, _)| (*rv, *kind));

    let mut core = Core::new(CoreConfig::default());
    let mut now = Now {
        mono_ms: 0,
        wall_ms: 1_790_000_000_000,
    };
    let repo = NamespacedName::new("team-a", "my-repo");
    core.handle(
        now,
        Input::GitRepoConfig(
            repo,
            Some(serde_json::from_value(
                json!({"repoURL": "https://git.example/replay.git", "allowedBranches": ["main"]}),
            )?),
        ),
    );
    core.handle(now, Input::WatchRule(NamespacedName::new("team-a", "all"), Some(serde_json::from_value(json!({"gitRepoConfigRef": "my-repo",
        "baseFolder": "clusters/prod", "resources": [{"group": "", "version": "v1", "resource": "configmaps"}, {"group": "apps", "version": "v1", "resource": "deployments"}]}))?)));
    for g in &gvrs {
        core.handle(now, Input::Watch(g.clone(), WatchEvent::Init));
        core.handle(now, Input::Watch(g.clone(), WatchEvent::InitDone));
    }
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut commits: Vec<PlannedCommit> = Vec::new();
    let mut drive = |core: &mut Core, now: Now| {
        while let Some(out) = core.poll_output() {
            match out {
                Output::Git(op) => {
                    let result = match &op.kind {
                        GitOpKind::ReadPaths { .. } => GitResult::Paths {
                            head: None,
                            entries: vec![],
                        },
                        GitOpKind::Push {
                            commits: planned, ..
                        } => {
                            for c in planned {
                                for (p, b) in &c.writes {
                                    match b {
                                        Some(b) => files.insert(p.clone(), b.render().to_vec()),
                                        None => files.remove(p),
                                    };
                                }
                            }
                            commits.extend(planned.iter().cloned());
                            GitResult::Pushed {
                                head: format!("{}", commits.len()),
                                blobs: gitops_reverser_core::io::blob_ids(planned),
                            }
                        }
                        GitOpKind::Verify { .. } => GitResult::Verified {
                            head: None,
                            landed: false,
                        },
                    };
                    core.handle(now, Input::GitDone(op.op_id, result));
                }
                Output::Refused { subject, reason } => eprintln!("refused {subject}: {reason}"),
                _ => {}
            }
        }
    };
    drive(&mut core, now);
    for (_, _, input) in inputs {
        now.mono_ms += 100;
        now.wall_ms += 100;
        core.handle(now, input);
        drive(&mut core, now);
    }
    while let Some(at) = core.poll_deadline() {
        now = Now {
            mono_ms: at,
            wall_ms: now.wall_ms + (at - now.mono_ms) as i64,
        };
        core.handle(now, Input::Tick);
        drive(&mut core, now);
        if core.counters().commits_total > 0
            && core
                .poll_deadline()
                .is_none_or(|d| d > now.mono_ms + 120_000)
        {
            break;
        }
    }
    for c in &commits {
        println!(
            "{:<16} {}",
            c.author.name,
            c.message.lines().next().unwrap_or_default()
        );
    }
    println!("\nfiles on the branch:");
    for (p, b) in &files {
        println!("--- {p}\n{}", String::from_utf8_lossy(b));
    }
    let a = core.attribution_counters();
    println!("attribution: exact {} hash-only {} miss {}; no-op admissions skipped {}, dry runs skipped {}", a.exact_total, a.hash_only_total, a.miss_total, a.noop_skipped_total, a.dry_run_skipped_total);
    Ok(())
}
