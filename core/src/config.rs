//! The configuration model: GitRepoConfig, WatchRule and ClusterWatchRule as plain serde types
//! (group `configbutler.ai`, version `v1alpha1`), and their validation into status conditions.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{validate_base_folder, Operation};
use crate::seal::Sealing;
use crate::selector::{LabelSelector, Selector};

/// Fixed byte trigger of a batch: flush once this much sanitized content is pending.
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;
/// Default `push.maxCommits`.
pub const BATCH_COMMITS_DEFAULT: u32 = 20;
/// Largest `push.maxCommits` accepted.
pub const BATCH_COMMITS_MAX: u32 = 1000;
/// Default `push.interval`, in milliseconds.
pub const PUSH_INTERVAL_DEFAULT_MS: u64 = 60_000;
/// Shortest `push.interval` accepted, in milliseconds.
pub const PUSH_INTERVAL_MS_MIN: u64 = 1_000;
/// Longest `push.interval` accepted, in milliseconds.
pub const PUSH_INTERVAL_MS_MAX: u64 = 24 * 3_600_000;

/// A namespaced object's namespace and name.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NamespacedName {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl NamespacedName {
    /// Builds a reference from its parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec` of a GitRepoConfig.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitRepoConfigSpec {
    /// `https://`, `http://`, `ssh://`, scp-like `git@host:path`, `git://` or `file://`.
    #[serde(rename = "repoURL", alias = "repoUrl")]
    pub repo_url: String,
    /// Branches rules may write to.
    #[serde(default)]
    pub allowed_branches: Vec<String>,
    /// Secret in the same namespace holding credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Batching of pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushStrategy>,
    /// Secrets written encrypted with SOPS for age recipients, restorable with `sops --decrypt`.
    /// Without it, their values are redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// Every commit signed with an SSH key (git's `gpgsig` header, `sshsig` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningSpec>,
    /// How files are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,
}

/// `spec.output` of a GitRepoConfig.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// `Omit` (the default) leaves out every value the API server's defaulting would fill in;
    /// `Keep` writes every field as the API server holds it.
    #[serde(default)]
    pub defaults: DefaultsMode,
}

/// Whether files hold the values the API server's defaulting fills in.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DefaultsMode {
    /// Left out: a file holds what a user would write, and applies to the same object.
    #[default]
    Omit,
    /// Kept.
    Keep,
}

/// `spec.encryption` of a GitRepoConfig.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionSpec {
    /// SOPS with age.
    pub sops: SopsSpec,
}

/// `spec.encryption.sops` of a GitRepoConfig.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SopsSpec {
    /// age X25519 recipients (`age1…`, as `age-keygen` prints them); every one can decrypt.
    pub age_recipients: Vec<String>,
    /// Further resources sealed like Secrets (the values under their `data` and `stringData`),
    /// e.g. `{resource: configmaps}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<SealedResource>,
}

/// A resource whose files are sealed.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedResource {
    /// API group, `""` for core.
    #[serde(default)]
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

/// `spec.signing` of a GitRepoConfig.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningSpec {
    /// Secret in the same namespace, labelled `configbutler.ai/credentials=true`, whose
    /// `ssh-privatekey` is an unencrypted OpenSSH `ssh-ed25519` key.
    pub secret_ref: LocalObjectReference,
}

/// A reference to an object in the same namespace.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalObjectReference {
    /// The object's name.
    pub name: String,
}

/// `spec.push` of a GitRepoConfig.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushStrategy {
    /// A Go-style duration such as `1m` or `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::schema::DURATION_PATTERN)))]
    pub interval: Option<String>,
    /// Flush after this many pending commits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1000)))]
    pub max_commits: Option<u32>,
}

/// One entry of `resources`: `*` matches any value of its field.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceSelector {
    /// API group, `""` for core, `*` for any.
    #[serde(default)]
    pub group: String,
    /// Version or `*`.
    #[serde(default = "star")]
    pub version: String,
    /// Plural resource or `*`.
    pub resource: String,
}

fn star() -> String {
    "*".into()
}

