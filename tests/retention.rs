//! Retention for cron over simulated months: `snapshot --auto` every hour and `prune
//! --keep` after each, on a pool whose clock the test moves (src/lib/clock.rs), so a
//! month takes a second. The kept set must be what the rules say, a weekend with the
//! machine off must not wipe the hourlies (btrbk#308), held snapshots must survive, and
//! `check` must find the pool exact throughout.

use snapfs::check::check_pool;
use snapfs::clock::SimClock;
use snapfs::cmd::prune::{KeepRules, prune};
use snapfs::cmd::snapshot::snapshot_auto;
use snapfs::device::MemoryDevice;
use snapfs::fs::{Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool_with_clock};
use std::sync::Arc;

const HOUR: u64 = 3600;

fn pool(clock: &Arc<SimClock>) -> Pool {
    let mut options = FormatOptions::default();
    options.config.history_seconds = 0;
    format_pool_with_clock(Box::new(MemoryDevice::new(64 << 20)), &options, clock.clone()).unwrap()
}

/// One hour of work: a file changes, then an automatic snapshot and a prune.
fn hour(pool: &mut Pool, clock: &SimClock, n: u64, rules: &KeepRules) {
    clock.advance_seconds(HOUR);
    let mut fs = pool.live(LIVE_TREE_ID).unwrap();
    let now = Timespec { sec: 1_700_000_000 + n as i64, nsec: 0 };
    let ino = match fs.lookup(ROOT_INO, b"log").unwrap() {
        Some(entry) => entry.ino,
        None => fs.create(ROOT_INO, b"log", Inode::new(0o100644, now)).unwrap(),
    };
    fs.write_at(ino, (n % 64) * 4096, &[n as u8; 4096]).unwrap();
    pool.commit().unwrap();
    snapshot_auto(pool, LIVE_TREE_ID).unwrap();
    prune(pool, LIVE_TREE_ID, rules, false).unwrap();
}

fn names(pool: &mut Pool) -> Vec<String> {
    pool.snapshots_of(LIVE_TREE_ID).unwrap().into_iter().map(|s| s.name).collect()
}

#[test]
fn a_month_of_hourly_snapshots_keeps_what_the_rules_say() {
    let clock = Arc::new(SimClock::new(7));
    let mut pool = pool(&clock);
    let rules = KeepRules::parse("hourly=24,daily=7,weekly=4").unwrap();
    for n in 0..31 * 24 {
        hour(&mut pool, &clock, n, &rules);
        if n % 97 == 0 {
            assert!(check_pool(&mut pool).unwrap().is_clean(), "hour {n}");
        }
    }
    let kept = names(&mut pool);
    // 24 hourlies; the daily rule adds the newest of the 6 days before today's (today's
    // newest is an hourly already); the weekly rule adds at most the newest of the
    // weeks before the last 7 days.
    assert!(kept.len() >= 24 + 6 && kept.len() <= 24 + 6 + 4, "{} kept: {kept:?}", kept.len());
    let times: Vec<u64> = pool.snapshots_of(LIVE_TREE_ID).unwrap().iter().map(|s| s.time_ns).collect();
    let newest = *times.last().unwrap();
    let hourlies = times.iter().filter(|&&t| newest - t < 24 * HOUR * 1_000_000_000).count();
    assert_eq!(hourlies, 24, "the last 24 hours each keep one");
    assert!(check_pool(&mut pool).unwrap().is_clean());
}

#[test]
fn a_weekend_off_does_not_wipe_the_hourlies_and_holds_outlive_the_rules() {
    let clock = Arc::new(SimClock::new(8));
    let mut pool = pool(&clock);
    let rules = KeepRules::parse("hourly=24").unwrap();
    for n in 0..30 {
        hour(&mut pool, &clock, n, &rules);
    }
    let first = names(&mut pool)[0].clone();
    pool.hold_snapshot(LIVE_TREE_ID, &first, "replica").unwrap();
    pool.commit().unwrap();
    // The machine is off for 60 hours, then runs two more.
    clock.advance_seconds(60 * HOUR);
    for n in 30..32 {
        hour(&mut pool, &clock, n, &rules);
    }
    let kept = names(&mut pool);
    assert_eq!(kept.len(), 25, "24 hourlies, counted as snapshots, plus the held one: {kept:?}");
    assert!(kept.contains(&first), "the held snapshot stays");
    // -n says the same as the prune that follows, and nothing changes in between.
    let strict = KeepRules::parse("hourly=2").unwrap();
    let dry = prune(&mut pool, LIVE_TREE_ID, &strict, true).unwrap();
    assert_eq!(names(&mut pool), kept);
    let real = prune(&mut pool, LIVE_TREE_ID, &strict, false).unwrap();
    assert_eq!(dry.destroyed, real.destroyed);
    assert_eq!(names(&mut pool).len(), 3, "two hourlies and the held one");
    assert!(check_pool(&mut pool).unwrap().is_clean());
}
