//! Numbers from the user (arguments, host files, streams) are checked before arithmetic:
//! past the largest file (FILE_BYTES_MAX, 2^63 - 128 KiB) or a duration's limit, the
//! tools refuse with exit 2 (8 for a stream) and a message with the figures, and leave the
//! pool unchanged; they never panic or wrap.

mod common;
use snapfs::cli::exit_code;

use common::*;
use predicates::prelude::*;
use snapfs::fs::record::FILE_BYTES_MAX;
use snapfs::fuzzing::reseal::{Seal, reseal};
use tempfile::TempDir;

/// Goal: `put --offset` near and past 2^63 and 2^64 is refused, not wrapped into a small
/// file (2^64 - 1 used to say "wrote 3 B") or a panic (2^64 - 6).
/// Method: each offset with 3 bytes; exit 2, the limit named, no file created, check clean.
#[test]
fn put_offsets_past_the_largest_file_are_refused() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 << 20, &[]);
    let source = dir.path().join("three");
    std::fs::write(&source, b"abc").unwrap();
    for offset in [u64::MAX, u64::MAX - 5, 1 << 63, i64::MAX as u64, FILE_BYTES_MAX - 2, FILE_BYTES_MAX + 1] {
        snapctl()
            .args(["put", "--offset", &offset.to_string()])
            .arg(&source)
            .arg("/big")
            .arg(&img)
            .assert()
            .code(exit_code::INVALID)
            .stdout("")
            .stderr(predicate::str::contains(format!(
                "3 bytes at offset {offset} would end past byte {FILE_BYTES_MAX}"
            )))
            .stderr(predicate::str::contains(format!("give an offset of at most {}", FILE_BYTES_MAX - 3)))
            .stderr(predicate::str::contains("panicked").not());
    }
    // From standard input the length is known only as it is read: the offset alone is
    // checked first, then each write.
    for (offset, words) in [
        (u64::MAX, format!("offset {} lies past byte {FILE_BYTES_MAX}", u64::MAX)),
        (FILE_BYTES_MAX - 2, format!("3 bytes at offset {} would end past", FILE_BYTES_MAX - 2)),
    ] {
        snapctl()
            .args(["put", "--offset", &offset.to_string(), "-", "/big"])
            .arg(&img)
            .write_stdin("abc")
            .assert()
            .code(exit_code::INVALID)
            .stderr(predicate::str::contains(words));
    }
    let listing = stdout(snapctl().args(["ls"]).arg(&img));
    assert_eq!(listing, "", "a refused put leaves nothing behind");
    check(&img);
}

/// Goal: offsets that are not numbers, or do not fit in 64 bits, are refused by the
/// argument parser with exit 2. Method: negative, too large, exponent, hexadecimal, empty.
#[test]
fn put_offsets_that_are_not_numbers_are_refused() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 << 20, &[]);
    for offset in ["-1", "18446744073709551616", "1e3", "0x10", "", "4096 "] {
        snapctl()
            .args(["put", &format!("--offset={offset}"), "-", "/f"])
            .arg(&img)
            .write_stdin("abc")
            .assert()
            .code(exit_code::INVALID)
            .stderr(predicate::str::contains("--offset"));
    }
}

/// Goal: the last bytes of the largest file can be written, read back, checked, and
/// exported where the host allows files that large (tmpfs does; ext4 stops at 16 TiB).
/// Method: 3 bytes ending at FILE_BYTES_MAX, and writes at offsets 0 and 1.
#[test]
fn put_at_the_end_of_the_largest_file_works() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 << 20, &[]);
    let at = (FILE_BYTES_MAX - 3).to_string();
    snapctl().args(["put", "--offset", &at, "-", "/edge"]).arg(&img).write_stdin("xyz").assert().success();
    snapctl().args(["put", "--offset", "0", "-", "/small"]).arg(&img).write_stdin("ab").assert().success();
    snapctl().args(["put", "--offset", "1", "-", "/small"]).arg(&img).write_stdin("cd").assert().success();
    snapctl().args(["cat", "/small"]).arg(&img).assert().success().stdout("acd");
    let listing = stdout(snapctl().args(["ls", "-l", "/edge"]).arg(&img));
    assert!(listing.contains(&format!(" {FILE_BYTES_MAX} ")), "{listing}");
    check(&img);
    let Some(shm) = tmpfs_dir() else { return };
    let out = shm.path().join("out");
    snapctl().args(["export", "/"]).arg(&out).arg(&img).assert().success();
    let file = std::fs::File::open(out.join("edge")).unwrap();
    assert_eq!(file.metadata().unwrap().len(), FILE_BYTES_MAX);
    let mut tail = [0u8; 3];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut tail, FILE_BYTES_MAX - 3).unwrap();
    assert_eq!(&tail, b"xyz");
}

