//! How `sync` and `put` read host files (issue 12, classes 5 and 6):
//! - a sparse file is read by its data extents, never hole by hole, and its holes are
//!   neither stored nor written back by export;
//! - a file that changes while it is read is read again, and one that never holds still
//!   is stored, named in a warning, and the command exits 9;
//! - an entry that vanishes or changes type during a sync fails it saying the source
//!   changed, with nothing committed.
//!
//! Changes during a read are made deterministic without any hook in the product: a
//! thread waits on inotify for the command's first read of the file (IN_ACCESS) and only
//! then changes it, while the file is large enough that the read is far from done.

mod common;
use snapfs::cli::exit_code;

use common::{check, fresh_pool, noise, snapctl, stdout};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

const RECORD: u64 = 128 * 1024;
const TIB: u64 = 1 << 40;
const GIB: u64 = 1 << 30;
/// Long enough for a sync of a few records on a loaded machine; hours too short for a
/// sync that reads a TiB of holes.
const SPARSE_TIMEOUT: Duration = Duration::from_secs(120);
/// The file a change lands in while it is read: large enough that the read is far from
/// done when the watching thread wakes.
const CHANGING_BYTES: usize = 64 << 20;

fn live_logical_bytes(img: &Path) -> u64 {
    let out = stdout(snapctl().args(["status", "--json"]).arg(img));
    let value: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    value["live_logical_bytes"].as_u64().expect("live_logical_bytes")
}

/// Writes `data` at `offset` of `path`, keeping its size unless the write goes past it.
fn poke(path: &Path, offset: u64, data: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).expect("open for poke");
    file.write_all_at(data, offset).expect("poke");
}

fn sparse_file(path: &Path, size: u64) {
    File::create(path).expect("create").set_len(size).expect("set_len");
}

/// A file of `size` with data in records 0, 2 and 3 (across their boundary), 8192 (4 KiB
/// at 1 GiB + 100) and the last, partial record: 4 records and `size % RECORD` bytes.
fn scattered_file(path: &Path, size: u64) {
    assert!(!size.is_multiple_of(RECORD) && size > 2 * GIB);
    sparse_file(path, size);
    poke(path, 0, b"abc");
    poke(path, 3 * RECORD - 2, b"01234");
    poke(path, GIB + 100, &noise(4096, 7));
    poke(path, size - 3, b"end");
}

fn seek(file: &File, offset: u64, whence: i32) -> Option<u64> {
    // SAFETY: lseek on a descriptor the test owns.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
    (r >= 0).then_some(r as u64)
}

/// The data extents of a file, by SEEK_DATA and SEEK_HOLE.
fn data_extents(path: &Path) -> Vec<(u64, u64)> {
    let file = File::open(path).expect("open");
    let size = file.metadata().expect("stat").len();
    let mut out = Vec::new();
    let mut at = 0;
    while at < size {
        let Some(start) = seek(&file, at, libc::SEEK_DATA) else { break };
        let end = seek(&file, start, libc::SEEK_HOLE).expect("SEEK_HOLE");
        out.push((start, end));
        at = end;
    }
    out
}

/// Asserts two files hold the same bytes, comparing only where either has data: outside
/// both files' data extents both read as zeros, so a TiB costs what it holds.
fn assert_same_sparse(a: &Path, b: &Path) {
    let (fa, fb) = (File::open(a).expect("open a"), File::open(b).expect("open b"));
    let size = fa.metadata().expect("stat").len();
    assert_eq!(size, fb.metadata().expect("stat").len(), "sizes of {} and {}", a.display(), b.display());
    for (start, end) in data_extents(a).into_iter().chain(data_extents(b)) {
        let mut at = start;
        while at < end {
            let len = (end - at).min(1 << 20) as usize;
            let (mut x, mut y) = (vec![0u8; len], vec![0u8; len]);
            fa.read_exact_at(&mut x, at).expect("read a");
            fb.read_exact_at(&mut y, at).expect("read b");
            assert!(x == y, "{} and {} differ in [{at}, {})", a.display(), b.display(), at + len as u64);
            at += len as u64;
        }
    }
}

