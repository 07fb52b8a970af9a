//! Commit records: the ring in each label region that says which pool root is current.
//!
//! Commit `txg` goes to slot `txg % RING_SLOTS` of both regions. Opening reads every slot
//! of both rings and takes the valid record with the highest txg; a torn or damaged
//! newest record therefore falls back to the one before, whose blocks are intact because
//! no block freed by a transaction is reused before that transaction's record is durable.

use crate::block::{BLOCK_BYTES, BlockPtr, Txg};
use crate::checksum::blake3;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::format::label::FORMAT_VERSION;

pub const COMMIT_MAGIC: [u8; 8] = *b"SNAPFS\0C";
pub const COMMIT_CHECKSUM_OFFSET: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRecord {
    pub txg: Txg,
    pub time_ns: u64,
    pub pool_guid: [u8; 16],
    /// The pool root block of this commit.
    pub root: BlockPtr,
}

impl CommitRecord {
    /// A whole 4 KiB slot: the record, its checksum, zeros.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&COMMIT_MAGIC);
        w.u32(FORMAT_VERSION);
        w.u32(0);
        w.raw(&self.pool_guid);
        w.u64(self.txg.0);
        w.u64(self.time_ns);
        BlockPtr::encode(Some(&self.root), &mut w);
        w.zeros(COMMIT_CHECKSUM_OFFSET - w.len());
        let sum = blake3(&w.bytes);
        w.raw(&sum);
        w.zeros(BLOCK_BYTES as usize - w.len());
        w.bytes
    }

    /// `Ok(None)` for an empty or torn slot: those are expected after a crash and are
    /// skipped. A valid record of a newer version is an error.
    pub fn decode(bytes: &[u8], pool_guid: &[u8; 16]) -> Result<Option<CommitRecord>> {
        if bytes.len() != BLOCK_BYTES as usize || bytes[..8] != COMMIT_MAGIC {
            return Ok(None);
        }
        let sum = blake3(&bytes[..COMMIT_CHECKSUM_OFFSET]);
        if sum[..] != bytes[COMMIT_CHECKSUM_OFFSET..COMMIT_CHECKSUM_OFFSET + 32] {
            return Ok(None);
        }
        let mut r = Reader::new(bytes, "commit record");
        r.take(8)?;
        let version = r.u32()?;
        r.zeros(4)?;
        let guid = r.array::<16>()?;
        if &guid != pool_guid {
            return Ok(None); // left over from a pool that was formatted over
        }
        if version > FORMAT_VERSION {
            return Err(Error::Unsupported {
                what: format!("a commit record of format version {version}, newer than this binary's {FORMAT_VERSION}"),
            });
        }
        if version == 0 || bytes[COMMIT_CHECKSUM_OFFSET + 32..].iter().any(|&b| b != 0) {
            return Ok(None); // damaged outside the checksummed bytes: not trusted
        }
        let txg = Txg(r.u64()?);
        let time_ns = r.u64()?;
        let root = BlockPtr::decode(&mut r)?
            .ok_or_else(|| Error::corrupt(format!("commit record of txg {} has a null root", txg.0)))?;
        r.zeros(COMMIT_CHECKSUM_OFFSET - r.offset())?;
        if txg.0 == 0 {
            return Err(Error::corrupt("commit record with txg 0"));
        }
        Ok(Some(CommitRecord { txg, time_ns, pool_guid: guid, root }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAddr, BlockKind, Compression};

    fn sample() -> CommitRecord {
        CommitRecord {
            txg: Txg(42),
            time_ns: 99,
            pool_guid: [1; 16],
            root: BlockPtr {
                addr: BlockAddr(100),
                ditto: BlockAddr(0),
                birth: Txg(42),
                stored_bytes: 300,
                logical_bytes: 300,
                kind: BlockKind::PoolRoot,
                compression: Compression::None,
                level: 0,
                checksum: [9; 32],
            },
        }
    }

    #[test]
    fn commit_round_trip() {
        let c = sample();
        assert_eq!(CommitRecord::decode(&c.encode(), &[1; 16]).unwrap(), Some(c));
    }

    #[test]
    fn torn_or_foreign_commit_is_skipped() {
        let c = sample();
        let mut torn = c.encode();
        torn[50] ^= 4;
        assert_eq!(CommitRecord::decode(&torn, &[1; 16]).unwrap(), None);
        assert_eq!(CommitRecord::decode(&c.encode(), &[2; 16]).unwrap(), None);
        assert_eq!(CommitRecord::decode(&[0; 4096], &[1; 16]).unwrap(), None);
    }
}
