//! What a user can see of a pool, as one comparable value: the commit's txg, the pool's
//! size (its label's `device_bytes`), its configuration, the retained commits, a saved partial receive, and for the live tree
//! and every snapshot, every path with its type, inode number, mode, owner, size, times,
//! link count, content, symlink target and xattrs (hard links named as such).
//!
//! Two states are equal only if all of that is equal, so a crash image whose state equals
//! neither the commit before the crash nor the one in flight is caught, whatever differs.

use snapfs::block::{BlockPtr, Txg};
use snapfs::checksum::blake3;
use snapfs::format::node::TreeKind;
use snapfs::fs::{FileType, FsTree, ROOT_INO};
use snapfs::pool::{LIVE_TREE_ID, Pool};
use snapfs::store::Owner;
use snapfs::tree::Tree;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// One tree as lines of text (kept for messages) and their hash (compared).
#[derive(Debug)]
pub struct TreeDigest {
    pub hash: [u8; 32],
    pub lines: Vec<String>,
}

impl PartialEq for TreeDigest {
    fn eq(&self, other: &TreeDigest) -> bool {
        self.hash == other.hash
    }
}
impl Eq for TreeDigest {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotState {
    pub guid: [u8; 16],
    pub txg: u64,
    pub tree: Arc<TreeDigest>,
    /// The tags of its holds, in order.
    pub holds: Vec<String>,
    /// A subset snapshot whose files are still being extracted: `tree` is what readers
    /// see of it meanwhile (its moment through its rule), which must be the tree it ends
    /// with.
    pub extracting: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolState {
    pub txg: u64,
    pub pool_bytes: u64,
    pub config: String,
    pub history: Vec<u64>,
    pub receive: Option<String>,
    pub live: Arc<TreeDigest>,
    /// Snapshots by name; a clone's as CLONE@NAME.
    pub snapshots: BTreeMap<String, SnapshotState>,
    /// The clones' heads, by name.
    pub clones: BTreeMap<String, Arc<TreeDigest>>,
}

impl PoolState {
    /// A one-line description for summaries and failure messages.
    pub fn describe(&self) -> String {
        let snapshots: Vec<String> = self.snapshots.keys().map(|n| format!("@{n}")).collect();
        format!(
            "txg {} ({} bytes, live tree {} entries, snapshots [{}], {} retained commits{})",
            self.txg,
            self.pool_bytes,
            self.live.lines.len(),
            snapshots.join(" "),
            self.history.len(),
            if self.receive.is_some() { ", a saved partial receive" } else { "" }
        )
    }

