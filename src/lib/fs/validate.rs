//! Whether a file tree that a stream built is a valid file system, checked at a cost
//! that grows with what the stream changed, not with the tree.
//!
//! A stream is checked record by record as it is applied, but records that are each
//! well formed can still build a tree that is not a file system (a directory under
//! itself, an entry naming a freed inode, an inode counter below a received inode). The
//! receiver therefore compares the tree it built with the tree it started from (the
//! base snapshot, or nothing), before committing anything, and refuses the part if any
//! invariant of `check` (check.rs) would fail. The base is trusted: it checked clean
//! when it was received or made. So only what the difference touches is looked at:
//!
//! - every inode with a changed item, and the old and new target of every changed
//!   directory entry: it exists with all its items or not at all; its back references
//!   and the entries that name it agree (name, parent, file type); a directory has one
//!   parent (the root none), a chain of parents that reaches the root, and nlink
//!   2 + subdirectories; any other inode as many names as nlink, at least one; items
//!   fit the file type (entries only under directories, a target only for symlinks,
//!   records only for regular files, consistent with the size);
//! - every changed directory entry and extended attribute: valid name, parent a
//!   directory; an attribute with a changed item is read whole (its continuations,
//!   fs/xattr.rs) and must be within limits;
//! - the tree's counter: above every inode number in the tree.
//!
//! A directory's subdirectory count is its count in the base (nlink - 2) plus the
//! changed entries' difference, so a changed directory is never read whole. An inode
//! the base lacks (every inode of a full stream) has all its items among the changes,
//! so it is checked from them, without a scan of the new tree; a record of a file whose
//! inode item changed is checked as it goes by, against the new size. Changes are
//! taken in batches that end between inodes, so memory stays bounded whatever the
//! stream's size.

use super::FsTree;
use super::inode::{FileKey, decode_dirent};
use super::inode::{FileType, Inode, ItemKind, META_INO, ROOT_INO, key, parse_xattr_suffix};
use super::record::{RECORD_BYTES, Record, check_kinds};
use super::tree_ops::{INODE_NUMBER_MAX, SYMLINK_BYTES_MAX, check_name};
use super::xattr::{assemble, check_xattr};
use crate::block::BlockPtr;
use crate::error::Result;
use crate::format::node::TreeKind;
use crate::store::{Owner, Store};
use crate::tree::{Change, Tree, TreeDiff};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Directories nested deeper than this are taken for a loop of parents.
pub const DIRECTORY_DEPTH_MAX: usize = 4096;

/// Changed keys taken in one batch at least (more only to finish an inode's items).
/// Small in test builds, so that the tests' small trees cross batch boundaries (a
/// directory named in one batch with its own items in another: refused wrongly once).
#[cfg(not(any(test, feature = "testing")))]
const BATCH_KEYS: usize = 50_000;
#[cfg(any(test, feature = "testing"))]
const BATCH_KEYS: usize = 16;

/// An invariant the new tree breaks, and the inode where it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub ino: u64,
    pub what: String,
}

/// A key's value in the new tree: None if the key is gone.
type NewValue = Option<Vec<u8>>;

/// What one batch of changed keys asks to look at.
#[derive(Default)]
struct Batch {
    inodes: BTreeSet<u64>,
    /// Changed entries (directory, name), with the new tree's value where the change
    /// carried it (an entry's own key changed: None if it is gone), else unknown.
    entries: BTreeMap<(u64, Vec<u8>), Option<NewValue>>,
    /// New values of changed inode items: the new tree need not be asked for them.
    new_inodes: HashMap<u64, Vec<u8>>,
    /// Changed records not checked as they went by (`add`): each is read and checked.
    records: BTreeMap<u64, BTreeSet<u64>>,
    /// Sizes of regular files whose inode item changed: a record of theirs that follows
    /// in the batch (records come after the inode item in key order) is checked at once.
    regular_sizes: HashMap<u64, u64>,
    /// Each inode's items as the changes carry them: all of its items when the base lacks
    /// the inode (every item is then new), so that it need not be scanned again.
    items: HashMap<u64, Items>,
    /// Per directory: subdirectory entries added minus removed.
    subdir_delta: BTreeMap<u64, i64>,
    /// Back references (inode, parent, name) the new tree holds among the changed keys:
    /// an entry that names one needs no lookup of it.
    new_backrefs: HashSet<(u64, u64, Vec<u8>)>,
    /// Extended attributes (inode, name) with a changed item: each is read whole.
    xattrs: BTreeSet<(u64, Vec<u8>)>,
    keys: usize,
    last_ino: u64,
}

