//! Clones: writable trees that start as a snapshot and share all its blocks.
//!
//! A clone of snapshot S of tree T (S taken in txg s) is a new tree whose head starts
//! as S's root; its entry names (T, s) as its origin (format/tables.rs). The clone's
//! blocks born at or before s are S's: when the clone's head drops one, the clone stops
//! counting it but does not kill it (commit.rs): S keeps it, and S cannot be destroyed
//! while the clone exists. What the clone writes is its own, kept by its own snapshots
//! and by the retained commits as any tree's blocks are. A clone of a clone's snapshot
//! follows the chain: a block belongs to the first tree along it that was born after it.
//!
//! A tree's id is the txg of the commit that made it (the live tree, made by the first
//! commit, is 1): unique without a counter, and one clone per transaction.
//!
//! Destroying a clone (once it has no snapshots, and while no reader reads it) removes
//! it from the history too: no retained commit names its root any more, so the blocks
//! of its own, in its head and in the dead index under its id, are freed at once. (Kept
//! in the history, its roots would also reach blocks of its origin that only the origin
//! snapshot keeps, which may be destroyed after it.)

use super::trees::ORIGIN_CHAIN_MAX;
use super::{LIVE_TREE_ID, Pool};
use crate::block::Txg;
use crate::error::{Error, Refusal, Result};
use crate::format::label::FEATURE_CLONES;
use crate::format::tables::{SNAPSHOT_NAME_BYTES_MAX, SnapshotEntry, TreeEntry};

/// A clone's name: what a snapshot's may be (1..128 bytes of letters, digits, `_ - . +`,
/// not starting with `-` or `.`), and not the live tree's.
pub fn validate_clone_name(name: &str) -> Result<()> {
    super::validate_snapshot_name(name).map_err(|_| {
        Error::invalid(format!(
            "clone name {name:?} is not allowed: use 1 to {SNAPSHOT_NAME_BYTES_MAX} letters, digits, '_', '-', '.' or \
             '+', not starting with '-' or '.'"
        ))
    })?;
    if name == super::LIVE_TREE_NAME {
        return Err(Error::invalid(format!("{name:?} is the live tree's name")));
    }
    Ok(())
}

impl Pool {
    /// The tree a block born in `birth` that `tree` reaches belongs to: `tree`, or along
    /// its chain of origins the first one made after the block.
    pub fn block_owner(&mut self, mut tree: u64, birth: u64) -> Result<u64> {
        for _ in 0..ORIGIN_CHAIN_MAX {
            match self.origin_of(tree)?.filter(|(_, txg)| birth <= txg.0) {
                Some((origin, _)) => tree = origin,
                None => return Ok(tree),
            }
        }
        Err(Error::corrupt(format!("the origins of tree {tree} run in a loop")))
    }

    /// Makes clone `name` of snapshot `snapshot` of `tree`, in this transaction. Returns
    /// its id.
    pub fn create_clone(&mut self, tree: u64, snapshot: &str, name: &str) -> Result<u64> {
        self.writable()?;
        validate_clone_name(name)?;
        let origin = self.snapshot(tree, snapshot)?;
        Self::refuse_if_extracting(&origin, "a clone")?;
        if origin.subset.is_some() {
            return self.clone_subset(tree, &origin, name);
        }
        let id = self.add_tree(name, origin.root, Some((tree, origin.txg)), origin.referenced_bytes)?;
        self.store.features_needed |= FEATURE_CLONES;
        Ok(id)
    }

    /// A new tree entry, made by this transaction: its id is this txg.
    pub(super) fn add_tree(
        &mut self,
        name: &str,
        root: Option<crate::block::BlockPtr>,
        origin: Option<(u64, Txg)>,
        referenced_bytes: u64,
    ) -> Result<u64> {
        self.build_tree_index_if_needed()?;
        if self.tree_id(name).is_ok() {
            return Err(Error::Exists { what: format!("clone {name}") });
        }
        let id = self.store.txg.0;
        if self.tree_entry(id)?.is_some() {
            return Err(Error::invalid("one new tree per transaction: commit before making another"));
        }
        let created_txg = self.store.txg;
        self.put_tree(TreeEntry { id, name: name.to_string(), root, created_txg, origin, referenced_bytes })?;
        Ok(id)
    }

    /// Makes an empty tree `name`, in this transaction, for a full stream to fill
    /// (`snaprecv --tree`): a tree of its own, with no origin. Returns its id.
    pub fn create_tree(&mut self, name: &str) -> Result<u64> {
        self.writable()?;
        validate_clone_name(name)?;
        self.add_tree(name, None, None, 0)
    }

