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

/// One path's entry, packed: with the 128-bit key it takes 64 bytes (as two `Option`s of the
/// public types it took 80), so the map is a fifth smaller and more of it stays in cache.
#[derive(Clone, Copy, Debug, Default)]
struct PathState {
    content: u64,
    dest: u32,
    epoch: u32,
    /// The folder (destination id) whose listing or push last showed the file: a later listing
    /// of that folder without it clears it, member or not.
    folder: u32,
    blob: [u8; 20],
    gid: u16,
    flags: u8,
}

/// The branch holds a file at the path (`blob`).
const HELD: u8 = 1;
/// `content` is the content hash of that file.
const CONTENT_KNOWN: u8 = 2;
/// The path is a live object's file (`dest`, `gid`, `epoch`). One object per path: two folders on
/// one branch whose paths met would be writing one file for two objects, and distinct folders give
/// distinct paths for every real resource name.
const MEMBER: u8 = 4;

impl PathState {
    fn held(&self) -> Option<Held> {
        (self.flags & HELD != 0).then_some(Held {
            content: (self.flags & CONTENT_KNOWN != 0).then_some(self.content),
            blob: self.blob,
        })
    }

    fn set_held(&mut self, held: Option<Held>) {
        self.flags &= !(HELD | CONTENT_KNOWN);
        if let Some(h) = held {
            self.flags |= HELD;
            self.blob = h.blob;
            if let Some(c) = h.content {
                self.flags |= CONTENT_KNOWN;
                self.content = c;
            }
        }
    }

    fn member(&self) -> Option<Member> {
        (self.flags & MEMBER != 0).then_some(Member {
            dest: self.dest,
            gid: self.gid,
            epoch: self.epoch,
        })
    }

    fn set_member(&mut self, member: Option<Member>) {
        self.flags &= !MEMBER;
        if let Some(m) = member {
            self.flags |= MEMBER;
            (self.dest, self.gid, self.epoch) = (m.dest, m.gid, m.epoch);
        }
    }

    fn is_empty(&self) -> bool {
        self.flags & (HELD | MEMBER) == 0
    }
}

/// The paths of one branch, keyed by `key128(path)`. Looked up only: no iteration order reaches
/// an output (the iterations below remove entries or answer "any").
#[derive(Debug, Default)]
pub(crate) struct BranchPaths {
    map: HashMap<u128, PathState, KeyHash>,
}

impl BranchPaths {
    /// What the branch holds at the path, if the core knows of a file there.
    pub(crate) fn held(&self, path_key: u128) -> Option<Held> {
        self.map.get(&path_key)?.held()
    }

    /// Records what the branch holds at the path (`None`: no file).
    pub(crate) fn set_held(&mut self, path_key: u128, held: Option<Held>) {
        match held {
            Some(_) => self.map.entry(path_key).or_default().set_held(held),
            None => self.update(path_key, |p| p.set_held(None)),
        }
    }

    /// Records that folder `folder`'s listing (or a push into it) showed the file at the path.
    pub(crate) fn set_folder(&mut self, path_key: u128, folder: u32) {
        if let Some(p) = self.map.get_mut(&path_key) {
            p.folder = folder;
        }
    }

    /// Folder `folder` was listed: a file it showed before and `listed` now lacks is gone,
    /// whether or not it is a live object's. (Without this, a file an outside writer removed
    /// after its object went stayed believed, and an identical re-creation was not written.)
    pub(crate) fn forget_unlisted(&mut self, folder: u32, listed: impl Fn(u128) -> bool) {
        self.map.retain(|k, p| {
            if p.flags & HELD != 0 && p.folder == folder && !listed(*k) {
                p.set_held(None);
            }
            !p.is_empty()
        });
    }

    /// Whether the path is the file of a live object routed to folder `dest`.
    pub(crate) fn is_member(&self, path_key: u128, dest: u32) -> bool {
        self.map
            .get(&path_key)
            .and_then(PathState::member)
            .is_some_and(|m| m.dest == dest)
    }

    /// Records the path as the file of a live object.
    pub(crate) fn add_member(&mut self, path_key: u128, member: Member) {
        self.map
            .entry(path_key)
            .or_default()
            .set_member(Some(member));
    }

    /// The path is no longer folder `dest`'s object's file; returns whether it was.
    pub(crate) fn remove_member(&mut self, path_key: u128, dest: u32) -> bool {
        let mut was = false;
        self.update(path_key, |p| {
            if p.member().is_some_and(|m| m.dest == dest) {
                p.set_member(None);
                was = true;
            }
        });
        was
    }

    /// The paths of folder `dest`'s live objects.
    pub(crate) fn members_of(&self, dest: u32) -> impl Iterator<Item = u128> + '_ {
        self.map
            .iter()
            .filter(move |(_, p)| p.member().is_some_and(|m| m.dest == dest))
            .map(|(k, _)| *k)
    }

    /// Drops the member records for which `gone` holds.
    pub(crate) fn drop_members(&mut self, mut gone: impl FnMut(&Member) -> bool) {
        self.map.retain(|_, p| {
            if p.member().as_ref().is_some_and(&mut gone) {
                p.set_member(None);
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
        assert_eq!(p.held(1), Some(HELD), "the file outlives its object");
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
        assert_eq!(p.map.len(), 1);
        assert_eq!(p.held(4), Some(HELD));
        p.set_held(4, None);
        assert!(p.map.is_empty());
    }

    #[test]
    fn an_entry_with_its_key_fills_one_cache_line() {
        assert_eq!(std::mem::size_of::<(u128, PathState)>(), 64);
    }

    #[test]
    fn a_file_of_unknown_content_and_a_member_read_back_as_written() {
        let mut p = BranchPaths::default();
        let unknown = Held {
            content: None,
            blob: [9; 20],
        };
        let m = Member {
            dest: u32::MAX,
            gid: u16::MAX,
            epoch: 7,
        };
        p.add_member(1, m);
        p.set_held(1, Some(HELD));
        p.set_held(1, Some(unknown));
        assert_eq!(
            p.held(1),
            Some(unknown),
            "a content hash is forgotten with its file"
        );
        assert!(p.is_member(1, u32::MAX));
        assert_eq!(p.map[&1].member(), Some(m));
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
