//! The difference between two committed B+trees of the same pool, in key order, at a
//! cost that grows with what changed.
//!
//! Both trees are walked together. Each walk is a stack of pending items: whole
//! subtrees (a child pointer and the lowest key its range can hold) and leaf entries.
//! When both walks have the same subtree pointer on top, that subtree is identical in
//! both (the pointer carries its checksum) and both skip it unread; otherwise the
//! subtree that starts lower (or, at the same start, sits higher) is opened. So an
//! incremental reads only the nodes on the paths to what changed, plus their siblings'
//! pointers, never the unchanged rest.
//!
//! Sound for any two trees: a skip needs pointer equality, never a birth-time argument.
//!
//! A caller that only asks *whether* something changed in some key ranges (a path diff
//! asks whether an inode's records changed, not which) passes a predicate
//! (`summarizing`): two differing subtrees with the same bounds that it accepts are not
//! read, and come out as one change with neither value, keyed by their lowest key.

use std::rc::Rc;

use crate::block::BlockPtr;
use crate::error::{Error, Result};
use crate::format::node::{EncodedNode, EntrySpan, NodeBody, TREE_LEVELS_MAX, TreeKind, decode_leaf};
use crate::store::Store;

/// One key whose value differs: present in one tree only, or in both with other values;
/// or, with neither value, a summed-up range of keys from `key` on (`summarizing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    pub old: Option<Vec<u8>>,
    pub new: Option<Vec<u8>>,
}

/// A leaf as read, shared by its pending entries: an entry is copied out only if it
/// differs, and most entries of a leaf on a changed path do not.
struct Leaf {
    bytes: Vec<u8>,
    spans: Vec<EntrySpan>,
}

/// Entry `index` of a leaf.
struct Entry {
    leaf: Rc<Leaf>,
    index: usize,
}

impl Entry {
    fn key(&self) -> &[u8] {
        self.leaf.spans[self.index].key(&self.leaf.bytes)
    }
    fn value(&self) -> &[u8] {
        self.leaf.spans[self.index].value(&self.leaf.bytes)
    }
}

enum Item {
    Subtree { ptr: BlockPtr, low: Vec<u8> },
    Entry(Entry),
}

impl Item {
    /// The lowest key this item can hold.
    fn low(&self) -> &[u8] {
        match self {
            Item::Subtree { low, .. } => low,
            Item::Entry(entry) => entry.key(),
        }
    }
}

/// A walk of one tree; the top of the stack is the next item in key order.
struct Walk {
    kind: TreeKind,
    stack: Vec<Item>,
    nodes_read: u64,
    /// Keys below this are skipped: subtrees that end before it are never read.
    start: Vec<u8>,
}

impl Walk {
    fn new(kind: TreeKind, root: Option<BlockPtr>, start: &[u8]) -> Walk {
        let stack = root.map(|ptr| Item::Subtree { ptr, low: Vec::new() }).into_iter().collect();
        Walk { kind, stack, nodes_read: 0, start: start.to_vec() }
    }

    fn peek(&self) -> Option<&Item> {
        self.stack.last()
    }

    /// The bound the item on top ends before: the next item's lowest key (None: the
    /// tree's end).
    fn upper(&self) -> Option<&[u8]> {
        self.stack.len().checked_sub(2).map(|i| self.stack[i].low())
    }

    /// Replaces the subtree on top with its children (or entries), in order.
    fn open(&mut self, store: &mut Store) -> Result<()> {
        let Some(Item::Subtree { ptr, low }) = self.stack.pop() else {
            unreachable!("open is called with a subtree on top")
        };
        if self.stack.len() > (TREE_LEVELS_MAX as usize + 1) * 4096 {
            return Err(Error::corrupt("tree walk grew past any valid tree's size"));
        }
        let bytes = store.read_block(&ptr)?;
        let located = |e: Error| Error::corrupt(format!("{e} (block {})", ptr.addr.0));
        self.nodes_read += 1;
        if ptr.level == 0 {
            let spans = decode_leaf(&bytes, self.kind).map_err(located)?;
            let leaf = Rc::new(Leaf { bytes, spans });
            let start = self.start.as_slice();
            self.stack.extend(
                (0..leaf.spans.len())
                    .rev()
                    .filter(|&i| leaf.spans[i].key(&leaf.bytes) >= start)
                    .map(|index| Item::Entry(Entry { leaf: Rc::clone(&leaf), index })),
            );
            return Ok(());
        }
        let node = EncodedNode::decode(&bytes, self.kind, ptr.level).map_err(located)?;
        match node.body {
            NodeBody::Leaf(_) => unreachable!("decoded at level {}", ptr.level),
            NodeBody::Internal(children) => {
                let mut next_low: Option<Vec<u8>> = None;
                for (i, (key, child)) in children.into_iter().enumerate().rev() {
                    // A child whose range ends at or before the start holds nothing wanted.
                    if next_low.as_ref().is_some_and(|end| end.as_slice() <= self.start.as_slice()) {
                        break;
                    }
                    // Child 0's carried key may be stale: its range starts where its parent's does.
                    let child_low = if i == 0 { low.clone() } else { key };
                    next_low = Some(child_low.clone());
                    self.stack.push(Item::Subtree { ptr: child, low: child_low });
                }
            }
        }
        Ok(())
    }
}

