//! Record preparation on worker threads: fingerprint, zero test, compression and
//! checksum of file records run in parallel, while the calling thread reads files and
//! updates the tree. Results come back in the order the records were submitted, whichever
//! worker finishes first: a copy-in lays the same files out the same way every time, in
//! the order it read them (and a test that cuts a sync at its n-th write cuts the same
//! write each run).
//!
//! At most `IN_FLIGHT_MAX` records are queued, which bounds memory to a few MiB.

use super::FsTree;
use super::record::{Fingerprint, fingerprint};
use crate::compress::{Attempt, Codec};
use crate::error::Result;
use crate::store::StoredBlock;
use crate::workers::Workers;
use std::collections::BTreeMap;

pub const IN_FLIGHT_MAX: usize = 64;

pub struct Job {
    pub ino: u64,
    pub index: u64,
    pub data: Vec<u8>,
}

pub struct Prepared {
    pub ino: u64,
    pub index: u64,
    pub logical_bytes: usize,
    pub fingerprint: Fingerprint,
    /// None when the record is all zeros: it becomes a hole.
    pub stored: Option<StoredBlock>,
    /// What the compressor did; Skipped for a hole.
    pub attempt: Attempt,
}

/// What the compressor did with the records of a copy-in, in records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompressionCounts {
    /// Given to the compressor (kept + discarded).
    pub tried: u64,
    /// Stored compressed.
    pub kept: u64,
    /// Not given to it: compression off, a record of one block, random-looking data, a hole.
    pub skipped: u64,
}

impl CompressionCounts {
    pub fn count(&mut self, attempt: Attempt) {
        match attempt {
            Attempt::Skipped => self.skipped += 1,
            Attempt::Kept => {
                self.tried += 1;
                self.kept += 1;
            }
            Attempt::Discarded => self.tried += 1,
        }
    }
}

pub struct Pipeline {
    /// Jobs numbered in the order submitted.
    workers: Workers<(u64, Job), (u64, Prepared)>,
    submitted: u64,
    /// The number of the next record to hand back, and those finished before it.
    next_out: u64,
    finished_early: BTreeMap<u64, Prepared>,
    pub counts: CompressionCounts,
}

fn prepare(job: Job, codec: Codec) -> Prepared {
    let print = fingerprint(&job.data);
    let logical_bytes = job.data.len();
    let (stored, attempt) = if job.data.iter().all(|&b| b == 0) {
        (None, Attempt::Skipped)
    } else {
        let (block, attempt) = StoredBlock::prepare_counted(job.data, codec);
        (Some(block), attempt)
    };
    Prepared { ino: job.ino, index: job.index, logical_bytes, fingerprint: print, stored, attempt }
}

impl Pipeline {
    pub fn new(codec: Codec) -> Pipeline {
        Pipeline {
            workers: Workers::new(move |(seq, job)| (seq, prepare(job, codec))),
            submitted: 0,
            next_out: 0,
            finished_early: BTreeMap::new(),
            counts: CompressionCounts::default(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.workers.in_flight() + self.finished_early.len()
    }

    pub fn submit(&mut self, job: Job) {
        self.workers.submit((self.submitted, job));
        self.submitted += 1;
    }

    /// Waits for the next record in the order submitted.
    pub fn wait_one(&mut self) -> Option<Prepared> {
        let done = loop {
            if let Some(done) = self.finished_early.remove(&self.next_out) {
                break done;
            }
            let (seq, done) = self.workers.wait_one()?;
            self.finished_early.insert(seq, done);
        };
        self.next_out += 1;
        self.counts.count(done.attempt);
        Some(done)
    }
}

/// Applies finished records until at most `keep` are in flight.
pub fn drain(fs: &mut FsTree, pipeline: &mut Pipeline, keep: usize) -> Result<()> {
    while pipeline.in_flight() > keep {
        if let Some(done) = pipeline.wait_one() {
            fs.apply_prepared(done)?;
        }
    }
    Ok(())
}
