//! The core's contract: what goes in ([`Input`]) and what comes out ([`Output`]).

mod hex;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::admission::AdmissionRequest;
use crate::config::{
    ClusterWatchRuleSpec, Condition, CrRef, GitRepoConfigSpec, NamespacedName, WatchRuleSpec,
};
use crate::ids::Gvr;
use crate::json::RawObject;

/// A git commit id as hex.
pub type CommitId = String;

/// One resource type the API server serves (from discovery).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ApiResource {
    /// Its GVR.
    pub gvr: Gvr,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// The `kind` of its objects, which list items leave out; empty when unknown (recordings
    /// made before it was carried).
    #[serde(default)]
    pub kind: String,
    /// Whether this is the version a version wildcard (`*`) selects for its group and resource:
    /// the group's preferred version when it serves the resource, else the first version in the
    /// group's priority order that does (kubectl's rule). Recordings made before it was carried
    /// read as preferred.
    #[serde(default = "preferred_by_default")]
    pub preferred: bool,
}

fn preferred_by_default() -> bool {
    true
}

/// A watch stream's event, in kube-runtime's watcher vocabulary. Objects are the JSON text the
/// API server sent; the core reads them without building a document tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WatchEvent {
    /// A (re)list starts.
    Init,
    /// An object of the (re)list.
    InitApply(RawObject),
    /// The (re)list is complete.
    InitDone,
    /// An object was created or changed.
    Apply(RawObject),
    /// An object was deleted; its last state.
    Delete(RawObject),
}

/// Whether a GitRepoConfig's credentials can be used. Recorded as the JSON `null` (usable) or
/// the problem's text, the form recordings have always had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Option<String>", into = "Option<String>")]
pub enum CredentialsVerdict {
    /// Usable, or none are named.
    Usable,
    /// Not usable: what is wrong, for the status.
    Invalid(String),
}

impl From<Option<String>> for CredentialsVerdict {
    fn from(problem: Option<String>) -> Self {
        problem.map_or(Self::Usable, Self::Invalid)
    }
}

impl From<CredentialsVerdict> for Option<String> {
    fn from(v: CredentialsVerdict) -> Self {
        match v {
            CredentialsVerdict::Usable => None,
            CredentialsVerdict::Invalid(problem) => Some(problem),
        }
    }
}

/// Whether a GitRepoConfig's signing key can be used: its public key, or what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningVerdict {
    /// Usable: the public key (`ssh-ed25519 AAAA… comment`) and its `SHA256:` fingerprint.
    Usable {
        /// The authorized-keys line.
        public_key: String,
        /// As `ssh-keygen -l` prints it.
        fingerprint: String,
    },
    /// Not usable: what is wrong, for the status.
    Invalid(String),
}

/// Everything that can happen to the core.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Input {
    /// A GitRepoConfig was created or changed (`Some`) or deleted (`None`).
    GitRepoConfig(NamespacedName, Option<GitRepoConfigSpec>),
    /// A WatchRule was created or changed (`Some`) or deleted (`None`).
    WatchRule(NamespacedName, Option<WatchRuleSpec>),
    /// A ClusterWatchRule was created or changed (`Some`) or deleted (`None`).
    ClusterWatchRule(String, Option<ClusterWatchRuleSpec>),
    /// The runtime's verdict on a GitRepoConfig's credentials Secret.
    Credentials(NamespacedName, CredentialsVerdict),
    /// The runtime's verdict on a GitRepoConfig's signing key (`spec.signing`).
    Signing(NamespacedName, SigningVerdict),
    /// The API server's resource types, from discovery; wildcards in rules expand over these.
    ApiResources(Vec<ApiResource>),
    /// The defaults a custom resource type's schema declares (from its CRD), or none (`None`:
    /// the CRD is gone or declares none).
    SchemaDefaults(Gvr, Option<crate::schema_defaults::SchemaDefaults>),
    /// The API server refused to list a watched type (403: the operator's role does not
    /// allow it), with its message; `None` once a list succeeds again. Rules selecting only
    /// such types say so in their status (reason `Forbidden`).
    WatchDenied(Gvr, Option<String>),
    /// An admission request seen by the webhook.
    Admission(AdmissionRequest),
    /// An event of the watch stream of one GVR.
    Watch(Gvr, WatchEvent),
    /// The result of a [`GitOp`].
    GitDone(u64, GitResult),
    /// A timer fired (or a spurious wake-up: harmless).
    Tick,
    /// The driver is shutting down: push every pending commit now, whatever the batching
    /// triggers say (the retry backoff still holds). Lasts for the rest of the core's life.
    Flush,
}

