//! `sync`: make a directory of the tree mirror a directory of the host, in one
//! transaction, rewriting only what changed.
//!
//! A file whose size and mtime match is taken as unchanged and only its metadata is
//! compared, as rsync does, so a re-sync of an unchanged tree reads metadata only; and
//! one whose ctime matches too keeps its extended attributes unread, since setting or
//! removing one moves the ctime (the tree keeps the host's ctime of the last change it
//! stored; a ctime that moved alone is no change, as for rsync). A
//! changed file's data extents are read (host_file.rs: holes are skipped, and a file
//! that changes during the read is read again), and a record whose fingerprint matches is
//! kept, so a 4 KiB change in a large file rewrites one record.
//!
//! An entry that vanishes or changes type between the listing of its directory and its
//! read fails the sync with `Error::SourceChanged`, nothing committed; a file that keeps
//! changing while it is read is stored as last read and named in `changed_while_read`.
//!
//! Memory does not grow with the number of files: the file tree bounds the nodes it
//! holds (tree/btree.rs), and what the sync keeps per file is kept only for hard-linked
//! and moved files. The index of rename candidates, built when a new file turns up in a
//! tree that has files, costs 16 bytes a file (32 MiB for 2 million).

use super::host_file::{self, Naming, host_error};
use super::inode::{Inode, Timespec};
use super::pipeline::{IN_FLIGHT_MAX, Job, Pipeline, drain};
use super::record::RECORD_BYTES;
use super::{FileType, FsTree};
use crate::error::{Error, Refusal, Result};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const DEPTH_MAX: usize = 4096;
/// Directory levels whose descriptors stay open while their entries are synced.
const DIRS_OPEN_MAX: usize = 64;

#[derive(Clone, Debug, Default)]
pub struct SyncStats {
    pub files_written: u64,
    pub bytes_read: u64,
    pub entries_created: u64,
    pub entries_removed: u64,
    pub metadata_updated: u64,
    pub unchanged: u64,
    /// New names that turned out to be files moved within the synced tree: the inode
    /// moved with its records, nothing was rewritten.
    pub renames_detected: u64,
    /// Files that changed during every read: stored as last read, perhaps mixing versions.
    pub changed_while_read: Vec<PathBuf>,
    /// What the compressor did with the records read.
    pub compression: super::pipeline::CompressionCounts,
}

pub struct Syncer<'f, 'a> {
    fs: &'f mut FsTree<'a>,
    /// Source (device, inode) of a hard-linked file -> its inode in the tree.
    links: HashMap<(u64, u64), u64>,
    /// Tree inodes already matched in this sync to a hard-linked source file, or found
    /// moved. A single-linked file matched at its own name needs no entry: its old name
    /// still exists on the host, so it is never a rename candidate.
    claimed: HashMap<u64, (u64, u64)>,
    pipeline: Pipeline,
    /// The host directory and tree directory of this sync, to map tree paths to host ones.
    root: Option<(std::path::PathBuf, u64)>,
    /// Single-linked, non-empty files of the tree by (size, mtime), built on the first
    /// new file: the candidates for a rename.
    by_size_and_time: Option<RenameIndex>,
    /// Names of regular files gone from the host, removed at the end of the sync.
    pending_removals: Vec<(u64, Vec<u8>)>,
    /// Moves at the start and at the end of every host file read and directory walk: a
    /// stat taken at another count may be stale (see sync_listed).
    slow_steps: Arc<AtomicU64>,
    pub stats: SyncStats,
}

fn io_error(path: &Path, what: &str, e: io::Error) -> Error {
    Error::io(format!("cannot {what} {}", path.display()), e)
}

impl<'f, 'a> Syncer<'f, 'a> {
    pub fn new(fs: &'f mut FsTree<'a>) -> Syncer<'f, 'a> {
        let codec = fs.store.compression;
        Syncer {
            fs,
            links: HashMap::new(),
            claimed: HashMap::new(),
            pipeline: Pipeline::new(codec),
            root: None,
            by_size_and_time: None,
            pending_removals: Vec::new(),
            slow_steps: Arc::new(AtomicU64::new(0)),
            stats: SyncStats::default(),
        }
    }

