//! The Kubernetes side: discovery, raw list+watch streams, the reverser's own CRs and credentials
//! Secrets, and the status writer. kube's `Client` carries auth, TLS and HTTP.

pub mod backoff;
pub mod client_config;
pub mod config;
pub mod discovery;
pub mod status;
pub mod stream;
pub mod watches;
