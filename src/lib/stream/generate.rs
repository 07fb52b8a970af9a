//! Turns the difference between two snapshots of a tree into stream records.
//!
//! The diff comes in key order, so every inode's items arrive together: its inode
//! item, then back references, xattrs, symlink target and records. Directory entries
//! are not sent: each one mirrors a back reference of its child, and the receiver
//! derives both from LINK, UNLINK and RENAME records, made from the back references.
//! A record that changed is sent as the 4 KiB pieces that changed when that is smaller
//! than the whole record as stored; the piece fingerprints say which ones, so the base's
//! data is never read.
//!
//! An xattr travels whole (one SET_XATTR), whichever of its items changed: a value over
//! 4096 bytes is several items (fs/xattr.rs), adjacent in key order, so the first
//! changed one sends the value, read from the target tree, and the rest are skipped.
//!
//! The same walk sizes a stream without reading any file data (`load_data` false): the
//! choice between a PATCH and a WRITE depends on metadata only, so the estimate is exact.
//!
//! Reading the changed pieces of a record (and decompressing it, if it is compressed)
//! was most of an incremental send's time, and reading whole blocks most of a full
//! send's: worker threads do both, reading through their own descriptors (whole blocks
//! past the page cache, blocks that lie end to end in one request), many records at a
//! time (the device answers several requests at once far faster than one after
//! another). Once the first read starts, every record goes through one queue in stream
//! order, each out as soon as it and those before it have their bytes. A compressed
//! record with a frame index (fs/record.rs) is read only in the frames that hold
//! changed pieces; one without is read whole.

use super::wire::{
    FEATURE_LARGE_XATTRS, FEATURE_LZ4, FEATURE_RANGES, KeepRecord, PatchRecord, Record, RecordType, WriteOverlay,
    WriteRecord,
};
use crate::block::{BLOCK_BYTES, BlockPtr};
use crate::compress::FRAME_BYTES;
use crate::device::{AlignedBuf, SharedReader};
use crate::error::{Error, Result};
use crate::format::node::TreeKind;
use crate::fs::FsTree;
use crate::fs::inode::{FileKey, Inode, ItemKind, parse_xattr_suffix};
use crate::fs::record::{PIECE_BYTES, Record as FileRecord};
use crate::fs::record::{piece_len, take_pieces};
use crate::fs::xattr::XATTR_CHUNK_BYTES;
use crate::store::{Owner, Store};
use crate::tree::born_after::{Found, ranges_born_after};
use crate::tree::{Change, Tree, TreeDiff};
use crate::workers::Workers;

/// Records waiting for their bytes at most (a few MiB of reads in flight).
const READ_BATCH_MAX: usize = 256;

/// Threads that read: far more than the cores, since they mostly wait for the device,
/// which serves a dozen requests at once about three times faster than one.
const READ_THREADS: usize = 12;

/// A read for the record numbered `seq` in the batch.
enum ReadJob {
    /// The pieces under `mask` of a record without overlay, for a PATCH.
    Pieces { seq: u64, record: Box<FileRecord>, mask: u32 },
    /// The stored bytes of blocks that lie close together on the device, in address
    /// order, for WRITEs: one request for them all (a full send's records mostly follow
    /// each other on the device, and a direct read of 1 MiB runs at several times the
    /// rate of one of 64 KiB).
    Blocks { run: Vec<(u64, BlockPtr)> },
}

/// What a read job made: the bytes for each record it read, by number.
type ReadDone = Vec<(u64, Result<Vec<u8>>)>;

/// The most blocks a `ReadJob::Blocks` spans (1 MiB).
const RUN_BLOCKS_MAX: u64 = 256;

/// Blocks between two WRITEs' blocks that a run reads through rather than end there:
/// a short gap costs less to read than a second request.
const RUN_GAP_BLOCKS_MAX: u64 = 8;

/// WRITE blocks gathered before they are sorted into runs (4 MiB): a copy-in writes a
/// file's blocks in the order its workers finish them, so neighbours on the device can
/// be a few records apart in the stream.
const PENDING_BLOCKS_MAX: u64 = 1024;

/// What a record sent through the batch needs read.
enum Read {
    /// A PATCH: the pieces under the mask of the record (without overlay).
    Pieces(FileRecord, u32),
    /// A WRITE: the stored bytes of its block.
    Block(BlockPtr),
}

/// Where a queued record stands.
enum Bytes {
    /// Needs no read (any record but a PATCH or WRITE).
    None,
    /// Being read by a worker.
    Reading,
    /// Read: the PATCH's pieces or the WRITE's stored bytes.
    Read(Result<Vec<u8>>),
}

/// Records in stream order, some waiting for their bytes: `waiting[0]` is number
/// `first_seq`. Every record goes through it once it is started, so reads of many small
/// files are in flight at once while the records between them wait their turn.
struct ReadBatch {
    workers: Workers<ReadJob, ReadDone>,
    waiting: std::collections::VecDeque<(Record, Bytes)>,
    first_seq: u64,
    /// WRITE blocks not yet handed to a worker, in stream order, and the blocks they
    /// take.
    pending: Vec<(u64, BlockPtr)>,
    pending_blocks: u64,
}

impl ReadBatch {
    /// Hands the pending blocks to workers, sorted by address and cut into runs.
    fn submit_pending(&mut self) {
        for run in runs_of(std::mem::take(&mut self.pending)) {
            self.workers.submit(ReadJob::Blocks { run });
        }
        self.pending_blocks = 0;
    }

