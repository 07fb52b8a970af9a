//! Subset snapshots: a snapshot of only the files a rule selects (fs/select.rs), from a
//! retained commit or from another snapshot, sharing every data block with its tree.
//!
//! A subset snapshot of tree T holding the moment of commit c is a snapshot of T taken
//! in txg c, as `snapshot --at` makes (its entry's `txg`, in the snapshot index): it
//! keeps T's state of that moment the way any snapshot of c does (retention.rs), and so
//! every block its files reach, all born at or before c. What it shows is another root:
//! a tree of its own nodes (fs/subset.rs), written by the commit that takes it and born
//! after c, which no head, retained commit or other snapshot reaches. Those nodes are
//! the snapshot's alone: destroying it frees them at once, with what only c kept.
//!
//! Its entry records the whole root of c (`Subset::pinned`), which check, scrub and the
//! space figures walk as they walk any checkpoint, and the rule as given, for `show`.
//!
//! A snapshot taken with `--from` applies a rule to another snapshot's files: the same
//! moment, its own nodes again (none shared, so either can be destroyed first).
//!
//! A merge (`--merge`) unites snapshots of the tree (fs/subset.rs `unite`): a subset of
//! the newest source's moment, whose files may come from older moments; those sources
//! keep the blocks, so a merge `needs` them (by guid) and they are not destroyed first.
//!
//! A clone of a subset starts as a copy of its items in nodes of the clone's own (the
//! subset's nodes stay its alone). A subset snapshot cannot be the target of a rollback
//! or the snapshot of a bookmark: each needs the whole tree of its moment.

use super::space_counters::visit_nodes_born_after;
use super::{PendingSnapshot, PendingSubset, Pool};
use crate::block::{BlockPtr, Txg};
use crate::error::{Error, Refusal, Result};
use crate::format::label::{FEATURE_SUBSET_EXTRACTION, FEATURE_SUBSETS};
use crate::format::node::{NodeBody, TreeKind};
use crate::format::tables::{RecordedRule, SnapshotEntry, Subset};
use crate::fs::FsTree;
use crate::fs::inode::{FileKey, FileType, Inode, ItemKind};
use crate::fs::select::Rule;
use crate::fs::subset::{
    Selection, SubsetStats, Union, UnionStats, copy_selection_from, place, select, write_union_from,
};
use crate::store::Owner;
use crate::tree::Tree;
use crate::tree::{WalkStep, walk_nodes};

/// Items copied at a time when a clone of a subset copies its tree.
const COPY_BATCH: usize = 4096;

/// Where a subset's files come from.
#[derive(Clone, Debug)]
pub enum SubsetSource {
    /// The tree as a retained commit left it (`--at`, or the last commit).
    Commit(Txg),
    /// Another snapshot of the tree (`--from`).
    Snapshot(String),
}

/// A merge as its extraction goes on: its sources' roots, newest first, where each
/// file comes from, and the sources it needs once whole (those older than its moment).
pub struct MergePlan {
    pub(super) sources: Vec<Option<BlockPtr>>,
    pub(super) union: Union,
    pub(super) older: Vec<[u8; 16]>,
}

impl MergePlan {
    /// The plan of a merge of `entries` (newest first), nothing placed yet.
    pub(super) fn of(entries: &[SnapshotEntry]) -> MergePlan {
        let moment = entries.first().map_or(Txg(0), |e| e.txg);
        MergePlan {
            sources: entries.iter().map(|e| e.root).collect(),
            union: Union::default(),
            older: entries.iter().filter(|e| e.txg < moment).map(|e| e.guid).collect(),
        }
    }
}

/// A subset snapshot prepared by a reader: where its files come from and which they
/// are. The selection (a walk of the whole source) needs no write lock, so writers go on
/// while it runs; the snapshot's own commit then only copies what was selected
/// (`create_planned_subset`).
pub struct SubsetPlan {
    source: SubsetSource,
    moment: Txg,
    time_ns: u64,
    from_root: Option<BlockPtr>,
    pinned: Option<BlockPtr>,
    /// The snapshot it refines (`--from`), by guid.
    from_guid: Option<[u8; 16]>,
    pub(super) selection: Selection,
}

impl SubsetPlan {
    /// The checkpoint a reader pins while it selects: the moment of the tree.
    pub fn checkpoint(&self, tree: u64) -> (u64, Txg) {
        (tree, self.moment)
    }

    /// The moment it holds and that moment's time.
    pub fn moment(&self) -> (Txg, u64) {
        (self.moment, self.time_ns)
    }

    /// The plan of subset snapshot `entry` as its entry records it, nothing selected
    /// yet: of its moment's whole root (which it keeps, whether or not the history still
    /// does), or of `from`, the snapshot it refines.
    pub(super) fn of_entry(entry: &SnapshotEntry, from: Option<&SnapshotEntry>) -> SubsetPlan {
        let pinned = entry.whole_root();
        SubsetPlan {
            source: match from {
                Some(from) => SubsetSource::Snapshot(from.name.clone()),
                None => SubsetSource::Commit(entry.txg),
            },
            moment: entry.txg,
            time_ns: entry.time_ns,
            from_root: from.map_or(pinned, |f| f.root),
            pinned,
            from_guid: from.map(|f| f.guid),
            selection: Selection::default(),
        }
    }

