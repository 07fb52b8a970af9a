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

use super::FsTree;
use super::inode::{FileKey, FileType, Inode, ItemKind, META_INO, ROOT_INO, key};
use super::select::{Rule, Xattrs};
use crate::error::{Error, Result};
use crate::tree::Tree;
use std::collections::{BTreeMap, HashMap, HashSet};

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
#[derive(Default)]
pub struct Selection {
    kept: BTreeMap<u64, Kept>,
    links: HashSet<(u64, Vec<u8>)>,
    pub stats: SubsetStats,
}

#[derive(Default)]
struct Kept {
    links: u32,
    /// Kept subdirectories (directories only).
    subdirs: u32,
    is_dir: bool,
}

impl Selection {
    /// Whether the rule selected nothing.
    pub fn is_empty(&self) -> bool {
        self.stats.files == 0
    }

    fn keep_link(&mut self, ino: u64, parent: u64, name: &[u8], is_dir: bool) {
        let kept = self.kept.entry(ino).or_default();
        kept.links += 1;
        kept.is_dir = is_dir;
        self.links.insert((parent, name.to_vec()));
        if is_dir {
            self.kept.entry(parent).or_default().subdirs += 1;
        }
    }
}

/// The links of `source` that `rule` selects, with the directories above them.
pub fn select(source: &mut FsTree, rule: &Rule) -> Result<Selection> {
    let mut selection = Selection::default();
    selection.kept.insert(ROOT_INO, Kept { is_dir: true, ..Kept::default() });
    selection.stats.directories = 1;
    // Every directory walked: its parent and name, to keep the chain above a selection.
    let mut parents: HashMap<u64, (u64, Vec<u8>)> = HashMap::new();
    let mut stack: Vec<(u64, String)> = vec![(ROOT_INO, String::new())];
    let mut counted = HashSet::new();
    while let Some((dir, prefix)) = stack.pop() {
        for entry in source.readdir(dir)? {
            let path = format!("{prefix}{}", String::from_utf8_lossy(&entry.name));
            if entry.file_type == FileType::Directory {
                if parents.insert(entry.ino, (dir, entry.name.clone())).is_some() || entry.ino == ROOT_INO {
                    return Err(Error::corrupt(format!("directory inode {} is reached twice", entry.ino)));
                }
                stack.push((entry.ino, format!("{path}/")));
                continue;
            }
            let inode = source.inode(entry.ino)?;
            if !rule.selects(path.as_bytes(), &inode, &mut SourceXattrs { fs: source, ino: entry.ino })? {
                continue;
            }
            selection.keep_link(entry.ino, dir, &entry.name, false);
            if counted.insert(entry.ino) {
                selection.stats.files += 1;
                if inode.file_type() == FileType::Regular {
                    selection.stats.file_bytes += inode.size;
                }
            }
            keep_directories_above(&mut selection, &parents, dir)?;
        }
    }
    Ok(selection)
}

/// Keeps `dir` and the directories above it, up to the first one already kept.
fn keep_directories_above(
    selection: &mut Selection,
    parents: &HashMap<u64, (u64, Vec<u8>)>,
    mut dir: u64,
) -> Result<()> {
    // A directory is kept once its own link is (the root always): an entry made only to
    // count its subdirectories is not yet.
    while !selection.kept.get(&dir).is_some_and(|k| k.is_dir) {
        let (parent, name) = parents
            .get(&dir)
            .ok_or_else(|| Error::corrupt(format!("directory inode {dir} has no parent on the walk")))?;
        selection.keep_link(dir, *parent, name, true);
        selection.stats.directories += 1;
        dir = *parent;
    }
    Ok(())
}

/// Writes the kept inodes of `source` into `dest`, an empty tree.
pub fn copy_selection(source: &mut FsTree, selection: &Selection, dest: &mut Tree) -> Result<()> {
    let meta = key(META_INO, ItemKind::Meta, &[]);
    let counter =
        source.tree.get(source.store, &meta)?.ok_or_else(|| Error::corrupt("the tree has no inode counter"))?;
    dest.insert(source.store, &meta, &counter)?;
    for (&ino, kept) in &selection.kept {
        for (k, v) in source.tree.scan_prefix(source.store, &ino.to_be_bytes())? {
            let item = FileKey::parse(&k).ok_or_else(|| Error::corrupt("a file tree key too short"))?;
            let value = match item.kind() {
                Some(ItemKind::Inode) => {
                    let inode = Inode::decode(&v)?;
                    let nlink = if kept.is_dir { 2 + kept.subdirs } else { kept.links };
                    Some(Inode { nlink, ..inode }.encode())
                }
                Some(ItemKind::DirEntry) => selection.links.contains(&(ino, item.suffix.to_vec())).then_some(v),
                Some(ItemKind::BackRef) => {
                    let (parent, name) =
                        item.backref().ok_or_else(|| Error::corrupt(format!("inode {ino}: a short back reference")))?;
                    selection.links.contains(&(parent, name.to_vec())).then_some(v)
                }
                Some(ItemKind::Xattr | ItemKind::Symlink | ItemKind::Record) => Some(v),
                Some(ItemKind::Meta) | None => {
                    return Err(Error::corrupt(format!("inode {ino} has an item of kind {}", item.kind_byte)));
                }
            };
            if let Some(value) = value {
                dest.insert(source.store, &k, &value)?;
            }
        }
    }
    Ok(())
}

/// A file's extended attributes, as a rule's conditions read them.
struct SourceXattrs<'f, 'a> {
    fs: &'f mut FsTree<'a>,
    ino: u64,
}

impl Xattrs for SourceXattrs<'_, '_> {
    fn xattr(&mut self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        self.fs.xattr(self.ino, name)
    }
}
