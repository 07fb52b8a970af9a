//! PATCH records applied on worker threads, in one of two ways (a `Plan`):
//!
//! - as an overlay (fs/record.rs): the changed pieces go into a small block laid over
//!   the record's base, which is neither read nor rewritten. This is the common case,
//!   and what keeps an incremental receive's cost to the size of the change: a cold
//!   128 KiB read, a decompression and a compression per touched record were most of
//!   its time before.
//! - as a rewrite: the record is read, decompressed, patched, checked against the
//!   sender's record fingerprint and compressed again. For records whose overlay would
//!   grow past OVERLAY_PIECES_MAX pieces, for pools formatted without overlays, and for
//!   version-1 streams, whose PATCH records do not say which base they apply to.
//!
//! The calling thread hands out jobs and later writes the results; the tree sees each
//! result applied whole. Results come back in any order: the caller drains the patcher
//! before any record that could touch the same keys (a part names each key at most
//! once, so within a run of patches order does not matter).

use crate::block::BlockPtr;
use crate::checksum::{blake3, piece_hash};
use crate::compress::Codec;
use crate::device::SharedReader;
use crate::error::{Error, Result};
use crate::fs::record::{OVERLAY_PIECES_MAX, PIECE_BYTES, Record, all_pieces, fingerprint, lay_pieces, piece_len};
use crate::store::StoredBlock;
use crate::workers::Workers;
use std::sync::Arc;

use super::wire::PatchRecord;

/// A patched block is compressed at most at this zstd level (the fast strategy): at
/// the default level 3, recompressing rewritten records was most of an incremental
/// receive. A later rewrite by `sync` or a WRITE stores them at the pool's level again.
pub const PATCH_COMPRESSION_LEVEL_MAX: u8 = 1;

/// Patches queued at most: bounds memory to a few MiB.
pub const PATCHES_IN_FLIGHT_MAX: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Lay the pieces over the record: reads at most its old overlay.
    Overlay,
    /// Read the record, patch it, check it, write it whole.
    Rewrite,
}

pub struct PatchJob {
    pub ino: u64,
    pub index: u64,
    /// The target's record before the patch.
    pub old: Record,
    pub patch: PatchRecord,
    pub plan: Plan,
    /// Stored bytes of the blocks the job reads, when the caller read them (the workers
    /// have no reader of their own): (address, bytes), unverified.
    pub pre_read: Vec<(u64, Vec<u8>)>,
    /// Where the record is, for messages ("record 12 of part 0 at byte 3456").
    pub at: String,
}

pub use crate::fs::apply::{Outcome, Patched};

pub struct Patcher {
    workers: Workers<PatchJob, Result<Patched>>,
    reads: bool,
    overlays: bool,
    level: Codec,
}

/// A PATCH whose overlay is at most this many bytes and reads nothing is applied by the
/// receiving thread itself: one piece is never compressed, and handing it to a worker
/// and back cost more than the copy and the checksum it needs.
const PATCH_HERE_BYTES_MAX: usize = PIECE_BYTES;

/// How a PATCH applies to the target's `old` record. A PATCH that names its base and
/// finds another is refused here, before anything is read.
pub fn plan(old: &Record, patch: &PatchRecord, overlays: bool) -> Result<Plan> {
    if let Some(base) = patch.base_hash {
        if base != old.hash {
            return Err(Error::stream(format!(
                "PATCH of record {} of inode {} applies to a record the target does not have: \
                 the target's copy differs from the base",
                patch.index, patch.ino
            )));
        }
    }
    // A piece the patch leaves alone must keep its length, else the sender's
    // fingerprint of it would have changed and the piece would be in the patch.
    let (old_logical, new_logical) = (old.logical_bytes() as u32, patch.logical_bytes);
    for i in (0..32usize).filter(|&i| all_pieces(new_logical) & !patch.mask & (1 << i) != 0) {
        if i >= old.pieces.len() || piece_len(old_logical, i) != piece_len(new_logical, i) {
            return Err(Error::stream(format!(
                "PATCH of record {} of inode {} resizes it to {new_logical} bytes but leaves out piece {i}, \
                 which changes",
                patch.index, patch.ino
            )));
        }
    }
    let merged = overlay_kept(old, patch) | patch.mask;
    if overlays && patch.base_hash.is_some() && merged.count_ones() <= OVERLAY_PIECES_MAX {
        Ok(Plan::Overlay)
    } else {
        Ok(Plan::Rewrite)
    }
}

