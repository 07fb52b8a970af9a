//! Record preparation on worker threads: fingerprint, zero test, compression and
//! checksum of file records run in parallel, while the calling thread reads files and
//! updates the tree. Results are applied in any order; each names its inode and index.
//!
//! At most `IN_FLIGHT_MAX` records are queued, which bounds memory to a few MiB.

use super::FsTree;
use super::record::{Fingerprint, fingerprint};
use crate::compress::{Attempt, Codec};
use crate::error::Result;
use crate::store::StoredBlock;
use crate::workers::Workers;

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
    workers: Workers<Job, Prepared>,
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
        Pipeline { workers: Workers::new(move |job| prepare(job, codec)), counts: CompressionCounts::default() }
    }

    pub fn in_flight(&self) -> usize {
        self.workers.in_flight()
    }

    pub fn submit(&mut self, job: Job) {
        self.workers.submit(job);
    }

    /// Waits for one finished record.
    pub fn wait_one(&mut self) -> Option<Prepared> {
        let done = self.workers.wait_one()?;
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
