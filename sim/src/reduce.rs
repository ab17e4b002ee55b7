//! Shrinking on recorded inputs: delta debugging (Zeller and Hildebrandt's ddmin, complement
//! steps) over the entries of a failing run's recording, after [`crate::shrink`] has cut the
//! steps and the faults.
//!
//! A candidate is a subsequence of the recorded inputs, replayed into a fresh core
//! ([`gitops_reverser_core::replay`]); it still fails when the replay shows the same violation,
//! judged against the world's write history of the full run (the truth does not change when the
//! core sees fewer inputs: a write was made by whoever made it). Checked on replays: wrong
//! attribution. The other checkers need the world's state (an empty commit needs the remote's
//! tree, which outside writers change unseen by the recording) and are not replayed; such a
//! failure is saved unreduced. A candidate that no longer makes sense to the
//! core (a git result for an op it never planned) fails some other way, or panics, and is
//! simply not taken.
//!
//! A list is kept or cut whole (its `Init`, every `InitApply` and its `InitDone`): a list with
//! an item cut says an object that exists is gone, which no API server does. Cut piecemeal, the
//! first reduction of seed 7001982 kept a list without the object the bug was about, and the
//! replay failed by another path, one no cluster can take.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use gitops_reverser_core::io::{FileBody, Input, PlannedCommit, WatchEvent};
use gitops_reverser_core::record::{Entry, Recording, Restart};
use gitops_reverser_core::replay::replay;
use gitops_reverser_core::CoreConfig;

use crate::checks::attribution::AttributionCheck;
use crate::cluster::WriteRecord;
use crate::world::FALLBACK;

/// Every write per identifier: what commits are judged against.
pub type Truth = BTreeMap<String, Vec<WriteRecord>>;

/// What a shrink on inputs made.
pub struct Reduced {
    /// The smallest failing recording found.
    pub recording: Recording,
    /// Replays it took.
    pub tests: usize,
}

/// The part of a violation that names the failure (no times, no trails), when replays can judge
/// it; `None` for the checkers that need the world's final state.
pub fn signature(violation: &str) -> Option<String> {
    let line = violation.lines().next()?;
    let line = match line.strip_prefix("[t=") {
        Some(rest) => rest.split_once("] ")?.1,
        None => line,
    };
    let i = line.find(", who did not make that change")?;
    Some(line[..i].to_string())
}

/// The violations a replay of `rec` shows, judged against `truth`. A panic of the core is one.
pub fn replay_violations(rec: &Recording, truth: &Truth) -> Vec<String> {
    let replayed = match catch_unwind(AssertUnwindSafe(|| replay(rec))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return vec![format!("core panicked: {msg}")];
        }
    };
    let mut out = Vec::new();
    // Not strict: a shorter input stream loses admissions, and the fallback author is then right.
    let mut attribution =
        AttributionCheck::new(FALLBACK, false, rec.header.config.correlation.ttl_ms);
    for c in &replayed.commits {
        let commit = PlannedCommit {
            author: c.author.clone(),
            author_time_ms: 0,
            committer: c.committer.clone(),
            commit_time_ms: 0,
            message: c.message.clone(),
            writes: c
                .writes
                .iter()
                .map(|(p, t)| {
                    let body = t.as_ref().map(|t| FileBody::Yaml(Arc::from(t.as_bytes())));
                    (p.clone(), body)
                })
                .collect(),
        };
        // A replay's files are text: a sealed one is judged as its text, not decrypted.
        attribution.check_commit(&c.url, &c.branch, &commit, truth, false, &mut out);
    }
    out
}

#[derive(Clone)]
enum Item {
    Entry(Entry),
    Restart(CoreConfig),
}