/// The old overlay's pieces that stay in the record after `patch`.
fn overlay_kept(old: &Record, patch: &PatchRecord) -> u32 {
    old.overlay.as_ref().map_or(0, |o| o.mask & all_pieces(patch.logical_bytes) & !patch.mask)
}

/// The blocks a job of this plan reads.
pub fn reads(old: &Record, patch: &PatchRecord, plan: Plan) -> Vec<BlockPtr> {
    match plan {
        Plan::Overlay if overlay_kept(old, patch) != 0 => old.overlay.iter().map(|o| o.ptr).collect(),
        Plan::Overlay => Vec::new(),
        Plan::Rewrite => old.blocks().copied().collect(),
    }
}

fn read_stored(job: &mut PatchJob, ptr: &BlockPtr, reader: Option<&dyn SharedReader>) -> Result<Vec<u8>> {
    if let Some(i) = job.pre_read.iter().position(|(addr, _)| *addr == ptr.addr.0) {
        return Ok(job.pre_read.swap_remove(i).1);
    }
    let reader = reader.expect("a job without its bytes comes with a reader");
    let mut stored = vec![0u8; ptr.stored_bytes as usize];
    reader.read_at(ptr.addr.byte_offset(), &mut stored)?;
    Ok(stored)
}

fn damaged(job: &PatchJob, ptr: &BlockPtr, stored: &[u8]) -> Option<Error> {
    (blake3(stored) != ptr.checksum).then(|| {
        Error::corrupt(format!(
            "checksum mismatch in the target's record {} of inode {} (block {}), which {} patches",
            job.index, job.ino, ptr.addr.0, job.at
        ))
    })
}

fn patch(mut job: PatchJob, level: Codec, reader: Option<&dyn SharedReader>) -> Result<Patched> {
    match job.plan {
        Plan::Overlay => overlay(job, level, reader),
        Plan::Rewrite => {
            let mut bytes = Vec::new();
            let mut read = Vec::new();
            for ptr in job.old.blocks().copied().collect::<Vec<_>>() {
                let stored = read_stored(&mut job, &ptr, reader)?;
                match crate::compress::decompress(stored.clone(), ptr.compression, ptr.logical_bytes) {
                    Ok(logical) if ptr.addr == job.old.ptr.addr => bytes = logical,
                    Ok(pieces) => {
                        let o = job.old.overlay.as_ref().expect("a second block is the overlay");
                        lay_pieces(&mut bytes, o.logical_bytes, o.mask, &pieces);
                    }
                    Err(e) => return Err(damaged(&job, &ptr, &stored).unwrap_or(e)),
                }
                read.push((ptr, stored));
            }
            bytes.resize(job.old.logical_bytes() as usize, 0);
            lay_pieces(&mut bytes, job.patch.logical_bytes, job.patch.mask, &job.patch.data);
            // The target's old bytes are verified by the result: a patched record whose
            // fingerprint is the sender's came from the base's bytes. Only when it is not
            // are their checksums worth computing, to tell a damaged block of the target
            // from a target that is not at the base.
            let print = fingerprint(&bytes);
            if print.hash != job.patch.hash {
                if let Some(e) = read.iter().find_map(|(ptr, stored)| damaged(&job, ptr, stored)) {
                    return Err(e);
                }
                return Err(Error::stream(format!(
                    "{}: PATCH of record {} of inode {} does not give the sender's bytes: the target's copy \
                     differs from the base",
                    job.at, job.index, job.ino
                )));
            }
            let block = StoredBlock::prepare(bytes, level);
            Ok(Patched {
                ino: job.ino,
                index: job.index,
                old: job.old,
                block,
                outcome: Outcome::Whole { fingerprint: print },
            })
        }
    }
}