/// A directory on tmpfs, which takes files up to 2^63 - 1 bytes; None (a skip) if this
/// machine has no /dev/shm, except in CI.
fn tmpfs_dir() -> Option<TempDir> {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) => Some(dir),
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "no /dev/shm in CI: {e}");
            eprintln!("skipping the tmpfs part: no /dev/shm ({e})");
            None
        }
    }
}

/// Goal: `sync` of a host file larger than the largest file is refused, naming the file,
/// before reading it (it would otherwise read 8 EiB of holes). Method: sparse files of
/// 2^63 - 1 and FILE_BYTES_MAX + 1 bytes on tmpfs.
#[test]
fn sync_refuses_a_host_file_past_the_largest_file() {
    let Some(shm) = tmpfs_dir() else { return };
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 << 20, &[]);
    for size in [i64::MAX as u64, FILE_BYTES_MAX + 1] {
        let source = shm.path().join(format!("src{size}"));
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("small"), b"kept out too").unwrap();
        let huge = source.join("huge");
        std::fs::File::create(&huge).unwrap().set_len(size).unwrap();
        snapctl()
            .arg("sync")
            .arg(&source)
            .arg(&img)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .code(exit_code::INVALID)
            .stderr(predicate::str::contains(format!("{} is {size} bytes, past {FILE_BYTES_MAX}", huge.display())));
    }
    assert_eq!(stdout(snapctl().args(["ls"]).arg(&img)), "", "nothing of a refused sync is committed");
    check(&img);
}

/// Goal: durations that overflow seconds or nanoseconds are refused with exit 2 by
/// `history --keep` and `snapfmt --history`; the largest that fits is taken.
/// Method: 2^64 - 1 seconds, 2^64 weeks, one second past DURATION_SECONDS_MAX, negative.
#[test]
fn durations_past_their_limit_are_refused() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 << 20, &[]);
    for keep in ["18446744073709551615", "18446744073709551616", "18446744073709551615w", "18446744074s", "-1", "1y"] {
        snapctl()
            .args(["history", &format!("--keep={keep}")])
            .arg(&img)
            .assert()
            .code(exit_code::INVALID)
            .stderr(predicate::str::contains(format!("bad duration {keep:?}")))
            .stderr(predicate::str::contains("at most 18446744073s (about 584 years)"));
        let other = image(dir.path(), "other.img", 32 << 20);
        snapfmt().arg(format!("--history={keep}")).arg(&other).assert().code(exit_code::INVALID);
    }
    snapctl()
        .args(["history", "--keep", "18446744073s", "--json"])
        .arg(&img)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"keep_seconds\":18446744073"));
    check(&img);
}

/// Goal: a stream whose INODE gives a size past the largest file is refused (exit 8, the
/// inode named), as the target could not export it. Method: a full stream of one file of
/// a distinctive size, its INODE size patched to FILE_BYTES_MAX + 1, 2^63 and 2^64 - 1,
/// the checksums recomputed; the target stays empty.
#[test]
fn receive_refuses_an_inode_past_the_largest_file() {
    let dir = TempDir::new().unwrap();
    let source = fresh_pool(dir.path(), "source.img", 32 << 20);
    const SIZE: u64 = 0x053a_7c1d;
    put(&source, "/f", b"");
    snapctl()
        .args(["put", "--offset", &(SIZE - 1).to_string(), "-", "/f"])
        .arg(&source)
        .write_stdin("z")
        .assert()
        .success();
    snapctl().args(["snapshot", "@a"]).arg(&source).assert().success();
    let stream = snapsend().arg("@a").arg(&source).output().unwrap();
    assert!(stream.status.success());
    let needle = SIZE.to_le_bytes();
    let at: Vec<usize> = stream.stdout.windows(8).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "the size appears once, in the file's INODE");
    for size in [FILE_BYTES_MAX + 1, 1 << 63, u64::MAX] {
        let mut bad = stream.stdout.clone();
        bad[at[0]..at[0] + 8].copy_from_slice(&size.to_le_bytes());
        let bad = reseal(&bad, Seal::default());
        let target = fresh_pool(dir.path(), "target.img", 32 << 20);
        snaprecv()
            .arg(&target)
            .write_stdin(bad)
            .assert()
            .code(exit_code::BAD_STREAM)
            .stderr(predicate::str::contains(format!("is {size} bytes, past {FILE_BYTES_MAX}")));
        snapctl().args(["list"]).arg(&target).assert().success().stdout(predicate::str::contains("@a").not());
        check(&target);
    }
}

