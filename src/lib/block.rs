//! Block addresses, transaction numbers and the block pointer.
//!
//! A block pointer names a run of 4 KiB blocks, how its bytes are stored, the transaction
//! that wrote it (its birth) and the blake3 checksum of the stored bytes. The checksum of
//! a block lives in its parent's pointer, so every tree is a Merkle tree: a flipped bit, a
//! lost write or a write that landed at the wrong address is caught on read.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const BLOCK_BYTES: u64 = 4096;

/// A device address in units of 4 KiB blocks. Block 0 holds the first label, so a zero
/// address never names data and marks a null pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BlockAddr(pub u64);

impl BlockAddr {
    pub fn byte_offset(self) -> u64 {
        self.0 * BLOCK_BYTES
    }
}

/// A transaction group number. Commits are numbered from 1; 0 means "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Txg(pub u64);

/// What a block holds; recorded in the pointer so that check and dump can interpret a
/// block without its context, and so that a block of the wrong kind is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    PoolRoot = 1,
    TreeNode = 2,
    FileData = 3,
    SpaceLog = 4,
    Blob = 5,
    /// Pieces laid over a file record's base block (fs/record.rs).
    FileOverlay = 6,
}

impl BlockKind {
    pub fn from_u8(value: u8) -> Option<BlockKind> {
        Some(match value {
            1 => BlockKind::PoolRoot,
            2 => BlockKind::TreeNode,
            3 => BlockKind::FileData,
            4 => BlockKind::SpaceLog,
            5 => BlockKind::Blob,
            6 => BlockKind::FileOverlay,
            _ => return None,
        })
    }
    /// Metadata is kept in two copies on pools with the ditto feature; file data and
    /// overlays in one (a stream or a backup is their second copy).
    pub fn is_metadata(self) -> bool {
        !matches!(self, BlockKind::FileData | BlockKind::FileOverlay)
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockKind::PoolRoot => "pool-root",
            BlockKind::TreeNode => "tree-node",
            BlockKind::FileData => "file-data",
            BlockKind::SpaceLog => "space-log",
            BlockKind::Blob => "blob",
            BlockKind::FileOverlay => "file-overlay",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Zstd = 1,
    /// Pools with the lz4 incompat feature only (docs/FORMAT.md).
    Lz4 = 2,
}

impl Compression {
    pub fn from_u8(value: u8) -> Option<Compression> {
        match value {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Lz4),
            _ => None,
        }
    }
}

pub type Checksum = [u8; 32];

/// The largest logical block: a file record or a tree node never exceeds it.
pub const LOGICAL_BYTES_MAX: u32 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockPtr {
    /// First copy of the block; BlockAddr(0) for a null pointer.
    pub addr: BlockAddr,
    /// Second copy (ditto) on another part of the device, or BlockAddr(0). Written for
    /// metadata on pools with the ditto feature; read when the first copy is bad, and
    /// rewritten from the good one by scrub.
    pub ditto: BlockAddr,
    pub birth: Txg,
    /// Bytes on the device before padding to whole blocks.
    pub stored_bytes: u32,
    /// Bytes after decompression.
    pub logical_bytes: u32,
    pub kind: BlockKind,
    pub compression: Compression,
    /// Height of a tree node above the leaves; 0 for leaves and for other kinds.
    pub level: u8,
    pub checksum: Checksum,
}

pub const BLOCK_PTR_BYTES: usize = 72;

impl BlockPtr {
    pub fn is_null(&self) -> bool {
        self.addr.0 == 0
    }

    /// Whole blocks the stored bytes occupy, in one copy.
    pub fn allocated_blocks(&self) -> u64 {
        blocks_for(self.stored_bytes as u64)
    }

    /// The addresses of the block's copies: the first, then the ditto if there is one.
    pub fn copies(&self) -> impl Iterator<Item = BlockAddr> + use<> {
        let ditto = (self.ditto.0 != 0).then_some(self.ditto);
        std::iter::once(self.addr).chain(ditto)
    }

    /// The runs of blocks its copies occupy, as (first block, blocks).
    pub fn extents(&self) -> impl Iterator<Item = (u64, u64)> + use<> {
        let blocks = self.allocated_blocks();
        self.copies().map(move |addr| (addr.0, blocks))
    }

    /// Whole blocks all its copies occupy together: what it costs in space.
    pub fn footprint_blocks(&self) -> u64 {
        self.allocated_blocks() * self.copies().count() as u64
    }

