//! The metadata pass: from every root (`roots.rs`) down through every node, each copy of
//! each block verified on its own. A bad copy is reported, and queued to be rewritten
//! from a good one if there is one. Hands the file data blocks it finds to the data pass
//! (`data.rs`) in batches of DATA_BATCH, so that the memory a scrub takes does not grow
//! with the number of files: 72 bytes a block of a batch, and the data blocks already
//! seen as runs of addresses (a block shared by snapshots is read once).

use super::data;
use super::reader::{Extent, read_extents};
use super::repair::Repair;
use super::report::{Damage, ScrubProgress, ScrubReport, describe};
use super::roots::{Root, RootKind};
use crate::alloc::ExtentSet;
use crate::alloc::space_log::SpaceLogBlock;
use crate::block::{BLOCK_BYTES, BlockAddr, BlockPtr};
use crate::checksum::blake3;
use crate::compress;
use crate::format::node::{EncodedNode, NodeBody, TreeKind};
use crate::fs::inode::{ItemKind, key_is};
use crate::fs::record::Record;
use crate::pool::Pool;
use std::collections::HashSet;
use std::sync::Mutex;

/// Nodes read together at most: bounds the memory a level of a large tree takes.
const NODES_PER_BATCH: usize = 2048;

/// Data blocks gathered before the data pass reads them: 9 MiB of pointers, enough for
/// large sequential reads, whatever the pool holds. Small in test builds, so that the
/// tests' small pools cross batch boundaries.
#[cfg(not(any(test, feature = "testing")))]
const DATA_BATCH: usize = 1 << 17;
#[cfg(any(test, feature = "testing"))]
const DATA_BATCH: usize = 64;

/// A copy's stored bytes, verified, or what was wrong with it.
type CopyResult = std::result::Result<Vec<u8>, String>;

/// A tree node still to read, and whose tree it is (an index into the roots).
struct Pending {
    ptr: BlockPtr,
    kind: TreeKind,
    owner: usize,
}

pub struct MetadataPass<'p> {
    pub pool: &'p mut Pool,
    pub report: ScrubReport,
    /// First-copy addresses already verified: shared subtrees are read once.
    seen: HashSet<u64>,
    /// File data and overlays waiting for the data pass.
    data: Vec<BlockPtr>,
    /// Data blocks (first addresses) already gathered.
    data_seen: ExtentSet,
    /// Bad copies with a good one to rewrite them from.
    pub repairs: Vec<Repair>,
    progress: &'p mut dyn FnMut(&ScrubProgress),
    /// Data bytes read so far, and the most there can be (the pool's allocated bytes).
    data_done_bytes: u64,
    data_total_bytes: u64,
    /// Time spent in the data pass.
    pub data_seconds: f64,
}

