//! The operator's fingerprint key for sealed files ([`gitops_reverser_core::seal`]): 32 random
//! bytes in a Secret of its own namespace, made by the first replica that finds none and read by
//! every other and every restart. The same key must last: a new one changes every sealed file's
//! fingerprint, and the next resync rewrites every sealed file once (harmless, and the way to
//! re-encrypt everything on demand: delete the Secret and restart the operator).

use std::collections::BTreeMap;

use gitops_reverser_core::seal::SealKey;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::Client;
use ring::rand::{SecureRandom, SystemRandom};

/// The Secret's key holding the 32 bytes.
pub const KEY_FIELD: &str = "key";

/// Reads the key from Secret `namespace/name`, making it first if it does not exist.
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<SealKey, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    // Two replicas racing: the loser of the create reads the winner's key.
    for _ in 0..3 {
        let existing = api
            .get_opt(name)
            .await
            .map_err(|e| format!("reading Secret {namespace}/{name}: {e}"))?;
        if let Some(secret) = existing {
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(KEY_FIELD))
                .map(|b| b.0.clone())
                .unwrap_or_default();
            let key: [u8; 32] = bytes.try_into().map_err(|_| {
                format!("Secret {namespace}/{name} has no 32-byte `{KEY_FIELD}`; delete it and the operator makes a new one (every sealed file is then written once more)")
            })?;
            return Ok(SealKey(key));
        }
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| "the system's random number generator failed".to_string())?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/name".to_string(),
                    "gitops-reverser".to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                KEY_FIELD.to_string(),
                ByteString(key.to_vec()),
            )])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %format!("{namespace}/{name}"), "made the fingerprint key of sealed files");
                return Ok(SealKey(key));
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(format!("creating Secret {namespace}/{name}: {e}")),
        }
    }
    Err(format!(
        "Secret {namespace}/{name} kept appearing and disappearing"
    ))
}
