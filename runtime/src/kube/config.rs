//! The reverser's own custom resources and the credentials Secrets they name, turned into the
//! core's configuration inputs.
//!
//! Each CR kind is one raw stream; a relist's `InitDone` removes whatever the list no longer had.
//! A GitRepoConfig's Secret is read only from that GitRepoConfig's namespace (a field-selected
//! stream of one name), parsed by the executor's credentials code, and its verdict goes to the
//! core as [`Input::Credentials`]; the parsed credentials stay here, keyed by GitRepoConfig, for
//! the git executor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use gitops_reverser_core::config::{
    ClusterWatchRuleSpec, CrRef, GitRepoConfigSpec, NamespacedName, WatchRuleSpec,
};
use gitops_reverser_core::io::{Input, SigningVerdict, WatchEvent};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::stream::{self, StreamObserver, StreamSpec};
use crate::crd::CrKind;
use crate::crd::{GROUP, VERSION};
use crate::git::sign::Signer;
use crate::git::Credentials;
use crate::msg::Msg;

/// What the configuration streams share with the rest of the runtime.
#[derive(Default)]
pub struct Shared {
    /// `metadata.generation` of each custom resource, for `status.observedGeneration`.
    pub generations: Mutex<BTreeMap<CrRef, i64>>,
    /// Usable credentials per GitRepoConfig.
    pub creds: RwLock<BTreeMap<NamespacedName, Arc<Credentials>>>,
    /// Usable signing keys per GitRepoConfig (`spec.signing`).
    pub signers: RwLock<BTreeMap<NamespacedName, Arc<Signer>>>,
}

impl Shared {
    /// The credentials of a GitRepoConfig, if its Secret is usable.
    pub fn creds_of(&self, repo: &NamespacedName) -> Option<Arc<Credentials>> {
        self.creds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(repo)
            .cloned()
    }

    /// The signing key of a GitRepoConfig, if its Secret holds a usable one.
    pub fn signer_of(&self, repo: &NamespacedName) -> Option<Arc<Signer>> {
        self.signers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(repo)
            .cloned()
    }
}

#[derive(Deserialize)]
struct Cr {
    metadata: CrMeta,
    #[serde(default)]
    spec: serde_json::Value,
}

#[derive(Deserialize)]
struct CrMeta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
}

impl CrKind {
    fn cr_ref(self, meta: &CrMeta) -> CrRef {
        let nn = || NamespacedName::new(meta.namespace.as_deref().unwrap_or(""), &meta.name);
        match self {
            CrKind::GitRepoConfig => CrRef::GitRepoConfig(nn()),
            CrKind::WatchRule => CrRef::WatchRule(nn()),
            CrKind::ClusterWatchRule => CrRef::ClusterWatchRule(meta.name.clone()),
        }
    }
}

/// The input removing a CR from the core.
fn removed(cr: &CrRef) -> Input {
    match cr {
        CrRef::GitRepoConfig(n) => Input::GitRepoConfig(n.clone(), None),
        CrRef::WatchRule(n) => Input::WatchRule(n.clone(), None),
        CrRef::ClusterWatchRule(n) => Input::ClusterWatchRule(n.clone(), None),
    }
}

fn parse<S: DeserializeOwned>(spec: serde_json::Value) -> Result<S, String> {
    serde_json::from_value(spec).map_err(|e| format!("spec does not fit the CRD: {e}"))
}

/// The core input for a CR's current state; an unreadable spec removes it from the core and is
/// reported as its status.
fn upserted(cr: &CrRef, spec: serde_json::Value) -> Result<Input, String> {
    Ok(match cr {
        CrRef::GitRepoConfig(n) => {
            Input::GitRepoConfig(n.clone(), Some(parse::<GitRepoConfigSpec>(spec)?))
        }
        CrRef::WatchRule(n) => Input::WatchRule(n.clone(), Some(parse::<WatchRuleSpec>(spec)?)),
        CrRef::ClusterWatchRule(n) => {
            Input::ClusterWatchRule(n.clone(), Some(parse::<ClusterWatchRuleSpec>(spec)?))
        }
    })
}