/// Merges the patch's pieces with the old overlay's that stay, into a new overlay.
fn overlay(mut job: PatchJob, level: Codec, reader: Option<&dyn SharedReader>) -> Result<Patched> {
    let logical = job.patch.logical_bytes;
    let kept = overlay_kept(&job.old, &job.patch);
    let mut old_pieces: Vec<(usize, Vec<u8>)> = Vec::new();
    if let (true, Some(o)) = (kept != 0, job.old.overlay.clone()) {
        // Verified here: nothing later checks these bytes against the sender's.
        let stored = read_stored(&mut job, &o.ptr, reader)?;
        if let Some(e) = damaged(&job, &o.ptr, &stored) {
            return Err(e);
        }
        let data = crate::compress::decompress(stored, o.ptr.compression, o.ptr.logical_bytes)?;
        let mut at = 0;
        for i in (0..32usize).filter(|i| o.mask & (1 << i) != 0) {
            let len = piece_len(o.logical_bytes, i);
            old_pieces.push((i, data[at..at + len].to_vec()));
            at += len;
        }
    }
    let mask = kept | job.patch.mask;
    let mut data = Vec::with_capacity(mask.count_ones() as usize * PIECE_BYTES);
    let mut at = 0;
    let count = (logical as usize).div_ceil(PIECE_BYTES);
    let mut pieces = Vec::with_capacity(count);
    for i in 0..count {
        if job.patch.mask & (1 << i) != 0 {
            let piece = &job.patch.data[at..at + piece_len(logical, i)];
            at += piece.len();
            pieces.push(piece_hash(piece));
            data.extend_from_slice(piece);
        } else {
            pieces.push(job.old.pieces[i]);
            if kept & (1 << i) != 0 {
                let (_, piece) = old_pieces.iter().find(|(j, _)| *j == i).expect("a kept piece was read");
                data.extend_from_slice(piece);
            }
        }
    }
    let block = StoredBlock::prepare(data, level);
    let outcome = Outcome::Overlay { mask, logical_bytes: logical, hash: job.patch.hash, pieces };
    Ok(Patched { ino: job.ino, index: job.index, old: job.old, block, outcome })
}

impl Patcher {
    /// With a shared reader, the workers read the old blocks themselves: a receive into
    /// a cold cache waits for small random reads, and several in flight hide their
    /// latency, so there are more workers than cores. `overlays`: the pool takes them.
    pub fn new(compression_level: Codec, reader: Option<Arc<dyn SharedReader>>, overlays: bool) -> Patcher {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        let threads = if reader.is_some() { (2 * cores).max(4) } else { cores };
        let reads = reader.is_some();
        let workers = Workers::with_threads(threads, move |job| patch(job, compression_level, reader.as_deref()));
        Patcher { workers, reads, overlays, level: compression_level }
    }

    pub fn reads_for_itself(&self) -> bool {
        self.reads
    }

    pub fn plan(&self, old: &Record, patch: &PatchRecord) -> Result<Plan> {
        plan(old, patch, self.overlays)
    }

    pub fn in_flight(&self) -> usize {
        self.workers.in_flight()
    }

    /// Hands the job to a worker; a small overlay that reads nothing (see
    /// PATCH_HERE_BYTES_MAX) is made on this thread instead and returned.
    pub fn submit(&mut self, job: PatchJob) -> Option<Result<Patched>> {
        let small = job.plan == Plan::Overlay
            && overlay_kept(&job.old, &job.patch) == 0
            && job.patch.data.len() <= PATCH_HERE_BYTES_MAX;
        if small {
            return Some(patch(job, self.level, None));
        }
        self.workers.submit(job);
        None
    }

