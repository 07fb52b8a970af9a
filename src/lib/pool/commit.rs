//! The commit protocol: the only writer of commit records.
//!
//! 1. flush the file trees; record requested snapshots; add this commit to the history;
//! 2. expire history and destroyed snapshots, freeing the blocks nothing retains;
//! 3. file the blocks this transaction killed (dead index or free), then expire more
//!    history while it holds more than its space cap allows;
//! 4. flush the metadata tables, append the space log, write the pool root;
//! 5. flush the device; set in the labels any incompat feature the transaction's writes
//!    need (features.rs); write the commit record into both rings; flush again.
//!
//! A crash before step 5's record is durable leaves the previous commit: everything this
//! transaction wrote went to blocks that commit considers free, and no block it freed
//! was reused. A torn record fails its checksum and is skipped.

use super::Pool;
use crate::alloc::space_log::{SPACE_LOG_ENTRIES_MAX, SpaceLogBlock, SpaceOp};
use crate::block::{BLOCK_BYTES, BlockKind, BlockPtr, Txg};
use crate::error::{Error, Result};
use crate::format::commit::CommitRecord;
use crate::format::label::{RING_SLOTS, region_start};
use crate::format::tables::{SnapshotEntry, TreeEntry};

/// A head block of the space log takes entries of later commits up to this many (4 KiB).
const SPACE_LOG_HEAD_ENTRIES_MAX: usize = 250;

/// Log blocks a chain holds beyond twice its base before a commit condenses it. Was 16:
/// an open then read up to 18 blocks, nine on average, cold: most of what a snapshot
/// cost on a pool that had seen many commits.
const SPACE_LOG_SLACK_BLOCKS: u64 = 4;

#[derive(Clone, Debug, Default)]
pub struct CommitSummary {
    /// None when there was nothing to commit.
    pub txg: Option<Txg>,
    pub freed_bytes: u64,
}

impl Pool {
    fn has_changes(&self) -> bool {
        self.config_changed
            || !self.pending_snapshots.is_empty()
            || !self.removed_snapshots.is_empty()
            || self.tables_changed()
            || self.tree_entries.values().any(|e| e.created_txg == self.store.txg)
            || self.heads.iter().any(|(id, t)| self.head_changed(*id, t))
    }

    /// A table changed if it has unwritten nodes or its root is no longer the committed
    /// one: a rename edits the snapshots table, a rollback the history and the dead
    /// index, and a table emptied that way has no nodes left at all.
    pub(super) fn tables_changed(&self) -> bool {
        table_changed(&self.trees_table, self.root.trees)
            || table_changed(&self.snapshots_table, self.root.snapshots)
            || table_changed(&self.history_table, self.root.history)
            || table_changed(&self.dead_table, self.root.dead)
            || table_changed(&self.snapshot_index, self.root.snapshot_index.root())
            || table_changed(&self.bookmarks_table, self.root.bookmarks)
    }

    /// A head changed if it has unwritten nodes, or if its root is no longer the one the
    /// trees table holds (a rollback, or a receive that wrote nodes out early).
    pub(super) fn head_changed(&self, id: u64, tree: &crate::tree::Tree) -> bool {
        tree.is_dirty() || self.tree_entries.get(&id).is_some_and(|e| e.root != tree.committed_root())
    }

