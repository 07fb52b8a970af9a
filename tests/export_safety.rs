//! `export --nodev --nosuid`: a tree from a sender one does not trust can hold device
//! nodes, setuid/setgid programs and file capabilities, which export as root recreates.
//! With the options none of them reaches the host, each one left out is named, and the
//! rest of the tree (FIFOs, a directory's setgid bit, other xattrs) is exported as is.
//! Needs root (mknod, security.capability); in CI (CI=true) a missing capability fails.

mod common;

use common::*;
use predicates::prelude::*;
use std::ffi::CString;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use tempfile::TempDir;

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

/// A file capability as setcap(8) writes it: vfs_cap_data revision 2, effective,
/// CAP_NET_RAW (13) permitted.
fn capability() -> Vec<u8> {
    let words: [u32; 5] = [0x0200_0001, 1 << 13, 0, 0, 0];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let name = CString::new(name).unwrap();
    let mut value = vec![0u8; 256];
    // SAFETY: the buffer has `value.len()` writable bytes.
    let n = unsafe { libc::lgetxattr(c_path(path).as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    (n >= 0).then(|| value[..n as usize].to_vec())
}

/// A host tree with each thing an untrusted sender could send.
fn hostile_tree(src: &Path) {
    std::fs::create_dir(src).unwrap();
    for (name, mode, major, minor) in [("disk", libc::S_IFBLK, 7, 200), ("mem", libc::S_IFCHR, 1, 1)] {
        let path = c_path(&src.join(name));
        // SAFETY: mknod and chmod read the path we own.
        assert_eq!(unsafe { libc::mknod(path.as_ptr(), mode | 0o666, libc::makedev(major, minor)) }, 0, "mknod");
        assert_eq!(unsafe { libc::chmod(path.as_ptr(), 0o666) }, 0);
    }
    let path = c_path(&src.join("pipe"));
    // SAFETY: mkfifo reads the path we own.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    for (name, mode) in [("rootshell", 0o4755), ("groupshell", 0o2755), ("plain", 0o755)] {
        std::fs::write(src.join(name), b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::create_dir(src.join("shared")).unwrap();
    std::fs::set_permissions(src.join("shared"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    std::fs::write(src.join("ping"), b"\x7fELF").unwrap();
    std::fs::set_permissions(src.join("ping"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cap = capability();
    for (name, value) in [("security.capability", &cap[..]), ("user.note", b"kept")] {
        let name = CString::new(name).unwrap();
        let path = c_path(&src.join("ping"));
        // SAFETY: both buffers are valid for the lengths passed.
        let rc = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
    }
}

/// The tree as a sender would send it: synced, snapshotted, sent and received.
fn received_pool(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    hostile_tree(&src);
    let sender = fresh_pool(dir, "sender.img", 32 << 20);
    snapctl().arg("sync").arg(&src).arg(&sender).assert().success();
    snapctl().args(["snapshot", "@a"]).arg(&sender).assert().success();
    let stream = snapsend().arg("@a").arg(&sender).output().unwrap();
    assert!(stream.status.success());
    let target = fresh_pool(dir, "target.img", 32 << 20);
    snaprecv().arg(&target).write_stdin(stream.stdout).assert().success();
    target
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Goal: without options, export as root recreates every one of them (what the options
/// exist to prevent). Method: export the received snapshot, look at each file.
#[test]
fn export_recreates_devices_setid_and_capabilities_by_default() {
    if !require_root("export_recreates_devices_setid_and_capabilities_by_default") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let target = received_pool(dir.path());
    let out = dir.path().join("out");
    snapctl()
        .args(["export", "@a"])
        .arg(&out)
        .arg(&target)
        .assert()
        .success()
        .stderr("")
        .stdout(predicate::str::contains("3 special files").and(predicate::str::contains("withheld").not()));
    let disk = std::fs::symlink_metadata(out.join("disk")).unwrap();
    assert!(disk.file_type().is_block_device());
    assert_eq!(disk.rdev(), libc::makedev(7, 200));
    assert!(std::fs::symlink_metadata(out.join("mem")).unwrap().file_type().is_char_device());
    assert_eq!(mode(&out.join("rootshell")), 0o4755);
    assert_eq!(mode(&out.join("groupshell")), 0o2755);
    assert_eq!(xattr(&out.join("ping"), "security.capability"), Some(capability()));
}

/// Goal: --nodev --nosuid leave out the devices, the setuid/setgid bits of files and
/// the capability, name each on standard error, and keep the rest: the FIFO, the
/// directory's setgid bit, other modes and xattrs. Each option alone does only its part.
/// Method: export the received snapshot three times, with both, --nodev, --nosuid.
#[test]
fn nodev_and_nosuid_leave_out_what_an_untrusted_tree_could_use() {
    if !require_root("nodev_and_nosuid_leave_out_what_an_untrusted_tree_could_use") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let target = received_pool(dir.path());
    let out = dir.path().join("both");
    let both = snapctl().args(["export", "--nodev", "--nosuid", "@a"]).arg(&out).arg(&target).assert().success();
    let path = |name: &str| out.join(name).display().to_string();
    both.stderr(
        predicate::str::contains(format!("snapctl: warning: {}: device node not created (--nodev)", path("disk")))
            .and(predicate::str::contains(format!("{}: device node not created (--nodev)", path("mem"))))
            .and(predicate::str::contains(format!("{}: setuid/setgid bits cleared (--nosuid)", path("rootshell"))))
            .and(predicate::str::contains(format!("{}: setuid/setgid bits cleared (--nosuid)", path("groupshell"))))
            .and(predicate::str::contains(format!("{}: file capabilities not set (--nosuid)", path("ping"))))
            .and(predicate::str::contains("shared").not())
            .and(predicate::str::contains("plain").not()),
    )
    .stdout(predicate::str::contains("1 special files; 5 withheld by --nodev/--nosuid (named above)"));
    assert!(!out.join("disk").exists() && std::fs::symlink_metadata(out.join("mem")).is_err());
    assert!(std::fs::symlink_metadata(out.join("pipe")).unwrap().file_type().is_fifo());
    assert_eq!(mode(&out.join("rootshell")), 0o755);
    assert_eq!(mode(&out.join("groupshell")), 0o755);
    assert_eq!(mode(&out.join("plain")), 0o755);
    assert_eq!(mode(&out.join("shared")), 0o2775, "a directory's setgid bit is kept");
    assert_eq!(xattr(&out.join("ping"), "security.capability"), None);
    assert_eq!(xattr(&out.join("ping"), "user.note"), Some(b"kept".to_vec()));

    let nodev = dir.path().join("nodev");
    snapctl().args(["export", "--nodev", "@a"]).arg(&nodev).arg(&target).assert().success();
    assert!(std::fs::symlink_metadata(nodev.join("disk")).is_err());
    assert_eq!(mode(&nodev.join("rootshell")), 0o4755);
    assert_eq!(xattr(&nodev.join("ping"), "security.capability"), Some(capability()));

    let nosuid = dir.path().join("nosuid");
    snapctl().args(["export", "--nosuid", "@a"]).arg(&nosuid).arg(&target).assert().success();
    assert!(std::fs::symlink_metadata(nosuid.join("disk")).unwrap().file_type().is_block_device());
    assert_eq!(mode(&nosuid.join("rootshell")), 0o755);
    assert_eq!(xattr(&nosuid.join("ping"), "security.capability"), None);
}
