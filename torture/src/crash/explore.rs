//! Walks the recorded log flush boundary by flush boundary, builds the crash images of
//! each (model.rs) over the durable image of that boundary, and judges every one: it
//! must open, pass `check`, and hold the state before the command in flight, one of
//! its intermediate commits, or the state after it.
//!
//! The durable image is kept up to date boundary by boundary; a crash image is that
//! image plus an overlay of the blocks its pending pieces touch, so a state costs what
//! it reads, not a copy of the device.

use super::log::Event;
use super::model::{self, BLOCK, CrashState, PendingWrite, Piece, StateKind};
use super::state::{DigestCache, PoolState, capture};
use super::workload::Recording;
use snapfs::check::check_pool;
use snapfs::device::Device;
use snapfs::device::{OpenMode, OverlayDevice};
use snapfs::error::Result as SnapResult;
use snapfs::format::label::Label;
use snapfs::fs::{Inode, ROOT_INO, Timespec};
use snapfs::pool::LIVE_TREE_ID;
use snapfs::pool::Pool;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A flush boundary: the durable image is every write before event `flush` (the flush
/// that starts it); the pending writes are those up to the next flush.
pub struct Boundary {
    /// Index among explored boundaries (0 is the boundary right after the format).
    pub number: usize,
    /// Index of the flush event that opens it.
    pub flush: usize,
    /// How many flushes came before it in the whole log (1-based: the n-th flush).
    pub flush_ordinal: usize,
    pub writes: Vec<PendingWrite>,
    /// Commands whose events fall in it: a crash here may leave any of their states.
    pub commands: Vec<usize>,
    /// The device's size at its end, which its crash images have (workload.rs: the
    /// device grows only with no write pending).
    pub device_bytes: u64,
}

/// The boundaries of a recording, from the format's last flush on.
pub fn boundaries(rec: &Recording) -> Vec<Boundary> {
    let format_end = rec.commands[0].events.end;
    let flushes: Vec<usize> =
        rec.events.iter().enumerate().filter(|(_, l)| l.event == Event::Flush).map(|(i, _)| i).collect();
    let first = flushes.iter().rposition(|&i| i < format_end).expect("the format flushes");
    let mut out = Vec::new();
    for (k, &flush) in flushes.iter().enumerate().skip(first) {
        let end = flushes.get(k + 1).copied().unwrap_or(rec.events.len());
        let mut writes = Vec::new();
        let mut commands = Vec::new();
        for i in flush + 1..end {
            if let Event::Write { offset, data } = &rec.events[i].event {
                writes.push(PendingWrite { offset: *offset, data: data.clone() });
                let c = rec.command_of(i);
                if !commands.contains(&c) {
                    commands.push(c);
                }
            }
        }
        if commands.is_empty() {
            // No pending write: the durable image, which the command of the flush left.
            commands.push(rec.command_of(flush));
        }
        let device_bytes = rec.device_bytes_at(end - 1);
        out.push(Boundary { number: out.len(), flush, flush_ordinal: k + 1, writes, commands, device_bytes });
    }
    out
}

/// Applies events [from, to) to `image` in order (writes, and the size open records give).
pub fn apply_events(rec: &Recording, image: &mut Vec<u8>, from: usize, to: usize) {
    super::workload::apply_logged(image, &rec.log, &rec.events[from..to]);
}

/// The states a crash in `boundary` may leave, each with its name for the summary and the
/// command in flight.
pub fn allowed<'a>(rec: &'a Recording, boundary: &Boundary) -> Vec<(Outcome, usize, &'a PoolState)> {
    let mut out = Vec::new();
    for &c in &boundary.commands {
        // Writes of the format pending past its last flush (none, if it flushes as it
        // should): the format returned, so only the pool it made may show.
        if c > 0 {
            out.push((Outcome::Before, c, &rec.commands[c - 1].after));
        }
        out.extend(rec.commands[c].intermediate.iter().map(|s| (Outcome::Intermediate, c, s)));
        out.push((Outcome::After, c, &rec.commands[c].after));
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Before,
    Intermediate,
    After,
}

/// What one crash image showed.
pub enum Verdict {
    /// `command`: the command in flight whose state it holds; `first_label_unusable`: the
    /// label at block 0 did not decode (an expand cut short while rewriting it).
    Matched {
        outcome: Outcome,
        command: usize,
        recovered: bool,
        first_label_unusable: bool,
        /// It held a subset snapshot being extracted, which was then finished.
        extraction_finished: bool,
    },
    Failed(String),
}

/// Opens, checks and compares one crash image; with `recover`, then commits on top of
/// it as the next command after the power came back would (see `recover`).
pub fn judge(
    durable: &Arc<Vec<u8>>,
    blocks: HashMap<u64, Vec<u8>>,
    allowed: &[(Outcome, usize, &PoolState)],
    cache: Option<&DigestCache>,
    recover: bool,
) -> Verdict {
    // The durable image is shared and never written; a recovery writes to the overlay.
    let image = OverlayDevice::new(Arc::clone(durable), blocks);
    let mut first = vec![0u8; BLOCK];
    let first_label_unusable = image.read_at(0, &mut first).is_err() || !matches!(Label::decode(&first), Ok(Some(_)));
    let (state, outcome, command) = match open_and_match(&image, allowed, cache) {
        Ok(found) => found,
        Err(why) => return Verdict::Failed(why),
    };
    if recover {
        if let Err(why) = self::recover(&image, &state, cache) {
            return Verdict::Failed(format!("the crash left {outcome:?} (txg {}), but then {why}", state.txg));
        }
    }
    let extraction_finished = state.snapshots.values().any(|s| s.extracting);
    if extraction_finished {
        if let Err(why) = finish_extractions(&image, &state, cache) {
            return Verdict::Failed(format!("the crash left {outcome:?} (txg {}), but then {why}", state.txg));
        }
    }
    Verdict::Matched { outcome, command, recovered: recover, first_label_unusable, extraction_finished }
}

fn open_checked(image: &OverlayDevice, cache: Option<&DigestCache>) -> Result<(PoolState, Vec<String>), String> {
    let mut pool =
        Pool::open(Box::new(image.read_only()), OpenMode::Read).map_err(|e| format!("the pool does not open: {e}"))?;
    match check_pool(&mut pool) {
        Ok(report) if report.is_clean() => {}
        Ok(report) => return Err(format!("check finds problems at txg {}: {:?}", pool.txg().0, report.problems)),
        Err(e) => return Err(format!("check fails at txg {}: {e}", pool.txg().0)),
    }
    let state =
        capture(&mut pool, cache).map_err(|e| format!("reading the trees at txg {} fails: {e}", pool.txg().0))?;
    Ok((state, pool.warnings.iter().map(ToString::to_string).collect()))
}

fn open_and_match(
    image: &OverlayDevice,
    allowed: &[(Outcome, usize, &PoolState)],
    cache: Option<&DigestCache>,
) -> Result<(PoolState, Outcome, usize), String> {
    let (state, warnings) = open_checked(image, cache)?;
    let Some((outcome, command, _)) = allowed.iter().find(|(_, _, s)| **s == state) else {
        let differences: Vec<String> =
            allowed.iter().map(|(o, _, s)| format!("vs {o:?} ({}): {}", s.describe(), state.difference(s))).collect();
        return Err(format!(
            "the pool holds neither the state before the command, nor the one after: {}; {}",
            state.describe(),
            differences.join("; ")
        ));
    };
    if !warnings.is_empty() {
        // A torn record fails its checksum silently; a valid newest record whose root is
        // unreadable means a record was durable before its blocks were.
        return Err(format!(
            "the pool holds an allowed state ({outcome:?}, txg {}) but opened with a warning: {}",
            state.txg,
            warnings.join("; ")
        ));
    }
    Ok((state, *outcome, *command))
}

/// Name of the file a recovery writes into the root of the live tree.
const RECOVERED_NAME: &str = "recovered-after-crash";

/// The next command after the power came back: open the crash image for writing, write
/// a file of a few records into the live tree, commit. The pool must then open at the
/// next txg, pass `check`, and hold the crash's state plus that file. This is what
/// catches a recovery that reuses a block the opened commit still needs (free space
/// rebuilt from the space log while blocks of the lost transaction lie around), or a
/// commit record slot or txg reused wrongly after the lost commit.
fn recover(image: &OverlayDevice, before: &PoolState, cache: Option<&DigestCache>) -> Result<(), String> {
    let mut data = vec![0u8; 300_000];
    crate::rng::Rng::derive(before.txg, &[0xC0DE]).fill(&mut data[..150_000]);
    let mut pool = Pool::open(Box::new(image.clone()), OpenMode::Write)
        .map_err(|e| format!("it does not open for writing: {e}"))?;
    let written = (|| -> SnapResult<()> {
        let mut fs = pool.live(LIVE_TREE_ID)?;
        let inode = Inode::new(0o100644, Timespec::from_ns(1_000_000_000));
        let ino = fs.create(ROOT_INO, RECOVERED_NAME.as_bytes(), inode)?;
        fs.write_at(ino, 0, &data)?;
        pool.commit().map(|_| ())
    })();
    written.map_err(|e| format!("a new commit on it fails: {e}"))?;
    drop(pool);
    let (after, warnings) = open_checked(image, cache).map_err(|e| format!("after a new commit on it, {e}"))?;
    let mut problems = Vec::new();
    if !warnings.is_empty() {
        problems.push(format!("warnings {warnings:?}"));
    }
    if after.txg != before.txg + 1 {
        problems.push(format!("txg {} (expected {})", after.txg, before.txg + 1));
    }
    if after.snapshots != before.snapshots
        || after.config != before.config
        || after.receive != before.receive
        || after.pool_bytes != before.pool_bytes
    {
        problems.push(format!(
            "snapshots, configuration, partial receive or pool size changed: {}",
            after.difference(before)
        ));
    }
    if !after.history.contains(&after.txg) {
        problems.push("the new commit is not in the history".to_string());
    }
    // The live tree: the same but for the root directory's line and the new file's.
    let new_file = format!("/{RECOVERED_NAME} ");
    let content = format!(" content={} ", hex(&snapfs::checksum::blake3(&data)[..16]));
    let rest = |lines: &[String]| -> Vec<String> {
        lines.iter().skip(1).filter(|l| !l.starts_with(&new_file)).cloned().collect()
    };
    if rest(&after.live.lines) != rest(&before.live.lines) {
        problems.push(format!("the rest of the live tree changed: {}", after.difference(before)));
    }
    let line = after.live.lines.iter().find(|l| l.starts_with(&new_file));
    if !line.is_some_and(|l| format!("{l} ").contains(&content)) {
        problems.push(format!("the new file reads back wrong: {line:?}"));
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("a new commit on it leaves {}", problems.join("; "))) }
}

