//! Record preparation on worker threads: fingerprint, zero test, compression and
//! checksum of file records run in parallel, while the calling thread reads files and
//! updates the tree. Results are applied in any order; each names its inode and index.
//!
//! At most `IN_FLIGHT_MAX` records are queued, which bounds memory to a few MiB.

use super::FsTree;
use super::record::{Fingerprint, fingerprint};
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
}

pub struct Pipeline {
    workers: Workers<Job, Prepared>,
}

fn prepare(job: Job, level: i32) -> Prepared {
    let print = fingerprint(&job.data);
    let logical_bytes = job.data.len();
    let stored = if job.data.iter().all(|&b| b == 0) { None } else { Some(StoredBlock::prepare(job.data, level)) };
    Prepared { ino: job.ino, index: job.index, logical_bytes, fingerprint: print, stored }
}

impl Pipeline {
    pub fn new(compression_level: i32) -> Pipeline {
        Pipeline { workers: Workers::new(move |job| prepare(job, compression_level)) }
    }

    pub fn in_flight(&self) -> usize {
        self.workers.in_flight()
    }

    pub fn submit(&mut self, job: Job) {
        self.workers.submit(job);
    }

    /// Waits for one finished record.
    pub fn wait_one(&mut self) -> Option<Prepared> {
        self.workers.wait_one()
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
