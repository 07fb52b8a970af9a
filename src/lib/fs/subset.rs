//! The file tree of a subset: the files a rule selects from a tree, the directories
//! that lead to them, and nothing else, as a new B+tree that shares every file record
//! (and so every data block) with the source.
//!
//! Two passes. The first walks the source's directories from the root, judging each
//! entry that is not a directory by the rule (fs/select.rs), and keeps the links it
//! selects and the chain of directories above each. The second copies, inode by inode
//! in key order, the kept inodes' items into the new tree: inode items with their link
//! counts recounted (a hard link left out is a name less; a directory counts the
//! subdirectories kept), only the directory entries and back references of kept links,
//! and every extended attribute, symlink target and record as it is. Inode numbers stay
//! the source's, so a stream between two subsets of one tree, or between a subset and
//! its source, sends only what differs (tree/diff.rs compares items, not nodes).
//!
//! Memory grows with the subset's inodes and the source's directories, not with the
//! source's files.
//!
//! `unite` writes the union of several such trees, states of one tree at several
//! moments (`snapshot --merge`): the newest source wins where they differ.

use super::inode::{FileKey, FileType, Inode, ItemKind, META_INO, ROOT_INO, encode_dirent, key};
use super::select::{FileXattrs, Rule};
use super::tree_ops::DirectoryItems;
use super::{DirEntry, FsTree};
use crate::error::{Error, Result};
use crate::format::node::TreeKind;
use crate::store::{Owner, Store};
use crate::tree::Tree;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Inodes whose items a copy asks the device for at once.
const PREFETCH_INODES: usize = 256;

/// Bytes of the kept files' items a selection holds for the copy (see `Selection`):
/// a file whose items would pass it is read again by the copy instead.
const CAPTURED_BYTES: usize = 32 << 20;

/// What a subset holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubsetStats {
    /// Files selected (every kind but directories; a hard link counts once).
    pub files: u64,
    /// Directories kept as the way to them, the root included.
    pub directories: u64,
    /// The selected regular files' sizes.
    pub file_bytes: u64,
}

/// The inodes a subset keeps, each with the links (parent, name) it keeps.
///
/// A kept file's items are read while the walk has its leaf at hand, and kept for the
/// copy (up to CAPTURED_BYTES in all), and a kept directory's entries are the links the
/// walk kept: so the copy reads no leaf the selection read already. A tree larger than
/// every cache otherwise had each of its leaves read, checked and decoded twice.
#[derive(Default)]
pub struct Selection {
    kept: BTreeMap<u64, Kept>,
    /// The tree's inode counter item, as the walk read it.
    counter: Option<Vec<u8>>,
    captured_bytes: usize,
    pub stats: SubsetStats,
}

