//! Writing planned commits into a repository: blobs, incremental trees, commits with the planned
//! identities and times. A batch is built in memory and stored as packs, as `git fast-import`
//! does: creating one file per object (loose objects) costs more than all the rest together on
//! these file systems. The memory a batch holds is bounded ([`CHUNK_BYTES_MAX`]), and each version
//! of a tree or file is stored as a delta against the next newer version in its pack, as git stores
//! history: every commit rewrites its folder's tree, and kept whole, a folder of 5,000 files grew
//! the store by its size on every commit. [`maintain`] keeps the number of packs bounded.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use git2::{ObjectType, Odb, Oid, Repository};
use gitops_reverser_core::io::{Blobs, Identity, PlannedCommit};

use super::delta::{self, Records};
use super::sign::Signer;
use super::{pack, tree};

/// Packs a clone may hold before [`maintain`] merges the smallest (each push and each fetch adds
/// one; lookups get slower with every pack, and each pack read keeps a delta-base cache of up to
/// 16 MiB in libgit2 while the clone is open). With 8, merges ran twice as often and their reads
/// raised the peak (`scripts/bench-load 5000`: 259 MiB against 197 MiB with 16).
pub const PACKS_MAX: usize = 16;

/// Packs one merge reads at most: the delta-base caches of the packs a merge reads add up.
pub const MERGE_PACKS_MAX: usize = 4;

/// Bytes of objects a batch holds in memory before they are written out as a pack. A burst of
/// thousands of commits to a large folder writes a tree of hundreds of KiB per commit: held whole
/// until the batch ended, they took gigabytes.
pub const CHUNK_BYTES_MAX: usize = 64 << 20;

/// The longest chain of deltas a pack holds (git's default): reading an object applies its chain.
const DELTA_DEPTH_MAX: usize = 50;

/// Why commits could not be written.
#[derive(Debug)]
pub enum CommitError {
    /// An identity git cannot store.
    Identity(String),
    /// The repository failed (disk, corruption).
    Git(git2::Error),
    /// A sealed file could not be encrypted.
    Seal(String),
}

impl From<git2::Error> for CommitError {
    fn from(e: git2::Error) -> Self {
        CommitError::Git(e)
    }
}

/// Creates `commits` on `parent` (`None`: a root commit) and returns the last one's id. A commit
/// that would leave the tree as its parent has it is skipped (the remote already holds its
/// content), so this may return `parent` itself. No ref is moved.
pub fn write_commits(
    repo: &Repository,
    parent: Option<Oid>,
    commits: &[PlannedCommit],
) -> Result<Oid, CommitError> {
    write_commits_with_blobs(repo, parent, commits).map(|(head, _)| head)
}

/// [`write_commits`], also returning the blob id of every write (per commit, in the order given;
/// `None` for deletes): the core keeps them to recognise its own files in later listings.
pub fn write_commits_with_blobs(
    repo: &Repository,
    parent: Option<Oid>,
    commits: &[PlannedCommit],
) -> Result<(Oid, Blobs), CommitError> {
    write_commits_chunked(repo, parent, commits, None, CHUNK_BYTES_MAX)
}

/// [`write_commits_with_blobs`], every commit signed with `signer` when one is given. Sealed
/// files are encrypted here, stamped with their commit's time, and reported by their listed id.
pub fn write_commits_signed(
    repo: &Repository,
    parent: Option<Oid>,
    commits: &[PlannedCommit],
    signer: Option<&Signer>,
) -> Result<(Oid, Blobs), CommitError> {
    write_commits_chunked(repo, parent, commits, signer, CHUNK_BYTES_MAX)
}

