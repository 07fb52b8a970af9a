//! Finding a pool's label, wherever the device's size now puts its copies.
//!
//! The label at block 0 says where the pool ends (`device_bytes`), and so where the second
//! copy lies. When the first copy is damaged the second must be found without it, and the
//! device may have grown since the pool was laid out (a resized cloud volume, a grown image
//! file) or shrunk. The search, in order (docs/FORMAT.md, "Finding the label"):
//!
//! 1. the end of the device as it is now (a device that never changed size, or one whose
//!    pool was expanded to it);
//! 2. every block of the last `SEARCH_WINDOW_BYTES` of the device, from the end backwards
//!    (any growth up to that much, and a device that shrank by less than a label region,
//!    whose end label is still there), skipping the holes of a sparse image file;
//! 3. the end of every whole GiB below that (cloud volumes are sized in GiB).
//!
//! A candidate counts only where its own `device_bytes` puts region 1, so a label block
//! lying anywhere else (a stale copy inside an image stored in the pool, say) is never
//! taken. The first match from the end wins: a pool only grows (`snapctl expand`), so the
//! copy furthest out is the newest. Invariant: `NotSnapfs` (whose hint is to format) is
//! returned only when no label copy and no commit record was found anywhere searched.
//!
//! An unusable first label with an intact end label *and*, below it, the pool's previous
//! end label is an expand cut short while it rewrote the first label (resize.rs): not
//! damage, so the pool opens at the new size without a warning, and an open for writing
//! finishes the expand. Only expand leaves two end labels, and only until its last step.

use super::warning::OpenWarning;
use crate::block::BLOCK_BYTES;
use crate::device::Device;
use crate::error::DeviceError;
use crate::error::{Error, Result};
use crate::format::commit::COMMIT_MAGIC;
use crate::format::label::{LABEL_MAGIC, Label, REGION_BLOCKS, RING_SLOTS, region_start};
use crate::format::probe::foreign_signature;
use crate::pool::MIN_DEVICE_BYTES;

/// How far back from the end of the device every block is looked at.
pub const SEARCH_WINDOW_BYTES: u64 = 1 << 30;
/// Beyond the window, candidate ends are the multiples of this.
pub const SEARCH_STEP_BYTES: u64 = 1 << 30;
/// One read of the backwards scan.
const SCAN_CHUNK_BYTES: u64 = 4 << 20;

/// `blocks` blocks from `start_block`; blocks past the end of the device read as zeros
/// (an empty slot, a missing label), so a shrunk device reads like a damaged one.
pub fn read_blocks(dev: &dyn Device, start_block: u64, blocks: u64) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; (blocks * BLOCK_BYTES) as usize];
    let start = start_block * BLOCK_BYTES;
    let present = dev.len().saturating_sub(start).min(bytes.len() as u64) as usize;
    if present > 0 {
        dev.read_at(start, &mut bytes[..present])?;
    }
    Ok(bytes)
}

/// The label and the commit ring of region `index` of a pool of `device_bytes`.
pub fn read_region(dev: &dyn Device, index: u32, device_bytes: u64) -> Result<Vec<u8>> {
    read_blocks(dev, region_start(index, device_bytes), 1 + RING_SLOTS)
}

/// The device's size rounded down to whole blocks, as a pool would record it.
pub fn whole_blocks_bytes(dev: &dyn Device) -> u64 {
    dev.len() / BLOCK_BYTES * BLOCK_BYTES
}

/// The label that opens a pool, and how it was found.
#[derive(Debug)]
pub struct FoundLabel {
    pub label: Label,
    /// Set when it is not the first copy and that is damage.
    pub warning: Option<OpenWarning>,
    /// Set when the first copy is unusable because an expand was cut short while it
    /// rewrote it: the block of the previous end label, which the expand had yet to zero.
    pub unfinished_expand: Option<u64>,
}

/// The label that opens the pool. `first` is region 0 as read by `read_region`.
pub fn find_label(dev: &dyn Device, first: &[u8]) -> Result<FoundLabel> {
    let primary = Label::decode(&first[..BLOCK_BYTES as usize]);
    let why = match primary {
        Ok(Some(label)) => return Ok(FoundLabel { label, warning: None, unfinished_expand: None }),
        Err(e @ Error::Unsupported { .. }) => return Err(e),
        Err(e) => e.to_string(),
        Ok(None) => "it is missing".to_string(),
    };
    if let Some((label, block)) = search_end_label(dev)? {
        if let Some((_, previous)) = previous_end_label(dev, &label)? {
            return Ok(FoundLabel { label, warning: None, unfinished_expand: Some(previous) });
        }
        if label.is_torn_feature_rewrite(&first[..BLOCK_BYTES as usize], 0) {
            // A commit cut short while adding a feature bit (pool/features.rs).
            return Ok(FoundLabel { label, warning: None, unfinished_expand: None });
        }
        let at = if label.device_bytes == whole_blocks_bytes(dev) {
            "at its end".to_string()
        } else {
            format!(
                "at block {block}, where the pool ends ({} bytes into the device, which is now {} bytes)",
                label.device_bytes,
                dev.len()
            )
        };
        let warning = OpenWarning::LabelCopyUsed { why, at };
        return Ok(FoundLabel { label, warning: Some(warning), unfinished_expand: None });
    }
    if first[..8] == LABEL_MAGIC || holds_commit_record(first) {
        return Err(Error::Device(DeviceError::LabelsLost {
            device: dev.name().to_string(),
            why,
            device_bytes: dev.len(),
            searched_bytes: SEARCH_WINDOW_BYTES,
        }));
    }
    Err(Error::NotSnapfs {
        device: dev.name().to_string(),
        found: foreign_signature(dev)
            .map_or("no snapfs label at its start or end".to_string(), |name| format!("it holds {name}")),
    })
}