/// Says whether every key in [low, high) lies in a range whose changes the caller wants
/// summed up rather than listed (see the module comment).
pub type Summarize = fn(low: &[u8], high: &[u8]) -> bool;

pub struct TreeDiff {
    old: Walk,
    new: Walk,
    summarize: Option<Summarize>,
}

fn same_block(a: &BlockPtr, b: &BlockPtr) -> bool {
    a.addr == b.addr && a.checksum == b.checksum
}

impl TreeDiff {
    pub fn new(kind: TreeKind, old: Option<BlockPtr>, new: Option<BlockPtr>) -> TreeDiff {
        TreeDiff::starting_at(kind, old, new, &[])
    }

    /// The differences at keys >= `start` only (a resumed stream).
    pub fn starting_at(kind: TreeKind, old: Option<BlockPtr>, new: Option<BlockPtr>, start: &[u8]) -> TreeDiff {
        TreeDiff { old: Walk::new(kind, old, start), new: Walk::new(kind, new, start), summarize: None }
    }

    /// Differing subtrees with the same bounds that `summarize` accepts come out unread,
    /// as one change with neither value keyed by their lowest key.
    pub fn summarizing(self, summarize: Summarize) -> TreeDiff {
        TreeDiff { summarize: Some(summarize), ..self }
    }

    /// Whether the two differing subtrees on top share their bounds and `summarize`
    /// accepts them.
    fn summarized_on_top(&self) -> bool {
        let (Some(summarize), Some(a), Some(b)) = (self.summarize, self.old.peek(), self.new.peek()) else {
            return false;
        };
        match (self.old.upper(), self.new.upper()) {
            (Some(high_a), Some(high_b)) => a.low() == b.low() && high_a == high_b && summarize(a.low(), high_a),
            _ => false,
        }
    }

    /// Tree nodes read so far, both trees together.
    pub fn nodes_read(&self) -> u64 {
        self.old.nodes_read + self.new.nodes_read
    }

    /// The next changed key, or None when the trees hold nothing more that differs.
    pub fn next(&mut self, store: &mut Store) -> Result<Option<Change>> {
        loop {
            match (self.old.peek(), self.new.peek()) {
                (None, None) => return Ok(None),
                (Some(Item::Subtree { ptr: a, .. }), Some(Item::Subtree { ptr: b, .. })) if same_block(a, b) => {
                    self.old.stack.pop();
                    self.new.stack.pop();
                }
                (Some(Item::Entry(a)), Some(Item::Entry(b))) => {
                    let change = match a.key().cmp(b.key()) {
                        std::cmp::Ordering::Less => self.take_old(),
                        std::cmp::Ordering::Greater => self.take_new(),
                        std::cmp::Ordering::Equal => {
                            let change = (a.value() != b.value()).then(|| Change {
                                key: a.key().to_vec(),
                                old: Some(a.value().to_vec()),
                                new: Some(b.value().to_vec()),
                            });
                            self.old.stack.pop();
                            self.new.stack.pop();
                            match change {
                                Some(change) => change,
                                None => continue,
                            }
                        }
                    };
                    return Ok(Some(change));
                }
                (Some(Item::Entry(_)), None) => return Ok(Some(self.take_old())),
                (None, Some(Item::Entry(_))) => return Ok(Some(self.take_new())),
                (Some(Item::Subtree { .. }), None) => self.old.open(store)?,
                (None, Some(Item::Subtree { .. })) => self.new.open(store)?,
                (Some(Item::Entry(entry)), Some(sub @ Item::Subtree { .. })) => {
                    // An entry below everything the subtree can hold is in the old tree only.
                    if entry.key() < sub.low() {
                        return Ok(Some(self.take_old()));
                    }
                    self.new.open(store)?;
                }
                (Some(sub @ Item::Subtree { .. }), Some(Item::Entry(entry))) => {
                    if entry.key() < sub.low() {
                        return Ok(Some(self.take_new()));
                    }
                    self.old.open(store)?;
                }
                (Some(Item::Subtree { .. }), Some(Item::Subtree { .. })) if self.summarized_on_top() => {
                    let key = self.old.peek().map(|item| item.low().to_vec()).unwrap_or_default();
                    self.old.stack.pop();
                    self.new.stack.pop();
                    return Ok(Some(Change { key, old: None, new: None }));
                }
                (Some(a @ Item::Subtree { ptr: pa, .. }), Some(b @ Item::Subtree { ptr: pb, .. })) => {
                    match a.low().cmp(b.low()) {
                        std::cmp::Ordering::Less => self.old.open(store)?,
                        std::cmp::Ordering::Greater => self.new.open(store)?,
                        std::cmp::Ordering::Equal => {
                            let (level_a, level_b) = (pa.level, pb.level);
                            if level_a >= level_b {
                                self.old.open(store)?;
                            }
                            if level_b >= level_a {
                                self.new.open(store)?;
                            }
                        }
                    }
                }
            }
        }
    }

