//! The commands' logic: each function is one whole command, one transaction (the
//! commit included), and returns a typed outcome that a front end renders as it likes
//! (snapctl prints it as text or, where it has `--json`, serializes it). Nothing here
//! prints, opens a device or names a binary.
//!
//! One file per family: `tree` (put cat ls mkdir rm mv export sync), `snapshot`
//! (snapshot destroy list), `history`, `status`, `check`. What a path argument names is
//! `PathSpec`, here.

pub mod check;
pub mod history;
pub mod snapshot;
pub mod status;
pub mod tree;

use crate::error::{Error, Result};
use crate::fs::FsTree;
use crate::pool::{LIVE_TREE_ID, Pool};

/// Where a path lives: "path" in the live tree, "@snap:path" or "@snap" in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpec {
    pub tree: u64,
    pub snapshot: Option<String>,
    pub path: String,
}

impl PathSpec {
    pub fn parse(arg: &str) -> Result<PathSpec> {
        if let Some(rest) = arg.strip_prefix('@') {
            let (name, path) = rest.split_once(':').unwrap_or((rest, ""));
            crate::pool::validate_snapshot_name(name)?;
            return Ok(PathSpec { tree: LIVE_TREE_ID, snapshot: Some(name.to_string()), path: path.to_string() });
        }
        Ok(PathSpec { tree: LIVE_TREE_ID, snapshot: None, path: arg.to_string() })
    }

    pub fn describe(&self) -> String {
        match &self.snapshot {
            Some(s) => format!("@{s}:{}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Runs `f` on a read-only view of the tree or snapshot a path spec names.
pub fn with_view<T>(pool: &mut Pool, spec: &PathSpec, f: impl FnOnce(&mut FsTree) -> Result<T>) -> Result<T> {
    let (mut tree, store) = pool.view(spec.tree, spec.snapshot.as_deref())?;
    let mut fs = FsTree::new(&mut tree, store, false);
    f(&mut fs)
}

/// A path of the live tree for a command that writes: snapshots are read-only.
fn live_path(path: &str) -> Result<&str> {
    if path.starts_with('@') {
        return Err(Error::invalid(format!(
            "{path:?} names a snapshot, and snapshots are read-only; give a path of the live tree"
        )));
    }
    Ok(path)
}
