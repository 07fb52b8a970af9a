//! The space log: a chain of blocks, newest first, each pointing to the one before.
//!
//! Replaying the chain from its oldest block gives the set of explicitly allocated blocks.
//! Each commit appends one or more blocks with its allocations and frees; when the chain
//! grows long, a commit rewrites it as a fresh "base" that lists every allocated extent.

use crate::block::{BlockPtr, Txg};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const SPACE_LOG_MAGIC: [u8; 4] = *b"SNSL";
pub const SPACE_LOG_HEADER_BYTES: usize = 96;
pub const SPACE_LOG_ENTRY_BYTES: usize = 16;
pub const SPACE_LOG_ENTRIES_MAX: usize = 4090;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceOp {
    Alloc = 1,
    Free = 2,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceLogBlock {
    pub txg: Txg,
    pub prev: Option<BlockPtr>,
    pub entries: Vec<(u64, u64, SpaceOp)>,
}

impl SpaceLogBlock {
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.entries.len() <= SPACE_LOG_ENTRIES_MAX);
        let mut w = Writer::new();
        w.raw(&SPACE_LOG_MAGIC);
        w.u32(0);
        w.u64(self.txg.0);
        BlockPtr::encode(self.prev.as_ref(), &mut w);
        w.u32(self.entries.len() as u32);
        w.u32(0);
        assert_eq!(w.len(), SPACE_LOG_HEADER_BYTES);
        for &(start, len, op) in &self.entries {
            assert!(len > 0 && len <= u32::MAX as u64);
            w.u64(start);
            w.u32(len as u32);
            w.u8(op as u8);
            w.zeros(3);
        }
        w.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<SpaceLogBlock> {
        let mut r = Reader::new(bytes, "space log block");
        if r.array::<4>()? != SPACE_LOG_MAGIC {
            return Err(Error::corrupt("space log block has a bad magic"));
        }
        r.zeros(4)?;
        let txg = Txg(r.u64()?);
        let prev = BlockPtr::decode(&mut r)?;
        let count = r.u32()? as usize;
        r.zeros(4)?;
        if count > SPACE_LOG_ENTRIES_MAX || r.remaining() != count * SPACE_LOG_ENTRY_BYTES {
            return Err(Error::corrupt(format!("space log block claims {count} entries")));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let start = r.u64()?;
            let len = r.u32()? as u64;
            let op = match r.u8()? {
                1 => SpaceOp::Alloc,
                2 => SpaceOp::Free,
                other => return Err(Error::corrupt(format!("space log entry with op {other}"))),
            };
            r.zeros(3)?;
            if len == 0 {
                return Err(Error::corrupt("space log entry of length 0"));
            }
            entries.push((start, len, op));
        }
        Ok(SpaceLogBlock { txg, prev, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_log_round_trip() {
        let block =
            SpaceLogBlock { txg: Txg(3), prev: None, entries: vec![(100, 4, SpaceOp::Alloc), (200, 1, SpaceOp::Free)] };
        assert_eq!(SpaceLogBlock::decode(&block.encode()).unwrap(), block);
    }
}