    /// Adds a WRITE's block to the pending ones; sends them when they are enough.
    fn add_block(&mut self, seq: u64, ptr: BlockPtr) {
        self.pending_blocks += ptr.allocated_blocks();
        self.pending.push((seq, ptr));
        if self.pending_blocks >= PENDING_BLOCKS_MAX {
            self.submit_pending();
        }
    }

    /// Waits for one read to finish and files its bytes with their records. The pending
    /// blocks go out first only if the front record waits for them or nothing else is
    /// in flight: sent whenever the queue was full, runs were cut to a block or two.
    fn wait_one(&mut self) -> bool {
        let front_pending = self.pending.first().is_some_and(|&(seq, _)| seq == self.first_seq);
        if front_pending || self.workers.in_flight() == 0 {
            self.submit_pending();
        }
        let Some(done) = self.workers.wait_one() else { return false };
        for (seq, bytes) in done {
            self.waiting[(seq - self.first_seq) as usize].1 = Bytes::Read(bytes);
        }
        true
    }

    /// The records at the front that have their bytes, in order.
    fn take_ready(&mut self) -> Result<Vec<Record>> {
        let mut ready = Vec::new();
        while self.waiting.front().is_some_and(|(_, bytes)| !matches!(bytes, Bytes::Reading)) {
            let (mut record, bytes) = self.waiting.pop_front().expect("a front entry");
            self.first_seq += 1;
            if let Bytes::Read(bytes) = bytes {
                match &mut record {
                    Record::Patch(patch) => patch.data = bytes?,
                    Record::Write(write) => write.stored = bytes?,
                    _ => unreachable!("only PATCH and WRITE records are read"),
                }
            }
            ready.push(record);
        }
        Ok(ready)
    }
}

thread_local! {
    /// A reader thread's buffer for direct reads, grown to the largest block it read.
    static DIRECT_BUFFER: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::default());
}

/// `blocks` sorted by address and cut into runs: each spans at most RUN_BLOCKS_MAX
/// blocks, with gaps of at most RUN_GAP_BLOCKS_MAX between its blocks. Two records
/// may name the same block (a copy-in stores identical data once).
fn runs_of(mut blocks: Vec<(u64, BlockPtr)>) -> Vec<Vec<(u64, BlockPtr)>> {
    blocks.sort_by_key(|(seq, ptr)| (ptr.addr.0, *seq));
    let mut runs: Vec<Vec<(u64, BlockPtr)>> = Vec::new();
    let mut span = (0, 0);
    for (seq, ptr) in blocks {
        let (start, end) = (ptr.addr.0, ptr.addr.0 + ptr.allocated_blocks());
        let joins =
            !runs.is_empty() && start <= span.1 + RUN_GAP_BLOCKS_MAX && end.max(span.1) - span.0 <= RUN_BLOCKS_MAX;
        if joins {
            span.1 = span.1.max(end);
            runs.last_mut().expect("a run").push((seq, ptr));
        } else {
            span = (start, end);
            runs.push(vec![(seq, ptr)]);
        }
    }
    runs
}

/// The stored bytes of a run of blocks (`runs_of`), unverified (as
/// `Store::read_stored_unverified`), for the records numbered as given. Read in one
/// request past the page cache where the device allows it: a full send reads most of
/// the pool once, and on a loop device the copy through the cache ran at a third of a
/// direct read's rate (0.5 against 1.5 GB/s).
fn read_blocks(cached: &dyn SharedReader, direct: Option<&dyn SharedReader>, run: &[(u64, BlockPtr)]) -> ReadDone {
    let Some(&(_, first)) = run.first() else { return Vec::new() };
    if let Some(direct) = direct {
        // Whole blocks from the first block's start to the last one's end, gaps and all.
        let end = run.iter().map(|(_, p)| p.addr.0 + p.allocated_blocks()).max().unwrap_or(first.addr.0);
        let whole = ((end - first.addr.0) * BLOCK_BYTES) as usize;
        let read = DIRECT_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            if buffer.len() < whole {
                let more = whole - buffer.len();
                buffer.extend_zeros(more);
            }
            direct.read_at(first.addr.byte_offset(), &mut buffer[..whole]).map(|()| {
                let start = |p: &BlockPtr| ((p.addr.0 - first.addr.0) * BLOCK_BYTES) as usize;
                run.iter()
                    .map(|(seq, p)| (*seq, Ok(buffer[start(p)..start(p) + p.stored_bytes as usize].to_vec())))
                    .collect()
            })
        });
        // Refused (a file system without O_DIRECT, a short device end): through the cache.
        if let Ok(bytes) = read {
            return bytes;
        }
    }
    let read = |p: &BlockPtr| -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; p.stored_bytes as usize];
        cached.read_at(p.addr.byte_offset(), &mut bytes)?;
        Ok(bytes)
    };
    run.iter().map(|(seq, p)| (*seq, read(p))).collect()
}