#[derive(Default)]
struct Kept {
    links: u32,
    /// Kept subdirectories (directories only).
    subdirs: u32,
    is_dir: bool,
    /// A directory's kept entries: name -> (inode, type).
    entries: BTreeMap<Vec<u8>, (u64, FileType)>,
    /// Its items (a directory's but its entries), read by the selection (None: the
    /// copy reads them).
    items: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Selection {
    /// Inodes kept (the directories leading to the files too).
    pub fn inodes(&self) -> usize {
        self.kept.len()
    }

    /// Kept inodes below `ino`.
    pub fn inodes_below(&self, ino: u64) -> usize {
        self.kept.range(..ino).count()
    }

    fn keep_link(&mut self, ino: u64, parent: u64, name: &[u8], file_type: FileType) {
        let is_dir = file_type == FileType::Directory;
        let kept = self.kept.entry(ino).or_default();
        kept.links += 1;
        kept.is_dir = is_dir;
        let parent = self.kept.entry(parent).or_default();
        parent.entries.insert(name.to_vec(), (ino, file_type));
        parent.subdirs += u32::from(is_dir);
    }

    /// Whether the link (parent, name) of `ino` is kept.
    fn keeps_link(&self, ino: u64, parent: u64, name: &[u8]) -> bool {
        self.kept.get(&parent).is_some_and(|p| p.entries.get(name).is_some_and(|&(child, _)| child == ino))
    }

    /// Holds `items` of kept inode `ino` for the copy, if the bound allows.
    fn capture(&mut self, ino: u64, items: Vec<(Vec<u8>, Vec<u8>)>) {
        let bytes = held_bytes(&items);
        if self.captured_bytes + bytes <= CAPTURED_BYTES
            && let Some(kept) = self.kept.get_mut(&ino)
        {
            self.captured_bytes += bytes;
            kept.items = Some(items);
        }
    }
}

/// What holding `items` costs: each item's two vectors and their headers.
fn held_bytes(items: &[(Vec<u8>, Vec<u8>)]) -> usize {
    items.iter().map(|(k, v)| k.len() + v.len() + 64).sum()
}

/// The keys of the first and the last item inode `ino` can have.
fn every_item(ino: u64) -> (Vec<u8>, Vec<u8>) {
    (key(ino, ItemKind::Inode, &[]), key(ino, ItemKind::Record, &[0xFF; 8]))
}

/// The links of `source` that `rule` selects, with the directories above them.
pub fn select(source: &mut FsTree, rule: &Rule) -> Result<Selection> {
    let mut selection = Selection::default();
    selection.kept.insert(ROOT_INO, Kept { is_dir: true, ..Kept::default() });
    selection.stats.directories = 1;
    // Every directory walked: its parent and name, to keep the chain above a selection.
    let mut parents: HashMap<u64, (u64, Vec<u8>)> = HashMap::new();
    let mut stack: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut counted = HashSet::new();
    // Directories' own items (but their entries), read with their entries, for those
    // the subset keeps; within what the selection may hold.
    let (mut directory_items, mut directory_bytes) = (HashMap::new(), 0);
    let meta = key(META_INO, ItemKind::Meta, &[]);
    selection.counter = source.tree.get(source.store, &meta)?;
    let mut ahead = Some(read_directory(source, rule, ROOT_INO, Vec::new())?);
    while let Some(Listed { dir, entries, own }) = ahead.take() {
        let bytes = held_bytes(&own);
        if directory_bytes + bytes <= CAPTURED_BYTES {
            directory_bytes += bytes;
            directory_items.insert(dir, own);
        }
        for (entry, path) in entries.iter().filter(|(e, _)| e.file_type == FileType::Directory) {
            if parents.insert(entry.ino, (dir, entry.name.clone())).is_some() || entry.ino == ROOT_INO {
                return Err(Error::corrupt(format!("directory inode {} is reached twice", entry.ino)));
            }
            stack.push((entry.ino, [path.as_slice(), b"/"].concat()));
        }
        // The next directory listed before this one's files are judged: the device
        // reads the leaves of its files meanwhile.
        if let Some((next, prefix)) = stack.pop() {
            ahead = Some(read_directory(source, rule, next, prefix)?);
        }
        for (entry, path) in entries.into_iter().filter(|(e, _)| e.file_type != FileType::Directory) {
            let inode = source.inode(entry.ino)?;
            if !rule.selects(&path, &inode, &mut FileXattrs { fs: source, ino: entry.ino })? {
                continue;
            }
            selection.keep_link(entry.ino, dir, &entry.name, entry.file_type);
            if counted.insert(entry.ino) {
                selection.stats.files += 1;
                if inode.file_type() == FileType::Regular {
                    selection.stats.file_bytes += inode.size;
                }
                if selection.captured_bytes < CAPTURED_BYTES {
                    let items = source.tree.scan_prefix(source.store, &entry.ino.to_be_bytes())?;
                    selection.capture(entry.ino, items);
                }
            }
            keep_directories_above(&mut selection, &parents, dir)?;
        }
    }
    for (dir, own) in directory_items {
        if selection.kept.contains_key(&dir) {
            selection.capture(dir, own);
        }
    }
    Ok(selection)
}

/// A directory's entries the walk goes on with (its subdirectories, and the files whose
/// paths the rule's globs take), each with its path, and its own items but its entries.
struct Listed {
    dir: u64,
    entries: Vec<(DirEntry, Vec<u8>)>,
    own: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Lists `dir` (at `prefix`, its path and '/') for the walk, and asks the device at once
/// for what the walk reads of it next: its subdirectories' items (every leaf of them)
/// and the inode items of the files the globs take. Paths are judged once.
fn read_directory(source: &mut FsTree, rule: &Rule, dir: u64, prefix: Vec<u8>) -> Result<Listed> {
    let mut ahead: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut entries = Vec::new();
    let DirectoryItems { entries: listed, own } = source.directory_items(dir)?;
    for entry in listed {
        let path = [prefix.as_slice(), &entry.name].concat();
        match entry.file_type {
            FileType::Directory => {
                ahead.push(every_item(entry.ino));
            }
            // Taken by the path alone, every item of it is read next (the selection
            // keeps them); else its inode first, to judge it.
            _ if rule.selects_path(&path) => ahead.push(match rule.has_conditions() {
                true => (key(entry.ino, ItemKind::Inode, &[]), key(entry.ino, ItemKind::Inode, &[])),
                false => every_item(entry.ino),
            }),
            _ => continue,
        }
        entries.push((entry, path));
    }
    source.tree.prefetch(source.store, &ahead)?;
    Ok(Listed { dir, entries, own })
}

/// Keeps `dir` and the directories above it, up to the first one already kept.
fn keep_directories_above(
    selection: &mut Selection,
    parents: &HashMap<u64, (u64, Vec<u8>)>,
    mut dir: u64,
) -> Result<()> {
    // A directory is kept once its own link is (the root always): an entry made only to
    // hold its kept entries is not yet.
    while !selection.kept.get(&dir).is_some_and(|k| k.is_dir) {
        let (parent, name) = parents
            .get(&dir)
            .ok_or_else(|| Error::corrupt(format!("directory inode {dir} has no parent on the walk")))?;
        selection.keep_link(dir, *parent, name, FileType::Directory);
        selection.stats.directories += 1;
        dir = *parent;
    }
    Ok(())
}

/// Writes the kept inodes of `source` into `dest`, an empty tree.
pub fn copy_selection(source: &mut FsTree, selection: &Selection, dest: &mut Tree) -> Result<()> {
    copy_selection_from(source, selection, dest, 0, usize::MAX).map(|_| ())
}

/// Writes into `dest` the kept inodes of `source` from inode `from` on, at most `most`
/// of them (and, from 0, the tree's inode counter first): `dest` then holds what an
/// earlier call wrote up to `from`. Returns the inode to go on from, None when done.
/// Inodes go in key order, so a tree copied in parts is the tree copied at once.
pub fn copy_selection_from(
    source: &mut FsTree,
    selection: &Selection,
    dest: &mut Tree,
    from: u64,
    most: usize,
) -> Result<Option<u64>> {
    if from == META_INO {
        let meta = key(META_INO, ItemKind::Meta, &[]);
        let counter = selection.counter.as_ref().ok_or_else(|| Error::corrupt("the tree has no inode counter"))?;
        dest.insert(source.store, &meta, counter)?;
    }
    let mut part = selection.kept.range(from..);
    let next = part.clone().nth(most).map(|(&ino, _)| ino);
    // The items the selection did not hold, asked for at once (a large file's records
    // fill many leaves), in batches that bound what the cache is asked to hold.
    let unread: Vec<u64> =
        part.clone().take(most).filter(|(_, kept)| kept.items.is_none()).map(|(&ino, _)| ino).collect();
    let mut asked = 0;
    for (&ino, kept) in part.by_ref().take(most) {
        if unread[asked..].first() == Some(&ino) {
            let batch = &unread[asked..(asked + PREFETCH_INODES).min(unread.len())];
            let ranges: Vec<_> = batch
                .iter()
                .map(|&i| match selection.kept[&i].is_dir {
                    // A directory's entries are the selection's.
                    true => (key(i, ItemKind::Inode, &[]), key(i, ItemKind::Inode, &[])),
                    false => every_item(i),
                })
                .collect();
            source.tree.prefetch(source.store, &ranges)?;
            asked += batch.len();
        }
        let read;
        let items = match &kept.items {
            Some(items) => items,
            None => {
                read = items_to_copy(source, ino, kept.is_dir)?;
                &read
            }
        };
        let mut entries_written = !kept.is_dir;
        for (k, v) in items {
            let item = FileKey::parse(k).ok_or_else(|| Error::corrupt("a file tree key too short"))?;
            if !entries_written && item.sorts_after(ItemKind::DirEntry) {
                write_entries(source.store, dest, ino, kept)?;
                entries_written = true;
            }
            let value = match item.kind() {
                Some(ItemKind::Inode) => {
                    let inode = Inode::decode(v)?;
                    let nlink = if kept.is_dir { 2 + kept.subdirs } else { kept.links };
                    Some(Inode { nlink, ..inode }.encode())
                }
                // A directory's are written from the selection (a file has none).
                Some(ItemKind::DirEntry) => None,
                Some(ItemKind::BackRef) => {
                    let (parent, name) =
                        item.backref().ok_or_else(|| Error::corrupt(format!("inode {ino}: a short back reference")))?;
                    selection.keeps_link(ino, parent, name).then(|| v.clone())
                }
                Some(ItemKind::Xattr | ItemKind::Symlink | ItemKind::Record) => Some(v.clone()),
                Some(ItemKind::Meta) | None => {
                    return Err(Error::corrupt(format!("inode {ino} has an item of kind {}", item.kind_byte)));
                }
            };
            if let Some(value) = value {
                dest.insert(source.store, k, &value)?;
            }
        }
        if !entries_written {
            write_entries(source.store, dest, ino, kept)?;
        }
    }
    Ok(next)
}

/// Every item of kept inode `ino` but, for a directory, its entries (those are the
/// selection's: reading them again would read every leaf of a large directory twice).
fn items_to_copy(source: &mut FsTree, ino: u64, is_dir: bool) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let prefix = ino.to_be_bytes();
    if !is_dir {
        return source.tree.scan_prefix(source.store, &prefix);
    }
    let mut items = Vec::new();
    // The inode item, up to the entries; then from the back references on.
    let parts = [(key(ino, ItemKind::Meta, &[]), Some(ItemKind::Inode)), (key(ino, ItemKind::BackRef, &[]), None)];
    for (start, last) in parts {
        source.tree.scan(source.store, &start, &mut |k, v| {
            let more = FileKey::parse(k)
                .is_some_and(|item| item.ino == ino && last.is_none_or(|last| !item.sorts_after(last)));
            if more {
                items.push((k.to_vec(), v.to_vec()));
            }
            Ok(more)
        })?;
    }
    Ok(items)
}

/// A kept directory's kept entries, as its source holds them.
fn write_entries(store: &mut Store, dest: &mut Tree, ino: u64, kept: &Kept) -> Result<()> {
    for (name, &(child, file_type)) in &kept.entries {
        dest.insert(store, &key(ino, ItemKind::DirEntry, name), &encode_dirent(child, file_type))?;
    }
    Ok(())
}

/// What a union of trees holds, and where it took it from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnionStats {
    pub held: SubsetStats,
    /// Files taken from each source, in the order given (newest first).
    pub taken: Vec<u64>,
    /// Files of an older source left out because a newer one has that path or that
    /// file (at another path, or another version of it).
    pub overridden: u64,
}

