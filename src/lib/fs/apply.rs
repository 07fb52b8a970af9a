//! Key-level changes that a replication stream applies to a file tree.
//!
//! A stream carries the sender's inode numbers, so the receiver's tree holds the same
//! keys as the sender's, item for item (only block pointers differ). The records are
//! applied in the sender's key order, which is not a valid order of POSIX operations (a
//! file can be linked into a directory whose inode comes later); each change is
//! therefore a plain change of keys, and the tree is consistent again once the whole
//! part is applied, before anything is committed. Each change checks what it can and
//! refuses what would corrupt the tree.

use super::FsTree;
use super::inode::{FileKey, FileType, Inode, ItemKind, key};
use super::record::{FILE_RECORDS_MAX, Fingerprint, Overlay, Record, check_file_size};
use super::tree_ops::{SYMLINK_BYTES_MAX, check_name};
use crate::alloc::allocator::AllocKind;
use crate::block::{BlockKind, Compression};
use crate::checksum::blake3;
use crate::error::{Error, Result};
use crate::store::StoredBlock;

/// What a whole stored record is, as a stream carries it.
pub struct StoredRecord {
    /// The base block as stored, with the checksum the sender recorded for it.
    pub base: StoredBlock,
    pub hash: u128,
    pub pieces: Vec<u64>,
    /// The overlay's mask, the record's size, and its block as stored.
    pub overlay: Option<(u32, u32, StoredBlock)>,
}

/// A patched record, as built off the tree (stream/patcher.rs builds them on worker
/// threads): a new overlay for the old base, or a whole new record.
pub enum Outcome {
    Overlay { mask: u32, logical_bytes: u32, hash: u128, pieces: Vec<u64> },
    Whole { fingerprint: Fingerprint },
}

/// A patch of record `index` of inode `ino`, ready to store in place of `old`.
pub struct Patched {
    pub ino: u64,
    pub index: u64,
    pub old: Record,
    pub block: StoredBlock,
    pub outcome: Outcome,
}

impl<'a> FsTree<'a> {
    pub fn apply_next_ino(&mut self, next: u64) -> Result<()> {
        self.set_next_ino(next)
    }

    pub fn apply_inode(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        if ino == 0 {
            return Err(Error::stream("INODE record for inode 0, which holds the tree's counters"));
        }
        check_file_size(&format!("INODE record for inode {ino}: the file"), inode.size)
            .map_err(|e| Error::stream(e.to_string()))?;
        self.put_inode(ino, inode)
    }

    /// Removes an inode and everything keyed under it; its records' blocks are killed.
    pub fn apply_free_inode(&mut self, ino: u64) -> Result<()> {
        if ino < 2 {
            return Err(Error::stream(format!("FREE_INODE record for inode {ino}")));
        }
        self.destroy_inode(ino)
    }

    fn child_type(&mut self, ino: u64) -> Result<FileType> {
        match self.tree.get(self.store, &key(ino, ItemKind::Inode, &[]))? {
            Some(v) => Ok(Inode::decode(&v)?.file_type()),
            None => Err(Error::stream(format!("a link names inode {ino}, which the target does not have"))),
        }
    }

    pub fn apply_link(&mut self, dir: u64, name: &[u8], ino: u64) -> Result<()> {
        check_name(name).map_err(|e| Error::stream(e.to_string()))?;
        let file_type = self.child_type(ino)?;
        self.add_entry(dir, name, ino, file_type)
    }

    /// Removes the name, if it still names `ino`, and the inode's back reference.
    pub fn apply_unlink(&mut self, dir: u64, name: &[u8], ino: u64) -> Result<()> {
        if let Some(entry) = self.lookup(dir, name)? {
            if entry.ino == ino {
                self.tree.remove(self.store, &key(dir, ItemKind::DirEntry, name))?;
            }
        }
        self.tree.remove(self.store, &super::inode::backref_key(ino, dir, name))?;
        Ok(())
    }

    pub fn apply_symlink(&mut self, ino: u64, target: &[u8]) -> Result<()> {
        if target.is_empty() || target.len() > SYMLINK_BYTES_MAX {
            return Err(Error::stream(format!("SYMLINK record with a target of {} bytes", target.len())));
        }
        self.tree.insert(self.store, &key(ino, ItemKind::Symlink, &[]), target)?;
        Ok(())
    }

