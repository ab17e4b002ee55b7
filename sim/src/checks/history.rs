//! History never lost: every head a branch ever had, outside commits included, is an ancestor of
//! its final head.

use crate::checks::{Checker, End};
use crate::git::Remotes;

/// Checks every branch at the end of a run.
pub fn check(remotes: &Remotes, out: &mut Vec<String>) {
    for ((url, branch), heads) in &remotes.head_log {
        let Some(last) = remotes.head(url, branch) else {
            out.push(format!("{url} {branch}: branch disappeared"));
            continue;
        };
        for h in heads {
            if !remotes.is_ancestor(h, &last) {
                out.push(format!(
                    "{url} {branch}: earlier head {h} is not in the final history"
                ));
            }
        }
    }
}

/// The [`Checker`] of this file.
pub struct History;

impl Checker for History {
    fn at_end(&mut self, end: &End<'_>, out: &mut Vec<String>) {
        check(end.remotes, out);
    }
}
