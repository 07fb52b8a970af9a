//! The trees table, read by key on demand.
//!
//! An open reads no tree entry: a command reads those of the trees it touches
//! (`tree_entry`), and only what lists or checks every tree reads the table whole
//! (`trees`). On a pool with feature `tree_index` the table may also map names to ids and
//! origins to clones (format/tables.rs `TreesKey`), so naming a clone, making one and
//! destroying a snapshot are lookups, at 1,000 clones as at one. Without the feature
//! (a pool that never had a clone, or one an older binary made) those read the table
//! whole, as before; the first change to the set of trees builds the indexes.
//!
//! Every change to an entry reaches the table at once (`put_tree`, `remove_tree`),
//! keeping the indexes in step; the cache only saves reading an entry twice.

use super::{LIVE_TREE_NAME, Pool};
use crate::block::Txg;
use crate::error::{Error, Result};
use crate::format::label::FEATURE_TREE_INDEX;
use crate::format::tables::{TreeEntry, TreesKey, be64, read_be64};

/// Origins followed at most along a chain: a damaged pool could name them in a loop.
pub(super) const ORIGIN_CHAIN_MAX: usize = 1 << 20;

impl Pool {
    /// Whether the table holds the name and origin indexes: whether it names the live
    /// tree in its name index (one lookup, then remembered). Not the label's bit, which a
    /// crash can leave set over the commit before the one that built them.
    fn tree_index_kept(&mut self) -> Result<bool> {
        if let Some(kept) = self.tree_index {
            return Ok(kept);
        }
        let key = TreesKey::Name(LIVE_TREE_NAME.to_string()).encode();
        let kept = self.trees_table.get(&mut self.store, &key)?.is_some();
        self.tree_index = Some(kept);
        Ok(kept)
    }

    /// The entry of tree `id`, if there is one: read from the table on first use.
    pub fn tree_entry(&mut self, id: u64) -> Result<Option<&TreeEntry>> {
        if !self.trees_loaded && !self.tree_entries.contains_key(&id) {
            let key = TreeEntry::key(id);
            if let Some(value) = self.trees_table.get(&mut self.store, &key)? {
                self.tree_entries.insert(id, TreeEntry::decode(&key, &value)?);
            }
        }
        Ok(self.tree_entries.get(&id))
    }

    /// The entry of tree `id`, which must exist.
    pub(super) fn existing_tree(&mut self, id: u64) -> Result<&TreeEntry> {
        self.tree_entry(id)?.ok_or_else(|| Error::not_found(format!("tree id {id}")))
    }

    /// Every tree, by id: the whole table, read once (listing, status, check).
    pub fn trees(&mut self) -> Result<impl Iterator<Item = &TreeEntry>> {
        if !self.trees_loaded {
            let index_start = TreesKey::index_start();
            let mut found = Vec::new();
            self.trees_table.scan(&mut self.store, &[], &mut |k, v| {
                if k >= index_start.as_slice() {
                    return Ok(false);
                }
                found.push(TreeEntry::decode(k, v)?);
                Ok(true)
            })?;
            for entry in found {
                // An entry this transaction changed is newer than the table's.
                self.tree_entries.entry(entry.id).or_insert(entry);
            }
            self.trees_loaded = true;
        }
        Ok(self.tree_entries.values())
    }

    /// The id of the tree named `name` ("live" for the live tree).
    pub fn tree_id(&mut self, name: &str) -> Result<u64> {
        let found = match self.tree_index_kept()? {
            true => match self.trees_table.get(&mut self.store, &TreesKey::Name(name.to_string()).encode())? {
                Some(value) => Some(read_be64(&value, "trees name index")?),
                None => None,
            },
            false => self.trees()?.find(|t| t.name == name).map(|t| t.id),
        };
        found.ok_or_else(|| Error::not_found(format!("clone {name}")))
    }

    /// The tree's name ("live" for the live tree).
    pub fn tree_name(&mut self, tree: u64) -> Result<String> {
        Ok(self.existing_tree(tree)?.name.clone())
    }

    /// The snapshot a clone started as: (tree, txg); None for the live tree, or a tree
    /// that is not there.
    pub fn origin_of(&mut self, tree: u64) -> Result<Option<(u64, Txg)>> {
        Ok(self.tree_entry(tree)?.and_then(|t| t.origin))
    }

