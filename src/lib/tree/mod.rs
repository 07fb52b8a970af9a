//! The copy-on-write B+tree that every table of the pool is made of.

pub mod btree;

pub use btree::{walk_nodes, Tree, WalkStep};
