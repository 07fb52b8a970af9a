//! What a scrub is asked to do and what it reports: the options, the progress it gives,
//! each bad copy (`Damage`) and the whole `ScrubReport` (cmd::scrub gives its JSON form).
//!
//! Types only, and no other module of `scrub/` below it: every pass fills these in, so
//! each pass depends on them and they depend on no pass.

use crate::block::BlockPtr;

#[derive(Clone, Copy, Debug)]
pub struct ScrubOptions {
    /// Rewrite bad copies from good ones (needs the pool open for writing).
    pub repair: bool,
}

/// Where a scrub is, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub struct ScrubProgress {
    pub phase: &'static str,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

/// One bad copy of a block.
#[derive(Clone, Debug)]
pub struct Damage {
    pub kind: &'static str,
    /// The block's first copy: how it is named everywhere else.
    pub block: u64,
    /// The bad copy: 1 for the first, 2 for the ditto.
    pub copy: usize,
    pub copy_block: u64,
    pub birth: u64,
    pub error: String,
    /// Another copy is good: reads are unaffected.
    pub recoverable: bool,
    pub repaired: bool,
    /// Heads, snapshots and retained commits that reach the block.
    pub affects: Vec<String>,
    /// Files whose bytes it held (at most 100 listed; `files_total` counts them all).
    pub files: Vec<String>,
    pub files_total: usize,
}

impl Damage {
    pub fn new(
        ptr: &BlockPtr,
        index: usize,
        copy_block: crate::block::BlockAddr,
        error: String,
        recoverable: bool,
    ) -> Damage {
        Damage {
            kind: ptr.kind.name(),
            block: ptr.addr.0,
            copy: index + 1,
            copy_block: copy_block.0,
            birth: ptr.birth.0,
            error,
            recoverable,
            repaired: false,
            affects: Vec::new(),
            files: Vec::new(),
            files_total: 0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ScrubReport {
    /// Copies read and verified, and their bytes.
    pub blocks_verified: u64,
    pub bytes_verified: u64,
    pub metadata_blocks: u64,
    pub data_blocks: u64,
    pub damage: Vec<Damage>,
    /// Labels that were bad (rewritten from the good one when repairing).
    pub labels_damaged: Vec<String>,
    /// There were bad labels, and every one was rewritten.
    pub labels_repaired: bool,
    /// Structures that verified but did not decode: check's business, reported here too.
    pub problems: Vec<String>,
    pub seconds: f64,
    /// Of which the metadata pass (with opening nothing: the pool is open already).
    pub metadata_seconds: f64,
}

impl ScrubReport {
    /// Blocks none of whose copies is good.
    pub fn unrecoverable(&self) -> usize {
        let lost: std::collections::HashSet<u64> =
            self.damage.iter().filter(|d| !d.recoverable).map(|d| d.block).collect();
        lost.len()
    }

    pub fn repaired(&self) -> usize {
        self.damage.iter().filter(|d| d.repaired).count()
    }

    /// Nothing is damaged now: every bad copy (and label) was rewritten.
    pub fn is_clean(&self) -> bool {
        self.damage.iter().all(|d| d.repaired)
            && (self.labels_damaged.is_empty() || self.labels_repaired)
            && self.problems.is_empty()
    }
}

/// An error as a damage line says it (without "corrupt pool:", which the line implies).
pub fn describe(e: crate::error::Error) -> String {
    match e {
        crate::error::Error::Corrupt(corruption) => corruption.to_string(),
        other => other.to_string(),
    }
}
