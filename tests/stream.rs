//! Replication streams end to end: snapsend into snaprecv between two image files, the
//! sizes snapsend promises, and every bad input the stream tools must refuse, each with
//! its message and exit code, leaving the target as it was.

mod common;
use snapfs::cli::exit_code;

use common::*;
use predicates::prelude::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tempfile::TempDir;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

const PREAMBLE: usize = 16;
const FRAME_HEADER: usize = 8;
const FRAME_CHECKSUM: usize = 16;

// ------------------------------------------------------------------------------ helpers

fn put_at(img: &Path, path: &str, offset: u64, data: &[u8]) {
    snapctl().args(["put", "--offset", &offset.to_string(), "-", path]).arg(img).write_stdin(data).assert().success();
}

fn snapshot(img: &Path, name: &str) {
    snapctl().arg("snapshot").arg(format!("@{name}")).arg(img).assert().success();
}

/// snapsend ARGS IMG, which must succeed: the stream.
fn send(args: &[&str], img: &Path) -> Vec<u8> {
    let out = snapsend().args(args).arg(img).output().expect("run snapsend");
    assert!(out.status.success(), "snapsend {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// snaprecv IMG < stream, which must succeed: its standard output.
fn recv(img: &Path, stream: &[u8]) -> String {
    let out = snaprecv().arg(img).write_stdin(stream.to_vec()).output().expect("run snaprecv");
    assert!(out.status.success(), "snaprecv failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn list_json(img: &Path) -> serde_json::Value {
    serde_json::from_str(&stdout(snapctl().args(["list", "--json"]).arg(img))).expect("list --json")
}

/// (name, guid) of every snapshot, oldest first.
fn snapshots(img: &Path) -> Vec<(String, String)> {
    list_json(img)
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["guid"].as_str().unwrap().to_string()))
        .collect()
}

fn names(img: &Path) -> Vec<String> {
    snapshots(img).into_iter().map(|(n, _)| n).collect()
}

/// The workload digest of a tree of the pool ("/" for the live tree, "@NAME" for a snapshot).
fn export_digest(img: &Path, what: &str, scratch: &Path) -> String {
    let out = tempfile::Builder::new().prefix("export").tempdir_in(scratch).unwrap();
    let to = out.path().join("tree");
    snapctl().arg("export").arg(what).arg(&to).arg(img).assert().success();
    digest(&to)
}

/// What a pool holds, as far as a failed receive may not change it: its snapshot list
/// and the content of every snapshot and of the live tree.
fn holdings(img: &Path, scratch: &Path) -> String {
    let mut out = serde_json::to_string(&list_json(img)).unwrap();
    for name in names(img) {
        out.push_str(&format!("\n@{name}: {}", export_digest(img, &format!("@{name}"), scratch)));
    }
    out.push_str(&format!("\nlive: {}", export_digest(img, "/", scratch)));
    out
}

/// blake3 of the whole image file: for failures that may write nothing at all.
fn image_hash(img: &Path) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(img).unwrap()).unwrap();
    hasher.finalize()
}

/// Size and modification time of the image file: any write to it changes the time, so
/// a loop of hundreds of attempts can tell which one wrote without hashing after each.
fn stamp(img: &Path) -> (u64, std::time::SystemTime) {
    let meta = std::fs::metadata(img).unwrap();
    (meta.len(), meta.modified().unwrap())
}

fn dump(stream: &[u8]) -> String {
    stdout(snaprecv().arg("--dump").write_stdin(stream.to_vec()))
}

/// The record type names in a --dump, in order.
fn dump_kinds(dump: &str) -> Vec<String> {
    dump.lines().map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_string()).collect()
}

/// The total of `snapsend -n -P ARGS IMG` (its `size` line), checking that the part lines add up to it.
fn estimated_size(args: &[&str], img: &Path) -> u64 {
    let text = stdout(snapsend().arg("-n").arg("-P").args(args).arg(img));
    let mut parts = 0;
    let mut total = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let bytes: u64 = fields.last().unwrap().parse().unwrap_or_else(|_| panic!("bad -P line {line:?}"));
        match fields[0] {
            "size" => total = Some(bytes),
            "full" | "incremental" => parts += bytes,
            other => panic!("unknown -P line kind {other:?} in {text:?}"),
        }
    }
    let total = total.unwrap_or_else(|| panic!("no size line in {text:?}"));
    assert_eq!(parts, total, "-P part lines do not add up to the size line:\n{text}");
    total
}

fn text(len: usize, seed: u64) -> Vec<u8> {
    let words = ["alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot ", "golf\n"];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

/// One frame of a stream: where it starts, its type and payload length.
#[derive(Clone, Copy, Debug)]
struct Frame {
    start: usize,
    kind: u8,
    payload: usize,
}

impl Frame {
    fn checksum_start(&self) -> usize {
        self.start + FRAME_HEADER + self.payload
    }
    fn end(&self) -> usize {
        self.checksum_start() + FRAME_CHECKSUM
    }
}

/// The frames of a (good, single- or multi-part) stream, from the byte layout of wire.rs;
/// the second value is where each part's preamble starts.
fn frames(stream: &[u8]) -> (Vec<Frame>, Vec<usize>) {
    let mut out = Vec::new();
    let mut preambles = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        assert_eq!(&stream[at..at + 8], b"SNAPSTRM", "a part starts at byte {at}");
        preambles.push(at);
        at += PREAMBLE;
        loop {
            let kind = stream[at];
            let payload = u32::from_le_bytes(stream[at + 4..at + 8].try_into().unwrap()) as usize;
            let frame = Frame { start: at, kind, payload };
            at = frame.end();
            out.push(frame);
            if kind == 14 {
                break; // END
            }
        }
    }
    assert_eq!(at, stream.len());
    (out, preambles)
}

/// A source with @a and @b, and a target that received @a: the incremental @a -> @b
/// carries every common kind of record (INODE, LINK, WRITE, PATCH, RENAME, UNLINK,
/// FREE_INODE, TREE_META) and applies cleanly to the target.
struct Pair {
    dir: TempDir,
    src: PathBuf,
    tgt: PathBuf,
    /// The incremental stream @a -> @b.
    ab: Vec<u8>,
}

