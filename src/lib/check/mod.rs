//! `check`: reads every reachable block of the pool, verifies every checksum, and proves
//! the free-space set and the dead index exact.
//!
//! Exactness, as sets of blocks:
//! - referenced = implicit (pool root, space log) + metadata tables + file trees;
//! - referenced and free are disjoint, and together they cover the data area (no leak);
//! - per file tree T, the dead index holds exactly the blocks reachable from T's
//!   checkpoints (snapshots, retained commits) and not from T's head, and each entry's
//!   [birth, death) range still holds one of those checkpoints.
//!
//! Then each tree of heads and snapshots is checked as a file system: link counts,
//! directory entries, back references, record sizes, and every invariant a receive
//! enforces (fs/validate.rs), so that whatever `check` accepts, export, sync and `rm -r`
//! can walk.
//!
//! Memory does not grow with the file count beyond 16 bytes a referenced block
//! (blocks.rs): data is verified as the walk reaches it, the file system counts are
//! taken in one pass in key order (fs_counts.rs), and the dead index is read in batches.

mod blocks;
mod fs_counts;

use crate::alloc::ExtentSet;
use crate::alloc::space_log::SpaceLogBlock;
use crate::block::{BLOCK_BYTES, BlockPtr};
use crate::error::{Error, Result};
use crate::format::label::{
    FEATURE_FRAME_INDEX, FEATURE_HOLDS, FEATURE_LARGE_XATTRS, FEATURE_LZ4, FEATURE_SNAPSHOT_INDEX,
    FEATURE_SUBSET_EXTRACTION, FEATURE_SUBSETS, Label, region_start,
};
use crate::format::node::{EncodedNode, NodeBody, TreeKind};
use crate::format::tables::decode_dead;
use crate::fs::inode::{ItemKind, key_is};
use crate::fs::record::Record;
use crate::fs::validate::validate_received;
use crate::pool::Pool;
use crate::pool::{count_referenced, previous_end_label, read_blocks};
use crate::tree::{WalkStep, walk_nodes};
use blocks::{BlockBook, Claim};
use std::collections::HashMap;

/// Dead index entries read at a time. Small in test builds, so that the tests' small
/// pools cross batch boundaries.
#[cfg(not(any(test, feature = "testing")))]
const DEAD_BATCH: usize = 4096;
#[cfg(any(test, feature = "testing"))]
const DEAD_BATCH: usize = 5;
/// Problems kept in a report, at most.
const PROBLEMS_MAX: usize = 1000;

#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub blocks_verified: u64,
    pub bytes_verified: u64,
    pub trees_walked: u64,
    pub dead_entries: u64,
    pub referenced_blocks: u64,
    pub free_blocks: u64,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn into_result(self) -> Result<CheckReport> {
        if self.is_clean() {
            Ok(self)
        } else {
            Err(Error::corrupt(format!("check found {} problems: {}", self.problems.len(), self.problems.join("; "))))
        }
    }
}

/// What walking one file tree root should record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    Head,
    Checkpoint,
    /// A saved partial receive: its blocks are referenced, but no tree's own.
    Partial,
    /// A subset snapshot's root (pool/subsets.rs): nodes born after its moment are its
    /// own, reached by nothing else; older blocks are its moment's, as a checkpoint's.
    Subset {
        moment: u64,
    },
}

struct Checker {
    report: CheckReport,
    blocks: BlockBook,
}

impl Checker {
    fn problem(&mut self, what: String) {
        push_problem(&mut self.report.problems, what);
    }

    /// Records a reference; returns false if the block was already seen (identical).
    fn claim(&mut self, pool: &Pool, ptr: &BlockPtr, owner: &str) -> bool {
        let problems = &mut self.report.problems;
        match self.blocks.claim(ptr, owner, &pool.store.alloc, &mut |what| push_problem(problems, what)) {
            Claim::New => true,
            Claim::Again => false,
            Claim::Conflict(first_owner) => {
                let what = format!(
                    "block {} is referenced by {first_owner} and by {owner} with different pointers",
                    ptr.addr.0
                );
                self.problem(what);
                false
            }
        }
    }
}

fn push_problem(problems: &mut Vec<String>, what: String) {
    if problems.len() < PROBLEMS_MAX {
        problems.push(what);
    }
}

pub fn check_pool(pool: &mut Pool) -> Result<CheckReport> {
    check(pool, false).map(|(report, _)| report)
}

