//! Resource identity: GVRs, identifiers, correlation keys and repository paths (the formats docs/operations.md gives).

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A group/version/resource triple; the core group is the empty string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gvr {
    /// API group, `""` for the core group.
    #[serde(default)]
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `configmaps`.
    pub resource: String,
}

impl Gvr {
    /// Builds a GVR from its three parts.
    pub fn new(group: &str, version: &str, resource: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
        }
    }

    /// The `apiVersion` of its objects: `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Writes `group/version/resource` with the core group left out.
    fn write_prefix(&self, out: &mut String) {
        if !self.group.is_empty() {
            out.push_str(&self.group);
            out.push('/');
        }
        out.push_str(&self.version);
        out.push('/');
        out.push_str(&self.resource);
    }
}

impl fmt::Display for Gvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_prefix(&mut s);
        f.write_str(&s)
    }
}

/// The admission/watch operation a change stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// The object was created.
    Create,
    /// The object was changed.
    Update,
    /// The object was deleted.
    Delete,
}

impl Operation {
    /// The upper-case name used in keys and commit messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    /// Parses an admission request's `operation`; `CONNECT` and unknown values give `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest path segment accepted, in bytes (`name.yaml` must fit common filesystems' 255-byte limit).
pub const SEGMENT_BYTES_MAX: usize = 250;

/// Why a path segment or base folder was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PathError {
    /// A segment was empty.
    #[error("{what} is empty")]
    Empty {
        /// Which part of the path.
        what: &'static str,
    },
    /// A segment was `.` or `..`.
    #[error("{what} `{value}` is a relative path component; use a plain name")]
    Relative {
        /// Which part of the path.
        what: &'static str,
        /// The refused value.
        value: String,
    },
    /// A segment held a character a file name cannot carry.
    #[error("{what} `{value}` contains `/`, `\\` or a control character")]
    BadChar {
        /// Which part of the path.
        what: &'static str,
        /// The refused value.
        value: String,
    },
    /// A segment git keeps for itself (`.git` in any case or spelling a file system reads as it).
    #[error("{what} `{value}` names git's own directory (.git), which no commit may hold")]
    GitDir {
        /// Which part of the path.
        what: &'static str,
        /// The refused value.
        value: String,
    },
    /// A segment was longer than [`SEGMENT_BYTES_MAX`].
    #[error("{what} is {len} bytes long; at most {SEGMENT_BYTES_MAX} fit in a file name")]
    TooLong {
        /// Which part of the path.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The base folder was absolute.
    #[error("baseFolder `{0}` is absolute; use a path relative to the repository root, e.g. `clusters/prod`")]
    AbsoluteBase(String),
}

/// Checks one path segment: not empty, not `.`/`..`, no separators or control characters.
pub(crate) fn validate_segment(what: &'static str, value: &str) -> Result<(), PathError> {
    if value.is_empty() {
        return Err(PathError::Empty { what });
    }
    if value == "." || value == ".." {
        return Err(PathError::Relative {
            what,
            value: value.into(),
        });
    }
    if value
        .bytes()
        .any(|b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f)
    {
        return Err(PathError::BadChar {
            what,
            value: value.into(),
        });
    }
    if is_git_dir(value) {
        return Err(PathError::GitDir {
            what,
            value: value.into(),
        });
    }
    if value.len() > SEGMENT_BYTES_MAX {
        return Err(PathError::TooLong {
            what,
            len: value.len(),
        });
    }
    Ok(())
}

/// Whether git would take `segment` for its own `.git` directory, as git and libgit2 refuse
/// it: in any case; on NTFS also with trailing dots or spaces, or as its short name `git~1`; on
/// HFS+ also with the characters it ignores. A commit holding one is refused by every push, and
/// would jam its branch for every destination that shares it.
pub(crate) fn is_git_dir(segment: &str) -> bool {
    const HFS_IGNORED: &[char] = &[
        '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}',
        '\u{202d}', '\u{202e}', '\u{206a}', '\u{206b}', '\u{206c}', '\u{206d}', '\u{206e}',
        '\u{206f}', '\u{feff}',
    ];
    let seen: String = segment
        .chars()
        .filter(|c| !HFS_IGNORED.contains(c))
        .collect::<String>()
        .to_ascii_lowercase();
    let ntfs = seen.trim_end_matches(['.', ' ']);
    ntfs == ".git" || ntfs == "git~1"
}

/// Checks a `baseFolder`: empty (repository root) or relative segments joined by `/`.
pub fn validate_base_folder(folder: &str) -> Result<(), PathError> {
    if folder.starts_with('/') {
        return Err(PathError::AbsoluteBase(folder.into()));
    }
    let trimmed = folder.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(());
    }
    trimmed
        .split('/')
        .try_for_each(|seg| validate_segment("baseFolder segment", seg))
}