    /// Destroys clone `name` in this transaction: refused while it has snapshots.
    pub fn destroy_clone(&mut self, name: &str) -> Result<TreeEntry> {
        self.writable()?;
        let id = self.tree_id(name)?;
        if id == LIVE_TREE_ID {
            return Err(Error::invalid("the live tree cannot be destroyed (rm -r of its files empties it)"));
        }
        let snapshots: Vec<String> = self.snapshots_of(id)?.into_iter().map(|s| s.name).collect();
        if !snapshots.is_empty() {
            return Err(Error::Refused(Refusal::CloneHasSnapshots { name: name.to_string(), snapshots }));
        }
        if let Some(state) = self.receive_state()?.filter(|s| s.tree == id) {
            return Err(Error::Refused(Refusal::PartialReceiveSaved { receiving: state.snapshot_name }));
        }
        if self.heads.get(&id).is_some_and(|t| t.is_dirty()) {
            return Err(Error::invalid("cannot destroy a clone with uncommitted changes"));
        }
        if let Some(pin) = self.pins_now()?.into_iter().find(|p| p.tree == id) {
            return Err(Error::Refused(Refusal::BeingRead { what: format!("clone {name}"), holder: pin.holder() }));
        }
        self.build_tree_index_if_needed()?;
        self.heads.remove(&id);
        let entry = self.remove_tree(id)?;
        let floor = entry.origin.map_or(0, |(_, txg)| txg.0);
        if let Some(root) = entry.root {
            for ptr in self.blocks_born_after(&root, floor, true)? {
                self.store.alloc.defer_free_ptr(&ptr)?;
            }
        }
        self.history_count_lost();
        for (death, ptr) in self.dead_entries(id)? {
            self.dead_table.remove(&mut self.store, &crate::format::tables::dead_key(id, death, ptr.addr.0))?;
            self.store.alloc.defer_free_ptr(&ptr)?;
            self.uncount_dead(&ptr)?;
        }
        self.forget_tree_history(id)?;
        // Its bookmarks name states of a tree that is gone.
        self.drop_bookmarks_after(id, crate::block::Txg(0))?;
        self.destroyed_trees.push((id, name.to_string()));
        Ok(entry)
    }

    /// Gives clone `old` the name `new`, in this transaction. Everything else names a
    /// tree by its id (snapshots, bookmarks, pins, a saved partial receive), so nothing
    /// else changes.
    pub fn rename_tree(&mut self, old: &str, new: &str) -> Result<TreeEntry> {
        self.writable()?;
        validate_clone_name(new)?;
        let id = self.tree_id(old)?;
        if id == LIVE_TREE_ID {
            return Err(Error::invalid("the live tree keeps its name"));
        }
        if self.tree_id(new).is_ok() {
            return Err(Error::Exists { what: format!("clone {new}") });
        }
        self.build_tree_index_if_needed()?;
        let renamed = TreeEntry { name: new.to_string(), ..self.existing_tree(id)?.clone() };
        self.put_tree(renamed.clone())?;
        Ok(renamed)
    }

    /// The snapshots a stream into `tree` can start from: its own, or, for a clone that
    /// has none yet, the snapshot it was made from (a stream from that snapshot fills
    /// it). Oldest first.
    pub fn lineage_snapshots(&mut self, tree: u64) -> Result<Vec<SnapshotEntry>> {
        let own = self.snapshots_of(tree)?;
        match (own.is_empty(), self.origin_of(tree)?) {
            (true, Some((origin_tree, txg))) => {
                Ok(self.snapshots_of(origin_tree)?.into_iter().filter(|s| s.txg == txg).take(1).collect())
            }
            _ => Ok(own),
        }
    }

    /// Snapshot `name` of `tree`, or of the trees along its origins as far as the clone
    /// was made from them (an incremental from there to the clone's snapshot).
    pub fn ancestor_snapshot(&mut self, tree: u64, name: &str) -> Result<SnapshotEntry> {
        let mut at = (tree, u64::MAX);
        loop {
            if let Some(found) = self.snapshots_of(at.0)?.into_iter().find(|s| s.name == name && s.txg.0 <= at.1) {
                return Ok(found);
            }
            match self.origin_of(at.0)? {
                Some((origin, txg)) => at = (origin, txg.0),
                None => return Err(Error::SnapshotNotFound { name: name.to_string(), base: true }),
            }
        }
    }

    /// Refuses destroying snapshot `name` of `tree` (taken in `txg`) while it is the
    /// origin of clones and no other snapshot of that commit stays to hold their blocks.
    pub(super) fn refuse_if_origin(&mut self, tree: u64, name: &str, txg: Txg) -> Result<()> {
        let clones = self.clones_of(tree, txg)?;
        if clones.is_empty() {
            return Ok(());
        }
        let others = self.snapshots_of(tree)?.into_iter().filter(|s| s.txg == txg && s.name != name).count();
        if others > 0 {
            return Ok(());
        }
        Err(Error::Refused(Refusal::CloneOrigin { snapshot: name.to_string(), clones }))
    }
}
