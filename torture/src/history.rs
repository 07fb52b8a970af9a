//! `snaptorture history`: formats a pool with a long retained history, fast, for the
//! benchmarks of what a long history costs (bench/at_bench.sh: `snapshot --at`, open,
//! snapshot, put and expiry at 1,000 and 100,000 retained commits).
//!
//! One process makes every commit (a process per commit would take most of an hour for
//! 100,000), each rewriting one of a few small files, as a mounted tree's steady trickle
//! of changes would. Their times are spread one every SPACING seconds up to now, as
//! commits made over days would be: the tool's clock is the library's simulated one, set
//! to each commit's time (the product's commands always take the system's). The pool is
//! formatted at the first of those times, since no commit may be older than the one
//! before it, and its history window holds them all and a day more.

use snapfs::clock::SimClock;
use snapfs::device::{OpenMode, open_file_device};
use snapfs::fs::{Inode, ROOT_INO};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, format_pool_with_clock};
use std::sync::Arc;

/// Files the commits take turns rewriting.
const FILES: u64 = 64;

/// Formats `device` and makes `commits` commits on it, the last one now and each one
/// `spacing` seconds after the one before; `progress` hears of every 10,000th.
pub fn fill(device: &str, commits: u64, spacing: u64, progress: &mut dyn FnMut(u64)) -> Result<(), String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
    let step = spacing.checked_mul(1_000_000_000).ok_or("spacing too large")?;
    let first = commits
        .checked_mul(step)
        .and_then(|span| (now.as_nanos() as u64).checked_sub(span))
        .ok_or("the history would start before 1970")?;
    let clock = Arc::new(SimClock::new(first));
    clock.set_ns(first);
    let dev = open_file_device(device, OpenMode::Write).map_err(|e| e.to_string())?;
    let mut options = FormatOptions::default();
    options.config.history_seconds = commits.saturating_mul(spacing).saturating_add(86_400);
    let mut pool = format_pool_with_clock(Box::new(dev), &options, clock.clone()).map_err(|e| e.to_string())?;
    for i in 0..commits {
        clock.advance_ns(step);
        let mut fs = pool.live(LIVE_TREE_ID).map_err(|e| e.to_string())?;
        let name = format!("history-{}", i % FILES);
        let ino = match fs.lookup(ROOT_INO, name.as_bytes()).map_err(|e| e.to_string())? {
            Some(entry) => entry.ino,
            None => {
                let inode = Inode::new(0o100644, Default::default());
                fs.create(ROOT_INO, name.as_bytes(), inode).map_err(|e| e.to_string())?
            }
        };
        fs.write_at(ino, 0, format!("commit {i}\n").as_bytes()).map_err(|e| e.to_string())?;
        pool.commit().map_err(|e| e.to_string())?;
        if (i + 1) % 10_000 == 0 {
            progress(i + 1);
        }
    }
    Ok(())
}