/// `check_pool`, and every block pointer it reached (once per block): what the
/// corruption injector of `snaptorture` aims at, found independently of `scrub`.
pub fn check_pool_with_inventory(pool: &mut Pool) -> Result<(CheckReport, Vec<BlockPtr>)> {
    check(pool, true).map(|(report, inventory)| (report, inventory.unwrap_or_default()))
}

fn check(pool: &mut Pool, keep_inventory: bool) -> Result<(CheckReport, Option<Vec<BlockPtr>>)> {
    pool.reading_the_device(|pool| check_device(pool, keep_inventory))
}

fn check_device(pool: &mut Pool, keep_inventory: bool) -> Result<(CheckReport, Option<Vec<BlockPtr>>)> {
    let alloc = &pool.store.alloc;
    let allocated = alloc.usable_blocks().saturating_sub(alloc.unused_blocks());
    let mut c = Checker { report: CheckReport::default(), blocks: BlockBook::new(allocated, keep_inventory) };
    check_labels(pool, &mut c);
    check_config(pool, &mut c);
    check_implicit(pool, &mut c)?;
    // The rest lies in blocks the space log lists: writers may commit meanwhile.
    pool.pin_whole_commit()?;
    for (kind, root) in pool.meta_roots() {
        if let Some(root) = root {
            walk_meta(pool, &mut c, kind, &root)?;
        }
    }
    let trees: Vec<(u64, Option<BlockPtr>)> = pool.trees()?.map(|t| (t.id, t.root)).collect();
    for &(id, root) in &trees {
        if let Some(root) = root {
            walk_files(pool, &mut c, id, &root, Reach::Head, &format!("tree {id} head"))?;
        }
    }
    for &(id, _) in &trees {
        let snapshots = pool.snapshots_of(id)?;
        for snapshot in &snapshots {
            let owner = format!("snapshot @{}", snapshot.name);
            let reach = match &snapshot.subset {
                None => Reach::Checkpoint,
                Some(_) => Reach::Subset { moment: snapshot.txg.0 },
            };
            if let Some(root) = snapshot.whole_root() {
                walk_files(pool, &mut c, id, &root, Reach::Checkpoint, &owner)?;
            }
            if let (Some(root), Reach::Subset { .. }) = (snapshot.root, reach) {
                walk_files(pool, &mut c, id, &root, reach, &owner)?;
            }
        }
        check_holds(pool, &mut c, &snapshots);
        for merge in snapshots.iter().filter_map(|s| s.subset.as_ref().map(|x| (s, x))) {
            for guid in &merge.1.needs {
                // A merge's older sources; while it is extracted, any snapshot it reads,
                // of its own moment too.
                let refining = merge.1.is_extracting();
                if !snapshots
                    .iter()
                    .any(|s| &s.guid == guid && (s.txg < merge.0.txg || refining && s.txg == merge.0.txg))
                {
                    c.problem(format!(
                        "subset snapshot @{} needs snapshot {} of an older moment, which its tree lacks",
                        merge.0.name,
                        crate::clock::guid_hex(guid)
                    ));
                }
            }
        }
    }
    for retained in pool.retained_roots()? {
        let owner = format!("retained commit {}", retained.first.0);
        walk_files(pool, &mut c, retained.tree, &retained.root, Reach::Checkpoint, &owner)?;
    }
    check_history_heads(pool, &mut c, &trees)?;
    check_clones_feature(pool, &mut c)?;
    for fault in pool.tree_index_faults()? {
        c.problem(fault);
    }
    check_bookmarks(pool, &mut c);
    check_snapshot_index(pool, &mut c, &trees)?;
    check_space_counters(pool, &mut c)?;
    check_history_count(pool, &mut c)?;
    check_receive_state(pool, &mut c)?;
    check_dead_index(pool, &mut c)?;
    check_space(pool, &mut c);
    for &(id, root) in &trees {
        check_fs(pool, &mut c, id, root, "head")?;
        // A subset snapshot being extracted has a tree of the inodes copied so far, whose
        // entries name inodes still to come: its blocks are checked above, its links
        // once it is whole.
        let snapshots: Vec<(String, Option<BlockPtr>)> = pool
            .snapshots_of(id)?
            .iter()
            .filter(|s| !s.subset.as_ref().is_some_and(|x| x.is_extracting()))
            .map(|s| (s.name.clone(), s.root))
            .collect();
        for (name, root) in snapshots {
            check_fs(pool, &mut c, id, root, &format!("@{name}"))?;
        }
    }
    c.report.referenced_blocks = c.blocks.referenced_blocks;
    c.report.free_blocks = pool.store.alloc.unused_blocks();
    Ok((c.report, c.blocks.inventory))
}

