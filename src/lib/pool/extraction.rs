//! Subset snapshots recorded at once and extracted in steps, so that taking one over a
//! large tree never keeps other writers waiting longer than one commit.
//!
//! The commit that records a subset snapshot (subsets.rs `create_planned_subset`)
//! writes its entry with at most a step's worth of its selected inodes; if more remain,
//! the entry says from which inode (`Subset::extracting`), and each later commit copies
//! the next inodes into its tree, in key order, until the tree is whole. Its nodes are
//! its own (born after its moment): the ones a step rewrites are freed as any pool
//! metadata. The selection is not stored: the moment is immutable, so whoever resumes
//! (`snapctl extract`, after a kill or a crash) selects again and goes on from the
//! entry's inode, making the same tree.
//!
//! Meanwhile the snapshot is recorded: listed, held, renamed or destroyed, and it keeps
//! its moment as any snapshot of it. Readers see the moment through its rule:
//! `Pool::view` (ls, cat, export) builds its tree in memory. What needs its tree on the
//! device (send, diff, clone, refining, merging, promoting) is refused until the tree is
//! whole, naming the command that finishes it. A refinement or a merge being extracted
//! keeps every snapshot it reads (in `needs` until then; a merge's older sources stay
//! there after).

use super::Pool;
use super::subsets::{MergePlan, SubsetPlan};
use crate::error::{Error, Refusal, Result};
use crate::format::node::TreeKind;
use crate::format::tables::SnapshotEntry;
use crate::fs::FsTree;
use crate::fs::select::Rule;
use crate::fs::subset::{SubsetStats, copy_selection, copy_selection_from, place, write_union_from};
use crate::store::Owner;
use crate::tree::Tree;

/// Selected inodes a commit copies into a subset snapshot's tree at most, unless
/// `SNAPFS_EXTRACT_INODES` says otherwise: about 50 ms of work on a 2-core machine, the
/// time of an ordinary commit.
pub const EXTRACT_INODES: usize = 4096;

/// One step of an extraction, committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// The snapshot's name now.
    pub name: String,
    /// Selected inodes in its tree now, and in all.
    pub inodes_done: usize,
    pub inodes: usize,
}

impl Extracted {
    pub fn is_done(&self) -> bool {
        self.inodes_done == self.inodes
    }
}

impl Pool {
    /// Refuses what needs a subset snapshot's whole tree while it is being extracted.
    pub fn refuse_if_extracting(entry: &SnapshotEntry, what: &str) -> Result<()> {
        match entry.subset.as_ref().is_some_and(|s| s.is_extracting()) {
            false => Ok(()),
            true => Err(Error::Refused(Refusal::StillExtracting { name: entry.name.clone(), what: what.to_string() })),
        }
    }

    /// The snapshots of every tree whose extraction has not ended, oldest first.
    pub fn extracting_snapshots(&mut self) -> Result<Vec<SnapshotEntry>> {
        Ok(self.all_snapshots()?.filter(|s| s.subset.as_ref().is_some_and(|x| x.is_extracting())).cloned().collect())
    }

    /// The plan that resumes extracting `entry`: for a rule, its source as its entry
    /// records it (the moment, or the snapshot it refines), the rule parsed again against
    /// its moment's time, and (a walk of the source) the files selected; for a merge, its
    /// sources (`needs`, in the order united) and where each file comes from. A reader's
    /// pool makes it while writers go on (pin the entry's moment first).
    pub fn extraction_plan(&mut self, entry: &SnapshotEntry) -> Result<ExtractionPlan> {
        let subset = entry.subset.as_ref().ok_or_else(|| Error::invalid(format!("@{} is no subset", entry.name)))?;
        let mut needed = Vec::new();
        for guid in &subset.needs {
            needed.push(self.snapshot_by_guid(entry.tree, guid)?.ok_or_else(|| {
                Error::corrupt(format!("@{} is extracted from a snapshot the pool no longer has", entry.name))
            })?);
        }
        if !subset.rule.merged.is_empty() {
            let mut plan = MergePlan::of(&needed);
            plan.union = place(&mut self.store, &plan.sources)?;
            return Ok(ExtractionPlan::Merge(plan));
        }
        let from = match &subset.rule.from {
            None => None,
            Some(_) => Some(needed.first().ok_or_else(|| {
                Error::corrupt(format!("@{} refines a snapshot that its entry does not name", entry.name))
            })?),
        };
        let rule = &subset.rule;
        let parsed = Rule::parse(&rule.matches, &rule.excludes, &rule.conditions, entry.time_ns)?;
        let mut plan = SubsetPlan::of_entry(entry, from);
        self.select_subset(entry.tree, &mut plan, &parsed)?;
        Ok(ExtractionPlan::Rule(plan))
    }

