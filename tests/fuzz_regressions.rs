//! Replays the fuzz targets' inputs without a fuzzer: every seed (fuzz/seeds/TARGET/) and
//! every crash a fuzzer found (fuzz/regressions/TARGET/, one file per bug, named after
//! it) goes through the same code the target runs (`snapfs::fuzzing`).
//! Goal: no input that once crashed a target does again, and the seeds still decode.
//! Method: each file is run as the target runs it; a panic fails the test, and the file
//! being replayed is printed first so that the failure names it.

use snapfs::fuzzing::PLAIN_TARGETS;
use snapfs::fuzzing::hostile::HostileTarget;
use snapfs::fuzzing::receive::ReceiveTarget;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Seeds and regressions of a target, in a stable order.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else { continue };
        files.extend(entries.map(|e| e.expect("a directory entry").path()));
    }
    files.sort();
    files
}

fn replay(target: &str, run: &dyn Fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no seeds for {target}: run fuzz/make-seeds.sh");
    for path in files {
        println!("replaying {}", path.display());
        run(&std::fs::read(&path).expect("read an input"));
    }
}

#[test]
fn plain_targets_survive_their_seeds_and_regressions() {
    for &(target, run) in PLAIN_TARGETS {
        replay(target, &run);
    }
}

#[test]
fn receive_target_survives_its_seeds_and_regressions() {
    let base = std::fs::read(fuzz_dir().join("seeds/receive/base.stream")).expect("read the base stream");
    let target = ReceiveTarget::new(&base).expect("the base stream applies");
    replay("receive", &|data| target.run(data));
}

#[test]
fn hostile_target_survives_its_seeds_and_regressions() {
    let seed = |name: &str| std::fs::read(fuzz_dir().join("seeds/receive").join(name)).expect("read a seed stream");
    let sources = [seed("full-a.stream"), seed("incremental-a-b.stream"), seed("run-a-c.stream")];
    let sources: Vec<&[u8]> = sources.iter().map(|s| s.as_slice()).collect();
    let target = HostileTarget::new(&seed("base.stream"), &sources).expect("the seed streams apply");
    replay("hostile", &|data| target.run(data));
}
