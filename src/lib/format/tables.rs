//! Keys and values of the pool's metadata tables. Keys are big-endian so that byte
//! order is numeric order.

use crate::block::{BlockPtr, Txg};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const TREE_NAME_BYTES_MAX: usize = 128;
pub const SNAPSHOT_NAME_BYTES_MAX: usize = 128;

pub fn be64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn read_be64(bytes: &[u8], what: &str) -> Result<u64> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::corrupt(format!("{what} key is too short")))?;
    Ok(u64::from_be_bytes(array))
}

/// A named file tree: the live tree, and later writable clones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub id: u64,
    pub name: String,
    pub root: Option<BlockPtr>,
    pub created_txg: Txg,
    /// A clone's origin: the tree and txg of the snapshot it started as (version 12,
    /// feature `clones`). Its blocks born at or before that txg are the snapshot's.
    pub origin: Option<(u64, Txg)>,
    /// Bytes of the blocks its root reaches (nodes and file data, each copy counted):
    /// what ZFS calls `referenced` (feature `space_counters`; pool/space_counters.rs).
    pub referenced_bytes: u64,
}

impl TreeEntry {
    pub fn key(id: u64) -> Vec<u8> {
        be64(id).to_vec()
    }
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes16(self.name.as_bytes());
        BlockPtr::encode(self.root.as_ref(), &mut w);
        w.u64(self.created_txg.0);
        let (origin_tree, origin_txg) = self.origin.map_or((0, 0), |(tree, txg)| (tree, txg.0));
        w.u64(origin_tree);
        w.u64(origin_txg);
        w.u64(self.referenced_bytes);
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<TreeEntry> {
        let id = read_be64(key, "trees table")?;
        let mut r = Reader::new(value, "trees table entry");
        let name = decode_name(r.bytes16()?, TREE_NAME_BYTES_MAX, "tree")?;
        let root = BlockPtr::decode(&mut r)?;
        let created_txg = Txg(r.u64()?);
        let origin = match (r.u64()?, r.u64()?) {
            (0, 0) => None,
            // A promote (pool/promote.rs) can give an older tree an origin after its birth.
            (tree, txg) if tree != 0 && txg != 0 && tree != id => Some((tree, Txg(txg))),
            (tree, txg) => return Err(Error::corrupt(format!("tree {id} has an impossible origin ({tree}, {txg})"))),
        };
        // Entries written before version 10 end here; the pool then lacks the counters.
        let referenced_bytes = if r.remaining() == 0 { 0 } else { r.u64()? };
        no_trailing(&r, key, 8)?;
        Ok(TreeEntry { id, name, root, created_txg, origin, referenced_bytes })
    }
}

/// The trees table's keys (version 14, feature `tree_index`): beside each tree's entry,
/// keyed by its id, a name index and an origin index, so that naming a clone and finding
/// a snapshot's clones are lookups rather than reads of the whole table. Ids are txgs,
/// far below 2^56, so an entry key never starts with either index's first byte.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TreesKey {
    Entry(u64),
    /// Name → the tree's id (value: id BE u64).
    Name(String),
    /// (origin tree, origin txg, clone id), empty value: one per clone.
    Origin(u64, Txg, u64),
}

const TREES_NAME_PREFIX: u8 = 0xFF;
const TREES_ORIGIN_PREFIX: u8 = 0xFE;

