//! The operator's own ValidatingWebhookConfiguration and webhook certificates.
//!
//! - **Rules**: the API server calls the webhook only for the types being watched. With `*/*`
//!   it would call for every Lease renewal and Event in the cluster. The webhook's `rules` follow
//!   the running watch streams ([`Watches::publish_to`]); Leases and Events are never included.
//!   A change made before the rules caught up is committed with the fallback author.
//! - **Certificates** (self-managed, [`crate::certs`]): a Secret in the operator's namespace holds
//!   them; every replica serves what it holds, and whoever finds a step due writes it, guarded by
//!   the Secret's resourceVersion (a conflict means another replica wrote first: read theirs).
//!   The webhook's `caBundle` follows.
//!
//! Both are written with server-side apply under the field manager [`FIELD_MANAGER`], which then
//! owns exactly `rules` and `clientConfig.caBundle` of its one webhook: whatever else the
//! manifests set stays theirs. The configuration is read back on every round and re-applied when
//! it drifted (a `kubectl replace` of the manifest, say).
//!
//! [`Watches::publish_to`]: super::watches::Watches::publish_to

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use gitops_reverser_core::Gvr;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::backoff::Backoff;
use super::status::unix_now_s;
use crate::certs::{self, Policy, State};
use crate::tls::ReloadingTls;

/// The field manager of the operator's writes to its webhook configuration.
pub const FIELD_MANAGER: &str = "gitops-reverser";
/// The Secret key holding the certificates' [`State`] (the other keys are derived from it).
pub const STATE_KEY: &str = "state.json";
/// Longest wait between two rounds, in milliseconds: a drifted configuration or another
/// replica's rotation is seen within this.
pub const ROUND_MS_MAX: u64 = 30_000;
/// Types the webhook is never called for, whatever the rules select: written by the thousand
/// per minute by the cluster itself, and never worth an author.
pub const NEVER_CALLED: [(&str, &str); 3] = [
    ("coordination.k8s.io", "leases"),
    ("", "events"),
    ("events.k8s.io", "events"),
];

/// What this task manages.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The ValidatingWebhookConfiguration's name; `None` keeps none (self-managed certificates
    /// for a webhook someone else registers).
    pub configuration: Option<String>,
    /// The name of the webhook entry in it that the operator serves.
    pub webhook: String,
    /// Self-managed certificates, if so configured; otherwise the caBundle is someone else's
    /// (cert-manager's CA injector) and only the rules are written.
    pub certs: Option<CertSettings>,
}

/// Where the self-managed certificates live and what they hold.
#[derive(Clone, Debug)]
pub struct CertSettings {
    /// The operator's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// Names and lifetime.
    pub policy: Policy,
}

/// The webhook's rules for the watched types: one rule per group and version, its resources
/// sorted, every operation the core records, any scope.
pub fn rules_for(watched: &BTreeSet<Gvr>) -> Value {
    let mut by_gv: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for g in watched {
        if NEVER_CALLED.contains(&(g.group.as_str(), g.resource.as_str())) {
            continue;
        }
        by_gv
            .entry((g.group.as_str(), g.version.as_str()))
            .or_default()
            .push(g.resource.as_str());
    }
    Value::Array(
        by_gv
            .into_iter()
            .map(|((group, version), resources)| {
                json!({
                    "apiGroups": [group],
                    "apiVersions": [version],
                    "operations": ["CREATE", "UPDATE", "DELETE"],
                    "resources": resources,
                    "scope": "*",
                })
            })
            .collect(),
    )
}

