//! Branches: the git ops each branch runs (read, push, verify), their results, and the
//! listings that find orphans.

use super::*;

impl Core {
    pub(super) fn drive(&mut self, now: Now) {
        self.attributor.sweep(now.mono_ms);
        for key in std::mem::take(&mut self.wake) {
            if self.branches.contains_key(&key) {
                self.schedule(now, &key);
            }
        }
    }

    pub(super) fn new_op(&mut self, key: &BranchKey, kind: GitOpKind) -> u64 {
        let op_id = self.next_op_id;
        self.next_op_id += 1;
        self.ops.insert(op_id, key.clone());
        let b = &self.branches[key];
        self.outputs.push_back(Output::Git(GitOp {
            op_id,
            repo: key.0.clone(),
            repo_url: b.settings.repo_url.clone(),
            secret_name: b.settings.secret_name.clone(),
            sealing: b
                .settings
                .sealing
                .clone()
                .filter(|_| b.settings.sealing_problem.is_none()),
            signing_secret: b.settings.signing_secret.clone(),
            branch: key.1.clone(),
            kind,
        }));
        op_id
    }

    /// While its folders' lists run, a branch holds every listed object's file: its folders are
    /// read when the lists end, and nothing is pushed before. Once that is more than one push
    /// carries (a large seed), the unread folders are read at once, so the listed files go out in
    /// bounded parts as they come; orphans still wait for the lists' end, which reads the folders
    /// again (`apply_listing` judges orphans only when no awaited list is running). Small listings
    /// keep the one read at the end.
    fn read_early_if_over_a_push(&mut self, key: &BranchKey) {
        let b = self.branches.get_mut(key).expect("branch");
        if b.op.is_some() || !b.queue.over_a_push() {
            return;
        }
        for d in b.dests.values_mut().filter(|d| !d.listed) {
            d.want_read = true;
        }
    }

    pub(super) fn schedule(&mut self, now: Now, key: &BranchKey) {
        self.read_early_if_over_a_push(key);
        let Some((due, next)) = self.branches[key].poll_op(self.flushing) else {
            return;
        };
        if now.mono_ms < due.at_ms {
            return;
        }
        match next {
            NextOp::Verify => self.start_verify(key),
            NextOp::Read(dest) => self.start_read(key, dest),
            NextOp::Push => self.start_push(now, key),
        }
    }

    pub(super) fn start_verify(&mut self, key: &BranchKey) {
        let b = self.branches.get_mut(key).expect("branch");
        let (tag, expected_head) = b.unverified.take().expect("a verify is due");
        let kind = GitOpKind::Verify {
            expected_head: expected_head.clone(),
            op_tag: tag.clone(),
        };
        let op_id = self.new_op(key, kind);
        self.branches.get_mut(key).expect("branch").op = Some(OpInFlight::Verify {
            op_id,
            tag,
            expected_head,
        });
    }

    pub(super) fn start_read(&mut self, key: &BranchKey, dest: Arc<Destination>) {
        let folder = dest.base_folder.clone();
        let op_id = self.new_op(key, GitOpKind::ReadPaths { folder });
        let b = self.branches.get_mut(key).expect("branch");
        b.dests.get_mut(&dest).expect("dest").want_read = false;
        b.op = Some(OpInFlight::Read { op_id, dest });
    }

    pub(super) fn start_push(&mut self, now: Now, key: &BranchKey) {
        let op_id = self.next_op_id;
        let tag = format!("{:x}-{op_id}", self.config.instance_id);
        let b = self.branches.get_mut(key).expect("branch");
        let commits = gitplan::plan(
            b.queue.start_push(),
            &self.config.identities,
            now.wall_ms,
            &tag,
        );
        let expected_head = b.head.clone();
        // Settled once their commits go out, not once they land: after a crash nobody knows
        // whether a push in flight landed, and a record handed again would name its user a
        // second time where the file then differs for another reason (a writer outside the
        // operator). A push that fails and is cut by a crash costs those changes their
        // authors instead: never a wrong one.
        self.settled_records
            .extend(b.queue.in_flight().iter().filter_map(|c| c.record));
        b.on_push_started();
        let issued = self.new_op(
            key,
            GitOpKind::Push {
                expected_head: expected_head.clone(),
                commits,
            },
        );
        invariant_eq!(issued, op_id);
        self.branches.get_mut(key).expect("branch").op = Some(OpInFlight::Push {
            op_id,
            tag,
            expected_head,
        });
    }

