//! Block I/O for one open pool: read a block by its pointer (verified against its
//! checksum), write a new block (compressed, checksummed, allocated), and the record of
//! what the running transaction killed. Scrub's repairs (a bad copy rewritten in place
//! from a good one, a bad label from the good one) write through here too, so every write
//! of a block goes out after the write buffer, and none lands outside the data area.

use crate::alloc::Allocator;
use crate::alloc::allocator::{AllocKind, Placement};
use crate::block::{BLOCK_BYTES, BlockAddr, BlockKind, BlockPtr, Compression, LOGICAL_BYTES_MAX, Txg};
use crate::checksum::blake3;
use crate::compress::{self, Attempt, Codec};
use crate::device::Device;
use crate::error::{Corruption, DeviceError, Error, Result, Shrunk};
use crate::format::label::{Label, REGION_BLOCKS, region_start};
use crate::format::node::TreeKind;
use std::sync::Arc;

mod node_cache;
pub use node_cache::{NODE_CACHE_BYTES, NodeCache};

/// A block ready to write: its bytes as stored, how they are compressed, their checksum.
pub struct StoredBlock {
    pub logical_bytes: usize,
    pub stored: Vec<u8>,
    pub compression: Compression,
    pub checksum: crate::block::Checksum,
}

impl StoredBlock {
    /// Compresses (where that saves a block) and checksums logical bytes.
    pub fn prepare(logical: Vec<u8>, codec: Codec) -> StoredBlock {
        StoredBlock::prepare_counted(logical, codec).0
    }

    /// `prepare`, saying also what the compressor tried.
    pub fn prepare_counted(logical: Vec<u8>, codec: Codec) -> (StoredBlock, Attempt) {
        let logical_bytes = logical.len();
        let (stored, compression, attempt) = compress::compress(logical, codec);
        let checksum = blake3(&stored);
        (StoredBlock { logical_bytes, stored, compression, checksum }, attempt)
    }
}

/// Who owns a block, which decides what happens when it is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Pool metadata: no snapshot or history sees it; freed once the commit is durable.
    Meta,
    /// A block of file tree `id`: kept while a snapshot or retained commit can see it.
    Files(u64),
    /// A tree being received, started from a snapshot of txg `origin` (0 for a full
    /// stream): blocks born at or before `origin` belong to that snapshot and are not
    /// its to free; newer ones are its own, seen by no checkpoint.
    Staging { origin: u64 },
}

/// Replaced snapshot blocks a staging tree lists at most (about 80 MiB): memory stays
/// bounded whatever the stream's size.
const STAGING_REPLACED_MAX: usize = 1 << 20;

/// What a dead-index entry costs a commit at most: its key, value and share of a node.
const DEAD_ENTRY_BYTES: u64 = 128;

/// Contiguous writes are gathered up to this size, so a copy-in writes in large requests.
const WRITE_BUFFER_BYTES: usize = 8 << 20;

pub struct Store {
    pub dev: Box<dyn Device>,
    pub alloc: Allocator,
    /// The transaction being built: one more than the last commit.
    pub txg: Txg,
    /// How new file data is compressed (tree nodes are stored raw).
    pub compression: Codec,
    /// Blocks of file trees killed by this transaction: (tree id, pointer).
    pub file_kills: Vec<(u64, BlockPtr)>,
    /// Blocks committed earlier whose pointers this transaction gave its own txg as
    /// birth (a resumed receive adopting them): killed, they wait for the commit.
    pub reborn: std::collections::HashSet<u64>,
    /// Blocks of the origin snapshot that a staging tree stopped referencing, in the
    /// order it did: the head kills them if it takes the staging tree as is. None once
    /// there were more than STAGING_REPLACED_MAX (the head then copies key by key).
    pub staging_replaced: Option<Vec<BlockPtr>>,
    /// Metadata blocks get a second copy (the pool has the ditto feature).
    pub ditto_metadata: bool,
    /// Incompat feature bits what this transaction wrote needs in the label (a large
    /// xattr): the commit sets any the label lacks before its record (pool/features.rs).
    pub features_needed: u64,
    /// Tree nodes loaded or made through this store, ever: a tree compares it with its
    /// value at its last eviction to bound the nodes it holds (tree/btree.rs).
    pub nodes_loaded: u64,
    /// Writes gathered per placement (data, metadata, dittos), since each kind goes to
    /// its own part of the device.
    buffers: [WriteBuffer; Placement::COUNT],
    /// Metadata blocks read or written lately (node_cache.rs).
    pub node_cache: NodeCache,
}

