//! The data pass: file data blocks (one copy each) sorted by address and read in runs of
//! up to 4 MiB by several threads, each verifying the blocks of its run. Reading what
//! lies between nearby blocks costs less than another request, so a run spans small gaps.

use crate::block::{BLOCK_BYTES, BlockPtr};
use crate::checksum::blake3;
use crate::device::Device;
use crate::error::Result;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const RUN_BYTES_MAX: u64 = 4 << 20;
/// Gaps of up to this many blocks are read through rather than split into two requests.
const GAP_BLOCKS_MAX: u64 = 32;
/// Reader threads: enough to keep a device's queue busy while others hash.
const READERS: usize = 4;

/// A bad data block: its pointer and what was wrong.
pub type BadBlock = (BlockPtr, String);

/// Blocks read with one request, in address order.
struct Run {
    start: u64,
    blocks: u64,
    ptrs: std::ops::Range<usize>,
}

fn runs(ptrs: &[BlockPtr], usable_end: u64) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (i, ptr) in ptrs.iter().enumerate() {
        let start = ptr.addr.0;
        let end = start.saturating_add(ptr.allocated_blocks()).min(usable_end);
        if let Some(run) = runs.last_mut() {
            let run_end = run.start + run.blocks;
            let joined = end.max(run_end) - run.start;
            if start <= run_end + GAP_BLOCKS_MAX && joined * BLOCK_BYTES <= RUN_BYTES_MAX {
                run.blocks = joined;
                run.ptrs.end = i + 1;
                continue;
            }
        }
        runs.push(Run { start, blocks: end.saturating_sub(start), ptrs: i..i + 1 });
    }
    runs
}

/// Verifies every block; `progress(bytes)` is called as runs complete.
pub fn verify(
    dev: &dyn Device,
    ptrs: &mut [BlockPtr],
    usable: (u64, u64),
    progress: &mut dyn FnMut(u64),
) -> Vec<BadBlock> {
    ptrs.sort_unstable_by_key(|p| p.addr.0);
    let mut bad = Vec::new();
    // A pointer outside the data area is damage, not a read.
    let (inside, outside): (Vec<BlockPtr>, Vec<BlockPtr>) = ptrs.iter().copied().partition(|p| {
        p.addr.0 >= usable.0 && p.addr.0.checked_add(p.allocated_blocks()).is_some_and(|end| end <= usable.1)
    });
    for ptr in outside {
        bad.push((ptr, format!("file-data block pointer to block {} lies outside the data area", ptr.addr.0)));
    }
    let runs = runs(&inside, usable.1);
    match dev.shared_reader() {
        Some(reader) => {
            let read = |offset: u64, buf: &mut [u8]| reader.read_at(offset, buf);
            verify_parallel(&read, &inside, &runs, &mut bad, progress);
        }
        None => {
            let mut buffer = Vec::new();
            for run in &runs {
                let read = |offset: u64, buf: &mut [u8]| dev.read_at(offset, buf);
                progress(verify_run(&read, &inside, run, &mut buffer, &mut bad));
            }
        }
    }
    bad
}

type ReadFn<'a> = dyn Fn(u64, &mut [u8]) -> Result<()> + Sync + 'a;

fn verify_parallel(
    read: &ReadFn,
    ptrs: &[BlockPtr],
    runs: &[Run],
    bad: &mut Vec<BadBlock>,
    progress: &mut dyn FnMut(u64),
) {
    let next = AtomicUsize::new(0);
    let done_bytes = AtomicU64::new(0);
    let found = Mutex::new(Vec::new());
    let finished = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..READERS {
            scope.spawn(|| {
                let mut buffer = Vec::new();
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(run) = runs.get(i) else { break };
                    let bytes = verify_run(read, ptrs, run, &mut buffer, &mut local);
                    done_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                found.lock().expect("no reader panics while holding it").extend(local);
                finished.fetch_add(1, Ordering::Release);
            });
        }
        let mut reported = 0;
        while finished.load(Ordering::Acquire) < READERS {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let done = done_bytes.load(Ordering::Relaxed);
            progress(done - reported);
            reported = done;
        }
        progress(done_bytes.load(Ordering::Relaxed) - reported);
    });
    bad.extend(found.into_inner().expect("readers finished"));
}

/// Reads one run and verifies its blocks; returns the bytes verified. A failed read is
/// retried block by block, so one unreadable sector names only the blocks it holds.
fn verify_run(
    read: &dyn Fn(u64, &mut [u8]) -> Result<()>,
    ptrs: &[BlockPtr],
    run: &Run,
    buffer: &mut Vec<u8>,
    bad: &mut Vec<BadBlock>,
) -> u64 {
    buffer.resize((run.blocks * BLOCK_BYTES) as usize, 0);
    let whole = read(run.start * BLOCK_BYTES, buffer).is_ok();
    let mut bytes = 0;
    for ptr in &ptrs[run.ptrs.clone()] {
        let stored = ptr.stored_bytes as usize;
        let mut own = Vec::new();
        let slice = if whole {
            let at = ((ptr.addr.0 - run.start) * BLOCK_BYTES) as usize;
            &buffer[at..at + stored]
        } else {
            own.resize(stored, 0);
            if let Err(e) = read(ptr.addr.0 * BLOCK_BYTES, &mut own) {
                bad.push((*ptr, super::report::describe(e)));
                continue;
            }
            &own[..]
        };
        bytes += stored as u64;
        if blake3(slice) != ptr.checksum {
            bad.push((*ptr, format!("checksum mismatch in file-data block at block {}", ptr.addr.0)));
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAddr, BlockKind, Compression, Txg};

    fn ptr(addr: u64, blocks: u32) -> BlockPtr {
        BlockPtr {
            addr: BlockAddr(addr),
            ditto: BlockAddr(0),
            birth: Txg(1),
            stored_bytes: blocks * BLOCK_BYTES as u32,
            logical_bytes: blocks * BLOCK_BYTES as u32,
            kind: BlockKind::FileData,
            compression: Compression::None,
            level: 0,
            checksum: [0; 32],
        }
    }

    #[test]
    fn runs_span_small_gaps_and_stop_at_large_ones_and_at_their_size() {
        let ptrs = [ptr(100, 32), ptr(140, 32), ptr(1000, 4), ptr(1004, 1024), ptr(2028, 8)];
        let got: Vec<(u64, u64, usize)> =
            runs(&ptrs, 1 << 20).iter().map(|r| (r.start, r.blocks, r.ptrs.len())).collect();
        // 100..172 with an 8-block gap is one run; 1000 starts another; the 4 MiB cap
        // splits after 1004+1024 (1028 blocks would pass 1024).
        assert_eq!(got, vec![(100, 72, 2), (1000, 4, 1), (1004, 1024, 1), (2028, 8, 1)]);
    }
}