/// Normalises a valid base folder: no trailing slash; empty means the repository root.
pub(crate) fn normalize_base_folder(folder: &str) -> String {
    folder.trim_end_matches('/').to_string()
}

/// One object's identity: its GVR, namespace (`None` when cluster-scoped) and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResourceRef<'a> {
    /// The object's GVR.
    pub gvr: &'a Gvr,
    /// Its namespace, `None` for cluster-scoped objects.
    pub namespace: Option<&'a str>,
    /// Its name.
    pub name: &'a str,
}

impl ResourceRef<'_> {
    /// `{group}/{version}/{resource}/{namespace}/{name}`, empty group and namespace left out.
    pub(crate) fn identifier(&self) -> String {
        let mut s = String::with_capacity(64);
        self.write_identifier(&mut s);
        s
    }

    /// Appends [`ResourceRef::identifier`] to `s`.
    pub(crate) fn write_identifier(&self, s: &mut String) {
        self.gvr.write_prefix(s);
        if let Some(ns) = self.namespace {
            s.push('/');
            s.push_str(ns);
        }
        s.push('/');
        s.push_str(self.name);
    }

    /// Validates every segment that will become part of a path.
    pub(crate) fn validate(&self) -> Result<(), PathError> {
        if !self.gvr.group.is_empty() {
            validate_segment("group", &self.gvr.group)?;
        }
        validate_segment("version", &self.gvr.version)?;
        validate_segment("resource", &self.gvr.resource)?;
        if let Some(ns) = self.namespace {
            validate_segment("namespace", ns)?;
        }
        validate_segment("name", self.name)
    }

    #[cfg(test)]
    /// `{baseFolder}/{identifier}.yaml`; the caller validated the segments and normalised the folder.
    pub(crate) fn path(&self, base_folder: &str) -> String {
        let mut identifier = String::with_capacity(96);
        self.write_identifier(&mut identifier);
        let mut p = String::new();
        write_file_path(base_folder, &identifier, &mut p);
        p
    }
}

/// Writes `{baseFolder}/{identifier}.yaml` into `out`, cleared first: the path of a resource's file
/// (see [`ResourceRef::path`]). Built by pushes, not `format!`: every changing watch event builds
/// one per destination.
pub(crate) fn write_file_path(base_folder: &str, identifier: &str, out: &mut String) {
    out.clear();
    if !base_folder.is_empty() {
        out.push_str(base_folder);
        out.push('/');
    }
    out.push_str(identifier);
    out.push_str(".yaml");
}

#[cfg(test)]
/// `{identifier}:{OPERATION}:{16 hex}` and, when the base resourceVersion is known, `@{baseRV}`.
pub(crate) fn correlation_key(
    identifier: &str,
    op: Operation,
    content_hash: u64,
    base_rv: Option<&str>,
) -> String {
    match base_rv {
        Some(rv) => format!("{identifier}:{op}:{content_hash:016x}@{rv}"),
        None => format!("{identifier}:{op}:{content_hash:016x}"),
    }
}

