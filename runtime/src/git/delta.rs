//! Git deltas between two versions of one file or one tree, for the local packs.
//!
//! The operator changes a few entries of a large folder per commit; storing each new tree whole
//! made the local store grow by the folder's size on every commit. A delta of the new version
//! against the old one costs a few dozen bytes. Git's own delta search (a sliding window of
//! candidates, a rolling-hash index of each) is far more general than we need: we always know the
//! one base worth trying, the same path's other version, and the versions differ in whole records.
//! So the encoder matches records: tree entries (`mode name\0id`) or lines, looked up by their bytes
//! in the base, with runs of records contiguous in the base merged into one copy. O(size of both).
//! Format: git's `gitformat-pack`, "Deltified representation".

use std::collections::HashMap;

/// How a buffer splits into records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    /// Git tree entries: `mode SP name NUL` and a 20-byte id.
    TreeEntries,
    /// Lines, each with its `\n` (the last may lack one).
    Lines,
}

/// Largest size one copy instruction can carry (3 size bytes).
const COPY_BYTES_MAX: usize = 0xff_ffff;
/// Largest literal one insert instruction can carry.
const INSERT_BYTES_MAX: usize = 0x7f;

/// The delta that turns `base` into `target`. Any two buffers give a correct delta; one that
/// shares no records with its base is about as large as the target (the caller stores the target
/// whole then).
pub fn encode(base: &[u8], target: &[u8], records: Records) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    varint(&mut out, base.len());
    varint(&mut out, target.len());
    let (bs, ts) = (split(base, records), split(target, records));
    let same = |b: &(usize, usize), t: &(usize, usize)| base[b.0..b.1] == target[t.0..t.1];
    // The records both share at the start and at the end (a folder's tree with one entry
    // changed: all but one) are copied where they are, without a lookup.
    let prefix = bs.iter().zip(&ts).take_while(|(b, t)| same(b, t)).count();
    let suffix = bs[prefix..]
        .iter()
        .rev()
        .zip(ts[prefix..].iter().rev())
        .take_while(|(b, t)| same(b, t))
        .count();
    // First occurrence of each record of the base's middle.
    let mut at: HashMap<&[u8], usize> = HashMap::new();
    for &(start, end) in &bs[prefix..bs.len() - suffix] {
        at.entry(&base[start..end]).or_insert(start);
    }
    let mut literal_from: Option<usize> = None;
    // The copy being extended: (base offset, length).
    let mut copy: Option<(usize, usize)> = None;
    for (i, &(start, end)) in ts.iter().enumerate() {
        let record = &target[start..end];
        let found = if i < prefix {
            Some(start)
        } else if i >= ts.len() - suffix {
            Some(bs[bs.len() - (ts.len() - i)].0)
        } else {
            at.get(record).copied()
        };
        match found {
            Some(from) => {
                if let Some(l) = literal_from.take() {
                    insert(&mut out, &target[l..start]);
                }
                copy = match copy {
                    Some((off, len))
                        if off + len == from && len + record.len() <= COPY_BYTES_MAX =>
                    {
                        Some((off, len + record.len()))
                    }
                    Some((off, len)) => {
                        copy_op(&mut out, off, len);
                        Some((from, record.len()))
                    }
                    None => Some((from, record.len())),
                };
            }
            None => {
                if let Some((off, len)) = copy.take() {
                    copy_op(&mut out, off, len);
                }
                literal_from.get_or_insert(start);
            }
        }
    }
    if let Some((off, len)) = copy {
        copy_op(&mut out, off, len);
    }
    if let Some(l) = literal_from {
        insert(&mut out, &target[l..]);
    }
    out
}

/// Record boundaries of `buf`. A tree that does not parse as entries falls back to lines, which
/// is still a correct (if poor) split.
fn split(buf: &[u8], records: Records) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    if records == Records::TreeEntries {
        while start < buf.len() {
            let Some(nul) = buf[start..].iter().position(|b| *b == 0) else {
                break;
            };
            let end = start + nul + 1 + 20;
            if end > buf.len() {
                break;
            }
            out.push((start, end));
            start = end;
        }
        if start == buf.len() {
            return out;
        }
        out.clear();
        start = 0;
    }
    for (i, b) in buf.iter().enumerate() {
        if *b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < buf.len() {
        out.push((start, buf.len()));
    }
    out
}

fn varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn insert(out: &mut Vec<u8>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = bytes.len().min(INSERT_BYTES_MAX);
        out.push(n as u8);
        out.extend_from_slice(&bytes[..n]);
        bytes = &bytes[n..];
    }
}