impl TreesKey {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            TreesKey::Entry(id) => TreeEntry::key(*id),
            TreesKey::Name(name) => [&[TREES_NAME_PREFIX][..], name.as_bytes()].concat(),
            TreesKey::Origin(tree, txg, clone) => {
                [&[TREES_ORIGIN_PREFIX][..], &be64(*tree), &be64(txg.0), &be64(*clone)].concat()
            }
        }
    }

    /// The prefix of the origin keys of the clones of `tree`'s snapshots, or of the one
    /// taken in `txg`.
    pub fn origin_prefix(tree: u64, txg: Option<Txg>) -> Vec<u8> {
        let mut prefix = [&[TREES_ORIGIN_PREFIX][..], &be64(tree)].concat();
        if let Some(txg) = txg {
            prefix.extend_from_slice(&be64(txg.0));
        }
        prefix
    }

    /// The first key of the index part of the table: every entry key sorts below it.
    pub fn index_start() -> Vec<u8> {
        vec![TREES_ORIGIN_PREFIX]
    }

    pub fn parse(key: &[u8]) -> Result<TreesKey> {
        match key.first() {
            Some(&TREES_NAME_PREFIX) => {
                Ok(TreesKey::Name(decode_name(&key[1..], TREE_NAME_BYTES_MAX, "tree name index")?))
            }
            Some(&TREES_ORIGIN_PREFIX) if key.len() == 25 => Ok(TreesKey::Origin(
                read_be64(&key[1..], "trees origin index")?,
                Txg(read_be64(&key[9..], "trees origin index")?),
                read_be64(&key[17..], "trees origin index")?,
            )),
            Some(&TREES_ORIGIN_PREFIX) => Err(Error::corrupt("a trees origin index key is not 25 bytes")),
            _ if key.len() == 8 => Ok(TreesKey::Entry(read_be64(key, "trees table")?)),
            _ => Err(Error::corrupt(format!("a trees table key of {} bytes", key.len()))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub tree: u64,
    pub name: String,
    /// Unique across pools: a received snapshot keeps its sender's guid.
    pub guid: [u8; 16],
    /// The commit whose state of the tree this snapshot holds.
    pub txg: Txg,
    pub time_ns: u64,
    pub root: Option<BlockPtr>,
    /// Tags that keep it from being destroyed, in the order they were placed.
    pub holds: Vec<Hold>,
    /// Its tree's `referenced_bytes` when it was taken (zero on a pool without the
    /// `space_counters` feature).
    pub referenced_bytes: u64,
    /// A subset snapshot (version 16, feature `subsets`): `root` holds only the files a
    /// rule selected, in nodes of its own (pool/subsets.rs).
    pub subset: Option<Subset>,
}

/// What a subset snapshot adds to its entry. Its `txg` is the moment it was taken from;
/// it keeps its tree's state of that moment as any snapshot of that txg does, through
/// `pinned`, and its own nodes (every node of `root`, born after `txg`) are its alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subset {
    /// The tree's whole root at `txg`: what the snapshot keeps, as any snapshot of that
    /// commit would (check, scrub and space walk it).
    pub pinned: Option<BlockPtr>,
    /// The commit that wrote its nodes.
    pub built: Txg,
    pub rule: RecordedRule,
    /// A merge's sources of older moments, by guid: their blocks are kept by them, so
    /// none of them can be destroyed while this snapshot exists. While a refinement is
    /// extracted, also the snapshot it refines, which it reads.
    pub needs: Vec<[u8; 16]>,
    /// Some(inode): its tree is being extracted (version 17, feature
    /// `subset_extraction`; pool/extraction.rs); `root` holds the selected inodes below
    /// this one, in nodes of its own. None: `root` is complete.
    pub extracting: Option<u64>,
}

impl Subset {
    pub fn is_extracting(&self) -> bool {
        self.extracting.is_some()
    }
}

/// A rule as the user gave it, so that `show` can say what a snapshot means and
/// `--like` can take it again. Relative times in conditions are read against the
/// snapshot's moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecordedRule {
    /// The snapshot it was refined from (`--from`), by name when it was taken.
    pub from: Option<String>,
    pub matches: Vec<String>,
    pub excludes: Vec<String>,
    pub conditions: Vec<String>,
    /// A merge (`--merge`): the snapshots united, by name when it was taken, newest
    /// first (where they differ, the first that has a path or a file gives it).
    pub merged: Vec<String>,
}

