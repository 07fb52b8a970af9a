//! The command-line tools on image files: the user story of the foundation issue,
//! and every bad input it names, each with its message and exit code.

mod common;
use snapfs::cli::exit_code;

use common::*;
use predicates::prelude::*;
use std::io::Write;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

#[test]
fn user_story_end_to_end() {
    // Goal: format, sync, snapshot, put, cat, ls, export, list, status, check, destroy
    // all work as the issue describes, and the export equals the source.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = dir.path().join("www");
    std::fs::create_dir_all(src.join("docs")).unwrap();
    std::fs::write(src.join("index.html"), b"<html>hello</html>\n").unwrap();
    std::fs::write(src.join("docs/guide.txt"), "guide ".repeat(50_000)).unwrap();
    std::os::unix::fs::symlink("docs/guide.txt", src.join("link")).unwrap();

    snapctl().args(["sync"]).arg(&src).arg(&img).assert().success().stdout(predicate::str::contains("txg 2"));
    snapctl().args(["snapshot", "@nightly"]).arg(&img).assert().success();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"remember the milk\n").unwrap();
    snapctl().arg("put").arg(&notes).arg("docs/notes.txt").arg(&img).assert().success();
    snapctl().args(["cat", "docs/notes.txt"]).arg(&img).assert().success().stdout("remember the milk\n");
    // The snapshot does not see the later file.
    let listing = stdout(snapctl().args(["ls", "-l", "@nightly:docs"]).arg(&img));
    assert!(listing.contains("guide.txt") && !listing.contains("notes.txt"), "{listing}");
    let listing = stdout(snapctl().args(["ls", "-l", "docs"]).arg(&img));
    assert!(listing.contains("notes.txt"), "{listing}");
    let restore = dir.path().join("restore");
    snapctl().args(["export", "@nightly"]).arg(&restore).arg(&img).assert().success();
    assert_eq!(digest(&restore), digest(&src));
    let json: serde_json::Value = serde_json::from_str(&stdout(snapctl().args(["list", "--json"]).arg(&img))).unwrap();
    assert_eq!(json[0]["name"], "nightly");
    let status = stdout(snapctl().args(["status", "--json"]).arg(&img));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["snapshots"], 1);
    assert!(status["compression_ratio"].as_f64().unwrap() > 1.5, "{status}");
    check(&img);
    snapctl().args(["destroy", "@nightly"]).arg(&img).assert().success();
    snapctl()
        .args(["cat", "@nightly:index.html"])
        .arg(&img)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stderr(predicate::str::contains("snapshot @nightly not found"));
    check(&img);
}

#[test]
fn resync_unchanged_tree_writes_nothing() {
    // Goal: a second sync of the same tree commits nothing and rewrites nothing.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i}")), vec![i as u8; 10_000 * i]).unwrap();
    }
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapctl()
        .arg("sync")
        .arg(&src)
        .arg(&img)
        .env("SNAPFS_IO_STATS", "1")
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to commit").and(predicate::str::contains("20 unchanged")))
        .stderr(predicate::str::contains("written_bytes=0"));
    // Deletions and changes are mirrored.
    std::fs::remove_file(src.join("f3")).unwrap();
    std::fs::write(src.join("f4"), b"changed").unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success().stdout(predicate::str::contains("1 removed"));
    snapctl().args(["cat", "f4"]).arg(&img).assert().stdout("changed");
    snapctl().args(["cat", "f3"]).arg(&img).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    check(&img);
}

