//! `snaprecv`: checking that a stream fits the target, and applying it atomically.
//!
//! Each part is one transaction: the target's head is rolled back if needed (`-F`), every
//! record is applied in memory and to free blocks, and only once the End record's digest
//! checks out are the snapshot and the new head committed. An error, a truncated or
//! damaged stream, a kill or a crash at any point before that leaves the last commit, so
//! the target holds exactly what it held before. With intermediates, each part commits
//! on its own, in order.

use super::apply_ranges::RangeApplier;
use super::content_check::ContentChecker;
use super::framing::{Position, StreamReader};
use super::patcher::{PATCH_COMPRESSION_LEVEL_MAX, PATCHES_IN_FLIGHT_MAX, PatchJob, Patcher};
use super::token::ResumeToken;
use super::wire::{Begin, FEATURE_RANGES, PatchRecord, Record, RecordType, ResumePoint};
use crate::error::{Error, ReceiveRefusal, Result, SnapshotId, human_bytes};
use crate::format::label::FEATURE_RECORD_OVERLAYS;
use crate::format::receive_state::ReceiveState;
use crate::fs::FsTree;
use crate::fs::apply::StoredRecord;
use crate::fs::validate::{Violation, validate_received};
use crate::pool::Pool;
use crate::store::StoredBlock;
use std::collections::HashMap;

/// A receive writes the tree's dirty nodes out after this much file data, or this many
/// records (a stream of metadata only, millions of empty files, carries no data but
/// dirties nodes all the same), so that its memory stays bounded whatever the stream's
/// size.
const SPILL_DATA_BYTES: u64 = 64 << 20;
const SPILL_RECORDS: u64 = 200_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiveOptions {
    /// Roll the live tree back to its newest snapshot if it changed since (`-F`).
    pub force: bool,
    /// Save what an interrupted part applied, to resume it later (`-s`).
    pub save_partial: bool,
}

/// What the target looks like, as far as accepting a part goes.
#[derive(Clone, Debug)]
pub struct TargetState {
    /// (name, guid) of each snapshot, oldest first.
    pub snapshots: Vec<(String, [u8; 16])>,
    /// The live tree is not what its newest snapshot holds.
    pub head_changed: bool,
    /// The live tree's root directory is empty.
    pub live_empty: bool,
    /// A partial receive saved on the target.
    pub partial: Option<ReceiveState>,
    pub tree: u64,
}

/// How the target must be prepared for a part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preparation {
    /// Apply on the live tree as it is (it equals the base).
    None,
    /// Roll the live tree back to the base (its newest snapshot) first.
    RollBack,
    /// Replace the live tree: a full stream.
    Replace,
}

impl TargetState {
    pub fn of(pool: &mut Pool, tree: u64) -> Result<TargetState> {
        let snapshots: Vec<_> =
            pool.lineage_snapshots(tree)?.iter().map(|s| (s.name.clone(), s.guid, s.root)).collect();
        let head = pool.committed_head_root(tree)?;
        let head_changed = snapshots.last().is_some_and(|(_, _, root)| *root != head);
        // A tree a full stream is about to fill has no root at all.
        let live_empty = head.is_none() || {
            let (mut view, store) = pool.view(tree, None)?;
            FsTree::new(&mut view, store, false).readdir(crate::fs::ROOT_INO)?.is_empty()
        };
        Ok(TargetState {
            snapshots: snapshots.into_iter().map(|(n, g, _)| (n, g)).collect(),
            head_changed,
            live_empty,
            partial: pool.receive_state()?,
            tree,
        })
    }

    /// The state after a part is received: its snapshot is the newest, the head equals it.
    pub fn received(&mut self, begin: &Begin) {
        self.snapshots.push((begin.snapshot.name.clone(), begin.snapshot.guid));
        self.head_changed = false;
        self.live_empty = false;
        self.partial = None;
    }

    /// Whether the part fits this target, and what must happen first.
    pub fn accept(&self, begin: &Begin, options: ReceiveOptions) -> Result<Preparation> {
        match_saved_state(self.partial.clone(), begin, self.tree)?;
        self.refusal(begin, options).map_err(Error::Receive)
    }

