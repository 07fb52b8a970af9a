//! Readers never block writers; writers wait their turn (issue 15, part 1).
//!
//! A reader (`snapsend`, `cat`...) pins what it reads and takes no lock, so a `sync`,
//! `snapshot` or `put` commits while it runs; what it pinned cannot be destroyed or
//! expired under it, and the pin dies with the process, even by kill -9. A writer that
//! finds another writer waits for it (`--wait SECONDS` bounds the wait, `--nowait`
//! refuses at once). Readers here are held mid-read by not draining their standard
//! output: they block on a full pipe with their pins in place.

mod common;
use common::*;
use snapfs::cli::exit_code;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn lock_dir() -> PathBuf {
    std::env::var_os("SNAPFS_LOCK_DIR").map_or_else(|| PathBuf::from("/run/lock/snapfs"), PathBuf::from)
}

/// Starts a reader whose standard output nobody reads yet.
fn start_reader(program: &str, args: &[&str], img: &Path) -> Child {
    let bin = assert_cmd::cargo::cargo_bin(program);
    Command::new(bin).args(args).arg(img).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The pin files of process `pid`: `pin-PID-N` in the pool's folder of the lock
/// directory, `readers-GUIDHEX`. Only that folder is read: the lock directory of a
/// machine that has run many tests holds thousands of folders, and a scan of them all
/// made each poll slow enough to miss a short read.
fn pin_files_of(img: &Path, pid: u32) -> Vec<PathBuf> {
    pin_files_in(&readers_folder(img), pid)
}

fn readers_folder(img: &Path) -> PathBuf {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap();
    lock_dir().join(format!("readers-{}", status["pool_guid"].as_str().unwrap()))
}

fn pin_files_in(folder: &Path, pid: u32) -> Vec<PathBuf> {
    let files = std::fs::read_dir(folder).into_iter().flatten().flatten();
    files.filter(|e| e.file_name().to_string_lossy().starts_with(&format!("pin-{pid}-"))).map(|e| e.path()).collect()
}

/// Whether one of `files` (pin files) holds a line starting with `prefix`.
fn any_pin_line(files: &[PathBuf], prefix: &str) -> bool {
    files.iter().any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(&format!("\n{prefix}"))))
}

/// Waits until process `pid` has pinned something: its pin file names a checkpoint.
fn wait_until_pinned(img: &Path, pid: u32) {
    wait_for_pin_line(&readers_folder(img), pid, "pin ", "what it reads");
}

/// Waits, closely, until process `pid` has pinned a whole commit (`pin 0 TXG`).
/// `folder` is the pool's (`readers_folder`), found before the reader starts: the reader
/// may be quick.
fn wait_until_pinned_whole(folder: &Path, pid: u32) {
    wait_for_pin_line(folder, pid, "pin 0 ", "a whole commit");
}

fn wait_for_pin_line(folder: &Path, pid: u32, prefix: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !any_pin_line(&pin_files_in(folder, pid), prefix) {
        assert!(Instant::now() < deadline, "pid {pid} never pinned {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Drains a reader's output and waits for it to exit 0.
fn finish_reader(mut child: Child) -> Vec<u8> {
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "the reader failed: {err}");
    out
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A 1 GiB incompressible file on the host, written in pieces.
fn big_file(dir: &Path) -> PathBuf {
    let path = dir.join("big");
    let mut file = std::fs::File::create(&path).unwrap();
    for piece in 0..16 {
        file.write_all(&noise(64 * MIB as usize, 100 + piece)).unwrap();
    }
    path
}

#[test]
fn a_sync_and_a_snapshot_finish_while_a_1_gib_snapshot_is_sent() {
    // Goal: a cron sync and snapshot are not frozen by an hour-long replication, the
    // snapshot being sent cannot be destroyed under the sender, and the stream is the
    // snapshot whole. Method: a sender of 1 GiB held mid-stream by a full pipe; the
    // writers run; then the stream is drained, verified and received.
    let dir = TempDir::new().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 1536 * MIB);
    let big = big_file(dir.path());
    snapctl().args(["put"]).arg(&big).args(["/big"]).arg(&img).assert().success();
    snapctl().args(["snapshot", "@big"]).arg(&img).assert().success();

    let sender = start_reader("snapsend", &["@big"], &img);
    wait_until_pinned(&img, sender.id());
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), b"synced while a send ran").unwrap();
    snapctl().args(["--nowait", "sync"]).arg(&tree).arg("/synced").arg(&img).assert().success();
    snapctl().args(["--nowait", "snapshot", "@during"]).arg(&img).assert().success();
    let formatted = snapfmt().arg("--force").arg(&img).output().unwrap();
    assert_eq!(formatted.status.code(), Some(exit_code::IN_USE), "{}", stderr_of(&formatted));
    assert!(stderr_of(&formatted).contains("which is reading the pool"), "{}", stderr_of(&formatted));
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(&img))).unwrap();
    let reader = &status["readers"][0];
    assert_eq!((reader["pid"].as_u64(), &reader["pins"]), (Some(sender.id() as u64), &serde_json::json!(["@big"])));
    assert!(
        stdout(snapctl().arg("status").arg(&img)).contains(&format!("reader:      pid {} (snapsend @big", sender.id()))
    );
    let refused = snapctl().args(["destroy", "@big"]).arg(&img).output().unwrap();
    assert_eq!(refused.status.code(), Some(exit_code::REFUSED), "{}", stderr_of(&refused));
    let says = stderr_of(&refused);
    assert!(says.contains(&format!("@big is being read by pid {} (snapsend @big", sender.id())), "{says}");
    // A prune leaves it too (it is no automatic snapshot here, so it names none).
    let stream = finish_reader(sender);
    check(&img);

    let target = fresh_pool(dir.path(), "target.img", 1536 * MIB);
    snaprecv().arg("-n").arg(&target).write_stdin(stream.clone()).assert().success();
    receive(&target, &stream);
    let got = snapctl().args(["cat", "@big:/big"]).arg(&target).output().unwrap();
    assert!(got.stdout == std::fs::read(&big).unwrap(), "the stream of @big is not the 1 GiB file");
    check(&target);
    assert_eq!(stdout(snapctl().args(["cat", "/synced/sub/file"]).arg(&img)), "synced while a send ran");
    // The sender is gone, and its pin with it.
    snapctl().args(["destroy", "@big"]).arg(&img).assert().success();
    check(&img);
}

