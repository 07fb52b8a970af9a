//! Messages that used to mislead, pinned with their figures and exit codes: a full
//! device in the stream's own figures, `snaprecv -n` on a stream that cannot fit, the
//! device-full hint on a pool with no snapshots, `ls -l` of special files and mode bits.

mod common;

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
        .code(5)
        .stdout(predicate::str::contains("would NOT apply"))
        .stdout(predicate::str::contains("@a needs at least 24.0 MiB for its data"))
        .stdout(predicate::str::contains(format!("and {} is free", human_bytes(free))))
        .stdout(predicate::str::contains("would apply").not());
    snaprecv()
        .arg(&tgt)
        .write_stdin(stream.clone())
        .assert()
        .code(5)
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
        snapctl().args(["put", "-", name]).arg(&img).write_stdin(noise(40 * MIB as usize, 3)).assert().code(5)
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
