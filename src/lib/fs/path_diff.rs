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

use super::inode::{FileKey, ItemKind};
use super::{FileType, FsTree, Inode, ROOT_INO, Timespec};
use crate::block::BlockPtr;
use crate::error::{Error, Result};
use crate::format::node::TreeKind;
use crate::store::{Owner, Store};
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
    let inodes = changed_inodes(store, old, new)?;
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
) -> Result<BTreeMap<u64, InodeChange>> {
    let mut inodes: BTreeMap<u64, InodeChange> = BTreeMap::new();
    let mut diff = TreeDiff::new(TreeKind::Files, old, new);
    while let Some(change) = diff.next(store)? {
        let key = FileKey::parse(&change.key)
            .ok_or_else(|| Error::corrupt(format!("file tree key of {} bytes", change.key.len())))?;
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
    use super::escape;

    #[test]
    fn names_escape_what_would_break_a_line() {
        assert_eq!(escape(b"plain name.txt"), "plain name.txt");
        assert_eq!(escape("é".as_bytes()), "é");
        assert_eq!(escape(b"a\nb"), "a\\012b");
        assert_eq!(escape(b"back\\slash"), "back\\134slash");
        assert_eq!(escape(b"\xff\xfe"), "\\377\\376");
    }
}
