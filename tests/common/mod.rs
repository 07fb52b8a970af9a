//! Helpers shared by the integration tests: image files, the binaries, the workload.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub fn snapctl() -> Command {
    Command::cargo_bin("snapctl").expect("snapctl is built")
}

pub fn snapfmt() -> Command {
    Command::cargo_bin("snapfmt").expect("snapfmt is built")
}

pub fn snapsend() -> Command {
    Command::cargo_bin("snapsend").expect("snapsend is built")
}

pub fn snaprecv() -> Command {
    Command::cargo_bin("snaprecv").expect("snaprecv is built")
}

/// A sparse image file of `bytes` in `dir`.
pub fn image(dir: &Path, name: &str, bytes: u64) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("create image");
    file.set_len(bytes).expect("size image");
    path
}

/// A formatted pool of `bytes` with the given snapfmt options.
pub fn pool(dir: &Path, bytes: u64, options: &[&str]) -> PathBuf {
    let img = image(dir, "pool.img", bytes);
    snapfmt().args(options).arg(&img).assert().success();
    img
}

pub fn check(img: &Path) {
    let out = snapctl().arg("check").arg(img).output().expect("run check");
    assert!(
        out.status.success(),
        "check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `snapctl ARGS IMG`'s standard output; the test fails if the command does.
pub fn run(img: &Path, args: &[&str]) -> String {
    stdout(snapctl().args(args).arg(img))
}

/// `snapctl ARGS IMG` must fail with `code` and a message holding `message`, and leave
/// the pool clean.
pub fn refused(img: &Path, args: &[&str], code: i32, message: &str) {
    let out = snapctl().args(args).arg(img).output().expect("run snapctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "snapctl {args:?}: {stderr}");
    assert!(stderr.contains(message), "snapctl {args:?}: {stderr:?} lacks {message:?}");
    check(img);
}

pub fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The shared workload generator: $SHARED_BENCH, else beside the repository, else the
/// workplace's copy (a clean clone for CI may live elsewhere).
pub fn workload() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("SHARED_BENCH")
        .map(PathBuf::from)
        .into_iter()
        .chain([here.join("../shared/bench"), PathBuf::from("/work/shared/bench")])
        .map(|d| d.join("workload.sh"))
        .collect();
    candidates.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| {
        panic!("workload generator not found in {candidates:?}; set SHARED_BENCH to the folder holding workload.sh")
    })
}

pub fn run_workload(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(workload());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run workload.sh");
    assert!(out.status.success(), "workload.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// content_digest=... meta_digest=... of a directory.
pub fn digest(dir: &Path) -> String {
    let out = run_workload(&["digest", dir.to_str().expect("utf-8 path")], &[]);
    out.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Tests that need root or loop devices skip outside CI, and fail in CI (CI=true).
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test} needs root in CI");
    eprintln!("skipping {test}: needs root");
    false
}

/// Whether `name` can be run: an absolute path that exists, or a name found on PATH.
pub fn have_command(name: &str) -> bool {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.exists();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false)
}

/// Tests that need external commands skip outside CI when one is missing, and fail in CI
/// (CI=true), naming every missing command.
pub fn require_commands(test: &str, commands: &[&str]) -> bool {
    let missing: Vec<&str> = commands.iter().copied().filter(|c| !have_command(c)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs {missing:?} in CI: run scripts/setup.sh as root"
    );
    eprintln!("skipping {test}: missing {missing:?} (scripts/setup.sh installs them)");
    false
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A formatted pool in `dir` under `name` (`pool` always names its image pool.img).
pub fn fresh_pool(dir: &Path, name: &str, bytes: u64) -> PathBuf {
    let img = image(dir, name, bytes);
    snapfmt().arg(&img).assert().success();
    img
}

/// `snapctl put - PATH IMG` with `data` on standard input.
pub fn put(img: &Path, path: &str, data: &[u8]) {
    snapctl().args(["put", "-", path]).arg(img).write_stdin(data).assert().success();
}

/// `snapsend ARGS IMG`'s stream; the test fails with its stderr if it fails.
pub fn send(args: &[&str], img: &Path) -> Vec<u8> {
    let out = snapsend().args(args).arg(img).output().unwrap();
    assert!(out.status.success(), "snapsend {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `snaprecv IMG < stream`, which must succeed.
pub fn receive(img: &Path, stream: &[u8]) {
    snaprecv().arg(img).write_stdin(stream.to_vec()).assert().success();
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Mixed content: zeros (holes), text-like runs and noise.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mode = self.below(3);
        (0..len)
            .map(|i| match mode {
                0 => 0,
                1 => b"abcdefgh "[(i * 7 + (i >> 5)) % 9],
                _ => self.next() as u8,
            })
            .collect()
    }
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize].clone())
    }
}