    fn refusal(&self, begin: &Begin, options: ReceiveOptions) -> std::result::Result<Preparation, ReceiveRefusal> {
        let name = &begin.snapshot.name;
        if let Some((existing, _)) = self.snapshots.iter().find(|(_, g)| *g == begin.snapshot.guid) {
            return Err(ReceiveRefusal::AlreadyReceived { snapshot: id(&begin.snapshot), held_as: existing.clone() });
        }
        if self.snapshots.iter().any(|(n, _)| n == name) {
            return Err(ReceiveRefusal::NameTaken { name: name.clone() });
        }
        let newest = self.snapshots.last().map(|(name, guid)| SnapshotId { name: name.clone(), guid: *guid });
        let Some(base) = &begin.base else {
            if let Some(newest) = newest {
                return Err(ReceiveRefusal::FullOntoSnapshots { snapshot: name.clone(), newest });
            }
            if !self.live_empty && !options.force {
                return Err(ReceiveRefusal::LiveTreeNotEmpty);
            }
            return Ok(Preparation::Replace);
        };
        let Some(newest) = newest else {
            return Err(ReceiveRefusal::NoSnapshots { base: base.name.clone() });
        };
        if newest.guid != base.guid {
            let snapshot = name.clone();
            return Err(match self.snapshots.iter().find(|(_, g)| *g == base.guid) {
                Some((held, _)) => {
                    ReceiveRefusal::BaseNotNewest { base: base.name.clone(), held_as: held.clone(), newest, snapshot }
                }
                None if newest.name == base.name => ReceiveRefusal::BaseNameOtherGuid { base: id(base), newest },
                None => ReceiveRefusal::BaseMissing { base: id(base), newest, snapshot },
            });
        }
        if self.head_changed {
            if !options.force {
                return Err(ReceiveRefusal::HeadChanged { newest: newest.name });
            }
            return Ok(Preparation::RollBack);
        }
        Ok(Preparation::None)
    }
}

fn id(snapshot: &super::wire::SnapRef) -> SnapshotId {
    SnapshotId { name: snapshot.name.clone(), guid: snapshot.guid }
}

#[derive(Clone, Debug)]
pub struct Received {
    pub name: String,
    pub txg: u64,
    pub records: u64,
    pub bytes: u64,
    pub rolled_back: bool,
    pub resumed: bool,
}

/// Receives every part of the stream into `tree`, each in its own transaction;
/// `done` hears of each part as it is committed.
pub fn receive(
    pool: &mut Pool,
    tree: u64,
    reader: &mut StreamReader,
    options: ReceiveOptions,
    done: &mut dyn FnMut(&Received),
) -> Result<u32> {
    let mut count = 0;
    while let Some(begin) = reader.next_part()? {
        done(&receive_part(pool, tree, reader, &begin, options)?);
        count += 1;
    }
    Ok(count)
}

/// Receives every part of the stream into tree `name`, made by the first part's
/// transaction if the pool has none: a tree of its own for a full stream, a clone of the
/// stream's base for an incremental (found by its guid in any tree; if no tree has it,
/// an empty tree, which the part then refuses as it would any tree without its base).
pub fn receive_into(
    pool: &mut Pool,
    name: &str,
    reader: &mut StreamReader,
    options: ReceiveOptions,
    done: &mut dyn FnMut(&Received),
) -> Result<u32> {
    if name.contains('#') {
        return Err(Error::invalid(format!(
            "{name:?} names a bookmark, which holds no tree: receive into the live tree or into a tree (--tree NAME)"
        )));
    }
    let mut tree = pool.tree_id(name).ok();
    let mut count = 0;
    while let Some(begin) = reader.next_part()? {
        let id = match tree {
            Some(id) => id,
            None => {
                let base = match &begin.base {
                    Some(base) => find_by_guid(pool, &base.guid)?,
                    None => None,
                };
                match base {
                    Some((base_tree, base_name)) => pool.create_clone(base_tree, &base_name, name)?,
                    None => pool.create_tree(name)?,
                }
            }
        };
        tree = Some(id);
        done(&receive_part(pool, id, reader, &begin, options)?);
        count += 1;
    }
    Ok(count)
}

/// The (tree, name) of the snapshot with `guid`, in any tree.
fn find_by_guid(pool: &mut Pool, guid: &[u8; 16]) -> Result<Option<(u64, String)>> {
    let trees: Vec<u64> = pool.trees()?.map(|t| t.id).collect();
    for tree in trees {
        if let Some(found) = pool.snapshot_by_guid(tree, guid)? {
            return Ok(Some((tree, found.name)));
        }
    }
    Ok(None)
}

