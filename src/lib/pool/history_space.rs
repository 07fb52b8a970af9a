//! A cap on the space the retained history holds (`snapctl set history-space=10%`):
//! besides the time window, commits expire, oldest first, while the blocks that only
//! retained commits keep (no snapshot, no head) exceed that share of the data area.
//!
//! Those bytes are counted by difference while a cap is set (the pool root's
//! `history_only_bytes`, version 5), so a commit knows them without walking the dead
//! index: a block a commit files in the dead index that no snapshot sees adds to them
//! (one lookup in the snapshot index), and a block a commit frees while no snapshot was
//! released is one of them. What moves blocks between snapshots and history at once
//! (destroying a snapshot or a tree, a snapshot of a past moment, a rollback, a promote)
//! leaves them uncounted instead, and the next commit that needs them (a cap set, and
//! more dead bytes than it allows) counts them with one pass over the dead index. So a
//! commit's cost stays flat in the history's length; `check` compares the count with
//! that pass.
//!
//! The cap is applied after the commit files what it killed, so a commit never leaves the
//! history above it, unless what is left is the newest commit or commits a reader pins.

use super::Pool;
use crate::block::{BLOCK_BYTES, BlockPtr, Txg};
use crate::error::{Error, Result};

impl Pool {
    /// Caps the history's own space at `percent` of the data area from this transaction
    /// on (0: no cap).
    pub fn set_history_space_percent(&mut self, percent: u8) -> Result<()> {
        self.writable()?;
        if percent > 100 {
            return Err(Error::invalid(format!("history-space={percent}%: a share of the device is 0% to 100%")));
        }
        if self.root.config.history_space_percent == 0 {
            // Not kept up to date while no cap was set.
            self.root.history_only_bytes = None;
        }
        self.root.config.history_space_percent = percent;
        self.config_changed = true;
        Ok(())
    }

    /// What the history alone holds: the pool root's count while a cap keeps one, else
    /// one pass over the dead index (`history_unique_bytes`).
    pub fn history_held_bytes(&mut self) -> Result<u64> {
        match self.root.history_only_bytes.filter(|_| self.root.config.history_space_percent != 0) {
            Some(bytes) => Ok(bytes),
            None => self.history_unique_bytes(),
        }
    }

    /// The bytes the cap allows, if one is set.
    pub fn history_space_cap_bytes(&self) -> Option<u64> {
        let percent = self.root.config.history_space_percent as u64;
        (percent != 0).then(|| self.store.alloc.usable_blocks() * BLOCK_BYTES * percent / 100)
    }

    /// The count is no longer exact: blocks moved between snapshots and history.
    pub(super) fn history_count_lost(&mut self) {
        self.root.history_only_bytes = None;
    }

    /// At commit, before expiry: what this transaction did that moves blocks between
    /// snapshots and the history.
    pub(super) fn note_moves_between_snapshots_and_history(&mut self) {
        let moved = !self.released_snapshots.is_empty()
            || !self.destroyed_trees.is_empty()
            || self.pending_snapshots.iter().any(|p| p.at.is_some());
        if moved || self.root.config.history_space_percent == 0 {
            self.history_count_lost();
        }
    }

    /// A block of `tree` born at `ptr.birth` and killed in `death` was filed in the dead
    /// index: if no snapshot sees it, only the history keeps it.
    pub(super) fn count_filed_dead_block(&mut self, tree: u64, death: Txg, ptr: &BlockPtr) -> Result<()> {
        let Some(bytes) = self.root.history_only_bytes else { return Ok(()) };
        if self.first_snapshot_txg_in(tree, ptr.birth.0..=death.0 - 1)?.is_none() {
            self.root.history_only_bytes = Some(bytes + ptr.footprint_blocks() * BLOCK_BYTES);
        }
        Ok(())
    }

    /// A dead block was freed when a retained commit went. While counted, no snapshot was
    /// released in this transaction (that loses the count), so it was the history's alone.
    pub(super) fn count_freed_history_block(&mut self, ptr: &BlockPtr) -> Result<()> {
        let Some(bytes) = self.root.history_only_bytes else { return Ok(()) };
        let left = bytes.checked_sub(ptr.footprint_blocks() * BLOCK_BYTES).ok_or_else(|| {
            Error::corrupt("the pool root counts fewer bytes held by the history alone than it frees")
        })?;
        self.root.history_only_bytes = Some(left);
        Ok(())
    }

