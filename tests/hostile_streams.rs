//! Streams valid record by record but hostile as a whole (snapfs::fuzzing::hostile).
//! Goal: a receive never commits a tree that would fail `check`: a crafted stream is
//! refused with exit 8 and the target left as it was, or received into a pool that
//! checks clean, exports, and takes further writes without touching received files.
//! Method: real streams (the receive fuzz seeds: a full stream, an incremental, a run
//! of two parts) unchanged (all must be received), with each named mutation (each
//! breaks one invariant: all must be refused), and with seeded random mutations (any
//! outcome, as long as it meets the oracle). `HOSTILE_SEEDS` sets how many random seeds
//! per source stream (the fuzz soak's `hostile` target runs many more).

use snapfs::fuzzing::hostile::{NAMED, Outcome, Rng, join_parts, mutate_randomly, split_parts};
use snapfs::fuzzing::receive::ReceiveTarget;
use snapfs::stream::wire::{Record, WriteRecord};
use std::path::Path;

fn seed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/receive").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const SOURCES: [&str; 3] = ["full-a.stream", "incremental-a-b.stream", "run-a-c.stream"];

fn target() -> ReceiveTarget {
    ReceiveTarget::new(&seed("base.stream")).expect("the base stream applies")
}

#[test]
fn real_streams_are_received_whole() {
    let target = target();
    for source in SOURCES {
        let stream = join_parts(&split_parts(&seed(source)).unwrap());
        assert_eq!(target.run_hostile(&stream), Outcome::Received, "{source}");
    }
}

#[test]
fn each_broken_invariant_is_refused() {
    let target = target();
    let mut tried = 0;
    for source in SOURCES {
        let parts = split_parts(&seed(source)).unwrap();
        for (name, mutate) in NAMED {
            for index in 0..parts.len() {
                let mut mutated = parts.clone();
                if !mutate(&mut mutated[index]) {
                    continue;
                }
                tried += 1;
                match target.run_hostile(&join_parts(&mutated)) {
                    Outcome::Refused(message) => {
                        println!("{source} part {index}, {name}: {message}");
                    }
                    Outcome::Received => panic!("{source} part {index}: a stream with {name} was received"),
                }
            }
        }
    }
    println!("{tried} crafted streams, each breaking one invariant, all refused");
    assert!(tried >= 40, "only {tried} named mutations applied to the sources");
}

