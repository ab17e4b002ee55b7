//! Git op planning: turning pending commits into planned ones, and the retry policy.

use std::sync::Arc;

use crate::batch::{CommitKind, PendingCommit, PendingWrite};
use crate::io::{Identity, PlannedCommit};

/// First retry delay after a failed push, in milliseconds.
pub const BACKOFF_BASE_MS: u64 = 1_000;
/// Longest retry delay, in milliseconds: failures are retried at least this often, forever.
pub const BACKOFF_MS_MAX: u64 = 300_000;
/// Conflicts in a row re-planned at once before backing off (an outside writer racing us).
pub const CONFLICTS_BEFORE_BACKOFF: u32 = 3;
/// The commit message trailer that names the op a commit was pushed by.
pub const OP_TRAILER: &str = "Reverser-Op";

/// The delay before retry number `attempt` (1-based): doubling from [`BACKOFF_BASE_MS`], capped.
pub(crate) fn backoff_ms(attempt: u32) -> u64 {
    let shift = attempt.saturating_sub(1).min(20);
    (BACKOFF_BASE_MS << shift).min(BACKOFF_MS_MAX)
}

/// Who commits and who is named when no user is known.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identities {
    /// The committer of every commit.
    pub committer: Identity,
    /// The author when attribution missed.
    pub fallback_author: Identity,
    /// Domain of authors' e-mail addresses (`alice@{domain}`).
    pub user_email_domain: String,
}

impl Identities {
    /// The author identity of a Kubernetes user.
    pub fn author(&self, user: Option<&Arc<str>>) -> Identity {
        match user {
            None => self.fallback_author.clone(),
            Some(u) => {
                let local: String = u
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "._-".contains(c) {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                Identity {
                    name: u.to_string(),
                    email: format!("{local}@{}", self.user_email_domain),
                }
            }
        }
    }
}

/// The first line of a commit message.
pub(crate) fn subject(kind: &CommitKind, writes: usize) -> String {
    match kind {
        CommitKind::Event { op, identifier } => {
            let op = op.as_str();
            let mut s = String::with_capacity(op.len() + identifier.len() + 3);
            s.push('[');
            s.push_str(op);
            s.push_str("] ");
            s.push_str(identifier);
            s
        }
        CommitKind::Resync { folder } if folder.is_empty() => {
            format!("[RESYNC] {writes} changes from the cluster")
        }
        CommitKind::Resync { folder } => {
            format!("[RESYNC] {writes} changes from the cluster under {folder}")
        }
        CommitKind::Coalesced { changes } => {
            format!("[COALESCED] {changes} changes merged while the queue was full")
        }
    }
}

/// The whole commit message: the subject, a blank line and the `Reverser-Op` trailer.
fn message(kind: &CommitKind, writes: usize, op_tag: &str) -> String {
    let subject = subject(kind, writes);
    let mut m = String::with_capacity(subject.len() + OP_TRAILER.len() + op_tag.len() + 5);
    m.push_str(&subject);
    m.push_str("\n\n");
    m.push_str(OP_TRAILER);
    m.push_str(": ");
    m.push_str(op_tag);
    m.push('\n');
    m
}

/// A pending commit's writes in the order [`plan`] hands them over: by path, and in pending order
/// for the same path (the executor's blob ids come back in this order).
pub(crate) fn in_planned_order(writes: &[PendingWrite]) -> impl Iterator<Item = &PendingWrite> {
    let mut order: Vec<&PendingWrite> = writes.iter().collect();
    order.sort_by(|a, b| a.path.cmp(&b.path));
    order.into_iter()
}

/// Turns pending commits into planned ones: authors, messages, files ordered by path.
pub(crate) fn plan(
    pending: &[PendingCommit],
    ids: &Identities,
    now_wall_ms: i64,
    op_tag: &str,
) -> Vec<PlannedCommit> {
    let mut commits = Vec::with_capacity(pending.len());
    for c in pending {
        assert!(
            !c.writes.is_empty(),
            "a planned commit always changes something"
        );
        let writes = in_planned_order(&c.writes)
            .map(|w| {
                (
                    w.path.to_string(),
                    w.content.as_ref().map(|ct| ct.file.clone()),
                )
            })
            .collect();
        commits.push(PlannedCommit {
            author: ids.author(c.author.as_ref()),
            author_time_ms: c.seen_wall_ms,
            committer: ids.committer.clone(),
            commit_time_ms: now_wall_ms,
            message: message(&c.kind, c.writes.len(), op_tag),
            writes,
        });
    }
    commits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(2), 2_000);
        assert_eq!(backoff_ms(5), 16_000);
        assert_eq!(backoff_ms(100), BACKOFF_MS_MAX);
    }

    #[test]
    fn authors_get_an_email_that_git_accepts() {
        let ids = Identities {
            committer: Identity {
                name: "bot".into(),
                email: "bot@x".into(),
            },
            fallback_author: Identity {
                name: "unknown".into(),
                email: "unknown@x".into(),
            },
            user_email_domain: "cluster.local".into(),
        };
        let sa: Arc<str> = "system:serviceaccount:ns:deployer".into();
        let a = ids.author(Some(&sa));
        assert_eq!(a.name, "system:serviceaccount:ns:deployer");
        assert_eq!(a.email, "system-serviceaccount-ns-deployer@cluster.local");
        assert_eq!(ids.author(None).name, "unknown");
    }
}