fn verify(pool: &mut Pool, c: &mut Checker, ptr: &BlockPtr, owner: &str) -> Option<Vec<u8>> {
    if ptr.compression == crate::block::Compression::Lz4 && pool.label.features_incompat & FEATURE_LZ4 == 0 {
        c.problem(format!(
            "{owner}: block {} is lz4, but the label lacks the lz4 feature (an older binary would misread it)",
            ptr.addr.0
        ));
    }
    if ptr.kind.is_metadata() {
        verify_copies(pool, c, std::slice::from_ref(ptr), owner);
    }
    match pool.store.read_block(ptr) {
        Ok(bytes) => {
            c.report.blocks_verified += 1;
            c.report.bytes_verified += ptr.stored_bytes as u64;
            Some(bytes)
        }
        Err(e) => {
            c.problem(format!("{owner}: {e}"));
            None
        }
    }
}

/// Each copy of metadata blocks on its own: a read falls back to the good copy without
/// a word, so a bad one would go unseen until the other went bad too.
fn verify_copies(pool: &mut Pool, c: &mut Checker, ptrs: &[BlockPtr], owner: &str) {
    let dittos = pool.label.has_ditto_metadata();
    for ptr in ptrs {
        if dittos && ptr.ditto.0 == 0 {
            c.problem(format!("{owner}: {} block {} has no second copy", ptr.kind.name(), ptr.addr.0));
        }
        for (n, addr) in ptr.copies().enumerate() {
            if let Err(e) = pool.store.read_copy(addr, ptr) {
                c.problem(format!("{owner}: copy {} of {e}; a scrub rewrites it from a good copy", n + 1));
            }
        }
    }
}

/// Both labels must be intact and agree: an open reads only the first, so damage to the
/// copy at the end would otherwise go unseen until it is needed.
fn check_labels(pool: &mut Pool, c: &mut Checker) {
    if pool.store.dev.len() < pool.label.device_bytes {
        c.problem(format!(
            "the device is {} bytes but the pool was made on {} bytes: its end is missing",
            pool.store.dev.len(),
            pool.label.device_bytes
        ));
    }
    for index in 0..2u32 {
        let start = region_start(index, pool.label.device_bytes);
        if start * BLOCK_BYTES >= pool.store.dev.len() {
            c.problem(format!(
                "label {index} lies past the end of the device, which is {} bytes where the pool was made on {}",
                pool.store.dev.len(),
                pool.label.device_bytes
            ));
            continue;
        }
        let block = read_blocks(pool.store.dev.as_ref(), start, 1);
        // A commit cut short while it added a feature bit (pool/features.rs): not damage;
        // the next open for writing rewrites it.
        let feature_rewrite_cut_short = matches!(&block, Ok(block) if pool.label.is_torn_feature_rewrite(block, index));
        let found = block.and_then(|block| Label::decode(&block));
        // An expand cut short while it rewrote the first label: not damage (labels.rs);
        // the next open for writing finishes it.
        let expand_cut_short =
            || index == 0 && matches!(previous_end_label(pool.store.dev.as_ref(), &pool.label), Ok(Some(_)));
        match found {
            Ok(Some(label)) if label.pool_guid == pool.label.pool_guid && label.index == index => {}
            Ok(None) | Err(_) if feature_rewrite_cut_short || expand_cut_short() => {}
            Ok(Some(_)) => c.problem(format!("label {index} belongs to another pool or slot")),
            Ok(None) => c.problem(format!("label {index} is missing")),
            Err(e) => c.problem(format!("label {index}: {e}")),
        }
    }
}

/// A snapshot with holds needs the label's holds bit, which the commit sets first.
/// Holds and subset extensions only on a pool whose label has their feature bits.
fn check_holds(pool: &Pool, c: &mut Checker, snapshots: &[crate::format::tables::SnapshotEntry]) {
    let features = pool.label.features_incompat;
    for snapshot in snapshots {
        for (used, bit, what) in [
            (!snapshot.holds.is_empty(), FEATURE_HOLDS, "holds"),
            (snapshot.subset.is_some(), FEATURE_SUBSETS, "subsets"),
            (
                snapshot.subset.as_ref().is_some_and(|s| s.is_extracting()),
                FEATURE_SUBSET_EXTRACTION,
                "subset_extraction",
            ),
        ] {
            if used && features & bit == 0 {
                c.problem(format!(
                    "snapshot @{} uses {what}, but the label lacks the {what} feature (an older binary would misread it)",
                    snapshot.name
                ));
            }
        }
    }
}

