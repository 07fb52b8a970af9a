//! Space accounting: what a tree's files hold, and what destroying a snapshot or
//! releasing the history would free. Read-only; sums decoded from tree leaves and the
//! dead index, so its figures are exact, not estimates.

use super::Pool;
use crate::block::{BLOCK_BYTES, BlockPtr, Txg};
use crate::error::Result;
use crate::format::node::{NodeBody, TreeKind};
use crate::format::tables::decode_dead;
use crate::fs::inode::{FileKey, FileType, Inode, ItemKind};
use crate::fs::record::Record;
use crate::tree::{WalkStep, walk_nodes};
use std::collections::BTreeMap;

/// What the files of one tree hold.
#[derive(Clone, Debug, Default)]
pub struct TreeUsage {
    /// Regular files.
    pub files: u64,
    /// Bytes the files' records describe, before compression.
    pub logical_bytes: u64,
    /// Bytes of blocks the records occupy on the device.
    pub stored_bytes: u64,
    /// Blocks of records (bases and overlays) stored compressed, and stored raw.
    pub compressed_blocks: u64,
    pub raw_blocks: u64,
}

impl Pool {
    /// Sums the records of a tree (metadata only).
    pub fn tree_usage(&mut self, tree: u64) -> Result<TreeUsage> {
        let root = self.trees().find(|t| t.id == tree).and_then(|t| t.root);
        let mut usage = TreeUsage::default();
        let Some(root) = root else { return Ok(usage) };
        walk_nodes(&mut self.store, &root, TreeKind::Files, &mut |_, node| {
            if let NodeBody::Leaf(entries) = &node.body {
                for (k, v) in entries {
                    match FileKey::parse(k).and_then(|k| k.kind()) {
                        Some(ItemKind::Record) => {
                            let r = Record::decode(v)?;
                            usage.logical_bytes += r.logical_bytes();
                            usage.stored_bytes += r.blocks().map(|b| b.allocated_blocks() * BLOCK_BYTES).sum::<u64>();
                            for b in r.blocks() {
                                match b.compression {
                                    crate::block::Compression::None => usage.raw_blocks += 1,
                                    _ => usage.compressed_blocks += 1,
                                }
                            }
                        }
                        Some(ItemKind::Inode) if Inode::decode(v)?.file_type() == FileType::Regular => {
                            usage.files += 1;
                        }
                        _ => {}
                    }
                }
            }
            Ok(WalkStep::Descend)
        })?;
        Ok(usage)
    }

    /// The dead index entries of one tree: (death txg, killed pointer).
    fn dead_entries(&mut self, tree: u64) -> Result<Vec<(Txg, BlockPtr)>> {
        let prefix = tree.to_be_bytes();
        let mut entries = Vec::new();
        let (dead, store) = self.dead_table_mut();
        dead.scan(store, &prefix, &mut |k, v| {
            if !k.starts_with(&prefix) {
                return Ok(false);
            }
            let (_, death, ptr) = decode_dead(k, v)?;
            entries.push((death, ptr));
            Ok(true)
        })?;
        Ok(entries)
    }

    /// Bytes that destroying each snapshot of `tree` would free now: dead blocks that it
    /// alone keeps (no other snapshot and no retained commit sees them).
    pub fn snapshot_unique_bytes(&mut self, tree: u64) -> Result<BTreeMap<String, u64>> {
        let snapshots: Vec<(u64, String)> =
            self.snapshots_of(tree)?.iter().map(|s| (s.txg.0, s.name.clone())).collect();
        let history: Vec<u64> = self.history()?.into_iter().map(|(t, _)| t.0).collect();
        let mut out: BTreeMap<String, u64> = snapshots.iter().map(|(_, n)| (n.clone(), 0)).collect();
        for (death, ptr) in self.dead_entries(tree)? {
            let visible = |t: u64| t >= ptr.birth.0 && t < death.0;
            if history.iter().any(|&t| visible(t)) {
                continue;
            }
            let mut holders = snapshots.iter().filter(|(t, _)| visible(*t));
            if let (Some((_, name)), None) = (holders.next(), holders.next()) {
                *out.get_mut(name).expect("listed snapshot") += ptr.footprint_blocks() * BLOCK_BYTES;
            }
        }
        Ok(out)
    }

    /// Bytes held only by retained commits (what pruning the history would free).
    pub fn history_unique_bytes(&mut self) -> Result<u64> {
        let trees: Vec<u64> = self.trees().map(|t| t.id).collect();
        let newest = self.txg().0;
        let mut total = 0;
        for tree in trees {
            let snapshots = self.snapshot_txgs(tree)?;
            for (death, ptr) in self.dead_entries(tree)? {
                let kept_by_snapshot = snapshots.iter().any(|&t| t >= ptr.birth.0 && t < death.0);
                let kept_by_newest = newest >= ptr.birth.0 && newest < death.0;
                if !kept_by_snapshot && !kept_by_newest {
                    total += ptr.footprint_blocks() * BLOCK_BYTES;
                }
            }
        }
        Ok(total)
    }
}
