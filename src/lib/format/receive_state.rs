//! The saved state of an interrupted receive (`snaprecv -s`): one blob block that the
//! pool root names while a partial receive waits to be resumed or discarded.
//!
//! The partially received tree hangs from it. That tree started from the snapshot of
//! txg `origin_txg` (0 for a full stream): its blocks born at or before that txg belong
//! to the snapshot, the newer ones are its own and are freed if it is discarded.

use crate::block::BlockPtr;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const RECEIVE_STATE_MAGIC: [u8; 4] = *b"SNRS";
/// Version 2: the part is from a bookmark (`from_bookmark`, in the first of the 16
/// reserved bytes). A state without it is still written as version 1.
pub const RECEIVE_STATE_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveState {
    /// The tree the stream goes to.
    pub tree: u64,
    /// Local txg of the snapshot the partial tree started from; 0 for a full stream.
    pub origin_txg: u64,
    /// Root of the partially received tree.
    pub staging: Option<BlockPtr>,
    /// The sending pool, and the part being received, as its BEGIN named them.
    pub source_pool_guid: [u8; 16],
    pub snapshot_guid: [u8; 16],
    pub snapshot_txg: u64,
    pub snapshot_name: String,
    pub base_guid: [u8; 16],
    pub base_txg: u64,
    pub base_name: String,
    /// Where the sender must restart: inode, and record index + 1 (0: the inode's start).
    pub resume_ino: u64,
    pub resume_record: u64,
    /// Records and stream bytes applied so far, over all attempts.
    pub records_applied: u64,
    pub bytes_applied: u64,
    /// When the state was saved.
    pub saved_ns: u64,
    /// The part is from a bookmark (stream feature `ranges`): its rest must be too.
    pub from_bookmark: bool,
}

impl ReceiveState {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&RECEIVE_STATE_MAGIC);
        w.u32(if self.from_bookmark { 2 } else { 1 });
        w.u64(self.tree);
        w.u64(self.origin_txg);
        BlockPtr::encode(self.staging.as_ref(), &mut w);
        w.raw(&self.source_pool_guid);
        w.raw(&self.snapshot_guid);
        w.u64(self.snapshot_txg);
        w.raw(&self.base_guid);
        w.u64(self.base_txg);
        w.u64(self.resume_ino);
        w.u64(self.resume_record);
        w.u64(self.records_applied);
        w.u64(self.bytes_applied);
        w.u64(self.saved_ns);
        w.u8(self.from_bookmark as u8);
        w.zeros(15);
        w.bytes16(self.snapshot_name.as_bytes());
        w.bytes16(self.base_name.as_bytes());
        w.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<ReceiveState> {
        let mut r = Reader::new(bytes, "receive state");
        if r.array::<4>()? != RECEIVE_STATE_MAGIC {
            return Err(Error::corrupt("receive state has a bad magic"));
        }
        let version = r.u32()?;
        if version == 0 || version > RECEIVE_STATE_VERSION {
            return Err(Error::Unsupported { what: format!("a saved receive state of version {version}") });
        }
        let tree = r.u64()?;
        let origin_txg = r.u64()?;
        let staging = BlockPtr::decode(&mut r)?;
        let source_pool_guid = r.array::<16>()?;
        let snapshot_guid = r.array::<16>()?;
        let snapshot_txg = r.u64()?;
        let base_guid = r.array::<16>()?;
        let base_txg = r.u64()?;
        let resume_ino = r.u64()?;
        let resume_record = r.u64()?;
        let records_applied = r.u64()?;
        let bytes_applied = r.u64()?;
        let saved_ns = r.u64()?;
        let from_bookmark = match (version, r.u8()?) {
            (1, 0) => false,
            (2, 1) => true,
            (_, flags) => return Err(Error::corrupt(format!("receive state of version {version} with flags {flags}"))),
        };
        r.zeros(15)?;
        let name = |b: &[u8]| {
            String::from_utf8(b.to_vec()).map_err(|_| Error::corrupt("receive state names a snapshot in bad UTF-8"))
        };
        let snapshot_name = name(r.bytes16()?)?;
        let base_name = name(r.bytes16()?)?;
        if r.remaining() != 0 {
            return Err(Error::corrupt("receive state has trailing bytes"));
        }
        Ok(ReceiveState {
            tree,
            origin_txg,
            staging,
            source_pool_guid,
            snapshot_guid,
            snapshot_txg,
            snapshot_name,
            base_guid,
            base_txg,
            base_name,
            resume_ino,
            resume_record,
            records_applied,
            bytes_applied,
            saved_ns,
            from_bookmark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_state_round_trip() {
        let state = ReceiveState {
            tree: 1,
            origin_txg: 9,
            staging: None,
            source_pool_guid: [1; 16],
            snapshot_guid: [2; 16],
            snapshot_txg: 44,
            snapshot_name: "b".into(),
            base_guid: [3; 16],
            base_txg: 40,
            base_name: "a".into(),
            resume_ino: 7,
            resume_record: 3,
            records_applied: 100,
            bytes_applied: 5000,
            saved_ns: 12,
            from_bookmark: false,
        };
        assert_eq!(ReceiveState::decode(&state.encode()).unwrap(), state);
        assert_eq!(state.encode()[4..8], 1u32.to_le_bytes(), "without a bookmark, the version-1 layout");
        let marked = ReceiveState { from_bookmark: true, ..state.clone() };
        assert_eq!(ReceiveState::decode(&marked.encode()).unwrap(), marked);
        let mut bad = state.encode();
        bad[0] = b'X';
        assert!(ReceiveState::decode(&bad).is_err());
    }
}