/// The pieces under `mask` of `record`'s base block (a record without overlay),
/// unverified: as with a WRITE's data, the receiver checks what they make.
/// `read(start, len)` reads stored bytes of the block. If it is compressed, the frames
/// holding the pieces, each run of them in one read, by the record's frame index, or
/// the whole block without one (of which only those frames are decompressed); if raw,
/// only the runs of pieces.
fn cut_pieces(
    read: &mut dyn FnMut(usize, usize) -> Result<Vec<u8>>,
    record: &FileRecord,
    mask: u32,
) -> Result<Vec<u8>> {
    let ptr = &record.ptr;
    let logical = ptr.logical_bytes;
    let wanted = |start: usize, len: usize| {
        (start / PIECE_BYTES..(start + len).div_ceil(PIECE_BYTES)).any(|i| i < 32 && mask & (1 << i) != 0)
    };
    if ptr.compression != crate::block::Compression::None && !record.frames.is_empty() {
        return cut_indexed_pieces(read, record, mask, &wanted);
    }
    if ptr.compression != crate::block::Compression::None {
        // Only the frames that hold a wanted piece are decompressed.
        let stored = read(0, ptr.stored_bytes as usize)?;
        let bytes = crate::compress::decompress_frames_where(&stored, ptr.compression, logical, &wanted)?;
        return Ok(take_pieces(&bytes, logical, mask));
    }
    let pieces = (logical as usize).div_ceil(PIECE_BYTES);
    let mut data = Vec::new();
    let mut i = 0;
    while i < pieces {
        if mask & (1 << i) == 0 {
            i += 1;
            continue;
        }
        let first = i;
        while i < pieces && mask & (1 << i) != 0 {
            i += 1;
        }
        let start = first * PIECE_BYTES;
        data.extend_from_slice(&read(start, (i * PIECE_BYTES).min(logical as usize) - start)?);
    }
    Ok(data)
}

/// `cut_pieces` of a compressed block with a frame index: each run of wanted frames is
/// read in one request and each frame decompressed on its own.
fn cut_indexed_pieces(
    read: &mut dyn FnMut(usize, usize) -> Result<Vec<u8>>,
    record: &FileRecord,
    mask: u32,
    wanted: &dyn Fn(usize, usize) -> bool,
) -> Result<Vec<u8>> {
    let ptr = &record.ptr;
    let logical = ptr.logical_bytes as usize;
    let frames = crate::compress::frames_for(ptr.logical_bytes);
    let frame_len = |i: usize| FRAME_BYTES.min(logical - i * FRAME_BYTES);
    let mut bytes = vec![0u8; logical];
    let mut i = 0;
    while i < frames {
        if !wanted(i * FRAME_BYTES, frame_len(i)) {
            i += 1;
            continue;
        }
        let first = i;
        while i < frames && wanted(i * FRAME_BYTES, frame_len(i)) {
            i += 1;
        }
        let range =
            |f: usize| record.frame_range(f).ok_or_else(|| Error::corrupt("file record's frame index is short"));
        let run_start = range(first)?.start;
        let stored = read(run_start, range(i - 1)?.end - run_start)?;
        for f in first..i {
            let r = range(f)?;
            let at = f * FRAME_BYTES;
            let frame = &stored[r.start - run_start..r.end - run_start];
            let out =
                crate::compress::decompress_frames_where(frame, ptr.compression, frame_len(f) as u32, &|_, _| true)
                    .map_err(|e| {
                        Error::corrupt(format!("frame {f} of block {} by its record's index: {e}", ptr.addr.0))
                    })?;
            bytes[at..at + out.len()].copy_from_slice(&out);
        }
    }
    Ok(take_pieces(&bytes, logical as u32, mask))
}

/// Where generated records go.
pub trait Sink {
    fn record(&mut self, record: &Record) -> Result<()>;
}

/// Counts the bytes records would take, and the stream features they need.
#[derive(Default)]
pub struct SizeSink {
    pub bytes: u64,
    pub records: u64,
    pub features: u64,
}

