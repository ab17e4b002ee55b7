//! Exact attribution: joining an admission record to the one watch event it caused.
//!
//! A record is keyed by (identifier, operation, content hash) and carries the base resourceVersion
//! of UPDATE/DELETE (`oldObject.metadata.resourceVersion`). The watch side asks with the version of
//! the object's previous event, so a record only explains the write it belongs to; a rejected write's
//! record cannot name the author of a later identical one. CREATE has no base and joins on the hash
//! within the TTL. When the base is uncertain (first event after a relist or restart), the hash-only
//! join is used, and only when exactly one user is a candidate. Records keep their order of
//! arrival, which is the order the API server called the webhook (the runtime queues each request
//! before it answers); a creation can only be explained by a CREATE record that arrived before a
//! DELETE of that very version.

use std::sync::Arc;

use crate::correlation::{CorrelationCounters, CorrelationLimits, CorrelationStore};
use crate::ids::Operation;

/// The correlation key, hashed: (identifier, operation, content hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CorrKey {
    /// [`crate::live::key128`] of the identifier.
    pub ident: u128,
    /// The operation.
    pub op: Operation,
    /// Content hash of the sanitized object.
    pub content: u64,
}

/// What an admission request left for the watch side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// `userInfo.username`.
    pub user: Arc<str>,
    /// Fingerprint of the base resourceVersion; `None` for CREATE.
    pub base_rv: Option<u64>,
    /// Fingerprint of the object's `metadata.uid`, so that only a change of that very object can
    /// match it. For CREATE the API server assigns it before it calls admission, so a refused
    /// twin's uid never reaches the watch; for UPDATE and DELETE it keeps a record of an object
    /// from explaining a change of the next object of that name. `None` when the request
    /// carried none.
    pub uid: Option<u64>,
    /// Content hash of the sanitized object written (deleted, for DELETE).
    pub content: u64,
    /// Its admission request ([`crate::admission::record_id`]): how a runtime's window of
    /// records names it when this core settles it.
    pub req: u64,
    /// Order of arrival, set by [`Attributor::record`].
    pub seq: u64,
    /// Set by [`Attributor::record`] when the record may be the late admission of a change
    /// already written without an author: it then joins only exactly, on a base the watch
    /// showed as the previous version (see there).
    pub exact_only: bool,
}

/// Where a record is filed. CREATE records of one object share a key whatever their content, so
/// that the object's next creation can retire them all at once
/// ([`Attributor::retire_older_creates`]); so do DELETE records, so that a deletion whose content
/// is uncertain can be joined on the object alone.
fn store_key(key: CorrKey) -> CorrKey {
    match key.op {
        Operation::Create | Operation::Delete => CorrKey { content: 0, ..key },
        Operation::Update => key,
    }
}

/// Whether `record` was made on a version of `ident` noted in `replaced` (see
/// [`Attributor::note_replaced`]).
fn made_on_replaced(
    replaced: &CorrelationStore<(u128, u64), ()>,
    now_ms: u64,
    ident: u128,
    record: &Record,
) -> bool {
    record
        .base_rv
        .is_some_and(|b| replaced.peek(now_ms, &(ident, b)).next().is_some())
}

/// A record made on a version, as [`Attributor`]'s index of each object's records holds it.
#[derive(Clone, Copy, Debug)]
struct MadeOn {
    /// The record's arrival ([`Record::seq`]).
    seq: u64,
    /// Where it is filed, so that it can be found again once it is stale.
    key: CorrKey,
    /// Fingerprint of the version it was made on.
    base: u64,
    /// Fingerprint of its object's uid, if the request carried one.
    uid: Option<u64>,
}

/// Records of one object the index of versions keeps within the TTL: beyond it the oldest go,
/// and a stale one among them is no longer settled early (it still expires with its TTL).
pub(crate) const RECORDS_PER_OBJECT_MAX: usize = 64;

