//! The tools on real loop devices (losetup): size from the block-device ioctl, flushes
//! to a block device, a read-only device refused clearly, a mounted device refused.
//! Needs root; in CI (CI=true) a missing capability fails instead of skipping.

mod common;
use snapfs::cli::exit_code;

use common::*;
use predicates::prelude::*;
use std::process::Command as Process;
use tempfile::TempDir;

struct Loop(String);

impl Loop {
    fn attach(image: &std::path::Path, read_only: bool) -> Loop {
        let mut cmd = Process::new("losetup");
        cmd.args(["--show", "-f"]);
        if read_only {
            cmd.arg("-r");
        }
        let out = cmd.arg(image).output().expect("run losetup");
        assert!(out.status.success(), "losetup failed: {}", String::from_utf8_lossy(&out.stderr));
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Process::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn loop_device_round_trip() {
    if !require_root("loop_device_round_trip") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let img = image(dir.path(), "disk.img", 96 << 20);
    let dev = Loop::attach(&img, false);
    snapfmt().arg(&dev.0).assert().success().stdout(predicate::str::contains("96.0 MiB"));
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..50u32 {
        let data: Vec<u8> = (0..(i * 3000)).map(|j| (j % 97) as u8).collect();
        std::fs::write(src.join(format!("file{i}")), data).unwrap();
    }
    snapctl().arg("sync").arg(&src).arg(&dev.0).assert().success();
    snapctl().args(["snapshot", "@one"]).arg(&dev.0).assert().success();
    let out = dir.path().join("out");
    snapctl().args(["export", "@one"]).arg(&out).arg(&dev.0).assert().success();
    assert_eq!(digest(&out), digest(&src));
    check_dev(&dev.0);
    // The pool is on the image: readable through the file after detaching too.
    drop(dev);
    snapctl().args(["cat", "@one:file10"]).arg(&img).assert().success();
}

fn check_dev(dev: &str) {
    snapctl().arg("check").arg(dev).assert().success().stdout(predicate::str::contains("check clean"));
}

#[test]
fn read_only_loop_device_is_refused_for_writes() {
    if !require_root("read_only_loop_device_is_refused_for_writes") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 << 20, &[]);
    snapctl().args(["put", "-", "f"]).arg(&img).write_stdin("data").assert().success();
    let dev = Loop::attach(&img, true);
    snapctl().args(["cat", "f"]).arg(&dev.0).assert().success().stdout("data");
    snapctl()
        .args(["mkdir", "x"])
        .arg(&dev.0)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("cannot be opened for writing").and(predicate::str::contains("read-only")));
    snapfmt().arg("--force").arg(&dev.0).assert().code(exit_code::REFUSED);
}

#[test]
fn mounted_device_is_in_use() {
    if !require_root("mounted_device_is_in_use") {
        return;
    }
    if Process::new("mkfs.ext4").arg("-V").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "mkfs.ext4 is missing in CI: run scripts/setup.sh");
        eprintln!("skipping: mkfs.ext4 missing");
        return;
    }
    let dir = TempDir::new().unwrap();
    let img = image(dir.path(), "ext.img", 64 << 20);
    let dev = Loop::attach(&img, false);
    assert!(Process::new("mkfs.ext4").args(["-q", "-F", &dev.0]).status().unwrap().success());
    snapfmt()
        .arg(&dev.0)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("ext2/ext3/ext4").and(predicate::str::contains("--force")));
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(Process::new("mount").arg(&dev.0).arg(&mnt).status().unwrap().success());
    let result = snapfmt().arg("--force").arg(&dev.0).assert();
    let _ = Process::new("umount").arg(&mnt).status();
    result.code(exit_code::IN_USE).stderr(predicate::str::contains("in use"));
}
