//! Limits held: correlation store bounds and per-branch queue caps, after every input.

use gitops_reverser_core::batch::{PENDING_BYTES_MAX, PENDING_COMMITS_MAX};
use gitops_reverser_core::core::Core;
use gitops_reverser_core::correlation::{ENTRIES_PER_KEY_MAX, KEYS_MAX};

use crate::topology::Topology;

/// Checks the core's bounded state.
pub fn check(core: &Core, topo: &Topology, out: &mut Vec<String>) {
    let (keys, entries) = core.correlation_size();
    if keys > KEYS_MAX || entries > KEYS_MAX * ENTRIES_PER_KEY_MAX {
        out.push(format!(
            "correlation store holds {keys} keys, {entries} entries"
        ));
    }
    for (repo, _, branch) in topo.branches() {
        if let Some(b) = core.branch(&repo, branch) {
            if b.pending_commits > PENDING_COMMITS_MAX || b.pending_bytes > PENDING_BYTES_MAX {
                out.push(format!(
                    "{repo} {branch}: {} commits, {} bytes pending",
                    b.pending_commits, b.pending_bytes
                ));
            }
        }
    }
}
