//! A readable line per record, as `zstream dump` and `btrfs receive --dump` print them.

use super::wire::{Begin, FEATURE_LARGE_XATTRS, FEATURE_LZ4, FEATURES_KNOWN, Record};
use crate::error::human_bytes;
use crate::pool::guid_hex;
use crate::utc::format_time_ns;

fn name(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

pub fn describe_begin(b: &Begin) -> String {
    let base = match &b.base {
        Some(base) => format!("incremental from @{} (guid {}, txg {})", base.name, guid_hex(&base.guid), base.txg),
        None => "full".to_string(),
    };
    let base = match &b.resume {
        Some(point) => format!("{base}, resumed at inode {} record {}", point.ino, point.record),
        None => base,
    };
    let named = [(FEATURE_LARGE_XATTRS, "large_xattrs"), (FEATURE_LZ4, "lz4")];
    let mut names: Vec<String> =
        named.iter().filter(|(bit, _)| b.features & bit != 0).map(|(_, name)| name.to_string()).collect();
    if b.features & !FEATURES_KNOWN != 0 {
        names.push(format!("{:#x}", b.features & !FEATURES_KNOWN));
    }
    let features = if names.is_empty() { String::new() } else { format!("; features {}", names.join(", ")) };
    format!(
        "BEGIN part {}/{} @{} (guid {}, txg {}, taken {}) {base}; source pool {}; part {} bytes, run {} bytes{features}",
        b.part + 1,
        b.parts,
        b.snapshot.name,
        guid_hex(&b.snapshot.guid),
        b.snapshot.txg,
        format_time_ns(b.snapshot_time_ns),
        guid_hex(&b.pool_guid),
        b.part_bytes,
        b.run_bytes
    )
}

/// One line describing a record (without its position).
pub fn describe(record: &Record) -> String {
    match record {
        Record::Begin(b) => describe_begin(b),
        Record::TreeMeta { next_ino } => format!("TREE_META next_ino={next_ino}"),
        Record::Inode { ino, inode: i } => format!(
            "INODE ino={ino} mode={:o} uid={} gid={} nlink={} size={} rdev={} mtime={}.{:09} generation={}",
            i.mode, i.uid, i.gid, i.nlink, i.size, i.rdev, i.mtime.sec, i.mtime.nsec, i.generation
        ),
        Record::FreeInode { ino } => format!("FREE_INODE ino={ino}"),
        Record::Link { dir, name: n, ino } => format!("LINK ino={ino} dir={dir} name={}", name(n)),
        Record::Unlink { dir, name: n, ino } => format!("UNLINK ino={ino} dir={dir} name={}", name(n)),
        Record::Rename { ino, from_dir, from_name, to_dir, to_name } => format!(
            "RENAME ino={ino} from dir={from_dir} name={} to dir={to_dir} name={}",
            name(from_name),
            name(to_name)
        ),
        Record::Symlink { ino, target } => format!("SYMLINK ino={ino} target={}", name(target)),
        Record::SetXattr { ino, name: n, value } => {
            format!("{} ino={ino} name={} value_bytes={}", record.record_type().name(), name(n), value.len())
        }
        Record::RemoveXattr { ino, name: n } => format!("REMOVE_XATTR ino={ino} name={}", name(n)),
        Record::Write(w) => {
            let overlay = match &w.overlay {
                None => String::new(),
                Some(o) => format!(
                    " overlay=(record={} pieces={:#010x} stored={} compression={:?} checksum={})",
                    o.logical_bytes,
                    o.mask,
                    o.stored_bytes,
                    o.compression,
                    short_hex(&o.checksum)
                ),
            };
            format!(
                "WRITE ino={} offset={} logical={} stored={} compression={:?} checksum={}{overlay}",
                w.ino,
                w.index.saturating_mul(crate::fs::record::RECORD_BYTES),
                w.logical_bytes,
                w.stored_bytes,
                w.compression,
                short_hex(&w.checksum)
            )
        }
        Record::Patch(p) => format!(
            "PATCH ino={} offset={} logical={} pieces={:#010x} data={}",
            p.ino,
            p.index.saturating_mul(crate::fs::record::RECORD_BYTES),
            p.logical_bytes,
            p.mask,
            human_bytes(p.data.len() as u64)
        ),
        Record::Punch { ino, first, count } => {
            format!("PUNCH ino={ino} offset={} records={count}", first.saturating_mul(crate::fs::record::RECORD_BYTES))
        }
        Record::End(e) => format!(
            "END records={} bytes={} digest={}",
            e.records,
            e.bytes,
            e.digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Record::Range { first, end } => {
            format!("RANGE first={} end={}", hex(first), end.as_deref().map_or("(the end)".to_string(), hex))
        }
        Record::Item { key, value } => {
            let ino = crate::fs::inode::FileKey::parse(key).map_or("?".to_string(), |k| k.ino.to_string());
            format!("ITEM ino={ino} key={} value_bytes={}", hex(key), value.len())
        }
        Record::KeepRecord(k) => format!(
            "KEEP_RECORD ino={} offset={} checksum={}",
            k.ino,
            k.index.saturating_mul(crate::fs::record::RECORD_BYTES),
            short_hex(&k.checksum)
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 8 bytes of a checksum, in hex: enough to tell blocks apart in a dump.
fn short_hex(checksum: &[u8; 32]) -> String {
    checksum.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
