//! The object streams: exactly the GVRs the core asks for ([`Output::EnsureWatches`]), each
//! started once discovery serves its type and stopped when the type goes away.
//!
//! [`Output::EnsureWatches`]: gitops_reverser_core::io::Output::EnsureWatches

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gitops_reverser_core::io::{Input, WatchEvent};
use gitops_reverser_core::Gvr;
use kube::Client;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::discovery::Discovered;
use super::stream::{self, StreamObserver, StreamSpec};
use crate::msg::Msg;

struct Running {
    task: JoinHandle<()>,
    resync: Arc<Notify>,
}

/// The set of running object streams.
pub struct Watches {
    client: Client,
    tx: mpsc::Sender<Msg>,
    observer: Arc<dyn StreamObserver>,
    wanted: BTreeSet<Gvr>,
    discovered: Discovered,
    running: BTreeMap<Gvr, Running>,
    /// Where the running set is published (the webhook configuration's rules follow it).
    published: Option<watch::Sender<BTreeSet<Gvr>>>,
    /// Whether the object streams hold their events (the core's queue is backlogged).
    paused: watch::Sender<bool>,
}

impl Watches {
    /// No streams yet; events go to `tx`.
    pub fn new(client: Client, tx: mpsc::Sender<Msg>, observer: Arc<dyn StreamObserver>) -> Self {
        Self {
            client,
            tx,
            observer,
            wanted: BTreeSet::new(),
            discovered: Discovered::default(),
            running: BTreeMap::new(),
            published: None,
            paused: watch::channel(false).0,
        }
    }

    /// Holds (`true`) or releases the object streams' events: while the core's queue is
    /// backlogged, nothing more is read from the API server, so no part of the pipeline holds a
    /// large listing's text at once. Returns whether that changed.
    pub fn set_paused(&self, paused: bool) -> bool {
        self.paused.send_if_modified(|p| {
            let changed = *p != paused;
            *p = paused;
            changed
        })
    }

    /// Publishes the set of running streams to `tx` whenever it changes.
    pub fn publish_to(&mut self, tx: watch::Sender<BTreeSet<Gvr>>) {
        self.published = Some(tx);
        self.publish();
    }

    fn publish(&self) {
        if let Some(tx) = &self.published {
            let now: BTreeSet<Gvr> = self.running.keys().cloned().collect();
            tx.send_if_modified(|cur| {
                let changed = *cur != now;
                *cur = now;
                changed
            });
        }
    }

    /// Watch exactly `wanted` (those discovery serves now; the rest once it does).
    pub fn ensure(&mut self, wanted: BTreeSet<Gvr>) {
        self.wanted = wanted;
        self.reconcile();
    }

    /// Relist one stream now.
    pub fn resync(&mut self, gvr: &Gvr) {
        if let Some(r) = self.running.get(gvr) {
            r.resync.notify_one();
        }
    }

    /// Discovery changed: start streams whose type appeared, stop those whose type went away.
    pub fn set_discovered(&mut self, discovered: Discovered) {
        self.discovered = discovered;
        self.reconcile();
    }

    /// Wanted types that discovery does not serve (yet).
    pub fn waiting(&self) -> Vec<Gvr> {
        self.wanted
            .iter()
            .filter(|g| !self.running.contains_key(g))
            .cloned()
            .collect()
    }

    /// The streams running.
    pub fn running(&self) -> impl Iterator<Item = &Gvr> {
        self.running.keys()
    }

    /// Stops every stream (shutdown: no more intake).
    pub fn stop_all(&mut self) {
        self.wanted.clear();
        for (_, r) in std::mem::take(&mut self.running) {
            r.task.abort();
        }
        self.publish();
    }

    fn reconcile(&mut self) {
        let served = &self.discovered.resources;
        let stop: Vec<Gvr> = self
            .running
            .keys()
            .filter(|g| !self.wanted.contains(*g) || !served.contains_key(*g))
            .cloned()
            .collect();
        for gvr in stop {
            let r = self.running.remove(&gvr).expect("listed above");
            r.task.abort();
            tracing::info!(%gvr, "watch stopped");
        }
        for gvr in &self.wanted {
            if self.running.contains_key(gvr) {
                continue;
            }
            let Some(served) = served.get(gvr) else {
                tracing::info!(%gvr, "watch waits: the API server does not serve this type (yet)");
                continue;
            };
            let spec = StreamSpec {
                path: Discovered::path(gvr),
                field_selector: None,
                type_meta: (served.api_version.clone(), served.kind.clone()),
                label: gvr.to_string(),
                crd: None,
                gvr: Some(gvr.clone()),
            };
            let resync = Arc::new(Notify::new());
            let g = gvr.clone();
            let task = tokio::spawn(stream::run(
                self.client.clone(),
                spec,
                self.tx.clone(),
                move |ev: WatchEvent| Msg::Input(Input::Watch(g.clone(), ev)),
                resync.clone(),
                self.paused.subscribe(),
                self.observer.clone(),
            ));
            tracing::info!(%gvr, "watch started");
            self.running.insert(gvr.clone(), Running { task, resync });
        }
        self.publish();
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.stop_all();
    }
}
