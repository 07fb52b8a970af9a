//! One direct write in flight on a thread of its own, so the device writes one buffer
//! while the caller fills the next: a copy-in keeps both the cores and the device busy.
//!
//! At most one write is in flight: `submit` waits for the one before, then hands back
//! that one's buffer to fill next, so two buffers go round and memory stays bounded.
//! `wait` is the barrier every other use of the device passes first (file.rs), so reads,
//! later writes and flushes come after the write in flight, as they would after a write
//! that had returned. A failed write fails every later `submit` and `wait`: nothing
//! written after it is reported durable.
//!
//! A file system that takes the O_DIRECT open but refuses the write (EINVAL) gets the
//! write through the page cache instead, and `refused` tells the device to send no more.

use super::aligned::AlignedBuf;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

struct Job {
    offset: u64,
    buf: AlignedBuf,
}

struct Done {
    offset: u64,
    buf: AlignedBuf,
    result: io::Result<()>,
}

/// What the caller sees of the write in flight.
struct State {
    done: Receiver<Done>,
    in_flight: bool,
    /// The bytes the write in flight covers: [start, end).
    in_flight_range: (u64, u64),
    /// The buffer of the last write that ended, to be filled next.
    spare: Option<AlignedBuf>,
    /// The first write that failed: (offset, length, error).
    failed: Option<(u64, usize, io::Error)>,
}

pub struct WriteBehind {
    jobs: Option<Sender<Job>>,
    state: Mutex<State>,
    thread: Option<JoinHandle<()>>,
    refused: Arc<AtomicBool>,
}

impl WriteBehind {
    /// Writes go to `direct` (opened O_DIRECT), or to `cached` (the same file without
    /// it) where the file system refuses a direct write.
    pub fn start(direct: File, cached: File) -> io::Result<WriteBehind> {
        let (job_tx, job_rx) = channel::<Job>();
        let (done_tx, done_rx) = channel::<Done>();
        let refused = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&refused);
        let thread = std::thread::Builder::new().name("write-behind".into()).spawn(move || {
            for Job { offset, buf } in job_rx {
                let result = match direct.write_all_at(&buf, offset) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        flag.store(true, Ordering::Relaxed);
                        cached.write_all_at(&buf, offset)
                    }
                    other => other,
                };
                if done_tx.send(Done { offset, buf, result }).is_err() {
                    return;
                }
            }
        })?;
        let state = State { done: done_rx, in_flight: false, in_flight_range: (0, 0), spare: None, failed: None };
        Ok(WriteBehind { jobs: Some(job_tx), state: Mutex::new(state), thread: Some(thread), refused })
    }

    /// True once a direct write was refused: the device should write through the cache.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Starts writing `buf` at `offset` once the write before it has ended; returns an
    /// empty buffer to fill next. Errors: the write before, or an earlier one, failed.
    pub fn submit(&self, offset: u64, buf: AlignedBuf) -> Result<AlignedBuf, (u64, usize, io::Error)> {
        let mut state = self.lock();
        Self::settle(&mut state)?;
        let sender = self.jobs.as_ref().expect("open until dropped");
        let end = offset + buf.len() as u64;
        if sender.send(Job { offset, buf }).is_err() {
            return Err((offset, 0, io::Error::other("the write-behind thread is gone")));
        }
        state.in_flight = true;
        state.in_flight_range = (offset, end);
        Ok(state.spare.take().unwrap_or_default())
    }

    /// Waits for the write in flight, if any. Errors: it, or an earlier one, failed.
    pub fn wait(&self) -> Result<(), (u64, usize, io::Error)> {
        Self::settle(&mut self.lock())
    }

    /// Waits for the write in flight only if it covers part of the `len` bytes at
    /// `offset` (widened to whole pages, which the page cache shares): a read elsewhere
    /// goes on while the device writes. Errors: as `wait`, when it waits.
    pub fn wait_for_range(&self, offset: u64, len: usize) -> Result<(), (u64, usize, io::Error)> {
        const PAGE: u64 = 4096;
        let mut state = self.lock();
        let start = offset / PAGE * PAGE;
        let end = offset.saturating_add(len as u64).div_ceil(PAGE).saturating_mul(PAGE);
        let (busy_start, busy_end) = state.in_flight_range;
        if state.in_flight && busy_start < end && start < busy_end {
            return Self::settle(&mut state);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-done in the state.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn settle(state: &mut State) -> Result<(), (u64, usize, io::Error)> {
        if state.in_flight {
            state.in_flight = false;
            match state.done.recv() {
                Ok(Done { buf, result: Ok(()), .. }) => {
                    let mut buf = buf;
                    buf.clear();
                    state.spare = Some(buf);
                }
                Ok(Done { offset, buf, result: Err(e) }) => state.failed = Some((offset, buf.len(), e)),
                Err(_) => state.failed = Some((0, 0, io::Error::other("the write-behind thread is gone"))),
            }
        }
        match &state.failed {
            None => Ok(()),
            Some((offset, len, e)) => Err((*offset, *len, copy_error(e))),
        }
    }
}

/// io::Error is not Clone: the same kind, OS code and message.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        self.jobs = None; // the thread ends its write in flight, sees the close and stops
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;

    fn buffer(bytes: &[u8]) -> AlignedBuf {
        let mut buf = AlignedBuf::default();
        buf.extend_from_slice(bytes);
        buf
    }

    // Goal: a file system that opens O_DIRECT but refuses the write (EINVAL) still gets
    // the bytes, through the cache, and says so. Method: a length O_DIRECT refuses on
    // a disk file system (100 bytes), then an aligned write after it.
    #[test]
    fn a_refused_direct_write_goes_through_the_cache() {
        let dir = tempfile::TempDir::new_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("img");
        let cached = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let direct = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&path).unwrap();
        let behind = WriteBehind::start(direct, cached).unwrap();
        let next = behind.submit(0, buffer(&[7u8; 100])).unwrap();
        assert!(next.is_empty());
        behind.wait().unwrap();
        assert!(behind.refused(), "a 100-byte direct write is refused on a disk file system");
        let next = behind.submit(4096, buffer(&[9u8; 4096])).unwrap();
        assert!(next.is_empty(), "the buffer handed back is empty");
        behind.wait().unwrap();
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len(), 8192);
        assert!(file[..100] == [7u8; 100] && file[100..4096].iter().all(|&b| b == 0));
        assert!(file[4096..] == [9u8; 4096]);
    }

    // Goal: once a write failed, nothing after it is reported done: every later submit
    // and wait fails, naming the write that failed. Method: a descriptor that cannot write.
    #[test]
    fn a_failed_write_fails_every_later_call() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let read_only = || File::open(file.path()).unwrap();
        let behind = WriteBehind::start(read_only(), read_only()).unwrap();
        behind.submit(8192, buffer(&[1u8; 4096])).unwrap();
        for _ in 0..2 {
            let (offset, len, e) = behind.wait().unwrap_err();
            assert_eq!((offset, len, e.raw_os_error()), (8192, 4096, Some(libc::EBADF)));
        }
        let (offset, _, _) = behind.submit(0, buffer(&[2u8; 4096])).unwrap_err();
        assert_eq!(offset, 8192);
        assert!(std::fs::read(file.path()).unwrap().is_empty());
    }
}
