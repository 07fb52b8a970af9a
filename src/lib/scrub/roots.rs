//! The roots a scrub starts from: the pool root, the space log, the metadata tables, each
//! tree's head, its snapshots, the retained commits and a saved partial receive, each
//! named after who owns it. The metadata pass walks down from them; blame walks them
//! again to say who loses a block beyond repair.

use crate::block::BlockPtr;
use crate::format::node::TreeKind;
use crate::pool::Pool;

/// What a root holds, which decides how its blocks are decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A tree of nodes of this kind.
    Tree(TreeKind),
    /// A block read whole: the pool root, a receive state blob.
    Single,
    /// The space log: each block names the one before.
    SpaceLog,
}

/// One root of the pool and who it belongs to, for messages.
pub struct Root {
    pub owner: String,
    pub ptr: BlockPtr,
    pub kind: RootKind,
}

impl Root {
    /// The pool root and the space log: blocks the space log does not list.
    pub fn is_implicit(&self) -> bool {
        self.kind == RootKind::SpaceLog || self.ptr.kind == crate::block::BlockKind::PoolRoot
    }
}

/// The owner name `roots` gives the live tree's head ("the {name} tree"), which blame
/// names files of without a prefix.
pub const LIVE_OWNER: &str = "the live tree";

/// Every root of the pool, in the order a reader depends on them. What cannot be listed
/// (a retained commit or a saved receive that does not decode) goes to `problems`.
pub fn roots(pool: &mut Pool, problems: &mut Vec<String>) -> Vec<Root> {
    let mut roots = vec![Root { owner: "the pool root".into(), ptr: pool.commit.root, kind: RootKind::Single }];
    if let Some(ptr) = pool.root.space_log {
        roots.push(Root { owner: "the space log".into(), ptr, kind: RootKind::SpaceLog });
    }
    for (kind, root) in pool.meta_roots() {
        if let Some(ptr) = root {
            roots.push(Root { owner: format!("the {} table", kind.name()), ptr, kind: RootKind::Tree(kind) });
        }
    }
    let files = RootKind::Tree(TreeKind::Files);
    let trees: Vec<(u64, String, Option<BlockPtr>)> = match pool.trees() {
        Ok(trees) => trees.map(|t| (t.id, t.name.clone(), t.root)).collect(),
        Err(e) => {
            problems.push(format!("trees table: {e}"));
            Vec::new()
        }
    };
    for (id, name, root) in &trees {
        if let Some(ptr) = *root {
            roots.push(Root { owner: format!("the {name} tree"), ptr, kind: files });
        }
        let snapshots = pool.snapshots_of(*id).unwrap_or_else(|e| {
            problems.push(format!("snapshots table: {e}"));
            Vec::new()
        });
        for snapshot in snapshots {
            // A subset snapshot keeps its moment's whole tree, and shows its own.
            let whole = snapshot.subset.as_ref().and_then(|s| s.pinned);
            for ptr in snapshot.root.into_iter().chain(whole) {
                roots.push(Root { owner: format!("snapshot @{}", snapshot.name), ptr, kind: files });
            }
        }
    }
    // The open no longer reads the history table: a damaged one shows here.
    let history: Vec<_> = match pool.history() {
        Ok(history) => history.into_iter().map(|(txg, _)| txg).collect(),
        Err(e) => {
            problems.push(format!("history table: {e}"));
            Vec::new()
        }
    };
    if !history.is_empty() {
        match pool.retained_roots() {
            Ok(retained) => {
                // The newest commit is retained too; it names nothing a head does not.
                let heads: Vec<BlockPtr> = trees.iter().filter_map(|(_, _, root)| *root).collect();
                for r in retained.into_iter().filter(|r| !heads.contains(&r.root)) {
                    roots.push(Root { owner: format!("retained commit {}", r.first.0), ptr: r.root, kind: files });
                }
            }
            Err(e) => problems.push(format!("history table: {e}")),
        }
    }
    if let Some(ptr) = pool.root.receive {
        roots.push(Root { owner: "the saved partial receive".into(), ptr, kind: RootKind::Single });
        match pool.receive_state() {
            Ok(Some(state)) => {
                if let Some(ptr) = state.staging {
                    roots.push(Root { owner: "the saved partial receive".into(), ptr, kind: files });
                }
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("the saved partial receive: {e}")),
        }
    }
    roots
}