/// Checks the tree `new` (flushed: its root is committed to the store, not yet to the
/// pool) against `base`, the root it was built from.
pub fn validate_received(
    store: &mut Store,
    base: Option<BlockPtr>,
    new: Option<BlockPtr>,
) -> Result<std::result::Result<(), Violation>> {
    let mut base_tree = Tree::open(TreeKind::Files, Owner::Meta, base);
    let mut new_tree = Tree::open(TreeKind::Files, Owner::Meta, new);
    let mut diff = TreeDiff::new(TreeKind::Files, base, new);
    let mut pending: Option<Change> = None;
    let mut first = true;
    loop {
        let mut batch = Batch::default();
        if first {
            batch.inodes.insert(ROOT_INO);
            first = false;
        }
        let mut ended = true;
        while let Some(change) = pending.take().map_or_else(|| diff.next(store), |c| Ok(Some(c)))? {
            let ino = key_ino(&change.key);
            if batch.keys >= BATCH_KEYS && ino != batch.last_ino {
                pending = Some(change);
                ended = false;
                break;
            }
            if let Err(v) = batch.add(&change) {
                return Ok(Err(v));
            }
        }
        let facts = base_facts(&mut FsTree::new(&mut base_tree, store, false), &batch)?;
        let outcome = checked_in(&mut FsTree::new(&mut new_tree, store, false), &batch, &facts)?;
        if outcome.is_err() {
            return Ok(outcome);
        }
        base_tree.evict();
        new_tree.evict();
        if ended {
            let mut new_fs = FsTree::new(&mut new_tree, store, false);
            return check_counter(&mut new_fs);
        }
    }
}

fn key_ino(key: &[u8]) -> u64 {
    FileKey::ino_of(key).unwrap_or(0)
}

fn violation(ino: u64, what: impl Into<String>) -> Violation {
    Violation { ino, what: what.into() }
}

fn name_text(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}

impl Batch {
    fn add(&mut self, change: &Change) -> std::result::Result<(), Violation> {
        self.keys += 1;
        let k = &change.key;
        let ino = key_ino(k);
        self.last_ino = ino;
        let Some(key) = FileKey::parse(k) else {
            return Err(violation(ino, format!("a file tree key of {} bytes", k.len())));
        };
        let suffix = key.suffix;
        if ino == META_INO {
            if !key.is(ItemKind::Meta) || !suffix.is_empty() {
                return Err(violation(ino, "an item under inode 0, which holds only the tree's counter"));
            }
            return Ok(());
        }
        self.inodes.insert(ino);
        // Present even if empty: the inode's own items are in this batch.
        self.items.entry(ino).or_default();
        let new = change.new.as_deref();
        match key.kind() {
            Some(kind @ (ItemKind::Inode | ItemKind::Symlink)) => {
                if !suffix.is_empty() {
                    return Err(violation(ino, "an inode or symlink key with trailing bytes"));
                }
                match (kind, new) {
                    (ItemKind::Inode, Some(value)) => {
                        if let Some(inode) = Inode::decode(value).ok().filter(|i| i.file_type() == FileType::Regular) {
                            self.regular_sizes.insert(ino, inode.size);
                        }
                        self.new_inodes.insert(ino, value.to_vec());
                    }
                    (ItemKind::Symlink, Some(value)) => {
                        self.items.entry(ino).or_default().target = Some(value.to_vec())
                    }
                    _ => {}
                }
            }
            Some(ItemKind::DirEntry) => {
                let mut delta = 0i64;
                for (value, sign) in [(change.old.as_deref(), -1i64), (new, 1)] {
                    let Some(value) = value else { continue };
                    let entry = decode_dirent(suffix, value).map_err(|e| violation(ino, e.to_string()))?;
                    self.inodes.insert(entry.ino);
                    if entry.file_type == FileType::Directory {
                        delta += sign;
                    }
                }
                *self.subdir_delta.entry(ino).or_default() += delta;
                if new.is_some() {
                    self.items.entry(ino).or_default().has_entries = true;
                }
                self.entries.insert((ino, suffix.to_vec()), Some(new.map(<[u8]>::to_vec)));
            }
            Some(ItemKind::BackRef) => {
                let Some((parent, name)) = key.backref() else {
                    return Err(violation(ino, "a back reference key without its parent"));
                };
                self.entries.entry((parent, name.to_vec())).or_insert(None);
                if new.is_some() {
                    self.new_backrefs.insert((ino, parent, name.to_vec()));
                    self.items.entry(ino).or_default().parents.push((parent, name.to_vec()));
                }
            }
            Some(ItemKind::Xattr) => {
                // A NUL anywhere but before a continuation's index is a bad name.
                let (name, _) = parse_xattr_suffix(suffix).unwrap_or((suffix, 0));
                check_xattr(name, 0).map_err(|what| violation(ino, what))?;
                self.xattrs.insert((ino, name.to_vec()));
            }
            Some(ItemKind::Record) => {
                let index =
                    key.record_index().ok_or_else(|| violation(ino, "a file record key of the wrong length"))?;
                match (new, self.regular_sizes.get(&ino)) {
                    (Some(value), Some(&size)) => {
                        self.items.entry(ino).or_default().has_records = true;
                        if last_index(size).is_none_or(|last| index > last) {
                            return Err(past_end(ino, size, index));
                        }
                        check_record(ino, size, index, value)?;
                    }
                    (new, _) => {
                        if new.is_some() {
                            self.items.entry(ino).or_default().has_records = true;
                        }
                        self.records.entry(ino).or_default().insert(index);
                    }
                }
            }
            Some(ItemKind::Meta) | None => {
                return Err(violation(ino, format!("an item of unknown kind {}", key.kind_byte)));
            }
        }
        Ok(())
    }
}

