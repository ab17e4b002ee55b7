//! Writing planned commits into a repository: blobs, incremental trees, commits with the planned
//! identities and times. Large batches (a seed) go into one pack instead of one file per object.

use git2::{Oid, Repository};
use gitops_reverser_core::io::{Identity, PlannedCommit};

use super::tree;

/// Batches writing at least this many files build their objects in memory and store them as one
/// pack, as `git fast-import` does, instead of one compressed file per object.
pub const BULK_WRITES_MIN: usize = 512;

/// Why commits could not be written.
#[derive(Debug)]
pub enum CommitError {
    /// An identity git cannot store.
    Identity(String),
    /// The repository failed (disk, corruption).
    Git(git2::Error),
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
    let writes: usize = commits.iter().map(|c| c.writes.len()).sum();
    let odb = repo.odb()?;
    let mempack = if writes >= BULK_WRITES_MIN {
        Some(odb.add_new_mempack_backend(1_000)?)
    } else {
        None
    };
    let mut head = parent;
    let mut tree_id = match parent {
        Some(p) => Some(repo.find_commit(p)?.tree_id()),
        None => None,
    };
    for c in commits {
        let mut changes = Vec::with_capacity(c.writes.len());
        for (path, bytes) in &c.writes {
            let blob = match bytes {
                Some(b) => Some(odb.write(git2::ObjectType::Blob, b)?),
                None => None,
            };
            changes.push((path.as_str(), blob));
        }
        changes.sort_by(|a, b| a.0.cmp(b.0));
        // The same path twice in one commit: the later write wins.
        changes.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        let base = tree_id.map(|t| repo.find_tree(t)).transpose()?;
        let new_tree = tree::apply(repo, base.as_ref(), &changes)?;
        if head.is_some() && Some(new_tree) == tree_id {
            continue;
        }
        let tree = repo.find_tree(new_tree)?;
        let parents = head.map(|h| repo.find_commit(h)).transpose()?;
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let author = signature(&c.author, c.author_time_ms)?;
        let committer = signature(&c.committer, c.commit_time_ms)?;
        head = Some(repo.commit(None, &author, &committer, &c.message, &tree, &parents)?);
        tree_id = Some(new_tree);
    }
    if let Some(mp) = mempack {
        let mut buf = git2::Buf::new();
        mp.dump(repo, &mut buf)?;
        let mut writer = odb.packwriter()?;
        std::io::Write::write_all(&mut writer, &buf)
            .map_err(|e| git2::Error::from_str(&format!("writing a pack: {e}")))?;
        writer.commit()?;
        mp.reset()?;
    }
    head.ok_or_else(|| CommitError::Identity("a push without commits".into()))
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
                .map(|(p, c)| (p.to_string(), c.map(|c| Arc::from(c.as_bytes()))))
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
        let files: Vec<(String, String)> = (0..BULK_WRITES_MIN + 10)
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
        let repo = Repository::open_bare(d.path()).unwrap();
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