/// [`write_commits_signed`], holding at most about `chunk_bytes_max` of objects in memory.
fn write_commits_chunked(
    repo: &Repository,
    parent: Option<Oid>,
    commits: &[PlannedCommit],
    signer: Option<&Signer>,
    chunk_bytes_max: usize,
) -> Result<(Oid, Blobs), CommitError> {
    // libgit2 cannot detach an odb backend: the batch gets its own handle on the repository, so
    // the in-memory backend dies with it.
    let handle = Repository::open_bare(repo.path())?;
    let repo = &handle;
    let odb = repo.odb()?;
    let in_memory = odb.add_new_mempack_backend(1_000)?;
    // Every object this chunk of the batch writes, for its pack. (libgit2's own mempack dump
    // would pack each commit's whole tree: the entire repository, every time.)
    let mut written: Vec<Oid> = Vec::new();
    let mut sized = 0;
    let mut held_bytes = 0;
    let mut flushed = false;
    let mut head = parent;
    let mut tree_id = match parent {
        Some(p) => Some(repo.find_commit(p)?.tree_id()),
        None => None,
    };
    let mut blobs: Blobs = Vec::with_capacity(commits.len());
    let mut trees = tree::TreeCache::default();
    for c in commits {
        let mut changes = Vec::with_capacity(c.writes.len());
        let mut reported = Vec::with_capacity(c.writes.len());
        for (path, bytes) in &c.writes {
            let blob = match bytes {
                Some(b) => {
                    // The core hands over objects; their files are rendered here, off its thread.
                    let id = match b.sealed() {
                        Some(s) => {
                            let stamp = crate::kube::status::rfc3339(c.commit_time_ms / 1000);
                            let file = super::sops::seal(s, &stamp).map_err(CommitError::Seal)?;
                            let id = odb.write(git2::ObjectType::Blob, &file)?;
                            reported.push(Some(s.listed_id()));
                            id
                        }
                        None => {
                            let id = odb.write(git2::ObjectType::Blob, &b.render())?;
                            reported.push(Some(id.as_bytes().try_into().expect("SHA-1 ids")));
                            id
                        }
                    };
                    written.push(id);
                    Some(id)
                }
                None => {
                    reported.push(None);
                    None
                }
            };
            changes.push((path.as_str(), blob));
        }
        blobs.push(reported);
        changes.sort_by(|a, b| a.0.cmp(b.0));
        // The same path twice in one commit: the later write wins.
        changes.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        let new_tree = tree::apply(&odb, tree_id, &changes, &mut written, &mut trees)?;
        trees.commit_done();
        if head.is_some() && Some(new_tree) == tree_id {
            continue;
        }
        let author = signature(&c.author, c.author_time_ms)?;
        let committer = signature(&c.committer, c.commit_time_ms)?;
        let mut raw = raw_commit(new_tree, head, &author, &committer, &c.message);
        if let Some(signer) = signer {
            raw = signer.sign_commit(&raw);
        }
        let id = odb.write(ObjectType::Commit, &raw)?;
        written.push(id);
        head = Some(id);
        tree_id = Some(new_tree);
        for id in &written[sized..] {
            held_bytes += odb.read_header(*id)?.0;
        }
        sized = written.len();
        if held_bytes >= chunk_bytes_max {
            // Out to disk, and out of memory: later commits read what they need from the pack.
            flush(repo, &mut written)?;
            in_memory.reset()?;
            (sized, held_bytes, flushed) = (0, 0, true);
        }
    }
    if head != parent || flushed {
        flush(repo, &mut written)?;
    }
    let head = head.ok_or_else(|| CommitError::Identity("a push without commits".into()))?;
    Ok((head, blobs))
}

/// Stores `written` (then emptied) as a pack, if it holds anything.
fn flush(repo: &Repository, written: &mut Vec<Oid>) -> Result<(), git2::Error> {
    written.sort();
    written.dedup();
    if !written.is_empty() {
        store_as_pack(repo, written)?;
    }
    written.clear();
    Ok(())
}

