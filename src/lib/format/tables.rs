//! Keys and values of the pool's metadata tables. Keys are big-endian so that byte
//! order is numeric order.

use crate::block::{BlockPtr, Txg};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const TREE_NAME_BYTES_MAX: usize = 128;
pub const SNAPSHOT_NAME_BYTES_MAX: usize = 128;

pub fn be64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn read_be64(bytes: &[u8], what: &str) -> Result<u64> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::corrupt(format!("{what} key is too short")))?;
    Ok(u64::from_be_bytes(array))
}

/// A named file tree: the live tree, and later writable clones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub id: u64,
    pub name: String,
    pub root: Option<BlockPtr>,
    pub created_txg: Txg,
}

impl TreeEntry {
    pub fn key(id: u64) -> Vec<u8> {
        be64(id).to_vec()
    }
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes16(self.name.as_bytes());
        BlockPtr::encode(self.root.as_ref(), &mut w);
        w.u64(self.created_txg.0);
        w.zeros(16); // origin snapshot of a clone: later versions
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<TreeEntry> {
        let id = read_be64(key, "trees table")?;
        let mut r = Reader::new(value, "trees table entry");
        let name = decode_name(r.bytes16()?, TREE_NAME_BYTES_MAX, "tree")?;
        let root = BlockPtr::decode(&mut r)?;
        let created_txg = Txg(r.u64()?);
        r.zeros(16)?;
        no_trailing(&r, key, 8)?;
        Ok(TreeEntry { id, name, root, created_txg })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub tree: u64,
    pub name: String,
    /// Unique across pools: a received snapshot keeps its sender's guid.
    pub guid: [u8; 16],
    /// The commit whose state of the tree this snapshot holds.
    pub txg: Txg,
    pub time_ns: u64,
    pub root: Option<BlockPtr>,
}

impl SnapshotEntry {
    pub fn key(tree: u64, name: &str) -> Vec<u8> {
        let mut k = be64(tree).to_vec();
        k.extend_from_slice(name.as_bytes());
        k
    }
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.guid);
        w.u64(self.txg.0);
        w.u64(self.time_ns);
        BlockPtr::encode(self.root.as_ref(), &mut w);
        w.zeros(16); // holds and flags: later versions
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<SnapshotEntry> {
        let tree = read_be64(key, "snapshot table")?;
        if key.len() <= 8 {
            return Err(Error::corrupt("snapshot table key without a name"));
        }
        let name = decode_name(&key[8..], SNAPSHOT_NAME_BYTES_MAX, "snapshot")?;
        let mut r = Reader::new(value, "snapshot entry");
        let guid = r.array::<16>()?;
        let txg = Txg(r.u64()?);
        let time_ns = r.u64()?;
        let root = BlockPtr::decode(&mut r)?;
        r.zeros(16)?;
        no_trailing(&r, key, key.len())?;
        Ok(SnapshotEntry { tree, name, guid, txg, time_ns, root })
    }
}

/// One retained commit: when it happened and the root of every tree at that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub txg: Txg,
    pub time_ns: u64,
    pub roots: Vec<(u64, Option<BlockPtr>)>,
}

impl HistoryEntry {
    pub fn key(txg: Txg) -> Vec<u8> {
        be64(txg.0).to_vec()
    }
    pub fn encode_value(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.time_ns);
        w.u16(self.roots.len() as u16);
        for (tree, root) in &self.roots {
            w.u64(*tree);
            BlockPtr::encode(root.as_ref(), &mut w);
        }
        w.bytes
    }
    pub fn decode(key: &[u8], value: &[u8]) -> Result<HistoryEntry> {
        let txg = Txg(read_be64(key, "history")?);
        let mut r = Reader::new(value, "history entry");
        let time_ns = r.u64()?;
        let count = r.u16()?;
        let mut roots = Vec::new();
        for _ in 0..count {
            let tree = r.u64()?;
            roots.push((tree, BlockPtr::decode(&mut r)?));
        }
        if r.remaining() != 0 {
            return Err(Error::corrupt("history entry has trailing bytes"));
        }
        Ok(HistoryEntry { txg, time_ns, roots })
    }
}

/// Key of the dead index: (tree, death txg, address). The value is the killed pointer.
pub fn dead_key(tree: u64, death: Txg, addr: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&be64(tree));
    k.extend_from_slice(&be64(death.0));
    k.extend_from_slice(&be64(addr));
    k
}

pub fn decode_dead(key: &[u8], value: &[u8]) -> Result<(u64, Txg, BlockPtr)> {
    if key.len() != 24 {
        return Err(Error::corrupt("dead index key is not 24 bytes"));
    }
    let tree = read_be64(key, "dead index")?;
    let death = Txg(read_be64(&key[8..], "dead index")?);
    let mut r = Reader::new(value, "dead index entry");
    let ptr = BlockPtr::decode(&mut r)?.ok_or_else(|| Error::corrupt("dead index entry with a null pointer"))?;
    no_trailing(&r, key, 24)?;
    if ptr.birth >= death {
        return Err(Error::corrupt(format!(
            "dead index entry born in txg {} and killed in txg {}",
            ptr.birth.0, death.0
        )));
    }
    Ok((tree, death, ptr))
}

pub fn encode_ptr(ptr: &BlockPtr) -> Vec<u8> {
    let mut w = Writer::new();
    BlockPtr::encode(Some(ptr), &mut w);
    w.bytes
}

/// Values end where their fields end and keys have their fixed length: anything else is
/// damage or a newer writer.
fn no_trailing(r: &Reader, key: &[u8], key_bytes: usize) -> Result<()> {
    if r.remaining() != 0 {
        return Err(Error::corrupt(format!("{} has {} trailing bytes", r.what(), r.remaining())));
    }
    if key.len() != key_bytes {
        return Err(Error::corrupt(format!("{} key of {} bytes", r.what(), key.len())));
    }
    Ok(())
}

fn decode_name(bytes: &[u8], max: usize, what: &str) -> Result<String> {
    if bytes.is_empty() || bytes.len() > max {
        return Err(Error::corrupt(format!("{what} name of {} bytes", bytes.len())));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::corrupt(format!("{what} name is not UTF-8")))
}