/// An inode placed in a union: the source it is taken from and its links there.
struct Placed {
    source: usize,
    is_dir: bool,
    links: Vec<(u64, Vec<u8>)>,
    subdirs: u32,
    /// A directory's entries, by name: (inode, file type).
    entries: BTreeMap<Vec<u8>, (u64, FileType)>,
}

/// The union of several trees, placed (`place`) and not yet written (`write_union_from`).
#[derive(Default)]
pub struct Union {
    placed: BTreeMap<u64, Placed>,
    counter: u64,
    pub stats: UnionStats,
}

impl Union {
    /// Inodes placed (directories too).
    pub fn inodes(&self) -> usize {
        self.placed.len()
    }

    /// Placed inodes below `ino`.
    pub fn inodes_below(&self, ino: u64) -> usize {
        self.placed.range(..ino).count()
    }
}

/// Writes into `dest`, an empty tree, the union of the file trees at `sources` (states
/// of one tree, newest first: its inode numbers name the same file in each), as
/// `snapshot --merge` takes it. Newer wins: a path in several sources is the newest's;
/// a file (an inode) that a newer source holds is only where and as that one holds it;
/// a directory is one, at its newest path, holding what every source holds in it.
pub fn unite(store: &mut Store, sources: &[Option<crate::block::BlockPtr>], dest: &mut Tree) -> Result<UnionStats> {
    let union = place(store, sources)?;
    write_union_from(store, sources, &union, dest, 0, usize::MAX)?;
    Ok(union.stats)
}