impl Pair {
    fn new(target_bytes: u64) -> Pair {
        let dir = TempDir::new().unwrap();
        let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
        let tgt = fresh_pool(dir.path(), "tgt.img", target_bytes);
        for d in ["docs", "data", "archive"] {
            snapctl().args(["mkdir", d]).arg(&src).assert().success();
        }
        put(&src, "docs/readme", &text(3000, 1));
        put(&src, "data/blob", &noise(64 * KIB as usize, 2));
        put(&src, "data/old", b"old and about to go\n");
        put(&src, "data/table", &noise(16 * KIB as usize, 4));
        put(&src, "stay", b"stays\n");
        snapshot(&src, "a");
        recv(&tgt, &send(&["@a"], &src));
        put(&src, "docs/new", &text(300, 3));
        put_at(&src, "docs/readme", 1000, b"CHANGED");
        snapctl().args(["mv", "data/blob", "archive/blob"]).arg(&src).assert().success();
        snapctl().args(["rm", "data/old"]).arg(&src).assert().success();
        put_at(&src, "data/table", 8 * KIB + 100, b"one changed row");
        snapshot(&src, "b");
        let ab = send(&["-i", "@a", "@b"], &src);
        let kinds = dump_kinds(&dump(&ab));
        for kind in ["TREE_META", "INODE", "LINK", "WRITE", "PATCH", "RENAME", "UNLINK", "FREE_INODE"] {
            assert!(kinds.iter().any(|k| k == kind), "the fixture's stream has no {kind} record: {kinds:?}");
        }
        Pair { dir, src, tgt, ab }
    }
}

fn assert_no_panic(stderr: &str, code: Option<i32>, what: &str) {
    assert!(!stderr.contains("panicked"), "{what}: snaprecv panicked:\n{stderr}");
    assert_ne!(code, Some(101), "{what}: exit 101 (a panic):\n{stderr}");
    assert!(code.is_some(), "{what}: snaprecv was killed by a signal:\n{stderr}");
}

// ---------------------------------------------------------------------------- functional

