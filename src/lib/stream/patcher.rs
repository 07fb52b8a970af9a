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
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
    jobs: Option<Sender<PatchJob>>,
    results: Receiver<Result<Patched>>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
}

fn patch(job: PatchJob, level: i32) -> Result<Patched> {
    if blake3(&job.old_stored) != job.old.checksum {
        return Err(Error::corrupt(format!(
            "checksum mismatch in the target's record {} of inode {} (block {}), which {} patches",
            job.index, job.ino, job.old.addr.0, job.at
        )));
    }
    let mut bytes = crate::compress::decompress(job.old_stored, job.old.compression, job.old.logical_bytes)?;
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
        let (job_tx, job_rx) = channel::<PatchJob>();
        let (done_tx, done_rx) = channel::<Result<Patched>>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let count = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        let workers = (0..count)
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if done.send(patch(job, compression_level)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Patcher { jobs: Some(job_tx), results: done_rx, workers, in_flight: 0 }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn submit(&mut self, job: PatchJob) {
        let sender = self.jobs.as_ref().expect("patcher is open");
        sender.send(job).expect("patcher workers outlive the patcher");
        self.in_flight += 1;
    }

    /// Waits for one finished patch.
    pub fn wait_one(&mut self) -> Option<Result<Patched>> {
        if self.in_flight == 0 {
            return None;
        }
        let done = self.results.recv().expect("patcher workers outlive the patcher");
        self.in_flight -= 1;
        Some(done)
    }
}

impl Drop for Patcher {
    fn drop(&mut self) {
        self.jobs = None; // workers see the channel close and stop
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