/// Splits a repository path under `base_folder` into the GVR prefix and object part it would have in
/// the reverser's layout, if it could be one: `(segments after the folder)` without the `.yaml` suffix.
pub(crate) fn layout_segments<'p>(base_folder: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let rest = if base_folder.is_empty() {
        path
    } else {
        path.strip_prefix(base_folder)?.strip_prefix('/')?
    };
    let rest = rest.strip_suffix(".yaml")?;
    let segs: Vec<&str> = rest.split('/').collect();
    if !(3..=5).contains(&segs.len())
        || segs.iter().any(|s| validate_segment("segment", s).is_err())
    {
        return None;
    }
    Some(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> Gvr {
        Gvr::new("", "v1", "configmaps")
    }

    #[test]
    fn identifier_leaves_out_empty_group_and_namespace() {
        let core_ns = ResourceRef {
            gvr: &cm(),
            namespace: Some("default"),
            name: "my-config",
        };
        assert_eq!(core_ns.identifier(), "v1/configmaps/default/my-config");
        let deploy = Gvr::new("apps", "v1", "deployments");
        let grouped_cluster = ResourceRef {
            gvr: &deploy,
            namespace: None,
            name: "my-app",
        };
        assert_eq!(grouped_cluster.identifier(), "apps/v1/deployments/my-app");
        let nodes = Gvr::new("", "v1", "nodes");
        assert_eq!(
            ResourceRef {
                gvr: &nodes,
                namespace: None,
                name: "node-1"
            }
            .identifier(),
            "v1/nodes/node-1"
        );
    }

    #[test]
    fn correlation_key_matches_reference_format() {
        let key = correlation_key(
            "v1/configmaps/default/my-config",
            Operation::Update,
            0xa1b2c3d4e5f67890,
            None,
        );
        assert_eq!(
            key,
            "v1/configmaps/default/my-config:UPDATE:a1b2c3d4e5f67890"
        );
        let exact = correlation_key("v1/nodes/node-1", Operation::Update, 0x12, Some("204"));
        assert_eq!(exact, "v1/nodes/node-1:UPDATE:0000000000000012@204");
    }

    #[test]
    fn path_is_base_folder_then_identifier_dot_yaml() {
        let deploy = Gvr::new("apps", "v1", "deployments");
        let r = ResourceRef {
            gvr: &deploy,
            namespace: Some("shop"),
            name: "web",
        };
        assert_eq!(
            r.path("clusters/prod"),
            "clusters/prod/apps/v1/deployments/shop/web.yaml"
        );
        assert_eq!(r.path(""), "apps/v1/deployments/shop/web.yaml");
        let ns = Gvr::new("", "v1", "namespaces");
        assert_eq!(
            ResourceRef {
                gvr: &ns,
                namespace: None,
                name: "shop"
            }
            .path("x"),
            "x/v1/namespaces/shop.yaml"
        );
    }

    #[test]
    fn every_spelling_of_gits_own_directory_is_refused_as_a_folder() {
        for bad in [
            ".git",
            ".GIT",
            ".Git",
            "git~1",
            "GIT~1",
            ".git.",
            ".git ",
            ".git. .",
            ".g\u{200c}it",
            "\u{feff}.git",
        ] {
            assert!(
                matches!(
                    validate_base_folder(&format!("clusters/{bad}/x")),
                    Err(PathError::GitDir { .. })
                ),
                "{bad:?}"
            );
            assert!(matches!(
                validate_base_folder(bad),
                Err(PathError::GitDir { .. })
            ));
        }
        for fine in [".github", "git", ".gitignore", "x.git", "git~2", ".gitx"] {
            assert!(validate_base_folder(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn bad_segments_are_refused() {
        assert!(matches!(
            validate_segment("name", ""),
            Err(PathError::Empty { .. })
        ));
        assert!(matches!(
            validate_segment("name", ".."),
            Err(PathError::Relative { .. })
        ));
        assert!(matches!(
            validate_segment("name", "."),
            Err(PathError::Relative { .. })
        ));
        assert!(matches!(
            validate_segment("name", "a/b"),
            Err(PathError::BadChar { .. })
        ));
        assert!(matches!(
            validate_segment("name", "a\\b"),
            Err(PathError::BadChar { .. })
        ));
        assert!(matches!(
            validate_segment("name", "a\nb"),
            Err(PathError::BadChar { .. })
        ));
        assert!(matches!(
            validate_segment("name", &"x".repeat(251)),
            Err(PathError::TooLong { .. })
        ));
        assert!(validate_segment("name", "system:controller:weird.name-1").is_ok());
    }

    #[test]
    fn base_folder_must_be_relative_without_dot_segments() {
        assert!(validate_base_folder("").is_ok());
        assert!(validate_base_folder("clusters/prod/").is_ok());
        assert!(matches!(
            validate_base_folder("/etc"),
            Err(PathError::AbsoluteBase(_))
        ));
        assert!(matches!(
            validate_base_folder("a/../b"),
            Err(PathError::Relative { .. })
        ));
        assert!(matches!(
            validate_base_folder("a//b"),
            Err(PathError::Empty { .. })
        ));
        assert_eq!(normalize_base_folder("clusters/prod/"), "clusters/prod");
    }

    #[test]
    fn layout_segments_only_accepts_paths_of_our_shape_under_the_folder() {
        assert_eq!(
            layout_segments("c", "c/v1/configmaps/ns/a.yaml"),
            Some(vec!["v1", "configmaps", "ns", "a"])
        );
        assert_eq!(
            layout_segments("", "v1/nodes/n1.yaml"),
            Some(vec!["v1", "nodes", "n1"])
        );
        assert_eq!(
            layout_segments("c", "cc/v1/configmaps/ns/a.yaml"),
            None,
            "prefix must end at a slash"
        );
        assert_eq!(layout_segments("c", "c/README.md"), None);
        assert_eq!(
            layout_segments("c", "c/a/b/c/d/e/f.yaml"),
            None,
            "too deep to be ours"
        );
    }
}
