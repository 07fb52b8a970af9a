//! A copy-on-write B+tree of byte-string keys and values.
//!
//! Nodes are loaded lazily from their pointers and kept in memory while the tree is open.
//! The first change to a committed node "kills" its old pointer (the store decides whether
//! the old block is freed or kept for a snapshot) and makes the node dirty; `flush` writes
//! dirty nodes bottom-up, so each parent records the checksum of its children.
//!
//! Memory is bounded by node count, not by the work of the transaction: a tree with a
//! cache limit (file trees: `CACHE_NODES_MAX`) that has loaded or made more nodes than
//! that since its last eviction writes its dirty nodes out and drops every node at the
//! end of the operation that crossed it. The nodes written out are copies on fresh
//! blocks born in the running transaction, which no commit references until the next
//! commit record names the tree's root: a crash before it leaves them unreferenced and
//! free (the space log never listed them), so the transaction stays atomic. Changed
//! again, such a node is killed as any block born in this transaction, freed at once.
//!
//! Invariants:
//! - a slot is dirty exactly when it has a node and no pointer;
//! - keys in a node are strictly ascending; child i of an internal node holds keys in
//!   [key_i, key_{i+1}), with key_0 standing for "everything below key_1";
//! - a node's encoding never exceeds NODE_BYTES_MAX; nodes may be underfull.

use super::leaf::Leaf;
use crate::block::{BlockKind, BlockPtr};
use crate::error::{Error, Result};
use crate::format::node::{
    EncodedNode, KEY_BYTES_MAX, NODE_BYTES_MAX, NODE_HEADER_BYTES, NodeBody, TREE_LEVELS_MAX, TreeKind,
    VALUE_BYTES_MAX, encode_internal, encode_leaf, internal_entry_bytes, leaf_entry_bytes,
};
use crate::store::{Owner, Store};
use std::sync::Arc;

#[derive(Default)]
struct Slot {
    ptr: Option<BlockPtr>,
    node: Option<Box<Node>>,
}

struct Node {
    level: u8,
    /// Encoded size, kept up to date on every change.
    bytes: usize,
    body: Body,
}

enum Body {
    Leaf(Leaf),
    Internal(Vec<(Vec<u8>, Slot)>),
}

/// Called with each (key, value) of a scan; returns false to stop.
pub type Visitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'v;

/// Nodes a file tree keeps in memory at most (16 KiB each encoded, twice that at most in
/// memory): some 64 MiB, whatever the number of files.
pub const CACHE_NODES_MAX: u64 = 2048;

pub struct Tree {
    pub kind: TreeKind,
    pub owner: Owner,
    root: Slot,
    /// Nodes loaded or made past this many since the last eviction: write out and evict.
    cache_limit: u64,
    /// `Store::nodes_loaded` when the tree last held no node (set by the first operation
    /// after one): the count since bounds the nodes it holds.
    evicted_at: Option<u64>,
    /// The most nodes held at the end of an operation (as bounded above), and the times
    /// the limit made the tree write itself out: what the memory tests look at.
    peak_held: u64,
    write_outs: u64,
}

impl Node {
    fn empty_leaf() -> Node {
        Node { level: 0, bytes: NODE_HEADER_BYTES, body: Body::Leaf(Leaf::Owned(Vec::new())) }
    }

    fn len(&self) -> usize {
        match &self.body {
            Body::Leaf(e) => e.len(),
            Body::Internal(e) => e.len(),
        }
    }

    /// A node as the device holds it, validated: a leaf stays in its bytes (leaf.rs).
    fn decode(bytes: Arc<Vec<u8>>, kind: TreeKind, level: u8) -> Result<Node> {
        if level == 0 {
            let size = bytes.len();
            return Ok(Node { level, bytes: size, body: Body::Leaf(Leaf::decode(bytes, kind)?) });
        }
        let encoded = EncodedNode::decode(&bytes, kind, level)?;
        let NodeBody::Internal(entries) = encoded.body else { unreachable!("a node above level 0 is internal") };
        let size = NODE_HEADER_BYTES + entries.iter().map(|(k, _)| internal_entry_bytes(k)).sum::<usize>();
        let children = entries.into_iter().map(|(k, p)| (k, Slot { ptr: Some(p), node: None })).collect();
        Ok(Node { level, bytes: size, body: Body::Internal(children) })
    }

