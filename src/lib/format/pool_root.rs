//! The pool root: the one block a commit record points to. It names every other
//! structure of the pool as of that commit.

use crate::block::{BlockPtr, Txg};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const POOL_ROOT_MAGIC: [u8; 4] = *b"SNPR";
pub const POOL_ROOT_BYTES: usize = 1024;
/// Version 2 adds the receive-state pointer. A root without one is still written as
/// version 1, so that a pool is readable by older binaries except while a partial
/// receive is saved on it.
pub const POOL_ROOT_VERSION_MAX: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Commits younger than this stay readable (the retained history). 0 keeps only the
    /// newest commit.
    pub history_seconds: u64,
    /// The history gives way when free space falls below this share of the device.
    pub history_reserve_percent: u8,
    /// zstd level for new blocks; 0 stores blocks uncompressed.
    pub compression_level: u8,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig { history_seconds: 24 * 3600, history_reserve_percent: 10, compression_level: 3 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRoot {
    pub txg: Txg,
    pub time_ns: u64,
    pub pool_guid: [u8; 16],
    /// Table of named file trees (the live tree and, later, clones).
    pub trees: Option<BlockPtr>,
    pub snapshots: Option<BlockPtr>,
    pub history: Option<BlockPtr>,
    /// Blocks killed in a file tree but still visible in a snapshot or retained commit.
    pub dead: Option<BlockPtr>,
    /// Newest block of the space log chain.
    pub space_log: Option<BlockPtr>,
    pub space_log_blocks: u64,
    /// Blocks at the start of the chain that hold the condensed allocation list.
    pub space_base_blocks: u64,
    pub next_tree_id: u64,
    /// Bytes of blocks in the dead index (held only by snapshots or history).
    pub dead_bytes: u64,
    pub config: PoolConfig,
    /// The saved state of an interrupted receive (a blob block), if any. Version 2.
    pub receive: Option<BlockPtr>,
}

impl PoolRoot {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&POOL_ROOT_MAGIC);
        w.u32(if self.receive.is_some() { 2 } else { 1 });
        w.u64(self.txg.0);
        w.u64(self.time_ns);
        w.raw(&self.pool_guid);
        for ptr in [&self.trees, &self.snapshots, &self.history, &self.dead, &self.space_log] {
            BlockPtr::encode(ptr.as_ref(), &mut w);
        }
        w.u64(self.space_log_blocks);
        w.u64(self.space_base_blocks);
        w.u64(self.next_tree_id);
        w.u64(self.dead_bytes);
        w.u64(self.config.history_seconds);
        w.u8(self.config.history_reserve_percent);
        w.u8(self.config.compression_level);
        BlockPtr::encode(self.receive.as_ref(), &mut w);
        w.zeros(POOL_ROOT_BYTES - w.len());
        w.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<PoolRoot> {
        if bytes.len() != POOL_ROOT_BYTES {
            return Err(Error::corrupt(format!("pool root of {} bytes", bytes.len())));
        }
        let mut r = Reader::new(bytes, "pool root");
        if r.array::<4>()? != POOL_ROOT_MAGIC {
            return Err(Error::corrupt("pool root has a bad magic"));
        }
        let version = r.u32()?;
        if version == 0 {
            return Err(Error::corrupt("pool root of format version 0"));
        }
        if version > POOL_ROOT_VERSION_MAX {
            return Err(Error::Unsupported { what: format!("pool root of format version {version}") });
        }
        let txg = Txg(r.u64()?);
        let time_ns = r.u64()?;
        let pool_guid = r.array::<16>()?;
        let trees = BlockPtr::decode(&mut r)?;
        let snapshots = BlockPtr::decode(&mut r)?;
        let history = BlockPtr::decode(&mut r)?;
        let dead = BlockPtr::decode(&mut r)?;
        let space_log = BlockPtr::decode(&mut r)?;
        let space_log_blocks = r.u64()?;
        let space_base_blocks = r.u64()?;
        let next_tree_id = r.u64()?;
        let dead_bytes = r.u64()?;
        let history_seconds = r.u64()?;
        let history_reserve_percent = r.u8()?;
        let compression_level = r.u8()?;
        let receive = BlockPtr::decode(&mut r)?;
        if receive.is_some() && version < 2 {
            return Err(Error::corrupt("pool root of version 1 names a receive state"));
        }
        r.zeros(POOL_ROOT_BYTES - r.offset())?;
        if history_reserve_percent > 100 || compression_level > 22 {
            return Err(Error::corrupt("pool root configuration out of range"));
        }
        Ok(PoolRoot {
            txg,
            time_ns,
            pool_guid,
            trees,
            snapshots,
            history,
            dead,
            space_log,
            space_log_blocks,
            space_base_blocks,
            next_tree_id,
            dead_bytes,
            config: PoolConfig { history_seconds, history_reserve_percent, compression_level },
            receive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_root_round_trip() {
        let root = PoolRoot {
            txg: Txg(5),
            time_ns: 7,
            pool_guid: [4; 16],
            trees: None,
            snapshots: None,
            history: None,
            dead: None,
            space_log: None,
            space_log_blocks: 3,
            space_base_blocks: 1,
            next_tree_id: 2,
            dead_bytes: 4096,
            config: PoolConfig::default(),
            receive: None,
        };
        assert_eq!(PoolRoot::decode(&root.encode()).unwrap(), root);
    }
}