/// A WatchRule's reference to its GitRepoConfig: a name in the same namespace. The object form exists
/// so that a rule naming another namespace is refused with a clear reason rather than a parse error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RepoRef {
    /// `gitRepoConfigRef: my-repo`.
    Name(String),
    /// `gitRepoConfigRef: {name: my-repo, namespace: ...}`.
    Object {
        /// The GitRepoConfig's name.
        name: String,
        /// Its namespace; must be the rule's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

/// `spec` of a namespaced WatchRule.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchRuleSpec {
    /// The GitRepoConfig in the rule's namespace.
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::repo_ref"))]
    pub git_repo_config_ref: RepoRef,
    /// Target branch; the repo's first allowed branch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Folder in the repository; the root when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::schema::BASE_FOLDER_PATTERN)))]
    pub base_folder: Option<String>,
    /// Resources to watch.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(max = 100)))]
    pub resources: Vec<ResourceSelector>,
    /// `CREATE`, `UPDATE`, `DELETE` or `*`; empty means all.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Only objects whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelector>,
}

/// Which objects a ClusterWatchRule entry covers.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleScope {
    /// Cluster-scoped objects only.
    #[default]
    Cluster,
    /// Namespaced objects, in namespaces matching the entry's `namespaceSelector` (all when absent).
    Namespaced,
}

/// One entry of a ClusterWatchRule's `rules`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRule {
    /// Resources to watch.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(max = 100)))]
    pub resources: Vec<ResourceSelector>,
    /// Operations; empty means all.
    #[serde(default)]
    pub operations: Vec<String>,
    /// `Cluster` or `Namespaced`.
    #[serde(default)]
    pub scope: RuleScope,
    /// For `Namespaced`: only namespaces whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Only objects whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelector>,
}

/// `spec` of a cluster-scoped ClusterWatchRule.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterWatchRuleSpec {
    /// The GitRepoConfig, by namespace and name.
    pub git_repo_config_ref: NamespacedName,
    /// Target branch; the repo's first allowed branch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Folder in the repository; the root when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::schema::BASE_FOLDER_PATTERN)))]
    pub base_folder: Option<String>,
    /// What to watch.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(length(max = 100)))]
    pub rules: Vec<ClusterRule>,
}

/// Which custom resource a status belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CrRef {
    /// A GitRepoConfig.
    GitRepoConfig(NamespacedName),
    /// A WatchRule.
    WatchRule(NamespacedName),
    /// A ClusterWatchRule, by name.
    ClusterWatchRule(String),
}

impl fmt::Display for CrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrRef::GitRepoConfig(n) => write!(f, "GitRepoConfig {n}"),
            CrRef::WatchRule(n) => write!(f, "WatchRule {n}"),
            CrRef::ClusterWatchRule(n) => write!(f, "ClusterWatchRule {n}"),
        }
    }
}

/// One status condition, in the shape of `metav1.Condition` (less the timestamps the runtime adds).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Condition {
    /// `Ready` or `Pushed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the condition holds.
    pub status: bool,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened and what to change.
    pub message: String,
}

impl Condition {
    /// `Ready=True`.
    pub fn ready() -> Self {
        Self {
            type_: "Ready".into(),
            status: true,
            reason: "Valid".into(),
            message: "configuration accepted".into(),
        }
    }

