//! A pack writer in the manner of `git fast-import`: every object deflated once at zlib's fastest
//! level, written as it comes (the pack streams to a file: its memory is one object's), and the
//! index computed from what was written (libgit2's pack builder compresses at the default level
//! and its indexer then inflates and hashes everything again). An object may be stored as a delta
//! against one written before it in the same pack (`OFS_DELTA`); the caller picks the base.
//! Formats: git's `gitformat-pack` (pack version 2, index version 2).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::ZlibEncoder;
use flate2::Compression;
use git2::{ObjectType, Oid};

/// Offsets at or above this go to the index's 8-byte table.
const OFFSET_LARGE_MIN: u64 = 0x8000_0000;
/// The pack type of an object stored as a delta against an earlier offset in the same pack.
const OFS_DELTA: u8 = 6;

/// One object as it goes into the pack whole.
pub struct Object<'a> {
    /// Its id (the caller's: not recomputed).
    pub id: Oid,
    /// Commit, tree, blob or tag.
    pub kind: ObjectType,
    /// Its contents.
    pub data: &'a [u8],
}

fn type_code(kind: ObjectType) -> u8 {
    match kind {
        ObjectType::Commit => 1,
        ObjectType::Tree => 2,
        ObjectType::Blob => 3,
        ObjectType::Tag => 4,
        other => panic!("{other:?} objects are not stored in packs"),
    }
}

/// A pack being written: `create`, then exactly `count` objects, then `finish`.
pub struct PackWriter {
    dir: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    sha: sha1_smol::Sha1,
    offset: u64,
    count: u32,
    /// (id, CRC-32 of the entry's bytes, offset), in the order written.
    entries: Vec<(Oid, u32, u64)>,
    /// Reused for each entry's bytes.
    buf: Vec<u8>,
}

impl PackWriter {
    /// Starts a pack of `count` objects in `pack_dir`, under a temporary name.
    pub fn create(pack_dir: &Path, count: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(pack_dir)?;
        let count = u32::try_from(count)
            .map_err(|_| std::io::Error::other("more objects than a pack holds"))?;
        // Unique among concurrent writers of this directory (one per clone, serialised, but a
        // crashed writer may have left its file behind).
        let tmp = pack_dir.join(format!(
            "tmp_pack_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let mut w = Self {
            dir: pack_dir.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, File::create(&tmp)?),
            tmp,
            sha: sha1_smol::Sha1::new(),
            offset: 0,
            count,
            entries: Vec::with_capacity(count as usize),
            buf: Vec::new(),
        };
        let mut head = Vec::with_capacity(12);
        head.extend_from_slice(b"PACK");
        head.extend_from_slice(&2u32.to_be_bytes());
        head.extend_from_slice(&count.to_be_bytes());
        w.emit(&head)?;
        Ok(w)
    }