/// Refuses a part that does not fit the saved partial receive, or a saved state that a
/// new part would ignore; returns the saved state this part resumes.
fn match_saved_state(saved: Option<ReceiveState>, begin: &Begin, tree: u64) -> Result<Option<ReceiveState>> {
    match (saved, begin.resume) {
        (None, None) => Ok(None),
        (Some(state), None) => Err(Error::Receive(ReceiveRefusal::PartialPending { snapshot: state.snapshot_name })),
        (None, Some(_)) => {
            Err(Error::Receive(ReceiveRefusal::NothingToResume { snapshot: begin.snapshot.name.clone() }))
        }
        (Some(state), Some(point)) => {
            let base_guid = begin.base.as_ref().map_or([0; 16], |b| b.guid);
            let fits = state.tree == tree
                && state.from_bookmark == (begin.features & FEATURE_RANGES != 0)
                && state.snapshot_guid == begin.snapshot.guid
                && state.base_guid == base_guid
                && state.resume_ino == point.ino
                && state.resume_record == point.record;
            if !fits {
                return Err(Error::Receive(ReceiveRefusal::ResumeMismatch {
                    snapshot: begin.snapshot.name.clone(),
                    ino: point.ino,
                    record: point.record,
                    saved_snapshot: state.snapshot_name,
                    saved_ino: state.resume_ino,
                    saved_record: state.resume_record,
                }));
            }
            Ok(Some(state))
        }
    }
}

fn receive_part(
    pool: &mut Pool,
    tree: u64,
    reader: &mut StreamReader,
    begin: &Begin,
    options: ReceiveOptions,
) -> Result<Received> {
    let free_bytes = pool.free_bytes();
    receive_part_inner(pool, tree, reader, begin, options).map_err(|e| part_no_space(e, begin, free_bytes))
}

/// A full device, in the figures of the part being received: the sender's exact size
/// of it against what was free before it, rather than the one allocation that failed.
fn part_no_space(e: Error, begin: &Begin, free_bytes: u64) -> Error {
    match e {
        Error::NoSpace { needed_bytes, history_bytes, snapshots, .. } if begin.part_bytes > 0 => {
            let short_bytes = begin.part_bytes.saturating_sub(free_bytes).max(needed_bytes);
            Error::NoSpace {
                need: format!(
                    "receiving @{} ({} as the sender sent it) needs about {} more",
                    begin.snapshot.name,
                    human_bytes(begin.part_bytes),
                    human_bytes(short_bytes)
                ),
                needed_bytes: short_bytes,
                free_bytes,
                history_bytes,
                snapshots,
            }
        }
        other => other,
    }
}

fn receive_part_inner(
    pool: &mut Pool,
    tree: u64,
    reader: &mut StreamReader,
    begin: &Begin,
    options: ReceiveOptions,
) -> Result<Received> {
    let start_offset = reader.part_start();
    let target = TargetState::of(pool, tree)?;
    let preparation = target.accept(begin, options)?;
    let saved = target.partial.filter(|_| begin.resume.is_some());
    let base = pool.lineage_snapshots(tree)?.pop().filter(|_| begin.base.is_some());
    let origin = base.as_ref().map_or(0, |b| b.txg.0);
    if let Some(state) = &saved {
        if state.origin_txg != origin {
            return Err(Error::corrupt(format!(
                "the saved partial receive started from txg {}, but the base snapshot is of txg {origin}",
                state.origin_txg
            )));
        }
    }
    let base_root = base.as_ref().and_then(|b| b.root);
    let start_root = saved.as_ref().map_or(base_root, |s| s.staging);
    let mut staging = pool.staging_tree(origin, start_root)?;
    let mut progress = ResumeTracker::new(begin.resume);
    let mut blame = Blame::default();
    let applied = {
        let overlays = pool.label.features_incompat & FEATURE_RECORD_OVERLAYS != 0;
        let mut fs = FsTree::new(&mut staging, &mut pool.store, true);
        let ranges = begin.features & FEATURE_RANGES != 0;
        apply_records(&mut fs, reader, &mut progress, &mut blame, overlays, ranges)
    };
    let records = match applied {
        Ok(records) => {
            let staging_root = staging.flush(&mut pool.store)?;
            staging.evict();
            if let Err(v) = validate_received(&mut pool.store, base_root, staging_root)? {
                return Err(Error::InvalidTree { what: blame.describe(&v, &mut staging, &mut pool.store) });
            }
            records
        }
        Err(e) if options.save_partial && interrupted(&e) => {
            return Err(save_partial(
                pool,
                tree,
                staging,
                begin,
                origin,
                saved,
                &progress,
                reader.offset() - start_offset,
                e,
            ));
        }
        Err(e) => return Err(e),
    };
    match preparation {
        Preparation::None => {}
        Preparation::RollBack => pool.rollback_head(tree, base.as_ref())?,
        Preparation::Replace => pool.rollback_head(tree, None)?,
    }
    pool.adopt_staging(tree, base_root, staging, origin, saved.is_none())?;
    if saved.is_some() {
        pool.set_receive_state(None)?;
    }
    pool.create_received_snapshot(tree, &begin.snapshot.name, begin.snapshot.guid, begin.snapshot_time_ns)?;
    let summary = pool.commit()?;
    Ok(Received {
        name: begin.snapshot.name.clone(),
        txg: summary.txg.map_or(0, |t| t.0),
        records,
        bytes: reader.offset() - start_offset,
        rolled_back: preparation == Preparation::RollBack,
        resumed: saved.is_some(),
    })
}

