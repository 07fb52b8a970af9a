//! The metadata pass: every root the pool has (pool root, space log, tables, each tree's
//! head, snapshots, retained commits, a saved partial receive), every node below them,
//! each copy verified on its own. Collects the file data blocks for the data pass.

use super::reader::{Extent, read_extents};
use super::report::{Damage, ScrubReport, describe};
use crate::alloc::space_log::SpaceLogBlock;
use crate::block::{BLOCK_BYTES, BlockAddr, BlockPtr};
use crate::checksum::blake3;
use crate::compress;
use crate::format::label::{Label, region_start};
use crate::format::node::{EncodedNode, NodeBody, TreeKind};
use crate::fs::inode::ItemKind;
use crate::fs::record::Record;
use crate::pool::Pool;
use crate::pool::read_blocks;
use std::collections::HashSet;
use std::sync::Mutex;

/// What a root holds, which decides how its blocks are decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A tree of nodes of this kind.
    Tree(TreeKind),
    /// A block read whole: the pool root, a receive state blob.
    Single,
    /// The space log: each block names the one before.
    SpaceLog,
}

/// One root of the pool and who it belongs to, for messages.
pub struct Root {
    pub owner: String,
    pub ptr: BlockPtr,
    pub kind: RootKind,
}

/// Nodes read together at most: bounds the memory a level of a large tree takes.
const NODES_PER_BATCH: usize = 2048;

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
    /// File data and overlays, for the data pass.
    pub data: Vec<BlockPtr>,
    data_seen: HashSet<u64>,
    /// Bad copies with a good one to rewrite them from: (address, stored bytes).
    pub repairs: Vec<(BlockAddr, Vec<u8>)>,
}

impl<'p> MetadataPass<'p> {
    pub fn new(pool: &'p mut Pool) -> MetadataPass<'p> {
        MetadataPass {
            pool,
            report: ScrubReport::default(),
            seen: HashSet::new(),
            data: Vec::new(),
            data_seen: HashSet::new(),
            repairs: Vec::new(),
        }
    }

    /// Every root of the pool, in the order a reader depends on them.
    pub fn roots(&mut self) -> Vec<Root> {
        let pool = &mut *self.pool;
        let mut roots = vec![Root { owner: "the pool root".into(), ptr: pool.commit.root, kind: RootKind::Single }];
        if let Some(ptr) = pool.root.space_log {
            roots.push(Root { owner: "the space log".into(), ptr, kind: RootKind::SpaceLog });
        }
        for (kind, root) in pool.meta_roots() {
            if let Some(ptr) = root {
                roots.push(Root { owner: format!("the {} table", kind.name()), ptr, kind: RootKind::Tree(kind) });
            }
        }
        let files = RootKind::Tree(TreeKind::Files);
        let trees: Vec<(u64, String, Option<BlockPtr>)> =
            pool.trees().map(|t| (t.id, t.name.clone(), t.root)).collect();
        for (id, name, root) in &trees {
            if let Some(ptr) = *root {
                roots.push(Root { owner: format!("the {name} tree"), ptr, kind: files });
            }
            for snapshot in pool.snapshots_of(*id) {
                if let Some(ptr) = snapshot.root {
                    roots.push(Root { owner: format!("snapshot @{}", snapshot.name), ptr, kind: files });
                }
            }
        }
        let history: Vec<_> = pool.history().map(|(txg, _)| txg).collect();
        for txg in history {
            match pool.history_entry(txg) {
                Ok(entry) => {
                    // The newest commit is retained too; it names nothing a head does not.
                    let heads: Vec<BlockPtr> = trees.iter().filter_map(|(_, _, root)| *root).collect();
                    for ptr in entry.roots.into_iter().filter_map(|(_, root)| root) {
                        if !heads.contains(&ptr) {
                            roots.push(Root { owner: format!("retained commit {}", txg.0), ptr, kind: files });
                        }
                    }
                }
                Err(e) => self.report.problems.push(format!("retained commit {}: {e}", txg.0)),
            }
        }
        if let Some(ptr) = pool.root.receive {
            roots.push(Root { owner: "the saved partial receive".into(), ptr, kind: RootKind::Single });
            match pool.receive_state() {
                Ok(Some(state)) => {
                    if let Some(ptr) = state.staging {
                        roots.push(Root { owner: "the saved partial receive".into(), ptr, kind: files });
                    }
                }
                Ok(None) => {}
                Err(e) => self.report.problems.push(format!("the saved partial receive: {e}")),
            }
        }
        roots
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
                    if key.get(8) == Some(&(ItemKind::Record as u8)) {
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
                    if self.data_seen.insert(ptr.addr.0) {
                        self.data.push(*ptr);
                    }
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
            if let Some(bytes) = &good {
                self.repairs.push((addr, bytes.clone()));
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

    /// Both labels: the one that opened the pool is good; the other must match it.
    /// Labels never change after format, so a bad one is rewritten from the good one.
    pub fn verify_labels(&mut self) {
        for index in 0..2u32 {
            let offset = region_start(index, self.pool.label.device_bytes) * BLOCK_BYTES;
            // Past the end of a shrunk device (opened read-only) it reads as missing.
            let found = read_blocks(self.pool.store.dev.as_ref(), offset / BLOCK_BYTES, 1)
                .and_then(|block| Label::decode(&block));
            let why = match found {
                Ok(Some(label)) if label.pool_guid == self.pool.label.pool_guid && label.index == index => continue,
                Ok(Some(_)) => "belongs to another pool or slot".to_string(),
                Ok(None) => "is missing".to_string(),
                Err(e) => e.to_string(),
            };
            let good = Label { index, ..self.pool.label.clone() };
            self.repairs.push((BlockAddr(offset / BLOCK_BYTES), good.encode()));
            self.report.labels_damaged.push(format!("label {index} {why}"));
        }
    }
}
