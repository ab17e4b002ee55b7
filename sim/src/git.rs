//! An in-memory git remote: a commit graph per repository, branch heads, and fast-forward-only
//! pushes (compare-and-swap on the head), as a real server with `receive.denyNonFastForwards` holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use gitops_reverser_core::git_blob_id;
use gitops_reverser_core::io::{CommitId, Identity, PlannedCommit};
use gitops_reverser_core::seal;
use gitops_reverser_core::OP_TRAILER;

/// A tree: path → bytes.
pub type Tree = BTreeMap<String, Arc<[u8]>>;

/// One commit.
#[derive(Clone, Debug)]
pub struct Commit {
    /// Its parent (`None` for a root commit).
    pub parent: Option<CommitId>,
    /// The full tree after it.
    pub tree: Arc<Tree>,
    /// Author.
    pub author: Identity,
    /// Full message.
    pub message: String,
    /// Written by someone other than the operator.
    pub outside: bool,
}

/// Why a push was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushError {
    /// The head moved: not a fast-forward.
    NotFastForward(Option<CommitId>),
}

/// Every repository the world has, by URL.
#[derive(Default)]
pub struct Remotes {
    commits: BTreeMap<CommitId, Commit>,
    heads: BTreeMap<(String, String), CommitId>,
    /// Every head each branch ever had, in order.
    pub head_log: BTreeMap<(String, String), Vec<CommitId>>,
    next: u64,
    /// Sealed files written: each write's nonce ([`crate::sealing`]).
    sealed_writes: u64,
}

static EMPTY: std::sync::OnceLock<Arc<Tree>> = std::sync::OnceLock::new();

impl Remotes {
    /// The branch head.
    pub fn head(&self, url: &str, branch: &str) -> Option<CommitId> {
        self.heads.get(&(url.into(), branch.into())).cloned()
    }

    /// A commit.
    pub fn commit(&self, id: &str) -> &Commit {
        &self.commits[id]
    }

    /// The tree at the branch head (empty when the branch does not exist).
    pub fn tree(&self, url: &str, branch: &str) -> Arc<Tree> {
        match self.head(url, branch) {
            Some(h) => self.commits[&h].tree.clone(),
            None => EMPTY.get_or_init(|| Arc::new(Tree::new())).clone(),
        }
    }

    /// Files under `folder` at the head, with blob ids; with `sealing`, a sealed file's listed id
    /// in place of its blob id, as the runtime's executor reports it.
    pub fn paths(
        &self,
        url: &str,
        branch: &str,
        folder: &str,
        sealing: bool,
    ) -> Vec<(String, [u8; 20])> {
        let prefix = format!("{folder}/");
        self.tree(url, branch)
            .iter()
            .filter(|(p, _)| folder.is_empty() || p.starts_with(&prefix))
            .map(|(p, b)| {
                let listed = sealing.then(|| seal::listed_id(b)).flatten();
                (p.clone(), listed.unwrap_or_else(|| git_blob_id(b)))
            })
            .collect()
    }

    /// Pushes `commits` on `expected`; returns the new head, or why not. `on_commit` sees each
    /// commit's tree before and after (the checkers' hook).
    pub fn push(
        &mut self,
        url: &str,
        branch: &str,
        expected: Option<&CommitId>,
        commits: &[PlannedCommit],
        mut on_commit: impl FnMut(&PlannedCommit, &Tree, &Tree),
    ) -> Result<CommitId, PushError> {
        let head = self.head(url, branch);
        if head.as_ref() != expected {
            return Err(PushError::NotFastForward(head));
        }
        let mut parent = head;
        let mut tree = self.tree(url, branch);
        for c in commits {
            let mut next: Tree = (*tree).clone();
            for (path, bytes) in &c.writes {
                match bytes {
                    Some(b) => {
                        let file = match b.sealed() {
                            Some(s) => {
                                self.sealed_writes += 1;
                                crate::sealing::seal(s, self.sealed_writes)
                            }
                            None => b.shared(),
                        };
                        next.insert(path.clone(), file)
                    }
                    None => next.remove(path),
                };
            }
            on_commit(c, &tree, &next);
            tree = Arc::new(next);
            let id = self.add(Commit {
                parent: parent.clone(),
                tree: tree.clone(),
                author: c.author.clone(),
                message: c.message.clone(),
                outside: false,
            });
            parent = Some(id);
        }
        let new = parent.expect("at least one commit");
        self.set_head(url, branch, new.clone());
        Ok(new)
    }

    /// An outside writer's commit on top of the head: `edit` changes the tree.
    pub fn outside_commit(&mut self, url: &str, branch: &str, edit: impl FnOnce(&mut Tree)) {
        let parent = self.head(url, branch);
        let mut tree = (*self.tree(url, branch)).clone();
        edit(&mut tree);
        let id = self.add(Commit {
            parent,
            tree: Arc::new(tree),
            author: Identity {
                name: "someone-else".into(),
                email: "someone@else".into(),
            },
            message: "edit by hand\n".into(),
            outside: true,
        });
        self.set_head(url, branch, id);
    }

    /// Whether a commit carrying `op_tag` is between `since` (exclusive) and the head.
    pub fn landed(&self, url: &str, branch: &str, since: Option<&CommitId>, op_tag: &str) -> bool {
        let trailer = format!("{OP_TRAILER}: {op_tag}");
        let mut cur = self.head(url, branch);
        while let Some(id) = cur {
            if Some(&id) == since {
                return false;
            }
            let c = &self.commits[&id];
            if c.message.lines().any(|l| l == trailer) {
                return true;
            }
            cur = c.parent.clone();
        }
        false
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        let mut cur = Some(descendant.to_string());
        while let Some(id) = cur {
            if id == ancestor {
                return true;
            }
            cur = self.commits[&id].parent.clone();
        }
        false
    }

    /// Every branch with a head.
    pub fn branches(&self) -> Vec<(String, String)> {
        self.heads.keys().cloned().collect()
    }

    /// Commits reachable from the branch head, newest first.
    pub fn log(&self, url: &str, branch: &str) -> Vec<&Commit> {
        let mut out = Vec::new();
        let mut cur = self.head(url, branch);
        while let Some(id) = cur {
            let c = &self.commits[&id];
            out.push(c);
            cur = c.parent.clone();
        }
        out
    }

    fn add(&mut self, c: Commit) -> CommitId {
        self.next += 1;
        let id = format!("{:040x}", self.next);
        self.commits.insert(id.clone(), c);
        id
    }

    fn set_head(&mut self, url: &str, branch: &str, id: CommitId) {
        let key = (url.to_string(), branch.to_string());
        self.head_log
            .entry(key.clone())
            .or_default()
            .push(id.clone());
        self.heads.insert(key, id);
    }
}
