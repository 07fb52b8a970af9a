//! `snapctl diff`: what changed from a snapshot to a later one, or to the live tree.

use crate::error::Result;
use crate::fs::FileType;
use crate::fs::path_diff::{PathChange, diff_trees};
use crate::pool::Pool;
use crate::utc::format_time_ns;
use serde::Serialize;

/// One changed path, as `diff --json` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct ChangedPath {
    /// `+`, `-`, `M` or `R`, as `zfs diff` marks them.
    pub change: String,
    /// Change time of the inode, UTC, as text.
    pub ctime: String,
    pub ctime_unix_ns: u64,
    /// Where a renamed path is now; null for the other changes.
    pub new_path: Option<String>,
    pub path: String,
    /// `file`, `directory`, `symlink` or `special`.
    #[serde(rename = "type")]
    pub file_type: String,
}

/// The changes from snapshot `from` of `tree` to snapshot `to`, or to the live tree as
/// last committed, sorted by path.
pub fn diff(pool: &mut Pool, tree: u64, from: &str, to: Option<&str>) -> Result<Vec<ChangedPath>> {
    let old = pool.snapshot(tree, from)?;
    Pool::refuse_if_extracting(&old, "a diff")?;
    let (new, new_txg) = match to {
        Some(name) => {
            let snapshot = pool.snapshot(tree, name)?;
            Pool::refuse_if_extracting(&snapshot, "a diff")?;
            (snapshot.root, snapshot.txg)
        }
        None => (pool.committed_head_root(tree)?, pool.txg()),
    };
    pool.pin_for_reading(&[(tree, old.txg), (tree, new_txg)])?;
    let old = old.root;
    Ok(diff_trees(&mut pool.store, tree, old, new)?.into_iter().map(changed).collect())
}

fn changed(c: PathChange) -> ChangedPath {
    // Before the epoch counts as the epoch: a diff line needs no negative times.
    let ns =
        u64::try_from(c.ctime.sec).map_or(0, |s| s.saturating_mul(1_000_000_000).saturating_add(c.ctime.nsec as u64));
    ChangedPath {
        change: c.kind.marker().to_string(),
        ctime: format_time_ns(ns),
        ctime_unix_ns: ns,
        new_path: c.new_path,
        path: c.path,
        file_type: match c.file_type {
            FileType::Regular => "file",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::Special => "special",
        }
        .to_string(),
    }
}