/// Subset entry kinds after the holds: 1, complete; 2, being extracted (the same
/// fields, then the next inode to extract).
const SUBSET_KIND: u8 = 1;
const SUBSET_EXTRACTING_KIND: u8 = 2;
/// Texts of one kind in a recorded rule at most.
const RULE_TEXTS_MAX: usize = 64;
/// Bytes of a recorded rule at most, and snapshots a merge unites at most: with the
/// most holds (HOLDS_MAX), the entry stays within a table value (format/node.rs
/// VALUE_BYTES_MAX).
pub const RULE_BYTES_MAX: usize = 1900;
pub const MERGE_SOURCES_MAX: usize = 16;

impl RecordedRule {
    fn encode(&self, w: &mut Writer) {
        w.bytes16(self.from.as_deref().unwrap_or("").as_bytes());
        for texts in [&self.matches, &self.excludes, &self.conditions, &self.merged] {
            w.u8(texts.len() as u8);
            for text in texts {
                w.bytes16(text.as_bytes());
            }
        }
    }
    fn decode(r: &mut Reader) -> Result<RecordedRule> {
        let text = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).map_err(|_| Error::corrupt("a subset snapshot's rule is not UTF-8"))
        };
        let from = Some(text(r.bytes16()?)?).filter(|s| !s.is_empty());
        let mut lists: [Vec<String>; 4] = Default::default();
        for list in lists.iter_mut() {
            let count = r.u8()? as usize;
            if count > RULE_TEXTS_MAX {
                return Err(Error::corrupt(format!("a subset snapshot's rule has {count} parts of one kind")));
            }
            for _ in 0..count {
                list.push(text(r.bytes16()?)?);
            }
        }
        let [matches, excludes, conditions, merged] = lists;
        Ok(RecordedRule { from, matches, excludes, conditions, merged })
    }

    /// Whether it fits an entry beside the most holds: RULE_BYTES_MAX encoded.
    pub fn check_fits(&self) -> Result<()> {
        let mut w = Writer::new();
        self.encode(&mut w);
        let lists = [&self.matches, &self.excludes, &self.conditions, &self.merged];
        let too_many = lists.iter().any(|t| t.len() > RULE_TEXTS_MAX);
        if self.merged.len() > MERGE_SOURCES_MAX {
            return Err(Error::invalid(format!("a merge unites at most {MERGE_SOURCES_MAX} snapshots")));
        }
        if w.len() > RULE_BYTES_MAX || too_many {
            return Err(Error::invalid(format!(
                "the rule is too long to record: at most {RULE_BYTES_MAX} bytes of globs and conditions, \
                 {RULE_TEXTS_MAX} of each option"
            )));
        }
        Ok(())
    }
}

/// A hold on a snapshot: `destroy` refuses it while any is there (`snapctl hold`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub tag: String,
    /// When it was placed.
    pub time_ns: u64,
}

/// A hold's tag: 1..=64 bytes (the characters are checked where holds are placed).
pub const HOLD_TAG_BYTES_MAX: usize = 64;
/// Holds on one snapshot at most: its entry stays within a table value.
pub const HOLDS_MAX: usize = 32;

impl SnapshotEntry {
    /// The whole root of the tree at this snapshot's txg: what it keeps (its `root`,
    /// unless it is a subset).
    pub fn whole_root(&self) -> Option<BlockPtr> {
        self.subset.as_ref().map_or(self.root, |s| s.pinned)
    }

