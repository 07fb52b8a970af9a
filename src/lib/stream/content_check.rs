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
    workers: Workers<Job, (usize, Option<Failure>)>,
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
        let workers = Workers::new(|job: Job| {
            let bytes = stored_bytes(&job.record);
            let failure = check_stored_record(&job.record).err().map(|e| Failure {
                ino: job.ino,
                at: job.at,
                what: match e {
                    Error::Stream { what } => what,
                    other => other.to_string(),
                },
            });
            (bytes, failure)
        });
        ContentChecker { workers, bytes_in_flight: 0, failure: None }
    }

    /// Hands out a check of `record`, a WRITE of inode `ino` at `at` in the stream.
    pub fn submit(&mut self, ino: u64, at: Position, record: Arc<StoredRecord>) {
        while self.bytes_in_flight >= BYTES_IN_FLIGHT_MAX {
            self.wait_one();
        }
        self.bytes_in_flight += stored_bytes(&record);
        self.workers.submit(Job { ino, at, record });
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
