//! Free space: an in-memory set of free extents, rebuilt at open from the space log, and
//! the log records that each commit appends.

pub mod allocator;
mod extents;
pub mod space_log;

pub use allocator::Allocator;
pub use extents::ExtentSet;
