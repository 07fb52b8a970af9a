//! Rolling a tree's head back to its newest snapshot (or to nothing), inside the running
//! transaction: what `snaprecv -F` does before it applies a stream.
//!
//! With the head at the snapshot taken in txg c:
//! - every block of the head born after c is not in the snapshot: it is killed (the
//!   walk skips every subtree born at or before c, which the snapshot holds whole);
//! - every block of the snapshot that the head killed since c comes back to life: its
//!   dead index entry (death after c, birth at or before c) goes;
//! - the retained commits after c saw a branch of history that no longer leads to the
//!   head; they are dropped, so that each block's [birth, death) interval stays exact,
//!   and what only they held is freed at commit.
//!
//! Rolling back to nothing (a full receive) kills the whole head; history stays.
//! Only the newest snapshot is a valid target: a later one would still see the blocks
//! the walk kills.

use super::Pool;
use crate::block::{BlockPtr, Txg};
use crate::error::{Error, Refusal, Result};
use crate::format::node::TreeKind;
use crate::format::tables::{BookmarkEntry, SnapshotEntry, dead_key, decode_dead};
use crate::store::Owner;
use crate::tree::Tree;

impl Pool {
    /// Replaces the head of `tree` with `to`'s root (or an empty tree), in this
    /// transaction. `to` must be the tree's newest snapshot.
    pub fn rollback_head(&mut self, tree: u64, to: Option<&SnapshotEntry>) -> Result<()> {
        self.writable()?;
        if self.heads.get(&tree).is_some_and(|t| t.is_dirty()) {
            return Err(Error::invalid("cannot roll back a tree with uncommitted changes"));
        }
        if let Some(snap) = to {
            Pool::refuse_if_subset(snap, "a rollback")?;
            // Snapshots taken in one transaction share a txg and a tree: any is newest.
            let later = self.first_snapshot_txg_in(tree, snap.txg.0.saturating_add(1)..=u64::MAX)?;
            assert_eq!(later, None, "rollback only to the newest snapshot");
        }
        let floor = to.map_or(0, |s| s.txg.0);
        if to.is_some() {
            self.refuse_if_history_pinned_after(floor)?;
        }
        // The head goes back behind them: an incremental from one would send too little.
        self.drop_bookmarks_after(tree, Txg(floor))?;
        let head = self.committed_head_root(tree)?;
        if let Some(root) = head {
            self.kill_born_after(tree, &root, floor)?;
        }
        if to.is_some() {
            self.revive_dead_entries(tree, floor)?;
            self.history_drop_after(floor)?;
        }
        let root = to.and_then(|s| s.root);
        self.heads.insert(tree, Tree::open(TreeKind::Files, Owner::Files(tree), root));
        self.restart_count(tree, to.map_or(0, |s| s.referenced_bytes));
        Ok(())
    }

    /// `snapctl rollback`: the live tree of `tree` becomes snapshot `name` again, in this
    /// transaction; what it gained since is killed. Snapshots taken after `name` would
    /// still see those blocks: without `destroy_later` they refuse the rollback, with it
    /// they are destroyed first (as `zfs rollback -r`). Returns the snapshot and the
    /// later ones destroyed, newest first.
    pub fn rollback_to(
        &mut self,
        tree: u64,
        name: &str,
        destroy_later: bool,
    ) -> Result<(SnapshotEntry, Vec<SnapshotEntry>, Vec<BookmarkEntry>)> {
        self.writable()?;
        let target = self.snapshot(tree, name)?;
        Pool::refuse_if_subset(&target, "a rollback")?;
        // Its staging tree was started from a snapshot of this tree and outlives neither.
        if let Some(state) = self.receive_state()? {
            return Err(Error::Refused(Refusal::PartialReceiveSaved { receiving: state.snapshot_name }));
        }
        let later: Vec<SnapshotEntry> = self.snapshots_after(tree, target.txg)?.into_iter().rev().collect();
        if !later.is_empty() && !destroy_later {
            let later = later.iter().rev().map(|s| s.name.clone()).collect();
            return Err(Error::Refused(Refusal::LaterSnapshots { target: name.to_string(), later }));
        }
        let later_bookmarks = self.bookmarks_after(tree, target.txg)?;
        if !later_bookmarks.is_empty() && !destroy_later {
            let later = later_bookmarks.iter().map(|b| b.name.clone()).collect();
            return Err(Error::Refused(Refusal::LaterBookmarks { target: name.to_string(), later }));
        }
        // All or none: a held one refuses the rollback before any is destroyed.
        later.iter().try_for_each(Pool::refuse_if_held)?;
        for snapshot in &later {
            self.destroy_snapshot(tree, &snapshot.name)?;
        }
        self.rollback_head(tree, Some(&target))?;
        Ok((target, later, later_bookmarks))
    }

    fn kill_born_after(&mut self, tree: u64, root: &BlockPtr, floor: u64) -> Result<()> {
        for ptr in self.blocks_born_after(root, floor, true)? {
            self.store.kill(Owner::Files(tree), &ptr)?;
        }
        Ok(())
    }

    /// The nodes of a file tree born after `floor` and, with `records`, the file data
    /// they point to that was born after it. Subtrees born at or before `floor` are not
    /// read: nothing in them is newer.
    pub(super) fn blocks_born_after(&mut self, root: &BlockPtr, floor: u64, records: bool) -> Result<Vec<BlockPtr>> {
        let mut found = Vec::new();
        super::space_counters::visit_born_after(&mut self.store, root, floor, records, &mut |ptr| found.push(*ptr))?;
        Ok(found)
    }

    /// Drops the dead index entries of blocks that the head gets back.
    fn revive_dead_entries(&mut self, tree: u64, floor: u64) -> Result<()> {
        self.history_count_lost();
        let from = dead_key(tree, Txg(floor + 1), 0);
        let last = dead_key(tree, Txg(u64::MAX), u64::MAX);
        let mut revived = Vec::new();
        self.dead_table.scan(&mut self.store, &from, &mut |k, v| {
            if k > last.as_slice() {
                return Ok(false);
            }
            let (_, _, ptr) = decode_dead(k, v)?;
            if ptr.birth.0 <= floor {
                revived.push((k.to_vec(), ptr));
            }
            Ok(true)
        })?;
        for (key, ptr) in revived {
            self.dead_table.remove(&mut self.store, &key)?;
            self.uncount_dead(&ptr)?;
        }
        Ok(())
    }
}
