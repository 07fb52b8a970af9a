//! Compression settings end to end: `snapfmt --compress`, `snapctl set compression=`,
//! the counts `sync` and `status` report, and streams between pools of different
//! settings, lz4 blocks included (they need the pool's and the stream's lz4 feature).

mod common;
use common::*;
use snapfs::fuzzing::hostile::{join_parts, split_parts};
use std::path::Path;

const MIB: u64 = 1024 * 1024;
const SETTINGS: [&str; 4] = ["off", "lz4", "zstd:1", "zstd:19"];

fn text(len: usize, seed: u8) -> Vec<u8> {
    let line = format!("line {seed} of a log that repeats itself, as logs do: status ok\n");
    line.bytes().cycle().take(len).collect()
}

/// 3 compressible records of text, 2 random records, a 3000-byte file (one record, too
/// small to save a block) and 2 records of zeros (holes): 8 records read.
fn source_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("text")).unwrap();
    std::fs::write(dir.join("text/a.txt"), text(300 * 1024, 1)).unwrap();
    std::fs::write(dir.join("random.bin"), noise(200 * 1024, 7)).unwrap();
    std::fs::write(dir.join("small.txt"), text(3000, 2)).unwrap();
    std::fs::write(dir.join("zeros"), vec![0u8; 256 * 1024]).unwrap();
}

fn status(img: &Path) -> serde_json::Value {
    serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap()
}

fn has_lz4(img: &Path) -> bool {
    status(img)["features"].as_array().unwrap().iter().any(|f| f == "lz4")
}

fn send(args: &[&str], img: &Path) -> Vec<u8> {
    let out = snapsend().args(args).arg(img).output().unwrap();
    assert!(out.status.success(), "snapsend {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn dump(stream: &[u8]) -> String {
    stdout(snaprecv().arg("--dump").write_stdin(stream.to_vec()))
}

fn same_files(a: &Path, b: &Path) {
    for name in ["text/a.txt", "random.bin", "small.txt", "zeros"] {
        assert!(std::fs::read(a.join(name)).unwrap() == std::fs::read(b.join(name)).unwrap(), "{name} differs");
    }
}

/// Goal: `sync` says how many records it gave the compressor, kept compressed and
/// skipped; `status` how many of the live tree's record blocks are stored compressed
/// and raw; both right for every setting. Method: a tree of known records, synced into a
/// pool of each setting.
#[test]
fn sync_and_status_count_what_compression_tried_kept_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    source_tree(&src);
    for setting in SETTINGS {
        let img = image(dir.path(), &format!("{setting}.img"), 64 * MIB);
        let out = stdout(snapfmt().args(["--compress", setting]).arg(&img));
        assert!(out.contains(&format!("compression {setting}")), "{out}");
        let out = stdout(snapctl().arg("sync").arg(&src).arg(&img));
        let (tried, kept, skipped, compressed, raw) = match setting {
            "off" => (0, 0, 8, 0, 6),
            _ => (3, 3, 5, 3, 3),
        };
        let counts = format!("compression: {tried} records tried, {kept} kept compressed, {skipped} skipped");
        assert!(out.contains(&counts), "{setting}: {out}");
        let s = status(&img);
        assert_eq!(s["compression"], setting, "{setting}");
        assert_eq!(s["live_records_compressed"], compressed, "{setting}");
        assert_eq!(s["live_records_raw"], raw, "{setting}");
        assert_eq!(has_lz4(&img), setting == "lz4", "{setting}: the feature comes with lz4 only");
        let text = stdout(snapctl().arg("status").arg(&img));
        let line = format!("{setting} for new data; live records: {compressed} stored compressed, {raw} raw");
        assert!(text.contains(&line), "{text}");
        check(&img);
    }
}

