//! Incremental trees: apply a commit's writes to the previous tree with libgit2's tree builders,
//! rewriting only the trees on the changed paths. A commit touching three files in a 100,000-file
//! repository reads and writes a handful of small trees, never an index of the whole repository.

use git2::{FileMode, Oid, Repository, Tree};

/// One change: a path from the repository root and its new blob (`None` deletes it).
pub type Change<'a> = (&'a str, Option<Oid>);

/// Applies `changes` (sorted by path) to `base` and returns the new root tree's id; every tree it
/// writes is appended to `written` (the objects a pack of this change needs). Directories left
/// empty by deletions disappear, as git has no empty directories. Deleting a missing path is a no-op.
pub fn apply(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    changes: &[Change<'_>],
    written: &mut Vec<Oid>,
) -> Result<Oid, git2::Error> {
    debug_assert!(
        changes.windows(2).all(|w| w[0].0 < w[1].0),
        "changes sorted, one per path"
    );
    match update(repo, base, changes, written)? {
        Some(id) => Ok(id),
        // Everything was deleted: the root is the empty tree.
        None => {
            let id = repo.treebuilder(None)?.write()?;
            written.push(id);
            Ok(id)
        }
    }
}

fn update(
    repo: &Repository,
    tree: Option<&Tree<'_>>,
    changes: &[Change<'_>],
    written: &mut Vec<Oid>,
) -> Result<Option<Oid>, git2::Error> {
    let mut builder = repo.treebuilder(tree)?;
    let mut i = 0;
    while i < changes.len() {
        let (path, blob) = changes[i];
        match path.split_once('/') {
            None => {
                match blob {
                    Some(id) => drop(builder.insert(path, id, FileMode::Blob.into())?),
                    None if builder.get(path)?.is_some() => builder.remove(path)?,
                    None => {}
                };
                i += 1;
            }
            Some((dir, _)) => {
                // Sorted paths keep a directory's changes together ('/' sorts after '.', '-').
                let end = i + changes[i..]
                    .iter()
                    .take_while(|(p, _)| {
                        p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
                    })
                    .count();
                let sub: Vec<Change<'_>> = changes[i..end]
                    .iter()
                    .map(|(p, b)| (&p[dir.len() + 1..], *b))
                    .collect();
                let existing = match builder.get(dir)? {
                    Some(e) if e.kind() == Some(git2::ObjectType::Tree) => {
                        Some(repo.find_tree(e.id())?)
                    }
                    _ => None,
                };
                match update(repo, existing.as_ref(), &sub, written)? {
                    Some(id) => drop(builder.insert(dir, id, FileMode::Tree.into())?),
                    None if builder.get(dir)?.is_some() => builder.remove(dir)?,
                    None => {}
                };
                i = end;
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    let id = builder.write()?;
    written.push(id);
    Ok(Some(id))
}

/// Entries (files and directories) a listing reads at most: a million objects' files, and a
/// "git bomb" (a few KB of trees that name each other to spell 10^9 paths) stops here.
pub const TREE_ENTRIES_MAX: usize = 2_000_000;
/// Directory levels below the folder a listing descends at most (our layout needs 5).
pub const TREE_DEPTH_MAX: usize = 64;
/// Bytes of paths a listing holds at most.
pub const TREE_PATH_BYTES_MAX: usize = 256 << 20;

/// Why a listing stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// libgit2 could not read a tree.
    #[error(transparent)]
    Git(#[from] git2::Error),
    /// The folder is larger or deeper than a listing may read.
    #[error("the folder {folder:?} is over the listing limit: {what}")]
    TooLarge {
        /// The folder listed.
        folder: String,
        /// Which limit, with its value.
        what: String,
    },
}

/// Every file under `folder` (empty: the whole tree) as (path from the root, blob id), sorted.
/// Iterative (a tree 30,000 levels deep cannot exhaust the stack) and bounded by
/// [`TREE_ENTRIES_MAX`], [`TREE_DEPTH_MAX`] and [`TREE_PATH_BYTES_MAX`]: the repository may be
/// anyone's.
pub fn list(
    repo: &Repository,
    root: &Tree<'_>,
    folder: &str,
) -> Result<Vec<(String, [u8; 20])>, ListError> {
    list_within(
        repo,
        root,
        folder,
        (TREE_ENTRIES_MAX, TREE_DEPTH_MAX, TREE_PATH_BYTES_MAX),
    )
}

/// [`list`] with the limits given: (entries, depth, path bytes).
pub fn list_within(
    repo: &Repository,
    root: &Tree<'_>,
    folder: &str,
    (entries_max, depth_max, bytes_max): (usize, usize, usize),
) -> Result<Vec<(String, [u8; 20])>, ListError> {
    let folder = folder.trim_matches('/');
    let start = if folder.is_empty() {
        root.id()
    } else {
        match root.get_path(std::path::Path::new(folder)) {
            Ok(e) if e.kind() == Some(git2::ObjectType::Tree) => e.id(),
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let too_large = |what: String| ListError::TooLarge {
        folder: folder.to_string(),
        what,
    };
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let mut out = Vec::new();
    let (mut entries, mut bytes) = (0usize, 0usize);
    // (tree, its path with a trailing slash, its depth below the folder)
    let mut stack = vec![(start, prefix, 0usize)];
    while let Some((id, dir, depth)) = stack.pop() {
        let tree = repo.find_tree(id)?;
        for entry in tree.iter() {
            entries += 1;
            if entries > entries_max {
                return Err(too_large(format!("more than {entries_max} entries")));
            }
            let Some(name) = entry.name() else { continue };
            let path = format!("{dir}{name}");
            bytes += path.len();
            if bytes > bytes_max {
                return Err(too_large(format!("more than {bytes_max} bytes of paths")));
            }
            match entry.kind() {
                Some(git2::ObjectType::Blob) => {
                    let mut blob = [0u8; 20];
                    blob.copy_from_slice(entry.id().as_bytes());
                    out.push((path, blob));
                }
                Some(git2::ObjectType::Tree) => {
                    if depth + 1 > depth_max {
                        return Err(too_large(format!("deeper than {depth_max} levels")));
                    }
                    stack.push((entry.id(), path + "/", depth + 1));
                }
                // Submodules (commits) hold no files of ours.
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        (dir, repo)
    }

    fn apply_t(
        repo: &Repository,
        base: Option<&Tree<'_>>,
        changes: &[Change<'_>],
    ) -> Result<Oid, git2::Error> {
        apply(repo, base, changes, &mut Vec::new())
    }

    fn paths(repo: &Repository, tree: Oid) -> Vec<String> {
        let t = repo.find_tree(tree).unwrap();
        list(repo, &t, "")
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn writes_nest_deletes_prune_and_siblings_are_kept() {
        let (_d, repo) = repo();
        let a = repo.blob(b"a").unwrap();
        let b = repo.blob(b"b").unwrap();
        let t1 = apply_t(
            &repo,
            None,
            &[
                ("README.md", Some(a)),
                ("v1/configmaps/ns/x.yaml", Some(a)),
                ("v1/configmaps/ns/y.yaml", Some(b)),
            ],
        )
        .unwrap();
        assert_eq!(
            paths(&repo, t1),
            [
                "README.md",
                "v1/configmaps/ns/x.yaml",
                "v1/configmaps/ns/y.yaml"
            ]
        );
        let base = repo.find_tree(t1).unwrap();
        let t2 = apply_t(
            &repo,
            Some(&base),
            &[
                ("v1/configmaps/ns/x.yaml", None),
                ("v1/configmaps/ns/y.yaml", None),
                ("v1/secrets/ns/s.yaml", Some(b)),
            ],
        )
        .unwrap();
        assert_eq!(paths(&repo, t2), ["README.md", "v1/secrets/ns/s.yaml"]);
        // Unchanged subtrees are shared, not rewritten.
        let base2 = repo.find_tree(t2).unwrap();
        let t3 = apply_t(&repo, Some(&base2), &[("README.md", Some(b))]).unwrap();
        let v1 = |t: Oid| repo.find_tree(t).unwrap().get_name("v1").unwrap().id();
        assert_eq!(v1(t2), v1(t3));
    }

    #[test]
    fn same_content_gives_the_same_tree_as_git_would() {
        let (_d, repo) = repo();
        let a = repo.blob(b"a").unwrap();
        let one = apply_t(
            &repo,
            None,
            &[("d-e/y", Some(a)), ("d.f", Some(a)), ("d/x", Some(a))],
        )
        .unwrap();
        let base = repo.find_tree(one).unwrap();
        let again = apply_t(&repo, Some(&base), &[("d/x", Some(a))]).unwrap();
        assert_eq!(
            one, again,
            "rewriting a file with its own content changes nothing"
        );
        let deleted = apply_t(
            &repo,
            Some(&base),
            &[
                ("d-e/y", None),
                ("d.f", None),
                ("d/x", None),
                ("nope/z", None),
            ],
        )
        .unwrap();
        assert_eq!(paths(&repo, deleted), Vec::<String>::new());
    }

    #[test]
    fn listing_a_folder_gives_root_relative_paths() {
        let (_d, repo) = repo();
        let a = repo.blob(b"a").unwrap();
        let t = apply_t(
            &repo,
            None,
            &[
                ("prod/v1/cm/ns/a.yaml", Some(a)),
                ("prodx/b", Some(a)),
                ("z", Some(a)),
            ],
        )
        .unwrap();
        let t = repo.find_tree(t).unwrap();
        let got = list(&repo, &t, "prod").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "prod/v1/cm/ns/a.yaml");
        assert_eq!(&got[0].1, a.as_bytes());
        assert!(list(&repo, &t, "missing").unwrap().is_empty());
        assert!(
            list(&repo, &t, "z").unwrap().is_empty(),
            "a file is not a folder"
        );
    }

    /// A tree `levels` deep whose innermost directory holds one file.
    fn deep(repo: &Repository, levels: usize) -> Oid {
        let blob = repo.blob(b"x").unwrap();
        let mut b = repo.treebuilder(None).unwrap();
        b.insert("f", blob, FileMode::Blob.into()).unwrap();
        let mut id = b.write().unwrap();
        for _ in 0..levels {
            let mut b = repo.treebuilder(None).unwrap();
            b.insert("d", id, FileMode::Tree.into()).unwrap();
            id = b.write().unwrap();
        }
        id
    }

    #[test]
    fn a_tree_thirty_thousand_levels_deep_is_refused_at_the_depth_limit() {
        let (_d, repo) = repo();
        let root = repo.find_tree(deep(&repo, 30_000)).unwrap();
        let err = list(&repo, &root, "").unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("deeper than {TREE_DEPTH_MAX} levels")),
            "{err}"
        );
        // Within the limit, the file is found (the walk is iterative: no recursion to overflow).
        let root = repo.find_tree(deep(&repo, 60)).unwrap();
        assert_eq!(list(&repo, &root, "").unwrap().len(), 1);
    }

    #[test]
    fn a_git_bomb_stops_at_the_entry_limit_and_never_expands() {
        // Nine levels of ten names for the same subtree: 10^9 paths from 10 small trees.
        let (_d, repo) = repo();
        let blob = repo.blob(b"boom").unwrap();
        let (mut id, mut mode) = (blob, FileMode::Blob);
        for _ in 0..9 {
            let mut b = repo.treebuilder(None).unwrap();
            for i in 0..10 {
                b.insert(format!("n{i}"), id, mode.into()).unwrap();
            }
            id = b.write().unwrap();
            mode = FileMode::Tree;
        }
        let root = repo.find_tree(id).unwrap();
        let err = list_within(
            &repo,
            &root,
            "",
            (100_000, TREE_DEPTH_MAX, TREE_PATH_BYTES_MAX),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("more than 100000 entries"),
            "{err}"
        );
        let err = list_within(
            &repo,
            &root,
            "",
            (TREE_ENTRIES_MAX, TREE_DEPTH_MAX, 1 << 20),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bytes of paths"), "{err}");
    }
}