/// Per inode of a batch, in the base: its subdirectories, its last record index, whether
/// it is there at all, and its nlink.
type BaseFacts = BTreeMap<u64, (i64, Option<u64>, bool, Option<u32>)>;

fn base_facts(base: &mut FsTree, batch: &Batch) -> Result<BaseFacts> {
    let mut facts = BTreeMap::new();
    for &ino in &batch.inodes {
        let fact = match base.tree.get(base.store, &key(ino, ItemKind::Inode, &[]))? {
            None => (0, None, false, None),
            Some(v) => {
                let inode = Inode::decode(&v)?;
                let subdirs = match inode.file_type() {
                    FileType::Directory => inode.nlink as i64 - 2,
                    _ => 0,
                };
                (subdirs, last_index(inode.size), true, Some(inode.nlink))
            }
        };
        facts.insert(ino, fact);
    }
    Ok(facts)
}

fn last_index(size: u64) -> Option<u64> {
    size.checked_sub(1).map(|last| last / RECORD_BYTES)
}

/// Runs the new tree's checks of a batch, given the base's facts.
fn checked_in(fs: &mut FsTree, batch: &Batch, facts: &BaseFacts) -> Result<std::result::Result<(), Violation>> {
    let mut reachable = HashSet::new();
    let mut inodes = Inodes::default();
    for (ino, value) in &batch.new_inodes {
        inodes.read.insert(*ino, Inode::decode(value).ok());
    }
    for ((dir, name), value) in &batch.entries {
        let value = match value {
            Some(known) => known.clone(),
            None => fs.tree.get(fs.store, &key(*dir, ItemKind::DirEntry, name))?,
        };
        let Some(value) = value else { continue };
        if let Err(v) = check_entry(fs, &mut inodes, batch, *dir, name, &value)? {
            return Ok(Err(v));
        }
    }
    for (ino, name) in &batch.xattrs {
        let (head, parts) = fs.xattr_items(*ino, name)?;
        if head.is_none() && parts.is_empty() {
            continue; // removed
        }
        let parts: Vec<(u8, &[u8])> = parts.iter().map(|(i, b)| (*i, b.as_slice())).collect();
        if let Err(what) = assemble(name, head.as_deref(), &parts) {
            return Ok(Err(violation(*ino, what)));
        }
    }
    for &ino in &batch.inodes {
        let (base_subdirs, base_last, in_base, base_nlink) = facts.get(&ino).copied().unwrap_or((0, None, true, None));
        let subdirs = Subdirs {
            count: base_subdirs + batch.subdir_delta.get(&ino).copied().unwrap_or(0),
            complete: batch.items.contains_key(&ino),
            base_nlink,
        };
        let changes = Changes {
            records: batch.records.get(&ino),
            // New in this tree, with items in this batch (not only named by a changed
            // entry): every item of it is among the batch's changes.
            items: batch.items.get(&ino).filter(|_| !in_base).cloned(),
        };
        if let Err(v) = check_inode(fs, &mut inodes, ino, subdirs, base_last, changes, &mut reachable)? {
            return Ok(Err(v));
        }
    }
    Ok(Ok(()))
}

