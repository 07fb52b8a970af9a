//! The snapshots by (tree, txg): which checkpoints a tree has in a range of txgs. Every
//! commit asks it, to release the retained commit before it and to file each block it
//! killed (retention.rs); the snapshots table, keyed by name, would have to be read
//! whole to answer, so a commit at 10,000 snapshots read 10,000 entries.
//!
//! The index holds one empty-valued key per snapshot (format/tables.rs
//! `snapshot_index_key`) and is kept in step with the snapshots table by the same
//! transaction: snapshots recorded or destroyed at commit (commit.rs), a rename when it
//! is made. A pool written before the index existed gets it from the first commit that
//! changes its snapshots table, built from the whole table once; until then the table
//! is read whole, as before. So a pool nobody ever snapshotted stays readable by older
//! binaries.

use super::Pool;
use crate::block::Txg;
use crate::error::Result;
use crate::format::label::FEATURE_SNAPSHOT_INDEX;
use crate::format::pool_root::SnapshotIndexRoot;
use crate::format::tables::{SnapshotEntry, decode_snapshot_index, snapshot_index_key};

impl Pool {
    fn index_built(&self) -> bool {
        self.root.snapshot_index != SnapshotIndexRoot::Absent
    }

    pub(super) fn index_add(&mut self, entry: &SnapshotEntry) -> Result<()> {
        if self.index_built() {
            let key = snapshot_index_key(entry.tree, entry.txg, &entry.name);
            self.snapshot_index.insert(&mut self.store, &key, &[])?;
        }
        Ok(())
    }

    pub(super) fn index_remove(&mut self, entry: &SnapshotEntry) -> Result<()> {
        if self.index_built() {
            self.snapshot_index.remove(&mut self.store, &snapshot_index_key(entry.tree, entry.txg, &entry.name))?;
        }
        Ok(())
    }

    /// At commit, after the snapshots are recorded: a pool without an index gets one
    /// when its snapshots table changed, from the table as this commit leaves it.
    pub(super) fn build_snapshot_index_if_needed(&mut self) -> Result<()> {
        // A pool root that names a bookmarks table is of version 4, which has an index.
        let changed = super::commit::table_changed(&self.snapshots_table, self.root.snapshots)
            || super::commit::table_changed(&self.bookmarks_table, self.root.bookmarks);
        if self.index_built() || !changed {
            return Ok(());
        }
        for (k, v) in self.snapshots_table.scan_prefix(&mut self.store, &[])? {
            let entry = SnapshotEntry::decode(&k, &v)?;
            let key = snapshot_index_key(entry.tree, entry.txg, &entry.name);
            self.snapshot_index.insert(&mut self.store, &key, &[])?;
        }
        self.root.snapshot_index = SnapshotIndexRoot::Built(None);
        self.store.features_needed |= FEATURE_SNAPSHOT_INDEX;
        Ok(())
    }

    /// At commit: the index's new root, if the pool has one.
    pub(super) fn flush_snapshot_index(&mut self) -> Result<()> {
        if self.index_built() {
            self.root.snapshot_index = SnapshotIndexRoot::Built(self.snapshot_index.flush(&mut self.store)?);
        }
        Ok(())
    }

    /// The first txg of `tree`'s snapshots in `range`: one range scan of the index, or of
    /// the loaded snapshots (the whole table, read once, on a pool without an index).
    pub(super) fn first_snapshot_txg_in(
        &mut self,
        tree: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>> {
        let (start, end) = range.into_inner();
        if self.snapshots_loaded || !self.index_built() {
            self.load_snapshots()?;
            return Ok(self.snapshot_txgs.range((tree, start)..=(tree, end)).next().map(|(&(_, txg), _)| txg));
        }
        let mut found = None;
        self.scan_index(tree, start, end, &mut |_, txg, _| {
            found = Some(txg);
            false
        })?;
        Ok(found)
    }

    /// `tree`'s snapshots taken after `txg`, oldest first.
    pub(super) fn snapshots_after(&mut self, tree: u64, txg: Txg) -> Result<Vec<SnapshotEntry>> {
        if self.snapshots_loaded || !self.index_built() {
            return Ok(self.snapshots_of(tree)?.into_iter().filter(|s| s.txg > txg).collect());
        }
        let mut names = Vec::new();
        self.scan_index(tree, txg.0.saturating_add(1), u64::MAX, &mut |_, _, name| {
            names.push(name.to_string());
            true
        })?;
        let mut later = Vec::with_capacity(names.len());
        for name in names {
            later.extend(self.find_snapshot(tree, &name)?);
        }
        later.sort_by_key(|s| (s.txg, s.time_ns, s.name.clone()));
        Ok(later)
    }

    /// Visits the index entries of `tree` with txgs in [start, end], in order, leaving
    /// out those destroyed in the running transaction, until `visit` returns false.
    fn scan_index(
        &mut self,
        tree: u64,
        start: u64,
        end: u64,
        visit: &mut dyn FnMut(u64, u64, &str) -> bool,
    ) -> Result<()> {
        let from = snapshot_index_key(tree, Txg(start), "");
        let removed = &self.removed_snapshots;
        self.snapshot_index.scan(&mut self.store, &from, &mut |k, v| {
            let (entry_tree, txg, name) = decode_snapshot_index(k, v)?;
            if entry_tree != tree || txg.0 > end {
                return Ok(false);
            }
            let destroyed = removed.iter().any(|r| r.tree == tree && r.txg == txg && r.name == name);
            Ok(destroyed || visit(entry_tree, txg.0, &name))
        })
    }

    /// Every entry of the index, for `check` to compare with the snapshots table; None on
    /// a pool without one.
    pub fn snapshot_index_entries(&mut self) -> Result<Option<Vec<(u64, Txg, String)>>> {
        if !self.index_built() {
            return Ok(None);
        }
        let mut entries = Vec::new();
        for (k, v) in self.snapshot_index.scan_prefix(&mut self.store, &[])? {
            entries.push(decode_snapshot_index(&k, &v)?);
        }
        Ok(Some(entries))
    }
}

#[cfg(test)]
mod tests {
    use crate::check::check_pool;
    use crate::device::{CrashDevice, OpenMode};
    use crate::format::label::FEATURE_SNAPSHOT_INDEX;
    use crate::format::pool_root::SnapshotIndexRoot;
    use crate::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    /// A pool that keeps no retained commit (each commit releases the one before) with
    /// `count` snapshots.
    fn pool_without_history(count: usize) -> CrashDevice {
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let mut pool = format_pool(Box::new(device.clone()), &FormatOptions::default()).unwrap();
        pool.set_history_seconds(0).unwrap();
        pool.commit().unwrap();
        for i in 0..count {
            pool.create_snapshot(LIVE_TREE_ID, &format!("snapshot-{i}")).unwrap();
            pool.commit().unwrap();
        }
        device
    }