#[test]
fn full_then_incremental_round_trip_of_the_workload() {
    // Goal: a full then an incremental stream between two image files reproduce the
    // source exactly, and the received snapshots keep the sender's guids.
    // Method: generate a workload tree (32M: `mutate` needs 250 files), sync it, snapshot
    // @a, send it in full; mutate the tree, sync, snapshot @b, send @a -> @b. After each
    // receive, check the target and compare the export of the received snapshot with the
    // workload digest of the source tree at that snapshot; compare list --json guids.
    let dir = TempDir::new().unwrap();
    let tree = dir.path().join("tree");
    let tree_arg = tree.to_str().unwrap();
    run_workload(&["generate", tree_arg, "32M"], &[("WORKLOAD_SEED", "11")]);
    let src = fresh_pool(dir.path(), "src.img", 128 * MIB);
    let tgt = fresh_pool(dir.path(), "tgt.img", 128 * MIB);

    snapctl().arg("sync").arg(&tree).arg(&src).assert().success();
    snapshot(&src, "a");
    let digest_a = digest(&tree);
    let full = send(&["@a"], &src);
    let said = recv(&tgt, &full);
    assert!(said.starts_with("snaprecv: received @a: "), "{said}");
    check(&tgt);
    assert_eq!(export_digest(&tgt, "@a", dir.path()), digest_a, "received @a differs from the source tree");
    assert_eq!(snapshots(&tgt), snapshots(&src), "received @a has another guid");

    run_workload(&["mutate", tree_arg], &[("WORKLOAD_SEED", "11")]);
    snapctl().arg("sync").arg(&tree).arg(&src).assert().success();
    snapshot(&src, "b");
    let digest_b = digest(&tree);
    assert_ne!(digest_a, digest_b);
    let incremental = send(&["-i", "@a", "@b"], &src);
    assert!(
        incremental.len() * 4 < full.len(),
        "the incremental ({} B) is not much smaller than the full stream ({} B)",
        incremental.len(),
        full.len()
    );
    let said = recv(&tgt, &incremental);
    assert!(said.starts_with("snaprecv: received @b: "), "{said}");
    check(&tgt);
    assert_eq!(export_digest(&tgt, "@b", dir.path()), digest_b, "received @b differs from the source tree");
    assert_eq!(export_digest(&tgt, "@a", dir.path()), digest_a, "@a changed on the target");
    assert_eq!(export_digest(&tgt, "/", dir.path()), digest_b, "the target's live tree is not @b");
    let (src_snaps, tgt_snaps) = (snapshots(&src), snapshots(&tgt));
    assert_eq!(tgt_snaps, src_snaps, "the target's snapshots and guids differ from the source's");
    assert_eq!(tgt_snaps.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn renames_and_deletes_travel_as_such() {
    // Goal: moving a large file costs a RENAME record, not its data; deleting a file is an
    // UNLINK and a FREE_INODE.
    // Method: a 4 MiB incompressible file on the source, received at @a; mv it into another
    // directory and rm a small file, snapshot @b; the incremental stream (size by
    // `snapsend -n -P` and real) stays under 4 KiB, --dump shows the records, and the
    // target ends up with the file at its new path.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    let tgt = fresh_pool(dir.path(), "tgt.img", 64 * MIB);
    let big = noise(4 * MIB as usize, 7);
    snapctl().args(["mkdir", "in"]).arg(&src).assert().success();
    snapctl().args(["mkdir", "-p", "out/deeper"]).arg(&src).assert().success();
    put(&src, "in/big", &big);
    put(&src, "doomed", b"short-lived\n");
    snapshot(&src, "a");
    recv(&tgt, &send(&["@a"], &src));
    snapctl().args(["mv", "in/big", "out/deeper/renamed"]).arg(&src).assert().success();
    snapctl().args(["rm", "doomed"]).arg(&src).assert().success();
    snapshot(&src, "b");

    let estimate = estimated_size(&["-i", "@a", "@b"], &src);
    let stream = send(&["-i", "@a", "@b"], &src);
    assert_eq!(estimate, stream.len() as u64);
    assert!(stream.len() < 4096, "a rename of a 4 MiB file sent {} bytes", stream.len());
    let text = dump(&stream);
    let kinds = dump_kinds(&text);
    assert!(!kinds.iter().any(|k| k == "WRITE" || k == "PATCH"), "data travelled:\n{text}");
    assert!(text.contains(r#"RENAME ino="#) && text.contains(r#"name="big" to dir="#), "{text}");
    assert!(text.contains(r#"name="renamed""#), "{text}");
    assert!(text.contains(r#"UNLINK ino="#) && text.contains(r#"name="doomed""#), "{text}");
    assert!(kinds.iter().any(|k| k == "FREE_INODE"), "{text}");
    assert_eq!(kinds.first().map(String::as_str), Some("BEGIN"));
    assert_eq!(kinds.last().map(String::as_str), Some("END"));

    recv(&tgt, &stream);
    check(&tgt);
    snapctl().args(["cat", "out/deeper/renamed"]).arg(&tgt).assert().success().stdout(big);
    snapctl().args(["cat", "in/big"]).arg(&tgt).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    snapctl().args(["cat", "doomed"]).arg(&tgt).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    snapctl().args(["cat", "@a:doomed"]).arg(&tgt).assert().success().stdout("short-lived\n");
}

#[test]
fn small_overwrite_sends_a_small_patch() {
    // Goal: a 4 KiB overwrite inside a large file travels as a PATCH of that piece, not as
    // the whole 128 KiB record.
    // Method: a 1 MiB incompressible file at @a, received; `snapctl put --offset` writes
    // 4 KiB at offset 1 MiB - 128 KiB + 4 KiB; the incremental stream holds one PATCH of
    // 4.0 KiB and no WRITE, is under 8 KiB, and the target's file equals the source's.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    let tgt = fresh_pool(dir.path(), "tgt.img", 64 * MIB);
    put(&src, "big", &noise(MIB as usize, 9));
    snapshot(&src, "a");
    recv(&tgt, &send(&["@a"], &src));
    let offset = MIB - 128 * KIB + 4 * KIB;
    put_at(&src, "big", offset, &noise(4 * KIB as usize, 10));
    snapshot(&src, "b");

    let stream = send(&["-i", "@a", "@b"], &src);
    assert_eq!(estimated_size(&["-i", "@a", "@b"], &src), stream.len() as u64);
    let text = dump(&stream);
    let patches: Vec<&str> = text.lines().filter(|l| l.contains(" PATCH ")).collect();
    assert_eq!(patches.len(), 1, "{text}");
    assert!(
        patches[0].contains(&format!("offset={} logical=131072 pieces=0x00000002 data=4.0 KiB", MIB - 128 * KIB)),
        "{text}"
    );
    assert!(!dump_kinds(&text).iter().any(|k| k == "WRITE"), "{text}");
    assert!(stream.len() > 4096 && stream.len() < 8192, "a 4 KiB overwrite sent {} bytes", stream.len());

    recv(&tgt, &stream);
    check(&tgt);
    let want = snapctl().args(["cat", "big"]).arg(&src).output().unwrap().stdout;
    snapctl().args(["cat", "big"]).arg(&tgt).assert().success().stdout(want);
    let before = snapctl().args(["cat", "@a:big"]).arg(&src).output().unwrap().stdout;
    snapctl().args(["cat", "@a:big"]).arg(&tgt).assert().success().stdout(before);
}

/// The file records of a pool's trees that carry an overlay (`snapctl dump --files`).
fn overlays(img: &Path) -> usize {
    stdout(snapctl().args(["dump", "--files"]).arg(img)).lines().filter(|l| l.contains("+ overlay pieces=")).count()
}

fn cat(img: &Path, path: &str) -> Vec<u8> {
    let out = snapctl().arg("cat").arg(path).arg(img).output().unwrap();
    assert!(out.status.success(), "cat {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn patches_land_in_overlays_that_replicate_onward() {
    // Goal: an incremental receive lays changed pieces over the records it already has
    // (overlays) instead of rewriting them; a second patch of the same records merges into
    // their overlays; a patch that would make an overlay too wide rewrites the record; and
    // a pool holding overlays sends them onward, full (WRITE with its overlay) and
    // incremental (PATCH from overlaid records), with exact estimates. Snapshots sharing a
    // base with an overlaid record can be destroyed, and `check` stays clean throughout.
    // Method: src holds a random file of 7 records and 30000 bytes and a 256 KiB text
    // file; @a goes to `mid` in full. Round b: 4 KiB writes in three records of each,
    // and the random file's tail grows by 5000 bytes (two pieces of its last record);
    // round c: another piece of two of those records and of the tail, and eight pieces of
    // the third (nine with its overlay's: too wide). Each is received by `mid`, whose
    // `dump --files` counts its overlays, and whose snapshots read as the source's. Then
    // `mid` sends @b in full and @b -> @c to `far`; `far` reads as the source.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    let mid = fresh_pool(dir.path(), "mid.img", 64 * MIB);
    let far = fresh_pool(dir.path(), "far.img", 64 * MIB);
    let tail = 7 * 128 * KIB;
    put(&src, "random", &noise((tail + 30_000) as usize, 21));
    put(&src, "text", &text(256 * KIB as usize + 1000, 22));
    snapshot(&src, "a");
    recv(&mid, &send(&["@a"], &src));
    assert_eq!(overlays(&mid), 0);

    for record in [0u64, 2, 5] {
        put_at(&src, "random", record * 128 * KIB + 8 * KIB, &noise(4 * KIB as usize, 30 + record));
    }
    put_at(&src, "random", tail + 30_000, &noise(5000, 29));
    put_at(&src, "text", 64 * KIB, b"a line that was not there before\n");
    snapshot(&src, "b");
    let ab = send(&["-i", "@a", "@b"], &src);
    assert!(!dump_kinds(&dump(&ab)).iter().any(|k| k == "WRITE"), "{}", dump(&ab));
    recv(&mid, &ab);
    check(&mid);
    let shown = || stdout(snapctl().args(["dump", "--files"]).arg(&mid));
    assert_eq!(overlays(&mid), 5, "{}", shown());
    assert!(shown().contains("record of 35000 bytes"), "the tail grew inside its overlay: {}", shown());

    for record in [0u64, 2] {
        put_at(&src, "random", record * 128 * KIB + 100 * KIB, &noise(4 * KIB as usize, 40 + record));
    }
    put_at(&src, "random", 5 * 128 * KIB + 64 * KIB, &noise(32 * KIB as usize, 45));
    put_at(&src, "random", tail, &noise(4 * KIB as usize, 47));
    snapshot(&src, "c");
    recv(&mid, &send(&["-i", "@b", "@c"], &src));
    check(&mid);
    assert_eq!(overlays(&mid), 4, "record 5 of random is rewritten whole, the others merge: {}", shown());
    for snap in ["@a", "@b", "@c"] {
        for file in ["random", "text"] {
            let path = format!("{snap}:{file}");
            assert!(cat(&mid, &path) == cat(&src, &path), "{path} differs on mid");
        }
    }

    let full_b = send(&["@b"], &mid);
    assert_eq!(estimated_size(&["@b"], &mid), full_b.len() as u64);
    assert!(dump(&full_b).contains(" overlay=(record="), "a full stream of mid carries its overlays");
    recv(&far, &full_b);
    let inc_c = send(&["-i", "@b", "@c"], &mid);
    assert_eq!(estimated_size(&["-i", "@b", "@c"], &mid), inc_c.len() as u64);
    recv(&far, &inc_c);
    check(&far);
    for snap in ["@b", "@c"] {
        for file in ["random", "text"] {
            let path = format!("{snap}:{file}");
            assert!(cat(&far, &path) == cat(&src, &path), "{path} differs on far");
        }
    }

    for snap in ["@a", "@b"] {
        snapctl().args(["destroy", snap]).arg(&mid).assert().success();
        check(&mid);
    }
    assert!(cat(&mid, "@c:random") == cat(&src, "@c:random"));
}

#[test]
fn intermediates_arrive_as_their_own_snapshots_in_order() {
    // Goal: `snapsend -I @a @d` carries @b, @c and @d, and each is received as its own
    // snapshot, in order, with the sender's guid and content.
    // Method: four snapshots each adding a file; the target holds @a; receive -I @a @d
    // and compare the target's list (names, guids) and every snapshot's export with the
    // source.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    let tgt = fresh_pool(dir.path(), "tgt.img", 64 * MIB);
    for name in ["a", "b", "c", "d"] {
        put(&src, &format!("file-{name}"), &text(5000, name.as_bytes()[0] as u64));
        snapshot(&src, name);
    }
    recv(&tgt, &send(&["@a"], &src));
    let stream = send(&["-I", "@a", "@d"], &src);
    let (_, parts) = frames(&stream);
    assert_eq!(parts.len(), 3, "-I @a @d is three parts");
    let said = recv(&tgt, &stream);
    let received: Vec<&str> = said.lines().map(|l| l.split_whitespace().nth(2).unwrap_or_default()).collect();
    assert_eq!(received, ["@b:", "@c:", "@d:"], "{said}");
    check(&tgt);
    assert_eq!(snapshots(&tgt), snapshots(&src));
    for name in ["a", "b", "c", "d"] {
        let what = format!("@{name}");
        assert_eq!(export_digest(&tgt, &what, dir.path()), export_digest(&src, &what, dir.path()), "{what}");
    }
    snapctl().args(["cat", "@b:file-c"]).arg(&tgt).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    snapctl().args(["cat", "@c:file-c"]).arg(&tgt).assert().success();
}

#[test]
fn estimated_size_is_the_exact_stream_size() {
    // Goal: `snapsend -n -P` states the exact byte length of the stream, for a full, an
    // incremental (-i) and an intermediates (-I) run, part by part.
    // Method: a pool with compressible, incompressible and sparse content over three
    // snapshots; compare the -P size and part lines with the real streams' lengths and
    // part boundaries; -n writes no stream.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    put(&src, "text", &text(300_000, 1));
    put(&src, "noise", &noise(200_000, 2));
    put_at(&src, "sparse", 3 * MIB, b"tail");
    snapshot(&src, "a");
    put_at(&src, "noise", 70_000, &noise(5000, 3));
    put(&src, "more", &text(10_000, 4));
    snapshot(&src, "b");
    snapctl().args(["rm", "text"]).arg(&src).assert().success();
    snapctl().args(["mv", "more", "less"]).arg(&src).assert().success();
    snapshot(&src, "c");

    for args in [&["@a"][..], &["@c"], &["-i", "@a", "@b"], &["-i", "@a", "@c"], &["-I", "@a", "@c"]] {
        let stream = send(args, &src);
        assert_eq!(estimated_size(args, &src), stream.len() as u64, "snapsend {args:?}");
        // Part lines: each part's size is the distance between part starts.
        let text = stdout(snapsend().arg("-n").arg("-P").args(args).arg(&src));
        let (_, mut starts) = frames(&stream);
        starts.push(stream.len());
        let real: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]) as u64).collect();
        let promised: Vec<u64> = text
            .lines()
            .filter(|l| !l.starts_with("size"))
            .map(|l| l.rsplit('\t').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(promised, real, "snapsend {args:?}:\n{text}");
    }
    assert_eq!(
        stdout(snapsend().args(["-n", "-P", "@a"]).arg(&src)),
        format!("full\t@a\t{n}\nsize\t{n}\n", n = send(&["@a"], &src).len())
    );
    let n = send(&["-I", "@a", "@c"], &src).len();
    let text = stdout(snapsend().args(["-n", "-v", "-I", "@a", "@c"]).arg(&src));
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("total ") && last.contains(&format!(" ({n} bytes)")), "{text}");
}

#[test]
fn verify_only_changes_nothing() {
    // Goal: `snaprecv -n TARGET` reads and checks a whole good stream, says it would apply,
    // exits 0 and writes nothing to the target; without a target it only verifies.
    // Method: hash the target image before and after, and receive the stream for real
    // afterwards.
    let pair = Pair::new(64 * MIB);
    let before = image_hash(&pair.tgt);
    let tgt = pair.tgt.to_str().unwrap();
    snaprecv().arg("-n").arg(&pair.tgt).write_stdin(pair.ab.clone()).assert().success().stdout(
        predicate::str::starts_with("snaprecv: part 1/1: ")
            .and(predicate::str::contains("every checksum and the END digest verified"))
            .and(predicate::str::contains(" @b (guid "))
            .and(predicate::str::contains(format!("\n  would apply to {tgt}\n"))),
    );
    assert_eq!(image_hash(&pair.tgt), before, "snaprecv -n wrote to the target");
    assert_eq!(names(&pair.tgt), ["a"]);
    snaprecv()
        .arg("-n")
        .write_stdin(pair.ab.clone())
        .assert()
        .success()
        .stdout(predicate::str::contains("END digest verified").and(predicate::str::contains("would").not()));
    recv(&pair.tgt, &pair.ab);
    assert_eq!(snapshots(&pair.tgt), snapshots(&pair.src));
    check(&pair.tgt);
}

#[test]
fn verify_counts_each_part_as_sent() {
    // Goal: the byte counts snaprecv reports for each part (-n and a real receive) are the
    // part's size as snapsend -P states it and as the file holds it, preamble included.
    // Method: a three-part -I stream; compare the "N bytes" of each `snaprecv -n` part line
    // with the -P part sizes.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    for name in ["a", "b", "c", "d"] {
        put(&src, &format!("f-{name}"), name.as_bytes());
        snapshot(&src, name);
    }
    let stream = send(&["-I", "@a", "@d"], &src);
    let promised: Vec<String> = stdout(snapsend().args(["-n", "-P", "-I", "@a", "@d"]).arg(&src))
        .lines()
        .filter(|l| !l.starts_with("size"))
        .map(|l| format!("{} bytes", l.rsplit('\t').next().unwrap()))
        .collect();
    let verified = stdout(snaprecv().arg("-n").write_stdin(stream));
    let reported: Vec<String> = verified
        .lines()
        .filter(|l| l.starts_with("snaprecv: part "))
        .map(|l| l.split(", ").nth(1).unwrap().split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(reported, promised, "snaprecv -n:\n{verified}");
}

#[test]
fn force_rolls_back_a_changed_target() {
    // Goal: an incremental stream onto a target whose live tree changed since its newest
    // snapshot is refused without -F (exit 7, naming that snapshot, suggesting -F) and
    // changes nothing; with -F the live tree is rolled back and the stream applied, no
    // snapshot is lost, and the target holds @b.
    // Method: receive @a, `snapctl put` on the target, then receive @a -> @b twice.
    let pair = Pair::new(64 * MIB);
    put(&pair.tgt, "local-change", b"made on the target\n");
    let before = image_hash(&pair.tgt);
    snaprecv().arg(&pair.tgt).write_stdin(pair.ab.clone()).assert().code(exit_code::REFUSED).stderr(
        "snaprecv: error: the target's live tree changed since its newest snapshot @a\n\
         hint: add -F to roll the live tree back to @a first (no snapshot is destroyed)\n",
    );
    assert_eq!(image_hash(&pair.tgt), before, "a refused receive wrote to the target");
    snaprecv()
        .arg("-n")
        .arg(&pair.tgt)
        .write_stdin(pair.ab.clone())
        .assert()
        .code(exit_code::REFUSED)
        .stdout(predicate::str::contains("would NOT apply").and(predicate::str::contains("changed since")));
    snaprecv()
        .arg("-n")
        .arg("-F")
        .arg(&pair.tgt)
        .write_stdin(pair.ab.clone())
        .assert()
        .success()
        .stdout(predicate::str::contains("after rolling its live tree back (-F)"));
    assert_eq!(image_hash(&pair.tgt), before, "snaprecv -n -F wrote to the target");

    snaprecv()
        .arg("-F")
        .arg(&pair.tgt)
        .write_stdin(pair.ab.clone())
        .assert()
        .success()
        .stdout(predicate::str::starts_with("snaprecv: received @b after rolling the live tree back: "));
    check(&pair.tgt);
    assert_eq!(snapshots(&pair.tgt), snapshots(&pair.src));
    let scratch = pair.dir.path();
    let want = export_digest(&pair.src, "@b", scratch);
    assert_eq!(export_digest(&pair.tgt, "/", scratch), want);
    assert_eq!(export_digest(&pair.tgt, "@b", scratch), want);
    assert_eq!(export_digest(&pair.tgt, "@a", scratch), export_digest(&pair.src, "@a", scratch));
    snapctl().args(["cat", "local-change"]).arg(&pair.tgt).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
}

// ----------------------------------------------------------------------------- bad input

#[test]
fn not_a_stream() {
    // Goal: random bytes and an empty input are refused as "not a snapfs stream" (exit 8),
    // by a receive, a verify and a dump alike, and the target is not written.
    // Method: hash the target image around each attempt.
    let pair = Pair::new(32 * MIB);
    let before = image_hash(&pair.tgt);
    let random = noise(5000, 99);
    let starts = random[..8].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(", ");
    for args in [&[][..], &["-n"]] {
        // The error line exactly; the hint says the part is not on the target.
        snaprecv().args(args).arg(&pair.tgt).write_stdin(random.clone()).assert().code(exit_code::BAD_STREAM).stderr(
            predicate::str::starts_with(format!(
                "snaprecv: error: bad stream: not a snapfs stream: it starts with [{starts}] instead of \"SNAPSTRM\"\nhint: "
            ))
            .and(predicate::str::contains("is not on the target")),
        );
        snaprecv().args(args).arg(&pair.tgt).write_stdin(Vec::new()).assert().code(exit_code::BAD_STREAM).stderr(
            predicate::str::starts_with("snaprecv: error: bad stream: the input is empty: not a snapfs stream\n"),
        );
    }
    snaprecv()
        .arg("--dump")
        .write_stdin(random)
        .assert()
        .code(exit_code::BAD_STREAM)
        .stderr(predicate::str::contains("not a snapfs stream"));
    snaprecv()
        .arg("--dump")
        .write_stdin(Vec::new())
        .assert()
        .code(exit_code::BAD_STREAM)
        .stderr(predicate::str::contains("input is empty"));
    assert_eq!(image_hash(&pair.tgt), before);
    check(&pair.tgt);
}

#[test]
fn newer_stream_version_is_refused() {
    // Goal: a stream of a newer version is refused with exit 7 and a message naming both
    // versions; nothing is written.
    // Method: set byte 8 (the version) of a real stream to 3.
    let pair = Pair::new(32 * MIB);
    let before = image_hash(&pair.tgt);
    let mut stream = pair.ab.clone();
    stream[8] = 3;
    snaprecv()
        .arg(&pair.tgt)
        .write_stdin(stream.clone())
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::starts_with("snaprecv: error: stream version 3 is newer than this receiver's 2\n"));
    snaprecv()
        .arg("-n")
        .write_stdin(stream)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("version 3 is newer"));
    assert_eq!(image_hash(&pair.tgt), before);
    check(&pair.tgt);
}

#[test]
fn newer_stream_version_hint_speaks_of_the_stream() {
    // Goal: the hint after a refused newer stream tells what to do about the stream.
    // Method: byte 8 of a real stream set to 3; the hint line names snaprecv or the stream,
    // and not a pool.
    let pair = Pair::new(32 * MIB);
    let mut stream = pair.ab.clone();
    stream[8] = 3;
    let out = snaprecv().arg(&pair.tgt).write_stdin(stream).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let hint = stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_else(|| panic!("no hint:\n{stderr}"));
    assert!(hint.contains("newer snaprecv") || hint.contains("stream"), "{stderr}");
    assert!(!hint.contains("pool"), "{stderr}");
}

#[test]
fn truncated_anywhere_is_refused() {
    // Goal: a stream cut at any byte is refused with exit 8 and a message saying it is
    // truncated (an empty input says it is empty), and the target holds what it held.
    // Method: a real incremental stream cut at every byte of the preamble, at and around
    // every frame boundary, header and checksum, at len-1, and at every 31st byte
    // elsewhere (457 cuts). A cut before the first record after BEGIN may not write
    // to the image at all (its size and modification time stay); a later one may leave
    // unreferenced blocks but commits nothing (the snapshot list stays, and at the end the
    // exports of every snapshot and of the live tree, and check).
    let pair = Pair::new(32 * MIB);
    let stream = &pair.ab;
    let before = holdings(&pair.tgt, pair.dir.path());
    let listed = list_json(&pair.tgt);
    let unwritten = stamp(&pair.tgt);
    let (frames, _) = frames(stream);
    let first_record = frames[1].start;
    let mut cuts: Vec<usize> = (0..=PREAMBLE + 1).collect();
    for f in &frames {
        let c = f.checksum_start();
        cuts.extend([
            f.start,
            f.start + 1,
            f.start + 4,
            f.start + 7,
            f.start + 8,
            f.start + 9,
            c - 1,
            c,
            c + 1,
            c + 15,
        ]);
    }
    cuts.extend((0..stream.len()).step_by(31));
    cuts.push(stream.len() - 1);
    cuts.retain(|&c| c < stream.len());
    cuts.sort();
    cuts.dedup();
    // The README's reliability section quotes this count (`--nocapture` shows it).
    println!("truncated_anywhere_is_refused: {} cuts of a {}-byte stream", cuts.len(), stream.len());
    for &cut in &cuts {
        let out = snaprecv().arg(&pair.tgt).write_stdin(stream[..cut].to_vec()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("cut at byte {cut} of {}", stream.len());
        assert_no_panic(&stderr, out.status.code(), &what);
        assert_eq!(out.status.code(), Some(exit_code::BAD_STREAM), "{what}: {stderr}");
        let expected = if cut == 0 {
            "snaprecv: error: bad stream: the input is empty: not a snapfs stream\n".to_string()
        } else {
            format!("snaprecv: error: bad stream: the stream is truncated: it ends at byte {cut} inside record ")
        };
        assert!(stderr.starts_with(&expected), "{what}: {stderr}");
        if cut < first_record {
            assert_eq!(stamp(&pair.tgt), unwritten, "{what}: the target was written");
        } else {
            assert_eq!(list_json(&pair.tgt), listed, "{what}: the target's snapshots changed");
        }
    }

    // The same cuts fail a verify, and a dump after the records it could read.
    for &cut in cuts.iter().step_by(7) {
        snaprecv().arg("-n").write_stdin(stream[..cut].to_vec()).assert().code(exit_code::BAD_STREAM);
        snaprecv().arg("--dump").write_stdin(stream[..cut].to_vec()).assert().code(exit_code::BAD_STREAM);
    }
    check(&pair.tgt);
    assert_eq!(holdings(&pair.tgt, pair.dir.path()), before, "the target changed");
    recv(&pair.tgt, stream);
    check(&pair.tgt);
}

#[test]
fn intermediates_stream_cut_between_parts_is_truncated() {
    // Goal: a -I stream that ends cleanly after a part, before the number of parts its
    // BEGIN records announce, is truncated: exit 8, for a receive and a verify. The parts
    // before the cut are received (each part is its own transaction), nothing after.
    // Method: -I @a @d (three parts) cut after part 1 and after part 2.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    for name in ["a", "b", "c", "d"] {
        put(&src, &format!("f-{name}"), name.as_bytes());
        snapshot(&src, name);
    }
    let stream = send(&["-I", "@a", "@d"], &src);
    let (_, starts) = frames(&stream);
    assert_eq!(starts.len(), 3);
    for (complete, &cut) in starts.iter().enumerate().skip(1) {
        let tgt = fresh_pool(dir.path(), &format!("tgt{complete}.img"), 32 * MIB);
        recv(&tgt, &send(&["@a"], &src));
        snaprecv()
            .arg("-n")
            .write_stdin(stream[..cut].to_vec())
            .assert()
            .code(exit_code::BAD_STREAM)
            .stderr(predicate::str::contains("truncated"));
        snaprecv()
            .arg(&tgt)
            .write_stdin(stream[..cut].to_vec())
            .assert()
            .code(exit_code::BAD_STREAM)
            .stderr(predicate::str::contains("truncated"));
        check(&tgt);
        let want: Vec<&str> = ["a", "b", "c"][..=complete].to_vec();
        assert_eq!(names(&tgt), want, "cut after part {complete}");
    }
}

#[test]
fn any_flipped_bit_is_refused() {
    // Goal: one flipped bit anywhere in a stream is refused, never applied and never a
    // panic: exit 8 for stream damage, 7 where the version field reads as newer.
    // Method: flip every bit of the preamble, and one bit (rotating) of every byte of each
    // frame header and of the END record, of the first, a middle and the last byte of each
    // checksum, of each payload's first and last 8 bytes and of every 29th byte between
    // (866 flips). Damage in the preamble or BEGIN may not write to the image at all
    // (its size and modification time stay); later damage may leave unreferenced blocks
    // but commits nothing (the snapshot list stays, and at the end the exports of every
    // snapshot and of the live tree, and check).
    let pair = Pair::new(32 * MIB);
    let stream = &pair.ab;
    let before = holdings(&pair.tgt, pair.dir.path());
    let listed = list_json(&pair.tgt);
    let unwritten = stamp(&pair.tgt);
    let (frames, _) = frames(stream);
    let first_record = frames[1].start;
    let mut flips: Vec<(usize, u8)> = (0..PREAMBLE).flat_map(|p| (0..8).map(move |b| (p, b))).collect();
    let mut positions = Vec::new();
    for f in &frames {
        let payload = f.start + FRAME_HEADER..f.checksum_start();
        positions.extend(f.start..payload.start);
        if f.kind == 14 {
            positions.extend(payload.start..f.end());
            continue;
        }
        positions.extend([f.checksum_start(), f.checksum_start() + 7, f.end() - 1]);
        if payload.len() <= 16 {
            positions.extend(payload);
        } else {
            positions.extend(payload.start..payload.start + 8);
            positions.extend(payload.end - 8..payload.end);
            positions.extend(payload.clone().step_by(29));
        }
    }
    positions.sort();
    positions.dedup();
    flips.extend(positions.iter().map(|&p| (p, (p % 8) as u8)));
    // The README's reliability section quotes this count (`--nocapture` shows it).
    println!("any_flipped_bit_is_refused: {} flipped bits of a {}-byte stream", flips.len(), stream.len());
    for &(p, bit) in &flips {
        let mut damaged = stream.clone();
        damaged[p] ^= 1 << bit;
        let out = snaprecv().arg(&pair.tgt).write_stdin(damaged).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("bit {bit} of byte {p} of {}", stream.len());
        assert_no_panic(&stderr, out.status.code(), &what);
        let version = u32::from_le_bytes(stream[8..12].try_into().unwrap())
            ^ if (8..12).contains(&p) { 1 << (bit as u32 + 8 * (p as u32 - 8)) } else { 0 };
        if version > 2 {
            assert_eq!(out.status.code(), Some(exit_code::REFUSED), "{what}: {stderr}");
            assert!(stderr.contains(&format!("stream version {version} is newer")), "{what}: {stderr}");
        } else {
            assert_eq!(out.status.code(), Some(exit_code::BAD_STREAM), "{what}: {stderr}");
            assert!(stderr.starts_with("snaprecv: error: bad stream: "), "{what}: {stderr}");
        }
        if p < first_record {
            assert_eq!(stamp(&pair.tgt), unwritten, "{what}: the target was written");
        } else {
            assert_eq!(list_json(&pair.tgt), listed, "{what}: the target's snapshots changed");
        }
    }

    check(&pair.tgt);
    assert_eq!(holdings(&pair.tgt, pair.dir.path()), before, "the target changed");
    recv(&pair.tgt, stream);
    check(&pair.tgt);
}

#[test]
fn replayed_stream_is_refused() {
    // Goal: receiving the same incremental stream twice is refused the second time with
    // exit 3 and a message saying it was received before; nothing is written.
    // Method: receive @a -> @b, hash the target, receive it again (and verify it again).
    let pair = Pair::new(32 * MIB);
    recv(&pair.tgt, &pair.ab);
    let before = image_hash(&pair.tgt);
    let guid = snapshots(&pair.src)[1].1.clone();
    snaprecv().arg(&pair.tgt).write_stdin(pair.ab.clone()).assert().code(exit_code::NOT_FOUND_OR_EXISTS).stderr(
        predicate::str::starts_with("snaprecv: error: ")
            .and(predicate::str::contains(format!("@b (guid {guid}")))
            .and(predicate::str::contains("this stream was received before")),
    );
    snaprecv()
        .arg("-n")
        .arg(&pair.tgt)
        .write_stdin(pair.ab.clone())
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stdout(predicate::str::contains("would NOT apply").and(predicate::str::contains("received before")));
    assert_eq!(image_hash(&pair.tgt), before);
    check(&pair.tgt);
    // The full stream of a snapshot the target already has is a replay too.
    snaprecv()
        .arg(&pair.tgt)
        .write_stdin(send(&["@a"], &pair.src))
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stderr(predicate::str::contains("received before"));
    assert_eq!(image_hash(&pair.tgt), before);
}

#[test]
fn replayed_stream_message_reads_cleanly() {
    // Goal: the refusal of a replayed stream is one plain sentence: " already exists" is
    // not tacked onto a sentence that ends "received before" (as it once was:
    // "... this stream was received before already exists").
    // Method: receive @a -> @b twice; read the error line.
    let pair = Pair::new(32 * MIB);
    recv(&pair.tgt, &pair.ab);
    let out = snaprecv().arg(&pair.tgt).write_stdin(pair.ab.clone()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit_code::NOT_FOUND_OR_EXISTS), "{stderr}");
    let line = stderr.lines().next().unwrap_or_default();
    assert!(line.contains("received before"), "{stderr}");
    assert!(!line.ends_with("received before already exists"), "{stderr}");
}

#[test]
fn wrong_base_is_refused() {
    // Goal: an incremental stream whose base is not the target's newest snapshot is refused
    // with exit 7, naming the stream's base and the target's newest snapshot, and a hint to
    // send from that snapshot; nothing is written.
    // Method: (1) @b -> @c onto a target whose newest is @a; (2) @a -> @c onto a target
    // holding @a and @b (an older base); (3) @a -> @b of another pool, whose @a the target
    // never had (same name, other guid).
    let pair = Pair::new(32 * MIB);
    let src = &pair.src;
    put(src, "c-file", b"c\n");
    snapshot(src, "c");
    let before = image_hash(&pair.tgt);
    let bc = send(&["-i", "@b", "@c"], src);
    snaprecv().arg(&pair.tgt).write_stdin(bc).assert().code(exit_code::REFUSED).stderr(format!(
        "snaprecv: error: the target does not have the stream's base @b (guid {}); its newest snapshot is @a\n\
         hint: if the source has @a (guid {}), send incrementally from it: snapsend -i @a @c ...; if not, the pools \
         share no snapshot from there: receive a full stream into a freshly formatted device\n",
        snapshots(src)[1].1,
        snapshots(&pair.tgt)[0].1
    ));
    assert_eq!(image_hash(&pair.tgt), before);

    recv(&pair.tgt, &pair.ab);
    let before = image_hash(&pair.tgt);
    snaprecv().arg(&pair.tgt).write_stdin(send(&["-i", "@a", "@c"], src)).assert().code(exit_code::REFUSED).stderr(
        format!(
            "snaprecv: error: the stream's base @a is the target's @a, not its newest snapshot @b\n\
         hint: if the source has @b (guid {}), send incrementally from it: snapsend -i @b @c ...; or destroy the \
         target's snapshots after @a (snapctl destroy) to receive this stream\n",
            snapshots(&pair.tgt)[1].1
        ),
    );
    assert_eq!(image_hash(&pair.tgt), before);

    let other = fresh_pool(pair.dir.path(), "other.img", 32 * MIB);
    let target_a = fresh_pool(pair.dir.path(), "target-a.img", 32 * MIB);
    put(&other, "x", b"x");
    snapshot(&other, "a");
    put(&other, "y", b"y");
    snapshot(&other, "b");
    recv(&target_a, &send(&["@a"], src));
    let before = image_hash(&target_a);
    let foreign_a = snapshots(&other)[0].1.clone();
    // The same name as the target's newest: the hint must not be the command that failed.
    let own_a = snapshots(&target_a)[0].1.clone();
    snaprecv().arg(&target_a).write_stdin(send(&["-i", "@a", "@b"], &other)).assert().code(exit_code::REFUSED).stderr(
        format!(
            "snaprecv: error: the target's @a is not the stream's base @a: it has the same name but another guid \
         ({own_a} on the target, {foreign_a} in the stream), so the pools' histories differ\n\
         hint: send incrementally from a snapshot both pools have (the same guid: `snapctl list --json` shows them), \
         or receive a full stream into a freshly formatted device\n"
        ),
    );
    assert_eq!(image_hash(&target_a), before);
    check(&target_a);
    check(&pair.tgt);
}

#[test]
fn bad_arguments() {
    // Goal: misuse of snapsend and snaprecv is exit 2 with a message saying what is wrong,
    // before any stream is written or read.
    // Method: a base not older than the snapshot, -i with -I, a snapshot without '@',
    // --dump with a device, a receive without a device.
    let pair = Pair::new(32 * MIB);
    snapsend().args(["-i", "@b", "@a"]).arg(&pair.src).assert().code(exit_code::INVALID).stdout("").stderr(
        predicate::str::contains("is not older than @a").and(predicate::str::contains("give the older snapshot first")),
    );
    snapsend().args(["-i", "@b", "@b"]).arg(&pair.src).assert().code(exit_code::INVALID).stdout("");
    snapsend().args(["-i", "@a", "-I", "@a", "@b"]).arg(&pair.src).assert().code(exit_code::INVALID).stdout("");
    snapsend()
        .args(["b"])
        .arg(&pair.src)
        .assert()
        .code(exit_code::INVALID)
        .stdout("")
        .stderr(predicate::str::contains("snapshots are written @NAME"));
    snaprecv()
        .arg("--dump")
        .arg(&pair.tgt)
        .write_stdin(pair.ab.clone())
        .assert()
        .code(exit_code::INVALID)
        .stderr("snaprecv: error: --dump reads a stream only; give no device\n");
    snaprecv()
        .write_stdin(pair.ab.clone())
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("give the DEVICE"));
    assert_eq!(names(&pair.tgt), ["a"]);
}

#[test]
fn base_the_sender_no_longer_has() {
    // Goal: `snapsend -i @gone` exits 3 with a message naming the base and how to see the
    // snapshots the source has, and writes no stream.
    // Method: destroy @a on the source, then ask for @a -> @b.
    let pair = Pair::new(32 * MIB);
    snapctl().args(["destroy", "@a"]).arg(&pair.src).assert().success();
    snapsend().args(["-i", "@a", "@b"]).arg(&pair.src).assert().code(exit_code::NOT_FOUND_OR_EXISTS).stdout("").stderr(
        "snapsend: error: base snapshot @a not found\nhint: `snapctl list DEVICE` shows the snapshots the pool has\n",
    );
    snapsend()
        .args(["-I", "@a", "@b"])
        .arg(&pair.src)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stdout("")
        .stderr(predicate::str::contains("base snapshot @a not found"));
    snapsend()
        .args(["-n", "-P", "-i", "@a", "@b"])
        .arg(&pair.src)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stdout("");
    snapsend().args(["@gone"]).arg(&pair.src).assert().code(exit_code::NOT_FOUND_OR_EXISTS).stdout("").stderr(
        "snapsend: error: snapshot @gone not found\nhint: `snapctl list DEVICE` shows the snapshots the pool has\n",
    );
}

#[test]
fn full_target_device() {
    // Goal: a full stream bigger than the target's free space fails with exit 5 and the
    // device-full message, and commits nothing: the target has no snapshot, an empty
    // live tree, and passes check.
    // Method: 24 MiB of incompressible data at @a onto a 16 MiB target; compare the
    // target's list and exports before and after (a failed receive may have written
    // blocks it never referenced).
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 128 * MIB);
    let tgt = fresh_pool(dir.path(), "tgt.img", 16 * MIB);
    put(&src, "noise", &noise(24 * MIB as usize, 5));
    snapshot(&src, "a");
    let stream = send(&["@a"], &src);
    let before = holdings(&tgt, dir.path());
    snaprecv().arg(&tgt).write_stdin(stream).assert().code(exit_code::NO_SPACE).stderr(
        predicate::str::starts_with("snaprecv: error: device full: ")
            .and(predicate::str::contains("nothing was changed"))
            .and(predicate::str::contains("panicked").not()),
    );
    check(&tgt);
    assert_eq!(holdings(&tgt, dir.path()), before);
    assert_eq!(stdout(snapctl().arg("ls").arg(&tgt)), "");
    // The target still works: a stream that fits is received.
    snapctl().args(["destroy", "@a"]).arg(&src).assert().success();
    put(&src, "small", b"fits\n");
    snapctl().args(["rm", "noise"]).arg(&src).assert().success();
    snapshot(&src, "fits");
    recv(&tgt, &send(&["@fits"], &src));
    check(&tgt);
}

#[test]
fn terminal_stdout_is_refused() {
    // Goal: snapsend refuses to write a binary stream to a terminal (exit 7), saying so
    // and how to pipe it; -n -v, which writes text only, still works on a terminal.
    // Method: run snapsend under a pseudo-terminal with util-linux `script -qec`.
    if !require_commands("terminal_stdout_is_refused", &["script"]) {
        return;
    }
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 32 * MIB);
    put(&src, "f", b"data\n");
    snapshot(&src, "a");
    let bin = snapsend().get_program().to_str().unwrap().to_string();
    let run = |args: &str| {
        std::process::Command::new("script")
            .arg("-qec")
            .arg(format!("'{bin}' {args} '{}'", src.display()))
            .arg("/dev/null")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("@a");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit_code::REFUSED), "{text}");
    assert!(
        text.contains("snapsend: error: standard output is a terminal: refusing to write a binary stream to it"),
        "{text}"
    );
    assert!(text.contains("hint: pipe it into snaprecv"), "{text}");
    assert!(!text.contains("SNAPSTRM"), "the stream reached the terminal: {text}");
    let out = run("-n -v @a");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit_code::SUCCESS), "{text}");
    assert!(text.contains("would send full @a"), "{text}");
}