/// Where each file of the union of `sources` comes from (see `unite`): a walk of every
/// source's directories, nothing written.
pub fn place(store: &mut Store, sources: &[Option<crate::block::BlockPtr>]) -> Result<Union> {
    let mut trees: Vec<Tree> = sources.iter().map(|root| Tree::open(TreeKind::Files, Owner::Meta, *root)).collect();
    let mut stats = UnionStats { taken: vec![0; sources.len()], ..UnionStats::default() };
    let mut placed: BTreeMap<u64, Placed> = BTreeMap::new();
    let new_dir = |source| Placed { source, is_dir: true, links: Vec::new(), subdirs: 0, entries: BTreeMap::new() };
    placed.insert(ROOT_INO, new_dir(0));
    // Every path placed: the inode there.
    let mut paths: HashMap<Vec<u8>, u64> = HashMap::new();
    for (source, tree) in trees.iter_mut().enumerate() {
        let mut fs = FsTree::new(tree, store, false);
        // (directory in this source, the directory it is placed as, its path + '/')
        let mut stack: Vec<(u64, u64, Vec<u8>)> = vec![(ROOT_INO, ROOT_INO, Vec::new())];
        let mut walked = HashSet::new();
        while let Some((from, dir, prefix)) = stack.pop() {
            if !walked.insert(from) {
                return Err(Error::corrupt(format!("directory inode {from} is reached twice")));
            }
            for e in fs.readdir(from)? {
                let path = [prefix.as_slice(), &e.name].concat();
                let is_dir = e.file_type == FileType::Directory;
                match (paths.get(&path).copied(), placed.get(&e.ino)) {
                    // Where a newer source has a directory too, this one's go into it.
                    (Some(there), _) if is_dir && placed.get(&there).is_some_and(|p| p.is_dir) => {
                        stack.push((e.ino, there, [path.as_slice(), b"/"].concat()));
                    }
                    (Some(_), _) => stats.overridden += u64::from(!is_dir),
                    // A directory a newer source holds elsewhere: its contents go there.
                    (None, Some(p)) if is_dir && p.is_dir => {
                        stack.push((e.ino, e.ino, [path.as_slice(), b"/"].concat()));
                    }
                    // A hard link of a file this source gave.
                    (None, Some(p)) if !is_dir && p.source == source && !p.is_dir => {
                        link(&mut placed, e.ino, dir, &e.name, e.file_type);
                        paths.insert(path, e.ino);
                    }
                    (None, Some(_)) => stats.overridden += u64::from(!is_dir),
                    (None, None) => {
                        let entry = Placed { is_dir, links: Vec::new(), ..new_dir(source) };
                        placed.insert(e.ino, entry);
                        link(&mut placed, e.ino, dir, &e.name, e.file_type);
                        paths.insert(path.clone(), e.ino);
                        match is_dir {
                            true => stack.push((e.ino, e.ino, [path.as_slice(), b"/"].concat())),
                            false => stats.taken[source] += 1,
                        }
                    }
                }
            }
        }
    }
    let meta = key(META_INO, ItemKind::Meta, &[]);
    let mut counter = 0u64;
    for tree in trees.iter_mut() {
        let value = tree.get(store, &meta)?.ok_or_else(|| Error::corrupt("the tree has no inode counter"))?;
        let bytes: [u8; 8] =
            value.as_slice().try_into().map_err(|_| Error::corrupt("an inode counter of the wrong size"))?;
        counter = counter.max(u64::from_le_bytes(bytes));
    }
    for (&ino, p) in &placed {
        let item = trees[p.source].get(store, &key(ino, ItemKind::Inode, &[]))?;
        let inode = Inode::decode(&item.ok_or_else(|| Error::corrupt(format!("inode {ino} has no inode item")))?)?;
        match inode.file_type() {
            FileType::Directory => stats.held.directories += 1,
            FileType::Regular => {
                stats.held.files += 1;
                stats.held.file_bytes += inode.size;
            }
            _ => stats.held.files += 1,
        }
    }
    Ok(Union { placed, counter, stats })
}

