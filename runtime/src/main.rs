//! `gitops-reverser`: `run` the operator, print its `crds`, or its `version`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gitops_reverser_core::config::parse_duration_ms;
use gitops_reverser_core::io::Identity;
use gitops_reverser_core::CoreConfig;
use gitops_reverser_core::CorrelationLimits;
use gitops_reverser_core::SecretPolicy;
use gitops_reverser_runtime::certs::Policy;
use gitops_reverser_runtime::crd;
use gitops_reverser_runtime::kube::webhook_config::{CertSettings, Settings};
use gitops_reverser_runtime::run::{run, ElectionConfig, RunConfig};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gitops-reverser",
    about = "Keeps a Git repository equal to a Kubernetes cluster's live state, authored by who changed it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run(Box<RunArgs>),
    /// Print the CRDs as YAML (or write one file each into a folder).
    Crds {
        /// Write `<crd name>.yaml` files into this folder instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Replay a `--record-inputs` recording into the core (no cluster, no git server) and print
    /// the commits it pushed, the final trees and the core's counters.
    Replay {
        /// The recording (JSON lines).
        file: PathBuf,
        /// `text` (stable, readable) or `json`.
        #[arg(long, value_enum, default_value = "text")]
        format: ReplayFormat,
    },
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReplayFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WebhookCerts {
    /// Serve `--tls-cert` and `--tls-key`, re-read when they change (cert-manager, or by hand).
    Files,
    /// Issue and rotate a CA and serving certificate, kept in a Secret in the operator's
    /// namespace, and write the CA into the webhook configuration's caBundle.
    SelfManaged,
}

#[derive(Clone, Copy, ValueEnum)]
enum SecretPolicyArg {
    /// Keep Secrets' keys, replace every value.
    Redact,
    /// Never write Secrets.
    Exclude,
}

fn duration_ms(text: &str) -> Result<u64, String> {
    parse_duration_ms(text)
        .ok_or_else(|| format!("`{text}` is not a duration such as 30s, 1m or 1h30m"))
}

#[derive(clap::Args)]
struct RunArgs {
    /// Kubeconfig file. Without it: `KUBECONFIG` (a list of files, merged as kubectl does), then
    /// the in-cluster service account, then $HOME/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (of whichever kubeconfig is used; alone, it skips in-cluster).
    #[arg(long, env = "GITOPS_REVERSER_CONTEXT")]
    context: Option<String>,
    /// Address (and port) of the admission webhook (HTTPS).
    #[arg(
        long,
        env = "GITOPS_REVERSER_WEBHOOK_ADDR",
        default_value = "0.0.0.0:9443"
    )]
    webhook_addr: SocketAddr,
    /// Address (and port) of /metrics, /healthz and /readyz (HTTP).
    #[arg(
        long,
        env = "GITOPS_REVERSER_ADMIN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    admin_addr: SocketAddr,
    /// The webhook's certificate chain, PEM (re-read when it changes).
    #[arg(long, env = "GITOPS_REVERSER_TLS_CERT", default_value = "/tls/tls.crt")]
    tls_cert: PathBuf,
    /// The webhook's private key, PEM (re-read when it changes).
    #[arg(long, env = "GITOPS_REVERSER_TLS_KEY", default_value = "/tls/tls.key")]
    tls_key: PathBuf,
    /// Where the webhook's certificate comes from. The manifests use self-managed.
    #[arg(
        long,
        env = "GITOPS_REVERSER_WEBHOOK_CERTS",
        value_enum,
        default_value = "files"
    )]
    webhook_certs: WebhookCerts,
    /// The operator's own ValidatingWebhookConfiguration: its webhook's rules are kept equal to
    /// the watched types, and with self-managed certificates its caBundle to their CA. Without
    /// it, whoever registered the webhook keeps both.
    #[arg(long, env = "GITOPS_REVERSER_WEBHOOK_CONFIGURATION")]
    webhook_configuration: Option<String>,
    /// The name of the webhook in that configuration.
    #[arg(
        long,
        env = "GITOPS_REVERSER_WEBHOOK_NAME",
        default_value = "gitops-reverser.configbutler.ai"
    )]
    webhook_name: String,
    /// The Service the API server reaches the webhook through (the certificate's DNS names).
    #[arg(
        long,
        env = "GITOPS_REVERSER_WEBHOOK_SERVICE",
        default_value = "gitops-reverser-webhook"
    )]
    webhook_service: String,
    /// More names for the self-managed certificate (DNS names or IP addresses), comma-separated.
    #[arg(
        long,
        env = "GITOPS_REVERSER_WEBHOOK_CERT_NAMES",
        value_delimiter = ','
    )]
    webhook_cert_names: Vec<String>,
    /// The Secret, in the operator's namespace, that holds the self-managed certificates.
    #[arg(
        long,
        env = "GITOPS_REVERSER_WEBHOOK_CERT_SECRET",
        default_value = "gitops-reverser-webhook-tls"
    )]
    webhook_cert_secret: String,

    /// The Secret in the operator's namespace holding the fingerprint key of sealed files
    /// (GitRepoConfig spec.encryption); made at the first start. Empty: none (encryption
    /// cannot be used).
    #[arg(
        long,
        env = "GITOPS_REVERSER_SEAL_KEY_SECRET",
        default_value = "gitops-reverser-seal-key"
    )]
    seal_key_secret: String,
    /// How long each self-managed certificate is valid; a new one is staged at two thirds of it
    /// and serves a sixth later. At least 30s.
    #[arg(long, env = "GITOPS_REVERSER_WEBHOOK_CERT_LIFETIME", default_value = "2160h", value_parser = duration_ms)]
    webhook_cert_lifetime: u64,
    /// Folder of the operator's clones.
    #[arg(
        long,
        env = "GITOPS_REVERSER_WORK_DIR",
        default_value = "/var/lib/gitops-reverser"
    )]
    work_dir: PathBuf,
    /// Author name of commits whose user is not known.
    #[arg(
        long,
        env = "GITOPS_REVERSER_FALLBACK_AUTHOR_NAME",
        default_value = "gitops-reverser"
    )]
    fallback_author_name: String,
    /// Author e-mail of commits whose user is not known.
    #[arg(
        long,
        env = "GITOPS_REVERSER_FALLBACK_AUTHOR_EMAIL",
        default_value = "gitops-reverser@configbutler.ai"
    )]
    fallback_author_email: String,
    /// Committer name of every commit.
    #[arg(
        long,
        env = "GITOPS_REVERSER_COMMITTER_NAME",
        default_value = "gitops-reverser"
    )]
    committer_name: String,
    /// Committer e-mail of every commit.
    #[arg(
        long,
        env = "GITOPS_REVERSER_COMMITTER_EMAIL",
        default_value = "gitops-reverser@configbutler.ai"
    )]
    committer_email: String,
    /// Domain of users' author e-mail addresses (`alice@<domain>`).
    #[arg(
        long,
        env = "GITOPS_REVERSER_USER_EMAIL_DOMAIN",
        default_value = "cluster.local"
    )]
    user_email_domain: String,
    /// How long an admission record waits for its watch event. Raise it when watch events lag
    /// behind admission by more than this (authors then fall back).
    #[arg(long, env = "GITOPS_REVERSER_CORRELATION_TTL", default_value = "60s", value_parser = duration_ms)]
    correlation_ttl: u64,
    /// What happens to Secrets.
    #[arg(
        long,
        env = "GITOPS_REVERSER_SECRET_POLICY",
        value_enum,
        default_value = "redact"
    )]
    secret_policy: SecretPolicyArg,
    /// Log format; the level comes from RUST_LOG (default info).
    #[arg(
        long,
        env = "GITOPS_REVERSER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Write every core input to this file (JSON lines) so the run can be replayed exactly.
    #[arg(long, env = "GITOPS_REVERSER_RECORD_INPUTS")]
    record_inputs: Option<PathBuf>,
    /// How long a git operation may go without progress (no bytes from the remote) before it is
    /// abandoned and retried with backoff, its writes kept: a remote that accepts connections
    /// and never answers. Also the connect timeout, up to 15s.
    #[arg(long, env = "GITOPS_REVERSER_GIT_TIMEOUT", default_value = "30s", value_parser = duration_ms)]
    git_timeout: u64,
    /// Require the webhook's callers to present a client certificate signed by a CA in this PEM
    /// file: the API server's, configured with `--admission-control-config-file`. Anything else
    /// (a pod posting forged reviews) is refused in the TLS handshake.
    #[arg(long, env = "GITOPS_REVERSER_WEBHOOK_CLIENT_CA")]
    webhook_client_ca: Option<PathBuf>,
    /// Namespaces whose GitRepoConfigs a ClusterWatchRule may name, comma-separated; `*` trusts
    /// every namespace. Default: the operator's own (POD_NAMESPACE, else its service account's,
    /// else gitops-reverser-system).
    #[arg(
        long,
        env = "GITOPS_REVERSER_CLUSTER_RULE_NAMESPACES",
        value_delimiter = ','
    )]
    cluster_rule_namespaces: Vec<String>,
    /// Let GitRepoConfigs name `file://` remotes. For tests and the demo only: in a shared cluster
    /// a tenant would point the operator at its own filesystem (another tenant's clone in the
    /// work dir). The manifests never set it.
    #[arg(long, env = "GITOPS_REVERSER_ALLOW_FILE_REMOTES")]
    allow_file_remotes: bool,
    /// Elect one leader among replicas on a Lease in the operator's namespace: only the leader
    /// runs the core (watches, git, status); every replica serves the webhook and forwards its
    /// records to the leader. The manifests turn it on.
    #[arg(long, env = "GITOPS_REVERSER_LEADER_ELECTION")]
    leader_election: bool,
    /// The Lease's name.
    #[arg(
        long,
        env = "GITOPS_REVERSER_LEASE_NAME",
        default_value = "gitops-reverser"
    )]
    lease_name: String,
    /// The Lease's namespace. Default: the operator's own.
    #[arg(long, env = "GITOPS_REVERSER_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Lease. Default: POD_NAME, else the host name.
    #[arg(long, env = "GITOPS_REVERSER_LEASE_IDENTITY")]
    lease_identity: Option<String>,
    /// How long a Lease not renewed stays its holder's.
    #[arg(long, env = "GITOPS_REVERSER_LEASE_DURATION", default_value = "15s", value_parser = duration_ms)]
    lease_duration: u64,
    /// How long the leader goes on leading without a successful renewal before it stops.
    #[arg(long, env = "GITOPS_REVERSER_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = duration_ms)]
    lease_renew_deadline: u64,
    /// How often every replica tries to acquire or renew the Lease.
    #[arg(long, env = "GITOPS_REVERSER_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = duration_ms)]
    lease_retry_period: u64,
    /// Where the leader takes records forwarded by followers (TLS, the operator's own
    /// certificate on both ends).
    #[arg(
        long,
        env = "GITOPS_REVERSER_FORWARD_ADDR",
        default_value = "0.0.0.0:9444"
    )]
    forward_addr: SocketAddr,
    /// The `host:port` followers reach this replica's forwarding endpoint at. Default: POD_IP
    /// and the port of --forward-addr.
    #[arg(long, env = "GITOPS_REVERSER_FORWARD_ADVERTISE")]
    forward_advertise: Option<String>,
    /// How long SIGTERM waits for pending pushes before exiting.
    #[arg(long, env = "GITOPS_REVERSER_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = duration_ms)]
    shutdown_timeout: u64,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: a file or `kubectl logs` gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn instance_id() -> u64 {
    // Distinguishes this process's op tags from an earlier one's; any unique-enough value does.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn core_config(a: &RunArgs) -> CoreConfig {
    let mut c = CoreConfig {
        instance_id: instance_id(),
        ..CoreConfig::default()
    };
    c.identities.committer = Identity {
        name: a.committer_name.clone(),
        email: a.committer_email.clone(),
    };
    c.identities.fallback_author = Identity {
        name: a.fallback_author_name.clone(),
        email: a.fallback_author_email.clone(),
    };
    c.identities.user_email_domain = a.user_email_domain.clone();
    c.secret_policy = match a.secret_policy {
        SecretPolicyArg::Redact => SecretPolicy::Redact,
        SecretPolicyArg::Exclude => SecretPolicy::Exclude,
    };
    c.correlation = CorrelationLimits {
        ttl_ms: a.correlation_ttl,
        ..CorrelationLimits::default()
    };
    c.trusted_namespaces = trusted_namespaces(&a.cluster_rule_namespaces, own_namespace);
    c.file_remotes = a.allow_file_remotes;
    c
}