    /// Stores a record exactly as the sender stored it: no decompression, no
    /// recompression. Its content is the caller's to check (`check_stored_record`), on
    /// another thread if it likes, before anything that holds it is committed.
    pub fn apply_stored_record(&mut self, ino: u64, index: u64, record: &StoredRecord) -> Result<()> {
        check_index(index)?;
        // The frame index is found from the block as it travelled: the stream needs none.
        let frames = super::record::frame_index(self.store, &record.base);
        let ptr = self.store.write_prepared(BlockKind::FileData, 0, &record.base, AllocKind::Explicit)?;
        let overlay = match &record.overlay {
            None => None,
            Some((mask, logical_bytes, block)) => {
                let ptr = self.store.write_prepared(BlockKind::FileOverlay, 0, block, AllocKind::Explicit)?;
                Some(Overlay { mask: *mask, logical_bytes: *logical_bytes, ptr })
            }
        };
        let new = Record { ptr, hash: record.hash, pieces: record.pieces.clone(), frames, overlay };
        let k = key(ino, ItemKind::Record, &index.to_be_bytes());
        if let Some(old) = self.tree.insert(self.store, &k, &new.encode())? {
            self.kill_record(&Record::decode(&old)?, Some(&new))?;
        }
        Ok(())
    }

    /// The record a PATCH applies to.
    pub fn patch_target(&mut self, ino: u64, index: u64) -> Result<Record> {
        check_index(index)?;
        let old = self.record(ino, index)?.ok_or_else(|| {
            Error::stream(format!("PATCH of record {index} of inode {ino}, which the target does not have"))
        })?;
        super::record::check_kinds(&old)?;
        Ok(old)
    }

    /// Stored bytes of blocks, unverified (the patcher verifies what it uses).
    pub fn read_stored(&mut self, blocks: &[crate::block::BlockPtr]) -> Result<Vec<(u64, Vec<u8>)>> {
        blocks.iter().map(|b| Ok((b.addr.0, self.store.read_stored_unverified(b)?))).collect()
    }

    /// Stores what the patcher built in place of the record it patched: a new overlay
    /// over the same base, or a whole new record.
    pub fn apply_patched(&mut self, patched: Patched) -> Result<()> {
        let k = key(patched.ino, ItemKind::Record, &patched.index.to_be_bytes());
        let new = match patched.outcome {
            Outcome::Overlay { mask, logical_bytes, hash, pieces } => {
                let ptr = self.store.write_prepared(BlockKind::FileOverlay, 0, &patched.block, AllocKind::Explicit)?;
                let overlay = Some(Overlay { mask, logical_bytes, ptr });
                Record { ptr: patched.old.ptr, hash, pieces, frames: patched.old.frames.clone(), overlay }
            }
            Outcome::Whole { fingerprint } => {
                let frames = super::record::frame_index(self.store, &patched.block);
                let ptr = self.store.write_prepared(BlockKind::FileData, 0, &patched.block, AllocKind::Explicit)?;
                Record { ptr, hash: fingerprint.hash, pieces: fingerprint.pieces, frames, overlay: None }
            }
        };
        self.kill_record(&patched.old, Some(&new))?;
        self.tree.insert(self.store, &k, &new.encode())?;
        Ok(())
    }

    /// Removes the records in [first, first + count) that exist.
    pub fn apply_punch(&mut self, ino: u64, first: u64, count: u64) -> Result<()> {
        let end = first.saturating_add(count);
        for (index, _) in self.records(ino)? {
            if index >= first && index < end {
                self.punch_record(ino, index)?;
            }
        }
        Ok(())
    }

