//! The git executor: runs the core's [`GitOp`]s against real remotes and returns their results.
//!
//! Each op runs on tokio's blocking pool (libgit2 is blocking), one at a time per clone directory,
//! so the task driving the core never waits on the network or the disk.

pub mod commit;
pub mod creds;
pub mod delta;
pub mod errors;
pub mod exec;
pub mod known_hosts;
pub mod pack;
pub mod sign;
pub mod sops;
pub mod tree;
pub mod url;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gitops_reverser_core::config::NamespacedName;
use gitops_reverser_core::io::{GitOp, GitOpKind, GitResult};

pub use creds::Credentials;
pub use exec::{execute, Workspace};

/// Runs git ops off the async threads.
#[derive(Clone)]
pub struct GitExecutor {
    ws: Workspace,
    locks: Arc<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>>,
    /// Clone directories no branch used at the last collection.
    unused: Arc<Mutex<BTreeSet<PathBuf>>>,
    /// Clone directories whose op ran over [`exec::op_ms_max`] and still runs on its
    /// blocking thread: no op starts there until it ends.
    stuck: Arc<Mutex<BTreeSet<PathBuf>>>,
}

impl GitExecutor {
    /// An executor keeping its clones under `work_dir`.
    pub fn new(work_dir: impl Into<PathBuf>) -> std::io::Result<GitExecutor> {
        Ok(GitExecutor {
            ws: Workspace::new(work_dir)?,
            locks: Arc::default(),
            unused: Arc::default(),
            stuck: Arc::default(),
        })
    }