    /// Waits for one finished patch.
    pub fn wait_one(&mut self) -> Option<Result<Patched>> {
        self.workers.wait_one()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAddr, BlockKind, Compression, Txg};
    use crate::fs::record::Overlay;
    const ZSTD_1: Codec = Codec::Zstd { level: 1 };

    fn ptr(addr: u64, kind: BlockKind, bytes: &[u8]) -> BlockPtr {
        BlockPtr {
            addr: BlockAddr(addr),
            ditto: BlockAddr(0),
            birth: Txg(3),
            stored_bytes: bytes.len() as u32,
            logical_bytes: bytes.len() as u32,
            kind,
            compression: Compression::None,
            level: 0,
            checksum: blake3(bytes),
        }
    }

    fn record(bytes: &[u8]) -> Record {
        let print = fingerprint(bytes);
        Record {
            ptr: ptr(100, BlockKind::FileData, bytes),
            hash: print.hash,
            pieces: print.pieces,
            frames: vec![],
            overlay: None,
        }
    }

    fn job(old: Record, stored: Vec<(u64, Vec<u8>)>, patch: PatchRecord, plan: Plan) -> PatchJob {
        PatchJob { ino: 5, index: 0, old, patch, plan, pre_read: stored, at: "record 9 of part 0 at byte 1234".into() }
    }

    fn patch_of(new: &[u8], base_hash: Option<u128>, mask: u32) -> PatchRecord {
        let data = crate::fs::record::take_pieces(new, new.len() as u32, mask);
        PatchRecord {
            ino: 5,
            index: 0,
            logical_bytes: new.len() as u32,
            hash: fingerprint(new).hash,
            base_hash,
            mask,
            data,
        }
    }

    /// The bytes a patched record reads as.
    fn read_back(old: &Record, base: &[u8], done: &Patched) -> Vec<u8> {
        match &done.outcome {
            Outcome::Whole { .. } => done.block_logical(),
            Outcome::Overlay { mask, logical_bytes, .. } => {
                let mut bytes = base.to_vec();
                assert_eq!(old.ptr.logical_bytes as usize, base.len());
                lay_pieces(&mut bytes, *logical_bytes, *mask, &done.block_logical());
                bytes
            }
        }
    }

    impl Patched {
        fn block_logical(&self) -> Vec<u8> {
            let b = &self.block;
            crate::compress::decompress(b.stored.clone(), b.compression, b.logical_bytes as u32).unwrap()
        }
    }

    #[test]
    fn a_rewrite_checks_its_result_and_names_damage() {
        // Goal: a good rewrite gives the sender's record; a target record that is not the
        // base's is a stream error naming the record; a damaged one is corruption.
        let old: Vec<u8> = (0..8192u32).map(|i| (i * 7) as u8).collect();
        let mut new = old.clone();
        new[4096..].fill(0xAB);
        let p = patch_of(&new, None, 0b10);
        let done = patch(job(record(&old), vec![(100, old.clone())], p.clone(), Plan::Rewrite), ZSTD_1, None).unwrap();
        assert_eq!(read_back(&record(&old), &old, &done), new);
        let mut wrong = p.clone();
        wrong.hash ^= 1;
        let err = patch(job(record(&old), vec![(100, old.clone())], wrong, Plan::Rewrite), ZSTD_1, None).err().unwrap();
        assert!(matches!(&err, Error::Stream { what } if what.contains("record 9 of part 0")), "{err}");
        let mut damaged = old.clone();
        damaged[10] ^= 1;
        let err = patch(job(record(&old), vec![(100, damaged)], p, Plan::Rewrite), ZSTD_1, None).err().unwrap();
        assert!(matches!(&err, Error::Corrupt(c) if c.what.contains("checksum mismatch")), "{err}");
    }