#[test]
fn a_reader_killed_by_sigkill_leaves_no_pin_that_counts() {
    let dir = TempDir::new().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 128 * MIB);
    put(&img, "f", &noise(16 * MIB as usize, 1));
    snapctl().args(["snapshot", "@s"]).arg(&img).assert().success();
    let mut sender = start_reader("snapsend", &["@s"], &img);
    let pid = sender.id();
    wait_until_pinned(&img, pid);
    snapctl().args(["destroy", "@s"]).arg(&img).assert().code(exit_code::REFUSED);
    sender.kill().unwrap();
    sender.wait().unwrap();
    // Its pin file stays (nothing ran at its end), but nobody holds it: not a pin.
    snapctl().args(["destroy", "@s"]).arg(&img).assert().success();
    let left = pin_files_of(&img, pid);
    assert!(left.is_empty(), "the dead reader's pin file was not removed: {left:?}");
    check(&img);
}

#[test]
fn a_retained_commit_being_read_outlives_its_expiry_and_goes_after() {
    // Goal: `cat` of the live tree reads the commit it opened to the end, while writers
    // replace the file and expiry (history 0) would drop that commit at once.
    let dir = TempDir::new().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 256 * MIB);
    snapctl().args(["history", "--keep", "0"]).arg(&img).assert().success();
    let first = noise(12 * MIB as usize, 7);
    put(&img, "f", &first);
    let reader = start_reader("snapctl", &["cat", "f"], &img);
    wait_until_pinned(&img, reader.id());
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(&img))).unwrap();
    let pinned = status["readers"][0]["pins"][0].as_str().unwrap_or_default().to_string();
    assert!(pinned.starts_with("commit "), "a reader of the live tree pins its commit: {status}");
    for seed in 0..4 {
        put(&img, "f", &noise(12 * MIB as usize, 20 + seed));
    }
    let history = stdout(snapctl().arg("history").arg(&img));
    assert!(history.lines().filter(|l| l.starts_with("txg")).count() >= 2, "the pinned commit is gone:\n{history}");
    assert!(finish_reader(reader) == first, "cat did not read the commit it opened");
    check(&img);
    snapctl().args(["mkdir", "d"]).arg(&img).assert().success();
    let history = stdout(snapctl().arg("history").arg(&img));
    assert_eq!(history.lines().filter(|l| l.starts_with("txg")).count(), 1, "{history}");
    check(&img);
}

#[test]
fn a_rollback_that_would_drop_a_commit_being_read_is_refused() {
    let dir = TempDir::new().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 128 * MIB);
    put(&img, "f", b"before");
    snapctl().args(["snapshot", "@s"]).arg(&img).assert().success();
    put(&img, "f", &noise(8 * MIB as usize, 3));
    let reader = start_reader("snapctl", &["cat", "f"], &img);
    wait_until_pinned(&img, reader.id());
    let out = snapctl().args(["rollback", "@s"]).arg(&img).output().unwrap();
    assert_eq!(out.status.code(), Some(exit_code::REFUSED), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("is being read by pid"), "{}", stderr_of(&out));
    finish_reader(reader);
    snapctl().args(["rollback", "@s"]).arg(&img).assert().success();
    assert_eq!(stdout(snapctl().args(["cat", "f"]).arg(&img)), "before");
    check(&img);
}