#[test]
fn sync_detects_moved_files() {
    // Goal: a file moved on the host (within a directory, into another one visited
    // before or after the old one) keeps its inode and records in the tree: sync writes
    // no data for it, so snapshots share its blocks and streams send a rename.
    // Method: move three 1 MiB files, re-sync with I/O counters, check contents and
    // that a copy (old name still present) is not mistaken for a move.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = dir.path().join("src");
    for d in ["a", "m", "z"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    let bytes = |seed: u8| (0..MIB as usize).map(|i| (i as u8).wrapping_mul(seed) ^ seed).collect::<Vec<u8>>();
    for (name, seed) in [("m/one", 3u8), ("m/two", 5), ("m/three", 7), ("m/kept", 11)] {
        std::fs::write(src.join(name), bytes(seed)).unwrap();
    }
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    std::fs::rename(src.join("m/one"), src.join("m/uno")).unwrap();
    std::fs::rename(src.join("m/two"), src.join("a/two")).unwrap();
    std::fs::rename(src.join("m/three"), src.join("z/three")).unwrap();
    std::fs::copy(src.join("m/kept"), src.join("z/copy")).unwrap();
    let out = snapctl().arg("sync").arg(&src).arg(&img).env("SNAPFS_IO_STATS", "1").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 moves detected"), "{text}");
    assert!(text.contains("3 removed") || text.contains("0 removed"), "{text}");
    let written: u64 = String::from_utf8_lossy(&out.stderr)
        .split("written_bytes=")
        .nth(1)
        .and_then(|t| t.trim().parse().ok())
        .expect("io stats");
    assert!(written < 2 * MIB, "moving three files and copying one wrote {written} bytes");
    for (name, seed) in [("m/uno", 3u8), ("a/two", 5), ("z/three", 7), ("z/copy", 11), ("m/kept", 11)] {
        snapctl().args(["cat", name]).arg(&img).assert().success().stdout(bytes(seed));
    }
    snapctl().args(["cat", "m/one"]).arg(&img).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    check(&img);
}

#[test]
fn small_overwrite_in_large_file_writes_little() {
    // Goal: a 4 KiB overwrite inside a 256 MiB file rewrites one record and the path
    // above it: the device sees < 1 MiB of writes (counted by the device layer).
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 512 * MIB, &[]);
    let big = dir.path().join("big");
    let mut f = std::fs::File::create(&big).unwrap();
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut chunk = vec![0u8; MIB as usize];
    for _ in 0..256 {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    snapctl().arg("put").arg(&big).arg("big").arg(&img).assert().success();
    snapctl().args(["snapshot", "@before"]).arg(&img).assert().success();
    let piece = dir.path().join("piece");
    std::fs::write(&piece, vec![0xabu8; 4096]).unwrap();
    let out = snapctl()
        .args(["put", "--offset", "1048576"])
        .arg(&piece)
        .arg("big")
        .arg(&img)
        .env("SNAPFS_IO_STATS", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let written: u64 = stderr.split("written_bytes=").nth(1).unwrap().trim().parse().unwrap();
    assert!(written < MIB, "a 4 KiB overwrite wrote {written} bytes");
    let cat = snapctl().args(["cat", "big"]).arg(&img).output().unwrap().stdout;
    assert_eq!(cat.len() as u64, 256 * MIB);
    assert_eq!(&cat[1048576..1048576 + 4096], &[0xabu8; 4096][..]);
    let before = snapctl().args(["cat", "@before:big"]).arg(&img).output().unwrap().stdout;
    assert_eq!(before, std::fs::read(&big).unwrap());
    check(&img);
}

#[test]
fn put_from_stdin_and_tree_operations() {
    // Goal: put from stdin, mkdir -p, mv into a directory, rm -r, ls -R.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    snapctl().args(["mkdir", "-p", "a/b/c"]).arg(&img).assert().success();
    snapctl().args(["put", "-", "a/b/c/file"]).arg(&img).write_stdin("from stdin").assert().success();
    snapctl().args(["mkdir", "d"]).arg(&img).assert().success();
    snapctl().args(["mv", "a/b", "d"]).arg(&img).assert().success();
    snapctl().args(["cat", "d/b/c/file"]).arg(&img).assert().stdout("from stdin");
    let listing = stdout(snapctl().args(["ls", "-R"]).arg(&img));
    assert_eq!(listing, "a\nd\nd/b\nd/b/c\nd/b/c/file\n");
    snapctl()
        .args(["rm", "d"])
        .arg(&img)
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("not empty"));
    snapctl().args(["rm", "-r", "d"]).arg(&img).assert().success();
    assert_eq!(stdout(snapctl().args(["ls"]).arg(&img)), "a\n");
    snapctl()
        .args(["mv", "a", "a/x"])
        .arg(&img)
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("into itself"));
    check(&img);
}

