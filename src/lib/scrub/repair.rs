//! Scrub's repairs, written through the store (`Store::rewrite_label`,
//! `Store::rewrite_copy`), which is the one place that writes blocks.
//!
//! Crash ordering (docs/FORMAT.md, "Assumptions about the device"):
//! - Labels one at a time, each durable before the next, the end label (1) first. A bad
//!   end label means the pool opened from block 0, so block 0 is the good label and is
//!   rewritten, if at all (it can hold the end's index), only once label 1 is durable: a
//!   crash tears at most one label, and the other opens the pool.
//! - Then each bad copy of a metadata block, from a good copy, with one flush after them
//!   all: only bad copies are written, never the good one a repair reads from, so a crash
//!   leaves each rewritten copy bad or good and its good copy good.
//!
//! A copy the store refuses to rewrite (it lies outside the data area: the pointer to it
//! is wrong) stays unrepaired and is reported as a problem.

use super::report::ScrubReport;
use crate::block::{BlockAddr, BlockPtr};
use crate::error::{Error, Result};
use crate::format::label::Label;
use crate::store::Store;

/// One bad copy that has a good one to be rewritten from.
pub enum Repair {
    /// A bad label and what it must hold (the good label, with its index).
    Label(Label),
    /// A bad copy of a metadata block at `addr`, the good copy's stored bytes, and the
    /// index in `ScrubReport::damage` of what the bad copy was reported as.
    Copy { damage: usize, addr: BlockAddr, ptr: BlockPtr, stored: Vec<u8> },
}

impl Repair {
    /// A label's repair written with `current`'s contents (the good label as a writer
    /// reads it now) and its own index; a block copy's as it is (its block never
    /// changes).
    pub fn with_label_as(self, current: &Label) -> Repair {
        match self {
            Repair::Label(label) => Repair::Label(Label { index: label.index, ..current.clone() }),
            copy => copy,
        }
    }
}

/// Writes every repair, in the order the module header gives, and marks in `report`
/// what was repaired once it is durable.
pub fn apply(store: &mut Store, mut repairs: Vec<Repair>, report: &mut ScrubReport) -> Result<()> {
    repairs.sort_by_key(|repair| match repair {
        Repair::Label(label) => (0, std::cmp::Reverse(label.index)),
        Repair::Copy { .. } => (1, std::cmp::Reverse(0)),
    });
    let mut labels_rewritten = 0;
    let mut copies_rewritten = Vec::new();
    for repair in &repairs {
        match repair {
            Repair::Label(label) => {
                store.rewrite_label(label)?;
                labels_rewritten += 1;
            }
            Repair::Copy { damage, addr, ptr, stored } => match store.rewrite_copy(*addr, ptr, stored) {
                Ok(()) => copies_rewritten.push(*damage),
                Err(Error::Corrupt(what)) => {
                    let d = &report.damage[*damage];
                    report
                        .problems
                        .push(format!("copy {} of {} block {} not rewritten: {what}", d.copy, d.kind, d.block));
                }
                Err(other) => return Err(other),
            },
        }
    }
    if !copies_rewritten.is_empty() {
        store.sync_device()?;
    }
    for damage in copies_rewritten {
        report.damage[damage].repaired = true;
    }
    report.labels_repaired = labels_rewritten > 0 && labels_rewritten == report.labels_damaged.len();
    Ok(())
}
