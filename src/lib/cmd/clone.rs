//! `clone` and the destroying of a clone: writable trees made from snapshots
//! (pool/clones.rs).

use crate::error::Result;
use crate::pool::Pool;
use serde::Serialize;

/// A clone made and committed.
#[derive(Clone, Debug, Serialize)]
pub struct Cloned {
    pub name: String,
    /// The snapshot it started as, as the command named it.
    pub origin: String,
    pub txg: u64,
}

/// Makes clone `name` of snapshot `snapshot` of `tree`, and commits.
pub fn clone(pool: &mut Pool, tree: u64, snapshot: &str, name: &str) -> Result<Cloned> {
    pool.create_clone(tree, snapshot, name)?;
    let summary = pool.commit()?;
    let origin = match pool.tree_name(tree)?.as_str() {
        crate::pool::LIVE_TREE_NAME => format!("@{snapshot}"),
        tree => format!("{tree}@{snapshot}"),
    };
    Ok(Cloned { name: name.to_string(), origin, txg: summary.txg.map_or(0, |t| t.0) })
}

/// A clone destroyed and committed.
pub struct CloneDestroyed {
    pub name: String,
    pub freed_bytes: u64,
}

/// Destroys clone `name` (it must have no snapshots), and commits.
pub fn destroy_clone(pool: &mut Pool, name: &str) -> Result<CloneDestroyed> {
    pool.destroy_clone(name)?;
    let summary = pool.commit()?;
    Ok(CloneDestroyed { name: name.to_string(), freed_bytes: summary.freed_bytes })
}

/// Renames clone `old` to `new`, and commits.
pub fn rename_clone(pool: &mut Pool, old: &str, new: &str) -> Result<()> {
    pool.rename_tree(old, new)?;
    pool.commit()?;
    Ok(())
}

/// Promotes clone `name` over the tree it was made from, and commits.
pub fn promote(pool: &mut Pool, name: &str) -> Result<crate::pool::Promoted> {
    let promoted = pool.promote_clone(name)?;
    pool.commit()?;
    Ok(promoted)
}