    fn take_old(&mut self) -> Change {
        let Some(Item::Entry(entry)) = self.old.stack.pop() else { unreachable!("an entry is on top") };
        Change { key: entry.key().to_vec(), old: Some(entry.value().to_vec()), new: None }
    }

    fn take_new(&mut self) -> Change {
        let Some(Item::Entry(entry)) = self.new.stack.pop() else { unreachable!("an entry is on top") };
        Change { key: entry.key().to_vec(), old: None, new: Some(entry.value().to_vec()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Txg;
    use crate::store::Owner;
    use crate::tree::Tree;
    use std::collections::BTreeMap;

    fn store() -> Store {
        Store::for_tests()
    }

    fn model_diff(a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<Change> {
        let mut keys: Vec<&Vec<u8>> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| Change { key: k.clone(), old: a.get(k).cloned(), new: b.get(k).cloned() })
            .collect()
    }

    #[test]
    fn diff_matches_a_model_and_skips_shared_subtrees() {
        // Goal: the diff of two versions of a tree lists exactly the keys whose values
        // differ, in order, and reads few nodes when little changed.
        // Method: build a three-level tree, commit it, change a few keys (and, in later
        // rounds, many), diff against a BTreeMap model of both versions.
        let mut store = store();
        let mut tree = Tree::open(TreeKind::Files, Owner::Meta, None);
        let mut model = BTreeMap::new();
        for i in 0..40_000u64 {
            let key = (i * 7).to_be_bytes().to_vec();
            let value = vec![(i % 251) as u8; 100];
            tree.insert(&mut store, &key, &value).unwrap();
            model.insert(key, value);
        }
        let mut previous_root = tree.flush(&mut store).unwrap();
        let mut previous = model.clone();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for (round, changes) in [3u64, 50, 5000].into_iter().enumerate() {
            store.txg = Txg(store.txg.0 + 1);
            tree.evict();
            for _ in 0..changes {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = (x % 300_000).to_be_bytes().to_vec();
                if x.is_multiple_of(3) {
                    tree.remove(&mut store, &key).unwrap();
                    model.remove(&key);
                } else {
                    let value = vec![(x % 13) as u8; (x % 200) as usize];
                    tree.insert(&mut store, &key, &value).unwrap();
                    model.insert(key, value);
                }
            }
            let root = tree.flush(&mut store).unwrap();
            let mut diff = TreeDiff::new(TreeKind::Files, previous_root, root);
            let mut got = Vec::new();
            while let Some(c) = diff.next(&mut store).unwrap() {
                got.push(c);
            }
            assert_eq!(got, model_diff(&previous, &model), "round {round}");
            // From a start key (a resumed stream): exactly the changes at or after it.
            let start = (150_000u64 + round as u64).to_be_bytes();
            let mut resumed = TreeDiff::starting_at(TreeKind::Files, previous_root, root, &start);
            let mut tail = Vec::new();
            while let Some(c) = resumed.next(&mut store).unwrap() {
                tail.push(c);
            }
            let expected: Vec<Change> = got.iter().filter(|c| c.key.as_slice() >= &start[..]).cloned().collect();
            assert_eq!(tail, expected, "round {round} from a start key");
            if round == 0 {
                assert!(diff.nodes_read() < 30, "3 changes read {} nodes", diff.nodes_read());
            }
            // Against an empty tree: everything is new.
            let mut full = TreeDiff::new(TreeKind::Files, None, root);
            let mut count = 0;
            while full.next(&mut store).unwrap().is_some() {
                count += 1;
            }
            assert_eq!(count, model.len());
            previous_root = root;
            previous = model.clone();
        }
    }
}
