//! `scrub`: read and verify every copy of every block, rewrite bad copies that have a
//! good one (unless told not to), and say what damage remains.

use crate::device::OpenMode;
use crate::error::Result;
use crate::pool::Pool;
use crate::scrub::{Damage, ScrubOptions, ScrubProgress, scrub_beside_writers, scrub_pool};
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
pub fn scrub(
    pool: &mut Pool,
    repair: bool,
    progress: &mut dyn FnMut(&ScrubProgress),
    open_writer: &mut dyn FnMut() -> Result<Pool>,
) -> Result<Scrubbed> {
    // A device cut short cannot be written: refused as any writer is, before the reading.
    if repair && pool.warnings.iter().any(|w| matches!(w, crate::pool::OpenWarning::Shrunk(_))) {
        open_writer()?;
    }
    let options = ScrubOptions { repair };
    let report = match pool.mode {
        // A handle that writes already (the tests') repairs through itself.
        OpenMode::Write => scrub_pool(pool, options, progress)?,
        OpenMode::Read => scrub_beside_writers(pool, options, progress, open_writer)?,
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::tree::{PutSource, put};
    use crate::device::{MemoryDevice, OpenMode};
    use crate::fs::{FsTree, ROOT_INO};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, format_pool};

    const IMAGE_BYTES: u64 = 16 << 20;

    /// A pool with one file of 300 KB: its bytes, the pool root's second copy and the
    /// file's first data block.
    fn image() -> (Vec<u8>, u64, u64) {
        let mut pool = format_pool(Box::new(MemoryDevice::new(IMAGE_BYTES)), &FormatOptions::default()).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| ((i * 7) ^ (i >> 5)) as u8).collect();
        put(&mut pool, LIVE_TREE_ID, PutSource::Stream(&mut &data[..]), "f", None).unwrap();
        let ditto = pool.commit.root.ditto.0;
        let (mut tree, store) = pool.view(LIVE_TREE_ID, None).unwrap();
        let mut fs = FsTree::new(&mut tree, store, false);
        let ino = fs.lookup(ROOT_INO, b"f").unwrap().unwrap().ino;
        let data_block = fs.records(ino).unwrap()[0].1.blocks().next().unwrap().addr.0;
        let mut bytes = vec![0u8; IMAGE_BYTES as usize];
        pool.store.dev.read_at(0, &mut bytes).unwrap();
        (bytes, ditto, data_block)
    }

    fn scrubbed(bytes: &[u8], repair: bool) -> Scrubbed {
        let mut dev = MemoryDevice::new(IMAGE_BYTES);
        dev.bytes = bytes.to_vec();
        let mode = if repair { OpenMode::Write } else { OpenMode::Read };
        let mut pool = Pool::open(Box::new(dev), mode).unwrap();
        scrub(&mut pool, repair, &mut |_| {}, &mut || unreachable!("a handle open for writing repairs itself")).unwrap()
    }

    fn flip(bytes: &mut [u8], block: u64) {
        bytes[(block * 4096) as usize + 9] ^= 0x20;
    }

    /// Goal: the verdict (which snapctl turns into its exit status and last word) says
    /// what a scrub leaves: nothing, bad copies left by -n (each with a good twin), or
    /// blocks with no good copy, which a repair cannot help. Method: a pool in memory
    /// scrubbed clean, with a flipped byte in the pool root's second copy, with and
    /// without repair, and with a flipped byte in a data block (one copy only).
    #[test]
    fn the_verdict_says_what_damage_is_left() {
        let (clean, ditto, data_block) = image();
        let found = scrubbed(&clean, false);
        assert_eq!(found.verdict(), Verdict::Clean);
        assert!(found.data_blocks >= 1 && found.damage.is_empty(), "{found:?}");

        let mut bad_ditto = clean.clone();
        flip(&mut bad_ditto, ditto);
        let left = scrubbed(&bad_ditto, false);
        assert_eq!(left.verdict(), Verdict::Unrepaired { copies: 1 });
        assert_eq!((left.damage[0].copy, left.damage[0].copy_block, left.repaired), (2, ditto, 0));
        let repaired = scrubbed(&bad_ditto, true);
        assert_eq!(repaired.verdict(), Verdict::Clean);
        assert_eq!((repaired.repaired, repaired.damage[0].repaired), (1, true));

        let mut bad_data = bad_ditto;
        flip(&mut bad_data, data_block);
        for repair in [false, true] {
            let lost = scrubbed(&bad_data, repair);
            assert_eq!(lost.verdict(), Verdict::Lost { blocks: 1 }, "repair {repair}: {lost:?}");
            let damage = lost.damage.iter().find(|d| d.block == data_block).unwrap();
            assert_eq!(damage.files, ["/f"], "{damage:?}");
        }
    }
}
