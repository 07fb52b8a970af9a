//! Labels: the fixed header at the start of each of the two label regions.
//!
//! A pool has two label regions of 256 KiB, one at the start of the device and one at
//! its end. Each holds a label (block 0 of the region) and a ring of commit records
//! (blocks 1..=15); the rest of the region is reserved. A label is written at format time
//! and rewritten only by `snapctl expand` (pool/resize.rs), with a larger `device_bytes`,
//! and by the commit that first stores a large xattr, an lz4 block or a frame index, or
//! chooses lz4 (pool/features.rs), with a new incompat bit; so a torn label comes from damage or an interrupted rewrite, and the
//! other copy covers it.

use crate::block::BLOCK_BYTES;
use crate::checksum::blake3;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const LABEL_MAGIC: [u8; 8] = *b"SNAPFS\0L";
/// The on-disk format version this binary writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Feature bits: an unknown incompat bit refuses to open, an unknown ro_compat bit
/// refuses to write.
pub const FEATURES_INCOMPAT_KNOWN: u64 = FEATURE_RECORD_OVERLAYS | FEATURES_ADDED_LATER;
/// File records may carry an overlay (fs/record.rs), which an older reader would not
/// lay over the base block. `snapfmt` sets it; a pool without it never gets overlays.
pub const FEATURE_RECORD_OVERLAYS: u64 = 1 << 0;
/// Xattr values over 4096 bytes, stored as continuation items (fs/xattr.rs), which an
/// older binary would read as attributes of their own and drop or truncate. Set by the
/// first commit that stores one (pool/features.rs), never by `snapfmt`: a pool that
/// holds no large value stays readable by older binaries.
pub const FEATURE_LARGE_XATTRS: u64 = 1 << 1;
/// Blocks compressed with lz4 (block pointer compression 2), and a pool root whose
/// configuration names lz4, which an older binary could not read. Set by the commit
/// that first chooses lz4 or stores an lz4 block (a received one too), or by `snapfmt
/// --compress lz4`: a pool that never uses lz4 stays readable by older binaries.
pub const FEATURE_LZ4: u64 = 1 << 2;
/// File records may keep a frame index of their compressed base block (fs/record.rs),
/// flagged in the piece count, which an older binary would take for corruption. Set by
/// the commit that first writes one (any compressed record of more than one frame),
/// never by `snapfmt`: a pool that stores nothing compressed past 32 KiB stays readable
/// by older binaries.
pub const FEATURE_FRAME_INDEX: u64 = 1 << 3;
/// Snapshot entries may carry holds (format/tables.rs), where an older binary requires
/// zeros. Set by the commit that first places a hold, never by `snapfmt`: a pool on
/// which nobody ever held a snapshot stays readable by older binaries.
pub const FEATURE_HOLDS: u64 = 1 << 4;
/// The pool root may name a snapshot index (pool/snapshot_index.rs), a pool root of
/// version 3, which an older binary would refuse by its version anyway; the bit says
/// why. Set by the commit that builds the index, the first that changes the snapshots
/// table: a pool that never had a snapshot stays readable by older binaries.
pub const FEATURE_SNAPSHOT_INDEX: u64 = 1 << 5;
/// Tree and snapshot entries carry `referenced_bytes` (format/tables.rs), where an
/// older binary requires their end or zeros. `snapfmt` sets it; an older pool gets it
/// from the first commit a newer binary makes, which counts every tree and snapshot
/// (pool/space_counters.rs).
pub const FEATURE_SPACE_COUNTERS: u64 = 1 << 6;
/// The history table is keyed (tree, txg) and records each tree's root only at the
/// commits that changed it (format/tables.rs, pool/history.rs), where an older binary
/// reads one entry per commit with every root. `snapfmt` sets it; an older pool gets it
/// from the first change a newer binary makes to its history, which rewrites the table.
pub const FEATURE_HISTORY_BY_TREE: u64 = 1 << 7;
/// Tree entries may name an origin snapshot (a clone, format/tables.rs), where an older
/// binary requires zeros. Set by the commit that makes the first clone, never by
/// `snapfmt`: a pool that never had a clone stays readable by older binaries.
pub const FEATURE_CLONES: u64 = 1 << 8;
/// The pool root may name a bookmarks table (pool root version 4, format/tables.rs),
/// which an older binary would drop at its next commit. Set by the commit that makes
/// the first bookmark, never by `snapfmt`.
pub const FEATURE_BOOKMARKS: u64 = 1 << 9;
/// The trees table holds a name index and an origin index beside the entries
/// (format/tables.rs `TreesKey`), keys an older binary would take for corrupt entries
/// and would not keep up to date. Set by the commit that builds them, the first that adds
/// a tree beside the live one (a clone or a received tree), or renames, destroys or
/// promotes one: a pool that never had a clone stays readable by older binaries.
pub const FEATURE_TREE_INDEX: u64 = 1 << 10;
/// History roots may carry their tree's `referenced_bytes` (80 bytes instead of 72,
/// format/tables.rs `HistoryRoot`), which an older binary takes for a corrupt entry. Set
/// by `snapfmt`, or by the first commit that records one on an older pool.
pub const FEATURE_HISTORY_COUNTS: u64 = 1 << 11;
/// Snapshot entries may describe a subset snapshot (format/tables.rs `Subset`), bytes
/// after the holds that an older binary takes for a corrupt entry, and whose nodes it
/// would leak on destroy. Set by the commit that takes the first subset snapshot.
pub const FEATURE_SUBSETS: u64 = 1 << 12;
/// A subset snapshot's entry may say its tree is still being extracted (format/tables.rs
/// `Subset::extracting`), which an older binary takes for a corrupt entry. Set by the
/// commit that records the first subset snapshot whose files take more than one commit.
pub const FEATURE_SUBSET_EXTRACTION: u64 = 1 << 13;
/// The incompat bits a commit may add to a formatted pool's labels (pool/features.rs).
pub const FEATURES_ADDED_LATER: u64 = FEATURE_LARGE_XATTRS
    | FEATURE_LZ4
    | FEATURE_FRAME_INDEX
    | FEATURE_HOLDS
    | FEATURE_SNAPSHOT_INDEX
    | FEATURE_SPACE_COUNTERS
    | FEATURE_HISTORY_BY_TREE
    | FEATURE_CLONES
    | FEATURE_BOOKMARKS
    | FEATURE_TREE_INDEX
    | FEATURE_HISTORY_COUNTS
    | FEATURE_SUBSETS
    | FEATURE_SUBSET_EXTRACTION;
