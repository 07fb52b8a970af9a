//! `promote`: clone C of snapshot S (taken in txg s) of tree F swaps roles with F, as
//! `zfs promote` does. F's snapshots up to S move to C, C takes F's origin, and F becomes
//! a clone of S, now C's. The blocks born up to s (after F's own origin g) now belong to
//! C's line:
//!
//! - F's dead index entries of them that died by s are kills of that line: they move to
//!   C, with their death;
//! - F's entries of them that died after s go: S keeps those blocks, and a clone files no
//!   kill of a block its origin holds;
//! - the blocks of S that C's head no longer reaches were killed by C but never filed
//!   (they were its origin's): they are filed now, each with its true death, the txg of
//!   the first of C's snapshots (or its head) that lacks it, so that destroying a
//!   snapshot later frees exactly what it should (retention.rs scans by death).
//!
//! Retained commits saw the trees in their old roles, and a block's death is only exact
//! against C's snapshots: the history is dropped at the commit (as `history --prune`).

use super::Pool;
use crate::block::{BlockPtr, Txg};
use crate::error::{Error, Refusal, Result};
use crate::format::tables::{BookmarkEntry, SnapshotEntry, TreeEntry, dead_key};
use std::collections::{HashMap, HashSet};

/// What a promote did.
#[derive(Clone, Debug)]
pub struct Promoted {
    /// The tree it was a clone of, which is now a clone of it.
    pub demoted: String,
    /// The snapshots that moved to it, oldest first.
    pub moved: Vec<String>,
}

impl Pool {
    /// Promotes clone `name`, in this transaction (see the module comment).
    pub fn promote_clone(&mut self, name: &str) -> Result<Promoted> {
        self.writable()?;
        let clone = self.tree_id(name)?;
        let Some((tree, origin)) = self.origin_of(clone)? else {
            return Err(Error::invalid(format!("{name} is not a clone: nothing to promote it over")));
        };
        let demoted = self.tree_name(tree).map_err(|_| {
            Error::corrupt(format!("clone {name} names tree {tree} as its origin, which the pool does not have"))
        })?;
        if [clone, tree].iter().any(|id| self.heads.get(id).is_some_and(|t| t.is_dirty())) {
            return Err(Error::invalid("cannot promote with uncommitted changes"));
        }
        if let Some(state) = self.receive_state()?.filter(|s| s.tree == clone || s.tree == tree) {
            return Err(Error::Refused(Refusal::PartialReceiveSaved { receiving: state.snapshot_name }));
        }
        // A reader's pin names a tree and a txg: moving snapshots would take them from it.
        // (A whole commit's pin is not moved from: what it reads stays where it is.)
        if let Some(pin) = self.pins_now()?.into_iter().find(|p| p.tree != super::pins::WHOLE_COMMIT) {
            return Err(Error::Refused(Refusal::BeingRead {
                what: format!("the pool ({name})"),
                holder: pin.holder(),
            }));
        }
        // An extraction goes on in the tree its snapshot is of (extraction.rs).
        for entry in self.snapshots_of(tree)?.iter().chain(self.snapshots_of(clone)?.iter()) {
            Self::refuse_if_extracting(entry, &format!("promoting {name}, which moves snapshots between trees,"))?;
        }
        let moved: Vec<SnapshotEntry> = self.snapshots_of(tree)?.into_iter().filter(|s| s.txg <= origin).collect();
        // A merge takes files from its older sources, which must stay in its tree.
        let moved_guids: HashSet<[u8; 16]> = moved.iter().map(|s| s.guid).collect();
        for staying in self.snapshots_of(tree)?.into_iter().filter(|s| s.txg > origin) {
            if staying.subset.as_ref().is_some_and(|s| s.needs.iter().any(|g| moved_guids.contains(g))) {
                return Err(Error::invalid(format!(
                    "promoting {name} would move snapshots that the merged snapshot @{} takes files from out of its \
                     tree: destroy the merge first",
                    staying.name
                )));
            }
        }
        let own: Vec<SnapshotEntry> = self.snapshots_of(clone)?;
        if let Some(taken) = moved.iter().find(|s| own.iter().any(|o| o.name == s.name)) {
            return Err(Error::Exists {
                what: format!("snapshot {name}@{} (rename one of the two before promoting)", taken.name),
            });
        }
        let marks: Vec<BookmarkEntry> = self.bookmarks_of(tree)?.into_iter().filter(|b| b.txg <= origin).collect();
        for mark in &marks {
            if self.find_bookmark(clone, &mark.name)?.is_some() {
                return Err(Error::Exists {
                    what: format!("bookmark {name}#{} (rename one of the two before promoting)", mark.name),
                });
            }
        }
        let new_origin = self.origin_of(tree)?;
        let floor = new_origin.map_or(0, |(_, txg)| txg.0);
        let origin_root = moved.iter().find(|s| s.txg == origin).and_then(|s| s.whole_root());

        self.refile_old_line(tree, clone, origin)?;
        self.file_clone_kills(clone, origin_root, &own, (floor, origin.0))?;
        self.move_snapshots(&moved, clone)?;
        for mark in marks {
            self.destroy_bookmark(tree, &mark.name)?;
            self.put_bookmark(&BookmarkEntry { tree: clone, ..mark })?;
        }
        // The clones made from the moved snapshots follow them.
        self.build_tree_index_if_needed()?;
        let followers: Vec<(u64, Txg)> =
            self.clones_from(tree, None)?.into_iter().filter(|&(id, at)| id != clone && at <= origin).collect();
        for (id, at) in followers {
            self.set_origin(id, Some((clone, at)))?;
        }
        self.set_origin(clone, new_origin)?;
        self.set_origin(tree, Some((clone, origin)))?;
        self.prune_history()?;
        Ok(Promoted { demoted, moved: moved.into_iter().map(|s| s.name).collect() })
    }