    fn assert_clean(device: &CrashDevice) {
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Read).unwrap();
        let report = check_pool(&mut pool).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// Device reads of opening the pool, and taking and destroying a snapshot in two
    /// commits, less the space log blocks every open replays.
    fn commit_reads(device: &CrashDevice) -> u64 {
        device.reads.store(0, Ordering::Relaxed);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        let space_log_blocks = pool.root.space_log_blocks;
        pool.create_snapshot(LIVE_TREE_ID, "s").unwrap();
        pool.commit().unwrap();
        pool.destroy_snapshot(LIVE_TREE_ID, "s").unwrap();
        pool.commit().unwrap();
        device.reads.load(Ordering::Relaxed) - space_log_blocks
    }

    #[test]
    fn commits_read_as_much_with_thousands_of_snapshots_as_with_a_few_when_no_history_is_kept() {
        // Goal: releasing the commit before (every commit, with no history kept) asks
        // which snapshots lie at one txg and after it; the index answers with a range
        // scan, where the table was read whole (3,000 snapshots: about 60 nodes).
        let few = commit_reads(&pool_without_history(4));
        let many_device = pool_without_history(3000);
        let many = commit_reads(&many_device);
        assert!(many <= few + 8, "3000 snapshots: {many} reads against {few} with 4");
        assert_clean(&many_device);
    }

    #[test]
    fn a_pool_without_an_index_gets_one_from_the_first_commit_that_changes_its_snapshots() {
        // Goal: a pool written before the index (pool root version 1 or 2) opens, keeps
        // committing without one, and gets one, exact and flagged in the label, from the
        // first commit that changes its snapshots. Method: make such a pool by emptying
        // the index and committing a root without it.
        let device = pool_without_history(40);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        for (tree, txg, name) in pool.snapshot_index_entries().unwrap().unwrap() {
            pool.snapshot_index.remove(&mut pool.store, &super::snapshot_index_key(tree, txg, &name)).unwrap();
        }
        pool.commit().unwrap();
        assert_eq!(pool.root.snapshot_index, SnapshotIndexRoot::Built(None));
        pool.root.snapshot_index = SnapshotIndexRoot::Absent;
        pool.config_changed = true;
        pool.commit().unwrap();
        drop(pool);
        assert_clean(&device);

        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        assert_eq!(pool.root.snapshot_index, SnapshotIndexRoot::Absent);
        pool.set_history_seconds(0).unwrap();
        pool.commit().unwrap();
        assert_eq!(pool.root.snapshot_index, SnapshotIndexRoot::Absent, "a commit that leaves the snapshots alone");
        pool.destroy_snapshot(LIVE_TREE_ID, "snapshot-7").unwrap();
        pool.commit().unwrap();
        drop(pool);

        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Read).unwrap();
        assert!(pool.label.features_incompat & FEATURE_SNAPSHOT_INDEX != 0);
        let indexed: Vec<String> = pool.snapshot_index_entries().unwrap().unwrap().into_iter().map(|e| e.2).collect();
        assert_eq!(indexed.len(), 39);
        assert!(!indexed.contains(&"snapshot-7".to_string()));
        drop(pool);
        assert_clean(&device);
    }

    #[test]
    fn check_finds_an_index_that_lacks_a_snapshot_or_names_one_too_many() {
        let device = pool_without_history(5);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        let snapshot = pool.snapshot(LIVE_TREE_ID, "snapshot-2").unwrap();
        pool.snapshot_index.remove(&mut pool.store, &super::snapshot_index_key(1, snapshot.txg, "snapshot-2")).unwrap();
        pool.snapshot_index.insert(&mut pool.store, &super::snapshot_index_key(1, snapshot.txg, "ghost"), &[]).unwrap();
        pool.commit().unwrap();
        drop(pool);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Read).unwrap();
        let problems = check_pool(&mut pool).unwrap().problems.join("\n");
        assert!(problems.contains("@snapshot-2 (tree 1, txg"), "{problems}");
        assert!(problems.contains("is missing from the snapshot index"), "{problems}");
        assert!(problems.contains("names @ghost"), "{problems}");
    }
}
