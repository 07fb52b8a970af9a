//! The parts of a tree born after a txg, as key ranges: what an incremental stream from
//! a bookmark sends, having no base tree to compare with.
//!
//! Every node covers a range of keys: the root all of them, a child the range between
//! its separator and the next one's. A node is rewritten whenever its range changes
//! (btree.rs, `dirty_edge`), so a node born at or before txg F holds exactly the keys
//! that its range held at F. The keys of a tree at F therefore differ from today's only
//! inside the ranges of the leaves born after F: within each of those, today's keys are
//! the leaf's, and outside them every key is as it was.

use crate::block::BlockPtr;
use crate::error::{Error, Result};
use crate::format::node::{EncodedNode, NodeBody, TreeKind};
use crate::store::Store;

/// What the walk finds, in key order.
pub enum Found<'a> {
    /// The keys in [first, end) (end None: every key from first on) are now exactly the
    /// `Item`s that follow, until the next range.
    Range {
        first: &'a [u8],
        end: Option<&'a [u8]>,
    },
    Item {
        key: &'a [u8],
        value: &'a [u8],
    },
}

/// Calls `visit` with the ranges of the tree at `root` born after `floor`, and their
/// items, from key `start` on, until it returns false. Returns how many nodes it read.
pub fn ranges_born_after(
    store: &mut Store,
    kind: TreeKind,
    root: Option<BlockPtr>,
    floor: u64,
    start: &[u8],
    visit: &mut dyn FnMut(Found) -> Result<bool>,
) -> Result<u64> {
    let Some(root) = root else {
        visit(Found::Range { first: start, end: None })?;
        return Ok(0);
    };
    let mut walk = Walk { store, kind, floor, start, visit, nodes: 0 };
    walk.node(&root, &[], None)?;
    Ok(walk.nodes)
}

struct Walk<'w> {
    store: &'w mut Store,
    kind: TreeKind,
    floor: u64,
    start: &'w [u8],
    visit: &'w mut dyn FnMut(Found) -> Result<bool>,
    nodes: u64,
}

