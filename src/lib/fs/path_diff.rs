//! What changed between two states of a file tree, one line per path, as `zfs diff`
//! prints it: `+` added, `-` removed, `M` modified, `R` renamed (old -> new).
//!
//! The trees are compared with `TreeDiff`, which skips every subtree the two share, so
//! the cost grows with the change, not with the tree. Each changed item names its inode
//! (the key starts with it); per inode the changes are summed up, and only then are the
//! paths of the changed inodes looked up, upward through their back references (each
//! directory once), never by scanning directories: `zfs diff` looked paths up by
//! scanning, and took days on large changes (openzfs#6920).

use std::collections::{BTreeMap, HashMap};

use super::inode::{FileKey, ItemKind, only_contents_of_one_inode};
use super::{FileType, FsTree, Inode, ROOT_INO, Timespec};
use crate::block::BlockPtr;
use crate::error::{Error, Result};
use crate::format::node::TreeKind;
use crate::store::{Owner, Store};
use crate::tree::diff::Summarize;
use crate::tree::{Tree, TreeDiff};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
    Renamed,
}

impl ChangeKind {
    /// The marker `zfs diff` prints.
    pub fn marker(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::Renamed => 'R',
        }
    }
}

/// One line of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathChange {
    pub kind: ChangeKind,
    /// The path in the old tree for a removal or a rename, else in the new one.
    pub path: String,
    /// Where a renamed inode is now.
    pub new_path: Option<String>,
    pub file_type: FileType,
    /// The inode's change time: in the new tree, or the old one for a removal.
    pub ctime: Timespec,
}

/// What changed of one inode.
#[derive(Default)]
struct InodeChange {
    old: Option<Inode>,
    new: Option<Inode>,
    inode_changed: bool,
    /// Its contents (records, symlink target, extended attributes, directory entries).
    content_changed: bool,
    links_removed: Vec<(u64, Vec<u8>)>,
    links_added: Vec<(u64, Vec<u8>)>,
}

/// The changes from the tree at `old` to the tree at `new` (both of file tree `tree`),
/// sorted by path.
pub fn diff_trees(
    store: &mut Store,
    tree: u64,
    old: Option<BlockPtr>,
    new: Option<BlockPtr>,
) -> Result<Vec<PathChange>> {
    // Of one inode's contents a diff needs only to know that one changed (the inode is
    // modified): a subtree that holds nothing else is not read, so a change spread over a
    // large file's records costs the leaves around it, not every leaf it touched.
    diff_trees_summing(store, tree, old, new, Some(only_contents_of_one_inode))
}

/// `diff_trees`, reading every changed leaf when `summarize` is None (tests compare).
fn diff_trees_summing(
    store: &mut Store,
    tree: u64,
    old: Option<BlockPtr>,
    new: Option<BlockPtr>,
    summarize: Option<Summarize>,
) -> Result<Vec<PathChange>> {
    let inodes = changed_inodes(store, old, new, summarize)?;
    let mut old_paths = Paths::new(tree, old);
    let mut new_paths = Paths::new(tree, new);
    let mut out = Vec::new();
    for (ino, change) in inodes {
        let (old_inode, new_inode) = (change.old.clone(), change.new.clone());
        match (old_inode, new_inode) {
            (None, Some(inode)) => {
                for (parent, name) in new_paths.links(store, ino)? {
                    out.push(line(ChangeKind::Added, new_paths.path(store, parent, &name)?, None, &inode));
                }
            }
            (Some(inode), None) => {
                for (parent, name) in old_paths.links(store, ino)? {
                    out.push(line(ChangeKind::Removed, old_paths.path(store, parent, &name)?, None, &inode));
                }
            }
            (None, None) if !change.inode_changed => {
                // Its inode item is the same in both trees: read it from the new one.
                let inode = new_paths.fs(store).inode(ino)?;
                modified(&mut out, store, &mut old_paths, &mut new_paths, ino, &change, &inode)?;
            }
            (_, inode) => {
                let inode = inode.ok_or_else(|| Error::corrupt(format!("inode {ino} changed to nothing")))?;
                modified(&mut out, store, &mut old_paths, &mut new_paths, ino, &change, &inode)?;
            }
        }
    }
    out.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    Ok(out)
}

