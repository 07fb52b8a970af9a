//! File records: a file's bytes in pieces of RECORD_BYTES, each one block.
//!
//! Beside each record's pointer the tree keeps a 128-bit fingerprint of the record and a
//! 64-bit fingerprint of every 4 KiB piece of it. `sync` keeps a record whose source bytes
//! have the same fingerprint; an incremental stream compares piece fingerprints with the
//! base's to send only the 4 KiB pieces that changed, without reading the base's data.
//!
//! A record may carry an overlay: a second block holding some of its 4 KiB pieces, laid
//! over the base block when the record is read. A receive applies an incremental
//! stream's changed pieces this way, without reading, decompressing and compressing
//! again the 128 KiB record they land in; the base block stays shared with the
//! snapshots that had it. An overlay holds at most OVERLAY_PIECES_MAX pieces, so a read
//! never fetches much more than the record; past that the record is rewritten whole.
//!
//! A record whose base block is compressed in several frames keeps a frame index: where
//! each frame after the first starts in the stored bytes. An incremental send cuts
//! changed pieces out of the base by reading only the frames that hold them, so its
//! reads follow the size of the change, not of the records it touches (a 32 KiB frame
//! of a 128 KiB record). Records written before the index (and pools without the
//! `frame_index` feature) have none, and are read whole as before.

use crate::block::{BlockKind, BlockPtr};
use crate::checksum::{piece_hash, record_hash};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const RECORD_BYTES: u64 = 128 * 1024;
/// The largest file snapfs stores: 2^63 bytes less one record, 8 EiB less 128 KiB, as
/// ZFS and btrfs name theirs. Every byte offset of such a file fits the host's `off_t`
/// (an i64), so export can write it where the host file system allows (btrfs, XFS and
/// tmpfs take 2^63 - 1; ext4 stops at 16 TiB and says so); every record index
/// (< 2^46) times RECORD_BYTES fits a u64. Sizes from arguments, host files and streams
/// are checked against it before any arithmetic uses them.
pub const FILE_BYTES_MAX: u64 = (1 << 63) - RECORD_BYTES;
/// Records of a file of FILE_BYTES_MAX bytes: every record index is below it.
pub const FILE_RECORDS_MAX: u64 = FILE_BYTES_MAX / RECORD_BYTES;
const _: () = assert!(FILE_BYTES_MAX.is_multiple_of(RECORD_BYTES));
const _: () = assert!(FILE_BYTES_MAX <= i64::MAX as u64);

/// Refuses a file of `size` bytes, past FILE_BYTES_MAX; `what` names it.
pub fn check_file_size(what: &str, size: u64) -> Result<()> {
    if size > FILE_BYTES_MAX {
        return Err(Error::invalid(format!(
            "{what} is {size} bytes, past {FILE_BYTES_MAX}, the largest file snapfs stores (8 EiB less 128 KiB)"
        )));
    }
    Ok(())
}

/// The end of `len` bytes written at `offset`, if the file stays within FILE_BYTES_MAX;
/// otherwise an error with the figures (exit 2: the arguments ask for it).
pub fn file_end(offset: u64, len: u64) -> Result<u64> {
    match offset.checked_add(len) {
        Some(end) if end <= FILE_BYTES_MAX => Ok(end),
        _ => {
            let what = if len == 0 {
                format!("offset {offset} lies past byte {FILE_BYTES_MAX}")
            } else {
                format!("{len} bytes at offset {offset} would end past byte {FILE_BYTES_MAX}")
            };
            Err(Error::invalid(format!(
                "{what}, the largest file snapfs stores (8 EiB less 128 KiB); give an offset of at most {}",
                FILE_BYTES_MAX.saturating_sub(len)
            )))
        }
    }
}
pub const PIECE_BYTES: usize = 4096;
pub const PIECES_MAX: usize = RECORD_BYTES as usize / PIECE_BYTES;
/// Pieces an overlay holds at most: a quarter of a record.
pub const OVERLAY_PIECES_MAX: u32 = 8;
/// Bytes an overlay adds to a record's value: mask, logical size, pointer.
const OVERLAY_VALUE_BYTES: usize = 8 + crate::block::BLOCK_PTR_BYTES;
/// Set in the piece count (at most 32) when a frame index follows the fingerprints.
const FRAME_INDEX_FLAG: u16 = 1 << 15;

