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

/// Every file under `folder` (empty: the whole tree) as (path from the root, blob id), sorted.
pub fn list(
    repo: &Repository,
    root: &Tree<'_>,
    folder: &str,
) -> Result<Vec<(String, [u8; 20])>, git2::Error> {
    let folder = folder.trim_matches('/');
    let sub;
    let (tree, prefix) = if folder.is_empty() {
        (root, String::new())
    } else {
        match root.get_path(std::path::Path::new(folder)) {
            Ok(e) if e.kind() == Some(git2::ObjectType::Tree) => {
                sub = repo.find_tree(e.id())?;
                (&sub, format!("{folder}/"))
            }
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    let mut out = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            if let Some(name) = entry.name() {
                let mut id = [0u8; 20];
                id.copy_from_slice(entry.id().as_bytes());
                out.push((format!("{prefix}{dir}{name}"), id));
            }
        }
        git2::TreeWalkResult::Ok
    })?;
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
}
