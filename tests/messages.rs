//! Messages that used to mislead, pinned with their figures and exit codes: a full
//! device in the stream's own figures, `snaprecv -n` on a stream that cannot fit, the
//! device-full hint on a pool with no snapshots, `ls -l` of special files and mode bits.

mod common;
use snapfs::cli::exit_code;

use common::*;
use predicates::prelude::*;
use snapfs::error::human_bytes;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn free_bytes(img: &std::path::Path) -> u64 {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap();
    status["free_bytes"].as_u64().unwrap()
}

/// Goal: a stream that does not fit says how much more it needs in the sender's exact
/// figures (it said "needs at least 128.0 KiB more" when 8 MiB was missing), and
/// `snaprecv -n` says it would not apply (it said "would apply"), exit 5 both.
/// Method: 24 MiB of noise at @a onto a 16 MiB target.
#[test]
fn a_stream_that_does_not_fit_says_by_how_much() {
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 128 * MIB);
    let tgt = fresh_pool(dir.path(), "tgt.img", 16 * MIB);
    put(&src, "noise", &noise(24 * MIB as usize, 5));
    snapctl().args(["snapshot", "@a"]).arg(&src).assert().success();
    let stream = snapsend().arg("@a").arg(&src).output().unwrap().stdout;
    let free = free_bytes(&tgt);
    let short = stream.len() as u64 - free;
    assert!(short > 4 * MIB, "the test needs a stream well past the free space");
    snaprecv()
        .arg("-n")
        .arg(&tgt)
        .write_stdin(stream.clone())
        .assert()
        .code(exit_code::NO_SPACE)
        .stdout(predicate::str::contains("would NOT apply"))
        .stdout(predicate::str::contains("@a needs at least 24.0 MiB for its data"))
        .stdout(predicate::str::contains(format!("and {} is free", human_bytes(free))))
        .stdout(predicate::str::contains("would apply").not());
    snaprecv()
        .arg(&tgt)
        .write_stdin(stream.clone())
        .assert()
        .code(exit_code::NO_SPACE)
        .stderr(predicate::str::contains(format!(
            "device full: receiving @a ({} as the sender sent it) needs about {} more and {} is free; nothing was changed",
            human_bytes(stream.len() as u64),
            human_bytes(short),
            human_bytes(free)
        )))
        .stderr(predicate::str::contains("destroy snapshots").not());
    check(&tgt);
    // A stream that fits still says it would apply.
    let small = fresh_pool(dir.path(), "small.img", 128 * MIB);
    put(&small, "f", b"fits");
    snapctl().args(["snapshot", "@s"]).arg(&small).assert().success();
    let fits = snapsend().arg("@s").arg(&small).output().unwrap().stdout;
    snaprecv().arg("-n").arg(&tgt).write_stdin(fits).assert().success().stdout(predicate::str::contains("would apply"));
}

/// Goal: the device-full hint suggests only what the pool has: no "destroy snapshots"
/// on a pool without snapshots; their number when it has some.
/// Method: fill a 24 MiB pool with puts, without and then with a snapshot.
#[test]
fn the_device_full_hint_names_only_what_the_pool_has() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 24 * MIB, &["--history", "0", "--compress", "none"]);
    let fill = |name: &str| {
        snapctl()
            .args(["put", "-", name])
            .arg(&img)
            .write_stdin(noise(40 * MIB as usize, 3))
            .assert()
            .code(exit_code::NO_SPACE)
    };
    fill("big").stderr(
        predicate::str::contains("device full: the transaction needs at least")
            .and(predicate::str::contains("hint: remove files you no longer need (`snapctl rm PATH DEVICE`)"))
            .and(predicate::str::contains("snapshot").not()),
    );
    put(&img, "small", &noise(MIB as usize, 4));
    snapctl().args(["snapshot", "@one"]).arg(&img).assert().success();
    fill("big").stderr(predicate::str::contains("destroy snapshots you no longer need (the pool has 1;"));
    check(&img);
}