/// What the operator keeps of its webhook's registration and certificates.
fn webhook_settings(a: &RunArgs) -> Option<Settings> {
    let certs = (a.webhook_certs == WebhookCerts::SelfManaged).then(|| {
        let namespace = own_namespace();
        CertSettings {
            policy: Policy::for_service(
                &a.webhook_service,
                &namespace,
                &a.webhook_cert_names,
                (a.webhook_cert_lifetime / 1000) as i64,
            ),
            namespace,
            secret: a.webhook_cert_secret.clone(),
        }
    });
    if certs.is_none() && a.webhook_configuration.as_deref().unwrap_or("").is_empty() {
        return None;
    }
    Some(Settings {
        configuration: a.webhook_configuration.clone().filter(|c| !c.is_empty()),
        webhook: a.webhook_name.clone(),
        certs,
    })
}

/// Leader election, when asked for: the Lease, who this replica is, and where it takes records.
fn election(a: &RunArgs) -> Option<ElectionConfig> {
    if !a.leader_election {
        return None;
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let identity = a
        .lease_identity
        .clone()
        .or_else(|| env("POD_NAME"))
        .or_else(|| env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_default();
    let endpoint = a.forward_advertise.clone().or_else(|| {
        let host = env("POD_IP").unwrap_or_else(|| a.forward_addr.ip().to_string());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(format!("{host}:{}", a.forward_addr.port()))
    });
    Some(ElectionConfig {
        lease: gitops_reverser_runtime::lease::Settings {
            namespace: a.lease_namespace.clone().unwrap_or_else(own_namespace),
            name: a.lease_name.clone(),
            identity,
            endpoint,
            duration_ms: a.lease_duration,
            renew_deadline_ms: a.lease_renew_deadline,
            retry_period_ms: a.lease_retry_period,
        },
        forward_addr: a.forward_addr,
    })
}

/// The namespaces ClusterWatchRules may write through: those given, every one for `*`, the
/// operator's own when none is given.
fn trusted_namespaces(
    given: &[String],
    own: impl FnOnce() -> String,
) -> Option<std::collections::BTreeSet<String>> {
    let given: Vec<&str> = given
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if given.contains(&"*") {
        return None;
    }
    if given.is_empty() {
        return Some([own()].into());
    }
    Some(given.into_iter().map(String::from).collect())
}

/// The operator's namespace: POD_NAMESPACE (the manifests set it), else the in-cluster service
/// account's, else `gitops-reverser-system`.
fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "gitops-reverser-system".into())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("gitops-reverser {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Replay { file, format } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let rec = gitops_reverser_core::record::read(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            for bad in &rec.bad_lines {
                eprintln!("{}: {bad} (skipped)", file.display());
            }
            let replayed = gitops_reverser_core::replay::replay(&rec);
            match format {
                ReplayFormat::Text => print!("{}", replayed.text()),
                ReplayFormat::Json => println!("{}", serde_json::to_string_pretty(&replayed)?),
            }
            Ok(())
        }
        Command::Crds { out_dir: None } => {
            print!("{}", crd::yaml());
            Ok(())
        }
        Command::Crds { out_dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for c in crd::all() {
                let path = dir.join(crd::file_name(&c));
                std::fs::write(&path, serde_yaml::to_string(&c)?)?;
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Run(args) => {
            init_logs(args.log_format);
            let _ = rustls::crypto::ring::default_provider().install_default();
            let cfg = RunConfig {
                core: core_config(&args),
                kubeconfig: args.kubeconfig.clone(),
                context: args.context.clone(),
                webhook_addr: args.webhook_addr,
                admin_addr: args.admin_addr,
                tls_cert: args.tls_cert.clone(),
                tls_key: args.tls_key.clone(),
                webhook_client_ca: args.webhook_client_ca.clone(),
                work_dir: args.work_dir.clone(),
                record_inputs: args.record_inputs.clone(),
                shutdown_timeout: Duration::from_millis(args.shutdown_timeout),
                git_timeout_ms: args.git_timeout,
                self_managed_tls: args.webhook_certs == WebhookCerts::SelfManaged,
                webhook_configuration: webhook_settings(&args),
                election: election(&args),
                seal_key_secret: (!args.seal_key_secret.is_empty())
                    .then(|| (own_namespace(), args.seal_key_secret.clone())),
            };
            // Every thread of this runtime runs below the webhook's own (see `priority`).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .on_thread_start(gitops_reverser_runtime::priority::lower_current_thread)
                .build()?;
            rt.block_on(async move {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    signals().await;
                    tracing::info!(
                        "signal received: shutting down (a second signal exits at once)"
                    );
                    let _ = stop_tx.send(true);
                    signals().await;
                    tracing::warn!("second signal: exiting now");
                    std::process::exit(130);
                });
                tracing::info!(
                    version = env!("CARGO_PKG_VERSION"),
                    "gitops-reverser starting"
                );
                run(cfg, stop_rx).await
            })?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

async fn signals() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_rules_trust_the_operators_namespace_unless_told_otherwise() {
        let own = || "ops".to_string();
        assert_eq!(
            trusted_namespaces(&[], own),
            Some(["ops".to_string()].into())
        );
        let given = vec!["a".to_string(), " b ".to_string()];
        assert_eq!(
            trusted_namespaces(&given, own),
            Some(["a".to_string(), "b".to_string()].into())
        );
        assert_eq!(trusted_namespaces(&["*".to_string()], own), None);
    }
}
