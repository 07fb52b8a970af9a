//! Space counters (format version 10, feature `space_counters`): each tree entry keeps
//! `referenced_bytes`, the bytes of every block its head reaches (nodes and file data,
//! each copy counted), and each snapshot the value its tree had when it was taken. So
//! `list` and `status` give `referenced` and `written` without walking any tree.
//!
//! A commit moves a tree's counter by what the transaction changed: plus the blocks the
//! new root reaches that were born in this transaction (a walk of the new nodes only:
//! every subtree born earlier is skipped), minus the committed blocks it killed. A
//! rollback restarts the count from the snapshot the head returns to, since the blocks
//! it revives were never killed by this transaction. `check` recounts every tree.
//!
//! An older pool gets the counters from the first commit a newer binary makes: one walk
//! of each head, and one pass over the dead index, give every snapshot's count (a
//! snapshot reaches the head's blocks born up to it, and the dead blocks it sees). A
//! reader of an older pool computes them the same way.

use super::Pool;
use crate::block::{BLOCK_BYTES, BlockPtr};
use crate::error::Result;
use crate::format::label::FEATURE_SPACE_COUNTERS;
use crate::format::node::{NodeBody, TreeKind};
use crate::format::tables::SnapshotEntry;
use crate::fs::inode::{ItemKind, key_is};
use crate::fs::record::Record;
use crate::store::Store;
use crate::tree::{WalkStep, walk_nodes};
use std::collections::BTreeMap;

/// The bytes a block takes on the device, every copy counted.
pub(super) fn footprint(ptr: &BlockPtr) -> u64 {
    ptr.footprint_blocks() * BLOCK_BYTES
}

/// Visits the blocks a file tree's `root` reaches that were born after `floor`: its
/// nodes and, with `records`, the file data its records point to. Subtrees born at or
/// before `floor` are not read: nothing in them is newer.
pub(super) fn visit_born_after(
    store: &mut Store,
    root: &BlockPtr,
    floor: u64,
    records: bool,
    visit: &mut dyn FnMut(&BlockPtr),
) -> Result<()> {
    walk_nodes(store, root, TreeKind::Files, &mut |ptr, node| {
        if ptr.birth.0 <= floor {
            return Ok(WalkStep::Skip);
        }
        visit(ptr);
        if let (true, NodeBody::Leaf(entries)) = (records, &node.body) {
            for (k, v) in entries {
                if key_is(k, ItemKind::Record) {
                    Record::decode(v)?.blocks().filter(|b| b.birth.0 > floor).for_each(&mut *visit);
                }
            }
        }
        Ok(WalkStep::Descend)
    })
}

/// Calls `visit` with every node of the tree at `root` born after `floor`, leaves
/// included, reading only the nodes above the leaves (a leaf's pointer is in its
/// parent): a subset snapshot's own nodes in a hundredth of the reads of a full walk.
pub(super) fn visit_nodes_born_after(
    store: &mut Store,
    root: &BlockPtr,
    floor: u64,
    visit: &mut dyn FnMut(&BlockPtr),
) -> Result<()> {
    if root.birth.0 <= floor {
        return Ok(());
    }
    if root.level == 0 {
        visit(root);
        return Ok(());
    }
    walk_nodes(store, root, TreeKind::Files, &mut |ptr, node| {
        if ptr.birth.0 <= floor {
            return Ok(WalkStep::Skip);
        }
        visit(ptr);
        match (&node.body, ptr.level) {
            (NodeBody::Internal(children), 1) => {
                children.iter().map(|(_, child)| child).filter(|c| c.birth.0 > floor).for_each(&mut *visit);
                Ok(WalkStep::Skip)
            }
            _ => Ok(WalkStep::Descend),
        }
    })
}

/// What a tree's root reaches, in bytes, by birth txg.
fn bytes_by_birth(store: &mut Store, root: Option<BlockPtr>) -> Result<BTreeMap<u64, u64>> {
    let mut by_birth = BTreeMap::new();
    if let Some(root) = root {
        visit_born_after(store, &root, 0, true, &mut |ptr| {
            *by_birth.entry(ptr.birth.0).or_default() += footprint(ptr)
        })?;
    }
    Ok(by_birth)
}

/// The bytes `root` reaches, counted by walking it (what its counter should say).
pub fn count_referenced(store: &mut Store, root: Option<BlockPtr>) -> Result<u64> {
    Ok(bytes_by_birth(store, root)?.values().sum())
}

impl Pool {
    /// The pool's entries carry space counters (else they are computed when asked).
    pub fn has_space_counters(&self) -> bool {
        self.label.has_space_counters()
    }

    /// The head of `tree` now holds exactly `bytes` (a rollback to a snapshot, or to
    /// nothing): the kills made so far in this transaction are already accounted for.
    pub(super) fn restart_count(&mut self, tree: u64, bytes: u64) {
        self.count_restarts.insert(tree, (bytes, self.store.file_kills.len()));
    }

