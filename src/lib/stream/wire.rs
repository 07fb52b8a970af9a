//! The byte layout of a replication stream (docs/STREAM.md): the preamble, the framed
//! and checksummed records, and their payloads. Encoding and decoding only, no policy.
//!
//! Invariants:
//! - every frame is `type, reserved, payload length, payload, checksum`, and the
//!   checksum (xxh3-128 seeded with the record's number in its part) covers the frame
//!   header and payload, and for the Begin record the preamble too: a flipped bit, a
//!   dropped, repeated or reordered record all fail it;
//! - the End record's digest is blake3 over the preamble and every record checksum
//!   before it, so a part is verified as a whole before anything of it is committed;
//! - a decoder never trusts a length before checking it against its maximum.

use crate::block::Compression;
use crate::codec::{Reader, Writer};
use crate::error::{Error, ReceiveRefusal, Result};
#[cfg(test)]
use crate::fs::inode::Timespec;
use crate::fs::inode::{INODE_BYTES, Inode};
use crate::fs::record::{OVERLAY_PIECES_MAX, PIECE_BYTES, PIECES_MAX, RECORD_BYTES, masked_bytes};
use crate::fs::xattr::XATTR_VALUE_BYTES_MAX;

pub const STREAM_MAGIC: [u8; 8] = *b"SNAPSTRM";
/// The version this snapsend writes. Version 1 (no overlays in WRITE, no base hash in
/// PATCH) is still read.
pub const STREAM_VERSION: u32 = 2;
pub const PREAMBLE_BYTES: usize = 16;
pub const FRAME_HEADER_BYTES: usize = 8;
pub const FRAME_CHECKSUM_BYTES: usize = 16;
/// The largest payload: a whole record's stored bytes plus its fields, with room.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;
/// Feature bits this reader understands: any other bit refuses the stream at BEGIN.
pub const FEATURES_KNOWN: u64 = FEATURE_LARGE_XATTRS | FEATURE_LZ4 | FEATURE_RANGES;
/// The part carries SET_LARGE_XATTR records: a receiver from before them refuses it at
/// BEGIN, naming the feature, instead of at the record, halfway through.
pub const FEATURE_LARGE_XATTRS: u64 = 1 << 0;
/// The part carries WRITE records of lz4 blocks (compression 2), stored as they travel:
/// a receiver from before lz4 refuses it at BEGIN, before applying anything.
pub const FEATURE_LZ4: u64 = 1 << 1;
/// The part starts from a bookmark: it carries the key ranges of the tree that changed
/// (RANGE, ITEM, KEEP_RECORD and WRITE records) instead of changes to a base tree.
pub const FEATURE_RANGES: u64 = 1 << 2;
/// The largest value a SET_XATTR carries (the limit before large values); a larger one
/// travels as SET_LARGE_XATTR, with a 32-bit length.
pub const SET_XATTR_VALUE_BYTES_MAX: usize = 4096;
const _: () = assert!(RECORD_BYTES as usize + 1024 <= PAYLOAD_BYTES_MAX);

/// What the sender knows about one snapshot: its unique id and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapRef {
    pub guid: [u8; 16],
    pub txg: u64,
    pub name: String,
}

/// The first record of a part: which snapshot it carries, from which base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    pub features: u64,
    pub pool_guid: [u8; 16],
    pub snapshot: SnapRef,
    pub snapshot_time_ns: u64,
    /// None for a full stream.
    pub base: Option<SnapRef>,
    /// Exact size of this part in bytes, preamble to End, or 0 if the sender did not
    /// compute it.
    pub part_bytes: u64,
    /// This part's number (from 0) and the number of parts the sender sends in this run.
    pub part: u32,
    pub parts: u32,
    /// Exact size of the whole run (all parts), or 0.
    pub run_bytes: u64,
    /// A resumed part restarts here; None for a whole part.
    pub resume: Option<ResumePoint>,
}

/// Where a resumed part restarts: at the first item of inode `ino` (`record` 0), or at
/// its file record `record - 1`. Everything before it in key order was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    pub ino: u64,
    pub record: u64,
}