/// The unit a device writes atomically at least: a torn label block mixes whole sectors.
const SECTOR_BYTES: usize = 512;
pub const FEATURES_RO_COMPAT_KNOWN: u64 = FEATURE_DITTO_METADATA;
/// Every metadata block is written twice (the pointer's ditto address). An older binary
/// reads such a pool (it falls back to the ditto already) but would free only the first
/// copy, so it may not write. `snapfmt` sets it.
pub const FEATURE_DITTO_METADATA: u64 = 1 << 0;

pub const REGION_BLOCKS: u64 = 64;
/// Commit slots after the label. Every open reads them all (from a cold cache: the
/// kernel drops a block device's cache at its last close), so the ring is kept small;
/// the rest of the region is reserved.
pub const RING_SLOTS: u64 = 15;
const _: () = assert!(RING_SLOTS < REGION_BLOCKS);
pub const LABEL_CHECKSUM_OFFSET: usize = 4064;
const _: () = assert!(LABEL_CHECKSUM_OFFSET + 32 == BLOCK_BYTES as usize);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub version: u32,
    /// 0 for the region at the start of the device, 1 for the one at its end.
    pub index: u32,
    pub features_incompat: u64,
    pub features_ro_compat: u64,
    pub features_compat: u64,
    pub pool_guid: [u8; 16],
    pub device_bytes: u64,
    pub created_ns: u64,
}

/// First block of label region `index` on a device of `device_bytes`.
pub fn region_start(index: u32, device_bytes: u64) -> u64 {
    if index == 0 { 0 } else { device_bytes / BLOCK_BYTES - REGION_BLOCKS }
}

