//! A re-sync reads what changed and no more: a file whose size, mtime and ctime match
//! keeps its xattrs unread, so the tree must keep the host's ctime, and every xattr
//! change (which moves the ctime) must still be seen when size and mtime stay put.

use snapfs::device::MemoryDevice;
use snapfs::fs::sync::{Syncer, read_xattrs};
use snapfs::fs::{ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn c_path(path: &Path) -> CString {
    CString::new(path.to_str().unwrap()).unwrap()
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let n = CString::new(name).unwrap();
    // SAFETY: all buffers are valid for the lengths passed.
    let rc = unsafe {
        libc::lsetxattr(c_path(path).as_ptr(), n.as_ptr(), value.as_ptr() as *const libc::c_void, value.len(), 0)
    };
    assert_eq!(rc, 0, "setxattr {name}: {}", std::io::Error::last_os_error());
}

fn remove_xattr(path: &Path, name: &str) {
    let n = CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated.
    assert_eq!(unsafe { libc::lremovexattr(c_path(path).as_ptr(), n.as_ptr()) }, 0);
}

/// Sets a file's mtime (and atime) back to a fixed time: its content looks unchanged.
fn pin_mtime(path: &Path) {
    let times = [libc::timespec { tv_sec: 1_600_000_000, tv_nsec: 5 }; 2];
    // SAFETY: utimensat reads the path and times we own.
    assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, c_path(path).as_ptr(), times.as_ptr(), 0) }, 0);
}

/// Syncs `source` into the root and commits; returns (metadata updates, unchanged files).
fn sync(pool: &mut Pool, source: &Path) -> (u64, u64) {
    let mut fs = pool.live(LIVE_TREE_ID).unwrap();
    let mut syncer = Syncer::new(&mut fs);
    syncer.sync_dir(source, ROOT_INO).unwrap();
    let figures = (syncer.stats.metadata_updated, syncer.stats.unchanged);
    pool.commit().unwrap();
    figures
}

#[test]
fn xattr_changes_are_seen_and_a_ctime_that_moved_alone_changes_nothing() {
    // Goal: with size and mtime unchanged, a set, a replaced and a removed xattr all reach
    // the tree, with the host's new ctime; a change that moves only the ctime (chmod to
    // the same mode, or a copy of the tree) stores nothing, as for rsync: its xattrs are
    // read again and found the same, and the inode keeps its stored ctime.
    let host = tempfile::tempdir().unwrap();
    let names = ["replaced", "removed", "added", "chmod"];
    for name in names {
        let path = host.path().join(name);
        std::fs::write(&path, name.as_bytes()).unwrap();
        if name != "added" && name != "chmod" {
            set_xattr(&path, "user.k", b"one");
        }
        pin_mtime(&path);
    }
    let mut pool = format_pool(Box::new(MemoryDevice::new(64 << 20)), &FormatOptions::default()).unwrap();
    sync(&mut pool, host.path());
    assert_eq!(sync(&mut pool, host.path()), (0, 4), "a re-sync of an unchanged tree changes nothing");

    // ctime ticks may be coarse on older kernels: let them move.
    std::thread::sleep(std::time::Duration::from_millis(20));
    set_xattr(&host.path().join("replaced"), "user.k", b"two");
    remove_xattr(&host.path().join("removed"), "user.k");
    set_xattr(&host.path().join("added"), "user.new", b"x");
    let chmod = host.path().join("chmod");
    std::fs::set_permissions(&chmod, std::fs::Permissions::from_mode(0o644)).unwrap();
    for name in names {
        pin_mtime(&host.path().join(name));
    }
    let chmod_ino = pool.live(LIVE_TREE_ID).unwrap().lookup(ROOT_INO, b"chmod").unwrap().unwrap().ino;
    let chmod_ctime_before = pool.live(LIVE_TREE_ID).unwrap().inode(chmod_ino).unwrap().ctime;
    let (updated, unchanged) = sync(&mut pool, host.path());
    assert_eq!((updated, unchanged), (3, 4), "the three files whose xattrs changed are stored again");

    {
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        for name in names {
            let path = host.path().join(name);
            let ino = fs.lookup(ROOT_INO, name.as_bytes()).unwrap().unwrap().ino;
            assert_eq!(fs.xattrs(ino).unwrap(), read_xattrs(&path).unwrap(), "{name}");
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ctime = Timespec { sec: meta.ctime(), nsec: meta.ctime_nsec() as u32 };
            let stored = fs.inode(ino).unwrap().ctime;
            match name {
                "chmod" => assert_eq!(stored, chmod_ctime_before, "a ctime that moved alone is not stored"),
                _ => assert_eq!(stored, ctime, "{name}: the tree keeps the host's ctime of the change"),
            }
        }
    }
    assert_eq!(sync(&mut pool, host.path()), (0, 4));
}
