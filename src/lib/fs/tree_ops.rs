//! Inode, directory, link and record operations on a file tree (xattrs: fs/xattr.rs).

use super::FsTree;
use super::inode::{
    DirEntry, FileKey, FileType, Inode, ItemKind, META_INO, ROOT_INO, S_IFDIR, Timespec, backref_key, decode_dirent,
    encode_dirent, key, key_is,
};
use super::record::{RECORD_BYTES, Record, check_file_size, file_end, fingerprint};
use crate::block::BlockKind;
use crate::codec::Reader;
use crate::error::{Error, Result};

/// Inode numbers stay below this (2^48, as ZFS's object numbers): the tree's counter
/// never reaches it, so that a received counter cannot make `create` overflow.
pub const INODE_NUMBER_MAX: u64 = 1 << 48;

/// Longest name of a directory entry or extended attribute, as on Linux.
pub const NAME_BYTES_MAX: usize = 255;
pub const SYMLINK_BYTES_MAX: usize = 4095;

pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty()
        || name.len() > NAME_BYTES_MAX
        || name == b"."
        || name == b".."
        || name.contains(&b'/')
        || name.contains(&0)
    {
        return Err(Error::invalid(format!(
            "bad file name {:?}: 1 to {NAME_BYTES_MAX} bytes, no '/' or NUL, not '.' or '..'",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

impl<'a> FsTree<'a> {
    pub(super) fn must_write(&self) {
        assert!(self.writable, "mutating a read-only view of a file tree");
    }

    /// Creates the root directory of a new tree.
    pub fn init_root(&mut self, now_ns: u64) -> Result<()> {
        self.must_write();
        let mut root = Inode::new(S_IFDIR | 0o755, Timespec::from_ns(now_ns));
        root.nlink = 2;
        root.generation = self.store.txg.0;
        self.put_inode(ROOT_INO, &root)?;
        self.set_next_ino(ROOT_INO + 1)
    }

    fn next_ino(&mut self) -> Result<u64> {
        let value = self
            .tree
            .get(self.store, &key(META_INO, ItemKind::Meta, &[]))?
            .ok_or_else(|| Error::corrupt("file tree has no counter item"))?;
        Reader::new(&value, "tree counters").u64()
    }

    pub(super) fn set_next_ino(&mut self, next: u64) -> Result<()> {
        self.tree.insert(self.store, &key(META_INO, ItemKind::Meta, &[]), &next.to_le_bytes())?;
        Ok(())
    }

    pub fn inode(&mut self, ino: u64) -> Result<Inode> {
        match self.tree.get(self.store, &key(ino, ItemKind::Inode, &[]))? {
            Some(v) => Inode::decode(&v),
            None => Err(Error::corrupt(format!("inode {ino} is referenced but missing"))),
        }
    }

    pub fn put_inode(&mut self, ino: u64, inode: &Inode) -> Result<()> {
        self.must_write();
        self.tree.insert(self.store, &key(ino, ItemKind::Inode, &[]), &inode.encode())?;
        Ok(())
    }

    /// Calls `visit` with every regular file's inode, in inode order (a scan of the whole
    /// tree's items, holding one path of nodes at a time past the tree's cache limit).
    pub fn for_each_regular_inode(&mut self, visit: &mut dyn FnMut(u64, &Inode)) -> Result<()> {
        let mut error = None;
        self.tree.scan(self.store, &[], &mut |k, v| {
            let Some(key) = FileKey::parse(k) else { return Ok(true) };
            if key.is(ItemKind::Inode) && key.suffix.is_empty() {
                match Inode::decode(v) {
                    Ok(inode) if inode.file_type() == FileType::Regular => visit(key.ino, &inode),
                    Ok(_) => {}
                    Err(e) => {
                        error = Some(e);
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        })?;
        error.map_or(Ok(()), Err)
    }

    pub fn lookup(&mut self, dir: u64, name: &[u8]) -> Result<Option<DirEntry>> {
        match self.tree.get(self.store, &key(dir, ItemKind::DirEntry, name))? {
            Some(v) => Ok(Some(decode_dirent(name, &v)?)),
            None => Ok(None),
        }
    }

    /// Entries of a directory in name order.
    pub fn readdir(&mut self, dir: u64) -> Result<Vec<DirEntry>> {
        let prefix = key(dir, ItemKind::DirEntry, &[]);
        // Decoded as scanned: a copy of each key and value first would be two allocations
        // an entry more, on the walks of large directories (select, diff).
        let mut entries = Vec::new();
        self.tree.scan(self.store, &prefix, &mut |k, v| {
            if !k.starts_with(&prefix) {
                return Ok(false);
            }
            entries.push(decode_dirent(&k[prefix.len()..], v)?);
            Ok(true)
        })?;
        Ok(entries)
    }

    /// A directory's entries and, apart, its other items, in one scan.
    pub fn directory_items(&mut self, dir: u64) -> Result<DirectoryItems> {
        let (mut entries, mut own) = (Vec::new(), Vec::new());
        self.tree.scan(self.store, &key(dir, ItemKind::Meta, &[]), &mut |k, v| {
            let Some(item) = FileKey::parse(k).filter(|item| item.ino == dir) else { return Ok(false) };
            match item.is(ItemKind::DirEntry) {
                true => entries.push(decode_dirent(item.suffix, v)?),
                false => own.push((k.to_vec(), v.to_vec())),
            }
            Ok(true)
        })?;
        Ok(DirectoryItems { entries, own })
    }

    /// Creates a new inode under `parent` as `name`; returns its number.
    pub fn create(&mut self, parent: u64, name: &[u8], mut inode: Inode) -> Result<u64> {
        self.must_write();
        check_name(name)?;
        if self.lookup(parent, name)?.is_some() {
            return Err(Error::exists(format!("{:?}", String::from_utf8_lossy(name))));
        }
        let ino = self.next_ino()?;
        if ino >= INODE_NUMBER_MAX {
            return Err(Error::invalid(format!(
                "the tree has used every inode number (its counter is {ino}; at most {INODE_NUMBER_MAX})"
            )));
        }
        self.set_next_ino(ino + 1)?;
        inode.generation = self.store.txg.0;
        let is_dir = inode.file_type() == FileType::Directory;
        inode.nlink = if is_dir { 2 } else { 1 };
        self.put_inode(ino, &inode)?;
        self.add_entry(parent, name, ino, inode.file_type())?;
        if is_dir {
            let mut p = self.inode(parent)?;
            p.nlink += 1;
            self.put_inode(parent, &p)?;
        }
        Ok(ino)
    }

    pub(super) fn add_entry(&mut self, parent: u64, name: &[u8], ino: u64, file_type: FileType) -> Result<()> {
        self.tree.insert(self.store, &key(parent, ItemKind::DirEntry, name), &encode_dirent(ino, file_type))?;
        self.tree.insert(self.store, &backref_key(ino, parent, name), &[])?;
        Ok(())
    }

    pub(super) fn remove_entry(&mut self, parent: u64, name: &[u8], ino: u64) -> Result<()> {
        self.tree.remove(self.store, &key(parent, ItemKind::DirEntry, name))?;
        self.tree.remove(self.store, &backref_key(ino, parent, name))?;
        Ok(())
    }

    /// The (parent, name) pairs that link to an inode.
    pub fn backrefs(&mut self, ino: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let prefix = key(ino, ItemKind::BackRef, &[]);
        let mut out = Vec::new();
        for (k, _) in self.tree.scan_prefix(self.store, &prefix)? {
            let rest = &k[prefix.len()..];
            if rest.len() < 8 {
                return Err(Error::corrupt("short back reference key"));
            }
            let parent = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            out.push((parent, rest[8..].to_vec()));
        }
        Ok(out)
    }

    /// Adds a hard link to an existing non-directory inode.
    pub fn link(&mut self, ino: u64, parent: u64, name: &[u8]) -> Result<()> {
        self.must_write();
        check_name(name)?;
        if self.lookup(parent, name)?.is_some() {
            return Err(Error::exists(format!("{:?}", String::from_utf8_lossy(name))));
        }
        let mut inode = self.inode(ino)?;
        if inode.file_type() == FileType::Directory {
            return Err(Error::invalid("cannot hard-link a directory"));
        }
        inode.nlink += 1;
        self.put_inode(ino, &inode)?;
        self.add_entry(parent, name, ino, inode.file_type())
    }

    /// Removes one name; the inode goes with its last name. Directories must be empty.
    pub fn unlink(&mut self, parent: u64, name: &[u8]) -> Result<()> {
        self.must_write();
        let entry = self
            .lookup(parent, name)?
            .ok_or_else(|| Error::not_found(format!("{:?}", String::from_utf8_lossy(name))))?;
        let mut inode = self.inode(entry.ino)?;
        if inode.file_type() == FileType::Directory {
            if !self.readdir(entry.ino)?.is_empty() {
                return Err(Error::invalid(format!("directory {:?} is not empty", String::from_utf8_lossy(name))));
            }
            let mut p = self.inode(parent)?;
            p.nlink = p.nlink.saturating_sub(1);
            self.put_inode(parent, &p)?;
            inode.nlink = 0;
        } else {
            inode.nlink = inode.nlink.saturating_sub(1);
        }
        self.remove_entry(parent, name, entry.ino)?;
        if inode.nlink == 0 { self.destroy_inode(entry.ino) } else { self.put_inode(entry.ino, &inode) }
    }

    /// Removes a name and, for a directory, everything below it.
    pub fn remove_recursive(&mut self, parent: u64, name: &[u8]) -> Result<()> {
        self.must_write();
        let entry = self
            .lookup(parent, name)?
            .ok_or_else(|| Error::not_found(format!("{:?}", String::from_utf8_lossy(name))))?;
        if entry.file_type == FileType::Directory {
            // Iterative over a stack of directories, so that depth costs no call stack.
            let mut stack = vec![entry.ino];
            while let Some(&dir) = stack.last() {
                if stack.len() > 1 << 16 {
                    return Err(Error::corrupt("directories nested deeper than 65536: the tree has a loop"));
                }
                let children = self.readdir(dir)?;
                let mut pushed = false;
                for child in children {
                    if child.file_type == FileType::Directory && !self.readdir(child.ino)?.is_empty() {
                        stack.push(child.ino);
                        pushed = true;
                        break;
                    }
                    self.unlink(dir, &child.name)?;
                }
                if !pushed {
                    stack.pop();
                }
            }
        }
        self.unlink(parent, name)
    }

    pub(super) fn destroy_inode(&mut self, ino: u64) -> Result<()> {
        let prefix = ino.to_be_bytes();
        let items = self.tree.scan_prefix(self.store, &prefix)?;
        for (k, v) in items {
            if key_is(&k, ItemKind::Record) {
                self.kill_record(&Record::decode(&v)?, None)?;
            }
            self.tree.remove(self.store, &k)?;
        }
        Ok(())
    }

    /// Moves `src_name` in `src_parent` to `dst_name` in `dst_parent`, replacing a
    /// non-directory or empty directory there, as rename(2) does.
    pub fn rename(&mut self, src_parent: u64, src_name: &[u8], dst_parent: u64, dst_name: &[u8]) -> Result<()> {
        self.must_write();
        check_name(dst_name)?;
        let entry = self
            .lookup(src_parent, src_name)?
            .ok_or_else(|| Error::not_found(format!("{:?}", String::from_utf8_lossy(src_name))))?;
        if src_parent == dst_parent && src_name == dst_name {
            return Ok(());
        }
        if entry.file_type == FileType::Directory && self.is_ancestor(entry.ino, dst_parent)? {
            return Err(Error::invalid("cannot move a directory into itself"));
        }
        if let Some(existing) = self.lookup(dst_parent, dst_name)? {
            if existing.ino == entry.ino {
                return self.unlink(src_parent, src_name);
            }
            if (existing.file_type == FileType::Directory) != (entry.file_type == FileType::Directory) {
                return Err(Error::invalid("rename would replace a directory with a non-directory or the reverse"));
            }
            self.unlink(dst_parent, dst_name)?;
        }
        self.remove_entry(src_parent, src_name, entry.ino)?;
        self.add_entry(dst_parent, dst_name, entry.ino, entry.file_type)?;
        if entry.file_type == FileType::Directory && src_parent != dst_parent {
            let mut old = self.inode(src_parent)?;
            old.nlink = old.nlink.saturating_sub(1);
            self.put_inode(src_parent, &old)?;
            let mut new = self.inode(dst_parent)?;
            new.nlink += 1;
            self.put_inode(dst_parent, &new)?;
        }
        Ok(())
    }

    /// True if `ancestor` is `ino` or one of its parents.
    fn is_ancestor(&mut self, ancestor: u64, mut ino: u64) -> Result<bool> {
        for _ in 0..4096 {
            if ino == ancestor {
                return Ok(true);
            }
            if ino == ROOT_INO {
                return Ok(false);
            }
            let parents = self.backrefs(ino)?;
            let Some((parent, _)) = parents.first() else { return Ok(false) };
            ino = *parent;
        }
        Err(Error::corrupt("directory parents form a loop"))
    }

    pub fn symlink_target(&mut self, ino: u64) -> Result<Vec<u8>> {
        self.tree
            .get(self.store, &key(ino, ItemKind::Symlink, &[]))?
            .ok_or_else(|| Error::corrupt(format!("symlink inode {ino} has no target")))
    }

    pub fn set_symlink_target(&mut self, ino: u64, target: &[u8]) -> Result<()> {
        self.must_write();
        if target.is_empty() || target.len() > SYMLINK_BYTES_MAX {
            return Err(Error::invalid(format!("symlink target of {} bytes", target.len())));
        }
        self.tree.insert(self.store, &key(ino, ItemKind::Symlink, &[]), target)?;
        let mut inode = self.inode(ino)?;
        inode.size = target.len() as u64;
        self.put_inode(ino, &inode)
    }

    pub fn record(&mut self, ino: u64, index: u64) -> Result<Option<Record>> {
        match self.tree.get(self.store, &key(ino, ItemKind::Record, &index.to_be_bytes()))? {
            Some(v) => Ok(Some(Record::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Every record of a file: (index, record), in order.
    pub fn records(&mut self, ino: u64) -> Result<Vec<(u64, Record)>> {
        let prefix = key(ino, ItemKind::Record, &[]);
        let mut out = Vec::new();
        for (k, v) in self.tree.scan_prefix(self.store, &prefix)? {
            let index_bytes: [u8; 8] =
                k[prefix.len()..].try_into().map_err(|_| Error::corrupt("record key of the wrong length"))?;
            out.push((u64::from_be_bytes(index_bytes), Record::decode(&v)?));
        }
        Ok(out)
    }

    /// Replaces record `index` with `data` (which may be shorter than a record only at
    /// the end of the file). All-zero data leaves a hole. Unchanged data is kept as is.
    pub fn write_record(&mut self, ino: u64, index: u64, data: &[u8]) -> Result<()> {
        self.must_write();
        assert!(data.len() as u64 <= RECORD_BYTES);
        let print = fingerprint(data);
        let k = key(ino, ItemKind::Record, &index.to_be_bytes());
        let old = self.record(ino, index)?;
        if let Some(old) = &old {
            if old.hash == print.hash && old.logical_bytes() == data.len() as u64 {
                return Ok(());
            }
        }
        if let Some(old) = &old {
            self.kill_record(old, None)?;
        }
        if data.iter().all(|&b| b == 0) {
            if old.is_some() {
                self.tree.remove(self.store, &k)?;
            }
            return Ok(());
        }
        let block = crate::store::StoredBlock::prepare(data.to_vec(), self.store.compression);
        let frames = super::record::frame_index(self.store, &block);
        let ptr =
            self.store.write_prepared(BlockKind::FileData, 0, &block, crate::alloc::allocator::AllocKind::Explicit)?;
        let record = Record { ptr, hash: print.hash, pieces: print.pieces, frames, overlay: None };
        self.tree.insert(self.store, &k, &record.encode())?;
        Ok(())
    }

    /// Applies a record prepared on a worker thread: kept if unchanged, a hole if zero.
    pub fn apply_prepared(&mut self, p: super::pipeline::Prepared) -> Result<()> {
        self.must_write();
        let k = key(p.ino, ItemKind::Record, &p.index.to_be_bytes());
        let old = self.record(p.ino, p.index)?;
        if let Some(old) = &old {
            if old.hash == p.fingerprint.hash && old.logical_bytes() == p.logical_bytes as u64 {
                return Ok(());
            }
            self.kill_record(old, None)?;
        }
        match p.stored {
            None => {
                if old.is_some() {
                    self.tree.remove(self.store, &k)?;
                }
            }
            Some(block) => {
                let frames = super::record::frame_index(self.store, &block);
                let ptr = self.store.write_prepared(
                    BlockKind::FileData,
                    0,
                    &block,
                    crate::alloc::allocator::AllocKind::Explicit,
                )?;
                let pieces = p.fingerprint.pieces;
                let record = Record { ptr, hash: p.fingerprint.hash, pieces, frames, overlay: None };
                self.tree.insert(self.store, &k, &record.encode())?;
            }
        }
        Ok(())
    }

    /// Removes record `index` if present (the range becomes a hole).
    pub fn punch_record(&mut self, ino: u64, index: u64) -> Result<()> {
        self.must_write();
        if let Some(old) = self.record(ino, index)? {
            self.kill_record(&old, None)?;
            self.tree.remove(self.store, &key(ino, ItemKind::Record, &index.to_be_bytes()))?;
        }
        Ok(())
    }

    /// Reads the logical bytes of one record.
    pub fn read_record(&mut self, record: &Record) -> Result<Vec<u8>> {
        super::record::read(self.store, record)
    }

    /// Kills the blocks of `old` that `new`, which replaces it, does not keep.
    pub(super) fn kill_record(&mut self, old: &Record, new: Option<&Record>) -> Result<()> {
        for ptr in old.blocks_dropped_by(new) {
            self.store.kill(self.tree.owner, ptr)?;
        }
        Ok(())
    }

    /// Sets the size: drops records past the end and trims a partial last record.
    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<()> {
        self.must_write();
        check_file_size(&format!("inode {ino}'s new size"), size)?;
        let mut inode = self.inode(ino)?;
        if size > inode.size && inode.size % RECORD_BYTES != 0 {
            // The partial last record grows, so that every record but the last is full.
            let index = inode.size / RECORD_BYTES;
            if let Some(record) = self.record(ino, index)? {
                let mut data = self.read_record(&record)?;
                data.resize((size - index * RECORD_BYTES).min(RECORD_BYTES) as usize, 0);
                self.write_record(ino, index, &data)?;
            }
        }
        for (index, record) in self.records(ino)? {
            let start = index.saturating_mul(RECORD_BYTES);
            if start >= size {
                self.punch_record(ino, index)?;
            } else if start + record.logical_bytes() > size {
                let mut data = self.read_record(&record)?;
                data.truncate((size - start) as usize);
                self.write_record(ino, index, &data)?;
            }
        }
        inode.size = size;
        self.put_inode(ino, &inode)
    }

    /// Reads `len` bytes at `offset`; holes read as zeros; stops at the end of file.
    pub fn read(&mut self, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?;
        let end = inode.size.min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let first = offset / RECORD_BYTES;
        let last = (end - 1) / RECORD_BYTES;
        for index in first..=last {
            let Some(record) = self.record(ino, index)? else { continue };
            let data = self.read_record(&record)?;
            let record_start = index * RECORD_BYTES;
            let from = offset.max(record_start);
            let to = end.min(record_start + data.len() as u64);
            if from < to {
                out[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&data[(from - record_start) as usize..(to - record_start) as usize]);
            }
        }
        Ok(out)
    }

    /// Writes `data` at `offset`, rewriting only the records it touches; refuses a write
    /// that would end past FILE_BYTES_MAX, before changing anything.
    pub fn write_at(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<()> {
        self.must_write();
        let end = file_end(offset, data.len() as u64)?;
        let mut inode = self.inode(ino)?;
        let mut at = offset;
        while at < end {
            let index = at / RECORD_BYTES;
            let record_start = index * RECORD_BYTES;
            let record_end = (record_start + RECORD_BYTES).min(end.max(inode.size));
            let mut buf = match self.record(ino, index)? {
                Some(r) => self.read_record(&r)?,
                None => Vec::new(),
            };
            buf.resize((record_end - record_start) as usize, 0);
            let chunk_end = end.min(record_start + RECORD_BYTES);
            buf[(at - record_start) as usize..(chunk_end - record_start) as usize]
                .copy_from_slice(&data[(at - offset) as usize..(chunk_end - offset) as usize]);
            self.write_record(ino, index, &buf)?;
            at = chunk_end;
        }
        // A partial last record before the write must grow to a full one.
        if offset > inode.size && inode.size % RECORD_BYTES != 0 {
            let index = inode.size / RECORD_BYTES;
            if index < offset / RECORD_BYTES {
                if let Some(r) = self.record(ino, index)? {
                    let mut buf = self.read_record(&r)?;
                    buf.resize(RECORD_BYTES as usize, 0);
                    self.write_record(ino, index, &buf)?;
                }
            }
        }
        inode.size = inode.size.max(end);
        self.put_inode(ino, &inode)
    }
}

/// A directory's items, as `FsTree::directory_items` reads them.
pub struct DirectoryItems {
    pub entries: Vec<DirEntry>,
    /// The others, in key order: its inode item, back references and extended attributes.
    pub own: Vec<(Vec<u8>, Vec<u8>)>,
}
