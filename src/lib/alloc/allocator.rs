//! The in-memory allocator and the bookkeeping a commit needs.
//!
//! Invariants:
//! - a block freed in transaction t ("deferred") becomes allocatable only after t's commit
//!   record is durable: until then the previous commit may still need it;
//! - a block allocated and freed within one transaction was never committed and is
//!   reusable at once;
//! - "implicit" blocks (the pool root and the space log chain) are not recorded in the
//!   space log: they are allocated by being reachable from the commit record.

use super::ExtentSet;
use crate::block::{BLOCK_BYTES, BlockPtr};
use crate::error::{Error, Result};

/// Where on the device a block goes (see `Allocator::alloc`).
///
/// Metadata comes in two lifespans, carved from runs of their own: the nodes of file
/// trees, which snapshots and the retained history keep for long, and the blocks the next
/// commits replace and free (the pool's tables, its root, the space log). Mixed in one
/// run, every commit freed the tables it replaced between the file-tree nodes the
/// history kept, and after 20,000 commits the free space was 11,000 holes of about 28
/// blocks, no run anywhere, and a commit's nodes went out in 24 writes instead of 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// File data and overlays: at the cursor, sequentially from the start.
    Data,
    /// The first copy of a file tree's node: first fit from the middle.
    Metadata,
    /// The second copy of metadata: first fit from three quarters in, a quarter of the
    /// device away from the first copies, so one damaged region rarely holds both.
    Ditto,
    /// The first copy of a block the next commits replace: from five eighths in, in runs
    /// of their own.
    Tables,
    /// Its second copy: from seven eighths in.
    TablesDitto,
}

impl Placement {
    pub const COUNT: usize = 5;

    /// Where the second copy of a block placed here goes.
    pub fn ditto(self) -> Placement {
        match self {
            Placement::Tables | Placement::TablesDitto => Placement::TablesDitto,
            _ => Placement::Ditto,
        }
    }

    fn is_ditto(self) -> bool {
        matches!(self, Placement::Ditto | Placement::TablesDitto)
    }

