//! Frame indexes of compressed file records (fs/record.rs, docs/FORMAT.md "frame_index"):
//! written by every path that stores a compressed record, checked by `snapctl check`,
//! turned on by the first commit that writes one, and absent from pools written before
//! them, which still sync, send and receive.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const MIB: u64 = 1024 * 1024;

fn features(img: &Path) -> Vec<String> {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap();
    status["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
}

fn has_frame_index(img: &Path) -> bool {
    features(img).iter().any(|f| f == "frame_index")
}

fn export(img: &Path, snapshot: &str, out: &Path) -> PathBuf {
    snapctl().args(["export", snapshot]).arg(out).arg(img).assert().success();
    out.to_path_buf()
}

/// The file of the fixture pool at @a: 512 KiB of log lines (4 records, 16 frames),
/// as the Python one-liner that made it wrote them.
fn fixture_log() -> Vec<u8> {
    let mut text: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("line {i:06} of a compressible log, status ok, value {}\n", i * 7 % 1000).into_bytes())
        .collect();
    text.truncate(512 * 1024);
    text
}

/// The fixture's file at @b: 7 bytes changed in one piece of record 2.
fn fixture_log_b() -> Vec<u8> {
    let mut text = fixture_log();
    text[300_000..300_007].copy_from_slice(b"CHANGED");
    text
}

/// Log lines of about `len` bytes, compressible (each record keeps 4 zstd frames).
fn log_lines(len: usize, seed: u32) -> Vec<u8> {
    let mut text: Vec<u8> =
        (0..len as u32 / 20 + 1).flat_map(|i| format!("{:09} seed {seed} ok\n", i * 13).into_bytes()).collect();
    text.truncate(len);
    text
}