/// Starts the three CR streams and their translators.
pub fn spawn(
    client: Client,
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    observer: Arc<dyn StreamObserver>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for kind in CrKind::ALL {
        let spec = StreamSpec {
            path: format!("/apis/{GROUP}/{VERSION}/{}", kind.plural()),
            field_selector: None,
            type_meta: (format!("{GROUP}/{VERSION}"), kind.kind().into()),
            label: kind.plural().into(),
            crd: Some(format!("{}.{GROUP}", kind.plural())),
            gvr: None,
        };
        let (stream, erx) = stream::spawn_events(&client, spec, 256, &observer);
        tasks.push(stream);
        tasks.push(tokio::spawn(translate(
            kind,
            erx,
            tx.clone(),
            shared.clone(),
            client.clone(),
            observer.clone(),
        )));
    }
    tasks
}

/// What a GitRepoConfig reads a Secret for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Purpose {
    /// `spec.secretRef`: the remote's credentials.
    Credentials,
    /// `spec.signing.secretRef`: the commit signing key.
    Signing,
}

/// The key of the signing key in its Secret (as a `kubernetes.io/ssh-auth` Secret has it).
pub const SIGNING_KEY_FIELD: &str = "ssh-privatekey";

/// A GitRepoConfig's Secret stream, restarted when its reference changes.
struct SecretWatch {
    secret: String,
    task: JoinHandle<()>,
}

