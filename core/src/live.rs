//! What the watch side remembers of each live object: hashes, not documents.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// A 128-bit key for a string (identifier or path); collisions are negligible at any cluster size.
pub(crate) fn key128(s: &str) -> u128 {
    xxh3_128(s.as_bytes())
}

/// A 64-bit fingerprint of a short string (resourceVersion, uid).
pub(crate) fn tag64(s: impl AsRef<[u8]>) -> u64 {
    xxh3_64(s.as_ref())
}

/// A hasher for keys that are hashes already ([`key128`] fingerprints and structs of them): one
/// multiply per word. A general-purpose hasher spent more on building its state than the lookup
/// cost. Fixed (no per-process seed), like every hasher in the core; the maps it serves are looked
/// up, never iterated into an output.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // hashbrown takes its bucket from the low bits and its tag from the top seven: fold the
        // well-mixed high half down over the low one.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.mix(xxh3_64(bytes));
    }

    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }

    fn write_u16(&mut self, v: u16) {
        self.mix(u64::from(v));
    }

    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64 ^ (v >> 64) as u64);
    }

    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }

    fn write_isize(&mut self, v: isize) {
        self.mix(v as u64);
    }
}

/// Builds [`KeyHasher`]s.
pub(crate) type KeyHash = BuildHasherDefault<KeyHasher>;

/// The last state of one live object as the watch saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LiveEntry {
    /// Fingerprint of its last resourceVersion: the base of the next write's admission record.
    pub rv: u64,
    /// Fingerprint of its uid: a new uid under the same name is a re-creation.
    pub uid: u64,
    /// Content hash of its sanitized form.
    pub content: u64,
    /// The list epoch of its stream in which it was last seen.
    pub epoch: u32,
    /// Whether it is being deleted, and the fingerprints that go with it: [`Terminating`] spread
    /// over three fields, so that its tag fills the space after `epoch` and an entry with its key
    /// takes one cache line (a map holds one per live object).
    term: TermKind,
    term_rv: u64,
    term_content: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TermKind {
    No,
    Since,
    SinceUnseen,
}

impl LiveEntry {
    /// Whether it is being deleted (finalizers hold it), and from which version.
    pub(crate) fn terminating(&self) -> Terminating {
        match self.term {
            TermKind::No => Terminating::No,
            TermKind::Since => Terminating::Since {
                rv: self.term_rv,
                content: self.term_content,
            },
            TermKind::SinceUnseen => Terminating::SinceUnseen {
                content: self.term_content,
            },
        }
    }
}

/// A deletion in progress: the object carries `deletionTimestamp` and goes when its finalizers
/// are gone. The DELETE admission was made against the version before the deletion began, so
/// that version, not the last one seen, is the base its final watch event joins on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Terminating {
    /// Not being deleted.
    #[default]
    No,
    /// Being deleted; the fingerprints of the last version seen before the deletion began and
    /// of its content (the DELETE's record names both; users may edit the object meanwhile).
    Since {
        /// The version.
        rv: u64,
        /// Its sanitized content.
        content: u64,
    },
    /// Being deleted since before the watch saw it (first seen so in a list): the base is unknown.
    /// The content is that of the first version seen being deleted, which is the content the
    /// DELETE was admitted on unless someone edited the object before the list.
    SinceUnseen {
        /// That content.
        content: u64,
    },
}

/// Live objects of one watch stream.
#[derive(Debug, Default)]
pub(crate) struct StreamLive {
    epoch: u32,
    objects: HashMap<u128, LiveEntry, KeyHash>,
}

impl StreamLive {
    /// Starts a (re)list: objects not seen again before [`Self::finish_list`] are gone.
    pub(crate) fn begin_list(&mut self) -> u32 {
        self.epoch += 1;
        self.epoch
    }