    /// Splits off the upper half by bytes; returns the first key of the new right node.
    fn split(&mut self) -> (Vec<u8>, Box<Node>) {
        let half = self.bytes / 2;
        let mut left_bytes = NODE_HEADER_BYTES;
        let (right_body, right_bytes) = match &mut self.body {
            Body::Leaf(leaf) => {
                let entries = leaf.owned();
                let mut at = 0;
                while at < entries.len() - 1 && left_bytes < half {
                    left_bytes += leaf_entry_bytes(&entries[at].0, &entries[at].1);
                    at += 1;
                }
                let at = at.max(1);
                let right: Vec<_> = entries.split_off(at);
                let rb = right.iter().map(|(k, v)| leaf_entry_bytes(k, v)).sum::<usize>();
                (Body::Leaf(Leaf::Owned(right)), rb)
            }
            Body::Internal(entries) => {
                let mut at = 0;
                while at < entries.len() - 1 && left_bytes < half {
                    left_bytes += internal_entry_bytes(&entries[at].0);
                    at += 1;
                }
                let at = at.max(1);
                let right: Vec<_> = entries.split_off(at);
                let rb = right.iter().map(|(k, _)| internal_entry_bytes(k)).sum::<usize>();
                (Body::Internal(right), rb)
            }
        };
        self.bytes -= right_bytes;
        let right = Box::new(Node { level: self.level, bytes: NODE_HEADER_BYTES + right_bytes, body: right_body });
        let key = match &right.body {
            Body::Leaf(leaf) => leaf.key(0).to_vec(),
            Body::Internal(e) => e[0].0.clone(),
        };
        (key, right)
    }
}

/// `Tree::prefetch` below `slot`, at depth `depth`.
fn prefetch_slot(
    slot: &mut Slot,
    store: &mut Store,
    kind: TreeKind,
    (first, last): (&[u8], &[u8]),
    advised: &mut std::collections::HashSet<u64>,
    depth: u8,
) -> Result<()> {
    if depth > TREE_LEVELS_MAX {
        return Err(Error::corrupt("tree is deeper than the format allows"));
    }
    if slot.node.is_none() {
        match slot.ptr {
            Some(ptr) if ptr.level == 0 => {
                // Once a call: many of the ranges asked for (a directory's files) share
                // a leaf, and each advice is a system call.
                if advised.insert(ptr.addr.0) {
                    store.will_need(&ptr);
                }
                return Ok(());
            }
            None => return Ok(()),
            Some(_) => Tree::load(slot, store, kind)?,
        }
    }
    let Some(node) = slot.node.as_mut() else { return Ok(()) };
    if let Body::Internal(entries) = &mut node.body {
        let (from, to) = (child_index(entries, first), child_index(entries, last));
        for (_, child) in &mut entries[from..=to] {
            prefetch_slot(child, store, kind, (first, last), advised, depth + 1)?;
        }
    }
    Ok(())
}

/// Index of the child of an internal node whose range holds `key`.
fn child_index(entries: &[(Vec<u8>, Slot)], key: &[u8]) -> usize {
    entries[1..].partition_point(|(k, _)| k.as_slice() <= key)
}

impl Tree {
    pub fn open(kind: TreeKind, owner: Owner, root: Option<BlockPtr>) -> Tree {
        // The pool's own tables stay whole until their commit writes them: they are small,
        // and the commit path orders their flushes.
        let cache_limit = if kind == TreeKind::Files { CACHE_NODES_MAX } else { u64::MAX };
        Tree {
            kind,
            owner,
            root: Slot { ptr: root, node: None },
            cache_limit,
            evicted_at: None,
            peak_held: 0,
            write_outs: 0,
        }
    }

    /// Sets how many nodes the tree may load or make between evictions (tests use a
    /// small limit to exercise write-out with few items).
    pub fn set_cache_limit(&mut self, nodes: u64) {
        self.cache_limit = nodes.max(1);
    }

    /// Nodes held in memory now, counted one by one.
    pub fn cached_nodes(&self) -> u64 {
        fn count(slot: &Slot) -> u64 {
            match &slot.node {
                None => 0,
                Some(node) => {
                    1 + match &node.body {
                        Body::Leaf(_) => 0,
                        Body::Internal(entries) => entries.iter().map(|(_, child)| count(child)).sum(),
                    }
                }
            }
        }
        count(&self.root)
    }

