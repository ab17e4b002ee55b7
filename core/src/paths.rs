//! What the core knows of each path on a branch: the file the branch holds there, and the live
//! object whose file it is.
//!
//! Both are looked up for every changing watch event, by the same key. Kept in one map, an event
//! costs one cache miss instead of two once the branch tracks more paths than the cache holds.
//! Entries that know nothing are removed, so the map holds only paths with a file or an object.

use std::collections::HashMap;

use crate::live::KeyHash;

/// What the core believes a path on a branch holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// Content hash of the object whose file it is, when known.
    pub content: Option<u64>,
    /// The file's blob id (from the executor for files the core pushed, or from a listing).
    pub blob: [u8; 20],
}

/// The live object whose file a path is: routed to folder `dest` from stream `gid`, last seen in
/// that stream's list epoch `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub dest: u32,
    pub gid: u16,
    pub epoch: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct PathState {
    held: Option<Held>,
    /// One object per path: two folders on one branch whose paths met would be writing one file
    /// for two objects. Distinct folders give distinct paths for every real resource name.
    member: Option<Member>,
}

impl PathState {
    fn is_empty(&self) -> bool {
        self.held.is_none() && self.member.is_none()
    }
}

/// The paths of one branch, keyed by `key128(path)`. Looked up only: no iteration order reaches
/// an output (the iterations below remove entries or answer "any").
#[derive(Debug, Default)]
pub(crate) struct BranchPaths {
    map: HashMap<u128, PathState, KeyHash>,
}

impl BranchPaths {
    pub fn held(&self, path_key: u128) -> Option<&Held> {
        self.map.get(&path_key)?.held.as_ref()
    }

    pub fn held_mut(&mut self, path_key: u128) -> Option<&mut Held> {
        self.map.get_mut(&path_key)?.held.as_mut()
    }

    /// Records what the branch holds at the path (`None`: no file).
    pub fn set_held(&mut self, path_key: u128, held: Option<Held>) {
        match held {
            Some(h) => self.map.entry(path_key).or_default().held = Some(h),
            None => self.update(path_key, |p| p.held = None),
        }
    }

    /// Paths with a file the core knows of.
    pub fn held_count(&self) -> usize {
        self.map.values().filter(|p| p.held.is_some()).count()
    }

    /// Whether the path is the file of a live object routed to folder `dest`.
    pub fn is_member(&self, path_key: u128, dest: u32) -> bool {
        self.map
            .get(&path_key)
            .and_then(|p| p.member)
            .is_some_and(|m| m.dest == dest)
    }

    /// Records the path as the file of a live object.
    pub fn add_member(&mut self, path_key: u128, member: Member) {
        self.map.entry(path_key).or_default().member = Some(member);
    }

    /// The path is no longer folder `dest`'s object's file; returns whether it was.
    pub fn remove_member(&mut self, path_key: u128, dest: u32) -> bool {
        let mut was = false;
        self.update(path_key, |p| {
            if p.member.is_some_and(|m| m.dest == dest) {
                p.member = None;
                was = true;
            }
        });
        was
    }

    /// The paths of folder `dest`'s live objects.
    pub fn members_of(&self, dest: u32) -> impl Iterator<Item = u128> + '_ {
        self.map
            .iter()
            .filter(move |(_, p)| p.member.is_some_and(|m| m.dest == dest))
            .map(|(k, _)| *k)
    }

    /// Drops the member records for which `gone` holds.
    pub fn drop_members(&mut self, mut gone: impl FnMut(&Member) -> bool) {
        self.map.retain(|_, p| {
            if p.member.as_ref().is_some_and(&mut gone) {
                p.member = None;
            }
            !p.is_empty()
        });
    }

    /// Changes the entry of `path_key`, if there is one, removing it if left empty.
    fn update(&mut self, path_key: u128, f: impl FnOnce(&mut PathState)) {
        use std::collections::hash_map::Entry;
        if let Entry::Occupied(mut e) = self.map.entry(path_key) {
            f(e.get_mut());
            if e.get().is_empty() {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELD: Held = Held {
        content: Some(7),
        blob: [1; 20],
    };

    fn member(dest: u32) -> Member {
        Member {
            dest,
            gid: 0,
            epoch: 1,
        }
    }

    #[test]
    fn the_file_and_the_object_of_a_path_are_kept_and_forgotten_independently() {
        let mut p = BranchPaths::default();
        p.set_held(1, Some(HELD));
        p.add_member(1, member(3));
        assert!(p.remove_member(1, 3));
        assert_eq!(p.held(1), Some(&HELD), "the file outlives its object");
        p.add_member(1, member(3));
        p.set_held(1, None);
        assert!(p.is_member(1, 3), "the object outlives its file");
        assert_eq!(p.held(1), None);
    }

    #[test]
    fn a_path_that_knows_nothing_takes_no_memory() {
        let mut p = BranchPaths::default();
        p.set_held(1, Some(HELD));
        p.add_member(2, member(3));
        p.add_member(4, member(3));
        p.set_held(4, Some(HELD));
        p.set_held(1, None);
        assert!(p.remove_member(2, 3));
        p.drop_members(|m| m.dest == 3);
        assert_eq!((p.map.len(), p.held_count()), (1, 1));
        p.set_held(4, None);
        assert!(p.map.is_empty());
    }

    #[test]
    fn membership_is_per_folder() {
        let mut p = BranchPaths::default();
        p.add_member(1, member(3));
        assert!(!p.is_member(1, 4));
        assert!(!p.remove_member(1, 4), "another folder's object stays");
        assert!(p.is_member(1, 3));
        p.add_member(2, member(4));
        let mut of_3: Vec<_> = p.members_of(3).collect();
        of_3.sort();
        assert_eq!(of_3, [1]);
    }
}
