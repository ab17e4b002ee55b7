//! Watch set held: at the end, the streams running are exactly those the active rules need
//! (plus namespaces when a namespace selector needs their labels). A removed rule's stream that
//! keeps running costs API server load and memory for nothing.

use std::collections::BTreeSet;

use gitops_reverser_core::Gvr;

use crate::checks::{Checker, End};
use crate::cluster::Kind;
use crate::topology::{group_version_named, Topology};

/// Compares the running streams with the active rules' needs.
pub fn check(topo: &Topology, kinds: &[Kind], running: &BTreeSet<Gvr>, out: &mut Vec<String>) {
    let mut want = BTreeSet::new();
    for (i, rule) in topo.rules.iter().enumerate() {
        if !topo.active[i] {
            continue;
        }
        for e in &rule.entries {
            for k in kinds.iter().filter(|k| rule.names(e, k)) {
                // A type named by the version wildcard (or taken in by `*`) is watched while it
                // is served: the wildcard stands for the version discovery prefers.
                let (_, version) = group_version_named(&k.gvr.resource);
                if (e.resources != ["*"] && version != "*") || k.served {
                    want.insert(k.gvr.clone());
                }
            }
            if e.ns_selector.is_some() {
                want.insert(Gvr::new("", "v1", "namespaces"));
            }
        }
    }
    if *running != want {
        out.push(format!(
            "watch set: running {:?}, the active rules need {:?}",
            running
                .iter()
                .map(|g| g.resource.as_str())
                .collect::<Vec<_>>(),
            want.iter().map(|g| g.resource.as_str()).collect::<Vec<_>>()
        ));
    }
}

/// The [`Checker`] of this file.
pub struct Watches;

impl Checker for Watches {
    fn at_end(&mut self, end: &End<'_>, out: &mut Vec<String>) {
        check(end.topo, &end.cluster.kinds, end.running, out);
    }
}