    /// The whole root of the moment.
    pub(super) fn pinned(&self) -> Option<BlockPtr> {
        self.pinned
    }

    /// The root its files are selected from.
    pub(super) fn source_root(&self) -> Option<BlockPtr> {
        self.from_root
    }

    /// What the selection holds.
    pub fn stats(&self) -> &SubsetStats {
        &self.selection.stats
    }

    /// Selected inodes (the directories that lead to the files too).
    pub fn inodes(&self) -> usize {
        self.selection.inodes()
    }

    /// Selected inodes below inode `ino`: what an extraction that goes on from it did.
    pub fn inodes_below(&self, ino: u64) -> usize {
        self.selection.inodes_below(ino)
    }
}

impl Pool {
    /// Requests subset snapshot `name` of `tree`: the files `rule` (written as
    /// `recorded`) selects from `source`, with the directories that lead to them. Its
    /// tree is written now; its entry is made at commit. Returns what it holds.
    pub fn create_subset_snapshot(
        &mut self,
        tree: u64,
        name: &str,
        source: &SubsetSource,
        rule: &Rule,
        recorded: RecordedRule,
    ) -> Result<SubsetStats> {
        let mut plan = self.plan_subset(tree, name, source)?;
        self.select_subset(tree, &mut plan, rule)?;
        self.create_planned_subset(tree, name, &plan, recorded, usize::MAX).map(|(stats, _)| stats)
    }

    /// Where subset snapshot `name` of `tree` takes its files from (tables only: a
    /// reader then pins `plan.checkpoint` and selects with `select_subset`).
    pub fn plan_subset(&mut self, tree: u64, name: &str, source: &SubsetSource) -> Result<SubsetPlan> {
        super::validate_snapshot_name(name)?;
        if self.snapshot_exists(tree, name)? {
            return Err(Error::exists(format!("snapshot @{name}")));
        }
        self.plan_source(tree, source)
    }

    /// A plan of `source`, nothing selected yet.
    fn plan_source(&mut self, tree: u64, source: &SubsetSource) -> Result<SubsetPlan> {
        let (moment, time_ns, from_root, pinned) = self.subset_source(tree, source)?;
        let from_guid = match source {
            SubsetSource::Snapshot(name) => {
                let from = self.snapshot(tree, name)?;
                Self::refuse_if_extracting(&from, "refining it (--from)")?;
                Some(from.guid)
            }
            SubsetSource::Commit(_) => None,
        };
        let selection = Selection::default();
        Ok(SubsetPlan { source: source.clone(), moment, time_ns, from_root, pinned, from_guid, selection })
    }

    /// The files `rule` selects for `plan` (a walk of its source's file tree only).
    pub fn select_subset(&mut self, tree: u64, plan: &mut SubsetPlan, rule: &Rule) -> Result<()> {
        let mut from = Tree::open(TreeKind::Files, Owner::Files(tree), plan.from_root);
        let mut fs = FsTree::new(&mut from, &mut self.store, false);
        plan.selection = select(&mut fs, rule)?;
        Ok(())
    }

    /// Requests subset snapshot `name` of `tree` as `plan` selected it, in this
    /// transaction: its tree is written now with at most `most` of the selected inodes,
    /// its entry made at commit; the rest, if any, is extracted by later commits
    /// (extraction.rs). Refused if its source is no longer what was selected from (a
    /// moment expired, a snapshot gone). Returns what it holds and its guid.
    pub fn create_planned_subset(
        &mut self,
        tree: u64,
        name: &str,
        plan: &SubsetPlan,
        recorded: RecordedRule,
        most: usize,
    ) -> Result<(SubsetStats, [u8; 16])> {
        self.writable()?;
        super::validate_snapshot_name(name)?;
        recorded.check_fits()?;
        if self.snapshot_exists(tree, name)? {
            return Err(Error::exists(format!("snapshot @{name}")));
        }
        let now = self.subset_source(tree, &plan.source).ok();
        if now != Some((plan.moment, plan.time_ns, plan.from_root, plan.pinned)) {
            return Err(Error::invalid(format!(
                "the subset's source ({}) changed while its files were selected: take it again",
                match &plan.source {
                    SubsetSource::Commit(txg) => format!("commit {}", txg.0),
                    SubsetSource::Snapshot(name) => format!("@{name}"),
                }
            )));
        }
        let mut from = Tree::open(TreeKind::Files, Owner::Files(tree), plan.from_root);
        let mut fs = FsTree::new(&mut from, &mut self.store, false);
        // Never killed (built from nothing, in key order) and never a head's: pool
        // metadata as far as the store knows until its entry names it.
        let mut built = Tree::open(TreeKind::Files, Owner::Meta, None);
        let extracting = copy_selection_from(&mut fs, &plan.selection, &mut built, 0, most)?;
        let root = built.flush(&mut self.store)?;
        // A refinement reads its source until its tree is whole.
        let needs = plan.from_guid.filter(|_| extracting.is_some()).into_iter().collect();
        let subset = Subset { pinned: plan.pinned, built: self.store.txg, rule: recorded, needs, extracting };
        if extracting.is_some() {
            self.store.features_needed |= FEATURE_SUBSET_EXTRACTION;
        }
        let guid = self.request_subset(tree, name, plan.moment, plan.time_ns, root, subset)?;
        Ok((plan.selection.stats.clone(), guid))
    }

