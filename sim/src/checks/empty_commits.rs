//! No empty commits: every commit the operator makes changes the tree.

use gitops_reverser_core::io::PlannedCommit;

use crate::git::Tree;

/// Checks one commit as the remote applies it.
pub fn on_commit(commit: &PlannedCommit, before: &Tree, after: &Tree, out: &mut Vec<String>) {
    if before == after {
        out.push(format!(
            "empty commit: {:?} changes nothing",
            commit.message.lines().next().unwrap_or_default()
        ));
    }
}
