//! Full disks: `sync`, `put` and `snaprecv` run into a full pool and fail with exit 5 and
//! the device-full message; the pool stays consistent with the previous commit's data,
//! the metadata-only commits that make room (rm, destroy) still go through on the full
//! pool, and destroying a snapshot makes the space usable again.

mod common;

use common::*;
use predicates::prelude::*;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn device_full(cmd: &mut assert_cmd::Command, program: &str) {
    cmd.assert().code(5).stderr(
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
        if out.status.code() == Some(5) {
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
    snapctl().args(["cat", "new"]).arg(&tgt).assert().code(3);

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
