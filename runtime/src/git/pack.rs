//! A pack writer in the manner of `git fast-import`: every object deflated once at zlib's fastest
//! level, no delta search, and the index computed from what was written (libgit2's pack builder
//! compresses at the default level and its indexer then inflates and hashes everything again).
//! Formats: git's `gitformat-pack` (pack version 2, index version 2).

use std::io::Write;
use std::path::Path;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use git2::{ObjectType, Oid};

/// Offsets at or above this go to the index's 8-byte table.
const OFFSET_LARGE_MIN: u64 = 0x8000_0000;

/// One object as it goes into the pack.
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

/// Writes `objects` (ids unique) as `pack-{sha}.pack` and `.idx` into `pack_dir` and returns the
/// pack's name (the hex SHA-1 of its contents). The index is renamed into place last, so readers
/// never see a pack without all its bytes.
pub fn write(pack_dir: &Path, objects: &[Object<'_>]) -> std::io::Result<String> {
    let mut pack =
        Vec::with_capacity(objects.iter().map(|o| o.data.len() / 2 + 16).sum::<usize>() + 32);
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&(objects.len() as u32).to_be_bytes());
    let mut entries: Vec<(Oid, u32, u64)> = Vec::with_capacity(objects.len());
    for o in objects {
        let start = pack.len();
        // Header: type and size, 4 bits of size then 7 per continuation byte.
        let mut size = o.data.len() as u64;
        let mut byte = (type_code(o.kind) << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            pack.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(byte);
        let mut z = ZlibEncoder::new(std::mem::take(&mut pack), Compression::fast());
        z.write_all(o.data)?;
        pack = z.finish()?;
        let crc = crc32fast::hash(&pack[start..]);
        entries.push((o.id, crc, start as u64));
    }
    let checksum = sha1_smol::Sha1::from(&pack).digest().bytes();
    pack.extend_from_slice(&checksum);

    entries.sort_by_key(|e| e.0);
    debug_assert!(
        entries.windows(2).all(|w| w[0].0 != w[1].0),
        "object ids are unique"
    );
    let mut idx = Vec::with_capacity(8 + 1024 + entries.len() * 28 + 40);
    idx.extend_from_slice(&[0xff, b't', b'O', b'c', 0, 0, 0, 2]);
    let mut fanout = [0u32; 256];
    for (id, _, _) in &entries {
        fanout[id.as_bytes()[0] as usize] += 1;
    }
    let mut running = 0u32;
    for count in fanout {
        running += count;
        idx.extend_from_slice(&running.to_be_bytes());
    }
    for (id, _, _) in &entries {
        idx.extend_from_slice(id.as_bytes());
    }
    for (_, crc, _) in &entries {
        idx.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for (_, _, offset) in &entries {
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
    idx.extend_from_slice(&checksum);
    let idx_checksum = sha1_smol::Sha1::from(&idx).digest().bytes();
    idx.extend_from_slice(&idx_checksum);

    let name: String = checksum.iter().map(|b| format!("{b:02x}")).collect();
    let final_pack = pack_dir.join(format!("pack-{name}.pack"));
    let final_idx = pack_dir.join(format!("pack-{name}.idx"));
    std::fs::create_dir_all(pack_dir)?;
    let tmp_pack = pack_dir.join(format!("tmp_pack_{name}"));
    let tmp_idx = pack_dir.join(format!("tmp_idx_{name}"));
    std::fs::write(&tmp_pack, &pack)?;
    std::fs::rename(&tmp_pack, &final_pack)?;
    std::fs::write(&tmp_idx, &idx)?;
    std::fs::rename(&tmp_idx, &final_idx)?;
    Ok(name)
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
}