    /// At commit: drops the oldest retained commits (never `txg`, the one being made,
    /// nor a pinned one) while the history alone holds more than the cap allows.
    pub(super) fn enforce_history_space(&mut self, txg: Txg) -> Result<()> {
        let Some(cap) = self.history_space_cap_bytes() else { return Ok(()) };
        // What only the history holds is part of the dead index: under the cap then.
        if self.root.dead_bytes <= cap {
            return Ok(());
        }
        let mut from = Some(0);
        while let Some(at) = from {
            let held = match self.root.history_only_bytes {
                Some(bytes) => bytes,
                None => {
                    let bytes = self.history_unique_bytes()?;
                    self.root.history_only_bytes = Some(bytes);
                    bytes
                }
            };
            if held <= cap {
                break;
            }
            from = self.release_oldest_from(at, txg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::SimClock;
    use crate::device::CrashDevice;
    use crate::fs::inode::{Inode, ROOT_INO};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool_with_clock};
    use std::sync::{Arc, Mutex};

    use crate::fuzzing::Steps;

    fn write(pool: &mut Pool, tree: u64, name: &str, bytes: usize, seed: u64) {
        let mut fs = pool.live(tree).unwrap();
        let ino = match fs.lookup(ROOT_INO, name.as_bytes()).unwrap() {
            Some(e) => e.ino,
            None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Default::default())).unwrap(),
        };
        let mut state = seed | 1;
        let data: Vec<u8> = (0..bytes)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        fs.write_at(ino, 0, &data).unwrap();
    }

    #[test]
    fn the_history_never_holds_more_than_its_cap_and_its_count_stays_exact() {
        // Goal: under a cap, every commit leaves what the history alone holds at or under
        // it (or only the newest commit retained), whatever moves blocks between
        // snapshots and history (snapshots taken, of past moments too, and destroyed;
        // rollbacks; clones made and destroyed); the pool root's count, whenever it has
        // one, is what a pass over the dead index finds (`check` compares them), and is
        // kept by difference through most commits. Method: random operations, `check`
        // after each commit.
        for seed in 0..4 {
            let clock = Arc::new(SimClock::ticking(seed, 1_000_000));
            let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
            // No free-space reserve: the cap alone trims the history.
            let mut options = FormatOptions::default();
            options.config.history_reserve_percent = 0;
            let mut pool = format_pool_with_clock(Box::new(device.clone()), &options, clock).unwrap();
            pool.set_history_space_percent(10).unwrap();
            pool.commit().unwrap();
            let cap = pool.history_space_cap_bytes().unwrap();
            let mut steps = Steps(seed);
            let (mut counted, mut trimmed, mut snapshots) = (0, 0, Vec::<String>::new());
            for round in 0..120u64 {
                let history_before = pool.history().unwrap().len();
                let counted_before = pool.root.history_only_bytes.is_some();
                match steps.next(14) {
                    0..=6 => {
                        let name = format!("f{}", steps.next(6));
                        write(&mut pool, LIVE_TREE_ID, &name, 200_000 + steps.next(500_000) as usize, round);
                    }
                    7 => {
                        let name = format!("s{round}");
                        pool.create_snapshot(LIVE_TREE_ID, &name).unwrap();
                        snapshots.push(name);
                    }
                    8 | 12 | 13 if !snapshots.is_empty() => {
                        let name = snapshots.remove(steps.next(snapshots.len() as u64) as usize);
                        pool.destroy_snapshot(LIVE_TREE_ID, &name).unwrap();
                    }
                    9 => {
                        let history: Vec<_> = pool.history().unwrap();
                        let (txg, _) = history[steps.next(history.len() as u64) as usize];
                        let name = format!("past{round}");
                        pool.create_snapshot_at(LIVE_TREE_ID, &name, txg).unwrap();
                        snapshots.push(name);
                    }
                    10 if !snapshots.is_empty() => {
                        let newest = pool.snapshots_of(LIVE_TREE_ID).unwrap().last().unwrap().name.clone();
                        pool.rollback_to(LIVE_TREE_ID, &newest, false).unwrap();
                    }
                    11 if !snapshots.is_empty() => {
                        pool.create_clone(LIVE_TREE_ID, &snapshots[0], "c").unwrap();
                        pool.commit().unwrap();
                        let clone = pool.tree_id("c").unwrap();
                        write(&mut pool, clone, "cf", 200_000, round);
                        pool.commit().unwrap();
                        pool.destroy_clone("c").unwrap();
                    }
                    _ => write(&mut pool, LIVE_TREE_ID, "f0", 50_000, round),
                }
                pool.commit().unwrap();
                let held = pool.history_unique_bytes().unwrap();
                let retained = pool.history().unwrap().len();
                assert!(held <= cap || retained == 1, "seed {seed}, round {round}: {held} held, cap {cap}");
                counted += usize::from(counted_before && pool.root.history_only_bytes.is_some());
                trimmed += usize::from(retained < history_before);
                let report = crate::check::check_pool(&mut pool).unwrap();
                assert!(report.problems.is_empty(), "seed {seed}, round {round}: {:?}", report.problems);
            }
            assert!(counted > 20, "seed {seed}: only {counted} of 120 commits kept the count by difference");
            assert!(trimmed > 3, "seed {seed}: the cap trimmed the history only {trimmed} times");
            drop(pool);
            let mut pool = Pool::open(Box::new(device), crate::device::OpenMode::Read).unwrap();
            let report = crate::check::check_pool(&mut pool).unwrap();
            assert!(report.problems.is_empty(), "seed {seed}: {:?}", report.problems);
        }
    }
}