#[test]
fn a_writer_waits_for_another_writer_as_told() {
    let dir = TempDir::new().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 64 * MIB);
    // A put from a pipe this test holds open: a writer that runs until we say.
    let bin = assert_cmd::cargo::cargo_bin("snapctl");
    let mut holder = Command::new(&bin)
        .args(["put", "-", "slow"])
        .arg(&img)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    holder.stdin.as_mut().unwrap().write_all(b"first part ").unwrap();
    // Until its lock is taken: a --nowait writer is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let out = snapctl().args(["--nowait", "mkdir", "d"]).arg(&img).output().unwrap();
        if out.status.code() == Some(exit_code::IN_USE) {
            break out;
        }
        assert!(out.status.success(), "{}", stderr_of(&out));
        snapctl().args(["rm", "d"]).arg(&img).assert().success();
        assert!(Instant::now() < deadline, "the put never took the device");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        stderr_of(&refused).contains(&format!("in use by pid {} (writing)", holder.id())),
        "{}",
        stderr_of(&refused)
    );
    let started = Instant::now();
    let out = snapctl().args(["--wait", "1", "mkdir", "d"]).arg(&img).output().unwrap();
    assert_eq!(out.status.code(), Some(exit_code::IN_USE), "{}", stderr_of(&out));
    assert!(started.elapsed() >= Duration::from_secs(1), "--wait 1 gave up after {:?}", started.elapsed());
    snaprecv().arg("--nowait").arg(&img).write_stdin(Vec::new()).assert().code(exit_code::IN_USE);
    // Without a limit it waits, says for whom after a second, and goes on when the
    // other is done.
    let waiter = Command::new(&bin).args(["mkdir", "d"]).arg(&img).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    holder.stdin.as_mut().unwrap().write_all(b"and the rest").unwrap();
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("snapctl: waiting for"), "{}", stderr_of(&out));
    assert_eq!(stdout(snapctl().args(["cat", "slow"]).arg(&img)), "first part and the rest");
    check(&img);
}

/// Stops or resumes process `pid` (`kill -STOP` / `kill -CONT`).
fn signal(pid: u32, which: &str) {
    assert!(Command::new("kill").args([which, &pid.to_string()]).status().unwrap().success());
}

#[test]
fn check_and_scrub_read_a_whole_commit_while_writers_commit() {
    // Goal (issue 15, part 1): check and scrub (which repairs through a writer opened at
    // its end, when it has something to repair) read everything the commit they opened
    // references, tables too, without holding writers off. They pin that commit whole;
    // writers hold back what they free until the reader exits. Each reader is stopped
    // once it has pinned, the pool is rewritten around it (files removed, the snapshot
    // destroyed, new files written over several commits, which reuse freed blocks when
    // nothing holds them back), and the reader, resumed, still finds the pool clean.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 512 * MIB, &["--history", "0"]);
    let make_tree = |name: &str, seed: u64| {
        let src = dir.path().join(name);
        for d in 0..20 {
            std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
            for f in 0..50 {
                std::fs::write(src.join(format!("d{d}/f{f}")), noise(6000, seed * 10_000 + d * 100 + f)).unwrap();
            }
        }
        src
    };
    let first = make_tree("first", 1);
    let second = make_tree("second", 2);
    // Enough to read that the reader is still at it when it is stopped.
    let mut big = std::fs::File::create(first.join("big")).unwrap();
    for piece in 0..3 {
        big.write_all(&noise(64 * MIB as usize, 200 + piece)).unwrap();
    }
    for (round, reader) in [&["check"][..], &["scrub", "--no-repair"], &["scrub"]].into_iter().enumerate() {
        snapctl().arg("sync").arg(&first).arg(&img).assert().success();
        run(&img, &["snapshot", "@a"]);
        let readers = readers_folder(&img);
        let child = start_reader("snapctl", reader, &img);
        let pid = child.id();
        wait_until_pinned_whole(&readers, pid);
        signal(pid, "-STOP");
        let status = run(&img, &["status"]);
        assert!(status.contains("all of commit"), "round {round}: {status}");
        for d in 0..20 {
            run(&img, &["rm", "-r", &format!("d{d}")]);
        }
        run(&img, &["destroy", "@a"]);
        snapctl().arg("sync").arg(&second).arg(&img).assert().success();
        run(&img, &["snapshot", "@b"]);
        run(&img, &["destroy", "@b"]);
        for d in 0..20 {
            run(&img, &["rm", "-r", &format!("d{d}")]);
        }
        signal(pid, "-CONT");
        let out = String::from_utf8(finish_reader(child)).unwrap();
        assert!(out.contains("clean"), "round {round} ({reader:?}): {out}");
    }
    check(&img);
    // The reader gone, the blocks held back are free again: the space is all there.
    let status = run(&img, &["status"]);
    assert!(!status.contains("all of commit"), "{status}");
}