/// The lines of an inode in both trees: renamed or linked anew, and modified.
fn modified(
    out: &mut Vec<PathChange>,
    store: &mut Store,
    old_paths: &mut Paths,
    new_paths: &mut Paths,
    ino: u64,
    change: &InodeChange,
    inode: &Inode,
) -> Result<()> {
    let (removed, added) = (&change.links_removed, &change.links_added);
    if removed.len() == 1 && added.len() == 1 {
        let from = old_paths.path(store, removed[0].0, &removed[0].1)?;
        let to = new_paths.path(store, added[0].0, &added[0].1)?;
        out.push(line(ChangeKind::Renamed, from, Some(to), inode));
    } else {
        for (parent, name) in removed {
            out.push(line(ChangeKind::Removed, old_paths.path(store, *parent, name)?, None, inode));
        }
        for (parent, name) in added {
            out.push(line(ChangeKind::Added, new_paths.path(store, *parent, name)?, None, inode));
        }
    }
    // A rename or a new link sets the change time; only what else changed makes an M.
    let renamed = !removed.is_empty() || !added.is_empty();
    let inode_changed = match (&change.old, &change.new) {
        (Some(old), Some(new)) if renamed => !same_but_times(old, new),
        _ => change.inode_changed,
    };
    if change.content_changed || inode_changed {
        if let Some((parent, name)) = new_paths.links(store, ino)?.into_iter().next() {
            out.push(line(ChangeKind::Modified, new_paths.path(store, parent, &name)?, None, inode));
        } else if ino == ROOT_INO {
            out.push(line(ChangeKind::Modified, "/".to_string(), None, inode));
        }
    }
    Ok(())
}

/// Equal but for the access and change times (and the link count a new link moves).
fn same_but_times(a: &Inode, b: &Inode) -> bool {
    (a.mode, a.uid, a.gid, a.size, a.rdev, a.mtime) == (b.mode, b.uid, b.gid, b.size, b.rdev, b.mtime)
}

fn line(kind: ChangeKind, path: String, new_path: Option<String>, inode: &Inode) -> PathChange {
    PathChange { kind, path, new_path, file_type: inode.file_type(), ctime: inode.ctime }
}

/// Every changed item of the two trees, summed up per inode, in inode order.
fn changed_inodes(
    store: &mut Store,
    old: Option<BlockPtr>,
    new: Option<BlockPtr>,
    summarize: Option<Summarize>,
) -> Result<BTreeMap<u64, InodeChange>> {
    let mut inodes: BTreeMap<u64, InodeChange> = BTreeMap::new();
    let mut diff = TreeDiff::new(TreeKind::Files, old, new);
    if let Some(summarize) = summarize {
        diff = diff.summarizing(summarize);
    }
    while let Some(change) = diff.next(store)? {
        let key = FileKey::parse(&change.key)
            .ok_or_else(|| Error::corrupt(format!("file tree key of {} bytes", change.key.len())))?;
        if change.old.is_none() && change.new.is_none() {
            // A subtree of one inode's contents that differs: read no further.
            inodes.entry(key.ino).or_default().content_changed = true;
            continue;
        }
        // The tree's own counters (the next inode number) are no file's change.
        if key.is(ItemKind::Meta) {
            continue;
        }
        let entry = inodes.entry(key.ino).or_default();
        match key.kind() {
            Some(ItemKind::Inode) => {
                entry.old = change.old.as_deref().map(Inode::decode).transpose()?;
                entry.new = change.new.as_deref().map(Inode::decode).transpose()?;
                // An access time alone is not a change anybody asks a diff about.
                entry.inode_changed = match (&entry.old, &entry.new) {
                    (Some(a), Some(b)) => Inode { atime: b.atime, ..a.clone() } != *b,
                    _ => true,
                };
            }
            Some(ItemKind::BackRef) => {
                let (parent, name) = key.backref().ok_or_else(|| Error::corrupt("short back reference key"))?;
                match (change.old.is_some(), change.new.is_some()) {
                    (true, false) => entry.links_removed.push((parent, name.to_vec())),
                    (false, true) => entry.links_added.push((parent, name.to_vec())),
                    _ => {}
                }
            }
            _ => entry.content_changed = true,
        }
    }
    Ok(inodes)
}

