//! The copy-on-write B+tree that every table of the pool is made of.

pub mod born_after;
pub mod btree;
pub mod diff;
mod leaf;

pub use btree::{Tree, WalkStep, walk_nodes};
pub use diff::{Change, TreeDiff};