/// The snapshot index holds exactly the snapshots of the table: one it lacks would let a
/// commit free blocks that snapshot still sees; one it has too many would keep them.
fn check_snapshot_index(pool: &mut Pool, c: &mut Checker, trees: &[(u64, Option<BlockPtr>)]) -> Result<()> {
    let Some(index) = pool.snapshot_index_entries()? else { return Ok(()) };
    if pool.label.features_incompat & FEATURE_SNAPSHOT_INDEX == 0 {
        c.problem("the pool root names a snapshot index, but the label lacks the snapshot_index feature".to_string());
    }
    let mut table = std::collections::BTreeSet::new();
    for &(id, _) in trees {
        table.extend(pool.snapshots_of(id)?.into_iter().map(|s| (s.tree, s.txg, s.name)));
    }
    let index: std::collections::BTreeSet<_> = index.into_iter().collect();
    for (tree, txg, name) in table.difference(&index) {
        c.problem(format!("snapshot @{name} (tree {tree}, txg {}) is missing from the snapshot index", txg.0));
    }
    for (tree, txg, name) in index.difference(&table) {
        c.problem(format!(
            "the snapshot index names @{name} (tree {tree}, txg {}), which the snapshots table lacks",
            txg.0
        ));
    }
    Ok(())
}

/// A pool root that names lz4 needs the label's lz4 bit, which the commit sets first.
/// A clone needs the label's clones bit, which the commit that makes the first sets.
fn check_clones_feature(pool: &mut Pool, c: &mut Checker) -> Result<()> {
    if pool.label.features_incompat & crate::format::label::FEATURE_CLONES != 0 {
        return Ok(());
    }
    let clones: Vec<String> = pool.trees()?.filter(|t| t.origin.is_some()).map(|t| t.name.clone()).collect();
    if !clones.is_empty() {
        c.problem(format!(
            "clones {} exist, but the label lacks the clones feature (an older binary would misread them)",
            clones.join(", ")
        ));
    }
    Ok(())
}

/// A bookmarks table needs the label's bookmarks bit, which the commit that makes the
/// first bookmark sets (an older binary would drop the table at its next commit); each
/// bookmark decodes and is of a tree the pool has.
fn check_bookmarks(pool: &mut Pool, c: &mut Checker) {
    let has_bit = pool.label.features_incompat & crate::format::label::FEATURE_BOOKMARKS != 0;
    if pool.root.bookmarks.is_some() && !has_bit {
        c.problem(
            "the pool root names a bookmarks table, but the label lacks the bookmarks feature (an older binary \
             would drop it)"
                .to_string(),
        );
    }
    match pool.all_bookmarks() {
        Err(e) => c.problem(format!("the bookmarks table cannot be read: {e}")),
        Ok(bookmarks) => {
            for b in bookmarks {
                if pool.tree_name(b.tree).is_err() {
                    c.problem(format!("bookmark #{} is of tree {}, which the pool does not have", b.name, b.tree));
                }
            }
        }
    }
}

/// The newest retained commit is the commit that opened the pool: the history's root of
/// each tree at it must be the tree's head, or the history has lost a change.
fn check_history_heads(pool: &mut Pool, c: &mut Checker, trees: &[(u64, Option<BlockPtr>)]) -> Result<()> {
    let Some(newest) = pool.history()?.last().map(|(t, _)| *t) else { return Ok(()) };
    if newest != pool.txg() {
        c.problem(format!("the newest retained commit is {}, not the pool's last commit {}", newest.0, pool.txg().0));
        return Ok(());
    }
    for &(id, head) in trees {
        let recorded = pool.history_root(id, newest)?;
        if recorded != head {
            c.problem(format!(
                "tree {id}: the history records {recorded:?} at commit {}, but its head is {head:?}",
                newest.0
            ));
        }
    }
    Ok(())
}

