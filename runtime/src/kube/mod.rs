//! The Kubernetes side: discovery, raw list+watch streams, the reverser's own CRs and credentials
//! Secrets, the status writer, and the operator's own webhook configuration. kube's `Client` carries auth, TLS and HTTP.

pub mod backoff;
pub mod client_config;
pub mod config;
pub mod crd_defaults;
pub mod discovery;
pub mod seal_key;
pub mod status;
pub mod stream;
pub mod watches;
pub mod webhook_config;