    pub fn key(tree: u64, name: &str) -> Vec<u8> {
        let mut k = be64(tree).to_vec();
        k.extend_from_slice(name.as_bytes());
        k
    }
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.guid);
        w.u64(self.txg.0);
        w.u64(self.time_ns);
        BlockPtr::encode(self.root.as_ref(), &mut w);
        // Without holds, the 16 zeros of every version before 8; version 10 puts the
        // counter in 8 of them.
        w.u16(self.holds.len() as u16);
        w.u64(self.referenced_bytes);
        w.zeros(6);
        for hold in &self.holds {
            w.u8(hold.tag.len() as u8);
            w.raw(hold.tag.as_bytes());
            w.u64(hold.time_ns);
        }
        if let Some(subset) = &self.subset {
            w.u8(if subset.is_extracting() { SUBSET_EXTRACTING_KIND } else { SUBSET_KIND });
            w.u64(subset.built.0);
            BlockPtr::encode(subset.pinned.as_ref(), &mut w);
            subset.rule.encode(&mut w);
            w.u8(subset.needs.len() as u8);
            for guid in &subset.needs {
                w.raw(guid);
            }
            if let Some(next) = subset.extracting {
                w.u64(next);
            }
        }
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<SnapshotEntry> {
        let tree = read_be64(key, "snapshot table")?;
        if key.len() <= 8 {
            return Err(Error::corrupt("snapshot table key without a name"));
        }
        let name = decode_name(&key[8..], SNAPSHOT_NAME_BYTES_MAX, "snapshot")?;
        let mut r = Reader::new(value, "snapshot entry");
        let guid = r.array::<16>()?;
        let txg = Txg(r.u64()?);
        let time_ns = r.u64()?;
        let root = BlockPtr::decode(&mut r)?;
        let count = r.u16()? as usize;
        let referenced_bytes = r.u64()?;
        r.zeros(6)?;
        if count > HOLDS_MAX {
            return Err(Error::corrupt(format!("snapshot @{name} has {count} holds, past the {HOLDS_MAX} allowed")));
        }
        let mut holds = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u8()? as usize;
            let tag = decode_name(r.take(len)?, HOLD_TAG_BYTES_MAX, "hold tag")?;
            holds.push(Hold { tag, time_ns: r.u64()? });
        }
        let subset = match r.remaining() {
            0 => None,
            _ => match r.u8()? {
                kind @ (SUBSET_KIND | SUBSET_EXTRACTING_KIND) => {
                    let built = Txg(r.u64()?);
                    let pinned = BlockPtr::decode(&mut r)?;
                    let rule = RecordedRule::decode(&mut r)?;
                    let count = r.u8()? as usize;
                    if count > MERGE_SOURCES_MAX {
                        return Err(Error::corrupt(format!("subset snapshot @{name} needs {count} snapshots")));
                    }
                    let needs = (0..count).map(|_| r.array::<16>()).collect::<Result<Vec<_>>>()?;
                    if built <= txg {
                        return Err(Error::corrupt(format!(
                            "subset snapshot @{name} was built in txg {} but holds txg {}",
                            built.0, txg.0
                        )));
                    }
                    let extracting = match kind {
                        SUBSET_EXTRACTING_KIND => Some(r.u64()?),
                        _ => None,
                    };
                    Some(Subset { pinned, built, rule, needs, extracting })
                }
                other => return Err(Error::corrupt(format!("snapshot @{name} has an extension of kind {other}"))),
            },
        };
        no_trailing(&r, key, key.len())?;
        Ok(SnapshotEntry { tree, name, guid, txg, time_ns, root, holds, referenced_bytes, subset })
    }
}

/// A bookmark (version 13, feature `bookmarks`): what an incremental stream needs to
/// start from a snapshot that may since be destroyed: its guid, txg and times. Keyed
/// like a snapshot, (tree, name), in the bookmarks table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookmarkEntry {
    pub tree: u64,
    pub name: String,
    /// The snapshot it was made from: its guid, txg, creation time and name then.
    pub guid: [u8; 16],
    pub txg: Txg,
    pub snapshot_time_ns: u64,
    pub snapshot_name: String,
    /// When the bookmark was made.
    pub created_ns: u64,
}

