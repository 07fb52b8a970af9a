//! Replication streams (docs/STREAM.md): the wire format, the difference between two
//! snapshots, sending it, and applying it atomically on another pool.
//!
//! - `wire`: byte layout of the preamble and of each record;
//! - `framing`: writing and reading parts, with per-record checksums and the End digest;
//!   `input`: the reader's input, in large page-aligned chunks;
//! - `generate`: changed keys to records (or, from a bookmark, the ranges born after it);
//!   sizes a stream without reading data; `apply_ranges`: the receiver's side of ranges;
//! - `send`, `receive`: the two ends; `patcher`: PATCH records on worker threads; `content_check`: WRITE records' content, checked on worker threads; `token`: resume tokens; `dump`: records as text.

pub mod apply_ranges;
pub mod content_check;
pub mod dump;
pub mod framing;
pub mod generate;
pub mod input;
pub mod patcher;
pub mod receive;
pub mod send;
pub mod token;
pub mod wire;