    /// The most nodes the tree held at the end of an operation since it was opened, at
    /// most (nodes loaded or made since the eviction before).
    pub fn peak_nodes_held(&self) -> u64 {
        self.peak_held
    }

    /// Times the cache limit made the tree write its dirty nodes out and drop them.
    pub fn write_outs(&self) -> u64 {
        self.write_outs
    }

    /// Past the cache limit: writes the dirty nodes out (inside the running transaction)
    /// and drops every node, so that the next operation reloads what it needs.
    fn bound_cache(&mut self, store: &mut Store) -> Result<()> {
        let held = store.nodes_loaded - self.counted_from(store);
        self.peak_held = self.peak_held.max(held);
        if held > self.cache_limit {
            self.write_outs += 1;
            self.flush(store)?;
            self.root.node = None;
            self.evicted_at = Some(store.nodes_loaded);
        }
        Ok(())
    }

    /// Where the count of nodes held starts; every operation calls it before it loads.
    fn counted_from(&mut self, store: &Store) -> u64 {
        *self.evicted_at.get_or_insert(store.nodes_loaded)
    }

    /// The committed root, or None if the tree changed since the last flush or is empty.
    pub fn committed_root(&self) -> Option<BlockPtr> {
        self.root.ptr
    }

    pub fn is_dirty(&self) -> bool {
        self.root.ptr.is_none() && self.root.node.is_some()
    }

    fn load(slot: &mut Slot, store: &mut Store, kind: TreeKind) -> Result<()> {
        if slot.node.is_none() {
            if let Some(ptr) = slot.ptr {
                if ptr.kind != BlockKind::TreeNode {
                    return Err(Error::corrupt(format!(
                        "a {} block where a tree node belongs (block {})",
                        ptr.kind.name(),
                        ptr.addr.0
                    )));
                }
                let bytes = store.read_node(&ptr)?;
                let node = Node::decode(bytes, kind, ptr.level).map_err(|e| match e {
                    Error::Corrupt(c) => Error::corrupt_at(ptr.addr.0, format!("{} (block {})", c.what, ptr.addr.0)),
                    other => other,
                })?;
                slot.node = Some(Box::new(node));
                store.nodes_loaded += 1;
            }
        }
        Ok(())
    }

    fn make_dirty(slot: &mut Slot, store: &mut Store, owner: Owner) -> Result<()> {
        if let Some(ptr) = slot.ptr.take() {
            store.kill(owner, &ptr)?;
            store.expect_metadata(NODE_BYTES_MAX as u64);
        }
        Ok(())
    }

    pub fn get(&mut self, store: &mut Store, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self.get_cached(store, key)?;
        self.bound_cache(store)?;
        Ok(value)
    }

    /// `get`, leaving the nodes on the key's path loaded.
    fn get_cached(&mut self, store: &mut Store, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.counted_from(store);
        let kind = self.kind;
        let mut slot = &mut self.root;
        for _ in 0..=TREE_LEVELS_MAX {
            Tree::load(slot, store, kind)?;
            let Some(node) = slot.node.as_mut() else { return Ok(None) };
            match &mut node.body {
                Body::Leaf(leaf) => return Ok(leaf.search(key).ok().map(|i| leaf.value(i).to_vec())),
                Body::Internal(entries) => {
                    let i = child_index(entries, key);
                    slot = &mut entries[i].1;
                }
            }
        }
        Err(Error::corrupt("tree is deeper than the format allows"))
    }