impl BookmarkEntry {
    pub fn key(tree: u64, name: &str) -> Vec<u8> {
        SnapshotEntry::key(tree, name)
    }
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.guid);
        w.u64(self.txg.0);
        w.u64(self.snapshot_time_ns);
        w.u64(self.created_ns);
        w.bytes16(self.snapshot_name.as_bytes());
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<BookmarkEntry> {
        let tree = read_be64(key, "bookmarks table")?;
        if key.len() <= 8 {
            return Err(Error::corrupt("bookmarks table key without a name"));
        }
        let name = decode_name(&key[8..], SNAPSHOT_NAME_BYTES_MAX, "bookmark")?;
        let mut r = Reader::new(value, "bookmark entry");
        let guid = r.array::<16>()?;
        let txg = Txg(r.u64()?);
        let snapshot_time_ns = r.u64()?;
        let created_ns = r.u64()?;
        let snapshot_name = decode_name(r.bytes16()?, SNAPSHOT_NAME_BYTES_MAX, "snapshot")?;
        no_trailing(&r, key, key.len())?;
        Ok(BookmarkEntry { tree, name, guid, txg, snapshot_time_ns, snapshot_name, created_ns })
    }
}

/// The history table of version 11 (feature `history_by_tree`) is keyed (tree, txg),
/// 16 bytes. Tree 0 lists the retained commits: each one's time, and the trees whose
/// root the table records at that commit. A tree T >= 1 has its root as of commit txg,
/// recorded when that commit changed it (null: the tree did not exist then); its root at
/// a retained commit c is its entry with the greatest txg at or below c
/// (pool/history.rs).
pub const HISTORY_COMMITS: u64 = 0;

/// Trees one commit may record: its entry stays within a table value.
pub const HISTORY_TREES_PER_COMMIT_MAX: usize = 512;

pub fn history_key(tree: u64, txg: Txg) -> Vec<u8> {
    let mut k = be64(tree).to_vec();
    k.extend_from_slice(&be64(txg.0));
    k
}

/// The (tree, txg) of a history key of version 11.
pub fn decode_history_key(key: &[u8]) -> Result<(u64, Txg)> {
    if key.len() != 16 {
        return Err(Error::corrupt(format!("history key of {} bytes", key.len())));
    }
    Ok((read_be64(key, "history")?, Txg(read_be64(&key[8..], "history")?)))
}

/// One retained commit (tree 0 of the history table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryCommit {
    pub txg: Txg,
    pub time_ns: u64,
    /// The trees whose root the table records at this commit, in increasing order.
    pub trees: Vec<u64>,
}

impl HistoryCommit {
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.time_ns);
        w.u16(self.trees.len() as u16);
        for tree in &self.trees {
            w.u64(*tree);
        }
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<HistoryCommit> {
        let (tree, txg) = decode_history_key(key)?;
        if tree != HISTORY_COMMITS {
            return Err(Error::corrupt(format!("history entry of tree {tree} read as a commit")));
        }
        let mut r = Reader::new(value, "history commit");
        let time_ns = r.u64()?;
        let count = r.u16()? as usize;
        if count > HISTORY_TREES_PER_COMMIT_MAX {
            return Err(Error::corrupt(format!("retained commit {} records {count} trees", txg.0)));
        }
        let trees = (0..count).map(|_| r.u64()).collect::<Result<Vec<u64>>>()?;
        if trees.windows(2).any(|w| w[0] >= w[1]) || trees.first() == Some(&HISTORY_COMMITS) {
            return Err(Error::corrupt(format!("retained commit {} lists its trees out of order", txg.0)));
        }
        no_trailing(&r, key, 16)?;
        Ok(HistoryCommit { txg, time_ns, trees })
    }
}

/// A tree's root in the history table (tree >= 1): its root as of commit `txg`, and
/// since version 15 (feature `history_counts`) its `referenced_bytes` then, so that a
/// snapshot taken of that moment afterwards (`snapshot --at`) gets its counter without a
/// walk. Older entries have no count (72 bytes instead of 80).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRoot {
    pub tree: u64,
    pub txg: Txg,
    pub root: Option<BlockPtr>,
    pub referenced_bytes: Option<u64>,
}