    /// Routes a git op's result to its branch, then does what the branch asks of the core.
    pub(super) fn handle_git(&mut self, now: Now, op_id: u64, result: GitResult) {
        let Some(key) = self.ops.remove(&op_id) else {
            return;
        };
        self.wake.insert(key.clone());
        let Some(b) = self.branches.get_mut(&key) else {
            return;
        };
        if b.op.as_ref().map(OpInFlight::op_id) != Some(op_id) {
            return;
        }
        if matches!(result, GitResult::Failed { .. }) {
            self.counters.git_failures_total += 1;
        }
        match b.handle_git(now.mono_ms, &key.1, result, &self.gvr_ids) {
            GitEffect::Listing { dest, entries } => self.apply_listing(now, &key, &dest, entries),
            GitEffect::Landed {
                head,
                blobs,
                reread,
            } => {
                self.landed(&key, head, blobs);
                if let (true, Some(b)) = (reread, self.branches.get_mut(&key)) {
                    b.reread_folders();
                }
            }
            GitEffect::Conflict => self.counters.rebase_retries_total += 1,
            GitEffect::Failed => self.refresh_statuses(),
            GitEffect::Nothing => {}
        }
    }

    /// A push landed. `blobs` are the executor's blob ids in planned order (see [`gitplan::plan`]:
    /// each commit's writes sorted by path); where it gave none (a push verified after its result
    /// was lost), the core renders the file to learn it.
    pub(super) fn landed(&mut self, key: &BranchKey, head: CommitId, blobs: Blobs) {
        // The folder each pushed file is in: the branch's destination whose layout the path fits.
        let folders: Vec<(String, u32)> = self.branches[key]
            .dests
            .iter()
            .map(|(dest, d)| (dest.base_folder.clone(), d.id))
            .collect();
        let folder_of = |path: &str| {
            folders
                .iter()
                .filter(|(base, _)| layout_segments(base, path).is_some())
                .max_by_key(|(base, _)| base.len())
                .map(|(_, id)| *id)
        };
        let b = self.branches.get_mut(key).expect("branch");
        let commits = b.queue.push_landed();
        for (i, c) in commits.iter().enumerate() {
            let given = blobs.get(i).filter(|g| g.len() == c.writes.len());
            for (k, w) in gitplan::in_planned_order(&c.writes).enumerate() {
                match &w.content {
                    Some(ct) => {
                        self.counters.commit_bytes_total += ct.bytes as u64;
                        let blob = given
                            .and_then(|g| g[k])
                            .unwrap_or_else(|| ct.file.blob_id());
                        let held = Held {
                            content: Some(ct.hash),
                            blob,
                        };
                        b.paths.set_held(w.path_key, Some(held));
                        if let Some(f) = folder_of(&w.path) {
                            b.paths.set_folder(w.path_key, f);
                        }
                    }
                    None => {
                        self.counters.files_deleted_total += 1;
                        b.paths.set_held(w.path_key, None);
                    }
                }
            }
        }
        self.counters.commits_total += commits.len() as u64;
        if b.on_landed(head) {
            self.refresh_statuses();
        }
    }

