//! `snaptorture corrupt`: damage a pool one block at a time and prove every flip is
//! caught. For each pool (from a seed): one bit of every copy of every metadata block and
//! of a sample of file data blocks is flipped, alone, and the damaged image must
//! - open and read every file of every view: metadata with a good copy left reads the
//!   right bytes; a file whose only data copy is hit fails to read, and nothing ever
//!   reads wrong bytes;
//! - make `check` report a problem and `scrub -n` report that very block (recoverable or
//!   not, and for data, the files it held);
//! - for metadata, be rewritten by `scrub` to the original image byte for byte.
//!
//! Labels and commit rings: each label zeroed or torn, a whole ring zeroed, the newest
//! slot of both rings zeroed: the pool opens from the other copy or the previous commit
//! with that commit's contents. No trial may panic. The targets come from `check`'s
//! inventory of the pool, not from `scrub`, so scrub is judged by an independent walk.

mod pool;
mod trial;

use crate::rng::Rng;
pub use trial::Tally;

pub struct Config {
    pub seed: u64,
    pub pools: u64,
    /// Data blocks flipped per pool at most (metadata blocks are all flipped).
    pub data_per_pool: usize,
}

/// Runs every trial; `progress` gets a line per pool.
pub fn run(config: &Config, progress: &mut dyn FnMut(&str)) -> Tally {
    let mut tally = Tally::default();
    for index in 0..config.pools {
        let seed = config.seed.wrapping_add(index);
        let built = pool::build(seed);
        let before = tally.flips();
        trial::metadata_and_data(&built, seed, config.data_per_pool, &mut Rng::derive(seed, &[2]), &mut tally);
        trial::labels_and_rings(&built, seed, &mut tally);
        progress(&format!(
            "pool {index} (seed {seed}): {} files in {} views, {} flips; failures so far {}",
            built.contents.len(),
            built.contents.keys().map(|(view, _)| view).collect::<std::collections::BTreeSet<_>>().len(),
            tally.flips() - before,
            tally.failures.len()
        ));
    }
    tally
}