/// Bytes the file occupies on the host's disk.
fn allocated_bytes(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").blocks() * 512
}

fn export(img: &Path, what: &str, dest: &Path) {
    snapctl().args(["export", what]).arg(dest).arg(img).assert().success();
}

fn sync_summary(source: &Path, img: &Path) -> String {
    let out = snapctl().arg("sync").arg(source).arg(img).timeout(SPARSE_TIMEOUT).output().expect("run sync");
    assert!(out.status.success(), "sync failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

// Goal: a sync of a 1 TiB file holding 4 records of data reads those records and stores
// them, nothing else, and export gives back the same bytes with the holes as holes.
// Method: before the fix the sync read the whole TiB (hours; the timeout fails it). The
// summary's "read" figure, the pool's logical bytes and the export's allocation pin it.
#[test]
fn sync_of_a_one_tib_sparse_file_reads_and_stores_only_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 256 << 20);
    let source = dir.path().join("src");
    fs::create_dir(&source).unwrap();
    let file = source.join("sparse");
    scattered_file(&file, TIB + 1000);
    let summary = sync_summary(&source, &img);
    assert!(summary.contains("1 changed files read (513.0 KiB)"), "{summary}");
    assert_eq!(live_logical_bytes(&img), 4 * RECORD + 1000);
    check(&img);
    let out = dir.path().join("out");
    export(&img, "/", &out);
    assert_same_sparse(&file, &out.join("sparse"));
    assert!(allocated_bytes(&out.join("sparse")) < 8 << 20, "export wrote holes as data");
}

// Goal: a re-sync after a 2-byte change costs the data again, not the apparent size, and
// stores the change. Method: as above, then change 2 bytes (size kept, mtime changed).
#[test]
fn resync_of_a_sparse_file_after_a_two_byte_change_reads_its_data_only() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 256 << 20);
    let source = dir.path().join("src");
    fs::create_dir(&source).unwrap();
    let file = source.join("sparse");
    scattered_file(&file, TIB + 1000);
    sync_summary(&source, &img);
    poke(&file, GIB + 10, b"XY");
    let summary = sync_summary(&source, &img);
    assert!(summary.contains("1 changed files read (513.0 KiB)"), "{summary}");
    // Record 8192 now holds "XY" as well as the 4 KiB: still one record.
    assert_eq!(live_logical_bytes(&img), 4 * RECORD + 1000);
    check(&img);
    let out = dir.path().join("out");
    export(&img, "/", &out);
    assert_same_sparse(&file, &out.join("sparse"));
}

/// The file `resync_punches...` starts from: data in records 0, 1, 2, 100 and 1000 of a
/// 64 GiB file, its last record a hole.
fn punch_test_file(path: &Path) {
    sparse_file(path, 64 * GIB);
    for index in [0u64, 1, 2, 100, 1000] {
        poke(path, index * RECORD, &noise(RECORD as usize, index + 1));
    }
}

fn punch_hole(path: &Path, offset: u64, len: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate on a descriptor the test owns.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset as libc::off_t, len as libc::off_t) };
    assert_eq!(rc, 0, "punch a hole: {}", std::io::Error::last_os_error());
}

