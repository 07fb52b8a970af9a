//! Link counts, entries, back references and record sizes of one file tree, in one pass
//! over its leaves in key order and in memory that does not grow with the file count.
//!
//! Keys sort by inode, then kind (inode item first), so everything these checks need
//! about one inode arrives together: its nlink against its back references (or, for a
//! directory, 2 + its subdirectory entries), its records against its size. What spans
//! inodes is kept small: the set of inode numbers and the set of inodes that entries
//! name, as runs (inode numbers are handed out in order), and the directory entries and
//! back references as two order-free 128-bit sums of a hash of each (parent, name,
//! child): equal sets give equal sums, and unequal ones differ but with a chance of
//! 2^-128. An entry naming a missing inode is then looked for in a second pass, taken
//! only when one exists, to name it.

use crate::alloc::ExtentSet;
use crate::block::BlockPtr;
use crate::checksum::record_hash;
use crate::error::Result;
use crate::format::node::{NodeBody, TreeKind};
use crate::fs::inode::{FileKey, FileType, Inode, ItemKind, ROOT_INO, decode_dirent, parse_xattr_suffix};
use crate::fs::record::{RECORD_BYTES, Record, check_file_size};
use crate::store::Store;
use crate::tree::{WalkStep, walk_nodes};

/// Missing inodes named in one report, at most.
const MISSING_NAMED_MAX: usize = 20;

/// What the pass found: problems (each prefixed with `what`), and an inode with an
/// extended attribute of several items, if any.
#[derive(Default)]
pub struct Counts {
    pub problems: Vec<String>,
    pub large_xattr: Option<u64>,
}

/// Counts the tree at `root`; `what` names it in problems ("tree 1 head").
pub fn count(store: &mut Store, root: &BlockPtr, what: &str) -> Result<Counts> {
    let mut counter = Counter { what, ..Counter::default() };
    let walked = walk_nodes(store, root, TreeKind::Files, &mut |_ptr, node| {
        if let NodeBody::Leaf(entries) = &node.body {
            for (k, v) in entries {
                counter.item(k, v)?;
            }
        }
        Ok(WalkStep::Descend)
    });
    if let Err(e) = walked {
        return Ok(Counts { problems: vec![format!("{what}: {e}")], large_xattr: None });
    }
    counter.end_inode();
    let missing = counter.finish();
    if missing.blocks() > 0 {
        name_missing(store, root, &missing, &mut counter)?;
    }
    Ok(Counts { problems: counter.problems, large_xattr: counter.large_xattr })
}

#[derive(Default)]
struct Counter<'w> {
    what: &'w str,
    problems: Vec<String>,
    large_xattr: Option<u64>,
    /// The inode whose items are being read, and what they said so far.
    current: Current,
    /// Every inode number with an inode item.
    inodes: ExtentSet,
    /// Every inode a directory entry names.
    named: ExtentSet,
    entries: SetSum,
    backrefs: SetSum,
}

#[derive(Default)]
struct Current {
    ino: u64,
    inode: Option<Inode>,
    /// Back references: the names the inode has.
    names: u32,
    /// Entries under it that name directories.
    subdirs: u32,
}

/// An order-free digest of a set of (parent, name, child): the wrapping sum of a 128-bit
/// hash of each, and how many there are.
#[derive(Default, PartialEq, Eq)]
struct SetSum {
    sum: u128,
    count: u64,
}

impl SetSum {
    fn add(&mut self, parent: u64, name: &[u8], child: u64) {
        let mut bytes = Vec::with_capacity(16 + name.len());
        bytes.extend_from_slice(&parent.to_le_bytes());
        bytes.extend_from_slice(&child.to_le_bytes());
        bytes.extend_from_slice(name);
        self.sum = self.sum.wrapping_add(record_hash(&bytes));
        self.count += 1;
    }
}