    fn emit(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sha.update(bytes);
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes one entry: the header (type, size), `base` (an `OFS_DELTA`'s offset), `data`
    /// deflated. Returns its offset.
    fn entry(&mut self, id: Oid, code: u8, base: Option<u64>, data: &[u8]) -> std::io::Result<u64> {
        assert!(
            self.entries.len() < self.count as usize,
            "more objects than the pack was created for"
        );
        let start = self.offset;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // Header: type and size, 4 bits of size then 7 per continuation byte.
        let mut size = data.len() as u64;
        let mut byte = (code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            buf.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        buf.push(byte);
        if let Some(base) = base {
            // The distance back to the base, big-endian 7 bits a byte, each continuation
            // adding one (git's "offset encoding").
            assert!(base < start, "a delta's base is written before it");
            let mut n = start - base;
            let mut tmp = [0u8; 10];
            let mut pos = tmp.len() - 1;
            tmp[pos] = (n & 0x7f) as u8;
            n >>= 7;
            while n > 0 {
                n -= 1;
                pos -= 1;
                tmp[pos] = 0x80 | (n & 0x7f) as u8;
                n >>= 7;
            }
            buf.extend_from_slice(&tmp[pos..]);
        }
        let mut z = ZlibEncoder::new(buf, Compression::fast());
        z.write_all(data)?;
        let buf = z.finish()?;
        let crc = crc32fast::hash(&buf);
        self.emit(&buf)?;
        self.buf = buf;
        self.entries.push((id, crc, start));
        Ok(start)
    }

    /// Writes `data` whole; returns its offset, for deltas against it.
    pub fn whole(&mut self, id: Oid, kind: ObjectType, data: &[u8]) -> std::io::Result<u64> {
        self.entry(id, type_code(kind), None, data)
    }

    /// Writes object `id` as `delta` (see [`super::delta`]) against the object at `base`, an
    /// offset this writer returned.
    pub fn delta(&mut self, id: Oid, base: u64, delta: &[u8]) -> std::io::Result<u64> {
        self.entry(id, OFS_DELTA, Some(base), delta)
    }

    /// Ends the pack: its checksum, its index, both renamed into place (the index last, so readers
    /// never see a pack without all its bytes). Returns its name (the hex SHA-1 of its contents).
    pub fn finish(mut self) -> std::io::Result<String> {
        assert_eq!(
            self.entries.len(),
            self.count as usize,
            "as many objects as the pack was created for"
        );
        let checksum = self.sha.digest().bytes();
        self.out.write_all(&checksum)?;
        self.out.flush()?;
        let idx = index(&mut self.entries, &checksum);
        let name: String = checksum.iter().map(|b| format!("{b:02x}")).collect();
        let final_pack = self.dir.join(format!("pack-{name}.pack"));
        let final_idx = self.dir.join(format!("pack-{name}.idx"));
        let tmp_idx = self.dir.join(format!("tmp_idx_{name}"));
        std::fs::rename(&self.tmp, &final_pack)?;
        std::fs::write(&tmp_idx, &idx)?;
        std::fs::rename(&tmp_idx, &final_idx)?;
        Ok(name)
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // Abandoned (an error midway): leave no partial file behind. After `finish` the
        // temporary name is gone and this does nothing.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The version-2 index of a pack's entries.
fn index(entries: &mut [(Oid, u32, u64)], checksum: &[u8; 20]) -> Vec<u8> {
    entries.sort_by_key(|e| e.0);
    debug_assert!(
        entries.windows(2).all(|w| w[0].0 != w[1].0),
        "object ids are unique"
    );
    let mut idx = Vec::with_capacity(8 + 1024 + entries.len() * 28 + 40);
    idx.extend_from_slice(&[0xff, b't', b'O', b'c', 0, 0, 0, 2]);
    let mut fanout = [0u32; 256];
    for (id, _, _) in entries.iter() {
        fanout[id.as_bytes()[0] as usize] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        running += count;
        idx.extend_from_slice(&running.to_be_bytes());
    }
    for (id, _, _) in entries.iter() {
        idx.extend_from_slice(id.as_bytes());
    }
    for (_, crc, _) in entries.iter() {
        idx.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for (_, _, offset) in entries.iter() {
        if *offset < OFFSET_LARGE_MIN {
            idx.extend_from_slice(&(*offset as u32).to_be_bytes());
        } else {
            idx.extend_from_slice(&(0x8000_0000 | large.len() as u32).to_be_bytes());
            large.push(*offset);
        }
    }
    for offset in large {
        idx.extend_from_slice(&offset.to_be_bytes());
    }
    idx.extend_from_slice(checksum);
    let idx_checksum = sha1_smol::Sha1::from(&idx).digest().bytes();
    idx.extend_from_slice(&idx_checksum);
    idx
}

/// Writes `objects` (ids unique) whole as one pack into `pack_dir`; returns its name.
pub fn write(pack_dir: &Path, objects: &[Object<'_>]) -> std::io::Result<String> {
    let mut w = PackWriter::create(pack_dir, objects.len())?;
    for o in objects {
        w.whole(o.id, o.kind, o.data)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libgit2_reads_every_object_back_and_git_verifies_the_pack() {
        let src = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(src.path()).unwrap();
        // Sizes around the header's 4- and 11-bit boundaries, an empty blob, and a large one.
        let blobs: Vec<Vec<u8>> = [0usize, 1, 15, 16, 2047, 2048, 300_000]
            .iter()
            .map(|n| (0..*n).map(|i| (i * 7 % 251) as u8).collect())
            .collect();
        let ids: Vec<Oid> = blobs
            .iter()
            .map(|b| Oid::hash_object(ObjectType::Blob, b).unwrap())
            .collect();
        let mut objects: Vec<Object<'_>> = ids
            .iter()
            .zip(&blobs)
            .map(|(id, b)| Object {
                id: *id,
                kind: ObjectType::Blob,
                data: b,
            })
            .collect();
        let mut tb = repo.treebuilder(None).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let target = git2::Repository::init_bare(dst.path()).unwrap();
        // The tree refers to the blobs; it is written to the source repository only to get its bytes.
        for (i, b) in blobs.iter().enumerate() {
            let id = repo.blob(b).unwrap();
            tb.insert(format!("f{i}"), id, 0o100644).unwrap();
        }
        let tree_id = tb.write().unwrap();
        let odb = repo.odb().unwrap();
        let tree_data = odb.read(tree_id).unwrap().data().to_vec();
        objects.push(Object {
            id: tree_id,
            kind: ObjectType::Tree,
            data: &tree_data,
        });
        let name = write(&dst.path().join("objects/pack"), &objects).unwrap();
        for (id, b) in ids.iter().zip(&blobs) {
            assert_eq!(target.find_blob(*id).unwrap().content(), &b[..]);
        }
        assert_eq!(target.find_tree(tree_id).unwrap().len(), blobs.len());
        let out = std::process::Command::new("git")
            .args(["verify-pack", "-v"])
            .arg(dst.path().join(format!("objects/pack/pack-{name}.idx")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git verify-pack: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn objects_stored_as_deltas_read_back_and_git_verifies_the_pack() {
        let dst = tempfile::tempdir().unwrap();
        let target = git2::Repository::init_bare(dst.path()).unwrap();
        // Three versions of a file: the newest whole, each older one a delta against the next
        // (as git stores them), and a chain two deep.
        let v3: Vec<u8> = (0..2_000)
            .flat_map(|i| format!("key{i}: v\n").into_bytes())
            .collect();
        let v2 = [b"first: line\n".as_slice(), &v3[..v3.len() - 9]].concat();
        let v1 = [v2.as_slice(), b"more: 1\n"].concat();
        let id = |b: &[u8]| Oid::hash_object(ObjectType::Blob, b).unwrap();
        let mut w = PackWriter::create(&dst.path().join("objects/pack"), 3).unwrap();
        let at3 = w.whole(id(&v3), ObjectType::Blob, &v3).unwrap();
        let d2 = super::super::delta::encode(&v3, &v2, super::super::delta::Records::Lines);
        let at2 = w.delta(id(&v2), at3, &d2).unwrap();
        let d1 = super::super::delta::encode(&v2, &v1, super::super::delta::Records::Lines);
        w.delta(id(&v1), at2, &d1).unwrap();
        assert!(d1.len() < 40 && d2.len() < 60, "{} {}", d1.len(), d2.len());
        let name = w.finish().unwrap();
        for v in [&v1, &v2, &v3] {
            assert_eq!(target.find_blob(id(v)).unwrap().content(), &v[..]);
        }
        let out = std::process::Command::new("git")
            .args(["verify-pack", "-v"])
            .arg(dst.path().join(format!("objects/pack/pack-{name}.idx")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git verify-pack: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("chain length = 2: 1 object"), "{listing}");
        let leftovers = std::fs::read_dir(dst.path().join("objects/pack"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("tmp_")
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary files left");
    }
}