/// Region 0's ring holds a snapfs commit record (of any pool): the label block alone was
/// damaged.
fn holds_commit_record(first: &[u8]) -> bool {
    (1..=RING_SLOTS as usize).any(|slot| first[slot * BLOCK_BYTES as usize..][..8] == COMMIT_MAGIC)
}

/// The end label (region 1's) furthest out on the device, and its block; see the module
/// header for where it looks.
pub fn search_end_label(dev: &dyn Device) -> Result<Option<(Label, u64)>> {
    search_end_label_below(dev, dev.len() / BLOCK_BYTES)
}

/// The previous end label of the pool whose end label is `label`: the furthest out below
/// it, if it is the same label but for a smaller `device_bytes`. Present only while an
/// expand has not finished (its last step zeroes it).
pub fn previous_end_label(dev: &dyn Device, label: &Label) -> Result<Option<(Label, u64)>> {
    let Some((older, block)) = search_end_label_below(dev, region_start(1, label.device_bytes))? else {
        return Ok(None);
    };
    let same_pool = older == Label { index: 1, device_bytes: older.device_bytes, ..label.clone() };
    Ok((same_pool && older.device_bytes < label.device_bytes).then_some((older, block)))
}

/// `search_end_label` over the blocks below `limit` only.
fn search_end_label_below(dev: &dyn Device, limit: u64) -> Result<Option<(Label, u64)>> {
    let device_blocks = dev.len() / BLOCK_BYTES;
    let limit = limit.min(device_blocks);
    // The smallest pool's end label is the lowest block a search looks at.
    let lowest = MIN_DEVICE_BYTES / BLOCK_BYTES - REGION_BLOCKS;
    if limit <= lowest {
        return Ok(None);
    }
    let window_blocks = SEARCH_WINDOW_BYTES / BLOCK_BYTES;
    let window_start = device_blocks.saturating_sub(window_blocks).max(lowest);
    // Holes of a sparse image (the space a grown image gained) read as zeros: skipped.
    let ranges = if window_start < limit {
        dev.data_ranges(window_start * BLOCK_BYTES, limit * BLOCK_BYTES)
    } else {
        Vec::new()
    };
    for &(range_start, range_end) in ranges.iter().rev() {
        if let Some(found) = scan_backwards(dev, range_start / BLOCK_BYTES, range_end.div_ceil(BLOCK_BYTES))? {
            return Ok(Some(found));
        }
    }
    let step_blocks = SEARCH_STEP_BYTES / BLOCK_BYTES;
    let mut candidate_end = (window_start + REGION_BLOCKS) / step_blocks * step_blocks;
    while candidate_end >= MIN_DEVICE_BYTES / BLOCK_BYTES {
        let block = candidate_end - REGION_BLOCKS;
        if block < window_start && block < limit {
            if let Some(label) = end_label_at(&read_blocks(dev, block, 1)?, block) {
                return Ok(Some((label, block)));
            }
        }
        candidate_end -= step_blocks;
    }
    Ok(None)
}

/// The first end label found from block `end` back to block `start`, in large reads.
fn scan_backwards(dev: &dyn Device, start: u64, end: u64) -> Result<Option<(Label, u64)>> {
    let chunk_blocks = SCAN_CHUNK_BYTES / BLOCK_BYTES;
    let mut end = end;
    while end > start {
        let from = end.saturating_sub(chunk_blocks).max(start);
        let bytes = read_blocks(dev, from, end - from)?;
        for block in (from..end).rev() {
            let at = ((block - from) * BLOCK_BYTES) as usize;
            if let Some(label) = end_label_at(&bytes[at..at + BLOCK_BYTES as usize], block) {
                return Ok(Some((label, block)));
            }
        }
        end = from;
    }
    Ok(None)
}

/// The block holds an intact end label that its own `device_bytes` puts at `block`.
fn end_label_at(bytes: &[u8], block: u64) -> Option<Label> {
    if bytes[..8] != LABEL_MAGIC {
        return None;
    }
    let label = Label::decode(bytes).ok()??;
    let placed = label.index == 1
        && label.device_bytes % BLOCK_BYTES == 0
        && label.device_bytes >= MIN_DEVICE_BYTES
        && region_start(1, label.device_bytes) == block;
    placed.then_some(label)
}