/// Paths in one tree, each directory's looked up once.
struct Paths {
    tree: Tree,
    dirs: HashMap<u64, String>,
}

impl Paths {
    fn new(tree: u64, root: Option<BlockPtr>) -> Paths {
        Paths { tree: Tree::open(TreeKind::Files, Owner::Files(tree), root), dirs: HashMap::new() }
    }

    fn fs<'a>(&'a mut self, store: &'a mut Store) -> FsTree<'a> {
        FsTree::new(&mut self.tree, store, false)
    }

    /// The (parent, name) links to an inode.
    fn links(&mut self, store: &mut Store, ino: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        self.fs(store).backrefs(ino)
    }

    /// The path of `name` in directory `parent`.
    fn path(&mut self, store: &mut Store, parent: u64, name: &[u8]) -> Result<String> {
        let mut path = self.dir_path(store, parent)?;
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(&escape(name));
        Ok(path)
    }

    /// The path of directory `dir`, from the root ("/").
    fn dir_path(&mut self, store: &mut Store, dir: u64) -> Result<String> {
        let mut names = Vec::new();
        let mut at = dir;
        let mut path = loop {
            if at == ROOT_INO {
                break "/".to_string();
            }
            if let Some(known) = self.dirs.get(&at) {
                break known.clone();
            }
            if names.len() > 4096 {
                return Err(Error::corrupt(format!("directory {dir} has no path to the root: the tree has a loop")));
            }
            let (parent, name) = self
                .links(store, at)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::corrupt(format!("directory {at} has no back reference")))?;
            names.push((at, name));
            at = parent;
        };
        for (ino, name) in names.into_iter().rev() {
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(&escape(&name));
            self.dirs.insert(ino, path.clone());
        }
        Ok(path)
    }
}