/// A crash during a subset snapshot's extraction loses nothing: finishing it on the
/// crash image, as `snapctl extract` does once the power is back (a new selection, then
/// a step per commit from the entry's inode), leaves the pool clean and each such
/// snapshot whole, holding the tree readers saw in it before.
fn finish_extractions(image: &OverlayDevice, before: &PoolState, cache: Option<&DigestCache>) -> Result<(), String> {
    let mut pool = Pool::open(Box::new(image.clone()), OpenMode::Write)
        .map_err(|e| format!("it does not open for writing: {e}"))?;
    let finished = (|| -> SnapResult<()> {
        for entry in pool.extracting_snapshots()? {
            let plan = pool.extraction_plan(&entry)?;
            while !pool.extract_step(entry.tree, &entry.name, &entry.guid, &plan, 3)?.is_done() {
                pool.commit()?;
            }
            pool.commit()?;
        }
        Ok(())
    })();
    finished.map_err(|e| format!("finishing its extractions fails: {e}"))?;
    drop(pool);
    let (after, _) = open_checked(image, cache).map_err(|e| format!("after finishing its extractions, {e}"))?;
    let mut expected = before.snapshots.clone();
    expected.values_mut().for_each(|s| s.extracting = false);
    if after.snapshots != expected {
        let wanted = PoolState { snapshots: expected, ..after.clone() };
        return Err(format!("finishing its extractions leaves other snapshots: {}", after.difference(&wanted)));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Per boundary: its pieces and the states to try.
pub struct Planned {
    pub pieces: Vec<Piece>,
    pub states: Vec<CrashState>,
    /// The number of `states[0]` in the boundary (not 0 when replaying one state).
    pub first: usize,
}

pub fn plan(boundary: &Boundary, seed: u64, wanted: usize) -> Planned {
    let pieces = model::pieces_of(&boundary.writes);
    let states = model::states(&pieces, boundary.writes.len(), seed, boundary.number as u64, wanted);
    Planned { pieces, states, first: 0 }
}

/// Counts of what was tried, by kind.
#[derive(Default, Clone, Debug)]
pub struct Tally {
    pub states: usize,
    pub by_kind: HashMap<&'static str, usize>,
    pub by_outcome: HashMap<Outcome, usize>,
    /// States on which a recovery commit was made and checked too.
    pub recovered: usize,
    /// By command in flight and outcome.
    pub by_command: BTreeMap<(usize, Outcome), usize>,
    /// States whose label at block 0 did not decode, which opened as they should.
    pub first_label_unusable: usize,
    /// States holding a subset snapshot being extracted, finished and checked.
    pub extractions_finished: usize,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.states += other.states;
        self.recovered += other.recovered;
        self.first_label_unusable += other.first_label_unusable;
        self.extractions_finished += other.extractions_finished;
        for (k, n) in &other.by_command {
            *self.by_command.entry(*k).or_default() += n;
        }
        for (k, n) in &other.by_kind {
            *self.by_kind.entry(k).or_default() += n;
        }
        for (o, n) in &other.by_outcome {
            *self.by_outcome.entry(*o).or_default() += n;
        }
    }
}

pub fn kind_name(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Nothing => "nothing pending durable",
        StateKind::All => "all pending durable",
        StateKind::Prefix => "in-order prefixes",
        StateKind::Random => "random subsets and orders",
    }
}

