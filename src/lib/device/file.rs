//! A regular image file or a block device.
//!
//! Writers hold an exclusive lock on the storage the device reaches, whatever its name
//! (lock.rs; and open block devices with O_EXCL, which the kernel also refuses while a
//! file system is mounted on them). A second writer waits for the first as its
//! `WaitPolicy` allows, then is refused with the pid of the holder. Readers take no lock:
//! they pin what they read instead (pins.rs), so they never keep a writer out.
//!
//! A writer sends whole aligned blocks (the store's gathered writes) past the page cache
//! through a second descriptor opened with O_DIRECT: no copy of the data into the cache,
//! no write-back of it later; and a buffer handed over (`write_owned`) is written on a
//! thread of its own (write_behind.rs), so the device works while the program fills
//! the next one. Anything unaligned (labels, commit records, a short tail), and everything
//! where the file system refuses O_DIRECT, goes through the cache as before. The kernel
//! keeps the two coherent: a direct write first writes back and drops the cached pages it
//! covers, so neither path's older bytes land over the other's newer ones, and a read
//! through the cache after it sees what it wrote. `flush` (fdatasync, or the block
//! device's cache flush) covers both, as it covers every write of the inode.

use super::Device;
use super::aligned::AlignedBuf;
use super::lock::{self, Conflict, HeldLocks, LockKind, LockTarget};
use super::storage::{self, ByteRange};
use super::wait::WaitPolicy;
use super::write_behind::WriteBehind;
use crate::error::{DeviceError, Error, Result};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    Read,
    Write,
}

pub struct FileDevice {
    file: File,
    name: String,
    len: u64,
    pub written_bytes: u64,
    pub write_calls: u64,
    pub flushes: u64,
    /// Byte range written since write-back was last started: [start, end).
    unstarted: Option<(u64, u64)>,
    /// The storage lock, then (for a writer, once the label is read) the pool id's.
    locks: Vec<HeldLocks>,
    /// A writer's O_DIRECT descriptor of the same file; None where it cannot be had.
    /// Kept open as long as the device: closing a descriptor of the inode would drop the
    /// process's record lock on it (lock_opened_inode).
    direct: Option<File>,
    /// How long a writer waits for the pool id's lock (`lock_pool`).
    wait: WaitPolicy,
    /// Set once a direct write was refused (EINVAL): every write goes through the cache.
    direct_refused: bool,
    /// The thread that writes handed-over buffers through a copy of `direct`.
    behind: Option<WriteBehind>,
    /// Writes that went past the page cache (for tests).
    pub direct_writes: u64,
}

/// Write-back of written data is started in the background once this much is pending,
/// so that the device works while the program goes on and the flush at commit finds
/// little left to do (a large receive or copy-in would otherwise write everything then).
const WRITE_BEHIND_BYTES: u64 = 32 << 20;

/// How long a block device may stay busy with no snapfs holder before a writer takes it
/// for the kernel's (mounted) rather than a snapfs writer's that is closing.
const CLOSING_GRACE: Duration = Duration::from_millis(200);

nix::ioctl_read!(block_device_size, 0x12, 114, u64);
nix::ioctl_read_bad!(block_device_read_only, 0x125e, libc::c_int);

/// Opens `path`; a writer finding another writer is refused at once.
pub fn open_file_device(path: &str, mode: OpenMode) -> Result<FileDevice> {
    open_file_device_waiting(path, mode, &WaitPolicy::nowait())
}