    /// At commit, with the head of `tree` flushed to `root`: its counter from `old`, the
    /// committed one.
    pub(super) fn recount(&mut self, tree: u64, old: u64, root: Option<BlockPtr>) -> Result<u64> {
        let txg = self.store.txg.0;
        let (base, first_kill) = self.count_restarts.remove(&tree).unwrap_or((old, 0));
        // A kill of a block this transaction wrote (or adopted as its own) was never
        // counted.
        let killed: u64 = self.store.file_kills[first_kill..]
            .iter()
            .filter(|(t, ptr)| *t == tree && ptr.birth.0 < txg)
            .map(|(_, ptr)| footprint(ptr))
            .sum();
        let mut born = 0;
        if let Some(root) = root {
            visit_born_after(&mut self.store, &root, txg - 1, true, &mut |ptr| born += footprint(ptr))?;
        }
        // Saturating: a wrong counter is reported by `check`, not a reason to refuse
        // every commit from now on.
        Ok((base + born).saturating_sub(killed))
    }

    /// The `referenced_bytes` of `snapshots` (of `tree`, oldest first): their counters,
    /// or on an older pool computed from the head and the dead index.
    pub(super) fn referenced_of(&mut self, tree: u64, snapshots: &[SnapshotEntry]) -> Result<Vec<u64>> {
        match self.has_space_counters() {
            // A subset being extracted is counted once whole (extraction.rs): till then,
            // by a walk of what it holds so far.
            true => snapshots
                .iter()
                .map(|s| match s.subset.as_ref().is_some_and(|x| x.is_extracting()) {
                    true => count_referenced(&mut self.store, s.root),
                    false => Ok(s.referenced_bytes),
                })
                .collect(),
            false => self.compute_snapshot_counts(tree, snapshots),
        }
    }

    /// The `referenced_bytes` of `tree`'s head: its counter, or on an older pool a walk.
    pub fn head_referenced(&mut self, tree: u64) -> Result<u64> {
        let Some(entry) = self.tree_entry(tree)?.cloned() else { return Ok(0) };
        if self.has_space_counters() {
            return Ok(entry.referenced_bytes);
        }
        count_referenced(&mut self.store, entry.root)
    }

    /// Each of `snapshots` (of `tree`, oldest first) reaches the head's blocks born up to
    /// it and the dead blocks it sees (born at or before it, killed after it).
    fn compute_snapshot_counts(&mut self, tree: u64, snapshots: &[SnapshotEntry]) -> Result<Vec<u64>> {
        let root = self.tree_entry(tree)?.and_then(|e| e.root);
        let head = bytes_by_birth(&mut self.store, root)?;
        let txgs: Vec<u64> = snapshots.iter().map(|s| s.txg.0).collect();
        // Each dead block adds to a run of snapshots: a difference array over them.
        let mut runs = vec![0i128; txgs.len() + 1];
        for (death, ptr) in self.dead_entries(tree)? {
            let seen = super::space::seen_by(&txgs, ptr.birth.0, death.0);
            runs[seen.start] += footprint(&ptr) as i128;
            runs[seen.end] -= footprint(&ptr) as i128;
        }
        let (mut dead, mut counts) = (0i128, Vec::with_capacity(txgs.len()));
        for (i, txg) in txgs.iter().enumerate() {
            dead += runs[i];
            let live: u64 = head.range(..=txg).map(|(_, bytes)| bytes).sum();
            counts.push(live + dead.max(0) as u64);
        }
        Ok(counts)
    }

    /// At commit, on a pool without the counters: counts every tree and snapshot and
    /// writes them into their entries, and asks the label for the feature. Called once
    /// the dead index holds this transaction's kills.
    pub(super) fn add_space_counters_if_needed(&mut self) -> Result<()> {
        if self.has_space_counters() {
            return Ok(());
        }
        let trees: Vec<crate::format::tables::TreeEntry> = self.trees()?.cloned().collect();
        for entry in trees {
            let tree = entry.id;
            let referenced_bytes = count_referenced(&mut self.store, entry.root)?;
            self.put_tree(crate::format::tables::TreeEntry { referenced_bytes, ..entry })?;
            let snapshots = self.snapshots_of(tree)?;
            let counts = self.compute_snapshot_counts(tree, &snapshots)?;
            for (snapshot, referenced_bytes) in snapshots.into_iter().zip(counts) {
                self.rewrite_snapshot(&SnapshotEntry { referenced_bytes, ..snapshot })?;
            }
        }
        self.store.features_needed |= FEATURE_SPACE_COUNTERS;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{FEATURE_SPACE_COUNTERS, count_referenced, footprint, visit_born_after};
    use crate::check::check_pool;
    use crate::device::MemoryDevice;
    use crate::fs::inode::{Inode, ROOT_INO};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};

    use crate::fuzzing::Steps;