/// Inodes of the new tree read in a batch: a directory's is read once for all its
/// entries, and an inode named by a changed entry once for the entry and itself.
#[derive(Default)]
struct Inodes {
    read: HashMap<u64, Option<Inode>>,
    /// Entries (inode, directory, name) `check_entry` found whole: the entry names the
    /// inode, with its type, under a directory, and the back reference is there.
    entries_checked: HashSet<(u64, u64, Vec<u8>)>,
}

impl Inodes {
    /// The inode, or None if it is missing or does not decode (`check_inode` says which).
    fn get(&mut self, fs: &mut FsTree, ino: u64) -> Result<Option<Inode>> {
        if let Some(known) = self.read.get(&ino) {
            return Ok(known.clone());
        }
        let inode = match fs.tree.get(fs.store, &key(ino, ItemKind::Inode, &[]))? {
            Some(v) => Inode::decode(&v).ok(),
            None => None,
        };
        self.read.insert(ino, inode.clone());
        Ok(inode)
    }
}

/// A directory entry of the new tree, its value `value`.
fn check_entry(
    fs: &mut FsTree,
    inodes: &mut Inodes,
    batch: &Batch,
    dir: u64,
    name: &[u8],
    value: &[u8],
) -> Result<std::result::Result<(), Violation>> {
    let entry = match decode_dirent(name, value) {
        Ok(entry) => entry,
        Err(e) => return Ok(Err(violation(dir, e.to_string()))),
    };
    if let Err(e) = check_name(name) {
        return Ok(Err(violation(dir, e.to_string())));
    }
    match inodes.get(fs, dir)? {
        Some(parent) if parent.file_type() == FileType::Directory => {}
        Some(parent) => {
            let what = format!(
                "entry {} lies under inode {dir}, a {} and not a directory",
                name_text(name),
                type_name(parent.file_type())
            );
            return Ok(Err(violation(dir, what)));
        }
        None => {
            return Ok(Err(violation(
                dir,
                format!("entry {} lies under inode {dir}, which does not exist", name_text(name)),
            )));
        }
    }
    let Some(child) = inodes.get(fs, entry.ino)? else {
        let what =
            format!("entry {} in directory {dir} names inode {}, which does not exist", name_text(name), entry.ino);
        return Ok(Err(violation(dir, what)));
    };
    if child.file_type() != entry.file_type {
        let what = format!(
            "entry {} in directory {dir} says inode {} is a {}, but it is a {}",
            name_text(name),
            entry.ino,
            type_name(entry.file_type),
            type_name(child.file_type())
        );
        return Ok(Err(violation(entry.ino, what)));
    }
    let named = batch.new_backrefs.contains(&(entry.ino, dir, name.to_vec()))
        || fs.tree.get(fs.store, &super::inode::backref_key(entry.ino, dir, name))?.is_some();
    if !named {
        let what = format!(
            "entry {} in directory {dir} names inode {}, which has no back reference to it",
            name_text(name),
            entry.ino
        );
        return Ok(Err(violation(entry.ino, what)));
    }
    inodes.entries_checked.insert((entry.ino, dir, name.to_vec()));
    Ok(Ok(()))
}

pub fn type_name(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Regular => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Special => "special file",
    }
}

/// The first key under `prefix`, if any.
fn first_under(fs: &mut FsTree, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
    first_from(fs, prefix, prefix)
}

/// The first key at or after `start` that still starts with `prefix`.
fn first_from(fs: &mut FsTree, start: &[u8], prefix: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut found = None;
    fs.tree.scan(fs.store, start, &mut |k, _| {
        if k.starts_with(prefix) {
            found = Some(k.to_vec());
        }
        Ok(false)
    })?;
    Ok(found)
}

