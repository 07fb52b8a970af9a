//! The crash-consistency harness, with the test suite's budget.
//!
//! Goal: a power cut at any point of a workload of real snapfs commands leaves a pool
//! that opens, passes `check`, and holds the commit before the command in flight or the
//! one it made (or an intermediate commit of a receive of several snapshots or of a
//! subset snapshot's extraction).
//! Method: `snaptorture crash` with a fixed seed and at least 1000 crash states over
//! every flush boundary of the workload (see torture/src/crash/mod.rs); the release
//! binaries that scripts/setup.sh builds run the workload. Negative controls (commit
//! records durable without the blocks they name) must be rejected, and every kind of
//! outcome must be reached, so a harness that could not tell good from bad fails too.
//! The workload grows the device and expands the pool: crash states during expand must
//! open at the old size and at the new, some with the first label torn (opening without
//! a warning all the same). Crash states in the middle of a subset snapshot's extraction
//! must be finished, as `snapctl extract` finishes them, into the tree readers saw.
//! Then one state is replayed from the kept recording, as a failure says to.
//! The soak runs the same with 100,000 states: scripts/crash-soak.sh.

use snapfs_torture::crash::explore::{self, Outcome};
use snapfs_torture::crash::{Config, default_bins, missing_programs, run, workload};
use std::path::Path;
use std::time::SystemTime;

const SEED: u64 = 20261202;
const STATES: usize = 2800;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut latest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        // Test code only (feature `testing`): the release binaries never build it, so an
        // edit there leaves them as they are.
        if path.ends_with("src/lib/fuzzing") {
            continue;
        }
        let time = if path.is_dir() { newest(&path) } else { entry.metadata().ok()?.modified().ok() };
        latest = latest.max(time);
    }
    latest
}

#[test]
fn every_crash_state_of_the_workload_holds_a_commit() {
    let bins = default_bins();
    let missing = missing_programs(&bins);
    if !missing.is_empty() {
        assert!(!in_ci(), "the crash harness needs {missing:?} in CI: scripts/setup.sh builds them");
        eprintln!("skipping the crash harness: missing {missing:?} (cargo build --release builds them)");
        return;
    }
    let sources = newest(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../src"));
    let built = std::fs::metadata(bins.join("snapctl")).and_then(|m| m.modified()).ok();
    if sources > built {
        let message = format!("the binaries in {} are older than src/: cargo build --release", bins.display());
        assert!(!in_ci(), "{message}");
        eprintln!("warning: {message}");
    }
    let kept = tempfile::tempdir().expect("temporary directory");
    let config = Config {
        seed: SEED,
        states: STATES,
        keep: Some(kept.path().to_path_buf()),
        replay: None,
        from: None,
        bins,
        threads: 2,
        digest_cache: true,
        verbose: false,
    };
    let summary = run(&config).expect("the harness runs");
    summary.print();
    assert!(summary.failures.is_empty(), "{} failures:\n{}", summary.failures.len(), summary.failures.join("\n"));
    assert!(summary.tally.states >= 1000, "only {} crash states", summary.tally.states);
    assert!(summary.controls >= 10, "only {} negative controls", summary.controls);
    for outcome in [Outcome::Before, Outcome::After, Outcome::Intermediate] {
        let seen = summary.tally.by_outcome.get(&outcome).copied().unwrap_or(0);
        assert!(seen > 0, "no crash state opened at {outcome:?}: the states do not cover the commits");
    }

    let [old_size, new_size] = summary.expand_states;
    assert!(
        old_size > 0 && new_size > 0,
        "crash states during expand: {old_size} at the old size, {new_size} at the new"
    );
    assert_eq!(summary.expand_bytes, [(workload::IMAGE_BYTES, workload::GROWN_BYTES)]);
    assert!(summary.tally.first_label_unusable > 0, "no crash state tore the first label that expand rewrites");
    assert!(summary.tally.extractions_finished > 0, "no crash state held a subset snapshot being extracted");

    // Replay: the largest boundary's state 5 (a random state with a recovery commit),
    // from the recording kept in `kept`, judged alone.
    let recording = workload::load(kept.path()).expect("the kept recording loads");
    let boundaries = explore::boundaries(&recording);
    let largest =
        boundaries.iter().max_by_key(|b| b.writes.iter().map(|w| w.data.len()).sum::<usize>()).expect("boundaries");
    let replay =
        Config { replay: Some((largest.number, 5)), from: Some(kept.path().to_path_buf()), keep: None, ..config };
    let one = run(&replay).expect("the replay runs");
    assert_eq!((one.tally.states, one.tally.recovered, one.failures.len()), (1, 1, 0), "{:?}", one.failures);
}
