//! An open pool: its label, the current commit, the metadata tables and the file trees.
//!
//! Every change happens in memory against the transaction `store.txg` and reaches the
//! device only through `commit` (commit.rs), the single writer of commit records.

mod bookmarks;
mod promote;
pub use promote::Promoted;
mod clones;
mod commit;
mod extraction;
mod features;
mod history;
mod history_space;
mod holds;
mod labels;
mod open;
mod pins;
mod receiving;
mod resize;
mod retention;
mod rollback;
mod snapshot_index;
mod space;
mod space_counters;
mod subsets;
mod trees;
mod warning;

/// Guids as text, defined beside the clock that draws them (a leaf, so `error` uses it
/// too); also here, where its callers have always found it.
pub use crate::clock::guid_hex;
pub use clones::validate_clone_name;
pub use commit::CommitSummary;
pub use extraction::{EXTRACT_INODES, Extracted, ExtractionPlan};
pub use history::RetainedRoot;
pub use labels::{SEARCH_STEP_BYTES, SEARCH_WINDOW_BYTES, previous_end_label, read_blocks, search_end_label};
pub use open::{FormatOptions, MIN_DEVICE_BYTES, format_pool, format_pool_with_clock};
pub use pins::WHOLE_COMMIT;
pub use resize::ExpandOutcome;
pub use space::{DestroyEstimate, SnapshotSpace, TreeUsage};
pub use space_counters::count_referenced;
pub use subsets::{MergePlan, SubsetPlan, SubsetSource};
pub use warning::OpenWarning;

use crate::alloc::space_log::SpaceLogBlock;
use crate::block::{BlockPtr, Txg};
use crate::clock::Clock;
use crate::device::OpenMode;
use crate::error::{Error, Refusal, Result};
use crate::format::commit::CommitRecord;
use crate::format::label::Label;
use crate::format::node::TreeKind;
use crate::format::pool_root::PoolRoot;
use crate::format::tables::{SnapshotEntry, TreeEntry};
use crate::fs::FsTree;
use crate::store::{Owner, Store};
use crate::tree::Tree;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The id of the live tree that every pool has.
pub const LIVE_TREE_ID: u64 = 1;
pub const LIVE_TREE_NAME: &str = "live";

/// A snapshot requested in the running transaction: its entry is made at commit.
#[derive(Clone, Debug)]
struct PendingSnapshot {
    tree: u64,
    name: String,
    guid: [u8; 16],
    /// A received snapshot's creation time, from its source; None: the commit's time.
    time_ns: Option<u64>,
    /// A snapshot of a past moment (`snapshot --at`): the retained commit it holds.
    /// None: this transaction's.
    at: Option<Txg>,
    /// A subset snapshot of `at`: its tree, already written (subsets.rs).
    subset: Option<PendingSubset>,
}

#[derive(Clone, Debug)]
struct PendingSubset {
    root: Option<BlockPtr>,
    referenced_bytes: u64,
    time_ns: u64,
    subset: crate::format::tables::Subset,
}