/// How a watch event got its author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Attribution {
    /// The record of exactly this write.
    Exact(Arc<str>),
    /// The only candidate of the hash-only join (uncertain base).
    HashOnly(Arc<str>),
    /// No record: the fallback identity.
    Miss,
    /// Records of two users fit this very write exactly (one lost a race, or was refused after
    /// admission): the fallback identity. Unlike [`Attribution::Miss`], the write's admissions
    /// have all arrived, so none is still to come late.
    Ambiguous,
}

impl Attribution {
    /// The user, if any.
    pub(crate) fn user(&self) -> Option<&Arc<str>> {
        match self {
            Attribution::Exact(u) | Attribution::HashOnly(u) => Some(u),
            Attribution::Miss | Attribution::Ambiguous => None,
        }
    }
}

/// Counters of attribution outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttributionCounters {
    /// Records stored.
    pub recorded_total: u64,
    /// Admissions not stored because the sanitized object equals the sanitized `oldObject`.
    pub noop_skipped_total: u64,
    /// Dry-run admissions not stored.
    pub dry_run_skipped_total: u64,
    /// Admissions of a write through a subresource, not stored.
    pub subresource_skipped_total: u64,
    /// Admissions not stored because they arrived after the watch event of their write.
    pub late_skipped_total: u64,
    /// CREATE records dropped because the object was created by another write.
    pub superseded_total: u64,
    /// Records dropped as duplicates of one that explained a write (admission run twice).
    pub duplicates_retired_total: u64,
    /// Watch events attributed by the exact join.
    pub exact_total: u64,
    /// Watch events attributed by the hash-only fallback.
    pub hash_only_total: u64,
    /// Watch events left to the fallback identity.
    pub miss_total: u64,
    /// Of those, events that two users' records could explain (counted in `miss_total` too).
    pub ambiguous_total: u64,
}

/// How full the attributor's two correlation stores are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreBounds {
    /// Record keys.
    pub keys: usize,
    /// Records.
    pub entries: usize,
    /// The most records any one key holds.
    pub entries_per_key_most: usize,
    /// Keys of writes seen without a record.
    pub missed_keys: usize,
    /// Notes of such writes.
    pub missed_entries: usize,
    /// The most notes any one key holds.
    pub missed_per_key_most: usize,
}

/// The correlation store plus the join rules.
pub(crate) struct Attributor {
    store: CorrelationStore<CorrKey, Record>,
    /// Watch events left unattributed within the TTL. The webhook's path can be slower than the
    /// watch: an admission that matches one of these came late for that write, and stored, it
    /// could only ever be matched to someone else's identical write later.
    /// Changes written without an author, each with its object's uid (when the event had one).
    missed: CorrelationStore<CorrKey, Option<u64>>,
    /// Versions (object, resourceVersion) the watch showed replaced by a write joined on a certain
    /// base: a record made on one of them came late for a write already seen.
    replaced: CorrelationStore<(u128, u64), ()>,
    /// Versions (object, resourceVersion) records were made on, with each record's arrival: the
    /// version existed when such a record was admitted, so no record that came after it can have
    /// made that version. Kept after the records are used (a version does not come back).
    made_on: CorrelationStore<(u128, u64), u64>,
    /// Each object's records made on a version, in order of arrival, kept after they are used:
    /// which versions the object had (an object that had one before the version a list shows
    /// was not created by that version), and where each record is filed, to settle it once it
    /// is stale.
    versions: CorrelationStore<u128, MadeOn>,
    next_seq: u64,
    /// The record the last join took, for the change it named.
    last_taken: Option<u64>,
    /// Records this attributor will never use for a change: dropped as late, or retired.
    settled: Vec<u64>,
    counters: AttributionCounters,
}

