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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// File data and overlays: at the cursor, sequentially from the start.
    Data,
    /// The first copy of metadata: first fit from the middle.
    Metadata,
    /// The second copy of metadata: first fit from three quarters in, a quarter of the
    /// device away from the first copies, so one damaged region rarely holds both.
    Ditto,
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
    /// The free run that metadata first copies, and second copies, are carved from end
    /// to end: (next block, end). The nodes a commit writes then lie together and go out
    /// in one write, where first fit strewed them over the small holes that earlier
    /// commits' freed nodes leave (six writes a copy for a snapshot at 1,000 clones).
    metadata_run: Option<(u64, u64)>,
    ditto_run: Option<(u64, u64)>,
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

/// Blocks of a metadata run (1 MiB): a commit's nodes, both copies of each in its own run.
const METADATA_RUN_BLOCKS: u64 = 256;

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
            metadata_run: None,
            ditto_run: None,
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
        let from = match placement {
            Placement::Data => self.cursor,
            Placement::Metadata => self.metadata_start(),
            Placement::Ditto => self.metadata_start() + self.usable_blocks() / 4,
        };
        let start = match placement {
            Placement::Data => self.free.find(from, len),
            Placement::Metadata | Placement::Ditto => self.carve_metadata(from, len, placement),
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

    /// `len` blocks for metadata: the next ones of the current run if they are still free,
    /// else the start of a new run of METADATA_RUN_BLOCKS free blocks (first fit from
    /// `from`), else, the free space being in pieces, the first fit for `len` alone.
    fn carve_metadata(&mut self, from: u64, len: u64, placement: Placement) -> Option<u64> {
        // A small area (tests, tiny devices) takes shorter runs: second copies must still
        // find theirs a quarter of the area away.
        let want = METADATA_RUN_BLOCKS.min(self.usable_blocks() / 16).max(len);
        let run = if placement == Placement::Ditto { &mut self.ditto_run } else { &mut self.metadata_run };
        if let Some((next, end)) = *run {
            if next + len <= end && self.free.contains(next, len) {
                *run = Some((next + len, end));
                return Some(next);
            }
        }
        match self.free.find(from, want) {
            Some(start) => {
                *run = Some((start + len, start + want));
                Some(start)
            }
            None => {
                *run = None;
                self.free.find(from, len)
            }
        }
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
        for run in [&mut self.metadata_run, &mut self.ditto_run] {
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
        let mut out = ExtentSet::new();
        let mut at = self.usable_start;
        let push_gap = |from: u64, to: u64, out: &mut ExtentSet| {
            if to > from {
                out.insert(from, to - from);
            }
        };
        let mut unused = self.free.clone();
        for (s, l) in self.held.iter() {
            assert!(unused.insert(s, l));
        }
        for (s, l) in unused.iter() {
            push_gap(at, s, &mut out);
            at = s + l;
        }
        push_gap(at, self.usable_end, &mut out);
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

    #[test]
    fn each_kind_wraps_into_the_other_half_when_its_own_is_full() {
        let mut alloc = allocator(100);
        assert_eq!(alloc.alloc(50, AllocKind::Explicit, Placement::Metadata).unwrap(), 66, "the upper half");
        assert_eq!(alloc.alloc(10, AllocKind::Explicit, Placement::Metadata).unwrap(), 16, "then from the start");
        assert_eq!(alloc.alloc(40, AllocKind::Explicit, Placement::Data).unwrap(), 26, "data takes what is left");
        assert!(alloc.alloc(1, AllocKind::Explicit, Placement::Data).is_err(), "the device is full");
    }
}