    /// Commits the running transaction atomically. If it fails before the commit record
    /// is written, the device still holds the previous commit; if it fails while or after
    /// writing the record, either commit may be the one a reopen finds. Either way this
    /// handle refuses further use.
    pub fn commit(&mut self) -> Result<CommitSummary> {
        self.writable()?;
        if !self.has_changes() {
            return Ok(CommitSummary::default());
        }
        let free_before = self.store.alloc.unused_blocks();
        match self.commit_inner() {
            Ok(txg) => {
                let freed = self.store.alloc.unused_blocks().saturating_sub(free_before);
                Ok(CommitSummary { txg: Some(txg), freed_bytes: freed * BLOCK_BYTES })
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    fn commit_inner(&mut self) -> Result<Txg> {
        let txg = self.store.txg;
        // Never before the previous commit, whatever the host clock says: retention
        // compares these times, and a step back must not make a commit look older.
        let now = self.clock.now_ns().max(self.root.time_ns);
        self.refresh_space_hints()?;

        self.flush_file_trees()?;
        self.record_snapshots(txg, now)?;
        self.build_snapshot_index_if_needed()?;
        self.record_history(txg, now)?;
        // Held until the record is durable: no reader opens the pool or pins meanwhile.
        let gate = self.enter_commit_gate()?;
        // A reader that holds a whole commit may read any block freed since (pins.rs).
        self.store.alloc.holding |= self.whole_commit_pinned();
        self.refuse_pinned_releases()?;
        self.store.alloc.committing = true;
        self.note_moves_between_snapshots_and_history();
        self.expire_history(txg, now)?;
        self.release_retained()?;
        self.file_kills(txg)?;
        // After the kills are filed: what this commit kills counts against the cap too.
        self.enforce_history_space(txg)?;
        self.add_space_counters_if_needed()?;

        self.root.trees = self.trees_table.flush(&mut self.store)?;
        self.root.snapshots = self.snapshots_table.flush(&mut self.store)?;
        self.root.history = self.history_table.flush(&mut self.store)?;
        self.root.dead = self.dead_table.flush(&mut self.store)?;
        self.flush_snapshot_index()?;
        self.root.bookmarks = self.bookmarks_table.flush(&mut self.store)?;
        self.append_space_log(txg)?;

        self.root.txg = txg;
        self.root.time_ns = now;
        let root_ptr = self.store.write_implicit_block(BlockKind::PoolRoot, &self.root.encode())?;
        let old_root = self.commit.root;
        if !old_root.is_null() {
            self.store.alloc.defer_free_implicit_ptr(&old_root);
        }
        self.store.sync_device()?;
        self.enable_needed_features()?;

        let record = CommitRecord { txg, time_ns: now, pool_guid: self.label.pool_guid, root: root_ptr };
        let slot = 1 + txg.0 % RING_SLOTS;
        let bytes = record.encode();
        for index in 0..2 {
            let block = region_start(index, self.label.device_bytes) + slot;
            self.store.dev.write_at(block * BLOCK_BYTES, &bytes)?;
        }
        self.store.dev.flush()?;
        drop(gate);

        // Durable: the frees of this transaction may now be reused.
        self.store.alloc.commit_done();
        self.store.reborn.clear();
        self.commit = record;
        self.store.txg = Txg(txg.0 + 1);
        self.pending_snapshots.clear();
        self.removed_snapshots.clear();
        self.destroyed_trees.clear();
        self.config_changed = false;
        debug_assert!(self.released_history.is_empty() && self.released_snapshots.is_empty());
        for tree in self.heads.values_mut() {
            tree.evict();
        }
        self.trees_table.evict();
        self.snapshots_table.evict();
        self.history_table.evict();
        self.dead_table.evict();
        self.snapshot_index.evict();
        self.bookmarks_table.evict();
        Ok(txg)
    }

    fn flush_file_trees(&mut self) -> Result<()> {
        let txg = self.store.txg;
        // A tree made by this transaction has its first root in the history.
        self.history_changed.extend(self.tree_entries.values().filter(|e| e.created_txg == txg).map(|e| e.id));
        let ids: Vec<u64> = self.heads.keys().copied().collect();
        for id in ids {
            let root = self.heads.get_mut(&id).expect("listed head").flush(&mut self.store)?;
            let entry = self.existing_tree(id)?.clone();
            if entry.root == root && !self.count_restarts.contains_key(&id) {
                continue;
            }
            self.history_changed.insert(id);
            let referenced_bytes = match self.has_space_counters() {
                true => self.recount(id, entry.referenced_bytes, root)?,
                false => entry.referenced_bytes,
            };
            self.put_tree(TreeEntry { root, referenced_bytes, ..entry })?;
        }
        self.count_restarts.clear();
        Ok(())
    }

    fn record_snapshots(&mut self, txg: Txg, now: u64) -> Result<()> {
        for removed in std::mem::take(&mut self.removed_snapshots) {
            self.snapshots_table.remove(&mut self.store, &SnapshotEntry::key(removed.tree, &removed.name))?;
            self.index_remove(&removed)?;
            self.removed_snapshots.push(removed);
        }
        for pending in self.pending_snapshots.clone() {
            let (tree, name, guid) = (pending.tree, pending.name, pending.guid);
            let (txg, root, referenced_bytes, time_ns) = match (pending.at, &pending.subset) {
                (Some(at), Some(s)) => (at, s.root, s.referenced_bytes, s.time_ns),
                (None, _) => {
                    let TreeEntry { root, referenced_bytes, .. } = *self.existing_tree(tree)?;
                    (txg, root, referenced_bytes, pending.time_ns.unwrap_or(now))
                }
                (Some(at), None) => self.past_moment(tree, at)?,
            };
            let holds = Vec::new();
            let subset = pending.subset.map(|s| s.subset);
            let entry =
                SnapshotEntry { tree, name: name.clone(), guid, txg, time_ns, root, holds, referenced_bytes, subset };
            self.snapshots_table.insert(&mut self.store, &SnapshotEntry::key(tree, &name), &entry.encode_value())?;
            self.index_add(&entry)?;
            if self.snapshots_loaded {
                self.cache_snapshot(entry);
            }
        }
        Ok(())
    }

    /// A snapshot of retained commit `at`: (txg, root, referenced_bytes, time). Its
    /// counter is the one the history recorded, or, for an entry recorded before version
    /// 15, a walk.
    pub(super) fn past_moment(&mut self, tree: u64, at: Txg) -> Result<(Txg, Option<BlockPtr>, u64, u64)> {
        let (root, recorded) = self.history_root_counted(tree, at)?;
        let referenced_bytes = match (recorded, self.has_space_counters()) {
            (Some(bytes), _) => bytes,
            (None, true) => super::count_referenced(&mut self.store, root)?,
            (None, false) => 0,
        };
        let time_ns = match self.history_from(at.0)? {
            Some((txg, time)) if txg == at.0 => time,
            _ => return Err(Error::corrupt(format!("retained commit {} vanished before its snapshot", at.0))),
        };
        Ok((at, root, referenced_bytes, time_ns))
    }

    /// Drops retained commits older than the configured window (all of them after
    /// `prune_history`), and more while free space is below the reserve the history must
    /// leave. The newest commit always stays. Times grow with txgs, so the expired ones
    /// are the oldest: only they are read (history.rs).
    /// A retained commit a reader has pinned stays, expired or not (pins.rs).
    fn expire_history(&mut self, txg: Txg, now: u64) -> Result<()> {
        let window_ns = self.root.config.history_seconds.saturating_mul(1_000_000_000);
        let prune = std::mem::take(&mut self.prune_pending);
        let mut from = 0;
        while let Some((oldest, time)) = self.history_from(from)? {
            if oldest == txg.0 || !(prune || now.saturating_sub(time) > window_ns) {
                break;
            }
            if self.pinned_by(None, oldest).is_none() {
                self.history_drop(oldest)?;
            }
            from = oldest + 1;
        }
        let reserve = self.store.alloc.usable_blocks() * self.root.config.history_reserve_percent as u64 / 100;
        let mut from = Some(0);
        while let Some(at) = from
            && self.free_after_commit() < reserve
        {
            from = self.release_oldest_from(at, txg)?;
        }
        Ok(())
    }

    /// Releases the oldest retained commit at or after txg `from`, unless it is `txg`, the
    /// one being made (a pinned one stays, and is passed over). Where to look next, or
    /// None when nothing older than `txg` is left.
    pub(super) fn release_oldest_from(&mut self, from: u64, txg: Txg) -> Result<Option<u64>> {
        match self.history_from(from)? {
            Some((oldest, _)) if oldest != txg.0 => {
                if self.pinned_by(None, oldest).is_none() {
                    self.history_drop(oldest)?;
                    self.release_retained()?;
                }
                Ok(Some(oldest + 1))
            }
            _ => Ok(None),
        }
    }

    fn free_after_commit(&self) -> u64 {
        let a = &self.store.alloc;
        a.unused_blocks() + a.txg_frees.blocks() + a.implicit_frees.blocks()
    }

    fn file_kills(&mut self, txg: Txg) -> Result<()> {
        for (tree, ptr) in std::mem::take(&mut self.store.file_kills) {
            if self.origin_of(tree)?.is_some_and(|(_, origin)| ptr.birth <= origin) {
                // The origin snapshot's block (clones.rs): it keeps it.
                continue;
            }
            if self.retained_between(tree, ptr.birth.0, txg.0)? {
                self.dead_insert(tree, txg, &ptr)?;
                self.count_filed_dead_block(tree, txg, &ptr)?;
            } else {
                self.store.alloc.defer_free_ptr(&ptr)?;
            }
        }
        Ok(())
    }

    fn append_space_log(&mut self, txg: Txg) -> Result<()> {
        // Every open reads the whole chain: a few blocks past the base at most, and a
        // base that grows with the pool's fragments condenses in proportion.
        // Not while a reader holds a whole commit: writers learn from the log what was
        // freed after it (pins.rs).
        let condense = self.root.space_log_blocks > 2 * self.root.space_base_blocks + SPACE_LOG_SLACK_BLOCKS
            && !self.whole_commit_pinned();
        let (entries, mut prev) = if condense {
            let mut old = self.root.space_log;
            while let Some(ptr) = old {
                let block = SpaceLogBlock::decode(&self.store.read_block(&ptr)?)?;
                self.store.alloc.defer_free_implicit_ptr(&ptr);
                old = block.prev;
            }
            let all = self.store.alloc.explicit_after_commit();
            (all.iter().map(|(s, l)| (s, l, SpaceOp::Alloc)).collect::<Vec<_>>(), None)
        } else {
            let a = &self.store.alloc;
            let mut entries: Vec<_> = a.txg_allocs.iter().map(|(s, l)| (s, l, SpaceOp::Alloc)).collect();
            entries.extend(a.txg_frees.iter().map(|(s, l)| (s, l, SpaceOp::Free)));
            (entries, self.root.space_log)
        };
        // A log entry holds at most u32::MAX blocks (16 TiB): longer extents are split.
        let entries: Vec<_> = entries
            .into_iter()
            .flat_map(|(start, len, op)| {
                let max = u32::MAX as u64;
                (0..len.div_ceil(max)).map(move |i| (start + i * max, (len - i * max).min(max), op))
            })
            .collect();
        if condense {
            self.root.space_log_blocks = 0;
        } else if !entries.is_empty() && self.merge_into_log_head(txg, &entries)? {
            return Ok(());
        }
        let mut written = 0;
        for chunk in entries.chunks(SPACE_LOG_ENTRIES_MAX) {
            let block = SpaceLogBlock { txg, prev, entries: chunk.to_vec() };
            prev = Some(self.store.write_implicit_block(BlockKind::SpaceLog, &block.encode())?);
            written += 1;
        }
        if written == 0 && prev.is_none() {
            // An empty pool still needs a chain head, so that an empty log is explicit.
            let block = SpaceLogBlock { txg, prev: None, entries: Vec::new() };
            prev = Some(self.store.write_implicit_block(BlockKind::SpaceLog, &block.encode())?);
            written = 1;
        }
        self.root.space_log = prev;
        self.root.space_log_blocks += written;
        if condense {
            self.root.space_base_blocks = written;
        }
        Ok(())
    }

    /// A commit with few entries rewrites the head block of the log with its entries
    /// appended, rather than adding a block: the chain that every open reads stays short.
    fn merge_into_log_head(&mut self, txg: Txg, entries: &[(u64, u64, SpaceOp)]) -> Result<bool> {
        let Some(head_ptr) = self.root.space_log else { return Ok(false) };
        let head = match self.space_log_head.take() {
            Some((ptr, block)) if ptr == head_ptr => block,
            _ => SpaceLogBlock::decode(&self.store.read_block(&head_ptr)?)?,
        };
        if head.entries.len() + entries.len() > SPACE_LOG_HEAD_ENTRIES_MAX {
            return Ok(false);
        }
        let mut merged = head.entries;
        merged.extend_from_slice(entries);
        let block = SpaceLogBlock { txg, prev: head.prev, entries: merged };
        let new_head = self.store.write_implicit_block(BlockKind::SpaceLog, &block.encode())?;
        self.space_log_head = Some((new_head, block));
        self.store.alloc.defer_free_implicit_ptr(&head_ptr);
        self.root.space_log = Some(new_head);
        Ok(true)
    }

    /// True if a retained commit or a snapshot of `tree` lies in [birth, death): a block
    /// born and killed then is still visible somewhere.
    pub fn retained_between(&mut self, tree: u64, birth: u64, death: u64) -> Result<bool> {
        if birth >= death {
            return Ok(false);
        }
        if self.history_from(birth)?.is_some_and(|(t, _)| t < death) {
            return Ok(true);
        }
        Ok(self.first_snapshot_txg_in(tree, birth..=death - 1)?.is_some())
    }
}

/// A table changed if it has unwritten nodes or its root is no longer `committed`.
pub(super) fn table_changed(table: &crate::tree::Tree, committed: Option<BlockPtr>) -> bool {
    table.is_dirty() || table.committed_root() != committed
}

pub(super) fn corrupt_if(condition: bool, what: impl FnOnce() -> String) -> Result<()> {
    if condition { Err(Error::corrupt(what())) } else { Ok(()) }
}