impl Attributor {
    /// An empty attributor.
    pub(crate) fn new(limits: CorrelationLimits) -> Self {
        Self {
            store: CorrelationStore::new(limits),
            missed: CorrelationStore::new(limits),
            replaced: CorrelationStore::new(limits),
            made_on: CorrelationStore::new(limits),
            versions: CorrelationStore::new(CorrelationLimits {
                entries_per_key_max: RECORDS_PER_OBJECT_MAX,
                ..limits
            }),
            next_seq: 0,
            last_taken: None,
            settled: Vec::new(),
            counters: AttributionCounters::default(),
        }
    }

    /// Stores a record, unless it is late for a write already seen without one. The note of that
    /// write stays for its TTL: two identical requests (one refused after admission) can both
    /// come late for it, and whichever is kept could only name someone else's identical write
    /// later (seed 191083280). A genuine identical write within the TTL then goes unattributed,
    /// never misattributed.
    ///
    /// `current_rv` is the fingerprint of the object's version the watch showed last (that very
    /// object's, by uid), if the core knows it. A record made on it is never late: the watch has
    /// not moved past its base, so its write is still to come (seed 88816071: the deployer's
    /// update from the version the watch had just shown was dropped as the late admission of an
    /// identical change a relist had shown before that version, and his commit lost its author).
    pub(crate) fn record(
        &mut self,
        now_ms: u64,
        key: CorrKey,
        mut record: Record,
        current_rv: Option<u64>,
    ) {
        // Late only for a change of the same object: a record of another object's write (a new
        // object of the name, with its own uid) explains nothing that was missed (seed 109362:
        // a relist showed a ClusterRole the core had not known, noted as a creation seen
        // without an author, and the deployer's genuine creation of the next object of that name
        // with that content, 55 s later, lost its author).
        let same_object = |u: &Option<u64>| u.is_none() || record.uid.is_none() || *u == record.uid;
        // Nor can a record made on a version the watch already showed replaced explain any later
        // one (seed 64343572: bob's late record of a write alice's refused twin had explained
        // stayed, and 59 s later named bob for alice's identical change seen after a relist).
        let pending = record.base_rv.is_some() && record.base_rv == current_rv;
        let replaced = self.made_on_replaced(now_ms, key.ident, &record);
        let maybe_late = !pending && self.missed.peek(now_ms, &key).any(same_object);
        // A record with a base the core has not seen may be late for the missed change (made on
        // a version before it) or be for a write still to come (made on a version after it the
        // watch has yet to show): resourceVersions do not tell which. Kept for the exact join
        // only, it can name no one else: the exact join needs its base as the previous version
        // of the event, and a version before the missed change is never shown again (seed
        // 990040846: after a CRD's new version was listed, bob changed the object back to the
        // listed content from a version the watch had not yet shown; dropped as late, his
        // commit lost its author).
        if !pending && (replaced || (maybe_late && record.base_rv.is_none())) {
            self.counters.late_skipped_total += 1;
            self.settled.push(record.req);
            return;
        }
        record.exact_only = maybe_late;
        invariant_eq!(
            record.content,
            key.content,
            "a record carries its key's content"
        );
        record.seq = self.next_seq;
        self.next_seq += 1;
        let base = record.base_rv.filter(|&b| b != 0);
        if let Some(base) = base {
            self.made_on.put(now_ms, (key.ident, base), record.seq);
            let filed = MadeOn {
                seq: record.seq,
                key: store_key(key),
                base,
                uid: record.uid,
            };
            self.versions.put(now_ms, key.ident, filed);
        }
        self.counters.recorded_total += 1;
        self.store.put(now_ms, store_key(key), record);
    }

    /// A record that came after the change it records was seen: nothing is stored, and the
    /// runtime may forget it.
    pub(crate) fn settle_late(&mut self, req: u64) {
        self.counters.late_skipped_total += 1;
        self.settled.push(req);
    }

    /// Whether `record` was made on a version the watch has shown replaced. Such a record can
    /// explain no change still to come: whatever its write was, the object has moved past its
    /// base (every later write is made on a later version).
    fn made_on_replaced(&self, now_ms: u64, ident: u128, record: &Record) -> bool {
        made_on_replaced(&self.replaced, now_ms, ident, record)
    }