/// Runs until `shutdown`: certificates first (so a new bundle is published before its pair can
/// serve), then the configuration.
pub async fn run(
    client: Client,
    settings: Settings,
    tls: Arc<ReloadingTls>,
    mut watched: watch::Receiver<Option<BTreeSet<Gvr>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let secrets = settings
        .certs
        .as_ref()
        .map(|c| (Api::<Secret>::namespaced(client.clone(), &c.namespace), c));
    if let (None, Some(c)) = (&settings.configuration, &settings.certs) {
        tracing::warn!(
            "self-managed certificates without --webhook-configuration: no caBundle is written; whoever registers the webhook must trust ca.crt of Secret {}/{}",
            c.namespace,
            c.secret
        );
    }
    let mut backoff = Backoff::default();
    let mut warned_missing = false;
    loop {
        let now_s = unix_now_s();
        let mut wait_ms = ROUND_MS_MAX;
        let mut failed = false;
        let mut bundle = None;
        if let Some((api, c)) = &secrets {
            match ensure_certs(api, c, now_s).await {
                Ok(state) => {
                    if let Err(e) =
                        tls.install_pem(state.current.cert.as_bytes(), state.current.key.as_bytes())
                    {
                        tracing::error!("the self-managed certificate does not load: {e}");
                        failed = true;
                    }
                    let until_s = state.next_change_s(&c.policy) - now_s;
                    wait_ms = wait_ms.min((until_s.max(1) as u64) * 1000);
                    bundle = Some(state.ca_bundle());
                }
                Err(e) => {
                    tracing::warn!(secret = %c.secret, namespace = %c.namespace, "webhook certificates: {e}; retrying");
                    failed = true;
                }
            }
        }
        // Only a replica that runs the core knows the watched types: a follower keeps the
        // certificates and leaves the rules to the leader.
        let rules = watched.borrow_and_update().as_ref().map(rules_for);
        let kept = match (&settings.configuration, rules) {
            (Some(name), Some(rules)) => Some((
                name,
                reconcile(&configs, name, &settings.webhook, rules, bundle.as_deref()).await,
            )),
            _ => None,
        };
        match kept {
            None | Some((_, Ok(true))) => warned_missing = false,
            Some((name, Ok(false))) => {
                if !warned_missing {
                    tracing::warn!(
                        "ValidatingWebhookConfiguration {name} with a webhook {} is not installed: the API server will not call the webhook, and authors fall back (install the manifests in deploy/)",
                        settings.webhook
                    );
                    warned_missing = true;
                }
            }
            Some((name, Err(e))) => {
                tracing::warn!(configuration = %name, "webhook configuration: {e}; retrying");
                failed = true;
            }
        }
        let delay = if failed {
            backoff.next_delay()
        } else {
            backoff.reset();
            Duration::from_millis(wait_ms)
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            r = watched.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads the stored state, writes the next one if a step is due, and returns what is stored.
async fn ensure_certs(api: &Api<Secret>, c: &CertSettings, now_s: i64) -> Result<State, String> {
    // Two replicas racing: each try re-reads what the winner wrote, so a few suffice.
    for _ in 0..5 {
        let existing = api
            .get_opt(&c.secret)
            .await
            .map_err(|e| format!("reading Secret {}: {e}", c.secret))?;
        let stored = existing.as_ref().and_then(read_state);
        let mut issue = |now_s: i64, p: &Policy| certs::issue(now_s, p);
        let Some(next) = certs::plan(stored.as_ref(), now_s, &c.policy, &mut issue)? else {
            return stored.ok_or_else(|| "no state and nothing planned".to_string());
        };
        let secret = to_secret(c, &next, existing.as_ref());
        let written = match &existing {
            None => api.create(&PostParams::default(), &secret).await,
            Some(_) => {
                api.replace(&c.secret, &PostParams::default(), &secret)
                    .await
            }
        };
        match written {
            Ok(_) => {
                let what = match (&stored, &next.next) {
                    (None, _) => "issued",
                    (Some(_), Some(_)) => "staged a new pair (its CA is trusted from now on)",
                    (Some(s), None) if s.current != next.current => "rotated",
                    (Some(_), None) => "retired an old CA",
                };
                tracing::info!(secret = %c.secret, not_after_s = next.current.not_after_s, "webhook certificate {what}");
                return Ok(next);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::debug!(
                    "webhook certificate Secret written by another replica; reading it"
                );
            }
            Err(e) => return Err(format!("writing Secret {}: {e}", c.secret)),
        }
    }
    Err("the certificate Secret kept changing under us".into())
}

fn read_state(s: &Secret) -> Option<State> {
    let raw = s.data.as_ref()?.get(STATE_KEY)?;
    match serde_json::from_slice(&raw.0) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(
                "the certificate Secret's {STATE_KEY} is unreadable ({e}); issuing anew"
            );
            None
        }
    }
}

fn to_secret(c: &CertSettings, state: &State, existing: Option<&Secret>) -> Secret {
    let mut data = BTreeMap::new();
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    data.insert(
        STATE_KEY.to_string(),
        ByteString(serde_json::to_vec(state).expect("the state serializes")),
    );
    // For people and tools: the serving pair and the bundle, as a kubernetes.io/tls Secret has.
    data.insert("tls.crt".into(), bytes(&state.current.cert));
    data.insert("tls.key".into(), bytes(&state.current.key));
    data.insert("ca.crt".into(), bytes(&state.ca_bundle()));
    Secret {
        metadata: ObjectMeta {
            name: Some(c.secret.clone()),
            namespace: Some(c.namespace.clone()),
            resource_version: existing.and_then(|s| s.metadata.resource_version.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "gitops-reverser".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// Brings the webhook's rules (and caBundle, when given) to what they should be. `Ok(false)`
/// when the configuration or its webhook does not exist: the operator never creates it (the
/// manifests say where the API server reaches the webhook).
async fn reconcile(
    api: &Api<ValidatingWebhookConfiguration>,
    configuration: &str,
    webhook: &str,
    rules: Value,
    ca_bundle: Option<&str>,
) -> Result<bool, String> {
    let Some(live) = api
        .get_opt(configuration)
        .await
        .map_err(|e| format!("reading it: {e}"))?
    else {
        return Ok(false);
    };
    let Some(hook) = live
        .webhooks
        .as_ref()
        .and_then(|w| w.iter().find(|h| h.name == webhook))
    else {
        return Ok(false);
    };
    let live_rules =
        serde_json::to_value(hook.rules.clone().unwrap_or_default()).map_err(|e| e.to_string())?;
    let live_bundle = hook
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| b.0.as_slice());
    let bundle_ok = ca_bundle.is_none_or(|b| live_bundle == Some(b.as_bytes()));
    if live_rules == rules && bundle_ok {
        return Ok(true);
    }
    let mut entry = json!({"name": webhook, "rules": rules});
    if let Some(b) = ca_bundle {
        entry["clientConfig"] =
            json!({"caBundle": base64::engine::general_purpose::STANDARD.encode(b)});
    }
    let patch = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": configuration},
        "webhooks": [entry],
    });
    api.patch(
        configuration,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|e| format!("applying rules and caBundle: {e}"))?;
    let types = rules
        .as_array()
        .map(|r| {
            r.iter()
                .map(|x| x["resources"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .unwrap_or(0);
    tracing::info!(
        configuration,
        types,
        ca_bundle = ca_bundle.is_some(),
        "webhook configuration updated"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_group_the_watched_types_and_never_call_for_leases_or_events() {
        let watched: BTreeSet<Gvr> = [
            Gvr::new("", "v1", "configmaps"),
            Gvr::new("", "v1", "secrets"),
            Gvr::new("apps", "v1", "deployments"),
            Gvr::new("", "v1", "events"),
            Gvr::new("events.k8s.io", "v1", "events"),
            Gvr::new("coordination.k8s.io", "v1", "leases"),
        ]
        .into();
        let rules = rules_for(&watched);
        assert_eq!(
            rules,
            json!([
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
                 "resources": ["configmaps", "secrets"], "scope": "*"},
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
                 "resources": ["deployments"], "scope": "*"},
            ])
        );
        assert_eq!(rules_for(&BTreeSet::new()), json!([]));
    }

    #[test]
    fn live_rules_read_back_compare_equal_to_the_wanted_ones() {
        // What the API server returns parses into k8s-openapi's types and serializes back to
        // the same JSON, so an unchanged configuration is not re-applied every round.
        let rules = rules_for(&[Gvr::new("apps", "v1", "deployments")].into());
        let typed: Vec<k8s_openapi::api::admissionregistration::v1::RuleWithOperations> =
            serde_json::from_value(rules.clone()).unwrap();
        assert_eq!(serde_json::to_value(typed).unwrap(), rules);
    }
}
