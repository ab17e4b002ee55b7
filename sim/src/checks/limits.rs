//! Limits held, after every input: the correlation stores (records, and the notes of writes seen
//! without one) within the specification's bounds, per key too, and the per-branch queue caps.
//!
//! The bounds are the specification's numbers, stated here, not read from the core: a core
//! whose constants drifted would otherwise pass against itself. A test checks the core's
//! constants equal them.

use gitops_reverser_core::limits::{PENDING_BYTES_MAX, PENDING_COMMITS_MAX};
use gitops_reverser_core::Core;

use crate::checks::{Checker, Event};
use crate::topology::Topology;

/// The specification: at most 10,000 keys.
pub const SPEC_KEYS_MAX: usize = 10_000;
/// The specification: at most 10 entries per key (oldest dropped).
pub const SPEC_ENTRIES_PER_KEY_MAX: usize = 10;
/// The specification: entries live 60 s.
pub const SPEC_TTL_MS: u64 = 60_000;

/// Checks the core's bounded state.
pub fn check(core: &Core, topo: &Topology, out: &mut Vec<String>) {
    let b = core.correlation_bounds();
    let stores = [
        ("records", b.keys, b.entries, b.entries_per_key_most),
        (
            "notes of unattributed writes",
            b.missed_keys,
            b.missed_entries,
            b.missed_per_key_most,
        ),
    ];
    for (what, keys, entries, per_key) in stores {
        if keys > SPEC_KEYS_MAX
            || per_key > SPEC_ENTRIES_PER_KEY_MAX
            || entries > SPEC_KEYS_MAX * SPEC_ENTRIES_PER_KEY_MAX
        {
            out.push(format!(
                "correlation store of {what} holds {keys} keys, {entries} entries, {per_key} under one key"
            ));
        }
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

/// The [`Checker`] of this file: after every input the core handled.
pub struct Limits;

impl Checker for Limits {
    fn on_event(&mut self, event: &Event<'_>, out: &mut Vec<String>) {
        if let Event::Handled { core, topo } = event {
            check(core, topo, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_reverser_core::limits::{
        CORRELATION_ENTRIES_PER_KEY_MAX as ENTRIES_PER_KEY_MAX, CORRELATION_KEYS_MAX as KEYS_MAX,
        CORRELATION_TTL_MS as TTL_MS,
    };

    #[test]
    fn the_cores_correlation_limits_are_the_specifications() {
        assert_eq!(
            (KEYS_MAX, ENTRIES_PER_KEY_MAX, TTL_MS),
            (SPEC_KEYS_MAX, SPEC_ENTRIES_PER_KEY_MAX, SPEC_TTL_MS)
        );
    }
}