// Goal: records that become holes on the host, or fall past a new, smaller end, leave
// the tree at the re-sync, while a snapshot keeps them. Method: sync, snapshot, then punch
// records 1 and 2 whole and 4 KiB of record 100, truncate below record 1000, write record
// 500; re-sync; compare the pool's logical bytes and both exports with the host.
#[test]
fn resync_punches_records_that_became_holes_or_fell_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 256 << 20);
    let source = dir.path().join("src");
    fs::create_dir(&source).unwrap();
    let file = source.join("f");
    punch_test_file(&file);
    sync_summary(&source, &img);
    assert_eq!(live_logical_bytes(&img), 5 * RECORD);
    snapctl().args(["snapshot", "@before"]).arg(&img).assert().success();
    punch_hole(&file, RECORD, 2 * RECORD);
    punch_hole(&file, 100 * RECORD + 8192, 4096);
    OpenOptions::new().write(true).open(&file).unwrap().set_len(900 * RECORD + 10).unwrap();
    poke(&file, 500 * RECORD + 5, b"new");
    sync_summary(&source, &img);
    // Records 0, 100 (partly zero now) and 500 remain; 900 is the last, a hole.
    assert_eq!(live_logical_bytes(&img), 3 * RECORD);
    check(&img);
    let out = dir.path().join("out");
    export(&img, "/", &out);
    assert_same_sparse(&file, &out.join("f"));
    let original = dir.path().join("original");
    punch_test_file(&original);
    let old = dir.path().join("old");
    export(&img, "@before", &old);
    assert_same_sparse(&original, &old.join("f"));
}

// Goal: files with no data store no records: empty, all hole, and data that is all
// zeros (written, so the file system holds it as data). Method: sync them; the pool's
// logical bytes stay 0 and export gives back their sizes.
#[test]
fn files_of_holes_or_zeros_store_no_records() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 64 << 20);
    let source = dir.path().join("src");
    fs::create_dir(&source).unwrap();
    File::create(source.join("empty")).unwrap();
    sparse_file(&source.join("holes"), 10 * GIB + 7);
    sparse_file(&source.join("zeros"), 10 * GIB);
    poke(&source.join("zeros"), 5 * GIB - 1000, &vec![0u8; 3 * RECORD as usize]);
    sync_summary(&source, &img);
    assert_eq!(live_logical_bytes(&img), 0);
    let out = dir.path().join("out");
    export(&img, "/", &out);
    for name in ["empty", "holes", "zeros"] {
        assert_same_sparse(&source.join(name), &out.join(name));
    }
}

// Goal: `put` of a host file shares sync's reader: a 1 TiB sparse file costs its data.
// Method: as the first test, through `put`; then through put of a shorter sparse file
// over it, whose holes replace the old records.
#[test]
fn put_of_a_one_tib_sparse_file_reads_and_stores_only_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 256 << 20);
    let file = dir.path().join("sparse");
    scattered_file(&file, TIB + 1000);
    let put =
        |host: &Path| snapctl().arg("put").arg(host).arg("/f").arg(&img).timeout(SPARSE_TIMEOUT).assert().success();
    put(&file).stdout(predicates::str::contains("wrote 1.0 TiB to /f"));
    assert_eq!(live_logical_bytes(&img), 4 * RECORD + 1000);
    let out = dir.path().join("out");
    export(&img, "/", &out);
    assert_same_sparse(&file, &out.join("f"));
    let other = dir.path().join("other");
    sparse_file(&other, 3 * GIB + 1);
    poke(&other, 2 * GIB, b"x");
    put(&other);
    assert_eq!(live_logical_bytes(&img), RECORD);
    check(&img);
    let out = dir.path().join("out2");
    export(&img, "/", &out);
    assert_same_sparse(&other, &out.join("f"));
}

/// Runs `action` on a thread as soon as `path` is first read. As root (CI), the reader
/// waits for it: fanotify holds each read of the file until we allow it, so the change
/// lands before that read, whatever the load of the machine. Elsewhere inotify tells of
/// the read after the fact and the reader runs on meanwhile (a race the file's size makes
/// unlikely to lose). The watch is in place when this returns; the handle yields whether
/// it fired.
fn on_first_read(path: &Path, action: impl FnOnce() + Send + 'static) -> ReadWatch {
    let stop = Arc::new(AtomicBool::new(false));
    let thread = match fanotify_watch(path) {
        Some(fd) => {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || allow_reads(fd, action, &stop))
        }
        None => inotify_watch(path, action),
    };
    ReadWatch { stop, thread }
}