    /// Removes the clones no branch has used since the previous call: a GitRepoConfig deleted
    /// or made invalid, its URL changed, a branch no longer written. Two calls in a row must find
    /// a clone unused, so that a configuration briefly invalid (a Secret being replaced, say)
    /// does not cost a fresh clone. A clone with an op in flight is waited for, and an op that
    /// comes for it later clones afresh. Returns the directories removed.
    pub async fn collect_garbage(&self, used: &[(NamespacedName, String, String)]) -> Vec<PathBuf> {
        let used: BTreeSet<PathBuf> = used
            .iter()
            .map(|(repo, url, branch)| self.ws.clone_dir_of(repo, url, branch))
            .collect();
        let (ws, locks, unused) = (self.ws.clone(), self.locks.clone(), self.unused.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let present = match ws.clone_dirs() {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("cannot list the clones: {e}");
                    return Vec::new();
                }
            };
            let mut unused = unused.lock().unwrap_or_else(|p| p.into_inner());
            let mut removed = Vec::new();
            let mut still = BTreeSet::new();
            for dir in present.into_iter().filter(|d| !used.contains(d)) {
                if !unused.contains(&dir) {
                    still.insert(dir);
                    continue;
                }
                let lock = {
                    let mut locks = locks.lock().unwrap_or_else(|p| p.into_inner());
                    locks.entry(dir.clone()).or_default().clone()
                };
                let held = lock.lock().unwrap_or_else(|p| p.into_inner());
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {
                        tracing::info!(dir = %dir.display(), "removed a clone no branch uses");
                        removed.push(dir.clone());
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), "cannot remove an unused clone: {e}")
                    }
                }
                drop(held);
                // The lock goes too unless an op is waiting on it (the map and `lock` are two).
                let mut locks = locks.lock().unwrap_or_else(|p| p.into_inner());
                if Arc::strong_count(&lock) == 2 {
                    locks.remove(&dir);
                }
            }
            *unused = still;
            removed
        })
        .await;
        joined.unwrap_or_default()
    }

    /// Runs `op` with `creds` on the blocking pool and returns its result. Ops on the same clone
    /// run one after the other (the core already sends one per branch at a time).
    ///
    /// An op that runs over [`exec::op_ms_max`] in all is answered at that point: `Unknown`
    /// for a push (it may still land), `RemoteTooSlow` otherwise. libgit2 cannot be interrupted,
    /// so its thread runs on until the remote's silence (`--git-timeout`) or the end of the op;
    /// meanwhile that clone takes no op (each fails at once as `RemoteTooSlow`), so a remote that
    /// trickles bytes holds one thread at most, and its branch's status says why.
    pub async fn run(
        &self,
        op: GitOp,
        creds: Option<Arc<Credentials>>,
        signer: Option<Arc<sign::Signer>>,
    ) -> GitResult {
        let ws = self.ws.clone();
        let dir = ws.clone_dir(&op);
        let limit_ms = exec::op_ms_max();
        if self
            .stuck
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&dir)
        {
            let result = too_slow(format!(
                "the previous git op on this branch's clone ran over {} s and is still running (a remote that trickles bytes); this one was not started",
                limit_ms / 1000
            ));
            log_result(&op, &result, std::time::Duration::ZERO);
            return result;
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(dir.clone()).or_default().clone()
        };
        let started = std::time::Instant::now();
        let op_id = op.op_id;
        let kind = match op.kind {
            GitOpKind::ReadPaths { .. } => "read",
            GitOpKind::Push { .. } => "push",
            GitOpKind::Verify { .. } => "verify",
        };
        let url = redacted(&op.repo_url);
        let mut joined = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
            let result = exec::execute_signed(&ws, &op, creds.as_deref(), signer.as_deref());
            log_result(&op, &result, started.elapsed());
            result
        });
        let limit = std::time::Duration::from_millis(limit_ms);
        match tokio::time::timeout(limit, &mut joined).await {
            Ok(joined) => joined.unwrap_or_else(|e| GitResult::Failed {
                retryable: true,
                reason: format!("git op {op_id} panicked: {e}"),
                cause: "GitFailed".into(),
            }),
            Err(_) => {
                // The clone is the stuck op's until its thread ends.
                let stuck = self.stuck.clone();
                stuck
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(dir.clone());
                tokio::spawn(async move {
                    let _ = joined.await;
                    stuck.lock().unwrap_or_else(|p| p.into_inner()).remove(&dir);
                });
                tracing::warn!(op = op_id, %url, "git op {kind} ran over {} s in all: answered now, its thread left to end", limit_ms / 1000);
                if kind == "push" {
                    GitResult::Unknown
                } else {
                    too_slow(format!(
                        "a git op on {url} took more than {} s in all; stopped waiting (a remote that trickles bytes keeps no branch for ever)",
                        limit_ms / 1000
                    ))
                }
            }
        }
    }
}

/// A remote URL as logs and statuses may show it (credentials removed).
fn redacted(url: &str) -> String {
    url::RemoteUrl::parse(url)
        .map(|u| u.redacted)
        .unwrap_or_else(|e| e)
}

fn too_slow(reason: String) -> GitResult {
    GitResult::Failed {
        retryable: true,
        reason,
        cause: "RemoteTooSlow".into(),
    }
}

fn log_result(op: &GitOp, result: &GitResult, took: std::time::Duration) {
    let url = redacted(&op.repo_url);
    let ms = took.as_millis() as u64;
    match result {
        GitResult::Failed {
            retryable,
            reason,
            cause,
        } => {
            tracing::warn!(op = op.op_id, repo = %op.repo, %url, branch = %op.branch, retryable, cause, ms, "git op failed: {reason}")
        }
        other => {
            tracing::info!(op = op.op_id, repo = %op.repo, %url, branch = %op.branch, ms, result = result_name(other), "git op done")
        }
    }
}

fn result_name(r: &GitResult) -> &'static str {
    match r {
        GitResult::Paths { .. } => "paths",
        GitResult::Pushed { .. } => "pushed",
        GitResult::Conflict { .. } => "conflict",
        GitResult::Failed { .. } => "failed",
        GitResult::Unknown => "unknown",
        GitResult::Verified { .. } => "verified",
    }
}
