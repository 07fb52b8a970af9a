//! `snapsend`: which parts a run sends, how big each is, and sending them.
//!
//! A run is one part (full, or incremental from a base) or, with intermediates, one
//! part per snapshot between the base and the target. Sizes are exact: the same walk
//! that sends a part sizes it from block pointers and fingerprints, reading no data.

use super::framing::StreamWriter;
use super::generate::{Changes, GenerateStats, SizeSink, generate};
use super::token::ResumeToken;
use super::wire::{Begin, End, PREAMBLE_BYTES, Record, ResumePoint, SnapRef};
use crate::error::{Error, Result};
use crate::format::tables::SnapshotEntry;
use crate::pool::Pool;
use crate::tree::Change;

#[derive(Clone, Debug)]
pub struct Part {
    pub base: Option<SnapshotEntry>,
    pub target: SnapshotEntry,
    /// A resumed part restarts here.
    pub resume: Option<ResumePoint>,
}

impl Part {
    pub fn describe(&self) -> String {
        if let Some(point) = &self.resume {
            return format!("the rest of @{} from inode {}", self.target.name, point.ino);
        }
        match &self.base {
            Some(base) => format!("incremental @{} -> @{}", base.name, self.target.name),
            None => format!("full @{}", self.target.name),
        }
    }
}

fn snap_ref(s: &SnapshotEntry) -> SnapRef {
    SnapRef { guid: s.guid, txg: s.txg.0, name: s.name.clone() }
}

/// The parts that carry `target` (from `base`, with every snapshot between them if
/// `intermediates`).
pub fn plan(pool: &mut Pool, tree: u64, base: Option<&str>, target: &str, intermediates: bool) -> Result<Vec<Part>> {
    let target_entry = pool.snapshot(tree, target)?.clone();
    let Some(base) = base else { return Ok(vec![Part { base: None, target: target_entry, resume: None }]) };
    // A clone's snapshot may go from the snapshot it was made from (or an older one of
    // its origin's tree): the receiver then makes the clone of its copy of that one.
    let base_entry = pool.ancestor_snapshot(tree, base)?;
    if base_entry.txg >= target_entry.txg {
        return Err(Error::invalid(format!(
            "base @{base} (txg {}) is not older than @{target} (txg {}); give the older snapshot first",
            base_entry.txg.0, target_entry.txg.0
        )));
    }
    if !intermediates {
        return Ok(vec![Part { base: Some(base_entry.clone()), target: target_entry, resume: None }]);
    }
    let mut parts = Vec::new();
    let mut previous = base_entry.clone();
    for snap in pool.snapshots_of(tree)? {
        if snap.txg > base_entry.txg && snap.txg <= target_entry.txg {
            parts.push(Part { base: Some(previous.clone()), target: snap.clone(), resume: None });
            previous = snap;
        }
    }
    Ok(parts)
}

/// The rest of the part that an interrupted receive saved as `token`.
pub fn plan_resume(pool: &mut Pool, tree: u64, token: &ResumeToken) -> Result<Part> {
    let mut find = |guid: &[u8; 16], what: &str| {
        pool.snapshot_by_guid(tree, guid)?.ok_or_else(|| Error::NotFound {
            what: format!(
                "the token's {what} snapshot (guid {}) on this pool (destroyed since?)",
                crate::pool::guid_hex(guid)
            ),
        })
    };
    let target = find(&token.snapshot_guid, "sent")?;
    let base = token.base_guid.as_ref().map(|g| find(g, "base")).transpose()?;
    Ok(Part { base, target, resume: Some(token.point) })
}

fn begin_record(
    pool: &Pool,
    part: &Part,
    (index, count): (usize, usize),
    features: u64,
    part_bytes: u64,
    run_bytes: u64,
) -> Begin {
    Begin {
        features,
        pool_guid: pool.label.pool_guid,
        snapshot: snap_ref(&part.target),
        snapshot_time_ns: part.target.time_ns,
        base: part.base.as_ref().map(snap_ref),
        part_bytes,
        part: index as u32,
        parts: count as u32,
        run_bytes,
        resume: part.resume,
    }
}