impl Label {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&LABEL_MAGIC);
        w.u32(self.version);
        w.u32(self.index);
        w.u64(self.features_incompat);
        w.u64(self.features_ro_compat);
        w.u64(self.features_compat);
        w.raw(&self.pool_guid);
        w.u64(self.device_bytes);
        w.u32(BLOCK_BYTES as u32);
        w.u32(REGION_BLOCKS as u32);
        w.u32(RING_SLOTS as u32);
        w.u32(0);
        w.u64(self.created_ns);
        w.zeros(LABEL_CHECKSUM_OFFSET - w.len());
        let sum = blake3(&w.bytes);
        w.raw(&sum);
        assert_eq!(w.len(), BLOCK_BYTES as usize);
        w.bytes
    }

    /// Whether `block` (which does not decode) is what rewriting copy `index` of this
    /// label to or from a set of incompat bits that differs in FEATURES_ADDED_LATER
    /// only leaves when cut short: every sector is that sector of one of the two
    /// encodings. Not damage: pool/features.rs rewrites it at the next open for writing.
    pub fn is_torn_feature_rewrite(&self, block: &[u8], index: u32) -> bool {
        let this = Label { index, ..self.clone() };
        let one = this.encode();
        let changes = FEATURES_ADDED_LATER;
        // Every non-empty subset of the bits that may change.
        let mut subset = changes;
        while subset != 0 {
            let other = Label { features_incompat: this.features_incompat ^ subset, ..this.clone() }.encode();
            let mixes = block.len() == one.len()
                && block
                    .chunks(SECTOR_BYTES)
                    .zip(one.chunks(SECTOR_BYTES).zip(other.chunks(SECTOR_BYTES)))
                    .all(|(sector, (a, b))| sector == a || sector == b);
            if mixes {
                return true;
            }
            subset = (subset - 1) & changes;
        }
        false
    }

    /// Decodes a label block. `Ok(None)` means no snapfs label is there at all (wrong
    /// magic); a label with the right magic that fails any check is corruption.
    pub fn decode(bytes: &[u8]) -> Result<Option<Label>> {
        if bytes.len() != BLOCK_BYTES as usize || bytes[..8] != LABEL_MAGIC {
            return Ok(None);
        }
        let sum = blake3(&bytes[..LABEL_CHECKSUM_OFFSET]);
        if sum[..] != bytes[LABEL_CHECKSUM_OFFSET..] {
            return Err(Error::corrupt("label checksum does not match its contents"));
        }
        let mut r = Reader::new(bytes, "label");
        r.take(8)?;
        let version = r.u32()?;
        if version > FORMAT_VERSION {
            return Err(Error::Unsupported {
                what: format!("the pool's format version {version} is newer than this binary's {FORMAT_VERSION}"),
            });
        }
        if version == 0 {
            return Err(Error::corrupt("label has format version 0"));
        }
        let index = r.u32()?;
        let features_incompat = r.u64()?;
        let features_ro_compat = r.u64()?;
        let features_compat = r.u64()?;
        let unknown = features_incompat & !FEATURES_INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(Error::Unsupported {
                what: format!("the pool uses features this binary does not know (incompat bits {unknown:#x})"),
            });
        }
        let pool_guid = r.array::<16>()?;
        let device_bytes = r.u64()?;
        let block_bytes = r.u32()?;
        let region_blocks = r.u32()?;
        let ring_slots = r.u32()?;
        r.zeros(4)?;
        let created_ns = r.u64()?;
        r.zeros(LABEL_CHECKSUM_OFFSET - r.offset())?;
        if block_bytes as u64 != BLOCK_BYTES
            || region_blocks as u64 != REGION_BLOCKS
            || ring_slots as u64 != RING_SLOTS
            || index > 1
        {
            return Err(Error::corrupt(format!(
                "label geometry block={block_bytes} region={region_blocks} ring={ring_slots} index={index} \
                 is not what version {version} defines"
            )));
        }
        Ok(Some(Label {
            version,
            index,
            features_incompat,
            features_ro_compat,
            features_compat,
            pool_guid,
            device_bytes,
            created_ns,
        }))
    }

    /// Tree and snapshot entries carry space counters on this pool.
    pub fn has_space_counters(&self) -> bool {
        self.features_incompat & FEATURE_SPACE_COUNTERS != 0
    }

    /// Metadata blocks are written twice on this pool.
    pub fn has_ditto_metadata(&self) -> bool {
        self.features_ro_compat & FEATURE_DITTO_METADATA != 0
    }

    /// The features this pool uses, by name (as docs/FORMAT.md names them), unknown bits
    /// as `incompat:0x..` or `ro_compat:0x..`.
    pub fn feature_names(&self) -> Vec<String> {
        let incompat = [
            (FEATURE_RECORD_OVERLAYS, "record_overlays"),
            (FEATURE_LARGE_XATTRS, "large_xattrs"),
            (FEATURE_LZ4, "lz4"),
            (FEATURE_FRAME_INDEX, "frame_index"),
            (FEATURE_HOLDS, "holds"),
            (FEATURE_SNAPSHOT_INDEX, "snapshot_index"),
            (FEATURE_SPACE_COUNTERS, "space_counters"),
            (FEATURE_HISTORY_BY_TREE, "history_by_tree"),
            (FEATURE_CLONES, "clones"),
            (FEATURE_BOOKMARKS, "bookmarks"),
            (FEATURE_TREE_INDEX, "tree_index"),
            (FEATURE_HISTORY_COUNTS, "history_counts"),
            (FEATURE_SUBSETS, "subsets"),
            (FEATURE_SUBSET_EXTRACTION, "subset_extraction"),
        ];
        let mut names: Vec<String> = incompat
            .iter()
            .filter(|(bit, _)| self.features_incompat & bit != 0)
            .map(|(_, name)| name.to_string())
            .collect();
        if self.has_ditto_metadata() {
            names.push("ditto_metadata".to_string());
        }
        let unknown = [
            ("incompat", self.features_incompat & !FEATURES_INCOMPAT_KNOWN),
            ("ro_compat", self.features_ro_compat & !FEATURES_RO_COMPAT_KNOWN),
            ("compat", self.features_compat),
        ];
        names.extend(unknown.iter().filter(|(_, bits)| *bits != 0).map(|(set, bits)| format!("{set}:{bits:#x}")));
        names
    }

    pub fn read_only_reason(&self) -> Option<String> {
        let unknown = self.features_ro_compat & !FEATURES_RO_COMPAT_KNOWN;
        (unknown != 0).then(|| format!("the pool uses features this binary can read but not write (bits {unknown:#x})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Label {
        Label {
            version: FORMAT_VERSION,
            index: 1,
            features_incompat: 0,
            features_ro_compat: 0,
            features_compat: 0,
            pool_guid: [3; 16],
            device_bytes: 1 << 30,
            created_ns: 123,
        }
    }

    #[test]
    fn a_feature_rewrite_cut_short_is_told_from_damage() {
        // Goal: a label block torn between the label and the same label with lz4 or
        // large_xattrs toggled is recognized, in either direction and either copy; any
        // other torn block is not. Method: sector mixes of two encodings, then the same
        // mixes with one byte changed, with zeros, and with another pool's label.
        let old = Label { features_incompat: FEATURE_RECORD_OVERLAYS, ..sample() };
        for added in [
            FEATURE_LZ4,
            FEATURE_LARGE_XATTRS,
            FEATURE_FRAME_INDEX,
            FEATURE_LZ4 | FEATURE_LARGE_XATTRS,
            FEATURE_LZ4 | FEATURE_FRAME_INDEX,
        ] {
            let new = Label { features_incompat: old.features_incompat | added, ..old.clone() };
            for index in [0, 1] {
                let (a, b) = (Label { index, ..old.clone() }.encode(), Label { index, ..new.clone() }.encode());
                let mut torn = a.clone();
                torn[..SECTOR_BYTES].copy_from_slice(&b[..SECTOR_BYTES]); // features new, checksum old
                assert!(Label::decode(&torn).is_err());
                assert!(old.is_torn_feature_rewrite(&torn, index), "{added:#x} from the old copy");
                assert!(new.is_torn_feature_rewrite(&torn, index), "{added:#x} from the new copy");
                assert!(!old.is_torn_feature_rewrite(&torn, 1 - index), "the other copy's index");
                let mut damaged = torn.clone();
                damaged[100] ^= 1;
                assert!(!old.is_torn_feature_rewrite(&damaged, index), "a flipped byte is damage");
                let mut zeroed = torn.clone();
                zeroed[BLOCK_BYTES as usize - SECTOR_BYTES..].fill(0);
                assert!(!old.is_torn_feature_rewrite(&zeroed, index), "a lost sector is damage");
                let other_pool = Label { pool_guid: [9; 16], ..old.clone() };
                assert!(!other_pool.is_torn_feature_rewrite(&torn, index));
            }
        }
        // Only the bits a commit adds: a torn change of record_overlays is damage.
        let a = old.encode();
        let b = Label { features_incompat: 0, ..old.clone() }.encode();
        let mut torn = a.clone();
        torn[..SECTOR_BYTES].copy_from_slice(&b[..SECTOR_BYTES]);
        assert!(!old.is_torn_feature_rewrite(&torn, old.index));
    }

    #[test]
    fn label_round_trip() {
        let label = sample();
        assert_eq!(Label::decode(&label.encode()).unwrap(), Some(label));
    }

    #[test]
    fn label_flip_is_detected() {
        // Goal: any single flipped bit after the magic is caught by the checksum.
        let bytes = sample().encode();
        for bit in (64..bytes.len() * 8).step_by(97) {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Label::decode(&damaged).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn newer_version_is_refused() {
        let mut label = sample();
        label.version = FORMAT_VERSION + 1;
        let err = Label::decode(&label.encode()).unwrap_err();
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    }

    #[test]
    fn features_are_named_and_unknown_bits_shown() {
        let mut label = sample();
        assert!(label.feature_names().is_empty());
        label.features_incompat =
            FEATURE_RECORD_OVERLAYS | FEATURE_LARGE_XATTRS | FEATURE_FRAME_INDEX | FEATURE_SNAPSHOT_INDEX | 1 << 40;
        label.features_ro_compat = FEATURE_DITTO_METADATA;
        assert_eq!(
            label.feature_names(),
            [
                "record_overlays",
                "large_xattrs",
                "frame_index",
                "snapshot_index",
                "ditto_metadata",
                "incompat:0x10000000000"
            ]
        );
    }
}