#[test]
fn destroy_in_any_order_frees_exactly() {
    // Goal: with history off, destroying snapshots in any order frees exactly what only
    // they held (check proves the free map exact after each step), and the pool returns
    // to the space it had with the same live data.
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
        let dir = TempDir::new().unwrap();
        let img = pool(dir.path(), 64 * MIB, &["--history", "0"]);
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let names = ["s0", "s1", "s2"];
        for (round, name) in names.iter().enumerate() {
            for i in 0..10 {
                let data: Vec<u8> = (0..50_000).map(|j| ((i * 31 + j * 7 + round * 13) % 251) as u8).collect();
                std::fs::write(src.join(format!("f{i}")), data).unwrap();
            }
            std::fs::write(src.join(format!("round{round}")), vec![round as u8 + 1; 300_000]).unwrap();
            snapctl().arg("sync").arg(&src).arg(&img).assert().success();
            snapctl().arg("snapshot").arg(format!("@{name}")).arg(&img).assert().success();
        }
        let used = |img: &std::path::Path| -> u64 {
            let s: serde_json::Value =
                serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap();
            s["used_bytes"].as_u64().unwrap()
        };
        for &i in &order {
            let unique: serde_json::Value =
                serde_json::from_str(&stdout(snapctl().args(["list", "--json"]).arg(&img))).unwrap();
            let expected = unique.as_array().unwrap().iter().find(|s| s["name"] == names[i]).unwrap()["unique_bytes"]
                .as_u64()
                .unwrap();
            let before = used(&img);
            snapctl().arg("destroy").arg(format!("@{}", names[i])).arg(&img).assert().success();
            let after = used(&img);
            // Metadata may move by a few blocks; the data freed is what list promised.
            let freed = before as i64 - after as i64;
            assert!(freed + 64 * 1024 >= expected as i64, "order {order:?} @{}: freed {freed} of {expected}", names[i]);
            check(&img);
        }
        snapctl().args(["cat", "round2"]).arg(&img).assert().success();
    }
}

#[test]
fn bad_snapshot_names_and_unknown_things() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    snapctl()
        .args(["snapshot", "nightly"])
        .arg(&img)
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("snapshots are written @NAME"));
    snapctl()
        .args(["snapshot", "@bad/name"])
        .arg(&img)
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("bad snapshot name"));
    snapctl().args(["snapshot", "@-x"]).arg(&img).assert().code(exit_code::INVALID);
    snapctl().args(["snapshot", "@ok"]).arg(&img).assert().success();
    snapctl()
        .args(["snapshot", "@ok"])
        .arg(&img)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stderr(predicate::str::contains("already exists"));
    snapctl()
        .args(["destroy", "@nope"])
        .arg(&img)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stderr(predicate::str::contains("snapshot @nope not found"));
    snapctl()
        .args(["cat", "missing/file"])
        .arg(&img)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stderr(predicate::str::contains("not found"));
    snapctl().args(["ls", "@ok:missing"]).arg(&img).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    snapctl()
        .args(["export", "@nope", "/tmp/never-created-by-snapfs"])
        .arg(&img)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS);
    snapctl()
        .args(["cat", "../etc/passwd"])
        .arg(&img)
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("'..'"));
    check(&img);
}

