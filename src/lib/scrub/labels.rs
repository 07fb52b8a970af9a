//! Both labels: the one that opened the pool is good; the other must match it. Labels
//! never change after format (but for `expand`, which rewrites both), so a bad one is
//! queued to be rewritten from the good one.

use super::repair::Repair;
use super::report::ScrubReport;
use crate::block::BLOCK_BYTES;
use crate::format::label::{Label, region_start};
use crate::pool::{Pool, read_blocks};

/// Reports each bad label in `report.labels_damaged`; returns the rewrites that repair them.
pub fn verify(pool: &Pool, report: &mut ScrubReport) -> Vec<Repair> {
    let mut repairs = Vec::new();
    for index in 0..2u32 {
        let offset = region_start(index, pool.label.device_bytes) * BLOCK_BYTES;
        // Past the end of a shrunk device (opened read-only) it reads as missing.
        let found =
            read_blocks(pool.store.dev.as_ref(), offset / BLOCK_BYTES, 1).and_then(|block| Label::decode(&block));
        let why = match found {
            Ok(Some(label)) if label.pool_guid == pool.label.pool_guid && label.index == index => continue,
            Ok(Some(_)) => "belongs to another pool or slot".to_string(),
            Ok(None) => "is missing".to_string(),
            Err(e) => e.to_string(),
        };
        repairs.push(Repair::Label(Label { index, ..pool.label.clone() }));
        report.labels_damaged.push(format!("label {index} {why}"));
    }
    repairs
}
