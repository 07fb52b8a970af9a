//! PATCH records applied on worker threads: verifying the target's old record,
//! decompressing it, laying the new pieces over it, checking the result against the
//! sender's fingerprint and compressing it again is most of an incremental receive's
//! work, and each record is independent of the others.
//!
//! The calling thread reads the old record's stored bytes and later writes the results;
//! the tree sees each result applied whole. Results come back in any order: the caller
//! drains the patcher before any record that could touch the same keys (a part names
//! each key at most once, so within a run of patches order does not matter).

use crate::block::BlockPtr;
use crate::checksum::blake3;
use crate::error::{Error, Result};
use crate::fs::record::{Fingerprint, PIECE_BYTES, fingerprint};
use crate::store::StoredBlock;
use crate::workers::Workers;

/// A patched record is compressed at most at this zstd level (the fast strategy): a
/// patch rewrites a whole 128 KiB record for a few changed KiB, and at the default
/// level 3 recompression is most of an incremental receive. Level 1 takes about half the
/// time for a few percent more space on those records; a later rewrite by `sync` or a
/// WRITE stores them at the pool's level again.
pub const PATCH_COMPRESSION_LEVEL_MAX: i32 = 1;

/// Patches queued at most: bounds memory to a few MiB.
pub const PATCHES_IN_FLIGHT_MAX: usize = 32;

pub struct PatchJob {
    pub ino: u64,
    pub index: u64,
    /// The target's record before the patch, and its stored bytes, still unverified.
    pub old: BlockPtr,
    pub old_stored: Vec<u8>,
    pub logical_bytes: u32,
    pub mask: u32,
    pub hash: u128,
    pub data: Vec<u8>,
    /// Where the record is, for messages ("record 12 of part 0 at byte 3456").
    pub at: String,
}

pub struct Patched {
    pub ino: u64,
    pub index: u64,
    pub old: BlockPtr,
    pub fingerprint: Fingerprint,
    pub block: StoredBlock,
}

pub struct Patcher {
    workers: Workers<PatchJob, Result<Patched>>,
}

fn patch(job: PatchJob, level: i32) -> Result<Patched> {
    // The target's old bytes are verified by the result: a patched record whose
    // fingerprint is the sender's came from the base's bytes. Only when it is not (or
    // they do not decompress) is their checksum worth computing, to tell a damaged
    // block of the target from a target that is not at the base.
    let damaged = |job: &PatchJob, stored: &[u8]| {
        (blake3(stored) != job.old.checksum).then(|| {
            Error::corrupt(format!(
                "checksum mismatch in the target's record {} of inode {} (block {}), which {} patches",
                job.index, job.ino, job.old.addr.0, job.at
            ))
        })
    };
    let mut bytes =
        match crate::compress::decompress(job.old_stored.clone(), job.old.compression, job.old.logical_bytes) {
            Ok(bytes) => bytes,
            Err(e) => return Err(damaged(&job, &job.old_stored).unwrap_or(e)),
        };
    bytes.resize(job.logical_bytes as usize, 0);
    let mut at = 0;
    for piece in 0..32usize {
        if job.mask & (1 << piece) != 0 {
            let start = piece * PIECE_BYTES;
            let len = super::wire::piece_len(job.logical_bytes, piece);
            bytes[start..start + len].copy_from_slice(&job.data[at..at + len]);
            at += len;
        }
    }
    let print = fingerprint(&bytes);
    if print.hash != job.hash {
        if let Some(e) = damaged(&job, &job.old_stored) {
            return Err(e);
        }
        return Err(Error::stream(format!(
            "{}: PATCH of record {} of inode {} does not give the sender's bytes: the target's copy differs from the base",
            job.at, job.index, job.ino
        )));
    }
    let block = StoredBlock::prepare(bytes, level);
    Ok(Patched { ino: job.ino, index: job.index, old: job.old, fingerprint: print, block })
}

impl Patcher {
    pub fn new(compression_level: i32) -> Patcher {
        Patcher { workers: Workers::new(move |job| patch(job, compression_level)) }
    }

    pub fn in_flight(&self) -> usize {
        self.workers.in_flight()
    }

    pub fn submit(&mut self, job: PatchJob) {
        self.workers.submit(job);
    }

    /// Waits for one finished patch.
    pub fn wait_one(&mut self) -> Option<Result<Patched>> {
        self.workers.wait_one()
    }
}
