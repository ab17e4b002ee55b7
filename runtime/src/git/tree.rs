//! Incremental trees: apply a commit's writes to the previous tree, rewriting only the trees on
//! the changed paths. A commit touching three files in a 100,000-file repository reads and writes
//! a handful of trees, never an index of the whole repository.
//!
//! Trees are edited as git stores them (sorted `mode name\0id` records), not through libgit2's
//! tree builder: a one-file change to a folder of 50,000 files copies its tree with one record
//! replaced, where the builder parsed every entry, sorted them all again and wrote them back, for
//! each commit. The trees the last commit wrote are kept, raw, for the next ([`TreeCache`]).

use std::collections::HashMap;
use std::sync::Arc;

use git2::{ObjectType, Odb, Oid, Repository, Tree};

/// One change: a path from the repository root and its new blob (`None` deletes it).
pub type Change<'a> = (&'a str, Option<Oid>);

/// The mode of a file we write, and of a directory, as git writes them.
const MODE_BLOB: &[u8] = b"100644";
const MODE_TREE: &[u8] = b"40000";

/// The raw trees of the last commit written, for the next one to start from without reading
/// (and inflating) them again.
#[derive(Default)]
pub struct TreeCache {
    last: HashMap<Oid, Arc<[u8]>>,
    this: HashMap<Oid, Arc<[u8]>>,
}

impl TreeCache {
    /// A commit is done: its trees become the ones the next commit starts from; older ones go.
    pub fn commit_done(&mut self) {
        self.last = std::mem::take(&mut self.this);
    }

    fn get(&self, id: &Oid) -> Option<Arc<[u8]>> {
        self.this.get(id).or_else(|| self.last.get(id)).cloned()
    }
}

/// Applies `changes` (sorted by path) to the tree `base` and returns the new root tree's id;
/// every tree it writes is appended to `written` (the objects a pack of this change needs).
/// Directories left empty by deletions disappear, as git has no empty directories. Deleting a
/// missing path is a no-op.
pub fn apply(
    odb: &Odb<'_>,
    base: Option<Oid>,
    changes: &[Change<'_>],
    written: &mut Vec<Oid>,
    cache: &mut TreeCache,
) -> Result<Oid, git2::Error> {
    debug_assert!(
        changes.windows(2).all(|w| w[0].0 < w[1].0),
        "changes sorted, one per path"
    );
    match update(odb, base, changes, written, cache)? {
        Some(id) => Ok(id),
        // Everything was deleted: the root is the empty tree.
        None => {
            let id = odb.write(ObjectType::Tree, &[])?;
            written.push(id);
            Ok(id)
        }
    }
}

/// What a change does to one name of a tree: a new record (mode, id), or none (removed).
type Edit<'a> = (&'a [u8], Option<(&'static [u8], [u8; 20])>);

/// One record of a tree.
pub(crate) struct Entry<'a> {
    mode: &'a [u8],
    pub(crate) name: &'a [u8],
    pub(crate) id: [u8; 20],
}

impl Entry<'_> {
    pub(crate) fn is_tree(&self) -> bool {
        self.mode == MODE_TREE
    }
}

/// Git's order of tree records: by name, a directory's as if it ended in `/`.
pub(crate) fn git_order(a: &Entry<'_>, b: &Entry<'_>) -> std::cmp::Ordering {
    let n = a.name.len().min(b.name.len());
    a.name[..n].cmp(&b.name[..n]).then_with(|| {
        let end = |e: &Entry<'_>| match e.name.get(n) {
            Some(&c) => c,
            None if e.is_tree() => b'/',
            None => 0,
        };
        end(a).cmp(&end(b))
    })
}

fn corrupt(what: &str) -> git2::Error {
    git2::Error::from_str(&format!("a tree in the clone is corrupt: {what}"))
}

