//! `export`: write a tree (live or a snapshot) back to a host directory, byte and
//! metadata identical: contents with holes, modes, owners, times, xattrs, hard links.
//!
//! A tree received from a sender one does not trust can hold device nodes (a way to the
//! host's disks and memory), setuid and setgid programs and file capabilities (a way to
//! root): `ExportOptions` leaves them out, as `mount -o nodev,nosuid` makes a mount
//! ignore them.

use super::inode::ROOT_INO;
use super::record::{FILE_BYTES_MAX, RECORD_BYTES};
use super::sync::read_xattrs;
use super::{FileType, FsTree, Inode};
use crate::error::{Error, Refusal, Result};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct ExportStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub bytes: u64,
    /// FIFOs, sockets and device nodes created.
    pub specials: u64,
    /// What the options left out, one line each ("PATH: device node not created").
    pub withheld: Vec<String>,
}

/// What an export leaves out of a tree it does not trust.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportOptions {
    /// Device nodes (block and character) are not created: each is reported in
    /// `ExportStats::withheld`. FIFOs and sockets, which reach no device, still are.
    pub nodev: bool,
    /// Setuid and setgid bits of non-directories are cleared and `security.capability`
    /// is not set, so no exported program runs with more rights than its caller.
    /// (A directory's setgid bit only passes its group on to new files: kept.)
    pub nosuid: bool,
}

/// The xattr that holds a file's capabilities (setcap(8)).
const CAPABILITY_XATTR: &[u8] = b"security.capability";

fn io_error(path: &Path, what: &str, e: io::Error) -> Error {
    Error::io(format!("cannot {what} {}", path.display()), e)
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{} contains a NUL byte", path.display())))
}

pub struct Exporter<'f, 'a> {
    fs: &'f mut FsTree<'a>,
    options: ExportOptions,
    /// Tree inode of a hard-linked file -> the first path it was written to.
    written: HashMap<u64, PathBuf>,
    /// Directories whose times are set after their contents, deepest last.
    directories: Vec<(PathBuf, Inode)>,
    pub stats: ExportStats,
}

impl<'f, 'a> Exporter<'f, 'a> {
    pub fn new(fs: &'f mut FsTree<'a>, options: ExportOptions) -> Exporter<'f, 'a> {
        Exporter { fs, options, written: HashMap::new(), directories: Vec::new(), stats: ExportStats::default() }
    }

