//! A small harness that plays the runtime's part against the core: it answers git ops from an
//! in-memory branch so tests can read the commits the core planned.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use gitops_reverser_core::config::{GitRepoConfigSpec, NamespacedName, WatchRuleSpec};
use gitops_reverser_core::io::{
    FileBody, GitOp, GitOpKind, GitResult, Input, Output, PlannedCommit, WatchEvent,
};
use gitops_reverser_core::seal;
use gitops_reverser_core::Gvr;
use gitops_reverser_core::Now;
use gitops_reverser_core::{Core, CoreConfig};

pub fn gvr(g: &str, v: &str, r: &str) -> Gvr {
    Gvr::new(g, v, r)
}

pub struct Harness {
    pub core: Core,
    pub now_ms: u64,
    pub outputs: Vec<Output>,
    /// The branch as the harness's remote holds it: path -> bytes.
    pub files: BTreeMap<String, Arc<[u8]>>,
    pub commits: Vec<PlannedCommit>,
    pub head: Option<String>,
    pub gvrs: Vec<Gvr>,
    /// Encrypts sealed files as an executor would, each write new.
    pub sealer: Sealer,
}

/// A stand-in cipher for sealed files: reversible, and new bytes on every write (as a real
/// encryption is), so that a rewrite of an unchanged Secret shows as a changed file.
#[derive(Default)]
pub struct Sealer {
    writes: u64,
}

impl Sealer {
    /// A file's bytes as the harness's remote stores them.
    pub fn write(&mut self, body: &FileBody) -> Arc<[u8]> {
        match body.sealed() {
            None => body.shared(),
            Some(s) => {
                self.writes += 1;
                let mut c = StandIn(self.writes);
                s.seal("2023-11-14T22:13:20Z", &mut c).unwrap().into()
            }
        }
    }
}

struct StandIn(u64);

impl seal::SopsCipher for StandIn {
    fn encrypt(&mut self, plaintext: &[u8], aad: &str, kind: &str) -> Result<String, String> {
        let hex: String = plaintext
            .iter()
            .map(|b| format!("{:02x}", b ^ 0x5a))
            .collect();
        Ok(format!(
            "ENC[STANDIN,data:{hex},iv:{},aad:{aad},type:{kind}]",
            self.0
        ))
    }

    fn wrapped_keys(&mut self, recipients: &[String]) -> Result<Vec<(String, String)>, String> {
        Ok(recipients
            .iter()
            .map(|r| (r.clone(), format!("key-{}", self.0)))
            .collect())
    }
}