/// One state in this many also gets a recovery commit (`recover`).
pub const RECOVER_EVERY: usize = 3;

/// How states are judged: on how many threads, with which digest cache.
pub struct Judging<'a> {
    pub threads: usize,
    pub cache: Option<&'a DigestCache>,
}

/// Judges the planned states of one boundary. Calls `failed` with the state's number in
/// the boundary and the message, for each failure.
pub fn run_boundary(
    rec: &Recording,
    boundary: &Boundary,
    planned: &Planned,
    durable: &Arc<Vec<u8>>,
    judging: &Judging,
    tally: &mut Tally,
    failed: &mut dyn FnMut(usize, &str),
) {
    let allowed = allowed(rec, boundary);
    let next = AtomicUsize::new(0);
    let results: Vec<Vec<(usize, Verdict)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..judging.threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(state) = planned.states.get(k) else { break };
                        let blocks = model::overlay(state, &planned.pieces, &rec.log, durable);
                        let number = planned.first + k;
                        let recover = number % RECOVER_EVERY == RECOVER_EVERY - 1;
                        mine.push((k, judge(durable, blocks, &allowed, judging.cache, recover)));
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a worker panicked")).collect()
    });
    let mut all: Vec<(usize, Verdict)> = results.into_iter().flatten().collect();
    all.sort_by_key(|(k, _)| *k);
    for (k, verdict) in all {
        tally.states += 1;
        *tally.by_kind.entry(kind_name(planned.states[k].kind)).or_default() += 1;
        match verdict {
            Verdict::Matched { outcome, command, recovered, first_label_unusable, extraction_finished } => {
                *tally.by_outcome.entry(outcome).or_default() += 1;
                *tally.by_command.entry((command, outcome)).or_default() += 1;
                tally.recovered += usize::from(recovered);
                tally.extractions_finished += usize::from(extraction_finished);
                tally.first_label_unusable += usize::from(first_label_unusable);
            }
            Verdict::Failed(why) => failed(planned.first + k, &why),
        }
    }
}

