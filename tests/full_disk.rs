//! Full disks: `sync`, `put` and `snaprecv` run into a full pool and fail with exit 5 and
//! the device-full message; the pool stays consistent with the previous commit's data,
//! the metadata-only commits that make room (rm, destroy) still go through on the full
//! pool, and destroying a snapshot makes the space usable again.

mod common;
use snapfs::cli::exit_code;

use common::*;
use predicates::prelude::*;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn device_full(cmd: &mut assert_cmd::Command, program: &str) {
    cmd.assert().code(exit_code::NO_SPACE).stderr(
        predicate::str::starts_with(format!("{program}: error: device full: "))
            .and(predicate::str::contains("nothing was changed"))
            .and(predicate::str::contains("panicked").not()),
    );
}

fn cat(img: &Path, path: &str) -> Vec<u8> {
    let out = snapctl().args(["cat", path]).arg(img).output().unwrap();
    assert!(out.status.success(), "cat {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn filling_a_pool_with_puts_until_it_is_full_keeps_every_file() {
    // Goal: put after put until the device is full: the one that does not fit fails
    // cleanly and every file put before reads back; on the full pool a snapshot, a
    // removal and a destroy still commit (the reserve a commit may use), and the space
    // they free takes a put again.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 24 * MIB, &["--history", "0", "--compress", "none"]);
    let mut stored = Vec::new();
    let mut full = false;
    for i in 0..64u64 {
        let data = noise(MIB as usize, i + 1);
        let out = snapctl().args(["put", "-", &format!("f{i}")]).arg(&img).write_stdin(data.clone()).output().unwrap();
        if out.status.code() == Some(exit_code::NO_SPACE) {
            assert!(String::from_utf8_lossy(&out.stderr).contains("device full"));
            full = true;
            break;
        }
        assert!(out.status.success(), "put f{i}: {}", String::from_utf8_lossy(&out.stderr));
        stored.push(data);
        if i == 5 {
            snapctl().args(["snapshot", "@early"]).arg(&img).assert().success();
        }
    }
    assert!(full && stored.len() > 10, "the pool filled after {} files", stored.len());
    check(&img);
    for (i, data) in stored.iter().enumerate() {
        assert_eq!(&cat(&img, &format!("f{i}")), data, "f{i}");
    }
    // A snapshot and removals are metadata only: they commit on the full pool.
    snapctl().args(["snapshot", "@full"]).arg(&img).assert().success();
    for i in 0..stored.len() {
        snapctl().args(["rm", &format!("f{i}")]).arg(&img).assert().success();
    }
    // Everything is still held by @full: no room yet.
    device_full(snapctl().args(["put", "-", "again"]).arg(&img).write_stdin(noise(2 * MIB as usize, 99)), "snapctl");
    snapctl().args(["destroy", "@full"]).arg(&img).assert().success();
    snapctl().args(["destroy", "@early"]).arg(&img).assert().success();
    check(&img);
    let again = noise(2 * MIB as usize, 99);
    snapctl().args(["put", "-", "again"]).arg(&img).write_stdin(again.clone()).assert().success();
    assert_eq!(cat(&img, "again"), again);
    check(&img);
}

#[test]
fn a_sync_that_does_not_fit_leaves_the_previous_tree() {
    // Goal: a sync bigger than the free space fails as a whole (one transaction): the
    // live tree is the previous sync's, byte for byte, and check is clean.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &["--history", "0", "--compress", "none"]);
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..4u64 {
        std::fs::write(src.join(format!("f{i}")), noise(2 * MIB as usize, i + 10)).unwrap();
    }
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    let export = dir.path().join("before");
    snapctl().arg("export").arg("/").arg(&export).arg(&img).assert().success();
    let before = digest(&export);

    // Rewrite every file and add more than the pool holds.
    for i in 0..4u64 {
        std::fs::write(src.join(format!("f{i}")), noise(2 * MIB as usize, i + 20)).unwrap();
    }
    std::fs::write(src.join("big"), noise(40 * MIB as usize, 7)).unwrap();
    device_full(snapctl().arg("sync").arg(&src).arg(&img), "snapctl");
    check(&img);
    let after = dir.path().join("after");
    snapctl().arg("export").arg("/").arg(&after).arg(&img).assert().success();
    assert_eq!(digest(&after), before, "the live tree is the previous sync's");

    // Without the big file it fits.
    std::fs::remove_file(src.join("big")).unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    check(&img);
}

#[test]
fn an_incremental_receive_that_does_not_fit_leaves_the_target_as_it_was() {
    // Goal: an incremental stream bigger than the target's free space fails with exit 5,
    // the target keeps its snapshots and live tree and passes check; destroying an older
    // snapshot there makes room and the same stream is then received.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 128 * MIB);
    let tgt = image(dir.path(), "tgt.img", 32 * MIB);
    snapfmt().args(["--history", "0"]).arg(&tgt).assert().success();
    put(&src, "old", &noise(10 * MIB as usize, 1));
    snapctl().args(["snapshot", "@old"]).arg(&src).assert().success();
    snapctl().args(["rm", "old"]).arg(&src).assert().success();
    put(&src, "keep", &noise(MIB as usize, 2));
    snapctl().args(["snapshot", "@a"]).arg(&src).assert().success();
    put(&src, "new", &noise(20 * MIB as usize, 3));
    snapctl().args(["snapshot", "@b"]).arg(&src).assert().success();
    let full = stdout_bytes(snapsend().args(["-I", "@old", "@a"]).arg(&src));
    let full_old = stdout_bytes(snapsend().arg("@old").arg(&src));
    snaprecv().arg(&tgt).write_stdin(full_old).assert().success();
    snaprecv().arg(&tgt).write_stdin(full).assert().success();
    let incremental = stdout_bytes(snapsend().args(["-i", "@a", "@b"]).arg(&src));

    let list_before = stdout(snapctl().args(["list", "--json"]).arg(&tgt));
    device_full(snaprecv().arg(&tgt).write_stdin(incremental.clone()), "snaprecv");
    check(&tgt);
    assert_eq!(stdout(snapctl().args(["list", "--json"]).arg(&tgt)), list_before);
    snapctl().args(["cat", "new"]).arg(&tgt).assert().code(exit_code::NOT_FOUND_OR_EXISTS);

    snapctl().args(["destroy", "@old"]).arg(&tgt).assert().success();
    snaprecv().arg(&tgt).write_stdin(incremental).assert().success();
    check(&tgt);
    assert_eq!(cat(&tgt, "@b:new"), noise(20 * MIB as usize, 3));
}

fn stdout_bytes(cmd: &mut assert_cmd::Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn a_commit_that_starts_always_finds_the_space_it_needs() {
    // Goal: whatever a transaction did before its commit, the commit itself never runs
    // out of space: a full pool refuses the file data that would not leave room, never
    // the metadata the commit writes (dirty nodes, dead-index entries, both copies).
    // Method: on a small in-memory pool, random rounds of writes, overwrites under
    // snapshots, removals and destroys; a round whose writes failed with "device full"
    // is dropped (the pool reopened, as a failed command leaves it); every other round's
    // commit must succeed, and check stays clean.
    use snapfs::device::{MemoryDevice, OpenMode};
    use snapfs::error::Error;
    use snapfs::fs::{Inode, ROOT_INO, Timespec};
    use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
    let mut options = FormatOptions::default();
    options.config.compression = snapfs::compress::Codec::Off;
    options.config.history_seconds = 0;
    let pool = format_pool(Box::new(MemoryDevice::new(24 * MIB)), &options).unwrap();
    let mut image = vec![0u8; 24 * MIB as usize];
    pool.store.dev.read_at(0, &mut image).unwrap();
    drop(pool);
    let open = |image: &[u8]| {
        let mut dev = MemoryDevice::new(image.len() as u64);
        dev.bytes = image.to_vec();
        Pool::open(Box::new(dev), OpenMode::Write).unwrap()
    };
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let (mut full_rounds, mut committed, mut was_full) = (0, 0, false);
    for round in 0..120u64 {
        let mut pool = open(&image);
        let result = (|| -> snapfs::Result<()> {
            if was_full {
                // Make room with metadata-only work, as an operator would: on a full pool.
                let snapshots: Vec<String> =
                    pool.snapshots_of(LIVE_TREE_ID).unwrap().iter().map(|s| s.name.clone()).collect();
                if let Some(oldest) = snapshots.first() {
                    pool.destroy_snapshot(LIVE_TREE_ID, oldest)?;
                }
                let mut fs = pool.live(LIVE_TREE_ID)?;
                for entry in fs.readdir(ROOT_INO)?.into_iter().take(1000) {
                    fs.unlink(ROOT_INO, &entry.name)?;
                }
                return Ok(());
            }
            let mut fs = pool.live(LIVE_TREE_ID)?;
            for _ in 0..1 + rand(40) {
                let name = format!("f{}", rand(200));
                let ino = match fs.lookup(ROOT_INO, name.as_bytes())? {
                    Some(e) => e.ino,
                    None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Timespec::default()))?,
                };
                if rand(4) == 0 {
                    fs.unlink(ROOT_INO, name.as_bytes())?;
                } else {
                    fs.write_at(ino, rand(300_000), &noise(rand(400_000) as usize, round))?;
                }
            }
            // Many small files dirty many tree nodes: metadata the commit must find room for.
            for i in 0..rand(1500) {
                let name = format!("e{round}-{i}");
                let ino = fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Timespec::default()))?;
                fs.write_at(ino, 0, &noise(100, i))?;
            }
            if rand(3) == 0 {
                pool.create_snapshot(LIVE_TREE_ID, &format!("s{round}"))?;
            }
            let snapshots: Vec<String> =
                pool.snapshots_of(LIVE_TREE_ID).unwrap().iter().map(|s| s.name.clone()).collect();
            if snapshots.len() > 4 {
                pool.destroy_snapshot(LIVE_TREE_ID, &snapshots[rand(snapshots.len() as u64) as usize])?;
            }
            Ok(())
        })();
        match result {
            Err(Error::NoSpace { .. }) if !was_full => {
                full_rounds += 1;
                was_full = true;
                continue;
            }
            Err(e) => panic!("round {round}: {e}"),
            Ok(()) => {}
        }
        pool.commit().unwrap_or_else(|e| panic!("round {round}: the commit failed after its writes went in: {e}"));
        committed += 1;
        was_full = false;
        assert!(snapfs::check::check_pool(&mut pool).unwrap().is_clean(), "round {round}");
        pool.store.dev.read_at(0, &mut image).unwrap();
    }
    assert!(full_rounds > 10 && committed > 20, "{full_rounds} rounds hit a full pool, {committed} committed");
}