/// Contiguous writes waiting to go to the device as one request. Aligned, and whole
/// blocks at a block's offset, so a file device writes it past the page cache.
#[derive(Default)]
struct WriteBuffer {
    offset: u64,
    bytes: crate::device::AlignedBuf,
}

impl Store {
    pub fn new(dev: Box<dyn Device>, alloc: Allocator, txg: Txg, compression: Codec) -> Store {
        Store {
            dev,
            alloc,
            txg,
            compression,
            file_kills: Vec::new(),
            reborn: Default::default(),
            staging_replaced: Some(Vec::new()),
            ditto_metadata: false,
            features_needed: 0,
            nodes_loaded: 0,
            buffers: Default::default(),
            node_cache: NodeCache::new(NODE_CACHE_BYTES),
        }
    }

    /// Asks the device to read `ptr`'s first copy ahead (Device::will_need), unless the
    /// node cache holds it: a walk that comes back over a tree (a subset's selection,
    /// then its copy) spent a tenth of its time advising the kernel of blocks it had.
    pub fn will_need(&self, ptr: &BlockPtr) {
        if ptr.kind.is_metadata() && self.node_cache.holds(ptr.addr.0, &ptr.checksum) {
            return;
        }
        self.dev.will_need(ptr.addr.0 * BLOCK_BYTES, ptr.allocated_blocks() * BLOCK_BYTES);
    }

    /// Reads and verifies a block (its ditto copy if the first is bad); returns its
    /// logical bytes.
    pub fn read_block(&mut self, ptr: &BlockPtr) -> Result<Vec<u8>> {
        if ptr.kind.is_metadata() {
            return self.read_node(ptr).map(|bytes| Arc::try_unwrap(bytes).unwrap_or_else(|shared| (*shared).clone()));
        }
        self.read_uncached(ptr)
    }

    /// A metadata block's logical bytes, shared with the node cache (no copy when it
    /// holds them; none made to keep them there).
    pub fn read_node(&mut self, ptr: &BlockPtr) -> Result<Arc<Vec<u8>>> {
        if let Some(bytes) = self.node_cache.get_shared(ptr.addr.0, &ptr.checksum) {
            return Ok(bytes.clone());
        }
        let bytes = Arc::new(self.read_uncached(ptr)?);
        if ptr.kind.is_metadata() {
            self.node_cache.insert_shared(ptr.addr.0, ptr.checksum, bytes.clone());
        }
        Ok(bytes)
    }

    fn read_uncached(&mut self, ptr: &BlockPtr) -> Result<Vec<u8>> {
        if let Some(stored) = self.buffered_stored(ptr) {
            return compress::decompress(stored, ptr.compression, ptr.logical_bytes).map_err(|e| locate(e, ptr));
        }
        for addr in ptr.copies() {
            self.flush_overlapping(addr, ptr.allocated_blocks())?;
        }
        let stored = self.read_verified(ptr)?;
        compress::decompress(stored, ptr.compression, ptr.logical_bytes).map_err(|e| locate(e, ptr))
    }

    /// The stored bytes of `ptr`'s first copy if a write buffer still holds them whole,
    /// and they are the ones its checksum names: a read of a block written moments ago
    /// (a commit counting the nodes it wrote) need not send the buffer out early, which
    /// would split one large write into small ones. A buffer holds the latest write to
    /// an address (buffered_write sends out any other that overlaps it).
    fn buffered_stored(&self, ptr: &BlockPtr) -> Option<Vec<u8>> {
        let start = ptr.addr.0.checked_mul(BLOCK_BYTES)?;
        let len = ptr.stored_bytes as u64;
        let buffer =
            self.buffers.iter().find(|b| start >= b.offset && start + len <= b.offset + b.bytes.len() as u64)?;
        let at = (start - buffer.offset) as usize;
        let stored = buffer.bytes[at..at + len as usize].to_vec();
        (blake3(&stored) == ptr.checksum).then_some(stored)
    }