    #[test]
    fn overlays_merge_grow_and_give_way_to_rewrites() {
        // Goal: a patch on a record lands in an overlay without reading the base; a second
        // patch keeps the first's pieces; the result reads as the sender's bytes with the
        // sender's piece fingerprints; past OVERLAY_PIECES_MAX pieces, or with a base
        // that is not the record's, or without a base hash (version 1), the plan says so.
        let base: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let old = record(&base);
        let mut v1 = base.clone();
        v1[0..10].fill(1);
        let p1 = patch_of(&v1, Some(old.hash), 0b1);
        assert_eq!(plan(&old, &p1, true).unwrap(), Plan::Overlay);
        assert!(reads(&old, &p1, Plan::Overlay).is_empty(), "a first overlay reads nothing");
        let done = patch(job(old.clone(), vec![], p1, Plan::Overlay), ZSTD_1, None).unwrap();
        assert_eq!(read_back(&old, &base, &done), v1);
        let Outcome::Overlay { mask, logical_bytes, hash, pieces } = &done.outcome else { panic!("an overlay") };
        assert_eq!((*hash, pieces.clone()), (fingerprint(&v1).hash, fingerprint(&v1).pieces));
        let overlay_bytes = done.block_logical();
        let overlay_ptr = ptr(200, BlockKind::FileOverlay, &overlay_bytes);
        let r1 = Record {
            ptr: old.ptr,
            hash: *hash,
            pieces: pieces.clone(),
            frames: old.frames.clone(),
            overlay: Some(Overlay { mask: *mask, logical_bytes: *logical_bytes, ptr: overlay_ptr }),
        };
        // Second patch: piece 2 changes and the record grows into a sixth piece.
        let mut v2 = v1.clone();
        v2[9000] = 7;
        v2.resize(22_000, 3);
        let p2 = patch_of(&v2, Some(r1.hash), 0b110100);
        assert_eq!(plan(&r1, &p2, true).unwrap(), Plan::Overlay);
        assert_eq!(reads(&r1, &p2, Plan::Overlay), vec![overlay_ptr], "kept pieces come from the old overlay");
        let done = patch(job(r1.clone(), vec![(200, overlay_bytes)], p2.clone(), Plan::Overlay), ZSTD_1, None).unwrap();
        assert_eq!(read_back(&old, &base, &done), v2);
        // A rewrite of the overlaid record gives the same bytes.
        let stored = vec![(100, base.clone()), (200, done_overlay_bytes(&r1, &base, &v1))];
        let whole = patch(job(r1.clone(), stored, p2.clone(), Plan::Rewrite), ZSTD_1, None).unwrap();
        assert_eq!(whole.block_logical(), v2);
        // The plan's refusals and fallbacks.
        let mut other = p2.clone();
        other.base_hash = Some(old.hash);
        assert!(plan(&r1, &other, true).unwrap_err().to_string().contains("differs from the base"));
        let mut v1_stream = p2.clone();
        v1_stream.base_hash = None;
        assert_eq!(plan(&r1, &v1_stream, true).unwrap(), Plan::Rewrite);
        assert_eq!(plan(&r1, &p2, false).unwrap(), Plan::Rewrite);
        let wide = patch_of(&vec![9u8; 20_000], Some(old.hash), 0b11111);
        assert_eq!(plan(&old, &wide, true).unwrap(), Plan::Overlay);
        let mut wider_new = vec![9u8; 20_000];
        wider_new.resize(40_000, 4);
        let wider = patch_of(&wider_new, Some(old.hash), all_pieces(40_000));
        assert_eq!(plan(&old, &wider, true).unwrap(), Plan::Rewrite, "ten pieces is past the overlay's limit");
        let mut short = patch_of(&v2, Some(r1.hash), 0b100100);
        short.data.truncate(crate::fs::record::masked_bytes(22_000, 0b100100).unwrap());
        assert!(plan(&r1, &short, true).unwrap_err().to_string().contains("leaves out piece 4"));
    }

    /// The overlay block of `r1` (pieces of `v1` under its mask).
    fn done_overlay_bytes(r1: &Record, _base: &[u8], v1: &[u8]) -> Vec<u8> {
        let o = r1.overlay.as_ref().unwrap();
        crate::fs::record::take_pieces(v1, o.logical_bytes, o.mask)
    }
}