    pub fn encode(ptr: Option<&BlockPtr>, out: &mut Writer) {
        let start = out.len();
        match ptr {
            None => out.zeros(BLOCK_PTR_BYTES),
            Some(p) => {
                assert!(!p.is_null());
                out.u64(p.addr.0);
                out.u64(p.ditto.0);
                out.u64(p.birth.0);
                out.u32(p.stored_bytes);
                out.u32(p.logical_bytes);
                out.u8(p.kind as u8);
                out.u8(p.compression as u8);
                out.u8(p.level);
                out.zeros(5);
                out.raw(&p.checksum);
            }
        }
        assert_eq!(out.len() - start, BLOCK_PTR_BYTES);
    }

    /// Decodes a pointer; all zeros is None. Every field is validated before use.
    pub fn decode(input: &mut Reader) -> Result<Option<BlockPtr>> {
        let raw = input.take(BLOCK_PTR_BYTES)?;
        if raw.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let mut r = Reader::new(raw, "block pointer");
        let addr = BlockAddr(r.u64()?);
        let ditto = BlockAddr(r.u64()?);
        let birth = Txg(r.u64()?);
        let stored_bytes = r.u32()?;
        let logical_bytes = r.u32()?;
        let kind_byte = r.u8()?;
        let compression_byte = r.u8()?;
        let level = r.u8()?;
        r.zeros(5)?;
        let checksum = r.array::<32>()?;
        let bad = |why: String| Error::corrupt(format!("{} at offset {}: {why}", input.what(), input.offset()));
        let kind = BlockKind::from_u8(kind_byte).ok_or_else(|| bad(format!("unknown block kind {kind_byte}")))?;
        let compression = Compression::from_u8(compression_byte)
            .ok_or_else(|| bad(format!("unknown compression {compression_byte}")))?;
        if addr.0 == 0 {
            return Err(bad("pointer has a zero address but is not null".into()));
        }
        if stored_bytes == 0 || stored_bytes > LOGICAL_BYTES_MAX || logical_bytes > LOGICAL_BYTES_MAX {
            return Err(bad(format!("implausible sizes stored={stored_bytes} logical={logical_bytes}")));
        }
        if compression == Compression::None && stored_bytes != logical_bytes {
            return Err(bad("uncompressed block whose stored and logical sizes differ".into()));
        }
        if compression != Compression::None && (logical_bytes == 0 || stored_bytes >= logical_bytes) {
            return Err(bad(format!("compressed block of {stored_bytes} stored and {logical_bytes} logical bytes")));
        }
        if ditto.0 != 0 && (ditto == addr || !kind.is_metadata()) {
            return Err(bad(format!("a {} block with a ditto copy at block {}", kind.name(), ditto.0)));
        }
        if level != 0 && kind != BlockKind::TreeNode {
            return Err(bad(format!("a {} block with level {level}", kind.name())));
        }
        if birth.0 == 0 {
            return Err(bad("block pointer with birth transaction 0".into()));
        }
        Ok(Some(BlockPtr { addr, ditto, birth, stored_bytes, logical_bytes, kind, compression, level, checksum }))
    }
}

pub fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ptr_round_trip() {
        // Goal: every field survives encode/decode; null encodes as zeros.
        let p = BlockPtr {
            addr: BlockAddr(77),
            ditto: BlockAddr(0),
            birth: Txg(9),
            stored_bytes: 5000,
            logical_bytes: 131072,
            kind: BlockKind::FileData,
            compression: Compression::Zstd,
            level: 0,
            checksum: [7; 32],
        };
        let mut w = Writer::new();
        BlockPtr::encode(Some(&p), &mut w);
        BlockPtr::encode(None, &mut w);
        let mut r = Reader::new(&w.bytes, "test");
        assert_eq!(BlockPtr::decode(&mut r).unwrap(), Some(p));
        assert_eq!(BlockPtr::decode(&mut r).unwrap(), None);
        assert_eq!(p.allocated_blocks(), 2);
    }

    #[test]
    fn block_ptr_rejects_bad_fields() {
        // Goal: a pointer with an unknown kind is corruption, not a panic.
        let mut bytes = vec![0u8; BLOCK_PTR_BYTES];
        bytes[0] = 5;
        bytes[16] = 1;
        bytes[24] = 1;
        bytes[28] = 1;
        bytes[32] = 99;
        let err = BlockPtr::decode(&mut Reader::new(&bytes, "test")).unwrap_err();
        assert!(err.to_string().contains("unknown block kind 99"), "{err}");
    }
}
