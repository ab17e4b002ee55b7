//! The pending queue of one (repository, branch): commits waiting to be pushed, batching triggers,
//! and bounded memory by coalescing (latest content per path wins) instead of dropping.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::config::BATCH_BYTES_MAX;
use crate::ids::Operation;
use crate::io::FileBody;
use crate::live::KeyHash;

/// Pending commits kept before the queue coalesces.
pub const PENDING_COMMITS_MAX: usize = 10_000;
/// Pending sanitized bytes kept before the queue coalesces.
pub const PENDING_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Pending sanitized bytes of a branch whose pushes land, past which the object streams pause
/// ([`crate::core::Core::backlogged`]): a list read faster than pushes land would otherwise queue
/// every object's text.
pub const BACKLOG_BYTES_MAX: usize = PENDING_BYTES_MAX / 2;
/// Commits one push carries at most (default of [`PushBounds::commits_max`]).
pub const PUSH_COMMITS_MAX: usize = 256;
/// Sanitized bytes one push carries at most, unless a single commit is larger (default of
/// [`PushBounds::bytes_max`]).
pub const PUSH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Files one part of a resync commit holds at most (default of [`PushBounds::part_writes_max`]).
pub const RESYNC_PART_WRITES_MAX: usize = 10_000;

/// How much one push and one part of a resync carry. The executor renders, builds and pushes one
/// push at a time, so these bound its memory whatever the queue holds: a burst of thousands of
/// commits to a folder of thousands of files, each rewriting the folder's tree, or the seed of a
/// hundred thousand objects, goes out as several pushes, each started as the one before it lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushBounds {
    /// Commits per push at most.
    pub commits_max: usize,
    /// Sanitized bytes per push at most (a larger single commit goes alone), and per resync part.
    pub bytes_max: usize,
    /// Files per resync commit at most: a larger (re)list goes out as several `[RESYNC]` commits.
    pub part_writes_max: usize,
}

impl Default for PushBounds {
    fn default() -> Self {
        Self {
            commits_max: PUSH_COMMITS_MAX,
            bytes_max: PUSH_BYTES_MAX,
            part_writes_max: RESYNC_PART_WRITES_MAX,
        }
    }
}

/// New content for a path: the file and the canonical hash and size of its sanitized object.
#[derive(Clone, Debug)]
pub(crate) struct Content {
    /// Canonical content hash.
    pub hash: u64,
    /// The file, rendered by the executor (see [`FileBody`]).
    pub file: FileBody,
    /// Canonical size in bytes (what the byte trigger counts).
    pub bytes: usize,
}

/// One file change waiting to be committed.
#[derive(Clone, Debug)]
pub(crate) struct PendingWrite {
    /// Repository path.
    pub path: Arc<str>,
    /// [`crate::live::key128`] of the path.
    pub path_key: u128,
    /// New content, `None` to delete.
    pub content: Option<Content>,
}

/// Why a commit exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommitKind {
    /// One change of one object.
    Event {
        /// The operation.
        op: Operation,
        /// The object's identifier.
        identifier: String,
    },
    /// A (re)list brought the folder up to date: unattributed writes and orphan deletes.
    Resync {
        /// The destination's folder.
        folder: String,
    },
    /// Several commits merged when the queue hit its limits.
    Coalesced {
        /// How many changes went in.
        changes: usize,
    },
}

/// A commit waiting to be pushed.
#[derive(Clone, Debug)]
pub(crate) struct PendingCommit {
    /// Queue-unique sequence number.
    pub seq: u64,
    /// The Kubernetes user, `None` for the fallback identity.
    pub author: Option<Arc<str>>,
    /// The admission record that named the author ([`crate::admission::record_id`]): settled
    /// once this commit goes out in a push.
    pub record: Option<u64>,
    /// When the change was seen, wall milliseconds.
    pub seen_wall_ms: i64,
    /// Why it exists.
    pub kind: CommitKind,
    /// Its file changes.
    pub writes: Vec<PendingWrite>,
}

#[derive(Clone, Copy, Debug)]
struct Latest {
    seq: u64,
    content: Option<u64>,
    writes: u32,
}

