//! snapfs: a copy-on-write store with instant snapshots on a raw block device.
//!
//! Layers, bottom up. A module imports only modules of layers below its own (its own
//! folder aside); tests/layering.rs enforces it from this list, so keep one numbered line
//! per layer, its modules in backquotes before the colon. Each module's header states
//! its invariants.
//!
//! 0. `clock`: time and guids, the one seam a test replaces to replay them from a seed;
//! 1. `error`: what can go wrong, for every layer;
//! 2. `codec`, `utc`, `workers`: leaves: little-endian encoding, times as text, worker threads;
//! 3. `device`: the only I/O seam (file, block device, memory);
//! 4. `block`: block pointers, sizes, kinds;
//! 5. `checksum`, `compress`: blake3 and xxh3, zstd and lz4;
//! 6. `format`: byte layout of labels, commit records, nodes and tables (docs/FORMAT.md);
//! 7. `alloc`: free space and the space log;
//! 8. `store`: verified block reads, compressed writes, kills;
//! 9. `tree`: the copy-on-write B+tree and the difference of two trees;
//! 10. `fs`: the file tree (inodes, directories, records, xattrs), host files in and out, stream records applied;
//! 11. `pool`: open, format, commit, snapshots, retention of history, receive staging, resize;
//! 12. `stream`, `check`, `scrub`, `dump`: replication streams (docs/STREAM.md), verification, repair, inspection;
//! 13. `cmd`: the commands' logic, each one transaction, returning a typed outcome;
//! 14. `cli`: what the binaries share: opening a device, parsing arguments, printing, hints, exit codes;
//! 15. `fuzzing`: what the fuzz targets run (fuzz/), for tests only.

pub mod alloc;
pub mod block;
pub mod check;
pub mod checksum;
pub mod clock;
pub mod codec;
pub mod compress;
pub mod device;
pub mod dump;
pub mod error;
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
pub mod utc;
pub mod workers;

pub use error::{Error, Result};
pub mod cli;
pub mod cmd;
