//! Snapshots of a tree: take one, destroy one, rename one, roll the tree back to one,
//! list them with what each alone keeps.

use crate::error::{Error, Result};
use crate::format::tables::RecordedRule;
use crate::fs::select::Rule;
use crate::fs::subset::{SubsetStats, UnionStats};
use crate::pool::{Extracted, ExtractionPlan, Pool, SubsetPlan, SubsetSource, guid_hex, snapshot_name};
use crate::utc::format_time_ns;
use serde::Serialize;

/// A snapshot taken and committed.
pub struct Taken {
    pub name: String,
    /// The commit whose state it holds.
    pub txg: u64,
    /// A snapshot of a past moment: the time of that commit (its creation time).
    pub past: Option<u64>,
    /// A subset snapshot: what its rule selected.
    pub subset: Option<SubsetStats>,
}

/// Takes snapshot `name` of `tree` and commits it.
pub fn snapshot(pool: &mut Pool, tree: u64, name: &str) -> Result<Taken> {
    pool.create_snapshot(tree, name)?;
    let summary = pool.commit()?;
    Ok(Taken { name: name.to_string(), txg: summary.txg.map_or(0, |t| t.0), past: None, subset: None })
}

/// Where a subset snapshot takes its files from: a moment (nanoseconds since the epoch),
/// another snapshot, or (neither) the tree as last committed.
pub enum SubsetFrom {
    Now,
    Moment(u64),
    Snapshot(String),
}

/// A subset snapshot whose files a reader has selected (`plan_subset`), to be taken by
/// a writer (`take_subset`).
pub struct PlannedSubset {
    plan: SubsetPlan,
    rule: RecordedRule,
}

/// Selects the files of subset snapshot `name` of `tree`: those the rule (`--match`,
/// `--exclude`, `--where` as given) selects from `from`. On a reader's pool this pins
/// the moment and walks it while writers go on: the walk, which reads every entry of
/// the source, is most of a subset's cost. Times in conditions written relative to now
/// are read against the moment the snapshot holds.
pub fn plan_subset(
    pool: &mut Pool,
    tree: u64,
    name: &str,
    from: SubsetFrom,
    rule: RecordedRule,
) -> Result<PlannedSubset> {
    let source = match &from {
        SubsetFrom::Now => SubsetSource::Commit(pool.commit.txg),
        SubsetFrom::Moment(moment) => SubsetSource::Commit(retained_commit_at(pool, *moment)?.0),
        SubsetFrom::Snapshot(name) => SubsetSource::Snapshot(name.clone()),
    };
    let mut plan = pool.plan_subset(tree, name, &source)?;
    let parsed = Rule::parse(&rule.matches, &rule.excludes, &rule.conditions, plan.moment().1)?;
    let rule = RecordedRule {
        from: match from {
            SubsetFrom::Snapshot(name) => Some(name),
            _ => None,
        },
        ..rule
    };
    rule.check_fits()?;
    pool.pin_for_reading(&[plan.checkpoint(tree)])?;
    pool.select_subset(tree, &mut plan, &parsed)?;
    Ok(PlannedSubset { plan, rule })
}

/// Takes subset snapshot `name` of `tree` as `planned` selected it, with at most `most`
/// of its inodes copied, and commits it. What is left, if any, is extracted by
/// `extract_step` in commits of their own (pool/extraction.rs), from what this returns.
pub fn take_subset(
    pool: &mut Pool,
    tree: u64,
    name: &str,
    planned: PlannedSubset,
    most: usize,
) -> Result<(Taken, Option<Extraction>)> {
    let (stats, guid) = pool.create_planned_subset(tree, name, &planned.plan, planned.rule, most)?;
    pool.commit()?;
    let (txg, time) = planned.plan.moment();
    let taken = Taken { name: name.to_string(), txg: txg.0, past: Some(time), subset: Some(stats) };
    // Its commit copied `most` inodes: more are left if it selected more.
    let extraction = (planned.plan.inodes() > most)
        .then(|| Extraction::started(tree, guid, name, ExtractionPlan::Rule(planned.plan), most));
    Ok((taken, extraction))
}

