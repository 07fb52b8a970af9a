//! What each fuzz target does with its input, kept in the library so that the cargo-fuzz
//! targets (fuzz/fuzz_targets/) and the regression test (tests/fuzz_regressions.rs) run
//! the same code: every crash a fuzzer finds is replayed by plain `cargo test`.
//!
//! A target returns normally for any input: a decoder must turn every bad byte into an
//! `Err`. A panic is a bug, and so is an `assert!` here failing: the targets also check
//! that what decodes encodes back to the same bytes.
//!
//! Checksums would stop a fuzzer at the first frame or block, so each target also runs
//! its input *sealed*: the checksums recomputed over the mutated bytes (`reseal`).

pub mod cli_numbers;
pub mod hostile;
pub mod label_commit;
pub mod receive;
pub mod reseal;
pub mod stream_reader;
pub mod tree_node;

/// A small deterministic generator for the library's randomized unit tests, so that a
/// failing seed can be replayed (the same sequence every test had before sharing it).
pub struct Steps(pub u64);

impl Steps {
    /// A number below `below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// A target: runs one input, and panics only on a bug.
pub type Target = fn(&[u8]);

/// The targets that need nothing but their input, by the names cargo-fuzz knows them.
/// (`receive` needs a base stream: see `receive::ReceiveTarget`.)
pub const PLAIN_TARGETS: &[(&str, Target)] = &[
    ("stream_reader", stream_reader::run),
    ("label_commit", label_commit::run),
    ("tree_node", tree_node::run),
    ("cli_numbers", cli_numbers::run),
];
