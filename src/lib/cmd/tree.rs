//! The file tree's commands: put, cat, ls, mkdir, rm, mv, export, sync. Those that write
//! take paths of the live tree and commit once; those that read take a `PathSpec`.

use super::{PathSpec, live_path, with_view};
use crate::block::Txg;
use crate::error::{Error, Result};
use crate::fs::export::{ExportOptions, ExportStats, Exporter, export_root};
use crate::fs::host_file::{self, Naming};
use crate::fs::inode::{S_IFDIR, S_IFREG};
use crate::fs::pipeline::Pipeline;
use crate::fs::pipeline::drain;
use crate::fs::record::RECORD_BYTES;
use crate::fs::select::{FileXattrs, Rule};
use crate::fs::sync::{SyncStats, Syncer, read_full, stream_records};
use crate::fs::{DirEntry, FileType, FsTree, Inode, ROOT_INO, Timespec};
use crate::pool::{CommitSummary, Pool};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What `sync` did, and the transaction it committed.
pub struct Synced {
    pub stats: SyncStats,
    /// None when the tree already mirrored the source.
    pub txg: Option<Txg>,
}

/// Makes tree directory `path` mirror host directory `source`; one transaction.
pub fn sync(pool: &mut Pool, tree: u64, source: &Path, path: &str) -> Result<Synced> {
    let path = live_path(path)?;
    let now = command_time(pool);
    let mut fs = pool.live(tree)?;
    let dir = match fs.resolve(path) {
        Ok(ino) => ino,
        Err(Error::NotFound { .. }) => mkdir_p(&mut fs, path, now)?,
        Err(e) => return Err(e),
    };
    if fs.inode(dir)?.file_type() != FileType::Directory {
        return Err(Error::invalid(format!("{path:?} is not a directory in the tree")));
    }
    let mut syncer = Syncer::new(&mut fs);
    syncer.sync_dir(source, dir)?;
    let stats = syncer.stats.clone();
    let summary = pool.commit()?;
    Ok(Synced { stats, txg: summary.txg })
}

/// The time a command stamps on the inodes it creates and the directories it changes:
/// one reading of the pool's clock, before the command's transaction begins.
pub(super) fn command_time(pool: &Pool) -> Timespec {
    Timespec::from_ns(pool.clock().now_ns())
}