    /// The clones made from snapshots of `tree` (only from the one taken in `txg`, if
    /// given): (clone id, origin txg), by origin txg.
    pub(super) fn clones_from(&mut self, tree: u64, txg: Option<Txg>) -> Result<Vec<(u64, Txg)>> {
        if !self.tree_index_kept()? {
            let mut found: Vec<(u64, Txg)> = self
                .trees()?
                .filter_map(|t| {
                    t.origin.filter(|&(o, at)| o == tree && txg.is_none_or(|x| x == at)).map(|(_, at)| (t.id, at))
                })
                .collect();
            found.sort_by_key(|&(id, at)| (at, id));
            return Ok(found);
        }
        let mut found = Vec::new();
        for (key, _) in self.trees_table.scan_prefix(&mut self.store, &TreesKey::origin_prefix(tree, txg))? {
            match TreesKey::parse(&key)? {
                TreesKey::Origin(_, at, clone) => found.push((clone, at)),
                other => return Err(Error::corrupt(format!("{other:?} under the trees origin index"))),
            }
        }
        Ok(found)
    }

    /// The clones made from the snapshot of `tree` taken in `txg`, by name.
    pub fn clones_of(&mut self, tree: u64, txg: Txg) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for (id, _) in self.clones_from(tree, Some(txg))? {
            names.push(self.tree_name(id)?);
        }
        Ok(names)
    }

    /// Writes `entry`, new or changed, to the table, keeping its indexes in step.
    pub(super) fn put_tree(&mut self, entry: TreeEntry) -> Result<()> {
        if self.tree_index_kept()? {
            let old = self.tree_entry(entry.id)?.map(|old| (old.name.clone(), old.origin));
            let (old_name, old_origin) = old.map_or((None, None), |(name, origin)| (Some(name), origin));
            if old_name.as_deref() != Some(entry.name.as_str()) {
                if let Some(name) = old_name {
                    self.trees_table.remove(&mut self.store, &TreesKey::Name(name).encode())?;
                }
                let key = TreesKey::Name(entry.name.clone()).encode();
                self.trees_table.insert(&mut self.store, &key, &be64(entry.id))?;
            }
            if old_origin != entry.origin {
                if let Some((tree, txg)) = old_origin {
                    self.trees_table.remove(&mut self.store, &TreesKey::Origin(tree, txg, entry.id).encode())?;
                }
                if let Some((tree, txg)) = entry.origin {
                    self.trees_table.insert(&mut self.store, &TreesKey::Origin(tree, txg, entry.id).encode(), &[])?;
                }
            }
        }
        self.trees_table.insert(&mut self.store, &TreeEntry::key(entry.id), &entry.encode_value())?;
        self.tree_entries.insert(entry.id, entry);
        Ok(())
    }

    /// Removes tree `id`'s entry and its index keys from the table.
    pub(super) fn remove_tree(&mut self, id: u64) -> Result<TreeEntry> {
        let entry = self.existing_tree(id)?.clone();
        if self.tree_index_kept()? {
            self.trees_table.remove(&mut self.store, &TreesKey::Name(entry.name.clone()).encode())?;
            if let Some((tree, txg)) = entry.origin {
                self.trees_table.remove(&mut self.store, &TreesKey::Origin(tree, txg, id).encode())?;
            }
        }
        self.trees_table.remove(&mut self.store, &TreeEntry::key(id))?;
        self.tree_entries.remove(&id);
        Ok(entry)
    }

    /// Before a change to the set of trees, their names or origins: on a pool without the
    /// indexes, writes them for every tree and asks the label for the feature.
    pub(super) fn build_tree_index_if_needed(&mut self) -> Result<()> {
        if self.tree_index_kept()? {
            return Ok(());
        }
        let entries: Vec<TreeEntry> = self.trees()?.cloned().collect();
        for entry in &entries {
            let key = TreesKey::Name(entry.name.clone()).encode();
            self.trees_table.insert(&mut self.store, &key, &be64(entry.id))?;
            if let Some((tree, txg)) = entry.origin {
                self.trees_table.insert(&mut self.store, &TreesKey::Origin(tree, txg, entry.id).encode(), &[])?;
            }
        }
        self.store.features_needed |= FEATURE_TREE_INDEX;
        self.tree_index = Some(true);
        Ok(())
    }

    /// The index keys of the trees table that disagree with its entries, described:
    /// empty on a sound pool (`check`).
    pub fn tree_index_faults(&mut self) -> Result<Vec<String>> {
        let kept = self.tree_index_kept()?;
        // By id: one lookup per index key, at 10,000 trees as at ten.
        let entries: std::collections::BTreeMap<u64, TreeEntry> = self.trees()?.map(|e| (e.id, e.clone())).collect();
        let mut expected = std::collections::BTreeSet::new();
        if kept {
            for entry in entries.values() {
                expected.insert(TreesKey::Name(entry.name.clone()));
                if let Some((tree, txg)) = entry.origin {
                    expected.insert(TreesKey::Origin(tree, txg, entry.id));
                }
            }
        }
        let mut faults = Vec::new();
        if kept && self.label.features_incompat & FEATURE_TREE_INDEX == 0 {
            faults.push("the trees table holds indexes, but the label lacks the tree_index feature".to_string());
        }
        for (key, value) in self.trees_table.scan_prefix(&mut self.store, &[])? {
            let parsed = TreesKey::parse(&key)?;
            match &parsed {
                TreesKey::Entry(_) => continue,
                TreesKey::Name(name) => {
                    let id = read_be64(&value, "trees name index")?;
                    if entries.get(&id).is_none_or(|e| &e.name != name) {
                        faults.push(format!("the trees name index maps {name:?} to tree {id}, which has another name"));
                    }
                }
                TreesKey::Origin(tree, txg, clone) => {
                    if !value.is_empty() {
                        faults.push(format!("the trees origin index key of clone {clone} has a value"));
                    }
                    if entries.get(clone).is_none_or(|e| e.origin != Some((*tree, *txg))) {
                        faults.push(format!(
                            "the trees origin index names tree {clone} a clone of ({tree}, {}), which it is not",
                            txg.0
                        ));
                    }
                }
            }
            if !kept {
                faults.push(format!("{parsed:?} in the trees table, whose name index lacks the live tree"));
            }
            expected.remove(&parsed);
        }
        faults.extend(expected.into_iter().map(|key| format!("the trees table lacks index key {key:?}")));
        Ok(faults)
    }
}