#[test]
fn device_errors() {
    let dir = TempDir::new().unwrap();
    // Not found.
    snapctl()
        .args(["status", "/nonexistent/pool.img"])
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stderr(predicate::str::contains("device /nonexistent/pool.img not found"));
    // Not a file or block device.
    snapfmt()
        .arg(dir.path())
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("not a regular file or a block device"));
    snapfmt().arg("/dev/null").assert().code(exit_code::INVALID);
    // Too small: names the minimum.
    let tiny = image(dir.path(), "tiny.img", 4 * MIB);
    snapfmt().arg(&tiny).assert().code(exit_code::INVALID).stderr(predicate::str::contains("at least 16.0 MiB"));
    // Opened, a device too small for any pool is not a pool (not "too small", which
    // reads as advice to grow it).
    for tool in [snapctl().arg("status").arg(&tiny), snapsend().arg("@a").arg(&tiny)] {
        tool.assert().code(exit_code::REFUSED).stderr(predicate::str::contains(
            "holds no snapfs pool (at 4.0 MiB it is smaller than any pool, which needs at least 16.0 MiB)",
        ));
    }
    // Not formatted.
    let blank = image(dir.path(), "blank.img", 32 * MIB);
    snapctl()
        .arg("status")
        .arg(&blank)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("holds no snapfs pool").and(predicate::str::contains("snapfmt")));
    // Already snapfs: refused without --force, and nothing changes.
    let img = pool(dir.path(), 32 * MIB, &[]);
    snapctl().args(["put", "-", "keep"]).arg(&img).write_stdin("precious").assert().success();
    snapfmt()
        .arg(&img)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("already holds a snapfs pool").and(predicate::str::contains("--force")));
    snapctl().args(["cat", "keep"]).arg(&img).assert().stdout("precious");
    snapfmt().arg("--force").arg(&img).assert().success();
    snapctl().args(["cat", "keep"]).arg(&img).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    // Another file system, recognised by its magic.
    let ext = image(dir.path(), "ext.img", 32 * MIB);
    let f = std::fs::OpenOptions::new().write(true).open(&ext).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x53, 0xef], 1080).unwrap();
    snapfmt().arg(&ext).assert().code(exit_code::REFUSED).stderr(predicate::str::contains("ext2/ext3/ext4"));
    snapctl()
        .arg("status")
        .arg(&ext)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("ext2/ext3/ext4"));
}

#[test]
fn device_in_use_names_the_holder() {
    // Goal: a second writer is refused with the pid of the one holding the device.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&img).unwrap();
    let lock =
        libc::flock { l_type: libc::F_WRLCK as i16, l_whence: libc::SEEK_SET as i16, l_start: 0, l_len: 1, l_pid: 0 };
    // SAFETY: fcntl reads the flock we own.
    assert_eq!(unsafe { libc::fcntl(std::os::unix::io::AsRawFd::as_raw_fd(&file), libc::F_SETLK, &lock) }, 0);
    let pid = std::process::id();
    snapctl()
        .args(["mkdir", "x"])
        .arg(&img)
        .assert()
        .code(exit_code::IN_USE)
        .stderr(predicate::str::contains(format!("in use by pid {pid} (writing)")));
    // A reader takes no lock: it pins what it reads instead.
    snapctl().arg("status").arg(&img).assert().success();
    drop(file);
    snapctl().args(["mkdir", "x"]).arg(&img).assert().success();
}

#[test]
fn corrupt_primary_label_opens_from_the_copy() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    snapctl().args(["put", "-", "f"]).arg(&img).write_stdin("still here").assert().success();
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xff; 64], 100).unwrap();
    snapctl()
        .args(["cat", "f"])
        .arg(&img)
        .assert()
        .success()
        .stdout("still here")
        .stderr(predicate::str::contains("opened from the copy at its end"));
    snapctl().arg("check").arg(&img).assert().code(exit_code::CORRUPT).stdout(predicate::str::contains("label 0"));
}

