//! The metadata pass: every root the pool has (pool root, space log, tables, each tree's
//! head, snapshots, retained commits, a saved partial receive), every node below them,
//! each copy verified on its own. Collects the file data blocks for the data pass.

use super::report::{Damage, ScrubReport};
use crate::alloc::space_log::SpaceLogBlock;
use crate::block::{BLOCK_BYTES, BlockAddr, BlockPtr};
use crate::compress;
use crate::format::label::{Label, region_start};
use crate::format::node::{EncodedNode, NodeBody, TreeKind};
use crate::fs::inode::ItemKind;
use crate::fs::record::Record;
use crate::pool::Pool;
use std::collections::HashSet;

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
            RootKind::Tree(kind) => self.walk_tree(&root.ptr, kind, &root.owner),
        }
    }

    fn walk_tree(&mut self, root: &BlockPtr, kind: TreeKind, owner: &str) {
        let mut stack = vec![*root];
        while let Some(ptr) = stack.pop() {
            if !self.seen.insert(ptr.addr.0) {
                continue;
            }
            let Some(bytes) = self.verify(&ptr, owner) else { continue };
            let node = match EncodedNode::decode(&bytes, kind, ptr.level) {
                Ok(node) => node,
                Err(e) => {
                    self.report.problems.push(format!("{owner}: {e} (block {})", ptr.addr.0));
                    continue;
                }
            };
            match node.body {
                NodeBody::Internal(children) => stack.extend(children.into_iter().rev().map(|(_, child)| child)),
                NodeBody::Leaf(entries) if kind == TreeKind::Files => {
                    for (key, value) in entries {
                        if key.get(8) == Some(&(ItemKind::Record as u8)) {
                            self.collect_record(&value, owner);
                        }
                    }
                }
                NodeBody::Leaf(_) => {}
            }
        }
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

    /// Verifies each copy of a metadata block; returns its logical bytes from a good
    /// copy, or None if no copy is good (then its children cannot be reached).
    fn verify(&mut self, ptr: &BlockPtr, owner: &str) -> Option<Vec<u8>> {
        let mut good: Option<Vec<u8>> = None;
        let mut bad = Vec::new();
        for (index, addr) in ptr.copies().enumerate() {
            match self.pool.store.read_copy(addr, ptr) {
                Ok(bytes) => {
                    self.report.blocks_verified += 1;
                    self.report.bytes_verified += bytes.len() as u64;
                    good.get_or_insert(bytes);
                }
                Err(e) => bad.push((index, addr, super::report::describe(e))),
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
            let mut block = vec![0u8; BLOCK_BYTES as usize];
            let found = self.pool.store.dev.read_at(offset, &mut block).and_then(|_| Label::decode(&block));
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
