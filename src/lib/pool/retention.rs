//! Which killed blocks stay, and when they go.
//!
//! A block of file tree T born in txg b and killed in txg d is visible in exactly the
//! checkpoints c of T with b <= c < d, where the checkpoints are the retained commits
//! (history) and T's snapshots. While one such checkpoint exists the block sits in the
//! dead index under (T, d, address); when the last one goes, the block is freed.
//!
//! When a checkpoint c is released, only entries with c < d <= n can lose their last
//! checkpoint, where n is the next checkpoint after c that remains: an entry with d > n
//! is still visible in n. So a release scans one range of the index, not all of it.

use super::Pool;
use crate::block::{BLOCK_BYTES, BlockPtr, Txg};
use crate::error::{Error, Result};
use crate::format::tables::{dead_key, decode_dead, encode_ptr};

impl Pool {
    pub(super) fn dead_insert(&mut self, tree: u64, death: Txg, ptr: &BlockPtr) -> Result<()> {
        let key = dead_key(tree, death, ptr.addr.0);
        let previous = self.dead_table.insert(&mut self.store, &key, &encode_ptr(ptr))?;
        super::commit::corrupt_if(previous.is_some(), || {
            format!("block {} was killed twice in txg {}", ptr.addr.0, death.0)
        })?;
        self.root.dead_bytes += ptr.footprint_blocks() * BLOCK_BYTES;
        Ok(())
    }

    /// Frees the dead blocks that lost their last checkpoint since the last release:
    /// the retained commits dropped (history.rs) and the snapshots destroyed.
    pub(super) fn release_retained(&mut self) -> Result<()> {
        let history = std::mem::take(&mut self.released_history);
        let snapshots = std::mem::take(&mut self.released_snapshots);
        if history.is_empty() && snapshots.is_empty() {
            return Ok(());
        }
        for tree in self.trees_with_dead_entries()? {
            let mut released: Vec<u64> = history.clone();
            released.extend(snapshots.iter().filter(|(t, _)| *t == tree).map(|(_, txg)| *txg));
            released.sort_unstable();
            released.dedup();
            for checkpoint in released {
                // Another snapshot, or the retained commit, of that txg still sees it all.
                if self.is_checkpoint(tree, checkpoint)? {
                    continue;
                }
                let next = self.next_checkpoint(tree, checkpoint)?;
                self.free_unretained(tree, checkpoint, next)?;
            }
        }
        Ok(())
    }

    /// The trees the dead index holds entries of: those that exist, and destroyed clones
    /// whose blocks retained commits still keep. One seek per tree.
    fn trees_with_dead_entries(&mut self) -> Result<Vec<u64>> {
        let mut trees = Vec::new();
        let mut next = Some(0u64);
        while let Some(from) = next {
            next = None;
            self.dead_table.scan(&mut self.store, &from.to_be_bytes(), &mut |k, v| {
                let (tree, _, _) = decode_dead(k, v)?;
                trees.push(tree);
                next = tree.checked_add(1);
                Ok(false)
            })?;
        }
        Ok(trees)
    }

    fn is_checkpoint(&mut self, tree: u64, txg: u64) -> Result<bool> {
        Ok(self.history_contains(txg)? || self.first_snapshot_txg_in(tree, txg..=txg)?.is_some())
    }

    /// The first checkpoint of `tree` after `txg`, or u64::MAX if none.
    fn next_checkpoint(&mut self, tree: u64, txg: u64) -> Result<u64> {
        let history = match txg.checked_add(1) {
            Some(from) => self.history_from(from)?.map(|(t, _)| t),
            None => None,
        };
        let snapshot = match txg.checked_add(1) {
            Some(from) => self.first_snapshot_txg_in(tree, from..=u64::MAX)?,
            None => None,
        };
        Ok(history.into_iter().chain(snapshot).min().unwrap_or(u64::MAX))
    }

    /// Frees the dead entries of `tree` killed in (after, upto] that no checkpoint keeps.
    fn free_unretained(&mut self, tree: u64, after: u64, upto: u64) -> Result<()> {
        if after == u64::MAX {
            return Ok(());
        }
        let from = dead_key(tree, Txg(after + 1), 0);
        let last = dead_key(tree, Txg(upto), u64::MAX);
        let mut doomed = Vec::new();
        let mut entries = Vec::new();
        self.dead_table.scan(&mut self.store, &from, &mut |k, v| {
            if k > last.as_slice() {
                return Ok(false);
            }
            entries.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        for (k, v) in entries {
            let (entry_tree, death, ptr) = decode_dead(&k, &v)?;
            debug_assert_eq!(entry_tree, tree);
            if !self.retained_between(tree, ptr.birth.0, death.0)? {
                doomed.push((k, ptr));
            }
        }
        for (k, ptr) in doomed {
            self.dead_table.remove(&mut self.store, &k)?;
            self.store.alloc.defer_free_ptr(&ptr)?;
            self.uncount_dead(&ptr)?;
            self.count_freed_history_block(&ptr)?;
        }
        Ok(())
    }

    /// A block left the dead index: it no longer counts in `dead_bytes`.
    pub(super) fn uncount_dead(&mut self, ptr: &BlockPtr) -> Result<()> {
        self.root.dead_bytes = self
            .root
            .dead_bytes
            .checked_sub(ptr.footprint_blocks() * BLOCK_BYTES)
            .ok_or_else(|| Error::corrupt("the pool root counts fewer dead bytes than the dead index holds"))?;
        Ok(())
    }
}
