//! The pool root: the one block a commit record points to. It names every other
//! structure of the pool as of that commit.

use crate::block::{BlockPtr, Txg};
use crate::codec::{Reader, Writer};
use crate::compress::{Codec, ZSTD_LEVEL_MAX};
use crate::error::{Error, Result};

pub const POOL_ROOT_MAGIC: [u8; 4] = *b"SNPR";
pub const POOL_ROOT_BYTES: usize = 1024;
/// Version 2 adds the receive-state pointer. A root without one is still written as
/// version 1, so that a pool is readable by older binaries except while a partial
/// receive is saved on it. Each later version is written only when its field is in use:
/// 3 a snapshot index, 4 a bookmarks table, 5 a cap on the history's space.
pub const POOL_ROOT_VERSION_MAX: u32 = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Commits younger than this stay readable (the retained history). 0 keeps only the
    /// newest commit.
    pub history_seconds: u64,
    /// The history gives way when free space falls below this share of the device.
    pub history_reserve_percent: u8,
    /// How new file data is compressed. On disk: the zstd level byte (0 for none) and,
    /// after the receive pointer, the algorithm byte (0: zstd or none by the level, 1:
    /// lz4, with level 0; only on pools with the lz4 feature).
    pub compression: Codec,
    /// The history may hold at most this share of the data area in blocks nothing else
    /// keeps (`set history-space=`); 0: no cap. Version 5.
    pub history_space_percent: u8,
}

/// The algorithm byte of a pool root whose compression is lz4.
const ALGORITHM_LZ4: u8 = 1;

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            history_seconds: 24 * 3600,
            history_reserve_percent: 10,
            compression: Codec::DEFAULT,
            history_space_percent: 0,
        }
    }
}

/// The (level, algorithm) bytes of a compression setting.
fn codec_bytes(codec: Codec) -> (u8, u8) {
    match codec {
        Codec::Off => (0, 0),
        Codec::Zstd { level } => (level, 0),
        Codec::Lz4 => (0, ALGORITHM_LZ4),
    }
}

fn codec_of(level: u8, algorithm: u8) -> Result<Codec> {
    match (level, algorithm) {
        (0, 0) => Ok(Codec::Off),
        // Levels up to 22 were accepted by earlier binaries' decoders.
        (1..=22, 0) => Ok(Codec::Zstd { level }),
        (0, ALGORITHM_LZ4) => Ok(Codec::Lz4),
        _ => Err(Error::corrupt(format!(
            "pool root names compression level {level} of algorithm {algorithm}: levels go to {ZSTD_LEVEL_MAX}, \
             algorithms are 0 (zstd) and 1 (lz4, level 0)"
        ))),
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
    /// The snapshots by (tree, txg) (format/tables.rs), once a commit built it: from
    /// then on every commit keeps it in step with the snapshots table. Version 3.
    pub snapshot_index: SnapshotIndexRoot,
    /// The bookmarks table (format/tables.rs), once a bookmark was made. Version 4.
    pub bookmarks: Option<BlockPtr>,
    /// Bytes of the dead index's blocks that only retained commits keep, while a cap on
    /// the history's space is set and they are counted (pool/history_space.rs); None:
    /// not counted since something moved blocks between snapshots and history. Version 5.
    pub history_only_bytes: Option<u64>,
}

/// `history_only_bytes` as stored: this value means "not counted".
const UNCOUNTED: u64 = u64::MAX;

/// Whether a pool root has a snapshot index, and its root when the index is not empty.
/// Pools written before version 3 have none; the first commit that changes their
/// snapshots table builds it (pool/snapshot_index.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotIndexRoot {
    Absent,
    Built(Option<BlockPtr>),
}

impl SnapshotIndexRoot {
    /// The index's root block: None when there is no index or it is empty.
    pub fn root(self) -> Option<BlockPtr> {
        match self {
            SnapshotIndexRoot::Built(root) => root,
            SnapshotIndexRoot::Absent => None,
        }
    }
}

