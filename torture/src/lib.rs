//! snaptorture: torture tests for snapfs that run its real binaries.
//!
//! `crash` (the crash-consistency harness) records every write and flush a workload of
//! real commands issues, and judges every image a power cut could have left. Further
//! torture (corruption injection, say) would go beside it as its own module.

pub mod crash;
pub mod rng;
