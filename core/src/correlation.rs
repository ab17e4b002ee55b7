//! The correlation store: admission records waiting for the watch event they explain.
//!
//! Per key a FIFO of at most [`CorrelationLimits::entries_per_key_max`] entries; at most
//! [`CorrelationLimits::keys_max`] keys, the least recently *written* key evicted first in O(1); every
//! entry lives [`CorrelationLimits::ttl_ms`]. Recency is by last write, not last read, so a key's
//! recency is the age of its newest entry: keys whose entries all expired form a suffix of the LRU
//! list and the TTL sweep is exact and amortised O(1). Expired entries inside a live key are never
//! returned and are dropped when the key is next touched.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use slotmap::{new_key_type, SlotMap};

use crate::live::KeyHash;

/// Keys kept at most.
pub const KEYS_MAX: usize = 10_000;
/// Entries kept per key at most; a put beyond drops the oldest.
pub const ENTRIES_PER_KEY_MAX: usize = 10;
/// How long an entry lives, in milliseconds.
pub const TTL_MS: u64 = 60_000;

/// The store's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CorrelationLimits {
    /// Keys kept at most.
    pub keys_max: usize,
    /// Entries per key at most.
    pub entries_per_key_max: usize,
    /// Entry lifetime in milliseconds.
    pub ttl_ms: u64,
}

impl Default for CorrelationLimits {
    fn default() -> Self {
        Self {
            keys_max: KEYS_MAX,
            entries_per_key_max: ENTRIES_PER_KEY_MAX,
            ttl_ms: TTL_MS,
        }
    }
}

/// Counters of the store's activity, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CorrelationCounters {
    /// Entries stored.
    pub entries_total: u64,
    /// Lookups that found an entry.
    pub hits_total: u64,
    /// Lookups that found none.
    pub misses_total: u64,
    /// Entries dropped for room: a full key's oldest entry or a whole least-recently-written key.
    pub evictions_total: u64,
    /// Entries dropped because their TTL ran out.
    pub expirations_total: u64,
}

new_key_type! { struct NodeId; }

/// Keys the index has room for from the start; a store that has emptied after growing past it
/// starts over at this size.
const INDEX_CAPACITY_MIN: usize = 1024;

struct Entry<V> {
    value: V,
    at_ms: u64,
}

struct Node<K, V> {
    key: K,
    entries: VecDeque<Entry<V>>,
    last_put_ms: u64,
    newer: Option<NodeId>,
    older: Option<NodeId>,
}

/// A bounded FIFO-per-key store with LRU eviction and TTL, driven by the caller's clock.
pub(crate) struct CorrelationStore<K, V> {
    limits: CorrelationLimits,
    index: HashMap<K, NodeId, KeyHash>,
    nodes: SlotMap<NodeId, Node<K, V>>,
    newest: Option<NodeId>,
    oldest: Option<NodeId>,
    counters: CorrelationCounters,
}

impl<K: Hash + Eq + Clone, V> CorrelationStore<K, V> {
    /// An empty store with the given limits.
    pub(crate) fn new(limits: CorrelationLimits) -> Self {
        assert!(
            limits.keys_max > 0 && limits.entries_per_key_max > 0,
            "limits must allow one entry"
        );
        Self {
            limits,
            index: HashMap::with_capacity_and_hasher(
                limits.keys_max.min(INDEX_CAPACITY_MIN),
                KeyHash::default(),
            ),
            nodes: SlotMap::with_key(),
            newest: None,
            oldest: None,
            counters: CorrelationCounters::default(),
        }
    }