    /// Mirrors the host directory `source` into tree directory `dir`.
    pub fn sync_dir(&mut self, source: &Path, dir: u64) -> Result<()> {
        let meta = fs::symlink_metadata(source).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::not_found(format!("source directory {}", source.display())),
            _ => io_error(source, "read", e),
        })?;
        if !meta.is_dir() {
            return Err(Error::invalid(format!("{} is not a directory", source.display())));
        }
        self.root = Some((source.to_path_buf(), dir));
        self.sync_children(source, dir, 0)?;
        for (parent, name) in std::mem::take(&mut self.pending_removals) {
            if self.fs.lookup(parent, &name)?.is_some() {
                self.remove(parent, &name)?;
                self.stats.entries_removed += 1;
            }
        }
        drain(self.fs, &mut self.pipeline, 0)?;
        self.stats.compression = self.pipeline.counts;
        let inode = self.fs.inode(dir)?;
        self.apply_metadata(dir, inode, source, &meta)
    }

    /// Removes a tree entry; records still in the pipeline are applied first, so that
    /// none lands on an inode that is gone.
    fn remove(&mut self, dir: u64, name: &[u8]) -> Result<()> {
        drain(self.fs, &mut self.pipeline, 0)?;
        self.slow_step(|s| s.fs.remove_recursive(dir, name))
    }

    /// Runs `step`, which may take a while, moving `slow_steps` before and after it.
    fn slow_step<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> T {
        self.slow_steps.fetch_add(1, Ordering::SeqCst);
        let result = step(self);
        self.slow_steps.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn sync_children(&mut self, source: &Path, dir: u64, depth: usize) -> Result<()> {
        if depth > DEPTH_MAX {
            return Err(Error::invalid(format!("{} is nested deeper than {DEPTH_MAX} directories", source.display())));
        }
        // Each entry is stat'ed relative to its directory's open descriptor, which skips
        // walking the whole path (a quarter of a re-sync's time); past DIRS_OPEN_MAX levels
        // the descriptors are let go, so deep trees do not run out of them.
        let keep_open = depth < DIRS_OPEN_MAX;
        let mut names: Vec<(Vec<u8>, Option<fs::DirEntry>)> = fs::read_dir(source)
            .map_err(|e| host_error(source, "list", e))?
            .map(|e| e.map(|e| (e.file_name().as_bytes().to_vec(), keep_open.then_some(e))))
            .collect::<io::Result<_>>()
            .map_err(|e| host_error(source, "list", e))?;
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let tree_entries = self.fs.readdir(dir)?;
        for entry in &tree_entries {
            if names.binary_search_by(|(name, _)| name.cmp(&entry.name)).is_err() {
                if entry.file_type == FileType::Regular {
                    // Kept until the end: the file may turn up under another name.
                    self.pending_removals.push((dir, entry.name.clone()));
                    continue;
                }
                self.remove(dir, &entry.name)?;
                self.stats.entries_removed += 1;
            }
        }
        if names.len() < PARALLEL_STAT_MIN {
            return self.sync_listed(source, dir, depth, &names, tree_entries, None);
        }
        // A thread stats the entries in order while this one compares them with the
        // tree: on an unchanged tree, stat is a third of a re-sync's time.
        let slow_steps = Arc::clone(&self.slow_steps);
        std::thread::scope(|scope| {
            let (sender, ahead) = std::sync::mpsc::channel();
            let listed = &names;
            scope.spawn(move || {
                for (name, entry) in listed {
                    let stamp = slow_steps.load(Ordering::SeqCst);
                    if sender.send((stamp, stat_entry(source, name, entry.as_ref()))).is_err() {
                        break; // the walk stopped on an error
                    }
                }
            });
            self.sync_listed(source, dir, depth, &names, tree_entries, Some(&ahead))
        })
    }

    /// Syncs the host entries `names` (sorted) of `source` into tree directory `dir`,
    /// whose entries were `tree_entries` (sorted) when it was listed. Each entry is
    /// stat'ed at its turn, or was stat'ed `ahead` by another thread: such a stat is
    /// taken again if a file read or a directory walk ran at or after it (a file
    /// removed while an earlier one is read is gone from the tree, as with a stat at
    /// its turn).
    fn sync_listed(
        &mut self,
        source: &Path,
        dir: u64,
        depth: usize,
        names: &[(Vec<u8>, Option<fs::DirEntry>)],
        tree_entries: Vec<super::inode::DirEntry>,
        ahead: Option<&std::sync::mpsc::Receiver<(u64, io::Result<Metadata>)>>,
    ) -> Result<()> {
        // The listing's tree entries stand for the names below, both in name order, as
        // long as no move found in this sync took a name away (from this directory or
        // any other): then each name is looked up again.
        let renames_at_listing = self.stats.renames_detected;
        let mut tree_entries = tree_entries.into_iter().peekable();
        for (name, entry) in names {
            let meta = match ahead.map(|ahead| ahead.recv().expect("the stat thread sends one result per name")) {
                Some((stamp, meta)) if stamp == self.slow_steps.load(Ordering::SeqCst) => meta,
                _ => stat_entry(source, name, entry.as_ref()),
            };
            let mut listed = None;
            while let Some(entry) = tree_entries.next_if(|e| e.name <= *name) {
                if entry.name == *name {
                    listed = Some(entry);
                }
            }
            let path = source.join(OsStr::from_bytes(name));
            let meta = match meta {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Gone since the listing: gone from the tree too, as if not listed.
                    self.forget(dir, name)?;
                    continue;
                }
                Err(e) => return Err(host_error(&path, "stat", e)),
            };
            let existing = match self.stats.renames_detected == renames_at_listing {
                true => listed,
                false => self.fs.lookup(dir, name)?,
            };
            self.sync_entry(&path, &meta, dir, name, existing, depth)?;
        }
        Ok(())
    }

    /// Drops the tree entry of a host name that is gone; a regular file's is kept until
    /// the end of the sync, as it may turn up under another name.
    fn forget(&mut self, dir: u64, name: &[u8]) -> Result<()> {
        match self.fs.lookup(dir, name)? {
            Some(entry) if entry.file_type == FileType::Regular => self.pending_removals.push((dir, entry.name)),
            Some(_) => {
                self.remove(dir, name)?;
                self.stats.entries_removed += 1;
            }
            None => {}
        }
        Ok(())
    }

    /// `existing`: the tree's entry of `name` in `dir`, as it stands.
    fn sync_entry(
        &mut self,
        path: &Path,
        meta: &Metadata,
        dir: u64,
        name: &[u8],
        mut existing: Option<super::inode::DirEntry>,
        depth: usize,
    ) -> Result<()> {
        let wanted = FileType::of_mode(meta.mode());
        // An existing file's inode, read once for the tests below (a third of a re-sync).
        let mut known = None;
        if let Some(e) = &existing {
            if wanted == FileType::Regular && e.file_type == wanted {
                known = Some(self.fs.inode(e.ino)?);
            }
            let reusable = known.as_ref().is_none_or(|inode| self.may_reuse(e.ino, inode, meta));
            if e.file_type != wanted || !reusable {
                known = None;
                self.remove(dir, name)?;
                self.stats.entries_removed += 1;
                existing = None;
            }
        }
        let source_key = (meta.dev(), meta.ino());
        if wanted == FileType::Regular && meta.nlink() > 1 {
            if let Some(&ino) = self.links.get(&source_key) {
                if existing.as_ref().map(|e| e.ino) != Some(ino) {
                    if existing.is_some() {
                        self.remove(dir, name)?;
                    }
                    self.fs.link(ino, dir, name)?;
                    self.stats.entries_created += 1;
                }
                return Ok(());
            }
        }
        let renamed = match (&existing, wanted) {
            (None, FileType::Regular) if meta.nlink() == 1 && meta.size() > 0 => self.find_renamed(path, meta)?,
            _ => None,
        };
        let moved = renamed.is_some();
        let ino = match existing {
            Some(e) => e.ino,
            None if moved => {
                let (ino, parent, old_name) = renamed.expect("checked");
                self.fs.rename(parent, &old_name, dir, name)?;
                self.stats.renames_detected += 1;
                ino
            }
            None => {
                let mut inode = Inode::new(meta.mode(), Timespec::default());
                inode.rdev = meta.rdev();
                self.stats.entries_created += 1;
                self.fs.create(dir, name, inode)?
            }
        };
        if wanted == FileType::Regular && (meta.nlink() > 1 || moved) {
            self.claimed.insert(ino, source_key);
            if meta.nlink() > 1 {
                self.links.insert(source_key, ino);
            }
        }
        let mut read_meta = None;
        match wanted {
            FileType::Directory => self.slow_step(|s| s.sync_children(path, ino, depth + 1))?,
            FileType::Regular => {
                let inode = match known.take() {
                    Some(inode) if !moved => inode,
                    _ => self.fs.inode(ino)?,
                };
                let (read, inode) = self.sync_content(path, meta, ino, inode, moved)?;
                read_meta = read;
                known = Some(inode);
            }
            FileType::Symlink => {
                let target = fs::read_link(path).map_err(|e| match e.raw_os_error() {
                    Some(libc::EINVAL) => Error::source_changed(path, "it is no longer a symlink"),
                    _ => host_error(path, "read the link", e),
                })?;
                let target = target.as_os_str().as_bytes();
                let current = if self.fs.inode(ino)?.size == 0 { Vec::new() } else { self.fs.symlink_target(ino)? };
                if current != target {
                    self.fs.set_symlink_target(ino, target)?;
                }
            }
            FileType::Special => {}
        }
        // A file read is stored with the times it had when read, not when listed: never
        // newer than its content, so a change the read missed is read by the next sync.
        let inode = match known {
            Some(inode) => inode,
            None => self.fs.inode(ino)?,
        };
        self.apply_metadata(ino, inode, path, read_meta.as_ref().unwrap_or(meta))
    }

    /// A file of the tree that the new source file `meta` is, moved: same size and
    /// mtime, single-linked, not yet matched in this sync, and whose old name no longer
    /// exists on the host. Returns (inode, parent, name) of its old name. Like the
    /// unchanged-file test, this trusts size and mtime, as rsync does.
    fn find_renamed(&mut self, path: &Path, meta: &Metadata) -> Result<Option<(u64, u64, Vec<u8>)>> {
        let wanted = (meta.size(), Timespec { sec: meta.mtime(), nsec: meta.mtime_nsec() as u32 });
        if self.by_size_and_time.is_none() {
            self.by_size_and_time = Some(self.index_files()?);
        }
        let candidates = self.by_size_and_time.as_ref().map(|index| index.candidates(wanted)).unwrap_or_default();
        let mut first_record = None;
        for ino in candidates {
            // Claimed: moved here already (the index keeps it; `claimed` rules it out).
            if self.claimed.contains_key(&ino) {
                continue;
            }
            // Many files share a size and an mtime (an unpacked archive): the first
            // record's fingerprint tells them apart; the content is then synced as for
            // any changed file, so a wrong guess costs a rewrite, never wrong data.
            let Some(record) = self.fs.record(ino, 0)? else { continue };
            if first_record.is_none() {
                first_record = Some(first_record_hash(path)?);
            }
            if first_record != Some(record.hash) {
                continue;
            }
            let Some((parent, name, host_path)) = self.host_path_of(ino)? else { continue };
            match fs::symlink_metadata(&host_path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                _ => continue, // still there: a copy, not a move
            }
            // The index holds hashes: a candidate of another size or mtime shows here.
            let inode = self.fs.inode(ino)?;
            if inode.nlink != 1 || inode.size != wanted.0 || inode.mtime != wanted.1 {
                continue;
            }
            return Ok(Some((ino, parent, name)));
        }
        Ok(None)
    }

    fn index_files(&mut self) -> Result<RenameIndex> {
        let mut entries = Vec::new();
        self.fs.for_each_regular_inode(&mut |ino, inode| {
            if inode.nlink == 1 && inode.size > 0 {
                entries.push((RenameIndex::hash((inode.size, inode.mtime)), ino));
            }
        })?;
        entries.sort_unstable();
        Ok(RenameIndex { entries })
    }

    /// The host path that a tree file inside the synced directory mirrors, with its
    /// tree name; None if it lies outside the synced directory.
    fn host_path_of(&mut self, ino: u64) -> Result<Option<(u64, Vec<u8>, std::path::PathBuf)>> {
        let Some((source, root_dir)) = self.root.clone() else { return Ok(None) };
        let mut names: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut at = ino;
        for _ in 0..DEPTH_MAX {
            if at == root_dir {
                let Some((parent, name)) = names.first().cloned() else { return Ok(None) };
                let mut host = source;
                for (_, part) in names.iter().rev() {
                    host.push(OsStr::from_bytes(part));
                }
                return Ok(Some((parent, name, host)));
            }
            let Some((parent, name)) = self.fs.backrefs(at)?.into_iter().next() else { return Ok(None) };
            names.push((parent, name));
            at = parent;
        }
        Ok(None)
    }

    /// A tree inode shared by several names can stand for this source file only if the
    /// source file is linked the same way.
    fn may_reuse(&self, ino: u64, inode: &Inode, meta: &Metadata) -> bool {
        if inode.nlink <= 1 {
            return true;
        }
        if meta.nlink() <= 1 {
            return false;
        }
        let source_key = (meta.dev(), meta.ino());
        match self.claimed.get(&ino) {
            Some(&claimed_by) => claimed_by == source_key,
            None => !self.links.contains_key(&source_key),
        }
    }

    /// `verify`: read the file even if size and mtime match (a file found by a move).
    /// `inode` is the file's as the tree holds it. Returns the metadata the file had when
    /// read, if it was read, and its inode now.
    fn sync_content(
        &mut self,
        path: &Path,
        meta: &Metadata,
        ino: u64,
        inode: Inode,
        verify: bool,
    ) -> Result<(Option<Metadata>, Inode)> {
        let mtime = Timespec { sec: meta.mtime(), nsec: meta.mtime_nsec() as u32 };
        if !verify && inode.size == meta.size() && inode.mtime == mtime && inode.generation != self.fs.store.txg.0 {
            self.stats.unchanged += 1;
            return Ok((None, inode));
        }
        super::record::check_file_size(&path.display().to_string(), meta.size())?;
        let read = self.slow_step(|s| host_file::read_into(s.fs, &mut s.pipeline, ino, path, Naming::Walked))?;
        let mut inode = self.fs.inode(ino)?;
        inode.size = read.size;
        self.fs.put_inode(ino, &inode)?;
        self.stats.files_written += 1;
        self.stats.bytes_read += read.bytes_read;
        if !read.stable {
            self.stats.changed_while_read.push(path.to_path_buf());
        }
        Ok((Some(read.metadata), inode))
    }

    /// `inode` is the tree's inode of `ino` as it stands.
    fn apply_metadata(&mut self, ino: u64, mut inode: Inode, path: &Path, meta: &Metadata) -> Result<()> {
        let before = inode.clone();
        inode.mode = meta.mode();
        inode.uid = meta.uid();
        inode.gid = meta.gid();
        inode.rdev = meta.rdev();
        inode.mtime = Timespec { sec: meta.mtime(), nsec: meta.mtime_nsec() as u32 };
        inode.ctime = Timespec { sec: meta.ctime(), nsec: meta.ctime_nsec() as u32 };
        let created = inode.generation == self.fs.store.txg.0;
        // A ctime that moved alone (a tree copied anew, a chmod to the same mode) changes
        // nothing: the xattrs are read again, and if they are the same the inode and its
        // ctime stay as stored, so a copied tree costs no update and no record in the next
        // incremental (the 2 GiB bench copy made every file's INODE record otherwise).
        let metadata_changed = inode.mode != before.mode
            || inode.uid != before.uid
            || inode.gid != before.gid
            || inode.rdev != before.rdev
            || inode.mtime != before.mtime;
        // Setting or removing an xattr moves the ctime. A change in the same clock tick as
        // the last sync's stat would go unseen until the ctime moves again, as a write in
        // the same mtime tick would for the content; Linux 6.13+ gives a change after a
        // stat a finer timestamp (multigrain) on tmpfs, ext4, xfs and btrfs.
        let xattrs_changed = (created || inode.ctime != before.ctime) && self.sync_xattrs(ino, path)?;
        if metadata_changed || xattrs_changed || created {
            inode.atime = Timespec { sec: meta.atime(), nsec: meta.atime_nsec() as u32 };
            if inode != before {
                self.fs.put_inode(ino, &inode)?;
                self.stats.metadata_updated += 1;
            }
        }
        Ok(())
    }

    fn sync_xattrs(&mut self, ino: u64, path: &Path) -> Result<bool> {
        let wanted = read_xattrs(path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => host_error(path, "list", source),
            other => other,
        })?;
        let current = self.fs.xattrs(ino)?;
        if wanted == current {
            return Ok(false);
        }
        for (name, _) in &current {
            if !wanted.iter().any(|(n, _)| n == name) {
                self.fs.remove_xattr(ino, name)?;
            }
        }
        for (name, value) in &wanted {
            self.fs.set_xattr(ino, name, value).map_err(|e| xattr_refused(path, name, e))?;
        }
        Ok(true)
    }
}