#[test]
fn random_mutations_are_refused_or_received_clean() {
    let seeds: u64 = std::env::var("HOSTILE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    let target = target();
    let (mut refused, mut received) = (0, 0);
    for source in SOURCES {
        let parts = split_parts(&seed(source)).unwrap();
        for seed in 0..seeds {
            let mut rng = Rng::new(seed);
            let mut mutated = parts.clone();
            let index = (rng.next_u64() % parts.len() as u64) as usize;
            mutate_randomly(&mut mutated[index], &mut rng);
            println!("{source} seed {seed}");
            match target.run_hostile(&join_parts(&mutated)) {
                Outcome::Refused(_) => refused += 1,
                Outcome::Received => received += 1,
            }
        }
    }
    println!(
        "{} random crafted streams: {refused} refused, {received} received into pools that check clean",
        refused + received
    );
    assert!(refused > 0 && received > 0, "random mutations should give both outcomes");
}

/// A WRITE whose data contradicts its own record (checksum, decompression, fingerprint)
/// is refused whole even with `-s`: its content is checked on worker threads beside the
/// apply, and a failure found after later records were applied must neither commit nor
/// leave a saved partial receive holding the bad data (a resume would bring the same
/// data again). Truncating the same streams instead does save a partial (the control).
#[test]
fn a_lying_write_is_not_saved_for_a_resume() {
    let target = target();
    let (_, lie) = NAMED.iter().find(|(name, _)| name.starts_with("WRITE data other")).expect("the mutation exists");
    let mut tried = 0;
    for source in SOURCES {
        let parts = split_parts(&seed(source)).unwrap();
        for index in 0..parts.len() {
            let mut mutated = parts.clone();
            if !lie(&mut mutated[index]) {
                continue;
            }
            tried += 1;
            match target.run_hostile_with(&join_parts(&mutated), true) {
                (Outcome::Refused(message), saved) => {
                    assert!(message.contains("WRITE record"), "{source} part {index}: {message}");
                    assert!(!saved, "{source} part {index}: a lying WRITE left a saved partial receive");
                }
                (Outcome::Received, _) => panic!("{source} part {index}: a lying WRITE was received"),
            }
        }
    }
    assert!(tried >= 3, "only {tried} streams had a WRITE to falsify");
    let full = seed("full-a.stream");
    let (outcome, saved) = target.run_hostile_with(&full[..full.len() * 3 / 4], true);
    assert!(matches!(outcome, Outcome::Refused(_)) && saved, "a truncated stream with -s is saved");
}

/// The receiver checks an inode that the base lacks from the changes alone (its items
/// and records all travel in the part: no scan of the new tree), and a file's records
/// as they go by when its inode changed. Goal: each invariant those checks cover is
/// still refused, with the violation that names it, and nothing of the part committed
/// (`run_hostile` asserts the snapshots are unchanged and the pool checks clean), in a
/// full stream (every inode new) and in an incremental (new and changed inodes).
#[test]
fn broken_new_and_changed_inodes_are_refused_by_the_checks_from_the_stream() {
    let target = target();
    let cases: [(&str, &[&str]); 8] = [
        ("size shorter than its records", &["a file of 1 bytes needs 1 there"]),
        ("size past a partial record", &["needs 131072 there"]),
        ("file record under a directory", &["holds file records"]),
        ("symlink target on a file", &["has a symlink target"]),
        ("symlink without a target", &["is a regular file, but it is a symlink"]),
        ("name dropped (orphan)", &["is in no directory"]),
        ("nlink one too many", &["has nlink"]),
        ("directory under a second parent", &["has 2 parents"]),
    ];
    let mut tried = 0;
    for source in ["full-a.stream", "incremental-a-b.stream"] {
        let parts = split_parts(&seed(source)).unwrap();
        for (name, words) in cases {
            let (_, mutate) = NAMED.iter().find(|(n, _)| *n == name).expect("the mutation exists");
            let mut mutated = parts.clone();
            if !mutate(&mut mutated[0]) {
                continue;
            }
            tried += 1;
            match target.run_hostile(&join_parts(&mutated)) {
                Outcome::Refused(message) => {
                    assert!(words.iter().any(|w| message.contains(w)), "{source}, {name}: {message}");
                }
                Outcome::Received => panic!("{source}: a stream with {name} was received"),
            }
        }
    }
    assert!(tried >= 16, "only {tried} of the mutations applied to the sources");
    // A WRITE repeated at record indexes past the file's end, its content intact (so the
    // content check passes): the record is refused as it goes by.
    for source in ["full-a.stream", "incremental-a-b.stream"] {
        let parts = split_parts(&seed(source)).unwrap();
        let at = parts[0].records.iter().position(|r| matches!(r, Record::Write(_))).expect("the part writes a file");
        for gap in [1, 3, 1000] {
            let mut mutated = parts.clone();
            let Record::Write(w) = &mutated[0].records[at] else { unreachable!() };
            let index = w.index + gap;
            let past = Record::Write(WriteRecord { index, ..w.clone() });
            mutated[0].records.insert(at + 1, past);
            match target.run_hostile(&join_parts(&mutated)) {
                Outcome::Refused(message) => {
                    let words = format!("has a record {index} past its end");
                    assert!(message.contains(&words), "{source}, record {gap} past the end: {message}");
                }
                Outcome::Received => panic!("{source}: a record {gap} past the end of its file was received"),
            }
        }
    }
}