    /// Copies the next `most` inodes of subset snapshot `name` of `tree` (its guid
    /// `guid`, as `plan` selected or placed them) into its tree, in this transaction.
    pub fn extract_step(
        &mut self,
        tree: u64,
        name: &str,
        guid: &[u8; 16],
        plan: &ExtractionPlan,
        most: usize,
    ) -> Result<Extracted> {
        self.writable()?;
        // By name, one lookup; by guid, if it was renamed meanwhile.
        let entry = match self.snapshot_exists(tree, name)? {
            true => Some(self.snapshot(tree, name)?).filter(|e| &e.guid == guid),
            false => None,
        };
        let mut entry = match entry {
            Some(entry) => entry,
            None => self.snapshot_by_guid(tree, guid)?.ok_or_else(|| {
                Error::invalid(format!(
                    "subset snapshot @{name} was destroyed while its files were being extracted: nothing to finish"
                ))
            })?,
        };
        let inodes = plan.inodes();
        let Some(mut subset) = entry.subset.clone() else {
            return Err(Error::corrupt(format!("@{} is no subset snapshot", entry.name)));
        };
        let Some(from) = subset.extracting else {
            return Ok(Extracted { name: entry.name, inodes_done: inodes, inodes });
        };
        // Its own nodes, as when it was recorded (subsets.rs): pool metadata to the
        // store, freed when a step rewrites them.
        let mut built = Tree::open(TreeKind::Files, Owner::Meta, entry.root);
        let next = match plan {
            ExtractionPlan::Rule(plan) => {
                if (plan.moment().0, plan.pinned()) != (entry.txg, subset.pinned) {
                    return Err(Error::invalid(format!(
                        "@{}: its files were selected from another moment",
                        entry.name
                    )));
                }
                let mut source = Tree::open(TreeKind::Files, Owner::Files(tree), plan.source_root());
                let mut fs = FsTree::new(&mut source, &mut self.store, false);
                copy_selection_from(&mut fs, &plan.selection, &mut built, from, most)?
            }
            ExtractionPlan::Merge(plan) => {
                write_union_from(&mut self.store, &plan.sources, &plan.union, &mut built, from, most)?
            }
        };
        entry.root = built.flush(&mut self.store)?;
        subset.built = self.store.txg;
        subset.extracting = next;
        match (next, plan) {
            (Some(_), _) => {}
            // Whole: a refinement no longer reads the snapshot it refines; a merge keeps
            // only the sources older than its moment.
            (None, ExtractionPlan::Rule(_)) => subset.needs.clear(),
            (None, ExtractionPlan::Merge(plan)) => subset.needs = plan.older.clone(),
        }
        entry.subset = Some(subset);
        // Counted once, when whole: a walk per step would grow with the steps done.
        if self.has_space_counters() && next.is_none() {
            entry.referenced_bytes = super::count_referenced(&mut self.store, entry.root)?;
        }
        self.rewrite_snapshot(&entry)?;
        let inodes_done = next.map_or(inodes, |n| plan.inodes_below(n));
        Ok(Extracted { name: entry.name, inodes_done, inodes })
    }

    /// The tree a reader sees in subset snapshot `entry` while it is being extracted:
    /// its moment through its rule, or its sources united, built in memory (never
    /// written).
    pub(super) fn extracting_view(&mut self, entry: &SnapshotEntry) -> Result<Tree> {
        let mut view = Tree::open(TreeKind::Files, Owner::Meta, None);
        match self.extraction_plan(entry)? {
            ExtractionPlan::Rule(plan) => {
                let mut source = Tree::open(TreeKind::Files, Owner::Files(entry.tree), plan.source_root());
                let mut fs = FsTree::new(&mut source, &mut self.store, false);
                copy_selection(&mut fs, &plan.selection, &mut view)?;
            }
            ExtractionPlan::Merge(plan) => {
                write_union_from(&mut self.store, &plan.sources, &plan.union, &mut view, 0, usize::MAX)?;
            }
        }
        Ok(view)
    }
}

/// What an extraction copies: the files a rule selected, or a merge's union.
pub enum ExtractionPlan {
    Rule(SubsetPlan),
    Merge(MergePlan),
}