/// Keeps the number of packs bounded: while there are more than [`PACKS_MAX`], the smallest are
/// merged, at most [`MERGE_PACKS_MAX`] at a time (a geometric repack: the large base pack of the
/// seed or first fetch is never rewritten, which would cost seconds on a 100,000-file
/// repository). Objects are taken from the packs' indexes, so nothing a pack holds is lost. Call
/// it before opening other handles on the clone: it deletes pack files, and each merge reads
/// through a handle of its own, so that libgit2's delta-base cache of every pack it read (16 MiB
/// each, fixed in libgit2, kept as long as a handle holds the pack) goes with it. Returns whether
/// it merged.
pub fn maintain(dir: &Path) -> Result<bool, git2::Error> {
    let mut merged_any = false;
    loop {
        let mut packs = pack_files(dir);
        if packs.len() <= PACKS_MAX {
            return Ok(merged_any);
        }
        // The smallest two, then each next pack while it is smaller than twice what is being
        // merged: large packs are rewritten rarely (amortised O(log n) rewrites per object).
        packs.sort();
        let mut take = 2;
        let mut merged: u64 = packs[..take].iter().map(|(size, _)| size).sum();
        while take < MERGE_PACKS_MAX && take + 1 < packs.len() && packs[take].0 < 2 * merged {
            merged += packs[take].0;
            take += 1;
        }
        packs.truncate(take);
        merge_packs(dir, &packs)?;
        merged_any = true;
    }
}

