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

/// A file record: `ptr` is its base block. `hash` and `pieces` fingerprint the record's
/// content as read, overlay included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub ptr: BlockPtr,
    pub hash: u128,
    pub pieces: Vec<u64>,
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

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        BlockPtr::encode(Some(&self.ptr), &mut w);
        w.raw(&self.hash.to_le_bytes());
        w.u16(self.pieces.len() as u16);
        for p in &self.pieces {
            w.u64(*p);
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
        let count = r.u16()? as usize;
        if count > PIECES_MAX {
            return Err(Error::corrupt(format!("file record with {count} piece fingerprints")));
        }
        let mut pieces = Vec::with_capacity(count);
        for _ in 0..count {
            pieces.push(r.u64()?);
        }
        let overlay = match r.remaining() {
            0 => None,
            OVERLAY_VALUE_BYTES => Some(decode_overlay(&mut r)?),
            n => return Err(Error::corrupt(format!("file record has {n} trailing bytes"))),
        };
        let record = Record { ptr, hash, pieces, overlay };
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