/// The pending commits of one branch, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    bounds: PushBounds,
    commits: VecDeque<PendingCommit>,
    in_flight: Vec<PendingCommit>,
    /// Per path: the newest not-yet-pushed write (pending or in flight) and how many exist. Looked up
    /// only, never iterated, so its (fixed-seed) hash order cannot reach an output.
    latest: HashMap<u128, Latest, KeyHash>,
    bytes: usize,
    first_pending_ms: Option<u64>,
    next_seq: u64,
    coalesced_total: u64,
    /// Pending bytes at which the next coalescing pass runs. A pass that cannot get under
    /// [`PENDING_BYTES_MAX`] (every path distinct, as in the seed of a large folder) would
    /// otherwise run again on every write, each over the whole queue: the next one waits until the
    /// bytes have doubled, so passes stay amortised O(1) per write.
    coalesce_at_bytes: usize,
    /// Coalescing passes run, for tests of that bound.
    coalesce_passes: u64,
    /// Bytes of the open resync commit (the newest commit, when it is one).
    open_resync_bytes: usize,
    /// The last push took only part of what was pending (see [`PushBounds`]): the rest is due at
    /// once.
    cut: bool,
    /// The admission records of commits dropped before they went out (redundant, superseded,
    /// merged): the change each names needs no commit of its own, so no later core may use it.
    dropped_records: Vec<u64>,
}

fn note_latest(latest: &mut HashMap<u128, Latest, KeyHash>, seq: u64, w: &PendingWrite) {
    let l = latest.entry(w.path_key).or_insert(Latest {
        seq,
        content: None,
        writes: 0,
    });
    l.seq = seq;
    l.content = w.content.as_ref().map(|c| c.hash);
    l.writes += 1;
}

/// The commit and content of the last write of a path among `commits`, oldest first.
fn last_write<'c>(
    commits: impl Iterator<Item = &'c PendingCommit>,
    path_key: u128,
) -> Option<(u64, Option<u64>)> {
    let mut last = None;
    for c in commits {
        for w in c.writes.iter().filter(|w| w.path_key == path_key) {
            last = Some((c.seq, w.content.as_ref().map(|c| c.hash)));
        }
    }
    last
}

fn write_bytes(w: &PendingWrite) -> usize {
    w.content.as_ref().map_or(0, |c| c.bytes)
}

impl Queue {
    /// An empty queue whose pushes and resync parts keep to `bounds`.
    pub(crate) fn new(bounds: PushBounds) -> Self {
        assert!(
            bounds.commits_max > 0 && bounds.bytes_max > 0 && bounds.part_writes_max > 0,
            "a push carries something"
        );
        Self {
            bounds,
            ..Self::default()
        }
    }

    /// The newest unpushed content of a path: `Some(None)` is a pending delete, `None` nothing pending.
    pub(crate) fn latest(&self, path_key: u128) -> Option<Option<u64>> {
        self.latest.get(&path_key).map(|l| l.content)
    }

    fn note(&mut self, seq: u64, w: &PendingWrite) {
        note_latest(&mut self.latest, seq, w);
        self.bytes += write_bytes(w);
    }

    fn start_timer(&mut self, now_ms: u64) {
        self.first_pending_ms.get_or_insert(now_ms);
    }

    /// Queues one commit for one event.
    pub(crate) fn push_event(
        &mut self,
        now_ms: u64,
        seen_wall_ms: i64,
        author: Option<Arc<str>>,
        record: Option<u64>,
        kind: CommitKind,
        write: PendingWrite,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.note(seq, &write);
        self.commits.push_back(PendingCommit {
            seq,
            author,
            record,
            seen_wall_ms,
            kind,
            writes: vec![write],
        });
        self.start_timer(now_ms);
        self.coalesce_if_over();
    }

    /// Adds a write to the open resync commit of `folder` (the newest commit, if it is one), or opens one.
    pub(crate) fn push_resync(
        &mut self,
        now_ms: u64,
        seen_wall_ms: i64,
        folder: &str,
        write: PendingWrite,
    ) {
        // A full part is closed: the next write opens the next part, so no push (and no commit the
        // executor builds) carries the whole of a large listing.
        let open = matches!(self.commits.back(), Some(PendingCommit { kind: CommitKind::Resync { folder: f }, writes, .. })
            if f == folder
                && writes.len() < self.bounds.part_writes_max
                && self.open_resync_bytes < self.bounds.bytes_max);
        if !open {
            self.open_resync_bytes = 0;
            let seq = self.next_seq;
            self.next_seq += 1;
            let kind = CommitKind::Resync {
                folder: folder.into(),
            };
            self.commits.push_back(PendingCommit {
                seq,
                author: None,
                record: None,
                seen_wall_ms,
                kind,
                writes: Vec::new(),
            });
        }
        let commit = self.commits.back_mut().expect("an open resync commit");
        let seq = commit.seq;
        // Only when the path's newest write is in this very commit is there one to replace: the
        // index says so without scanning the commit (a seed's resync commit holds every file).
        let in_this_commit = self
            .latest
            .get(&write.path_key)
            .is_some_and(|l| l.seq == seq);
        if let Some(i) = in_this_commit
            .then(|| {
                commit
                    .writes
                    .iter()
                    .rposition(|w| w.path_key == write.path_key)
            })
            .flatten()
        {
            let old = commit.writes.remove(i);
            self.bytes -= write_bytes(&old);
            self.open_resync_bytes = self.open_resync_bytes.saturating_sub(write_bytes(&old));
            if let Some(l) = self.latest.get_mut(&write.path_key) {
                l.writes -= 1;
            }
        }
        self.open_resync_bytes += write_bytes(&write);
        self.commits
            .back_mut()
            .expect("open")
            .writes
            .push(write.clone());
        self.note(seq, &write);
        self.start_timer(now_ms);
        self.coalesce_if_over();
    }

