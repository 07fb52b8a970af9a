//! The retained commits, and each tree's root as of each of them, read from the history
//! table as each question needs them.
//!
//! An open does not load the history: a commit asks only for the oldest entries (to
//! expire them), the first one at or after a txg (is a killed block still visible
//! somewhere? which checkpoint follows a released one?) and inserts itself, each one
//! descent of the table. So a commit costs the same with 10 commits retained as with
//! 10,000; only what lists them all (`history`, `check`, `status`) reads them all.
//!
//! Entries are in txg order and so in time order: a commit's time is never less than
//! the previous one's (commit.rs), so expired entries are always the oldest ones.
//!
//! Since format version 11 the table is keyed (tree, txg) (format/tables.rs): a commit
//! records its own entry (tree 0) and the root of each tree it changed, so it writes
//! what it changed however many trees the pool has. A tree's root at retained commit c
//! is its entry with the greatest txg at or below c. Dropping a commit removes the
//! roots that no retained commit takes any more: its own, unless it is the tree's latest
//! or a retained commit after it (and before the tree's next root) still takes it; and
//! the root before it, unless a retained commit from there up to it does. So besides the roots of the
//! retained commits that changed it, a tree keeps at most the one it had when the
//! oldest retained commit was made (fewer writes than one root per tree per commit,
//! and one lookup to find any).
//!
//! A pool from before version 11 has one entry per commit, keyed by its txg, with every
//! tree's root. It is read as such until the first change to its history, which
//! rewrites the table in the new form and sets the feature (`convert_history`).

use super::Pool;
use crate::block::{BlockPtr, Txg};
use crate::error::{Error, Result};
use crate::format::label::{FEATURE_HISTORY_BY_TREE, FEATURE_HISTORY_COUNTS};
use crate::format::tables::{
    HISTORY_COMMITS, HISTORY_TREES_PER_COMMIT_MAX, HistoryCommit, HistoryEntry, HistoryRoot, decode_history_key,
    history_key,
};
use std::collections::BTreeMap;

/// Retained commits a search for a moment looks at on each side of where the times
/// point (`retained_commit_at`).
const GUESS_WINDOW: u64 = 64;

/// A root that retained commits hold: the tree's root as of `first`, the oldest
/// retained commit that takes it (`check` and `scrub` walk each one once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedRoot {
    pub first: Txg,
    pub tree: u64,
    pub root: BlockPtr,
    /// What the history recorded as its `referenced_bytes` (None: recorded before
    /// version 15, or on a pool without space counters).
    pub referenced_bytes: Option<u64>,
}

impl Pool {
    /// The history table is keyed by tree: the label says so, or this transaction
    /// rewrote it (its commit sets the bit).
    fn history_by_tree(&self) -> bool {
        (self.label.features_incompat | self.store.features_needed) & FEATURE_HISTORY_BY_TREE != 0
    }

    /// Retained commits, oldest first, with their times. Reads every commit's entry.
    pub fn history(&mut self) -> Result<Vec<(Txg, u64)>> {
        let mut out = Vec::new();
        if !self.history_by_tree() {
            for (k, v) in self.history_table.scan_prefix(&mut self.store, &[])? {
                let entry = HistoryEntry::decode(&k, &v)?;
                out.push((entry.txg, entry.time_ns));
            }
            return Ok(out);
        }
        for (k, v) in self.history_table.scan_prefix(&mut self.store, &HISTORY_COMMITS.to_be_bytes())? {
            let commit = HistoryCommit::decode(&k, &v)?;
            out.push((commit.txg, commit.time_ns));
        }
        Ok(out)
    }

    /// Whether the history retains a commit older than the last one: one lookup.
    pub fn retains_older_commits(&mut self) -> Result<bool> {
        Ok(self.history_from(0)?.is_some_and(|(oldest, _)| oldest < self.commit.txg.0))
    }

    /// The time of retained commit `txg`.
    pub fn commit_time(&mut self, txg: Txg) -> Result<u64> {
        match self.history_from(txg.0)? {
            Some((found, time)) if found == txg.0 => Ok(time),
            _ => Err(Error::not_found(format!("retained commit {}", txg.0))),
        }
    }

    /// The oldest retained commit at or after `txg`: (txg, time).
    pub(super) fn history_from(&mut self, txg: u64) -> Result<Option<(u64, u64)>> {
        let mut found = None;
        self.scan_history_from(txg, &mut |commit, time| {
            found = Some((commit, time));
            false
        })?;
        Ok(found)
    }