#[test]
fn torn_newest_commit_falls_back() {
    // Goal: garbage in the newest commit slot (a torn write) opens the commit before it.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    snapctl().args(["put", "-", "f"]).arg(&img).write_stdin("one").assert().success(); // txg 2
    snapctl().args(["put", "-", "f"]).arg(&img).write_stdin("two").assert().success(); // txg 3
    let len = std::fs::metadata(&img).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    let newest_txg = 3u64;
    let slot = 1 + newest_txg % snapfs::format::label::RING_SLOTS;
    for region in [0, len / 4096 - 64] {
        std::os::unix::fs::FileExt::write_all_at(&f, &[0x5a; 100], (region + slot) * 4096 + 60).unwrap();
    }
    snapctl().args(["cat", "f"]).arg(&img).assert().success().stdout("one");
    check(&img);
}

#[test]
fn newer_format_version_is_refused() {
    use snapfs::format::label::{FORMAT_VERSION, Label};
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let bytes = std::fs::read(&img).unwrap();
    let mut label = Label::decode(&bytes[..4096]).unwrap().unwrap();
    label.version = FORMAT_VERSION + 1;
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    let len = bytes.len() as u64;
    for (index, offset) in [(0, 0), (1, len - 64 * 4096)] {
        label.index = index;
        std::os::unix::fs::FileExt::write_all_at(&f, &label.encode(), offset).unwrap();
    }
    snapctl().arg("status").arg(&img).assert().code(exit_code::REFUSED).stderr(
        predicate::str::contains("format version 2 is newer than this binary's 1")
            .and(predicate::str::contains("newer snapfs")),
    );
}

#[test]
fn device_full_keeps_previous_state() {
    // Goal: a put that does not fit fails with the free space and what to do, changes
    // nothing, and destroying a snapshot makes room again.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 24 * MIB, &["--history", "0", "--compress", "none"]);
    let random = |n: usize, seed: u64| -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let a = dir.path().join("a");
    std::fs::write(&a, random(12 << 20, 1)).unwrap();
    snapctl().arg("put").arg(&a).arg("a").arg(&img).assert().success();
    snapctl().args(["snapshot", "@s"]).arg(&img).assert().success();
    snapctl().args(["rm", "a"]).arg(&img).assert().success();
    let b = dir.path().join("b");
    std::fs::write(&b, random(12 << 20, 2)).unwrap();
    snapctl().arg("put").arg(&b).arg("b").arg(&img).assert().code(exit_code::NO_SPACE).stderr(
        predicate::str::contains("device full")
            .and(predicate::str::contains("is free"))
            .and(predicate::str::contains("destroy snapshots")),
    );
    check(&img);
    snapctl().args(["cat", "b"]).arg(&img).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    snapctl().args(["cat", "@s:a"]).arg(&img).assert().success();
    snapctl().args(["destroy", "@s"]).arg(&img).assert().success();
    snapctl().arg("put").arg(&b).arg("b").arg(&img).assert().success();
    check(&img);
}

#[test]
fn history_keeps_past_commits_until_pruned() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    for text in ["one", "two", "three"] {
        snapctl().args(["put", "-", "f"]).arg(&img).write_stdin(text).assert().success();
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["history", "--json"]).arg(&img))).unwrap();
    assert_eq!(json["commits"].as_array().unwrap().len(), 4);
    assert_eq!(json["keep_seconds"], 86400);
    check(&img);
    snapctl().args(["history", "--prune"]).arg(&img).assert().success();
    let json: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["history", "--json", "--keep", "1h"]).arg(&img))).unwrap();
    assert!(json["commits"].as_array().unwrap().len() <= 2, "{json}");
    assert_eq!(json["keep_seconds"], 3600);
    check(&img);
}

