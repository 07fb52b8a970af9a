//! Why a receiver refuses a stream's part before applying anything, as facts: which
//! snapshots, with which guids. A front end decides what to say or do with them (the
//! CLI prints a next step that names commands; a replication loop picks another base
//! and retries); the library only says what is wrong.

use std::fmt;

/// A snapshot as both pools know it: its name here, and the guid it keeps everywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotId {
    pub name: String,
    pub guid: [u8; 16],
}

impl SnapshotId {
    pub fn guid_hex(&self) -> String {
        crate::clock::guid_hex(&self.guid)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiveRefusal {
    /// The target has the stream's snapshot already (as `held_as`): it was received before.
    AlreadyReceived { snapshot: SnapshotId, held_as: String },
    /// The target has a snapshot of the stream's snapshot's name, with another guid.
    NameTaken { name: String },
    /// A full stream of `snapshot`, and the target has snapshots already.
    FullOntoSnapshots { snapshot: String, newest: SnapshotId },
    /// A full stream, and the target's live tree holds files (without -F).
    LiveTreeNotEmpty,
    /// An incremental stream, and the target has no snapshot at all.
    NoSnapshots { base: String },
    /// The stream's base is the target's `held_as`, which is not its newest snapshot.
    BaseNotNewest { base: String, held_as: String, newest: SnapshotId, snapshot: String },
    /// The target's newest snapshot has the base's name, not its guid: the histories differ.
    BaseNameOtherGuid { base: SnapshotId, newest: SnapshotId },
    /// The target does not have the stream's base.
    BaseMissing { base: SnapshotId, newest: SnapshotId, snapshot: String },
    /// The target's live tree changed since its newest snapshot (without -F).
    HeadChanged { newest: String },
    /// The target holds a partial receive of `@snapshot`, which a new stream would abandon.
    PartialPending { snapshot: String },
    /// The stream resumes a receive of `@snapshot`, but the target holds no partial receive.
    NothingToResume { snapshot: String },
    /// The stream resumes `@snapshot` at inode `ino` record `record`, but the target's
    /// partial receive is of `@saved_snapshot` and stopped at `saved_ino`, `saved_record`.
    ResumeMismatch {
        snapshot: String,
        ino: u64,
        record: u64,
        saved_snapshot: String,
        saved_ino: u64,
        saved_record: u64,
    },
    /// The stream's format version is newer than the receiver's.
    StreamTooNew { version: u32, supported: u32 },
    /// The stream uses feature bits the receiver does not know.
    UnknownFeatures { bits: u64 },
}

impl fmt::Display for ReceiveRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ReceiveRefusal::*;
        match self {
            AlreadyReceived { snapshot, held_as } => write!(
                f,
                "the stream's snapshot @{} (guid {}; the target has it as @{held_as}, so this stream was received before) already exists",
                snapshot.name,
                snapshot.guid_hex()
            ),
            NameTaken { name } => {
                write!(f, "the target already has a snapshot @{name}, not the one this stream carries")
            }
            FullOntoSnapshots { newest, .. } => write!(
                f,
                "the target already has snapshots (newest @{}); a full stream needs an empty target",
                newest.name
            ),
            LiveTreeNotEmpty => write!(f, "the target's live tree holds files, which a full stream would replace"),
            NoSnapshots { base } => {
                write!(f, "the target has no snapshots, and this incremental stream needs @{base}")
            }
            BaseNotNewest { base, held_as, newest, .. } => write!(
                f,
                "the stream's base @{base} is the target's @{held_as}, not its newest snapshot @{}",
                newest.name
            ),
            BaseNameOtherGuid { base, newest } => write!(
                f,
                "the target's @{} is not the stream's base @{}: it has the same name but another guid \
                 ({} on the target, {} in the stream), so the pools' histories differ",
                newest.name,
                base.name,
                newest.guid_hex(),
                base.guid_hex()
            ),
            BaseMissing { base, newest, .. } => write!(
                f,
                "the target does not have the stream's base @{} (guid {}); its newest snapshot is @{}",
                base.name,
                base.guid_hex(),
                newest.name
            ),
            HeadChanged { newest } => {
                write!(f, "the target's live tree changed since its newest snapshot @{newest}")
            }
            PartialPending { snapshot } => {
                write!(f, "the target holds a partial receive of @{snapshot}; a new stream would abandon it")
            }
            NothingToResume { snapshot } => {
                write!(f, "this stream resumes an interrupted receive of @{snapshot}, but the target holds none")
            }
            ResumeMismatch { snapshot, ino, record, saved_snapshot, saved_ino, saved_record } => write!(
                f,
                "this stream resumes @{snapshot} at inode {ino} record {record}, but the target's partial receive \
                 is of @{saved_snapshot} and stopped at inode {saved_ino} record {saved_record}"
            ),
            StreamTooNew { version, supported } => {
                write!(f, "stream version {version} is newer than this receiver's {supported}")
            }
            UnknownFeatures { bits } => {
                write!(f, "the stream uses features {bits:#x} that this receiver does not know")
            }
        }
    }
}