/// Bytes of tree changes the sizing walk keeps for the send, over all parts: an
/// incremental's changes usually fit, and the send then does not walk the trees again.
const KEPT_CHANGES_BYTES_MAX: usize = 64 << 20;

/// What sizing a run found: each part's exact size, the stream features its records
/// need, and its changes where they fitted.
pub struct PartSizes {
    pub bytes: Vec<u64>,
    pub features: Vec<u64>,
    kept: Vec<Option<Vec<Change>>>,
}

/// The exact size in bytes of each part, from metadata alone.
pub fn part_sizes(pool: &mut Pool, parts: &[Part]) -> Result<PartSizes> {
    let mut sizes = PartSizes { bytes: Vec::with_capacity(parts.len()), features: Vec::new(), kept: Vec::new() };
    let mut budget = KEPT_CHANGES_BYTES_MAX;
    for (i, part) in parts.iter().enumerate() {
        let mut sink = SizeSink::default();
        let start = part.resume.map(|r| r.key()).unwrap_or_default();
        let mut changes =
            Changes::walk(part.base.as_ref().and_then(|b| b.root), part.target.root, &start, Some(budget));
        generate(&mut pool.store, &mut changes, part.target.root, false, &mut sink)?;
        let kept = changes.into_kept();
        if let Some((_, left)) = &kept {
            budget = *left;
        }
        sizes.kept.push(kept.map(|(changes, _)| changes));
        sizes.features.push(sink.features);
        let begin = Record::Begin(begin_record(pool, part, (i, parts.len()), sink.features, 0, 0)).frame_bytes();
        let end = Record::End(End { records: 0, bytes: 0, digest: [0; 32] }).frame_bytes();
        sizes.bytes.push(PREAMBLE_BYTES as u64 + begin + sink.bytes + end);
    }
    Ok(sizes)
}

#[derive(Clone, Debug, Default)]
pub struct SendSummary {
    pub bytes: u64,
    pub data_bytes: u64,
    pub nodes_read: u64,
}

/// Writes every part; `sizes` (from `part_sizes`) go into the Begin records so that a
/// receiver can show its progress against them.
pub fn send(
    pool: &mut Pool,
    parts: &[Part],
    mut sizes: Option<PartSizes>,
    writer: &mut StreamWriter,
) -> Result<SendSummary> {
    let run_bytes = sizes.as_ref().map_or(0, |s| s.bytes.iter().sum());
    let mut summary = SendSummary::default();
    for (i, part) in parts.iter().enumerate() {
        let part_bytes = sizes.as_ref().map_or(0, |s| s.bytes[i]);
        // Unsized, the part may carry anything: a receiver that knows every feature
        // takes it whatever its bits.
        let features = sizes.as_ref().map_or(super::wire::FEATURES_KNOWN, |s| s.features[i]);
        writer.begin(begin_record(pool, part, (i, parts.len()), features, part_bytes, run_bytes))?;
        let kept = sizes.as_mut().and_then(|s| s.kept[i].take());
        let mut changes = match kept {
            Some(kept) => Changes::Replay(kept.into_iter()),
            None => {
                let start = part.resume.map(|r| r.key()).unwrap_or_default();
                Changes::walk(part.base.as_ref().and_then(|b| b.root), part.target.root, &start, None)
            }
        };
        let stats: GenerateStats = generate(&mut pool.store, &mut changes, part.target.root, true, writer)?;
        let written = writer.end()?;
        if part_bytes != 0 {
            debug_assert_eq!(written, part_bytes, "the size estimate of {} is exact", part.describe());
        }
        summary.bytes += written;
        summary.data_bytes += stats.data_bytes;
        summary.nodes_read += stats.nodes_read;
    }
    Ok(summary)
}
