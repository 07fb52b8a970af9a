//! Reads many blocks in address order, in requests of up to 4 MiB, from several threads.
//! Reading what lies between nearby blocks costs less than another request, so a request
//! spans small gaps. Both passes of a scrub read through it.

use crate::block::BLOCK_BYTES;
use crate::device::Device;
use crate::error::Result;
use std::sync::atomic::{AtomicUsize, Ordering};

const RUN_BYTES_MAX: u64 = 4 << 20;
/// Gaps of up to this many blocks are read through rather than split into two requests.
const GAP_BLOCKS_MAX: u64 = 32;
/// Reader threads: enough to keep a device's queue busy while others hash.
const READERS: usize = 4;

/// A run of blocks to read: one copy of one block, inside the data area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub blocks: u64,
}

/// Extents read with one request.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    start: u64,
    blocks: u64,
    extents: std::ops::Range<usize>,
}

/// Groups extents sorted by start into runs.
fn runs(extents: &[Extent]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (i, extent) in extents.iter().enumerate() {
        let end = extent.start + extent.blocks;
        if let Some(run) = runs.last_mut() {
            let run_end = run.start + run.blocks;
            let joined = end.max(run_end) - run.start;
            if extent.start <= run_end + GAP_BLOCKS_MAX && joined * BLOCK_BYTES <= RUN_BYTES_MAX {
                run.blocks = joined;
                run.extents.end = i + 1;
                continue;
            }
        }
        runs.push(Run { start: extent.start, blocks: extent.blocks, extents: i..i + 1 });
    }
    runs
}

/// What each extent's bytes go to: `visit(index, bytes)`, on a reader thread.
pub type Visit<'a> = dyn Fn(usize, Result<&[u8]>) + Sync + 'a;

/// Reads every extent (sorted by start) and hands its bytes to `visit`; `progress(bytes)`
/// is called on this thread as reads complete. A failed request is retried extent by
/// extent, so one unreadable sector fails only the blocks it holds.
pub fn read_extents(dev: &dyn Device, extents: &[Extent], visit: &Visit, progress: &mut dyn FnMut(u64)) {
    debug_assert!(extents.windows(2).all(|w| w[0].start <= w[1].start));
    let runs = runs(extents);
    // Direct reads where the device allows them: a scrub reads most of the pool once,
    // and the copy through the page cache was most of its system time.
    let Some(reader) = dev.direct_reader().or_else(|| dev.shared_reader()) else {
        // A device without a second handle (memory): one thread.
        let mut buffer = Vec::new();
        for run in &runs {
            progress(read_run(&|offset, buf| dev.read_at(offset, buf), extents, run, &mut buffer, visit));
        }
        return;
    };
    let read = |offset: u64, buf: &mut [u8]| reader.read_at(offset, buf);
    let next = AtomicUsize::new(0);
    // Each thread reports every run it read; the channel closes when the last one ends,
    // so a batch of a few nodes returns as soon as they are read.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<u64>();
    let (runs, next, read) = (&runs, &next, &read);
    std::thread::scope(|scope| {
        for _ in 0..READERS.min(runs.len()) {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let mut buffer = Vec::new();
                while let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    // The receiver lives until every sender is gone.
                    let _ = done_tx.send(read_run(read, extents, run, &mut buffer, visit));
                }
            });
        }
        drop(done_tx);
        for bytes in done_rx {
            progress(bytes);
        }
    });
}

/// Reads one run; returns the bytes of its extents.
fn read_run(
    read: &dyn Fn(u64, &mut [u8]) -> Result<()>,
    extents: &[Extent],
    run: &Run,
    buffer: &mut Vec<u8>,
    visit: &Visit,
) -> u64 {
    let run_bytes = aligned(buffer, (run.blocks * BLOCK_BYTES) as usize);
    let whole = read(run.start * BLOCK_BYTES, run_bytes).is_ok();
    let mut bytes = 0;
    for i in run.extents.clone() {
        let extent = extents[i];
        let len = (extent.blocks * BLOCK_BYTES) as usize;
        bytes += len as u64;
        if whole {
            let at = ((extent.start - run.start) * BLOCK_BYTES) as usize;
            let run_bytes = aligned(buffer, (run.blocks * BLOCK_BYTES) as usize);
            visit(i, Ok(&run_bytes[at..at + len]));
        } else {
            let mut own = Vec::new();
            let own = aligned(&mut own, len);
            match read(extent.start * BLOCK_BYTES, own) {
                Ok(()) => visit(i, Ok(own)),
                Err(e) => visit(i, Err(e)),
            }
        }
    }
    bytes
}

/// `len` bytes of `buffer` starting at a 4096-aligned address, as direct reads need.
fn aligned(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    let align = BLOCK_BYTES as usize;
    if buffer.len() < len + align {
        buffer.resize(len + align, 0);
    }
    let at = buffer.as_ptr().align_offset(align);
    &mut buffer[at..at + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_span_small_gaps_and_stop_at_large_ones_and_at_their_size() {
        let extent = |start, blocks| Extent { start, blocks };
        let extents = [extent(100, 32), extent(140, 32), extent(1000, 4), extent(1004, 1024), extent(2028, 8)];
        let got: Vec<(u64, u64, usize)> = runs(&extents).iter().map(|r| (r.start, r.blocks, r.extents.len())).collect();
        // 100..172 with an 8-block gap is one run; 1000 starts another; the 4 MiB cap
        // splits 1000+4 from 1004+1024 and that from 2028.
        assert_eq!(got, vec![(100, 72, 2), (1000, 4, 1), (1004, 1024, 1), (2028, 8, 1)]);
    }

    #[test]
    fn every_extent_is_visited_with_its_own_bytes() {
        let mut dev = crate::device::MemoryDevice::new(64 * BLOCK_BYTES);
        for (i, b) in dev.bytes.iter_mut().enumerate() {
            *b = (i / BLOCK_BYTES as usize) as u8;
        }
        let extents = [Extent { start: 3, blocks: 2 }, Extent { start: 9, blocks: 1 }, Extent { start: 60, blocks: 4 }];
        let seen = std::sync::Mutex::new(Vec::new());
        let mut total = 0;
        read_extents(
            &dev,
            &extents,
            &|i, bytes| {
                let bytes = bytes.unwrap();
                seen.lock().unwrap().push((i, bytes[0], bytes.len()))
            },
            &mut |b| total += b,
        );
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, vec![(0, 3, 8192), (1, 9, 4096), (2, 60, 16384)]);
        assert_eq!(total, 7 * BLOCK_BYTES);
    }
}