/// Goal: a pool of each setting syncs, snapshots, sends (full and incremental) and
/// receives byte-identical into a pool of each other setting; blocks travel as stored,
/// so an lz4 stream says so at BEGIN and gives the receiving pool the lz4 feature.
/// Method: every source setting against targets off, lz4 and zstd:3; export and compare.
#[test]
fn every_setting_round_trips_through_streams_into_every_other() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    source_tree(&src);
    for source in SETTINGS {
        let img = image(dir.path(), "source.img", 64 * MIB);
        snapfmt().args(["-f", "--compress", source]).arg(&img).assert().success();
        snapctl().arg("sync").arg(&src).arg(&img).assert().success();
        snapctl().args(["snapshot", "@a"]).arg(&img).assert().success();
        let full = send(&["@a"], &img);
        assert_eq!(dump(&full).contains("features lz4"), source == "lz4", "{source}");
        // An incremental rewrites part of the text: a new record and a patch.
        let mut changed = text(300 * 1024, 1);
        changed[140_000..150_000].copy_from_slice(&text(10_000, 9));
        std::fs::write(src.join("text/a.txt"), &changed).unwrap();
        snapctl().arg("sync").arg(&src).arg(&img).assert().success();
        snapctl().args(["snapshot", "@b"]).arg(&img).assert().success();
        let incremental = send(&["-i", "@a", "@b"], &img);
        for target in ["off", "lz4", "zstd:3"] {
            let to = image(dir.path(), "target.img", 64 * MIB);
            snapfmt().args(["-f", "--compress", target]).arg(&to).assert().success();
            snaprecv().arg(&to).write_stdin(full.clone()).assert().success();
            snaprecv().arg(&to).write_stdin(incremental.clone()).assert().success();
            let out = dir.path().join(format!("out-{source}-{target}"));
            snapctl().args(["export", "@b"]).arg(&out).arg(&to).assert().success();
            same_files(&src, &out);
            assert_eq!(has_lz4(&to), source == "lz4" || target == "lz4", "{source} into {target}");
            check(&to);
        }
        std::fs::write(src.join("text/a.txt"), text(300 * 1024, 1)).unwrap();
        check(&img);
    }
}

/// Goal: a receiver that does not know a stream feature refuses the part at BEGIN and
/// applies nothing, as one from before lz4 refuses an lz4 stream. Method: a real lz4
/// stream whose BEGIN carries, beside the lz4 bit, one this binary does not know.
#[test]
fn a_stream_with_a_feature_the_receiver_lacks_is_refused_before_anything_applies() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    source_tree(&src);
    let img = pool(dir.path(), 64 * MIB, &["--compress", "lz4"]);
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapctl().args(["snapshot", "@a"]).arg(&img).assert().success();
    let mut parts = split_parts(&send(&["@a"], &img)).unwrap();
    assert_eq!(parts[0].begin.features, snapfs::stream::wire::FEATURE_LZ4);
    // The lowest bit this binary does not know.
    let unknown = 1u64 << snapfs::stream::wire::FEATURES_KNOWN.trailing_ones();
    parts[0].begin.features |= unknown;
    let to = image(dir.path(), "target.img", 64 * MIB);
    snapfmt().arg(&to).assert().success();
    let before = std::fs::read(&to).unwrap();
    snaprecv()
        .arg(&to)
        .write_stdin(join_parts(&parts))
        .assert()
        .code(7)
        .stderr(predicates::str::contains(format!("features {unknown:#x} that this receiver does not know")));
    assert!(std::fs::read(&to).unwrap() == before, "the refused receive wrote to the target");
}

/// Goal: `set compression=` changes how new writes are compressed and nothing already
/// stored; lz4 turns on the pool's feature; bad values are refused with exit 2 and the
/// pool unchanged. Method: a file written under each of zstd:1, lz4 and off; a full
/// stream's dump shows each file's blocks as they were stored.
#[test]
fn set_compression_affects_only_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let img = pool(dir.path(), 64 * MIB, &["--compress", "zstd:1"]);
    put(&img, "/zstd", &text(256 * 1024, 1)); // 2 records
    assert!(!has_lz4(&img));
    let out = stdout(snapctl().args(["set", "compression=lz4"]).arg(&img));
    assert!(out.contains("compression=lz4 for new writes"), "{out}");
    assert!(has_lz4(&img), "choosing lz4 sets the feature");
    put(&img, "/lz4", &text(384 * 1024, 2)); // 3 records
    stdout(snapctl().args(["set", "compression=off"]).arg(&img));
    put(&img, "/off", &text(512 * 1024, 3)); // 4 records
    assert_eq!(status(&img)["compression"], "off");
    assert!(has_lz4(&img), "the feature stays while lz4 blocks may remain");
    snapctl().args(["snapshot", "@s"]).arg(&img).assert().success();
    let lines = dump(&send(&["@s"], &img));
    let count = |what: &str| lines.lines().filter(|l| l.contains("WRITE ino=") && l.contains(what)).count();
    assert_eq!((count("compression=Zstd"), count("compression=Lz4"), count("compression=None")), (2, 3, 4), "{lines}");
    for (property, says) in [
        ("compression=gzip", "bad compression \"gzip\""),
        ("compression=zstd:20", "bad compression \"zstd:20\""),
        ("history=1x", "bad duration \"1x\""),
        ("retention=1h", "bad property \"retention=1h\""),
        ("compression", "bad property"),
    ] {
        let before = std::fs::read(&img).unwrap();
        snapctl().args(["set", property]).arg(&img).assert().code(2).stderr(predicates::str::contains(says));
        assert!(std::fs::read(&img).unwrap() == before, "{property}: the pool changed");
    }
    check(&img);
}
