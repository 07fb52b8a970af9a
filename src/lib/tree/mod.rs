//! The copy-on-write B+tree that every table of the pool is made of.

pub mod btree;

pub use btree::{Tree, WalkStep, walk_nodes};