/// A commit author or committer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// The new content of a file, as the core hands it to the executor.
///
/// A changed object's file is its sanitized YAML ([`crate::yaml::render_object`] of its JSON
/// text). The core hands over the text the cluster sent, already shared, and the executor renders
/// it off the core's thread: the render is a quarter of the core's cost of a changed object, and
/// the executor hashes the file into a blob anyway when it writes it. The core renders a file
/// itself only to compare it with a listed blob ([`FileBody::Yaml`]).
#[derive(Clone, PartialEq, Eq)]
pub enum FileBody {
    /// An object's JSON text, as read by the core (so it renders without error), and the
    /// sanitization rules of its type (from its stream's GVR).
    Object(RawObject, crate::sanitize::TypeRules),
    /// [`FileBody::Object`] for a repository that keeps defaults (`spec.output.defaults: Keep`).
    ObjectWithDefaults(RawObject, crate::sanitize::TypeRules),
    /// A custom resource's JSON text, with the defaults its CRD's schema declares (left out).
    CustomObject(RawObject, Arc<crate::schema_defaults::SchemaDefaults>),
    /// A file already rendered.
    Yaml(Arc<[u8]>),
    /// An object's file to be encrypted as it is written ([`crate::seal`]): never written as
    /// it is. Executors seal it with their cipher; its id is its fingerprint's.
    Sealed(Arc<crate::seal::SealedFile>),
}

impl FileBody {
    /// The file's bytes. A sealed file has none until an executor encrypts it: ask
    /// [`Self::sealed`] first.
    pub fn render(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            FileBody::Object(o, rules) => crate::yaml::render_object(o.as_bytes(), *rules)
                .expect("the core read this object before it planned its file")
                .into(),
            FileBody::ObjectWithDefaults(o, rules) => {
                crate::yaml::render_object_keeping_defaults(o.as_bytes(), *rules)
                    .expect("the core read this object before it planned its file")
                    .into()
            }
            FileBody::CustomObject(o, defaults) => {
                crate::yaml::render_custom_object(o.as_bytes(), defaults)
                    .expect("the core read this object before it planned its file")
                    .into()
            }
            FileBody::Yaml(y) => std::borrow::Cow::Borrowed(y),
            FileBody::Sealed(s) => panic!("{s:?} is encrypted by its executor, never rendered"),
        }
    }

    /// The file's bytes, shared (see [`Self::render`]).
    pub fn shared(&self) -> Arc<[u8]> {
        match self {
            FileBody::Object(..)
            | FileBody::ObjectWithDefaults(..)
            | FileBody::CustomObject(..)
            | FileBody::Sealed(_) => self.render().into(),
            FileBody::Yaml(y) => y.clone(),
        }
    }

    /// The file to encrypt, if this is one.
    pub fn sealed(&self) -> Option<&crate::seal::SealedFile> {
        match self {
            FileBody::Sealed(s) => Some(s),
            _ => None,
        }
    }

    /// The id the core knows the file by: its git blob id, or a sealed file's listed id.
    pub fn blob_id(&self) -> [u8; 20] {
        match self {
            FileBody::Sealed(s) => s.listed_id(),
            _ => crate::canonical::git_blob_id(&self.render()),
        }
    }

    /// The file rendered: what an executor writes (a sealed file stays as it is).
    pub fn rendered(&self) -> FileBody {
        match self {
            FileBody::Sealed(_) => self.clone(),
            _ => FileBody::Yaml(self.shared()),
        }
    }
}

/// A rendered file shows as its bytes, as files did before the executor rendered them, so that
/// traces and the simulator's output hashes compare across that change.
impl std::fmt::Debug for FileBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileBody::Object(o, rules) => f.debug_tuple("Object").field(o).field(rules).finish(),
            FileBody::ObjectWithDefaults(o, rules) => f
                .debug_tuple("ObjectWithDefaults")
                .field(o)
                .field(rules)
                .finish(),
            FileBody::CustomObject(o, d) => f
                .debug_tuple("CustomObject")
                .field(o)
                .field(&d.len())
                .finish(),
            FileBody::Yaml(y) => y.fmt(f),
            FileBody::Sealed(s) => s.fmt(f),
        }
    }
}

/// Git blob ids of a push's files, per commit and write (`None` for a delete).
pub type Blobs = Vec<Vec<Option<[u8; 20]>>>;

/// The blob ids of every write of `commits`, as a [`GitResult::Pushed`] reports them: for drivers
/// that do not write blobs themselves (tests, the simulator).
pub fn blob_ids(commits: &[PlannedCommit]) -> Blobs {
    commits
        .iter()
        .map(|c| {
            c.writes
                .iter()
                .map(|(_, f)| f.as_ref().map(FileBody::blob_id))
                .collect()
        })
        .collect()
}

/// One file change of a planned commit: a path and its new content (`None` deletes it).
pub type Write = (String, Option<FileBody>);

/// A commit the executor must create, on top of the previous one of the same push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedCommit {
    /// The Kubernetes user who made the change, or the fallback identity.
    pub author: Identity,
    /// When the change was seen, wall milliseconds.
    pub author_time_ms: i64,
    /// The operator's own identity.
    pub committer: Identity,
    /// When the commit was planned, wall milliseconds.
    pub commit_time_ms: i64,
    /// `[OPERATION] identifier`, a blank line, and the `Reverser-Op` trailer.
    pub message: String,
    /// File changes, ordered by path; never empty.
    pub writes: Vec<Write>,
}