/// Opens `path`; a writer finding another writer waits for it as `wait` allows.
pub fn open_file_device_waiting(path: &str, mode: OpenMode, wait: &WaitPolicy) -> Result<FileDevice> {
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::not_found(format!("device {path}")),
        _ => Error::io(format!("cannot stat {path}"), e),
    })?;
    let file_type = metadata.file_type();
    let is_block = file_type.is_block_device();
    if !is_block && !file_type.is_file() {
        return Err(Error::invalid(format!("{path} is not a regular file or a block device")));
    }
    let mut options = OpenOptions::new();
    options.read(true);
    if mode == OpenMode::Write {
        options.write(true);
        if is_block {
            options.custom_flags(libc::O_EXCL);
        }
    }
    // A block device another snapfs writer holds (O_EXCL) is waited for as the storage
    // lock is (below): the kernel refuses the open before that lock is reached. A writer
    // that is closing may have dropped its lock and not yet its descriptor: a device
    // busy with no snapfs holder is the kernel's only once that lasts. While it waits, a
    // writer says so (lock.rs `mark_waiting`), as one waiting for the storage lock does.
    let mut busy_since: Option<Instant> = None;
    let mut waiting: Option<HeldLocks> = None;
    let mut attempt = || match options.open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) => match e.raw_os_error() {
            Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) if mode == OpenMode::Write => {
                Err(Error::Device(DeviceError::NotWritable { device: path.to_string(), why: e.to_string() }))
            }
            Some(libc::EBUSY) if snapfs_holder(path).is_some() => {
                if waiting.is_none() {
                    waiting = storage_targets_of(path).and_then(|t| lock::mark_waiting(&t));
                }
                Ok(None)
            }
            Some(libc::EBUSY) if busy_since.get_or_insert_with(Instant::now).elapsed() < CLOSING_GRACE => Ok(None),
            Some(libc::EBUSY) => Err(Error::InUse { device: path.to_string(), holder: busy_holder(path) }),
            _ => Err(Error::io(format!("cannot open {path}"), e)),
        },
    };
    let file = wait
        .wait_for(&mut attempt, || busy_holder(path))?
        .ok_or_else(|| Error::InUse { device: path.to_string(), holder: busy_holder(path) })?;
    if is_block && mode == OpenMode::Write {
        let mut read_only: libc::c_int = 0;
        // SAFETY: BLKROGET writes one int through the pointer we pass.
        let known = unsafe { block_device_read_only(file.as_raw_fd(), &mut read_only) }.is_ok();
        if known && read_only != 0 {
            return Err(Error::Device(DeviceError::NotWritable {
                device: path.to_string(),
                why: "the block device is read-only".into(),
            }));
        }
    }
    let mut locks = Vec::new();
    if mode == OpenMode::Write {
        locks.push(lock_storage(&file, path, wait)?);
        lock_opened_inode(&file, path)?;
    }
    if is_block {
        drop_cached_pages(&file);
    }
    let len = if is_block {
        let mut size = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer we pass.
        unsafe { block_device_size(file.as_raw_fd(), &mut size) }
            .map_err(|e| Error::io(format!("cannot read the size of {path}"), io::Error::from(e)))?;
        size
    } else {
        metadata.len()
    };
    let direct = if mode == OpenMode::Write { open_direct(&file) } else { None };
    let behind = direct.as_ref().and_then(|direct| {
        let (direct, cached) = (direct.try_clone().ok()?, file.try_clone().ok()?);
        WriteBehind::start(direct, cached).ok()
    });
    Ok(FileDevice {
        file,
        name: path.to_string(),
        len,
        written_bytes: 0,
        write_calls: 0,
        flushes: 0,
        unstarted: None,
        locks,
        wait: wait.clone(),
        direct,
        direct_refused: false,
        behind,
        direct_writes: 0,
    })
}

/// Drops the clean pages a block device has cached. A block device's cache is its own,
/// apart from the cache of the file or disk under it, and lasts while anyone holds the
/// device open (a loop over it does): a process that wrote the pool through another name
/// (the image file, another loop) left it stale, and a read through it would find old
/// commit records and reused blocks. Our writes are durable before a writer exits, so
/// nothing dirty of ours is dropped. Best effort: a kernel that refuses leaves the cache.
fn drop_cached_pages(file: &File) {
    // SAFETY: posix_fadvise on a descriptor we own; it only advises the kernel.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// The opened file again, for writing with O_DIRECT; None where the file system
/// refuses it. Reopened through /proc, so it is the very inode opened, whatever its
/// path names now; not O_EXCL, which the first descriptor of a block device holds.
fn open_direct(file: &File) -> Option<File> {
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT | libc::O_CLOEXEC).open(path).ok()
}

