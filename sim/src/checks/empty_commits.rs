//! No empty commits: every commit the operator makes changes the tree.

use gitops_reverser_core::io::PlannedCommit;

use crate::checks::{Checker, Landed, Scene};
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

/// The [`Checker`] of this file.
pub struct EmptyCommits;

impl Checker for EmptyCommits {
    fn on_commit(&mut self, l: &Landed<'_>, _scene: &Scene<'_>, out: &mut Vec<String>) {
        on_commit(l.commit, l.before, l.after, out);
    }
}
