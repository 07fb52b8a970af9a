//! snapfs: a copy-on-write store with instant snapshots on a raw block device.
//!
//! Layers, bottom up (each module's header states its invariants):
//! - `device`: the only I/O seam (file, block device, memory);
//! - `block`, `checksum`, `compress`: block pointers, blake3/xxh3, zstd;
//! - `format`: byte layout of labels, commit records, nodes and tables (docs/FORMAT.md);
//! - `alloc`: free space and the space log;
//! - `store`: verified block reads, compressed writes, kills;
//! - `tree`: the copy-on-write B+tree;
//! - `pool`: open, format, commit, retention of snapshots and history;
//! - `fs`: inodes, directories, records; `sync` and `export`;
//! - `stream`: replication streams, full and incremental (docs/STREAM.md);
//! - `check`, `scrub`, `dump`: offline verification, repair of bad copies, inspection.

pub mod alloc;
pub mod block;
pub mod check;
pub mod checksum;
pub mod compress;
pub mod device;
pub mod dump;
pub mod error;
pub mod exit_code;
pub mod format;
pub mod fs;
/// What the fuzz targets run (fuzz/), shared with the regression test that replays their finds.
/// Test code: only in builds with the `testing` feature (Cargo.toml), never in the product.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod pool;
pub mod scrub;
pub mod store;
pub mod stream;
pub mod tree;
pub mod workers;

pub use error::{Error, Result};
pub mod cli;
pub mod ops;