    /// Requests subset snapshot `name` of `tree`, of the moment of `moment` (at
    /// `time_ns`), whose tree is already written at `root`.
    fn request_subset(
        &mut self,
        tree: u64,
        name: &str,
        moment: Txg,
        time_ns: u64,
        root: Option<BlockPtr>,
        subset: Subset,
    ) -> Result<[u8; 16]> {
        // A subset still being extracted is counted once whole (extraction.rs).
        let referenced_bytes = match self.has_space_counters() && !subset.is_extracting() {
            true => super::count_referenced(&mut self.store, root)?,
            false => 0,
        };
        let guid = self.clock.guid();
        self.pending_snapshots.push(PendingSnapshot {
            tree,
            name: name.to_string(),
            guid,
            time_ns: Some(time_ns),
            at: Some(moment),
            subset: Some(PendingSubset { root, referenced_bytes, time_ns, subset }),
        });
        self.store.features_needed |= FEATURE_SUBSETS;
        Ok(guid)
    }

    /// Requests snapshot `name` of `tree`, the union of its snapshots `sources` (at
    /// least two; fs/subset.rs `unite`): of the newest one's moment, which it keeps as
    /// any snapshot of that moment does; the older ones keep what it takes from them, and
    /// cannot be destroyed before it. Its tree is written now with at most `most` of its
    /// inodes, the rest by later commits (extraction.rs), during which every source is
    /// kept. Returns what it holds, its guid, and the plan an extraction goes on with.
    pub fn create_merged_snapshot(
        &mut self,
        tree: u64,
        name: &str,
        sources: &[String],
        most: usize,
    ) -> Result<(UnionStats, [u8; 16], Option<MergePlan>)> {
        self.writable()?;
        super::validate_snapshot_name(name)?;
        if self.snapshot_exists(tree, name)? {
            return Err(Error::exists(format!("snapshot @{name}")));
        }
        if sources.len() < 2 {
            return Err(Error::invalid("a merge unites two snapshots or more: name them after --merge"));
        }
        let mut entries = Vec::new();
        for source in sources {
            let entry = self.snapshot(tree, source)?;
            Self::refuse_if_extracting(&entry, "a merge")?;
            if entries.iter().any(|e: &SnapshotEntry| e.guid == entry.guid) {
                return Err(Error::invalid(format!("@{source} is named twice in the merge")));
            }
            entries.push(entry);
        }
        // Newest first: where they differ, the newest gives the path or the file.
        entries.sort_by_key(|e| std::cmp::Reverse((e.txg, e.time_ns)));
        let newest = entries[0].clone();
        let merged = entries.iter().map(|e| e.name.clone()).collect();
        let rule = RecordedRule { merged, ..RecordedRule::default() };
        rule.check_fits()?;
        let plan = MergePlan::of(&entries);
        let union = place(&mut self.store, &plan.sources)?;
        let plan = MergePlan { union, ..plan };
        let mut built = Tree::open(TreeKind::Files, Owner::Meta, None);
        let extracting = write_union_from(&mut self.store, &plan.sources, &plan.union, &mut built, 0, most)?;
        let root = built.flush(&mut self.store)?;
        // Being extracted, it reads every source, in the order united.
        let needs = match extracting {
            Some(_) => entries.iter().map(|e| e.guid).collect(),
            None => plan.older.clone(),
        };
        let subset = Subset { pinned: newest.whole_root(), built: self.store.txg, rule, needs, extracting };
        if extracting.is_some() {
            self.store.features_needed |= FEATURE_SUBSET_EXTRACTION;
        }
        let guid = self.request_subset(tree, name, newest.txg, newest.time_ns, root, subset)?;
        let stats = plan.union.stats.clone();
        Ok((stats, guid, extracting.map(|_| plan)))
    }

    /// Refuses destroying `entry` while a merge needs it (see `create_merged_snapshot`).
    /// Only a pool that ever had a subset can have a merge: others read no more than
    /// before (the check reads the tree's snapshots).
    pub(super) fn refuse_if_merged(&mut self, entry: &SnapshotEntry) -> Result<()> {
        if (self.label.features_incompat | self.store.features_needed) & FEATURE_SUBSETS == 0 {
            return Ok(());
        }
        let (extracting, merges): (Vec<SnapshotEntry>, Vec<SnapshotEntry>) = self
            .snapshots_of(entry.tree)?
            .into_iter()
            .filter(|s| s.subset.as_ref().is_some_and(|x| x.needs.contains(&entry.guid)))
            .partition(|s| s.subset.as_ref().is_some_and(|x| x.is_extracting()));
        if let Some(subset) = extracting.into_iter().next() {
            return Err(Error::Refused(Refusal::ExtractedFrom { snapshot: entry.name.clone(), subset: subset.name }));
        }
        match merges.is_empty() {
            true => Ok(()),
            false => {
                let merges = merges.into_iter().map(|s| s.name).collect();
                Err(Error::Refused(Refusal::MergedInto { snapshot: entry.name.clone(), merges }))
            }
        }
    }

