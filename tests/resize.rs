//! Devices that change size under a pool (issue 12, class 4): a grown device whose first
//! label is then damaged, `snapctl expand`, a shrunk device (its tail and end label gone).
//!
//! Method: real binaries on sparse image files resized with `set_len` (what `truncate`
//! does), labels damaged by writing over them; one test on a loop device resized with
//! `losetup -c`. The pools are small (32 MiB) except where the search's reach is tested.

mod common;
use snapfs::cli::exit_code;

use common::*;
use predicates::prelude::*;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const POOL_BYTES: u64 = 32 * MIB;
/// The advice that destroys a pool that is still there.
const FORMAT_HINT: &str = "format it first";

fn resize(img: &Path, bytes: u64) {
    OpenOptions::new().write(true).open(img).unwrap().set_len(bytes).unwrap();
}

fn write_at(img: &Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new().write(true).open(img).unwrap().write_all_at(bytes, offset).unwrap();
}

/// The ways a first label gets damaged: wiped, one byte flipped, the whole region wiped.
fn damage_first_label(img: &Path, how: usize) {
    match how {
        0 => write_at(img, 0, &[0u8; 4096]),
        1 => write_at(img, 100, &[0x5a]),
        _ => write_at(img, 0, &vec![0u8; 256 << 10]),
    }
}

fn host_file(dir: &Path, name: &str, bytes: usize, seed: u8) -> PathBuf {
    let path = dir.join(name);
    let data: Vec<u8> = (0..bytes).map(|i| ((i * 31 + i / 4093) as u8) ^ seed).collect();
    std::fs::write(&path, data).unwrap();
    path
}

/// A pool of `bytes` holding `small` (20 KiB), `big` (3 MiB) and a snapshot @one.
fn filled_pool(dir: &Path, bytes: u64) -> (PathBuf, PathBuf, PathBuf) {
    let img = image(dir, "pool.img", bytes);
    snapfmt().arg(&img).assert().success();
    let small = host_file(dir, "small", 20 << 10, 1);
    let big = host_file(dir, "big", 3 << 20, 2);
    snapctl().arg("put").arg(&small).arg("small").arg(&img).assert().success();
    snapctl().arg("put").arg(&big).arg("big").arg(&img).assert().success();
    snapctl().args(["snapshot", "@one"]).arg(&img).assert().success();
    (img, small, big)
}

fn cat(img: &Path, path: &str) -> std::process::Output {
    snapctl().args(["cat", path]).arg(img).output().unwrap()
}

fn assert_no_format_hint(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(FORMAT_HINT), "advice to format a device that holds a pool:\n{stderr}");
    assert_ne!(out.status.code(), Some(101), "panic:\n{stderr}");
}