pub struct Pool {
    pub store: Store,
    pub label: Label,
    /// The pool root as of the last commit.
    pub root: PoolRoot,
    pub commit: CommitRecord,
    pub mode: OpenMode,
    /// Things the operator should know about how the pool was opened.
    pub warnings: Vec<OpenWarning>,
    trees_table: Tree,
    snapshots_table: Tree,
    history_table: Tree,
    dead_table: Tree,
    snapshot_index: Tree,
    bookmarks_table: Tree,
    /// The trees table's entries read so far, and changed (trees.rs).
    tree_entries: BTreeMap<u64, TreeEntry>,
    /// Whether `tree_entries` holds every tree.
    trees_loaded: bool,
    /// Whether the trees table holds its indexes, once looked up (trees.rs).
    tree_index: Option<bool>,
    heads: BTreeMap<u64, Tree>,
    /// The snapshots table, once something needed all of it (`load_snapshots`): an open
    /// does not read it, and taking a snapshot needs only a lookup of its name.
    snapshots: BTreeMap<(u64, String), SnapshotEntry>,
    snapshots_loaded: bool,
    /// The loaded snapshots by (tree, txg), with how many share it: a commit asks which
    /// lie in a range of txgs once per killed block.
    snapshot_txgs: BTreeMap<(u64, u64), u32>,
    pending_snapshots: Vec<PendingSnapshot>,
    removed_snapshots: Vec<SnapshotEntry>,
    /// Retained commits dropped from the history table and not released yet (retention.rs).
    released_history: Vec<u64>,
    /// Snapshots destroyed and not released yet: (tree, txg).
    released_snapshots: Vec<(u64, u64)>,
    /// `prune_history` asked the next commit to drop every older retained commit.
    prune_pending: bool,
    config_changed: bool,
    poisoned: bool,
    /// The newest block of the space log, decoded: read at open, replaced at commit.
    space_log_head: Option<(BlockPtr, SpaceLogBlock)>,
    /// Readers' pins: this handle's own, or those its commits honour (pins.rs).
    pin_side: pins::PinSide,
    /// The pins the running commit found behind the gate.
    commit_pins: Vec<crate::device::pins::Pin>,
    /// Trees whose head this transaction replaced whole (a rollback): the bytes it
    /// holds then, and how many kills came before (space_counters.rs).
    count_restarts: BTreeMap<u64, (u64, usize)>,
    /// Clones destroyed by this transaction: (id, name).
    destroyed_trees: Vec<(u64, String)>,
    /// Trees whose root this transaction's commit records in the history.
    history_changed: std::collections::BTreeSet<u64>,
    /// The pins seen outside the gate in this transaction, for early refusals.
    pins_seen: Option<Vec<crate::device::pins::Pin>>,
    /// Every time and guid this handle writes comes from here (clock.rs).
    clock: Arc<dyn Clock>,
}

impl Pool {
    pub fn txg(&self) -> Txg {
        self.commit.txg
    }

    /// The clock this pool takes its times and guids from: the commands stamp inodes
    /// with it, so that one seam decides every time a pool records.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Runs `f` with the store's node cache off and empty, so every block it reads comes
    /// from the device: check and scrub verify what the device holds, not a copy read
    /// before.
    pub fn reading_the_device<T>(&mut self, f: impl FnOnce(&mut Pool) -> T) -> T {
        let limit = self.store.node_cache.limit_bytes();
        self.store.node_cache.set_limit(0);
        let result = f(self);
        self.store.node_cache.set_limit(limit);
        result
    }

    pub fn device_name(&self) -> String {
        self.store.dev.name().to_string()
    }