impl Walk<'_> {
    /// False once `visit` said to stop.
    fn node(&mut self, ptr: &BlockPtr, lo: &[u8], hi: Option<&[u8]>) -> Result<bool> {
        if ptr.birth.0 <= self.floor || hi.is_some_and(|hi| hi <= self.start) {
            return Ok(true);
        }
        let bytes = self.store.read_block(ptr)?;
        self.nodes += 1;
        let node = EncodedNode::decode(&bytes, self.kind, ptr.level)
            .map_err(|e| Error::corrupt(format!("{e} (block {})", ptr.addr.0)))?;
        match &node.body {
            NodeBody::Leaf(entries) => {
                let first = lo.max(self.start);
                if !(self.visit)(Found::Range { first, end: hi })? {
                    return Ok(false);
                }
                for (key, value) in entries.iter().filter(|(k, _)| k.as_slice() >= first) {
                    if hi.is_some_and(|hi| key.as_slice() >= hi) || key.as_slice() < lo {
                        return Err(Error::corrupt(format!("block {}: a key outside its node's range", ptr.addr.0)));
                    }
                    (self.visit)(Found::Item { key, value })?;
                }
            }
            NodeBody::Internal(children) => {
                for (i, (separator, child)) in children.iter().enumerate() {
                    let child_lo = if i == 0 { lo } else { separator.as_slice() };
                    let child_hi = children.get(i + 1).map_or(hi, |(next, _)| Some(next.as_slice()));
                    if !self.node(child, child_lo, child_hi)? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Txg;
    use crate::format::node::{NODE_BYTES_MAX, leaf_entry_bytes};
    use crate::store::Owner;
    use crate::tree::Tree;
    use std::collections::BTreeMap;

    /// The keys at `floor` rebuilt from today's tree and its ranges born after `floor`.
    fn rebuilt(
        store: &mut Store,
        root: Option<BlockPtr>,
        floor: u64,
        old: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut out = old.clone();
        let mut pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut items = Vec::new();
        ranges_born_after(store, TreeKind::Dead, root, floor, &[], &mut |found| {
            match found {
                Found::Range { first, end } => pending.push((first.to_vec(), end.map(<[u8]>::to_vec))),
                Found::Item { key, value } => items.push((key.to_vec(), value.to_vec())),
            }
            Ok(true)
        })
        .unwrap();
        for (first, end) in pending {
            out.retain(|k, _| k < &first || end.as_ref().is_some_and(|e| k >= e));
        }
        out.extend(items);
        out
    }

    #[test]
    fn the_ranges_born_after_a_txg_and_the_old_keys_outside_them_make_todays_tree() {
        // Goal: whatever inserts and removes happen after txg F (leaves emptied and
        // dropped, merges, the root shrinking), the keys at F outside the ranges born
        // after F, plus the items inside them, are exactly today's keys. Method: random
        // runs over a BTreeMap model; fails if a node's range changed without a rewrite
        // (without `dirty_edge` it does: a dropped leaf's keys stay).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300u64 {
            let mut store = Store::for_tests();
            let mut tree = Tree::open(TreeKind::Dead, Owner::Meta, None);
            let mut model = BTreeMap::new();
            // Keys in random order leave leaves well filled, so that a leaf emptied by
            // removals is dropped rather than merged with a neighbour.
            let span = 500 + rand() % 2000;
            let mut keys: Vec<u64> = (0..span).collect();
            for i in (1..keys.len()).rev() {
                keys.swap(i, (rand() % (i as u64 + 1)) as usize);
            }
            for k in keys {
                let value = vec![(k % 251) as u8; 20 + (rand() % 40) as usize];
                tree.insert(&mut store, &k.to_be_bytes(), &value).unwrap();
                model.insert(k.to_be_bytes().to_vec(), value);
            }
            tree.flush(&mut store).unwrap();
            let base = model.clone();
            let floor = store.txg.0;
            // Whole leaves whose neighbours are too full to merge with are emptied and
            // dropped: their neighbours' ranges grow.
            let mut leaves = Vec::new();
            let root = tree.flush(&mut store).unwrap().expect("a root");
            crate::tree::walk_nodes(&mut store, &root, TreeKind::Dead, &mut |_, node| {
                if let NodeBody::Leaf(entries) = &node.body {
                    let bytes: usize = entries.iter().map(|(k, v)| leaf_entry_bytes(k, v)).sum();
                    leaves.push((entries.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), bytes));
                }
                Ok(crate::tree::WalkStep::Descend)
            })
            .unwrap();
            let full = |bytes: usize| bytes > NODE_BYTES_MAX * 3 / 4;
            for step in 0..1 + rand() % 3 {
                store.txg = Txg(floor + 1 + step);
                for j in 1..leaves.len().saturating_sub(1) {
                    if full(leaves[j - 1].1) && full(leaves[j + 1].1) && rand() % 3 == 0 {
                        for key in std::mem::take(&mut leaves[j].0) {
                            tree.remove(&mut store, &key).unwrap();
                            model.remove(&key);
                        }
                    }
                }
                let at = rand() % span;
                for k in at..at + 1 + rand() % 100 {
                    tree.remove(&mut store, &k.to_be_bytes()).unwrap();
                    model.remove(k.to_be_bytes().as_slice());
                }
                if rand() % 3 == 0 {
                    let key = (rand() % span).to_be_bytes().to_vec();
                    tree.insert(&mut store, &key, b"new").unwrap();
                    model.insert(key, b"new".to_vec());
                }
                tree.flush(&mut store).unwrap();
            }
            let root = tree.flush(&mut store).unwrap();
            assert_eq!(rebuilt(&mut store, root, floor, &base), model, "round {round}");
            // Nothing changed since today: no range.
            let today = store.txg.0;
            assert_eq!(rebuilt(&mut store, root, today, &model), model);
        }
    }
}
