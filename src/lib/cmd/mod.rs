//! The commands' logic: each function is one whole command, one transaction (the
//! commit included), and returns a typed outcome that a front end renders as it likes
//! (snapctl prints it as text or, where it has `--json`, serializes it). Nothing here
//! prints, opens a device or names a binary.
//!
//! One file per family: `tree` (put cat ls mkdir rm mv export sync), `snapshot`
//! (snapshot destroy list), `history`, `set` (compression), `status`, `check`, `scrub` (its verdict too),
//! `send` (plan and size a run, write the stream), `receive` (verify against a target,
//! read record by record, discard a partial receive). What a path argument names is
//! `PathSpec`, here.

pub mod batch;
pub mod bookmarks;
pub mod check;
pub mod clone;
pub mod diff;
pub mod history;
pub mod holds;
pub mod prune;
pub mod receive;
pub mod scrub;
pub mod send;
pub mod set;
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

/// Splits off the tree an argument names, the rule every command follows: "NAME:PATH"
/// is PATH in clone NAME, "NAME@SNAP" (and "NAME@SNAP:PATH") its snapshot SNAP; with no
/// NAME, the live tree, which "live:" names too. A path of the live tree whose first part
/// holds ':' or '@' is written with a leading '/'.
pub fn split_tree(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with(['@', '/', '.']) {
        return (None, arg);
    }
    let first = arg.split('/').next().unwrap_or_default();
    match first.find([':', '@']) {
        Some(at) if at > 0 => {
            let (name, rest) = arg.split_at(at);
            (Some(name), rest.strip_prefix(':').unwrap_or(rest))
        }
        _ => (None, arg),
    }
}

/// A bookmark argument, if `arg` is one: "#NAME" (a bookmark of the live tree) or
/// "CLONE#NAME" (of a clone): the tree's name, if given, and the bookmark's. Neither
/// tree nor snapshot names hold '#', so nothing else reads this way.
pub fn split_bookmark(arg: &str) -> Option<(Option<&str>, &str)> {
    let (tree, name) = arg.split_once('#')?;
    if tree.contains(['@', ':', '/']) {
        return None;
    }
    Some(((!tree.is_empty()).then_some(tree), name))
}

/// The tree and name of a bookmark argument ("#NAME", "CLONE#NAME"), if `arg` is one.
pub fn bookmark_of<'a>(pool: &mut Pool, arg: &'a str) -> Result<Option<(u64, &'a str)>> {
    match split_bookmark(arg) {
        None => Ok(None),
        Some((tree, name)) => {
            crate::pool::validate_snapshot_name(name).map_err(|_| {
                Error::invalid(format!("bad bookmark name {name:?}: bookmarks are named as snapshots are"))
            })?;
            let tree = tree.map(|t| pool.tree_id(t)).transpose()?.unwrap_or(LIVE_TREE_ID);
            Ok(Some((tree, name)))
        }
    }
}

/// The tree an argument names, and the rest of the argument (see `split_tree`).
pub fn tree_of<'a>(pool: &mut Pool, arg: &'a str) -> Result<(u64, &'a str)> {
    match split_tree(arg) {
        (None, rest) => Ok((LIVE_TREE_ID, rest)),
        (Some(name), rest) => Ok((pool.tree_id(name)?, rest)),
    }
}

impl PathSpec {
    /// A path, snapshot or snapshot path of any tree (see `split_tree`).
    pub fn parse_in(pool: &mut Pool, arg: &str) -> Result<PathSpec> {
        let (tree, rest) = tree_of(pool, arg)?;
        Ok(PathSpec { tree, ..PathSpec::parse(rest)? })
    }

    /// A path, snapshot or snapshot path of the live tree.
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

/// Runs `f` on a read-only view of the tree or snapshot a path spec names, pinned for a
/// reader: writers commit while it reads.
pub fn with_view<T>(pool: &mut Pool, spec: &PathSpec, f: impl FnOnce(&mut FsTree) -> Result<T>) -> Result<T> {
    let checkpoint = pool.checkpoint_of(spec.tree, spec.snapshot.as_deref())?;
    pool.pin_for_reading(&[checkpoint])?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::device::MemoryDevice;
    use crate::pool::{FormatOptions, format_pool_with_clock};

    const MIB: u64 = 1 << 20;

    /// A pool whose clock moves a millisecond per reading: with no history kept, each
    /// commit then outlives the one before it (on the host's clock, two commits in one
    /// nanosecond would keep both).
    fn pool(history_seconds: u64) -> Pool {
        let mut options = FormatOptions::default();
        options.config.history_seconds = history_seconds;
        let clock = std::sync::Arc::new(SimClock::ticking(history_seconds, 1_000_000));
        format_pool_with_clock(Box::new(MemoryDevice::new(64 * MIB)), &options, clock).unwrap()
    }

    /// Bytes that do not compress (xorshift).
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Goal: a front end other than snapctl (a FUSE mount, a daemon) gets whole commands
    /// from here: each one commits, and its outcome carries the figures snapctl prints.
    /// Method: put, snapshot, rm, list, status, destroy, history and check on a pool in
    /// memory, with and without retained history (which changes who holds the blocks).
    #[test]
    fn each_command_commits_and_its_outcome_carries_the_figures() {
        for keep in [0, 86400] {
            let mut pool = pool(keep);
            let data = noise(MIB as usize);
            let before = pool.txg();
            let put = tree::put(&mut pool, LIVE_TREE_ID, tree::PutSource::Stream(&mut &data[..]), "a", None).unwrap();
            assert_eq!(put.bytes, MIB);
            assert!(pool.txg() > before, "put committed");
            let taken = snapshot::snapshot(&mut pool, LIVE_TREE_ID, "s").unwrap();
            assert_eq!((taken.name.as_str(), taken.txg), ("s", pool.txg().0));
            tree::rm(&mut pool, LIVE_TREE_ID, "a", false).unwrap();

            let listed = snapshot::list(&mut pool, LIVE_TREE_ID).unwrap();
            assert_eq!(listed.len(), 1);
            let unique = listed[0].unique_bytes;
            // Retained commits see the file too, so then the snapshot alone does not keep it.
            assert!(if keep == 0 { unique >= MIB } else { unique == 0 }, "keep {keep}: unique {unique}");
            let status = status::status(&mut pool, "memory").unwrap();
            assert_eq!((status.snapshots, status.live_files, status.device.as_str()), (1, 0, "memory"));
            assert!(status.held_by_snapshots_and_history_bytes >= MIB, "keep {keep}");
            assert_eq!(status.last_txg, pool.txg().0);

            let destroyed = snapshot::destroy(&mut pool, LIVE_TREE_ID, &["s".to_string()], false).unwrap();
            if keep == 0 {
                assert!(destroyed.freed_bytes >= MIB && destroyed.history_held_bytes.is_none(), "keep 0");
            } else {
                assert!(destroyed.freed_bytes < MIB, "the history still sees the file: {}", destroyed.freed_bytes);
                assert!(destroyed.history_held_bytes.is_some_and(|held| held >= MIB));
                let change = history::Change { keep_seconds: None, prune: true };
                let pruned = history::history(&mut pool, change).unwrap();
                assert!(pruned.released_bytes >= MIB, "pruning releases the file's blocks");
                assert_eq!(pruned.commits.len(), 1);
            }
            assert!(snapshot::list(&mut pool, LIVE_TREE_ID).unwrap().is_empty());
            assert!(check::check(&mut pool).unwrap().clean);
        }
    }
}