    /// The path's unpushed writes when its newest one is in the open resync commit of `folder`.
    fn in_open_resync(&self, path_key: u128, folder: &str) -> Option<&Latest> {
        let open = self.commits.back()?;
        let CommitKind::Resync { folder: f } = &open.kind else {
            return None;
        };
        self.latest
            .get(&path_key)
            .filter(|l| f.as_str() == folder && l.seq == open.seq)
    }

    /// Whether the path's only unpushed write is in the open resync commit of `folder`: a new
    /// resync write of the path replaces it, so the new one is judged against what precedes it,
    /// the repository.
    pub(crate) fn only_in_open_resync(&self, path_key: u128, folder: &str) -> bool {
        self.in_open_resync(path_key, folder)
            .is_some_and(|l| l.writes == 1)
    }

    /// The content of the path's unpushed write before the one in the open resync commit of
    /// `folder`, when the path's newest write is there and is not its only one (`Some(None)`: a
    /// delete). A new resync write of the path replaces the open commit's, so it is judged
    /// against that earlier write: equal, the path's part of the open commit changes nothing.
    pub(crate) fn before_open_resync(&self, path_key: u128, folder: &str) -> Option<Option<u64>> {
        self.in_open_resync(path_key, folder)
            .filter(|l| l.writes >= 2)?;
        let open = self.commits.len() - 1;
        let earlier = self.in_flight.iter().chain(self.commits.range(..open));
        let before = last_write(earlier, path_key).map(|(_, content)| content);
        invariant!(
            before.is_some(),
            "a path with two unpushed writes has an earlier one"
        );
        before
    }

    /// Drops the path's write from the open resync commit (see [`Queue::only_in_open_resync`]):
    /// the repository holds what it is being replaced with. The commit goes if it is left empty.
    pub(crate) fn drop_from_open_resync(&mut self, path_key: u128) {
        let Some(commit) = self.commits.back_mut() else {
            return;
        };
        let Some(i) = commit.writes.iter().rposition(|w| w.path_key == path_key) else {
            return;
        };
        let old = commit.writes.remove(i);
        self.bytes -= write_bytes(&old);
        self.open_resync_bytes = self.open_resync_bytes.saturating_sub(write_bytes(&old));
        let seq = commit.seq;
        if commit.writes.is_empty() {
            self.commits.pop_back();
        }
        self.forget_write(seq, path_key);
        // An earlier unpushed write of the path, if it has one, is its newest again (looked for
        // only then: a seed's resync commit holds every file).
        if self.latest.contains_key(&path_key) {
            let earlier = self.in_flight.iter().chain(self.commits.iter());
            let (seq, content) = last_write(earlier, path_key).expect("counted");
            let l = self.latest.get_mut(&path_key).expect("looked up");
            l.seq = seq;
            l.content = content;
        }
        if self.commits.is_empty() {
            self.emptied();
        }
    }

    /// Whether more is pending than one push carries ([`PushBounds`]): paths with an unpushed
    /// write, or pending bytes.
    pub(crate) fn over_a_push(&self) -> bool {
        self.latest.len() > self.bounds.part_writes_max || self.bytes > self.bounds.bytes_max
    }