/// The clone's pack files that have an index, with their sizes.
fn pack_files(dir: &Path) -> Vec<(u64, std::path::PathBuf)> {
    std::fs::read_dir(dir.join("objects").join("pack"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pack"))
                .filter(|p| p.with_extension("idx").is_file())
                .map(|p| (std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0), p))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the objects of `packs` as one new pack, then deletes them.
fn merge_packs(dir: &Path, packs: &[(u64, std::path::PathBuf)]) -> Result<(), git2::Error> {
    let mut ids = Vec::new();
    for (_, pack) in packs {
        let idx = std::fs::read(pack.with_extension("idx"))
            .map_err(|e| git2::Error::from_str(&format!("reading a pack index: {e}")))?;
        ids.extend(
            idx_object_ids(&idx).ok_or_else(|| git2::Error::from_str("unreadable pack index"))?,
        );
    }
    ids.sort();
    ids.dedup();
    let name = store_as_pack(&Repository::open_bare(dir)?, &ids)?;
    for (_, pack) in packs
        .iter()
        .filter(|(_, p)| !p.to_string_lossy().contains(&name))
    {
        for ext in ["pack", "idx", "rev", "keep"] {
            let _ = std::fs::remove_file(pack.with_extension(ext));
        }
    }
    Ok(())
}

/// Reads `ids` (sorted, unique) from the repository (memory or disk), one at a time, and writes
/// them as one pack: deflated once at the fastest level, and each older version of a tree or file
/// as a delta against its next newer version among `ids` ([`delta_bases`]), where that is less than
/// half its size. Local packs are for lookups, not transfer (pushes build their own packs).
fn store_as_pack(repo: &Repository, ids: &[Oid]) -> Result<String, git2::Error> {
    let odb = repo.odb()?;
    let bases = delta_bases(repo, &odb, ids)?;
    // Bases first: an object's delta names an offset written before it. Depth 0 (whole), then
    // each depth in turn.
    let depth_of = chain_depths(ids, &bases);
    let mut order: Vec<(usize, Oid)> = ids.iter().map(|id| (depth_of[id], *id)).collect();
    order.sort();
    let pack_dir = repo.path().join("objects").join("pack");
    let io = |e: std::io::Error| git2::Error::from_str(&format!("writing a pack: {e}"));
    let mut w = pack::PackWriter::create(&pack_dir, ids.len()).map_err(io)?;
    let mut offset_of: HashMap<Oid, u64> = HashMap::with_capacity(ids.len());
    for (_, id) in order {
        let object = odb.read(id)?;
        let kind = object.kind();
        // Depth 0: whole, also where a chain was cut at its length limit.
        let base = bases
            .get(&id)
            .filter(|_| depth_of[&id] > 0)
            .map(|b| (*b, offset_of[b]));
        let at = match (base, records_of(kind)) {
            (Some((base_id, base_at)), Some(records)) => {
                let base = odb.read(base_id)?;
                let d = delta::encode(base.data(), object.data(), records);
                if d.len() < object.data().len() / 2 {
                    w.delta(id, base_at, &d)
                } else {
                    w.whole(id, kind, object.data())
                }
            }
            _ => w.whole(id, kind, object.data()),
        }
        .map_err(io)?;
        offset_of.insert(id, at);
    }
    w.finish().map_err(io)
}

fn records_of(kind: ObjectType) -> Option<Records> {
    match kind {
        ObjectType::Tree => Some(Records::TreeEntries),
        ObjectType::Blob => Some(Records::Lines),
        _ => None,
    }
}

/// For objects among `ids`, the object to store each as a delta against: the version of the same
/// path (tree or file) in the next commit among `ids` that changed it. Git stores history so
/// too, newest whole, so the head reads without applying deltas. Found by walking each commit among
/// `ids` against its parent, through the subtrees that differ only. Chains stay acyclic (a file
/// changed back and forth would point both ways) and at most [`DELTA_DEPTH_MAX`] long.
fn delta_bases(
    repo: &Repository,
    odb: &Odb<'_>,
    ids: &[Oid],
) -> Result<HashMap<Oid, Oid>, git2::Error> {
    let set: HashSet<Oid> = ids.iter().copied().collect();
    let mut commits = Vec::new();
    for id in ids {
        if odb.read_header(*id)?.1 == ObjectType::Commit {
            let c = repo.find_commit(*id)?;
            commits.push((c.time().seconds(), c.parent_count(), *id));
        }
    }
    // Oldest first, so that each pairing points at a version no pairing has given a base yet.
    commits.sort();
    let mut bases: HashMap<Oid, Oid> = HashMap::new();
    for (_, _, id) in commits {
        let c = repo.find_commit(id)?;
        let Ok(parent) = c.parent(0) else { continue };
        pair_trees(repo, &set, &mut bases, parent.tree_id(), c.tree_id())?;
    }
    Ok(bases)
}

/// Pairs `old` with `new` (and, where both are trees, their entries by name).
fn pair_trees(
    repo: &Repository,
    set: &HashSet<Oid>,
    bases: &mut HashMap<Oid, Oid>,
    old: Oid,
    new: Oid,
) -> Result<(), git2::Error> {
    let odb = repo.odb()?;
    let mut stack = vec![(old, new)];
    while let Some((old, new)) = stack.pop() {
        // A version not written now (the batch's base, from an earlier pack) gets no base, and
        // neither does anything under it: its trees are not read at all.
        if old == new || !set.contains(&old) {
            continue;
        }
        link(set, bases, old, new);
        let (Ok(old), Ok(new)) = (odb.read(old), odb.read(new)) else {
            continue;
        };
        if old.kind() != ObjectType::Tree || new.kind() != ObjectType::Tree {
            continue;
        }
        let (Ok(old), Ok(new)) = (tree::parse(old.data()), tree::parse(new.data())) else {
            continue;
        };
        // Both in git's order, in which an entry's name and kind decide its place: a merge walk
        // pairs the entries of the same name and kind.
        let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            match tree::git_order(x, y) {
                std::cmp::Ordering::Less => {
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if x.id != y.id {
                        let (x_id, y_id) = (Oid::from_bytes(&x.id)?, Oid::from_bytes(&y.id)?);
                        if x.is_tree() {
                            stack.push((x_id, y_id));
                        } else {
                            link(set, bases, x_id, y_id);
                        }
                    }
                    a.next();
                    b.next();
                }
            }
        }
    }
    Ok(())
}

/// Stores `old` as a delta against `new`, if both are being written, `old` has no base yet, and
/// `new`'s chain does not lead back to `old`.
fn link(set: &HashSet<Oid>, bases: &mut HashMap<Oid, Oid>, old: Oid, new: Oid) {
    if !set.contains(&old) || !set.contains(&new) || bases.contains_key(&old) {
        return;
    }
    let mut at = new;
    while let Some(next) = bases.get(&at) {
        if *next == old {
            return;
        }
        at = *next;
    }
    bases.insert(old, new);
}

/// Each id's place in its chain (0: stored whole). A chain longer than [`DELTA_DEPTH_MAX`] is cut:
/// the object past the limit is stored whole and starts a new chain.
fn chain_depths(ids: &[Oid], bases: &HashMap<Oid, Oid>) -> HashMap<Oid, usize> {
    let mut depth: HashMap<Oid, usize> = HashMap::with_capacity(ids.len());
    let mut path = Vec::new();
    for id in ids {
        // Walk to an object of known depth (or a whole one), then number back down.
        let mut at = *id;
        path.clear();
        let mut known = loop {
            if let Some(d) = depth.get(&at) {
                break *d;
            }
            path.push(at);
            match bases.get(&at) {
                Some(next) => at = *next,
                None => break usize::MAX,
            }
        };
        while let Some(x) = path.pop() {
            known = if known == usize::MAX || known + 1 > DELTA_DEPTH_MAX {
                0
            } else {
                known + 1
            };
            depth.insert(x, known);
        }
    }
    depth
}

/// The object ids listed in a version-2 pack index: magic, version, 256 fan-out counts (the last is
/// the object count), then the sorted 20-byte ids.
fn idx_object_ids(idx: &[u8]) -> Option<Vec<Oid>> {
    if idx.get(..8)? != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return None;
    }
    let count = u32::from_be_bytes(idx.get(8 + 255 * 4..8 + 256 * 4)?.try_into().ok()?) as usize;
    let ids = idx.get(8 + 256 * 4..8 + 256 * 4 + count * 20)?;
    ids.chunks_exact(20)
        .map(|c| Oid::from_bytes(c).ok())
        .collect()
}