/// A stream that stopped, broke or could not be read (not one the target refused, nor
/// a problem of the target's device): worth saving.
fn interrupted(e: &Error) -> bool {
    matches!(e, Error::Stream { .. } | Error::StreamRead { .. })
}

pub use crate::error::plural;

/// Commits what the part applied so far as a saved receive state, and returns the error
/// that stopped it, with the token that resumes it.
#[allow(clippy::too_many_arguments)]
fn save_partial(
    pool: &mut Pool,
    tree: u64,
    mut staging: crate::tree::Tree,
    begin: &Begin,
    origin: u64,
    saved: Option<ReceiveState>,
    progress: &ResumeTracker,
    bytes: u64,
    error: Error,
) -> Error {
    // Inode 0 holds only the tree's counter: a point there is the part's start.
    let point = progress.point.filter(|p| p.ino != 0);
    let state = ReceiveState {
        tree,
        origin_txg: origin,
        staging: None,
        source_pool_guid: begin.pool_guid,
        snapshot_guid: begin.snapshot.guid,
        snapshot_txg: begin.snapshot.txg,
        snapshot_name: begin.snapshot.name.clone(),
        base_guid: begin.base.as_ref().map_or([0; 16], |b| b.guid),
        base_txg: begin.base.as_ref().map_or(0, |b| b.txg),
        base_name: begin.base.as_ref().map_or(String::new(), |b| b.name.clone()),
        resume_ino: point.map_or(0, |p| p.ino),
        resume_record: point.map_or(0, |p| p.record),
        records_applied: saved.as_ref().map_or(0, |s| s.records_applied).saturating_add(progress.records),
        bytes_applied: saved.as_ref().map_or(0, |s| s.bytes_applied) + bytes,
        saved_ns: pool.clock().now_ns(),
        from_bookmark: begin.features & FEATURE_RANGES != 0,
    };
    if point.is_none() {
        // Nothing complete to keep: the part starts over, and any older state stays.
        return error;
    }
    let result = (|| {
        let staging_root = staging.flush(&mut pool.store)?;
        pool.set_receive_state(Some(&ReceiveState { staging: staging_root, ..state.clone() }))?;
        pool.commit()
    })();
    match result {
        Ok(_) => {
            Error::PartSaved { cause: Box::new(error), records: state.records_applied, token: state_token(&state) }
        }
        Err(save_error) => Error::stream(format!("{error}; saving the partial receive failed too: {save_error}")),
    }
}

/// The token that resumes a saved receive.
pub fn state_token(state: &ReceiveState) -> String {
    ResumeToken {
        snapshot_guid: state.snapshot_guid,
        base_guid: (state.base_guid != [0; 16]).then_some(state.base_guid),
        point: ResumePoint { ino: state.resume_ino, record: state.resume_record },
        from_bookmark: state.from_bookmark,
    }
    .encode()
}

/// Where a part could restart, given the records applied so far: the start of the
/// inode being applied, or past its last whole file record. Records of one inode come
/// in key order and applying them again gives the same tree, so restarting at the
/// inode's start is always safe.
pub struct ResumeTracker {
    pub point: Option<ResumePoint>,
    pub records: u64,
    current_ino: Option<u64>,
}

impl ResumeTracker {
    fn new(start: Option<ResumePoint>) -> ResumeTracker {
        ResumeTracker { point: start, records: 0, current_ino: start.map(|p| p.ino) }
    }

    /// Before a record of `ino` is applied: every earlier inode is complete.
    fn before(&mut self, ino: u64) {
        if self.current_ino != Some(ino) {
            self.current_ino = Some(ino);
            self.point = Some(ResumePoint { ino, record: 0 });
        }
    }

