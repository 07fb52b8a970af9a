//! Tree nodes: the byte layout of one node of a copy-on-write B+tree.
//!
//! Keys and values are byte strings compared lexicographically. A leaf holds
//! (key, value) pairs; an internal node holds (first key of the child, child pointer).
//! A node's checksum is in its parent's pointer (or the pool root for a root node).

use crate::block::BlockPtr;
use crate::error::{Error, Result};
use crate::format::codec::{Reader, Writer};

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
}

impl TreeKind {
    pub fn from_u8(v: u8) -> Option<TreeKind> {
        Some(match v {
            1 => TreeKind::Files,
            2 => TreeKind::Trees,
            3 => TreeKind::Snapshots,
            4 => TreeKind::History,
            5 => TreeKind::Dead,
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
        let mut w = Writer::new();
        w.raw(&NODE_MAGIC);
        w.u8(self.level);
        w.u8(self.kind as u8);
        w.u16(0);
        let count = match &self.body {
            NodeBody::Leaf(e) => e.len(),
            NodeBody::Internal(e) => e.len(),
        };
        w.u32(count as u32);
        w.zeros(NODE_HEADER_BYTES - w.len());
        match &self.body {
            NodeBody::Leaf(entries) => {
                assert_eq!(self.level, 0);
                for (k, v) in entries {
                    assert!(k.len() <= KEY_BYTES_MAX && v.len() <= VALUE_BYTES_MAX);
                    w.bytes16(k);
                    w.bytes16(v);
                }
            }
            NodeBody::Internal(entries) => {
                assert!(self.level > 0);
                assert!(!entries.is_empty());
                for (k, p) in entries {
                    w.bytes16(k);
                    BlockPtr::encode(Some(p), &mut w);
                }
            }
        }
        assert!(w.len() <= NODE_BYTES_MAX, "node of {} bytes", w.len());
        w.bytes
    }

    /// Decodes and validates a node: magic, kind, level, sorted keys, sizes.
    pub fn decode(bytes: &[u8], expect_kind: TreeKind, expect_level: u8) -> Result<EncodedNode> {
        let mut r = Reader::new(bytes, "tree node");
        if r.array::<4>()? != NODE_MAGIC {
            return Err(Error::corrupt("tree node has a bad magic"));
        }
        let level = r.u8()?;
        let kind_byte = r.u8()?;
        r.zeros(2)?;
        let count = r.u32()? as usize;
        r.zeros(NODE_HEADER_BYTES - r.offset())?;
        let kind = TreeKind::from_u8(kind_byte)
            .ok_or_else(|| Error::corrupt(format!("tree node of unknown kind {kind_byte}")))?;
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
        let body = if level == 0 {
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let k = r.bytes16()?.to_vec();
                let v = r.bytes16()?.to_vec();
                entries.push((k, v));
            }
            check_sorted(entries.iter().map(|(k, _)| k))?;
            NodeBody::Leaf(entries)
        } else {
            if count == 0 {
                return Err(Error::corrupt("internal tree node with no children"));
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let k = r.bytes16()?.to_vec();
                let p =
                    BlockPtr::decode(&mut r)?.ok_or_else(|| Error::corrupt("internal tree node with a null child"))?;
                if p.level + 1 != level {
                    return Err(Error::corrupt(format!("level-{level} node points to a level-{} child", p.level)));
                }
                entries.push((k, p));
            }
            check_sorted(entries.iter().map(|(k, _)| k))?;
            NodeBody::Internal(entries)
        };
        if r.remaining() != 0 {
            return Err(Error::corrupt(format!("tree node has {} trailing bytes", r.remaining())));
        }
        Ok(EncodedNode { kind, level, body })
    }
}

fn check_sorted<'a>(keys: impl Iterator<Item = &'a Vec<u8>>) -> Result<()> {
    let mut previous: Option<&Vec<u8>> = None;
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