/// Goal: a file past the largest file already in a pool (as a binary before the limit
/// could write) is reported by `check` and refused by `export` with the figures, rather
/// than written at a wrapped offset or failing with EINVAL. Method: set a file's size to
/// FILE_BYTES_MAX + 1 and 2^64 - 1 through the library, then run both commands.
#[test]
fn a_stored_file_past_the_largest_file_is_reported_and_not_exported() {
    use snapfs::device::wait::WaitPolicy;
    use snapfs::device::{OpenMode, open_tool_device};
    use snapfs::pool::{LIVE_TREE_ID, Pool};
    for size in [FILE_BYTES_MAX + 1, u64::MAX] {
        let dir = TempDir::new().unwrap();
        let img = pool(dir.path(), 32 << 20, &[]);
        put(&img, "/big", b"abc");
        {
            let mut pool = Pool::open(
                open_tool_device(img.to_str().unwrap(), OpenMode::Write, &WaitPolicy::nowait()).unwrap(),
                OpenMode::Write,
            )
            .unwrap();
            let mut fs = pool.live(LIVE_TREE_ID).unwrap();
            let ino = fs.resolve("/big").unwrap();
            let mut inode = fs.inode(ino).unwrap();
            inode.size = size;
            fs.put_inode(ino, &inode).unwrap();
            pool.commit().unwrap();
        }
        snapctl()
            .arg("check")
            .arg(&img)
            .assert()
            .code(exit_code::CORRUPT)
            .stdout(predicate::str::contains(format!("is {size} bytes, past {FILE_BYTES_MAX}, the largest file")));
        let out = dir.path().join("out");
        snapctl()
            .args(["export", "/"])
            .arg(&out)
            .arg(&img)
            .assert()
            .code(exit_code::REFUSED)
            .stderr(predicate::str::contains(format!(
                "{}: the tree's file is {size} bytes, past the largest file, {FILE_BYTES_MAX}",
                out.join("big").display()
            )))
            .stderr(predicate::str::contains("hint: export the directories beside it, or remove it"));
    }
}

/// Goal: times far before 1970 and far after 2038, with their nanoseconds, cross sync,
/// ls -l and export unchanged. Method: host files with such mtimes (within what ext4
/// and tmpfs hold: 1901 to 2446), synced, listed and exported, compared.
#[test]
fn times_far_in_the_past_and_future_cross_sync_and_export() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 << 20, &[]);
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let times: [(i64, i64, &str); 4] = [
        (-1, 999_999_999, "1969-12-31 23:59"),
        (-2_000_000_000, 1, "1906-08-16 20:26"),
        (1 << 32, 0, "2106-02-07 06:28"),
        (14_000_000_000, 500, "2413-08-23 00:53"),
    ];
    for (i, (sec, nsec, _)) in times.iter().enumerate() {
        let path = src.join(format!("t{i}"));
        std::fs::write(&path, b"x").unwrap();
        let spec = libc::timespec { tv_sec: *sec, tv_nsec: *nsec };
        let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: utimensat reads the path and the two timespecs we own.
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, cpath.as_ptr(), [spec, spec].as_ptr(), 0) }, 0);
    }
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    let listing = stdout(snapctl().args(["ls", "-l"]).arg(&img));
    let out = dir.path().join("out");
    snapctl().args(["export", "/"]).arg(&out).arg(&img).assert().success();
    use std::os::unix::fs::MetadataExt;
    for (i, (sec, nsec, shown)) in times.iter().enumerate() {
        assert!(listing.contains(&format!("{shown} t{i}\n")), "t{i}: {listing}");
        let meta = std::fs::metadata(out.join(format!("t{i}"))).unwrap();
        assert_eq!((meta.mtime(), meta.mtime_nsec()), (*sec, *nsec), "t{i}");
    }
}