    /// Pending commits (not in flight).
    pub(crate) fn len(&self) -> usize {
        self.commits.len()
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// Pending sanitized bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// From when the pending commits are due to be pushed: at once (since they became pending)
    /// once `max_commits` or [`BATCH_BYTES_MAX`] is reached, or more than a push is pending (or
    /// left by a push cut at its bounds), else `interval_ms` after the first became pending.
    /// `None` with nothing pending.
    pub(crate) fn due_at_ms(&self, max_commits: u32, interval_ms: u64) -> Option<u64> {
        if self.commits.is_empty() {
            return None;
        }
        invariant!(
            self.first_pending_ms.is_some(),
            "pending commits start the timer"
        );
        // Were the timer ever missing, pushing at once beats never pushing.
        let first = self.first_pending_ms.unwrap_or(0);
        let full = self.cut
            || self.over_a_push()
            || self.commits.len() >= max_commits as usize
            || self.bytes >= BATCH_BYTES_MAX;
        Some(if full { first } else { first + interval_ms })
    }

    /// Whether a batching trigger has fired: count, bytes or time.
    pub(crate) fn due(&self, now_ms: u64, max_commits: u32, interval_ms: u64) -> bool {
        self.due_at_ms(max_commits, interval_ms)
            .is_some_and(|t| now_ms >= t)
    }

    /// Moves the oldest pending commits in flight, as many as the [`PushBounds`] allow (at least
    /// one), and returns them; they stay "unpushed" for dedup until the push lands. What is left is
    /// due at once.
    pub(crate) fn start_push(&mut self) -> &[PendingCommit] {
        assert!(self.in_flight.is_empty(), "one push in flight per branch");
        let mut take = 0;
        let mut taken_bytes = 0;
        for c in &self.commits {
            let bytes: usize = c.writes.iter().map(write_bytes).sum();
            let fits =
                take < self.bounds.commits_max && taken_bytes + bytes <= self.bounds.bytes_max;
            if take > 0 && !fits {
                break;
            }
            take += 1;
            taken_bytes += bytes;
        }
        self.in_flight = self.commits.drain(..take).collect();
        invariant!(
            taken_bytes <= self.bytes,
            "pending bytes count every pending write"
        );
        self.bytes = self.bytes.saturating_sub(taken_bytes);
        self.coalesce_at_bytes = 0;
        self.cut = !self.commits.is_empty();
        if !self.cut {
            self.first_pending_ms = None;
        }
        &self.in_flight
    }

    /// The commits of the push in flight.
    pub(crate) fn in_flight(&self) -> &[PendingCommit] {
        &self.in_flight
    }

    /// The push in flight landed: its writes are no longer pending. Returns its commits.
    pub(crate) fn push_landed(&mut self) -> Vec<PendingCommit> {
        let done = std::mem::take(&mut self.in_flight);
        for c in &done {
            for w in &c.writes {
                self.forget_write(c.seq, w.path_key);
            }
        }
        done
    }

    /// The push in flight did not land: its commits go back in front, in order; the time trigger
    /// restarts at `now_ms`.
    pub(crate) fn push_failed(&mut self, now_ms: u64) {
        for c in std::mem::take(&mut self.in_flight).into_iter().rev() {
            self.bytes += c.writes.iter().map(write_bytes).sum::<usize>();
            self.commits.push_front(c);
        }
        if !self.commits.is_empty() {
            self.start_timer(now_ms);
        }
    }

    /// Nothing is pending any more: no timer runs, and no cut push leaves a rest.
    fn emptied(&mut self) {
        self.first_pending_ms = None;
        self.cut = false;
    }

    fn forget_write(&mut self, seq: u64, path_key: u128) {
        if let Some(l) = self.latest.get_mut(&path_key) {
            l.writes -= 1;
            if l.writes == 0 {
                invariant_eq!(
                    l.seq,
                    seq,
                    "the last unpushed write of a path is its latest"
                );
                self.latest.remove(&path_key);
            }
        }
    }

    /// Drops pending writes that would change nothing. The first pending write of a path is
    /// compared with the repository by `same_as_repo`; each later one with the write before it
    /// that stays. So a relisted object's seed write that the repository already holds goes, while
    /// a later change of the same path stays (and the order of contents is never altered).
    /// Commits left without writes go too.
    pub(crate) fn drop_redundant(
        &mut self,
        mut same_as_repo: impl FnMut(&PendingWrite) -> bool,
    ) -> usize {
        let mut dropped = 0;
        // Per path: the content of the last write kept (`Some(None)`: a delete); absent: the repo's.
        // Looked up only, never iterated: the commits' own order decides everything.
        let mut kept: HashMap<u128, Option<u64>, KeyHash> = HashMap::default();
        let mut commits = std::mem::take(&mut self.commits);
        for c in &mut commits {
            c.writes.retain(|w| {
                let content = w.content.as_ref().map(|c| c.hash);
                let redundant = match kept.get(&w.path_key) {
                    Some(prev) => *prev == content,
                    None => same_as_repo(w),
                };
                if redundant {
                    dropped += 1;
                } else {
                    kept.insert(w.path_key, content);
                }
                !redundant
            });
        }
        self.commits = commits;
        self.remove_empty_commits();
        if dropped > 0 {
            self.reindex();
        }
        if self.commits.is_empty() {
            self.emptied();
        }
        dropped
    }

    /// Drops the pending writes for which `drop` holds (and commits left empty); returns how many.
    pub(crate) fn drop_writes(&mut self, mut drop: impl FnMut(&PendingWrite) -> bool) -> usize {
        let mut dropped = 0;
        for c in &mut self.commits {
            c.writes.retain(|w| {
                let d = drop(w);
                dropped += usize::from(d);
                !d
            });
        }
        if dropped > 0 {
            self.remove_empty_commits();
            self.reindex();
        }
        if self.commits.is_empty() {
            self.emptied();
        }
        dropped
    }

    /// Removes the pending commits left without writes, keeping their records as dropped.
    fn remove_empty_commits(&mut self) {
        let dropped = &mut self.dropped_records;
        self.commits.retain(|c| {
            if c.writes.is_empty() {
                dropped.extend(c.record);
            }
            !c.writes.is_empty()
        });
    }

    /// The records of commits dropped before they went out, since the last call.
    pub(crate) fn take_dropped_records(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.dropped_records)
    }