/// A commit object as git (and libgit2) writes one: tree, parent, author, committer, a blank
/// line, the message as given. Written directly, so that the new tree need not be read back and
/// parsed (for a folder of 50,000 files that was a parse of 50,000 records per commit).
fn raw_commit(
    tree: Oid,
    parent: Option<Oid>,
    author: &git2::Signature<'_>,
    committer: &git2::Signature<'_>,
    message: &str,
) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(256 + message.len());
    let person = |out: &mut Vec<u8>, what: &str, s: &git2::Signature<'_>| {
        let when = s.when();
        let offset = when.offset_minutes();
        let sign = if offset < 0 { '-' } else { '+' };
        let (h, m) = (offset.abs() / 60, offset.abs() % 60);
        out.extend_from_slice(what.as_bytes());
        out.push(b' ');
        out.extend_from_slice(s.name_bytes());
        out.extend_from_slice(b" <");
        out.extend_from_slice(s.email_bytes());
        writeln!(out, "> {} {sign}{h:02}{m:02}", when.seconds()).expect("a Vec takes writes");
    };
    writeln!(out, "tree {tree}").expect("a Vec takes writes");
    if let Some(p) = parent {
        writeln!(out, "parent {p}").expect("a Vec takes writes");
    }
    person(&mut out, "author", author);
    person(&mut out, "committer", committer);
    out.push(b'\n');
    out.extend_from_slice(message.as_bytes());
    out
}