impl HistoryRoot {
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        BlockPtr::encode(self.root.as_ref(), &mut w);
        if let Some(bytes) = self.referenced_bytes {
            w.u64(bytes);
        }
        w.bytes
    }

    pub fn decode(key: &[u8], value: &[u8]) -> Result<HistoryRoot> {
        let (tree, txg) = decode_history_key(key)?;
        if tree == HISTORY_COMMITS {
            return Err(Error::corrupt(format!("retained commit {} read as a tree's root", txg.0)));
        }
        let mut r = Reader::new(value, "history root");
        let root = BlockPtr::decode(&mut r)?;
        let referenced_bytes = if r.remaining() != 0 { Some(r.u64()?) } else { None };
        no_trailing(&r, key, 16)?;
        Ok(HistoryRoot { tree, txg, root, referenced_bytes })
    }
}

/// One retained commit as versions 1-10 keep it: keyed by txg (8 bytes), with the
/// root of every tree. Read until the pool's first commit rewrites the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub txg: Txg,
    pub time_ns: u64,
    pub roots: Vec<(u64, Option<BlockPtr>)>,
}

impl HistoryEntry {
    pub fn key(txg: Txg) -> Vec<u8> {
        be64(txg.0).to_vec()
    }
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.time_ns);
        w.u16(self.roots.len() as u16);
        for (tree, root) in &self.roots {
            w.u64(*tree);
            BlockPtr::encode(root.as_ref(), &mut w);
        }
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<HistoryEntry> {
        let txg = Txg(read_be64(key, "history")?);
        let mut r = Reader::new(value, "history entry");
        let time_ns = r.u64()?;
        let count = r.u16()?;
        let mut roots = Vec::new();
        for _ in 0..count {
            let tree = r.u64()?;
            roots.push((tree, BlockPtr::decode(&mut r)?));
        }
        if r.remaining() != 0 {
            return Err(Error::corrupt("history entry has trailing bytes"));
        }
        Ok(HistoryEntry { txg, time_ns, roots })
    }
}

/// Key of the dead index: (tree, death txg, address). The value is the killed pointer.
/// The snapshots by (tree, txg): one empty-valued key per snapshot, so that the
/// checkpoints of a tree in a range of txgs are one range scan, not a read of every
/// snapshot (format version 9, feature `snapshot_index`).
pub fn snapshot_index_key(tree: u64, txg: Txg, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + name.len());
    k.extend_from_slice(&be64(tree));
    k.extend_from_slice(&be64(txg.0));
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn decode_snapshot_index(key: &[u8], value: &[u8]) -> Result<(u64, Txg, String)> {
    if key.len() <= 16 {
        return Err(Error::corrupt("snapshot index key without a name"));
    }
    if !value.is_empty() {
        return Err(Error::corrupt("snapshot index entry with a value"));
    }
    let tree = read_be64(key, "snapshot index")?;
    let txg = Txg(read_be64(&key[8..], "snapshot index")?);
    let name = decode_name(&key[16..], SNAPSHOT_NAME_BYTES_MAX, "snapshot")?;
    Ok((tree, txg, name))
}

pub fn dead_key(tree: u64, death: Txg, addr: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&be64(tree));
    k.extend_from_slice(&be64(death.0));
    k.extend_from_slice(&be64(addr));
    k
}

pub fn decode_dead(key: &[u8], value: &[u8]) -> Result<(u64, Txg, BlockPtr)> {
    if key.len() != 24 {
        return Err(Error::corrupt("dead index key is not 24 bytes"));
    }
    let tree = read_be64(key, "dead index")?;
    let death = Txg(read_be64(&key[8..], "dead index")?);
    let mut r = Reader::new(value, "dead index entry");
    let ptr = BlockPtr::decode(&mut r)?.ok_or_else(|| Error::corrupt("dead index entry with a null pointer"))?;
    no_trailing(&r, key, 24)?;
    if ptr.birth >= death {
        return Err(Error::corrupt(format!(
            "dead index entry born in txg {} and killed in txg {}",
            ptr.birth.0, death.0
        )));
    }
    Ok((tree, death, ptr))
}