    /// After a record of a part from a bookmark is applied: every key before the start
    /// of its inode, or before the file record after a WRITE's or KEEP_RECORD's, has its
    /// final item (a RANGE moves nothing: the items it removes go as records pass them).
    fn ranges_applied(&mut self, ino: Option<u64>, next_record: Option<(u64, u64)>) {
        self.records += 1;
        let point = match (next_record, ino) {
            (Some((ino, index)), _) => ResumePoint { ino, record: index.saturating_add(1) },
            (None, Some(ino)) => ResumePoint { ino, record: 0 },
            (None, None) => return,
        };
        if self.point.is_none_or(|p| p.key() < point.key()) {
            self.point = Some(point);
        }
    }

    /// After a record is applied; `next_record` is (inode, index) of the first file record
    /// not yet received when the record was a WRITE, PATCH or PUNCH.
    fn after(&mut self, next_record: Option<(u64, u64)>) {
        self.records += 1;
        if let Some((ino, index)) = next_record {
            self.point = Some(ResumePoint { ino, record: index.saturating_add(1) });
        }
    }
}

/// The last record that changed each inode, so that a refused tree names a record.
#[derive(Default)]
struct Blame {
    last: HashMap<u64, (Position, RecordType)>,
}

/// Inodes whose last record `Blame` remembers at most (a few tens of MiB).
const BLAME_INODES_MAX: usize = 1 << 20;

impl Blame {
    fn note(&mut self, record: &Record, at: Position) {
        let kind = record.record_type();
        let inodes = match record {
            Record::Link { dir, ino, .. } | Record::Unlink { dir, ino, .. } => [Some(*ino), Some(*dir), None],
            Record::Rename { ino, from_dir, to_dir, .. } => [Some(*ino), Some(*from_dir), Some(*to_dir)],
            other => [other.ino(), None, None],
        };
        for ino in inodes.into_iter().flatten() {
            if self.last.len() < BLAME_INODES_MAX || self.last.contains_key(&ino) {
                self.last.insert(ino, (at, kind));
            }
        }
    }

    /// The violation, with the inode's path and the record that last changed it.
    fn describe(&self, v: &Violation, staging: &mut crate::tree::Tree, store: &mut crate::store::Store) -> String {
        let path = FsTree::new(staging, store, false).path_of(v.ino).map(|p| format!(" (/{p})")).unwrap_or_default();
        let record = match self.last.get(&v.ino) {
            Some((at, kind)) => format!(
                "; the last record to change inode {} is record {} ({}) of part {} at byte {}",
                v.ino,
                at.record,
                kind.name(),
                at.part,
                at.offset
            ),
            None => String::new(),
        };
        format!("{}{path}{record}", v.what)
    }
}

/// For a record that writes or removes file records, (inode, index) of the first one
/// after them.
fn next_record(record: &Record) -> Option<(u64, u64)> {
    match record {
        Record::KeepRecord(k) => Some((k.ino, k.index.saturating_add(1))),
        // Saturating: the index comes from the stream; one this large is refused when applied.
        Record::Write(w) => Some((w.ino, w.index.saturating_add(1))),
        Record::Patch(p) => Some((p.ino, p.index.saturating_add(1))),
        Record::Punch { ino, first, count } => Some((*ino, first.saturating_add(*count))),
        _ => None,
    }
}

/// Applies records up to and including End; returns how many there were. PATCH records
/// go to the patcher's workers; everything they could race with waits for them.
fn apply_records(
    fs: &mut FsTree,
    reader: &mut StreamReader,
    progress: &mut ResumeTracker,
    blame: &mut Blame,
    overlays: bool,
    ranges: bool,
) -> Result<u64> {
    let shared = fs.store().dev.shared_reader();
    let level = fs.store().compression.zstd_level_at_most(PATCH_COMPRESSION_LEVEL_MAX);
    let mut patcher = Patcher::new(level, shared, overlays);
    let mut checker = ContentChecker::new();
    let mut ranges = ranges.then(RangeApplier::default);
    let result = apply_records_with(fs, reader, progress, blame, &mut patcher, &mut checker, ranges.as_mut());
    // Whatever stopped the part, the patches already read are applied, so that a saved
    // partial receive holds every record its resume point says it does.
    let drained = drain(fs, &mut patcher, 0);
    // A WRITE whose content lies refuses the whole part, whatever else stopped it: the
    // stream is not worth saving for a resume.
    checker.finish(|ino| fs.path_of(ino))?;
    match (result, drained) {
        (Ok(count), Ok(())) => Ok(count),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(patch_error)) => Err(match e {
            Error::Stream { .. } | Error::Io { .. } => patch_error,
            other => other,
        }),
    }
}