/// The plaintext of a stand-in sealed value (`ENC[STANDIN,data:…]`).
pub fn unseal_value(text: &str) -> Option<String> {
    let hex = text.strip_prefix("ENC[STANDIN,data:")?.split(',').next()?;
    let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
        .map(|i| {
            u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .ok()
                .map(|b| b ^ 0x5a)
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

pub fn repo_name() -> NamespacedName {
    NamespacedName::new("team-a", "my-repo")
}

impl Harness {
    pub fn new() -> Self {
        Self {
            core: Core::new(CoreConfig::default()),
            now_ms: 1_000,
            outputs: Vec::new(),
            files: BTreeMap::new(),
            commits: Vec::new(),
            head: None,
            gvrs: Vec::new(),
            sealer: Sealer::default(),
        }
    }

    /// A repo `team-a/my-repo` (branch main, maxCommits 20, interval 1m) and a WatchRule in team-a.
    pub fn with_rule(resources: &[(&str, &str, &str)], folder: &str) -> Self {
        Self::with_config(CoreConfig::default(), resources, folder)
    }

    /// [`Harness::with_rule`] with a core built from `config`.
    pub fn with_config(config: CoreConfig, resources: &[(&str, &str, &str)], folder: &str) -> Self {
        let repo = serde_json::json!({
            "repoURL": "https://git.example/org/repo", "allowedBranches": ["main"]});
        Self::with_repo(config, repo, resources, folder)
    }

    /// [`Harness::with_config`] with the GitRepoConfig's spec given.
    pub fn with_repo(
        config: CoreConfig,
        repo: serde_json::Value,
        resources: &[(&str, &str, &str)],
        folder: &str,
    ) -> Self {
        let mut h = Self::new();
        h.core = Core::new(config);
        let repo: GitRepoConfigSpec = serde_json::from_value(repo).unwrap();
        h.input(Input::GitRepoConfig(repo_name(), Some(repo)));
        let res: Vec<_> = resources
            .iter()
            .map(|(g, v, r)| serde_json::json!({"group": g, "version": v, "resource": r}))
            .collect();
        let rule: WatchRuleSpec = serde_json::from_value(serde_json::json!({
            "gitRepoConfigRef": "my-repo", "baseFolder": folder, "resources": res}))
        .unwrap();
        h.input(Input::WatchRule(
            NamespacedName::new("team-a", "rule"),
            Some(rule),
        ));
        h.gvrs = resources.iter().map(|(g, v, r)| gvr(g, v, r)).collect();
        h
    }

    pub fn now(&self) -> Now {
        Now {
            mono_ms: self.now_ms,
            wall_ms: 1_700_000_000_000 + self.now_ms as i64,
        }
    }

    pub fn input(&mut self, input: Input) {
        let now = self.now();
        self.core.handle(now, input);
        while let Some(o) = self.core.poll_output() {
            self.outputs.push(o);
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        self.input(Input::Tick);
    }

    /// Answers op `op_id` with a retryable failure.
    pub fn fail(&mut self, op_id: u64, reason: &str) {
        self.input(Input::GitDone(
            op_id,
            GitResult::Failed {
                retryable: true,
                reason: reason.into(),
                cause: String::new(),
            },
        ));
    }

    /// Git ops emitted and not yet answered, removed from `outputs`.
    pub fn take_git_ops(&mut self) -> Vec<GitOp> {
        let mut ops = Vec::new();
        self.outputs.retain(|o| match o {
            Output::Git(op) => {
                ops.push(op.clone());
                false
            }
            _ => true,
        });
        ops
    }

    /// Lists every stream once (empty) and answers the folder listing from the harness's files.
    pub fn seed_empty(&mut self) {
        for g in self.gvrs.clone() {
            self.input(Input::Watch(g.clone(), WatchEvent::Init));
            self.input(Input::Watch(g, WatchEvent::InitDone));
        }
        self.answer_all();
    }

    /// Answers every outstanding git op as a well-behaved remote would, until none is left.
    pub fn answer_all(&mut self) -> Vec<PlannedCommit> {
        self.answer_all_per_push().into_iter().flatten().collect()
    }

    /// [`Harness::answer_all`], the commits of each push that landed apart, in order.
    pub fn answer_all_per_push(&mut self) -> Vec<Vec<PlannedCommit>> {
        let mut pushed = Vec::new();
        loop {
            let ops = self.take_git_ops();
            if ops.is_empty() {
                return pushed;
            }
            for op in ops {
                let result = self.apply(&op);
                if let (GitOpKind::Push { commits, .. }, GitResult::Pushed { .. }) =
                    (&op.kind, &result)
                {
                    pushed.push(commits.clone());
                }
                self.input(Input::GitDone(op.op_id, result));
            }
        }
    }

    /// Executes one op against the in-memory branch.
    pub fn apply(&mut self, op: &GitOp) -> GitResult {
        match &op.kind {
            GitOpKind::ReadPaths { folder } => GitResult::Paths {
                head: self.head.clone(),
                entries: self
                    .files
                    .iter()
                    .filter(|(p, _)| folder.is_empty() || p.starts_with(&format!("{folder}/")))
                    .map(|(p, b)| {
                        let id = seal::listed_id(b)
                            .unwrap_or_else(|| gitops_reverser_core::git_blob_id(b));
                        (p.clone(), id)
                    })
                    .collect(),
            },
            GitOpKind::Push {
                expected_head,
                commits,
            } => {
                if *expected_head != self.head {
                    return GitResult::Conflict {
                        remote_head: self.head.clone(),
                    };
                }
                for c in commits {
                    assert!(!c.writes.is_empty(), "no empty commits");
                    for (path, bytes) in &c.writes {
                        match bytes {
                            Some(b) => self.files.insert(path.clone(), self.sealer.write(b)),
                            None => self.files.remove(path),
                        };
                    }
                    self.commits.push(c.clone());
                }
                let head = format!("c{}", self.commits.len());
                self.head = Some(head.clone());
                GitResult::Pushed {
                    head,
                    blobs: gitops_reverser_core::io::blob_ids(commits),
                }
            }
            GitOpKind::Verify { .. } => GitResult::Verified {
                head: self.head.clone(),
                landed: false,
            },
        }
    }

    /// Lets the batch interval pass and answers all ops; returns the commits pushed.
    pub fn flush_and_push(&mut self) -> Vec<PlannedCommit> {
        self.advance(60_000);
        self.answer_all()
    }
}