pub fn encode_ptr(ptr: &BlockPtr) -> Vec<u8> {
    let mut w = Writer::new();
    BlockPtr::encode(Some(ptr), &mut w);
    w.bytes
}

/// Values end where their fields end and keys have their fixed length: anything else is
/// damage or a newer writer.
fn no_trailing(r: &Reader, key: &[u8], key_bytes: usize) -> Result<()> {
    if r.remaining() != 0 {
        return Err(Error::corrupt(format!("{} has {} trailing bytes", r.what(), r.remaining())));
    }
    if key.len() != key_bytes {
        return Err(Error::corrupt(format!("{} key of {} bytes", r.what(), key.len())));
    }
    Ok(())
}

fn decode_name(bytes: &[u8], max: usize, what: &str) -> Result<String> {
    if bytes.is_empty() || bytes.len() > max {
        return Err(Error::corrupt(format!("{what} name of {} bytes", bytes.len())));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::corrupt(format!("{what} name is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(holds: Vec<Hold>) -> SnapshotEntry {
        SnapshotEntry {
            tree: 1,
            name: "nightly".into(),
            guid: [7; 16],
            txg: Txg(42),
            time_ns: 9,
            root: None,
            holds,
            referenced_bytes: 0,
            subset: None,
        }
    }

    #[test]
    fn a_snapshot_entry_without_holds_is_the_version_7_entry_and_holds_round_trip() {
        // Goal: pools on which nobody placed a hold keep the bytes older binaries read
        // (16 zeros at the end); entries with holds decode to what was encoded, and a
        // damaged count or tag is corruption, not a panic.
        let key = SnapshotEntry::key(1, "nightly");
        let plain = entry(Vec::new()).encode_value();
        assert_eq!(plain.len(), 120);
        assert!(plain[104..].iter().all(|&b| b == 0));
        assert_eq!(SnapshotEntry::decode(&key, &plain).unwrap(), entry(Vec::new()));
        let holds = vec![Hold { tag: "offsite".into(), time_ns: 5 }, Hold { tag: "b:1".into(), time_ns: 6 }];
        let held = entry(holds.clone()).encode_value();
        assert_eq!(held.len(), 120 + (1 + 7 + 8) + (1 + 3 + 8));
        assert_eq!(SnapshotEntry::decode(&key, &held).unwrap().holds, holds);
        let mut too_many = held.clone();
        too_many[104..106].copy_from_slice(&(HOLDS_MAX as u16 + 1).to_le_bytes());
        assert!(SnapshotEntry::decode(&key, &too_many).is_err());
        for cut in 120..held.len() {
            assert!(SnapshotEntry::decode(&key, &held[..cut]).is_err(), "cut at {cut}");
        }
        let mut empty_tag = held.clone();
        empty_tag[120] = 0;
        assert!(SnapshotEntry::decode(&key, &empty_tag).is_err());
    }

    #[test]
    fn space_counters_round_trip_and_entries_before_version_10_still_decode() {
        // Goal: the counters come back as written; a tree entry of an older pool (no
        // counter at its end) decodes with 0, and anything longer is refused.
        let snapshot = SnapshotEntry { referenced_bytes: 123_456_789, ..entry(Vec::new()) };
        let key = SnapshotEntry::key(1, "nightly");
        assert_eq!(SnapshotEntry::decode(&key, &snapshot.encode_value()).unwrap(), snapshot);
        let tree = TreeEntry {
            id: 3,
            name: "live".into(),
            root: None,
            created_txg: Txg(2),
            origin: Some((1, Txg(1))),
            referenced_bytes: 77,
        };
        let value = tree.encode_value();
        assert_eq!(TreeEntry::decode(&TreeEntry::key(3), &value).unwrap(), tree);
        let old = &value[..value.len() - 8];
        assert_eq!(TreeEntry::decode(&TreeEntry::key(3), old).unwrap().referenced_bytes, 0);
        let mut longer = value.clone();
        longer.push(0);
        assert!(TreeEntry::decode(&TreeEntry::key(3), &longer).is_err());
    }
}
