//! Retention for cron over simulated months: `snapshot --auto` every hour and `prune
//! --keep` after each, on a pool whose clock the test moves (src/lib/clock.rs), so a
//! month takes a second. The kept set must be what the rules say, a weekend with the
//! machine off must not wipe the hourlies (btrbk#308), held snapshots must survive, and
//! `check` must find the pool exact throughout.

use snapfs::check::check_pool;
use snapfs::clock::SimClock;
use snapfs::cmd::prune::{KeepRules, prune, snapshot_auto};
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
    snapshot_auto(pool, LIVE_TREE_ID, None).unwrap();
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

/// The stream of `@to` (from `@from`) of `pool`.
fn stream_of(pool: &mut Pool, from: Option<&str>, to: &str) -> Vec<u8> {
    use snapfs::stream::{framing::StreamWriter, send};
    let parts = send::plan(pool, LIVE_TREE_ID, from, to, false).unwrap();
    let mut out = Vec::new();
    let mut writer = StreamWriter::new(&mut out, None);
    send::send(pool, &parts, None, &mut writer).unwrap();
    out
}

fn receive_into(pool: &mut Pool, stream: &[u8]) {
    use snapfs::stream::{framing::StreamReader, receive};
    let mut input = stream;
    let mut reader = StreamReader::new(&mut input, None);
    let options = receive::ReceiveOptions { force: false, save_partial: false };
    receive::receive(pool, LIVE_TREE_ID, &mut reader, options, &mut |_| {}).unwrap();
}

/// The bytes of /log in snapshot `name`.
fn log_of(pool: &mut Pool, name: &str) -> Vec<u8> {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, Some(name)).unwrap();
    let mut fs = snapfs::fs::FsTree::new(&mut tree, store, false);
    let ino = fs.lookup(ROOT_INO, b"log").unwrap().unwrap().ino;
    fs.read(ino, 0, u64::MAX).unwrap()
}

#[test]
fn nightly_replication_survives_pruning_on_both_sides_and_days_offline() {
    // Goal: the cron recipe of the README over 40 simulated days: each night the source
    // takes an automatic snapshot, sends the incremental from the base its "replica" hold
    // marks, moves the holds forward on both sides, and both sides prune with rules so
    // tight (daily=2) that an unheld base would be gone after the replica was away for
    // three nights. Every incremental still finds its base, the replica's newest
    // snapshot holds what the source's does, and both pools stay exact.
    let (source_clock, target_clock) = (Arc::new(SimClock::new(21)), Arc::new(SimClock::new(22)));
    let (mut source, mut target) = (pool(&source_clock), pool(&target_clock));
    let rules = KeepRules::parse("daily=2").unwrap();
    let mut base: Option<String> = None;
    let mut sent = 0;
    for day in 0..40u64 {
        source_clock.advance_seconds(24 * HOUR);
        target_clock.advance_seconds(24 * HOUR);
        let mut fs = source.live(LIVE_TREE_ID).unwrap();
        let now = Timespec { sec: 1_700_000_000 + day as i64 * 86400, nsec: 0 };
        let ino = match fs.lookup(ROOT_INO, b"log").unwrap() {
            Some(entry) => entry.ino,
            None => fs.create(ROOT_INO, b"log", Inode::new(0o100644, now)).unwrap(),
        };
        fs.write_at(ino, (day % 16) * 4096, &[day as u8 + 1; 4096]).unwrap();
        source.commit().unwrap();
        let taken = snapshot_auto(&mut source, LIVE_TREE_ID, None).unwrap().name;
        let offline = (10..13).contains(&day) || (25..29).contains(&day);
        if !offline {
            let stream = stream_of(&mut source, base.as_deref(), &taken);
            receive_into(&mut target, &stream);
            sent += 1;
            target.hold_snapshot(LIVE_TREE_ID, &taken, "source").unwrap();
            source.hold_snapshot(LIVE_TREE_ID, &taken, "replica").unwrap();
            if let Some(old) = &base {
                target.release_snapshot(LIVE_TREE_ID, old, "source").unwrap();
                source.release_snapshot(LIVE_TREE_ID, old, "replica").unwrap();
            }
            target.commit().unwrap();
            source.commit().unwrap();
            assert_eq!(log_of(&mut target, &taken), log_of(&mut source, &taken), "day {day}");
            base = Some(taken);
        }
        prune(&mut source, LIVE_TREE_ID, &rules, false).unwrap();
        prune(&mut target, LIVE_TREE_ID, &rules, false).unwrap();
        let on_source = names(&mut source);
        assert!(on_source.contains(base.as_ref().unwrap()), "day {day}: the held base stays: {on_source:?}");
        assert!(on_source.len() <= 3, "day {day}: two dailies and at most the held base: {on_source:?}");
        if day % 7 == 0 {
            assert!(check_pool(&mut source).unwrap().is_clean(), "source, day {day}");
            assert!(check_pool(&mut target).unwrap().is_clean(), "target, day {day}");
        }
    }
    assert_eq!(sent, 40 - 7);
    assert!(names(&mut target).len() <= 3);
    assert!(check_pool(&mut source).unwrap().is_clean());
    assert!(check_pool(&mut target).unwrap().is_clean());
}