    /// Appends `value` to `key`'s FIFO at `now_ms`.
    pub(crate) fn put(&mut self, now_ms: u64, key: K, value: V) {
        self.sweep(now_ms);
        self.counters.entries_total += 1;
        let entry = Entry {
            value,
            at_ms: now_ms,
        };
        if let Some(&id) = self.index.get(&key) {
            self.drop_expired_front(id, now_ms);
            let node = &mut self.nodes[id];
            node.entries.push_back(entry);
            node.last_put_ms = now_ms;
            if node.entries.len() > self.limits.entries_per_key_max {
                node.entries.pop_front();
                self.counters.evictions_total += 1;
            }
            self.unlink(id);
            self.push_newest(id);
            return;
        }
        if self.index.len() == self.limits.keys_max {
            let victim = self.oldest.expect("a full store has an oldest key");
            let evicted = self.remove_node(victim);
            self.counters.evictions_total += evicted as u64;
        }
        let id = self.nodes.insert(Node {
            key: key.clone(),
            entries: VecDeque::from([entry]),
            last_put_ms: now_ms,
            newer: None,
            older: None,
        });
        self.index.insert(key, id);
        self.push_newest(id);
        invariant!(self.index.len() <= self.limits.keys_max);
    }

    /// Removes and returns the oldest live entry of `key` for which `matches` holds.
    pub(crate) fn take(&mut self, now_ms: u64, key: &K, matches: impl Fn(&V) -> bool) -> Option<V> {
        self.sweep(now_ms);
        let Some(&id) = self.index.get(key) else {
            self.counters.misses_total += 1;
            return None;
        };
        self.drop_expired_front(id, now_ms);
        let node = &mut self.nodes[id];
        let found = node
            .entries
            .iter()
            .position(|e| matches(&e.value))
            .and_then(|i| node.entries.remove(i));
        let now_empty = node.entries.is_empty();
        if now_empty {
            self.remove_node(id);
        }
        match found {
            Some(e) => {
                self.counters.hits_total += 1;
                Some(e.value)
            }
            None => {
                self.counters.misses_total += 1;
                None
            }
        }
    }

    /// The live entries of `key`, oldest first, without removing them.
    pub(crate) fn peek(&self, now_ms: u64, key: &K) -> impl Iterator<Item = &V> {
        let ttl_ms = self.limits.ttl_ms;
        self.index
            .get(key)
            .map(|&id| self.nodes[id].entries.iter())
            .into_iter()
            .flatten()
            .filter(move |e| e.at_ms + ttl_ms > now_ms)
            .map(|e| &e.value)
    }

    /// Drops every key whose newest entry has expired at `now_ms`.
    pub(crate) fn sweep(&mut self, now_ms: u64) {
        while let Some(id) = self.oldest {
            if self.nodes[id].last_put_ms + self.limits.ttl_ms > now_ms {
                break;
            }
            let expired = self.remove_node(id);
            self.counters.expirations_total += expired as u64;
        }
        // A burst leaves the index and the slots at its size: give that memory back once the
        // store has emptied, so that an idle operator holds what a quiet one would. Node ids
        // never leave the store, so fresh maps are safe.
        if self.index.is_empty() && self.nodes.capacity() > INDEX_CAPACITY_MIN {
            *self = Self {
                counters: self.counters,
                ..Self::new(self.limits)
            };
        }
    }

    /// When the next key expires, if any: the driver's timer for [`Self::sweep`].
    pub(crate) fn next_expiry_ms(&self) -> Option<u64> {
        self.oldest
            .map(|id| self.nodes[id].last_put_ms + self.limits.ttl_ms)
    }

    /// Keys held (some may hold only expired entries until the next sweep).
    pub(crate) fn keys(&self) -> usize {
        self.index.len()
    }

    /// Entries held, expired ones not yet dropped included.
    pub(crate) fn entries(&self) -> usize {
        self.nodes.values().map(|n| n.entries.len()).sum()
    }

    /// The most entries any one key holds.
    pub(crate) fn entries_per_key_most(&self) -> usize {
        self.nodes
            .values()
            .map(|n| n.entries.len())
            .max()
            .unwrap_or(0)
    }

    /// Activity counters.
    pub(crate) fn counters(&self) -> CorrelationCounters {
        self.counters
    }

    fn drop_expired_front(&mut self, id: NodeId, now_ms: u64) {
        let ttl_ms = self.limits.ttl_ms;
        let node = &mut self.nodes[id];
        while node
            .entries
            .front()
            .is_some_and(|e| e.at_ms + ttl_ms <= now_ms)
        {
            node.entries.pop_front();
            self.counters.expirations_total += 1;
        }
    }