fn label_lines(img: &Path) -> String {
    let dump = stdout(snapctl().arg("dump").arg(img));
    dump.lines().filter(|l| l.starts_with("label ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_grown_device_whose_first_label_is_damaged_opens_from_where_the_pool_ends() {
    // Goal: the end label is found where the pool ends, not where the device ends now,
    // for small and large growths and each kind of damage; never "format it first".
    // Method: grow by one block, by 5 MiB and by 300 MiB (inside the searched window),
    // damage the first label, read the files, then let scrub rewrite the label.
    for (grow, how) in [(4096u64, 0usize), (5 * MIB, 1), (300 * MIB, 2), (7 * MIB + 4096, 0)] {
        let dir = TempDir::new().unwrap();
        let (img, small, big) = filled_pool(dir.path(), POOL_BYTES);
        resize(&img, POOL_BYTES + grow);
        damage_first_label(&img, how);
        for (path, host) in [("small", &small), ("@one:big", &big)] {
            let out = cat(&img, path);
            assert_no_format_hint(&out);
            assert!(out.status.success(), "grow {grow}: cat {path}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.stdout, std::fs::read(host).unwrap(), "grow {grow}: {path}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("label at the start of the device is unusable"), "{stderr}");
            assert!(stderr.contains(&format!("{POOL_BYTES} bytes into the device")), "{stderr}");
        }
        // check names the damage; scrub rewrites the first label from the end one.
        snapctl().arg("check").arg(&img).assert().code(exit_code::CORRUPT).stdout(predicate::str::contains("label 0"));
        snapctl().arg("scrub").arg(&img).assert().success().stdout(predicate::str::contains("label 0"));
        check(&img);
        let out = cat(&img, "small");
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn a_pool_grown_from_a_whole_gib_is_found_beyond_the_scanned_window() {
    // Goal: a growth larger than the scanned window (1 GiB) from a whole-GiB size, as a
    // cloud volume grows, is still found. Method: 1 GiB pool grown to 3 GiB (sparse).
    let dir = TempDir::new().unwrap();
    let (img, small, _) = filled_pool(dir.path(), 1 << 30);
    resize(&img, 3 << 30);
    damage_first_label(&img, 0);
    let out = cat(&img, "small");
    assert_no_format_hint(&out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(&small).unwrap());
}

#[test]
fn a_device_with_no_pool_is_still_told_to_format() {
    // Goal: the hint to format stays for devices that hold no pool at all, whatever size.
    for bytes in [8 * MIB, POOL_BYTES, 200 * MIB] {
        let dir = TempDir::new().unwrap();
        let img = image(dir.path(), "blank.img", bytes);
        snapctl()
            .arg("ls")
            .arg(&img)
            .assert()
            .code(exit_code::REFUSED)
            .stderr(predicate::str::contains("holds no snapfs pool").and(predicate::str::contains(FORMAT_HINT)));
    }
}

#[test]
fn damaged_labels_with_no_intact_copy_never_say_format() {
    // Goal: both labels damaged (first wiped or flipped, end wiped): the device still
    // holds a pool, so the error says the labels are damaged and not to format, and
    // snapfmt refuses it without --force. Also for a grown device.
    for (grow, how) in [(0u64, 0usize), (0, 1), (9 * MIB, 0)] {
        let dir = TempDir::new().unwrap();
        let (img, _, _) = filled_pool(dir.path(), POOL_BYTES);
        write_at(&img, POOL_BYTES - (256 << 10), &[0u8; 4096]);
        resize(&img, POOL_BYTES + grow);
        damage_first_label(&img, how);
        let out = snapctl().arg("ls").arg(&img).output().unwrap();
        assert_no_format_hint(&out);
        assert_eq!(out.status.code(), Some(exit_code::CORRUPT), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("label at its start is damaged") && stderr.contains("do not format"), "{stderr}");
        snapfmt()
            .arg(&img)
            .assert()
            .code(exit_code::REFUSED)
            .stderr(predicate::str::contains("already holds a snapfs pool"));
    }
}

#[test]
fn snapfmt_refuses_a_grown_device_whose_first_label_is_damaged() {
    // Goal: snapfmt's "is it in use" probe finds the end label where the pool ends.
    let dir = TempDir::new().unwrap();
    let (img, _, _) = filled_pool(dir.path(), POOL_BYTES);
    resize(&img, POOL_BYTES + 20 * MIB);
    write_at(&img, 0, &vec![0u8; 256 << 10]); // label and ring: no trace at the start
    snapfmt()
        .arg(&img)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("already holds a snapfs pool"));
}

#[test]
fn expand_grows_the_pool_into_the_new_space() {
    // Goal: after expand the pool uses the new space (a file larger than the old pool
    // fits), checks clean, keeps its data, has both labels at the new places; a second
    // expand does nothing; a damaged first label then opens from the new end.
    let dir = TempDir::new().unwrap();
    let (img, small, big) = filled_pool(dir.path(), POOL_BYTES);
    let huge = host_file(dir.path(), "huge", 40 << 20, 3);
    snapctl().arg("put").arg(&huge).arg("huge").arg(&img).assert().code(exit_code::NO_SPACE);
    let new_bytes = POOL_BYTES + 64 * MIB + 4096 + 100; // not a whole block: rounded down
    resize(&img, new_bytes);
    snapctl().arg("status").arg(&img).assert().success().stdout(predicate::str::contains(format!(
        "the device has grown by {} bytes",
        new_bytes / 4096 * 4096 - POOL_BYTES
    )));
    let before = label_lines(&img);
    assert!(before.contains(&format!("device_bytes={POOL_BYTES}")), "{before}");
    snapctl().arg("expand").arg(&img).assert().success().stdout(predicate::str::contains(format!(
        "from {POOL_BYTES} bytes (32.0 MiB) to {} bytes",
        new_bytes / 4096 * 4096
    )));
    let after = label_lines(&img);
    let end_block = new_bytes / 4096 - 64;
    assert!(after.contains(&format!("label 1 at block {end_block}")), "{after}");
    assert_eq!(after.matches(&format!("device_bytes={}", new_bytes / 4096 * 4096)).count(), 2, "{after}");
    check(&img);
    snapctl().arg("put").arg(&huge).arg("huge").arg(&img).assert().success();
    check(&img);
    for (path, host) in [("small", &small), ("@one:big", &big), ("huge", &huge)] {
        assert_eq!(cat(&img, path).stdout, std::fs::read(host).unwrap(), "{path}");
    }
    snapctl().arg("expand").arg(&img).assert().success().stdout(predicate::str::contains("nothing to expand"));
    assert_eq!(label_lines(&img), after);
    snapctl().arg("status").arg(&img).assert().success().stdout(predicate::str::contains("grown").not());
    // The old end label no longer looks like one: only the new end is found.
    damage_first_label(&img, 0);
    let out = cat(&img, "huge");
    assert_no_format_hint(&out);
    assert_eq!(out.stdout, std::fs::read(&huge).unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opened from the copy at its end"));
    // A damaged first label with no expand in flight (damage): expand again rewrites it.
    snapctl()
        .arg("expand")
        .arg(&img)
        .assert()
        .success()
        .stdout(predicate::str::contains("rewrote the damaged label at its start"));
    check(&img);
}

/// A first label torn from the old one and the new one.
type Tear = fn(&[u8], &[u8]) -> Vec<u8>;

fn read_at(img: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open(img).unwrap().read_exact_at(&mut bytes, offset).unwrap();
    bytes
}

#[test]
fn an_expand_cut_short_while_it_rewrote_the_first_label_is_not_damage() {
    // Goal: what a crash during expand's second step leaves (the first label torn, the new
    // end label written, the old end label not yet zeroed) opens at the new size with no
    // warning and checks clean; the next command that writes finishes the expand, and the
    // new space is used. The same torn label with no old end label is damage: warned.
    // Method: expand, then put back the old end label and tear the first label as a
    // power cut can (old sectors with new ones, a sector of garbage, all zeros).
    let torn: [(&str, Tear); 4] = [
        ("first sector old", |old, new| [&old[..512], &new[512..]].concat()),
        ("last sector old", |old, new| [&new[..3584], &old[3584..]].concat()),
        ("a sector of garbage", |_, new| [&new[..1024], &[0xA5; 512][..], &new[1536..]].concat()),
        ("zeros", |_, _| vec![0u8; 4096]),
    ];
    let grown = POOL_BYTES + 24 * MIB;
    let old_end = (POOL_BYTES / 4096 - 64) * 4096;
    for (name, tear) in torn {
        let dir = TempDir::new().unwrap();
        let (img, small, big) = filled_pool(dir.path(), POOL_BYTES);
        let (old_first, old_end_label) = (read_at(&img, 0, 4096), read_at(&img, old_end, 4096));
        resize(&img, grown);
        snapctl().arg("expand").arg(&img).assert().success();
        let new_first = read_at(&img, 0, 4096);
        write_at(&img, 0, &tear(&old_first, &new_first));
        write_at(&img, old_end, &old_end_label);
        for (path, host) in [("small", &small), ("@one:big", &big)] {
            let out = cat(&img, path);
            assert_eq!(out.stdout, std::fs::read(host).unwrap(), "{name}: {path}");
            assert!(out.stderr.is_empty(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        check(&img);
        let huge = host_file(dir.path(), "huge", 30 << 20, 3); // more than the old pool holds
        snapctl()
            .arg("put")
            .arg(&huge)
            .arg("huge")
            .arg(&img)
            .assert()
            .success()
            .stderr(predicate::str::contains("an earlier expand was cut short; finished it"));
        assert_eq!(read_at(&img, 0, 4096), new_first, "{name}: the first label rewritten");
        assert_eq!(label_lines(&img).matches(&format!("device_bytes={grown}")).count(), 2, "{name}");
        check(&img);
        let out = cat(&img, "huge");
        assert_eq!(out.stdout, std::fs::read(&huge).unwrap(), "{name}");
        assert!(out.stderr.is_empty(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        // The control: the same tear once the old end label is gone is damage.
        write_at(&img, 0, &tear(&old_first, &new_first));
        let out = cat(&img, "small");
        assert!(String::from_utf8_lossy(&out.stderr).contains("label at the start of the device is unusable"));
        snapctl().arg("check").arg(&img).assert().code(exit_code::CORRUPT).stdout(predicate::str::contains("label 0"));
    }
}

#[test]
fn expand_on_a_device_that_did_not_grow_or_shrank() {
    // Goal: nothing to do is said and is exit 0; growth of less than a block is nothing;
    // a shrunk device is refused with the way back.
    let dir = TempDir::new().unwrap();
    let (img, _, _) = filled_pool(dir.path(), POOL_BYTES);
    snapctl().arg("expand").arg(&img).assert().success().stdout(predicate::str::contains("nothing to expand"));
    resize(&img, POOL_BYTES + 4095);
    snapctl().arg("expand").arg(&img).assert().success().stdout(predicate::str::contains("nothing to expand"));
    resize(&img, POOL_BYTES - MIB);
    snapctl().arg("expand").arg(&img).assert().code(exit_code::REFUSED).stderr(
        predicate::str::contains("refusing to write")
            .and(predicate::str::contains(format!("truncate -s {POOL_BYTES}"))),
    );
}

/// The part of the class-8 message: exact figures that differ where the sizes differ.
fn shrunk_message(device: u64) -> String {
    format!("is {device} bytes")
}

#[test]
fn a_shrunk_device_opens_read_only_and_refuses_writes_with_the_way_back() {
    // Goal: for shrinks of 1 byte, one block, less than a label region, and a few MiB,
    // reads work (ls, cat, export byte-identical, list, status, snapsend), check reports
    // the missing end label, writes are refused with the recovery hint, never a panic
    // or "format it first"; the sizes are exact bytes.
    for cut in [1u64, 4096, 100 << 10, 3 * MIB] {
        let dir = TempDir::new().unwrap();
        let (img, small, big) = filled_pool(dir.path(), POOL_BYTES);
        let device = POOL_BYTES - cut;
        resize(&img, device);
        let out = cat(&img, "@one:big");
        assert_no_format_hint(&out);
        assert!(out.status.success(), "cut {cut}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, std::fs::read(&big).unwrap());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&shrunk_message(device)) && stderr.contains("opened read-only"), "{stderr}");
        assert!(stderr.contains(&format!("made on {POOL_BYTES} bytes")), "{stderr}");
        let exported = dir.path().join("out");
        snapctl().args(["export", "/"]).arg(&exported).arg(&img).assert().success();
        assert_eq!(std::fs::read(exported.join("small")).unwrap(), std::fs::read(&small).unwrap());
        assert_eq!(std::fs::read(exported.join("big")).unwrap(), std::fs::read(&big).unwrap());
        for args in [&["ls", "-l"][..], &["list"], &["status"], &["history"]] {
            snapctl().args(args).arg(&img).assert().success();
        }
        let stream = snapsend().arg("@one").arg(&img).output().unwrap();
        assert!(stream.status.success() && !stream.stdout.is_empty(), "{}", String::from_utf8_lossy(&stream.stderr));
        snapctl().arg("check").arg(&img).assert().code(exit_code::CORRUPT).stdout(predicate::str::contains(format!(
            "the device is {device} bytes but the pool was made on {POOL_BYTES} bytes"
        )));
        let writes: [&[&str]; 6] = [
            &["mkdir", "d"],
            &["snapshot", "@two"],
            &["destroy", "@one"],
            &["history", "--prune"],
            &["scrub"],
            &["expand"],
        ];
        for args in writes {
            let out = snapctl().args(args).arg(&img).output().unwrap();
            assert_no_format_hint(&out);
            assert_eq!(
                out.status.code(),
                Some(exit_code::REFUSED),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("refusing to write"), "{args:?}: {stderr}");
            assert!(stderr.contains(&format!("truncate -s {POOL_BYTES}")), "{stderr}");
        }
        snapctl().arg("put").arg(&small).arg("again").arg(&img).assert().code(exit_code::REFUSED);
        snaprecv().arg(&img).write_stdin(stream.stdout).assert().code(exit_code::REFUSED);
    }
}

#[test]
fn a_shrunk_device_with_a_damaged_first_label_opens_from_the_surviving_end_label() {
    // Goal: cut by less than a label region, the end label is still there: with the
    // first one damaged, the pool still opens (read-only) from it.
    let dir = TempDir::new().unwrap();
    let (img, small, _) = filled_pool(dir.path(), POOL_BYTES);
    resize(&img, POOL_BYTES - (200 << 10));
    damage_first_label(&img, 0);
    let out = cat(&img, "small");
    assert_no_format_hint(&out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(&small).unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opened read-only"));
}

#[test]
fn a_block_in_the_missing_part_is_a_clear_error() {
    // Goal: reading what lay in the cut-off tail fails with exit 6 naming the missing
    // part and the way back, not a panic, a bare I/O error or an older commit shown as
    // the pool. Method: a file that fills most of the pool pushes the metadata written
    // after it (first fit from the middle) past its end, into the last 7 MiB; cut those.
    let dir = TempDir::new().unwrap();
    let img = image(dir.path(), "pool.img", POOL_BYTES);
    snapfmt().arg(&img).assert().success();
    let fill = host_file(dir.path(), "fill", 26 << 20, 4);
    snapctl().arg("put").arg(&fill).arg("fill").arg(&img).assert().success();
    resize(&img, POOL_BYTES - 7 * MIB);
    let out = cat(&img, "fill");
    assert_no_format_hint(&out);
    assert_eq!(out.status.code(), Some(exit_code::CORRUPT), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lies in the missing part") && stderr.contains("truncate -s"), "{stderr}");
    // The newest commit's root lies in the tail: no older commit is shown instead.
    assert!(!stderr.contains("opened txg"), "{stderr}");
    for args in [&["check"][..], &["ls"], &["list"]] {
        let out = snapctl().args(args).arg(&img).output().unwrap();
        assert_no_format_hint(&out);
        assert_eq!(out.status.code(), Some(exit_code::CORRUPT), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("lies in the missing part"), "{args:?}: {text}");
    }
}

#[test]
fn a_device_shrunk_then_grown_back_works_again() {
    // Goal: the recovery the messages give works: grow back to the pool's size, scrub
    // rewrites the end label, then the pool checks clean and takes writes.
    for cut in [4096u64, 100 << 10, 2 * MIB] {
        let dir = TempDir::new().unwrap();
        let (img, small, big) = filled_pool(dir.path(), POOL_BYTES);
        resize(&img, POOL_BYTES - cut);
        snapctl().args(["mkdir", "d"]).arg(&img).assert().code(exit_code::REFUSED);
        resize(&img, POOL_BYTES);
        // A cut of a label region or more took the end label: scrub rewrites it.
        let rewritten = if cut >= 256 << 10 { "label 1 is missing: rewritten" } else { "scrub clean" };
        snapctl().arg("scrub").arg(&img).assert().success().stdout(predicate::str::contains(rewritten));
        check(&img);
        snapctl().arg("put").arg(&small).arg("again").arg(&img).assert().success();
        assert_eq!(cat(&img, "@one:big").stdout, std::fs::read(&big).unwrap());
        check(&img);
    }
}

struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn a_loop_device_resized_with_losetup_c_expands() {
    // Goal: a block device that grows under the pool (its size from the ioctl) keeps its
    // pool findable and is expanded, as a cloud volume would be. Method: losetup on an
    // image, grow the image, `losetup -c` to make the kernel see the new size, damage the
    // first label, read, scrub, expand, check.
    if !require_root("a_loop_device_resized_with_losetup_c_expands") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let img = image(dir.path(), "disk.img", POOL_BYTES);
    let out = std::process::Command::new("losetup").args(["--show", "-f"]).arg(&img).output().unwrap();
    assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
    let dev = Loop(String::from_utf8(out.stdout).unwrap().trim().to_string());
    snapfmt().arg(&dev.0).assert().success();
    let small = host_file(dir.path(), "small", 20 << 10, 5);
    snapctl().arg("put").arg(&small).arg("small").arg(&dev.0).assert().success();
    resize(&img, 3 * POOL_BYTES);
    let set_capacity = std::process::Command::new("losetup").args(["-c", &dev.0]).status().unwrap();
    assert!(set_capacity.success());
    // Before expand, a damaged first label is found where the pool ends, by reading the
    // block device (no holes to skip); scrub rewrites it.
    write_at(Path::new(&dev.0), 0, &[0u8; 4096]);
    let out = cat(Path::new(&dev.0), "small");
    assert_no_format_hint(&out);
    assert_eq!(out.stdout, std::fs::read(&small).unwrap(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{POOL_BYTES} bytes into the device")));
    snapctl().arg("scrub").arg(&dev.0).assert().success();
    snapctl()
        .arg("expand")
        .arg(&dev.0)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("to {} bytes", 3 * POOL_BYTES)));
    snapctl().arg("check").arg(&dev.0).assert().success();
    snapctl().arg("status").arg(&dev.0).assert().success().stdout(predicate::str::contains("96.0 MiB"));
    assert_eq!(snapctl().args(["cat", "small"]).arg(&dev.0).output().unwrap().stdout, std::fs::read(&small).unwrap());
}

#[test]
fn a_label_with_an_impossible_pool_size_is_refused_without_a_panic() {
    // Goal: `device_bytes` decides where region 1 is; a checksummed label whose size is
    // below the minimum or not whole blocks is corruption (exit 6), one far larger than
    // the device reads as a shrunk device, never a panic (an underflow computing region 1).
    use snapfs::format::label::Label;
    for (device_bytes, code) in [(4096u64, 6), (5000, 6), (POOL_BYTES + 1, 6), (1 << 62, 0)] {
        let dir = TempDir::new().unwrap();
        let (img, _, _) = filled_pool(dir.path(), POOL_BYTES);
        let mut block = vec![0u8; 4096];
        std::fs::File::open(&img).unwrap().read_exact_at(&mut block, 0).unwrap();
        let label = Label { device_bytes, ..Label::decode(&block).unwrap().unwrap() };
        write_at(&img, 0, &label.encode());
        let out = snapctl().arg("ls").arg(&img).output().unwrap();
        assert_no_format_hint(&out);
        assert_eq!(out.status.code(), Some(code), "{device_bytes}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
