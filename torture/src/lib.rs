//! snaptorture: torture tests for snapfs that run its real binaries.
//!
//! `crash` (the crash-consistency harness) records every write and flush a workload of
//! real commands issues, and judges every image a power cut could have left. `corrupt`
//! (the corruption injector) flips bits in every metadata block and in a sample of data
//! blocks of small pools, one at a time, and judges what reads, check and scrub make of
//! each. `history` formats a pool with a long retained history, for the benchmarks.

pub mod corrupt;
pub mod crash;
pub mod history;
pub mod rng;