    /// `Ready=False` with a reason and an actionable message.
    pub fn not_ready(reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: "Ready".into(),
            status: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// A GitRepoConfig after validation: what the pipeline needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoSettings {
    /// The repository URL.
    pub repo_url: String,
    /// Name of the credentials Secret in the GitRepoConfig's namespace.
    pub secret_name: Option<String>,
    /// Branches rules may use, in the order given.
    pub allowed_branches: Vec<String>,
    /// Flush after this long, in milliseconds.
    pub push_interval_ms: u64,
    /// Flush after this many commits.
    pub max_commits: u32,
    /// `spec.encryption`: how Secrets (and the resources it names) are sealed.
    pub sealing: Option<Arc<Sealing>>,
    /// Why `sealing` cannot be used: then no file it would seal is written.
    pub sealing_problem: Option<String>,
    /// `spec.signing`: the signing key's Secret in the GitRepoConfig's namespace.
    pub signing_secret: Option<String>,
    /// `spec.output.defaults: Keep`: files keep the values the API server's defaulting fills in.
    pub keep_defaults: bool,
}

/// Validates a GitRepoConfig into settings, or a `Ready=False` condition saying what to fix.
/// `file_remotes`: whether `file://` URLs are allowed (`--allow-file-remotes`). An installed
/// operator refuses them: a tenant would point it at its own filesystem (another tenant's clone
/// in the work dir, or any path it may write).
pub fn validate_repo(
    spec: &GitRepoConfigSpec,
    file_remotes: bool,
) -> Result<RepoSettings, Condition> {
    if spec.repo_url.trim().is_empty() {
        return Err(Condition::not_ready(
            "InvalidRepoURL",
            "spec.repoURL is empty; set it to the repository's URL",
        ));
    }
    if !supported_url(&spec.repo_url) {
        return Err(Condition::not_ready(
            "InvalidRepoURL",
            format!(
                "spec.repoURL `{}` is not a supported URL; use https://, http://, ssh://, git@host:path, git:// or file://",
                spec.repo_url
            ),
        ));
    }
    if !file_remotes && is_local_url(&spec.repo_url) {
        return Err(Condition::not_ready(
            "FileRemoteRefused",
            format!(
                "spec.repoURL `{}` is a path on the operator's own filesystem, which tenants may not name; use a git server's URL (the operator allows file:// only when started with --allow-file-remotes)",
                spec.repo_url
            ),
        ));
    }
    if spec.secret_ref.is_some() && is_plaintext_url(&spec.repo_url) {
        return Err(Condition::not_ready(
            "PlaintextCredentials",
            format!(
                "spec.repoURL `{}` is unencrypted and spec.secretRef names credentials, which would cross the network in plaintext; use https:// or ssh://",
                spec.repo_url
            ),
        ));
    }
    if spec.allowed_branches.is_empty() {
        return Err(Condition::not_ready(
            "NoBranches",
            "spec.allowedBranches is empty; list at least one branch, e.g. [main]",
        ));
    }
    if let Some(bad) = spec.allowed_branches.iter().find(|b| !valid_branch(b)) {
        return Err(Condition::not_ready(
            "InvalidBranch",
            format!("spec.allowedBranches: `{bad}` is not a valid git branch name"),
        ));
    }
    let push = spec.push.clone().unwrap_or_default();
    let push_interval_ms = match push.interval.as_deref() {
        None => PUSH_INTERVAL_DEFAULT_MS,
        Some(text) => match parse_duration_ms(text) {
            Some(ms) if (PUSH_INTERVAL_MS_MIN..=PUSH_INTERVAL_MS_MAX).contains(&ms) => ms,
            _ => {
                return Err(Condition::not_ready(
                    "InvalidPushInterval",
                    format!("spec.push.interval `{text}` must be a duration between 1s and 24h, e.g. 30s or 1m"),
                ))
            }
        },
    };
    let (sealing, sealing_problem) = match &spec.encryption {
        None => (None, None),
        Some(e) => {
            let (sealing, problem) = validate_sops(&e.sops)?;
            (Some(sealing), problem)
        }
    };
    let max_commits = push.max_commits.unwrap_or(BATCH_COMMITS_DEFAULT);
    if !(1..=BATCH_COMMITS_MAX).contains(&max_commits) {
        return Err(Condition::not_ready(
            "InvalidMaxCommits",
            format!("spec.push.maxCommits {max_commits} must be between 1 and {BATCH_COMMITS_MAX}"),
        ));
    }
    Ok(RepoSettings {
        repo_url: spec.repo_url.clone(),
        secret_name: spec.secret_ref.as_ref().map(|r| r.name.clone()),
        allowed_branches: spec.allowed_branches.clone(),
        push_interval_ms,
        max_commits,
        sealing,
        sealing_problem,
        signing_secret: spec.signing.as_ref().map(|s| s.secret_ref.name.clone()),
        keep_defaults: spec
            .output
            .as_ref()
            .is_some_and(|o| o.defaults == DefaultsMode::Keep),
    })
}

/// Validates `spec.encryption.sops`: what is sealed, and whether it can be. A resource entry
/// that names no resource makes the whole spec invalid (what it meant to seal would be written in
/// plaintext). A recipient problem is not the whole repository's: it keeps every other file and
/// writes no sealed one until it is fixed (plaintext is never the fallback, and neither is a
/// redacted file that a restore would take for the real one).
pub fn validate_sops(spec: &SopsSpec) -> Result<(Arc<Sealing>, Option<String>), Condition> {
    if let Some((i, _)) = spec
        .resources
        .iter()
        .enumerate()
        .find(|(_, r)| !valid_resource_name(&r.resource) || r.group.contains(['/', '*']))
    {
        return Err(Condition::not_ready(
            "InvalidEncryption",
            format!("spec.encryption.sops.resources[{i}]: name one plural resource and its group, e.g. {{group: \"\", resource: configmaps}}"),
        ));
    }
    let mut extra_resources: Vec<(String, String)> = spec
        .resources
        .iter()
        .map(|r| (r.group.clone(), r.resource.clone()))
        .collect();
    extra_resources.sort();
    extra_resources.dedup();
    let mut recipients: Vec<String> = spec
        .age_recipients
        .iter()
        .map(|r| r.trim().to_string())
        .collect();
    recipients.sort();
    recipients.dedup();
    let problem = match spec.age_recipients.is_empty() {
        true => Some(
            "spec.encryption.sops.ageRecipients is empty; list at least one age recipient (age1…, from age-keygen)".to_string(),
        ),
        false => spec.age_recipients.iter().enumerate().find_map(|(i, r)| {
            crate::seal::parse_age_recipient(r.trim())
                .err()
                .map(|e| format!("spec.encryption.sops.ageRecipients[{i}]: {e}"))
        }),
    };
    let sealing = Arc::new(Sealing {
        recipients,
        extra_resources,
    });
    Ok((sealing, problem))
}

/// A plural resource name as the API server spells them (lower case DNS label characters).
fn valid_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
}

