//! One branch: its queue, what it holds, its git op in flight, its push health and its timers.
//! `Core` routes git results to it and asks it what it does next and when; what it needs of its
//! destinations (whose folder to read, whether every list has ended) comes in as arguments.

use super::*;

/// What the core is woken for at a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// A push whose result was lost is checked against the remote.
    Verify,
    /// A destination's folder is read (its first listing, or again after others wrote the branch).
    Read,
    /// A push that failed or met a conflict goes again.
    Retry,
    /// The batching triggers: `push.maxCommits` commits pending, or the oldest one has waited
    /// `push.interval`.
    Batch,
    /// Correlation records expire.
    Expiry,
}

/// When the core next needs a tick, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    /// Monotonic ms.
    pub at_ms: u64,
    /// What is due then.
    pub reason: Reason,
}

impl Deadline {
    /// The sooner of two deadlines (the first on a tie).
    pub(crate) fn soonest(self, other: Option<Deadline>) -> Deadline {
        match other {
            Some(o) if o.at_ms < self.at_ms => o,
            _ => self,
        }
    }
}

/// A branch's timers, by name. Each holds a monotonic ms or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// The backoff after a failed op or a run of conflicts: no op goes before it ends.
    Backoff,
}

impl Timer {
    const COUNT: usize = 1;
}

/// The timers of [`Timer`], stored by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TimerTable([Option<u64>; Timer::COUNT]);

impl TimerTable {
    pub(super) fn set(&mut self, timer: Timer, at_ms: u64) {
        self.0[timer as usize] = Some(at_ms);
    }

    pub(super) fn get(&self, timer: Timer) -> Option<u64> {
        self.0[timer as usize]
    }

    /// When the backoff ends; 0 when there is none.
    fn backoff_end_ms(&self) -> u64 {
        self.get(Timer::Backoff).unwrap_or(0)
    }
}

/// How the branch's pushes have fared since the last one landed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct PushHealth {
    pub(super) failures_in_row: u32,
    pub(super) conflicts_in_row: u32,
    /// The last failure's condition reason and message, until a push lands.
    pub(super) last_error: Option<(String, String)>,
}

#[derive(Debug)]
pub(super) struct Branch {
    /// Its GitRepoConfig's settings, shared with the core's entry of it.
    pub(super) settings: Arc<RepoSettings>,
    /// The destinations that write to it, in order, each with its folder's state.
    pub(super) dests: BTreeMap<Arc<Destination>, DestState>,
    pub(super) queue: Queue,
    /// What the branch holds at each path, and which paths are live objects' files.
    pub(super) paths: BranchPaths,
    pub(super) head: Option<CommitId>,
    pub(super) op: Option<OpInFlight>,
    /// A push whose result was lost, to verify before anything else: (tag, expected head).
    pub(super) unverified: Option<Unverified>,
    pub(super) health: PushHealth,
    pub(super) timers: TimerTable,
    /// A failed, conflicting or lost push goes again when the backoff ends, whatever the
    /// batching triggers say.
    pub(super) retry_pending: bool,
}

/// The git op a branch has next (see [`Branch::poll_op`]).
pub(super) enum NextOp {
    Verify,
    Read(Arc<Destination>),
    Push,
}

/// What a git result asks of the core beyond the branch (see [`Branch::handle_git`]).
pub(super) enum GitEffect {
    /// Nothing more.
    Nothing,
    /// Apply the listing of a destination's folder: what the branch holds, orphans.
    Listing {
        dest: Arc<Destination>,
        entries: Vec<(String, [u8; 20])>,
    },
    /// A push landed (`reread`: a verified push, whose head may hold others' commits on top).
    Landed {
        head: CommitId,
        blobs: Blobs,
        reread: bool,
    },
    /// A push met others' commits (counted).
    Conflict,
    /// The op failed: the status says so.
    Failed,
}

impl Branch {
    pub(super) fn new(settings: Arc<RepoSettings>, bounds: PushBounds) -> Self {
        Self {
            settings,
            dests: BTreeMap::new(),
            queue: Queue::new(bounds),
            paths: BranchPaths::default(),
            head: None,
            op: None,
            unverified: None,
            health: PushHealth::default(),
            timers: TimerTable::default(),
            retry_pending: false,
        }
    }

