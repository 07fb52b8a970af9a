//! Turning on an incompat feature the first time a transaction writes what needs it.
//!
//! A feature such as `large_xattrs` (or `lz4`, unless formatted with it) is not set by `snapfmt`: a pool gets it with the
//! first commit that stores a large xattr, so pools that never hold one stay readable by
//! older binaries. The label must say so before any commit record names a tree that
//! holds one, or an older binary would open the pool and misread it. So, before the
//! commit record is written:
//!
//! 1. write the label of region 1 with the new bits, flush;
//! 2. write the label of region 0 with the new bits, flush.
//!
//! A crash before step 2 is durable leaves region 0's label without the bits and the
//! previous commit, which holds nothing that needs them: opening reads region 0. A torn
//! region-0 label is skipped and region 1's, which has the bits, is found (labels.rs).
//! The bits are never cleared: snapshots and history may keep what needed them.

use super::Pool;
use crate::block::BLOCK_BYTES;
use crate::compress::Codec;
use crate::error::Result;
use crate::format::label::{FEATURE_LZ4, Label, region_start};

/// The incompat bit a pool configured with `codec` needs: its root names lz4.
pub(crate) fn lz4_feature(codec: Codec) -> u64 {
    if codec == Codec::Lz4 { FEATURE_LZ4 } else { 0 }
}

/// Rewrites a label copy that a feature rewrite cut short left torn, from `label` (the
/// one that opened the pool), before the open for writing commits anything.
pub(crate) fn finish_feature_rewrite(dev: &mut dyn crate::device::Device, label: &Label) -> Result<()> {
    for index in [1u32, 0] {
        let block = region_start(index, label.device_bytes);
        let torn = super::labels::read_blocks(&*dev, block, 1)
            .is_ok_and(|bytes| Label::decode(&bytes).is_err() && label.is_torn_feature_rewrite(&bytes, index));
        if torn {
            dev.write_at(block * BLOCK_BYTES, &Label { index, ..label.clone() }.encode())?;
            dev.flush()?;
        }
    }
    Ok(())
}

impl Pool {
    /// Sets in both labels the incompat bits the running transaction needs.
    pub(super) fn enable_needed_features(&mut self) -> Result<()> {
        let missing = self.store.features_needed & !self.label.features_incompat;
        if missing == 0 {
            return Ok(());
        }
        let features_incompat = self.label.features_incompat | missing;
        let device_bytes = self.label.device_bytes;
        for index in [1u32, 0] {
            let label = Label { index, features_incompat, ..self.label.clone() };
            let dev = self.store.dev.as_mut();
            dev.write_at(region_start(index, device_bytes) * BLOCK_BYTES, &label.encode())?;
            dev.flush()?;
        }
        self.label.features_incompat = features_incompat;
        Ok(())
    }
}