impl Sink for SizeSink {
    fn record(&mut self, record: &Record) -> Result<()> {
        self.bytes += record.frame_bytes();
        self.records += 1;
        if record.record_type() == RecordType::SetLargeXattr {
            self.features |= FEATURE_LARGE_XATTRS;
        }
        if record.record_type() == RecordType::Range {
            self.features |= FEATURE_RANGES;
        }
        if let Record::Write(write) = record {
            if write.has_lz4() {
                self.features |= FEATURE_LZ4;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
pub struct GenerateStats {
    pub nodes_read: u64,
    pub data_bytes: u64,
}

/// One inode's back-reference changes and whether it goes, held until its back
/// references end, so that every record of a part follows the key order (a resumed
/// part restarts at a key).
#[derive(Default)]
struct Group {
    ino: u64,
    freed: bool,
    names_sent: bool,
    removed: Vec<(u64, Vec<u8>)>,
    added: Vec<(u64, Vec<u8>)>,
}

struct Generator<'g> {
    store: &'g mut Store,
    sink: &'g mut dyn Sink,
    load_data: bool,
    group: Group,
    /// A run of removed records not yet sent: (ino, first, count).
    punch: Option<(u64, u64, u64)>,
    /// Started at the first record whose bytes are read (read_batch).
    batch: Option<ReadBatch>,
    stats: GenerateStats,
    /// The tree being sent, read for xattr values of several items.
    target: Tree,
    /// The last xattr sent (inode, name): its other changed items are skipped.
    xattr_sent: Option<(u64, Vec<u8>)>,
}

/// Where a part's changes come from: a walk of the two trees, which can keep what it
/// finds (while that stays under a byte budget) so that a second pass over the same
/// part replays it instead of walking again.
pub enum Changes {
    Walk { diff: TreeDiff, kept: Option<(Vec<Change>, usize)> },
    Replay(std::vec::IntoIter<Change>),
}

impl Changes {
    /// The differences from `base` to `target` (roots of file trees), from key `start`
    /// on (a resumed part); with `keep_bytes`, kept up to that many bytes.
    pub fn walk(base: Option<BlockPtr>, target: Option<BlockPtr>, start: &[u8], keep_bytes: Option<usize>) -> Changes {
        let diff = TreeDiff::starting_at(TreeKind::Files, base, target, start);
        Changes::Walk { diff, kept: keep_bytes.map(|budget| (Vec::new(), budget)) }
    }

    /// What a walk kept, if it all fitted in its budget, and what is left of that.
    pub fn into_kept(self) -> Option<(Vec<Change>, usize)> {
        match self {
            Changes::Walk { kept, .. } => kept,
            Changes::Replay(_) => None,
        }
    }

    fn next(&mut self, store: &mut Store) -> Result<Option<Change>> {
        match self {
            Changes::Replay(changes) => Ok(changes.next()),
            Changes::Walk { diff, kept } => {
                let change = diff.next(store)?;
                if let (Some(c), Some((list, budget))) = (&change, kept.as_mut()) {
                    let bytes =
                        c.key.len() + c.old.as_ref().map_or(0, Vec::len) + c.new.as_ref().map_or(0, Vec::len) + 64;
                    match budget.checked_sub(bytes) {
                        Some(left) => {
                            *budget = left;
                            list.push(c.clone());
                        }
                        None => *kept = None, // too many to keep: the send walks again
                    }
                }
                Ok(change)
            }
        }
    }

    fn nodes_read(&self) -> u64 {
        match self {
            Changes::Walk { diff, .. } => diff.nodes_read(),
            Changes::Replay(_) => 0,
        }
    }
}

/// Sends every change of `changes`, which lead to the tree of root `target`, to `sink`.
pub fn generate(
    store: &mut Store,
    changes: &mut Changes,
    target: Option<BlockPtr>,
    load_data: bool,
    sink: &mut dyn Sink,
) -> Result<GenerateStats> {
    let mut g = Generator::new(store, sink, load_data, target);
    while let Some(change) = changes.next(g.store)? {
        g.change(change)?;
    }
    g.finish_group()?;
    g.flush_batch()?;
    g.flush_punch()?;
    g.stats.nodes_read = changes.nodes_read();
    Ok(g.stats)
}

/// Sends the tree of root `target` as the ranges born after `floor` (the txg of the
/// bookmark the part starts from), from key `start` on: a RANGE for each leaf born
/// after it, then its items, a file record as WRITE when any of its blocks is that new,
/// else as KEEP_RECORD (the receiver's copy of the bookmarked snapshot holds it).
pub fn generate_ranges(
    store: &mut Store,
    target: Option<BlockPtr>,
    floor: u64,
    start: &[u8],
    load_data: bool,
    sink: &mut dyn Sink,
) -> Result<GenerateStats> {
    let mut g = Generator::new(store, sink, load_data, target);
    // The walk and the records' reads both need the store: the walk collects the
    // records of up to LEAVES_PER_WALK leaves, they go out, and the next walk starts
    // where it stopped.
    let mut from = start.to_vec();
    loop {
        let mut records: Vec<Record> = Vec::new();
        let (mut leaves, mut next) = (0, None);
        g.stats.nodes_read += ranges_born_after(g.store, TreeKind::Files, target, floor, &from, &mut |found| {
            match found {
                Found::Range { first, .. } if leaves == LEAVES_PER_WALK => {
                    next = Some(first.to_vec());
                    return Ok(false);
                }
                Found::Range { first, end } => {
                    leaves += 1;
                    records.push(Record::Range { first: first.to_vec(), end: end.map(<[u8]>::to_vec) });
                }
                Found::Item { key, value } => records.push(Record::Item { key: key.to_vec(), value: value.to_vec() }),
            }
            Ok(true)
        })?;
        for record in records {
            g.range_record(record, floor)?;
        }
        match next {
            Some(key) => from = key,
            None => break,
        }
    }
    g.flush_batch()?;
    Ok(g.stats)
}

/// Leaves whose records one walk of `generate_ranges` collects (a few MiB at most).
const LEAVES_PER_WALK: usize = 256;

impl<'g> Generator<'g> {
    fn new(store: &'g mut Store, sink: &'g mut dyn Sink, load_data: bool, target: Option<BlockPtr>) -> Generator<'g> {
        Generator {
            store,
            sink,
            load_data,
            group: Group::default(),
            punch: None,
            batch: None,
            stats: Default::default(),
            target: Tree::open(TreeKind::Files, Owner::Meta, target),
            xattr_sent: None,
        }
    }

    /// Sends a record of a part from a bookmark: a file record's ITEM becomes a WRITE, or
    /// a KEEP_RECORD if none of its blocks was born after `floor`.
    fn range_record(&mut self, record: Record, floor: u64) -> Result<()> {
        let Record::Item { key, value } = &record else { return self.emit(record) };
        let Some(file_key) = FileKey::parse(key).filter(|k| k.kind() == Some(ItemKind::Record)) else {
            return self.emit(record);
        };
        let index = file_key.record_index().ok_or_else(|| Error::corrupt("a file record key without an index"))?;
        let file_record = FileRecord::decode(value)?;
        if file_record.blocks().all(|b| b.birth.0 <= floor) {
            return self.emit(Record::KeepRecord(KeepRecord {
                ino: file_key.ino,
                index,
                hash: file_record.hash,
                checksum: file_record.ptr.checksum,
                overlay_checksum: file_record.overlay.as_ref().map(|o| o.ptr.checksum),
            }));
        }
        self.record(file_key.ino, index, None, file_record)
    }

    fn emit(&mut self, record: Record) -> Result<()> {
        if !matches!(record, Record::Punch { .. }) {
            self.flush_punch()?;
        }
        self.send(record, None)
    }

    /// Sends `record` after those queued before it: at once without a batch, else
    /// through it, with `read` getting its bytes (a PATCH's pieces, a WRITE's block).
    /// Then sends what is ready at the front, and with the queue full waits for a read.
    fn send(&mut self, record: Record, read: Option<Read>) -> Result<()> {
        let Some(batch) = self.batch.as_mut() else { return self.sink.record(&record) };
        let seq = batch.first_seq + batch.waiting.len() as u64;
        let bytes = match read {
            Some(Read::Pieces(record, mask)) => {
                batch.workers.submit(ReadJob::Pieces { seq, record: Box::new(record), mask });
                Bytes::Reading
            }
            Some(Read::Block(ptr)) => {
                batch.add_block(seq, ptr);
                Bytes::Reading
            }
            None => Bytes::None,
        };
        batch.waiting.push_back((record, bytes));
        loop {
            for record in batch.take_ready()? {
                self.sink.record(&record)?;
            }
            if batch.waiting.len() < READ_BATCH_MAX || !batch.wait_one() {
                return Ok(());
            }
        }
    }

    /// The batch of reads, started at the first record that needs one; None if the
    /// device gives no reader for other threads (the caller then reads here).
    fn read_batch(&mut self) -> Option<&mut ReadBatch> {
        if self.batch.is_none() {
            let cached = self.store.dev.shared_reader()?;
            let direct = self.store.dev.direct_reader();
            let workers = Workers::with_threads(READ_THREADS, move |job: ReadJob| match job {
                ReadJob::Pieces { seq, record, mask } => {
                    let mut read = |start: usize, len: usize| -> Result<Vec<u8>> {
                        let mut buf = vec![0u8; len];
                        cached.read_at(record.ptr.addr.byte_offset() + start as u64, &mut buf)?;
                        Ok(buf)
                    };
                    vec![(seq, cut_pieces(&mut read, &record, mask))]
                }
                ReadJob::Blocks { run } => read_blocks(cached.as_ref(), direct.as_deref(), &run),
            });
            self.batch = Some(ReadBatch {
                workers,
                waiting: Default::default(),
                first_seq: 0,
                pending: Vec::new(),
                pending_blocks: 0,
            });
        }
        self.batch.as_mut()
    }

    /// Sends a PATCH of `record`, which has no overlay. Its pieces are read by
    /// worker threads when the device gives them a reader: the PATCH then waits in the
    /// batch.
    fn emit_patch(&mut self, mut patch: PatchRecord, record: FileRecord) -> Result<()> {
        if self.read_batch().is_none() {
            self.flush_punch()?;
            let store = &mut *self.store;
            let ptr = record.ptr;
            patch.data = cut_pieces(
                &mut |start, len| store.read_stored_range_unverified(&ptr, start, len),
                &record,
                patch.mask,
            )?;
            return self.emit(Record::Patch(patch));
        }
        self.flush_punch()?; // a pending punch came before this patch (punch() empties the batch)
        let mask = patch.mask;
        self.send(Record::Patch(patch), Some(Read::Pieces(record, mask)))
    }

    /// Sends a WRITE of a record without overlay; its stored bytes are read by the
    /// worker threads, as a PATCH's pieces are.
    fn emit_write(&mut self, write: WriteRecord, ptr: BlockPtr) -> Result<()> {
        // A pointer read from the device is checked before the device is read at it.
        self.store.check_in_data_area(ptr.addr, &ptr)?;
        if self.read_batch().is_none() {
            let mut write = write;
            write.stored = self.store.read_stored_unverified(&ptr)?;
            return self.emit(Record::Write(write));
        }
        self.flush_punch()?;
        self.send(Record::Write(write), Some(Read::Block(ptr)))
    }

    /// Sends every queued record, in order, once its bytes are read.
    fn flush_batch(&mut self) -> Result<()> {
        let Some(batch) = self.batch.as_mut() else { return Ok(()) };
        batch.submit_pending();
        while batch.wait_one() {}
        for record in batch.take_ready()? {
            self.sink.record(&record)?;
        }
        Ok(())
    }

    fn change(&mut self, change: Change) -> Result<()> {
        let key = FileKey::parse(&change.key)
            .ok_or_else(|| Error::corrupt(format!("file tree key of {} bytes", change.key.len())))?;
        let (ino, suffix) = (key.ino, key.suffix);
        if ino != self.group.ino {
            self.finish_group()?;
            self.group = Group { ino, ..Group::default() };
        }
        let new = change.new.as_deref();
        if key.kind().is_none_or(|kind| kind > ItemKind::BackRef) {
            self.finish_names()?;
        }
        match key.kind() {
            Some(ItemKind::Meta) => {
                let value = new.ok_or_else(|| Error::corrupt("file tree without its counter item"))?;
                let bytes: [u8; 8] = value.try_into().map_err(|_| Error::corrupt("tree counter of the wrong size"))?;
                self.emit(Record::TreeMeta { next_ino: u64::from_le_bytes(bytes) })
            }
            Some(ItemKind::Inode) => match new {
                Some(v) => self.emit(Record::Inode { ino, inode: Inode::decode(v)? }),
                None => {
                    self.group.freed = true;
                    Ok(())
                }
            },
            Some(ItemKind::DirEntry) => Ok(()),
            Some(ItemKind::BackRef) => {
                let (parent, name) = key.backref().ok_or_else(|| Error::corrupt("short back reference"))?;
                let entry = (parent, name.to_vec());
                match (&change.old, new) {
                    (Some(_), None) => self.group.removed.push(entry),
                    (None, Some(_)) => self.group.added.push(entry),
                    _ => {} // back references have empty values: nothing else can change
                }
                Ok(())
            }
            Some(ItemKind::Xattr) => self.xattr(ino, suffix, new),
            Some(ItemKind::Symlink) => match new {
                Some(v) => self.emit(Record::Symlink { ino, target: v.to_vec() }),
                None => Ok(()), // only an inode that goes loses its target
            },
            Some(ItemKind::Record) => {
                let index = key.record_index().ok_or_else(|| Error::corrupt("record key of the wrong length"))?;
                match new {
                    None if self.group.freed => Ok(()),
                    None => self.punch(ino, index),
                    Some(v) => {
                        let old = change.old.as_deref().map(FileRecord::decode).transpose()?;
                        self.record(ino, index, old, FileRecord::decode(v)?)
                    }
                }
            }
            None => Err(Error::corrupt(format!("file tree item of unknown kind {} (inode {ino})", key.kind_byte))),
        }
    }

    /// A changed item of an xattr: the attribute's own (`suffix` its name) or one of its
    /// continuations. Sends the attribute whole, once.
    fn xattr(&mut self, ino: u64, suffix: &[u8], new: Option<&[u8]>) -> Result<()> {
        let (name, index) = parse_xattr_suffix(suffix).ok_or_else(|| {
            Error::corrupt(format!("extended attribute key {:?} of inode {ino}", String::from_utf8_lossy(suffix)))
        })?;
        if self.xattr_sent.as_ref().is_some_and(|(i, n)| *i == ino && n == name) {
            return Ok(());
        }
        self.xattr_sent = Some((ino, name.to_vec()));
        let value = match (index, new) {
            // The attribute's own item holds all of a value shorter than one item.
            (0, Some(v)) if v.len() < XATTR_CHUNK_BYTES => Some(v.to_vec()),
            // The attribute is gone; its continuations, which follow, go with it.
            (0, None) => None,
            _ => {
                let value = FsTree::new(&mut self.target, self.store, false).xattr(ino, name);
                self.target.evict();
                value?
            }
        };
        match value {
            Some(value) => self.emit(Record::SetXattr { ino, name: name.to_vec(), value }),
            None if self.group.freed => Ok(()),
            None => self.emit(Record::RemoveXattr { ino, name: name.to_vec() }),
        }
    }

    fn punch(&mut self, ino: u64, index: u64) -> Result<()> {
        self.flush_batch()?;
        if let Some((p_ino, first, count)) = self.punch {
            if p_ino == ino && first + count == index {
                self.punch = Some((ino, first, count + 1));
                return Ok(());
            }
        }
        self.flush_punch()?;
        self.punch = Some((ino, index, 1));
        Ok(())
    }

    fn flush_punch(&mut self) -> Result<()> {
        if let Some((ino, first, count)) = self.punch.take() {
            self.send(Record::Punch { ino, first, count }, None)?;
        }
        Ok(())
    }

    fn record(&mut self, ino: u64, index: u64, old: Option<FileRecord>, new: FileRecord) -> Result<()> {
        if let Some(old) = &old {
            if old.hash == new.hash && old.logical_bytes() == new.logical_bytes() {
                return Ok(()); // same bytes in other blocks
            }
        }
        let logical = new.logical_bytes() as u32;
        if let Some(old) = &old {
            let mut mask = 0u32;
            let mut patch_bytes = 0usize;
            for (i, piece) in new.pieces.iter().enumerate() {
                if old.pieces.get(i) != Some(piece) {
                    mask |= 1 << i;
                    patch_bytes += piece_len(logical, i);
                }
            }
            if patch_bytes < new.stored_bytes() as usize {
                self.stats.data_bytes += patch_bytes as u64;
                let base_hash = Some(old.hash);
                let mut patch = PatchRecord {
                    ino,
                    index,
                    logical_bytes: logical,
                    hash: new.hash,
                    base_hash,
                    mask,
                    data: Vec::new(),
                };
                if !self.load_data {
                    patch.data = vec![0; patch_bytes];
                } else if new.overlay.is_none() {
                    return self.emit_patch(patch, new);
                } else {
                    // Rare (a pool that received overlays sends on): read it whole, verified.
                    patch.data = take_pieces(&crate::fs::record::read(self.store, &new)?, logical, mask);
                }
                return self.emit(Record::Patch(patch));
            }
        }
        // Unverified: the receiver checks every block against the checksum sent with it.
        let load = |store: &mut crate::store::Store, ptr: &crate::block::BlockPtr| match self.load_data {
            true => store.read_stored_unverified(ptr),
            false => Ok(Vec::new()),
        };
        let queued = self.load_data && new.overlay.is_none();
        let stored = if queued { Vec::new() } else { load(self.store, &new.ptr)? };
        let overlay = match &new.overlay {
            None => None,
            Some(o) => Some(WriteOverlay {
                mask: o.mask,
                logical_bytes: o.logical_bytes,
                compression: o.ptr.compression,
                checksum: o.ptr.checksum,
                stored_bytes: o.ptr.stored_bytes,
                stored: load(self.store, &o.ptr)?,
            }),
        };
        self.stats.data_bytes += new.stored_bytes();
        let write = WriteRecord {
            ino,
            index,
            logical_bytes: new.ptr.logical_bytes,
            compression: new.ptr.compression,
            checksum: new.ptr.checksum,
            hash: new.hash,
            pieces: new.pieces,
            stored_bytes: new.ptr.stored_bytes,
            stored,
            overlay,
        };
        match queued {
            true => self.emit_write(write, new.ptr),
            false => self.emit(Record::Write(write)),
        }
    }

    fn finish_group(&mut self) -> Result<()> {
        self.finish_names()
    }

    /// Sends the name changes of the current inode, and its removal, once.
    fn finish_names(&mut self) -> Result<()> {
        if self.group.names_sent {
            return Ok(());
        }
        self.group.names_sent = true;
        let ino = self.group.ino;
        let group = Group {
            ino,
            freed: self.group.freed,
            names_sent: true,
            removed: std::mem::take(&mut self.group.removed),
            added: std::mem::take(&mut self.group.added),
        };
        if group.removed.len() == 1 && group.added.len() == 1 && !group.freed {
            let (from_dir, from_name) = group.removed.into_iter().next().expect("one");
            let (to_dir, to_name) = group.added.into_iter().next().expect("one");
            return self.emit(Record::Rename { ino, from_dir, from_name, to_dir, to_name });
        }
        for (dir, name) in group.removed {
            self.emit(Record::Unlink { dir, name, ino })?;
        }
        if group.freed {
            return self.emit(Record::FreeInode { ino });
        }
        for (dir, name) in group.added {
            self.emit(Record::Link { dir, name, ino })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAddr, BlockKind, Compression, Txg};
    use crate::compress::{Codec, compress, frame_starts};
    use crate::fs::record::fingerprint;

    /// A record of `logical` as `compress` stores it under `codec`, at block 0, with its
    /// frame index if `indexed`; and its stored bytes.
    fn stored_record(logical: &[u8], codec: Codec, indexed: bool) -> (FileRecord, Vec<u8>) {
        let (stored, compression, _) = compress(logical.to_vec(), codec);
        assert_ne!(compression, Compression::None);
        let frames = match indexed {
            true => frame_starts(&stored, compression, logical.len() as u32).unwrap(),
            false => Vec::new(),
        };
        let ptr = BlockPtr {
            addr: BlockAddr(0),
            ditto: BlockAddr(0),
            birth: Txg(2),
            stored_bytes: stored.len() as u32,
            logical_bytes: logical.len() as u32,
            kind: BlockKind::FileData,
            compression,
            level: 0,
            checksum: crate::checksum::blake3(&stored),
        };
        let print = fingerprint(logical);
        (FileRecord { ptr, hash: print.hash, pieces: print.pieces, frames, overlay: None }, stored)
    }

    fn log_text(len: usize, seed: u32) -> Vec<u8> {
        let mut text: Vec<u8> = (0..len as u32 / 16)
            .flat_map(|i| format!("{:08} ok {:04}\n", i * 7 + seed, i % 1000).into_bytes())
            .collect();
        text.truncate(len);
        text
    }

    /// Goal: with a frame index, the sender reads only the frames that hold changed
    /// pieces (each run of them in one request), and cuts the same pieces as from the
    /// whole block. Method: records of 1 to 4 frames under zstd and lz4, masks of one
    /// piece, pieces in two frames and every piece; the bytes read counted.
    #[test]
    fn an_indexed_record_is_read_only_in_the_frames_it_needs() {
        for codec in [Codec::Zstd { level: 1 }, Codec::Lz4] {
            for len in [70_000usize, 131_072] {
                let logical = log_text(len, 3);
                let (indexed, stored) = stored_record(&logical, codec, true);
                let (plain, _) = stored_record(&logical, codec, false);
                let frame_bytes = |f: usize| indexed.frame_range(f).unwrap().len();
                for (mask, frames_read) in [
                    (1u32 << 9, vec![1]),
                    (1, vec![0]),
                    (1 << 8 | 1 << 9, vec![1]),
                    (1 << 7 | 1 << 8, vec![0, 1]),
                    (1 << 1 | 1 << 16, vec![0, 2]),
                    (crate::fs::record::all_pieces(len as u32), (0..crate::compress::frames_for(len as u32)).collect()),
                ] {
                    let mut reads = Vec::new();
                    let mut read = |start: usize, n: usize| {
                        reads.push((start, n));
                        Ok(stored[start..start + n].to_vec())
                    };
                    let cut = cut_pieces(&mut read, &indexed, mask).unwrap();
                    assert!(cut == take_pieces(&logical, len as u32, mask), "{codec:?} {len} {mask:#x}");
                    let read_bytes: usize = reads.iter().map(|r| r.1).sum();
                    let want: usize = frames_read.iter().map(|&f| frame_bytes(f)).sum();
                    assert_eq!(read_bytes, want, "{codec:?} {len} {mask:#x}: {reads:?}");
                    assert!(reads.len() <= frames_read.len());
                    let mut whole = 0;
                    let cut_whole = cut_pieces(
                        &mut |start, n| {
                            whole += n;
                            Ok(stored[start..start + n].to_vec())
                        },
                        &plain,
                        mask,
                    )
                    .unwrap();
                    assert!(cut_whole == cut, "without an index: the same pieces");
                    assert_eq!(whole, stored.len(), "without an index: the whole block");
                }
                // One piece of a 4-frame record: about a quarter of the block, not all of it.
                if len == 131_072 {
                    let mut read_bytes = 0;
                    let mut read = |start: usize, n: usize| {
                        read_bytes += n;
                        Ok(stored[start..start + n].to_vec())
                    };
                    cut_pieces(&mut read, &indexed, 1 << 20).unwrap();
                    assert!(read_bytes * 3 < stored.len(), "{codec:?}: {read_bytes} of {}", stored.len());
                }
            }
        }
    }

    /// Goal: an index that passes the decoder's checks but does not match the frames
    /// (a bug, or bytes that changed under it) is corruption, never a panic or wrong
    /// pieces sent silently. Method: indexes shifted by a byte, swapped frames' starts.
    #[test]
    fn a_wrong_frame_index_is_corruption_at_the_sender() {
        let logical = log_text(131_072, 9);
        for codec in [Codec::Zstd { level: 1 }, Codec::Lz4] {
            let (good, stored) = stored_record(&logical, codec, true);
            for shift in [[1i64, 0, 0], [0, -1, 0], [0, 0, 1], [-1, -1, -1]] {
                let mut bad = good.clone();
                for (f, d) in bad.frames.iter_mut().zip(shift) {
                    *f = (*f as i64 + d) as u32;
                }
                let mut read = |start: usize, n: usize| Ok(stored[start..start + n].to_vec());
                let all = crate::fs::record::all_pieces(131_072);
                let err = cut_pieces(&mut read, &bad, all).unwrap_err();
                assert!(matches!(err, Error::Corrupt(_)), "{codec:?} {shift:?}: {err}");
                assert!(err.to_string().contains("by its record's index"), "{err}");
            }
        }
    }

    /// A device of bytes in memory; `refuse` fails every read, as a file system that
    /// refuses O_DIRECT does.
    struct MemoryReader(Vec<u8>, bool);

    impl SharedReader for MemoryReader {
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            let at = offset as usize;
            if self.1 || at + buf.len() > self.0.len() {
                return Err(Error::invalid("refused"));
            }
            buf.copy_from_slice(&self.0[at..at + buf.len()]);
            Ok(())
        }
    }

    // Goal: a run of blocks end to end is read as one request and cut into each record's
    // stored bytes; where the direct reader refuses, each block is read through the
    // other reader, with the same result.
    #[test]
    fn pending_blocks_are_sorted_into_runs_across_short_gaps_and_within_a_span() {
        // Goal: blocks a copy-in wrote out of stream order still go in one request; a
        // gap longer than RUN_GAP_BLOCKS_MAX or a span past RUN_BLOCKS_MAX starts a run.
        let ptr = |addr: u64, blocks: u64| BlockPtr {
            addr: BlockAddr(addr),
            ditto: BlockAddr(0),
            birth: Txg(2),
            stored_bytes: (blocks * BLOCK_BYTES) as u32,
            logical_bytes: (blocks * BLOCK_BYTES) as u32,
            kind: BlockKind::FileData,
            compression: Compression::None,
            level: 0,
            checksum: [0; 32],
        };
        let far = 100 + RUN_GAP_BLOCKS_MAX + 10;
        let blocks = vec![
            (0, ptr(102, 2)),
            (1, ptr(100, 2)),
            (2, ptr(104 + RUN_GAP_BLOCKS_MAX, 1)), // a gap of exactly the most read through
            (3, ptr(100, 2)),                      // the same block as record 1
            (4, ptr(far + 30, 1)),                 // past the gap: a new run
            (5, ptr(far + 31 + RUN_BLOCKS_MAX - 2, 2)), // would span RUN_BLOCKS_MAX + 1
        ];
        let runs: Vec<Vec<u64>> = runs_of(blocks).iter().map(|run| run.iter().map(|(seq, _)| *seq).collect()).collect();
        assert_eq!(runs, vec![vec![1, 3, 0, 2], vec![4], vec![5]]);
    }

    #[test]
    fn a_run_of_blocks_is_cut_into_each_records_bytes_and_falls_back_when_refused() {
        let device: Vec<u8> = (0..8 * BLOCK_BYTES as usize).map(|i| (i * 7 % 251) as u8).collect();
        let ptr = |addr: u64, stored_bytes: u32| BlockPtr {
            addr: BlockAddr(addr),
            ditto: BlockAddr(0),
            birth: Txg(2),
            stored_bytes,
            logical_bytes: stored_bytes,
            kind: BlockKind::FileData,
            compression: Compression::None,
            level: 0,
            checksum: [0; 32],
        };
        // Blocks 1 (one block, 100 bytes), 2-3 (5,000 bytes), 4 (4,096 bytes), a gap at
        // block 5, then block 6 (10 bytes).
        let run = [(7, ptr(1, 100)), (9, ptr(2, 5000)), (10, ptr(4, 4096)), (12, ptr(6, 10))];
        let expected: Vec<(u64, Vec<u8>)> = run
            .iter()
            .map(|(seq, p)| (*seq, device[p.addr.0 as usize * 4096..][..p.stored_bytes as usize].to_vec()))
            .collect();
        let cached = MemoryReader(device.clone(), false);
        for direct in [Some(MemoryReader(device.clone(), false)), Some(MemoryReader(device.clone(), true)), None] {
            let read = read_blocks(&cached, direct.as_ref().map(|d| d as &dyn SharedReader), &run);
            let read: Vec<(u64, Vec<u8>)> = read.into_iter().map(|(seq, bytes)| (seq, bytes.unwrap())).collect();
            assert_eq!(read, expected);
        }
        let failing = read_blocks(&MemoryReader(Vec::new(), true), None, &run);
        assert!(failing.iter().all(|(_, bytes)| bytes.is_err()), "a failed read is each record's error");
    }
}
