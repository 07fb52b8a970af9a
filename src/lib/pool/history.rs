//! The retained commits, read from the history table as each question needs them.
//!
//! An open does not load the history: a commit asks only for the oldest entries (to
//! expire them), the first one at or after a txg (is a killed block still visible
//! somewhere? which checkpoint follows a released one?) and inserts itself, each one
//! descent of the table. So a commit costs the same with 10 commits retained as with
//! 10,000; only what lists them all (`history`, `check`, `status`) reads them all.
//!
//! Entries are in txg order and so in time order: a commit's time is never less than
//! the previous one's (commit.rs), so expired entries are always the oldest ones.

use super::Pool;
use crate::block::Txg;
use crate::error::Result;
use crate::format::tables::HistoryEntry;

impl Pool {
    /// Retained commits, oldest first, with their times. Reads the whole table.
    pub fn history(&mut self) -> Result<Vec<(Txg, u64)>> {
        let mut out = Vec::new();
        for (k, v) in self.history_table.scan_prefix(&mut self.store, &[])? {
            let entry = HistoryEntry::decode(&k, &v)?;
            out.push((entry.txg, entry.time_ns));
        }
        Ok(out)
    }

    /// The oldest retained commit at or after `txg`: (txg, time).
    pub(super) fn history_from(&mut self, txg: u64) -> Result<Option<(u64, u64)>> {
        let mut found = None;
        self.history_table.scan(&mut self.store, &HistoryEntry::key(Txg(txg)), &mut |k, v| {
            found = Some((k.to_vec(), v.to_vec()));
            Ok(false)
        })?;
        match found {
            None => Ok(None),
            Some((k, v)) => {
                let entry = HistoryEntry::decode(&k, &v)?;
                Ok(Some((entry.txg.0, entry.time_ns)))
            }
        }
    }

    /// True if commit `txg` is retained.
    pub(super) fn history_contains(&mut self, txg: u64) -> Result<bool> {
        Ok(self.history_table.get(&mut self.store, &HistoryEntry::key(Txg(txg)))?.is_some())
    }

    /// Drops retained commit `txg`; the commit then releases what only it kept
    /// (retention.rs).
    pub(super) fn history_drop(&mut self, txg: u64) -> Result<()> {
        if self.history_table.remove(&mut self.store, &HistoryEntry::key(Txg(txg)))?.is_some() {
            self.released_history.push(txg);
        }
        Ok(())
    }

    /// Drops every retained commit after `floor` (a rollback: they saw a branch that no
    /// longer leads to the head).
    pub(super) fn history_drop_after(&mut self, floor: u64) -> Result<()> {
        let Some(from) = floor.checked_add(1) else { return Ok(()) };
        let mut after = Vec::new();
        self.history_table.scan(&mut self.store, &HistoryEntry::key(Txg(from)), &mut |k, _| {
            after.push(k.to_vec());
            Ok(true)
        })?;
        for key in after {
            let entry_txg = crate::format::tables::read_be64(&key, "history")?;
            self.history_drop(entry_txg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::device::{CrashDevice, OpenMode};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    /// A pool with `commits` retained commits besides its first, each one a snapshot if
    /// `snapshots`.
    fn pool_with_history(commits: usize, snapshots: bool) -> CrashDevice {
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let mut pool = format_pool(Box::new(device.clone()), &FormatOptions::default()).unwrap();
        for i in 0..commits {
            match snapshots {
                true => pool.create_snapshot(LIVE_TREE_ID, &format!("snapshot-{i}")).unwrap(),
                false => pool.set_history_seconds(86400).unwrap(),
            }
            pool.commit().unwrap();
        }
        assert_eq!(pool.history().unwrap().len(), commits + 1);
        assert_eq!(pool.snapshots_of(LIVE_TREE_ID).unwrap().len(), if snapshots { commits } else { 0 });
        device
    }

    /// Device reads of opening the pool and committing one snapshot, less the blocks of
    /// the space log, which every open replays (its length is bounded by condensing and
    /// follows the allocations, not the history: commit.rs).
    fn snapshot_reads(device: &CrashDevice) -> u64 {
        device.reads.store(0, Ordering::Relaxed);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        let space_log_blocks = pool.root.space_log_blocks;
        pool.create_snapshot(LIVE_TREE_ID, "s").unwrap();
        pool.commit().unwrap();
        device.reads.load(Ordering::Relaxed) - space_log_blocks
    }

    #[test]
    fn a_snapshot_reads_as_much_with_thousands_of_retained_commits_as_with_a_few() {
        // Goal: open and commit cost what the commit does, not what the history holds:
        // the history table is read by the entries a commit needs, never whole.
        let few = snapshot_reads(&pool_with_history(4, false));
        for commits in [600, 3000] {
            let many = snapshot_reads(&pool_with_history(commits, false));
            // A deeper table costs one more node on each of the two paths read.
            assert!(many <= few + 4, "{commits} retained commits: {many} reads against {few} with 4");
        }
    }

    #[test]
    fn a_snapshot_reads_as_much_with_thousands_of_snapshots_as_with_a_few() {
        // Goal: neither is the snapshots table read whole: taking one looks its name up.
        let few = snapshot_reads(&pool_with_history(4, true));
        for snapshots in [600, 3000] {
            let many = snapshot_reads(&pool_with_history(snapshots, true));
            // Deeper tables cost one more node on each path read (snapshots, history).
            assert!(many <= few + 6, "{snapshots} snapshots: {many} reads against {few} with 4");
        }
    }
}