/// A copy instruction: a flag byte saying which offset (4) and size (3) bytes follow, low first,
/// zero bytes left out.
fn copy_op(out: &mut Vec<u8>, offset: usize, len: usize) {
    debug_assert!(offset <= u32::MAX as usize && (1..=COPY_BYTES_MAX).contains(&len));
    let flag_at = out.len();
    out.push(0x80);
    let mut flag = 0x80u8;
    for i in 0..4 {
        let b = (offset >> (8 * i)) as u8;
        if b != 0 {
            flag |= 1 << i;
            out.push(b);
        }
    }
    for i in 0..3 {
        let b = (len >> (8 * i)) as u8;
        if b != 0 {
            flag |= 0x10 << i;
            out.push(b);
        }
    }
    out[flag_at] = flag;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Applies a delta as git does (the reader's side), to check the encoder round-trips.
    pub(crate) fn apply(base: &[u8], delta: &[u8]) -> Vec<u8> {
        let mut i = 0;
        let mut read_varint = || {
            let (mut n, mut shift) = (0usize, 0);
            loop {
                let b = delta[i];
                i += 1;
                n |= ((b & 0x7f) as usize) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    return n;
                }
            }
        };
        assert_eq!(read_varint(), base.len(), "base size");
        let size = read_varint();
        let mut out = Vec::new();
        while i < delta.len() {
            let op = delta[i];
            i += 1;
            if op & 0x80 != 0 {
                let (mut off, mut len) = (0usize, 0usize);
                for b in 0..4 {
                    if op & (1 << b) != 0 {
                        off |= (delta[i] as usize) << (8 * b);
                        i += 1;
                    }
                }
                for b in 0..3 {
                    if op & (0x10 << b) != 0 {
                        len |= (delta[i] as usize) << (8 * b);
                        i += 1;
                    }
                }
                if len == 0 {
                    len = 0x10000;
                }
                out.extend_from_slice(&base[off..off + len]);
            } else {
                assert!(op > 0, "0 is reserved");
                out.extend_from_slice(&delta[i..i + op as usize]);
                i += op as usize;
            }
        }
        assert_eq!(out.len(), size, "result size");
        out
    }

    fn tree(entries: &[(&str, u8)]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, id) in entries {
            t.extend_from_slice(format!("100644 {name}\0").as_bytes());
            t.extend_from_slice(&[*id; 20]);
        }
        t
    }

    #[test]
    fn one_changed_entry_of_a_large_tree_costs_about_one_entry() {
        let names: Vec<String> = (0..5_000).map(|i| format!("config-{i:05}.yaml")).collect();
        let old: Vec<(&str, u8)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let mut new = old.clone();
        new[2_500].1 = 2;
        new.remove(100);
        new.push(("zz-new.yaml", 3));
        let (old, new) = (tree(&old), tree(&new));
        let d = encode(&old, &new, Records::TreeEntries);
        assert_eq!(apply(&old, &d), new);
        assert!(d.len() < 200, "{} bytes for three changed entries", d.len());
    }

    #[test]
    fn any_pair_round_trips_including_empty_unrelated_and_huge_runs() {
        let big: Vec<u8> = (0..3 * COPY_BYTES_MAX / 2)
            .map(|i| b"ab\n"[i % 3])
            .collect();
        let cases: Vec<(Vec<u8>, Vec<u8>, Records)> = vec![
            (vec![], vec![], Records::Lines),
            (b"a\nb\n".to_vec(), vec![], Records::Lines),
            (vec![], b"x\ny".to_vec(), Records::Lines),
            (
                b"k: 1\nv: 2\n".to_vec(),
                b"k: 1\nv: 3\nw: 4".to_vec(),
                Records::Lines,
            ),
            (b"unrelated".to_vec(), vec![7u8; 1_000], Records::Lines),
            (
                b"not a tree".to_vec(),
                b"not a tree either\n".to_vec(),
                Records::TreeEntries,
            ),
            // Runs longer than one copy, and offsets past 16 bits.
            (
                big.clone(),
                [b"head\n".as_slice(), &big].concat(),
                Records::Lines,
            ),
        ];
        for (base, target, records) in cases {
            let d = encode(&base, &target, records);
            assert_eq!(
                apply(&base, &d),
                target,
                "{records:?} {} -> {}",
                base.len(),
                target.len()
            );
        }
    }
}