/// A watch on a file's reads; `join` ends it.
struct ReadWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<bool>,
}

impl ReadWatch {
    /// Whether the action ran. Call once the reader is done.
    fn join(self) -> std::thread::Result<bool> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join()
    }
}

/// A fanotify group holding every read of `path` for permission; None where fanotify is
/// not allowed (not root).
fn fanotify_watch(path: &Path) -> Option<libc::c_int> {
    // SAFETY: fanotify_init takes flags only.
    let fd = unsafe { libc::fanotify_init(libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC, libc::O_RDONLY as u32) };
    if fd < 0 {
        return None;
    }
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string and the group just made.
    let marked =
        unsafe { libc::fanotify_mark(fd, libc::FAN_MARK_ADD, libc::FAN_ACCESS_PERM, libc::AT_FDCWD, cpath.as_ptr()) };
    if marked != 0 {
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
        return None;
    }
    Some(fd)
}

/// Answers the group's read permission events until `stop`: the first waits for
/// `action`, every one is allowed. Closing the group allows whatever is still pending.
fn allow_reads(fd: libc::c_int, action: impl FnOnce(), stop: &AtomicBool) -> bool {
    let mut action = Some(action);
    let mut buf = vec![0u8; 4096];
    let size = std::mem::size_of::<libc::fanotify_event_metadata>();
    while !stop.load(Ordering::Relaxed) {
        let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd we own.
        if unsafe { libc::poll(&mut poll, 1, 50) } != 1 {
            continue;
        }
        // SAFETY: reading into a buffer we own, of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let mut at = 0;
        while n > 0 && at + size <= n as usize {
            // SAFETY: the kernel wrote whole event records; read_unaligned copes with the offset.
            let event: libc::fanotify_event_metadata = unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
            if event.mask & libc::FAN_ACCESS_PERM != 0 {
                if let Some(action) = action.take() {
                    action();
                }
                let response = libc::fanotify_response { fd: event.fd, response: libc::FAN_ALLOW };
                // SAFETY: writing one response record to our group.
                unsafe {
                    libc::write(
                        fd,
                        (&response as *const libc::fanotify_response).cast(),
                        std::mem::size_of_val(&response),
                    )
                };
            }
            if event.fd >= 0 {
                // SAFETY: the event's descriptor is ours to close.
                unsafe { libc::close(event.fd) };
            }
            at += event.event_len as usize;
        }
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    action.is_none()
}

/// inotify IN_ACCESS: `action` runs once the file was read, beside the reader.
fn inotify_watch(path: &Path, action: impl FnOnce() + Send + 'static) -> JoinHandle<bool> {
    // SAFETY: inotify_init1 takes flags only.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: the path is a valid C string.
    let wd = unsafe { libc::inotify_add_watch(fd, cpath.as_ptr(), libc::IN_ACCESS) };
    assert!(wd >= 0, "inotify_add_watch: {}", std::io::Error::last_os_error());
    std::thread::spawn(move || {
        let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd we own; then close the descriptor we opened.
        let ready = unsafe { libc::poll(&mut poll, 1, 60_000) };
        unsafe { libc::close(fd) };
        if ready == 1 {
            action();
        }
        ready == 1
    })
}

/// A file of CHANGING_BYTES with an mtime in the past, so a write is certain to change it
/// (each seed its own mtime, so a rewrite is seen by the next sync).
fn changing_file(path: &Path, seed: u64) -> Vec<u8> {
    let data = noise(CHANGING_BYTES, seed);
    fs::write(path, &data).unwrap();
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000 + seed);
    File::options().write(true).open(path).unwrap().set_modified(past).unwrap();
    data
}