impl<'p> MetadataPass<'p> {
    /// A pass that adds what it finds to `report`.
    pub fn new(
        pool: &'p mut Pool,
        report: ScrubReport,
        progress: &'p mut dyn FnMut(&ScrubProgress),
    ) -> MetadataPass<'p> {
        let alloc = &pool.store.alloc;
        let data_total_bytes = alloc.usable_blocks().saturating_sub(alloc.unused_blocks()) * BLOCK_BYTES;
        MetadataPass {
            pool,
            report,
            seen: HashSet::new(),
            data: Vec::new(),
            data_seen: ExtentSet::new(),
            repairs: Vec::new(),
            progress,
            data_done_bytes: 0,
            data_total_bytes,
            data_seconds: 0.0,
        }
    }

    /// Reads and verifies the data blocks gathered so far (data.rs), in address order.
    pub fn verify_data(&mut self) {
        let mut batch = std::mem::take(&mut self.data);
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let usable = (self.pool.store.alloc.usable_start, self.pool.store.alloc.usable_end);
        let (done, total, progress) = (&mut self.data_done_bytes, self.data_total_bytes, &mut self.progress);
        let bad = data::verify(self.pool.store.dev.as_ref(), &mut batch, usable, &mut |bytes| {
            *done += bytes;
            progress(&ScrubProgress { phase: "data", done_bytes: *done, total_bytes: total.max(*done) });
        });
        let report = &mut self.report;
        report.data_blocks += batch.len() as u64;
        report.blocks_verified += batch.len() as u64 - bad.len() as u64;
        let stored = |ptrs: &mut dyn Iterator<Item = &BlockPtr>| ptrs.map(|p| p.stored_bytes as u64).sum::<u64>();
        report.bytes_verified += stored(&mut batch.iter()) - stored(&mut bad.iter().map(|(p, _)| p));
        for (ptr, error) in bad {
            report.damage.push(Damage::new(&ptr, 0, ptr.addr, error, false));
        }
        self.data_seconds += started.elapsed().as_secs_f64();
    }

    pub fn walk(&mut self, root: &Root) {
        match root.kind {
            RootKind::Single => {
                self.verify(&root.ptr, &root.owner);
            }
            RootKind::SpaceLog => {
                let mut next = Some(root.ptr);
                let mut blocks = 0u64;
                while let Some(ptr) = next.take() {
                    blocks += 1;
                    if blocks > self.pool.root.space_log_blocks || !self.seen.insert(ptr.addr.0) {
                        self.report.problems.push("the space log chain is longer than the pool root says".into());
                        break;
                    }
                    let Some(bytes) = self.verify(&ptr, &root.owner) else { break };
                    match SpaceLogBlock::decode(&bytes) {
                        Ok(block) => next = block.prev,
                        Err(e) => self.report.problems.push(format!("the space log: {e}")),
                    }
                }
            }
            // Walked all together by `walk_trees`.
            RootKind::Tree(_) => {}
        }
    }

    /// Every tree at once, level by level: each level's nodes (all copies) are read in
    /// address order by several threads, then decoded here.
    pub fn walk_trees(&mut self, roots: &[Root]) {
        let mut frontier: Vec<Pending> = Vec::new();
        for (owner, root) in roots.iter().enumerate() {
            if let RootKind::Tree(kind) = root.kind {
                if self.seen.insert(root.ptr.addr.0) {
                    frontier.push(Pending { ptr: root.ptr, kind, owner });
                }
            }
        }
        while !frontier.is_empty() {
            frontier.sort_unstable_by_key(|p| p.ptr.addr.0);
            let mut next = Vec::new();
            for batch in frontier.chunks(NODES_PER_BATCH) {
                let copies = self.read_copies(batch);
                for (pending, copies) in batch.iter().zip(copies) {
                    let owner = &roots[pending.owner].owner;
                    if let Some(bytes) = self.judge(&pending.ptr, copies, owner) {
                        self.visit_node(pending, &bytes, owner, &mut next);
                    }
                }
            }
            frontier = next;
        }
    }

    fn visit_node(&mut self, pending: &Pending, bytes: &[u8], owner: &str, next: &mut Vec<Pending>) {
        let node = match EncodedNode::decode(bytes, pending.kind, pending.ptr.level) {
            Ok(node) => node,
            Err(e) => {
                self.report.problems.push(format!("{owner}: {e} (block {})", pending.ptr.addr.0));
                return;
            }
        };
        match node.body {
            NodeBody::Internal(children) => {
                for (_, ptr) in children {
                    if self.seen.insert(ptr.addr.0) {
                        next.push(Pending { ptr, kind: pending.kind, owner: pending.owner });
                    }
                }
            }
            NodeBody::Leaf(entries) if pending.kind == TreeKind::Files => {
                for (key, value) in entries {
                    if key_is(&key, ItemKind::Record) {
                        self.collect_record(&value, owner);
                    }
                }
            }
            NodeBody::Leaf(_) => {}
        }
    }

    /// Reads and verifies every copy of a batch of blocks: per block, per copy, the
    /// stored bytes or what was wrong.
    fn read_copies(&mut self, batch: &[Pending]) -> Vec<Vec<(BlockAddr, CopyResult)>> {
        let (start, end) = (self.pool.store.alloc.usable_start, self.pool.store.alloc.usable_end);
        let mut results: Vec<Vec<(BlockAddr, CopyResult)>> = Vec::with_capacity(batch.len());
        let mut wanted: Vec<(Extent, usize, usize)> = Vec::new();
        for (item, pending) in batch.iter().enumerate() {
            let ptr = &pending.ptr;
            let mut copies = Vec::new();
            for (copy, addr) in ptr.copies().enumerate() {
                let blocks = ptr.allocated_blocks();
                if addr.0 < start || addr.0.checked_add(blocks).is_none_or(|e| e > end) {
                    let what =
                        format!("{} block pointer to block {} lies outside the data area", ptr.kind.name(), addr.0);
                    copies.push((addr, Err(what)));
                } else {
                    copies.push((addr, Err(String::new())));
                    wanted.push((Extent { start: addr.0, blocks }, item, copy));
                }
            }
            results.push(copies);
        }
        wanted.sort_unstable_by_key(|(extent, _, _)| extent.start);
        let extents: Vec<Extent> = wanted.iter().map(|(extent, _, _)| *extent).collect();
        let slots: Vec<Mutex<Option<CopyResult>>> = (0..wanted.len()).map(|_| Mutex::new(None)).collect();
        read_extents(
            self.pool.store.dev.as_ref(),
            &extents,
            &|i, bytes| {
                let (_, item, _) = wanted[i];
                let ptr = &batch[item].ptr;
                let verdict = match bytes {
                    Ok(bytes) => {
                        let stored = &bytes[..ptr.stored_bytes as usize];
                        if blake3(stored) == ptr.checksum {
                            Ok(stored.to_vec())
                        } else {
                            Err(format!(
                                "checksum mismatch in {} block at block {} (born in txg {}, {} bytes)",
                                ptr.kind.name(),
                                extents[i].start,
                                ptr.birth.0,
                                ptr.stored_bytes
                            ))
                        }
                    }
                    Err(e) => Err(describe(e)),
                };
                *slots[i].lock().expect("no reader panics holding it") = Some(verdict);
            },
            &mut |_| {},
        );
        for ((_, item, copy), slot) in wanted.into_iter().zip(slots) {
            let verdict = slot.into_inner().expect("readers finished");
            results[item][copy].1 = verdict.unwrap_or_else(|| Err("not read".into()));
        }
        results
    }

    fn collect_record(&mut self, value: &[u8], owner: &str) {
        match Record::decode(value) {
            Ok(record) => {
                for ptr in record.blocks() {
                    if !self.data_seen.contains(ptr.addr.0, 1) {
                        self.data_seen.insert(ptr.addr.0, 1);
                        self.data.push(*ptr);
                    }
                }
                if self.data.len() >= DATA_BATCH {
                    self.verify_data();
                }
            }
            Err(e) => self.report.problems.push(format!("{owner}: {e}")),
        }
    }

    /// Verifies each copy of a metadata block, one after the other (for the few blocks
    /// outside the trees).
    fn verify(&mut self, ptr: &BlockPtr, owner: &str) -> Option<Vec<u8>> {
        let store = &self.pool.store;
        let copies = ptr.copies().map(|addr| (addr, store.read_copy(addr, ptr).map_err(describe))).collect();
        self.judge(ptr, copies, owner)
    }

    /// Records what the copies of a block showed; returns its logical bytes from a good
    /// copy, or None if no copy is good (then what it points to cannot be reached).
    fn judge(&mut self, ptr: &BlockPtr, copies: Vec<(BlockAddr, CopyResult)>, owner: &str) -> Option<Vec<u8>> {
        let mut good: Option<Vec<u8>> = None;
        let mut bad = Vec::new();
        for (index, (addr, result)) in copies.into_iter().enumerate() {
            match result {
                Ok(bytes) => {
                    self.report.blocks_verified += 1;
                    self.report.bytes_verified += bytes.len() as u64;
                    good.get_or_insert(bytes);
                }
                Err(error) => bad.push((index, addr, error)),
            }
        }
        self.report.metadata_blocks += 1;
        for (index, addr, error) in bad {
            if let Some(stored) = &good {
                let damage = self.report.damage.len();
                self.repairs.push(Repair::Copy { damage, addr, ptr: *ptr, stored: stored.clone() });
            }
            let mut damage = Damage::new(ptr, index, addr, error, good.is_some());
            damage.affects.push(owner.to_string());
            self.report.damage.push(damage);
        }
        let stored = good?;
        match compress::decompress(stored, ptr.compression, ptr.logical_bytes) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.report.problems.push(format!("{owner}: {e} (block {})", ptr.addr.0));
                None
            }
        }
    }
}