impl ExtractionPlan {
    /// Inodes it copies in all.
    pub fn inodes(&self) -> usize {
        match self {
            ExtractionPlan::Rule(plan) => plan.inodes(),
            ExtractionPlan::Merge(plan) => plan.union.inodes(),
        }
    }

    /// Inodes below `ino`: what an extraction that goes on from it did.
    pub fn inodes_below(&self, ino: u64) -> usize {
        match self {
            ExtractionPlan::Rule(plan) => plan.inodes_below(ino),
            ExtractionPlan::Merge(plan) => plan.union.inodes_below(ino),
        }
    }

    /// What the snapshot holds once whole.
    pub fn stats(&self) -> SubsetStats {
        match self {
            ExtractionPlan::Rule(plan) => plan.stats().clone(),
            ExtractionPlan::Merge(plan) => plan.union.stats.held.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::device::{CrashDevice, OpenMode};
    use crate::format::tables::RecordedRule;
    use crate::fs::inode::{Inode, ROOT_INO, S_IFDIR, S_IFLNK, S_IFREG};
    use crate::pool::SubsetSource;
    use crate::pool::{FormatOptions, LIVE_TREE_ID, format_pool_with_clock};
    use std::sync::{Arc, Mutex};

    type Items = Vec<(Vec<u8>, Vec<u8>)>;

    /// Every item of the file tree snapshot `name` shows, as a reader sees it.
    fn items(pool: &mut Pool, name: &str) -> Items {
        let (mut tree, store) = pool.view(LIVE_TREE_ID, Some(name)).unwrap();
        tree.scan_prefix(store, &[]).unwrap()
    }

    fn open(bytes: &Arc<Mutex<Vec<u8>>>, writes_left: Option<u64>) -> Pool {
        Pool::open(Box::new(CrashDevice::new(bytes.clone(), writes_left)), OpenMode::Write).unwrap()
    }

    /// Directories, files (some selected), hard links, a symlink and xattrs.
    fn fill(pool: &mut Pool, round: u8) {
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        for d in 0..4u8 {
            let name = format!("d{d}");
            let dir = match fs.lookup(ROOT_INO, name.as_bytes()).unwrap() {
                Some(e) => e.ino,
                None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(S_IFDIR | 0o755, Default::default())).unwrap(),
            };
            for f in 0..9u8 {
                let name = format!("r{round}f{f}.{}", ["jpg", "txt"][usize::from(f % 3 == 0)]);
                let ino = fs.create(dir, name.as_bytes(), Inode::new(S_IFREG | 0o644, Default::default())).unwrap();
                fs.write_at(ino, 0, &vec![round ^ f; 3000 + 1000 * usize::from(f)]).unwrap();
                match f % 4 {
                    0 => fs.set_xattr(ino, b"user.tag", b"x").unwrap(),
                    1 => fs.link(ino, ROOT_INO, format!("r{round}d{d}link{f}.jpg").as_bytes()).unwrap(),
                    _ => {}
                }
            }
        }
        let link =
            fs.create(ROOT_INO, format!("r{round}sym.jpg").as_bytes(), Inode::new(S_IFLNK | 0o777, Default::default()));
        fs.set_symlink_target(link.unwrap(), b"d0/f1.jpg").unwrap();
    }

    /// Records subset `name` of the last commit with `most` inodes, and returns its plan.
    fn record(
        pool: &mut Pool,
        name: &str,
        source: SubsetSource,
        rule: &str,
        most: usize,
    ) -> (ExtractionPlan, [u8; 16]) {
        let recorded = RecordedRule {
            from: matches!(&source, SubsetSource::Snapshot(_)).then(|| "source".into()),
            matches: vec![rule.into()],
            ..RecordedRule::default()
        };
        let parsed = Rule::parse(&recorded.matches, &[], &[], 0).unwrap();
        let mut plan = pool.plan_subset(LIVE_TREE_ID, name, &source).unwrap();
        pool.select_subset(LIVE_TREE_ID, &mut plan, &parsed).unwrap();
        let (_, guid) = pool.create_planned_subset(LIVE_TREE_ID, name, &plan, recorded, most).unwrap();
        pool.commit().unwrap();
        (ExtractionPlan::Rule(plan), guid)
    }

    fn clean(pool: &mut Pool, what: &str) {
        let report = crate::check::check_pool(pool).unwrap();
        assert!(report.problems.is_empty(), "{what}: {:?}", report.problems);
    }

    #[test]
    fn a_tree_extracted_in_steps_is_the_tree_taken_at_once_whatever_happens_between_and_during_steps() {
        // Goal: a subset snapshot recorded with part of its files and extracted a few
        // inodes per commit ends with exactly the items it would have had taken in one
        // commit, whatever writers commit between its steps and wherever the power is cut
        // during a step (the pool then opens and checks clean, and an extraction resumed
        // from the entry, as `snapctl extract` does, goes on to the same tree); meanwhile
        // readers see that whole tree (`view`), what needs its tree on the device is
        // refused, and a refinement being extracted keeps the snapshot it refines.
        let bytes = Arc::new(Mutex::new(vec![0; 64 << 20]));
        let device = CrashDevice::new(bytes.clone(), None);
        let clock = Arc::new(SimClock::ticking(3, 1_000_000));
        let mut pool = format_pool_with_clock(Box::new(device), &FormatOptions::default(), clock).unwrap();
        fill(&mut pool, 0);
        pool.commit().unwrap();
        pool.create_snapshot(LIVE_TREE_ID, "first").unwrap();
        pool.commit().unwrap();
        fill(&mut pool, 200);
        pool.commit().unwrap();
        let moment = SubsetSource::Commit(pool.commit.txg);
        let rule = Rule::parse(&["**/*.jpg".to_string()], &[], &[], 0).unwrap();
        let recorded = RecordedRule { matches: vec!["**/*.jpg".into()], ..RecordedRule::default() };
        pool.create_subset_snapshot(LIVE_TREE_ID, "once", &moment, &rule, recorded).unwrap();
        pool.commit().unwrap();
        let once = items(&mut pool, "once");
        let (plan, guid) = record(&mut pool, "steps", moment.clone(), "**/*.jpg", 5);
        assert!(plan.inodes() > 20, "{} inodes: too few steps", plan.inodes());
        clean(&mut pool, "recorded");
        assert_eq!(items(&mut pool, "steps"), once, "a reader sees the whole subset at once");

        let entry = pool.snapshot(LIVE_TREE_ID, "steps").unwrap();
        let refused = |r: Result<()>| matches!(r, Err(Error::Refused(Refusal::StillExtracting { .. })));
        assert!(refused(pool.create_clone(LIVE_TREE_ID, "steps", "c").map(|_| ())));
        assert!(refused(crate::stream::send::plan(&mut pool, LIVE_TREE_ID, None, "steps", false).map(|_| ())));
        let merge = pool.create_merged_snapshot(LIVE_TREE_ID, "m", &["once".into(), "steps".into()], 5);
        assert!(refused(merge.map(|_| ())));
        let refine = pool.plan_subset(LIVE_TREE_ID, "r", &SubsetSource::Snapshot("steps".into()));
        assert!(refused(refine.map(|_| ())));
        assert_eq!(pool.extracting_snapshots().unwrap(), vec![entry]);

        // Steps with writers between them; each step is cut short by a power cut at
        // every point of its writes once, then done whole.
        let mut round = 1;
        loop {
            let done = pool.snapshot(LIVE_TREE_ID, "steps").unwrap().subset.unwrap().extracting.is_none();
            if done {
                break;
            }
            fill(&mut pool, round);
            pool.commit().unwrap();
            round += 1;
            let before = bytes.lock().unwrap().clone();
            drop(pool);
            for cut in [0, 1, 3, 7, 15, 40] {
                *bytes.lock().unwrap() = before.clone();
                let mut cut_pool = open(&bytes, Some(cut));
                if cut_pool.extract_step(LIVE_TREE_ID, "steps", &guid, &plan, 5).is_ok() {
                    _ = cut_pool.commit();
                }
                drop(cut_pool);
                let mut after = open(&bytes, None);
                clean(&mut after, &format!("cut after {cut} writes"));
                assert_eq!(items(&mut after, "steps"), once, "cut after {cut} writes: readers see the subset");
                // Resumed from the entry, by a new plan: the same tree.
                let entry = after.snapshot(LIVE_TREE_ID, "steps").unwrap();
                let again = after.extraction_plan(&entry).unwrap();
                while !after.extract_step(LIVE_TREE_ID, "steps", &guid, &again, 7).unwrap().is_done() {
                    after.commit().unwrap();
                }
                after.commit().unwrap();
                clean(&mut after, &format!("cut after {cut} writes, resumed"));
                let root = after.snapshot(LIVE_TREE_ID, "steps").unwrap().root;
                let mut tree = Tree::open(TreeKind::Files, Owner::Meta, root);
                assert_eq!(tree.scan_prefix(&mut after.store, &[]).unwrap(), once, "cut after {cut}: resumed");
            }
            *bytes.lock().unwrap() = before;
            pool = open(&bytes, None);
            pool.extract_step(LIVE_TREE_ID, "steps", &guid, &plan, 5).unwrap();
            pool.commit().unwrap();
            clean(&mut pool, &format!("step of round {round}"));
            assert_eq!(items(&mut pool, "steps"), once);
        }
        assert!(round > 4, "{round} steps only");
        let entry = pool.snapshot(LIVE_TREE_ID, "steps").unwrap();
        let mut tree = Tree::open(TreeKind::Files, Owner::Meta, entry.root);
        assert_eq!(tree.scan_prefix(&mut pool.store, &[]).unwrap(), once, "extracted in steps = taken at once");
        let ours = pool.blocks_born_after(&entry.root.unwrap(), entry.txg.0, true).unwrap();
        assert!(ours.iter().all(|p| p.kind.is_metadata()), "no data block written");

        // A refinement being extracted keeps its source; once whole, it does not.
        let (plan, guid) = record(&mut pool, "refined", SubsetSource::Snapshot("steps".into()), "d1/**", 2);
        let destroy = pool.destroy_snapshot(LIVE_TREE_ID, "steps");
        assert!(matches!(destroy, Err(Error::Refused(Refusal::ExtractedFrom { .. }))), "{destroy:?}");
        clean(&mut pool, "refinement recorded");
        while !pool.extract_step(LIVE_TREE_ID, "refined", &guid, &plan, 2).unwrap().is_done() {
            pool.commit().unwrap();
        }
        pool.commit().unwrap();
        let refined = items(&mut pool, "refined");

        // A merge of the subset and an older whole snapshot, in steps: the tree a merge
        // in one commit makes; every source kept till then, the older one after.
        let sources = ["steps".to_string(), "first".to_string()];
        let one = pool.create_merged_snapshot(LIVE_TREE_ID, "united", &sources, usize::MAX).unwrap();
        assert!(one.2.is_none(), "a merge in one commit has nothing left to extract");
        pool.commit().unwrap();
        let united = items(&mut pool, "united");
        let (_, guid, plan) = pool.create_merged_snapshot(LIVE_TREE_ID, "merged", &sources, 4).unwrap();
        let plan = ExtractionPlan::Merge(plan.expect("more than 4 inodes"));
        pool.commit().unwrap();
        clean(&mut pool, "merge recorded");
        assert_eq!(items(&mut pool, "merged"), united, "a reader sees the whole union at once");
        for source in &sources {
            let destroy = pool.destroy_snapshot(LIVE_TREE_ID, source);
            assert!(matches!(destroy, Err(Error::Refused(Refusal::ExtractedFrom { .. }))), "{destroy:?}");
        }
        let mut steps = 1;
        while !pool.extract_step(LIVE_TREE_ID, "merged", &guid, &plan, 4).unwrap().is_done() {
            pool.commit().unwrap();
            clean(&mut pool, "merge step");
            steps += 1;
        }
        pool.commit().unwrap();
        assert!(steps > 5, "{steps} steps only");
        let root = pool.snapshot(LIVE_TREE_ID, "merged").unwrap().root;
        let mut tree = Tree::open(TreeKind::Files, Owner::Meta, root);
        assert_eq!(tree.scan_prefix(&mut pool.store, &[]).unwrap(), united, "merged in steps = merged at once");
        pool.destroy_snapshot(LIVE_TREE_ID, "united").unwrap();
        let destroy = pool.destroy_snapshot(LIVE_TREE_ID, "first");
        assert!(matches!(destroy, Err(Error::Refused(Refusal::MergedInto { .. }))), "{destroy:?}");
        pool.destroy_snapshot(LIVE_TREE_ID, "merged").unwrap();
        pool.destroy_snapshot(LIVE_TREE_ID, "steps").unwrap();
        pool.destroy_snapshot(LIVE_TREE_ID, "once").unwrap();
        pool.commit().unwrap();
        clean(&mut pool, "sources destroyed");
        assert_eq!(items(&mut pool, "refined"), refined);
        assert!(refined.len() > 10, "the refinement holds {} items", refined.len());
    }
}
