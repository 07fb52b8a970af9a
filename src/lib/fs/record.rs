//! File records: a file's bytes in pieces of RECORD_BYTES, each one block.
//!
//! Beside each record's pointer the tree keeps a 128-bit fingerprint of the record and a
//! 64-bit fingerprint of every 4 KiB piece of it. `sync` keeps a record whose source bytes
//! have the same fingerprint; an incremental stream compares piece fingerprints with the
//! base's to send only the 4 KiB pieces that changed, without reading the base's data.

use crate::block::BlockPtr;
use crate::checksum::{piece_hash, record_hash};
use crate::error::{Error, Result};
use crate::format::codec::{Reader, Writer};

pub const RECORD_BYTES: u64 = 128 * 1024;
pub const PIECE_BYTES: usize = 4096;
pub const PIECES_MAX: usize = RECORD_BYTES as usize / PIECE_BYTES;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub ptr: BlockPtr,
    pub hash: u128,
    pub pieces: Vec<u64>,
}

pub struct Fingerprint {
    pub hash: u128,
    pub pieces: Vec<u64>,
}

pub fn fingerprint(data: &[u8]) -> Fingerprint {
    Fingerprint { hash: record_hash(data), pieces: data.chunks(PIECE_BYTES).map(piece_hash).collect() }
}

impl Record {
    pub fn logical_bytes(&self) -> u64 {
        self.ptr.logical_bytes as u64
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        BlockPtr::encode(Some(&self.ptr), &mut w);
        w.raw(&self.hash.to_le_bytes());
        w.u16(self.pieces.len() as u16);
        for p in &self.pieces {
            w.u64(*p);
        }
        w.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let mut r = Reader::new(bytes, "file record");
        let ptr = BlockPtr::decode(&mut r)?.ok_or_else(|| Error::corrupt("file record with a null pointer"))?;
        let hash = u128::from_le_bytes(r.array::<16>()?);
        let count = r.u16()? as usize;
        let expected = (ptr.logical_bytes as usize).div_ceil(PIECE_BYTES);
        if count != expected || count > PIECES_MAX || ptr.logical_bytes as u64 > RECORD_BYTES {
            return Err(Error::corrupt(format!(
                "file record of {} bytes with {count} piece fingerprints",
                ptr.logical_bytes
            )));
        }
        let mut pieces = Vec::with_capacity(count);
        for _ in 0..count {
            pieces.push(r.u64()?);
        }
        if r.remaining() != 0 {
            return Err(Error::corrupt("file record has trailing bytes"));
        }
        Ok(Record { ptr, hash, pieces })
    }
}