impl ResumePoint {
    /// The file-tree key at which the sender's walk restarts.
    pub fn key(&self) -> Vec<u8> {
        match self.record {
            0 => crate::fs::inode::key(self.ino, crate::fs::inode::ItemKind::Meta, &[]),
            r => crate::fs::inode::key(self.ino, crate::fs::inode::ItemKind::Record, &(r - 1).to_be_bytes()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Begin(Begin),
    /// The tree's next inode number.
    TreeMeta {
        next_ino: u64,
    },
    /// Create or replace an inode's metadata.
    Inode {
        ino: u64,
        inode: Inode,
    },
    /// Remove an inode and everything it holds (records, xattrs, symlink target).
    FreeInode {
        ino: u64,
    },
    Link {
        dir: u64,
        name: Vec<u8>,
        ino: u64,
    },
    Unlink {
        dir: u64,
        name: Vec<u8>,
        ino: u64,
    },
    Rename {
        ino: u64,
        from_dir: u64,
        from_name: Vec<u8>,
        to_dir: u64,
        to_name: Vec<u8>,
    },
    Symlink {
        ino: u64,
        target: Vec<u8>,
    },
    /// Set an xattr, its whole value: a SET_XATTR record up to SET_XATTR_VALUE_BYTES_MAX
    /// bytes, a SET_LARGE_XATTR one above.
    SetXattr {
        ino: u64,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    RemoveXattr {
        ino: u64,
        name: Vec<u8>,
    },
    /// A whole file record as the sender stores it (compressed or not).
    Write(WriteRecord),
    /// Some 4 KiB pieces of a file record the receiver already has.
    Patch(PatchRecord),
    /// Remove records [first, first + count) of a file: they become a hole.
    Punch {
        ino: u64,
        first: u64,
        count: u64,
    },
    End(End),
    /// The target's items with keys in [first, end) (end None: from first on) become
    /// exactly the ITEM, WRITE and KEEP_RECORD records that follow, up to the next RANGE
    /// or END (a part from a bookmark, FEATURE_RANGES).
    Range {
        first: Vec<u8>,
        end: Option<Vec<u8>>,
    },
    /// One item of the file tree as the sender stores it; never a file record.
    Item {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A file record that the base holds as it is: the same fingerprint and blocks.
    KeepRecord(KeepRecord),
}

/// A record the receiver keeps from its base: it must hold it with these checksums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepRecord {
    pub ino: u64,
    pub index: u64,
    pub hash: u128,
    /// blake3 of the base block's stored bytes, and of the overlay's (None: no overlay).
    pub checksum: [u8; 32],
    pub overlay_checksum: Option<[u8; 32]>,
}

/// A file record as the sender stores it: its base block, and its overlay if it has one.
/// `hash` and `pieces` fingerprint the record as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteRecord {
    pub ino: u64,
    pub index: u64,
    /// The base block's logical bytes: the record's size unless it has an overlay.
    pub logical_bytes: u32,
    pub compression: Compression,
    /// blake3 of the stored bytes: the checksum of the sender's block pointer.
    pub checksum: [u8; 32],
    pub hash: u128,
    pub pieces: Vec<u64>,
    /// Length of `stored`; kept apart so that a size estimate needs no data.
    pub stored_bytes: u32,
    pub stored: Vec<u8>,
    pub overlay: Option<WriteOverlay>,
}

/// The overlay block of a WRITE's record (fs/record.rs), as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOverlay {
    pub mask: u32,
    /// The record's size as read.
    pub logical_bytes: u32,
    pub compression: Compression,
    pub checksum: [u8; 32],
    pub stored_bytes: u32,
    pub stored: Vec<u8>,
}

impl WriteRecord {
    /// Whether its base or overlay block is lz4: the part needs FEATURE_LZ4.
    pub fn has_lz4(&self) -> bool {
        self.compression == Compression::Lz4 || self.overlay.as_ref().is_some_and(|o| o.compression == Compression::Lz4)
    }

    /// The record's size as read.
    pub fn record_logical_bytes(&self) -> u32 {
        self.overlay.as_ref().map_or(self.logical_bytes, |o| o.logical_bytes)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchRecord {
    pub ino: u64,
    pub index: u64,
    /// The record's logical size after the patch.
    pub logical_bytes: u32,
    /// xxh3-128 of the whole record after the patch: the receiver checks its result.
    pub hash: u128,
    /// xxh3-128 of the record the patch applies to (None in a version-1 stream): a
    /// receiver whose record has this fingerprint can lay the pieces over it unread.
    pub base_hash: Option<u128>,
    /// Bit i set: piece i follows, in order.
    pub mask: u32,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// Records before End, Begin included.
    pub records: u64,
    /// Bytes before the End frame, preamble included.
    pub bytes: u64,
    pub digest: [u8; 32],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    Begin = 1,
    TreeMeta = 2,
    Inode = 3,
    FreeInode = 4,
    Link = 5,
    Unlink = 6,
    Rename = 7,
    Symlink = 8,
    SetXattr = 9,
    RemoveXattr = 10,
    Write = 11,
    Patch = 12,
    Punch = 13,
    End = 14,
    SetLargeXattr = 15,
    Range = 16,
    Item = 17,
    KeepRecord = 18,
}

impl RecordType {
    pub fn from_u8(v: u8) -> Option<RecordType> {
        use RecordType::*;
        Some(match v {
            1 => Begin,
            2 => TreeMeta,
            3 => Inode,
            4 => FreeInode,
            5 => Link,
            6 => Unlink,
            7 => Rename,
            8 => Symlink,
            9 => SetXattr,
            10 => RemoveXattr,
            11 => Write,
            12 => Patch,
            13 => Punch,
            14 => End,
            15 => SetLargeXattr,
            16 => Range,
            17 => Item,
            18 => KeepRecord,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use RecordType::*;
        match self {
            Begin => "BEGIN",
            TreeMeta => "TREE_META",
            Inode => "INODE",
            FreeInode => "FREE_INODE",
            Link => "LINK",
            Unlink => "UNLINK",
            Rename => "RENAME",
            Symlink => "SYMLINK",
            SetXattr => "SET_XATTR",
            RemoveXattr => "REMOVE_XATTR",
            Write => "WRITE",
            Patch => "PATCH",
            Punch => "PUNCH",
            End => "END",
            SetLargeXattr => "SET_LARGE_XATTR",
            Range => "RANGE",
            Item => "ITEM",
            KeepRecord => "KEEP_RECORD",
        }
    }
}

pub fn preamble() -> [u8; PREAMBLE_BYTES] {
    let mut out = [0u8; PREAMBLE_BYTES];
    out[..8].copy_from_slice(&STREAM_MAGIC);
    out[8..12].copy_from_slice(&STREAM_VERSION.to_le_bytes());
    out
}

/// Checks a preamble and returns the stream's version; the error says what the bytes
/// are instead.
pub fn check_preamble(bytes: &[u8; PREAMBLE_BYTES]) -> Result<u32> {
    if bytes[..8] != STREAM_MAGIC {
        return Err(Error::stream(format!(
            "not a snapfs stream: it starts with {:02x?} instead of \"SNAPSTRM\"",
            &bytes[..8]
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version > STREAM_VERSION {
        return Err(Error::Receive(ReceiveRefusal::StreamTooNew { version, supported: STREAM_VERSION }));
    }
    if version == 0 {
        return Err(Error::stream("stream version 0 is not valid"));
    }
    if bytes[12..].iter().any(|&b| b != 0) {
        return Err(Error::stream("reserved bytes of the stream preamble are not zero"));
    }
    Ok(version)
}

/// The checksum of one frame: `seed_bytes` (the preamble, for Begin) then the frame.
/// `frame_checksum` of a frame given as its head and the bytes that end it, as
/// `encode_frame_head` leaves it: the same value, without joining them.
pub fn frame_checksum_split(head: &[u8], tail: &[u8], number: u64) -> [u8; 16] {
    let mut hasher = xxhash_rust::xxh3::Xxh3::with_seed(number);
    hasher.update(head);
    hasher.update(tail);
    hasher.digest128().to_le_bytes()
}

pub fn frame_checksum(seed_bytes: &[u8], frame: &[u8], number: u64) -> [u8; 16] {
    let value = if seed_bytes.is_empty() {
        xxhash_rust::xxh3::xxh3_128_with_seed(frame, number)
    } else {
        let mut all = Vec::with_capacity(seed_bytes.len() + frame.len());
        all.extend_from_slice(seed_bytes);
        all.extend_from_slice(frame);
        xxhash_rust::xxh3::xxh3_128_with_seed(&all, number)
    };
    value.to_le_bytes()
}

impl Record {
    pub fn record_type(&self) -> RecordType {
        match self {
            Record::Begin(_) => RecordType::Begin,
            Record::TreeMeta { .. } => RecordType::TreeMeta,
            Record::Inode { .. } => RecordType::Inode,
            Record::FreeInode { .. } => RecordType::FreeInode,
            Record::Link { .. } => RecordType::Link,
            Record::Unlink { .. } => RecordType::Unlink,
            Record::Rename { .. } => RecordType::Rename,
            Record::Symlink { .. } => RecordType::Symlink,
            Record::SetXattr { value, .. } if value.len() > SET_XATTR_VALUE_BYTES_MAX => RecordType::SetLargeXattr,
            Record::SetXattr { .. } => RecordType::SetXattr,
            Record::RemoveXattr { .. } => RecordType::RemoveXattr,
            Record::Write(_) => RecordType::Write,
            Record::Patch(_) => RecordType::Patch,
            Record::Punch { .. } => RecordType::Punch,
            Record::End(_) => RecordType::End,
            Record::Range { .. } => RecordType::Range,
            Record::Item { .. } => RecordType::Item,
            Record::KeepRecord(_) => RecordType::KeepRecord,
        }
    }

    /// The inode a record concerns, for messages.
    pub fn ino(&self) -> Option<u64> {
        match self {
            Record::Inode { ino, .. }
            | Record::FreeInode { ino }
            | Record::Link { ino, .. }
            | Record::Unlink { ino, .. }
            | Record::Rename { ino, .. }
            | Record::Symlink { ino, .. }
            | Record::SetXattr { ino, .. }
            | Record::RemoveXattr { ino, .. }
            | Record::Punch { ino, .. } => Some(*ino),
            Record::Write(w) => Some(w.ino),
            Record::Patch(p) => Some(p.ino),
            Record::KeepRecord(k) => Some(k.ino),
            Record::Item { key, .. } => crate::fs::inode::FileKey::parse(key).map(|k| k.ino),
            _ => None,
        }
    }

    /// Bytes of the whole frame (header, payload, checksum), without encoding it.
    pub fn frame_bytes(&self) -> u64 {
        let payload = match self {
            Record::Write(w) => {
                let overlay = w.overlay.as_ref().map_or(0, |o| WRITE_OVERLAY_FIXED_BYTES + o.stored_bytes as usize);
                WRITE_FIXED_BYTES + 8 * w.pieces.len() + w.stored_bytes as usize + 4 + overlay
            }
            Record::Patch(p) => PATCH_FIXED_BYTES + 16 + p.data.len(),
            other => {
                let mut w = Writer::new();
                other.encode_payload(&mut w);
                w.len()
            }
        };
        (FRAME_HEADER_BYTES + payload + FRAME_CHECKSUM_BYTES) as u64
    }

    /// Appends the frame header and payload (not the checksum) to `out`, all but the
    /// bytes it returns, which end the payload: a WRITE's data (of a record without
    /// overlay) goes out from where it lies, not copied into the frame first (a copy of
    /// every byte of a full send, on its main thread).
    pub fn encode_frame_head(&self, out: &mut Vec<u8>) -> &[u8] {
        let Record::Write(r) = self else {
            self.encode_frame(out);
            return &[];
        };
        if r.overlay.is_some() {
            self.encode_frame(out);
            return &[];
        }
        self.encode_frame_with(out, r.stored.len(), |w| encode_write_fields(r, w));
        &r.stored
    }

    /// Appends the frame header and payload (not the checksum) to `out`.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        self.encode_frame_with(out, 0, |w| self.encode_payload(w));
    }

    /// Appends the frame header and what `payload` writes, the header counting
    /// `tail_bytes` more that the caller sends after them.
    fn encode_frame_with(&self, out: &mut Vec<u8>, tail_bytes: usize, payload: impl FnOnce(&mut Writer)) {
        let start = out.len();
        let mut w = Writer { bytes: std::mem::take(out) };
        w.u8(self.record_type() as u8);
        w.u8(0);
        w.u16(0);
        w.u32(0); // payload length, filled in below
        payload(&mut w);
        let length = w.len() - start - FRAME_HEADER_BYTES + tail_bytes;
        assert!(length <= PAYLOAD_BYTES_MAX, "payload of {length} bytes");
        w.bytes[start + 4..start + 8].copy_from_slice(&(length as u32).to_le_bytes());
        *out = w.bytes;
    }

    fn encode_payload(&self, w: &mut Writer) {
        match self {
            Record::Begin(b) => encode_begin(b, w),
            Record::TreeMeta { next_ino } => w.u64(*next_ino),
            Record::Inode { ino, inode } => {
                w.u64(*ino);
                encode_inode(inode, w);
            }
            Record::FreeInode { ino } => w.u64(*ino),
            Record::Link { dir, name, ino } | Record::Unlink { dir, name, ino } => {
                w.u64(*ino);
                w.u64(*dir);
                w.bytes16(name);
            }
            Record::Rename { ino, from_dir, from_name, to_dir, to_name } => {
                w.u64(*ino);
                w.u64(*from_dir);
                w.bytes16(from_name);
                w.u64(*to_dir);
                w.bytes16(to_name);
            }
            Record::Symlink { ino, target } => {
                w.u64(*ino);
                w.bytes16(target);
            }
            Record::SetXattr { ino, name, value } => {
                w.u64(*ino);
                w.bytes16(name);
                if value.len() > SET_XATTR_VALUE_BYTES_MAX {
                    w.u32(value.len() as u32);
                    w.raw(value);
                } else {
                    w.bytes16(value);
                }
            }
            Record::RemoveXattr { ino, name } => {
                w.u64(*ino);
                w.bytes16(name);
            }
            Record::Write(r) => {
                encode_write_fields(r, w);
                w.raw(&r.stored);
                if let Some(o) = &r.overlay {
                    w.raw(&o.stored);
                }
            }
            Record::Patch(p) => {
                w.u64(p.ino);
                w.u64(p.index);
                w.u32(p.logical_bytes);
                w.u32(p.mask);
                w.raw(&p.hash.to_le_bytes());
                w.raw(&p.base_hash.expect("a stream of this version carries the base hash").to_le_bytes());
                w.raw(&p.data);
            }
            Record::Punch { ino, first, count } => {
                w.u64(*ino);
                w.u64(*first);
                w.u64(*count);
            }
            Record::End(e) => {
                w.u64(e.records);
                w.u64(e.bytes);
                w.raw(&e.digest);
            }
            Record::Range { first, end } => {
                w.bytes16(first);
                w.bytes16(end.as_deref().unwrap_or_default());
            }
            Record::Item { key, value } => {
                w.bytes16(key);
                w.bytes16(value);
            }
            Record::KeepRecord(k) => {
                w.u64(k.ino);
                w.u64(k.index);
                w.raw(&k.hash.to_le_bytes());
                w.raw(&k.checksum);
                w.raw(&k.overlay_checksum.unwrap_or_default());
            }
        }
    }

    /// Decodes one payload of a stream of `version`; every length and value is checked
    /// before use.
    pub fn decode_payload(kind: RecordType, payload: &[u8], version: u32) -> Result<Record> {
        let mut r = Reader::new(payload, "stream record");
        let record = match kind {
            RecordType::Begin => Record::Begin(decode_begin(&mut r)?),
            RecordType::TreeMeta => Record::TreeMeta { next_ino: r.u64()? },
            RecordType::Inode => Record::Inode { ino: r.u64()?, inode: decode_inode(&mut r)? },
            RecordType::FreeInode => Record::FreeInode { ino: r.u64()? },
            RecordType::Link | RecordType::Unlink => {
                let ino = r.u64()?;
                let dir = r.u64()?;
                let name = r.bytes16()?.to_vec();
                if kind == RecordType::Link {
                    Record::Link { dir, name, ino }
                } else {
                    Record::Unlink { dir, name, ino }
                }
            }
            RecordType::Rename => Record::Rename {
                ino: r.u64()?,
                from_dir: r.u64()?,
                from_name: r.bytes16()?.to_vec(),
                to_dir: r.u64()?,
                to_name: r.bytes16()?.to_vec(),
            },
            RecordType::Symlink => Record::Symlink { ino: r.u64()?, target: r.bytes16()?.to_vec() },
            RecordType::SetXattr | RecordType::SetLargeXattr => decode_set_xattr(&mut r, kind)?,
            RecordType::RemoveXattr => Record::RemoveXattr { ino: r.u64()?, name: r.bytes16()?.to_vec() },
            RecordType::Write => Record::Write(decode_write(&mut r, version)?),
            RecordType::Patch => Record::Patch(decode_patch(&mut r, version)?),
            RecordType::Punch => Record::Punch { ino: r.u64()?, first: r.u64()?, count: r.u64()? },
            RecordType::End => Record::End(End { records: r.u64()?, bytes: r.u64()?, digest: r.array::<32>()? }),
            RecordType::Range => {
                let first = r.bytes16()?.to_vec();
                let end = r.bytes16()?.to_vec();
                if !end.is_empty() && end <= first {
                    return Err(Error::stream("RANGE record whose end is not after its first key"));
                }
                Record::Range { first, end: (!end.is_empty()).then_some(end) }
            }
            RecordType::Item => Record::Item { key: r.bytes16()?.to_vec(), value: r.bytes16()?.to_vec() },
            RecordType::KeepRecord => Record::KeepRecord(KeepRecord {
                ino: r.u64()?,
                index: r.u64()?,
                hash: u128::from_le_bytes(r.array::<16>()?),
                checksum: r.array::<32>()?,
                overlay_checksum: Some(r.array::<32>()?).filter(|c| c != &[0; 32]),
            }),
        };
        if r.remaining() != 0 {
            return Err(Error::stream(format!("{} record has {} bytes after its fields", kind.name(), r.remaining())));
        }
        Ok(record)
    }
}

/// A SET_XATTR or SET_LARGE_XATTR payload; each carries only the values the other does
/// not, and no value larger than snapfs stores is read into memory.
fn decode_set_xattr(r: &mut Reader, kind: RecordType) -> Result<Record> {
    let ino = r.u64()?;
    let name = r.bytes16()?.to_vec();
    let value = if kind == RecordType::SetXattr {
        r.bytes16()?
    } else {
        let len = r.u32()? as usize;
        if len > XATTR_VALUE_BYTES_MAX {
            return Err(Error::stream(format!(
                "SET_LARGE_XATTR of inode {ino} carries a value of {len} bytes: snapfs stores at most \
                 {XATTR_VALUE_BYTES_MAX} (Linux's limit), and no file system the sender could read holds more"
            )));
        }
        r.take(len)?
    };
    let small = kind == RecordType::SetXattr;
    if small != (value.len() <= SET_XATTR_VALUE_BYTES_MAX) {
        return Err(Error::stream(format!(
            "{} of inode {ino} carries a value of {} bytes: SET_XATTR carries up to {SET_XATTR_VALUE_BYTES_MAX}, \
             SET_LARGE_XATTR more",
            kind.name(),
            value.len()
        )));
    }
    Ok(Record::SetXattr { ino, name, value: value.to_vec() })
}

const WRITE_FIXED_BYTES: usize = 8 + 8 + 4 + 4 + 1 + 3 + 32 + 16 + 2 + 2;
const PATCH_FIXED_BYTES: usize = 8 + 8 + 4 + 4 + 16;
/// An overlay's fields in a WRITE after its mask.
const WRITE_OVERLAY_FIXED_BYTES: usize = 4 + 4 + 1 + 3 + 32;

fn encode_begin(b: &Begin, w: &mut Writer) {
    w.u64(b.features);
    w.raw(&b.pool_guid);
    w.raw(&b.snapshot.guid);
    w.u64(b.snapshot.txg);
    w.u64(b.snapshot_time_ns);
    let (base_guid, base_txg, base_name) = match &b.base {
        Some(base) => (base.guid, base.txg, base.name.as_bytes()),
        None => ([0u8; 16], 0, &[][..]),
    };
    w.raw(&base_guid);
    w.u64(base_txg);
    w.u64(b.part_bytes);
    w.u32(b.part);
    w.u32(b.parts);
    w.u64(b.run_bytes);
    let resume = b.resume.unwrap_or(ResumePoint { ino: 0, record: 0 });
    w.u64(resume.ino);
    w.u64(resume.record);
    w.bytes16(b.snapshot.name.as_bytes());
    w.bytes16(base_name);
}

fn decode_begin(r: &mut Reader) -> Result<Begin> {
    let features = r.u64()?;
    if features & !FEATURES_KNOWN != 0 {
        return Err(Error::Receive(ReceiveRefusal::UnknownFeatures { bits: features & !FEATURES_KNOWN }));
    }
    let pool_guid = r.array::<16>()?;
    let guid = r.array::<16>()?;
    let txg = r.u64()?;
    let snapshot_time_ns = r.u64()?;
    let base_guid = r.array::<16>()?;
    let base_txg = r.u64()?;
    let part_bytes = r.u64()?;
    let part = r.u32()?;
    let parts = r.u32()?;
    let run_bytes = r.u64()?;
    let resume_ino = r.u64()?;
    let resume_record = r.u64()?;
    let resume = match (resume_ino, resume_record) {
        (0, 0) => None,
        (0, _) => return Err(Error::stream("BEGIN resumes at a record of inode 0")),
        (ino, record) => Some(ResumePoint { ino, record }),
    };
    let name = decode_snapshot_name(r.bytes16()?)?;
    let base_name = r.bytes16()?;
    if guid == [0; 16] {
        return Err(Error::stream("BEGIN record names a snapshot with a zero guid"));
    }
    if part >= parts {
        return Err(Error::stream(format!("BEGIN record says part {part} of {parts}")));
    }
    let base = if base_guid == [0; 16] {
        if !base_name.is_empty() || base_txg != 0 {
            return Err(Error::stream("BEGIN record of a full stream names a base"));
        }
        None
    } else {
        Some(SnapRef { guid: base_guid, txg: base_txg, name: decode_snapshot_name(base_name)? })
    };
    Ok(Begin {
        features,
        pool_guid,
        snapshot: SnapRef { guid, txg, name },
        snapshot_time_ns,
        base,
        part_bytes,
        part,
        parts,
        run_bytes,
        resume,
    })
}

fn decode_snapshot_name(bytes: &[u8]) -> Result<String> {
    let name = std::str::from_utf8(bytes).map_err(|_| Error::stream("snapshot name is not UTF-8"))?;
    crate::pool::validate_snapshot_name(name).map_err(|e| Error::stream(format!("BEGIN record: {e}")))?;
    Ok(name.to_string())
}

/// The inode's fields as the pool stores them (FORMAT.md), without the reserved tail.
const INODE_FIELDS_BYTES: usize = 76;
const _: () = assert!(INODE_FIELDS_BYTES < INODE_BYTES);

fn encode_inode(inode: &Inode, w: &mut Writer) {
    w.raw(&inode.encode()[..INODE_FIELDS_BYTES]);
}

fn decode_inode(r: &mut Reader) -> Result<Inode> {
    let mut bytes = r.take(INODE_FIELDS_BYTES)?.to_vec();
    bytes.resize(INODE_BYTES, 0);
    Inode::decode(&bytes).map_err(|e| match e {
        Error::Corrupt(c) => Error::stream(format!("INODE record: {c}")),
        other => other,
    })
}

fn decode_write(r: &mut Reader, version: u32) -> Result<WriteRecord> {
    let ino = r.u64()?;
    let index = r.u64()?;
    let logical_bytes = r.u32()?;
    let stored_bytes = r.u32()?;
    let compression_byte = r.u8()?;
    r.zeros(3)?;
    let checksum = r.array::<32>()?;
    let hash = u128::from_le_bytes(r.array::<16>()?);
    let count = r.u16()? as usize;
    r.zeros(2)?;
    let compression = compression_of(compression_byte)?;
    check_block_sizes("WRITE record", logical_bytes, stored_bytes, compression)?;
    if count > PIECES_MAX {
        return Err(Error::stream(format!("WRITE record with {count} piece fingerprints")));
    }
    let mut pieces = Vec::with_capacity(count);
    for _ in 0..count {
        pieces.push(r.u64()?);
    }
    let mask = if version >= 2 { r.u32()? } else { 0 };
    let overlay_fields = match mask {
        0 => None,
        mask => {
            let record_logical = r.u32()?;
            let overlay_stored = r.u32()?;
            let overlay_compression = compression_of(r.u8()?)?;
            r.zeros(3)?;
            let overlay_checksum = r.array::<32>()?;
            if record_logical == 0 || record_logical as u64 > RECORD_BYTES || mask.count_ones() > OVERLAY_PIECES_MAX {
                return Err(Error::stream(format!(
                    "WRITE record with an overlay of pieces {mask:#x} for {record_logical} bytes"
                )));
            }
            let overlay_logical = masked_bytes(record_logical, mask).ok_or_else(|| {
                Error::stream(format!("WRITE record's overlay names pieces {mask:#x} beyond {record_logical} bytes"))
            })?;
            check_block_sizes("WRITE record's overlay", overlay_logical as u32, overlay_stored, overlay_compression)?;
            Some((mask, record_logical, overlay_stored, overlay_compression, overlay_checksum))
        }
    };
    let record_logical = overlay_fields.map_or(logical_bytes, |o| o.1);
    if count != (record_logical as usize).div_ceil(PIECE_BYTES) {
        return Err(Error::stream(format!("WRITE record of {record_logical} bytes with {count} piece fingerprints")));
    }
    let stored = r.take(stored_bytes as usize)?.to_vec();
    let overlay = match overlay_fields {
        None => None,
        Some((mask, logical_bytes, stored_bytes, compression, checksum)) => Some(WriteOverlay {
            mask,
            logical_bytes,
            compression,
            checksum,
            stored_bytes,
            stored: r.take(stored_bytes as usize)?.to_vec(),
        }),
    };
    Ok(WriteRecord { ino, index, logical_bytes, compression, checksum, hash, pieces, stored_bytes, stored, overlay })
}

fn compression_of(byte: u8) -> Result<Compression> {
    Compression::from_u8(byte).ok_or_else(|| Error::stream(format!("WRITE record with unknown compression {byte}")))
}

/// A WRITE's fields, all but its stored bytes (and its overlay's), which end the payload.
fn encode_write_fields(r: &WriteRecord, w: &mut Writer) {
    assert_eq!(r.stored.len(), r.stored_bytes as usize, "a write record's data is loaded");
    w.u64(r.ino);
    w.u64(r.index);
    w.u32(r.logical_bytes);
    w.u32(r.stored_bytes);
    w.u8(r.compression as u8);
    w.zeros(3);
    w.raw(&r.checksum);
    w.raw(&r.hash.to_le_bytes());
    w.u16(r.pieces.len() as u16);
    w.zeros(2);
    for p in &r.pieces {
        w.u64(*p);
    }
    match &r.overlay {
        None => w.u32(0),
        Some(o) => {
            assert_eq!(o.stored.len(), o.stored_bytes as usize, "an overlay's data is loaded");
            w.u32(o.mask);
            w.u32(o.logical_bytes);
            w.u32(o.stored_bytes);
            w.u8(o.compression as u8);
            w.zeros(3);
            w.raw(&o.checksum);
        }
    }
}

/// A block's sizes must be possible: stored as is, or compressed to fewer bytes.
fn check_block_sizes(what: &str, logical_bytes: u32, stored_bytes: u32, compression: Compression) -> Result<()> {
    if logical_bytes == 0 || logical_bytes as u64 > RECORD_BYTES {
        return Err(Error::stream(format!("{what} of {logical_bytes} logical bytes")));
    }
    let plausible = match compression {
        Compression::None => stored_bytes == logical_bytes,
        Compression::Zstd | Compression::Lz4 => stored_bytes > 0 && stored_bytes < logical_bytes,
    };
    if !plausible {
        return Err(Error::stream(format!("{what} of {stored_bytes} stored and {logical_bytes} logical bytes")));
    }
    Ok(())
}

fn decode_patch(r: &mut Reader, version: u32) -> Result<PatchRecord> {
    let ino = r.u64()?;
    let index = r.u64()?;
    let logical_bytes = r.u32()?;
    let mask = r.u32()?;
    let hash = u128::from_le_bytes(r.array::<16>()?);
    let base_hash = if version >= 2 { Some(u128::from_le_bytes(r.array::<16>()?)) } else { None };
    if logical_bytes == 0 || logical_bytes as u64 > RECORD_BYTES {
        return Err(Error::stream(format!("PATCH record of {logical_bytes} logical bytes")));
    }
    let expected = masked_bytes(logical_bytes, mask)
        .ok_or_else(|| Error::stream(format!("PATCH record names pieces {mask:#x} beyond {logical_bytes} bytes")))?;
    let data = r.take(expected)?.to_vec();
    Ok(PatchRecord { ino, index, logical_bytes, hash, base_hash, mask, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(record: Record) {
        let mut frame = Vec::new();
        record.encode_frame(&mut frame);
        assert_eq!(frame.len() as u64 + FRAME_CHECKSUM_BYTES as u64, record.frame_bytes(), "{record:?}");
        // The frame as the writer sends it (a head, then the WRITE's data from where it
        // lies) is the same bytes, with the same checksum.
        let mut head = Vec::new();
        let tail = record.encode_frame_head(&mut head);
        assert_eq!([&head[..], tail].concat(), frame, "{record:?}");
        assert_eq!(frame_checksum_split(&head, tail, 5), frame_checksum(&[], &frame, 5), "{record:?}");
        let kind = RecordType::from_u8(frame[0]).unwrap();
        let decoded = Record::decode_payload(kind, &frame[FRAME_HEADER_BYTES..], STREAM_VERSION).unwrap();
        assert_eq!(decoded, record);
    }

    #[test]
    fn every_record_round_trips() {
        // Goal: each record type survives encode/decode, and frame_bytes predicts the size
        // exactly (the -n estimate depends on it).
        let snapshot = SnapRef { guid: [3; 16], txg: 9, name: "b".into() };
        let base = SnapRef { guid: [4; 16], txg: 5, name: "a".into() };
        let mut inode = Inode::new(0o100644, Timespec { sec: -3, nsec: 7 });
        inode.size = 12345;
        let records = vec![
            Record::Begin(Begin {
                features: 0,
                pool_guid: [1; 16],
                snapshot,
                snapshot_time_ns: 77,
                base: Some(base),
                part_bytes: 1000,
                part: 1,
                parts: 3,
                run_bytes: 5000,
                resume: Some(ResumePoint { ino: 12, record: 4 }),
            }),
            Record::TreeMeta { next_ino: 42 },
            Record::Inode { ino: 7, inode },
            Record::FreeInode { ino: 8 },
            Record::Link { dir: 1, name: b"x".to_vec(), ino: 9 },
            Record::Unlink { dir: 1, name: b"y".to_vec(), ino: 9 },
            Record::Rename { ino: 9, from_dir: 1, from_name: b"a".to_vec(), to_dir: 2, to_name: b"b".to_vec() },
            Record::Symlink { ino: 10, target: b"../t".to_vec() },
            Record::SetXattr { ino: 10, name: b"user.k".to_vec(), value: vec![1, 2, 3] },
            Record::SetXattr { ino: 10, name: b"user.k".to_vec(), value: vec![4; SET_XATTR_VALUE_BYTES_MAX] },
            Record::SetXattr { ino: 10, name: b"user.k".to_vec(), value: vec![5; SET_XATTR_VALUE_BYTES_MAX + 1] },
            Record::SetXattr { ino: 10, name: b"user.k".to_vec(), value: vec![6; XATTR_VALUE_BYTES_MAX] },
            Record::RemoveXattr { ino: 10, name: b"user.k".to_vec() },
            Record::Write(WriteRecord {
                ino: 11,
                index: 2,
                logical_bytes: 5000,
                compression: Compression::Zstd,
                checksum: [5; 32],
                hash: 99,
                pieces: vec![1, 2],
                stored_bytes: 3,
                stored: vec![9, 9, 9],
                overlay: None,
            }),
            Record::Write(WriteRecord {
                ino: 11,
                index: 3,
                logical_bytes: 5000,
                compression: Compression::None,
                checksum: [5; 32],
                hash: 99,
                pieces: vec![1, 2, 3],
                stored_bytes: 5000,
                stored: vec![7; 5000],
                overlay: Some(WriteOverlay {
                    mask: 0b110,
                    logical_bytes: 9000,
                    compression: Compression::Zstd,
                    checksum: [8; 32],
                    stored_bytes: 2,
                    stored: vec![1, 2],
                }),
            }),
            Record::Patch(PatchRecord {
                ino: 11,
                index: 0,
                logical_bytes: 5000,
                hash: 1,
                base_hash: Some(2),
                mask: 0b10,
                data: vec![0; 904],
            }),
            Record::Punch { ino: 11, first: 3, count: 4 },
            Record::End(End { records: 12, bytes: 999, digest: [6; 32] }),
        ];
        for r in records {
            round_trip(r);
        }
    }

    #[test]
    fn decoders_reject_bad_fields() {
        // Goal: implausible lengths are stream errors, never panics or huge allocations.
        let mut w = Writer::new();
        w.u64(1);
        w.u64(0);
        w.u32(4096);
        w.u32(0b100); // piece 2 of a one-piece record
        w.raw(&[0; 16]);
        w.raw(&[0; 16]);
        let err = Record::decode_payload(RecordType::Patch, &w.bytes, STREAM_VERSION).unwrap_err();
        assert!(err.to_string().contains("beyond"), "{err}");
        let err = Record::decode_payload(RecordType::TreeMeta, &[1, 2, 3], STREAM_VERSION).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut bad = preamble();
        bad[8] = STREAM_VERSION as u8 + 1;
        assert!(check_preamble(&bad).unwrap_err().to_string().contains("newer"));
        bad[0] = b'X';
        assert!(check_preamble(&bad).unwrap_err().to_string().contains("not a snapfs stream"));
    }

    #[test]
    fn xattr_values_travel_in_the_record_of_their_size() {
        // Goal: a value over 4096 bytes goes as SET_LARGE_XATTR, and each record refuses
        // the sizes it does not carry; a value past 65536 is refused before it is read.
        let set = |value: Vec<u8>| Record::SetXattr { ino: 3, name: b"user.v".to_vec(), value };
        assert_eq!(set(vec![0; 4096]).record_type(), RecordType::SetXattr);
        assert_eq!(set(vec![0; 4097]).record_type(), RecordType::SetLargeXattr);
        let payload = |kind: RecordType, len: usize| {
            let mut w = Writer::new();
            w.u64(3);
            w.bytes16(b"user.v");
            if kind == RecordType::SetXattr {
                w.bytes16(&vec![0; len]);
            } else {
                w.u32(len as u32);
                w.raw(&vec![0; len]);
            }
            w.bytes
        };
        for (kind, len, words) in [
            (RecordType::SetXattr, 4097, "SET_XATTR of inode 3 carries a value of 4097 bytes"),
            (RecordType::SetLargeXattr, 4096, "SET_LARGE_XATTR of inode 3 carries a value of 4096 bytes"),
            (RecordType::SetLargeXattr, 70_000, "carries a value of 70000 bytes: snapfs stores at most 65536"),
        ] {
            let err = Record::decode_payload(kind, &payload(kind, len), STREAM_VERSION).unwrap_err();
            assert!(matches!(err, Error::Stream { .. }), "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
        let mut huge = Writer::new();
        huge.u64(3);
        huge.bytes16(b"user.v");
        huge.u32(u32::MAX);
        let err = Record::decode_payload(RecordType::SetLargeXattr, &huge.bytes, STREAM_VERSION).unwrap_err();
        assert!(err.to_string().contains("4294967295 bytes"), "{err}");
    }

    #[test]
    fn version_1_records_still_decode() {
        // Goal: a stream of version 1 (no overlay mask in WRITE, no base hash in PATCH)
        // reads as records without them.
        let mut w = Writer::new();
        w.u64(1);
        w.u64(0);
        w.u32(4096);
        w.u32(0b1);
        w.raw(&7u128.to_le_bytes());
        w.raw(&[5; 4096]);
        let Record::Patch(p) = Record::decode_payload(RecordType::Patch, &w.bytes, 1).unwrap() else { panic!() };
        assert_eq!((p.hash, p.base_hash, p.data.len()), (7, None, 4096));
        let mut w = Writer::new();
        w.u64(1);
        w.u64(0);
        w.u32(3);
        w.u32(3);
        w.u8(Compression::None as u8);
        w.zeros(3);
        w.raw(&[0; 32]);
        w.raw(&[0; 16]);
        w.u16(1);
        w.zeros(2);
        w.u64(9);
        w.raw(&[1, 2, 3]);
        let Record::Write(wr) = Record::decode_payload(RecordType::Write, &w.bytes, 1).unwrap() else { panic!() };
        assert_eq!((wr.stored, wr.overlay), (vec![1, 2, 3], None));
        assert!(Record::decode_payload(RecordType::Write, &w.bytes, 2).is_err(), "version 2 wants the mask");
    }
}