    /// What the branch does next and from when; `None` while it waits for its op in flight, for
    /// its folders' lists ([`Self::gate_open`]), or for something to push. `flushing`: every
    /// pending commit is due at once. This is the branch's whole schedule:
    /// `Core::schedule` acts on it once it is due and `Core::poll_deadline` wakes the core for it,
    /// so the two cannot disagree (bugs 5 and 14 were such disagreements: a branch with work the
    /// deadline did not see).
    pub(super) fn poll_op(&self, flushing: bool) -> Option<(Deadline, NextOp)> {
        if self.op.is_some() {
            return None;
        }
        let backoff_end_ms = self.timers.backoff_end_ms();
        let at = |at_ms, reason| Deadline { at_ms, reason };
        // A push whose result was lost is checked before anything else is planned on the branch.
        if self.unverified.is_some() {
            return Some((at(backoff_end_ms, Reason::Verify), NextOp::Verify));
        }
        // A wanted folder read needs no open gate: the gate opens only when the read succeeds.
        if let Some(dest) = self.wanted_read() {
            return Some((at(backoff_end_ms, Reason::Read), NextOp::Read(dest.clone())));
        }
        if !self.gate_open() {
            return None;
        }
        // A retry goes when its backoff ends, unless nothing is left to push (a re-read found
        // it all there); otherwise the batching triggers decide, never before the backoff ends.
        if self.retry_pending && !self.queue.is_empty() {
            return Some((at(backoff_end_ms, Reason::Retry), NextOp::Push));
        }
        // Flushing, one pending commit is a full batch with no interval to wait.
        let (max_commits, interval_ms) = match flushing {
            true => (1, 0),
            false => (self.settings.max_commits, self.settings.push_interval_ms),
        };
        let due = self.queue.due_at_ms(max_commits, interval_ms)?;
        Some((at(due.max(backoff_end_ms), Reason::Batch), NextOp::Push))
    }

    /// Whether every folder has been read since its lists ended: before, nothing is pushed.
    pub(super) fn gate_open(&self) -> bool {
        self.dests.values().all(|s| s.listed)
    }

    /// The first destination whose folder must be read.
    pub(super) fn wanted_read(&self) -> Option<&Arc<Destination>> {
        self.dests.iter().find(|(_, s)| s.want_read).map(|(d, _)| d)
    }

    /// Marks every listed folder to be read again: what the core believes the branch holds may be
    /// stale, because others wrote it (a conflict, a head that moved past our push).
    pub(super) fn reread_folders(&mut self) {
        for d in self.dests.values_mut().filter(|d| d.listed) {
            d.want_read = true;
        }
    }

    /// Writes that were in flight when their destination was removed come back to the queue after
    /// a failed, conflicting or lost push. As at the removal itself they are dropped: their folder
    /// is no longer kept, and nothing would re-read it to check them against the new head.
    pub(super) fn drop_writes_of_removed_destinations(&mut self, gvr_ids: &BTreeMap<Gvr, u16>) {
        let layouts: Vec<_> = self
            .dests
            .iter()
            .map(|(dest, d)| layout_of(gvr_ids, &d.gvrs, &dest.base_folder))
            .collect();
        self.queue
            .drop_writes(|w| !layouts.iter().any(|ours| ours(&w.path)));
    }