/// A file record: `ptr` is its base block. `hash` and `pieces` fingerprint the record's
/// content as read, overlay included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub ptr: BlockPtr,
    pub hash: u128,
    pub pieces: Vec<u64>,
    /// The base block's frame index (`compress::frame_starts`): the stored offset of
    /// each frame after the first. Empty when the block is raw or one frame, or the
    /// record was written without one.
    pub frames: Vec<u32>,
    pub overlay: Option<Overlay>,
}

/// Pieces laid over a record's base block: bit i of `mask` set means piece i is read
/// from the overlay block, which holds the masked pieces in order. The record's size is
/// `logical_bytes`, which may differ from the base's: bytes past the base's end that no
/// piece covers are zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlay {
    pub mask: u32,
    pub logical_bytes: u32,
    pub ptr: BlockPtr,
}

pub struct Fingerprint {
    pub hash: u128,
    pub pieces: Vec<u64>,
}

pub fn fingerprint(data: &[u8]) -> Fingerprint {
    Fingerprint { hash: record_hash(data), pieces: data.chunks(PIECE_BYTES).map(piece_hash).collect() }
}

/// Length of piece `i` of a record of `logical_bytes` (the last may be short).
pub fn piece_len(logical_bytes: u32, i: usize) -> usize {
    (logical_bytes as usize - i * PIECE_BYTES).min(PIECE_BYTES)
}

/// Bytes the pieces in `mask` hold in a record of `logical_bytes`; None if a piece lies
/// past the end.
pub fn masked_bytes(logical_bytes: u32, mask: u32) -> Option<usize> {
    let pieces = (logical_bytes as usize).div_ceil(PIECE_BYTES);
    let mut total = 0;
    for i in 0..32 {
        if mask & (1 << i) != 0 {
            if i >= pieces {
                return None;
            }
            total += piece_len(logical_bytes, i);
        }
    }
    Some(total)
}

/// The mask of every piece of a record of `logical_bytes`.
pub fn all_pieces(logical_bytes: u32) -> u32 {
    let pieces = (logical_bytes as usize).div_ceil(PIECE_BYTES);
    if pieces >= 32 { u32::MAX } else { (1u32 << pieces) - 1 }
}

/// Lays the masked pieces (`data`, in order) over `bytes`, a record of `logical_bytes`.
pub fn lay_pieces(bytes: &mut Vec<u8>, logical_bytes: u32, mask: u32, data: &[u8]) {
    bytes.resize(logical_bytes as usize, 0);
    let mut at = 0;
    for i in (0..32usize).filter(|i| mask & (1 << i) != 0) {
        let start = i * PIECE_BYTES;
        let len = piece_len(logical_bytes, i);
        bytes[start..start + len].copy_from_slice(&data[at..at + len]);
        at += len;
    }
}

/// The masked pieces of a record's bytes, in order.
pub fn take_pieces(bytes: &[u8], logical_bytes: u32, mask: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for i in (0..32usize).filter(|i| mask & (1 << i) != 0) {
        let start = i * PIECE_BYTES;
        out.extend_from_slice(&bytes[start..start + piece_len(logical_bytes, i)]);
    }
    out
}

impl Record {
    /// The record's size as read.
    pub fn logical_bytes(&self) -> u64 {
        self.overlay.as_ref().map_or(self.ptr.logical_bytes, |o| o.logical_bytes) as u64
    }

    /// Bytes its blocks occupy before padding.
    pub fn stored_bytes(&self) -> u64 {
        self.blocks().map(|b| b.stored_bytes as u64).sum()
    }

    /// The blocks the record reads: the base, then the overlay if any.
    pub fn blocks(&self) -> impl Iterator<Item = &BlockPtr> {
        std::iter::once(&self.ptr).chain(self.overlay.as_ref().map(|o| &o.ptr))
    }

    /// The blocks of `self` that `new`, which replaces it, does not keep.
    pub fn blocks_dropped_by<'a>(&'a self, new: Option<&'a Record>) -> impl Iterator<Item = &'a BlockPtr> {
        self.blocks().filter(move |b| !new.is_some_and(|n| n.blocks().any(|k| k.addr == b.addr)))
    }