/// Appends to a file every 200 µs until dropped.
struct Appender {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Appender {
    fn start(path: &Path) -> Appender {
        let stop = Arc::new(AtomicBool::new(false));
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let chunk = noise(4096, 99);
            while !flag.load(Ordering::Relaxed) {
                file.write_all(&chunk).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        Appender { stop, thread: Some(thread) }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cat(img: &Path, path: &str) -> Vec<u8> {
    let out = snapctl().args(["cat", path]).arg(img).output().unwrap();
    assert!(out.status.success(), "cat {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

// Goal: a file that grows during every read is stored, the sync still commits the rest,
// a warning names the file, and the exit status is 9. Method: a thread appends to a
// 64 MiB file every 200 µs during the sync, so its size differs after every read.
#[test]
fn a_file_that_keeps_changing_during_sync_is_named_and_sync_exits_9() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 512 << 20);
    let source = dir.path().join("src");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("quiet"), b"stays put").unwrap();
    let growing = source.join("growing");
    let start = changing_file(&growing, 1);
    let appender = Appender::start(&growing);
    let out = snapctl().arg("sync").arg(&source).arg(&img).output().unwrap();
    drop(appender);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit_code::SOURCE_CHANGED), "stderr: {stderr}");
    let warning = format!("snapctl: warning: {} changed as we read it; the copy may mix versions", growing.display());
    assert!(stderr.contains(&warning), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("synced"), "the summary is printed");
    check(&img);
    assert_eq!(cat(&img, "/quiet"), b"stays put");
    let stored = cat(&img, "/growing");
    assert!(stored.len() >= start.len() && stored[..start.len()] == start[..], "the stored copy is the file as read");
}

// Goal: a file changed once while it is read is read again and stored as it is now,
// exit 0. Method: on the sync's first read of the file a thread rewrites its first 4 KiB
// (already read by then); before the fix the old 4 KiB were stored with exit 0.
#[test]
fn a_file_changed_once_during_sync_is_read_again_and_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 512 << 20);
    let source = dir.path().join("src");
    fs::create_dir(&source).unwrap();
    let file = source.join("f");
    changing_file(&file, 2);
    let target = file.clone();
    let writer = on_first_read(&file, move || poke(&target, 0, &noise(4096, 3)));
    let out = snapctl().arg("sync").arg(&source).arg(&img).output().unwrap();
    assert!(writer.join().unwrap(), "the file was never read");
    assert_eq!(out.status.code(), Some(exit_code::SUCCESS), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(cat(&img, "/f") == fs::read(&file).unwrap(), "the stored file is not the host's");
    // The stored mtime is the one the content has, so a re-sync finds nothing to read.
    let again = sync_summary(&source, &img);
    assert!(again.contains("0 changed files read"), "{again}");
}

// Goal: `put` of a host file gets the same protection: re-read after one change, exit 0;
// a warning and exit 9 for a file that never holds still.
#[test]
fn put_of_a_changing_file_reads_it_again_or_warns_with_exit_9() {
    let dir = tempfile::tempdir().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 512 << 20);
    let file = dir.path().join("once");
    changing_file(&file, 4);
    let target = file.clone();
    let writer = on_first_read(&file, move || poke(&target, 0, &noise(4096, 5)));
    snapctl().arg("put").arg(&file).arg("/once").arg(&img).assert().code(exit_code::SUCCESS);
    assert!(writer.join().unwrap(), "the file was never read");
    assert!(cat(&img, "/once") == fs::read(&file).unwrap(), "the stored file is not the host's");

    let growing = dir.path().join("growing");
    changing_file(&growing, 6);
    let appender = Appender::start(&growing);
    let out = snapctl().arg("put").arg(&growing).arg("/growing").arg(&img).output().unwrap();
    drop(appender);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit_code::SOURCE_CHANGED), "stderr: {stderr}");
    assert!(stderr.contains(&format!("warning: {} changed as we read it", growing.display())), "{stderr}");
    check(&img);
}