    /// The arrival of the first record still within the TTL that was made on version `rv` of
    /// `ident` (none for a version without a resourceVersion).
    fn first_made_on(&self, now_ms: u64, ident: u128, rv: u64) -> Option<u64> {
        (rv != 0)
            .then(|| self.made_on.peek(now_ms, &(ident, rv)).copied().min())
            .flatten()
    }

    /// Whether a record of object `ident` (uid `uid`; a record without one counts) was made on a
    /// version other than `rv`. When a list shows `rv`, that other version came before it (a
    /// list shows an object's newest version, or an older one when it is stale), so `rv` is
    /// not the object's creation, and no CREATE record explains it (seed 84898370: after a
    /// crash, alice's second admission of her creation was handed to the new core, and named
    /// her for the deployer's change back to her content, listed two writes later; his record,
    /// made on carol's version, showed the object had changed since its creation).
    pub(crate) fn made_on_other_version(
        &self,
        now_ms: u64,
        ident: u128,
        uid: u64,
        rv: u64,
    ) -> bool {
        self.versions
            .peek(now_ms, &ident)
            .any(|m| m.base != rv && m.uid.is_none_or(|u| u == uid))
    }

    /// `taken`, made on a version, explained version `rv` of object `ident`, so its write was
    /// admitted on the version then stored. A record of the object that came before it and was
    /// made on neither that version nor `rv` is stale: when it was admitted its object was at
    /// that version or an older one (an admission's old object is the stored one, or a cached
    /// one that then conflicts), so its version came before `taken`'s, and its write made a
    /// version the watch has shown by now, or none. Taken out and settled, so that a runtime
    /// does not hand it to its next core, which cannot know it is stale (seed 84895199: after a
    /// crash, carol's handed update explained the listed version, and the deployer's, made on
    /// carol's creation and handed with it, stayed to be handed again after the next crash, and
    /// named him for alice's later write of his content).
    ///
    /// DELETE records are left: the version after a DELETE's base may only begin the deletion
    /// (finalizers hold the object), and its final event, which the record explains too, is
    /// still to come. Like every bound on arrival, this one needs records in the order of their
    /// admissions: see docs/dev/simulation.md, Open findings, for forwarded records.
    fn retire_before(&mut self, now_ms: u64, ident: u128, taken: &Record, rv: u64) {
        let Some(base) = taken.base_rv.filter(|&b| b != 0) else {
            return;
        };
        self.settle_made_on(now_ms, ident, |m| {
            m.seq < taken.seq && m.base != base && m.base != rv && m.key.op != Operation::Delete
        });
    }

    /// Takes out and settles every stored record of `ident` in the index of versions for which
    /// `stale` holds.
    fn settle_made_on(&mut self, now_ms: u64, ident: u128, stale: impl Fn(&MadeOn) -> bool) {
        let stale: Vec<MadeOn> = self
            .versions
            .peek(now_ms, &ident)
            .filter(|m| stale(m))
            .copied()
            .collect();
        for m in stale {
            if let Some(r) = self.store.take(now_ms, &m.key, |r| r.seq == m.seq) {
                self.counters.superseded_total += 1;
                self.settled.push(r.req);
            }
        }
    }