/// Goal: a pool written by a binary from before frame indexes (no feature bit, no index
/// in any record) still opens, checks clean, sends full and incremental streams that
/// apply, and receives; the first commit that writes a compressed record (a sync, a
/// received WRITE) turns its feature on, and the pool, old records and new, checks clean
/// and sends on. Method: tests/fixtures/pool_before_frame_index.img.gz, made by the
/// binaries of commit 4a72891 (snapfmt; sync of a 512 KiB log; @a; 7 bytes changed;
/// sync; @b), against exports of the expected files.
#[test]
fn a_pool_from_before_frame_indexes_syncs_sends_and_receives() {
    if !require_commands("a_pool_from_before_frame_indexes_syncs_sends_and_receives", &["gzip"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unpack = |name: &str| {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pool_before_frame_index.img.gz");
        let unpacked = std::process::Command::new("gzip").arg("-dc").arg(&fixture).output().unwrap();
        assert!(unpacked.status.success());
        let img = dir.path().join(name);
        std::fs::write(&img, unpacked.stdout).unwrap();
        img
    };
    let old = unpack("old.img");
    assert!(!has_frame_index(&old), "{:?}", features(&old));
    check(&old);

    // Sends from records without an index: the sender reads them whole, as before.
    let to = pool(dir.path(), 64 * MIB, &[]);
    receive(&to, &send(&["@a"], &old));
    receive(&to, &send(&["-i", "@a", "@b"], &old));
    let out = export(&to, "@b", &dir.path().join("b"));
    assert!(std::fs::read(out.join("log.txt")).unwrap() == fixture_log_b());
    assert!(has_frame_index(&to), "received compressed records keep an index");
    check(&to);

    // The old pool receives: a change made on the target comes back as an incremental.
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut d = fixture_log_b();
    d[40_000..40_004].copy_from_slice(b"NEW!");
    d.extend_from_slice(&log_lines(200 * 1024, 5));
    std::fs::write(src.join("log.txt"), &d).unwrap();
    snapctl().arg("sync").arg(&src).arg(&to).assert().success();
    snapctl().args(["snapshot", "@d"]).arg(&to).assert().success();
    let back = send(&["-i", "@b", "@d"], &to);
    let copy = unpack("copy.img");
    receive(&copy, &back);
    assert!(has_frame_index(&copy), "the receive wrote indexes: {:?}", features(&copy));
    let out = export(&copy, "@d", &dir.path().join("d"));
    assert!(std::fs::read(out.join("log.txt")).unwrap() == d);
    check(&copy);

    // The old pool syncs: the first commit that writes an index turns the feature on,
    // and an incremental of old records and new ones applies.
    let mut c = fixture_log_b();
    c[100_000..100_004].copy_from_slice(b"SYNC");
    c.extend_from_slice(&log_lines(200 * 1024, 6));
    std::fs::write(src.join("log.txt"), &c).unwrap();
    snapctl().arg("sync").arg(&src).arg(&old).assert().success();
    assert!(has_frame_index(&old), "{:?}", features(&old));
    snapctl().args(["snapshot", "@c"]).arg(&old).assert().success();
    check(&old);
    let to2 = image(dir.path(), "to2.img", 64 * MIB);
    snapfmt().arg(&to2).assert().success();
    receive(&to2, &send(&["@b"], &old));
    receive(&to2, &send(&["-i", "@b", "@c"], &old));
    let out = export(&to2, "@c", &dir.path().join("c"));
    assert!(std::fs::read(out.join("log.txt")).unwrap() == c);
    check(&to2);
}

/// Goal: every compressed record a sync, a put or a receive writes keeps an index that
/// `snapctl check` finds right, and an incremental of a one-piece change round trips
/// through indexed records; a pool that stores nothing compressed past one frame never
/// gets the feature (an older binary still reads it). Method: zstd and lz4 pools; a
/// pool with compression off; a file of one frame.
#[test]
fn indexes_are_written_checked_and_sent_from() {
    let dir = tempfile::tempdir().unwrap();
    for setting in ["zstd:1", "lz4", "zstd:19"] {
        let img = image(dir.path(), "src.img", 64 * MIB);
        snapfmt().args(["-f", "--compress", setting]).arg(&img).assert().success();
        let src = dir.path().join(format!("src-{setting}"));
        std::fs::create_dir_all(&src).unwrap();
        // One frame only (no index), then a file of 5 records.
        std::fs::write(src.join("small.txt"), log_lines(30_000, 1)).unwrap();
        snapctl().arg("sync").arg(&src).arg("/data").arg(&img).assert().success();
        assert!(!has_frame_index(&img), "{setting}: one frame needs no index");
        let big = log_lines(600 * 1024, 2);
        std::fs::write(src.join("big.txt"), &big).unwrap();
        snapctl().arg("sync").arg(&src).arg("/data").arg(&img).assert().success();
        assert!(has_frame_index(&img), "{setting}");
        put(&img, "/put.txt", &log_lines(300 * 1024, 3));
        snapctl().args(["snapshot", "@a"]).arg(&img).assert().success();
        check(&img);
        let mut changed = big.clone();
        changed[400_000] ^= 0x20; // one piece of record 3
        std::fs::write(src.join("big.txt"), &changed).unwrap();
        snapctl().arg("sync").arg(&src).arg("/data").arg(&img).assert().success();
        snapctl().args(["snapshot", "@b"]).arg(&img).assert().success();
        let incremental = send(&["-i", "@a", "@b"], &img);
        let dump = stdout(snaprecv().arg("--dump").write_stdin(incremental.clone()));
        assert!(dump.contains("PATCH"), "{setting}: a one-piece change travels as a PATCH:\n{dump}");
        let to = image(dir.path(), "to.img", 64 * MIB);
        snapfmt().args(["-f"]).arg(&to).assert().success();
        receive(&to, &send(&["@a"], &img));
        receive(&to, &incremental);
        let out = export(&to, "@b", &dir.path().join(format!("out-{setting}")));
        assert!(std::fs::read(out.join("data/big.txt")).unwrap() == changed, "{setting}");
        assert!(std::fs::read(out.join("put.txt")).unwrap() == log_lines(300 * 1024, 3), "{setting}");
        check(&to);
        check(&img);
    }
    let off = pool(dir.path(), 64 * MIB, &["--compress", "off"]);
    put(&off, "/big.txt", &log_lines(600 * 1024, 2));
    assert!(!has_frame_index(&off), "nothing compressed, no index: {:?}", features(&off));
    check(&off);
}