fn kind_name(kind: Option<ItemKind>) -> &'static str {
    match kind {
        Some(ItemKind::Inode) => "inode",
        Some(ItemKind::DirEntry) => "directory entry",
        Some(ItemKind::BackRef) => "back reference (a name)",
        Some(ItemKind::Xattr) => "extended attribute",
        Some(ItemKind::Symlink) => "symlink target",
        Some(ItemKind::Record) => "file record",
        Some(ItemKind::Meta) | None => "item",
    }
}

/// An inode's items between its inode item and its records, read in one scan (or,
/// for an inode the base lacks, gathered from the changes).
#[derive(Clone, Default)]
struct Items {
    has_entries: bool,
    parents: Vec<(u64, Vec<u8>)>,
    target: Option<Vec<u8>>,
    has_records: bool,
}

/// Scans an inode's items from `from` (its entries, or for a directory, whose entries
/// can be many, its back references) up to its first record.
fn items_of(fs: &mut FsTree, ino: u64, from: ItemKind) -> Result<std::result::Result<Items, Violation>> {
    let mut items = Items::default();
    let mut bad = None;
    fs.tree.scan(fs.store, &key(ino, from, &[]), &mut |k, v| {
        let Some(key) = FileKey::parse(k).filter(|key| key.ino == ino) else {
            return Ok(false);
        };
        match key.kind() {
            Some(ItemKind::DirEntry) => items.has_entries = true,
            Some(ItemKind::BackRef) => match key.backref() {
                Some((parent, name)) => items.parents.push((parent, name.to_vec())),
                None => bad = Some(violation(ino, "a back reference key without its parent")),
            },
            Some(ItemKind::Symlink) => items.target = Some(v.to_vec()),
            Some(ItemKind::Record) => {
                items.has_records = true;
                return Ok(false);
            }
            _ => {}
        }
        Ok(bad.is_none())
    })?;
    Ok(bad.map_or(Ok(items), Err))
}

/// An inode that is not in the new tree: nothing of it may be either.
fn check_missing_inode(fs: &mut FsTree, ino: u64) -> Result<std::result::Result<(), Violation>> {
    if ino == ROOT_INO {
        return Ok(Err(violation(ino, "the tree has no root directory")));
    }
    if let Some(k) = first_under(fs, &ino.to_be_bytes())? {
        let kind = FileKey::parse(&k).and_then(|k| k.kind());
        let what = format!("inode {ino} does not exist, but an item of it does: its {}", kind_name(kind));
        return Ok(Err(violation(ino, what)));
    }
    Ok(Ok(()))
}

/// What a batch changed of one inode.
/// A directory's subdirectory count as a batch knows it.
#[derive(Clone, Copy)]
struct Subdirs {
    /// The base's count plus what the batch's changed entries of it add and remove.
    count: i64,
    /// The batch holds the inode's own items, so all its changed entries (a batch ends
    /// between inodes): `count` is the new tree's. A directory the batch only meets as
    /// the child of a changed entry may have its own changes in another batch, where
    /// they are checked; here only an nlink the base had says none changed its count.
    complete: bool,
    base_nlink: Option<u32>,
}

struct Changes<'b> {
    /// Changed records that `Batch::add` did not check.
    records: Option<&'b BTreeSet<u64>>,
    /// All of the inode's items, when the base lacks it.
    items: Option<Items>,
}