/// Goal: `ls -l` shows block devices, character devices, FIFOs and sockets with their own
/// letters and devices' "major, minor" (all were "c" with size 0), and the setuid,
/// setgid and sticky bits as s/S and t/T, as ls(1) does.
/// Method: sync a host directory holding each, compare each line's mode and size columns.
#[test]
fn ls_long_shows_special_files_and_mode_bits_as_ls_does() {
    if !require_root("ls_long_shows_special_files_and_mode_bits_as_ls_does") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mknod = |name: &str, mode: u32, major: u32, minor: u32| {
        let path = std::ffi::CString::new(src.join(name).into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mknod reads the path we own.
        assert_eq!(unsafe { libc::mknod(path.as_ptr(), mode, libc::makedev(major, minor)) }, 0, "mknod {name}");
        // SAFETY: chmod reads the path we own (mknod's mode went through the umask).
        assert_eq!(unsafe { libc::chmod(path.as_ptr(), mode & 0o7777) }, 0, "chmod {name}");
    };
    mknod("blk", libc::S_IFBLK | 0o640, 7, 200);
    mknod("chr", libc::S_IFCHR | 0o666, 1, 3);
    mknod("fifo", libc::S_IFIFO | 0o600, 0, 0);
    let _socket = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (name, mode) in [("suid", 0o4755), ("suid_noexec", 0o4644), ("sgid", 0o2745), ("sgid_exec", 0o2755)] {
        std::fs::write(src.join(name), b"x").unwrap();
        std::fs::set_permissions(src.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for (name, mode) in [("sticky", 0o1777), ("sticky_noexec", 0o1776)] {
        std::fs::create_dir(src.join(name)).unwrap();
        std::fs::set_permissions(src.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    let listing = stdout(snapctl().args(["ls", "-l"]).arg(&img));
    let line = |name: &str| {
        listing.lines().find(|l| l.ends_with(&format!(" {name}"))).unwrap_or_else(|| panic!("{name} in {listing}"))
    };
    for (name, mode, size) in [
        ("blk", "brw-r-----", "7, 200"),
        ("chr", "crw-rw-rw-", "1, 3"),
        ("fifo", "prw-------", "0"),
        ("sock", "srwxr-xr-x", "0"),
        ("suid", "-rwsr-xr-x", "1"),
        ("suid_noexec", "-rwSr--r--", "1"),
        ("sgid", "-rwxr-Sr-x", "1"),
        ("sgid_exec", "-rwxr-sr-x", "1"),
        ("sticky", "drwxrwxrwt", "0"),
        ("sticky_noexec", "drwxrwxrwT", "0"),
    ] {
        let line = line(name);
        assert!(line.starts_with(&format!("{mode} ")), "{name}: {line}");
        assert!(line.contains(&format!(" {size} 2")), "{name} size {size}: {line}");
    }
}

/// Goal: an xattr value over 4096 bytes, which refused the whole sync without naming the
/// file, is stored, up to 65536 bytes (Linux's XATTR_SIZE_MAX: no host file holds more,
/// so no sync can meet the refusal any more; a stream can, and is refused with exit 8 and
/// the figures, tests/large_xattrs.rs). Method: trusted.* xattrs of 5000 and 65536 bytes
/// on tmpfs (ext4 here holds at most ~4 KiB per inode), as root.
#[test]
fn an_xattr_over_4096_bytes_is_stored() {
    if !require_root("an_xattr_over_4096_bytes_is_stored") {
        return;
    }
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no /dev/shm in CI");
        return;
    };
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let file = shm.path().join("f");
    std::fs::write(&file, b"hello").unwrap();
    let path = std::ffi::CString::new(file.clone().into_os_string().into_encoded_bytes()).unwrap();
    for (name, len) in [(c"trusted.big", 5000), (c"trusted.max", 65536)] {
        let value = vec![b'v'; len];
        // SAFETY: both buffers are valid for the lengths passed.
        let rc = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
    }
    snapctl().arg("sync").arg(shm.path()).arg(&img).assert().success();
    assert_eq!(stdout(snapctl().arg("ls").arg(&img)), "f\n");
    let out = shm.path().join("out");
    snapctl().args(["export", "/"]).arg(&out).arg(&img).assert().success();
    let exported = snapfs::fs::sync::read_xattrs(&out.join("f")).unwrap();
    assert_eq!(exported, snapfs::fs::sync::read_xattrs(&file).unwrap());
    assert_eq!(exported.iter().map(|(_, v)| v.len()).collect::<Vec<_>>(), [5000, 65536]);
    check(&img);
}