/// True if a write of `buf` at `offset` meets O_DIRECT's alignment of memory, offset
/// and length.
fn direct_aligned(offset: u64, buf: &[u8]) -> bool {
    let align = super::aligned::DIRECT_ALIGN;
    !buf.is_empty()
        && (buf.as_ptr() as usize).is_multiple_of(align)
        && buf.len().is_multiple_of(align)
        && offset.is_multiple_of(align as u64)
}

/// Who keeps a block device busy (O_EXCL refused): a snapfs process holding its storage
/// is named as a lock conflict names it, with its pid; else the kernel or someone else.
fn busy_holder(path: &str) -> String {
    snapfs_holder(path).unwrap_or_else(|| "the kernel or another program (mounted, or opened exclusively)".into())
}

/// The snapfs process holding the storage of block device `path`, if one does.
fn snapfs_holder(path: &str) -> Option<String> {
    let file = File::open(path).ok()?;
    match lock_storage(&file, path, &WaitPolicy::nowait()) {
        Err(Error::InUse { holder, .. }) => Some(holder),
        _ => None,
    }
}

/// The lock snapfs took before the storage lock: byte 0 of the inode opened. Still taken
/// so that an older binary, which looks only there, sees this process through the same
/// name; the storage lock is what keeps names apart, so this one may be lost when another
/// descriptor of the inode closes (a direct reader) without harm.
fn lock_opened_inode(file: &File, path: &str) -> Result<()> {
    let lock_type = libc::F_WRLCK;
    // SAFETY: a zeroed flock is a valid value; every field we rely on is set below.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = lock_type as i16;
    request.l_whence = libc::SEEK_SET as i16;
    request.l_len = 1;
    // SAFETY: fcntl with F_SETLK reads the flock we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &request) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
        return Err(Error::io(format!("cannot lock {path}"), err));
    }
    let mut probe = request;
    // SAFETY: F_GETLK fills the flock with the conflicting lock's owner.
    let known = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) } == 0
        && probe.l_type != libc::F_UNLCK as i16;
    let holder = if known {
        let what = if probe.l_type == libc::F_WRLCK as i16 { "writing" } else { "reading" };
        format!("pid {} ({what})", probe.l_pid)
    } else {
        "another process".to_string()
    };
    Err(Error::InUse { device: path.to_string(), holder })
}

/// A writer's exclusive lock on every base the opened device reaches, on the bytes it
/// covers.
fn lock_storage(file: &File, path: &str, wait: &WaitPolicy) -> Result<HeldLocks> {
    let targets = storage_targets(file).map_err(|e| Error::io(format!("cannot stat {path}"), e))?;
    let describe = |target: &LockTarget, conflict: &Conflict| {
        let mut holder = conflict.holder();
        let ours = std::fs::canonicalize(path).ok();
        let theirs = conflict.pid.and_then(|pid| lock::holder_path(pid, &target.name));
        if let Some(theirs) = theirs.filter(|t| ours.as_deref() != Some(std::path::Path::new(t))) {
            holder = format!("{holder} through {theirs}, the same storage under another name");
        }
        holder
    };
    lock::acquire_waiting(&targets, LockKind::Exclusive, wait, path, describe)
}

/// What a writer of the opened device locks: every base it reaches, on the bytes it
/// covers.
fn storage_targets(file: &File) -> io::Result<Vec<LockTarget>> {
    let extents = storage::resolve(file, std::path::Path::new(storage::SYSFS_ROOT))?;
    Ok(extents.iter().map(|e| LockTarget { name: e.base.lock_name(), range: e.range }).collect())
}

/// Whether another writer waits for the storage of `path` (lock.rs `writers_waiting`):
/// a process that opens it for writing again and again yields to such writers first.
pub fn writers_waiting(path: &str) -> bool {
    storage_targets_of(path).is_some_and(|t| lock::writers_waiting(&t))
}