/// The records of a raw tree, in its (git's) order.
pub(crate) fn parse(raw: &[u8]) -> Result<Vec<Entry<'_>>, git2::Error> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| corrupt("a record without a mode"))?;
        let nul = rest[sp..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| corrupt("a record without a name"))?
            + sp;
        let id: [u8; 20] = rest
            .get(nul + 1..nul + 21)
            .ok_or_else(|| corrupt("a record without an id"))?
            .try_into()
            .expect("20 bytes");
        out.push(Entry {
            mode: &rest[..sp],
            name: &rest[sp + 1..nul],
            id,
        });
        rest = &rest[nul + 21..];
    }
    Ok(out)
}

fn id_bytes(id: Oid) -> [u8; 20] {
    id.as_bytes().try_into().expect("SHA-1 ids")
}

fn update(
    odb: &Odb<'_>,
    tree: Option<Oid>,
    changes: &[Change<'_>],
    written: &mut Vec<Oid>,
    cache: &mut TreeCache,
) -> Result<Option<Oid>, git2::Error> {
    let raw: Arc<[u8]> = match tree {
        None => Arc::from(&[][..]),
        Some(id) => match cache.get(&id) {
            Some(raw) => raw,
            None => {
                let obj = odb.read(id)?;
                if obj.kind() != ObjectType::Tree {
                    return Err(corrupt("a directory entry names a non-tree"));
                }
                Arc::from(obj.data())
            }
        },
    };
    let old = parse(&raw)?;
    // What this level's changes do, by name: a new record, or none (removed). Subdirectories
    // are updated first, each from its current tree.
    let mut edits: Vec<Edit<'_>> = Vec::new();
    let mut i = 0;
    while i < changes.len() {
        let (path, blob) = changes[i];
        match path.split_once('/') {
            None => {
                if path.is_empty() || path.contains('\0') {
                    return Err(git2::Error::from_str(&format!(
                        "invalid file name {path:?}"
                    )));
                }
                edits.push((path.as_bytes(), blob.map(|b| (MODE_BLOB, id_bytes(b)))));
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
                // A file of that name written just before (same commit) replaced the directory:
                // it starts afresh, as a tree builder would have it.
                let replaced = edits.iter().any(|(n, _)| *n == dir.as_bytes());
                let existing = old
                    .iter()
                    .find(|e| !replaced && e.name == dir.as_bytes() && e.is_tree())
                    .map(|e| Oid::from_bytes(&e.id))
                    .transpose()?;
                let id = update(odb, existing, &sub, written, cache)?;
                edits.push((dir.as_bytes(), id.map(|id| (MODE_TREE, id_bytes(id)))));
                i = end;
            }
        }
    }
    // A name changed twice at this level (a file replaced by a directory, say): the later wins.
    edits.reverse();
    let mut seen = std::collections::HashSet::new();
    edits.retain(|(name, _)| seen.insert(*name));
    let added: Vec<Entry<'_>> = {
        let mut v: Vec<Entry<'_>> = edits
            .iter()
            .filter_map(|(name, rec)| rec.map(|(mode, id)| Entry { mode, name, id }))
            .collect();
        v.sort_by(git_order);
        v
    };
    let touched = |name: &[u8]| edits.iter().any(|(n, _)| *n == name);
    // Merge the kept old records with the new ones, both in git's order.
    let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 64 * added.len());
    let put = |out: &mut Vec<u8>, e: &Entry<'_>| {
        out.extend_from_slice(e.mode);
        out.push(b' ');
        out.extend_from_slice(e.name);
        out.push(0);
        out.extend_from_slice(&e.id);
    };
    let mut new = added.iter().peekable();
    for e in old.iter().filter(|e| !touched(e.name)) {
        while let Some(n) = new.next_if(|n| git_order(n, e).is_lt()) {
            put(&mut out, n);
        }
        put(&mut out, e);
    }
    for n in new {
        put(&mut out, n);
    }
    if out.is_empty() {
        return Ok(None);
    }
    let id = odb.write(ObjectType::Tree, &out)?;
    written.push(id);
    cache.this.insert(id, Arc::from(out));
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
    use git2::FileMode;

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
        apply(
            &repo.odb().unwrap(),
            base.map(|t| t.id()),
            changes,
            &mut Vec::new(),
            &mut TreeCache::default(),
        )
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

    /// The tree edit as libgit2's tree builder does it: the reference the raw edit must match.
    fn reference(
        repo: &Repository,
        tree: Option<&Tree<'_>>,
        changes: &[Change<'_>],
    ) -> Option<Oid> {
        let mut builder = repo.treebuilder(tree).unwrap();
        let mut i = 0;
        while i < changes.len() {
            let (path, blob) = changes[i];
            match path.split_once('/') {
                None => {
                    match blob {
                        Some(id) => drop(builder.insert(path, id, FileMode::Blob.into()).unwrap()),
                        None if builder.get(path).unwrap().is_some() => {
                            builder.remove(path).unwrap()
                        }
                        None => {}
                    };
                    i += 1;
                }
                Some((dir, _)) => {
                    let end = i + changes[i..]
                        .iter()
                        .take_while(|(p, _)| {
                            p.len() > dir.len()
                                && p.starts_with(dir)
                                && p.as_bytes()[dir.len()] == b'/'
                        })
                        .count();
                    let sub: Vec<Change<'_>> = changes[i..end]
                        .iter()
                        .map(|(p, b)| (&p[dir.len() + 1..], *b))
                        .collect();
                    let existing = match builder.get(dir).unwrap() {
                        Some(e) if e.kind() == Some(git2::ObjectType::Tree) => {
                            Some(repo.find_tree(e.id()).unwrap())
                        }
                        _ => None,
                    };
                    match reference(repo, existing.as_ref(), &sub) {
                        Some(id) => drop(builder.insert(dir, id, FileMode::Tree.into()).unwrap()),
                        None if builder.get(dir).unwrap().is_some() => builder.remove(dir).unwrap(),
                        None => {}
                    };
                    i = end;
                }
            }
        }
        (!builder.is_empty()).then(|| builder.write().unwrap())
    }

    #[test]
    fn raw_edits_give_the_trees_libgits_builder_gives_over_random_histories() {
        // Names that sort differently as files and as directories ("a-b" < "a.b" < "a" + "/" <
        // "a0"), files replaced by directories and back, deletes of what is missing.
        let names = ["a", "a-b", "a.b", "a0", "b", "z"];
        let (_d, repo) = repo();
        let blobs: Vec<Oid> = (0..4)
            .map(|i| repo.blob(format!("{i}").as_bytes()).unwrap())
            .collect();
        let mut x: u64 = 0x853c_49e6_748f_ea9b;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut ours, mut theirs): (Option<Oid>, Option<Oid>) = (None, None);
        let mut cache = TreeCache::default();
        for step in 0..400 {
            let mut changes: Vec<(String, Option<Oid>)> = (0..1 + next(4))
                .map(|_| {
                    let depth = 1 + next(3) as usize;
                    let path: Vec<&str> = (0..depth)
                        .map(|_| names[next(names.len() as u64) as usize])
                        .collect();
                    let blob = (next(4) > 0).then(|| blobs[next(4) as usize]);
                    (path.join("/"), blob)
                })
                .collect();
            changes.sort_by(|a, b| a.0.cmp(&b.0));
            changes.dedup_by(|a, b| a.0 == b.0);
            let changes: Vec<Change<'_>> = changes.iter().map(|(p, b)| (p.as_str(), *b)).collect();
            let odb = repo.odb().unwrap();
            let got = apply(&odb, ours, &changes, &mut Vec::new(), &mut cache).unwrap();
            cache.commit_done();
            let base = theirs.map(|t| repo.find_tree(t).unwrap());
            let want = reference(&repo, base.as_ref(), &changes)
                .unwrap_or_else(|| repo.treebuilder(None).unwrap().write().unwrap());
            assert_eq!(got, want, "step {step}: {changes:?}");
            (ours, theirs) = (Some(got), Some(want));
        }
    }
}