    /// F's dead entries of blocks born up to the origin: those that died by it move to
    /// the promoted clone; the rest go (the origin snapshot holds them).
    fn refile_old_line(&mut self, tree: u64, clone: u64, origin: Txg) -> Result<()> {
        self.history_count_lost();
        for (death, ptr) in self.dead_entries(tree)? {
            if ptr.birth > origin {
                continue;
            }
            self.dead_table.remove(&mut self.store, &dead_key(tree, death, ptr.addr.0))?;
            self.uncount_dead(&ptr)?;
            if death <= origin {
                self.dead_insert(clone, death, &ptr)?;
            }
        }
        Ok(())
    }

    /// Files the kills the clone made of the origin snapshot's blocks (born in
    /// (floor, origin]), each dying at the first of its snapshots, or its head, that
    /// lacks it.
    fn file_clone_kills(
        &mut self,
        clone: u64,
        origin_root: Option<BlockPtr>,
        own: &[SnapshotEntry],
        (floor, origin): (u64, u64),
    ) -> Result<()> {
        let mut alive: HashMap<u64, BlockPtr> = self.line_blocks(origin_root, floor, origin)?;
        let head = (self.existing_tree(clone)?.root, self.store.txg);
        for (root, txg) in own.iter().map(|s| (s.root, s.txg)).chain([head]) {
            let next: HashSet<u64> = self.line_blocks(root, floor, origin)?.into_keys().collect();
            let dead: Vec<BlockPtr> = alive.values().filter(|p| !next.contains(&p.addr.0)).copied().collect();
            for ptr in dead {
                alive.remove(&ptr.addr.0);
                self.dead_insert(clone, txg, &ptr)?;
            }
        }
        Ok(())
    }

    /// The blocks `root` reaches that were born in (floor, origin], by address.
    fn line_blocks(&mut self, root: Option<BlockPtr>, floor: u64, origin: u64) -> Result<HashMap<u64, BlockPtr>> {
        let mut found = HashMap::new();
        if let Some(root) = root {
            super::space_counters::visit_born_after(&mut self.store, &root, floor, true, &mut |p| {
                if p.birth.0 <= origin {
                    found.insert(p.addr.0, *p);
                }
            })?;
        }
        Ok(found)
    }

    fn move_snapshots(&mut self, moved: &[SnapshotEntry], to: u64) -> Result<()> {
        for entry in moved {
            self.snapshots_table.remove(&mut self.store, &SnapshotEntry::key(entry.tree, &entry.name))?;
            self.uncache_snapshot(entry.tree, &entry.name);
            self.index_remove(entry)?;
            let entry = SnapshotEntry { tree: to, ..entry.clone() };
            self.index_add(&entry)?;
            self.rewrite_snapshot(&entry)?;
        }
        Ok(())
    }

    fn set_origin(&mut self, id: u64, origin: Option<(u64, Txg)>) -> Result<()> {
        let entry = TreeEntry { origin, ..self.existing_tree(id)?.clone() };
        self.put_tree(entry)
    }
}