/// Each tree's and snapshot's `referenced_bytes` is what a walk of its root counts:
/// `list` and `status` show the counters, which commits keep up to date by difference.
fn check_space_counters(pool: &mut Pool, c: &mut Checker) -> Result<()> {
    if !pool.has_space_counters() {
        return Ok(());
    }
    let trees: Vec<crate::format::tables::TreeEntry> = pool.trees()?.cloned().collect();
    let mut counted = Vec::new();
    for tree in trees {
        counted.push((format!("tree {} head", tree.id), tree.root, tree.referenced_bytes));
        // A subset being extracted is counted once whole (pool/extraction.rs).
        for s in
            pool.snapshots_of(tree.id)?.into_iter().filter(|s| !s.subset.as_ref().is_some_and(|x| x.is_extracting()))
        {
            counted.push((format!("snapshot @{}", s.name), s.root, s.referenced_bytes));
        }
    }
    // What the history recorded for each root it holds (`snapshot --at` takes it).
    for r in pool.retained_roots()? {
        if let Some(bytes) = r.referenced_bytes {
            counted.push((format!("tree {} as of retained commit {}", r.tree, r.first.0), Some(r.root), bytes));
        }
    }
    for (owner, root, recorded) in counted {
        // A walk that fails was reported, with its cause, by the block walks.
        if let Ok(walked) = count_referenced(&mut pool.store, root)
            && walked != recorded
        {
            c.problem(format!("{owner}: its space counter says {recorded} bytes referenced, a walk counts {walked}"));
        }
    }
    Ok(())
}

/// While a cap on the history's space is set, the pool root may count what the history
/// alone holds (pool/history_space.rs): that count is what a pass over the dead index
/// finds.
fn check_history_count(pool: &mut Pool, c: &mut Checker) -> Result<()> {
    let Some(recorded) = pool.root.history_only_bytes.filter(|_| pool.history_space_cap_bytes().is_some()) else {
        return Ok(());
    };
    let counted = pool.history_unique_bytes()?;
    if counted != recorded {
        c.problem(format!("the pool root says the history alone holds {recorded} bytes, the dead index {counted}"));
    }
    Ok(())
}

fn check_config(pool: &Pool, c: &mut Checker) {
    let lz4 = pool.root.config.compression == crate::compress::Codec::Lz4;
    if lz4 && pool.label.features_incompat & FEATURE_LZ4 == 0 {
        c.problem("the pool root names lz4 compression, but the label lacks the lz4 feature".to_string());
    }
}

fn check_implicit(pool: &mut Pool, c: &mut Checker) -> Result<()> {
    let root = pool.commit.root;
    c.claim(pool, &root, "the commit record");
    verify(pool, c, &root, "pool root");
    let mut next = pool.root.space_log;
    let mut count = 0u64;
    while let Some(ptr) = next {
        c.claim(pool, &ptr, "the space log");
        let Some(bytes) = verify(pool, c, &ptr, "space log") else { break };
        next = SpaceLogBlock::decode(&bytes)?.prev;
        count += 1;
        if count > pool.root.space_log_blocks {
            c.problem("space log chain is longer than the pool root says".into());
            break;
        }
    }
    Ok(())
}

fn walk_meta(pool: &mut Pool, c: &mut Checker, kind: TreeKind, root: &BlockPtr) -> Result<()> {
    let owner = format!("{} table", kind.name());
    let mut nodes = Vec::new();
    let result = walk_nodes(&mut pool.store, root, kind, &mut |ptr, _node| {
        c.report.blocks_verified += 1;
        c.report.bytes_verified += ptr.stored_bytes as u64;
        nodes.push(*ptr);
        Ok(WalkStep::Descend)
    });
    if let Err(e) = result {
        c.problem(format!("{owner}: {e}"));
    }
    for ptr in &nodes {
        c.claim(pool, ptr, &owner);
    }
    verify_copies(pool, c, &nodes, &owner);
    Ok(())
}

/// Walks a file tree from `root`, verifying each block it reaches for the first time,
/// data as the walk reaches it (nothing is gathered first).
fn walk_files(pool: &mut Pool, c: &mut Checker, tree: u64, root: &BlockPtr, reach: Reach, owner: &str) -> Result<()> {
    c.report.trees_walked += 1;
    if let Err(e) = visit_files_node(pool, c, tree, root, reach, owner) {
        c.problem(format!("{owner}: {e}"));
    }
    Ok(())
}