/// One inode as it is in the new tree.
fn check_inode(
    fs: &mut FsTree,
    inodes: &mut Inodes,
    ino: u64,
    subdirs: Subdirs,
    base_last: Option<u64>,
    changes: Changes,
    reachable: &mut HashSet<u64>,
) -> Result<std::result::Result<(), Violation>> {
    let inode = match inodes.read.get(&ino).cloned().flatten() {
        Some(inode) => inode,
        None => match fs.tree.get(fs.store, &key(ino, ItemKind::Inode, &[]))? {
            Some(value) => match Inode::decode(&value) {
                Ok(inode) => inode,
                Err(e) => return Ok(Err(violation(ino, e.to_string()))),
            },
            None => return check_missing_inode(fs, ino),
        },
    };
    let file_type = inode.file_type();
    let fail = |what: String| Ok(Err(violation(ino, what)));
    if ino == ROOT_INO && file_type != FileType::Directory {
        return fail(format!("the root is a {}, not a directory", type_name(file_type)));
    }
    let new_inode = changes.items.is_some();
    let items = match changes.items {
        Some(items) => items,
        None => {
            let from = if file_type == FileType::Directory { ItemKind::BackRef } else { ItemKind::DirEntry };
            match items_of(fs, ino, from)? {
                Ok(items) => items,
                Err(v) => return Ok(Err(v)),
            }
        }
    };
    for (parent, name) in items.parents.iter() {
        if inodes.entries_checked.contains(&(ino, *parent, name.clone())) {
            continue;
        }
        if check_name(name).is_err() {
            return fail(format!("inode {ino} has a bad name {}", name_text(name)));
        }
        let entry = fs.lookup(*parent, name).ok().flatten();
        let Some(entry) = entry.filter(|e| e.ino == ino) else {
            return fail(format!(
                "inode {ino} says it is {} in directory {parent}, but no such entry names it",
                name_text(name)
            ));
        };
        // An unchanged entry still says what type its inode was: a stream that changes
        // only the inode's mode must not leave the two disagreeing.
        if entry.file_type != file_type {
            return fail(format!(
                "entry {} in directory {parent} says inode {ino} is a {}, but it is a {}",
                name_text(name),
                type_name(entry.file_type),
                type_name(file_type)
            ));
        }
        match inodes.get(fs, *parent)? {
            Some(p) if p.file_type() == FileType::Directory => {}
            _ => return fail(format!("inode {ino}'s parent {parent} is not a directory")),
        }
    }
    let names = items.parents.len() as i64;
    if file_type == FileType::Directory {
        let expected_parents = if ino == ROOT_INO { 0 } else { 1 };
        if names != expected_parents {
            return fail(format!("directory {ino} has {names} parents; a directory has exactly {expected_parents}"));
        }
        let known = subdirs.complete || subdirs.base_nlink == Some(inode.nlink);
        if known && inode.nlink as i64 != 2 + subdirs.count {
            return fail(format!(
                "directory {ino} has nlink {} but {} subdirectories (nlink 2 + subdirectories)",
                inode.nlink, subdirs.count
            ));
        }
        if let Err(what) = reaches_root(fs, ino, reachable)? {
            return fail(what);
        }
    } else {
        if names == 0 {
            return fail(format!("inode {ino} is in no directory (an orphan)"));
        }
        if inode.nlink as i64 != names {
            return fail(format!("inode {ino} has nlink {} but {names} names", inode.nlink));
        }
        if items.has_entries {
            return fail(format!("{} {ino} holds directory entries", type_name(file_type)));
        }
    }
    match (file_type, items.target) {
        (FileType::Symlink, None) => return fail(format!("symlink {ino} has no target")),
        (FileType::Symlink, Some(t)) if t.is_empty() || t.len() > SYMLINK_BYTES_MAX => {
            return fail(format!("symlink {ino} has a target of {} bytes", t.len()));
        }
        (FileType::Symlink, Some(t)) if inode.size != t.len() as u64 => {
            return fail(format!("symlink {ino} has size {} but a target of {} bytes", inode.size, t.len()));
        }
        (FileType::Symlink, Some(_)) | (_, None) => {}
        (other, Some(_)) => return fail(format!("{} {ino} has a symlink target", type_name(other))),
    }
    if file_type != FileType::Regular {
        if items.has_records {
            return fail(format!("{} {ino} holds file records", type_name(file_type)));
        }
        return Ok(Ok(()));
    }
    if new_inode && changes.records.is_none() {
        // Every record of it went by in the batch and was checked there (`Batch::add`).
        return Ok(Ok(()));
    }
    check_records(fs, ino, inode.size, base_last, changes.records)
}

/// The records of a regular file that a change could have made inconsistent with its
/// size: those written, the last one, the base's last one (now in the middle if the
/// file grew), and any past the end.
fn check_records(
    fs: &mut FsTree,
    ino: u64,
    size: u64,
    base_last: Option<u64>,
    records: Option<&BTreeSet<u64>>,
) -> Result<std::result::Result<(), Violation>> {
    let last = last_index(size);
    // One scan from the last record finds it and anything past the end.
    let prefix = key(ino, ItemKind::Record, &[]);
    let mut tail = Vec::new();
    fs.tree.scan(fs.store, &key(ino, ItemKind::Record, &last.unwrap_or(0).to_be_bytes()), &mut |k, v| {
        if !k.starts_with(&prefix) {
            return Ok(false);
        }
        tail.push((key_ino(&k[9..]), v.to_vec()));
        Ok(tail.len() < 2)
    })?;
    for (index, value) in &tail {
        if Some(*index) != last {
            return Ok(Err(past_end(ino, size, *index)));
        }
        if let Err(v) = check_record(ino, size, *index, value) {
            return Ok(Err(v));
        }
    }
    let mut indexes: BTreeSet<u64> = records.cloned().unwrap_or_default();
    indexes.extend(base_last);
    for index in indexes.into_iter().filter(|i| Some(*i) != last) {
        let Some(value) = fs.tree.get(fs.store, &key(ino, ItemKind::Record, &index.to_be_bytes()))? else { continue };
        if let Err(v) = check_record(ino, size, index, &value) {
            return Ok(Err(v));
        }
    }
    Ok(Ok(()))
}