    /// The result of its op in flight (the core has checked it is that op's). What is the
    /// branch's own is done here; what needs the rest of the core comes back as a [`GitEffect`].
    pub(super) fn handle_git(
        &mut self,
        now_ms: u64,
        branch: &str,
        result: GitResult,
        gvr_ids: &BTreeMap<Gvr, u16>,
    ) -> GitEffect {
        let op = self.op.take().expect("an op in flight");
        match (op, result) {
            (OpInFlight::Read { dest, .. }, GitResult::Paths { head, entries }) => {
                if head != self.head {
                    // Others wrote the branch since we last knew it: re-read the other folders
                    // too before planning on it. Also when the branch was absent at the last
                    // read: a split-brain run (a deposed leader's push landing between the new
                    // leader's reads of two folders) planned on a head whose folder it had
                    // read empty, and committed files that were there.
                    for (od, d) in self.dests.iter_mut() {
                        if d.listed && **od != *dest {
                            d.want_read = true;
                        }
                    }
                }
                self.head = head;
                self.health.failures_in_row = 0;
                GitEffect::Listing { dest, entries }
            }
            (OpInFlight::Read { dest, .. }, other) => {
                if let Some(d) = self.dests.get_mut(&dest) {
                    d.want_read = true;
                }
                self.on_failure(now_ms, branch, other);
                GitEffect::Failed
            }
            (
                OpInFlight::Push { .. } | OpInFlight::Verify { .. },
                GitResult::Pushed { head, blobs },
            ) => GitEffect::Landed {
                head,
                blobs,
                reread: false,
            },
            // The head is the branch's now, not our push's: others may have written on top
            // (seed 20283). Read again before planning on it, as after a conflict.
            (
                OpInFlight::Verify { .. },
                GitResult::Verified {
                    head: Some(head),
                    landed: true,
                },
            ) => GitEffect::Landed {
                head,
                blobs: Vec::new(),
                reread: true,
            },
            (OpInFlight::Push { .. }, GitResult::Conflict { remote_head }) => {
                self.head = remote_head;
                // Someone else wrote the branch: what we believe it holds may be stale (files
                // edited or removed), so read every folder again before planning on the new head.
                self.reread_folders();
                self.queue.push_failed(now_ms);
                self.drop_writes_of_removed_destinations(gvr_ids);
                self.on_conflict(now_ms);
                GitEffect::Conflict
            }
            (
                OpInFlight::Push {
                    tag, expected_head, ..
                },
                GitResult::Unknown,
            ) => {
                self.unverified = Some((tag, expected_head));
                GitEffect::Nothing
            }
            (OpInFlight::Verify { expected_head, .. }, GitResult::Verified { head, .. }) => {
                if head != expected_head {
                    // Others wrote meanwhile: read again, as after a conflict.
                    self.reread_folders();
                }
                self.head = head;
                self.queue.push_failed(now_ms);
                self.drop_writes_of_removed_destinations(gvr_ids);
                self.retry_push();
                GitEffect::Nothing
            }
            (
                OpInFlight::Verify {
                    tag, expected_head, ..
                },
                other,
            ) => {
                self.unverified = Some((tag, expected_head));
                self.on_failure(now_ms, branch, other);
                GitEffect::Failed
            }
            (OpInFlight::Push { .. }, other) => {
                self.queue.push_failed(now_ms);
                self.drop_writes_of_removed_destinations(gvr_ids);
                self.retry_push();
                self.on_failure(now_ms, branch, other);
                GitEffect::Failed
            }
        }
    }

    /// Whether its pushes land: no failure, conflict or unverified push since the last one that
    /// landed.
    pub(super) fn pushes_land(&self) -> bool {
        self.health.failures_in_row == 0
            && self.health.conflicts_in_row == 0
            && self.unverified.is_none()
    }

    /// A push is about to go: a retry that was waiting is spent.
    pub(super) fn on_push_started(&mut self) {
        self.retry_pending = false;
    }

    /// A failed or lost push goes again once the backoff ends.
    pub(super) fn retry_push(&mut self) {
        self.retry_pending = true;
    }

    /// A push met others' commits. After a few in a row, the retry waits out a backoff.
    pub(super) fn on_conflict(&mut self, now_ms: u64) {
        self.health.conflicts_in_row += 1;
        let over = self.health.conflicts_in_row;
        if over > gitplan::CONFLICTS_BEFORE_BACKOFF {
            let delay_ms = gitplan::backoff_ms(over - gitplan::CONFLICTS_BEFORE_BACKOFF);
            self.timers.set(Timer::Backoff, now_ms + delay_ms);
        }
        self.retry_push();
    }