fn drain(fs: &mut FsTree, patcher: &mut Patcher, keep: usize) -> Result<()> {
    while patcher.in_flight() > keep {
        if let Some(done) = patcher.wait_one() {
            fs.apply_patched(done?)?;
        }
    }
    Ok(())
}

fn apply_records_with(
    fs: &mut FsTree,
    reader: &mut StreamReader,
    progress: &mut ResumeTracker,
    blame: &mut Blame,
    patcher: &mut Patcher,
    checker: &mut ContentChecker,
    mut ranges: Option<&mut RangeApplier>,
) -> Result<u64> {
    let mut count = 1; // Begin
    let mut since_spill = 0u64;
    let mut records_since_spill = 0u64;
    loop {
        let record = reader.next_record()?;
        count += 1;
        if let Record::End(_) = record {
            drain(fs, patcher, 0)?;
            if let Some(ranges) = ranges.as_deref_mut() {
                ranges.close(fs).map_err(|e| reader.locate(e))?;
            }
            return Ok(count);
        }
        let ino = record.ino();
        // A part from a bookmark removes the target's items as its records pass them:
        // its resume point moves only once a record is applied (`ranges_applied`).
        if ranges.is_none() {
            progress.before(ino.unwrap_or(0));
        }
        let next = next_record(&record);
        let kind = record.record_type();
        blame.note(&record, reader.position);
        since_spill += match &record {
            Record::Write(w) => w.stored_bytes as u64,
            Record::Patch(p) => p.data.len() as u64,
            _ => 0,
        };
        // Patches already handed out are applied first where this record could touch
        // their keys; their errors name their own records.
        match &record {
            Record::Patch(_) => drain(fs, patcher, PATCHES_IN_FLIGHT_MAX - 1)?,
            Record::Write(_) | Record::Punch { .. } | Record::FreeInode { .. } => drain(fs, patcher, 0)?,
            _ => {}
        }
        let applied = match (record, ranges.as_deref_mut()) {
            (record @ (Record::Range { .. } | Record::Item { .. } | Record::KeepRecord(_)), None) => Err(
                Error::stream(format!("{} record in a part that is not from a bookmark", record.record_type().name())),
            ),
            (Record::Range { first, end }, Some(ranges)) => ranges.range(fs, first, end),
            (Record::Item { key, value }, Some(ranges)) => {
                ranges.advance(fs, &key).and_then(|_| fs.apply_item(&key, &value))
            }
            (Record::KeepRecord(k), Some(ranges)) => {
                let key = crate::fs::inode::key(k.ino, crate::fs::inode::ItemKind::Record, &k.index.to_be_bytes());
                ranges.advance(fs, &key).and_then(|old| {
                    fs.check_kept_record(
                        k.ino,
                        k.index,
                        old.as_deref(),
                        k.hash,
                        (&k.checksum, k.overlay_checksum.as_ref()),
                    )
                })
            }
            (Record::Write(w), Some(ranges)) => {
                let key = crate::fs::inode::key(w.ino, crate::fs::inode::ItemKind::Record, &w.index.to_be_bytes());
                ranges.advance(fs, &key).and_then(|_| {
                    let (ino, index, stored) = stored_record(w);
                    let stored = std::sync::Arc::new(stored);
                    checker.submit(ino, reader.position, std::sync::Arc::clone(&stored));
                    fs.apply_stored_record(ino, index, &stored)
                })
            }
            (other, Some(_)) => Err(Error::stream(format!(
                "{} record in a part from a bookmark, which carries ranges of keys",
                other.record_type().name()
            ))),
            (record, None) => match record {
                Record::Patch(p) => submit_patch(fs, patcher, p, reader),
                Record::Write(w) => {
                    let (ino, index, stored) = stored_record(w);
                    let stored = std::sync::Arc::new(stored);
                    checker.submit(ino, reader.position, std::sync::Arc::clone(&stored));
                    fs.apply_stored_record(ino, index, &stored)
                }
                other => apply_one(fs, other),
            },
        };
        if let Err(e) = applied {
            let path = ino.and_then(|ino| fs.path_of(ino)).map(|p| format!(" ({p})")).unwrap_or_default();
            let ino = ino.map(|i| format!(", inode {i}")).unwrap_or_default();
            let e = match e {
                Error::Stream { what } => Error::stream(format!("{} record{ino}{path}: {what}", kind.name())),
                other => other,
            };
            return Err(reader.locate(e));
        }
        match (&ranges, kind) {
            (None, _) => progress.after(next),
            (Some(_), _) => progress.ranges_applied(ino, next),
        }
        records_since_spill += 1;
        if since_spill >= SPILL_DATA_BYTES || records_since_spill >= SPILL_RECORDS {
            drain(fs, patcher, 0)?;
            fs.spill()?;
            since_spill = 0;
            records_since_spill = 0;
        }
    }
}

