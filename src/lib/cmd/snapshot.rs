//! Snapshots of a tree: take one, destroy one, rename one, roll the tree back to one,
//! list them with what each alone keeps.

use crate::error::Result;
use crate::pool::{Pool, guid_hex};
use crate::utc::format_time_ns;
use serde::Serialize;

/// A snapshot taken and committed.
pub struct Taken {
    pub name: String,
    pub txg: u64,
}

/// Takes snapshot `name` of `tree` and commits it.
pub fn snapshot(pool: &mut Pool, tree: u64, name: &str) -> Result<Taken> {
    pool.create_snapshot(tree, name)?;
    let summary = pool.commit()?;
    Ok(Taken { name: name.to_string(), txg: summary.txg.map_or(0, |t| t.0) })
}

/// A snapshot destroyed and committed.
pub struct Destroyed {
    pub name: String,
    /// What the commit freed: blocks only the snapshot kept and no retained commit sees.
    pub freed_bytes: u64,
    /// When older commits are retained: all that the history alone holds now, among it
    /// the blocks the snapshot shared with them, which stay until those commits expire.
    pub history_held_bytes: Option<u64>,
}

/// Destroys snapshot `name` of `tree` and commits.
pub fn destroy(pool: &mut Pool, tree: u64, name: &str) -> Result<Destroyed> {
    pool.destroy_snapshot(tree, name)?;
    let summary = pool.commit()?;
    let held = pool.history_unique_bytes()?;
    let history_held_bytes = (pool.history()?.len() > 1).then_some(held);
    Ok(Destroyed { name: name.to_string(), freed_bytes: summary.freed_bytes, history_held_bytes })
}

/// A snapshot renamed and committed.
pub struct Renamed {
    pub old: String,
    pub new: String,
}

/// Renames snapshot `old` of `tree` to `new` and commits.
pub fn rename(pool: &mut Pool, tree: u64, old: &str, new: &str) -> Result<Renamed> {
    pool.rename_snapshot(tree, old, new)?;
    pool.commit()?;
    Ok(Renamed { old: old.to_string(), new: new.to_string() })
}

/// A tree rolled back and committed.
pub struct RolledBack {
    pub name: String,
    pub txg: u64,
    /// The snapshots taken after it, destroyed by the rollback (with -r), oldest first.
    pub destroyed: Vec<String>,
    /// What the commit freed: what the tree gained since the snapshot, and what only
    /// the destroyed snapshots kept, unless retained commits still see it.
    pub freed_bytes: u64,
}

/// Makes the live tree of `tree` snapshot `name` again, destroying the snapshots taken
/// after it if `destroy_later` (else they refuse it), and commits.
pub fn rollback(pool: &mut Pool, tree: u64, name: &str, destroy_later: bool) -> Result<RolledBack> {
    let (target, destroyed) = pool.rollback_to(tree, name, destroy_later)?;
    let summary = pool.commit()?;
    Ok(RolledBack {
        name: target.name,
        txg: target.txg.0,
        destroyed: destroyed.into_iter().rev().map(|s| s.name).collect(),
        freed_bytes: summary.freed_bytes,
    })
}

/// One snapshot, as `list` shows it. The fields are in the order `snapctl list --json`
/// has always written them (alphabetical); scripts read them by these names.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    /// Creation time, UTC, as text.
    pub created: String,
    pub created_unix_ns: u64,
    pub guid: String,
    /// The tags of the holds on it, in the order they were placed.
    pub holds: Vec<String>,
    pub name: String,
    pub txg: u64,
    /// What destroying it would free now.
    pub unique_bytes: u64,
}

/// The snapshots of `tree`, oldest first.
pub fn list(pool: &mut Pool, tree: u64) -> Result<Vec<Listed>> {
    let unique = pool.snapshot_unique_bytes(tree)?;
    let listed = pool
        .snapshots_of(tree)?
        .into_iter()
        .map(|s| Listed {
            created: format_time_ns(s.time_ns),
            created_unix_ns: s.time_ns,
            guid: guid_hex(&s.guid),
            holds: s.holds.iter().map(|h| h.tag.clone()).collect(),
            name: s.name.clone(),
            txg: s.txg.0,
            unique_bytes: unique.get(&s.name).copied().unwrap_or(0),
        })
        .collect();
    Ok(listed)
}
