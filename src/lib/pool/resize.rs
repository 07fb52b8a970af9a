//! `snapctl expand`: grow a pool into the space a grown device gained (`zpool online -e`).
//!
//! The pool's size is its label's `device_bytes`: it places region 1 and bounds the data
//! area, and free space is rebuilt at every open from the whole data area less what the
//! space log allocates. Growing a pool is therefore moving its end, and nothing else:
//!
//! 1. write a new region 1 at the new end (its label with the new size, the current
//!    commit ring), flush;
//! 2. write the label at block 0 with the new size, flush;
//! 3. zero the old end label, which now lies in free space of the data area, flush.
//!
//! A crash before step 2 is durable leaves the old size: block 0 says so, and the old
//! region 1 is untouched (a growth of less than a region overwrites only ring slots of
//! it, of which region 0 holds the same records). After step 2, the new size. A crash
//! during step 2 may leave block 0 torn (no write is assumed atomic): the search from the
//! end (labels.rs) then finds step 1's label, and below it the old end label that step 3
//! has not zeroed yet. That pair marks the torn label as this expand's, not damage: the
//! pool opens at the new size without a warning, `check` does not count label 0, and the
//! next open for writing finishes steps 2 and 3 (`finish_expand`) before it allocates
//! anything over the old end label. Step 3 keeps a search that finds neither new label
//! from taking the old size, whose data area would not hold the blocks allocated since,
//! and ends the window in which a damaged first label is taken for an expand's.

use super::Pool;
use super::labels::{read_blocks, whole_blocks_bytes};
use super::warning::OpenWarning;
use crate::block::BLOCK_BYTES;
use crate::device::Device;
use crate::error::Result;
use crate::format::label::{Label, REGION_BLOCKS, RING_SLOTS, region_start};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpandOutcome {
    /// The pool now spans the device: `old_bytes` to `new_bytes`.
    Grown { old_bytes: u64, new_bytes: u64 },
    /// The pool already spanned the device, but the label at its start was damaged or
    /// torn (an expand cut short while writing it): it was rewritten.
    FirstLabelRewritten { pool_bytes: u64 },
    /// The device is no larger (in whole blocks) than the pool already is.
    Unchanged { pool_bytes: u64, device_bytes: u64 },
}

impl Pool {
    /// Grows the pool to the device's size now. Must be the only thing the handle does:
    /// no uncommitted changes.
    pub fn expand(&mut self) -> Result<ExpandOutcome> {
        self.writable()?;
        let dirty = self.heads.iter().any(|(id, t)| self.head_changed(*id, t))
            || !self.pending_snapshots.is_empty()
            || !self.removed_snapshots.is_empty()
            || self.tables_changed()
            || self.config_changed;
        assert!(!dirty, "expand runs on a handle without uncommitted changes");
        let dev = self.store.dev.as_ref();
        let old_bytes = self.label.device_bytes;
        let new_bytes = whole_blocks_bytes(dev);
        if new_bytes <= old_bytes {
            // A crash while step 2 wrote the first label leaves it torn, and the pool
            // opened from the end label at the new size: finish the job.
            let wanted = Label { index: 0, ..self.label.clone() };
            let first = Label::decode(&read_blocks(dev, 0, 1)?);
            if !matches!(first, Ok(Some(ref l)) if *l == wanted) {
                let dev = self.store.dev.as_mut();
                dev.write_at(0, &wanted.encode())?;
                dev.flush()?;
                return Ok(ExpandOutcome::FirstLabelRewritten { pool_bytes: old_bytes });
            }
            return Ok(ExpandOutcome::Unchanged { pool_bytes: old_bytes, device_bytes: dev.len() });
        }
        let old_end_region = region_start(1, old_bytes);
        let new_end_region = region_start(1, new_bytes);
        let label = |index: u32| Label { index, device_bytes: new_bytes, ..self.label.clone() };

        // Step 1: the new region 1, its ring a copy of region 0's with the opened commit
        // in its slot (the one region 0 may lack, if it was opened from region 1).
        let mut region = vec![0u8; (REGION_BLOCKS * BLOCK_BYTES) as usize];
        region[..BLOCK_BYTES as usize].copy_from_slice(&label(1).encode());
        let ring = read_blocks(dev, 1, RING_SLOTS)?;
        region[BLOCK_BYTES as usize..((1 + RING_SLOTS) * BLOCK_BYTES) as usize].copy_from_slice(&ring);
        let slot = ((1 + self.commit.txg.0 % RING_SLOTS) * BLOCK_BYTES) as usize;
        region[slot..slot + BLOCK_BYTES as usize].copy_from_slice(&self.commit.encode());
        let dev = self.store.dev.as_mut();
        dev.write_at(new_end_region * BLOCK_BYTES, &region)?;
        dev.flush()?;
        // Step 2: the label at block 0 now names the new end.
        dev.write_at(0, &label(0).encode())?;
        dev.flush()?;
        // Step 3: the old end label, now free space, no longer looks like one.
        dev.write_at(old_end_region * BLOCK_BYTES, &vec![0u8; BLOCK_BYTES as usize])?;
        dev.flush()?;

        self.label = label(0);
        self.store.alloc.grow_to(new_end_region);
        Ok(ExpandOutcome::Grown { old_bytes, new_bytes })
    }
}

/// Steps 2 and 3 of an expand cut short during step 2 (labels.rs recognizes it: the first
/// label unusable, the new end label `label` and the previous one at `previous_end`
/// intact), for an open for writing; returns what to tell the operator. A crash here
/// leaves the same states as one during those steps.
pub(super) fn finish_expand(dev: &mut dyn Device, label: &Label, previous_end: u64) -> Result<OpenWarning> {
    dev.write_at(0, &Label { index: 0, ..label.clone() }.encode())?;
    dev.flush()?;
    dev.write_at(previous_end * BLOCK_BYTES, &vec![0u8; BLOCK_BYTES as usize])?;
    dev.flush()?;
    let old_bytes = (previous_end + REGION_BLOCKS) * BLOCK_BYTES;
    Ok(OpenWarning::ExpandFinished { pool_bytes: label.device_bytes, old_bytes })
}
