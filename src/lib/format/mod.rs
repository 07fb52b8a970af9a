//! Byte layout of every on-disk structure: encode and decode, no policy.
//! docs/FORMAT.md is the specification this code follows.

pub mod commit;
pub mod label;
pub mod node;
pub mod pool_root;
pub mod probe;
pub mod receive_state;
pub mod tables;