/// A subset snapshot whose files are being extracted, and what is done.
pub struct Extraction {
    tree: u64,
    guid: [u8; 16],
    plan: ExtractionPlan,
    most: usize,
    pub done: Extracted,
    /// Commits that copied its inodes so far (in this process).
    pub commits: u64,
}

impl Extraction {
    /// An extraction whose recording commit copied the first `most` inodes of `plan`.
    fn started(tree: u64, guid: [u8; 16], name: &str, plan: ExtractionPlan, most: usize) -> Extraction {
        let inodes = plan.inodes();
        let done = Extracted { name: name.to_string(), inodes_done: most.min(inodes), inodes };
        Extraction { tree, guid, plan, most, done, commits: 1 }
    }

    /// Inodes a commit copies at most.
    pub fn most(&self) -> usize {
        self.most
    }
}

/// The extractions to finish: of the snapshots `names` (tree, name; each must be being
/// extracted), or with none named, of every such snapshot of the pool. On a reader's
/// pool, the selections (a walk of each source) run while writers go on.
pub fn plan_extractions(pool: &mut Pool, names: &[(u64, String)], most: usize) -> Result<Vec<Extraction>> {
    let entries = match names.is_empty() {
        true => pool.extracting_snapshots()?,
        false => {
            let mut entries = Vec::new();
            for (tree, name) in names {
                let entry = pool.snapshot(*tree, name)?;
                if !entry.subset.as_ref().is_some_and(|s| s.is_extracting()) {
                    return Err(Error::invalid(format!("@{name} is not being extracted: its tree is whole")));
                }
                entries.push(entry);
            }
            entries
        }
    };
    let mut planned = Vec::new();
    for entry in entries {
        pool.pin_for_reading(&[(entry.tree, entry.txg)])?;
        let plan = pool.extraction_plan(&entry)?;
        let next = entry.subset.and_then(|s| s.extracting).unwrap_or(0);
        let inodes = plan.inodes();
        let done = Extracted { name: entry.name, inodes_done: plan.inodes_below(next), inodes };
        planned.push(Extraction { tree: entry.tree, guid: entry.guid, plan, most, done, commits: 0 });
    }
    Ok(planned)
}

/// Copies the next inodes of `extraction` into its snapshot's tree and commits: one
/// step, which a writer's pool opened for it alone takes (others wait no longer).
pub fn extract_step(pool: &mut Pool, extraction: &mut Extraction) -> Result<()> {
    let e = &mut *extraction;
    e.done = pool.extract_step(e.tree, &e.done.name, &e.guid, &e.plan, e.most)?;
    pool.commit()?;
    e.commits += 1;
    Ok(())
}

/// A merged snapshot taken and committed.
pub struct Merged {
    pub name: String,
    /// The moment it holds: its newest source's.
    pub txg: u64,
    /// Its sources, newest first, each with the files taken from it.
    pub sources: Vec<(String, u64)>,
    pub stats: UnionStats,
}

/// Takes snapshot `name` of `tree` uniting its snapshots `sources`, with at most `most`
/// of its inodes copied, and commits it; the rest, if any, as `take_subset` leaves it.
pub fn snapshot_merged(
    pool: &mut Pool,
    tree: u64,
    name: &str,
    sources: &[String],
    most: usize,
) -> Result<(Merged, Option<Extraction>)> {
    let (stats, guid, plan) = pool.create_merged_snapshot(tree, name, sources, most)?;
    pool.commit()?;
    let entry = pool.snapshot(tree, name)?;
    let order = entry.subset.map(|s| s.rule.merged).unwrap_or_default();
    let extraction = plan.map(|plan| Extraction::started(tree, guid, name, ExtractionPlan::Merge(plan), most));
    let sources = order.into_iter().zip(stats.taken.iter().copied()).collect();
    Ok((Merged { name: name.to_string(), txg: entry.txg.0, sources, stats }, extraction))
}

/// Takes snapshot `name` of `tree` as it was at `moment` (nanoseconds since the epoch,
/// not after now): the newest retained commit made at or before it. Refused, naming the
/// oldest moment still retained, if the history does not reach back that far.
pub fn snapshot_at(pool: &mut Pool, tree: u64, name: &str, moment: u64) -> Result<Taken> {
    let (txg, time) = retained_commit_at(pool, moment)?;
    pool.create_snapshot_at(tree, name, txg)?;
    pool.commit()?;
    Ok(Taken { name: name.to_string(), txg: txg.0, past: Some(time), subset: None })
}