/// `storage_targets` of the device at `path`, if it opens.
fn storage_targets_of(path: &str) -> Option<Vec<LockTarget>> {
    File::open(path).ok().and_then(|f| storage_targets(&f).ok())
}

/// A writer's lock on the pool's id: one writer per pool even through a name whose
/// storage resolution cannot see (and per byte copy of it, which shares its id).
fn lock_pool_id(path: &str, pool_guid: &[u8; 16], wait: &WaitPolicy) -> Result<HeldLocks> {
    let hex: String = pool_guid.iter().map(|b| format!("{b:02x}")).collect();
    let target = LockTarget { name: format!("pool-{hex}"), range: ByteRange::WHOLE };
    let describe = |_: &LockTarget, conflict: &Conflict| {
        format!(
            "{}: a pool with the same id ({hex}) is open for writing there (a byte copy of a pool shares its id, \
             and only one of the copies can be written at a time)",
            conflict.holder()
        )
    };
    lock::acquire_waiting(&[target], LockKind::Exclusive, wait, path, describe)
}

impl FileDevice {
    /// Waits for the write in flight on the write-behind thread: what comes next lands
    /// after it. Errors: that write, or an earlier one, failed.
    fn barrier(&self) -> Result<()> {
        self.wait_behind(WriteBehind::wait)
    }

    /// The barrier a read passes: it waits only for a write in flight over its bytes.
    fn barrier_for(&self, offset: u64, len: usize) -> Result<()> {
        self.wait_behind(|behind| behind.wait_for_range(offset, len))
    }

    fn wait_behind(
        &self,
        wait: impl FnOnce(&WriteBehind) -> std::result::Result<(), (u64, usize, io::Error)>,
    ) -> Result<()> {
        match &self.behind {
            Some(behind) => wait(behind).map_err(|(offset, len, e)| self.write_error(offset, len, e)),
            None => Ok(()),
        }
    }

    fn write_error(&self, offset: u64, len: usize, e: io::Error) -> Error {
        Error::io(format!("write of {len} bytes at offset {offset} of {}", self.name), e)
    }

    fn direct_usable(&self) -> bool {
        !self.direct_refused && !self.behind.as_ref().is_some_and(|b| b.refused())
    }

    /// Asks the kernel to start writing the pending range out, without waiting. Only an
    /// optimization: durability still comes from `flush`, and a failure here is ignored.
    fn start_write_back(&mut self) {
        if let Some((start, end)) = self.unstarted.take() {
            // SAFETY: sync_file_range only reads its integer arguments.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    start as libc::off64_t,
                    (end - start) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
    }
}

/// A duplicate of the device's descriptor: positional reads need no shared state.
struct FileReader {
    file: File,
    name: String,
}

/// Reads this large whose buffer does not sit at the file offset's place within a page
/// are read into an aligned buffer and copied: the kernel copies from the page cache into
/// memory off that alignment several times slower (a 763 MB stream read into a buffer 16
/// bytes off a page, as malloc hands out large blocks: 0.30 s, aligned 0.055 s), and a
/// copy in user space costs less than the difference.
const BOUNCE_MIN_BYTES: usize = 16 * 1024;

thread_local! {
    static BOUNCE: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::default());
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let page = super::aligned::DIRECT_ALIGN;
    if buf.len() < BOUNCE_MIN_BYTES || buf.as_ptr() as usize % page == (offset % page as u64) as usize {
        return file.read_exact_at(buf, offset);
    }
    BOUNCE.with(|bounce| {
        let mut bounce = bounce.borrow_mut();
        let (lead, end) = ((offset % page as u64) as usize, (offset % page as u64) as usize + buf.len());
        if bounce.len() < end {
            bounce.clear();
            bounce.extend_zeros(end);
        }
        file.read_exact_at(&mut bounce[lead..end], offset)?;
        buf.copy_from_slice(&bounce[lead..end]);
        Ok(())
    })
}