/// Any copy of a label on the device, intact or not, or a commit record in region 0:
/// what `snapfmt` must not overwrite without `--force`.
pub fn holds_pool(dev: &dyn Device) -> Result<bool> {
    let first = read_blocks(dev, 0, 1 + RING_SLOTS)?;
    if first[..8] == LABEL_MAGIC || holds_commit_record(&first) {
        return Ok(true);
    }
    let at_end = dev.len() / BLOCK_BYTES >= REGION_BLOCKS
        && read_blocks(dev, dev.len() / BLOCK_BYTES - REGION_BLOCKS, 1)?[..8] == LABEL_MAGIC;
    Ok(at_end || search_end_label(dev)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemoryDevice;
    use crate::format::label::FORMAT_VERSION;

    const MIB: u64 = 1 << 20;

    fn end_label(device_bytes: u64) -> Label {
        Label {
            version: FORMAT_VERSION,
            index: 1,
            features_incompat: 0,
            features_ro_compat: 0,
            features_compat: 0,
            pool_guid: [7; 16],
            device_bytes,
            created_ns: 1,
        }
    }

    fn put_label(dev: &mut MemoryDevice, block: u64, label: &Label) {
        dev.write_at(block * BLOCK_BYTES, &label.encode()).unwrap();
    }

    #[test]
    fn the_end_label_is_found_where_the_pool_ends_after_growth() {
        // Goal: no growth, growth by one block and by many MiB (the GiB steps past the
        // window are tested on sparse files, in tests/resize.rs).
        for (pool, device) in [(32 * MIB, 32 * MIB), (32 * MIB, 32 * MIB + 4096), (40 * MIB, 200 * MIB)] {
            let mut dev = MemoryDevice::new(device);
            put_label(&mut dev, region_start(1, pool), &end_label(pool));
            let (label, block) = search_end_label(&dev).unwrap().expect("found");
            assert_eq!((label.device_bytes, block), (pool, region_start(1, pool)), "{pool} on {device}");
        }
    }

    #[test]
    fn a_label_block_away_from_where_it_says_the_pool_ends_is_not_taken() {
        // Goal: a label inside the data (an image file stored in the pool) is ignored,
        // and so is a damaged one and one of region 0.
        let mut dev = MemoryDevice::new(64 * MIB);
        put_label(&mut dev, 5000, &end_label(32 * MIB));
        put_label(&mut dev, region_start(1, 48 * MIB), &Label { index: 0, ..end_label(48 * MIB) });
        let mut torn = end_label(40 * MIB).encode();
        torn[300] ^= 1;
        dev.write_at(region_start(1, 40 * MIB) * BLOCK_BYTES, &torn).unwrap();
        assert!(search_end_label(&dev).unwrap().is_none());
        // The furthest out wins when two are where they say (an expand cut short).
        put_label(&mut dev, region_start(1, 20 * MIB), &end_label(20 * MIB));
        put_label(&mut dev, region_start(1, 60 * MIB), &end_label(60 * MIB));
        assert_eq!(search_end_label(&dev).unwrap().unwrap().0.device_bytes, 60 * MIB);
    }

    #[test]
    fn only_the_same_pool_s_end_label_below_marks_an_expand_cut_short() {
        // Goal: the previous end label counts only if it is this pool's label but for a
        // smaller size; another pool's, a different creation, or none at all do not.
        let new = end_label(60 * MIB);
        let cases = [
            (Some(end_label(40 * MIB)), true),
            (Some(Label { pool_guid: [8; 16], ..end_label(40 * MIB) }), false),
            (Some(Label { created_ns: 2, ..end_label(40 * MIB) }), false),
            (Some(Label { features_compat: 1, ..end_label(40 * MIB) }), false),
            (None, false),
        ];
        for (older, expected) in cases {
            let mut dev = MemoryDevice::new(60 * MIB);
            put_label(&mut dev, region_start(1, 60 * MIB), &new);
            if let Some(older) = &older {
                put_label(&mut dev, region_start(1, older.device_bytes), older);
            }
            let found = previous_end_label(&dev, &new).unwrap();
            assert_eq!(found.is_some(), expected, "{older:?}");
            if expected {
                assert_eq!(found.unwrap().1, region_start(1, 40 * MIB));
            }
        }
        // The first label unusable: opened from the end, silently only with the pair.
        let mut dev = MemoryDevice::new(60 * MIB);
        put_label(&mut dev, region_start(1, 60 * MIB), &new);
        let first = vec![0u8; ((1 + RING_SLOTS) * BLOCK_BYTES) as usize];
        let alone = find_label(&dev, &first).unwrap();
        assert!(alone.warning.is_some() && alone.unfinished_expand.is_none());
        put_label(&mut dev, region_start(1, 40 * MIB), &end_label(40 * MIB));
        let pair = find_label(&dev, &first).unwrap();
        assert_eq!((pair.label.device_bytes, pair.warning), (60 * MIB, None));
        assert_eq!(pair.unfinished_expand, Some(region_start(1, 40 * MIB)));
    }

    #[test]
    fn a_shrunk_device_reads_as_zeros_past_its_end() {
        let dev = MemoryDevice::new(8192 + 100);
        let bytes = read_blocks(&dev, 1, 3).unwrap();
        assert_eq!(bytes.len(), 3 * BLOCK_BYTES as usize);
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