    /// Applies a listing of `dest`'s folder: learn what the repo holds, queue deletes of orphans, drop
    /// pending writes the repo already has, and relist if the repo diverged from what we believed.
    pub(super) fn apply_listing(
        &mut self,
        now: Now,
        key: &BranchKey,
        dest: &Destination,
        entries: Vec<(String, [u8; 20])>,
    ) {
        let Some(b) = self.branches.get_mut(key) else {
            return;
        };
        let Some(d) = b.dests.get_mut(dest) else {
            return;
        };
        // A stream feeding this folder began a relist after the read was sent (or one was asked
        // for): what the core knows of the folder's members is incomplete, so nothing is an
        // orphan yet. What the repo holds is still learnt; the relist's end reads again.
        let members_complete = d.awaiting.is_empty();
        // Orphans only among the types whose lists it waited for (those served): see
        // `reconfigure`. Their files at another version are orphans too (`layout_any_version`).
        let listed_types: BTreeSet<u16> = d.gvrs.intersection(&d.gate).copied().collect();
        let (exact, moved) = (
            layout_of(&self.gvr_ids, &d.gvrs, &dest.base_folder),
            layout_any_version(&self.gvr_ids, &listed_types, &dest.base_folder),
        );
        let ours = |p: &str| exact(p) || moved(p);
        let listed_exact = layout_of(&self.gvr_ids, &listed_types, &dest.base_folder);
        let scanned = |p: &str| listed_exact(p) || moved(p);
        let mut listed: HashMap<u128, [u8; 20], KeyHash> = HashMap::default();
        let mut orphans = Vec::new();
        for (path, blob) in entries.into_iter().filter(|(p, _)| ours(p)) {
            let pk = key128(&path);
            listed.insert(pk, blob);
            let known = b
                .paths
                .held(pk)
                .filter(|h| h.blob == blob)
                .and_then(|h| h.content);
            let held = Held {
                content: known,
                blob,
            };
            b.paths.set_held(pk, Some(held));
            b.paths.set_folder(pk, d.id);
            // Not a live object's file, and no delete already pending for it.
            if members_complete
                && scanned(&path)
                && !b.paths.is_member(pk, d.id)
                && !matches!(b.queue.latest(pk), Some(None))
            {
                orphans.push(path);
            }
        }
        // Writes still pending for objects a relist no longer shows (deleted in the gap): their
        // files would be created and never removed.
        let mut gone: Vec<String> = b
            .queue
            .writes()
            .filter(|w| {
                members_complete
                    && !listed.contains_key(&w.path_key)
                    && !b.paths.is_member(w.path_key, d.id)
                    && matches!(b.queue.latest(w.path_key), Some(Some(_)))
                    && scanned(&w.path)
            })
            .map(|w| w.path.to_string())
            .collect();
        gone.sort();
        gone.dedup();
        orphans.extend(gone);
        // Hash-map iteration here only removes entries or answers "any": order reaches no output.
        let unlisted: Vec<u128> = b
            .paths
            .members_of(d.id)
            .filter(|pk| !listed.contains_key(pk))
            .collect();
        for pk in unlisted {
            b.paths.set_held(pk, None);
        }
        // And every other file this folder showed before (seed 920001054: an object's file, its
        // object gone unseen and forgotten by a relist, then removed by an outside writer; its
        // identical re-creation looked already written, and the next delete was an empty commit).
        b.paths.forget_unlisted(d.id, |pk| listed.contains_key(&pk));
        d.listed = true;
        // Deletes go in before the redundancy pass: a delete for a write pending in the open
        // resync commit replaces it there, and if the listing lacks the file too, the pass drops
        // the delete (seed 25571: a re-created object listed after a restart, deleted again before
        // its file was pushed, left a `[RESYNC]` deleting a file that was never there).
        let (now, wall) = (now.mono_ms, now.wall_ms);
        self.counters.orphans_found_total += orphans.len() as u64;
        for path in orphans {
            let path_key = key128(&path);
            b.queue.push_resync(
                now,
                wall,
                &dest.base_folder,
                PendingWrite {
                    path: path.into(),
                    path_key,
                    content: None,
                },
            );
        }
        let paths = &mut b.paths;
        b.queue.drop_redundant(|w| match &w.content {
            Some(c) => match listed.get(&w.path_key) {
                Some(blob) if c.file.blob_id() == *blob => {
                    let held = Held {
                        content: Some(c.hash),
                        blob: *blob,
                    };
                    paths.set_held(w.path_key, Some(held));
                    true
                }
                _ => false,
            },
            // A delete under this folder is redundant when the listing lacks the file; elsewhere,
            // when we believe the file is not there.
            None if ours(&w.path) => {
                let absent = !listed.contains_key(&w.path_key);
                if absent {
                    paths.set_held(w.path_key, None);
                }
                absent
            }
            None => paths.held(w.path_key).is_none(),
        });
        // A member whose file differs from what we pushed (an outside edit) or is missing, with
        // nothing pending to fix it: relist so its content is written again.
        let diverged = b.paths.members_of(d.id).any(|pk| {
            b.queue.latest(pk).is_none() && b.paths.held(pk).is_none_or(|h| h.content.is_none())
        });
        if diverged {
            let gvrs: Vec<Gvr> = self
                .gvr_ids
                .iter()
                .filter(|(_, id)| d.gvrs.contains(id))
                .map(|(g, _)| g.clone())
                .collect();
            self.resync(gvrs);
        }
    }
}