/// The newest retained commit at or before `moment`, (txg, time), or the error that
/// says how far back the history goes.
pub fn retained_commit_at(pool: &mut Pool, moment: u64) -> Result<(crate::block::Txg, u64)> {
    if let Some(found) = pool.retained_commit_at(moment)? {
        return Ok(found);
    }
    let oldest = pool.oldest_retained()?.map(|(txg, time)| (txg.0, format_time_ns(time)));
    Err(Error::MomentNotRetained { moment: format_time_ns(moment), oldest })
}

/// Snapshots destroyed together and committed, or (a dry run) what that would do.
pub struct Destroyed {
    /// In txg order.
    pub names: Vec<String>,
    pub dry_run: bool,
    /// What the commit freed (a dry run: would free): blocks only these snapshots kept
    /// and no retained commit sees.
    pub freed_bytes: u64,
    /// A dry run: what retained commits would go on holding of what only these kept.
    /// Else, when older commits are retained: all that the history alone holds now.
    pub history_held_bytes: Option<u64>,
}

/// The snapshots of `tree` that `specs` name, in txg order, each once: `@NAME`, or
/// `@FIRST%@LAST` (also `@FIRST%LAST`) for every snapshot from FIRST to LAST, both
/// included, as `zfs destroy` takes them.
pub fn select(pool: &mut Pool, tree: u64, specs: &[String]) -> Result<Vec<String>> {
    let all = pool.snapshots_of(tree)?;
    let mut chosen = std::collections::BTreeSet::new();
    for spec in specs {
        let position = |name: &str| -> Result<usize> {
            let name = snapshot_name(name)?;
            all.iter()
                .position(|s| s.name == name)
                .ok_or_else(|| Error::SnapshotNotFound { name: name.to_string(), base: false })
        };
        match spec.split_once('%') {
            None => _ = chosen.insert(position(spec)?),
            Some((first, last)) => {
                let last = if last.starts_with('@') { last.to_string() } else { format!("@{last}") };
                let (from, to) = (position(first)?, position(&last)?);
                if from > to {
                    return Err(Error::invalid(format!(
                        "{spec}: {last} is older than {first}; a range goes from the older snapshot to the newer"
                    )));
                }
                chosen.extend(from..=to);
            }
        }
    }
    Ok(chosen.into_iter().map(|i| all[i].name.clone()).collect())
}

/// Destroys snapshots `names` of `tree` in one commit; with `dry_run`, changes nothing
/// and says what it would free. Refused as a whole if any is held or is the base of a
/// saved partial receive.
pub fn destroy(pool: &mut Pool, tree: u64, names: &[String], dry_run: bool) -> Result<Destroyed> {
    for name in names {
        Pool::refuse_if_held(&pool.snapshot(tree, name)?)?;
    }
    if dry_run {
        let estimate = pool.destroy_estimate(tree, names)?;
        return Ok(Destroyed {
            names: names.to_vec(),
            dry_run,
            freed_bytes: estimate.freed_bytes,
            history_held_bytes: Some(estimate.history_held_bytes),
        });
    }
    for name in names {
        pool.destroy_snapshot(tree, name)?;
    }
    let summary = pool.commit()?;
    // What the history holds is a walk of the dead index: only when there is a history.
    let history_held_bytes = match pool.retains_older_commits()? {
        true => Some(pool.history_held_bytes()?),
        false => None,
    };
    Ok(Destroyed { names: names.to_vec(), dry_run, freed_bytes: summary.freed_bytes, history_held_bytes })
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
    /// The bookmarks made after it, destroyed by the rollback (with -r), oldest first.
    pub destroyed_bookmarks: Vec<String>,
    /// What the commit freed: what the tree gained since the snapshot, and what only
    /// the destroyed snapshots kept, unless retained commits still see it.
    pub freed_bytes: u64,
}

