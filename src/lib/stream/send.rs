//! `snapsend`: which parts a run sends, how big each is, and sending them.
//!
//! A run is one part (full, or incremental from a base) or, with intermediates, one
//! part per snapshot between the base and the target. Sizes are exact: the same walk
//! that sends a part sizes it from block pointers and fingerprints, reading no data.

use super::framing::StreamWriter;
use super::generate::{Changes, GenerateStats, SizeSink, generate, generate_ranges};
use super::token::ResumeToken;
use super::wire::{Begin, End, FEATURE_RANGES, PREAMBLE_BYTES, Record, ResumePoint, SnapRef};
use crate::error::{Error, Result};
use crate::format::tables::{BookmarkEntry, SnapshotEntry};
use crate::pool::Pool;
use crate::tree::Change;

#[derive(Clone, Debug)]
pub struct Part {
    /// The base: a snapshot, or what a bookmark keeps of one (no root).
    pub base: Option<SnapshotEntry>,
    pub target: SnapshotEntry,
    /// A resumed part restarts here.
    pub resume: Option<ResumePoint>,
    /// The bookmark the part starts from (its name): it sends the ranges of the target's
    /// tree born after the base's txg (FEATURE_RANGES).
    pub bookmark: Option<String>,
}

impl Part {
    pub fn describe(&self) -> String {
        if let Some(point) = &self.resume {
            return format!("the rest of @{} from inode {}", self.target.name, point.ino);
        }
        match (&self.base, &self.bookmark) {
            (Some(_), Some(mark)) => format!("incremental #{mark} -> @{}", self.target.name),
            (Some(base), None) => format!("incremental @{} -> @{}", base.name, self.target.name),
            (None, _) => format!("full @{}", self.target.name),
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
    Pool::refuse_if_extracting(&target_entry, "a stream")?;
    let Some(base) = base else {
        return Ok(vec![Part { base: None, target: target_entry, resume: None, bookmark: None }]);
    };
    // A clone's snapshot may go from the snapshot it was made from (or an older one of
    // its origin's tree): the receiver then makes the clone of its copy of that one.
    let (base_entry, bookmark) = match base.strip_prefix('#') {
        Some(mark) => {
            let found = pool.bookmark_in_line(tree, &mut |pool, t| pool.find_bookmark(t, mark))?;
            let bookmark = found.ok_or_else(|| Error::not_found(format!("bookmark #{mark}")))?;
            (bookmark_base(pool, tree, bookmark, &target_entry)?, Some(mark.to_string()))
        }
        None => (pool.ancestor_snapshot(tree, base)?, None),
    };
    Pool::refuse_if_extracting(&base_entry, "an incremental stream from it")?;
    // Two subsets of one moment (a set and its refinement) differ as any two trees do;
    // two whole snapshots of one commit do not.
    let same_moment_allowed = base_entry.subset.is_some() || target_entry.subset.is_some();
    if base_entry.txg > target_entry.txg || (base_entry.txg == target_entry.txg && !same_moment_allowed) {
        return Err(Error::invalid(format!(
            "base @{base} (txg {}) is not older than @{target} (txg {}); give the older snapshot first",
            base_entry.txg.0, target_entry.txg.0
        )));
    }
    if !intermediates {
        return Ok(vec![Part { base: Some(base_entry.clone()), target: target_entry, resume: None, bookmark }]);
    }
    let mut parts = Vec::new();
    let mut previous = base_entry.clone();
    for snap in pool.snapshots_of(tree)? {
        // Between whole snapshots the whole ones; between subsets those of the same rule.
        let same_kind = snap.subset.as_ref().map(|s| &s.rule) == target_entry.subset.as_ref().map(|s| &s.rule);
        let between = snap.txg > base_entry.txg && snap.txg <= target_entry.txg;
        if between && (same_kind || snap.name == target_entry.name) {
            // Only the first part starts from the bookmark; the rest from snapshots.
            let bookmark = if parts.is_empty() { bookmark.clone() } else { None };
            parts.push(Part { base: Some(previous.clone()), target: snap.clone(), resume: None, bookmark });
            previous = snap;
        }
    }
    Ok(parts)
}

/// What bookmark `mark` keeps of its snapshot, as a base for `target` of `tree`: the
/// bookmark is of `tree` or of a tree it was cloned from, and `target` descends from it.
fn bookmark_base(pool: &mut Pool, tree: u64, bookmark: BookmarkEntry, target: &SnapshotEntry) -> Result<SnapshotEntry> {
    if bookmark.txg >= target.txg || !pool.descends_from(tree, target.txg, &bookmark)? {
        return Err(Error::invalid(format!(
            "bookmark #{} (of @{}, txg {}) is not an earlier state of @{} (txg {}): send from a bookmark of an \
             older snapshot of the same tree",
            bookmark.name, bookmark.snapshot_name, bookmark.txg.0, target.name, target.txg.0
        )));
    }
    Ok(SnapshotEntry {
        tree: bookmark.tree,
        name: bookmark.snapshot_name,
        guid: bookmark.guid,
        txg: bookmark.txg,
        time_ns: bookmark.snapshot_time_ns,
        root: None,
        holds: Vec::new(),
        referenced_bytes: 0,
        subset: None,
    })
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
    if token.from_bookmark {
        // The rest of a part from a bookmark goes from that bookmark too: the receiver
        // saved ranges of keys, not changes.
        let guid = token.base_guid.ok_or_else(|| Error::invalid("a resume token from a bookmark names no base"))?;
        let found = pool.bookmark_in_line(tree, &mut |pool, t| pool.bookmark_by_guid(t, &guid))?;
        let bookmark = found.ok_or_else(|| Error::NotFound {
            what: format!(
                "a bookmark of the token's base snapshot (guid {}) on this pool (destroyed since?)",
                crate::pool::guid_hex(&guid)
            ),
        })?;
        let name = bookmark.name.clone();
        let base = bookmark_base(pool, tree, bookmark, &target)?;
        return Ok(Part { base: Some(base), target, resume: Some(token.point), bookmark: Some(name) });
    }
    let base = token.base_guid.as_ref().map(|g| find(g, "base")).transpose()?;
    Ok(Part { base, target, resume: Some(token.point), bookmark: None })
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
        if part.bookmark.is_some() {
            let floor = part.base.as_ref().map_or(0, |b| b.txg.0);
            generate_ranges(&mut pool.store, part.target.root, floor, &start, false, &mut sink)?;
            sink.features |= FEATURE_RANGES;
            sizes.kept.push(None);
            sizes.features.push(sink.features);
            let begin = Record::Begin(begin_record(pool, part, (i, parts.len()), sink.features, 0, 0)).frame_bytes();
            let end = Record::End(End { records: 0, bytes: 0, digest: [0; 32] }).frame_bytes();
            sizes.bytes.push(PREAMBLE_BYTES as u64 + begin + sink.bytes + end);
            continue;
        }
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
        // takes it whatever its bits. But `ranges` says which kind of part it is.
        let ranges = if part.bookmark.is_some() { FEATURE_RANGES } else { 0 };
        let any = (super::wire::FEATURES_KNOWN & !FEATURE_RANGES) | ranges;
        let features = sizes.as_ref().map_or(any, |s| s.features[i]);
        writer.begin(begin_record(pool, part, (i, parts.len()), features, part_bytes, run_bytes))?;
        let stats: GenerateStats = match &part.bookmark {
            Some(_) => {
                let floor = part.base.as_ref().map_or(0, |b| b.txg.0);
                let start = part.resume.map(|r| r.key()).unwrap_or_default();
                generate_ranges(&mut pool.store, part.target.root, floor, &start, true, writer)?
            }
            None => send_changes(pool, part, sizes.as_mut().and_then(|s| s.kept[i].take()), writer)?,
        };
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

/// Sends the changes from a part's base snapshot to its target.
fn send_changes(
    pool: &mut Pool,
    part: &Part,
    kept: Option<Vec<Change>>,
    writer: &mut StreamWriter,
) -> Result<GenerateStats> {
    let mut changes = match kept {
        Some(kept) => Changes::Replay(kept.into_iter()),
        None => {
            let start = part.resume.map(|r| r.key()).unwrap_or_default();
            Changes::walk(part.base.as_ref().and_then(|b| b.root), part.target.root, &start, None)
        }
    };
    generate(&mut pool.store, &mut changes, part.target.root, true, writer)
}
