//! Bookmarks: what an incremental stream needs to start from a snapshot (its guid, txg
//! and name), kept after the snapshot itself is destroyed, as `zfs bookmark` keeps them.
//! A bookmark holds no blocks: the sender of an incremental from it sends every part of
//! the new snapshot's tree born after its txg (stream/ranges.rs), and the receiver
//! applies that to its own copy of the snapshot.
//!
//! That is right only while the tree still descends from the bookmarked state: a
//! rollback to before it would bring back nodes born earlier that the bookmarked
//! snapshot never held. So every rollback drops the bookmarks it goes behind
//! (`rollback_head`), and `snapctl rollback` refuses to without `-r`.

use super::Pool;
use crate::block::Txg;
use crate::error::{Error, Result};
use crate::format::label::FEATURE_BOOKMARKS;
use crate::format::tables::{BookmarkEntry, be64};

impl Pool {
    /// Makes bookmark `name` of snapshot `snapshot` of `tree`, in this transaction.
    pub fn create_bookmark(&mut self, tree: u64, snapshot: &str, name: &str) -> Result<BookmarkEntry> {
        self.writable()?;
        super::validate_snapshot_name(name)?;
        let snap = self.snapshot(tree, snapshot)?;
        // A stream from a bookmark sends what the tree changed since; the receiver's copy
        // of a subset lacks the rest of the tree.
        Pool::refuse_if_subset(&snap, "a bookmark")?;
        if self.find_bookmark(tree, name)?.is_some() {
            return Err(Error::exists(format!("bookmark #{name}")));
        }
        let entry = BookmarkEntry {
            tree,
            name: name.to_string(),
            guid: snap.guid,
            txg: snap.txg,
            snapshot_time_ns: snap.time_ns,
            snapshot_name: snap.name,
            created_ns: self.clock.now_ns(),
        };
        self.store.features_needed |= FEATURE_BOOKMARKS;
        self.put_bookmark(&entry)?;
        Ok(entry)
    }

    pub(super) fn put_bookmark(&mut self, entry: &BookmarkEntry) -> Result<()> {
        let key = BookmarkEntry::key(entry.tree, &entry.name);
        self.bookmarks_table.insert(&mut self.store, &key, &entry.encode_value())?;
        Ok(())
    }

    pub fn find_bookmark(&mut self, tree: u64, name: &str) -> Result<Option<BookmarkEntry>> {
        let key = BookmarkEntry::key(tree, name);
        match self.bookmarks_table.get(&mut self.store, &key)? {
            Some(value) => Ok(Some(BookmarkEntry::decode(&key, &value)?)),
            None => Ok(None),
        }
    }

    /// Bookmark `name` of `tree`, or an error that says it is not there.
    pub fn bookmark(&mut self, tree: u64, name: &str) -> Result<BookmarkEntry> {
        self.find_bookmark(tree, name)?.ok_or_else(|| Error::not_found(format!("bookmark #{name}")))
    }

    /// The bookmarks of `tree`, oldest first.
    pub fn bookmarks_of(&mut self, tree: u64) -> Result<Vec<BookmarkEntry>> {
        let mut found = Vec::new();
        for (k, v) in self.bookmarks_table.scan_prefix(&mut self.store, &be64(tree))? {
            found.push(BookmarkEntry::decode(&k, &v)?);
        }
        found.sort_by(|a, b| (a.txg, &a.name).cmp(&(b.txg, &b.name)));
        Ok(found)
    }

    /// Every bookmark on the pool, by tree, oldest first.
    pub fn all_bookmarks(&mut self) -> Result<Vec<BookmarkEntry>> {
        let mut found = Vec::new();
        for (k, v) in self.bookmarks_table.scan_prefix(&mut self.store, &[])? {
            found.push(BookmarkEntry::decode(&k, &v)?);
        }
        found.sort_by(|a, b| (a.tree, a.txg, &a.name).cmp(&(b.tree, b.txg, &b.name)));
        Ok(found)
    }

    /// The bookmark of `tree` made from the snapshot with `guid`, if any.
    pub fn bookmark_by_guid(&mut self, tree: u64, guid: &[u8; 16]) -> Result<Option<BookmarkEntry>> {
        Ok(self.bookmarks_of(tree)?.into_iter().find(|b| &b.guid == guid))
    }

    pub fn destroy_bookmark(&mut self, tree: u64, name: &str) -> Result<BookmarkEntry> {
        self.writable()?;
        let entry = self.bookmark(tree, name)?;
        self.bookmarks_table.remove(&mut self.store, &BookmarkEntry::key(tree, name))?;
        Ok(entry)
    }

    pub fn rename_bookmark(&mut self, tree: u64, old: &str, new: &str) -> Result<BookmarkEntry> {
        self.writable()?;
        super::validate_snapshot_name(new)?;
        let mut entry = self.bookmark(tree, old)?;
        if self.find_bookmark(tree, new)?.is_some() {
            return Err(Error::exists(format!("bookmark #{new}")));
        }
        self.bookmarks_table.remove(&mut self.store, &BookmarkEntry::key(tree, old))?;
        entry.name = new.to_string();
        self.put_bookmark(&entry)?;
        Ok(entry)
    }

    /// The bookmarks of `tree` made from snapshots after `txg`, oldest first.
    pub fn bookmarks_after(&mut self, tree: u64, txg: Txg) -> Result<Vec<BookmarkEntry>> {
        Ok(self.bookmarks_of(tree)?.into_iter().filter(|b| b.txg > txg).collect())
    }

    /// Drops the bookmarks of `tree` after `txg`: its head goes back behind them.
    pub(super) fn drop_bookmarks_after(&mut self, tree: u64, txg: Txg) -> Result<Vec<BookmarkEntry>> {
        let later = self.bookmarks_after(tree, txg)?;
        for bookmark in &later {
            self.bookmarks_table.remove(&mut self.store, &BookmarkEntry::key(tree, &bookmark.name))?;
        }
        Ok(later)
    }

    /// The first bookmark `find` gives along the line of `tree`: the tree itself, then
    /// the trees it was cloned from, newest first.
    pub fn bookmark_in_line(
        &mut self,
        tree: u64,
        find: &mut dyn FnMut(&mut Pool, u64) -> Result<Option<BookmarkEntry>>,
    ) -> Result<Option<BookmarkEntry>> {
        let mut at = Some(tree);
        // Bounded: a damaged pool could name origins in a loop.
        for _ in 0..super::trees::ORIGIN_CHAIN_MAX {
            let Some(t) = at else { break };
            if let Some(found) = find(self, t)? {
                return Ok(Some(found));
            }
            at = self.origin_of(t)?.map(|(origin, _)| origin);
        }
        Ok(None)
    }

    /// Whether the state of `tree` at txg `at` descends from `bookmark` with no rollback
    /// between: the same tree later on, or a clone (of a clone...) made from a snapshot
    /// of the bookmark's tree at or after it. Rollbacks drop the bookmarks they go behind,
    /// so a bookmark that is there is on its tree's line.
    pub fn descends_from(&mut self, tree: u64, at: Txg, bookmark: &BookmarkEntry) -> Result<bool> {
        let (mut tree, mut at) = (tree, at);
        // Bounded: a damaged pool could name origins in a loop.
        for _ in 0..super::trees::ORIGIN_CHAIN_MAX {
            if tree == bookmark.tree {
                return Ok(bookmark.txg <= at);
            }
            match self.origin_of(tree)? {
                Some((origin_tree, origin_txg)) => (tree, at) = (origin_tree, origin_txg),
                None => return Ok(false),
            }
        }
        Ok(false)
    }
}