    /// Pending writes (not in flight), oldest first.
    pub(crate) fn writes(&self) -> impl Iterator<Item = &PendingWrite> {
        self.commits.iter().flat_map(|c| c.writes.iter())
    }

    /// Commits removed or merged by coalescing so far.
    pub(crate) fn coalesced_total(&self) -> u64 {
        self.coalesced_total
    }

    fn coalesce_if_over(&mut self) {
        let bytes_at = self.coalesce_at_bytes.max(PENDING_BYTES_MAX);
        if self.commits.len() > PENDING_COMMITS_MAX || self.bytes > bytes_at {
            self.coalesce();
            self.coalesce_at_bytes = (self.bytes * 2).max(PENDING_BYTES_MAX);
        }
    }

    #[cfg(test)]
    /// Coalescing passes run so far.
    pub(crate) fn coalesce_passes(&self) -> u64 {
        self.coalesce_passes
    }

    /// Keeps only the newest pending write of each path; commits left empty are removed. If that is
    /// not enough, the older half of the commits is merged into one commit by the fallback identity.
    pub(crate) fn coalesce(&mut self) {
        // Membership only, never iterated: the commits' order decides what stays.
        let mut seen: HashSet<u128, KeyHash> = HashSet::default();
        let before = self.commits.len();
        self.coalesce_passes += 1;
        for c in self.commits.iter_mut().rev() {
            c.writes.retain(|w| seen.insert(w.path_key));
        }
        self.remove_empty_commits();
        if self.commits.len() > PENDING_COMMITS_MAX {
            let half = self.commits.len() / 2;
            let merged: Vec<PendingCommit> = self.commits.drain(..half).collect();
            // Merged into the fallback identity's commit: their authors go unnamed.
            self.dropped_records
                .extend(merged.iter().filter_map(|c| c.record));
            let last = merged.last().expect("half of a full queue is not empty");
            let (seq, seen_wall_ms) = (last.seq, last.seen_wall_ms);
            let writes: Vec<PendingWrite> = merged.into_iter().flat_map(|c| c.writes).collect();
            let kind = CommitKind::Coalesced {
                changes: writes.len(),
            };
            self.commits.push_front(PendingCommit {
                seq,
                author: None,
                record: None,
                seen_wall_ms,
                kind,
                writes,
            });
        }
        self.coalesced_total += (before - self.commits.len()) as u64;
        self.reindex();
    }

    /// Rebuilds the per-path index and the byte count from the queue.
    fn reindex(&mut self) {
        self.latest.clear();
        for c in &self.in_flight {
            c.writes
                .iter()
                .for_each(|w| note_latest(&mut self.latest, c.seq, w));
        }
        for c in &self.commits {
            c.writes
                .iter()
                .for_each(|w| note_latest(&mut self.latest, c.seq, w));
        }
        self.bytes = self
            .commits
            .iter()
            .flat_map(|c| &c.writes)
            .map(write_bytes)
            .sum();
        invariant!(self.commits.len() <= PENDING_COMMITS_MAX);
    }
}

#[cfg(test)]
mod tests;