/// Writes into `dest` the placed inodes of `union` from inode `from` on, at most `most`
/// of them (and, from 0, the inode counter first), as `copy_selection_from` does for a
/// selection. Returns the inode to go on from, None when done.
pub fn write_union_from(
    store: &mut Store,
    sources: &[Option<crate::block::BlockPtr>],
    union: &Union,
    dest: &mut Tree,
    from: u64,
    most: usize,
) -> Result<Option<u64>> {
    let mut trees: Vec<Tree> = sources.iter().map(|root| Tree::open(TreeKind::Files, Owner::Meta, *root)).collect();
    if from == META_INO {
        dest.insert(store, &key(META_INO, ItemKind::Meta, &[]), &union.counter.to_le_bytes())?;
    }
    let mut part = union.placed.range(from..);
    let next = part.clone().nth(most).map(|(&ino, _)| ino);
    for (&ino, p) in part.by_ref().take(most) {
        let tree = &mut trees[p.source];
        let item = tree.get(store, &key(ino, ItemKind::Inode, &[]))?;
        let inode = Inode::decode(&item.ok_or_else(|| Error::corrupt(format!("inode {ino} has no inode item")))?)?;
        let nlink = if p.is_dir { 2 + p.subdirs } else { p.links.len() as u32 };
        dest.insert(store, &key(ino, ItemKind::Inode, &[]), &Inode { nlink, ..inode }.encode())?;
        for (name, &(child, file_type)) in &p.entries {
            dest.insert(store, &key(ino, ItemKind::DirEntry, name), &encode_dirent(child, file_type))?;
        }
        let mut links = p.links.clone();
        links.sort();
        for (parent, name) in links {
            dest.insert(store, &super::inode::backref_key(ino, parent, &name), &[])?;
        }
        for (k, v) in tree.scan_prefix(store, &ino.to_be_bytes())? {
            if FileKey::parse(&k).is_some_and(|k| k.is_content()) {
                dest.insert(store, &k, &v)?;
            }
        }
    }
    Ok(next)
}

fn link(placed: &mut BTreeMap<u64, Placed>, ino: u64, dir: u64, name: &[u8], file_type: FileType) {
    if let Some(p) = placed.get_mut(&ino) {
        p.links.push((dir, name.to_vec()));
    }
    if let Some(parent) = placed.get_mut(&dir) {
        parent.entries.insert(name.to_vec(), (ino, file_type));
        parent.subdirs += u32::from(file_type == FileType::Directory);
    }
}
