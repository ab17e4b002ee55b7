//! GitOps Reverser's runtime: the I/O around the deterministic core, and the `gitops-reverser`
//! operator binary.
//!
//! - [`driver`]: the event loop that owns the core;
//! - [`kube`]: discovery, raw list+watch streams, the reverser's CRs, credentials, status;
//! - [`webhook`] and [`tls`]: the admission webhook; [`certs`]: its self-managed certificates;
//! - [`admin`] and [`metrics`]: `/metrics`, `/healthz`, `/readyz`; [`health`]: what readiness is;
//! - [`msg`]: what the tasks send the driver; [`shutdown`]: the shutdown signal as a value;
//! - [`listen`]: bounded connection serving for both servers; [`priority`]: thread priorities;
//!   [`watchdog`]: whether the driver's loop still turns;
//! - [`lease`]: leader election; [`forward`]: admission records from followers to the leader;
//! - [`record`]: the `--record-inputs` writer; [`records`]: the window of admission records a
//!   restarted or newly elected core is handed;
//! - [`crd`]: the CRDs, generated from the core's spec types;
//! - [`git`]: the executor that turns the core's git ops into commits and pushes on real remotes.

#![warn(unreachable_pub)]

pub(crate) mod admin;
pub mod certs;
pub mod crd;
pub(crate) mod driver;
pub mod forward;
pub mod git;
pub(crate) mod health;
pub mod kube;
pub mod lease;
pub(crate) mod listen;
pub mod metrics;
pub mod msg;
pub mod priority;
pub(crate) mod record;
pub mod records;
pub mod run;
pub(crate) mod shutdown;
pub mod tls;
pub(crate) mod watchdog;
pub mod webhook;
