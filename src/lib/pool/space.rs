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
        let root = self.tree_entry(tree)?.and_then(|t| t.root);
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
    pub(super) fn dead_entries(&mut self, tree: u64) -> Result<Vec<(Txg, BlockPtr)>> {
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

    /// The space figures of each snapshot of `tree`, by name. `used`: dead blocks that
    /// it alone keeps (no other snapshot and no retained commit sees them). `written`:
    /// what it references that the snapshot before it did not, which is its
    /// `referenced` less what the one before referenced and still kept alive up to it.
    /// One pass over the dead index, each block's watchers found by binary search.
    pub fn snapshot_space(&mut self, tree: u64) -> Result<BTreeMap<String, SnapshotSpace>> {
        let snapshots = self.snapshots_of(tree)?;
        let referenced = self.referenced_of(tree, &snapshots)?;
        let txgs: Vec<u64> = snapshots.iter().map(|s| s.txg.0).collect();
        let history = self.history_txgs()?;
        let mut used = vec![0; txgs.len()];
        // Bytes the snapshot before each one saw die before it was taken.
        let mut died_before = vec![0; txgs.len()];
        for (death, ptr) in self.dead_entries(tree)? {
            let seen = seen_by(&txgs, ptr.birth.0, death.0);
            let bytes = ptr.footprint_blocks() * BLOCK_BYTES;
            if seen.len() == 1 && seen_by(&history, ptr.birth.0, death.0).is_empty() {
                used[seen.start] += bytes;
            }
            if !seen.is_empty() && seen.end < txgs.len() {
                died_before[seen.end] += bytes;
            }
        }
        for (i, snapshot) in snapshots.iter().enumerate() {
            used[i] += self.subset_own_bytes(snapshot)?;
        }
        let space = (0..txgs.len()).map(|i| {
            let before = if i == 0 { 0 } else { referenced[i - 1] };
            let written = (referenced[i] + died_before[i]).saturating_sub(before);
            let space = SnapshotSpace { used_bytes: used[i], referenced_bytes: referenced[i], written_bytes: written };
            (snapshots[i].name.clone(), space)
        });
        Ok(space.collect())
    }

    /// What destroying the snapshots `doomed` of `tree` together would do now: the bytes
    /// of dead blocks that some of them see and no other snapshot and no retained commit
    /// does (freed by that commit), and of those that retained commits still see (freed
    /// when those expire). Blocks the doomed snapshots share only with each other count
    /// once. Exact, as the commit frees them, unless retained commits expire at that same
    /// commit (they then free more).
    pub fn destroy_estimate(&mut self, tree: u64, doomed: &[String]) -> Result<DestroyEstimate> {
        let doomed: std::collections::HashSet<&String> = doomed.iter().collect();
        let (mut gone, mut kept) = (Vec::new(), Vec::new());
        let mut own_bytes = 0;
        for snapshot in self.snapshots_of(tree)? {
            match doomed.contains(&snapshot.name) {
                true => {
                    own_bytes += self.subset_own_bytes(&snapshot)?;
                    gone.push(snapshot.txg.0)
                }
                false => kept.push(snapshot.txg.0),
            }
        }
        let history = self.history_txgs()?;
        let mut estimate = DestroyEstimate { freed_bytes: own_bytes, ..DestroyEstimate::default() };
        for (death, ptr) in self.dead_entries(tree)? {
            let (birth, death) = (ptr.birth.0, death.0);
            if seen_by(&gone, birth, death).is_empty() || !seen_by(&kept, birth, death).is_empty() {
                continue;
            }
            let bytes = ptr.footprint_blocks() * BLOCK_BYTES;
            match seen_by(&history, birth, death).is_empty() {
                true => estimate.freed_bytes += bytes,
                false => estimate.history_held_bytes += bytes,
            }
        }
        Ok(estimate)
    }

    /// The retained commits' txgs, in order.
    fn history_txgs(&mut self) -> Result<Vec<u64>> {
        Ok(self.history()?.into_iter().map(|(t, _)| t.0).collect())
    }

    /// Bytes held only by retained commits (what pruning the history would free): the
    /// dead blocks no snapshot sees. The newest commit sees no dead block, so this holds
    /// during a commit too, after it filed its kills (history_space.rs).
    pub fn history_unique_bytes(&mut self) -> Result<u64> {
        let trees: Vec<u64> = self.trees()?.map(|t| t.id).collect();
        let mut total = 0;
        for tree in trees {
            let snapshots = self.snapshot_txgs(tree)?;
            for (death, ptr) in self.dead_entries(tree)? {
                let kept_by_snapshot = snapshots.iter().any(|&t| t >= ptr.birth.0 && t < death.0);
                if !kept_by_snapshot {
                    total += ptr.footprint_blocks() * BLOCK_BYTES;
                }
            }
        }
        Ok(total)
    }
}

/// One snapshot's space (see `Pool::snapshot_space`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotSpace {
    pub used_bytes: u64,
    pub referenced_bytes: u64,
    pub written_bytes: u64,
}

/// What `destroy -n` reports (see `Pool::destroy_estimate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestroyEstimate {
    pub freed_bytes: u64,
    pub history_held_bytes: u64,
}

/// The positions in `txgs` (sorted) of the checkpoints that see a block born in `birth`
/// and killed in `death`: those taken at or after its birth and before its death.
pub(super) fn seen_by(txgs: &[u64], birth: u64, death: u64) -> std::ops::Range<usize> {
    let start = txgs.partition_point(|&t| t < birth);
    let end = txgs.partition_point(|&t| t < death).max(start);
    start..end
}