/// `file://` and `file:` URLs, in any letter case.
fn is_local_url(url: &str) -> bool {
    url.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
}

/// Transports that encrypt nothing: credentials sent over them can be read on the way.
fn is_plaintext_url(url: &str) -> bool {
    ["http://", "git://"].iter().any(|s| {
        url.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    })
}

fn supported_url(url: &str) -> bool {
    const SCHEMES: [&str; 6] = [
        "https://",
        "http://",
        "ssh://",
        "git://",
        "file://",
        "git+ssh://",
    ];
    if SCHEMES
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len())
    {
        return true;
    }
    // scp-like `user@host:path`
    match url.split_once(':') {
        Some((userhost, path)) => {
            userhost.contains('@') && !userhost.contains('/') && !path.is_empty()
        }
        None => false,
    }
}

/// Git's ref-name rules as they apply to a branch name.
pub fn valid_branch(b: &str) -> bool {
    !b.is_empty()
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("@{")
        && b != "@"
        && !b
            .bytes()
            .any(|c| c < 0x20 || c == 0x7f || b" ~^:?*[\\".contains(&c))
}

/// Parses a Go-style duration (`1h30m`, `45s`, `500ms`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return None;
        };
        total = total.checked_add(n.checked_mul(unit_ms)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// A set of operations as a bitmask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSet(u8);

impl OpSet {
    /// Every operation.
    pub const ALL: OpSet = OpSet(0b111);

    /// Whether `op` is in the set.
    pub fn contains(self, op: Operation) -> bool {
        self.0 & Self::bit(op) != 0
    }

    fn bit(op: Operation) -> u8 {
        match op {
            Operation::Create => 1,
            Operation::Update => 2,
            Operation::Delete => 4,
        }
    }

    /// Parses `operations`: empty or `*` means all.
    pub fn parse(ops: &[String]) -> Result<Self, Condition> {
        if ops.is_empty() {
            return Ok(Self::ALL);
        }
        let mut set = 0;
        for op in ops {
            set |= match op.as_str() {
                "*" => Self::ALL.0,
                other => Self::bit(Operation::parse(other).ok_or_else(|| {
                    Condition::not_ready(
                        "InvalidOperation",
                        format!("operation `{other}` is not one of CREATE, UPDATE, DELETE or *"),
                    )
                })?),
            };
        }
        Ok(Self(set))
    }
}

/// Checks the parts shared by both rule kinds against the repo they name; returns the branch to use.
pub fn validate_destination(
    repo: Option<Result<&RepoSettings, &Condition>>,
    repo_name: &NamespacedName,
    branch: Option<&str>,
    base_folder: Option<&str>,
) -> Result<String, Condition> {
    let settings = match repo {
        None => {
            return Err(Condition::not_ready(
                "GitRepoConfigNotFound",
                format!(
                    "GitRepoConfig {repo_name} does not exist; create it or fix gitRepoConfigRef"
                ),
            ))
        }
        Some(Err(c)) => {
            return Err(Condition::not_ready(
                "GitRepoConfigNotReady",
                format!("GitRepoConfig {repo_name} is not ready: {}", c.message),
            ))
        }
        Some(Ok(s)) => s,
    };
    let branch = branch
        .map(str::to_owned)
        .unwrap_or_else(|| settings.allowed_branches[0].clone());
    if !settings.allowed_branches.contains(&branch) {
        return Err(Condition::not_ready(
            "BranchNotAllowed",
            format!(
                "branch `{branch}` is not in GitRepoConfig {repo_name}'s allowedBranches {:?}",
                settings.allowed_branches
            ),
        ));
    }
    if let Err(e) = validate_base_folder(base_folder.unwrap_or_default()) {
        return Err(Condition::not_ready("InvalidBaseFolder", e.to_string()));
    }
    Ok(branch)
}

/// Entries of one rule's `resources` at most (the CRDs say so too, as `maxItems`).
pub const RESOURCES_PER_RULE_MAX: usize = 100;
/// Entries of a ClusterWatchRule's `rules` at most (the CRD says so too).
pub const CLUSTER_RULE_ENTRIES_MAX: usize = 100;

/// Checks `resources`: at least one, at most [`RESOURCES_PER_RULE_MAX`], each field non-empty.
pub fn validate_resources(resources: &[ResourceSelector]) -> Result<(), Condition> {
    if resources.is_empty() {
        return Err(Condition::not_ready(
            "NoResources",
            "resources is empty; list at least one {group, version, resource}",
        ));
    }
    if resources.len() > RESOURCES_PER_RULE_MAX {
        return Err(Condition::not_ready(
            "TooManyResources",
            format!(
                "resources has {} entries; at most {RESOURCES_PER_RULE_MAX} (use * or split the rule)",
                resources.len()
            ),
        ));
    }
    if let Some(r) = resources
        .iter()
        .find(|r| r.resource.is_empty() || r.version.is_empty())
    {
        return Err(Condition::not_ready(
            "InvalidResource",
            format!("resource {r:?} needs a version and a resource (or *)"),
        ));
    }
    Ok(())
}

/// Checks a ClusterWatchRule's `rules`: at most [`CLUSTER_RULE_ENTRIES_MAX`] entries, each within
/// [`RESOURCES_PER_RULE_MAX`] resources. Checked before anything looks at every entry.
pub fn validate_cluster_rule_entries(rules: &[ClusterRule]) -> Result<(), Condition> {
    if rules.len() > CLUSTER_RULE_ENTRIES_MAX {
        return Err(Condition::not_ready(
            "TooManyResources",
            format!(
                "rules has {} entries; at most {CLUSTER_RULE_ENTRIES_MAX}",
                rules.len()
            ),
        ));
    }
    rules
        .iter()
        .try_for_each(|r| validate_resources(&r.resources))
}

/// Compiles an optional selector into a condition-bearing result.
pub fn compile_selector(
    sel: Option<&LabelSelector>,
    field: &str,
) -> Result<Option<Selector>, Condition> {
    sel.map(|s| {
        Selector::compile(s)
            .map_err(|e| Condition::not_ready("InvalidSelector", format!("{field}: {e}")))
    })
    .transpose()
}

/// The WatchRule's repository reference resolved to its namespace, or why it is refused.
pub fn resolve_watch_rule_repo(rule_ns: &str, r: &RepoRef) -> Result<NamespacedName, Condition> {
    let (name, ns) = match r {
        RepoRef::Name(n) => (n.as_str(), None),
        RepoRef::Object { name, namespace } => (name.as_str(), namespace.as_deref()),
    };
    if name.is_empty() {
        return Err(Condition::not_ready(
            "GitRepoConfigNotFound",
            "gitRepoConfigRef is empty; name a GitRepoConfig in this namespace",
        ));
    }
    match ns {
        Some(other) if other != rule_ns => Err(Condition::not_ready(
            "CrossNamespaceReference",
            format!("a WatchRule may only use a GitRepoConfig in its own namespace `{rule_ns}`, not `{other}`; use a ClusterWatchRule for that"),
        )),
        _ => Ok(NamespacedName::new(rule_ns, name)),
    }
}

#[cfg(test)]
mod tests;
