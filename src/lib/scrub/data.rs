//! The data pass: file data blocks (one copy each), sorted by address, read in large
//! requests by several threads, each block's checksum verified on the thread that read it.

use super::reader::{Extent, read_extents};
use super::report::describe;
use crate::block::BlockPtr;
use crate::checksum::blake3;
use crate::device::Device;
use std::sync::Mutex;

/// A bad data block: its pointer and what was wrong.
pub type BadBlock = (BlockPtr, String);

/// Verifies every block; `progress(bytes)` is called as reads complete.
pub fn verify(
    dev: &dyn Device,
    ptrs: &mut [BlockPtr],
    usable: (u64, u64),
    progress: &mut dyn FnMut(u64),
) -> Vec<BadBlock> {
    ptrs.sort_unstable_by_key(|p| p.addr.0);
    let mut bad = Vec::new();
    // A pointer outside the data area is damage, not a read.
    let (inside, outside): (Vec<BlockPtr>, Vec<BlockPtr>) = ptrs.iter().copied().partition(|p| {
        p.addr.0 >= usable.0 && p.addr.0.checked_add(p.allocated_blocks()).is_some_and(|end| end <= usable.1)
    });
    for ptr in outside {
        bad.push((ptr, format!("file-data block pointer to block {} lies outside the data area", ptr.addr.0)));
    }
    let extents: Vec<Extent> =
        inside.iter().map(|p| Extent { start: p.addr.0, blocks: p.allocated_blocks() }).collect();
    let found = Mutex::new(Vec::new());
    read_extents(
        dev,
        &extents,
        &|i, bytes| {
            let ptr = &inside[i];
            let verdict = match bytes {
                Ok(bytes) if blake3(&bytes[..ptr.stored_bytes as usize]) == ptr.checksum => return,
                Ok(_) => format!("checksum mismatch in file-data block at block {}", ptr.addr.0),
                Err(e) => describe(e),
            };
            found.lock().expect("no reader panics holding it").push((*ptr, verdict));
        },
        progress,
    );
    bad.extend(found.into_inner().expect("readers finished"));
    bad
}