fn submit_patch(fs: &mut FsTree, patcher: &mut Patcher, p: PatchRecord, reader: &StreamReader) -> Result<()> {
    let old = fs.patch_target(p.ino, p.index)?;
    let plan = patcher.plan(&old, &p)?;
    let pre_read = match patcher.reads_for_itself() {
        true => Vec::new(),
        false => fs.read_stored(&super::patcher::reads(&old, &p, plan))?,
    };
    let at = format!(
        "record {} of part {} at byte {}",
        reader.position.record, reader.position.part, reader.position.offset
    );
    match patcher.submit(PatchJob { ino: p.ino, index: p.index, old, patch: p, plan, pre_read, at }) {
        Some(done) => fs.apply_patched(done?),
        None => Ok(()),
    }
}

fn apply_one(fs: &mut FsTree, record: Record) -> Result<()> {
    match record {
        Record::Begin(_) => Err(Error::stream("a second BEGIN record inside a part")),
        Record::End(_) => unreachable!("End is handled by the caller"),
        Record::TreeMeta { next_ino } => fs.apply_next_ino(next_ino),
        Record::Inode { ino, inode } => fs.apply_inode(ino, &inode),
        Record::FreeInode { ino } => fs.apply_free_inode(ino),
        Record::Link { dir, name, ino } => fs.apply_link(dir, &name, ino),
        Record::Unlink { dir, name, ino } => fs.apply_unlink(dir, &name, ino),
        Record::Rename { ino, from_dir, from_name, to_dir, to_name } => {
            fs.apply_unlink(from_dir, &from_name, ino)?;
            fs.apply_link(to_dir, &to_name, ino)
        }
        Record::Symlink { ino, target } => fs.apply_symlink(ino, &target),
        Record::SetXattr { ino, name, value } => {
            fs.set_xattr(ino, &name, &value).map_err(|e| Error::stream(e.to_string()))
        }
        Record::RemoveXattr { ino, name } => fs.remove_xattr(ino, &name),
        Record::Write(_) => unreachable!("WRITEs are checked and applied by the caller"),
        Record::Patch(_) => unreachable!("patches go to the patcher"),
        Record::Punch { ino, first, count } => fs.apply_punch(ino, first, count),
        Record::Range { .. } | Record::Item { .. } | Record::KeepRecord(_) => {
            unreachable!("the records of a part from a bookmark are applied by the caller")
        }
    }
}

/// A WRITE's blocks as the store takes them: (inode, record index, record).
fn stored_record(w: super::wire::WriteRecord) -> (u64, u64, StoredRecord) {
    let base = StoredBlock {
        logical_bytes: w.logical_bytes as usize,
        stored: w.stored,
        compression: w.compression,
        checksum: w.checksum,
    };
    let overlay = w.overlay.map(|o| {
        let block = StoredBlock {
            logical_bytes: crate::fs::record::masked_bytes(o.logical_bytes, o.mask).expect("checked by the decoder"),
            stored: o.stored,
            compression: o.compression,
            checksum: o.checksum,
        };
        (o.mask, o.logical_bytes, block)
    });
    (w.ino, w.index, StoredRecord { base, hash: w.hash, pieces: w.pieces, overlay })
}

#[derive(Debug)]
pub struct VerifiedPart {
    pub begin: Begin,
    pub records: u64,
    pub bytes: u64,
    /// Why the part would not apply to the target, if a target was given.
    pub refusal: Option<Error>,
    pub preparation: Option<Preparation>,
    /// Device space the part's data takes at least: each WRITE's blocks (and its
    /// overlay's), and a block for each PATCH. Tree nodes come on top.
    pub data_bytes_min: u64,
}

