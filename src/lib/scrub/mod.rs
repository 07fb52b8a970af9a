//! `snapctl scrub`: reads every copy of every reachable block, verifies its checksum,
//! rewrites a bad copy of metadata from a good one, and names the files and snapshots
//! that damage beyond repair affects.
//!
//! Unlike `check`, it proves nothing about the structure: it is the fast, regular pass
//! (as `zpool scrub` is) that finds bit rot before a read needs the block. Metadata is
//! walked first, every copy on its own; file data, the bulk, is then read in address order
//! in large requests by several threads, at close to the device's raw read rate.
//!
//! The entry point is `scrub_pool`, below. Its modules, each importing only those listed
//! after it (no cycle):
//! - `blame`: who loses a block no copy of which is good (roots, report);
//! - `metadata`: the metadata pass (reader, repair, report, roots);
//! - `data`: the data pass (reader, report);
//! - `labels`: both labels checked (repair, report);
//! - `repair`: bad copies rewritten through the store, in crash-safe order (report);
//! - `roots`: where the walks start and who owns each root;
//! - `reader`: large, threaded reads in address order;
//! - `report`: the types a scrub reports.

mod blame;
mod data;
mod labels;
mod metadata;
mod reader;
mod repair;
mod report;
mod roots;

pub use report::{Damage, ScrubOptions, ScrubProgress, ScrubReport};

use crate::block::{BLOCK_BYTES, BlockPtr};
use crate::error::Result;
use crate::pool::Pool;
use metadata::MetadataPass;

/// Reads and verifies every copy of every reachable block; repairs what it can.
pub fn scrub_pool(
    pool: &mut Pool,
    options: ScrubOptions,
    progress: &mut dyn FnMut(&ScrubProgress),
) -> Result<ScrubReport> {
    let started = std::time::Instant::now();
    pool.store.flush_buffer()?;
    let mut report = ScrubReport::default();
    let mut repairs = labels::verify(pool, &mut report);
    let roots = roots::roots(pool, &mut report.problems);
    progress(&ScrubProgress { phase: "metadata", done_bytes: 0, total_bytes: 0 });
    let mut pass = MetadataPass::new(pool, report);
    for root in &roots {
        pass.walk(root);
    }
    pass.walk_trees(&roots);
    let MetadataPass { mut report, mut data, repairs: copy_repairs, .. } = pass;
    repairs.extend(copy_repairs);
    report.metadata_seconds = started.elapsed().as_secs_f64();
    report.data_blocks = data.len() as u64;

    let total_bytes: u64 = data.iter().map(|p| p.allocated_blocks() * BLOCK_BYTES).sum();
    let mut done_bytes = 0;
    let usable = (pool.store.alloc.usable_start, pool.store.alloc.usable_end);
    let bad = data::verify(pool.store.dev.as_ref(), &mut data, usable, &mut |bytes| {
        done_bytes += bytes;
        progress(&ScrubProgress { phase: "data", done_bytes, total_bytes });
    });
    report.blocks_verified += data.len() as u64 - bad.len() as u64;
    let stored = |ptrs: &mut dyn Iterator<Item = &BlockPtr>| ptrs.map(|p| p.stored_bytes as u64).sum::<u64>();
    report.bytes_verified += stored(&mut data.iter()) - stored(&mut bad.iter().map(|(p, _)| p));
    for (ptr, error) in bad {
        report.damage.push(Damage::new(&ptr, 0, ptr.addr, error, false));
    }
    if report.unrecoverable() > 0 {
        blame::blame(pool, &roots, &mut report.damage);
    }
    if options.repair && !repairs.is_empty() {
        repair::apply(&mut pool.store, repairs, &mut report)?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
