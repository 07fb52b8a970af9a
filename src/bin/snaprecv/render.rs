//! What snaprecv prints: each snapshot received, each part a verify read, what an abort
//! discarded, and --dump's line per record.

use super::PROGRAM;
use snapfs::cmd::receive::Discarded;
use snapfs::error::human_bytes;
use snapfs::stream::dump::{describe, describe_begin};
use snapfs::stream::framing::Position;
use snapfs::stream::receive::{Preparation, Received, VerifiedPart, plural};
use snapfs::stream::wire::Record;

pub fn discarded(d: &Discarded) -> String {
    format!(
        "{PROGRAM}: discarded the partial receive of @{} ({}), freed {}\n",
        d.snapshot,
        plural(d.records_applied, "record"),
        human_bytes(d.freed_bytes)
    )
}

pub fn received(r: &Received) -> String {
    let rolled = if r.rolled_back { " after rolling the live tree back" } else { "" };
    format!(
        "{PROGRAM}: received @{}{}{rolled}: {}, {}, txg {}\n",
        r.name,
        if r.resumed { " (resumed)" } else { "" },
        plural(r.records, "record"),
        human_bytes(r.bytes),
        r.txg
    )
}

/// A part a verify read whole, and whether it would apply to `device` (if given).
pub fn verified(part: &VerifiedPart, device: Option<&str>) -> String {
    let mut text = format!(
        "{PROGRAM}: part {}/{}: {} records, {} bytes: every checksum and the END digest verified\n  {}\n",
        part.begin.part + 1,
        part.begin.parts,
        part.records,
        part.bytes,
        describe_begin(&part.begin)
    );
    match (device, &part.refusal) {
        (Some(device), None) => {
            let rolled = part.preparation == Some(Preparation::RollBack);
            let rolled = if rolled { " after rolling its live tree back (-F)" } else { "" };
            text.push_str(&format!("  would apply to {device}{rolled}\n"));
        }
        (Some(device), Some(e)) => text.push_str(&format!("  would NOT apply to {device}: {e}\n")),
        (None, _) => {}
    }
    text
}

pub fn dump_line(at: Position, record: &Record) -> String {
    format!("{:>12} {:>3}:{:<8} {}\n", at.offset, at.part, at.record, describe(record))
}