#[cfg(test)]
mod tests {
    use super::FEATURE_TREE_INDEX;
    use crate::block::BLOCK_BYTES;
    use crate::check::check_pool;
    use crate::device::{CrashDevice, OpenMode};
    use crate::format::label::{Label, region_start};
    use crate::format::tables::{TreeEntry, TreesKey, be64};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
    use std::sync::{Arc, Mutex};

    fn open(device: &CrashDevice, mode: OpenMode) -> Pool {
        Pool::open(Box::new(device.clone()), mode).unwrap()
    }

    /// Runs `change` on a fresh writable handle and commits it.
    fn change(device: &CrashDevice, change: impl FnOnce(&mut Pool)) {
        let mut pool = open(device, OpenMode::Write);
        change(&mut pool);
        pool.commit().unwrap();
    }

    /// `check` is clean, and a fresh handle's lookups (by the indexes, when the pool has
    /// them) give what a scan of the entries gives.
    fn assert_lookups_agree(device: &CrashDevice) {
        let mut pool = open(device, OpenMode::Read);
        let report = check_pool(&mut pool).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        let entries: Vec<TreeEntry> = pool.trees().unwrap().cloned().collect();
        let mut pool = open(device, OpenMode::Read);
        for entry in &entries {
            assert_eq!(pool.tree_id(&entry.name).unwrap(), entry.id, "{}", entry.name);
            let mut expected: Vec<String> = entries
                .iter()
                .filter(|e| e.origin.is_some() && e.origin == entry.origin)
                .map(|e| e.name.clone())
                .collect();
            if let Some((tree, txg)) = entry.origin {
                let mut found = pool.clones_of(tree, txg).unwrap();
                found.sort();
                expected.sort();
                assert_eq!(found, expected, "clones of ({tree}, {})", txg.0);
            }
        }
        assert!(pool.tree_id("nobody").is_err());
    }

    fn has_index_bit(device: &CrashDevice) -> bool {
        open(device, OpenMode::Read).label.features_incompat & FEATURE_TREE_INDEX != 0
    }