#[test]
fn receiver_closing_early_fails_the_sender() {
    // Goal: when the receiving side closes the pipe mid-stream, snapsend exits 1 with a
    // message that the receiving side closed it and the stream is incomplete (not 0, as
    // `| head` would be for text).
    // Method: spawn snapsend of a 4 MiB stream with a piped stdout, read 100 bytes, drop
    // the read end.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    put(&src, "noise", &noise(4 * MIB as usize, 6));
    snapshot(&src, "a");
    let mut child = std::process::Command::new(snapsend().get_program())
        .arg("@a")
        .arg(&src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let mut head = [0u8; 100];
    pipe.read_exact(&mut head).unwrap();
    assert_eq!(&head[..8], b"SNAPSTRM");
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit_code::IO_ERROR), "{stderr}");
    assert!(stderr.starts_with("snapsend: error: the receiving side closed the pipe after "), "{stderr}");
    assert!(stderr.contains("bytes; the stream is incomplete"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sender_dying_mid_stream_changes_nothing() {
    // Goal: when the sender dies mid-stream, snaprecv sees a truncated stream: exit 8,
    // message says truncated, and the target is as it was.
    // Method: spawn snapsend of a 4 MiB stream and snaprecv; copy 1 MiB from one to the
    // other, kill snapsend, close snaprecv's input; compare the target's snapshot list and
    // exports around it (a failed receive may leave unreferenced blocks), and check it.
    let dir = TempDir::new().unwrap();
    let src = fresh_pool(dir.path(), "src.img", 64 * MIB);
    let tgt = fresh_pool(dir.path(), "tgt.img", 64 * MIB);
    put(&src, "noise", &noise(4 * MIB as usize, 8));
    snapshot(&src, "a");
    let before = holdings(&tgt, dir.path());
    let mut sender = std::process::Command::new(snapsend().get_program())
        .arg("@a")
        .arg(&src)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut receiver = std::process::Command::new(snaprecv().get_program())
        .arg(&tgt)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut from = sender.stdout.take().unwrap();
    let mut to = receiver.stdin.take().unwrap();
    let mut chunk = vec![0u8; MIB as usize];
    from.read_exact(&mut chunk).unwrap();
    to.write_all(&chunk).unwrap();
    sender.kill().unwrap();
    sender.wait().unwrap();
    drop(from);
    drop(to);
    let out = receiver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit_code::BAD_STREAM), "{stderr}");
    assert!(
        stderr.starts_with(&format!("snaprecv: error: bad stream: the stream is truncated: it ends at byte {MIB} ")),
        "{stderr}"
    );
    check(&tgt);
    assert_eq!(holdings(&tgt, dir.path()), before, "the target changed");
    assert_eq!(names(&tgt), Vec::<String>::new());
}

