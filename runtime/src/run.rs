//! `gitops-reverser run`: builds the client, the channels and the tasks, and runs the driver.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gitops_reverser_core::admission::AdmissionRequest;
use gitops_reverser_core::io::{Input, WatchEvent};
use gitops_reverser_core::Gvr;
use gitops_reverser_core::{Core, CoreConfig};
use kube::Client;
use tokio::sync::{mpsc, watch, Notify};

use crate::admin;
use crate::driver::{Driver, Inbox};
use crate::forward::{PeerTls, Router};
use crate::git::GitExecutor;
use crate::health::Health;
use crate::kube::config::{self, Shared};
use crate::kube::discovery;
use crate::kube::status;
use crate::kube::stream::{self, StreamError, StreamObserver, StreamSpec};
use crate::kube::watches::Watches;
use crate::kube::webhook_config;
use crate::lease::Leadership;
use crate::metrics::{Metrics, StreamLabels};
use crate::msg::Msg;
use crate::record::Recorder;
use crate::shutdown::until_true;
use crate::tls::ReloadingTls;
use crate::webhook::{self, Webhook};

/// Inputs waiting for the core at most (watch events, configuration, git completions). A full
/// channel slows the watch streams down; nothing is dropped.
pub const INPUT_QUEUE_MAX: usize = 4096;
/// Admission records waiting for the core at most; the webhook drops (and counts) beyond.
pub const ADMISSION_QUEUE_MAX: usize = 8192;
/// Status updates waiting for the writer at most (the driver keeps the latest of the rest).
pub const STATUS_QUEUE_MAX: usize = 1024;
/// Settled-record notices waiting for a slow reader at most; one that lags misses some, and its
/// window hands those records again (harmless: a core finds them settled or late).
pub const SETTLED_NOTICES_MAX: usize = 1024;
/// How often discovery runs besides when a CRD changes, in milliseconds.
pub const REDISCOVERY_MS: u64 = 30_000;

