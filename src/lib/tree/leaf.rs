//! The entries of a leaf in memory: as read, or as changed.
//!
//! A leaf read from the device stays in its encoded bytes, with where each entry lies
//! (`EntrySpan`): one buffer and one table, where an entry of its own each would cost two
//! allocations, and a walk of a large tree was spending about half its time allocating
//! and freeing them (a subset snapshot of 80,000 files, by `perf`). A leaf takes entries of
//! its own the first time it changes.

use crate::error::Result;
use crate::format::node::{EntrySpan, TreeKind, decode_leaf};
use std::sync::Arc;

pub enum Leaf {
    /// As read: the node's bytes (shared with the node cache, store/node_cache.rs) and
    /// where each entry lies in them.
    Packed { bytes: Arc<Vec<u8>>, spans: Vec<EntrySpan> },
    /// Changed since it was read (or made in memory).
    Owned(Vec<(Vec<u8>, Vec<u8>)>),
}

impl Leaf {
    /// A leaf as the device holds it, validated (format/node.rs `decode_leaf`).
    pub fn decode(bytes: Arc<Vec<u8>>, kind: TreeKind) -> Result<Leaf> {
        let spans = decode_leaf(&bytes, kind)?;
        Ok(Leaf::Packed { bytes, spans })
    }

    pub fn len(&self) -> usize {
        match self {
            Leaf::Packed { spans, .. } => spans.len(),
            Leaf::Owned(entries) => entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn key(&self, i: usize) -> &[u8] {
        match self {
            Leaf::Packed { bytes, spans } => spans[i].key(bytes),
            Leaf::Owned(entries) => &entries[i].0,
        }
    }

    pub fn value(&self, i: usize) -> &[u8] {
        match self {
            Leaf::Packed { bytes, spans } => spans[i].value(bytes),
            Leaf::Owned(entries) => &entries[i].1,
        }
    }

    /// Where `key` is (Ok) or would go (Err), as `slice::binary_search`.
    pub fn search(&self, key: &[u8]) -> std::result::Result<usize, usize> {
        match self {
            Leaf::Packed { bytes, spans } => spans.binary_search_by(|span| span.key(bytes).cmp(key)),
            Leaf::Owned(entries) => entries.binary_search_by(|(k, _)| k.as_slice().cmp(key)),
        }
    }

    /// How many entries have keys below `bound`.
    pub fn count_below(&self, bound: &[u8]) -> usize {
        match self.search(bound) {
            Ok(i) | Err(i) => i,
        }
    }

    /// The entries, of their own from now on: for a change.
    pub fn owned(&mut self) -> &mut Vec<(Vec<u8>, Vec<u8>)> {
        if let Leaf::Packed { .. } = self {
            let entries = (0..self.len()).map(|i| (self.key(i).to_vec(), self.value(i).to_vec())).collect();
            *self = Leaf::Owned(entries);
        }
        match self {
            Leaf::Owned(entries) => entries,
            Leaf::Packed { .. } => unreachable!("made owned above"),
        }
    }

    pub fn into_owned(mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        std::mem::take(self.owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::node::encode_leaf;

    #[test]
    fn a_packed_leaf_reads_as_its_entries_and_changes_as_them() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            (0..50u32).map(|i| ((i * 2).to_be_bytes().to_vec(), vec![i as u8; (i % 7) as usize])).collect();
        let mut leaf = Leaf::decode(Arc::new(encode_leaf(TreeKind::Files, &entries)), TreeKind::Files).unwrap();
        assert!(matches!(leaf, Leaf::Packed { .. }));
        assert_eq!(leaf.len(), 50);
        for (i, (k, v)) in entries.iter().enumerate() {
            assert_eq!((leaf.key(i), leaf.value(i)), (k.as_slice(), v.as_slice()));
            assert_eq!(leaf.search(k), Ok(i));
            assert_eq!(leaf.search(&(i as u32 * 2 + 1).to_be_bytes()), Err(i + 1));
        }
        assert_eq!(leaf.count_below(&10u32.to_be_bytes()), 5);
        leaf.owned().remove(0);
        assert!(matches!(leaf, Leaf::Owned(_)));
        assert_eq!(leaf.into_owned(), entries[1..]);
        // A damaged leaf is refused as the full decode refuses it.
        let mut bad = encode_leaf(TreeKind::Files, &entries);
        bad[0] ^= 1;
        assert!(Leaf::decode(Arc::new(bad), TreeKind::Files).is_err());
    }
}
