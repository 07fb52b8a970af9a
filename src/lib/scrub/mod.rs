//! `snapctl scrub`: reads every copy of every reachable block, verifies its checksum,
//! rewrites a bad copy of metadata from a good one, and names the files and snapshots
//! that damage beyond repair affects.
//!
//! Unlike `check`, it proves nothing about the structure: it is the fast, regular pass
//! (as `zpool scrub` is) that finds bit rot before a read needs the block. Metadata is
//! walked first, every copy on its own; file data, the bulk, is then read in address order
//! in large requests by several threads, at close to the device's raw read rate.

mod blame;
mod data;
mod metadata;
mod reader;
mod report;

pub use report::{Damage, ScrubOptions, ScrubProgress, ScrubReport, scrub_pool};