    /// Shows `visit` the retained commits from `txg` on, oldest first, (txg, time), for
    /// as long as it says go on.
    fn scan_history_from(&mut self, txg: u64, visit: &mut dyn FnMut(u64, u64) -> bool) -> Result<()> {
        let by_tree = self.history_by_tree();
        let start = if by_tree { history_key(HISTORY_COMMITS, Txg(txg)) } else { HistoryEntry::key(Txg(txg)) };
        self.history_table.scan(&mut self.store, &start, &mut |k, v| {
            if !by_tree {
                let entry = HistoryEntry::decode(k, v)?;
                return Ok(visit(entry.txg.0, entry.time_ns));
            }
            // Past the last commit the scan lands on the first tree's roots.
            if decode_history_key(k)?.0 != HISTORY_COMMITS {
                return Ok(false);
            }
            let commit = HistoryCommit::decode(k, v)?;
            Ok(visit(commit.txg.0, commit.time_ns))
        })
    }

    /// The newest retained commit made at or before `time_ns`, (txg, time); None if the
    /// oldest retained commit is younger. Times never decrease with txgs (commit.rs).
    ///
    /// Commits mostly come at a steady pace (a mount's every few seconds, cron's every
    /// hour), so the txg the times at both ends of the history point to is near the
    /// moment, and one scan of the entries around it (a leaf, or two) finds its commit.
    /// Where the pace was not steady, a binary search over txgs goes on from what that
    /// scan learnt, one lookup a step (about 17 at 100,000 retained commits); none reads
    /// the history whole.
    pub fn retained_commit_at(&mut self, time_ns: u64) -> Result<Option<(Txg, u64)>> {
        let Some(oldest) = self.history_from(0)? else { return Ok(None) };
        if oldest.1 > time_ns {
            return Ok(None);
        }
        // `best` is at or before the moment and `lo` its txg; every retained commit from
        // `hi` on is after it.
        let (mut best, mut lo, mut hi) = (oldest, oldest.0, self.commit.txg.0.saturating_add(1));
        let newest = self.commit.time_ns;
        if newest > oldest.1 && hi - lo > 1 {
            let share =
                u128::from(time_ns.min(newest) - oldest.1) * u128::from(hi - 1 - lo) / u128::from(newest - oldest.1);
            let from = (lo + share as u64).saturating_sub(GUESS_WINDOW).max(lo);
            let (mut seen, mut before, mut after, mut stopped) = (0, None, false, false);
            self.scan_history_from(from, &mut |txg, time| {
                seen += 1;
                after = time > time_ns;
                if !after {
                    before = Some((txg, time));
                }
                stopped = after || seen >= 2 * GUESS_WINDOW;
                !stopped
            })?;
            match before {
                // The last one at or before it, and the next one after it (or none).
                Some(found) if after || !stopped => return Ok(Some((Txg(found.0), found.1))),
                Some(found) => (best, lo) = (found, found.0),
                None => hi = from,
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match self.history_from(mid)? {
                Some((txg, time)) if time <= time_ns && txg < hi => (best, lo) = ((txg, time), txg),
                _ => hi = mid,
            }
        }
        Ok(Some((Txg(best.0), best.1)))
    }

    /// The oldest retained commit, (txg, time).
    pub fn oldest_retained(&mut self) -> Result<Option<(Txg, u64)>> {
        Ok(self.history_from(0)?.map(|(txg, time)| (Txg(txg), time)))
    }

    /// True if a commit is retained in [from, to).
    fn retained_in(&mut self, from: u64, to: u64) -> Result<bool> {
        Ok(self.history_from(from)?.is_some_and(|(t, _)| t < to))
    }

    /// True if commit `txg` is retained.
    pub(super) fn history_contains(&mut self, txg: u64) -> Result<bool> {
        let key =
            if self.history_by_tree() { history_key(HISTORY_COMMITS, Txg(txg)) } else { HistoryEntry::key(Txg(txg)) };
        Ok(self.history_table.get(&mut self.store, &key)?.is_some())
    }

    /// Records commit `txg` with the roots of the trees it changed (and of those a
    /// rollback asked to record again).
    pub(super) fn record_history(&mut self, txg: Txg, now: u64) -> Result<()> {
        self.convert_history()?;
        let trees: Vec<u64> = std::mem::take(&mut self.history_changed).into_iter().collect();
        if trees.len() > HISTORY_TREES_PER_COMMIT_MAX {
            return Err(Error::invalid(format!(
                "one commit can record at most {HISTORY_TREES_PER_COMMIT_MAX} changed trees in the history, not {}",
                trees.len()
            )));
        }
        let counted = self.has_space_counters();
        for &tree in &trees {
            let entry = self.tree_entry(tree)?;
            let (root, bytes) = (entry.and_then(|e| e.root), entry.map_or(0, |e| e.referenced_bytes));
            let referenced_bytes = counted.then_some(bytes);
            let value = HistoryRoot { tree, txg, root, referenced_bytes }.encode_value();
            self.history_table.insert(&mut self.store, &history_key(tree, txg), &value)?;
        }
        if counted && !trees.is_empty() {
            self.store.features_needed |= FEATURE_HISTORY_COUNTS;
        }
        let commit = HistoryCommit { txg, time_ns: now, trees };
        self.history_table.insert(&mut self.store, &history_key(HISTORY_COMMITS, txg), &commit.encode_value())?;
        Ok(())
    }

    /// Drops retained commit `txg` (its blocks are released at commit, retention.rs).
    pub(super) fn history_drop(&mut self, txg: u64) -> Result<()> {
        self.convert_history()?;
        let key = history_key(HISTORY_COMMITS, Txg(txg));
        let Some(value) = self.history_table.remove(&mut self.store, &key)? else { return Ok(()) };
        self.released_history.push(txg);
        for tree in HistoryCommit::decode(&key, &value)?.trees {
            self.forget_roots(tree, txg)?;
        }
        Ok(())
    }

    /// With commit `txg` gone, removes `tree`'s roots that no retained commit takes: the
    /// one recorded at `txg`, and the one before it.
    fn forget_roots(&mut self, tree: u64, txg: u64) -> Result<()> {
        let key = history_key(tree, Txg(txg));
        let before = match self.history_table.last_below(&mut self.store, &key)? {
            Some((k, _)) if decode_history_key(&k)?.0 == tree => Some(decode_history_key(&k)?.1.0),
            _ => None,
        };
        let mut before_kept = false;
        if let Some(before) = before {
            before_kept = self.retained_in(before, txg)?;
            if !before_kept {
                self.history_table.remove(&mut self.store, &history_key(tree, Txg(before)))?;
            }
        }
        let mut next = u64::MAX;
        self.history_table.scan(&mut self.store, &history_key(tree, Txg(txg.saturating_add(1))), &mut |k, _| {
            let (t, at) = decode_history_key(k)?;
            if t == tree {
                next = at.0;
            }
            Ok(false)
        })?;
        let Some(value) = self.history_table.get(&mut self.store, &key)? else { return Ok(()) };
        let root = HistoryRoot::decode(&key, &value)?.root;
        // A tree absent here and before has nothing to remember. A tree's latest root
        // stays: it is its root at every later commit, the one being built included
        // (a rollback drops the newest commits before its own is recorded).
        let absent_throughout = root.is_none() && !before_kept;
        let latest = next == u64::MAX;
        if absent_throughout || (!latest && !self.retained_in(txg + 1, next)?) {
            self.history_table.remove(&mut self.store, &key)?;
        }
        Ok(())
    }

    /// Removes every root of `tree` from the history (a destroyed clone): no retained
    /// commit reaches its blocks any more.
    pub(super) fn forget_tree_history(&mut self, tree: u64) -> Result<()> {
        self.convert_history()?;
        for (k, _) in self.history_table.scan_prefix(&mut self.store, &tree.to_be_bytes())? {
            self.history_table.remove(&mut self.store, &k)?;
        }
        Ok(())
    }

    /// Drops every retained commit after `floor` (a rollback: they saw a branch that no
    /// longer leads to the head). Each tree keeps its latest root (forget_roots), which is
    /// its head unless this transaction changed it, and then its commit records the new.
    pub(super) fn history_drop_after(&mut self, floor: u64) -> Result<()> {
        self.convert_history()?;
        let Some(from) = floor.checked_add(1) else { return Ok(()) };
        let mut after = Vec::new();
        self.history_table.scan(&mut self.store, &history_key(HISTORY_COMMITS, Txg(from)), &mut |k, v| {
            if decode_history_key(k)?.0 != HISTORY_COMMITS {
                return Ok(false);
            }
            after.push(HistoryCommit::decode(k, v)?);
            Ok(true)
        })?;
        for commit in after.into_iter().rev() {
            self.history_drop(commit.txg.0)?;
        }
        Ok(())
    }

    /// The root of `tree` as of retained commit `txg` (None: the tree was empty or did
    /// not exist): one lookup.
    pub fn history_root(&mut self, tree: u64, txg: Txg) -> Result<Option<BlockPtr>> {
        Ok(self.history_root_counted(tree, txg)?.0)
    }

    /// The root of `tree` as of retained commit `txg`, with the `referenced_bytes` the
    /// history recorded for it (None if it recorded none: an entry from before version
    /// 15). One lookup.
    pub fn history_root_counted(&mut self, tree: u64, txg: Txg) -> Result<(Option<BlockPtr>, Option<u64>)> {
        if !self.history_by_tree() {
            let Some(value) = self.history_table.get(&mut self.store, &HistoryEntry::key(txg))? else {
                return Err(Error::not_found(format!("retained commit {}", txg.0)));
            };
            let entry = HistoryEntry::decode(&HistoryEntry::key(txg), &value)?;
            let root = entry.roots.into_iter().find(|(t, _)| *t == tree).and_then(|(_, root)| root);
            return Ok((root, None));
        }
        if !self.history_contains(txg.0)? {
            return Err(Error::not_found(format!("retained commit {}", txg.0)));
        }
        let bound = history_key(tree, Txg(txg.0.saturating_add(1)));
        match self.history_table.last_below(&mut self.store, &bound)? {
            Some((k, v)) if decode_history_key(&k)?.0 == tree => {
                let entry = HistoryRoot::decode(&k, &v)?;
                // A tree absent then counts nothing, whatever the entry's form.
                Ok((entry.root, if entry.root.is_none() { Some(0) } else { entry.referenced_bytes }))
            }
            _ => Ok((None, Some(0))),
        }
    }

    /// The roots retained commits hold, each once, with the oldest commit that takes it.
    pub fn retained_roots(&mut self) -> Result<Vec<RetainedRoot>> {
        let commits: Vec<u64> = self.history()?.into_iter().map(|(t, _)| t.0).collect();
        let mut roots = Vec::new();
        if !self.history_by_tree() {
            let mut last: BTreeMap<u64, Option<BlockPtr>> = BTreeMap::new();
            for txg in commits {
                let value = self.history_table.get(&mut self.store, &HistoryEntry::key(Txg(txg)))?;
                let value = value.ok_or_else(|| Error::corrupt(format!("retained commit {txg} vanished")))?;
                for (tree, root) in HistoryEntry::decode(&HistoryEntry::key(Txg(txg)), &value)?.roots {
                    if last.insert(tree, root) != Some(root)
                        && let Some(root) = root
                    {
                        roots.push(RetainedRoot { first: Txg(txg), tree, root, referenced_bytes: None });
                    }
                }
            }
            return Ok(roots);
        }
        let mut by_tree: BTreeMap<u64, Vec<HistoryRoot>> = BTreeMap::new();
        let start = history_key(HISTORY_COMMITS + 1, Txg(0));
        self.history_table.scan(&mut self.store, &start, &mut |k, v| {
            let entry = HistoryRoot::decode(k, v)?;
            by_tree.entry(entry.tree).or_default().push(entry);
            Ok(true)
        })?;
        for (tree, entries) in by_tree {
            for (i, entry) in entries.iter().enumerate() {
                let txg = entry.txg.0;
                let next = entries.get(i + 1).map_or(u64::MAX, |e| e.txg.0);
                let first = commits[commits.partition_point(|&c| c < txg)..].first().copied().filter(|&c| c < next);
                if let (Some(first), Some(root)) = (first, entry.root) {
                    let referenced_bytes = entry.referenced_bytes;
                    roots.push(RetainedRoot { first: Txg(first), tree, root, referenced_bytes });
                }
            }
        }
        roots.sort_by_key(|r| (r.first, r.tree));
        Ok(roots)
    }

    /// Rewrites the history of a pool from before version 11 in the form keyed by tree,
    /// once, before its first change.
    fn convert_history(&mut self) -> Result<()> {
        if self.history_by_tree() {
            return Ok(());
        }
        let entries = self.history_table.scan_prefix(&mut self.store, &[])?;
        let mut last: BTreeMap<u64, Option<BlockPtr>> = BTreeMap::new();
        for (k, v) in entries {
            let entry = HistoryEntry::decode(&k, &v)?;
            self.history_table.remove(&mut self.store, &k)?;
            let mut trees = Vec::new();
            for (tree, root) in entry.roots {
                if last.insert(tree, root) != Some(root) {
                    let value = HistoryRoot { tree, txg: entry.txg, root, referenced_bytes: None }.encode_value();
                    self.history_table.insert(&mut self.store, &history_key(tree, entry.txg), &value)?;
                    trees.push(tree);
                }
            }
            trees.sort_unstable();
            let commit = HistoryCommit { txg: entry.txg, time_ns: entry.time_ns, trees };
            self.history_table.insert(
                &mut self.store,
                &history_key(HISTORY_COMMITS, entry.txg),
                &commit.encode_value(),
            )?;
        }
        self.store.features_needed |= FEATURE_HISTORY_BY_TREE;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::device::{CrashDevice, OpenMode};
    use crate::format::tables::HistoryRoot;
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

    #[test]
    fn the_space_log_every_open_reads_stays_a_few_blocks_long() {
        // Goal: however many commits a pool has seen, an open replays at most a few log
        // blocks past the condensed base (2 x base + 4 + the block being added). Method:
        // 400 commits that each take a snapshot and rewrite a file, the log's length
        // after each; fails with the earlier slack of 16.
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let mut pool = format_pool(Box::new(device.clone()), &FormatOptions::default()).unwrap();
        let mut longest = 0;
        for i in 0..400 {
            let mut fs = pool.live(LIVE_TREE_ID).unwrap();
            let name = format!("f{}", i % 50);
            let ino = match fs.lookup(crate::fs::ROOT_INO, name.as_bytes()).unwrap() {
                Some(e) => e.ino,
                None => fs
                    .create(crate::fs::ROOT_INO, name.as_bytes(), crate::fs::Inode::new(0o100644, Default::default()))
                    .unwrap(),
            };
            fs.write_at(ino, 0, &vec![i as u8; 9000]).unwrap();
            pool.create_snapshot(LIVE_TREE_ID, &format!("snapshot-{i}")).unwrap();
            pool.commit().unwrap();
            let excess = pool.root.space_log_blocks.saturating_sub(2 * pool.root.space_base_blocks);
            longest = longest.max(excess);
        }
        assert!(longest <= 5, "the log grew {longest} blocks past twice its base");
        assert!(longest >= 3, "the test never made the log grow ({longest}): it proves nothing");
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

    use crate::fuzzing::Steps;

    fn head(pool: &mut Pool) -> Option<crate::block::BlockPtr> {
        pool.committed_head_root(LIVE_TREE_ID).unwrap()
    }

    fn root_keys(pool: &mut Pool) -> usize {
        let prefix = LIVE_TREE_ID.to_be_bytes();
        pool.history_table.scan_prefix(&mut pool.store, &prefix).unwrap().len()
    }

    /// Every retained commit finds the root the model saw at it, and the retained roots
    /// are exactly the model's, each with the first commit that had it.
    fn assert_roots(pool: &mut Pool, model: &std::collections::BTreeMap<u64, Option<crate::block::BlockPtr>>) {
        for (&txg, &root) in model {
            assert_eq!(pool.history_root(LIVE_TREE_ID, crate::block::Txg(txg)).unwrap(), root, "at commit {txg}");
        }
        let mut expected = Vec::new();
        let mut last = None;
        for (&txg, &root) in model {
            if root != last
                && let Some(root) = root
            {
                expected.push((txg, root));
            }
            last = root;
        }
        let found: Vec<_> = pool.retained_roots().unwrap().into_iter().map(|r| (r.first.0, r.root)).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn each_retained_commit_finds_its_root_as_commits_are_dropped_in_order_and_out_of_it() {
        // Goal: a tree's root at any retained commit is the one it had then, though only
        // commits that changed it record one; dropping commits (oldest first, as expiry
        // does, or from the middle, as pins make it) never loses a root a retained commit
        // takes, and in order leaves at most one root older than the oldest commit.
        use crate::fs::inode::{Inode, ROOT_INO};
        for seed in 0..6 {
            let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
            let mut pool = format_pool(Box::new(device.clone()), &FormatOptions::default()).unwrap();
            pool.set_history_seconds(10 * 365 * 86400).unwrap();
            pool.commit().unwrap();
            let mut model: std::collections::BTreeMap<u64, Option<crate::block::BlockPtr>> =
                pool.history().unwrap().into_iter().map(|(t, _)| (t.0, None)).collect();
            for (&txg, root) in model.iter_mut() {
                *root = pool.history_root(LIVE_TREE_ID, crate::block::Txg(txg)).unwrap();
            }
            let mut steps = Steps(seed);
            let mut in_order = true;
            for round in 0..250u64 {
                let oldest = *model.keys().next().unwrap();
                let middle: Vec<u64> = model.keys().copied().skip(1).collect();
                match steps.next(10) {
                    0..=4 => {
                        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
                        let ino = fs
                            .create(ROOT_INO, format!("f{round}").as_bytes(), Inode::new(0o100644, Default::default()))
                            .unwrap();
                        fs.write_at(ino, 0, &[round as u8; 100]).unwrap();
                    }
                    5 | 6 => pool.set_history_seconds(10 * 365 * 86400 + round).unwrap(),
                    7 | 8 if model.len() > 1 => pool.history_drop(oldest).unwrap(),
                    9 if middle.len() > 1 && seed % 2 == 1 => {
                        // Not the newest: the pool's own commit always stays.
                        pool.history_drop(middle[steps.next(middle.len() as u64 - 1) as usize]).unwrap();
                        in_order = false;
                    }
                    _ => pool.set_history_seconds(10 * 365 * 86400 + round).unwrap(),
                }
                let txg = pool.commit().unwrap().txg.unwrap().0;
                model.insert(txg, head(&mut pool));
                let retained: std::collections::BTreeSet<u64> =
                    pool.history().unwrap().into_iter().map(|(t, _)| t.0).collect();
                model.retain(|t, _| retained.contains(t));
                assert_eq!(model.len(), retained.len(), "seed {seed}, round {round}");
                assert_roots(&mut pool, &model);
                if in_order {
                    let changed = model.iter().zip(model.iter().skip(1)).filter(|((_, a), (_, b))| a != b).count() + 1;
                    assert!(
                        root_keys(&mut pool) <= changed + 1,
                        "seed {seed}, round {round}: {} keys",
                        root_keys(&mut pool)
                    );
                }
            }
            drop(pool);
            let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Read).unwrap();
            assert_roots(&mut pool, &model);
            let report = crate::check::check_pool(&mut pool).unwrap();
            assert!(report.problems.is_empty(), "seed {seed}: {:?}", report.problems);
        }
    }

    #[test]
    fn a_history_from_before_version_11_is_read_and_then_rewritten_by_tree() {
        // Goal: a pool whose history holds one entry per commit with every root (as
        // versions 1-10 wrote it) is read as such; its first commit rewrites it keyed by
        // tree, finds the same roots, and sets the feature. Method: make such a table
        // from a pool's own history.
        use crate::format::label::FEATURE_HISTORY_BY_TREE;
        use crate::format::tables::HistoryEntry;
        let device = pool_with_history(30, true);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        let history = pool.history().unwrap();
        let mut model = std::collections::BTreeMap::new();
        for &(txg, _) in &history {
            model.insert(txg.0, pool.history_root(LIVE_TREE_ID, txg).unwrap());
        }
        for (k, _) in pool.history_table.scan_prefix(&mut pool.store, &[]).unwrap() {
            pool.history_table.remove(&mut pool.store, &k).unwrap();
        }
        for &(txg, time_ns) in &history {
            let entry = HistoryEntry { txg, time_ns, roots: vec![(LIVE_TREE_ID, model[&txg.0])] };
            pool.history_table.insert(&mut pool.store, &HistoryEntry::key(txg), &entry.encode_value()).unwrap();
        }
        pool.label.features_incompat &= !FEATURE_HISTORY_BY_TREE;
        assert_eq!(pool.history().unwrap(), history);
        assert_roots(&mut pool, &model);
        pool.set_history_seconds(86400).unwrap();
        let txg = pool.commit().unwrap().txg.unwrap();
        model.insert(txg.0, head(&mut pool));
        assert!(pool.history_by_tree() && pool.label.features_incompat & FEATURE_HISTORY_BY_TREE != 0);
        assert_roots(&mut pool, &model);
        assert_eq!(root_keys(&mut pool), 1, "snapshots leave the tree as it was: one root for every commit");
        drop(pool);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Read).unwrap();
        assert_roots(&mut pool, &model);
        let report = crate::check::check_pool(&mut pool).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn the_commit_at_a_moment_is_the_newest_retained_one_made_at_or_before_it() {
        // Goal: the binary search over txgs finds what a scan of the history would, with
        // commits sharing a time, gaps in time, and retained commits missing from the
        // middle (dropped as pins make it). Method: compare with a scan at every commit's
        // time, just before and after it, before the oldest and after the newest.
        use crate::clock::SimClock;
        for seed in 0..4 {
            let clock = Arc::new(SimClock::new(seed));
            let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
            let mut pool =
                crate::pool::format_pool_with_clock(Box::new(device), &FormatOptions::default(), clock.clone())
                    .unwrap();
            let mut steps = Steps(seed);
            for round in 0..300u64 {
                match steps.next(4) {
                    0 => {}
                    1 => clock.advance_ns(1),
                    _ => clock.advance_seconds(steps.next(1000)),
                }
                pool.set_history_seconds(10 * 365 * 86400 + round).unwrap();
                if seed % 2 == 1 && round % 7 == 3 {
                    let middle: Vec<u64> = pool.history().unwrap().iter().map(|(t, _)| t.0).skip(1).collect();
                    if middle.len() > 2 {
                        pool.history_drop(middle[steps.next(middle.len() as u64 - 1) as usize]).unwrap();
                    }
                }
                pool.commit().unwrap();
            }
            let history = pool.history().unwrap();
            let scan = |moment: u64| history.iter().rev().find(|(_, time)| *time <= moment).copied();
            let mut moments = vec![0, u64::MAX];
            for &(_, time) in &history {
                moments.extend([time - 1, time, time + 1]);
            }
            for moment in moments {
                assert_eq!(pool.retained_commit_at(moment).unwrap(), scan(moment), "seed {seed}, moment {moment}");
            }
        }
    }

    #[test]
    fn a_moment_of_a_steady_history_is_found_in_a_leaf_or_two() {
        // Goal: with commits at a steady pace, finding the commit of a moment reads a
        // few nodes of the history table however long the history is: the txg the times
        // point to is next to it. A binary search read a leaf a step (17 steps at
        // 100,000 commits), the one cost of `snapshot --at` that grew with the history.
        use crate::clock::SimClock;
        let clock = Arc::new(SimClock::new(7));
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 128 << 20])), None);
        let mut pool =
            crate::pool::format_pool_with_clock(Box::new(device.clone()), &FormatOptions::default(), clock.clone())
                .unwrap();
        for round in 0..3000 {
            clock.advance_seconds(2);
            pool.set_history_seconds(10 * 365 * 86400 + round).unwrap();
            pool.commit().unwrap();
        }
        let history = pool.history().unwrap();
        assert!(history.len() >= 3000, "{} commits retained", history.len());
        drop(pool);
        for i in [1, 700, 1500, history.len() - 2] {
            let mut pool = Pool::open(Box::new(device.clone()), crate::device::OpenMode::Read).unwrap();
            let before = pool.store.nodes_loaded;
            let (txg, time) = history[i];
            assert_eq!(pool.retained_commit_at(time + 1).unwrap(), Some((txg, time)));
            let loaded = pool.store.nodes_loaded - before;
            assert!(loaded <= 4, "{loaded} nodes of the history table read to find commit {i}");
        }
    }

    #[test]
    fn a_snapshot_of_a_past_moment_holds_that_tree_after_the_history_is_gone() {
        // Goal: `create_snapshot_at` holds the tree as a retained commit saw it, with the
        // space counter the history recorded (a walk agrees: `check`), and keeps its
        // blocks when the history that held them is pruned and the files are rewritten.
        use crate::fs::inode::{Inode, ROOT_INO};
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let mut pool = format_pool(Box::new(device.clone()), &FormatOptions::default()).unwrap();
        let mut contents = Vec::new();
        for round in 0..20u8 {
            let mut fs = pool.live(LIVE_TREE_ID).unwrap();
            let ino = match fs.lookup(ROOT_INO, b"f").unwrap() {
                Some(e) => e.ino,
                None => fs.create(ROOT_INO, b"f", Inode::new(0o100644, Default::default())).unwrap(),
            };
            let data = vec![round; 5000 + round as usize * 3000];
            fs.write_at(ino, 0, &data).unwrap();
            let txg = pool.commit().unwrap().txg.unwrap();
            contents.push((txg, data));
        }
        let (txg, data) = contents[7].clone();
        pool.create_snapshot_at(LIVE_TREE_ID, "then", txg).unwrap();
        pool.commit().unwrap();
        let entry = pool.snapshot(LIVE_TREE_ID, "then").unwrap();
        assert_eq!(entry.txg, txg);
        assert_eq!(Some(entry.referenced_bytes), pool.history_root_counted(LIVE_TREE_ID, txg).unwrap().1);
        pool.prune_history().unwrap();
        pool.commit().unwrap();
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        let ino = fs.lookup(ROOT_INO, b"f").unwrap().unwrap().ino;
        fs.write_at(ino, 0, &vec![0xEE; 80_000]).unwrap();
        pool.commit().unwrap();
        let (mut tree, store) = pool.view(LIVE_TREE_ID, Some("then")).unwrap();
        let read = crate::fs::FsTree::new(&mut tree, store, false).read(ino, 0, u64::MAX).unwrap();
        assert_eq!(read, data, "the snapshot of commit {} lost its data", txg.0);
        let report = crate::check::check_pool(&mut pool).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // A commit that no longer is retained, and a tree that did not exist then.
        assert!(pool.create_snapshot_at(LIVE_TREE_ID, "gone", contents[3].0).is_err());
    }

    #[test]
    fn history_roots_from_before_version_15_have_no_count_and_a_past_snapshot_counts_by_a_walk() {
        // Goal: a pool whose history roots are 72 bytes (no count) and whose label lacks
        // `history_counts` opens; a snapshot of one of its retained commits gets the
        // counter a walk gives; the next commit that records a root records its count and
        // sets the bit.
        use crate::format::label::FEATURE_HISTORY_COUNTS;
        let device = pool_with_history(0, false);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        let ino = fs.create(crate::fs::ROOT_INO, b"f", crate::fs::Inode::new(0o100644, Default::default())).unwrap();
        fs.write_at(ino, 0, &[9; 70_000]).unwrap();
        let then = pool.commit().unwrap().txg.unwrap();
        let prefix = LIVE_TREE_ID.to_be_bytes();
        for (k, v) in pool.history_table.scan_prefix(&mut pool.store, &prefix).unwrap() {
            let old = HistoryRoot { referenced_bytes: None, ..HistoryRoot::decode(&k, &v).unwrap() };
            pool.history_table.insert(&mut pool.store, &k, &old.encode_value()).unwrap();
        }
        pool.set_history_seconds(86401).unwrap();
        pool.commit().unwrap();
        let mut label = pool.label.clone();
        label.features_incompat &= !FEATURE_HISTORY_COUNTS;
        for index in [1u32, 0] {
            let block = crate::format::label::region_start(index, label.device_bytes);
            let bytes = crate::format::label::Label { index, ..label.clone() }.encode();
            pool.store.dev.write_at(block * crate::block::BLOCK_BYTES, &bytes).unwrap();
        }
        drop(pool);
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).unwrap();
        assert_eq!(pool.label.features_incompat & FEATURE_HISTORY_COUNTS, 0);
        assert_eq!(pool.history_root_counted(LIVE_TREE_ID, then).unwrap().1, None);
        pool.create_snapshot_at(LIVE_TREE_ID, "then", then).unwrap();
        pool.commit().unwrap();
        let entry = pool.snapshot(LIVE_TREE_ID, "then").unwrap();
        let walked = crate::pool::count_referenced(&mut pool.store, entry.root).unwrap();
        assert!(walked > 8192 && entry.referenced_bytes == walked, "{} against {walked}", entry.referenced_bytes);
        assert_eq!(pool.label.features_incompat & FEATURE_HISTORY_COUNTS, 0, "a snapshot records no root");
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        fs.write_at(ino, 0, &[8; 100]).unwrap();
        let txg = pool.commit().unwrap().txg.unwrap();
        assert_ne!(pool.label.features_incompat & FEATURE_HISTORY_COUNTS, 0, "the commit recorded a count");
        assert!(pool.history_root_counted(LIVE_TREE_ID, txg).unwrap().1.is_some());
        let report = crate::check::check_pool(&mut pool).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