    fn writable(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::invalid("a failed transaction left this pool handle unusable; reopen the pool"));
        }
        match self.mode {
            OpenMode::Write => Ok(()),
            OpenMode::Read => Err(Error::invalid("the pool was opened read-only")),
        }
    }

    /// The writable head of a file tree, as a file system.
    pub fn live(&mut self, tree: u64) -> Result<FsTree<'_>> {
        self.writable()?;
        self.refresh_space_hints()?;
        let root = self.existing_tree(tree)?.root;
        let head = self.heads.entry(tree).or_insert_with(|| Tree::open(TreeKind::Files, Owner::Files(tree), root));
        Ok(FsTree::new(head, &mut self.store, true))
    }

    /// A read-only view of a tree: its head, or one of its snapshots.
    pub fn view(&mut self, tree: u64, snapshot: Option<&str>) -> Result<(Tree, &mut Store)> {
        let root = match snapshot {
            None => {
                // Not only dirty nodes: a large change writes its nodes out before the
                // commit, and the trees table still names the last commit's root.
                if self.heads.get(&tree).is_some_and(|head| self.head_changed(tree, head)) {
                    return Err(Error::invalid("cannot view a tree with uncommitted changes"));
                }
                self.existing_tree(tree)?.root
            }
            Some(name) => {
                let entry = self.snapshot(tree, name)?;
                if entry.subset.as_ref().is_some_and(|s| s.is_extracting()) {
                    return Ok((self.extracting_view(&entry)?, &mut self.store));
                }
                entry.root
            }
        };
        Ok((Tree::open(TreeKind::Files, Owner::Files(tree), root), &mut self.store))
    }

    pub fn snapshot(&mut self, tree: u64, name: &str) -> Result<SnapshotEntry> {
        self.find_snapshot(tree, name)?.ok_or_else(|| Error::SnapshotNotFound { name: name.to_string(), base: false })
    }

    /// Whether `tree` has a snapshot `name`, taken or requested in this transaction.
    pub fn snapshot_exists(&mut self, tree: u64, name: &str) -> Result<bool> {
        Ok(self.pending_snapshots.iter().any(|p| p.tree == tree && p.name == name)
            || self.find_snapshot(tree, name)?.is_some())
    }

    /// Snapshot `name` of `tree`, if it exists: one lookup in the table, which is not
    /// loaded for it.
    fn find_snapshot(&mut self, tree: u64, name: &str) -> Result<Option<SnapshotEntry>> {
        if self.snapshots_loaded {
            return Ok(self.snapshots.get(&(tree, name.to_string())).cloned());
        }
        let key = SnapshotEntry::key(tree, name);
        let Some(value) = self.snapshots_table.get(&mut self.store, &key)? else { return Ok(None) };
        let entry = SnapshotEntry::decode(&key, &value)?;
        Ok((!self.destroyed_now(&entry)).then_some(entry))
    }

    /// Destroyed in the running transaction: the table still holds it until the commit.
    fn destroyed_now(&self, entry: &SnapshotEntry) -> bool {
        self.removed_snapshots.iter().any(|r| r.tree == entry.tree && r.name == entry.name && r.txg == entry.txg)
    }

    /// Reads the whole snapshots table, for what needs every snapshot (listing them, the
    /// checkpoints of a tree, a guid).
    fn load_snapshots(&mut self) -> Result<()> {
        if self.snapshots_loaded {
            return Ok(());
        }
        for (k, v) in self.snapshots_table.scan_prefix(&mut self.store, &[])? {
            let entry = SnapshotEntry::decode(&k, &v)?;
            if !self.destroyed_now(&entry) {
                self.cache_snapshot(entry);
            }
        }
        self.snapshots_loaded = true;
        Ok(())
    }

    fn cache_snapshot(&mut self, entry: SnapshotEntry) {
        *self.snapshot_txgs.entry((entry.tree, entry.txg.0)).or_default() += 1;
        self.snapshots.insert((entry.tree, entry.name.clone()), entry);
    }

    fn uncache_snapshot(&mut self, tree: u64, name: &str) {
        let Some(entry) = self.snapshots.remove(&(tree, name.to_string())) else { return };
        let key = (entry.tree, entry.txg.0);
        match self.snapshot_txgs.get_mut(&key) {
            Some(count) if *count > 1 => *count -= 1,
            _ => {
                self.snapshot_txgs.remove(&key);
            }
        }
    }

    /// The txgs of `tree`'s snapshots in `range`, in order (all snapshots read on first use).
    /// The snapshots, all of them (read on first use).
    fn all_snapshots(&mut self) -> Result<impl Iterator<Item = &SnapshotEntry>> {
        self.load_snapshots()?;
        Ok(self.snapshots.values())
    }

    /// Snapshots of a tree, oldest first.
    pub fn snapshots_of(&mut self, tree: u64) -> Result<Vec<SnapshotEntry>> {
        let mut list: Vec<_> = self.all_snapshots()?.filter(|s| s.tree == tree).cloned().collect();
        list.sort_by_key(|s| (s.txg, s.time_ns, s.name.clone()));
        Ok(list)
    }

    /// Requests a snapshot of the tree as this transaction leaves it. O(1): it records
    /// the tree's root pointer at commit.
    pub fn create_snapshot(&mut self, tree: u64, name: &str) -> Result<()> {
        self.request_snapshot(tree, name, None)
    }

    /// Requests snapshot `name` of `tree` as this transaction leaves it, or (`at`) as a
    /// retained commit saw it.
    fn request_snapshot(&mut self, tree: u64, name: &str, at: Option<Txg>) -> Result<()> {
        self.writable()?;
        validate_snapshot_name(name)?;
        self.existing_tree(tree)?;
        if self.snapshot_exists(tree, name)? {
            return Err(Error::exists(format!("snapshot @{name}")));
        }
        let guid = self.clock.guid();
        let pending = PendingSnapshot { tree, name: name.to_string(), guid, time_ns: None, at, subset: None };
        self.pending_snapshots.push(pending);
        Ok(())
    }

    /// Requests snapshot `name` of `tree` as it was at retained commit `txg`, a moment
    /// taken after the fact (history.rs `retained_commit_at` finds it by time). O(1) as
    /// any snapshot: the history gives the root and its count in one lookup each, and
    /// the dead index already keeps every block a retained commit sees, which the
    /// snapshot now keeps (retention.rs).
    pub fn create_snapshot_at(&mut self, tree: u64, name: &str, txg: Txg) -> Result<()> {
        self.check_moment_of(tree, txg)?;
        self.request_snapshot(tree, name, Some(txg))
    }

    /// Refuses a moment of `tree` that is not a retained commit, or older than the tree.
    fn check_moment_of(&mut self, tree: u64, txg: Txg) -> Result<()> {
        if !self.history_contains(txg.0)? {
            return Err(Error::not_found(format!("retained commit {}", txg.0)));
        }
        let entry = self.existing_tree(tree)?;
        if entry.created_txg > txg {
            let (tree_name, created) = (entry.name.clone(), entry.created_txg.0);
            return Err(Error::invalid(format!(
                "{tree_name} did not exist at commit {} (it was made by commit {created})",
                txg.0
            )));
        }
        Ok(())
    }

    /// Requests a snapshot that keeps another pool's guid, so that the next incremental
    /// stream finds its base, and its creation time, so that a replica lists and prunes
    /// its snapshots by the same calendar as its source.
    pub fn create_received_snapshot(&mut self, tree: u64, name: &str, guid: [u8; 16], time_ns: u64) -> Result<()> {
        if let Some(existing) = self.snapshot_by_guid(tree, &guid)? {
            return Err(Error::exists(format!("snapshot {} (as @{})", guid_hex(&guid), existing.name)));
        }
        self.create_snapshot(tree, name)?;
        let pending = self.pending_snapshots.last_mut().expect("just added");
        pending.guid = guid;
        pending.time_ns = Some(time_ns);
        Ok(())
    }

    pub fn snapshot_by_guid(&mut self, tree: u64, guid: &[u8; 16]) -> Result<Option<SnapshotEntry>> {
        Ok(self.all_snapshots()?.find(|s| s.tree == tree && &s.guid == guid).cloned())
    }

    /// The root of a tree's head as the last commit left it.
    pub fn committed_head_root(&mut self, tree: u64) -> Result<Option<BlockPtr>> {
        Ok(self.existing_tree(tree)?.root)
    }

    pub fn destroy_snapshot(&mut self, tree: u64, name: &str) -> Result<SnapshotEntry> {
        self.writable()?;
        if let Some(state) = self.receive_state()? {
            let origin = self.snapshot(tree, name)?.txg.0;
            if state.tree == tree && state.origin_txg == origin {
                return Err(Error::Refused(Refusal::BaseOfPartialReceive {
                    base: name.to_string(),
                    receiving: state.snapshot_name,
                }));
            }
        }
        let entry = self.snapshot(tree, name)?;
        Pool::refuse_if_held(&entry)?;
        self.refuse_if_origin(tree, name, entry.txg)?;
        self.refuse_if_merged(&entry)?;
        self.refuse_if_pinned(tree, name, entry.txg)?;
        self.uncache_snapshot(tree, name);
        self.free_subset_nodes(&entry)?;
        self.released_snapshots.push((entry.tree, entry.txg.0));
        self.removed_snapshots.push(entry.clone());
        Ok(entry)
    }

    /// Gives snapshot `old` of `tree` the name `new`, in this transaction: the same
    /// snapshot (guid, txg, time, root) under another name. Streams find their base by
    /// guid, so replication goes on across a rename on either side.
    pub fn rename_snapshot(&mut self, tree: u64, old: &str, new: &str) -> Result<SnapshotEntry> {
        self.writable()?;
        validate_snapshot_name(new)?;
        let entry = self.snapshot(tree, old)?;
        if self.snapshot_exists(tree, new)? {
            return Err(Error::exists(format!("snapshot @{new}")));
        }
        // Its table entry goes at commit, after this insert: the name waits a commit.
        if self.removed_snapshots.iter().any(|r| r.tree == tree && r.name == new) {
            return Err(Error::invalid(format!(
                "@{new} was destroyed in this transaction: commit before reusing its name"
            )));
        }
        let renamed = SnapshotEntry { name: new.to_string(), ..entry.clone() };
        self.snapshots_table.remove(&mut self.store, &SnapshotEntry::key(tree, old))?;
        self.uncache_snapshot(tree, old);
        self.index_remove(&entry)?;
        self.index_add(&renamed)?;
        self.rewrite_snapshot(&renamed)?;
        Ok(renamed)
    }

    pub fn set_history_seconds(&mut self, seconds: u64) -> Result<()> {
        self.writable()?;
        self.root.config.history_seconds = seconds;
        self.config_changed = true;
        Ok(())
    }

    /// Compresses new file data with `codec` from this transaction on; what is stored
    /// stays as it is. Choosing lz4 sets its feature with the commit.
    pub fn set_compression(&mut self, codec: crate::compress::Codec) -> Result<()> {
        self.writable()?;
        self.root.config.compression = codec;
        self.store.compression = codec;
        self.store.features_needed |= features::lz4_feature(codec);
        self.config_changed = true;
        Ok(())
    }

    /// Drops every retained commit: after the next commit, only that commit remains.
    pub fn prune_history(&mut self) -> Result<()> {
        self.writable()?;
        self.prune_pending = true;
        self.config_changed = true;
        Ok(())
    }

    /// What a device-full error's hint may suggest releasing: set before a transaction
    /// writes (the allocator, which makes the error, knows no snapshots).
    /// The snapshots are counted when the table is one node (read anyway to look a name
    /// up) or loaded already; else the hint says there are some, not how many.
    pub fn refresh_space_hints(&mut self) -> Result<()> {
        self.store.alloc.history_blocks_hint = self.root.dead_bytes / crate::block::BLOCK_BYTES;
        if self.snapshots_table.committed_root().is_some_and(|root| root.level == 0) {
            self.load_snapshots()?;
        }
        self.store.alloc.snapshots_hint = match (self.snapshots_loaded, self.snapshots_table.committed_root()) {
            (true, _) => self.snapshots.len() as u64,
            (false, None) => 0,
            (false, Some(_)) => crate::error::SNAPSHOTS_UNCOUNTED,
        };
        Ok(())
    }

    pub fn free_bytes(&self) -> u64 {
        self.store.alloc.unused_blocks() * crate::block::BLOCK_BYTES
    }

    pub fn used_bytes(&self) -> u64 {
        self.store.alloc.used_blocks() * crate::block::BLOCK_BYTES
    }

    pub fn dead_table_mut(&mut self) -> (&mut Tree, &mut Store) {
        (&mut self.dead_table, &mut self.store)
    }

    pub fn meta_roots(&self) -> [(TreeKind, Option<BlockPtr>); 6] {
        [
            (TreeKind::Trees, self.root.trees),
            (TreeKind::Snapshots, self.root.snapshots),
            (TreeKind::History, self.root.history),
            (TreeKind::Dead, self.root.dead),
            (TreeKind::SnapshotIndex, self.root.snapshot_index.root()),
            (TreeKind::Bookmarks, self.root.bookmarks),
        ]
    }

    pub fn snapshot_txgs(&mut self, tree: u64) -> Result<Vec<u64>> {
        Ok(self.all_snapshots()?.filter(|s| s.tree == tree).map(|s| s.txg.0).collect())
    }
}

pub use holds::validate_hold_tag;

/// "@name" -> "name", a valid snapshot name.
pub fn snapshot_name(arg: &str) -> Result<&str> {
    match arg.strip_prefix('@') {
        Some(name) => {
            validate_snapshot_name(name)?;
            Ok(name)
        }
        None => Err(Error::invalid(format!("{arg:?} is not a snapshot: snapshots are written @NAME"))),
    }
}

pub fn validate_snapshot_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+');
    if name.is_empty()
        || name.len() > crate::format::tables::SNAPSHOT_NAME_BYTES_MAX
        || !name.chars().all(ok_char)
        || name.starts_with(['-', '.'])
    {
        return Err(Error::invalid(format!(
            "bad snapshot name {name:?}: use 1 to 128 letters, digits, '_', '-', '.' or '+', \
             not starting with '-' or '.'"
        )));
    }
    Ok(())
}