#[test]
fn full_stream_onto_a_target_with_snapshots_is_refused() {
    // Goal: a full stream onto a target that already has snapshots is refused with exit 7,
    // naming the newest snapshot and suggesting an incremental send; nothing is written.
    // Method: the target holds @a; send @b in full. Also: a full stream onto a target
    // without snapshots but with files in its live tree is refused without -F.
    let pair = Pair::new(32 * MIB);
    let before = image_hash(&pair.tgt);
    snaprecv().arg(&pair.tgt).write_stdin(send(&["@b"], &pair.src)).assert().code(exit_code::REFUSED).stderr(format!(
        "snaprecv: error: the target already has snapshots (newest @a); a full stream needs an empty target\n\
             hint: if the source has @a (guid {}), send incrementally from it (snapsend -i @a @b ...); otherwise \
             receive into a freshly formatted device\n",
        snapshots(&pair.tgt)[0].1
    ));
    snaprecv().arg("-F").arg(&pair.tgt).write_stdin(send(&["@b"], &pair.src)).assert().code(exit_code::REFUSED);
    assert_eq!(image_hash(&pair.tgt), before);
    check(&pair.tgt);

    let busy = fresh_pool(pair.dir.path(), "busy.img", 32 * MIB);
    put(&busy, "precious", b"mine\n");
    let before = image_hash(&busy);
    snaprecv()
        .arg(&busy)
        .write_stdin(send(&["@a"], &pair.src))
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("live tree holds files").and(predicate::str::contains("-F")));
    assert_eq!(image_hash(&busy), before);
    snapctl().args(["cat", "precious"]).arg(&busy).assert().stdout("mine\n");
}
