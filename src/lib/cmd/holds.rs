//! Holds on snapshots: place one, release one, list them (pool/holds.rs).

use crate::error::Result;
use crate::pool::Pool;
use crate::utc::format_time_ns;
use serde::Serialize;

/// One hold, as `holds` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ListedHold {
    pub snapshot: String,
    pub tag: String,
    /// When it was placed, UTC, as text.
    pub placed: String,
    pub placed_unix_ns: u64,
}

/// Places hold `tag` on snapshot `name` of `tree` and commits.
pub fn hold(pool: &mut Pool, tree: u64, name: &str, tag: &str) -> Result<()> {
    pool.hold_snapshot(tree, name, tag)?;
    pool.commit()?;
    Ok(())
}

/// Releases hold `tag` from snapshot `name` of `tree` and commits.
pub fn release(pool: &mut Pool, tree: u64, name: &str, tag: &str) -> Result<()> {
    pool.release_snapshot(tree, name, tag)?;
    pool.commit()?;
    Ok(())
}

/// The holds on snapshot `name` of `tree`, in the order they were placed.
pub fn holds(pool: &mut Pool, tree: u64, name: &str) -> Result<Vec<ListedHold>> {
    let entry = pool.snapshot(tree, name)?;
    Ok(entry
        .holds
        .into_iter()
        .map(|h| ListedHold {
            snapshot: entry.name.clone(),
            tag: h.tag,
            placed: format_time_ns(h.time_ns),
            placed_unix_ns: h.time_ns,
        })
        .collect())
}