    /// Asks the device to read ahead the leaves that hold the keys of `ranges` (each
    /// first..=last): the internal nodes over them are loaded, the leaves only
    /// requested, so that a walk about to read them one after another finds them in the
    /// cache instead of waiting for each in turn (the device serves many requests at once
    /// far faster).
    pub fn prefetch(&mut self, store: &mut Store, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        self.counted_from(store);
        let mut advised = std::collections::HashSet::new();
        for (first, last) in ranges {
            prefetch_slot(&mut self.root, store, self.kind, (first, last), &mut advised, 0)?;
        }
        self.bound_cache(store)
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, store: &mut Store, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        assert!(key.len() <= KEY_BYTES_MAX, "key of {} bytes", key.len());
        assert!(value.len() <= VALUE_BYTES_MAX, "value of {} bytes", value.len());
        self.counted_from(store);
        if self.root.ptr.is_none() && self.root.node.is_none() {
            self.root.node = Some(Box::new(Node::empty_leaf()));
            store.expect_metadata(NODE_BYTES_MAX as u64);
            store.nodes_loaded += 1;
        }
        Tree::load(&mut self.root, store, self.kind)?;
        Tree::make_dirty(&mut self.root, store, self.owner)?;
        let node = self.root.node.as_mut().expect("root loaded");
        let old = insert_into(node, store, self.kind, self.owner, key, value, 0)?;
        if node.bytes > NODE_BYTES_MAX {
            if node.level + 1 > TREE_LEVELS_MAX {
                return Err(Error::invalid("tree would grow deeper than the format allows"));
            }
            let (right_key, right) = node.split();
            // The left half stays dirty as it was; the new right half and root are new.
            store.expect_metadata(2 * NODE_BYTES_MAX as u64);
            store.nodes_loaded += 2;
            let left = self.root.node.take().expect("root loaded");
            let level = left.level + 1;
            let bytes = NODE_HEADER_BYTES + internal_entry_bytes(&[]) + internal_entry_bytes(&right_key);
            self.root.node = Some(Box::new(Node {
                level,
                bytes,
                body: Body::Internal(vec![
                    (Vec::new(), Slot { ptr: None, node: Some(left) }),
                    (right_key, Slot { ptr: None, node: Some(right) }),
                ]),
            }));
        }
        self.bound_cache(store)?;
        Ok(old)
    }

    /// Removes a key; returns its value. Nothing is dirtied if the key is absent.
    pub fn remove(&mut self, store: &mut Store, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.get_cached(store, key)?.is_none() {
            self.bound_cache(store)?;
            return Ok(None);
        }
        Tree::make_dirty(&mut self.root, store, self.owner)?;
        let node = self.root.node.as_mut().expect("root loaded by get");
        let old = remove_from(node, store, self.kind, self.owner, key)?;
        // Shrink the root: an internal root with one child gives way to the child.
        loop {
            let node = self.root.node.as_mut().expect("root loaded");
            match &mut node.body {
                Body::Internal(entries) if entries.len() == 1 => {
                    let (_, child) = entries.pop().expect("one entry");
                    self.root = child;
                    Tree::load(&mut self.root, store, self.kind)?;
                }
                Body::Leaf(entries) if entries.is_empty() => {
                    self.root = Slot::default();
                    break;
                }
                Body::Internal(entries) if entries.is_empty() => {
                    self.root = Slot::default();
                    break;
                }
                _ => break,
            }
        }
        self.bound_cache(store)?;
        Ok(old)
    }

    /// Calls `visit(key, value)` for keys >= `start` in order until it returns false.
    pub fn scan(&mut self, store: &mut Store, start: &[u8], visit: &mut Visitor) -> Result<()> {
        let kind = self.kind;
        let drop_past = self.counted_from(store).saturating_add(self.cache_limit);
        scan_slot(&mut self.root, store, kind, start, visit, 0, drop_past)?;
        self.bound_cache(store)
    }

    /// The entry with the greatest key below `bound`, if any: one descent, and a step
    /// back to the child before where that child holds nothing below it.
    pub fn last_below(&mut self, store: &mut Store, bound: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.counted_from(store);
        let found = last_below_slot(&mut self.root, store, self.kind, bound, 0)?;
        self.bound_cache(store)?;
        Ok(found)
    }