    /// The watch (or a list) showed version `rv` of the object `ident` replaced by a later one.
    /// From now on, for the TTL, a record made on it is stale: it is dropped when it arrives,
    /// one already stored (it arrived before the replacement and fitted nothing then) is taken
    /// out, and every join passes over such records.
    ///
    /// The caller calls this after [`Attributor::attribute`] for the replacing version, whose
    /// own join may take a record made on `rv`. Records live a TTL from their arrival, so a note
    /// made after a record arrived outlives it.
    pub(crate) fn note_replaced(&mut self, now_ms: u64, ident: u128, rv: u64) {
        if self.replaced.peek(now_ms, &(ident, rv)).next().is_none() {
            self.replaced.put(now_ms, (ident, rv), ());
        }
        // Every record still stored that was made on it is stale now: taken out and settled, so
        // that a runtime does not hand it to its next core, which cannot know it is stale (seed
        // 84897378: the deployer's refused update, made on alice's version, was handed after a
        // crash and named him for carol's identical write, whose record the webhook had missed).
        self.settle_made_on(now_ms, ident, |m| m.base == rv);
    }

    /// A (re)list showed version `rv` of object `ident` (uid fingerprint `uid`) with content
    /// `content`. Every stored UPDATE record of that object to that content is used up: its write
    /// made this version, or a state the gap hid before it (a record made on `rv` itself would
    /// be a no-op, never stored). Kept, it could name its user for a later identical change that
    /// a relist shows (seed 960015299: bob's update, admitted before the first list showed the
    /// object unknown to the core, named him 56 s later for carol's). Not done for live events:
    /// there a record to the same content may be for a write still to come.
    ///
    /// Records that came after one made on `rv` itself are for writes after this version (seed
    /// 2722592: a stale list), and stay.
    pub(crate) fn retire_listed(
        &mut self,
        now_ms: u64,
        ident: u128,
        rv: u64,
        uid: u64,
        content: u64,
    ) {
        let key = CorrKey {
            ident,
            op: Operation::Update,
            content,
        };
        let later_than = self.first_made_on(now_ms, ident, rv);
        let same_object = |r: &Record| {
            r.uid.is_none_or(|u| u == uid) && later_than.is_none_or(|bound| r.seq < bound)
        };
        while let Some(r) = self.store.take(now_ms, &key, same_object) {
            self.counters.superseded_total += 1;
            self.settled.push(r.req);
        }
        // The object exists: its creation is history, whatever version the list shows (a CREATE
        // record of this very uid that fitted would have named it already). Kept, and handed to
        // a later core, it named its user for the object's later change back to the created
        // content (seed 94 with split brain).
        let creates = CorrKey {
            ident,
            op: Operation::Create,
            content: 0,
        };
        while let Some(r) = self.store.take(now_ms, &creates, |r| r.uid == Some(uid)) {
            self.counters.superseded_total += 1;
            self.settled.push(r.req);
        }
    }

    /// `taken` explained the object's creation: CREATE records for it that arrived before it
    /// are stale. Their writes were refused (the name was taken) or already seen; kept, they
    /// could name the author of a later identical re-creation. Records that arrived after it
    /// may be for a re-creation still on its way through the watch, and stay.
    fn retire_older_creates(&mut self, now_ms: u64, key: CorrKey, taken: &Record) {
        if key.op != Operation::Create {
            return;
        }
        let sk = store_key(key);
        while let Some(r) = self.store.take(now_ms, &sk, |r| r.seq < taken.seq) {
            self.counters.superseded_total += 1;
            self.settled.push(r.req);
        }
    }

    /// `taken` explained a write: its duplicates (the same user's request from the same base to
    /// the same content, admitted again after a storage conflict) are of that same write. Kept,
    /// one could name this user for someone else's identical write that a relist shows, where
    /// the base is uncertain and only content is matched (seed 33711).
    fn retire_duplicates(&mut self, now_ms: u64, sk: CorrKey, taken: &Record) {
        let duplicate = |r: &Record| {
            r.user == taken.user
                && r.base_rv == taken.base_rv
                && r.uid == taken.uid
                && r.content == taken.content
        };
        while let Some(r) = self.store.take(now_ms, &sk, duplicate) {
            self.counters.duplicates_retired_total += 1;
            self.settled.push(r.req);
        }
    }

    /// Counts an admission skipped as a content no-op.
    pub(crate) fn skip_noop(&mut self) {
        self.counters.noop_skipped_total += 1;
    }

