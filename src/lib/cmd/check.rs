//! `check`: verify every checksum and prove the free-space map exact.

use crate::check::check_pool;
use crate::error::Result;
use crate::pool::Pool;
use serde::Serialize;

/// What check found. Fields in the order `snapctl check --json` has always written them
/// (alphabetical).
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    pub blocks_verified: u64,
    pub bytes_verified: u64,
    /// No problems: every checksum verified and referenced + free = the data area.
    pub clean: bool,
    pub dead_entries: u64,
    pub free_blocks: u64,
    pub problems: Vec<String>,
    pub referenced_blocks: u64,
    pub trees_walked: u64,
}

pub fn check(pool: &mut Pool) -> Result<Checked> {
    let report = check_pool(pool)?;
    Ok(Checked {
        blocks_verified: report.blocks_verified,
        bytes_verified: report.bytes_verified,
        clean: report.is_clean(),
        dead_entries: report.dead_entries,
        free_blocks: report.free_blocks,
        problems: report.problems,
        referenced_blocks: report.referenced_blocks,
        trees_walked: report.trees_walked,
    })
}