    /// Stored bytes `[start, end)` of frame `i` of the base block, by its index; None
    /// without an index.
    pub fn frame_range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        if self.frames.is_empty() || i > self.frames.len() {
            return None;
        }
        let start = if i == 0 { 0 } else { self.frames[i - 1] as usize };
        let end = self.frames.get(i).map_or(self.ptr.stored_bytes as usize, |&e| e as usize);
        Some(start..end)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        BlockPtr::encode(Some(&self.ptr), &mut w);
        w.raw(&self.hash.to_le_bytes());
        let flag = if self.frames.is_empty() { 0 } else { FRAME_INDEX_FLAG };
        w.u16(self.pieces.len() as u16 | flag);
        for p in &self.pieces {
            w.u64(*p);
        }
        if !self.frames.is_empty() {
            w.u8(self.frames.len() as u8);
            for f in &self.frames {
                w.u32(*f);
            }
        }
        if let Some(o) = &self.overlay {
            w.u32(o.mask);
            w.u32(o.logical_bytes);
            BlockPtr::encode(Some(&o.ptr), &mut w);
        }
        w.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let mut r = Reader::new(bytes, "file record");
        let ptr = BlockPtr::decode(&mut r)?.ok_or_else(|| Error::corrupt("file record with a null pointer"))?;
        let hash = u128::from_le_bytes(r.array::<16>()?);
        let raw_count = r.u16()?;
        let count = (raw_count & !FRAME_INDEX_FLAG) as usize;
        if count > PIECES_MAX {
            return Err(Error::corrupt(format!("file record with {count} piece fingerprints")));
        }
        let mut pieces = Vec::with_capacity(count);
        for _ in 0..count {
            pieces.push(r.u64()?);
        }
        let mut frames = Vec::new();
        if raw_count & FRAME_INDEX_FLAG != 0 {
            let n = r.u8()?;
            for _ in 0..n {
                frames.push(r.u32()?);
            }
            check_frame_index(&ptr, &frames)?;
        }
        let overlay = match r.remaining() {
            0 => None,
            OVERLAY_VALUE_BYTES => Some(decode_overlay(&mut r)?),
            n => return Err(Error::corrupt(format!("file record has {n} trailing bytes"))),
        };
        let record = Record { ptr, hash, pieces, frames, overlay };
        let logical = record.logical_bytes();
        if ptr.logical_bytes as u64 > RECORD_BYTES || logical > RECORD_BYTES || logical == 0 {
            return Err(Error::corrupt(format!("file record of {logical} bytes")));
        }
        if count != (logical as usize).div_ceil(PIECE_BYTES) {
            return Err(Error::corrupt(format!("file record of {logical} bytes with {count} piece fingerprints")));
        }
        Ok(record)
    }
}

/// The frame index of a base block about to be written (none if it has one frame or is
/// raw); a record that keeps one needs the pool's `frame_index` feature, which the
/// commit sets first (pool/features.rs).
pub fn frame_index(store: &mut crate::store::Store, block: &crate::store::StoredBlock) -> Vec<u32> {
    let frames = u32::try_from(block.logical_bytes)
        .ok()
        .and_then(|logical| crate::compress::frame_starts(&block.stored, block.compression, logical))
        .unwrap_or_default();
    if !frames.is_empty() {
        store.features_needed |= crate::format::label::FEATURE_FRAME_INDEX;
    }
    frames
}

/// A frame index must name every frame after the first of a compressed block, in
/// order, inside its stored bytes: a sender reads the ranges it gives.
fn check_frame_index(ptr: &BlockPtr, frames: &[u32]) -> Result<()> {
    let want = crate::compress::frames_for(ptr.logical_bytes).saturating_sub(1);
    if ptr.compression == crate::block::Compression::None || frames.len() != want || want == 0 {
        return Err(Error::corrupt(format!(
            "file record has a frame index of {} frames for a block of {} bytes compressed as {:?}, \
             which has {want} after the first",
            frames.len(),
            ptr.logical_bytes,
            ptr.compression
        )));
    }
    let mut previous = 0;
    for &start in frames {
        if start <= previous || start >= ptr.stored_bytes {
            return Err(Error::corrupt(format!(
                "file record's frame index {frames:?} is not increasing inside the block's {} stored bytes",
                ptr.stored_bytes
            )));
        }
        previous = start;
    }
    Ok(())
}

/// Reads a record's bytes, each block verified: the base, with the overlay laid over it.
pub fn read(store: &mut crate::store::Store, record: &Record) -> Result<Vec<u8>> {
    check_kinds(record)?;
    let mut bytes = store.read_block(&record.ptr)?;
    if let Some(o) = &record.overlay {
        let pieces = store.read_block(&o.ptr)?;
        lay_pieces(&mut bytes, o.logical_bytes, o.mask, &pieces);
    }
    Ok(bytes)
}