fn past_end(ino: u64, size: u64, index: u64) -> Violation {
    violation(ino, format!("file {ino} of {size} bytes has a record {index} past its end"))
}

/// One record holds the bytes the file's size implies at its index.
fn check_record(ino: u64, size: u64, index: u64, value: &[u8]) -> std::result::Result<(), Violation> {
    let record = Record::decode(value)
        .and_then(|r| check_kinds(&r).map(|_| r))
        .map_err(|e| violation(ino, format!("file {ino} record {index}: {e}")))?;
    let start = index.saturating_mul(RECORD_BYTES);
    let expected = size.saturating_sub(start).min(RECORD_BYTES);
    if record.logical_bytes() != expected {
        let what = format!(
            "file {ino} record {index} holds {} bytes; a file of {size} bytes needs {expected} there",
            record.logical_bytes()
        );
        return Err(violation(ino, what));
    }
    Ok(())
}

/// Follows a directory's parents up to the root: no loop, no missing parent.
fn reaches_root(fs: &mut FsTree, dir: u64, reachable: &mut HashSet<u64>) -> Result<std::result::Result<(), String>> {
    let mut path = Vec::new();
    let mut at = dir;
    for _ in 0..DIRECTORY_DEPTH_MAX {
        if at == ROOT_INO || reachable.contains(&at) {
            reachable.extend(path);
            return Ok(Ok(()));
        }
        if path.contains(&at) {
            return Ok(Err(format!("directory {dir} lies in a loop of directories (through {at})")));
        }
        path.push(at);
        let parents = fs.backrefs(at)?;
        let [(parent, _)] = parents.as_slice() else {
            return Ok(Err(format!("directory {at}, above directory {dir}, has {} parents", parents.len())));
        };
        at = *parent;
    }
    Ok(Err(format!("directory {dir} is nested deeper than {DIRECTORY_DEPTH_MAX} directories, or in a loop")))
}