impl Counter<'_> {
    fn problem(&mut self, what: String) {
        self.problems.push(format!("{}: {what}", self.what));
    }

    fn item(&mut self, k: &[u8], v: &[u8]) -> Result<()> {
        let Some(key) = FileKey::parse(k) else {
            self.problem("file tree key shorter than 9 bytes".to_string());
            return Ok(());
        };
        if key.ino != self.current.ino {
            self.end_inode();
            self.current = Current { ino: key.ino, ..Current::default() };
        }
        let (ino, suffix) = (key.ino, key.suffix);
        match key.kind() {
            Some(ItemKind::Inode) => {
                self.current.inode = Some(Inode::decode(v)?);
                add_number(&mut self.inodes, ino);
            }
            Some(ItemKind::DirEntry) => {
                // A value that does not decode counts as naming inode 0, which is then
                // reported as missing.
                let (child, file_type) = decode_dirent(suffix, v).map_or((0, None), |e| (e.ino, Some(e.file_type)));
                if file_type == Some(FileType::Directory) {
                    self.current.subdirs += 1;
                }
                add_number(&mut self.named, child);
                self.entries.add(ino, suffix, child);
            }
            Some(ItemKind::BackRef) => {
                if let Some((parent, name)) = key.backref() {
                    self.backrefs.add(parent, name, ino);
                    self.current.names += 1;
                }
            }
            Some(ItemKind::Record) => {
                if let Some(index) = key.record_index() {
                    let bytes = Record::decode(v)?.logical_bytes();
                    let size = self.current.inode.as_ref().map_or(0, |i| i.size);
                    let expected = size.saturating_sub(index.saturating_mul(RECORD_BYTES)).min(RECORD_BYTES);
                    if bytes != expected {
                        self.problem(format!(
                            "inode {ino} record {index} holds {bytes} bytes; a file of {size} bytes needs {expected}"
                        ));
                    }
                }
            }
            Some(ItemKind::Xattr) => {
                if let Some((_, 1..)) = parse_xattr_suffix(suffix) {
                    self.large_xattr.get_or_insert(ino);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The checks of the inode whose items were all read.
    fn end_inode(&mut self) {
        let current = std::mem::take(&mut self.current);
        let Some(inode) = &current.inode else { return };
        let ino = current.ino;
        if let Err(e) = check_file_size(&format!("inode {ino}"), inode.size) {
            self.problem(e.to_string());
        }
        let expected = if inode.file_type() == FileType::Directory { 2 + current.subdirs } else { current.names };
        if inode.nlink != expected {
            self.problem(format!("inode {ino} has nlink {} but {expected} links", inode.nlink));
        }
        if ino != ROOT_INO && current.names == 0 {
            self.problem(format!("inode {ino} is in no directory (orphan)"));
        }
    }

    /// The checks across inodes; returns the inodes entries name that do not exist.
    fn finish(&mut self) -> ExtentSet {
        if !self.inodes.contains(ROOT_INO, 1) {
            self.problem("no root directory".to_string());
        }
        if self.entries != self.backrefs {
            let (entries, backrefs) = (self.entries.count, self.backrefs.count);
            self.problem(format!("{entries} directory entries but {backrefs} back references, or they differ"));
        }
        let mut missing = ExtentSet::new();
        'runs: for (start, len) in self.named.iter() {
            for ino in start..start + len {
                if !self.inodes.contains(ino, 1) {
                    missing.insert(ino, 1);
                    if missing.blocks() as usize >= MISSING_NAMED_MAX {
                        break 'runs;
                    }
                }
            }
        }
        missing
    }
}

/// Inode numbers are at most INODE_NUMBER_MAX; one at u64::MAX (a damaged value) is
/// kept as u64::MAX - 1 so that the run arithmetic cannot overflow.
fn add_number(set: &mut ExtentSet, n: u64) {
    let n = n.min(u64::MAX - 1);
    if !set.contains(n, 1) {
        set.insert(n, 1);
    }
}

/// The second pass: names each entry that names one of the `missing` inodes.
fn name_missing(store: &mut Store, root: &BlockPtr, missing: &ExtentSet, counter: &mut Counter) -> Result<()> {
    let mut found = Vec::new();
    walk_nodes(store, root, TreeKind::Files, &mut |_ptr, node| {
        if let NodeBody::Leaf(entries) = &node.body {
            for (k, v) in entries {
                let Some(key) = FileKey::parse(k).filter(|key| key.kind() == Some(ItemKind::DirEntry)) else {
                    continue;
                };
                let child = decode_dirent(key.suffix, v).map_or(0, |e| e.ino);
                if missing.contains(child.min(u64::MAX - 1), 1) && found.len() < MISSING_NAMED_MAX {
                    found.push((key.ino, String::from_utf8_lossy(key.suffix).into_owned(), child));
                }
            }
        }
        Ok(WalkStep::Descend)
    })?;
    for (parent, name, child) in found {
        counter.problem(format!("entry {name:?} in {parent} names missing inode {child}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::check::check_pool;
    use crate::device::MemoryDevice;
    use crate::fs::FsTree;
    use crate::fs::inode::{FileType, Inode, ItemKind, ROOT_INO, Timespec, backref_key, encode_dirent, key};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};

    /// /d0../d3 each with 40 files, every tenth file hard-linked into the next directory
    /// (so entries name inodes both before and after their directory in key order).
    fn sample() -> (Pool, Vec<u64>, Vec<u64>) {
        let mut pool = format_pool(Box::new(MemoryDevice::new(64 << 20)), &FormatOptions::default()).unwrap();
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        let dirs: Vec<u64> = (0..4)
            .map(|d| fs.create(ROOT_INO, format!("d{d}").as_bytes(), Inode::new(0o040755, Timespec::default())))
            .collect::<crate::error::Result<_>>()
            .unwrap();
        let mut files = Vec::new();
        for (d, &dir) in dirs.iter().enumerate() {
            for f in 0..40 {
                let file =
                    fs.create(dir, format!("f{f}").as_bytes(), Inode::new(0o100644, Timespec::default())).unwrap();
                fs.write_at(file, 0, &vec![f as u8; 100 * f + 1]).unwrap();
                files.push(file);
                if f % 10 == 0 {
                    fs.link(file, dirs[(d + 1) % 4], format!("link{d}-{f}").as_bytes()).unwrap();
                }
            }
        }
        pool.commit().unwrap();
        (pool, dirs, files)
    }

    fn problems_after(pool: &mut Pool, change: impl FnOnce(&mut FsTree)) -> Vec<String> {
        change(&mut pool.live(LIVE_TREE_ID).unwrap());
        pool.commit().unwrap();
        check_pool(pool).unwrap().problems
    }

    fn expect(problems: &[String], words: &str) {
        assert!(problems.iter().any(|p| p.contains(words)), "expected {words:?} in {problems:?}");
    }

    /// Goal: a tree of hard links across directories counts clean in one pass.
    #[test]
    fn hard_links_across_directories_count_clean() {
        let (mut pool, _, _) = sample();
        assert_eq!(check_pool(&mut pool).unwrap().problems, Vec::<String>::new());
    }

    /// Goal: each count the one pass keeps is still checked: nlink, orphans, entries
    /// against back references, entries naming missing inodes, record sizes.
    #[test]
    fn every_count_is_checked() {
        let (mut pool, _, files) = sample();
        let file = files[3];
        let problems = problems_after(&mut pool, |fs| {
            let mut inode = fs.inode(file).unwrap();
            inode.nlink = 2;
            fs.put_inode(file, &inode).unwrap();
        });
        expect(&problems, &format!("inode {file} has nlink 2 but 1 links"));

        let (mut pool, dirs, files) = sample();
        let (file, dir) = (files[45], dirs[1]);
        let problems = problems_after(&mut pool, |fs| {
            fs.tree.remove(fs.store, &key(dir, ItemKind::DirEntry, b"f5")).unwrap();
            fs.tree.remove(fs.store, &backref_key(file, dir, b"f5")).unwrap();
        });
        expect(&problems, &format!("inode {file} is in no directory (orphan)"));

        let (mut pool, dirs, files) = sample();
        let problems = problems_after(&mut pool, |fs| {
            fs.tree.remove(fs.store, &backref_key(files[7], dirs[0], b"f7")).unwrap();
        });
        expect(&problems, "180 directory entries but 179 back references, or they differ");

        let (mut pool, _, _) = sample();
        let problems = problems_after(&mut pool, |fs| {
            let missing = 9_000;
            fs.tree
                .insert(
                    fs.store,
                    &key(ROOT_INO, ItemKind::DirEntry, b"ghost"),
                    &encode_dirent(missing, FileType::Regular),
                )
                .unwrap();
            fs.tree.insert(fs.store, &backref_key(missing, ROOT_INO, b"ghost"), &[]).unwrap();
        });
        expect(&problems, "entry \"ghost\" in 1 names missing inode 9000");

        let (mut pool, _, files) = sample();
        let file = files[20];
        let problems = problems_after(&mut pool, |fs| {
            let mut inode = fs.inode(file).unwrap();
            inode.size = 10;
            fs.put_inode(file, &inode).unwrap();
        });
        expect(&problems, &format!("inode {file} record 0 holds 2001 bytes; a file of 10 bytes needs 10"));
    }
}
