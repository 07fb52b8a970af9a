//! `scrub`: read and verify every copy of every block, rewrite bad copies that have a
//! good one (unless told not to), and say what damage remains.

use crate::error::Result;
use crate::pool::Pool;
use crate::scrub::{Damage, ScrubOptions, ScrubProgress, scrub_pool};
use serde::Serialize;

/// What scrub found. Fields in the order `snapctl scrub --json` has always written them
/// (alphabetical).
#[derive(Clone, Debug, Serialize)]
pub struct Scrubbed {
    /// Copies read and verified, and their bytes.
    pub blocks_verified: u64,
    pub bytes_verified: u64,
    /// Nothing is damaged now: every bad copy (and label) was rewritten.
    pub clean: bool,
    pub damage: Vec<DamagedCopy>,
    pub data_blocks: u64,
    /// Labels that were bad (rewritten from the good one when repairing).
    pub labels_damaged: Vec<String>,
    /// There were bad labels, and every one was rewritten.
    pub labels_repaired: bool,
    pub metadata_blocks: u64,
    /// Of `seconds`, the metadata pass.
    pub metadata_seconds: f64,
    /// Structures that verified but did not decode.
    pub problems: Vec<String>,
    /// Copies rewritten from a good one.
    pub repaired: u64,
    pub seconds: f64,
    /// Blocks none of whose copies is good.
    pub unrecoverable: u64,
}

/// One bad copy of a block, as `--json` writes it (alphabetical, the birth as `birth_txg`).
#[derive(Clone, Debug, Serialize)]
pub struct DamagedCopy {
    /// Heads, snapshots and retained commits that reach the block.
    pub affects: Vec<String>,
    pub birth_txg: u64,
    /// The block's first copy: how it is named everywhere else.
    pub block: u64,
    /// The bad copy: 1 for the first, 2 for the ditto.
    pub copy: usize,
    pub copy_block: u64,
    pub error: String,
    /// Files whose bytes it held (at most 100 listed; `files_total` counts them all).
    pub files: Vec<String>,
    pub files_total: usize,
    pub kind: &'static str,
    /// Another copy is good: reads are unaffected.
    pub recoverable: bool,
    pub repaired: bool,
}

/// What a scrub leaves, worst first: the exit status and the last word follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is damaged now.
    Clean,
    /// Blocks none of whose copies is good: what they held cannot be read.
    Lost { blocks: u64 },
    /// Structures whose checksums verify but which do not decode.
    Undecodable { structures: u64 },
    /// Bad copies (and labels) left as they are; every block still has a good copy.
    Unrepaired { copies: u64 },
}

impl Scrubbed {
    pub fn verdict(&self) -> Verdict {
        if self.clean {
            Verdict::Clean
        } else if self.unrecoverable > 0 {
            Verdict::Lost { blocks: self.unrecoverable }
        } else if !self.problems.is_empty() {
            Verdict::Undecodable { structures: self.problems.len() as u64 }
        } else {
            Verdict::Unrepaired { copies: (self.damage.len() + self.labels_damaged.len()) as u64 }
        }
    }
}

/// Scrubs the pool, rewriting bad copies from good ones if `repair` (the pool open for
/// writing); `progress` is told the phase and the data bytes read.
pub fn scrub(pool: &mut Pool, repair: bool, progress: &mut dyn FnMut(&ScrubProgress)) -> Result<Scrubbed> {
    let report = scrub_pool(pool, ScrubOptions { repair }, progress)?;
    let (clean, repaired, unrecoverable) = (report.is_clean(), report.repaired(), report.unrecoverable());
    Ok(Scrubbed {
        blocks_verified: report.blocks_verified,
        bytes_verified: report.bytes_verified,
        clean,
        damage: report.damage.into_iter().map(DamagedCopy::of).collect(),
        data_blocks: report.data_blocks,
        labels_damaged: report.labels_damaged,
        labels_repaired: report.labels_repaired,
        metadata_blocks: report.metadata_blocks,
        metadata_seconds: report.metadata_seconds,
        problems: report.problems,
        repaired: repaired as u64,
        seconds: report.seconds,
        unrecoverable: unrecoverable as u64,
    })
}

impl DamagedCopy {
    fn of(d: Damage) -> DamagedCopy {
        DamagedCopy {
            affects: d.affects,
            birth_txg: d.birth,
            block: d.block,
            copy: d.copy,
            copy_block: d.copy_block,
            error: d.error,
            files: d.files,
            files_total: d.files_total,
            kind: d.kind,
            recoverable: d.recoverable,
            repaired: d.repaired,
        }
    }
}