/// Everything `run` needs, from the command line.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The core's configuration.
    pub core: CoreConfig,
    /// The kubeconfig file; `None` infers (in-cluster, then `$HOME/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context.
    pub context: Option<String>,
    /// Where the webhook listens.
    pub webhook_addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` listen.
    pub admin_addr: SocketAddr,
    /// The webhook's certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// The webhook's private key (PEM).
    pub tls_key: PathBuf,
    /// `--webhook-client-ca`: callers must present a certificate this CA signed.
    pub webhook_client_ca: Option<PathBuf>,
    /// Where clones live.
    pub work_dir: PathBuf,
    /// `--record-inputs`.
    pub record_inputs: Option<PathBuf>,
    /// How long a shutdown waits for pending pushes.
    pub shutdown_timeout: Duration,
    /// `--git-timeout`: how long a git op may make no progress.
    pub git_timeout_ms: u64,
    /// `--webhook-certs self-managed`: serve what [`crate::certs`] issues, not files.
    pub self_managed_tls: bool,
    /// The webhook configuration and certificates the operator keeps, if any.
    pub webhook_configuration: Option<webhook_config::Settings>,
    /// Leader election among replicas; `None` runs the core at once (one replica).
    pub election: Option<ElectionConfig>,
    /// The Secret (namespace, name) holding the fingerprint key of sealed files; read or made
    /// at start. Without it, `spec.encryption` cannot be used (the GitRepoConfigs say so).
    pub seal_key_secret: Option<(String, String)>,
}

struct Observer {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Where a refused list is reported to the core.
    tx: mpsc::Sender<Msg>,
    /// Types whose last list was refused (403), so that each change is reported once.
    denied: std::sync::Mutex<std::collections::BTreeSet<gitops_reverser_core::Gvr>>,
}

/// The `stream` label of a stream's series. A credentials stream's own label names a Secret a
/// tenant chose: one series for all of them, so that tenants can neither add series at will nor
/// learn others' Secret names from `/metrics`. The others are types being watched.
fn stream_series(label: &str) -> &str {
    if label.starts_with("secret ") {
        "secrets"
    } else {
        label
    }
}

impl StreamObserver for Observer {
    fn restarted(&self, label: &str, _why: &StreamError) {
        let stream = stream_series(label);
        self.metrics
            .watch_restarts
            .get_or_create(&StreamLabels {
                stream: stream.to_string(),
            })
            .inc();
    }

    fn listed(&self, spec: &StreamSpec, outcome: Result<(), &StreamError>) {
        if let Some(crd) = &spec.crd {
            let mut set = self
                .health
                .missing_crds
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if matches!(outcome, Err(StreamError::Api { code: 404, .. })) {
                set.insert(crd.clone());
            } else if outcome.is_ok() && set.remove(crd) {
                tracing::info!("the CustomResourceDefinition {crd} is installed now");
            }
        }
        if let Some(gvr) = &spec.gvr {
            let why = match outcome {
                Err(StreamError::Api { code: 403, message }) => Some(message.clone()),
                Ok(()) => None,
                Err(_) => return,
            };
            let mut denied = self.denied.lock().unwrap_or_else(|p| p.into_inner());
            let changed = match &why {
                Some(_) => denied.insert(gvr.clone()),
                None => denied.remove(gvr),
            };
            if changed {
                if let Some(why) = &why {
                    tracing::error!(%gvr, "the operator may not list this type: {why}");
                }
                let (tx, gvr) = (self.tx.clone(), gvr.clone());
                tokio::spawn(async move {
                    let _ = tx.send(Msg::Input(Input::WatchDenied(gvr, why))).await;
                });
            }
        }
    }
}

/// Builds a client from the kubeconfig or the environment, in the order
/// [`crate::kube::client_config`] documents.
pub async fn client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&String>,
) -> anyhow::Result<Client> {
    let given = crate::kube::client_config::Given::from_env(kubeconfig.cloned(), context.cloned());
    let config = crate::kube::client_config::load(&given).await?;
    Client::try_from(config).context("building the Kubernetes client")
}

/// Leader election and the forwarding endpoint, when several replicas run.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    /// The Lease and the timings (its `endpoint` is where this replica takes forwarded records).
    pub lease: crate::lease::Settings,
    /// Where the forwarding endpoint listens.
    pub forward_addr: SocketAddr,
}

/// Aborts its tasks when dropped: a term's tasks end with the term, however it ends.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(|t| t.abort());
    }
}

/// What every term of leadership shares: made once per process.
struct Process {
    cfg: RunConfig,
    client: Client,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    git: GitExecutor,
    /// The local core's admission channel, while a term runs.
    local: watch::Sender<Option<mpsc::Sender<AdmissionRequest>>>,
    /// The watched types of the running term, for the webhook's rules (`None`: no term).
    watched: Arc<watch::Sender<Option<BTreeSet<Gvr>>>>,
    /// With an election: whether this replica still leads, checked before every write.
    fence: Option<Arc<crate::lease::Fence>>,
    /// Where a term's core's settled records go.
    settled: tokio::sync::broadcast::Sender<Arc<Vec<u64>>>,
}

/// Runs the operator until `shutdown` turns true, then flushes and returns. With an election,
/// the core runs only while this replica leads; the webhook serves all along.
pub async fn run(mut cfg: RunConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    if let Some(e) = &cfg.election {
        e.lease.check().map_err(anyhow::Error::msg)?;
    }
    let client = client(cfg.kubeconfig.as_ref(), cfg.context.as_ref()).await?;
    if let Some((namespace, name)) = &cfg.seal_key_secret {
        match crate::kube::seal_key::load_or_create(&client, namespace, name).await {
            Ok(key) => cfg.core.seal_key = Some(key),
            Err(e) => tracing::error!(
                "no fingerprint key for sealed files, so GitRepoConfigs with spec.encryption write no Secret: {e}"
            ),
        }
    }
    let metrics = Arc::new(Metrics::new());
    let tls = if cfg.self_managed_tls {
        ReloadingTls::managed()
    } else {
        ReloadingTls::new(&cfg.tls_cert, &cfg.tls_key)
    };
    let tls = Arc::new(match &cfg.webhook_client_ca {
        Some(ca) => tls.with_client_ca(ca),
        None => tls,
    });
    if cfg.self_managed_tls {
        tracing::info!("the webhook's certificate is self-managed");
    } else if let Err(e) = tls.current() {
        tracing::error!(
            "the webhook's certificate cannot be loaded yet (retried per connection): {e}"
        );
    }
    let health = Arc::new(Health::new(tls.clone()));
    crate::watchdog::spawn(Arc::downgrade(&health));
    let (adm_tx, adm_rx) = mpsc::channel(ADMISSION_QUEUE_MAX);

    let webhook_listener = std::net::TcpListener::bind(cfg.webhook_addr)
        .with_context(|| format!("binding the webhook to {}", cfg.webhook_addr))?;
    let admin_listener = tokio::net::TcpListener::bind(cfg.admin_addr)
        .await
        .with_context(|| format!("binding the admin server to {}", cfg.admin_addr))?;
    let forward_listener = match &cfg.election {
        Some(e) => Some(
            tokio::net::TcpListener::bind(e.forward_addr)
                .await
                .with_context(|| {
                    format!("binding the forwarding endpoint to {}", e.forward_addr)
                })?,
        ),
        None => None,
    };
    tracing::info!(webhook = %webhook_listener.local_addr()?, admin = %admin_listener.local_addr()?, "listening");
    let hook = Arc::new(Webhook {
        tx: adm_tx,
        metrics: metrics.clone(),
        body_timeout_ms: webhook::BODY_TIMEOUT_MS,
    });
    // The webhook thread is made before this thread lowers its priority, so it keeps the normal one.
    let webhook_thread =
        webhook::spawn_thread(webhook_listener, tls.clone(), hook, shutdown.clone())
            .context("starting the webhook's thread")?;
    crate::priority::lower_current_thread();

    let (local_tx, local_rx) = watch::channel(None);
    let (watched_tx, watched_rx) = watch::channel(None);
    let (lead_tx, lead_rx) = watch::channel(match &cfg.election {
        Some(_) => Leadership::Follower { leader: None },
        None => Leadership::Leader,
    });
    let (release_tx, release_rx) = watch::channel(false);
    let fence = cfg
        .election
        .as_ref()
        .map(|e| Arc::new(crate::lease::Fence::new(e.lease.renew_deadline_ms)));
    let peer_tls = Arc::new(PeerTls::new(tls.clone()));
    // The records a term's core settles: this replica's window, and its followers' through the
    // forwarding endpoint.
    let (settled_tx, settled_rx) = tokio::sync::broadcast::channel(SETTLED_NOTICES_MAX);
    let mut tasks = vec![
        tokio::spawn(admin::serve(
            admin_listener,
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(
            Router {
                from_webhook: adm_rx,
                local: local_rx.clone(),
                leadership: lead_rx.clone(),
                tls: peer_tls.clone(),
                metrics: metrics.clone(),
                window: crate::records::Window::open(
                    &cfg.work_dir,
                    cfg.core.correlation.ttl_ms,
                    crate::records::wall_ms(),
                ),
                settled: settled_rx,
            }
            .run(),
        ),
    ];
    if let Some(settings) = cfg.webhook_configuration.clone() {
        tasks.push(tokio::spawn(webhook_config::run(
            client.clone(),
            settings,
            tls.clone(),
            watched_rx,
            shutdown.clone(),
        )));
    }
    let lease_task = match &cfg.election {
        Some(e) => {
            let listener = forward_listener.expect("bound above");
            tasks.push(tokio::spawn(crate::forward::serve(
                listener,
                peer_tls,
                local_rx,
                settled_tx.clone(),
                metrics.clone(),
                shutdown.clone(),
            )));
            Some(tokio::spawn(crate::lease::run(
                client.clone(),
                e.lease.clone(),
                fence.clone().expect("made with the election"),
                lead_tx,
                release_rx,
            )))
        }
        None => None,
    };
    let _tasks = AbortOnDrop(tasks);

    let git = GitExecutor::new(&cfg.work_dir)
        .with_context(|| format!("using work dir {}", cfg.work_dir.display()))?;
    crate::git::exec::set_git_timeout_ms(cfg.git_timeout_ms);
    let process = Process {
        cfg,
        client,
        metrics,
        health,
        git,
        local: local_tx,
        watched: Arc::new(watched_tx),
        fence,
        settled: settled_tx,
    };
    let result = process.lead_while_elected(lead_rx, shutdown).await;
    // Handed over only now: a leader's pending pushes went out (or timed out) first.
    let _ = release_tx.send(true);
    if let Some(t) = lease_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    // The webhook's thread sees the shutdown too.
    let _ = tokio::task::spawn_blocking(move || webhook_thread.join()).await;
    result
}

impl Process {
    /// Runs a term of the core each time this replica becomes the leader, until shutdown.
    async fn lead_while_elected(
        &self,
        mut leadership: watch::Receiver<Leadership>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        loop {
            self.health.core_running.store(false, Ordering::Relaxed);
            self.metrics.leader.set(0);
            tokio::select! {
                _ = until_true(&mut shutdown) => return Ok(()),
                r = leadership.wait_for(|l| l.is_leader()) => if r.is_err() { return Ok(()) },
            }
            self.metrics.leader.set(1);
            self.metrics.leadership_transitions.inc();
            // The term runs as a task on the runtime's workers, not on the thread that blocks
            // on this function's future: the watchdog then tells a stuck loop from a lost wake-up.
            let term = AbortOnDrop(vec![tokio::spawn(self.term(shutdown.clone())?)]);
            let lost = tokio::select! {
                _ = joined(term) => false,
                r = leadership.wait_for(|l| !l.is_leader()) => r.is_ok(),
            };
            // Dropping the term aborts its tasks: its core writes nothing more. A git op already
            // on a blocking thread finishes, and its push is fenced by its expected head.
            self.local.send_replace(None);
            self.watched.send_replace(None);
            if !lost {
                return Ok(());
            }
            tracing::warn!("leadership lost: the core stopped; its successor relists and seeds");
        }
    }

    /// One term: a fresh core with its streams, discovery, configuration watches and status
    /// writer, driven until shutdown (then flushed). Dropping the future ends it at once.
    fn term(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<impl std::future::Future<Output = ()> + use<>> {
        let cfg = &self.cfg;
        let client = &self.client;
        let (tx, rx) = mpsc::channel(INPUT_QUEUE_MAX);
        let observer: Arc<dyn StreamObserver> = Arc::new(Observer {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            tx: tx.clone(),
            denied: Default::default(),
        });
        let (adm_tx, adm_rx) = mpsc::channel(ADMISSION_QUEUE_MAX);
        let (status_tx, status_rx) = mpsc::channel(STATUS_QUEUE_MAX);
        let shared = Arc::new(Shared::default());
        let mut tasks = vec![
            tokio::spawn(status::run(client.clone(), shared.clone(), status_rx)),
            tokio::spawn(discover_forever(
                client.clone(),
                tx.clone(),
                observer.clone(),
            )),
        ];
        tasks.extend(config::spawn(
            client.clone(),
            tx.clone(),
            shared.clone(),
            observer.clone(),
        ));
        let recorder = match &cfg.record_inputs {
            Some(path) => Some(
                Recorder::create(path, &cfg.core)
                    .with_context(|| format!("creating the input recording {}", path.display()))?,
            ),
            None => None,
        };
        let mut watches = Watches::new(client.clone(), tx.clone(), observer);
        let (set_tx, mut set_rx) = watch::channel(BTreeSet::new());
        watches.publish_to(set_tx);
        let (outer, health) = (self.watched.clone(), self.health.clone());
        // The webhook's rules follow this term's streams once they run: a fresh term's empty set
        // would stop the API server calling the webhook while it lists.
        // Readiness is not an event: until the set is published it is looked at every second.
        tasks.push(tokio::spawn(async move {
            loop {
                let set = set_rx.borrow_and_update().clone();
                let published = outer.borrow().is_some();
                if !set.is_empty() || published || health.synced.load(Ordering::Relaxed) {
                    let next = Some(set);
                    outer.send_if_modified(|cur| {
                        let changed = *cur != next;
                        *cur = next;
                        changed
                    });
                }
                let recheck = Duration::from_secs(if published { 3600 } else { 1 });
                tokio::select! {
                    r = set_rx.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(recheck) => {}
                }
            }
        }));
        let mut core_config = cfg.core.clone();
        core_config.instance_id ^= self.metrics.leadership_transitions.get();
        let driver = Driver {
            core: Core::new(core_config),
            tx: tx.clone(),
            watches,
            git: self.git.clone(),
            shared,
            status_tx,
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            recorder,
            shutdown_timeout: cfg.shutdown_timeout,
            fence: self.fence.clone(),
            settled: Some(self.settled.clone()),
            watch_grace: Duration::from_millis(crate::driver::WATCH_GRACE_MS),
        };
        let inbox = Inbox {
            rx,
            admissions: adm_rx,
            shutdown,
        };
        self.health.set_waiting("the first lists".into());
        self.health.core_running.store(true, Ordering::Relaxed);
        self.local.send_replace(Some(adm_tx));
        let guard = AbortOnDrop(tasks);
        Ok(async move {
            let _guard = guard;
            driver.run(inbox).await;
        })
    }
}

/// Waits for the one task `guard` holds (aborted if this future is dropped).
async fn joined(mut guard: AbortOnDrop) {
    if let Some(task) = guard.0.last_mut() {
        let _ = task.await;
    }
}

/// How long discovery at start waits for the CRDs' first list (their schemas' defaults).
const CRD_FIRST_LIST_MS_MAX: u64 = 10_000;

/// Runs discovery at start, whenever a CRD changes (a new one is served once Established), and
/// every [`REDISCOVERY_MS`].
async fn discover_forever(
    client: Client,
    tx: mpsc::Sender<Msg>,
    observer: Arc<dyn StreamObserver>,
) {
    let changed = Arc::new(Notify::new());
    let (crds, mut crx) = stream::spawn_events(
        &client,
        StreamSpec {
            path: "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(),
            field_selector: None,
            type_meta: (
                "apiextensions.k8s.io/v1".into(),
                "CustomResourceDefinition".into(),
            ),
            label: "customresourcedefinitions".into(),
            crd: None,
            gvr: None,
        },
        64,
        &observer,
    );
    let notify = changed.clone();
    // The schemas' defaults go to the core before the discovery that starts the custom
    // resources' streams (one channel keeps the order), so that their first files already leave
    // the defaults out: otherwise every restart would write them in and take them out again.
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel::<()>();
    let defaults_tx = tx.clone();
    let relay = tokio::spawn(async move {
        let mut defaults = crate::kube::crd_defaults::CrdDefaults::default();
        let mut listed = Some(listed_tx);
        while let Some(ev) = crx.recv().await {
            for input in defaults.on_event(&ev) {
                if defaults_tx.send(Msg::Input(input)).await.is_err() {
                    return;
                }
            }
            if matches!(ev, WatchEvent::InitDone) {
                if let Some(l) = listed.take() {
                    let _ = l.send(());
                }
            }
            if matches!(
                ev,
                WatchEvent::Apply(_) | WatchEvent::Delete(_) | WatchEvent::InitDone
            ) {
                notify.notify_one();
            }
        }
    });
    let _guard = AbortOnDrop(vec![crds, relay]);
    // Bounded: an operator that may not list CRDs still discovers (its custom resources' files
    // then keep their schemas' defaults).
    let first_list = Duration::from_millis(CRD_FIRST_LIST_MS_MAX);
    if tokio::time::timeout(first_list, listed_rx).await.is_err() {
        tracing::warn!(
            "the CRDs did not list within {CRD_FIRST_LIST_MS_MAX} ms: discovering without their schemas' defaults"
        );
    }
    let mut backoff = crate::kube::backoff::Backoff::default();
    loop {
        let bound = Duration::from_millis(crate::kube::stream::REQUEST_MS_MAX);
        let found = tokio::time::timeout(bound, discovery::discover(&client))
            .await
            .unwrap_or_else(|_| {
                Err(kube::Error::Service(
                    format!("no complete answer within {} ms", bound.as_millis()).into(),
                ))
            });
        match found {
            Ok((found, failures)) => {
                backoff.reset();
                for f in failures {
                    tracing::warn!("discovery left out a group version: {f}");
                }
                if tx.send(Msg::Discovered(found)).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = changed.notified() => {
                        // A CRD's events come in bursts (created, then Established): let them settle.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(REDISCOVERY_MS)) => {}
                }
            }
            Err(e) => {
                tracing::warn!("discovery failed, retrying: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_credentials_stream_shares_one_series_and_types_keep_theirs() {
        assert_eq!(stream_series("secret team-a/my-creds"), "secrets");
        assert_eq!(stream_series("secret team-b/x"), "secrets");
        assert_eq!(stream_series("v1/configmaps"), "v1/configmaps");
    }
}