/// Rename candidates: (hash of size and mtime, inode), sorted; 16 bytes a file, where a
/// map of lists took some 100.
#[derive(Default)]
struct RenameIndex {
    entries: Vec<(u64, u64)>,
}

impl RenameIndex {
    fn hash(key: (u64, Timespec)) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        hasher.finish()
    }

    /// Inodes of that size and mtime, and perhaps a few others whose hash collides.
    fn candidates(&self, key: (u64, Timespec)) -> Vec<u64> {
        let hash = RenameIndex::hash(key);
        let from = self.entries.partition_point(|&(h, _)| h < hash);
        self.entries[from..].iter().take_while(|&&(h, _)| h == hash).map(|&(_, ino)| ino).collect()
    }
}

/// An xattr the tree cannot store, refused naming the host file it is on.
fn xattr_refused(path: &Path, name: &[u8], e: Error) -> Error {
    let name = String::from_utf8_lossy(name);
    match e {
        Error::Invalid { what } => Error::Refused(Refusal::XattrUnstorable {
            path: path.display().to_string(),
            name: name.into_owned(),
            why: what,
        }),
        other => other,
    }
}

/// Directories with fewer entries are stat'ed on this thread: a thread costs more.
const PARALLEL_STAT_MIN: usize = 64;

/// Stats a listed entry, not following symlinks: relative to its directory's open
/// descriptor if it was kept, else by path.
fn stat_entry(dir: &Path, name: &[u8], entry: Option<&fs::DirEntry>) -> io::Result<Metadata> {
    match entry {
        Some(entry) => entry.metadata(),
        None => fs::symlink_metadata(dir.join(OsStr::from_bytes(name))),
    }
}