    fn new_pool() -> CrashDevice {
        let device = CrashDevice::new(Arc::new(Mutex::new(vec![0; 64 << 20])), None);
        let mut pool = format_pool(Box::new(device.clone()), &FormatOptions::default()).unwrap();
        pool.create_snapshot(LIVE_TREE_ID, "a").unwrap();
        pool.commit().unwrap();
        device
    }

    #[test]
    fn the_indexes_follow_every_change_to_the_trees() {
        let device = new_pool();
        assert!(!has_index_bit(&device), "a pool with only its live tree needs no index");
        for name in ["c1", "c2", "c3"] {
            change(&device, |pool| _ = pool.create_clone(LIVE_TREE_ID, "a", name).unwrap());
            assert_lookups_agree(&device);
        }
        assert!(has_index_bit(&device));
        change(&device, |pool| {
            let c1 = pool.tree_id("c1").unwrap();
            pool.create_snapshot(c1, "s").unwrap();
        });
        change(&device, |pool| {
            let c1 = pool.tree_id("c1").unwrap();
            pool.create_clone(c1, "s", "d1").unwrap();
        });
        assert_lookups_agree(&device);
        change(&device, |pool| _ = pool.rename_tree("c2", "c2b").unwrap());
        assert_lookups_agree(&device);
        change(&device, |pool| _ = pool.destroy_clone("c3").unwrap());
        assert_lookups_agree(&device);
        // The live tree becomes a clone of c2b, and c1 (made from @a) follows @a to c2b.
        change(&device, |pool| _ = pool.promote_clone("c2b").unwrap());
        assert_lookups_agree(&device);
        let mut pool = open(&device, OpenMode::Read);
        let c2b = pool.tree_id("c2b").unwrap();
        assert_eq!(pool.origin_of(LIVE_TREE_ID).unwrap().map(|(tree, _)| tree), Some(c2b));
        let c1 = pool.tree_id("c1").unwrap();
        assert_eq!(pool.origin_of(c1).unwrap().map(|(tree, _)| tree), Some(c2b));
    }

    #[test]
    fn a_pool_without_the_indexes_reads_the_table_and_gets_them_at_its_next_change() {
        let device = new_pool();
        for name in ["c1", "c2"] {
            change(&device, |pool| _ = pool.create_clone(LIVE_TREE_ID, "a", name).unwrap());
        }
        // Make it the pool an older binary left: entries only, and no bit in the labels.
        change(&device, |pool| {
            for (key, _) in pool.trees_table.scan_prefix(&mut pool.store, &[]).unwrap() {
                if !matches!(TreesKey::parse(&key).unwrap(), TreesKey::Entry(_)) {
                    pool.trees_table.remove(&mut pool.store, &key).unwrap();
                }
            }
            pool.store.features_needed &= !FEATURE_TREE_INDEX;
        });
        let mut pool = open(&device, OpenMode::Write);
        let features_incompat = pool.label.features_incompat & !FEATURE_TREE_INDEX;
        for index in [1u32, 0] {
            let label = Label { index, features_incompat, ..pool.label.clone() };
            let at = region_start(index, pool.label.device_bytes) * BLOCK_BYTES;
            pool.store.dev.write_at(at, &label.encode()).unwrap();
        }
        drop(pool);
        assert!(!has_index_bit(&device));
        assert_lookups_agree(&device);
        change(&device, |pool| _ = pool.rename_tree("c1", "c1x").unwrap());
        assert!(has_index_bit(&device));
        assert_lookups_agree(&device);
    }

    #[test]
    fn check_reports_an_index_key_that_disagrees_with_the_entries() {
        let device = new_pool();
        change(&device, |pool| _ = pool.create_clone(LIVE_TREE_ID, "a", "c1").unwrap());
        change(&device, |pool| {
            let key = TreesKey::Name("ghost".into()).encode();
            pool.trees_table.insert(&mut pool.store, &key, &be64(LIVE_TREE_ID)).unwrap();
            let key = TreesKey::Name("c1".into()).encode();
            pool.trees_table.remove(&mut pool.store, &key).unwrap();
        });
        let report = check_pool(&mut open(&device, OpenMode::Read)).unwrap();
        assert!(report.problems.iter().any(|p| p.contains("\"ghost\"")), "{:?}", report.problems);
        assert!(report.problems.iter().any(|p| p.contains("lacks index key Name(\"c1\")")), "{:?}", report.problems);
    }
}