fn mkdir_p(fs: &mut FsTree, path: &str, now: Timespec) -> Result<u64> {
    let mut ino = ROOT_INO;
    for part in crate::fs::path::components(path)? {
        ino = match fs.lookup(ino, part)? {
            Some(e) if e.file_type == FileType::Directory => e.ino,
            Some(_) => {
                return Err(Error::invalid(format!(
                    "{:?} exists and is not a directory",
                    String::from_utf8_lossy(part)
                )));
            }
            None => {
                let mut inode = Inode::new(S_IFDIR | 0o755, now);
                inode.uid = current_uid();
                inode.gid = current_gid();
                fs.create(ino, part, inode)?
            }
        };
    }
    Ok(ino)
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

fn current_gid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

/// Touches a directory's times, as creating or removing an entry does.
fn touch_dir(fs: &mut FsTree, dir: u64, now: Timespec) -> Result<()> {
    let mut inode = fs.inode(dir)?;
    inode.mtime = now;
    inode.ctime = now;
    fs.put_inode(dir, &inode)
}

pub enum PutSource<'a> {
    /// Standard input, read to its end.
    Stream(&'a mut dyn Read),
    /// A host file: whole, only its data extents are read (holes stay holes), again if it
    /// changes meanwhile; it gives the file its mode, owner and times.
    File(&'a Path),
}

/// What `put` wrote.
pub struct PutStats {
    pub bytes: u64,
    /// The host file, if it changed during every read: stored as last read, perhaps
    /// torn (as `sync` names such files).
    pub changed_while_read: Vec<PathBuf>,
}

/// Writes a file into the tree: whole (replacing any content), or at `offset` without
/// truncating, as `dd conv=notrunc` does.
pub fn put(pool: &mut Pool, tree: u64, source: PutSource, path: &str, offset: Option<u64>) -> Result<PutStats> {
    let mut pipeline = Pipeline::new(pool.store.compression);
    let stats = put_uncommitted(pool, tree, source, path, offset, &mut pipeline, 0)?;
    pool.commit()?;
    Ok(stats)
}

/// `put` in the running transaction, through `pipeline`, leaving up to `keep` of the
/// file's records in flight (batch.rs runs several puts through one pipeline; the records
/// in flight must all be of files of `tree`, and are applied before a put replaces a
/// file that already exists, whose records they could be).
pub(super) fn put_uncommitted(
    pool: &mut Pool,
    tree: u64,
    source: PutSource,
    path: &str,
    offset: Option<u64>,
    pipeline: &mut Pipeline,
    keep: usize,
) -> Result<PutStats> {
    let path = live_path(path)?;
    // Opened first, so that a missing or wrong source is named before the target.
    let host = match &source {
        PutSource::File(host) => Some(host_file::open_named(host)?),
        PutSource::Stream(_) => None,
    };
    if let Some(offset) = offset {
        // Refused before the file is created; standard input's length shows as it is read.
        let host_bytes = host.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
        crate::fs::record::file_end(offset, host_bytes)?;
    }
    let now = command_time(pool);
    let mut fs = pool.live(tree)?;
    let (parent, name) = fs.resolve_parent(path)?;
    let ino = match fs.lookup(parent, &name)? {
        Some(e) if e.file_type == FileType::Regular => {
            drain(&mut fs, pipeline, 0)?;
            e.ino
        }
        Some(_) => return Err(Error::invalid(format!("{path:?} exists and is not a regular file"))),
        None => {
            let mut inode = Inode::new(S_IFREG | 0o644, now);
            inode.uid = current_uid();
            inode.gid = current_gid();
            let ino = fs.create(parent, &name, inode)?;
            touch_dir(&mut fs, parent, now)?;
            ino
        }
    };
    let (stats, host_metadata) = put_content(&mut fs, ino, source, host, offset, pipeline, keep)?;
    let mut inode = fs.inode(ino)?;
    match &host_metadata {
        Some(meta) => {
            inode.mode = S_IFREG | (meta.mode() & 0o7777);
            inode.uid = meta.uid();
            inode.gid = meta.gid();
            inode.atime = Timespec { sec: meta.atime(), nsec: meta.atime_nsec() as u32 };
            inode.mtime = Timespec { sec: meta.mtime(), nsec: meta.mtime_nsec() as u32 };
        }
        _ => {
            inode.mtime = now;
        }
    }
    inode.ctime = now;
    fs.put_inode(ino, &inode)?;
    Ok(stats)
}

/// Writes `put`'s bytes into file `ino`; returns the host file's metadata when it was
/// read whole, to give the tree file its mode, owner and times.
fn put_content(
    fs: &mut FsTree,
    ino: u64,
    source: PutSource,
    mut host: Option<std::fs::File>,
    offset: Option<u64>,
    pipeline: &mut Pipeline,
    keep: usize,
) -> Result<(PutStats, Option<std::fs::Metadata>)> {
    let stats = match (source, offset) {
        (PutSource::File(host_path), None) => {
            let read = host_file::read_into(fs, pipeline, ino, host_path, Naming::Operator)?;
            drain(fs, pipeline, keep)?;
            set_size(fs, ino, read.size)?;
            let changed_while_read = if read.stable { Vec::new() } else { vec![host_path.to_path_buf()] };
            let stats = PutStats { bytes: read.size, changed_while_read };
            return Ok((stats, Some(read.metadata)));
        }
        (PutSource::Stream(reader), None) => {
            let written = stream_records(fs, pipeline, ino, reader)?;
            drain(fs, pipeline, 0)?;
            set_size(fs, ino, written)?;
            PutStats { bytes: written, changed_while_read: Vec::new() }
        }
        (source, Some(offset)) => {
            let reader: &mut dyn Read = match (source, host.as_mut()) {
                (PutSource::Stream(reader), _) => reader,
                (PutSource::File(_), Some(file)) => file,
                (PutSource::File(_), None) => unreachable!("a host file is opened before"),
            };
            let mut buf = vec![0u8; RECORD_BYTES as usize];
            let mut written = 0u64;
            loop {
                let n = read_full(reader, &mut buf).map_err(|e| Error::io("cannot read the input", e))?;
                if n == 0 {
                    break;
                }
                fs.write_at(ino, crate::fs::record::file_end(offset, written)?, &buf[..n])?;
                written += n as u64;
            }
            PutStats { bytes: written, changed_while_read: Vec::new() }
        }
    };
    Ok((stats, None))
}

fn set_size(fs: &mut FsTree, ino: u64, size: u64) -> Result<()> {
    let mut inode = fs.inode(ino)?;
    inode.size = size;
    fs.put_inode(ino, &inode)
}

/// Writes a file's bytes to `out`.
pub fn cat(pool: &mut Pool, spec: &PathSpec, out: &mut dyn Write) -> Result<()> {
    with_view(pool, spec, |fs| {
        let ino = fs.resolve(&spec.path)?;
        let inode = fs.inode(ino)?;
        if inode.file_type() != FileType::Regular {
            return Err(Error::invalid(format!("{} is not a regular file", spec.describe())));
        }
        let mut at = 0;
        while at < inode.size {
            let chunk = fs.read(ino, at, 4 * RECORD_BYTES).map_err(|e| e.in_file(&spec.describe()))?;
            if chunk.is_empty() {
                break;
            }
            out.write_all(&chunk).map_err(|e| Error::io("cannot write to standard output", e))?;
            at += chunk.len() as u64;
        }
        out.flush().map_err(|e| Error::io("cannot write to standard output", e))
    })
}

pub struct ListedEntry {
    /// Path relative to the listed directory.
    pub path: String,
    pub ino: u64,
    pub inode: Inode,
    pub symlink_target: Option<Vec<u8>>,
}

/// The entries of a directory (recursively with `recursive`), or the file itself. With
/// a `rule`, every file below it that the rule selects (fs/select.rs; its globs match
/// paths from the tree's root), and no directory: what a subset of that rule holds.
pub fn ls(pool: &mut Pool, spec: &PathSpec, recursive: bool, rule: Option<&Rule>) -> Result<Vec<ListedEntry>> {
    let recursive = recursive || rule.is_some();
    let from_root = spec.path.trim_matches('/');
    with_view(pool, spec, |fs| {
        let ino = fs.resolve(&spec.path)?;
        let inode = fs.inode(ino)?;
        let mut out = Vec::new();
        let selected = |fs: &mut FsTree, path: &str, ino: u64, inode: &Inode| -> Result<bool> {
            let Some(rule) = rule else { return Ok(true) };
            let full = match (from_root, path) {
                ("", path) => path.to_string(),
                (dir, "") => dir.to_string(),
                (dir, path) => format!("{dir}/{path}"),
            };
            rule.selects(full.as_bytes(), inode, &mut FileXattrs { fs, ino })
        };
        if inode.file_type() != FileType::Directory {
            let name = spec.path.rsplit('/').next().unwrap_or("").to_string();
            if selected(fs, "", ino, &inode)? {
                out.push(listed(fs, name, ino, inode)?);
            }
            return Ok(out);
        }
        let mut stack: Vec<(String, u64)> = vec![(String::new(), ino)];
        let mut seen = std::collections::HashSet::new();
        while let Some((prefix, dir)) = stack.pop() {
            if !seen.insert(dir) {
                return Err(Error::corrupt(format!("directory inode {dir} is reached twice: the tree has a loop")));
            }
            let entries: Vec<DirEntry> = fs.readdir(dir)?;
            let mut subdirs = Vec::new();
            for e in entries {
                let path = format!("{prefix}{}", String::from_utf8_lossy(&e.name));
                let inode = fs.inode(e.ino)?;
                if recursive && e.file_type == FileType::Directory {
                    subdirs.push((format!("{path}/"), e.ino));
                }
                if (rule.is_none() || e.file_type != FileType::Directory) && selected(fs, &path, e.ino, &inode)? {
                    out.push(listed(fs, path, e.ino, inode)?);
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(out)
    })
}

fn listed(fs: &mut FsTree, path: String, ino: u64, inode: Inode) -> Result<ListedEntry> {
    let symlink_target = if inode.file_type() == FileType::Symlink { Some(fs.symlink_target(ino)?) } else { None };
    Ok(ListedEntry { path, ino, inode, symlink_target })
}

pub fn mkdir(pool: &mut Pool, tree: u64, path: &str, parents: bool) -> Result<CommitSummary> {
    mkdir_uncommitted(pool, tree, path, parents)?;
    pool.commit()
}

pub(super) fn mkdir_uncommitted(pool: &mut Pool, tree: u64, path: &str, parents: bool) -> Result<()> {
    let path = live_path(path)?;
    let now = command_time(pool);
    let mut fs = pool.live(tree)?;
    if parents {
        mkdir_p(&mut fs, path, now)?;
    } else {
        let (parent, name) = fs.resolve_parent(path)?;
        let mut inode = Inode::new(S_IFDIR | 0o755, now);
        inode.uid = current_uid();
        inode.gid = current_gid();
        fs.create(parent, &name, inode)?;
        touch_dir(&mut fs, parent, now)?;
    }
    Ok(())
}

pub fn rm(pool: &mut Pool, tree: u64, path: &str, recursive: bool) -> Result<CommitSummary> {
    rm_uncommitted(pool, tree, path, recursive)?;
    pool.commit()
}

pub(super) fn rm_uncommitted(pool: &mut Pool, tree: u64, path: &str, recursive: bool) -> Result<()> {
    let path = live_path(path)?;
    let now = command_time(pool);
    let mut fs = pool.live(tree)?;
    let (parent, name) = fs.resolve_parent(path)?;
    let entry = fs.lookup(parent, &name)?.ok_or_else(|| Error::not_found(format!("path {path:?}")))?;
    if entry.file_type == FileType::Directory && !recursive && !fs.readdir(entry.ino)?.is_empty() {
        return Err(Error::invalid(format!("{path:?} is a directory that is not empty; use rm -r")));
    }
    fs.remove_recursive(parent, &name)?;
    touch_dir(&mut fs, parent, now)
}

/// Renames; a destination that is a directory receives the source inside it, as mv does.
pub fn mv(pool: &mut Pool, tree: u64, from: &str, to: &str) -> Result<CommitSummary> {
    mv_uncommitted(pool, tree, from, to)?;
    pool.commit()
}

pub(super) fn mv_uncommitted(pool: &mut Pool, tree: u64, from: &str, to: &str) -> Result<()> {
    let (from, to) = (live_path(from)?, live_path(to)?);
    let now = command_time(pool);
    let mut fs = pool.live(tree)?;
    let (src_parent, src_name) = fs.resolve_parent(from)?;
    if fs.lookup(src_parent, &src_name)?.is_none() {
        return Err(Error::not_found(format!("path {from:?}")));
    }
    let (dst_parent, dst_name) = match fs.resolve(to) {
        Ok(ino) if fs.inode(ino)?.file_type() == FileType::Directory => (ino, src_name.clone()),
        _ => fs.resolve_parent(to)?,
    };
    fs.rename(src_parent, &src_name, dst_parent, &dst_name)?;
    touch_dir(&mut fs, src_parent, now)?;
    touch_dir(&mut fs, dst_parent, now)
}

/// Writes a directory of a tree or snapshot to a host directory.
pub fn export(pool: &mut Pool, spec: &PathSpec, dest: &Path, options: ExportOptions) -> Result<ExportStats> {
    with_view(pool, spec, |fs| {
        let ino = fs.resolve(&spec.path)?;
        if ino == ROOT_INO {
            return export_root(fs, dest, options);
        }
        let mut exporter = Exporter::new(fs, options);
        exporter.export(ino, dest)?;
        Ok(exporter.stats)
    })
}