    /// (moment, its time, the root to select from, the whole root of the moment).
    fn subset_source(
        &mut self,
        tree: u64,
        source: &SubsetSource,
    ) -> Result<(Txg, u64, Option<BlockPtr>, Option<BlockPtr>)> {
        match source {
            SubsetSource::Commit(txg) => {
                self.check_moment_of(tree, *txg)?;
                let (moment, root, _, time_ns) = self.past_moment(tree, *txg)?;
                Ok((moment, time_ns, root, root))
            }
            SubsetSource::Snapshot(name) => {
                let from = self.snapshot(tree, name)?;
                Ok((from.txg, from.time_ns, from.root, from.whole_root()))
            }
        }
    }

    /// Makes clone `name` of subset snapshot `origin` of `tree`, in this transaction: a
    /// tree whose head starts as a copy of the subset's items in nodes of its own (the
    /// subset's nodes are the snapshot's alone), sharing every record. Its origin is the
    /// subset's moment, as for a clone of any snapshot of it. Returns its id.
    pub(super) fn clone_subset(&mut self, tree: u64, origin: &SnapshotEntry, name: &str) -> Result<u64> {
        super::clones::validate_clone_name(name)?;
        let id = self.add_tree(name, None, Some((tree, origin.txg)), 0)?;
        let mut from = Tree::open(TreeKind::Files, Owner::Files(tree), origin.root);
        let mut head = Tree::open(TreeKind::Files, Owner::Files(id), None);
        let mut start = Vec::new();
        loop {
            let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            from.scan(&mut self.store, &start, &mut |k, v| {
                batch.push((k.to_vec(), v.to_vec()));
                Ok(batch.len() < COPY_BATCH)
            })?;
            for (k, v) in &batch {
                head.insert(&mut self.store, k, v)?;
            }
            match batch.pop() {
                Some((mut last, _)) if batch.len() + 1 == COPY_BATCH => {
                    last.push(0);
                    start = last;
                }
                _ => break,
            }
        }
        self.heads.insert(id, head);
        // Its records' blocks, counted as the subset counts them; its nodes, at commit.
        let own = self.subset_own_bytes(origin)?;
        self.restart_count(id, origin.referenced_bytes.saturating_sub(own));
        self.store.features_needed |= crate::format::label::FEATURE_CLONES;
        Ok(id)
    }

    /// What the file tree at `root` holds, from its inode items (its nodes are read, not
    /// its data).
    pub fn tree_contents(&mut self, root: Option<BlockPtr>) -> Result<SubsetStats> {
        let mut stats = SubsetStats::default();
        let Some(root) = root else { return Ok(stats) };
        walk_nodes(&mut self.store, &root, TreeKind::Files, &mut |_, node| {
            if let NodeBody::Leaf(entries) = &node.body {
                for (k, v) in entries {
                    if FileKey::parse(k).is_some_and(|k| k.is(ItemKind::Inode)) {
                        let inode = Inode::decode(v)?;
                        match inode.file_type() {
                            FileType::Directory => stats.directories += 1,
                            FileType::Regular => {
                                stats.files += 1;
                                stats.file_bytes += inode.size;
                            }
                            _ => stats.files += 1,
                        }
                    }
                }
            }
            Ok(WalkStep::Descend)
        })?;
        Ok(stats)
    }

    /// Bytes of a subset snapshot's own nodes, which destroying it frees (0 for a whole
    /// snapshot).
    pub(super) fn subset_own_bytes(&mut self, entry: &SnapshotEntry) -> Result<u64> {
        let (Some(_), Some(root)) = (&entry.subset, entry.root) else { return Ok(0) };
        // Only nodes: every record is the tree's, born at or before the moment.
        let mut bytes = 0;
        visit_nodes_born_after(&mut self.store, &root, entry.txg.0, &mut |p| {
            bytes += p.footprint_blocks() * crate::block::BLOCK_BYTES
        })?;
        Ok(bytes)
    }

    /// Frees a destroyed subset snapshot's own nodes (every node of its root born after
    /// its moment; its records' blocks are its tree's, released as any snapshot's).
    pub(super) fn free_subset_nodes(&mut self, entry: &SnapshotEntry) -> Result<()> {
        if entry.subset.is_none() {
            return Ok(());
        }
        if let Some(root) = entry.root {
            let mut own = Vec::new();
            visit_nodes_born_after(&mut self.store, &root, entry.txg.0, &mut |p| own.push(*p))?;
            for ptr in own {
                self.store.alloc.defer_free_ptr(&ptr)?;
            }
        }
        Ok(())
    }

