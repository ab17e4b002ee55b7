//! What the watch side remembers of each live object: hashes, not documents.

use std::collections::HashMap;

use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3Builder};

/// A 128-bit key for a string (identifier or path); collisions are negligible at any cluster size.
pub fn key128(s: &str) -> u128 {
    xxh3_128(s.as_bytes())
}

/// A 64-bit fingerprint of a short string (resourceVersion, uid).
pub fn tag64(s: &str) -> u64 {
    xxh3_64(s.as_bytes())
}

/// The last state of one live object as the watch saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveEntry {
    /// Fingerprint of its last resourceVersion: the base of the next write's admission record.
    pub rv: u64,
    /// Fingerprint of its uid: a new uid under the same name is a re-creation.
    pub uid: u64,
    /// Content hash of its sanitized form.
    pub content: u64,
    /// The list epoch of its stream in which it was last seen.
    pub epoch: u32,
}

/// Live objects of one watch stream.
#[derive(Debug, Default)]
pub struct StreamLive {
    epoch: u32,
    objects: HashMap<u128, LiveEntry, Xxh3Builder>,
}

impl StreamLive {
    /// Starts a (re)list: objects not seen again before [`Self::finish_list`] are gone.
    pub fn begin_list(&mut self) -> u32 {
        self.epoch += 1;
        self.epoch
    }

    /// The current list epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Forgets objects the last list did not show; returns how many.
    pub fn finish_list(&mut self) -> usize {
        let epoch = self.epoch;
        let before = self.objects.len();
        self.objects.retain(|_, e| e.epoch == epoch);
        before - self.objects.len()
    }

    /// The object's last state.
    pub fn get(&self, id: u128) -> Option<&LiveEntry> {
        self.objects.get(&id)
    }

    /// Records the object's new state, stamped with the current epoch.
    pub fn set(&mut self, id: u128, rv: u64, uid: u64, content: u64) -> Option<LiveEntry> {
        self.objects.insert(
            id,
            LiveEntry {
                rv,
                uid,
                content,
                epoch: self.epoch,
            },
        )
    }

    /// Forgets a deleted object.
    pub fn remove(&mut self, id: u128) -> Option<LiveEntry> {
        self.objects.remove(&id)
    }

    /// Objects tracked.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is tracked.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relist_forgets_objects_it_did_not_see() {
        let mut s = StreamLive::default();
        s.begin_list();
        s.set(1, 1, 1, 1);
        s.set(2, 1, 1, 1);
        assert_eq!(s.finish_list(), 0);
        s.begin_list();
        s.set(1, 2, 1, 1);
        assert_eq!(s.finish_list(), 1, "object 2 was deleted during the gap");
        assert!(s.get(2).is_none() && s.get(1).is_some());
    }
}
