//! Tree nodes: the byte layout of one node of a copy-on-write B+tree.
//!
//! Keys and values are byte strings compared lexicographically. A leaf holds
//! (key, value) pairs; an internal node holds (first key of the child, child pointer).
//! A node's checksum is in its parent's pointer (or the pool root for a root node).

use crate::block::BlockPtr;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const NODE_MAGIC: [u8; 4] = *b"SNND";
pub const NODE_HEADER_BYTES: usize = 24;
/// A node is split when its encoding would exceed this many bytes.
pub const NODE_BYTES_MAX: usize = 16384;
pub const KEY_BYTES_MAX: usize = 300;
pub const VALUE_BYTES_MAX: usize = 4800;
/// Deepest tree we accept: far more than 2^64 keys need.
pub const TREE_LEVELS_MAX: u8 = 16;
const _: () = assert!(NODE_HEADER_BYTES + 2 * (4 + KEY_BYTES_MAX + VALUE_BYTES_MAX) <= NODE_BYTES_MAX);

/// What a tree is for; written into each node so a node read from the wrong tree is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeKind {
    Files = 1,
    Trees = 2,
    Snapshots = 3,
    History = 4,
    Dead = 5,
    SnapshotIndex = 6,
    Bookmarks = 7,
}

impl TreeKind {
    pub fn from_u8(v: u8) -> Option<TreeKind> {
        Some(match v {
            1 => TreeKind::Files,
            2 => TreeKind::Trees,
            3 => TreeKind::Snapshots,
            4 => TreeKind::History,
            5 => TreeKind::Dead,
            6 => TreeKind::SnapshotIndex,
            7 => TreeKind::Bookmarks,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            TreeKind::Files => "files",
            TreeKind::Trees => "trees",
            TreeKind::Snapshots => "snapshots",
            TreeKind::History => "history",
            TreeKind::Dead => "dead",
            TreeKind::SnapshotIndex => "snapshot index",
            TreeKind::Bookmarks => "bookmarks",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeBody {
    Leaf(Vec<(Vec<u8>, Vec<u8>)>),
    Internal(Vec<(Vec<u8>, BlockPtr)>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedNode {
    pub kind: TreeKind,
    pub level: u8,
    pub body: NodeBody,
}

pub fn leaf_entry_bytes(key: &[u8], value: &[u8]) -> usize {
    4 + key.len() + value.len()
}

pub fn internal_entry_bytes(key: &[u8]) -> usize {
    2 + key.len() + crate::block::BLOCK_PTR_BYTES
}

impl EncodedNode {
    pub fn encode(&self) -> Vec<u8> {
        match &self.body {
            NodeBody::Leaf(entries) => encode_leaf(self.kind, entries),
            NodeBody::Internal(entries) => encode_internal(self.kind, self.level, entries),
        }
    }

    /// Decodes and validates a node: magic, kind, level, sorted keys, sizes.
    pub fn decode(bytes: &[u8], expect_kind: TreeKind, expect_level: u8) -> Result<EncodedNode> {
        let (mut r, count) = decode_header(bytes, expect_kind, expect_level)?;
        let body = if expect_level == 0 {
            let spans = decode_leaf_entries(&mut r, bytes, count)?;
            NodeBody::Leaf(spans.iter().map(|span| (span.key(bytes).to_vec(), span.value(bytes).to_vec())).collect())
        } else {
            if count == 0 {
                return Err(Error::corrupt("internal tree node with no children"));
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let k = r.bytes16()?.to_vec();
                let p =
                    BlockPtr::decode(&mut r)?.ok_or_else(|| Error::corrupt("internal tree node with a null child"))?;
                // Not `p.level + 1`: a child level of 255 would overflow.
                if p.level != expect_level - 1 {
                    return Err(Error::corrupt(format!(
                        "level-{expect_level} node points to a level-{} child",
                        p.level
                    )));
                }
                entries.push((k, p));
            }
            check_sorted(entries.iter().map(|(k, _)| k.as_slice()))?;
            check_consumed(&r)?;
            NodeBody::Internal(entries)
        };
        Ok(EncodedNode { kind: expect_kind, level: expect_level, body })
    }
}

/// Where one leaf entry's key and value lie in the leaf's bytes: a walk that compares
/// two trees' leaves copies only the entries that differ.
#[derive(Clone, Copy, Debug)]
pub struct EntrySpan {
    key_start: u32,
    key_len: u16,
    value_start: u32,
    value_len: u16,
}

impl EntrySpan {
    pub fn key<'a>(&self, leaf: &'a [u8]) -> &'a [u8] {
        &leaf[self.key_start as usize..][..self.key_len as usize]
    }
    pub fn value<'a>(&self, leaf: &'a [u8]) -> &'a [u8] {
        &leaf[self.value_start as usize..][..self.value_len as usize]
    }
}

/// Validates a leaf like `EncodedNode::decode` and returns where its entries lie.
pub fn decode_leaf(bytes: &[u8], expect_kind: TreeKind) -> Result<Vec<EntrySpan>> {
    let (mut r, count) = decode_header(bytes, expect_kind, 0)?;
    decode_leaf_entries(&mut r, bytes, count)
}

fn decode_header<'a>(bytes: &'a [u8], expect_kind: TreeKind, expect_level: u8) -> Result<(Reader<'a>, usize)> {
    // The encoder refuses a larger node: one accepted here would panic when next written.
    if bytes.len() > NODE_BYTES_MAX {
        return Err(Error::corrupt(format!("tree node of {} bytes", bytes.len())));
    }
    let mut r = Reader::new(bytes, "tree node");
    if r.array::<4>()? != NODE_MAGIC {
        return Err(Error::corrupt("tree node has a bad magic"));
    }
    let level = r.u8()?;
    let kind_byte = r.u8()?;
    r.zeros(2)?;
    let count = r.u32()? as usize;
    r.zeros(NODE_HEADER_BYTES - r.offset())?;
    let kind =
        TreeKind::from_u8(kind_byte).ok_or_else(|| Error::corrupt(format!("tree node of unknown kind {kind_byte}")))?;
    if kind != expect_kind || level != expect_level {
        return Err(Error::corrupt(format!(
            "tree node is a level-{level} {} node where a level-{expect_level} {} node belongs",
            kind.name(),
            expect_kind.name()
        )));
    }
    if level > TREE_LEVELS_MAX || count > NODE_BYTES_MAX / 4 {
        return Err(Error::corrupt(format!("tree node with level {level} and {count} entries")));
    }
    Ok((r, count))
}

fn decode_leaf_entries(r: &mut Reader, bytes: &[u8], count: usize) -> Result<Vec<EntrySpan>> {
    let mut spans = Vec::with_capacity(count);
    for _ in 0..count {
        let key_start = r.offset() as u32 + 2;
        let key_len = r.bytes16()?.len() as u16;
        let value_start = r.offset() as u32 + 2;
        let value_len = r.bytes16()?.len() as u16;
        if value_len as usize > VALUE_BYTES_MAX {
            return Err(Error::corrupt(format!("tree node value of {value_len} bytes")));
        }
        spans.push(EntrySpan { key_start, key_len, value_start, value_len });
    }
    check_sorted(spans.iter().map(|span| span.key(bytes)))?;
    check_consumed(r)?;
    Ok(spans)
}

fn check_consumed(r: &Reader) -> Result<()> {
    if r.remaining() != 0 {
        return Err(Error::corrupt(format!("tree node has {} trailing bytes", r.remaining())));
    }
    Ok(())
}

fn header(kind: TreeKind, level: u8, count: usize) -> Writer {
    let mut w = Writer::new();
    w.raw(&NODE_MAGIC);
    w.u8(level);
    w.u8(kind as u8);
    w.u16(0);
    w.u32(count as u32);
    w.zeros(NODE_HEADER_BYTES - w.len());
    w
}

/// A leaf's bytes, from borrowed entries (a tree flushes its nodes without copying them).
pub fn encode_leaf(kind: TreeKind, entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut w = header(kind, 0, entries.len());
    for (k, v) in entries {
        assert!(k.len() <= KEY_BYTES_MAX && v.len() <= VALUE_BYTES_MAX);
        w.bytes16(k);
        w.bytes16(v);
    }
    assert!(w.len() <= NODE_BYTES_MAX, "node of {} bytes", w.len());
    w.bytes
}

pub fn encode_internal(kind: TreeKind, level: u8, entries: &[(Vec<u8>, BlockPtr)]) -> Vec<u8> {
    assert!(level > 0);
    assert!(!entries.is_empty());
    let mut w = header(kind, level, entries.len());
    for (k, p) in entries {
        w.bytes16(k);
        BlockPtr::encode(Some(p), &mut w);
    }
    assert!(w.len() <= NODE_BYTES_MAX, "node of {} bytes", w.len());
    w.bytes
}

fn check_sorted<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Result<()> {
    let mut previous: Option<&[u8]> = None;
    for k in keys {
        if k.len() > KEY_BYTES_MAX {
            return Err(Error::corrupt(format!("tree node key of {} bytes", k.len())));
        }
        if let Some(p) = previous {
            if p >= k {
                return Err(Error::corrupt("tree node keys are not in ascending order"));
            }
        }
        previous = Some(k);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_round_trip() {
        let node = EncodedNode {
            kind: TreeKind::Files,
            level: 0,
            body: NodeBody::Leaf(vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![])]),
        };
        assert_eq!(EncodedNode::decode(&node.encode(), TreeKind::Files, 0).unwrap(), node);
        assert!(EncodedNode::decode(&node.encode(), TreeKind::Dead, 0).is_err());
    }

    #[test]
    fn unsorted_leaf_is_corrupt() {
        let node = EncodedNode {
            kind: TreeKind::Files,
            level: 0,
            body: NodeBody::Leaf(vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])]),
        };
        assert!(EncodedNode::decode(&node.encode(), TreeKind::Files, 0).is_err());
    }
}
