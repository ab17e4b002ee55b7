//! `gitops-reverser run`: builds the client, the channels and the tasks, and runs the driver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gitops_reverser_core::io::{Input, WatchEvent};
use gitops_reverser_core::{Core, CoreConfig};
use kube::Client;
use tokio::sync::{mpsc, watch, Notify};

use crate::admin;
use crate::driver::{Driver, Inbox};
use crate::git::GitExecutor;
use crate::health::Health;
use crate::kube::config::{self, Shared};
use crate::kube::discovery;
use crate::kube::status;
use crate::kube::stream::{self, StreamError, StreamObserver, StreamSpec};
use crate::kube::watches::Watches;
use crate::kube::webhook_config;
use crate::metrics::{Metrics, StreamLabels};
use crate::msg::Msg;
use crate::record::Recorder;
use crate::tls::ReloadingTls;
use crate::webhook::{self, Webhook};

/// Inputs waiting for the core at most (watch events, configuration, git completions). A full
/// channel slows the watch streams down; nothing is dropped.
pub const INPUT_QUEUE_MAX: usize = 4096;
/// Admission records waiting for the core at most; the webhook drops (and counts) beyond.
pub const ADMISSION_QUEUE_MAX: usize = 8192;
/// Status updates waiting for the writer at most (the driver keeps the latest of the rest).
pub const STATUS_QUEUE_MAX: usize = 1024;
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

/// Runs the operator until `shutdown` turns true, then flushes and returns.
pub async fn run(cfg: RunConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let client = client(cfg.kubeconfig.as_ref(), cfg.context.as_ref()).await?;
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
    let (tx, rx) = mpsc::channel(INPUT_QUEUE_MAX);
    let observer: Arc<dyn StreamObserver> = Arc::new(Observer {
        metrics: metrics.clone(),
        health: health.clone(),
        tx: tx.clone(),
        denied: Default::default(),
    });
    let (adm_tx, adm_rx) = mpsc::channel(ADMISSION_QUEUE_MAX);
    let (status_tx, status_rx) = mpsc::channel(STATUS_QUEUE_MAX);
    let shared = Arc::new(Shared::default());

    let webhook_listener = std::net::TcpListener::bind(cfg.webhook_addr)
        .with_context(|| format!("binding the webhook to {}", cfg.webhook_addr))?;
    let admin_listener = tokio::net::TcpListener::bind(cfg.admin_addr)
        .await
        .with_context(|| format!("binding the admin server to {}", cfg.admin_addr))?;
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
    let mut tasks = vec![
        tokio::spawn(admin::serve(
            admin_listener,
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        )),
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
    let git = GitExecutor::new(&cfg.work_dir)
        .with_context(|| format!("using work dir {}", cfg.work_dir.display()))?;
    crate::git::exec::set_git_timeout_ms(cfg.git_timeout_ms);
    let mut watches = Watches::new(client.clone(), tx.clone(), observer);
    if let Some(settings) = cfg.webhook_configuration.clone() {
        let (watched_tx, watched_rx) = watch::channel(Default::default());
        watches.publish_to(watched_tx);
        tasks.push(tokio::spawn(webhook_config::run(
            client.clone(),
            settings,
            tls.clone(),
            watched_rx,
            shutdown.clone(),
        )));
    }
    let driver = Driver {
        core: Core::new(cfg.core.clone()),
        tx: tx.clone(),
        watches,
        git,
        shared,
        status_tx,
        metrics,
        health,
        recorder,
        shutdown_timeout: cfg.shutdown_timeout,
    };
    let inbox = Inbox {
        rx,
        admissions: adm_rx,
        shutdown,
    };
    driver.run(inbox).await;
    for t in tasks {
        t.abort();
    }
    // The driver returns on shutdown, which the webhook's thread sees too.
    let _ = tokio::task::spawn_blocking(move || webhook_thread.join()).await;
    Ok(())
}

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
    let relay = tokio::spawn(async move {
        while let Some(ev) = crx.recv().await {
            if matches!(
                ev,
                WatchEvent::Apply(_) | WatchEvent::Delete(_) | WatchEvent::InitDone
            ) {
                notify.notify_one();
            }
        }
    });
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.iter().for_each(|t| t.abort());
        }
    }
    let _guard = AbortOnDrop(vec![crds, relay]);
    let mut backoff = crate::kube::backoff::Backoff::default();
    loop {
        match discovery::discover(&client).await {
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
