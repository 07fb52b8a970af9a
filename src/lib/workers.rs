//! A small pool of worker threads that turn jobs into results, for the CPU-heavy steps
//! of a copy-in and of a receive (compression, checksums). Results come back in any
//! order; the caller bounds how many jobs are in flight, and so the memory they hold.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct Workers<J: Send + 'static, R: Send + 'static> {
    jobs: Option<Sender<J>>,
    results: Receiver<R>,
    threads: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl<J: Send + 'static, R: Send + 'static> Workers<J, R> {
    /// One worker per core, at most 8, each running `work` on the jobs it takes.
    pub fn new(work: impl Fn(J) -> R + Send + Sync + 'static) -> Workers<J, R> {
        let count = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        Workers::with_threads(count, work)
    }

    /// `count` workers: more than the cores when the work waits for the device.
    pub fn with_threads(count: usize, work: impl Fn(J) -> R + Send + Sync + 'static) -> Workers<J, R> {
        let (job_tx, job_rx) = channel::<J>();
        let (done_tx, done_rx) = channel::<R>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let work = Arc::new(work);
        let threads = (0..count.max(1))
            .map(|_| {
                let jobs = Arc::clone(&job_rx);
                let done = done_tx.clone();
                let work = Arc::clone(&work);
                std::thread::spawn(move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if done.send(work(job)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Workers { jobs: Some(job_tx), results: done_rx, threads, in_flight: 0 }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn submit(&mut self, job: J) {
        let sender = self.jobs.as_ref().expect("workers are open");
        sender.send(job).expect("workers outlive their pool");
        self.in_flight += 1;
    }

    /// Waits for one finished job; None when none is in flight.
    pub fn wait_one(&mut self) -> Option<R> {
        if self.in_flight == 0 {
            return None;
        }
        let done = self.results.recv().expect("workers outlive their pool");
        self.in_flight -= 1;
        Some(done)
    }
}

impl<J: Send + 'static, R: Send + 'static> Drop for Workers<J, R> {
    fn drop(&mut self) {
        self.jobs = None; // workers see the channel close and stop
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