    /// Entries whose key starts with `prefix`, in order.
    pub fn scan_prefix(&mut self, store: &mut Store, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        self.scan(store, prefix, &mut |k, v| {
            if !k.starts_with(prefix) {
                return Ok(false);
            }
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Writes every dirty node; returns the new root pointer (None for an empty tree).
    pub fn flush(&mut self, store: &mut Store) -> Result<Option<BlockPtr>> {
        if self.is_dirty() {
            flush_slot(&mut self.root, store, self.kind)?;
        }
        Ok(self.root.ptr)
    }

    /// Drops every loaded node; the tree reloads them on demand. Only a clean tree.
    pub fn evict(&mut self) {
        if !self.is_dirty() {
            self.root.node = None;
            self.evicted_at = None;
        }
    }
}

fn insert_into(
    node: &mut Node,
    store: &mut Store,
    kind: TreeKind,
    owner: Owner,
    key: &[u8],
    value: &[u8],
    depth: u8,
) -> Result<Option<Vec<u8>>> {
    if depth > TREE_LEVELS_MAX {
        return Err(Error::corrupt("tree is deeper than the format allows"));
    }
    match &mut node.body {
        Body::Leaf(leaf) => match leaf.search(key) {
            Ok(i) => {
                let old = std::mem::replace(&mut leaf.owned()[i].1, value.to_vec());
                node.bytes = node.bytes - old.len() + value.len();
                Ok(Some(old))
            }
            Err(i) => {
                leaf.owned().insert(i, (key.to_vec(), value.to_vec()));
                node.bytes += leaf_entry_bytes(key, value);
                Ok(None)
            }
        },
        Body::Internal(entries) => {
            let i = child_index(entries, key);
            let slot = &mut entries[i].1;
            Tree::load(slot, store, kind)?;
            Tree::make_dirty(slot, store, owner)?;
            let child = slot.node.as_mut().expect("child loaded");
            let old = insert_into(child, store, kind, owner, key, value, depth + 1)?;
            if child.bytes > NODE_BYTES_MAX {
                let (right_key, right) = child.split();
                store.expect_metadata(NODE_BYTES_MAX as u64);
                store.nodes_loaded += 1;
                node.bytes += internal_entry_bytes(&right_key);
                entries.insert(i + 1, (right_key, Slot { ptr: None, node: Some(right) }));
            }
            Ok(old)
        }
    }
}

fn remove_from(
    node: &mut Node,
    store: &mut Store,
    kind: TreeKind,
    owner: Owner,
    key: &[u8],
) -> Result<Option<Vec<u8>>> {
    match &mut node.body {
        Body::Leaf(leaf) => match leaf.search(key) {
            Ok(i) => {
                let (k, v) = leaf.owned().remove(i);
                node.bytes -= leaf_entry_bytes(&k, &v);
                Ok(Some(v))
            }
            Err(_) => Ok(None),
        },
        Body::Internal(entries) => {
            let i = child_index(entries, key);
            let slot = &mut entries[i].1;
            Tree::load(slot, store, kind)?;
            Tree::make_dirty(slot, store, owner)?;
            let child = slot.node.as_mut().expect("child loaded");
            let old = remove_from(child, store, kind, owner, key)?;
            let child_len = child.len();
            let child_bytes = child.bytes;
            if child_len == 0 {
                let (k, _) = entries.remove(i);
                node.bytes -= internal_entry_bytes(&k);
                // The sibling before it (or after it, for the first) takes its key range.
                if !entries.is_empty() {
                    let (at, first) = if i > 0 { (i - 1, false) } else { (0, true) };
                    dirty_edge(&mut entries[at].1, store, kind, owner, first)?;
                }
            } else if child_bytes < NODE_BYTES_MAX / 4 && entries.len() > 1 {
                let left = if i + 1 < entries.len() { i } else { i - 1 };
                node.bytes -= merge_if_fits(entries, left, store, kind, owner)?;
            }
            Ok(old)
        }
    }
}

/// Dirties the nodes along one edge of a subtree (its first children with `first`, else
/// its last), down to the leaf, when the subtree's key range grows on that side. A node
/// is rewritten whenever its range changes, so a node born at or before a txg holds
/// every key its range held then, and only those: an incremental from a bookmark relies
/// on it (stream/ranges.rs).
fn dirty_edge(slot: &mut Slot, store: &mut Store, kind: TreeKind, owner: Owner, first: bool) -> Result<()> {
    Tree::load(slot, store, kind)?;
    Tree::make_dirty(slot, store, owner)?;
    let node = slot.node.as_mut().expect("loaded");
    if let Body::Internal(entries) = &mut node.body {
        let at = if first { 0 } else { entries.len() - 1 };
        dirty_edge(&mut entries[at].1, store, kind, owner, first)?;
    }
    Ok(())
}

/// Merges child `left + 1` into child `left` if the result fits in one node; returns the
/// bytes the parent lost.
fn merge_if_fits(
    entries: &mut Vec<(Vec<u8>, Slot)>,
    left: usize,
    store: &mut Store,
    kind: TreeKind,
    owner: Owner,
) -> Result<usize> {
    for i in [left, left + 1] {
        Tree::load(&mut entries[i].1, store, kind)?;
    }
    let left_bytes = entries[left].1.node.as_ref().expect("loaded").bytes;
    let right_bytes = entries[left + 1].1.node.as_ref().expect("loaded").bytes;
    if left_bytes + right_bytes - NODE_HEADER_BYTES > NODE_BYTES_MAX * 3 / 4 {
        return Ok(0);
    }
    let (separator, mut right_slot) = entries.remove(left + 1);
    Tree::make_dirty(&mut right_slot, store, owner)?;
    Tree::make_dirty(&mut entries[left].1, store, owner)?;
    let right = right_slot.node.take().expect("loaded");
    let left_node = entries[left].1.node.as_mut().expect("loaded");
    match (&mut left_node.body, right.body) {
        (Body::Leaf(l), Body::Leaf(r)) => l.owned().extend(r.into_owned()),
        (Body::Internal(l), Body::Internal(mut r)) => {
            // The right node's first key may be a stale lower bound: the parent's
            // separator is the true start of its range.
            let old_key = std::mem::replace(&mut r[0].0, separator.clone());
            left_node.bytes = left_node.bytes + separator.len() - old_key.len();
            l.extend(r);
        }
        _ => return Err(Error::corrupt("siblings at one level are of different node types")),
    }
    left_node.bytes += right.bytes - NODE_HEADER_BYTES;
    Ok(internal_entry_bytes(&separator))
}

/// Past `drop_past` nodes loaded (the cache limit), a clean subtree is dropped once
/// scanned, so that a scan of a whole tree holds one path, not the tree.
fn scan_slot(
    slot: &mut Slot,
    store: &mut Store,
    kind: TreeKind,
    start: &[u8],
    visit: &mut Visitor,
    depth: u8,
    drop_past: u64,
) -> Result<bool> {
    if depth > TREE_LEVELS_MAX {
        return Err(Error::corrupt("tree is deeper than the format allows"));
    }
    Tree::load(slot, store, kind)?;
    let Some(node) = slot.node.as_mut() else { return Ok(true) };
    match &mut node.body {
        Body::Leaf(leaf) => {
            for i in leaf.count_below(start)..leaf.len() {
                if !visit(leaf.key(i), leaf.value(i))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Body::Internal(entries) => {
            let from = child_index(entries, start);
            for (_, child) in entries[from..].iter_mut() {
                if !scan_slot(child, store, kind, start, visit, depth + 1, drop_past)? {
                    return Ok(false);
                }
                if child.ptr.is_some() && store.nodes_loaded > drop_past {
                    child.node = None;
                }
            }
            Ok(true)
        }
    }
}

fn last_below_slot(
    slot: &mut Slot,
    store: &mut Store,
    kind: TreeKind,
    bound: &[u8],
    depth: u8,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    if depth > TREE_LEVELS_MAX {
        return Err(Error::corrupt("tree is deeper than the format allows"));
    }
    Tree::load(slot, store, kind)?;
    let Some(node) = slot.node.as_mut() else { return Ok(None) };
    match &mut node.body {
        Body::Leaf(leaf) => {
            let below = leaf.count_below(bound);
            Ok(below.checked_sub(1).map(|i| (leaf.key(i).to_vec(), leaf.value(i).to_vec())))
        }
        Body::Internal(entries) => {
            // Every child before the bound's holds only keys below it.
            for i in (0..=child_index(entries, bound)).rev() {
                if let Some(found) = last_below_slot(&mut entries[i].1, store, kind, bound, depth + 1)? {
                    return Ok(Some(found));
                }
            }
            Ok(None)
        }
    }
}

fn flush_slot(slot: &mut Slot, store: &mut Store, kind: TreeKind) -> Result<()> {
    let node = slot.node.as_mut().expect("dirty slot has a node");
    let bytes = match &mut node.body {
        // A leaf made dirty unchanged (a range edge, a merge) is still packed.
        Body::Leaf(leaf) => encode_leaf(kind, leaf.owned()),
        Body::Internal(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, child) in entries.iter_mut() {
                if child.ptr.is_none() {
                    flush_slot(child, store, kind)?;
                }
                out.push((k.clone(), child.ptr.expect("flushed child")));
            }
            encode_internal(kind, node.level, &out)
        }
    };
    debug_assert_eq!(bytes.len(), node.bytes);
    slot.ptr = Some(store.write_node(kind, node.level, &bytes)?);
    store.metadata_written(NODE_BYTES_MAX as u64);
    Ok(())
}

/// Visits every node of a committed tree without keeping it in memory:
/// `visit(ptr, node)` for each node, parents before children.
pub fn walk_nodes(
    store: &mut Store,
    root: &BlockPtr,
    kind: TreeKind,
    visit: &mut dyn FnMut(&BlockPtr, &EncodedNode) -> Result<WalkStep>,
) -> Result<()> {
    let bytes = store.read_block(root)?;
    let node = EncodedNode::decode(&bytes, kind, root.level)
        .map_err(|e| Error::corrupt(format!("{e} (block {})", root.addr.0)))?;
    if visit(root, &node)? == WalkStep::Skip {
        return Ok(());
    }
    if let NodeBody::Internal(children) = &node.body {
        for (_, child) in children {
            walk_nodes(store, child, kind, visit)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkStep {
    Descend,
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Txg;
    use std::collections::BTreeMap;

    fn store() -> Store {
        Store::for_tests()
    }

    #[test]
    fn random_inserts_and_removes_match_a_btreemap() {
        // Goal: splits, merges and root changes at several levels keep every key; each
        // flush, eviction and reload from the device returns the same contents.
        // Method: 60k random operations with values of varied size against a BTreeMap.
        let mut store = store();
        let mut tree = Tree::open(TreeKind::Dead, Owner::Meta, None);
        let mut model = BTreeMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..60_000u64 {
            let key = (rand() % 30_000).to_be_bytes().to_vec();
            if rand() % 3 == 0 {
                assert_eq!(tree.remove(&mut store, &key).unwrap(), model.remove(&key), "step {step}");
            } else {
                let value = vec![(step % 251) as u8; (rand() % 600) as usize];
                assert_eq!(tree.insert(&mut store, &key, &value).unwrap(), model.insert(key, value), "step {step}");
            }
            if step % 10_000 == 9_999 {
                tree.flush(&mut store).unwrap();
                store.txg = Txg(store.txg.0 + 1);
                tree.evict();
                let all = tree.scan_prefix(&mut store, &[]).unwrap();
                assert_eq!(all, model.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>());
            }
        }
        let root = tree.flush(&mut store).unwrap().unwrap();
        assert!(root.level >= 2, "the test should build a tree of three levels, got {}", root.level + 1);
        let mut reopened = Tree::open(TreeKind::Dead, Owner::Meta, Some(root));
        for (k, v) in &model {
            assert_eq!(reopened.get(&mut store, k).unwrap().as_ref(), Some(v));
        }
        // The entry below any bound, present or not, at either end too.
        for bound in (0..30_002u64).step_by(7).map(|b| b.to_be_bytes().to_vec()).chain([vec![], vec![0xff; 9]]) {
            let expected = model.range(..bound.clone()).next_back().map(|(k, v)| (k.clone(), v.clone()));
            assert_eq!(reopened.last_below(&mut store, &bound).unwrap(), expected, "below {bound:?}");
        }
        // Remove everything: the tree shrinks back to empty.
        for k in model.keys() {
            assert!(reopened.remove(&mut store, k).unwrap().is_some());
        }
        assert_eq!(reopened.flush(&mut store).unwrap(), None);
    }

    #[test]
    fn prefetch_asks_for_the_leaves_of_a_range_and_loads_none() {
        // Goal: `prefetch` requests every leaf holding a key of the range, at most the
        // two leaves at its ends besides, and reads only internal nodes itself.
        // Method: a three-level tree on a memory device that logs its advice.
        let device = crate::device::MemoryDevice::new(256 << 20);
        let advised = device.advised.clone();
        let mut alloc = crate::alloc::Allocator::new(64, 64 * 1024);
        alloc.free.insert(64, 64 * 1024 - 64);
        let mut store = Store::new(Box::new(device), alloc, Txg(1), crate::compress::Codec::Zstd { level: 1 });
        let mut tree = Tree::open(TreeKind::Dead, Owner::Meta, None);
        for k in 0..40_000u64 {
            tree.insert(&mut store, &k.to_be_bytes(), &[7; 100]).unwrap();
        }
        let root = tree.flush(&mut store).unwrap().unwrap();
        assert!(root.level >= 2, "a tree of three levels at least");
        // Each leaf with its keys, from the device.
        let mut leaves: Vec<(u64, u64, u64)> = Vec::new();
        walk_nodes(&mut store, &root, TreeKind::Dead, &mut |ptr, node| {
            if let NodeBody::Leaf(entries) = &node.body {
                let key = |e: &(Vec<u8>, Vec<u8>)| u64::from_be_bytes(e.0.as_slice().try_into().unwrap());
                leaves.push((ptr.addr.0 * crate::block::BLOCK_BYTES, key(&entries[0]), key(entries.last().unwrap())));
            }
            Ok(WalkStep::Descend)
        })
        .unwrap();
        let (first, last) = (12_345u64, 23_456u64);
        // What the node cache holds (this store wrote the tree) is not asked for again.
        let range = [(first.to_be_bytes().to_vec(), last.to_be_bytes().to_vec())];
        Tree::open(TreeKind::Dead, Owner::Meta, Some(root)).prefetch(&mut store, &range).unwrap();
        assert!(advised.lock().unwrap().is_empty(), "held leaves were asked for");
        // As a process that did not write them.
        let limit = store.node_cache.limit_bytes();
        store.node_cache.set_limit(0);
        store.node_cache.set_limit(limit);
        let mut reopened = Tree::open(TreeKind::Dead, Owner::Meta, Some(root));
        reopened.prefetch(&mut store, &[(first.to_be_bytes().to_vec(), last.to_be_bytes().to_vec())]).unwrap();
        let advised: std::collections::BTreeSet<u64> = advised.lock().unwrap().iter().copied().collect();
        let holding: Vec<u64> = leaves.iter().filter(|l| l.2 >= first && l.1 <= last).map(|l| l.0).collect();
        assert!(holding.len() > 10, "the range should span many leaves");
        assert!(holding.iter().all(|l| advised.contains(l)), "a leaf of the range was not asked for");
        assert!(advised.len() <= holding.len() + 2, "{} asked for, {} hold the range", advised.len(), holding.len());
        let internal = reopened.cached_nodes();
        assert!(internal < 10, "only internal nodes are loaded: {internal}");
    }

    #[test]
    fn a_bounded_tree_holds_few_nodes_and_frees_what_it_wrote_out() {
        // Goal: with a cache limit, the tree holds at most the limit plus one operation's
        // nodes after every operation, keeps every key, and the nodes it wrote out early
        // and changed again are freed: at the end the blocks this transaction allocated
        // are exactly the final tree's nodes.
        // Method: 30k random inserts and removes in one transaction with a limit of 8
        // nodes, against a BTreeMap; the same without a limit shows the tree is large.
        for limit in [8, u64::MAX] {
            let mut store = store();
            let mut tree = Tree::open(TreeKind::Files, Owner::Files(1), None);
            tree.set_cache_limit(limit);
            let mut model = BTreeMap::new();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let mut rand = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut most_held = 0;
            for step in 0..30_000u64 {
                let key = (rand() % 20_000).to_be_bytes().to_vec();
                if rand() % 4 == 0 {
                    assert_eq!(tree.remove(&mut store, &key).unwrap(), model.remove(&key), "step {step}");
                } else if rand() % 8 == 0 {
                    assert_eq!(tree.get(&mut store, &key).unwrap().as_ref(), model.get(&key), "step {step}");
                } else {
                    let value = vec![(step % 251) as u8; (rand() % 300) as usize];
                    assert_eq!(tree.insert(&mut store, &key, &value).unwrap(), model.insert(key, value), "step {step}");
                }
                let held = tree.cached_nodes();
                most_held = most_held.max(held);
                if limit != u64::MAX {
                    // One operation loads a path and splits along it: a few nodes past the limit.
                    assert!(held <= limit + 2 * TREE_LEVELS_MAX as u64, "step {step}: {held} nodes held");
                    assert!(held <= tree.peak_nodes_held(), "the peak bounds what is held");
                }
            }
            let all = tree.scan_prefix(&mut store, &[]).unwrap();
            assert_eq!(all, model.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>());
            let root = tree.flush(&mut store).unwrap().expect("a tree with keys");
            let mut reachable = 0;
            walk_nodes(&mut store, &root, TreeKind::Files, &mut |ptr, _| {
                reachable += ptr.allocated_blocks();
                Ok(WalkStep::Descend)
            })
            .unwrap();
            assert_eq!(store.alloc.txg_allocs.blocks(), reachable, "limit {limit}: blocks written out early leaked");
            if limit == u64::MAX {
                assert!(most_held > 80, "the tree should be ten times the limit: {most_held} nodes");
                assert_eq!(tree.write_outs(), 0);
            } else {
                assert!(tree.write_outs() > 100, "only {} write-outs", tree.write_outs());
            }
        }
    }
}
