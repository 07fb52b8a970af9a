//! Who loses what: for blocks no copy of which is good, walks every root again and names
//! the snapshots (and heads, retained commits) that reach them and the files whose data,
//! or whose part of a tree, they hold. Runs only when there is such damage.

use super::report::Damage;
use super::roots::{LIVE_OWNER, Root, RootKind};
use crate::format::node::{EncodedNode, NodeBody, TreeKind};
use crate::fs::inode::{FileKey, ItemKind, ROOT_INO, decode_dirent};
use crate::fs::record::Record;
use crate::pool::Pool;
use std::collections::{BTreeSet, HashMap};

/// Files listed per damaged block at most; the count says how many more.
const FILES_LISTED_MAX: usize = 100;

#[derive(Default)]
struct Losses {
    owners: BTreeSet<String>,
    files: BTreeSet<String>,
}

pub fn blame(pool: &mut Pool, roots: &[Root], damage: &mut [Damage]) {
    let mut lost: HashMap<u64, Losses> =
        damage.iter().filter(|d| !d.recoverable).map(|d| (d.block, Losses::default())).collect();
    for root in roots {
        if let Some(losses) = lost.get_mut(&root.ptr.addr.0) {
            losses.owners.insert(root.owner.clone());
            if root.kind == RootKind::Tree(TreeKind::Files) {
                losses.files.insert(format!("{}: everything (its root node is lost)", short_owner(&root.owner)));
            }
            continue;
        }
        if let RootKind::Tree(kind) = root.kind {
            walk(pool, root, kind, &mut lost);
        }
    }
    for d in damage.iter_mut().filter(|d| !d.recoverable) {
        let Some(losses) = lost.get(&d.block) else { continue };
        d.affects = losses.owners.iter().cloned().collect();
        d.files_total = losses.files.len();
        d.files = losses.files.iter().take(FILES_LISTED_MAX).cloned().collect();
    }
}

/// One root: the damaged blocks it reaches, and the paths of the files they hold.
fn walk(pool: &mut Pool, root: &Root, kind: TreeKind, lost: &mut HashMap<u64, Losses>) {
    let mut parents: HashMap<u64, (u64, Vec<u8>)> = HashMap::new();
    // (damaged block, inode) pairs, and damaged nodes with the inode range they index.
    let mut lost_files: Vec<(u64, u64)> = Vec::new();
    let mut stack = vec![root.ptr];
    while let Some(ptr) = stack.pop() {
        let Ok(bytes) = pool.store.read_block(&ptr) else { continue };
        let Ok(node) = EncodedNode::decode(&bytes, kind, ptr.level) else { continue };
        match node.body {
            NodeBody::Internal(children) => {
                for (i, (key, child)) in children.iter().enumerate() {
                    if let Some(losses) = lost.get_mut(&child.addr.0) {
                        losses.owners.insert(root.owner.clone());
                        if kind == TreeKind::Files {
                            let next = children.get(i + 1).map(|(k, _)| inode_of(k));
                            losses.files.insert(indexed_range(&root.owner, inode_of(key), next));
                        }
                    } else {
                        stack.push(*child);
                    }
                }
            }
            NodeBody::Leaf(entries) if kind == TreeKind::Files => {
                for (key, value) in &entries {
                    let Some(key) = FileKey::parse(key) else { continue };
                    let ino = key.ino;
                    match key.kind() {
                        Some(ItemKind::DirEntry) => {
                            if let Ok(entry) = decode_dirent(key.suffix, value) {
                                parents.insert(entry.ino, (ino, key.suffix.to_vec()));
                            }
                        }
                        Some(ItemKind::Record) => {
                            let Ok(record) = Record::decode(value) else { continue };
                            for block in record.blocks().filter(|b| lost.contains_key(&b.addr.0)) {
                                lost_files.push((block.addr.0, ino));
                            }
                        }
                        _ => {}
                    }
                }
            }
            NodeBody::Leaf(_) => {}
        }
    }
    for (block, ino) in lost_files {
        let losses = lost.get_mut(&block).expect("only damaged blocks are listed");
        losses.owners.insert(root.owner.clone());
        losses.files.insert(file_name(&root.owner, &path_of(&parents, ino)));
    }
}

fn inode_of(key: &[u8]) -> u64 {
    FileKey::ino_of(key).unwrap_or(0)
}

/// A file as the tools name it: `@snap:/path` in a snapshot, `/path` in the live tree,
/// and the owner in parentheses elsewhere (another tree, a retained commit).
fn file_name(owner: &str, path: &str) -> String {
    match owner.strip_prefix("snapshot ") {
        Some(snapshot) => format!("{snapshot}:{path}"),
        None if owner == LIVE_OWNER => path.to_string(),
        None => format!("({owner}) {path}"),
    }
}

fn indexed_range(owner: &str, first: u64, next: Option<u64>) -> String {
    let inodes = match next {
        Some(next) => format!("inodes {first} to {next}"),
        None => format!("inodes {first} and above"),
    };
    format!("{}: every item of {inodes} (a lost tree node)", short_owner(owner))
}

/// `@snap` for a snapshot, else the owner as named.
fn short_owner(owner: &str) -> &str {
    owner.strip_prefix("snapshot ").unwrap_or(owner)
}

/// The path of an inode through the directory entries seen; `inode N` if its chain of
/// parents is incomplete (a directory whose node was lost).
fn path_of(parents: &HashMap<u64, (u64, Vec<u8>)>, ino: u64) -> String {
    let mut names = Vec::new();
    let mut at = ino;
    while at != ROOT_INO {
        match parents.get(&at) {
            Some((parent, name)) if names.len() < 4096 => {
                names.push(String::from_utf8_lossy(name).into_owned());
                at = *parent;
            }
            _ => return format!("inode {ino}"),
        }
    }
    names.reverse();
    format!("/{}", names.join("/"))
}