    /// Reads a block's bytes as stored (still compressed) without verifying them: a
    /// stream carries the pointer's checksum beside them, and the receiver verifies the
    /// bytes against it (it computes that checksum anyway for its own pointer), so a
    /// damaged block is caught end to end at half the sender's cost.
    pub fn read_stored_unverified(&mut self, ptr: &BlockPtr) -> Result<Vec<u8>> {
        let len = ptr.stored_bytes as usize;
        self.read_stored_range_unverified(ptr, 0, len)
    }

    /// Bytes `[start, start + len)` of a block as stored, unverified (see above): the
    /// changed pieces of an uncompressed record, whose stored bytes are its logical ones.
    pub fn read_stored_range_unverified(&mut self, ptr: &BlockPtr, start: usize, len: usize) -> Result<Vec<u8>> {
        assert!(start + len <= ptr.stored_bytes as usize, "a range inside the block");
        self.flush_overlapping(ptr.addr, ptr.allocated_blocks())?;
        self.check_in_data_area(ptr.addr, ptr)?;
        let mut bytes = vec![0u8; len];
        self.dev.read_at(ptr.addr.byte_offset() + start as u64, &mut bytes)?;
        Ok(bytes)
    }

    fn read_verified(&self, ptr: &BlockPtr) -> Result<Vec<u8>> {
        let mut first_error = None;
        for addr in [ptr.addr, ptr.ditto] {
            if addr.0 == 0 {
                continue;
            }
            match self.read_copy(addr, ptr) {
                Ok(bytes) => return Ok(bytes),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::corrupt("block pointer without an address")))
    }

    /// A pointer read from the device is checked before the device is read at it.
    pub fn check_in_data_area(&self, addr: BlockAddr, ptr: &BlockPtr) -> Result<()> {
        let end = addr.0.checked_add(ptr.allocated_blocks());
        if addr.0 < self.alloc.usable_start || end.is_none_or(|end| end > self.alloc.usable_end) {
            return Err(Error::corrupt_at(
                addr.0,
                format!("{} block pointer to block {} lies outside the data area", ptr.kind.name(), addr.0),
            ));
        }
        let pool_bytes = (self.alloc.usable_end + REGION_BLOCKS) * BLOCK_BYTES;
        if end.is_some_and(|end| end * BLOCK_BYTES > self.dev.len()) && self.dev.len() < pool_bytes {
            let shrunk = Shrunk::new(self.dev.name(), self.dev.len(), pool_bytes);
            let what = format!("{} block", ptr.kind.name());
            return Err(Error::Device(DeviceError::ShrunkRead { shrunk, what, block: addr.0 }));
        }
        Ok(())
    }

    /// Reads and verifies one copy of a block, as stored: check and scrub look at each
    /// copy on its own, where a read takes the first good one.
    pub fn read_copy(&self, addr: BlockAddr, ptr: &BlockPtr) -> Result<Vec<u8>> {
        self.check_in_data_area(addr, ptr)?;
        let mut bytes = vec![0u8; ptr.stored_bytes as usize];
        self.dev.read_at(addr.byte_offset(), &mut bytes)?;
        if blake3(&bytes) != ptr.checksum {
            return Err(Error::corrupt_at(
                addr.0,
                format!(
                    "checksum mismatch in {} block at block {} (born in txg {}, {} bytes)",
                    ptr.kind.name(),
                    addr.0,
                    ptr.birth.0,
                    ptr.stored_bytes
                ),
            ));
        }
        Ok(bytes)
    }

    /// Scrub's repair: writes the stored bytes of a good copy of `ptr` over its copy at
    /// `addr`, in place. Refused, with nothing written, if the bytes are not the ones the
    /// pointer's checksum names or the copy lies outside the data area (a wrong pointer
    /// must not aim a write at a label, a commit ring or another pool's bytes).
    ///
    /// Why no transaction is needed (docs/FORMAT.md, "Assumptions about the device"): the
    /// bytes are what the pointer's checksum already names, so the write changes nothing a
    /// reader can see, and a crash during it leaves the copy bad or good and the other copy
    /// good. That holds because only a bad copy is ever rewritten, never the good one it is
    /// rewritten from. Not durable until `sync_device`.
    pub fn rewrite_copy(&mut self, addr: BlockAddr, ptr: &BlockPtr, stored: &[u8]) -> Result<()> {
        assert!(ptr.copies().any(|copy| copy == addr), "block {} is a copy of the block it rewrites", addr.0);
        self.check_in_data_area(addr, ptr)?;
        if stored.len() != ptr.stored_bytes as usize || blake3(stored) != ptr.checksum {
            return Err(Error::corrupt(format!(
                "the bytes offered to rewrite copy at block {} of a {} block ({} bytes) do not match its checksum; \
                 nothing written",
                addr.0,
                ptr.kind.name(),
                stored.len()
            )));
        }
        // A buffered write to these blocks (there is none while a scrub runs) would land
        // over the repair if it went out after it.
        self.flush_buffer()?;
        let mut padded = stored.to_vec();
        padded.resize((ptr.allocated_blocks() * BLOCK_BYTES) as usize, 0);
        self.dev.write_at(addr.byte_offset(), &padded)
    }