/// Runs a sync of `source` during whose first read of `file` `change` runs; returns the
/// sync's exit code and stderr.
fn sync_while(source: &Path, file: &Path, img: &Path, change: impl FnOnce() + Send + 'static) -> (i32, String) {
    let watcher = on_first_read(file, change);
    let out = snapctl().arg("sync").arg(source).arg(img).output().unwrap();
    assert!(watcher.join().unwrap(), "{} was never read", file.display());
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

// Goal: a file removed, or replaced by a directory, a symlink or a FIFO, while sync reads
// it fails the sync saying the source changed and to run it again; nothing is committed,
// and a FIFO does not hang the sync. Before the fix the sync stored what it had read
// and exited 0.
#[test]
fn a_file_removed_or_replaced_while_sync_reads_it_fails_saying_the_source_changed() {
    type Replace = fn(&Path);
    let cases: [(&str, Replace, &str); 4] = [
        ("removed", |_| {}, "(it vanished)"),
        ("directory", |p| fs::create_dir(p).unwrap(), "(it is no longer a regular file)"),
        ("symlink", |p| std::os::unix::fs::symlink("elsewhere", p).unwrap(), "(it is now a symlink)"),
        (
            "fifo",
            |p| assert_eq!(unsafe { libc::mkfifo(CString::new(p.as_os_str().as_bytes()).unwrap().as_ptr(), 0o600) }, 0),
            "(it is no longer a regular file)",
        ),
    ];
    for (name, replace, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        let img = fresh_pool(dir.path(), "pool.img", 512 << 20);
        let source = dir.path().join("src");
        fs::create_dir(&source).unwrap();
        let file = source.join("f");
        changing_file(&file, 7);
        let target = file.clone();
        let (code, stderr) = sync_while(&source, &file, &img, move || {
            fs::remove_file(&target).unwrap();
            replace(&target);
        });
        assert_eq!(code, 1, "{name}: {stderr}");
        let message = format!("{} changed while it was read {why}", file.display());
        assert!(stderr.contains(&message), "{name}: {stderr}");
        assert!(stderr.contains("nothing was committed"), "{name}: {stderr}");
        assert!(stderr.contains("hint: run the command again"), "{name}: {stderr}");
        assert_eq!(stdout(snapctl().arg("ls").arg(&img)), "", "{name}: something was committed");
    }
}

// Goal: an entry removed after its directory was listed, while an earlier file is read,
// leaves the tree as it left the host. Before the fix the tree kept the old entry. In a
// large directory, whose entries are stat'ed ahead on two threads, the same holds: a
// stat taken before a file was read is taken again.
#[test]
fn an_entry_removed_during_sync_leaves_the_tree() {
    for others in [0, 100] {
        let dir = tempfile::tempdir().unwrap();
        let img = fresh_pool(dir.path(), "pool.img", 512 << 20);
        let source = dir.path().join("src");
        fs::create_dir_all(source.join("c/d")).unwrap();
        fs::write(source.join("c/d/x"), b"x").unwrap();
        fs::write(source.join("e"), b"e").unwrap();
        let mut listing = String::new();
        for i in 0..others {
            fs::write(source.join(format!("z{i:03}")), b"z").unwrap();
            listing += &format!("z{i:03}\n");
        }
        let file = source.join("a");
        changing_file(&file, 8);
        sync_summary(&source, &img);
        assert_eq!(stdout(snapctl().arg("ls").arg(&img)), format!("a\nc\ne\n{listing}"));
        changing_file(&file, 9); // read again by the next sync
        let gone: Vec<PathBuf> = vec![source.join("c"), source.join("e")];
        let (code, stderr) = sync_while(&source, &file, &img, move || {
            fs::remove_dir_all(&gone[0]).unwrap();
            fs::remove_file(&gone[1]).unwrap();
        });
        assert_eq!(code, 0, "{others} others: {stderr}");
        assert_eq!(stdout(snapctl().arg("ls").arg(&img)), format!("a\n{listing}"), "{others} others");
        check(&img);
    }
}
