//! What the tasks send the driver: one channel's message type, apart from the driver so that the
//! tasks that send it (watches, configuration) do not import the loop that reads it.

use std::time::Duration;

use gitops_reverser_core::config::{CrRef, NamespacedName};
use gitops_reverser_core::io::{GitResult, Input};

use crate::crd::CrKind;
use crate::kube::discovery::Discovered;

/// Inputs of the driver besides admission records.
#[derive(Debug)]
pub enum Msg {
    /// An input for the core as it is (watch events, configuration, credentials verdicts).
    Input(Input),
    /// Discovery ran.
    Discovered(Discovered),
    /// A git op finished.
    GitDone(GitDone),
    /// A CR kind's stream listed completely.
    ConfigSynced(CrKind),
    /// A CR whose spec does not fit its type: reported in its status.
    InvalidSpec(CrRef, String),
}

/// A finished git op, with what the metrics and the status want to know.
#[derive(Debug)]
pub struct GitDone {
    pub(crate) op_id: u64,
    pub(crate) result: GitResult,
    pub(crate) took: Duration,
    pub(crate) repo: NamespacedName,
    pub(crate) push: bool,
}