/// The tree's counter is above every inode number in the tree.
fn check_counter(fs: &mut FsTree) -> Result<std::result::Result<(), Violation>> {
    let Some(value) = fs.tree.get(fs.store, &key(META_INO, ItemKind::Meta, &[]))? else {
        return Ok(Err(violation(META_INO, "the tree has no inode counter")));
    };
    let Ok(bytes) = <[u8; 8]>::try_from(value.as_slice()) else {
        return Ok(Err(violation(META_INO, "the inode counter has the wrong size")));
    };
    let next = u64::from_le_bytes(bytes);
    if next <= ROOT_INO || next > INODE_NUMBER_MAX {
        let what =
            format!("the inode counter is {next}: it must lie above the root's 1 and at most {INODE_NUMBER_MAX}");
        return Ok(Err(violation(META_INO, what)));
    }
    let mut above = None;
    fs.tree.scan(fs.store, &next.to_be_bytes(), &mut |k, _| {
        above = Some(key_ino(k));
        Ok(false)
    })?;
    if let Some(ino) = above {
        let what = format!("the inode counter is {next}, not above inode {ino}: new files would reuse its number");
        return Ok(Err(violation(ino, what)));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    //! Breaks that no public call can make, reported by `check` (the integration tests
    //! in tests/check_invariants.rs break the rest).
    use super::*;
    use crate::check::check_pool;
    use crate::device::MemoryDevice;
    use crate::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};

    /// A pool with /file and /link -> file; returns (pool, file, link).
    fn pool() -> (Pool, u64, u64) {
        let mut pool = format_pool(Box::new(MemoryDevice::new(64 << 20)), &FormatOptions::default()).unwrap();
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        let file = fs.create(ROOT_INO, b"file", Inode::new(0o100644, Default::default())).unwrap();
        let link = fs.create(ROOT_INO, b"link", Inode::new(0o120777, Default::default())).unwrap();
        fs.set_symlink_target(link, b"file").unwrap();
        pool.commit().unwrap();
        (pool, file, link)
    }

    fn problems_after(pool: &mut Pool, change: impl FnOnce(&mut FsTree)) -> Vec<String> {
        change(&mut pool.live(LIVE_TREE_ID).unwrap());
        pool.commit().unwrap();
        check_pool(pool).unwrap().problems
    }

    #[test]
    fn xattr_name_with_nul_is_refused_and_reported() {
        // Goal: neither a call nor a key planted in the tree gets a NUL into an xattr name.
        let (mut pool, file, _) = pool();
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        assert!(fs.set_xattr(file, b"user.a\0b", b"v").is_err());
        let problems = problems_after(&mut pool, |fs| {
            fs.tree.insert(fs.store, &key(file, ItemKind::Xattr, b"user.a\0b"), b"v").unwrap();
        });
        assert!(problems.iter().any(|p| p.contains("no NUL")), "{problems:?}");
    }

    #[test]
    fn broken_xattr_continuations_are_reported() {
        // Goal: check proves the layout of large values: no continuation without a full
        // first item, none without its attribute, and only under the label's feature.
        use crate::fs::inode::{xattr_key, xattr_part_key};
        let full = vec![7u8; 4096];
        type Plant = Box<dyn Fn(&mut FsTree, u64)>;
        let cases: Vec<(Plant, &str)> = vec![
            (
                Box::new(|fs, file| {
                    fs.tree.insert(fs.store, &xattr_part_key(file, b"user.a", 1), b"x").unwrap();
                }),
                "extended attribute user.a has continuation 1 but no first item",
            ),
            (
                Box::new(|fs, file| {
                    fs.tree.insert(fs.store, &xattr_key(file, b"user.a"), b"short").unwrap();
                    fs.tree.insert(fs.store, &xattr_part_key(file, b"user.a", 1), b"x").unwrap();
                }),
                "continuations after a first item of 5 bytes",
            ),
            (
                Box::new(move |fs, file| {
                    fs.tree.insert(fs.store, &xattr_key(file, b"user.a"), &full).unwrap();
                    fs.tree.insert(fs.store, &xattr_part_key(file, b"user.a", 2), b"x").unwrap();
                }),
                "continuation 2 where 1 belongs",
            ),
        ];
        for (plant, words) in cases {
            let (mut pool, file, _) = pool();
            let problems = problems_after(&mut pool, |fs| plant(fs, file));
            assert!(problems.iter().any(|p| p.contains(words)), "{words}: {problems:?}");
        }
        // A well-formed large value planted without the feature bit is reported too.
        let (mut pool, file, _) = pool();
        let problems = problems_after(&mut pool, |fs| {
            fs.tree.insert(fs.store, &xattr_key(file, b"user.a"), &[1; 4096]).unwrap();
            fs.tree.insert(fs.store, &xattr_part_key(file, b"user.a", 1), b"x").unwrap();
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("lacks the large_xattrs feature"), "{problems:?}");
        // Stored through set_xattr, the same value turns the feature on and checks clean.
        pool.live(LIVE_TREE_ID).unwrap().set_xattr(file, b"user.a", &[1; 4097]).unwrap();
        pool.commit().unwrap();
        assert!(check_pool(&mut pool).unwrap().problems.is_empty());
    }

    #[test]
    fn symlink_without_target_is_reported() {
        let (mut pool, _, link) = pool();
        let problems = problems_after(&mut pool, |fs| {
            fs.tree.remove(fs.store, &key(link, ItemKind::Symlink, &[])).unwrap();
        });
        assert!(problems.iter().any(|p| p.contains(&format!("symlink {link} has no target"))), "{problems:?}");
    }

    #[test]
    fn item_of_a_missing_inode_is_reported() {
        let (mut pool, file, _) = pool();
        let problems = problems_after(&mut pool, |fs| {
            fs.tree.insert(fs.store, &key(file + 50, ItemKind::Xattr, b"user.x"), b"v").unwrap();
        });
        assert!(
            problems.iter().any(|p| p.contains("does not exist, but an item of it does: its extended attribute")),
            "{problems:?}"
        );
    }
}