    /// Counts a skipped dry run.
    pub(crate) fn skip_dry_run(&mut self) {
        self.counters.dry_run_skipped_total += 1;
    }

    /// Counts a skipped subresource admission.
    pub(crate) fn skip_subresource(&mut self) {
        self.counters.subresource_skipped_total += 1;
    }

    /// Finds the author of a watch event. `rv` is the fingerprint of the event's own
    /// resourceVersion, `uid` that of its `metadata.uid`, `base_rv` that of the object's previous
    /// resourceVersion (`None` when unknown); `base_certain` is false right after a (re)list.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attribute(
        &mut self,
        now_ms: u64,
        key: CorrKey,
        rv: u64,
        uid: u64,
        base_rv: Option<u64>,
        base_certain: bool,
    ) -> Attribution {
        // A record made on this very version shows the version existed when it was admitted, so
        // a record that came after it made some later version, or none. A DELETE made on it
        // bounds the CREATE records that can explain it (a later one is for the next incarnation
        // of the name, still on its way through the watch); any record made on it bounds the
        // UPDATE records (seed 2722592: after a crash a stale list showed bob's creation, and the
        // deployer's handed record, made two versions later with bob's content, named him for it;
        // alice's record, made on the listed version, shows the order). Not for a deletion: its
        // DELETE is made on the version it removes.
        let made_before = (key.op != Operation::Delete)
            .then(|| self.first_made_on(now_ms, key.ident, rv))
            .flatten();
        // A CREATE record names the uid of the object it made, when the request carried it.
        // Nor can a record made on a version already seen replaced (it is stale).
        let replaced = &self.replaced;
        let in_time = move |r: &Record| {
            made_before.is_none_or(|bound| r.seq < bound)
                && r.uid.is_none_or(|u| u == uid)
                && !made_on_replaced(replaced, now_ms, key.ident, r)
        };
        let want = if key.op == Operation::Create {
            None
        } else {
            base_rv
        };
        let (sk, content) = (store_key(key), key.content);
        // After a (re)list the last version seen may not be the listed version's base: writes in
        // the gap went unseen. A record from that stale base (someone's refused write) would then
        // "fit exactly" while the true write's record names a base the core never saw (seed
        // 38875). So an UPDATE or DELETE joins exactly only on a certain base; a CREATE has its
        // uid instead. Where the exact join is not conclusive, the hash-only join names a user
        // only when no other one could be meant.
        let exact = key.op == Operation::Create || (base_certain && base_rv.is_some());
        if exact {
            let fits = |r: &Record| r.content == content && r.base_rv == want && in_time(r);
            let (first, single) = {
                let mut users = self
                    .store
                    .peek(now_ms, &sk)
                    .filter(|r| fits(r))
                    .map(|r| &r.user);
                let first = users.next().cloned();
                let single = users.all(|u| Some(u) == first.as_ref());
                (first, single)
            };
            if first.is_some() && !single {
                // Two users wrote exactly this from the same base (one was refused later, or
                // lost a race): no way to tell whose write this is. Name neither, and retire
                // them all: the write they could explain has happened.
                let mut last = None;
                while let Some(r) = self.store.take(now_ms, &sk, fits) {
                    self.settled.push(r.req);
                    last = Some(r);
                }
                if let Some(r) = last {
                    self.retire_older_creates(now_ms, key, &r);
                }
                self.counters.ambiguous_total += 1;
                self.counters.miss_total += 1;
                return Attribution::Ambiguous;
            }
            if let Some(r) = self.store.take(now_ms, &sk, fits) {
                self.counters.exact_total += 1;
                self.last_taken = Some(r.req);
                self.retire_duplicates(now_ms, sk, &r);
                self.retire_older_creates(now_ms, key, &r);
                self.retire_before(now_ms, key.ident, &r, rv);
                return Attribution::Exact(r.user);
            }
        }
        if !(exact && base_certain) {
            // A deletion whose beginning the watch did not see (first seen terminating, in a
            // list) joins on the listed content, which is the DELETE's unless someone edited the
            // object in the gap too: then on the object alone (seed 500003894: alice edited a
            // ClusterRole the deployer had begun to delete, both in a watch gap, and the
            // deployer's record, made on the content before her edit, fitted nothing).
            let content_unsure = key.op == Operation::Delete && !base_certain;
            for any_content in [false, true] {
                if any_content && !content_unsure {
                    break;
                }
                let matches = |r: &Record| (any_content || r.content == content) && in_time(r);
                let (first, single) = {
                    let mut users = self
                        .store
                        .peek(now_ms, &sk)
                        .filter(|r| matches(r))
                        .map(|r| &r.user);
                    let first = users.next().cloned();
                    let single = users.all(|u| Some(u) == first.as_ref());
                    (first, single)
                };
                let Some(first) = first else {
                    continue;
                };
                if !single {
                    break;
                }
                // A record that may be late for a change seen without one counts as a candidate,
                // so another user's is not named in its place (seed 990040012: carol's refused
                // write, made on the version the core saw last, named her for alice's identical
                // write a relist showed, whose record was taken for late), but names no one.
                let Some(taken) = self
                    .store
                    .take(now_ms, &sk, |r| matches(r) && !r.exact_only)
                else {
                    break;
                };
                invariant_eq!(taken.user, first);
                self.counters.hash_only_total += 1;
                self.last_taken = Some(taken.req);
                self.retire_duplicates(now_ms, sk, &taken);
                self.retire_older_creates(now_ms, key, &taken);
                self.retire_before(now_ms, key.ident, &taken, rv);
                return Attribution::HashOnly(first);
            }
        }
        self.counters.miss_total += 1;
        Attribution::Miss
    }

    /// The record the last join took (and forgets it): the change it named carries it until
    /// that change's commit lands.
    pub(crate) fn take_last_taken(&mut self) -> Option<u64> {
        self.last_taken.take()
    }

    /// Records retired or dropped since the last call: no change of this core will use them.
    pub(crate) fn drain_settled(&mut self) -> std::vec::Drain<'_, u64> {
        self.settled.drain(..)
    }

    /// Notes a change that was written without an author, so that its admission, should it still
    /// come, is recognised as late ([`Attributor::record`]). Only real changes are noted: a
    /// duplicate event would make a later genuine record look late.
    pub(crate) fn note_missed(&mut self, now_ms: u64, key: CorrKey, uid: Option<u64>) {
        self.missed.put(now_ms, key, uid);
    }

    /// Drops expired keys.
    pub(crate) fn sweep(&mut self, now_ms: u64) {
        self.store.sweep(now_ms);
        self.missed.sweep(now_ms);
        self.replaced.sweep(now_ms);
        self.made_on.sweep(now_ms);
        self.versions.sweep(now_ms);
    }

    /// When the next key expires.
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        match (self.store.next_expiry_ms(), self.missed.next_expiry_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Attribution counters.
    pub(crate) fn counters(&self) -> AttributionCounters {
        self.counters
    }

    /// The store's counters.
    pub(crate) fn store_counters(&self) -> CorrelationCounters {
        self.store.counters()
    }

    /// Keys and entries held.
    pub(crate) fn store_size(&self) -> (usize, usize) {
        (self.store.keys(), self.store.entries())
    }

    /// What both stores hold: the records, and the notes of writes seen without one.
    pub(crate) fn bounds(&self) -> StoreBounds {
        StoreBounds {
            keys: self.store.keys(),
            entries: self.store.entries(),
            entries_per_key_most: self.store.entries_per_key_most(),
            missed_keys: self.missed.keys(),
            missed_entries: self.missed.entries(),
            missed_per_key_most: self.missed.entries_per_key_most(),
        }
    }
}

#[cfg(test)]
mod tests;