#[test]
fn metadata_round_trip() {
    // Goal: owners, modes, nanosecond times, xattrs, fifos, symlinks, hard links and
    // holes survive sync then export; a changed xattr alone is picked up by a re-sync.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let file = src.join("file");
    std::fs::write(&file, b"content").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4751)).unwrap();
    set_xattr(&file, "user.color", b"blue");
    set_xattr(&file, "user.empty", b"");
    let sparse = src.join("sparse");
    let f = std::fs::File::create(&sparse).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"tail", 10 * MIB).unwrap();
    drop(f);
    std::fs::hard_link(&file, src.join("link")).unwrap();
    std::os::unix::fs::symlink("file", src.join("sym")).unwrap();
    let fifo = std::ffi::CString::new(src.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let root = is_root();
    if root {
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        // SAFETY: chown reads the path we own.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 1234, 5678) }, 0);
    }
    let times = [libc::timespec { tv_sec: 1_600_000_000, tv_nsec: 123_456_789 }; 2];
    let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    // SAFETY: utimensat reads the path and times we own.
    assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) }, 0);

    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    set_xattr(&file, "user.color", b"green");
    snapctl().arg("sync").arg(&src).arg(&img).assert().success().stdout(predicate::str::contains("1 metadata updates"));
    let out = dir.path().join("out");
    snapctl().args(["export", "/"]).arg(&out).arg(&img).assert().success();

    let a = std::fs::metadata(&file).unwrap();
    let b = std::fs::metadata(out.join("file")).unwrap();
    assert_eq!(b.mode(), a.mode());
    assert_eq!((b.mtime(), b.mtime_nsec()), (1_600_000_000, 123_456_789));
    if root {
        assert_eq!((b.uid(), b.gid()), (1234, 5678));
    }
    assert_eq!(b.nlink(), 2);
    assert_eq!(
        get_xattrs(&out.join("file")),
        vec![("user.color".to_string(), b"green".to_vec()), ("user.empty".to_string(), vec![])]
    );
    assert_eq!(std::fs::read_link(out.join("sym")).unwrap().to_str(), Some("file"));
    let fifo_meta = std::fs::symlink_metadata(out.join("fifo")).unwrap();
    assert_eq!(fifo_meta.mode() & 0o170777, 0o010640);
    let sparse_out = std::fs::metadata(out.join("sparse")).unwrap();
    assert_eq!(sparse_out.len(), 10 * MIB + 4);
    assert!(sparse_out.blocks() * 512 < MIB, "holes were written out: {} blocks", sparse_out.blocks());
    assert_eq!(digest(&out), digest(&src));
    // The hole is not stored either.
    let s: serde_json::Value = serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(&img))).unwrap();
    assert!(s["live_stored_bytes"].as_u64().unwrap() < 64 * 1024, "{s}");
    check(&img);
}

fn set_xattr(path: &std::path::Path, name: &str, value: &[u8]) {
    let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: all buffers are valid for the lengths passed.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr() as *const libc::c_void, value.len(), 0) };
    assert_eq!(rc, 0, "setxattr {name}: {}", std::io::Error::last_os_error());
}

fn get_xattrs(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    snapfs::fs::sync::read_xattrs(path).unwrap().into_iter().map(|(n, v)| (String::from_utf8(n).unwrap(), v)).collect()
}

#[test]
fn end_ring_covers_a_damaged_start_ring() {
    // Goal: the newest commit is found in the ring at the end of the device when its copy
    // at the start is damaged, and when the whole start ring is gone.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    snapctl().args(["put", "-", "f"]).arg(&img).write_stdin("one").assert().success(); // txg 2
    snapctl().args(["put", "-", "f"]).arg(&img).write_stdin("two").assert().success(); // txg 3
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    let newest_txg = 3u64;
    std::os::unix::fs::FileExt::write_all_at(
        &f,
        &[0x5a; 64],
        (1 + newest_txg % snapfs::format::label::RING_SLOTS) * 4096 + 40,
    )
    .unwrap();
    snapctl().args(["cat", "f"]).arg(&img).assert().success().stdout("two");
    std::os::unix::fs::FileExt::write_all_at(&f, &vec![0u8; snapfs::format::label::RING_SLOTS as usize * 4096], 4096)
        .unwrap();
    snapctl().args(["cat", "f"]).arg(&img).assert().success().stdout("two");
    check(&img);
}