    /// The metadata run this placement carves from (none for data).
    fn run_index(self) -> Option<usize> {
        match self {
            Placement::Data => None,
            Placement::Metadata => Some(0),
            Placement::Ditto => Some(1),
            Placement::Tables => Some(2),
            Placement::TablesDitto => Some(3),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocKind {
    /// Recorded in the space log.
    Explicit,
    /// Reachable from the commit record; not logged.
    Implicit,
}

pub struct Allocator {
    pub free: ExtentSet,
    pub usable_start: u64,
    pub usable_end: u64,
    cursor: u64,
    /// The free runs that metadata is carved from end to end, one per metadata placement
    /// (`Placement::run_index`): (next block, end). The nodes a commit writes then lie
    /// together and go out in one write, where first fit strewed them over the small
    /// holes that earlier commits' freed nodes leave (six writes a copy for a snapshot at
    /// 1,000 clones).
    runs: [Option<(u64, u64)>; 4],
    /// Blocks kept back so that a commit can always write its metadata.
    pub reserve_blocks: u64,
    /// True while a commit writes metadata: it may use the reserve.
    pub committing: bool,
    /// Metadata the running transaction's commit will write, as far as it is known
    /// (dirty tree nodes at their largest, dead-index entries, every copy): file data
    /// leaves room for it, so that a commit, once started, finds the space it needs.
    pub metadata_pending_bytes: u64,
    pub txg_allocs: ExtentSet,
    pub txg_frees: ExtentSet,
    pub implicit_live: ExtentSet,
    pub implicit_frees: ExtentSet,
    /// Free blocks not to be used: freed after a commit a reader holds whole (check,
    /// scrub; pool/pins.rs), they may still hold what it reads. Free as far as the space
    /// log is concerned; usable again at the first open after the reader is gone.
    pub held: ExtentSet,
    /// A reader holds a whole commit: what this handle frees joins `held`.
    pub holding: bool,
    /// Blocks the history held and gave back in this transaction, for messages.
    pub history_blocks_hint: u64,
    /// Snapshots the pool has, for the same message's hint.
    pub snapshots_hint: u64,
}

/// Blocks a metadata run spans at most (1 MiB): a commit's nodes, both copies of each in
/// a run of its own.
const METADATA_RUN_BLOCKS: u64 = 256;

/// A run starts in the first free stretch at least this long (128 KiB, more than most
/// commits write), so that what the last process left of its run is where the next one
/// goes on, instead of a hole left behind.
const METADATA_RUN_MIN_BLOCKS: u64 = 32;

/// Blocks kept back for a commit's metadata on a data area of `usable` blocks.
fn reserve_blocks_for(usable: u64) -> u64 {
    (usable / 64).clamp(64, 16384).min(usable / 4)
}

impl Allocator {
    pub fn new(usable_start: u64, usable_end: u64) -> Allocator {
        let reserve_blocks = reserve_blocks_for(usable_end - usable_start);
        Allocator {
            free: ExtentSet::new(),
            usable_start,
            usable_end,
            cursor: usable_start,
            runs: [None; 4],
            reserve_blocks,
            committing: false,
            metadata_pending_bytes: 0,
            txg_allocs: ExtentSet::new(),
            txg_frees: ExtentSet::new(),
            implicit_live: ExtentSet::new(),
            implicit_frees: ExtentSet::new(),
            held: ExtentSet::new(),
            holding: false,
            history_blocks_hint: 0,
            snapshots_hint: 0,
        }
    }

    /// The data area now ends at `usable_end` (`snapctl expand`): the blocks gained are free.
    pub fn grow_to(&mut self, usable_end: u64) {
        assert!(usable_end > self.usable_end, "a data area only grows");
        assert!(self.free.insert(self.usable_end, usable_end - self.usable_end));
        self.usable_end = usable_end;
        self.reserve_blocks = reserve_blocks_for(self.usable_blocks());
    }

    pub fn usable_blocks(&self) -> u64 {
        self.usable_end - self.usable_start
    }

    /// Allocates `len` contiguous blocks. File data goes at a cursor that moves forward
    /// from the start of the data area, so a copy-in writes sequentially. Metadata comes
    /// from the middle of the area (as btrfs keeps metadata in chunks of its own), carved
    /// from runs (`carve_metadata`): the nodes of a tree stay packed together in key order
    /// instead of strewn between the data written beside them, so a walk reads a few
    /// dense stretches, and a commit's nodes go out in one write. Either kind wraps
    /// around into the other's half once its own is full. Second copies of metadata
    /// (dittos) start a quarter of the area beyond the first copies.
    pub fn alloc(&mut self, len: u64, kind: AllocKind, placement: Placement) -> Result<u64> {
        let spare = match (self.committing, placement) {
            (true, _) => 0,
            (false, Placement::Data) => self.reserve_blocks + self.metadata_pending_bytes.div_ceil(BLOCK_BYTES),
            (false, _) => self.reserve_blocks,
        };
        if self.free.blocks() < len + spare {
            return Err(self.no_space(len));
        }
        let start = match placement.run_index() {
            None => self.free.find(self.cursor, len),
            Some(run) => {
                // Second copies a quarter of the area on; what commits replace an eighth
                // on from what they keep, so that the two meet as late as possible.
                let eighths = if placement.is_ditto() { 2 } else { 0 } + if run >= 2 { 1 } else { 0 };
                self.carve_metadata(self.metadata_start() + self.usable_blocks() / 8 * eighths, len, run)
            }
        };
        let Some(start) = start else { return Err(self.no_space(len)) };
        assert!(self.free.remove(start, len));
        if placement == Placement::Data {
            self.cursor = start + len;
        }
        let set = match kind {
            AllocKind::Explicit => &mut self.txg_allocs,
            AllocKind::Implicit => &mut self.implicit_live,
        };
        assert!(set.insert(start, len));
        Ok(start)
    }

    /// `len` blocks for metadata: the next ones of run `run` if they are still free, else
    /// the start of a new run in the first free stretch of METADATA_RUN_MIN_BLOCKS from
    /// `from` (up to METADATA_RUN_BLOCKS of it), else, the free space being in pieces,
    /// the first fit for `len` alone; never in what is left of another run.
    fn carve_metadata(&mut self, from: u64, len: u64, run: usize) -> Option<u64> {
        // A small area (tests, tiny devices) takes shorter runs: second copies must still
        // find theirs a quarter of the area away.
        let most = METADATA_RUN_BLOCKS.min(self.usable_blocks() / 16).max(len);
        let least = METADATA_RUN_MIN_BLOCKS.min(most).max(len);
        if let Some((next, end)) = self.runs[run] {
            if next + len <= end && self.free.contains(next, len) {
                self.runs[run] = Some((next + len, end));
                return Some(next);
            }
        }
        self.runs[run] = None;
        match self.find_outside_runs(from, least) {
            Some(start) => {
                // Up to where another run goes on, if that is within the stretch.
                let others = self.runs.iter().flatten().map(|&(next, _)| next).filter(|&next| next > start);
                let end = (start + self.free.stretch_from(start).min(most)).min(others.min().unwrap_or(u64::MAX));
                self.runs[run] = Some((start + len, end));
                Some(start)
            }
            None => self.find_outside_runs(from, len),
        }
    }

    /// The first fit for `len` from `from` that is not in what is left of a run: taken
    /// from under it, the run would break, and blocks of the other lifespan would lie
    /// between its nodes.
    fn find_outside_runs(&self, from: u64, len: u64) -> Option<u64> {
        let mut from = from;
        // Each run is skipped at most once or twice (the search wraps around).
        for _ in 0..8 {
            let start = self.free.find(from, len)?;
            let taken = self.runs.iter().flatten().find(|&&(next, end)| start < end && next < start + len);
            match taken {
                Some(&(_, end)) => from = end,
                None => return Some(start),
            }
        }
        self.free.find(from, len)
    }

    /// Where metadata allocation starts looking: the middle of the data area.
    pub fn metadata_start(&self) -> u64 {
        self.usable_start + self.usable_blocks() / 2
    }

    fn no_space(&self, len: u64) -> Error {
        let spare = self.reserve_blocks + self.metadata_pending_bytes.div_ceil(BLOCK_BYTES);
        let free = self.free.blocks().saturating_sub(if self.committing { 0 } else { spare });
        Error::NoSpace {
            need: format!("the transaction needs at least {} more", crate::error::human_bytes(len * BLOCK_BYTES)),
            needed_bytes: len * BLOCK_BYTES,
            free_bytes: free * BLOCK_BYTES,
            history_bytes: self.history_blocks_hint * BLOCK_BYTES,
            snapshots: self.snapshots_hint,
        }
    }

    /// Frees a block that this transaction allocated: it was never committed.
    pub fn free_now(&mut self, start: u64, len: u64) {
        assert!(self.txg_allocs.remove(start, len), "free_now of {start}+{len} not allocated in this txg");
        assert!(self.free.insert(start, len));
    }

    /// Frees a committed block once this transaction is durable.
    pub fn defer_free(&mut self, start: u64, len: u64) -> Result<()> {
        if self.free.overlaps(start, len) || self.held.overlaps(start, len) || !self.txg_frees.insert(start, len) {
            return Err(Error::corrupt(format!("block {start} (+{len}) is freed twice")));
        }
        Ok(())
    }

    pub fn defer_free_implicit(&mut self, start: u64, len: u64) {
        assert!(self.implicit_live.remove(start, len));
        assert!(self.implicit_frees.insert(start, len));
    }

    /// Gives back an allocation that was never written (its block's second copy found
    /// no room).
    pub fn unalloc(&mut self, start: u64, len: u64, kind: AllocKind) {
        let set = match kind {
            AllocKind::Explicit => &mut self.txg_allocs,
            AllocKind::Implicit => &mut self.implicit_live,
        };
        assert!(set.remove(start, len), "unalloc of {start}+{len} not allocated");
        assert!(self.free.insert(start, len));
        // The last blocks carved from a run go back to it.
        for run in &mut self.runs {
            if let Some((next, end)) = *run {
                if next == start + len {
                    *run = Some((start, end));
                }
            }
        }
    }

    /// Frees every copy of a block this transaction wrote.
    pub fn free_now_ptr(&mut self, ptr: &BlockPtr) {
        for (start, len) in ptr.extents() {
            self.free_now(start, len);
        }
    }

    /// Frees every copy of a committed block once this transaction is durable.
    pub fn defer_free_ptr(&mut self, ptr: &BlockPtr) -> Result<()> {
        ptr.extents().try_for_each(|(start, len)| self.defer_free(start, len))
    }

    /// Frees every copy of an implicit block once this transaction is durable.
    pub fn defer_free_implicit_ptr(&mut self, ptr: &BlockPtr) {
        for (start, len) in ptr.extents() {
            self.defer_free_implicit(start, len);
        }
    }

    /// Keeps whatever of [start, start+len) is free from being used (see `held`).
    pub fn hold(&mut self, start: u64, len: u64) {
        self.holding = true;
        for (s, l) in self.free.take_within(start, len) {
            assert!(self.held.insert(s, l));
        }
    }

    /// Free blocks, used or held back.
    pub fn unused_blocks(&self) -> u64 {
        self.free.blocks() + self.held.blocks()
    }

    /// The commit record is durable: deferred frees become allocatable, or are held
    /// while a reader holds a whole commit.
    pub fn commit_done(&mut self) {
        for set in [std::mem::take(&mut self.txg_frees), std::mem::take(&mut self.implicit_frees)] {
            let into = if self.holding { &mut self.held } else { &mut self.free };
            for (s, l) in set.iter() {
                assert!(into.insert(s, l));
            }
        }
        self.txg_allocs = ExtentSet::new();
        self.committing = false;
        self.metadata_pending_bytes = 0;
    }

    /// Explicitly allocated blocks as they will be once this transaction commits: what a
    /// condensed space log must list.
    pub fn explicit_after_commit(&self) -> ExtentSet {
        let mut unused = self.free.clone();
        for (s, l) in self.held.iter() {
            assert!(unused.insert(s, l));
        }
        let mut out = unused.complement_within(self.usable_start, self.usable_end);
        for set in [&self.txg_frees, &self.implicit_live, &self.implicit_frees] {
            for (s, l) in set.iter() {
                assert!(out.remove(s, l));
            }
        }
        out
    }

    /// Blocks allocated once this transaction commits.
    pub fn used_blocks(&self) -> u64 {
        self.usable_blocks() - self.unused_blocks() - self.txg_frees.blocks() - self.implicit_frees.blocks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(blocks: u64) -> Allocator {
        let mut alloc = Allocator::new(16, 16 + blocks);
        alloc.free.insert(16, blocks);
        alloc.reserve_blocks = 0;
        alloc
    }

    #[test]
    fn data_fills_from_the_start_and_metadata_from_the_middle() {
        let mut alloc = allocator(1000);
        let data: Vec<u64> = (0..3).map(|_| alloc.alloc(10, AllocKind::Explicit, Placement::Data).unwrap()).collect();
        assert_eq!(data, vec![16, 26, 36], "data is sequential from the start");
        let nodes: Vec<u64> =
            (0..3).map(|_| alloc.alloc(4, AllocKind::Explicit, Placement::Metadata).unwrap()).collect();
        assert_eq!(nodes, vec![516, 520, 524], "nodes pack from the middle, in order");
        // The run goes on past a node freed meanwhile: a commit's nodes stay end to end.
        alloc.defer_free(520, 4).unwrap();
        alloc.commit_done();
        assert_eq!(alloc.alloc(4, AllocKind::Explicit, Placement::Metadata).unwrap(), 528);
        // Once the run (62 blocks here) is used up, a new one starts at the first free
        // stretch that long from the middle (here where the last one ended): the 4-block
        // hole at 520 is left for when no run is free.
        let mut last = 528;
        while last < 572 {
            last = alloc.alloc(4, AllocKind::Explicit, Placement::Metadata).unwrap();
        }
        assert_eq!(alloc.alloc(4, AllocKind::Explicit, Placement::Metadata).unwrap(), 576);
    }

    #[test]
    fn second_copies_lie_a_quarter_of_the_area_beyond_the_first() {
        let mut alloc = allocator(1000);
        let first = alloc.alloc(4, AllocKind::Explicit, Placement::Metadata).unwrap();
        let ditto = alloc.alloc(4, AllocKind::Explicit, Placement::Ditto).unwrap();
        assert_eq!((first, ditto), (516, 766));
        // An allocation never written goes back to the free set (a first copy whose
        // second found no room).
        alloc.unalloc(ditto, 4, AllocKind::Explicit);
        assert_eq!(alloc.alloc(4, AllocKind::Explicit, Placement::Ditto).unwrap(), 766);
    }

    /// `commits` commits, each making seven file-tree nodes the history keeps and eight
    /// table blocks `tables` that replace (free) the previous commit's, the two kinds
    /// interleaved; by one process (`fresh_runs` false: runs go on from commit to commit,
    /// as in a mounted file system's) or a process each. Returns the free extents at the
    /// end and the commits whose kept nodes were not end to end.
    fn long_history(tables: Placement, commits: usize, fresh_runs: bool) -> (usize, usize) {
        let mut alloc = allocator(1_000_000);
        let (mut previous, mut scattered) = (Vec::new(), 0);
        for _ in 0..commits {
            if fresh_runs {
                alloc.runs = [None; 4];
            }
            let (mut kept, mut replaced) = (Vec::new(), Vec::new());
            for (is_kept, count) in [(true, 4), (false, 4), (true, 3), (false, 4)] {
                let (into, kind) = if is_kept { (&mut kept, Placement::Metadata) } else { (&mut replaced, tables) };
                into.extend((0..count).map(|_| alloc.alloc(1, AllocKind::Explicit, kind).unwrap()));
            }
            if kept.windows(2).any(|w| w[1] != w[0] + 1) {
                scattered += 1;
            }
            for block in std::mem::replace(&mut previous, replaced) {
                alloc.defer_free(block, 1).unwrap();
            }
            alloc.commit_done();
        }
        (alloc.free.iter().count(), scattered)
    }

    #[test]
    fn what_commits_replace_leaves_no_holes_between_what_the_history_keeps() {
        // Goal: a long history does not fragment the free space. Tables apart from the
        // runs of file trees' nodes: their frees merge, and each commit's kept nodes lie
        // end to end (but where a run ends, or the kept nodes grow past where the tables
        // go: a few dozen commits in 20,000). In the file trees' runs (as before), every commit
        // punched holes between kept nodes: on a real pool after 20,000 commits, 11,000
        // holes and no run left.
        for fresh_runs in [false, true] {
            let (extents, scattered) = long_history(Placement::Tables, 20_000, fresh_runs);
            assert!(extents < 10 && scattered < 100, "{extents} free extents, {scattered} commits scattered");
            let (extents, _) = long_history(Placement::Metadata, 20_000, fresh_runs);
            assert!(extents > 1000, "mixed: {extents} free extents");
        }
    }

    #[test]
    fn each_kind_wraps_into_the_other_half_when_its_own_is_full() {
        let mut alloc = allocator(100);
        assert_eq!(alloc.alloc(50, AllocKind::Explicit, Placement::Metadata).unwrap(), 66, "the upper half");
        assert_eq!(alloc.alloc(10, AllocKind::Explicit, Placement::Metadata).unwrap(), 16, "then from the start");
        assert_eq!(alloc.alloc(40, AllocKind::Explicit, Placement::Data).unwrap(), 26, "data takes what is left");
        assert!(alloc.alloc(1, AllocKind::Explicit, Placement::Data).is_err(), "the device is full");
    }
}