    /// The items with keys in [first, end) (end None: from first on), in key order.
    pub fn items_in(&mut self, first: &[u8], end: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut items = Vec::new();
        self.tree.scan(self.store, first, &mut |k, v| {
            if end.is_some_and(|end| k >= end) {
                return Ok(false);
            }
            items.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        Ok(items)
    }

    /// Sets one item as the sender stores it (an ITEM of a part from a bookmark); the
    /// tree is checked as a whole before anything is committed.
    pub fn apply_item(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        match FileKey::parse(key).and_then(|k| k.kind()) {
            None => Err(Error::stream("ITEM record whose key is not a file tree key")),
            Some(ItemKind::Record) => {
                Err(Error::stream("ITEM record of a file record (those travel as WRITE or KEEP_RECORD)"))
            }
            Some(_) => {
                self.tree.insert(self.store, key, value)?;
                Ok(())
            }
        }
    }

    /// Removes an item that a part from a bookmark no longer has; a file record's blocks
    /// are killed.
    pub fn remove_item(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if FileKey::parse(key).is_some_and(|k| k.is(ItemKind::Record)) {
            self.kill_record(&Record::decode(value)?, None)?;
        }
        self.tree.remove(self.store, key)?;
        Ok(())
    }

    /// Checks that `old`, the target's item under a KEEP_RECORD's key, is the record it
    /// names: the same fingerprint and blocks (by checksum).
    pub fn check_kept_record(
        &mut self,
        ino: u64,
        index: u64,
        old: Option<&[u8]>,
        hash: u128,
        checksums: (&[u8; 32], Option<&[u8; 32]>),
    ) -> Result<()> {
        let matches = match old {
            None => false,
            Some(value) => {
                let record = Record::decode(value)?;
                record.hash == hash
                    && &record.ptr.checksum == checksums.0
                    && record.overlay.as_ref().map(|o| &o.ptr.checksum) == checksums.1
            }
        };
        if !matches {
            return Err(Error::stream(format!(
                "KEEP_RECORD of record {index} of inode {ino}, which the target does not hold as the sender's \
                 bookmarked snapshot did: this pool's copy of that snapshot differs from the sender's"
            )));
        }
        Ok(())
    }

    /// A path of an inode, from its first back reference up to the root, for messages.
    pub fn path_of(&mut self, ino: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut at = ino;
        for _ in 0..256 {
            if at == super::ROOT_INO {
                parts.reverse();
                return Some(parts.join("/"));
            }
            let (parent, name) = self.backrefs(at).ok()?.into_iter().next()?;
            parts.push(String::from_utf8_lossy(&name).into_owned());
            at = parent;
        }
        None
    }

    /// Writes the tree's dirty nodes out and drops them from memory, inside the running
    /// transaction, so that a long receive needs bounded memory.
    pub fn spill(&mut self) -> Result<()> {
        self.tree.flush(self.store)?;
        self.tree.evict();
        Ok(())
    }
}

/// A WRITE's blocks are what the sender stored (their checksums), decompress to the
/// sizes they claim, and make a record with the fingerprint it claims: otherwise a
/// crafted stream could plant a block that fails only when read, or fingerprints that
/// make a later `sync` or PATCH trust the wrong bytes.
pub fn check_stored_record(record: &StoredRecord) -> Result<()> {
    let blocks = std::iter::once(&record.base).chain(record.overlay.as_ref().map(|o| &o.2));
    if blocks.into_iter().any(|b| blake3(&b.stored) != b.checksum) {
        // The frame's own checksum held, so the bytes crossed intact: the sender read
        // them damaged from its device.
        return Err(Error::stream(
            "WRITE record data does not match the checksum the sending pool recorded for it: the \
             block is damaged on the sender's device",
        ));
    }
    thread_local! {
        // Reused from record to record: a fresh 128 KiB buffer per record cost about as
        // much in page faults as the decompression itself.
        static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    BUFFERS.with_borrow_mut(|(whole, pieces)| {
        let bytes: &[u8] = match (&record.base.compression, &record.overlay) {
            // A raw record is its own logical bytes: no copy.
            (Compression::None, None) => {
                check_logical_len(&record.base, record.base.stored.len())?;
                &record.base.stored
            }
            _ => {
                logical_into(&record.base, whole)?;
                if let Some((mask, logical_bytes, block)) = &record.overlay {
                    logical_into(block, pieces)?;
                    super::record::lay_pieces(whole, *logical_bytes, *mask, pieces);
                }
                whole
            }
        };
        let print = super::record::fingerprint(bytes);
        if print.hash != record.hash || print.pieces != record.pieces {
            return Err(Error::stream("WRITE record data does not match the fingerprint the record carries"));
        }
        Ok(())
    })
}

/// A block's logical bytes, into `buffer`.
fn logical_into(b: &StoredBlock, buffer: &mut Vec<u8>) -> Result<()> {
    let len = match b.compression {
        Compression::None => {
            buffer.clear();
            buffer.extend_from_slice(&b.stored);
            Some(buffer.len())
        }
        Compression::Zstd | Compression::Lz4 => {
            crate::compress::decompress_into(&b.stored, b.compression, b.logical_bytes as u32, buffer)
                .ok()
                .map(|()| buffer.len())
        }
    };
    check_logical_len(b, len.unwrap_or(usize::MAX))
}

fn check_logical_len(b: &StoredBlock, len: usize) -> Result<()> {
    if len != b.logical_bytes {
        return Err(Error::stream(format!(
            "WRITE record data of {} stored bytes does not decompress to the {} bytes it claims",
            b.stored.len(),
            b.logical_bytes
        )));
    }
    Ok(())
}

fn check_index(index: u64) -> Result<()> {
    if index >= FILE_RECORDS_MAX {
        return Err(Error::stream(format!(
            "record index {index} lies past the largest file, of {FILE_RECORDS_MAX} records"
        )));
    }
    Ok(())
}
