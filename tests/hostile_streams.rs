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
