//! The git remotes: the core's ops executed against the in-memory model (with the faults the
//! swarm draws), pushes checked as they land, and writers outside the operator.

use super::*;

impl World {
    /// Someone else pushes to one of the operator's branches: notes, edits of the operator's
    /// files, deletions of them, stray files in the operator's layout.
    pub(super) fn outside_write(&mut self, target: Option<(String, String)>) {
        let (url, branch) = match target {
            Some(t) => t,
            None => {
                let all = self.topo.branches();
                let (_, url, branch) = all[self.rng.git.gen_range(0..all.len())].clone();
                (url.to_string(), branch.to_string())
            }
        };
        let tree = self.remotes.tree(&url, &branch);
        let ours: Vec<String> = tree
            .keys()
            .filter(|p| p.ends_with(".yaml"))
            .cloned()
            .collect();
        let what = self.rng.git.gen_range(0..4);
        let n = self.rng.git.gen_range(0..1000);
        let folder = self
            .topo
            .rules
            .iter()
            .find(|r| self.topo.repos[r.repo].url == url && r.branch == branch)
            .map_or("", |r| r.folder);
        let pick = (!ours.is_empty()).then(|| ours[n % ours.len()].clone());
        self.remotes
            .outside_commit(&url, &branch, |t| match (what, pick) {
                (1, Some(p)) => {
                    let mut b = t[&p].to_vec();
                    b.extend_from_slice(b"# edited by hand\n");
                    t.insert(p, b.into());
                }
                (2, Some(p)) => {
                    t.remove(&p);
                }
                (3, _) => {
                    let base = if folder.is_empty() {
                        String::new()
                    } else {
                        format!("{folder}/")
                    };
                    t.insert(
                        format!("{base}v1/configmaps/team-a/stray-{n}.yaml"),
                        b"kind: ConfigMap\n".to_vec().into(),
                    );
                }
                _ => {
                    t.insert(
                        format!("notes/{n}.md"),
                        format!("note {n}\n").into_bytes().into(),
                    );
                }
            });
    }

    pub(super) fn apply_push(
        &mut self,
        op: &GitOp,
        expected: Option<&String>,
        commits: &[gitops_reverser_core::io::PlannedCommit],
        planned_ms: u64,
    ) -> Result<String, PushError> {
        let World {
            remotes,
            checkers,
            topo,
            cluster,
            commits: count,
            pushes,
            wall_offset_max_ms,
            ..
        } = self;
        let wall_offset_max_ms = *wall_offset_max_ms;
        *pushes += 1;
        let push = *pushes;
        remotes.push(
            &op.repo_url,
            &op.branch,
            expected,
            commits,
            |c, before, after| {
                *count += 1;
                // When the core saw the change, at the earliest (pushes are bounded, so a commit
                // may wait behind others long after it was seen).
                let seen_ms = c.author_time_ms - WALL_EPOCH_MS - wall_offset_max_ms;
                let seen_ms = u64::try_from(seen_ms).unwrap_or(0).min(planned_ms);
                let landed = Landed {
                    url: &op.repo_url,
                    branch: &op.branch,
                    push,
                    seen_ms,
                    planned_ms,
                    commit: c,
                    before,
                    after,
                };
                checkers.on_commit(&landed, &Scene { topo, cluster });
            },
        )
    }

    pub(super) fn git_done(&mut self, op_id: u64, generation: u64) {
        if generation != self.generation {
            return;
        }
        let Some(f) = self.ops.remove(&op_id) else {
            return;
        };
        self.busy.remove(&(f.op.repo.clone(), f.op.branch.clone()));
        let op = f.op;
        let (url, branch) = (op.repo_url.clone(), op.branch.clone());
        let failed = |what: &str| GitResult::Failed {
            retryable: true,
            reason: format!("{what}: connection reset by peer"),
            cause: "RemoteUnreachable".into(),
        };
        let result = match &op.kind {
            GitOpKind::ReadPaths { folder } => {
                if self.inject(Fault::GitTransient) {
                    failed("fetch")
                } else {
                    GitResult::Paths {
                        head: self.remotes.head(&url, &branch),
                        entries: self
                            .remotes
                            .paths(&url, &branch, folder, op.sealing.is_some()),
                    }
                }
            }
            GitOpKind::Push {
                expected_head,
                commits,
            } => {
                if self.inject(Fault::OutsideWriter) {
                    // Another writer pushed just before us.
                    self.outside_write(Some((url.clone(), branch.clone())));
                }
                // What the delivery checker is told when the push does not land.
                let refused = Event::Refused {
                    url: &url,
                    branch: &branch,
                    commits,
                    planned_ms: f.planned_ms,
                    now_ms: self.now,
                };
                if self.inject(Fault::GitTransient) {
                    self.checkers.on_event(refused);
                    failed("push")
                } else if self.inject(Fault::PushUnknown) {
                    if self.rng.faults.gen_bool(0.5) {
                        let _ = self.apply_push(&op, expected_head.as_ref(), commits, f.planned_ms);
                    } else {
                        self.checkers.on_event(refused);
                    }
                    GitResult::Unknown
                } else {
                    match self.apply_push(&op, expected_head.as_ref(), commits, f.planned_ms) {
                        Ok(head) => {
                            self.stale_heads.remove(&(url.clone(), branch.clone()));
                            GitResult::Pushed {
                                head,
                                blobs: blob_ids(commits),
                            }
                        }
                        Err(PushError::NotFastForward(remote_head)) => {
                            self.stale_heads
                                .insert((url.clone(), branch.clone()), expected_head.clone());
                            GitResult::Conflict { remote_head }
                        }
                    }
                }
            }
            GitOpKind::Verify {
                expected_head,
                op_tag,
            } => {
                if self.inject(Fault::GitTransient) {
                    failed("fetch")
                } else {
                    GitResult::Verified {
                        head: self.remotes.head(&url, &branch),
                        landed: self
                            .remotes
                            .landed(&url, &branch, expected_head.as_ref(), op_tag),
                    }
                }
            }
        };
        self.feed(Input::GitDone(op_id, result));
    }

    // ---- phases -------------------------------------------------------------------------------
}
