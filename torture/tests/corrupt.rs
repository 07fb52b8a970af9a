//! The corruption injector, with the test suite's budget.
//!
//! Goal: every flip of one bit in a pool is caught: reads of metadata with a good copy
//! left return the right bytes, a file whose only data copy is hit fails to read, check
//! and scrub report every flip, scrub restores every metadata copy, damaged labels and
//! commit rings fall back; never wrong bytes, never a panic.
//! Method: `snaptorture corrupt` on two pools of fixed seeds, every metadata copy and
//! up to 40 data blocks each (torture/src/corrupt/mod.rs). The long run is
//! `snaptorture corrupt --pools 100`. Seed 1033 is the pool on which the soak found
//! first copies overwritten by a stale ditto write (store.rs, `buffered_write`): the
//! undamaged pool must check clean before any flip.

use snapfs_torture::corrupt::{Config, run};

#[test]
fn every_flip_in_a_pool_is_caught_and_metadata_is_repaired() {
    let tally = run(&Config { seed: 1033, pools: 2, data_per_pool: 40 }, &mut |line| eprintln!("{line}"));
    assert!(tally.failures.is_empty(), "{:#?}", tally.failures);
    assert_eq!((tally.wrong_bytes, tally.panics), (0, 0));
    assert!(tally.metadata_flips >= 50 && tally.data_flips >= 40, "{tally:?}");
    assert_eq!(tally.metadata_repaired, tally.metadata_flips);
    assert_eq!(tally.data_scrub_detected, tally.data_flips);
    assert_eq!(tally.label_ring_recovered, tally.label_ring_trials);
}