    /// An op failed: back off, and keep what went wrong for the status. A failure a user must fix
    /// is retried at the longest interval; nothing is dropped either way.
    pub(super) fn on_failure(&mut self, now_ms: u64, branch: &str, result: GitResult) {
        self.health.failures_in_row += 1;
        let (retryable, reason, cause) = match result {
            GitResult::Failed {
                retryable,
                reason,
                cause,
            } => (retryable, reason, cause),
            other => (
                true,
                format!("unexpected git result {other:?}"),
                String::new(),
            ),
        };
        let delay_ms = if retryable {
            gitplan::backoff_ms(self.health.failures_in_row)
        } else {
            gitplan::BACKOFF_MS_MAX
        };
        self.timers.set(Timer::Backoff, now_ms + delay_ms);
        let cause = if cause.is_empty() {
            "PushFailed".to_string()
        } else {
            cause
        };
        self.health.last_error = Some((cause, format!("branch {branch}: {reason}")));
    }

    /// A push landed: health and timers start over. Returns whether an error was cleared (the
    /// status must say so).
    pub(super) fn on_landed(&mut self, head: CommitId) -> bool {
        self.head = Some(head);
        let had_error = self.health.last_error.is_some();
        self.health = PushHealth::default();
        self.timers = TimerTable::default();
        self.retry_pending = false;
        had_error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(max_commits: u32, push_interval_ms: u64) -> Branch {
        let spec = serde_json::from_value(serde_json::json!({
            "repoURL": "https://git.example/r.git", "allowedBranches": ["main"]}))
        .unwrap();
        let mut settings = config::validate_repo(&spec, false).unwrap();
        settings.max_commits = max_commits;
        settings.push_interval_ms = push_interval_ms;
        Branch::new(Arc::new(settings), PushBounds::default())
    }

    fn failed(retryable: bool) -> GitResult {
        GitResult::Failed {
            retryable,
            reason: "refused".into(),
            cause: "RemoteUnreachable".into(),
        }
    }

    #[test]
    fn an_idle_branch_has_no_deadline_and_a_lost_push_is_verified_first() {
        let mut b = branch(10, 1_000);
        assert!(b.poll_op(false).is_none());
        b.unverified = Some(("t".into(), None));
        let (d, next) = b.poll_op(false).unwrap();
        assert_eq!(d.reason, Reason::Verify);
        assert!(matches!(next, NextOp::Verify));
    }

    #[test]
    fn a_failure_backs_off_keeps_its_cause_and_a_landed_push_clears_both() {
        let mut b = branch(10, 1_000);
        b.on_failure(5_000, "main", failed(true));
        let end = b.timers.get(Timer::Backoff).unwrap();
        assert_eq!(end, 5_000 + gitplan::backoff_ms(1));
        assert!(!b.pushes_land());
        assert_eq!(
            b.health.last_error.as_ref().map(|e| e.0.as_str()),
            Some("RemoteUnreachable")
        );
        b.on_failure(5_000, "main", failed(false));
        assert_eq!(
            b.timers.get(Timer::Backoff),
            Some(5_000 + gitplan::BACKOFF_MS_MAX),
            "a failure a user must fix waits the longest interval"
        );
        assert!(b.on_landed("c".into()));
        assert!(b.pushes_land());
        assert_eq!(b.timers, TimerTable::default());
        assert!(!b.on_landed("d".into()), "nothing left to clear");
    }

    #[test]
    fn conflicts_retry_at_once_until_a_run_of_them_backs_off() {
        let mut b = branch(10, 1_000);
        for _ in 0..gitplan::CONFLICTS_BEFORE_BACKOFF {
            b.on_conflict(7_000);
            assert_eq!(b.timers.get(Timer::Backoff), None);
            assert!(b.retry_pending);
        }
        b.on_conflict(7_000);
        assert_eq!(
            b.timers.get(Timer::Backoff),
            Some(7_000 + gitplan::backoff_ms(1))
        );
        b.on_push_started();
        assert!(!b.retry_pending);
    }

    #[test]
    fn the_soonest_deadline_wins_and_a_tie_keeps_the_first() {
        let a = Deadline {
            at_ms: 10,
            reason: Reason::Batch,
        };
        let b = Deadline {
            at_ms: 10,
            reason: Reason::Expiry,
        };
        let c = Deadline {
            at_ms: 5,
            reason: Reason::Retry,
        };
        assert_eq!(a.soonest(Some(b)), a);
        assert_eq!(a.soonest(Some(c)), c);
        assert_eq!(a.soonest(None), a);
    }
}