    /// Unlinks and deletes a node; returns how many entries it held.
    fn remove_node(&mut self, id: NodeId) -> usize {
        self.unlink(id);
        let node = self.nodes.remove(id).expect("linked node exists");
        self.index.remove(&node.key);
        node.entries.len()
    }

    fn unlink(&mut self, id: NodeId) {
        let (newer, older) = (self.nodes[id].newer.take(), self.nodes[id].older.take());
        match newer {
            Some(n) => self.nodes[n].older = older,
            None => self.newest = older,
        }
        match older {
            Some(o) => self.nodes[o].newer = newer,
            None => self.oldest = newer,
        }
    }

    fn push_newest(&mut self, id: NodeId) {
        self.nodes[id].older = self.newest;
        if let Some(n) = self.newest {
            self.nodes[n].newer = Some(id);
        }
        self.newest = Some(id);
        if self.oldest.is_none() {
            self.oldest = Some(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn small() -> CorrelationLimits {
        CorrelationLimits {
            keys_max: 3,
            entries_per_key_max: 2,
            ttl_ms: 100,
        }
    }

    #[test]
    fn take_returns_entries_oldest_first() {
        let mut s = CorrelationStore::new(CorrelationLimits::default());
        s.put(0, "k", "alice");
        s.put(1, "k", "bob");
        assert_eq!(s.take(2, &"k", |_| true), Some("alice"));
        assert_eq!(s.take(2, &"k", |_| true), Some("bob"));
        assert_eq!(s.take(2, &"k", |_| true), None);
        assert_eq!(s.keys(), 0, "an emptied key is removed");
        assert_eq!((s.counters().hits_total, s.counters().misses_total), (2, 1));
    }

    #[test]
    fn take_skips_entries_that_do_not_match() {
        let mut s = CorrelationStore::new(CorrelationLimits::default());
        s.put(0, "k", ("alice", 1));
        s.put(0, "k", ("bob", 2));
        assert_eq!(s.take(1, &"k", |v| v.1 == 2), Some(("bob", 2)));
        assert_eq!(s.take(1, &"k", |_| true), Some(("alice", 1)));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut s = CorrelationStore::new(small());
        s.put(0, "k", 1);
        s.put(50, "k", 2);
        assert_eq!(
            s.take(100, &"k", |_| true),
            Some(2),
            "the entry put at 0 expired at 100"
        );
        s.put(200, "j", 3);
        assert_eq!(s.next_expiry_ms(), Some(300));
        s.sweep(300);
        assert_eq!(s.keys(), 0);
        assert_eq!(s.counters().expirations_total, 2);
    }

    #[test]
    fn a_full_key_drops_its_oldest_entry() {
        let mut s = CorrelationStore::new(small());
        s.put(0, "k", 1);
        s.put(1, "k", 2);
        s.put(2, "k", 3);
        assert_eq!(s.take(3, &"k", |_| true), Some(2));
        assert_eq!(s.counters().evictions_total, 1);
    }

    #[test]
    fn a_full_store_evicts_the_least_recently_written_key() {
        let mut s = CorrelationStore::new(small());
        s.put(0, "a", 1);
        s.put(1, "b", 1);
        s.put(2, "c", 1);
        s.put(3, "a", 2); // "a" is now the most recently written
        s.put(4, "d", 1); // evicts "b"
        assert_eq!(s.keys(), 3);
        assert_eq!(s.take(5, &"b", |_| true), None);
        assert_eq!(s.take(5, &"a", |_| true), Some(1));
        assert_eq!(s.counters().evictions_total, 1);
    }

    #[test]
    fn a_store_that_empties_after_a_burst_gives_its_memory_back_and_keeps_its_counters() {
        let mut s = CorrelationStore::new(CorrelationLimits::default());
        for k in 0..5_000u32 {
            s.put(0, k, k);
        }
        assert!(s.nodes.capacity() >= 5_000 && s.index.capacity() >= 5_000);
        s.sweep(TTL_MS);
        assert_eq!(s.keys(), 0);
        assert!(
            s.nodes.capacity() <= INDEX_CAPACITY_MIN,
            "slots kept: {}",
            s.nodes.capacity()
        );
        assert!(
            s.index.capacity() < 2 * INDEX_CAPACITY_MIN,
            "index kept: {}",
            s.index.capacity()
        );
        assert_eq!(s.counters().expirations_total, 5_000);
        s.put(TTL_MS, 7, 7);
        assert_eq!(s.take(TTL_MS, &7, |_| true), Some(7));
    }

    #[test]
    fn peek_shows_live_entries_without_taking_them() {
        let mut s = CorrelationStore::new(small());
        s.put(0, "k", 1);
        s.put(60, "k", 2);
        assert_eq!(s.peek(120, &"k").copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(s.keys(), 1);
    }

    /// (key, entries as (value, put time), last write sequence, last write time)
    type ModelKey = (u8, VecDeque<(u32, u64)>, u64, u64);

    /// The obvious model: a list of keys with their entries, last write sequence and time, scanned
    /// fully. A key lives while its last write is younger than the TTL; expired entries are invisible.
    struct Model {
        limits: CorrelationLimits,
        keys: Vec<ModelKey>,
        seq: u64,
    }

    impl Model {
        fn expire(&mut self, now: u64) {
            let ttl = self.limits.ttl_ms;
            self.keys.retain(|k| k.3 + ttl > now);
            for (_, entries, _, _) in &mut self.keys {
                entries.retain(|&(_, at)| at + ttl > now);
            }
        }
        fn put(&mut self, now: u64, k: u8, v: u32) {
            self.expire(now);
            self.seq += 1;
            if let Some(slot) = self.keys.iter_mut().find(|s| s.0 == k) {
                slot.1.push_back((v, now));
                if slot.1.len() > self.limits.entries_per_key_max {
                    slot.1.pop_front();
                }
                slot.2 = self.seq;
                slot.3 = now;
                return;
            }
            if self.keys.len() == self.limits.keys_max {
                let lru = (0..self.keys.len())
                    .min_by_key(|&i| self.keys[i].2)
                    .unwrap();
                self.keys.remove(lru);
            }
            self.keys
                .push((k, VecDeque::from([(v, now)]), self.seq, now));
        }
        fn take(&mut self, now: u64, k: u8, want_even: bool) -> Option<u32> {
            self.expire(now);
            let i = self.keys.iter().position(|s| s.0 == k)?;
            let pos = self.keys[i]
                .1
                .iter()
                .position(|&(v, _)| !want_even || v % 2 == 0);
            let got = pos.and_then(|p| self.keys[i].1.remove(p)).map(|(v, _)| v);
            if self.keys[i].1.is_empty() {
                self.keys.remove(i);
            }
            got
        }
    }

    #[test]
    fn randomized_operations_agree_with_a_reference_model() {
        for seed in 0..200u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let limits = CorrelationLimits {
                keys_max: rng.gen_range(1..6),
                entries_per_key_max: rng.gen_range(1..4),
                ttl_ms: rng.gen_range(1..50),
            };
            let mut store = CorrelationStore::new(limits);
            let mut model = Model {
                limits,
                keys: Vec::new(),
                seq: 0,
            };
            let mut now = 0u64;
            for step in 0..400u32 {
                now += rng.gen_range(0..8);
                let key = rng.gen_range(0..8u8);
                match rng.gen_range(0..10) {
                    0..=4 => {
                        store.put(now, key, step);
                        model.put(now, key, step);
                    }
                    5..=8 => {
                        let even = rng.gen_bool(0.3);
                        let got = store.take(now, &key, |v| !even || v % 2 == 0);
                        assert_eq!(
                            got,
                            model.take(now, key, even),
                            "seed {seed} step {step}: take({key})"
                        );
                    }
                    _ => {
                        store.sweep(now);
                        model.expire(now);
                        assert_eq!(
                            store.keys(),
                            model.keys.len(),
                            "seed {seed} step {step}: keys after sweep"
                        );
                    }
                }
                assert!(store.keys() <= limits.keys_max, "seed {seed}: key limit");
            }
        }
    }
}