    /// Scrub's repair of a label: writes `label` into its own region's first block, and
    /// makes it durable before returning. Labels never change after format (but for
    /// `expand`), so the good label's contents with the other's index are the bad one's.
    /// One label at a time: a crash tears at most the one in flight, and the other still
    /// opens the pool, even when both needed rewriting (the one that opened it can sit at
    /// block 0 with the end's index).
    pub fn rewrite_label(&mut self, label: &Label) -> Result<()> {
        self.flush_buffer()?;
        let block = region_start(label.index, label.device_bytes);
        self.dev.write_at(block * BLOCK_BYTES, &label.encode())?;
        self.dev.flush()
    }

    /// Compresses, allocates and writes a new block born in this transaction.
    pub fn write_block(&mut self, kind: BlockKind, level: u8, logical: &[u8]) -> Result<BlockPtr> {
        // Tree nodes are stored raw, as btrfs stores its metadata: every commit rewrites
        // the nodes on the paths it changed and every walk reads them, and zstd on both
        // sides cost a fifth of an incremental receive to halve a few MiB of metadata.
        let codec = match kind {
            BlockKind::FileData | BlockKind::FileOverlay => self.compression,
            _ => Codec::Off,
        };
        self.write_prepared(kind, level, &StoredBlock::prepare(logical.to_vec(), codec), AllocKind::Explicit)
    }

    /// Writes a node of a tree of kind `tree`: a file tree's among the nodes snapshots
    /// and the history keep, a pool table's among the blocks the next commits replace
    /// (`Placement`).
    pub fn write_node(&mut self, tree: TreeKind, level: u8, logical: &[u8]) -> Result<BlockPtr> {
        let placement = if tree == TreeKind::Files { Placement::Metadata } else { Placement::Tables };
        let block = StoredBlock::prepare(logical.to_vec(), Codec::Off);
        self.write_placed(BlockKind::TreeNode, level, &block, AllocKind::Explicit, placement)
    }

    /// A store on an in-memory device with free space, for unit tests of the layers above.
    #[cfg(test)]
    pub fn for_tests() -> Store {
        let mut alloc = Allocator::new(64, 64 * 1024);
        alloc.free.insert(64, 64 * 1024 - 64);
        Store::new(Box::new(crate::device::MemoryDevice::new(256 << 20)), alloc, Txg(1), Codec::Zstd { level: 1 })
    }

    /// Writes a block that is allocated by being reachable from the commit record.
    pub fn write_implicit_block(&mut self, kind: BlockKind, logical: &[u8]) -> Result<BlockPtr> {
        let block = StoredBlock::prepare(logical.to_vec(), self.compression);
        self.write_placed(kind, 0, &block, AllocKind::Implicit, Placement::Tables)
    }

    /// Writes a block compressed and checksummed already (for example by a worker thread).
    pub fn write_prepared(
        &mut self,
        kind: BlockKind,
        level: u8,
        block: &StoredBlock,
        alloc_kind: AllocKind,
    ) -> Result<BlockPtr> {
        // Overlays are file data too: they go with it, not among the tree nodes. Other
        // metadata written here (a receive's state) is replaced by the next commits.
        let placement = match kind {
            _ if !kind.is_metadata() => Placement::Data,
            BlockKind::TreeNode => Placement::Metadata,
            _ => Placement::Tables,
        };
        self.write_placed(kind, level, block, alloc_kind, placement)
    }