    /// Every snapshot's figures against walks of the trees: `referenced` is what its
    /// root reaches; `written` what it reaches that was born after the snapshot before
    /// it; the head's counter what the head reaches.
    fn assert_figures_walk_true(pool: &mut Pool) {
        let snapshots = pool.snapshots_of(LIVE_TREE_ID).unwrap();
        let space = pool.snapshot_space(LIVE_TREE_ID).unwrap();
        let mut previous = 0;
        for s in &snapshots {
            let figures = space[&s.name];
            assert_eq!(figures.referenced_bytes, count_referenced(&mut pool.store, s.root).unwrap(), "@{}", s.name);
            let mut born = 0;
            if let Some(root) = s.root {
                visit_born_after(&mut pool.store, &root, previous, true, &mut |p| born += footprint(p)).unwrap();
            }
            assert_eq!(figures.written_bytes, born, "@{} written", s.name);
            previous = s.txg.0;
        }
        let head = pool.committed_head_root(LIVE_TREE_ID).unwrap();
        assert_eq!(pool.head_referenced(LIVE_TREE_ID).unwrap(), count_referenced(&mut pool.store, head).unwrap());
    }

    fn random_history(seed: u64, history_seconds: u64) {
        let mut pool = format_pool(Box::new(MemoryDevice::new(96 << 20)), &FormatOptions::default()).unwrap();
        pool.set_history_seconds(history_seconds).unwrap();
        pool.commit().unwrap();
        let mut steps = Steps(seed);
        let mut taken = 0;
        for round in 0..60 {
            let mut fs = pool.live(LIVE_TREE_ID).unwrap();
            for _ in 0..1 + steps.next(4) {
                let name = format!("f{}", steps.next(12));
                let found = fs.lookup(ROOT_INO, name.as_bytes()).unwrap().map(|e| e.ino);
                match (found, steps.next(3)) {
                    (Some(_), 0) => fs.remove_recursive(ROOT_INO, name.as_bytes()).unwrap(),
                    (found, _) => {
                        let ino = match found {
                            Some(ino) => ino,
                            None => {
                                fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Default::default())).unwrap()
                            }
                        };
                        let len = 1 + steps.next(300_000) as usize;
                        let data: Vec<u8> = (0..len).map(|i| (i as u64 * (round + 7) + steps.0 % 251) as u8).collect();
                        fs.write_at(ino, steps.next(200_000), &data).unwrap();
                    }
                }
            }
            match steps.next(6) {
                0 | 1 => {
                    pool.create_snapshot(LIVE_TREE_ID, &format!("s{taken}")).unwrap();
                    taken += 1;
                }
                2 => {
                    let names: Vec<String> =
                        pool.snapshots_of(LIVE_TREE_ID).unwrap().into_iter().map(|s| s.name).collect();
                    if !names.is_empty() {
                        pool.commit().unwrap();
                        let doomed = &names[steps.next(names.len() as u64) as usize];
                        pool.destroy_snapshot(LIVE_TREE_ID, doomed).unwrap();
                    }
                }
                3 => {
                    let names: Vec<String> =
                        pool.snapshots_of(LIVE_TREE_ID).unwrap().into_iter().map(|s| s.name).collect();
                    if !names.is_empty() {
                        pool.commit().unwrap();
                        let target = &names[steps.next(names.len() as u64) as usize];
                        pool.rollback_to(LIVE_TREE_ID, target, true).unwrap();
                    }
                }
                _ => {}
            }
            pool.commit().unwrap();
            assert_figures_walk_true(&mut pool);
        }
        let report = check_pool(&mut pool).unwrap();
        assert!(report.problems.is_empty(), "seed {seed}: {:?}", report.problems);
        assert_an_older_pool_gets_the_same_counts(&mut pool);
    }

    /// Without the feature (a pool an older binary wrote), the figures are computed from
    /// the head and the dead index: they must be what the counters say; and the next
    /// commit writes them and sets the feature.
    fn assert_an_older_pool_gets_the_same_counts(pool: &mut Pool) {
        let snapshots = pool.snapshots_of(LIVE_TREE_ID).unwrap();
        let stored: Vec<u64> = snapshots.iter().map(|s| s.referenced_bytes).collect();
        let head = pool.head_referenced(LIVE_TREE_ID).unwrap();
        pool.label.features_incompat &= !FEATURE_SPACE_COUNTERS;
        assert_eq!(pool.referenced_of(LIVE_TREE_ID, &snapshots).unwrap(), stored);
        assert_eq!(pool.head_referenced(LIVE_TREE_ID).unwrap(), head);
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        fs.create(ROOT_INO, b"after-upgrade", Inode::new(0o100644, Default::default())).unwrap();
        pool.commit().unwrap();
        assert!(pool.has_space_counters());
        assert_figures_walk_true(pool);
        let report = check_pool(pool).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn counters_and_written_match_walks_through_writes_snapshots_destroys_and_rollbacks() {
        // Goal: the counters a commit moves by difference stay what a walk counts, with
        // history kept and without, and `written` is what each snapshot reaches that
        // was born after the one before it.
        for seed in 0..4 {
            random_history(seed, 0);
            random_history(seed + 100, 3600);
        }
    }
}
