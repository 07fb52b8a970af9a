//! WRITE records' content, checked on worker threads while the stream is applied.
//!
//! Each WRITE's blocks go to free space as they arrive; whether they hold what the
//! record claims (the sender's checksums, decompression to the claimed sizes, the
//! claimed fingerprints: `fs::apply::check_stored_record`) is checked beside, on the
//! other cores. A full receive is bound by reading the stream and writing the device,
//! and the same checks inline on that thread made it twice as slow.
//!
//! Nothing is committed before every check has passed (`finish`). A failure means the
//! sender's data contradicts its own record (the frames' checksums rule out damage in
//! transit), so the part is refused as an invalid tree, not saved for a resume: resuming
//! would bring the same data again.

use super::framing::Position;
use crate::error::{Error, Result};
use crate::fs::apply::{StoredRecord, check_stored_record};
use crate::workers::Workers;
use std::sync::Arc;

/// Stored bytes handed out and not yet checked, at most: bounds the memory the records
/// held for the workers take (a check is quicker than reading its record, so this is rarely reached).
const BYTES_IN_FLIGHT_MAX: usize = 32 << 20;

/// Records are handed out in batches of about this many stored bytes: waking a worker
/// for each tiny file's record cost more than checking it.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_RECORDS_MAX: usize = 1024;

struct Job {
    ino: u64,
    at: Position,
    record: Arc<StoredRecord>,
}

/// A failed check: the record's inode and place in the stream, and what was wrong.
struct Failure {
    ino: u64,
    at: Position,
    what: String,
}

pub struct ContentChecker {
    workers: Workers<Vec<Job>, (usize, Option<Failure>)>,
    batch: Vec<Job>,
    batch_bytes: usize,
    bytes_in_flight: usize,
    failure: Option<Failure>,
}

impl Default for ContentChecker {
    fn default() -> ContentChecker {
        ContentChecker::new()
    }
}

impl ContentChecker {
    pub fn new() -> ContentChecker {
        let workers = Workers::new(|batch: Vec<Job>| {
            let bytes = batch.iter().map(|job| stored_bytes(&job.record)).sum();
            // The first failure in stream order is the one to name.
            let failure = batch.into_iter().find_map(|job| {
                check_stored_record(&job.record).err().map(|e| Failure {
                    ino: job.ino,
                    at: job.at,
                    what: match e {
                        Error::Stream { what } => what,
                        other => other.to_string(),
                    },
                })
            });
            (bytes, failure)
        });
        ContentChecker { workers, batch: Vec::new(), batch_bytes: 0, bytes_in_flight: 0, failure: None }
    }

    /// Hands out a check of `record`, a WRITE of inode `ino` at `at` in the stream.
    pub fn submit(&mut self, ino: u64, at: Position, record: Arc<StoredRecord>) {
        self.batch_bytes += stored_bytes(&record);
        self.batch.push(Job { ino, at, record });
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_RECORDS_MAX {
            self.hand_out();
        }
    }

    fn hand_out(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        while self.bytes_in_flight >= BYTES_IN_FLIGHT_MAX {
            self.wait_one();
        }
        self.bytes_in_flight += self.batch_bytes;
        self.batch_bytes = 0;
        self.workers.submit(std::mem::take(&mut self.batch));
    }

    fn wait_one(&mut self) {
        if let Some((bytes, failure)) = self.workers.wait_one() {
            self.bytes_in_flight -= bytes;
            // The first record of the stream that failed is the one to name.
            if let Some(f) = failure {
                if self.failure.as_ref().is_none_or(|seen| f.at.offset < seen.at.offset) {
                    self.failure = Some(f);
                }
            }
        }
    }

    /// Waits for every check; the first failing record, as an invalid tree naming it
    /// (`path_of` gives an inode's path in the tree being received, if it has one).
    pub fn finish(&mut self, path_of: impl FnOnce(u64) -> Option<String>) -> Result<()> {
        self.hand_out();
        while self.workers.in_flight() > 0 {
            self.wait_one();
        }
        match self.failure.take() {
            None => Ok(()),
            Some(Failure { ino, at, what }) => {
                let path = path_of(ino).map(|p| format!(" ({p})")).unwrap_or_default();
                Err(Error::InvalidTree {
                    what: format!(
                        "WRITE record {} of part {} at byte {}, inode {ino}{path}: {what}",
                        at.record, at.part, at.offset
                    ),
                })
            }
        }
    }
}

fn stored_bytes(record: &StoredRecord) -> usize {
    record.base.stored.len() + record.overlay.as_ref().map_or(0, |o| o.2.stored.len())
}
