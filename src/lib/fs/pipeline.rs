//! Record preparation on worker threads: fingerprint, zero test, compression and
//! checksum of file records run in parallel, while the calling thread reads files and
//! updates the tree. Results are applied in any order; each names its inode and index.
//!
//! At most `IN_FLIGHT_MAX` records are queued, which bounds memory to a few MiB.

use super::record::{Fingerprint, fingerprint};
use crate::store::StoredBlock;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
    jobs: Option<Sender<Job>>,
    results: Receiver<Prepared>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
}

fn prepare(job: Job, level: i32) -> Prepared {
    let print = fingerprint(&job.data);
    let logical_bytes = job.data.len();
    let stored = if job.data.iter().all(|&b| b == 0) { None } else { Some(StoredBlock::prepare(job.data, level)) };
    Prepared { ino: job.ino, index: job.index, logical_bytes, fingerprint: print, stored }
}

impl Pipeline {
    pub fn new(compression_level: i32) -> Pipeline {
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel::<Prepared>();
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
                        if done.send(prepare(job, compression_level)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Pipeline { jobs: Some(job_tx), results: done_rx, workers, in_flight: 0 }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn submit(&mut self, job: Job) {
        let sender = self.jobs.as_ref().expect("pipeline is open");
        sender.send(job).expect("pipeline workers outlive the pipeline");
        self.in_flight += 1;
    }

    /// Waits for one finished record.
    pub fn wait_one(&mut self) -> Option<Prepared> {
        if self.in_flight == 0 {
            return None;
        }
        let done = self.results.recv().expect("pipeline workers outlive the pipeline");
        self.in_flight -= 1;
        Some(done)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.jobs = None; // workers see the channel close and stop
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