    /// The current list epoch.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Forgets objects the last list did not show; returns how many.
    pub(crate) fn finish_list(&mut self) -> usize {
        let epoch = self.epoch;
        let before = self.objects.len();
        self.objects.retain(|_, e| e.epoch == epoch);
        before - self.objects.len()
    }

    /// The object's last state.
    pub(crate) fn get(&self, id: u128) -> Option<&LiveEntry> {
        self.objects.get(&id)
    }

    /// Records the object's new state, stamped with the current epoch.
    pub(crate) fn set(
        &mut self,
        id: u128,
        rv: u64,
        uid: u64,
        content: u64,
        terminating: Terminating,
    ) -> Option<LiveEntry> {
        let (term, term_rv, term_content) = match terminating {
            Terminating::No => (TermKind::No, 0, 0),
            Terminating::Since { rv, content } => (TermKind::Since, rv, content),
            Terminating::SinceUnseen { content } => (TermKind::SinceUnseen, 0, content),
        };
        self.objects.insert(
            id,
            LiveEntry {
                rv,
                uid,
                content,
                epoch: self.epoch,
                term,
                term_rv,
                term_content,
            },
        )
    }

    /// Forgets a deleted object.
    pub(crate) fn remove(&mut self, id: u128) -> Option<LiveEntry> {
        self.objects.remove(&id)
    }

    /// Objects tracked.
    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_with_its_key_fills_one_cache_line() {
        assert_eq!(std::mem::size_of::<(u128, LiveEntry)>(), 64);
    }

    #[test]
    fn every_kind_of_deletion_reads_back_as_set() {
        let mut live = StreamLive::default();
        for t in [
            Terminating::No,
            Terminating::Since { rv: 3, content: 4 },
            Terminating::SinceUnseen { content: 5 },
        ] {
            live.set(1, 2, 7, 9, t);
            assert_eq!(live.get(1).map(LiveEntry::terminating), Some(t));
        }
    }

    fn spread(hashes: impl Iterator<Item = u64>, buckets: usize) -> (usize, usize) {
        let mut low = vec![0usize; buckets];
        let mut tags = [0usize; 128];
        for h in hashes {
            low[h as usize % buckets] += 1;
            tags[(h >> 57) as usize] += 1;
        }
        (*low.iter().max().unwrap(), *tags.iter().max().unwrap())
    }

    #[test]
    fn the_key_hasher_spreads_keys_over_buckets_and_tags() {
        use std::hash::{BuildHasher, Hash};
        let build = KeyHash::default();
        let hash = |v: &dyn Fn(&mut KeyHasher)| {
            let mut h = build.build_hasher();
            v(&mut h);
            h.finish()
        };
        // 65,536 identifiers into 4,096 buckets: 16 expected per bucket, 512 per tag value.
        let idents: Vec<u128> = (0..65_536)
            .map(|i| key128(&format!("v1/configmaps/ns/cm-{i}")))
            .collect();
        let (bucket_max, tag_max) = spread(idents.iter().map(|k| hash(&|h| k.hash(h))), 4096);
        assert!(bucket_max < 48 && tag_max < 700, "{bucket_max} {tag_max}");
        // Keys that differ only in a small field (an operation) or a counter still spread.
        let small = (0..65_536u64).map(|i| hash(&|h| (7u128, (i % 3) as u8, i).hash(h)));
        let (bucket_max, tag_max) = spread(small, 4096);
        assert!(bucket_max < 48 && tag_max < 700, "{bucket_max} {tag_max}");
    }

    #[test]
    fn a_relist_forgets_objects_it_did_not_see() {
        let mut s = StreamLive::default();
        s.begin_list();
        s.set(1, 1, 1, 1, Terminating::No);
        s.set(2, 1, 1, 1, Terminating::No);
        assert_eq!(s.finish_list(), 0);
        s.begin_list();
        s.set(1, 2, 1, 1, Terminating::No);
        assert_eq!(s.finish_list(), 1, "object 2 was deleted during the gap");
        assert!(s.get(2).is_none() && s.get(1).is_some());
    }
}