impl Drop for SecretWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn translate(
    kind: CrKind,
    mut rx: mpsc::Receiver<WatchEvent>,
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    client: Client,
    observer: Arc<dyn StreamObserver>,
) {
    let mut known: BTreeSet<CrRef> = BTreeSet::new();
    let mut listed: BTreeSet<CrRef> = BTreeSet::new();
    let mut secrets: BTreeMap<(NamespacedName, Purpose), SecretWatch> = BTreeMap::new();
    while let Some(ev) = rx.recv().await {
        let mut out = Vec::new();
        match ev {
            WatchEvent::Init => listed.clear(),
            WatchEvent::InitDone => {
                for gone in known.difference(&listed).cloned().collect::<Vec<_>>() {
                    known.remove(&gone);
                    forget(&gone, &shared, &mut secrets);
                    out.push(Msg::Input(removed(&gone)));
                }
                out.push(Msg::ConfigSynced(kind));
            }
            WatchEvent::InitApply(obj) | WatchEvent::Apply(obj) => {
                let cr: Cr = match serde_json::from_slice(obj.as_bytes()) {
                    Ok(cr) => cr,
                    Err(e) => {
                        tracing::warn!(kind = kind.kind(), "unreadable custom resource: {e}");
                        continue;
                    }
                };
                let r = kind.cr_ref(&cr.metadata);
                listed.insert(r.clone());
                known.insert(r.clone());
                if let Some(g) = cr.metadata.generation {
                    shared
                        .generations
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(r.clone(), g);
                }
                match upserted(&r, cr.spec) {
                    Ok(input) => {
                        if let Input::GitRepoConfig(name, Some(spec)) = &input {
                            let wanted = [
                                (Purpose::Credentials, spec.secret_ref.as_ref()),
                                (
                                    Purpose::Signing,
                                    spec.signing.as_ref().map(|s| &s.secret_ref),
                                ),
                            ];
                            for (purpose, secret) in wanted {
                                watch_secret(
                                    (name, purpose),
                                    secret.map(|s| s.name.clone()),
                                    &mut secrets,
                                    &client,
                                    &tx,
                                    &shared,
                                    &observer,
                                );
                            }
                        }
                        out.push(Msg::Input(input));
                    }
                    Err(message) => {
                        tracing::warn!(cr = %r, "{message}");
                        forget(&r, &shared, &mut secrets);
                        out.push(Msg::Input(removed(&r)));
                        out.push(Msg::InvalidSpec(r, message));
                    }
                }
            }
            WatchEvent::Delete(obj) => {
                let Ok(cr) = serde_json::from_slice::<Cr>(obj.as_bytes()) else {
                    continue;
                };
                let r = kind.cr_ref(&cr.metadata);
                known.remove(&r);
                listed.remove(&r);
                forget(&r, &shared, &mut secrets);
                out.push(Msg::Input(removed(&r)));
            }
        }
        for m in out {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    }
}

type SecretWatches = BTreeMap<(NamespacedName, Purpose), SecretWatch>;

fn forget(cr: &CrRef, shared: &Shared, secrets: &mut SecretWatches) {
    shared
        .generations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(cr);
    if let CrRef::GitRepoConfig(name) = cr {
        for purpose in [Purpose::Credentials, Purpose::Signing] {
            secrets.remove(&(name.clone(), purpose));
            shared.drop_secret(name, purpose);
        }
    }
}

impl Shared {
    /// Forgets what a GitRepoConfig's Secret for `purpose` gave.
    fn drop_secret(&self, repo: &NamespacedName, purpose: Purpose) {
        match purpose {
            Purpose::Credentials => {
                self.creds
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(repo);
            }
            Purpose::Signing => {
                self.signers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(repo);
            }
        }
    }
}

fn watch_secret(
    (repo, purpose): (&NamespacedName, Purpose),
    secret: Option<String>,
    secrets: &mut SecretWatches,
    client: &Client,
    tx: &mpsc::Sender<Msg>,
    shared: &Arc<Shared>,
    observer: &Arc<dyn StreamObserver>,
) {
    let key = (repo.clone(), purpose);
    if secrets.get(&key).map(|w| &w.secret) == secret.as_ref() {
        return;
    }
    secrets.remove(&key);
    shared.drop_secret(repo, purpose);
    let Some(secret) = secret else {
        return;
    };
    // Tenancy: the Secret is looked up in the GitRepoConfig's own namespace, and nowhere else.
    let spec = StreamSpec {
        path: format!("/api/v1/namespaces/{}/secrets", repo.namespace),
        field_selector: Some(format!("metadata.name={secret}")),
        type_meta: ("v1".into(), "Secret".into()),
        label: format!("secret {}/{secret}", repo.namespace),
        crd: None,
        gvr: None,
    };
    let (stream, erx) = stream::spawn_events(client, spec, 16, observer);
    let verdicts = tokio::spawn(secret_verdicts(
        repo.clone(),
        secret.clone(),
        purpose,
        erx,
        tx.clone(),
        shared.clone(),
        stream,
    ));
    secrets.insert(
        key,
        SecretWatch {
            secret,
            task: verdicts,
        },
    );
}

/// The label a Secret must carry to be used as a GitRepoConfig's credentials. Whoever may create
/// GitRepoConfigs but not read Secrets must not be able to point the operator at any Secret of
/// the namespace (and a remote of their own): the Secret's owner opts in, as Argo CD's repository
/// Secrets do.
pub const CREDENTIALS_LABEL: &str = "configbutler.ai/credentials";

#[derive(Deserialize)]
struct SecretObj {
    #[serde(default)]
    metadata: SecretMeta,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
struct SecretMeta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn parse_secret(text: &[u8]) -> Result<SecretObj, String> {
    serde_json::from_slice(text).map_err(|e| format!("unreadable Secret: {e}"))
}

fn labelled(s: &SecretObj) -> bool {
    s.metadata.labels.get(CREDENTIALS_LABEL).map(String::as_str) == Some("true")
}

fn decode(s: SecretObj) -> Result<BTreeMap<String, Vec<u8>>, String> {
    s.data
        .into_iter()
        .map(|(k, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .map(|bytes| (k.clone(), bytes))
                .map_err(|_| format!("key {k} is not base64"))
        })
        .collect()
}

/// Whether a Secret (JSON) carries [`CREDENTIALS_LABEL`]`=true`. Unreadable is no.
pub fn opted_in(text: &[u8]) -> bool {
    parse_secret(text).is_ok_and(|s| labelled(&s))
}

/// Reads a Secret's `data` into what [`Credentials::from_secret_data`] takes.
pub fn secret_data(text: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    decode(parse_secret(text)?)
}

async fn secret_verdicts(
    repo: NamespacedName,
    secret: String,
    purpose: Purpose,
    mut rx: mpsc::Receiver<WatchEvent>,
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    stream: JoinHandle<()>,
) {
    struct AbortOnDrop(JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _stream = AbortOnDrop(stream);
    // The same words whether the Secret is missing or not labelled: whoever reads the status
    // learns nothing of a Secret they could not read.
    let what = match purpose {
        Purpose::Credentials => "credentials",
        Purpose::Signing => "signing key",
    };
    let missing = format!(
        "Secret {secret} not found in namespace {}, or not labelled {CREDENTIALS_LABEL}=true: create it there with that label (a GitRepoConfig's {what} is read only from its own namespace, and only from a Secret that opts in)",
        repo.namespace
    );
    let mut found = false;
    while let Some(ev) = rx.recv().await {
        let data = match ev {
            WatchEvent::Init => {
                found = false;
                continue;
            }
            WatchEvent::InitDone if found => continue,
            WatchEvent::InitDone | WatchEvent::Delete(_) => {
                found = false;
                Err(missing.clone())
            }
            // Parsed once: its label decides, then its data is read.
            WatchEvent::InitApply(obj) | WatchEvent::Apply(obj) => {
                match parse_secret(obj.as_bytes()) {
                    Ok(s) if labelled(&s) => {
                        found = true;
                        decode(s).map_err(|e| format!("Secret {}/{secret}: {e}", repo.namespace))
                    }
                    _ => {
                        found = false;
                        Err(missing.clone())
                    }
                }
            }
        };
        let input = match purpose {
            Purpose::Credentials => {
                let verdict = data.and_then(|d| Credentials::from_secret_data(&secret, &d));
                let mut creds = shared.creds.write().unwrap_or_else(|p| p.into_inner());
                let problem = match verdict {
                    Ok(c) => {
                        creds.insert(repo.clone(), Arc::new(c));
                        None
                    }
                    Err(problem) => {
                        creds.remove(&repo);
                        tracing::warn!(repo = %repo, "credentials unusable: {problem}");
                        Some(problem)
                    }
                };
                Input::Credentials(repo.clone(), problem.into())
            }
            Purpose::Signing => {
                let verdict = data.and_then(|d| {
                    let key = d.get(SIGNING_KEY_FIELD).ok_or_else(|| {
                        format!(
                            "Secret {}/{secret} has no {SIGNING_KEY_FIELD}",
                            repo.namespace
                        )
                    })?;
                    Signer::from_openssh(key).map_err(|e| {
                        format!(
                            "Secret {}/{secret}: {SIGNING_KEY_FIELD}: {e}",
                            repo.namespace
                        )
                    })
                });
                let mut signers = shared.signers.write().unwrap_or_else(|p| p.into_inner());
                let verdict = match verdict {
                    Ok(s) => {
                        let v = SigningVerdict::Usable {
                            public_key: s.public_key(),
                            fingerprint: s.fingerprint(),
                        };
                        tracing::info!(repo = %repo, key = %s.fingerprint(), "commits are signed");
                        signers.insert(repo.clone(), Arc::new(s));
                        v
                    }
                    Err(problem) => {
                        signers.remove(&repo);
                        tracing::warn!(repo = %repo, "signing key unusable: {problem}");
                        SigningVerdict::Invalid(problem)
                    }
                };
                Input::Signing(repo.clone(), verdict)
            }
        };
        if tx.send(Msg::Input(input)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_secret_labelled_for_credentials_opts_in() {
        let with = |labels: &str| {
            format!(r#"{{"metadata":{{"name":"c","labels":{labels}}},"data":{{}}}}"#)
        };
        assert!(opted_in(
            with(r#"{"configbutler.ai/credentials":"true"}"#).as_bytes()
        ));
        assert!(!opted_in(
            with(r#"{"configbutler.ai/credentials":"yes"}"#).as_bytes()
        ));
        assert!(!opted_in(with(r#"{"app":"x"}"#).as_bytes()));
        assert!(!opted_in(br#"{"metadata":{"name":"c"},"data":{}}"#));
        assert!(!opted_in(b"not json"));
    }

    #[test]
    fn secret_data_is_decoded_and_bad_base64_names_its_key() {
        let ok = br#"{"data":{"username":"YWxpY2U=","password":"czNjcmV0"}}"#;
        let data = secret_data(ok).unwrap();
        assert_eq!(data["username"], b"alice");
        assert_eq!(data["password"], b"s3cret");
        let bad = br#"{"data":{"password":"***"}}"#;
        assert_eq!(secret_data(bad).unwrap_err(), "key password is not base64");
    }

    #[test]
    fn a_spec_that_does_not_fit_is_an_error_naming_the_field() {
        let r = CrRef::GitRepoConfig(NamespacedName::new("a", "b"));
        let err = upserted(&r, serde_json::json!({"allowedBranches": ["main"]})).unwrap_err();
        assert!(err.contains("repoURL"), "{err}");
        assert!(matches!(
            upserted(&r, serde_json::json!({"repoURL": "file:///x"})),
            Ok(Input::GitRepoConfig(_, Some(_)))
        ));
    }
}