impl PoolRoot {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&POOL_ROOT_MAGIC);
        let version = match (self.snapshot_index, self.receive) {
            _ if self.config.history_space_percent != 0 => 5,
            _ if self.bookmarks.is_some() => 4,
            (SnapshotIndexRoot::Built(_), _) => 3,
            (SnapshotIndexRoot::Absent, Some(_)) => 2,
            (SnapshotIndexRoot::Absent, None) => 1,
        };
        w.u32(version);
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
        let (level, algorithm) = codec_bytes(self.config.compression);
        w.u8(level);
        BlockPtr::encode(self.receive.as_ref(), &mut w);
        w.u8(algorithm);
        BlockPtr::encode(self.snapshot_index.root().as_ref(), &mut w);
        BlockPtr::encode(self.bookmarks.as_ref(), &mut w);
        if self.config.history_space_percent != 0 {
            w.u8(self.config.history_space_percent);
            w.u64(self.history_only_bytes.unwrap_or(UNCOUNTED));
            // Versions 3 and 4 say by their number that the index is built; 5 says it here.
            w.u8(u8::from(self.snapshot_index != SnapshotIndexRoot::Absent));
        }
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
        let algorithm = r.u8()?;
        if receive.is_some() && version < 2 {
            return Err(Error::corrupt("pool root of version 1 names a receive state"));
        }
        let index = BlockPtr::decode(&mut r)?;
        let bookmarks = BlockPtr::decode(&mut r)?;
        if bookmarks.is_some() && version < 4 {
            return Err(Error::corrupt(format!("pool root of version {version} names a bookmarks table")));
        }
        let (history_space_percent, history_only_bytes, index_built) = match version >= 5 {
            true => {
                let percent = r.u8()?;
                let counted = Some(r.u64()?).filter(|&b| b != UNCOUNTED);
                let built = match r.u8()? {
                    0 => false,
                    1 => true,
                    other => return Err(Error::corrupt(format!("pool root's snapshot index flag is {other}"))),
                };
                (percent, counted, built)
            }
            false => (0, None, version >= 3),
        };
        let snapshot_index = match (index_built, index) {
            (true, root) => SnapshotIndexRoot::Built(root),
            (false, None) => SnapshotIndexRoot::Absent,
            (false, Some(_)) => {
                return Err(Error::corrupt(format!("pool root of version {version} names a snapshot index")));
            }
        };
        r.zeros(POOL_ROOT_BYTES - r.offset())?;
        if version >= 5 && !(1..=100).contains(&history_space_percent) {
            return Err(Error::corrupt(format!(
                "pool root of version 5 caps the history at {history_space_percent}% (1 to 100)"
            )));
        }
        if history_reserve_percent > 100 {
            return Err(Error::corrupt("pool root configuration out of range"));
        }
        let compression = codec_of(compression_level, algorithm)?;
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
            config: PoolConfig { history_seconds, history_reserve_percent, compression, history_space_percent },
            receive,
            snapshot_index,
            bookmarks,
            history_only_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_root_round_trip() {
        let root = sample();
        assert_eq!(PoolRoot::decode(&root.encode()).unwrap(), root);
    }

    #[test]
    fn every_compression_setting_round_trips_and_bad_ones_are_corruption() {
        // Goal: each setting reads back as written; a zstd pool root is byte for byte
        // what earlier binaries wrote (algorithm byte zero). Method: encode, decode, and
        // patch the two bytes to impossible pairs.
        let mut root = sample();
        for codec in [Codec::Off, Codec::Lz4, Codec::Zstd { level: 1 }, Codec::Zstd { level: 19 }] {
            root.config.compression = codec;
            assert_eq!(PoolRoot::decode(&root.encode()).unwrap().config.compression, codec);
        }
        root.config.compression = Codec::Zstd { level: 3 };
        let bytes = root.encode();
        let level_at = 4 + 4 + 8 + 8 + 16 + 5 * 72 + 8 * 5 + 1;
        let algorithm_at = level_at + 1 + 72;
        assert_eq!((bytes[level_at], bytes[algorithm_at]), (3, 0));
        for (level, algorithm) in [(23, 0), (3, 1), (0, 2), (0, 255)] {
            let mut bad = bytes.clone();
            bad[level_at] = level;
            bad[algorithm_at] = algorithm;
            let err = PoolRoot::decode(&bad).unwrap_err().to_string();
            assert!(err.contains(&format!("level {level} of algorithm {algorithm}")), "{err}");
        }
    }

    fn sample() -> PoolRoot {
        PoolRoot {
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
            snapshot_index: SnapshotIndexRoot::Absent,
            bookmarks: None,
            history_only_bytes: None,
        }
    }

    #[test]
    fn a_cap_on_the_history_makes_version_5_and_its_count_round_trips() {
        // Goal: without a cap the root is what version 4 binaries wrote (the count is not
        // stored); with one it is version 5, counted or not, with or without a snapshot
        // index (which versions 3 and 4 imply); a cap out of range is corruption.
        // Method: encode, decode, patch.
        let mut root = sample();
        root.history_only_bytes = Some(12288);
        assert_eq!(PoolRoot::decode(&root.encode()).unwrap().history_only_bytes, None, "not stored without a cap");
        root.config.history_space_percent = 10;
        let bytes = root.encode();
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 5);
        assert_eq!(PoolRoot::decode(&bytes).unwrap(), root);
        root.history_only_bytes = None;
        assert_eq!(PoolRoot::decode(&root.encode()).unwrap(), root);
        root.snapshot_index = SnapshotIndexRoot::Built(None);
        assert_eq!(PoolRoot::decode(&root.encode()).unwrap(), root, "an index built and empty stays so");
        let at = 4 + 4 + 8 + 8 + 16 + 5 * 72 + 8 * 5 + 1 + 1 + 72 + 1 + 72 + 72;
        let mut bad = root.encode();
        assert_eq!(bad[at], 10);
        bad[at] = 101;
        let err = PoolRoot::decode(&bad).unwrap_err().to_string();
        assert!(err.contains("101%"), "{err}");
    }

    #[test]
    fn the_snapshot_index_makes_version_3_and_older_versions_may_not_name_one() {
        // Goal: a root without an index is byte for byte what version 2 binaries wrote;
        // one with an index (even an empty one) is version 3 and round-trips; a version
        // 1 or 2 root naming an index is corruption. Method: encode, decode, patch.
        let mut root = sample();
        let bytes = root.encode();
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 1);
        root.snapshot_index = SnapshotIndexRoot::Built(None);
        let built_empty = root.encode();
        assert_eq!(u32::from_le_bytes(built_empty[4..8].try_into().unwrap()), 3);
        assert_eq!(PoolRoot::decode(&built_empty).unwrap(), root);
        let mut unbuilt = built_empty.clone();
        unbuilt[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(PoolRoot::decode(&unbuilt).unwrap().snapshot_index, SnapshotIndexRoot::Absent);
        let ptr = BlockPtr {
            addr: crate::block::BlockAddr(100),
            ditto: crate::block::BlockAddr(200),
            birth: Txg(4),
            stored_bytes: 4096,
            logical_bytes: 4096,
            kind: crate::block::BlockKind::TreeNode,
            compression: crate::block::Compression::None,
            level: 0,
            checksum: [9; 32],
        };
        root.snapshot_index = SnapshotIndexRoot::Built(Some(ptr));
        let pointed = root.encode();
        assert_eq!(PoolRoot::decode(&pointed).unwrap(), root);
        for version in [1u32, 2] {
            let mut older = pointed.clone();
            older[4..8].copy_from_slice(&version.to_le_bytes());
            let err = PoolRoot::decode(&older).unwrap_err().to_string();
            assert!(err.contains(&format!("version {version} names a snapshot index")), "{err}");
        }
    }
}