fn visit_files_node(
    pool: &mut Pool,
    c: &mut Checker,
    tree: u64,
    ptr: &BlockPtr,
    reach: Reach,
    owner: &str,
) -> Result<()> {
    if !mark(pool, c, tree, ptr, reach, owner)? {
        return Ok(());
    }
    verify_copies(pool, c, std::slice::from_ref(ptr), owner);
    let bytes = pool.store.read_block(ptr)?;
    let node = EncodedNode::decode(&bytes, TreeKind::Files, ptr.level)
        .map_err(|e| Error::corrupt(format!("{e} (block {})", ptr.addr.0)))?;
    c.report.blocks_verified += 1;
    c.report.bytes_verified += ptr.stored_bytes as u64;
    match node.body {
        NodeBody::Internal(children) => {
            for (_, child) in &children {
                visit_files_node(pool, c, tree, child, reach, owner)?;
            }
        }
        NodeBody::Leaf(entries) => {
            for (k, v) in &entries {
                if key_is(k, ItemKind::Record) {
                    let record = Record::decode(v)?;
                    if let Err(e) = crate::fs::record::check_kinds(&record) {
                        c.problem(format!("{owner}: {e}"));
                    }
                    for ptr in record.blocks() {
                        if !mark(pool, c, tree, ptr, reach, owner)? {
                            continue;
                        }
                        match ptr.addr == record.ptr.addr && !record.frames.is_empty() {
                            true => verify_indexed(pool, c, ptr, &record.frames, owner),
                            false => _ = verify(pool, c, ptr, owner),
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// `verify` of a base block whose record keeps a frame index, which must be the one its
/// frames give: a sender reads the ranges it names (a wrong one would send wrong
/// pieces, which the receiver refuses).
fn verify_indexed(pool: &mut Pool, c: &mut Checker, ptr: &BlockPtr, frames: &[u32], owner: &str) {
    if pool.label.features_incompat & FEATURE_FRAME_INDEX == 0 {
        c.problem(format!(
            "{owner}: the record of block {} keeps a frame index, but the label lacks the frame_index feature \
             (an older binary would misread it)",
            ptr.addr.0
        ));
    }
    let stored = match pool.store.read_copy(ptr.addr, ptr) {
        Ok(stored) => stored,
        Err(e) => return c.problem(format!("{owner}: {e}")),
    };
    c.report.blocks_verified += 1;
    c.report.bytes_verified += ptr.stored_bytes as u64;
    if let Err(e) = crate::compress::decompress_into(&stored, ptr.compression, ptr.logical_bytes, &mut Vec::new()) {
        return c.problem(format!("{owner}: block {}: {e}", ptr.addr.0));
    }
    let found = crate::compress::frame_starts(&stored, ptr.compression, ptr.logical_bytes).unwrap_or_default();
    if found != frames {
        c.problem(format!(
            "{owner}: the record of block {} keeps the frame index {frames:?}, but its frames start at {found:?}",
            ptr.addr.0
        ));
    }
}

/// Records a file tree block; returns true if it is new for this kind of reach.
fn mark(pool: &mut Pool, c: &mut Checker, tree: u64, ptr: &BlockPtr, reach: Reach, owner: &str) -> Result<bool> {
    let new = c.claim(pool, ptr, owner);
    // A clone's block from its origin snapshot is that snapshot's tree's (clones.rs).
    let belongs_to = pool.block_owner(tree, ptr.birth.0)?;
    Ok(match reach {
        Reach::Head if belongs_to != tree => new,
        Reach::Head => c.blocks.reach_from_head(tree, ptr),
        Reach::Checkpoint => c.blocks.reach_from_checkpoint(belongs_to, ptr),
        Reach::Partial => new,
        Reach::Subset { moment } if ptr.birth.0 > moment => {
            if !new {
                c.problem(format!("{owner}: its own block {} is reached from somewhere else too", ptr.addr.0));
            }
            new
        }
        Reach::Subset { .. } => c.blocks.reach_from_checkpoint(belongs_to, ptr),
    })
}

/// A saved partial receive: its blob and the blocks its tree owns. Walked after every
/// tree, so that the blocks it shares with its origin snapshot are already claimed (the
/// same pointers) and are skipped. Not checked as a file system: it is a partial one.
fn check_receive_state(pool: &mut Pool, c: &mut Checker) -> Result<()> {
    let Some(blob) = pool.root.receive else { return Ok(()) };
    c.claim(pool, &blob, "the receive state");
    verify_copies(pool, c, std::slice::from_ref(&blob), "the receive state");
    let state = match pool.receive_state() {
        Ok(Some(state)) => state,
        Ok(None) => return Ok(()),
        Err(e) => {
            c.problem(format!("receive state: {e}"));
            return Ok(());
        }
    };
    c.report.blocks_verified += 1;
    c.report.bytes_verified += blob.stored_bytes as u64;
    if !pool.snapshots_of(state.tree)?.iter().any(|s| s.txg.0 == state.origin_txg) && state.origin_txg != 0 {
        c.problem(format!("the partial receive's origin snapshot (txg {}) is gone", state.origin_txg));
    }
    let Some(root) = state.staging else { return Ok(()) };
    let owner = format!("partial receive of @{}", state.snapshot_name);
    walk_files(pool, c, state.tree, &root, Reach::Partial, &owner)
}

fn check_dead_index(pool: &mut Pool, c: &mut Checker) -> Result<()> {
    let mut listed: HashMap<u64, ExtentSet> = HashMap::new();
    let mut dead_bytes = 0;
    let mut from = Vec::new();
    loop {
        let mut batch = Vec::new();
        let mut next = None;
        let (dead, store) = pool.dead_table_mut();
        dead.scan(store, &from, &mut |k, v| {
            if batch.len() == DEAD_BATCH {
                next = Some(k.to_vec());
                return Ok(false);
            }
            batch.push(decode_dead(k, v));
            Ok(true)
        })?;
        for entry in batch {
            let (tree, death, ptr) = match entry {
                Ok(e) => e,
                Err(e) => {
                    c.problem(format!("dead index: {e}"));
                    continue;
                }
            };
            c.report.dead_entries += 1;
            dead_bytes += ptr.footprint_blocks() * BLOCK_BYTES;
            if !c.blocks.only_checkpoint_reaches(tree, ptr.addr.0) {
                c.problem(format!(
                    "dead index lists block {} of tree {tree} (killed in txg {}), which no snapshot or retained commit alone reaches",
                    ptr.addr.0, death.0
                ));
            } else if !pool.retained_between(tree, ptr.birth.0, death.0)? {
                c.problem(format!(
                    "dead index keeps block {} (born {}, killed {}) though no snapshot or retained commit lies between",
                    ptr.addr.0, ptr.birth.0, death.0
                ));
            } else if !c.blocks.claimed_as(&ptr) {
                c.problem(format!("dead index entry for block {} does not match the block's pointer", ptr.addr.0));
            }
            let set = listed.entry(tree).or_default();
            if !set.contains(ptr.addr.0, 1) {
                set.insert(ptr.addr.0, 1);
            }
        }
        match next {
            Some(key) => from = key,
            None => break,
        }
    }
    let mut leaks = Vec::new();
    for (tree, reached) in c.blocks.only_checkpoint_counts() {
        let empty = ExtentSet::new();
        let tree_listed = listed.get(&tree).unwrap_or(&empty);
        if tree_listed.blocks() != reached {
            let missing = c.blocks.only_checkpoint_missing(tree, tree_listed, 5);
            leaks.push(format!(
                "tree {tree}: {reached} blocks are reachable only from snapshots or retained commits but the dead index lists {} (missing e.g. {missing:?}): they would leak",
                tree_listed.blocks()
            ));
        }
    }
    for what in leaks {
        c.problem(what);
    }
    if dead_bytes != pool.root.dead_bytes {
        let what = format!("dead index holds {dead_bytes} bytes; the pool root says {}", pool.root.dead_bytes);
        c.problem(what);
    }
    Ok(())
}

/// Referenced and free blocks together cover the data area: each block was checked
/// against the others and the free set when first reached (blocks.rs).
fn check_space(pool: &mut Pool, c: &mut Checker) {
    let alloc = &pool.store.alloc;
    let accounted = c.blocks.used_blocks() + alloc.unused_blocks();
    if accounted != alloc.usable_blocks() {
        let leaked = alloc.usable_blocks() as i64 - accounted as i64;
        let what =
            format!("{leaked} blocks are allocated but referenced by nothing (leak), or the space map double counts");
        c.problem(what);
    }
}

/// Link counts, entries and records of one file tree; then, if those hold, every
/// invariant the receiver enforces (fs/validate.rs: one parent per directory and no
/// loop, entries only under directories, file types that agree, the inode counter above
/// every inode, valid names, ...), checked over the whole tree.
fn check_fs(pool: &mut Pool, c: &mut Checker, tree: u64, root: Option<BlockPtr>, name: &str) -> Result<()> {
    let Some(root) = root else {
        // A tree that a full stream is filling (`snaprecv -s --tree`) has no root yet.
        let filling = name == "head" && pool.receive_state().ok().flatten().is_some_and(|s| s.tree == tree);
        if !filling {
            c.problem(format!("tree {tree} {name} is empty: it has no root directory"));
        }
        return Ok(());
    };
    let counts = fs_counts::count(&mut pool.store, &root, &format!("tree {tree} {name}"))?;
    if !counts.problems.is_empty() {
        for what in counts.problems {
            c.problem(what);
        }
        return Ok(());
    }
    match validate_received(&mut pool.store, None, Some(root)) {
        Ok(Ok(())) => {}
        Ok(Err(v)) => c.problem(format!("tree {tree} {name}: inode {}: {}", v.ino, v.what)),
        Err(e) => c.problem(format!("tree {tree} {name}: {e}")),
    }
    if let Some(ino) = counts.large_xattr.filter(|_| pool.label.features_incompat & FEATURE_LARGE_XATTRS == 0) {
        c.problem(format!(
            "tree {tree} {name}: inode {ino} has an xattr value over 4096 bytes, but the label lacks the \
             large_xattrs feature (an older binary would misread it)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemoryDevice;
    use crate::fs::inode::{Inode, ItemKind, Timespec, key};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, format_pool};

    /// Goal: `check` finds a frame index that does not name where the block's frames
    /// start (a sender would read the wrong bytes), and one on a pool whose label lacks
    /// the feature (an older binary would take the record for corruption); a right one
    /// is clean. Method: a file of compressible records, then each record's index
    /// rewritten in place a different wrong way, and the label's bit cleared.
    #[test]
    fn check_finds_a_frame_index_that_does_not_match_the_frames() {
        let mut pool = format_pool(Box::new(MemoryDevice::new(32 << 20)), &FormatOptions::default()).unwrap();
        let text: Vec<u8> =
            (0..600_000u32).map(|i| b"log line, status ok\n"[(i % 20) as usize] ^ (i / 9000) as u8).collect();
        let ino = {
            let mut fs = pool.live(LIVE_TREE_ID).unwrap();
            let ino = fs.create(crate::fs::ROOT_INO, b"f", Inode::new(0o100644, Timespec::default())).unwrap();
            fs.write_at(ino, 0, &text).unwrap();
            ino
        };
        pool.commit().unwrap();
        assert!(pool.label.features_incompat & FEATURE_FRAME_INDEX != 0);
        assert!(check_pool(&mut pool).unwrap().is_clean());
        let records = pool.live(LIVE_TREE_ID).unwrap().records(ino).unwrap();
        assert!(records.iter().filter(|(_, r)| !r.frames.is_empty()).count() >= 4);
        // Another record's index, one shifted by a byte, two frames swapped in place.
        let other = records[1].1.frames.clone();
        for n in 0..4 {
            let (index, mut record) = records[if n == 0 { 2 } else { n }].clone();
            let f = &mut record.frames;
            match n {
                0 => *f = other.clone(),
                1 => f[0] += 1,
                2 => f[2] -= 1,
                _ => f[1] = (f[0] + f[2]) / 2,
            }
            let value = crate::fs::record::Record::decode(&record.encode()).expect("passes the decoder's checks");
            assert_ne!(value.frames, records[if n == 0 { 2 } else { n }].1.frames);
            let fs = pool.live(LIVE_TREE_ID).unwrap();
            let k = key(ino, ItemKind::Record, &index.to_be_bytes());
            let old = fs.tree.insert(fs.store, &k, &record.encode()).unwrap().unwrap();
            pool.commit().unwrap();
            let report = check_pool(&mut pool).unwrap();
            assert!(
                report.problems.iter().any(|p| p.contains("keeps the frame index") && p.contains("frames start at")),
                "case {n}: {:?}",
                report.problems
            );
            let fs = pool.live(LIVE_TREE_ID).unwrap();
            fs.tree.insert(fs.store, &k, &old).unwrap();
            pool.commit().unwrap();
            assert!(check_pool(&mut pool).unwrap().is_clean(), "case {n} put back");
        }
        pool.label.features_incompat &= !FEATURE_FRAME_INDEX;
        let report = check_pool(&mut pool).unwrap();
        assert!(report.problems.iter().any(|p| p.contains("lacks the frame_index feature")), "{:?}", report.problems);
    }
}
