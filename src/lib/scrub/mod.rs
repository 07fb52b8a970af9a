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
//! - `metadata`: the metadata pass, which hands data to the data pass in batches (data,
//!   reader, repair, report, roots);
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

use crate::error::Result;
use crate::pool::Pool;
use metadata::MetadataPass;
use repair::Repair;
use roots::Root;

/// Reads and verifies every copy of every reachable block; repairs what it can (the pool
/// open for writing).
pub fn scrub_pool(
    pool: &mut Pool,
    options: ScrubOptions,
    progress: &mut dyn FnMut(&ScrubProgress),
) -> Result<ScrubReport> {
    scrub_then_repair(pool, options, progress, |pool, repairs, report| repair::apply(&mut pool.store, repairs, report))
}

/// `scrub_pool` on a pool open for reading, beside writers: the reading pins its commit
/// whole, and what it can repair it repairs through a writer that `open_writer` opens
/// (waiting its turn) while that pin still holds every block it read unused. A label is
/// rewritten as that writer reads the good one, which a writer may have changed meanwhile
/// (a feature bit).
pub fn scrub_beside_writers(
    pool: &mut Pool,
    options: ScrubOptions,
    progress: &mut dyn FnMut(&ScrubProgress),
    open_writer: &mut dyn FnMut() -> Result<Pool>,
) -> Result<ScrubReport> {
    scrub_then_repair(pool, options, progress, |_, repairs, report| {
        let mut writer = open_writer()?;
        let current = writer.label.clone();
        let repairs = repairs.into_iter().map(|r| r.with_label_as(&current)).collect();
        repair::apply(&mut writer.store, repairs, report)
    })
}

/// Reads and verifies everything, then, if asked and there is something a good copy can
/// mend, hands the repairs to `repair`.
fn scrub_then_repair(
    pool: &mut Pool,
    options: ScrubOptions,
    progress: &mut dyn FnMut(&ScrubProgress),
    repair: impl FnOnce(&mut Pool, Vec<Repair>, &mut ScrubReport) -> Result<()>,
) -> Result<ScrubReport> {
    let started = std::time::Instant::now();
    let (mut report, repairs) = pool.reading_the_device(|pool| scrub_device(pool, progress))?;
    if options.repair && !repairs.is_empty() {
        repair(pool, repairs, &mut report)?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads and verifies everything; returns the report and the repairs a good copy allows.
fn scrub_device(pool: &mut Pool, progress: &mut dyn FnMut(&ScrubProgress)) -> Result<(ScrubReport, Vec<Repair>)> {
    let started = std::time::Instant::now();
    pool.store.flush_buffer()?;
    let mut report = ScrubReport::default();
    let mut repairs = labels::verify(pool, &mut report);
    let roots = roots::roots(pool, &mut report.problems);
    progress(&ScrubProgress { phase: "metadata", done_bytes: 0, total_bytes: 0 });
    let mut pass = MetadataPass::new(pool, report, progress);
    // The pool root and the space log first: the rest lies in blocks the log lists, and
    // writers may commit meanwhile (pool/pins.rs).
    let (implicit, listed): (Vec<&Root>, Vec<&Root>) = roots.iter().partition(|r| r.is_implicit());
    for root in implicit {
        pass.walk(root);
    }
    pass.pool.pin_whole_commit()?;
    for root in listed {
        pass.walk(root);
    }
    pass.walk_trees(&roots);
    pass.verify_data();
    let MetadataPass { mut report, repairs: copy_repairs, data_seconds, .. } = pass;
    repairs.extend(copy_repairs);
    report.metadata_seconds = started.elapsed().as_secs_f64() - data_seconds;
    if report.unrecoverable() > 0 {
        blame::blame(pool, &roots, &mut report.damage);
    }
    Ok((report, repairs))
}