/// Reads a whole stream, checking every record and every End digest, and whether each
/// part would apply to `target` (in order: each part's snapshot counts as received for
/// the next). Changes nothing.
pub fn verify(
    reader: &mut StreamReader,
    mut target: Option<TargetState>,
    options: ReceiveOptions,
) -> Result<Vec<VerifiedPart>> {
    let mut parts = Vec::new();
    while let Some(begin) = reader.next_part()? {
        let start = reader.part_start();
        let mut records = 1;
        let mut data_bytes_min = 0u64;
        loop {
            records += 1;
            let blocks = match reader.next_record()? {
                Record::End(_) => break,
                Record::Write(w) => blocks_of(w.stored_bytes) + w.overlay.map_or(0, |o| blocks_of(o.stored_bytes)),
                Record::Patch(_) => 1,
                _ => 0,
            };
            data_bytes_min = data_bytes_min.saturating_add(blocks * crate::block::BLOCK_BYTES);
        }
        let (refusal, preparation) = match target.as_mut() {
            None => (None, None),
            Some(state) => match state.accept(&begin, options) {
                Ok(p) => {
                    state.received(&begin);
                    (None, Some(p))
                }
                Err(e) => (Some(e), None),
            },
        };
        let bytes = reader.offset() - start;
        parts.push(VerifiedPart { begin, records, bytes, refusal, preparation, data_bytes_min });
    }
    Ok(parts)
}

fn blocks_of(stored_bytes: u32) -> u64 {
    u64::from(stored_bytes).div_ceil(crate::block::BLOCK_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::wire::SnapRef;

    fn snap(name: &str, guid: u8) -> SnapRef {
        SnapRef { guid: [guid; 16], txg: guid as u64, name: name.into() }
    }

    fn begin(snapshot: SnapRef, base: Option<SnapRef>) -> Begin {
        Begin {
            features: 0,
            pool_guid: [9; 16],
            snapshot,
            snapshot_time_ns: 0,
            base,
            part_bytes: 0,
            part: 0,
            parts: 1,
            run_bytes: 0,
            resume: None,
        }
    }

    fn target(snapshots: &[(&str, u8)]) -> TargetState {
        TargetState {
            snapshots: snapshots.iter().map(|(n, g)| (n.to_string(), [*g; 16])).collect(),
            head_changed: false,
            live_empty: true,
            partial: None,
            tree: 1,
        }
    }

    fn refusal(target: &TargetState, begin: &Begin) -> ReceiveRefusal {
        match target.accept(begin, ReceiveOptions::default()) {
            Err(Error::Receive(refusal)) => refusal,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    /// A front end (a replication loop) reads the refusal's facts, not its sentence: each
    /// way a part can miss the target is its own variant, carrying the snapshots involved.
    #[test]
    fn each_refusal_carries_its_facts() {
        let id = |name: &str, guid: u8| SnapshotId { name: name.into(), guid: [guid; 16] };
        let ab = target(&[("a", 1), ("b", 2)]);
        assert_eq!(
            refusal(&ab, &begin(snap("c", 3), Some(snap("a", 1)))),
            ReceiveRefusal::BaseNotNewest {
                base: "a".into(),
                held_as: "a".into(),
                newest: id("b", 2),
                snapshot: "c".into()
            }
        );
        assert_eq!(
            refusal(&ab, &begin(snap("c", 3), Some(snap("x", 7)))),
            ReceiveRefusal::BaseMissing { base: id("x", 7), newest: id("b", 2), snapshot: "c".into() }
        );
        assert_eq!(
            refusal(&ab, &begin(snap("c", 3), Some(snap("b", 8)))),
            ReceiveRefusal::BaseNameOtherGuid { base: id("b", 8), newest: id("b", 2) }
        );
        assert_eq!(
            refusal(&ab, &begin(snap("b2", 2), Some(snap("a", 1)))),
            ReceiveRefusal::AlreadyReceived { snapshot: id("b2", 2), held_as: "b".into() }
        );
        assert_eq!(
            refusal(&ab, &begin(snap("b", 5), Some(snap("a", 1)))),
            ReceiveRefusal::NameTaken { name: "b".into() }
        );
        assert_eq!(
            refusal(&ab, &begin(snap("c", 3), None)),
            ReceiveRefusal::FullOntoSnapshots { snapshot: "c".into(), newest: id("b", 2) }
        );
        assert_eq!(
            refusal(&target(&[]), &begin(snap("c", 3), Some(snap("a", 1)))),
            ReceiveRefusal::NoSnapshots { base: "a".into() }
        );
        let mut changed = ab.clone();
        changed.head_changed = true;
        assert_eq!(
            refusal(&changed, &begin(snap("c", 3), Some(snap("b", 2)))),
            ReceiveRefusal::HeadChanged { newest: "b".into() }
        );
        let mut full = target(&[]);
        full.live_empty = false;
        assert_eq!(refusal(&full, &begin(snap("c", 3), None)), ReceiveRefusal::LiveTreeNotEmpty);
        assert_eq!(
            ab.accept(&begin(snap("c", 3), Some(snap("b", 2))), ReceiveOptions::default()).ok(),
            Some(Preparation::None)
        );
    }
}