    fn write_placed(
        &mut self,
        kind: BlockKind,
        level: u8,
        block: &StoredBlock,
        alloc_kind: AllocKind,
        placement: Placement,
    ) -> Result<BlockPtr> {
        let StoredBlock { logical_bytes, stored, compression, checksum } = block;
        let (logical_bytes, compression, checksum) = (*logical_bytes, *compression, *checksum);
        assert!(logical_bytes <= LOGICAL_BYTES_MAX as usize);
        assert!(!stored.is_empty());
        if compression == Compression::Lz4 {
            // An older binary cannot read it: the commit sets the feature first.
            self.features_needed |= crate::format::label::FEATURE_LZ4;
        }
        let blocks = crate::block::blocks_for(stored.len() as u64);
        let addr = self.alloc.alloc(blocks, alloc_kind, placement)?;
        let ditto = if kind.is_metadata() && self.ditto_metadata {
            match self.alloc.alloc(blocks, alloc_kind, placement.ditto()) {
                Ok(ditto) => ditto,
                Err(e) => {
                    self.alloc.unalloc(addr, blocks, alloc_kind);
                    return Err(e);
                }
            }
        } else {
            0
        };
        let ptr = BlockPtr {
            addr: BlockAddr(addr),
            ditto: BlockAddr(ditto),
            birth: self.txg,
            stored_bytes: stored.len() as u32,
            logical_bytes: logical_bytes as u32,
            kind,
            compression,
            level,
            checksum,
        };
        if ditto != 0 {
            self.buffered_write(placement.ditto(), ditto * BLOCK_BYTES, stored, blocks)?;
        }
        self.buffered_write(placement, addr * BLOCK_BYTES, stored, blocks)?;
        if kind.is_metadata() && compression == Compression::None {
            // Stored as is: the bytes a read of it would return. A walk of the tree
            // being built (a receive's check, a commit) finds them here.
            self.node_cache.insert(addr, checksum, stored);
        }
        Ok(ptr)
    }

    fn buffered_write(&mut self, placement: Placement, offset: u64, stored: &[u8], blocks: u64) -> Result<()> {
        let index = placement as usize;
        let padded = (blocks * BLOCK_BYTES) as usize;
        // Another buffer may still hold a write to these blocks, made before they were
        // freed in this transaction and allocated again: it goes out first, or it would
        // land over this one.
        for other in 0..self.buffers.len() {
            let pending = &self.buffers[other];
            let pending_end = pending.offset + pending.bytes.len() as u64;
            if other != index && offset < pending_end && pending.offset < offset + padded as u64 {
                self.flush_one(other)?;
            }
        }
        let buffer = &self.buffers[index];
        let contiguous = !buffer.bytes.is_empty() && buffer.offset + buffer.bytes.len() as u64 == offset;
        if !contiguous || buffer.bytes.len() + padded > WRITE_BUFFER_BYTES {
            self.flush_one(index)?;
        }
        let buffer = &mut self.buffers[index];
        if buffer.bytes.is_empty() {
            buffer.offset = offset;
            // Room for a whole buffer at once: grown by doubling, it was copied into fresh
            // memory at each step (a third of an incremental receive's page faults). Only
            // the pages written are ever touched.
            buffer.bytes.reserve(WRITE_BUFFER_BYTES);
        }
        buffer.bytes.extend_from_slice(stored);
        buffer.bytes.extend_zeros(padded - stored.len());
        Ok(())
    }

    fn flush_one(&mut self, index: usize) -> Result<()> {
        let buffer = &mut self.buffers[index];
        if !buffer.bytes.is_empty() {
            // Handed over, so a file device can write it while the next one fills.
            let full = std::mem::take(&mut buffer.bytes);
            buffer.bytes = self.dev.write_owned(buffer.offset, full)?;
        }
        Ok(())
    }

    /// Sends the gathered writes that cover any of `blocks` blocks at `addr` to the
    /// device, so a read there sees them; the others go on gathering.
    fn flush_overlapping(&mut self, addr: BlockAddr, blocks: u64) -> Result<()> {
        // Saturating: a damaged pointer may hold any address (the read refuses it later).
        let (start, end) =
            (addr.0.saturating_mul(BLOCK_BYTES), addr.0.saturating_add(blocks).saturating_mul(BLOCK_BYTES));
        for index in 0..self.buffers.len() {
            let buffer = &self.buffers[index];
            if buffer.offset < end && start < buffer.offset + buffer.bytes.len() as u64 {
                self.flush_one(index)?;
            }
        }
        Ok(())
    }