/// True if every pending write of `boundary` is a commit record (a ring slot of either
/// label region of a pool of `pool_bytes`): the second half of a commit, whose blocks the
/// boundary before wrote.
pub fn writes_only_commit_records(boundary: &Boundary, pool_bytes: u64) -> bool {
    let blocks = pool_bytes / BLOCK as u64;
    let region_1 = blocks - snapfs::format::label::REGION_BLOCKS;
    !boundary.writes.is_empty()
        && boundary.writes.iter().all(|w| {
            let block = w.offset / BLOCK as u64;
            let in_ring = |start: u64| block > start && block <= start + snapfs::format::label::RING_SLOTS;
            w.offset % BLOCK as u64 == 0 && w.data.len() == BLOCK && (in_ring(0) || in_ring(region_1))
        })
}

/// The negative control of a commit: the durable image of the boundary before the
/// commit records, with the records of `next` durable and none of the blocks they name
/// (a device that broke the flush between them). The judge must reject it; if it did
/// not, it could not tell a broken pool from a good one.
pub fn control_rejected(rec: &Recording, boundary: &Boundary, next: &Boundary, durable: &Arc<Vec<u8>>) -> bool {
    let pieces = model::pieces_of(&next.writes);
    let all = CrashState { kind: StateKind::All, applied: (0..pieces.len()).map(|p| (p, model::WHOLE)).collect() };
    let blocks = model::overlay(&all, &pieces, &rec.log, durable);
    matches!(judge(durable, blocks, &allowed(rec, boundary), None, false), Verdict::Failed(_))
}