/// A git signature; characters git cannot store in one (`<`, `>`, line breaks) become `-`.
pub fn signature(id: &Identity, time_ms: i64) -> Result<git2::Signature<'static>, CommitError> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if matches!(c, '<' | '>' | '\n' | '\r' | '\0') {
                    '-'
                } else {
                    c
                }
            })
            .collect::<String>()
            .trim()
            .to_string()
    };
    let name = clean(&id.name);
    let name = if name.is_empty() {
        "unknown".to_string()
    } else {
        name
    };
    let time = git2::Time::new(time_ms.div_euclid(1000), 0);
    git2::Signature::new(&name, &clean(&id.email), &time)
        .map_err(|e| CommitError::Identity(format!("commit identity {name:?}: {}", e.message())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops_reverser_core::io::FileBody;
    use std::sync::Arc;

    fn planned(author: &str, writes: &[(&str, Option<&str>)]) -> PlannedCommit {
        PlannedCommit {
            author: Identity {
                name: author.into(),
                email: format!("{author}@x"),
            },
            author_time_ms: 1_000,
            committer: Identity {
                name: "bot".into(),
                email: "bot@x".into(),
            },
            commit_time_ms: 2_000,
            message: "m\n".into(),
            writes: writes
                .iter()
                .map(|(p, c)| {
                    let file = c.map(|c| FileBody::Yaml(Arc::from(c.as_bytes())));
                    (p.to_string(), file)
                })
                .collect(),
        }
    }

    #[test]
    fn commits_that_change_nothing_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(d.path()).unwrap();
        let h1 = write_commits(&repo, None, &[planned("a", &[("x", Some("1"))])]).unwrap();
        let same = write_commits(
            &repo,
            Some(h1),
            &[planned("b", &[("x", Some("1")), ("gone", None)])],
        )
        .unwrap();
        assert_eq!(same, h1);
        let h2 = write_commits(
            &repo,
            Some(h1),
            &[
                planned("b", &[("x", Some("1"))]),
                planned("c", &[("y", Some("2"))]),
            ],
        )
        .unwrap();
        let c = repo.find_commit(h2).unwrap();
        assert_eq!(c.author().name(), Some("c"));
        assert_eq!(
            c.parent_id(0).unwrap(),
            h1,
            "the no-op commit left no trace"
        );
    }

    #[test]
    fn bulk_batches_land_in_one_pack_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(d.path()).unwrap();
        let files: Vec<(String, String)> = (0..600)
            .map(|i| {
                (
                    format!("v1/configmaps/ns{}/n{i}.yaml", i % 7),
                    format!("i: {i}\n"),
                )
            })
            .collect();
        let writes: Vec<(&str, Option<&str>)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), Some(c.as_str())))
            .collect();
        let head = write_commits(&repo, None, &[planned("a", &writes)]).unwrap();
        let loose = std::fs::read_dir(d.path().join("objects"))
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.len() == 2 && n != "info"
            });
        assert_eq!(loose.count(), 0, "no loose objects");
        // The same handle goes on writing to disk afterwards: the next batch is persisted.
        let next = write_commits(
            &repo,
            Some(head),
            &[planned("b", &[("small.yaml", Some("s\n"))])],
        )
        .unwrap();
        let repo = Repository::open_bare(d.path()).unwrap();
        assert!(
            repo.find_commit(next).is_ok(),
            "a later commit survives its handle"
        );
        let tree = repo.find_commit(head).unwrap().tree().unwrap();
        assert_eq!(tree::list(&repo, &tree, "").unwrap().len(), files.len());
        let blob = tree
            .get_path(std::path::Path::new("v1/configmaps/ns3/n10.yaml"))
            .unwrap()
            .to_object(&repo)
            .unwrap();
        assert_eq!(blob.as_blob().unwrap().content(), b"i: 10\n");
    }

    #[test]
    fn maintenance_merges_packs_and_keeps_every_object() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(d.path()).unwrap();
        let mut head = None;
        for i in 0..PACKS_MAX + 2 {
            let content = format!("{i}\n");
            head = Some(
                write_commits(
                    &repo,
                    head,
                    &[planned("a", &[(&format!("f{}", i % 5), Some(&content))])],
                )
                .unwrap(),
            );
        }
        repo.reference("refs/heads/main", head.unwrap(), true, "t")
            .unwrap();
        let count = || {
            std::fs::read_dir(d.path().join("objects/pack"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "pack")
                .count()
        };
        assert_eq!(count(), PACKS_MAX + 2, "one pack per batch");
        drop(repo);
        assert!(maintain(d.path()).unwrap());
        assert!(
            count() <= PACKS_MAX,
            "the small packs were merged: {}",
            count()
        );
        assert!(
            !maintain(d.path()).unwrap(),
            "nothing to do under the limit"
        );
        let repo = Repository::open_bare(d.path()).unwrap();
        let mut walk = repo.revwalk().unwrap();
        walk.push(head.unwrap()).unwrap();
        assert_eq!(walk.count(), PACKS_MAX + 2, "all history survives");
        let tree = repo.find_commit(head.unwrap()).unwrap().tree().unwrap();
        let f = tree
            .get_path(Path::new(&format!("f{}", (PACKS_MAX + 1) % 5)))
            .unwrap();
        assert_eq!(
            f.to_object(&repo).unwrap().as_blob().unwrap().content(),
            format!("{}\n", PACKS_MAX + 1).as_bytes()
        );
    }

    fn store_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir.join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    fn fsck(dir: &Path) {
        let out = std::process::Command::new("git")
            .args(["fsck", "--strict", "--no-dangling"])
            .env("GIT_DIR", dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git fsck: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A burst of one-file commits to a folder of 3,000 files: each commit rewrites the folder's
    /// tree (about 120 KiB), and the batch holds more than twice the chunk size of objects.
    #[test]
    fn a_burst_to_a_large_folder_is_stored_as_deltas_in_bounded_chunks() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(d.path()).unwrap();
        let seed: Vec<(String, String)> = (0..3_000)
            .map(|i| {
                (
                    format!("apps/cm-{i:04}.yaml"),
                    format!("data:\n  i: \"{i}\"\n"),
                )
            })
            .collect();
        let writes: Vec<(&str, Option<&str>)> = seed
            .iter()
            .map(|(p, c)| (p.as_str(), Some(c.as_str())))
            .collect();
        let root = write_commits(&repo, None, &[planned("seed", &writes)]).unwrap();
        let seeded = store_bytes(d.path());
        let edits: Vec<(String, String)> = (0..300)
            .map(|n| {
                let i = n * 7 % 3_000;
                (
                    format!("apps/cm-{i:04}.yaml"),
                    format!("data:\n  i: \"{i}\"\n  n: \"{n}\"\n"),
                )
            })
            .collect();
        let burst: Vec<PlannedCommit> = edits
            .iter()
            .map(|(p, c)| planned("alice", &[(p.as_str(), Some(c.as_str()))]))
            .collect();
        let chunk_bytes_max = 4 << 20;
        let (head, _) =
            write_commits_chunked(&repo, Some(root), &burst, None, chunk_bytes_max).unwrap();
        let tree_bytes = repo
            .find_commit(head)
            .unwrap()
            .tree()
            .unwrap()
            .get_name("apps")
            .map(|e| repo.odb().unwrap().read_header(e.id()).unwrap().0)
            .unwrap();
        assert!(
            300 * tree_bytes > 2 * chunk_bytes_max,
            "the burst writes more than two chunks"
        );
        let packs = std::fs::read_dir(d.path().join("objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "pack")
            .count();
        assert!(
            packs >= 3,
            "the seed, then the burst in chunks: {packs} packs"
        );
        // Whole, the burst's trees alone would take 300 times the folder's tree.
        let grown = store_bytes(d.path()) - seeded;
        assert!(
            grown < (packs as u64) * tree_bytes as u64 + 300 * 1_000,
            "the burst grew the store by {grown} bytes (a tree is {tree_bytes})"
        );
        drop(repo);
        fsck(d.path());
        let repo = Repository::open_bare(d.path()).unwrap();
        let mut walk = repo.revwalk().unwrap();
        walk.push(head).unwrap();
        assert_eq!(walk.count(), 301);
        let (path, content) = &edits[120];
        let c = repo.find_commit(head).unwrap();
        let mut at = c.clone();
        for _ in 0..(299 - 120) {
            at = at.parent(0).unwrap();
        }
        let blob = at.tree().unwrap().get_path(Path::new(path)).unwrap();
        assert_eq!(
            blob.to_object(&repo).unwrap().as_blob().unwrap().content(),
            content.as_bytes(),
            "an old version reads back through its deltas"
        );
        drop((blob, at, c));
        // Merging the packs keeps every object, still as deltas.
        for _ in 0..PACKS_MAX {
            let h = repo.head().ok().and_then(|h| h.target()).unwrap_or(head);
            let next = write_commits(
                &repo,
                Some(h),
                &[planned("b", &[("x.yaml", Some(&format!("{h}")))])],
            )
            .unwrap();
            repo.reference("refs/heads/main", next, true, "t").unwrap();
            repo.set_head("refs/heads/main").unwrap();
        }
        drop(repo);
        let before = store_bytes(d.path());
        assert!(maintain(d.path()).unwrap());
        assert!(
            store_bytes(d.path()) <= before + 4_096,
            "a merge does not inflate the store"
        );
        fsck(d.path());
    }

    #[test]
    fn identities_git_cannot_store_are_cleaned() {
        let s = signature(
            &Identity {
                name: "Eve <evil>\n".into(),
                email: "e@x".into(),
            },
            -1,
        )
        .unwrap();
        assert_eq!(s.name(), Some("Eve -evil--"));
        assert_eq!(s.when().seconds(), -1);
    }
}