    /// Sends every gathered write to the device (reads may want them).
    pub fn flush_buffer(&mut self) -> Result<()> {
        (0..self.buffers.len()).try_for_each(|index| self.flush_one(index))
    }

    /// The commit will write `bytes` more of metadata (in each copy): see
    /// `Allocator::metadata_pending_bytes`.
    pub fn expect_metadata(&mut self, bytes: u64) {
        let copies = if self.ditto_metadata { 2 } else { 1 };
        self.alloc.metadata_pending_bytes += bytes * copies;
    }

    /// Metadata expected before has been written (or will not be).
    pub fn metadata_written(&mut self, bytes: u64) {
        let copies = if self.ditto_metadata { 2 } else { 1 };
        self.alloc.metadata_pending_bytes = self.alloc.metadata_pending_bytes.saturating_sub(bytes * copies);
    }

    /// The block is no longer referenced by the head of its tree.
    pub fn kill(&mut self, owner: Owner, ptr: &BlockPtr) -> Result<()> {
        assert!(ptr.birth <= self.txg);
        if let Owner::Staging { origin } = owner {
            if ptr.birth.0 <= origin {
                // The origin snapshot's block: not ours to free, but the head's to kill
                // if it adopts this tree.
                if let Some(list) = self.staging_replaced.as_mut() {
                    list.push(*ptr);
                    if list.len() > STAGING_REPLACED_MAX {
                        self.staging_replaced = None;
                    }
                }
                return Ok(());
            }
        }
        if ptr.birth == self.txg && !self.reborn.contains(&ptr.addr.0) {
            // Written by this transaction and never committed: reusable at once.
            self.alloc.free_now_ptr(ptr);
            return Ok(());
        }
        match owner {
            Owner::Meta | Owner::Staging { .. } => self.alloc.defer_free_ptr(ptr),
            Owner::Files(tree) => {
                // Its dead-index entry, or its free, is written by the commit.
                self.expect_metadata(DEAD_ENTRY_BYTES);
                self.file_kills.push((tree, *ptr));
                Ok(())
            }
        }
    }

    /// Writes the buffer out and makes everything written so far durable.
    pub fn sync_device(&mut self) -> Result<()> {
        self.flush_buffer()?;
        self.dev.flush()
    }
}