impl super::SharedReader for FileReader {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_exact_at(&self.file, buf, offset)
            .map_err(|e| Error::io(format!("read of {} bytes at offset {offset} of {}", buf.len(), self.name), e))
    }
}

impl Device for FileDevice {
    fn shared_reader(&self) -> Option<std::sync::Arc<dyn super::SharedReader>> {
        let file = self.file.try_clone().ok()?;
        Some(std::sync::Arc::new(FileReader { file, name: self.name.clone() }))
    }

    fn lock_pool(&mut self, pool_guid: &[u8; 16], mode: OpenMode) -> Result<()> {
        if mode == OpenMode::Write {
            let held = lock_pool_id(&self.name, pool_guid, &self.wait)?;
            self.locks.push(held);
        }
        Ok(())
    }

    fn direct_reader(&self) -> Option<std::sync::Arc<dyn super::SharedReader>> {
        let file = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&self.name).ok()?;
        Some(std::sync::Arc::new(FileReader { file, name: self.name.clone() }))
    }

    fn will_need(&self, offset: u64, len: u64) {
        // SAFETY: posix_fadvise on a descriptor we own; it only advises the kernel, which
        // reads ahead into the cache that read_at reads through.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            );
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.barrier_for(offset, buf.len())?;
        read_exact_at(&self.file, buf, offset)
            .map_err(|e| Error::io(format!("read of {} bytes at offset {offset} of {}", buf.len(), self.name), e))
    }
    fn write_owned(&mut self, offset: u64, buf: AlignedBuf) -> Result<AlignedBuf> {
        let Some(behind) = self.behind.as_ref().filter(|_| self.direct_usable() && direct_aligned(offset, &buf)) else {
            self.write_at(offset, &buf)?;
            let mut buf = buf;
            buf.clear();
            return Ok(buf);
        };
        let len = buf.len();
        let next = behind.submit(offset, buf).map_err(|(offset, len, e)| self.write_error(offset, len, e))?;
        self.write_calls += 1;
        self.written_bytes += len as u64;
        self.direct_writes += 1;
        Ok(next)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.barrier()?;
        self.write_calls += 1;
        self.written_bytes += buf.len() as u64;
        let direct_usable = self.direct_usable();
        if let Some(direct) = self.direct.as_ref().filter(|_| direct_usable && direct_aligned(offset, buf)) {
            match direct.write_all_at(buf, offset) {
                Ok(()) => {
                    self.direct_writes += 1;
                    return Ok(());
                }
                // The file system took the open but not the write: the cache from now on.
                // A part written already is written again, with the same bytes.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.direct_refused = true,
                Err(e) => {
                    return Err(Error::io(
                        format!("write of {} bytes at offset {offset} of {}", buf.len(), self.name),
                        e,
                    ));
                }
            }
        }
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Error::io(format!("write of {} bytes at offset {offset} of {}", buf.len(), self.name), e))?;
        let end = offset + buf.len() as u64;
        let (start, stop) = self.unstarted.map_or((offset, end), |(s, e)| (s.min(offset), e.max(end)));
        self.unstarted = Some((start, stop));
        if stop - start >= WRITE_BEHIND_BYTES {
            self.start_write_back();
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.barrier()?;
        self.unstarted = None;
        self.flushes += 1;
        self.file.sync_data().map_err(|e| Error::io(format!("flush of {}", self.name), e))
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn data_ranges(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        // A write in flight may fill a hole; its error, if any, shows on the next call.
        let _ = self.barrier();
        data_ranges(&self.file, start, end).unwrap_or_else(|| vec![(start, end)])
    }
    fn written_bytes(&self) -> u64 {
        self.written_bytes
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// SEEK_DATA and SEEK_HOLE over `[start, end)`; None where the file system cannot say
/// (every range is then data). The descriptor's offset moves, which nothing here uses:
/// all I/O is positional.
fn data_ranges(file: &File, start: u64, end: u64) -> Option<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut ranges = Vec::new();
    let mut at = start;
    while at < end {
        // SAFETY: lseek only reads its integer arguments.
        let data = unsafe { libc::lseek(fd, at as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data from `at` to the end of the file.
            return (io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO)).then_some(ranges);
        }
        let data = data as u64;
        if data >= end {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        if hole < 0 {
            return None;
        }
        let stop = (hole as u64).min(end);
        ranges.push((data, stop));
        at = stop;
    }
    Some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::fs::MetadataExt;

    fn image(dir: &std::path::Path) -> String {
        let path = dir.join("img");
        File::create(&path).unwrap().set_len(1 << 20).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// The lock type (F_RDLCK, F_WRLCK, F_UNLCK) another process would meet on byte 0 of
    /// `path`, asked from a forked child: F_GETLK never reports the caller's own locks.
    fn lock_seen_from_outside(path: &std::path::Path) -> i32 {
        let name = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: the child makes only async-signal-safe calls (open, fcntl, _exit) on
        // memory prepared before the fork, and never returns into the test harness.
        match unsafe { libc::fork() } {
            0 => unsafe {
                let fd = libc::open(name.as_ptr(), libc::O_RDWR);
                let mut probe: libc::flock = std::mem::zeroed();
                probe.l_type = libc::F_WRLCK as i16;
                probe.l_whence = libc::SEEK_SET as i16;
                let ok = fd >= 0 && libc::fcntl(fd, libc::F_GETLK, &mut probe) == 0;
                libc::_exit(if ok { probe.l_type as i32 } else { 100 })
            },
            pid => {
                let mut status = 0;
                // SAFETY: waits for the child just forked.
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                assert!(libc::WIFEXITED(status));
                libc::WEXITSTATUS(status)
            }
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31) ^ (i >> 12) as u8 ^ seed).collect()
    }

    /// `bytes` at a 4096-aligned address (`skew` 0) or one byte past it (`skew` 1).
    fn in_memory_at(bytes: &[u8], skew: usize) -> AlignedBuf {
        let mut buf = AlignedBuf::default();
        buf.extend_zeros(skew);
        buf.extend_from_slice(bytes);
        buf
    }

    fn read_back(dev: &FileDevice, offset: u64, len: usize) -> Vec<u8> {
        let mut got = vec![0u8; len];
        dev.read_at(offset, &mut got).unwrap();
        got
    }

    use super::super::aligned::AlignedBuf;

    #[test]
    fn aligned_writes_go_past_the_cache_and_the_last_write_wins() {
        // Goal: on a disk file system a writer sends aligned memory at an aligned offset
        // and length with O_DIRECT, and anything else through the page cache; over the
        // same bytes, whichever write came last is what reads (through the cache) and the
        // file hold, in either order. Method: each kind of misalignment, overlaps both
        // ways, then the file read afresh after the device is closed.
        let dir = tempfile::TempDir::new_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = image(dir.path());
        let mut dev = open_file_device(&path, OpenMode::Write).unwrap();
        assert!(dev.direct.is_some(), "the crate's directory is on a file system that takes O_DIRECT");
        let block = 4096;
        let mut want = vec![0u8; 1 << 20];
        let mut write = |dev: &mut FileDevice, offset: usize, bytes: Vec<u8>, skew: usize, direct: bool| {
            let before = dev.direct_writes;
            let buf = in_memory_at(&bytes, skew);
            dev.write_at(offset as u64, &buf[skew..]).unwrap();
            assert_eq!(dev.direct_writes, before + direct as u64, "{} bytes at {offset}, skew {skew}", bytes.len());
            want[offset..offset + bytes.len()].copy_from_slice(&bytes);
            assert!(read_back(dev, offset as u64, bytes.len()) == bytes);
        };
        write(&mut dev, 0, pattern(3 * block, 1), 1, false); // unaligned memory: cached
        write(&mut dev, 0, pattern(3 * block, 2), 0, true); // direct over cached bytes
        write(&mut dev, 4 * block, pattern(3 * block, 3), 0, true);
        write(&mut dev, 5 * block, pattern(block, 4), 1, false); // cached over direct bytes
        write(&mut dev, 8 * block, pattern(block + 100, 5), 0, false); // a short tail
        write(&mut dev, 10 * block + 512, pattern(block, 6), 0, false); // unaligned offset
        write(&mut dev, 12 * block, pattern(8 * block, 7), 0, true);
        assert!(read_back(&dev, 0, want.len()) == want);
        dev.flush().unwrap();
        drop(dev);
        assert!(std::fs::read(&path).unwrap() == want, "the file holds the last write of every byte");
    }

    #[test]
    fn reads_into_memory_off_the_page_get_the_same_bytes() {
        // Goal: a read whose buffer sits at another place within a page than its offset
        // (bounced through an aligned buffer) returns the bytes a plain read does, for
        // small and large lengths, offsets inside a page and the file's last byte.
        let dir = tempfile::tempdir().unwrap();
        let path = image(dir.path());
        let bytes: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 4099) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut memory = vec![0u8; 600_000];
        for (offset, len, shift) in [(0, 4096, 1), (4096, 200_000, 16), (12_345, 300_000, 0), (1, 65_536, 4095)]
            .into_iter()
            .chain([((1 << 20) - 70_000, 70_000, 3)])
        {
            let buf = &mut memory[shift..shift + len];
            read_exact_at(&file, buf, offset as u64).unwrap();
            assert!(buf == &bytes[offset..offset + len], "{len} bytes at {offset} into memory {shift} off");
        }
        let past = read_exact_at(&file, &mut memory[16..16 + 70_000], (1 << 20) - 69_999);
        assert_eq!(past.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_buffer_written_behind_lands_before_whatever_follows_it() {
        // Goal: a handed-over buffer is written past the cache on the write-behind thread,
        // and a read, a cached write over the same bytes and a flush that follow it see it
        // done: the last write of every byte is what reads and the file hold. Method: two
        // buffers handed over, a cached write over the first one's middle at once.
        let dir = tempfile::TempDir::new_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = image(dir.path());
        let mut dev = open_file_device(&path, OpenMode::Write).unwrap();
        assert!(dev.behind.is_some(), "the crate's directory is on a file system that takes O_DIRECT");
        let first = pattern(8 * 4096, 1);
        let next = dev.write_owned(0, in_memory_at(&first, 0)).unwrap();
        assert!(next.is_empty());
        let over = pattern(4096, 2);
        dev.write_at(2 * 4096, &in_memory_at(&over, 1)[1..]).unwrap();
        let second = pattern(4 * 4096, 3);
        let next = dev.write_owned(16 * 4096, in_memory_at(&second, 0)).unwrap();
        assert!(next.is_empty());
        assert_eq!(dev.direct_writes, 2);
        let mut want = vec![0u8; 1 << 20];
        want[..first.len()].copy_from_slice(&first);
        want[2 * 4096..3 * 4096].copy_from_slice(&over);
        want[16 * 4096..20 * 4096].copy_from_slice(&second);
        assert!(read_back(&dev, 0, want.len()) == want);
        // Unaligned: written at once through the cache, not behind.
        let tail = pattern(100, 4);
        dev.write_owned(24 * 4096, in_memory_at(&tail, 0)).unwrap();
        want[24 * 4096..24 * 4096 + 100].copy_from_slice(&tail);
        assert_eq!(dev.direct_writes, 2);
        dev.flush().unwrap();
        drop(dev);
        assert!(std::fs::read(&path).unwrap() == want);
    }

    #[test]
    fn without_o_direct_every_write_goes_through_the_cache() {
        // Goal: where the file system refuses O_DIRECT (tmpfs before Linux 6.6 refuses the
        // open; a write refused with EINVAL turns it off), every write still lands. Method:
        // a file on tmpfs with what the kernel gives, then with the direct descriptor
        // taken away, then with it marked refused; aligned and unaligned writes alike.
        let dir = tempfile::TempDir::new_in("/dev/shm").unwrap();
        let path = image(dir.path());
        let mut dev = open_file_device(&path, OpenMode::Write).unwrap();
        let aligned = in_memory_at(&pattern(2 * 4096, 1), 0);
        dev.write_at(0, &aligned).unwrap();
        dev.direct_refused = true;
        let aligned = in_memory_at(&pattern(2 * 4096, 2), 0);
        dev.write_at(2 * 4096, &aligned).unwrap();
        let direct_so_far = dev.direct_writes;
        assert!(direct_so_far <= 1, "a refused direct descriptor is not used");
        dev.direct = None;
        let unaligned = in_memory_at(&pattern(4096 + 7, 3), 1);
        dev.write_at(4 * 4096, &unaligned[1..]).unwrap();
        let aligned = in_memory_at(&pattern(4096, 4), 0);
        dev.write_at(6 * 4096, &aligned).unwrap();
        assert_eq!(dev.direct_writes, direct_so_far);
        dev.flush().unwrap();
        drop(dev);
        let file = std::fs::read(&path).unwrap();
        assert!(file[..2 * 4096] == pattern(2 * 4096, 1)[..]);
        assert!(file[2 * 4096..4 * 4096] == pattern(2 * 4096, 2)[..]);
        assert!(file[4 * 4096..5 * 4096 + 7] == pattern(4096 + 7, 3)[..]);
        assert!(file[6 * 4096..7 * 4096] == pattern(4096, 4)[..]);
    }

    fn lock_file_of(path: &str) -> std::path::PathBuf {
        let m = std::fs::metadata(path).unwrap();
        lock::lock_dir().join(format!("file-{}-{}", m.dev(), m.ino()))
    }

    #[test]
    fn closing_another_descriptor_of_the_device_keeps_the_lock() {
        // Regression: the lock was on the device's inode, and direct_reader() opened the
        // device a second time: dropping that descriptor dropped every POSIX lock of the
        // process on the inode, so scrub ran unlocked after its first pass.
        let dir = tempfile::TempDir::new().unwrap();
        let path = image(dir.path());
        let dev = open_file_device(&path, OpenMode::Write).unwrap();
        drop(dev.direct_reader());
        drop(File::open(&path).unwrap()); // as a direct reader on a file system without O_DIRECT
        assert_eq!(lock_seen_from_outside(&lock_file_of(&path)), libc::F_WRLCK);
        drop(dev);
        assert_eq!(lock_seen_from_outside(&lock_file_of(&path)), libc::F_UNLCK);
    }

    #[test]
    fn two_opens_in_one_process_are_held_to_the_same_rules() {
        // Goal: POSIX locks never conflict within a process, and closing one descriptor
        // drops them all; two devices of one process on one storage still get one writer.
        // Readers take no lock (they pin what they read): one opens beside the writer,
        // and closing it leaves the writer's lock in place.
        let dir = tempfile::TempDir::new().unwrap();
        let path = image(dir.path());
        let writer = open_file_device(&path, OpenMode::Write).unwrap();
        let me = std::process::id();
        match open_file_device(&path, OpenMode::Write) {
            Err(Error::InUse { holder, .. }) => assert_eq!(holder, format!("pid {me} (writing)")),
            other => panic!("a second writer in one process: {:?}", other.map(|d| d.name)),
        }
        let reader = open_file_device(&path, OpenMode::Read).unwrap();
        drop(reader);
        assert_eq!(lock_seen_from_outside(&lock_file_of(&path)), libc::F_WRLCK);
        drop(writer);
        assert_eq!(lock_seen_from_outside(&lock_file_of(&path)), libc::F_UNLCK);
        let reader = open_file_device(&path, OpenMode::Read).unwrap();
        assert_eq!(lock_seen_from_outside(&lock_file_of(&path)), libc::F_UNLCK);
        open_file_device(&path, OpenMode::Write).unwrap();
        drop(reader);
    }
}