    /// What differs from `other`, briefly, for a failure message.
    pub fn difference(&self, other: &PoolState) -> String {
        let mut out = Vec::new();
        if self.txg != other.txg {
            out.push(format!("txg {} vs {}", self.txg, other.txg));
        }
        if self.pool_bytes != other.pool_bytes {
            out.push(format!("pool size {} vs {} bytes", self.pool_bytes, other.pool_bytes));
        }
        if self.config != other.config {
            out.push(format!("config {} vs {}", self.config, other.config));
        }
        if self.history != other.history {
            out.push(format!("retained commits {:?} vs {:?}", self.history, other.history));
        }
        if self.receive != other.receive {
            out.push("saved partial receive differs".to_string());
        }
        if self.live != other.live {
            out.push(format!("live tree: {}", first_difference(&self.live, &other.live)));
        }
        if self.clones.keys().ne(other.clones.keys()) {
            out.push(format!("clones {:?} vs {:?}", self.clones.keys(), other.clones.keys()));
        }
        for (name, head) in &self.clones {
            if let Some(other_head) = other.clones.get(name).filter(|h| *h != head) {
                out.push(format!("clone {name}: {}", first_difference(head, other_head)));
            }
        }
        let names: std::collections::BTreeSet<&String> = self.snapshots.keys().chain(other.snapshots.keys()).collect();
        for name in names {
            match (self.snapshots.get(name), other.snapshots.get(name)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) if a.tree != b.tree => {
                    out.push(format!("@{name}: {}", first_difference(&a.tree, &b.tree)))
                }
                (Some(a), Some(b)) if a.holds != b.holds => {
                    out.push(format!("@{name}: holds {:?} vs {:?}", a.holds, b.holds))
                }
                (Some(a), Some(b)) if a.extracting != b.extracting => {
                    out.push(format!("@{name}: extracting {} vs {}", a.extracting, b.extracting))
                }
                (Some(a), Some(b)) => out.push(format!("@{name}: txg {} vs {}", a.txg, b.txg)),
                (Some(_), None) => out.push(format!("@{name} only in the first")),
                (None, Some(_)) => out.push(format!("@{name} only in the second")),
                (None, None) => unreachable!(),
            }
        }
        out.join("; ")
    }
}

fn first_difference(a: &TreeDigest, b: &TreeDigest) -> String {
    for (x, y) in a.lines.iter().zip(&b.lines) {
        if x != y {
            return format!("{x:?} vs {y:?}");
        }
    }
    format!("{} vs {} entries", a.lines.len(), b.lines.len())
}

/// Digests of trees already computed, by root pointer. A tree is content-addressed (every
/// pointer holds its block's blake3, checked on every read), so one root pointer names one
/// content; the cache only saves the time of reading it again.
#[derive(Default)]
pub struct DigestCache {
    trees: Mutex<HashMap<String, Arc<TreeDigest>>>,
}

impl DigestCache {
    fn get(&self, root: &Option<BlockPtr>) -> Option<Arc<TreeDigest>> {
        self.trees.lock().expect("cache lock").get(&format!("{root:?}")).cloned()
    }
    fn put(&self, root: &Option<BlockPtr>, digest: Arc<TreeDigest>) {
        self.trees.lock().expect("cache lock").insert(format!("{root:?}"), digest);
    }
}

/// The state of an open pool. With a cache, trees whose root pointer was digested before
/// are not read again.
pub fn capture(pool: &mut Pool, cache: Option<&DigestCache>) -> Result<PoolState, String> {
    let live_root = pool.committed_head_root(LIVE_TREE_ID).map_err(|e| format!("live tree root: {e}"))?;
    let live = tree_digest(pool, live_root, cache).map_err(|e| format!("live tree: {e}"))?;
    let mut snapshots = BTreeMap::new();
    let mut clones = BTreeMap::new();
    let trees: Vec<(u64, String, Option<BlockPtr>)> =
        pool.trees().map_err(|e| format!("trees table: {e}"))?.map(|t| (t.id, t.name.clone(), t.root)).collect();
    for (id, name, root) in trees {
        let prefix = if id == LIVE_TREE_ID { String::new() } else { format!("{name}@") };
        if id != LIVE_TREE_ID {
            clones.insert(name.clone(), tree_digest(pool, root, cache).map_err(|e| format!("clone {name}: {e}"))?);
        }
        let entries = pool.snapshots_of(id).map_err(|e| format!("snapshots: {e}"))?;
        for entry in entries {
            let key = format!("{prefix}{}", entry.name);
            let extracting = entry.subset.as_ref().is_some_and(|s| s.is_extracting());
            let tree = match extracting {
                false => tree_digest(pool, entry.root, cache),
                // What a reader sees: the tree built in memory from the moment.
                true => match pool.view(id, Some(&entry.name)) {
                    Ok((mut tree, store)) => digest(&mut FsTree::new(&mut tree, store, false)),
                    Err(e) => Err(e.to_string()),
                },
            }
            .map_err(|e| format!("snapshot {key}: {e}"))?;
            let holds = entry.holds.iter().map(|h| h.tag.clone()).collect();
            snapshots.insert(key, SnapshotState { guid: entry.guid, txg: entry.txg.0, tree, holds, extracting });
        }
    }
    let receive = pool.receive_state().map_err(|e| format!("receive state: {e}"))?.map(|r| format!("{r:?}"));
    Ok(PoolState {
        txg: pool.txg().0,
        pool_bytes: pool.label.device_bytes,
        config: format!("{:?}", pool.root.config),
        history: pool.history().map_err(|e| format!("history: {e}"))?.into_iter().map(|(t, _)| t.0).collect(),
        receive,
        live,
        snapshots,
        clones,
    })
}

/// The live tree as the retained commit `txg` left it (from the history table).
pub fn history_tree(pool: &mut Pool, txg: u64, cache: Option<&DigestCache>) -> Result<Arc<TreeDigest>, String> {
    let root = pool.history_root(LIVE_TREE_ID, Txg(txg)).map_err(|e| format!("retained commit {txg}: {e}"))?;
    tree_digest(pool, root, cache).map_err(|e| format!("live tree at retained commit {txg}: {e}"))
}

fn tree_digest(
    pool: &mut Pool,
    root: Option<BlockPtr>,
    cache: Option<&DigestCache>,
) -> Result<Arc<TreeDigest>, String> {
    if let Some(found) = cache.and_then(|c| c.get(&root)) {
        return Ok(found);
    }
    let mut tree = Tree::open(TreeKind::Files, Owner::Files(LIVE_TREE_ID), root);
    let digest = digest(&mut FsTree::new(&mut tree, &mut pool.store, false))?;
    if let Some(cache) = cache {
        cache.put(&root, Arc::clone(&digest));
    }
    Ok(digest)
}

fn digest(fs: &mut FsTree) -> Result<Arc<TreeDigest>, String> {
    let mut lines = Vec::new();
    let mut seen = HashMap::new();
    describe(fs, ROOT_INO, "", FileType::Directory, &mut seen, &mut lines)?;
    walk(fs, ROOT_INO, "", &mut seen, &mut lines, 0)?;
    let hash = blake3(lines.join("\n").as_bytes());
    Ok(Arc::new(TreeDigest { hash, lines }))
}

/// Deeper than any tree the workload makes: a loop in the directories is a bug.
const DEPTH_MAX: usize = 64;

fn walk(
    fs: &mut FsTree,
    dir: u64,
    path: &str,
    seen: &mut HashMap<u64, String>,
    lines: &mut Vec<String>,
    depth: usize,
) -> Result<(), String> {
    if depth > DEPTH_MAX {
        return Err(format!("{path}: directories nested deeper than {DEPTH_MAX}"));
    }
    let entries = fs.readdir(dir).map_err(|e| format!("{path}/: readdir: {e}"))?;
    for entry in entries {
        let child = format!("{path}/{}", String::from_utf8_lossy(&entry.name).escape_debug());
        let first_time = describe(fs, entry.ino, &child, entry.file_type, seen, lines)?;
        if first_time && entry.file_type == FileType::Directory {
            walk(fs, entry.ino, &child, seen, lines, depth + 1)?;
        }
    }
    Ok(())
}

/// Adds the line of one path; returns false if its inode was described before (a hard
/// link, named as one).
fn describe(
    fs: &mut FsTree,
    ino: u64,
    path: &str,
    entry_type: FileType,
    seen: &mut HashMap<u64, String>,
    lines: &mut Vec<String>,
) -> Result<bool, String> {
    if let Some(first) = seen.get(&ino) {
        lines.push(format!("{path} hardlink-of {first}"));
        return Ok(false);
    }
    seen.insert(ino, path.to_string());
    let inode = fs.inode(ino).map_err(|e| format!("{path}: inode {ino}: {e}"))?;
    if inode.file_type() != entry_type {
        return Err(format!("{path}: the entry says {entry_type:?}, inode {ino} is {:?}", inode.file_type()));
    }
    let mut line = format!(
        "{path} ino={ino} mode={:o} uid={} gid={} nlink={} size={} rdev={} atime={:?} mtime={:?} ctime={:?} gen={}",
        inode.mode,
        inode.uid,
        inode.gid,
        inode.nlink,
        inode.size,
        inode.rdev,
        inode.atime,
        inode.mtime,
        inode.ctime,
        inode.generation
    );
    match inode.file_type() {
        FileType::Regular => {
            let bytes = fs.read(ino, 0, inode.size).map_err(|e| format!("{path}: read: {e}"))?;
            if bytes.len() as u64 != inode.size {
                return Err(format!("{path}: read {} bytes of a {}-byte file", bytes.len(), inode.size));
            }
            let hash = blake3(&bytes);
            let _ = write!(line, " content={}", hex(&hash[..16]));
        }
        FileType::Symlink => {
            let target = fs.symlink_target(ino).map_err(|e| format!("{path}: symlink: {e}"))?;
            let _ = write!(line, " target={:?}", String::from_utf8_lossy(&target));
        }
        FileType::Directory | FileType::Special => {}
    }
    for (name, value) in fs.xattrs(ino).map_err(|e| format!("{path}: xattrs: {e}"))? {
        let _ = write!(line, " xattr {:?}={}", String::from_utf8_lossy(&name), hex(&blake3(&value)[..8]));
    }
    lines.push(line);
    Ok(true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