    /// Exports tree inode `ino` (a directory) into `dest`, which must not exist or be an
    /// empty directory.
    pub fn export(&mut self, ino: u64, dest: &Path) -> Result<()> {
        match fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::Refused(Refusal::ExportIntoNonEmpty { dir: dest.display().to_string() }));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(dest).map_err(|e| io_error(dest, "create", e))?;
            }
            Err(e) => return Err(io_error(dest, "open", e)),
        }
        let inode = self.fs.inode(ino)?;
        if inode.file_type() != FileType::Directory {
            return Err(Error::invalid("export needs a directory of the tree"));
        }
        self.export_children(ino, dest)?;
        self.finish_entry(dest, &inode, ino, FileType::Directory)?;
        self.directories.push((dest.to_path_buf(), inode));
        // Children before parents: writing into a directory changes its mtime.
        for (path, inode) in std::mem::take(&mut self.directories).iter().rev() {
            set_times(path, inode)?;
        }
        Ok(())
    }

    fn export_children(&mut self, dir: u64, dest: &Path) -> Result<()> {
        let mut stack = vec![(dir, dest.to_path_buf())];
        let mut seen = std::collections::HashSet::new();
        while let Some((dir, dest)) = stack.pop() {
            if !seen.insert(dir) {
                return Err(Error::corrupt(format!("directory inode {dir} is reached twice: the tree has a loop")));
            }
            for entry in self.fs.readdir(dir)? {
                let path = dest.join(OsStr::from_bytes(&entry.name));
                let inode = self.fs.inode(entry.ino)?;
                if inode.nlink > 1 && entry.file_type != FileType::Directory {
                    if let Some(first) = self.written.get(&entry.ino) {
                        fs::hard_link(first, &path).map_err(|e| io_error(&path, "link", e))?;
                        self.stats.hard_links += 1;
                        continue;
                    }
                    self.written.insert(entry.ino, path.clone());
                }
                match entry.file_type {
                    FileType::Directory => {
                        fs::create_dir(&path).map_err(|e| io_error(&path, "create", e))?;
                        self.finish_entry(&path, &inode, entry.ino, FileType::Directory)?;
                        self.directories.push((path.clone(), inode));
                        self.stats.directories += 1;
                        stack.push((entry.ino, path));
                    }
                    FileType::Regular => {
                        self.write_file(entry.ino, &inode, &path)?;
                        self.finish_entry(&path, &inode, entry.ino, FileType::Regular)?;
                        set_times(&path, &inode)?;
                        self.stats.files += 1;
                    }
                    FileType::Symlink => {
                        let target = self.fs.symlink_target(entry.ino)?;
                        std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                            .map_err(|e| io_error(&path, "create the symlink", e))?;
                        self.finish_entry(&path, &inode, entry.ino, FileType::Symlink)?;
                        set_times(&path, &inode)?;
                        self.stats.symlinks += 1;
                    }
                    FileType::Special => {
                        if self.options.nodev && is_device(inode.mode) {
                            self.stats.withheld.push(format!("{}: device node not created (--nodev)", path.display()));
                            continue;
                        }
                        let cpath = c_path(&path)?;
                        // SAFETY: mknod reads the path we own.
                        if unsafe { libc::mknod(cpath.as_ptr(), inode.mode, inode.rdev as libc::dev_t) } != 0 {
                            return Err(io_error(&path, "create the special file", io::Error::last_os_error()));
                        }
                        self.finish_entry(&path, &inode, entry.ino, FileType::Special)?;
                        set_times(&path, &inode)?;
                        self.stats.specials += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn write_file(&mut self, ino: u64, inode: &Inode, path: &Path) -> Result<()> {
        if inode.size > FILE_BYTES_MAX {
            // Written by a snapfs before the limit; every offset below it fits off_t.
            return Err(Error::Refused(Refusal::FileTooLarge {
                path: path.display().to_string(),
                bytes: inode.size,
                max_bytes: FILE_BYTES_MAX,
            }));
        }
        let file: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_error(path, "create", e))?;
        for (index, record) in self.fs.records(ino)? {
            // A record past the end holds nothing of the file (check reports it).
            let Some(offset) = index.checked_mul(RECORD_BYTES).filter(|&at| at < inode.size) else { continue };
            let data = self.fs.read_record(&record).map_err(|e| e.in_file(&path.display().to_string()))?;
            let keep = inode.size.saturating_sub(offset).min(data.len() as u64) as usize;
            file.write_all_at(&data[..keep], offset).map_err(|e| io_error(path, "write", e))?;
        }
        file.set_len(inode.size).map_err(|e| io_error(path, "set the size of", e))?;
        self.stats.bytes += inode.size;
        Ok(())
    }

    /// Owner, mode and extended attributes.
    fn finish_entry(&mut self, path: &Path, inode: &Inode, ino: u64, file_type: FileType) -> Result<()> {
        let cpath = c_path(path)?;
        // SAFETY: lchown reads the path we own.
        if unsafe { libc::lchown(cpath.as_ptr(), inode.uid, inode.gid) } != 0 {
            let e = io::Error::last_os_error();
            // Not root: files stay with the exporting user, as cp -a does.
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(io_error(path, "set the owner of", e));
            }
        }
        if file_type != FileType::Symlink {
            let mut mode = inode.mode & 0o7777;
            if self.options.nosuid && file_type != FileType::Directory && mode & SETID_BITS != 0 {
                mode &= !SETID_BITS;
                self.stats.withheld.push(format!("{}: setuid/setgid bits cleared (--nosuid)", path.display()));
            }
            // SAFETY: chmod reads the path we own.
            if unsafe { libc::chmod(cpath.as_ptr(), mode) } != 0 {
                return Err(io_error(path, "set the mode of", io::Error::last_os_error()));
            }
        }
        let mut wanted = self.fs.xattrs(ino)?;
        if self.options.nosuid && wanted.iter().any(|(name, _)| name == CAPABILITY_XATTR) {
            wanted.retain(|(name, _)| name != CAPABILITY_XATTR);
            self.stats.withheld.push(format!("{}: file capabilities not set (--nosuid)", path.display()));
        }
        if !wanted.is_empty() && read_xattrs(path)? != wanted {
            for (name, value) in wanted {
                let cname = CString::new(name.clone())
                    .map_err(|_| Error::corrupt("extended attribute name contains a NUL byte"))?;
                // SAFETY: both buffers are valid for the lengths passed.
                let rc = unsafe {
                    libc::lsetxattr(
                        cpath.as_ptr(),
                        cname.as_ptr(),
                        value.as_ptr() as *const libc::c_void,
                        value.len(),
                        0,
                    )
                };
                if rc != 0 {
                    return Err(io_error(path, "set an extended attribute of", io::Error::last_os_error()));
                }
            }
        }
        Ok(())
    }
}

const SETID_BITS: u32 = libc::S_ISUID | libc::S_ISGID;

fn is_device(mode: u32) -> bool {
    matches!(mode & libc::S_IFMT, libc::S_IFBLK | libc::S_IFCHR)
}

fn set_times(path: &Path, inode: &Inode) -> Result<()> {
    let cpath = c_path(path)?;
    let times = [
        libc::timespec { tv_sec: inode.atime.sec, tv_nsec: inode.atime.nsec as i64 },
        libc::timespec { tv_sec: inode.mtime.sec, tv_nsec: inode.mtime.nsec as i64 },
    ];
    // SAFETY: utimensat reads the path and the two timespecs we own.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, cpath.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(io_error(path, "set the times of", io::Error::last_os_error()));
    }
    Ok(())
}

pub fn export_root(fs: &mut FsTree, dest: &Path, options: ExportOptions) -> Result<ExportStats> {
    let mut exporter = Exporter::new(fs, options);
    exporter.export(ROOT_INO, dest)?;
    Ok(exporter.stats)
}