fn items_of(rec: &Recording) -> Vec<Item> {
    let mut out = Vec::with_capacity(rec.entries.len() + rec.restarts.len());
    let mut restarts = rec.restarts.iter().peekable();
    for (i, e) in rec.entries.iter().enumerate() {
        while let Some(r) = restarts.next_if(|r| r.at == i) {
            out.push(Item::Restart(r.config.clone()));
        }
        out.push(Item::Entry(e.clone()));
    }
    out.extend(restarts.map(|r| Item::Restart(r.config.clone())));
    out
}

/// The unit each item is cut with: the items of one list share one, every other item has its
/// own. Units are numbered in order of their first item.
fn units_of(items: &[Item]) -> Vec<usize> {
    let mut open = BTreeMap::new();
    let mut next = 0;
    let mut fresh = || {
        next += 1;
        next - 1
    };
    items
        .iter()
        .map(|it| match it {
            Item::Restart(_) => {
                // A restart ends every list in progress.
                open.clear();
                fresh()
            }
            Item::Entry(Entry {
                input: Input::Watch(gvr, ev),
                ..
            }) => match ev {
                WatchEvent::Init => {
                    let u = fresh();
                    open.insert(gvr.clone(), u);
                    u
                }
                WatchEvent::InitApply(_) => open.get(gvr).copied().unwrap_or_else(&mut fresh),
                WatchEvent::InitDone => open.remove(gvr).unwrap_or_else(&mut fresh),
                WatchEvent::Apply(_) | WatchEvent::Delete(_) => fresh(),
            },
            Item::Entry(_) => fresh(),
        })
        .collect()
}

fn recording_of(header: &Recording, items: &[Item]) -> Recording {
    let mut rec = Recording {
        header: header.header.clone(),
        entries: Vec::new(),
        restarts: Vec::new(),
        bad_lines: Vec::new(),
    };
    for it in items {
        match it {
            Item::Entry(e) => rec.entries.push(e.clone()),
            Item::Restart(config) => rec.restarts.push(Restart {
                at: rec.entries.len(),
                config: config.clone(),
            }),
        }
    }
    rec
}

/// Whether a replay of `rec` still shows a violation with `signature`.
pub fn reproduces(rec: &Recording, truth: &Truth, signature: &str) -> bool {
    replay_violations(rec, truth)
        .iter()
        .any(|v| self::signature(v).as_deref() == Some(signature))
}

/// The smallest subsequence of `rec`'s inputs found that still shows `signature`, in at most
/// `tests_max` replays. `rec` itself must show it.
pub fn reduce(rec: &Recording, truth: &Truth, signature: &str, tests_max: usize) -> Reduced {
    // Candidates that make no sense panic in the core; their messages are noise here.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let all = items_of(rec);
    let unit_of = units_of(&all);
    // The units kept; ddmin cuts among them.
    let mut items: Vec<usize> = (0..unit_of.iter().max().map_or(0, |m| m + 1)).collect();
    let pick = |units: &[usize]| -> Vec<Item> {
        let kept: std::collections::BTreeSet<usize> = units.iter().copied().collect();
        all.iter()
            .zip(&unit_of)
            .filter(|(_, u)| kept.contains(u))
            .map(|(it, _)| it.clone())
            .collect()
    };
    let mut tests = 0;
    let mut n = 2usize;
    while items.len() >= 2 && tests < tests_max {
        let chunk = items.len().div_ceil(n);
        let mut cut = false;
        for start in (0..items.len()).step_by(chunk) {
            let end = (start + chunk).min(items.len());
            let candidate: Vec<usize> = items[..start]
                .iter()
                .chain(&items[end..])
                .copied()
                .collect();
            tests += 1;
            if reproduces(&recording_of(rec, &pick(&candidate)), truth, signature) {
                items = candidate;
                n = (n - 1).max(2);
                cut = true;
                break;
            }
            if tests >= tests_max {
                break;
            }
        }
        if !cut {
            if n >= items.len() {
                break;
            }
            n = (n * 2).min(items.len());
        }
    }
    std::panic::set_hook(hook);
    Reduced {
        recording: recording_of(rec, &pick(&items)),
        tests,
    }
}
