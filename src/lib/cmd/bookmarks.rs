//! Bookmarks: make one from a snapshot, list, rename and destroy them (pool/bookmarks.rs).
//! An incremental stream may start from one (stream/ranges.rs).

use crate::error::Result;
use crate::format::tables::BookmarkEntry;
use crate::pool::{Pool, guid_hex};
use crate::utc::format_time_ns;
use serde::Serialize;

/// One bookmark, as `list --bookmarks` shows it (keys in alphabetical order).
#[derive(Clone, Debug, Serialize)]
pub struct ListedBookmark {
    /// When the bookmark was made, UTC, as text.
    pub created: String,
    pub created_unix_ns: u64,
    /// The guid of the snapshot it was made from: a receiver's copy of that snapshot has
    /// it too.
    pub guid: String,
    pub name: String,
    /// The snapshot it was made from, by its name then, and when that was taken.
    pub snapshot: String,
    pub snapshot_created_unix_ns: u64,
    pub tree: String,
    pub txg: u64,
}

fn listed(pool: &mut Pool, b: BookmarkEntry) -> Result<ListedBookmark> {
    Ok(ListedBookmark {
        created: format_time_ns(b.created_ns),
        created_unix_ns: b.created_ns,
        guid: guid_hex(&b.guid),
        name: b.name,
        snapshot: b.snapshot_name,
        snapshot_created_unix_ns: b.snapshot_time_ns,
        tree: pool.tree_name(b.tree)?,
        txg: b.txg.0,
    })
}

/// Makes bookmark `name` of snapshot `snapshot` of `tree`, and commits.
pub fn bookmark(pool: &mut Pool, tree: u64, snapshot: &str, name: &str) -> Result<ListedBookmark> {
    let entry = pool.create_bookmark(tree, snapshot, name)?;
    pool.commit()?;
    listed(pool, entry)
}

/// Every bookmark on the pool, by tree, oldest first.
pub fn list(pool: &mut Pool) -> Result<Vec<ListedBookmark>> {
    pool.all_bookmarks()?.into_iter().map(|b| listed(&mut *pool, b)).collect()
}

pub fn destroy(pool: &mut Pool, tree: u64, name: &str) -> Result<ListedBookmark> {
    let entry = pool.destroy_bookmark(tree, name)?;
    pool.commit()?;
    listed(pool, entry)
}

pub fn rename(pool: &mut Pool, tree: u64, old: &str, new: &str) -> Result<ListedBookmark> {
    let entry = pool.rename_bookmark(tree, old, new)?;
    pool.commit()?;
    listed(pool, entry)
}