    /// Refuses what needs the whole tree of a snapshot's moment (see the module comment).
    pub fn refuse_if_subset(entry: &SnapshotEntry, what: &str) -> Result<()> {
        if entry.subset.is_none() {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "@{} is a subset snapshot (it holds only the files its rule selected): {what} needs a whole snapshot of \
             the tree",
            entry.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::device::CrashDevice;
    use crate::fs::inode::{FileKey, ROOT_INO, S_IFDIR, S_IFLNK, S_IFREG};
    use crate::fuzzing::Steps;
    use crate::pool::{FormatOptions, LIVE_TREE_ID, format_pool_with_clock};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// Each file's inode number and items but its inode item, by path.
    type Files = BTreeMap<String, (u64, Vec<(Vec<u8>, Vec<u8>)>)>;

    const DIRS: [&str; 4] = ["a", "a/b", "c", "a/b/d"];
    const GLOBS: [&str; 6] = ["**/*.jpg", "a/**", "c/*", "*", "a/b/*.txt", "**/f1*"];

    /// Every file of the tree at `root` that is not a directory, with its xattrs,
    /// symlink target and records, by path.
    fn files_by_path(pool: &mut Pool, root: Option<BlockPtr>) -> Files {
        let mut tree = Tree::open(TreeKind::Files, Owner::Meta, root);
        let mut fs = FsTree::new(&mut tree, &mut pool.store, false);
        let mut found = BTreeMap::new();
        let mut stack = vec![(ROOT_INO, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for e in fs.readdir(dir).unwrap() {
                let path = format!("{prefix}{}", String::from_utf8_lossy(&e.name));
                if e.file_type == FileType::Directory {
                    stack.push((e.ino, format!("{path}/")));
                    continue;
                }
                let items = fs.tree.scan_prefix(fs.store, &e.ino.to_be_bytes()).unwrap();
                let kept = items.into_iter().filter(|(k, _)| FileKey::parse(k).unwrap().is_content()).collect();
                found.insert(path, (e.ino, kept));
            }
        }
        found
    }

    fn random_rule(steps: &mut Steps, now: u64) -> (Rule, RecordedRule) {
        let mut recorded = RecordedRule::default();
        for _ in 0..steps.next(3) {
            recorded.matches.push(GLOBS[steps.next(GLOBS.len() as u64) as usize].to_string());
        }
        if steps.next(3) == 0 {
            recorded.excludes.push(GLOBS[steps.next(GLOBS.len() as u64) as usize].to_string());
        }
        match steps.next(4) {
            0 => recorded.conditions.push(format!("size<{}", steps.next(40_000))),
            1 => recorded.conditions.push("xattr.user.tag=x".into()),
            _ => {}
        }
        let rule = Rule::parse(&recorded.matches, &recorded.excludes, &recorded.conditions, now).unwrap();
        (rule, recorded)
    }

    #[test]
    fn subsets_hold_what_their_rule_selects_share_every_record_and_keep_the_pool_exact() {
        // Goal: whatever the tree (nested directories, hard links, symlinks, xattrs) and
        // the rule, a subset holds exactly the files the rule selects from its source
        // (the tree at its moment, or another subset), each with the source's records
        // unchanged (no block copied: every block of its own is a node); its files stay
        // after the tree changes, the history goes and its source is destroyed; clones
        // of it are trees of their own; a merge of two or three snapshots holds each of
        // their paths (or, where a newer one moved the file, its newer place), each file
        // as one of them holds it, and keeps them while it needs them; `check` is clean
        // after every commit (its nodes neither leak nor are freed while reached).
        // Method: random operations.
        for seed in 0..3 {
            let clock = Arc::new(SimClock::ticking(seed, 1_000_000));
            let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
            let mut pool = format_pool_with_clock(Box::new(device.clone()), &FormatOptions::default(), clock).unwrap();
            let mut steps = Steps(seed + 11);
            // Each subset and what it held when taken.
            let mut subsets: Vec<(String, Files)> = Vec::new();
            let mut wholes: Vec<String> = Vec::new();
            let (mut taken, mut merges) = (0, 0);
            for round in 0..120u64 {
                match steps.next(14) {
                    0..=4 => {
                        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
                        let mut dir = ROOT_INO;
                        for name in DIRS[steps.next(4) as usize].split('/') {
                            dir = match fs.lookup(dir, name.as_bytes()).unwrap() {
                                Some(e) => e.ino,
                                None => fs
                                    .create(dir, name.as_bytes(), Inode::new(S_IFDIR | 0o755, Default::default()))
                                    .unwrap(),
                            };
                        }
                        let name = format!("f{}.{}", steps.next(5), ["jpg", "txt"][steps.next(2) as usize]);
                        let ino = match fs.lookup(dir, name.as_bytes()).unwrap() {
                            Some(e) if e.file_type == FileType::Regular => e.ino,
                            Some(_) => continue,
                            None => fs
                                .create(dir, name.as_bytes(), Inode::new(S_IFREG | 0o644, Default::default()))
                                .unwrap(),
                        };
                        let len = 1 + steps.next(60_000) as usize;
                        fs.write_at(ino, 0, &vec![round as u8; len]).unwrap();
                        match steps.next(4) {
                            0 => fs.set_xattr(ino, b"user.tag", b"x").unwrap(),
                            1 => _ = fs.link(ino, ROOT_INO, format!("link{round}.jpg").as_bytes()),
                            _ => {}
                        }
                    }
                    5 => {
                        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
                        let name = format!("sym{}.jpg", steps.next(3));
                        if fs.lookup(ROOT_INO, name.as_bytes()).unwrap().is_none() {
                            let ino =
                                fs.create(ROOT_INO, name.as_bytes(), Inode::new(S_IFLNK | 0o777, Default::default()));
                            fs.set_symlink_target(ino.unwrap(), b"a/f1.jpg").unwrap();
                        }
                    }
                    6 => {
                        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
                        let name = ["a", "c", "link3.jpg"][steps.next(3) as usize];
                        if fs.lookup(ROOT_INO, name.as_bytes()).unwrap().is_some() {
                            fs.remove_recursive(ROOT_INO, name.as_bytes()).unwrap();
                        }
                    }
                    7 | 8 => {
                        let name = format!("s{round}");
                        let now = pool.clock().now_ns();
                        let (rule, recorded) = random_rule(&mut steps, now);
                        let refine = steps.next(3) == 0 && !subsets.is_empty();
                        let source = match refine {
                            true => {
                                SubsetSource::Snapshot(subsets[steps.next(subsets.len() as u64) as usize].0.clone())
                            }
                            false => {
                                let history = pool.history().unwrap();
                                SubsetSource::Commit(history[steps.next(history.len() as u64) as usize].0)
                            }
                        };
                        let (moment, _, from_root, _) = pool.subset_source(LIVE_TREE_ID, &source).unwrap();
                        pool.create_subset_snapshot(LIVE_TREE_ID, &name, &source, &rule, recorded).unwrap();
                        pool.commit().unwrap();
                        let entry = pool.snapshot(LIVE_TREE_ID, &name).unwrap();
                        assert_eq!(entry.txg, moment);
                        // What the rule selects from the source, by path.
                        let mut expected = files_by_path(&mut pool, from_root);
                        let mut from = Tree::open(TreeKind::Files, Owner::Meta, from_root);
                        let mut fs = FsTree::new(&mut from, &mut pool.store, false);
                        expected.retain(|path, _| {
                            let ino = fs.resolve(path).unwrap();
                            let inode = fs.inode(ino).unwrap();
                            rule.selects(
                                path.as_bytes(),
                                &inode,
                                &mut crate::fs::select::FileXattrs { fs: &mut fs, ino },
                            )
                            .unwrap()
                        });
                        let held = files_by_path(&mut pool, entry.root);
                        assert_eq!(held, expected, "seed {seed}, round {round}: @{name}");
                        for ptr in pool.blocks_born_after(&entry.root.unwrap(), moment.0, true).unwrap() {
                            assert!(ptr.kind.is_metadata(), "seed {seed}, round {round}: @{name} wrote a data block");
                        }
                        taken += usize::from(!held.is_empty());
                        subsets.push((name, held));
                    }
                    9 => {
                        let name = format!("w{round}");
                        pool.create_snapshot(LIVE_TREE_ID, &name).unwrap();
                        wholes.push(name);
                    }
                    10 if !subsets.is_empty() => {
                        let at = steps.next(subsets.len() as u64) as usize;
                        let name = subsets[at].0.clone();
                        if steps.next(2) == 1 {
                            pool.create_clone(LIVE_TREE_ID, &name, "c").unwrap();
                            pool.commit().unwrap();
                            let clone = pool.tree_id("c").unwrap();
                            let mut fs = pool.live(clone).unwrap();
                            let ino = fs.create(ROOT_INO, b"new", Inode::new(S_IFREG | 0o644, Default::default()));
                            fs.write_at(ino.unwrap(), 0, &[7; 5000]).unwrap();
                            pool.commit().unwrap();
                            crate::check::check_pool(&mut pool).unwrap().into_result().unwrap();
                            pool.destroy_clone("c").unwrap();
                            pool.commit().unwrap();
                        }
                        if destroyed(&mut pool, &name) {
                            subsets.remove(at);
                        }
                    }
                    11 if !wholes.is_empty() => {
                        let at = steps.next(wholes.len() as u64) as usize;
                        if destroyed(&mut pool, &wholes[at].clone()) {
                            wholes.remove(at);
                        }
                    }
                    12 | 13 if subsets.len() + wholes.len() >= 2 => {
                        // A merge of two or three: each file it holds is a source's, as
                        // that source holds it, and every source's path is in it.
                        let all: Vec<String> = subsets.iter().map(|s| s.0.clone()).chain(wholes.clone()).collect();
                        let mut sources: Vec<String> = Vec::new();
                        for _ in 0..2 + steps.next(2) {
                            let pick = all[steps.next(all.len() as u64) as usize].clone();
                            if !sources.contains(&pick) {
                                sources.push(pick);
                            }
                        }
                        if sources.len() < 2 {
                            continue;
                        }
                        let name = format!("m{round}");
                        pool.create_merged_snapshot(LIVE_TREE_ID, &name, &sources, usize::MAX).unwrap();
                        pool.commit().unwrap();
                        let root = pool.snapshot(LIVE_TREE_ID, &name).unwrap().root;
                        let held = files_by_path(&mut pool, root);
                        for source in &sources {
                            let root = pool.snapshot(LIVE_TREE_ID, source).unwrap().root;
                            // A path is gone only where a newer source holds its file elsewhere.
                            for (path, (ino, _)) in files_by_path(&mut pool, root) {
                                let kept = held.contains_key(&path) || held.values().any(|(i, _)| *i == ino);
                                assert!(kept, "seed {seed}, round {round}: @{name} lacks {path}");
                            }
                        }
                        let mut of_sources = Vec::new();
                        for source in &sources {
                            let root = pool.snapshot(LIVE_TREE_ID, source).unwrap().root;
                            of_sources.push(files_by_path(&mut pool, root));
                        }
                        for (path, items) in &held {
                            let found = of_sources.iter().any(|f| f.get(path) == Some(items));
                            assert!(found, "seed {seed}, round {round}: @{name}'s {path} is in no source as it is");
                        }
                        merges += 1;
                        subsets.push((name, held));
                    }
                    _ => pool.prune_history().unwrap(),
                }
                pool.commit().unwrap();
                let report = crate::check::check_pool(&mut pool).unwrap();
                assert!(report.problems.is_empty(), "seed {seed}, round {round}: {:?}", report.problems);
                for (name, held) in &subsets {
                    let root = pool.snapshot(LIVE_TREE_ID, name).unwrap().root;
                    assert_eq!(&files_by_path(&mut pool, root), held, "seed {seed}, round {round}: @{name} changed");
                }
            }
            assert!(taken > 4 && merges > 2, "seed {seed}: only {taken} subsets held files, {merges} merges");
            drop(pool);
            let mut pool = Pool::open(Box::new(device), crate::device::OpenMode::Read).unwrap();
            crate::check::check_pool(&mut pool).unwrap().into_result().unwrap();
        }
    }

    #[test]
    fn a_reader_selects_and_writers_go_on_until_the_snapshot_commits() {
        // Goal: the selection needs no writer (a reader's pool makes it); a writer that
        // commits in between changes nothing of what the snapshot then holds (the moment
        // it selected from); a source that went meanwhile refuses the snapshot.
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let mut pool = format_pool_with_clock(
            Box::new(device.clone()),
            &FormatOptions::default(),
            Arc::new(SimClock::ticking(1, 1_000_000)),
        )
        .unwrap();
        // Later handles tell the time by the host's clock, far after the simulated one.
        pool.set_history_seconds(100 * 365 * 86_400).unwrap();
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        for name in ["a.jpg", "b.jpg", "c.txt"] {
            let ino = fs.create(ROOT_INO, name.as_bytes(), Inode::new(S_IFREG | 0o644, Default::default())).unwrap();
            fs.write_at(ino, 0, &[9; 70_000]).unwrap();
        }
        pool.create_snapshot(LIVE_TREE_ID, "whole").unwrap();
        pool.commit().unwrap();
        let whole = pool.snapshot(LIVE_TREE_ID, "whole").unwrap().root;
        let before = files_by_path(&mut pool, whole);
        drop(pool);
        let rule = Rule::parse(&["*.jpg".to_string()], &[], &[], 0).unwrap();
        let mut reader = Pool::open(Box::new(device.clone()), crate::device::OpenMode::Read).unwrap();
        let now = SubsetSource::Commit(reader.commit.txg);
        let mut plan = reader.plan_subset(LIVE_TREE_ID, "jpgs", &now).unwrap();
        reader.select_subset(LIVE_TREE_ID, &mut plan, &rule).unwrap();
        let from_whole = SubsetSource::Snapshot("whole".into());
        let mut gone = reader.plan_subset(LIVE_TREE_ID, "gone", &from_whole).unwrap();
        reader.select_subset(LIVE_TREE_ID, &mut gone, &rule).unwrap();
        let mut writer = Pool::open(Box::new(device.clone()), crate::device::OpenMode::Write).unwrap();
        writer.live(LIVE_TREE_ID).unwrap().unlink(ROOT_INO, b"a.jpg").unwrap();
        writer.destroy_snapshot(LIVE_TREE_ID, "whole").unwrap();
        writer.commit().unwrap();
        writer.create_planned_subset(LIVE_TREE_ID, "jpgs", &plan, RecordedRule::default(), usize::MAX).unwrap();
        writer.commit().unwrap();
        let jpgs = writer.snapshot(LIVE_TREE_ID, "jpgs").unwrap().root;
        let held = files_by_path(&mut writer, jpgs);
        let expected: Files = before.into_iter().filter(|(path, _)| path.ends_with(".jpg")).collect();
        assert_eq!(held, expected, "the subset holds its moment, a.jpg too");
        let refused = writer.create_planned_subset(LIVE_TREE_ID, "gone", &gone, RecordedRule::default(), usize::MAX);
        assert!(refused.is_err_and(|e| e.to_string().contains("changed while its files were selected")));
        crate::check::check_pool(&mut writer).unwrap().into_result().unwrap();
    }

    #[test]
    fn a_subsets_own_bytes_are_counted_from_the_nodes_above_its_leaves() {
        // Goal: what destroying a subset frees (list's UNIQUE, `destroy -n`, the nodes
        // destroy frees) is found without reading its leaves: the figure a full walk
        // gives, in a small part of its reads (cost with the subset's internal nodes,
        // not its files).
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let reads = device.reads.clone();
        let mut pool = pool_of_3000_files(&device);
        let rule = Rule::parse(&["**".to_string()], &[], &[], 0).unwrap();
        let now = SubsetSource::Commit(pool.commit.txg);
        pool.create_subset_snapshot(LIVE_TREE_ID, "all", &now, &rule, RecordedRule::default()).unwrap();
        pool.commit().unwrap();
        drop(pool);
        let mut pool = Pool::open(Box::new(device), crate::device::OpenMode::Read).unwrap();
        let entry = pool.snapshot(LIVE_TREE_ID, "all").unwrap();
        let before = reads.load(std::sync::atomic::Ordering::Relaxed);
        let own = pool.subset_own_bytes(&entry).unwrap();
        let counted = reads.load(std::sync::atomic::Ordering::Relaxed);
        let walked = pool.blocks_born_after(&entry.root.unwrap(), entry.txg.0, true).unwrap();
        let after = reads.load(std::sync::atomic::Ordering::Relaxed);
        let footprint: u64 = walked.iter().map(|p| p.footprint_blocks() * crate::block::BLOCK_BYTES).sum();
        assert_eq!(own, footprint);
        assert!(walked.len() > 50, "{} nodes only", walked.len());
        assert!((counted - before) * 10 < after - counted, "{} reads against {}", counted - before, after - counted);
    }

    #[test]
    fn a_subset_reads_each_leaf_of_its_source_once() {
        // Goal: taking a subset reads the source's leaves once, in the selection: the
        // copy into its tree reads none of them (the kept inodes' items and the inode
        // counter are held from the walk, a kept directory's entries are the links it
        // kept), even with no cache to find them in: the writer that copies is another
        // pool than the reader that selects. A tree larger than every cache had each leaf
        // read, checked and decoded twice.
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let reads = device.reads.clone();
        let pool = pool_of_3000_files(&device);
        let source = pool.commit.txg;
        drop(pool);
        let mut pool = Pool::open(Box::new(device), crate::device::OpenMode::Write).unwrap();
        pool.store.node_cache.set_limit(0);
        let count = || reads.load(std::sync::atomic::Ordering::Relaxed);
        let rule = Rule::parse(&["**/f*0".to_string()], &[], &[], 0).unwrap();
        let mut plan = pool.plan_subset(LIVE_TREE_ID, "tenth", &SubsetSource::Commit(source)).unwrap();
        let before = count();
        pool.select_subset(LIVE_TREE_ID, &mut plan, &rule).unwrap();
        let selected = count();
        pool.create_planned_subset(LIVE_TREE_ID, "tenth", &plan, RecordedRule::default(), usize::MAX).unwrap();
        let copied = count();
        assert_eq!(plan.stats().files, 300);
        let mut leaves = 0;
        let root = plan.source_root().unwrap();
        walk_nodes(&mut pool.store, &root, TreeKind::Files, &mut |ptr, _| {
            leaves += u64::from(ptr.level == 0);
            Ok(WalkStep::Descend)
        })
        .unwrap();
        assert!(selected - before >= leaves, "the selection read {} of {leaves} leaves", selected - before);
        // The copy reads none of the source (nor of the tables, which the checks before
        // it have loaded).
        assert_eq!(copied - selected, 0, "the copy read blocks; the source has {leaves} leaves");
        pool.commit().unwrap();
        crate::check::check_pool(&mut pool).unwrap().into_result().unwrap();
    }

    /// A pool on `device` of 10 directories of 300 files of 100 bytes, committed.
    fn pool_of_3000_files(device: &CrashDevice) -> Pool {
        let clock = Arc::new(SimClock::ticking(2, 1_000_000));
        let mut pool = format_pool_with_clock(Box::new(device.clone()), &FormatOptions::default(), clock).unwrap();
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        for d in 0..10 {
            let dir = fs.create(ROOT_INO, format!("d{d}").as_bytes(), Inode::new(S_IFDIR | 0o755, Default::default()));
            let dir = dir.unwrap();
            for f in 0..300 {
                let ino = fs.create(dir, format!("f{f}").as_bytes(), Inode::new(S_IFREG | 0o644, Default::default()));
                fs.write_at(ino.unwrap(), 0, &[f as u8; 100]).unwrap();
            }
        }
        pool.commit().unwrap();
        pool
    }

    /// Destroys snapshot `name`, unless a merge needs it (said so): whether it went.
    fn destroyed(pool: &mut Pool, name: &str) -> bool {
        match pool.destroy_snapshot(LIVE_TREE_ID, name) {
            Ok(_) => true,
            Err(Error::Refused(Refusal::MergedInto { .. })) => false,
            Err(e) => panic!("destroy @{name}: {e}"),
        }
    }
}