/// The fingerprint of a host file's first record.
fn first_record_hash(path: &Path) -> Result<u128> {
    let mut file = File::open(path).map_err(|e| host_error(path, "open", e))?;
    let mut buf = vec![0u8; RECORD_BYTES as usize];
    let n = read_full(&mut file, &mut buf).map_err(|e| host_error(path, "read", e))?;
    Ok(super::record::fingerprint(&buf[..n]).hash)
}

/// Reads `reader` to its end as the records of `ino`, handing them to the pipeline;
/// drops records past the new end. Returns the size read. Records may still be in the
/// pipeline when it returns: `drain` applies them.
pub fn stream_records(
    fs: &mut FsTree,
    pipeline: &mut Pipeline,
    ino: u64,
    reader: &mut (impl Read + ?Sized),
) -> Result<u64> {
    let mut index = 0u64;
    let mut size = 0u64;
    loop {
        let mut buf = vec![0u8; RECORD_BYTES as usize];
        let n = read_full(reader, &mut buf).map_err(|e| Error::io("cannot read the input", e))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        size = super::record::file_end(size, n as u64)?;
        drain(fs, pipeline, IN_FLIGHT_MAX - 1)?;
        pipeline.submit(Job { ino, index, data: buf });
        index += 1;
        if (n as u64) < RECORD_BYTES {
            break;
        }
    }
    for (i, _) in fs.records(ino)? {
        if i >= index {
            fs.punch_record(ino, i)?;
        }
    }
    Ok(size)
}

/// Reads until the buffer is full or the file ends.
pub fn read_full(reader: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{} contains a NUL byte", path.display())))
}

/// Extended attributes of a file (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let cpath = c_path(path)?;
    // SAFETY: a null buffer with size 0 asks for the size of the name list.
    let size = unsafe { libc::llistxattr(cpath.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::ENOTSUP)) {
            return Ok(Vec::new());
        }
        return Err(io_error(path, "list the extended attributes of", e));
    }
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: the buffer has `names.len()` writable bytes.
    let size = unsafe { libc::llistxattr(cpath.as_ptr(), names.as_mut_ptr() as *mut libc::c_char, names.len()) };
    if size < 0 {
        return Err(io_error(path, "list the extended attributes of", io::Error::last_os_error()));
    }
    names.truncate(size as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("names split on NUL");
        let mut value = vec![0u8; 65536];
        // SAFETY: the buffer has `value.len()` writable bytes.
        let n = unsafe {
            libc::lgetxattr(cpath.as_ptr(), cname.as_ptr(), value.as_mut_ptr() as *mut libc::c_void, value.len())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENODATA) {
                continue; // removed while we looked
            }
            return Err(io_error(path, "read an extended attribute of", e));
        }
        value.truncate(n as usize);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}