/// Makes the live tree of `tree` snapshot `name` again, destroying the snapshots taken
/// after it if `destroy_later` (else they refuse it), and commits.
pub fn rollback(pool: &mut Pool, tree: u64, name: &str, destroy_later: bool) -> Result<RolledBack> {
    let (target, destroyed, bookmarks) = pool.rollback_to(tree, name, destroy_later)?;
    let summary = pool.commit()?;
    Ok(RolledBack {
        name: target.name,
        txg: target.txg.0,
        destroyed: destroyed.into_iter().rev().map(|s| s.name).collect(),
        destroyed_bookmarks: bookmarks.into_iter().map(|b| b.name).collect(),
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
    /// A subset snapshot whose files are still being extracted (`snapctl extract`).
    pub extracting: bool,
    pub guid: String,
    /// The tags of the holds on it, in the order they were placed.
    pub holds: Vec<String>,
    pub name: String,
    /// Bytes of every block it reaches (ZFS's `referenced`).
    pub referenced_bytes: u64,
    /// A subset snapshot's rule, as given; null for a snapshot of the whole tree.
    pub rule: Option<RecordedRule>,
    /// The tree it is a snapshot of: "live", or a clone's name.
    pub tree: String,
    pub txg: u64,
    /// What destroying it would free now (ZFS's `used`).
    pub unique_bytes: u64,
    /// What it references that the snapshot before it did not (ZFS's `written`).
    pub written_bytes: u64,
}

/// The snapshots of `tree`, oldest first.
pub fn list(pool: &mut Pool, tree: u64) -> Result<Vec<Listed>> {
    let space = pool.snapshot_space(tree)?;
    let tree_name = pool.tree_name(tree)?;
    let listed = pool
        .snapshots_of(tree)?
        .into_iter()
        .map(|s| (space.get(&s.name).copied().unwrap_or_default(), s))
        .map(|(space, s)| Listed {
            created: format_time_ns(s.time_ns),
            created_unix_ns: s.time_ns,
            extracting: s.subset.as_ref().is_some_and(|x| x.is_extracting()),
            guid: guid_hex(&s.guid),
            holds: s.holds.iter().map(|h| h.tag.clone()).collect(),
            name: s.name.clone(),
            referenced_bytes: space.referenced_bytes,
            rule: s.subset.as_ref().map(|subset| subset.rule.clone()),
            tree: tree_name.clone(),
            txg: s.txg.0,
            unique_bytes: space.used_bytes,
            written_bytes: space.written_bytes,
        })
        .collect();
    Ok(listed)
}

/// One snapshot in full, as `show` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub snapshot: Listed,
    /// What its tree holds: files (every kind but directories), directories, and the
    /// regular files' bytes.
    pub files: u64,
    pub directories: u64,
    pub file_bytes: u64,
}

/// Snapshot `name` of `tree`: its listing, its rule, and what its tree holds (a walk of
/// its nodes, not of its data).
pub fn show(pool: &mut Pool, tree: u64, name: &str) -> Result<Shown> {
    let entry = pool.snapshot(tree, name)?;
    let snapshot = list(pool, tree)?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Error::SnapshotNotFound { name: name.to_string(), base: false })?;
    // Being extracted: what it will hold, its moment through its rule.
    let contents = match snapshot.extracting {
        true => pool.extraction_plan(&entry)?.stats(),
        false => pool.tree_contents(entry.root)?,
    };
    Ok(Shown { snapshot, files: contents.files, directories: contents.directories, file_bytes: contents.file_bytes })
}

/// The rule subset snapshot `name` of `tree` was taken with, for `--like`. A refined
/// one's rule applies to the snapshot it refined: `refining` says a `--from` gives one.
pub fn rule_of(pool: &mut Pool, tree: u64, name: &str, refining: bool) -> Result<RecordedRule> {
    let entry = pool.snapshot(tree, name)?;
    let Some(subset) = entry.subset else {
        return Err(Error::invalid(format!("@{name} is a whole snapshot: it has no rule to take again")));
    };
    if !subset.rule.merged.is_empty() {
        return Err(Error::invalid(format!("@{name} is a merge: take a new one with --merge")));
    }
    if let (Some(from), false) = (&subset.rule.from, refining) {
        return Err(Error::invalid(format!(
            "@{name} refines @{from}: its rule applies to a snapshot like @{from}; give that one with --from"
        )));
    }
    Ok(RecordedRule { from: None, ..subset.rule })
}