/// What a git op does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitOpKind {
    /// List every file under `folder` at the branch head with its blob id (answered by `Paths`).
    ReadPaths {
        /// Folder relative to the repository root; empty is the whole tree.
        folder: String,
    },
    /// Create `commits` on `expected_head` (`None`: the branch does not exist yet) and push them as a
    /// fast-forward only (answered by `Pushed`, `Conflict`, `Failed` or `Unknown`).
    Push {
        /// The head the commits are planned on.
        expected_head: Option<CommitId>,
        /// The commits, oldest first.
        commits: Vec<PlannedCommit>,
    },
    /// After an `Unknown` push: fetch the branch and report whether a commit carrying `op_tag` in its
    /// `Reverser-Op` trailer is in its history since `expected_head` (answered by `Verified`).
    Verify {
        /// The head the lost push was planned on.
        expected_head: Option<CommitId>,
        /// The trailer value of the lost push.
        op_tag: String,
    },
}

/// A git operation for the executor; at most one per (repository, branch) is in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitOp {
    /// Echoed in [`Input::GitDone`].
    pub op_id: u64,
    /// The GitRepoConfig.
    pub repo: NamespacedName,
    /// Its URL.
    pub repo_url: String,
    /// Its credentials Secret, in the GitRepoConfig's namespace.
    pub secret_name: Option<String>,
    /// How sealed files are encrypted (`spec.encryption`, when usable): a push's sealed writes
    /// are encrypted for these recipients, and a listing reports sealed files by their listed id.
    pub sealing: Option<Arc<crate::seal::Sealing>>,
    /// The Secret holding the key every commit is signed with (`spec.signing`), in the
    /// GitRepoConfig's namespace. The executor pushes nothing unsigned when it is named.
    pub signing_secret: Option<String>,
    /// The branch.
    pub branch: String,
    /// What to do.
    pub kind: GitOpKind,
}

/// The result of a git op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GitResult {
    /// For `ReadPaths`: the head read and each file under the folder with its blob id.
    Paths {
        /// The branch head, `None` if the branch does not exist.
        head: Option<CommitId>,
        /// Paths (from the repository root) and blob ids.
        #[serde(with = "hex::hex_entries")]
        entries: Vec<(String, [u8; 20])>,
    },
    /// The push landed; the branch head is now `head`.
    Pushed {
        /// The new head.
        head: CommitId,
        /// The blob id of every write's file, per planned commit and write in the order the op
        /// gave them (`None` for deletes). The executor renders and hashes the files; the core
        /// keeps the ids to recognise its own files in later listings. Missing or short lists are
        /// made up for by rendering in the core.
        #[serde(with = "hex::hex_blobs")]
        blobs: Blobs,
    },
    /// The remote head was not the expected one; nothing was pushed.
    Conflict {
        /// The remote's head, fetched.
        remote_head: Option<CommitId>,
    },
    /// The op failed; `retryable` says whether waiting may help (network) or a user must act.
    Failed {
        /// Whether to retry on its own.
        retryable: bool,
        /// What happened and what to change (never a credential).
        reason: String,
        /// Its kind, as a status condition's CamelCase reason (`RemoteUnreachable`,
        /// `RemoteTimeout`, `PushRejected`, ...); empty: `PushFailed`. (Absent from recordings
        /// made before it existed.)
        #[serde(default, skip_serializing_if = "String::is_empty")]
        cause: String,
    },
    /// The push was sent but its result is unknown (e.g. a timeout after sending).
    Unknown,
    /// For `Verify`: the head and whether the lost push landed.
    Verified {
        /// The branch head.
        head: Option<CommitId>,
        /// Whether a commit with the op's trailer is in the history.
        landed: bool,
    },
}

/// Everything the core asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Watch exactly these GVRs (start new streams, stop others).
    EnsureWatches(BTreeSet<Gvr>),
    /// Restart this GVR's stream with a fresh list (a rule's destination needs seeding).
    Resync(Gvr),
    /// Run a git op and report its result.
    Git(GitOp),
    /// Set this custom resource's status conditions.
    Status(CrRef, Vec<Condition>),
    /// Something was refused and left out; for the log.
    Refused {
        /// What was refused (an identifier, a path).
        subject: String,
        /// Why, and what to change.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credentials_verdict_is_recorded_as_null_or_the_problem() {
        let repo = NamespacedName::new("team-a", "repo");
        let usable = Input::Credentials(repo.clone(), CredentialsVerdict::Usable);
        let text = serde_json::to_string(&usable).unwrap();
        assert!(text.ends_with(",null]}"), "{text}");
        let bad = Input::Credentials(repo, CredentialsVerdict::Invalid("no key".into()));
        let text = serde_json::to_string(&bad).unwrap();
        assert!(text.ends_with(",\"no key\"]}"), "{text}");
        match serde_json::from_str::<Input>(&text).unwrap() {
            Input::Credentials(_, CredentialsVerdict::Invalid(p)) => assert_eq!(p, "no key"),
            other => panic!("{other:?}"),
        }
    }
}