fn locate(e: Error, ptr: &BlockPtr) -> Error {
    match e {
        Error::Corrupt(c) => Error::Corrupt(Corruption {
            what: format!(
                "{} ({} block at block {}, born in txg {})",
                c.what,
                ptr.kind.name(),
                ptr.addr.0,
                ptr.birth.0
            ),
            block: c.block.or(Some(ptr.addr.0)),
            file: c.file,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_blocks_freed_and_reallocated_lands_after_the_stale_one() {
        // Goal: each placement has its own buffer, so a block freed in a transaction and
        // allocated again for another placement has a stale write in one buffer and the
        // new one in another; the new one must be what the device holds.
        let mut store = Store::for_tests();
        let old = vec![1u8; 4096];
        let new = vec![2u8; 4096];
        store.buffered_write(Placement::Ditto, 100 * BLOCK_BYTES, &old, 1).unwrap();
        store.buffered_write(Placement::Metadata, 100 * BLOCK_BYTES, &new, 1).unwrap();
        store.buffered_write(Placement::Data, 99 * BLOCK_BYTES, &[3u8; 8192], 2).unwrap();
        store.flush_buffer().unwrap();
        let mut got = vec![0u8; 2 * 4096];
        store.dev.read_at(99 * BLOCK_BYTES, &mut got).unwrap();
        assert!(got == vec![3u8; 2 * 4096], "the data write, the last of the three, is what the device holds");
        store.buffered_write(Placement::Data, 200 * BLOCK_BYTES, &old, 1).unwrap();
        store.buffered_write(Placement::Ditto, 200 * BLOCK_BYTES, &new, 1).unwrap();
        store.flush_buffer().unwrap();
        let mut got = vec![0u8; 4096];
        store.dev.read_at(200 * BLOCK_BYTES, &mut got).unwrap();
        assert!(got == new, "the ditto write, the later one, is what the device holds");
    }

    /// A metadata block with a ditto, written and flushed, and its stored bytes.
    fn block_with_ditto(store: &mut Store) -> (BlockPtr, Vec<u8>) {
        store.ditto_metadata = true;
        let ptr = store.write_block(BlockKind::Blob, 0, &[5u8; 6000]).unwrap();
        store.flush_buffer().unwrap();
        let stored = store.read_copy(ptr.addr, &ptr).unwrap();
        (ptr, stored)
    }

    fn device_bytes(store: &Store, block: u64, blocks: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; (blocks * BLOCK_BYTES) as usize];
        store.dev.read_at(block * BLOCK_BYTES, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn rewrite_copy_restores_a_bad_copy_with_its_padding() {
        // Goal: scrub's repair seam writes a good copy's bytes over the bad one, zeros
        // after them to the end of the run, and the copy verifies again.
        let mut store = Store::for_tests();
        let (ptr, stored) = block_with_ditto(&mut store);
        assert_eq!(ptr.allocated_blocks(), 2);
        store.dev.write_at(ptr.ditto.byte_offset(), &[0xee; 2 * BLOCK_BYTES as usize]).unwrap();
        assert!(store.read_copy(ptr.ditto, &ptr).is_err());
        store.rewrite_copy(ptr.ditto, &ptr, &stored).unwrap();
        assert_eq!(store.read_copy(ptr.ditto, &ptr).unwrap(), stored);
        let tail = device_bytes(&store, ptr.ditto.0, 2)[stored.len()..].to_vec();
        assert!(tail.iter().all(|&b| b == 0), "the run's tail is written as zeros");
    }

    #[test]
    fn rewrite_copy_refuses_bytes_its_checksum_does_not_name_and_writes_nothing() {
        // Goal: a repair can only put back what the pointer's checksum names. Method: a
        // flipped byte, a byte short, a byte long, and the logical bytes of a compressed
        // block are each refused, and the bad copy is left as it was.
        let mut store = Store::for_tests();
        let (ptr, stored) = block_with_ditto(&mut store);
        let bad = vec![0xee; 2 * BLOCK_BYTES as usize];
        store.dev.write_at(ptr.ditto.byte_offset(), &bad).unwrap();
        let mut flipped = stored.clone();
        flipped[100] ^= 1;
        let short = stored[..stored.len() - 1].to_vec();
        let mut long = stored.clone();
        long.push(0);
        for (what, offered) in [("flipped", flipped), ("short", short), ("long", long)] {
            let e = store.rewrite_copy(ptr.ditto, &ptr, &offered).unwrap_err();
            assert!(e.to_string().contains("do not match its checksum"), "{what}: {e}");
            assert!(device_bytes(&store, ptr.ditto.0, 2) == bad, "{what}: nothing written");
        }
        let compressible = vec![0u8; 20_000];
        let compressed = store.write_block(BlockKind::FileData, 0, &compressible).unwrap();
        store.flush_buffer().unwrap();
        assert!(compressed.stored_bytes < compressed.logical_bytes);
        assert!(store.rewrite_copy(compressed.addr, &compressed, &compressible).is_err());
    }

    #[test]
    fn rewrite_copy_never_writes_outside_the_data_area() {
        // Goal: a wrong pointer (checksummed by its parent, so trusted by reads) must not
        // aim a repair at a label, a commit ring or past the pool. Method: copies before
        // the data area, straddling its end and past it; each is refused and the device
        // is unchanged.
        // A data area that ends before the device does, as a pool's does (region 1).
        let mut alloc = Allocator::new(64, 60_000);
        alloc.free.insert(64, 60_000 - 64);
        let mut store =
            Store::new(Box::new(crate::device::MemoryDevice::new(256 << 20)), alloc, Txg(1), Codec::Zstd { level: 1 });
        let (ptr, stored) = block_with_ditto(&mut store);
        let end = store.alloc.usable_end;
        for addr in [1, store.alloc.usable_start - 1, end - 1, end, end + 10] {
            let wrong = BlockPtr { ditto: BlockAddr(addr), ..ptr };
            let before = device_bytes(&store, addr, 1);
            let e = store.rewrite_copy(BlockAddr(addr), &wrong, &stored).unwrap_err();
            assert!(e.to_string().contains("lies outside the data area"), "block {addr}: {e}");
            assert!(device_bytes(&store, addr, 1) == before, "block {addr}: nothing written");
        }
    }
}
