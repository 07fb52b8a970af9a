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
use crate::device::SharedReader;
use crate::error::{Error, Result};
use crate::fs::record::{Fingerprint, PIECE_BYTES, fingerprint};
use crate::store::StoredBlock;
use crate::workers::Workers;
use std::sync::Arc;

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
    /// The target's record before the patch, and its stored bytes if the caller read
    /// them (else the worker reads them through the shared reader), still unverified.
    pub old: BlockPtr,
    pub old_stored: Option<Vec<u8>>,
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
    reads: bool,
}

fn read_old(job: &mut PatchJob, reader: Option<&dyn SharedReader>) -> Result<Vec<u8>> {
    if let Some(stored) = job.old_stored.take() {
        return Ok(stored);
    }
    let reader = reader.expect("a job without bytes comes with a reader");
    let mut stored = vec![0u8; job.old.stored_bytes as usize];
    reader.read_at(job.old.addr.byte_offset(), &mut stored)?;
    Ok(stored)
}

fn patch(mut job: PatchJob, level: i32, reader: Option<&dyn SharedReader>) -> Result<Patched> {
    let old_stored = read_old(&mut job, reader)?;
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
    let mut bytes = match crate::compress::decompress(old_stored.clone(), job.old.compression, job.old.logical_bytes) {
        Ok(bytes) => bytes,
        Err(e) => return Err(damaged(&job, &old_stored).unwrap_or(e)),
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
        if let Some(e) = damaged(&job, &old_stored) {
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
    /// With a shared reader, the workers read the old records themselves: a receive
    /// into a cold cache waits for many small random reads, and several in flight hide
    /// their latency, so there are more workers than cores.
    pub fn new(compression_level: i32, reader: Option<Arc<dyn SharedReader>>) -> Patcher {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        let threads = if reader.is_some() { (2 * cores).max(4) } else { cores };
        let reads = reader.is_some();
        let workers = Workers::with_threads(threads, move |job| patch(job, compression_level, reader.as_deref()));
        Patcher { workers, reads }
    }

    pub fn reads_for_itself(&self) -> bool {
        self.reads
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAddr, BlockKind, Compression, Txg};

    fn job(old: &[u8], stored: Vec<u8>, new_piece: &[u8], hash: u128) -> PatchJob {
        let ptr = BlockPtr {
            addr: BlockAddr(100),
            ditto: BlockAddr(0),
            birth: Txg(3),
            stored_bytes: old.len() as u32,
            logical_bytes: old.len() as u32,
            kind: BlockKind::FileData,
            compression: Compression::None,
            level: 0,
            checksum: blake3(old),
        };
        PatchJob {
            ino: 5,
            index: 0,
            old: ptr,
            old_stored: Some(stored),
            logical_bytes: old.len() as u32,
            mask: 0b10,
            hash,
            data: new_piece.to_vec(),
            at: "record 9 of part 0 at byte 1234".into(),
        }
    }

    #[test]
    fn a_patch_checks_its_result_and_names_damage() {
        // Goal: a good patch gives the sender's record; a target record that is not the
        // base's is a stream error naming the record; a damaged one is corruption.
        let old: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
        let piece = vec![0xAB; 4096];
        let mut new = old.clone();
        new[4096..].copy_from_slice(&piece);
        let hash = fingerprint(&new).hash;
        let done = patch(job(&old, old.clone(), &piece, hash), 1, None).unwrap();
        assert_eq!(done.fingerprint.hash, hash);
        let err = patch(job(&old, old.clone(), &piece, hash ^ 1), 1, None).err().unwrap();
        assert!(matches!(&err, Error::Stream { what } if what.contains("record 9 of part 0")), "{err}");
        let mut damaged = old.clone();
        damaged[10] ^= 1;
        let err = patch(job(&old, damaged, &piece, hash), 1, None).err().unwrap();
        assert!(matches!(&err, Error::Corrupt { what } if what.contains("checksum mismatch")), "{err}");
    }
}