/// Each pointer of a record names the kind of block it should.
pub fn check_kinds(record: &Record) -> Result<()> {
    let wrong = |ptr: &BlockPtr, want: BlockKind| {
        Error::corrupt(format!("a {} block where a {} block belongs", ptr.kind.name(), want.name()))
    };
    if record.ptr.kind != BlockKind::FileData {
        return Err(wrong(&record.ptr, BlockKind::FileData));
    }
    match &record.overlay {
        Some(o) if o.ptr.kind != BlockKind::FileOverlay => Err(wrong(&o.ptr, BlockKind::FileOverlay)),
        _ => Ok(()),
    }
}

fn decode_overlay(r: &mut Reader) -> Result<Overlay> {
    let mask = r.u32()?;
    let logical_bytes = r.u32()?;
    let ptr = BlockPtr::decode(r)?.ok_or_else(|| Error::corrupt("file record overlay with a null pointer"))?;
    if logical_bytes == 0 || logical_bytes as u64 > RECORD_BYTES {
        return Err(Error::corrupt(format!("file record overlay for a record of {logical_bytes} bytes")));
    }
    let bytes = masked_bytes(logical_bytes, mask)
        .ok_or_else(|| Error::corrupt(format!("file record overlay names pieces {mask:#x} past its end")))?;
    if mask == 0 || mask.count_ones() > OVERLAY_PIECES_MAX || ptr.logical_bytes as usize != bytes {
        return Err(Error::corrupt(format!(
            "file record overlay of pieces {mask:#x} in a block of {} bytes",
            ptr.logical_bytes
        )));
    }
    Ok(Overlay { mask, logical_bytes, ptr })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAddr, Compression, Txg};

    fn base(stored_bytes: u32, logical_bytes: u32, compression: Compression) -> BlockPtr {
        BlockPtr {
            addr: BlockAddr(100),
            ditto: BlockAddr(0),
            birth: Txg(3),
            stored_bytes,
            logical_bytes,
            kind: BlockKind::FileData,
            compression,
            level: 0,
            checksum: [7; 32],
        }
    }

    fn record(ptr: BlockPtr, frames: Vec<u32>, overlay: Option<Overlay>) -> Record {
        let logical = overlay.as_ref().map_or(ptr.logical_bytes, |o| o.logical_bytes);
        let pieces = (0..(logical as usize).div_ceil(PIECE_BYTES) as u64).map(|i| i * 31 + 5).collect();
        Record { ptr, hash: 0x1234_5678_9abc_def0_u128 << 20, pieces, frames, overlay }
    }

    /// Goal: a record reads back as written with and without a frame index and an
    /// overlay, and one without an index encodes as before the index existed. Method:
    /// the four combinations, and the bytes of one without either against the layout
    /// FORMAT.md gives for version 1 records (pointer, hash, u16 count, pieces).
    #[test]
    fn records_round_trip_with_and_without_frame_index_and_overlay() {
        let zstd = base(20_000, 131_072, Compression::Zstd);
        let overlay = Overlay {
            mask: 0b101,
            logical_bytes: 131_072,
            ptr: {
                let mut p = base(8192, 8192, Compression::None);
                p.kind = BlockKind::FileOverlay;
                p.addr = BlockAddr(200);
                p
            },
        };
        for (frames, overlay) in [
            (vec![], None),
            (vec![5000, 10_000, 15_000], None),
            (vec![], Some(overlay.clone())),
            (vec![4100, 9000, 19_999], Some(overlay.clone())),
        ] {
            let r = record(zstd, frames.clone(), overlay.clone());
            let bytes = r.encode();
            assert_eq!(Record::decode(&bytes).unwrap(), r, "{frames:?} {overlay:?}");
            let index_bytes = if frames.is_empty() { 0 } else { 1 + 4 * frames.len() };
            let overlay_bytes = if overlay.is_some() { OVERLAY_VALUE_BYTES } else { 0 };
            let plain = crate::block::BLOCK_PTR_BYTES + 16 + 2 + 8 * 32;
            assert_eq!(bytes.len(), plain + index_bytes + overlay_bytes);
            let count = u16::from_le_bytes(bytes[plain - 8 * 32 - 2..plain - 8 * 32].try_into().unwrap());
            assert_eq!(count, 32 | if frames.is_empty() { 0 } else { FRAME_INDEX_FLAG });
        }
        // A short last frame: a record of 70,000 bytes has three frames.
        let r = record(base(9000, 70_000, Compression::Lz4), vec![3000, 6000], None);
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert_eq!(r.frame_range(0), Some(0..3000));
        assert_eq!(r.frame_range(2), Some(6000..9000));
        assert_eq!(r.frame_range(3), None);
        assert_eq!(record(base(9000, 70_000, Compression::Lz4), vec![], None).frame_range(0), None);
    }

    /// Goal: a frame index that could send a reader outside its block, or that does not
    /// fit the block's frames, is corruption, never a panic. Method: each way an index
    /// can lie, encoded and decoded, and every truncation of a record with an index.
    #[test]
    fn a_lying_frame_index_is_corruption() {
        let zstd = base(20_000, 131_072, Compression::Zstd);
        for (ptr, frames, says) in [
            (base(131_072, 131_072, Compression::None), vec![1, 2, 3], "compressed as None"),
            (zstd, vec![5000, 10_000], "index of 2 frames"),
            (zstd, vec![5000, 10_000, 15_000, 18_000], "index of 4 frames"),
            (base(3000, 32_768, Compression::Zstd), vec![1000], "has 0 after the first"),
            (zstd, vec![5000, 5000, 15_000], "not increasing"),
            (zstd, vec![9000, 5000, 15_000], "not increasing"),
            (zstd, vec![0, 10_000, 15_000], "not increasing"),
            (zstd, vec![5000, 10_000, 20_000], "inside the block's 20000 stored bytes"),
            (zstd, vec![5000, 10_000, u32::MAX], "not increasing"),
        ] {
            let bytes = record(ptr, frames.clone(), None).encode();
            let err = Record::decode(&bytes).unwrap_err();
            assert!(matches!(err, Error::Corrupt(_)), "{frames:?}: {err}");
            assert!(err.to_string().contains(says), "{frames:?}: {err}");
        }
        // The flag with no index after it, or a count of zero.
        let mut bytes = record(zstd, vec![], None).encode();
        let at = crate::block::BLOCK_PTR_BYTES + 16;
        bytes[at + 1] |= 0x80;
        assert!(Record::decode(&bytes).is_err());
        bytes.push(0);
        assert!(Record::decode(&bytes).unwrap_err().to_string().contains("index of 0 frames"));
        let good = record(
            zstd,
            vec![5000, 10_000, 15_000],
            Some(Overlay {
                mask: 1,
                logical_bytes: 131_072,
                ptr: {
                    let mut p = base(4096, 4096, Compression::None);
                    p.kind = BlockKind::FileOverlay;
                    p
                },
            }),
        )
        .encode();
        // Every cut is refused, but the one that drops the overlay whole: a record without.
        for len in (0..good.len()).filter(|&len| len != good.len() - OVERLAY_VALUE_BYTES) {
            assert!(Record::decode(&good[..len]).is_err(), "{len} bytes");
        }
    }

    /// Goal: every offset and length from an argument either fits the largest file or is
    /// refused with exit 2; none wraps. Method: the edges 0, 1, 2^63 - 1, 2^63, 2^64 - 1.
    #[test]
    fn file_ends_at_the_limit() {
        assert_eq!(file_end(0, 0).unwrap(), 0);
        assert_eq!(file_end(FILE_BYTES_MAX - 3, 3).unwrap(), FILE_BYTES_MAX);
        assert_eq!(file_end(FILE_BYTES_MAX, 0).unwrap(), FILE_BYTES_MAX);
        assert_eq!((FILE_BYTES_MAX - 1) / RECORD_BYTES, FILE_RECORDS_MAX - 1);
        for (offset, len) in [
            (FILE_BYTES_MAX - 2, 3),
            (FILE_BYTES_MAX + 1, 0),
            (i64::MAX as u64, 1),
            (1 << 63, 0),
            (u64::MAX, 3),
            (u64::MAX - 5, 3),
            (0, u64::MAX),
        ] {
            let e = file_end(offset, len).unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{e}");
            let words =
                if len == 0 { format!("offset {offset} lies past") } else { format!("{len} bytes at offset {offset}") };
            assert!(e.to_string().contains(&words), "{e}");
        }
        assert!(check_file_size("f", FILE_BYTES_MAX).is_ok());
        assert!(matches!(check_file_size("f", FILE_BYTES_MAX + 1), Err(Error::Invalid { .. })));
    }
}
