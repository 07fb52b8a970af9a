//! The only callers of blake3 and xxh3.
//!
//! blake3 guards stored bytes (Merkle tree, labels, commit records). xxh3 fingerprints
//! 4 KiB pieces of file records, so that a later incremental stream can tell which pieces
//! of a record changed without reading the base's data; the 128-bit record fingerprint
//! lets `sync` keep a record whose source bytes did not change.

use crate::block::Checksum;

pub fn blake3(bytes: &[u8]) -> Checksum {
    *blake3::hash(bytes).as_bytes()
}

/// 64-bit fingerprint of one 4 KiB piece of a file record.
pub fn piece_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// 128-bit fingerprint of a whole file record's logical bytes.
pub fn record_hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}
