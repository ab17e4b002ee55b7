//! The CRDs of group `configbutler.ai`, version `v1alpha1`, generated from the spec types the core
//! validates (one definition of the configuration): each wraps the core's spec type whole.
//!
//! The schema holds only what a 1.20 API server enforces (OpenAPI v3, no CEL): patterns on
//! `baseFolder` and `push.interval`, `push.maxCommits` from 1 to 1000. The core validates fully and
//! reports what it refuses in the status.

// kube's `printcolumn(...)` repeats `type_ = ...` once per column, which clippy takes for a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use gitops_reverser_core::config as core_config;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "configbutler.ai";
/// The API version.
pub const VERSION: &str = "v1alpha1";

/// The status every CR of ours carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the configuration is valid and usable) and, on a GitRepoConfig, `Pushed` when the
    /// last push failed.
    #[serde(default)]
    pub conditions: Vec<StatusCondition>,
    /// When a push last landed (GitRepoConfig only), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_time: Option<String>,
}

/// A condition in the shape of `metav1.Condition`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCondition {
    /// `Ready` or `Pushed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened and what to change.
    pub message: String,
    /// When `status` last changed, RFC 3339.
    pub last_transition_time: String,
    /// The generation this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A Git repository the reverser may write to, with its credentials and batching.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "configbutler.ai",
    version = "v1alpha1",
    kind = "GitRepoConfig",
    doc = "A Git repository the reverser may write to: URL, allowed branches, credentials Secret, batching.",
    namespaced,
    status = "CrStatus",
    shortname = "grc",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Branches",
        type_ = "string",
        json_path = ".spec.allowedBranches"
    ),
    // Push health: empty until a push fails, then False with the failure's kind (RemoteTimeout,
    // RemoteUnreachable, PushRejected, ...) until one lands.
    printcolumn(
        name = "Push Problem",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Pushed\")].reason"
    ),
    printcolumn(name = "Last Push", type_ = "date", json_path = ".status.lastPushTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct GitRepoConfigCrdSpec {
    /// The core's spec, whole.
    #[serde(flatten)]
    pub spec: core_config::GitRepoConfigSpec,
}

/// Resources of one namespace to mirror into a GitRepoConfig of the same namespace.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "configbutler.ai",
    version = "v1alpha1",
    kind = "WatchRule",
    doc = "Resources of its own namespace to mirror into a GitRepoConfig of the same namespace.",
    namespaced,
    status = "CrStatus",
    shortname = "wr",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Repo", type_ = "string", json_path = ".spec.gitRepoConfigRef"),
    printcolumn(name = "Branch", type_ = "string", json_path = ".spec.branch"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct WatchRuleCrdSpec {
    /// The core's spec, whole.
    #[serde(flatten)]
    pub spec: core_config::WatchRuleSpec,
}

/// Cluster-scoped and cross-namespace resources to mirror into a named GitRepoConfig.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "configbutler.ai",
    version = "v1alpha1",
    kind = "ClusterWatchRule",
    doc = "Cluster-scoped resources, or namespaced ones across namespaces, to mirror into a named GitRepoConfig.",
    status = "CrStatus",
    shortname = "cwr",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Repo",
        type_ = "string",
        json_path = ".spec.gitRepoConfigRef.name"
    ),
    printcolumn(name = "Branch", type_ = "string", json_path = ".spec.branch"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ClusterWatchRuleCrdSpec {
    /// The core's spec, whole.
    #[serde(flatten)]
    pub spec: core_config::ClusterWatchRuleSpec,
}

/// The three CRDs, in the order `gitops-reverser crds` prints them.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        GitRepoConfig::crd(),
        WatchRule::crd(),
        ClusterWatchRule::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream.
pub fn yaml() -> String {
    all()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Which CR kind a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrKind {
    /// GitRepoConfig.
    GitRepoConfig,
    /// WatchRule.
    WatchRule,
    /// ClusterWatchRule.
    ClusterWatchRule,
}

impl CrKind {
    /// Every kind.
    pub const ALL: [CrKind; 3] = [
        CrKind::GitRepoConfig,
        CrKind::WatchRule,
        CrKind::ClusterWatchRule,
    ];

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            CrKind::GitRepoConfig => "gitrepoconfigs",
            CrKind::WatchRule => "watchrules",
            CrKind::ClusterWatchRule => "clusterwatchrules",
        }
    }

    /// The kind.
    pub fn kind(self) -> &'static str {
        match self {
            CrKind::GitRepoConfig => "GitRepoConfig",
            CrKind::WatchRule => "WatchRule",
            CrKind::ClusterWatchRule => "ClusterWatchRule",
        }
    }
}

/// The file name of each CRD under `deploy/crds/`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("crd"))
}