/// A name as `zfs diff` prints it: printable ASCII and valid UTF-8 as they are, every
/// other byte (control characters, a backslash, invalid UTF-8) as `\` and three octal
/// digits, so that one line is one path whatever its name holds.
pub fn escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{byte:03o}"));
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\{byte:03o}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{TreeDiff, TreeKind, diff_trees_summing, escape, only_contents_of_one_inode};
    use crate::device::MemoryDevice;
    use crate::fs::inode::{Inode, ROOT_INO};
    use crate::pool::{FormatOptions, LIVE_TREE_ID, format_pool};

    use crate::fuzzing::Steps;

    #[test]
    fn a_diff_that_sums_up_one_inodes_subtrees_lists_what_a_full_one_lists() {
        let mut summed_up = 0;
        for seed in 1..=6u64 {
            let mut steps = Steps(seed);
            let mut pool = format_pool(Box::new(MemoryDevice::new(128 << 20)), &FormatOptions::default()).unwrap();
            // Sparse files of many records (one byte every 128 KiB) span many leaves.
            let mut fs = pool.live(LIVE_TREE_ID).unwrap();
            let dir = fs.create(ROOT_INO, b"d", Inode::new(0o40755, Default::default())).unwrap();
            let mut files = Vec::new();
            for f in 0..6u64 {
                let parent = if f % 2 == 0 { ROOT_INO } else { dir };
                let ino =
                    fs.create(parent, format!("f{f}").as_bytes(), Inode::new(0o100644, Default::default())).unwrap();
                for record in 0..300 + steps.next(300) {
                    fs.write_at(ino, record << 17, &[f as u8 + 1]).unwrap();
                }
                files.push((parent, format!("f{f}"), ino));
            }
            pool.create_snapshot(LIVE_TREE_ID, "a").unwrap();
            pool.commit().unwrap();
            let mut fs = pool.live(LIVE_TREE_ID).unwrap();
            for _ in 0..1 + steps.next(40) {
                let (parent, name, ino) = files[steps.next(files.len() as u64) as usize].clone();
                match steps.next(10) {
                    0 => _ = fs.set_xattr(ino, b"user.tag", &[steps.next(250) as u8]),
                    1 => {
                        _ = fs.create(
                            dir,
                            format!("new{}", steps.next(1000)).as_bytes(),
                            Inode::new(0o100644, Default::default()),
                        )
                    }
                    2 => _ = fs.truncate(ino, steps.next(600) << 17),
                    3 => _ = fs.rename(parent, name.as_bytes(), dir, format!("moved{}", steps.next(1000)).as_bytes()),
                    _ => fs.write_at(ino, steps.next(600) << 17, &[steps.next(250) as u8]).unwrap(),
                }
            }
            pool.create_snapshot(LIVE_TREE_ID, "b").unwrap();
            pool.commit().unwrap();
            let (a, b) =
                (pool.snapshot(LIVE_TREE_ID, "a").unwrap().root, pool.snapshot(LIVE_TREE_ID, "b").unwrap().root);
            let full = diff_trees_summing(&mut pool.store, LIVE_TREE_ID, a, b, None).unwrap();
            let summed =
                diff_trees_summing(&mut pool.store, LIVE_TREE_ID, a, b, Some(only_contents_of_one_inode)).unwrap();
            assert!(!full.is_empty(), "seed {seed}");
            assert_eq!(summed, full, "seed {seed}");
            let mut diff = TreeDiff::new(TreeKind::Files, a, b).summarizing(only_contents_of_one_inode);
            while let Some(change) = diff.next(&mut pool.store).unwrap() {
                summed_up += (change.old.is_none() && change.new.is_none()) as u32;
            }
        }
        assert!(summed_up > 0, "no subtree was summed up: the comparison above proved nothing");
    }

    #[test]
    fn only_one_inodes_contents_are_summed_up() {
        use crate::fs::inode::{ItemKind, key};
        let summed = |low: (u64, ItemKind), high: (u64, ItemKind)| {
            only_contents_of_one_inode(&key(low.0, low.1, b"x"), &key(high.0, high.1, b"y"))
        };
        assert!(summed((5, ItemKind::Record), (5, ItemKind::Record)));
        assert!(summed((5, ItemKind::Xattr), (5, ItemKind::Record)));
        assert!(summed((5, ItemKind::DirEntry), (5, ItemKind::DirEntry)));
        assert!(!summed((5, ItemKind::DirEntry), (5, ItemKind::BackRef)), "back references name renames");
        assert!(!summed((5, ItemKind::Inode), (5, ItemKind::Record)), "the inode item says what changed");
        assert!(!summed((5, ItemKind::Record), (6, ItemKind::Inode)), "two inodes");
        assert!(!only_contents_of_one_inode(&5u64.to_be_bytes(), &key(5, ItemKind::Record, b"")), "a bare prefix");
    }

    #[test]
    fn names_escape_what_would_break_a_line() {
        assert_eq!(escape(b"plain name.txt"), "plain name.txt");
        assert_eq!(escape("é".as_bytes()), "é");
        assert_eq!(escape(b"a\nb"), "a\\012b");
        assert_eq!(escape(b"back\\slash"), "back\\134slash");
        assert_eq!(escape(b"\xff\xfe"), "\\377\\376");
    }
}
