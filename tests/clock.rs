//! The clock seam (src/lib/clock.rs) at work on whole pools: every time and guid a pool
//! records comes from the clock it was given, so a simulated clock makes history expiry
//! testable at chosen times and a seeded run replay to the byte.
//!
//! Retention rules and point-in-time snapshots build on these: what they keep is decided
//! by commit times, which only a clock that the test moves can pin.

use snapfs::check::check_pool;
use snapfs::clock::{Clock, SIM_START_NS, SimClock};
use snapfs::cmd::history::{Change, history};
use snapfs::cmd::tree::{PutSource, ls, put};
use snapfs::cmd::{PathSpec, snapshot};
use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool_with_clock};
use std::sync::Arc;

const SECOND_NS: u64 = 1_000_000_000;
const POOL_BYTES: u64 = 64 << 20;

/// splitmix64, the test's own choices (the clock draws its guids from another stream).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn pool_on(clock: &Arc<SimClock>, history_seconds: u64) -> Pool {
    let mut options = FormatOptions::default();
    options.config.history_seconds = history_seconds;
    // Only the window decides here: the free-space reserve would expire more.
    options.config.history_reserve_percent = 0;
    format_pool_with_clock(Box::new(MemoryDevice::new(POOL_BYTES)), &options, clock.clone()).unwrap()
}

fn put_bytes(pool: &mut Pool, path: &str, data: &[u8]) {
    put(pool, LIVE_TREE_ID, PutSource::Stream(&mut &data[..]), path, None).unwrap();
}

fn retained(pool: &mut Pool) -> Vec<(u64, u64)> {
    pool.history().unwrap().into_iter().map(|(txg, ns)| (txg.0, ns)).collect()
}

/// How often a run hit each edge of the window, to show the runs are not vacuous.
#[derive(Default, Debug)]
struct Edges {
    kept_at_exactly_the_window: usize,
    expired_one_ns_past_it: usize,
    expired_by_a_shorter_keep: usize,
    pruned: usize,
}

/// Goal: history expiry keeps exactly the commits whose age is at most the window (the
/// newest always), at every edge: age equal to the window (kept), one nanosecond more
/// (expired), a window shortened by `history --keep`, a prune, and across reopens.
/// Method: a seeded sequence of clock moves, each followed by a command that commits;
/// after each, the pool's retained commits (txg and time) must equal a model's. The
/// moves aim at the edges: to exactly the window past a retained commit, or one ns more.
#[test]
fn history_keeps_exactly_the_commits_a_seeded_time_sequence_says() {
    let mut edges = Edges::default();
    for seed in 0..6u64 {
        let mut rng = Rng(seed);
        let clock = Arc::new(SimClock::new(seed));
        let mut window_s = [60, 3600, 86400][seed as usize % 3];
        let mut pool = pool_on(&clock, window_s);
        let mut model = retained(&mut pool);
        assert_eq!(model, [(pool.txg().0, SIM_START_NS)], "seed {seed}: the format's commit, at the clock's time");
        for step in 0..48u64 {
            let window_ns = window_s * SECOND_NS;
            let now = clock.peek_ns();
            let (_, aim) = model[rng.below(model.len() as u64) as usize];
            let target = match rng.below(6) {
                0 => now,
                1 => now + 1,
                2 => now + rng.below(window_ns),
                3 => aim + window_ns,
                4 => aim + window_ns + 1,
                _ => now + window_ns + 1 + rng.below(window_ns),
            };
            clock.set_ns(target.max(now));
            let commit_ns = clock.peek_ns();
            let mut prune = false;
            let window_before_s = window_s;
            match rng.below(10) {
                0 => {
                    // `snapctl history --keep`: the new window applies to this commit.
                    window_s = [0, 30, 60, 3600, 86400][rng.below(5) as usize];
                    history(&mut pool, Change { keep_seconds: Some(window_s), prune: false }).unwrap();
                }
                1 => {
                    prune = true;
                    history(&mut pool, Change { keep_seconds: None, prune: true }).unwrap();
                }
                2 => {
                    pool = Pool::open_with_clock(pool.store.dev, OpenMode::Write, clock.clone()).unwrap();
                    put_bytes(&mut pool, "reopened", &step.to_le_bytes());
                }
                _ => put_bytes(&mut pool, &format!("f{}", rng.below(4)), &rng.next().to_le_bytes().repeat(512)),
            }
            let txg = pool.txg().0;
            assert_eq!(pool.commit.time_ns, commit_ns, "seed {seed} step {step}: the commit's time is the clock's");

            let window_ns = window_s * SECOND_NS;
            model.push((txg, commit_ns));
            for &(t, time) in &model {
                let age = commit_ns - time;
                if t != txg && age == window_ns {
                    edges.kept_at_exactly_the_window += 1;
                }
                if t != txg && age == window_ns + 1 && !prune {
                    edges.expired_one_ns_past_it += 1;
                }
                if !prune && age > window_ns && age <= window_before_s * SECOND_NS {
                    edges.expired_by_a_shorter_keep += 1;
                }
            }
            model.retain(|&(t, time)| t == txg || (!prune && commit_ns - time <= window_ns));
            edges.pruned += prune as usize;
            assert_eq!(retained(&mut pool), model, "seed {seed} step {step}: window {window_s} s, now {commit_ns}");
        }
        let report = check_pool(&mut pool).unwrap();
        assert!(report.is_clean(), "seed {seed}: {:?}", report.problems);
    }
    assert!(edges.kept_at_exactly_the_window > 0, "{edges:?}");
    assert!(edges.expired_one_ns_past_it > 0, "{edges:?}");
    assert!(edges.expired_by_a_shorter_keep > 0, "{edges:?}");
    assert!(edges.pruned > 0, "{edges:?}");
}

/// Goal: a host clock stepped back (by NTP, or by hand) never makes a commit look older
/// than the one before it: commit and snapshot times stay monotonic, nothing expires for
/// the step, and the guard holds across a reopen on a clock that reads 1970.
/// Method: commit, step the clock back an hour, commit and snapshot; then forward past
/// the window of the first commit only; then reopen with a clock at 0 and commit.
#[test]
fn commit_times_stay_monotonic_when_the_clock_goes_back() {
    let clock = Arc::new(SimClock::new(7));
    let mut pool = pool_on(&clock, 3600);
    let first = pool.commit.time_ns;
    clock.advance_seconds(600);
    put_bytes(&mut pool, "a", b"one");
    let second = pool.commit.time_ns;
    assert_eq!(second, first + 600 * SECOND_NS);

    clock.set_ns(second - 3600 * SECOND_NS);
    put_bytes(&mut pool, "a", b"two");
    assert_eq!(pool.commit.time_ns, second, "a commit after the clock stepped back takes the previous time");
    snapshot::snapshot(&mut pool, LIVE_TREE_ID, "back").unwrap();
    assert_eq!(pool.snapshot(LIVE_TREE_ID, "back").unwrap().time_ns, second);
    let times: Vec<u64> = retained(&mut pool).iter().map(|&(_, ns)| ns).collect();
    assert_eq!(times, [first, second, second, second], "nothing expired for the step back");

    clock.set_ns(first + 3600 * SECOND_NS + 1);
    put_bytes(&mut pool, "a", b"three");
    let times: Vec<u64> = retained(&mut pool).iter().map(|&(_, ns)| ns).collect();
    assert_eq!(times, [second, second, second, first + 3600 * SECOND_NS + 1], "only the first commit aged out");

    let last = pool.commit.time_ns;
    let in_1970 = Arc::new(SimClock::new(7));
    in_1970.set_ns(0);
    let mut pool = Pool::open_with_clock(pool.store.dev, OpenMode::Write, in_1970).unwrap();
    put_bytes(&mut pool, "a", b"four");
    assert_eq!(pool.commit.time_ns, last, "the previous commit's time, as read back from the device");
    assert_eq!(retained(&mut pool).len(), 5, "a clock at 0 ages nothing");
}

/// Everything a seeded run leaves: the device's bytes, guids and times.
#[derive(Debug, PartialEq)]
struct Run {
    image: Vec<u8>,
    pool_guid: [u8; 16],
    snapshot_guids: Vec<[u8; 16]>,
    history: Vec<(u64, u64)>,
}

fn seeded_run(seed: u64) -> Run {
    let mut rng = Rng(seed ^ 0xc10c);
    let clock = Arc::new(SimClock::ticking(seed, 1_000));
    let mut pool = pool_on(&clock, 120);
    for step in 0..12u64 {
        clock.advance_seconds(rng.below(100));
        put_bytes(&mut pool, &format!("d{}", step % 3), &rng.next().to_le_bytes().repeat(300 + step as usize));
        if step % 4 == 3 {
            snapshot::snapshot(&mut pool, LIVE_TREE_ID, &format!("s{step}")).unwrap();
        }
    }
    let mut image = vec![0u8; POOL_BYTES as usize];
    pool.store.dev.read_at(0, &mut image).unwrap();
    Run {
        image,
        pool_guid: pool.label.pool_guid,
        snapshot_guids: pool.snapshots_of(LIVE_TREE_ID).unwrap().iter().map(|s| s.guid).collect(),
        history: retained(&mut pool),
    }
}

/// Goal: a pool built on a simulated clock is a function of the seed: the same seed
/// gives the same device bytes, guids and times (so a failure found by seed replays
/// exactly), and another seed other guids.
/// Method: the same seeded run of writes, snapshots and expiring history, twice per seed.
#[test]
fn a_seed_replays_the_same_pool_to_the_byte() {
    for seed in [1, 2] {
        let (a, b) = (seeded_run(seed), seeded_run(seed));
        assert_eq!(a.history, b.history, "seed {seed}");
        assert_eq!((a.pool_guid, &a.snapshot_guids), (b.pool_guid, &b.snapshot_guids), "seed {seed}");
        assert!(a.image == b.image, "seed {seed}: the two runs wrote different bytes");
        assert_eq!(a.snapshot_guids.len(), 3);
        assert!(a.history.len() > 1 && a.history.len() < 16, "seed {seed}: history partly expired: {:?}", a.history);
    }
    let (one, two) = (seeded_run(1), seeded_run(2));
    assert_ne!(one.pool_guid, two.pool_guid);
    assert!(one.snapshot_guids.iter().all(|g| !two.snapshot_guids.contains(g)));
}

/// Goal: the pool draws every guid and time from its clock, the command layer included:
/// the pool's guid and creation time at format, a snapshot's guid and time, an inode's
/// times from `put` and `mkdir`. Method: a twin clock of the same seed predicts them.
#[test]
fn guids_and_times_come_from_the_pools_clock() {
    let clock = Arc::new(SimClock::new(42));
    let twin = SimClock::new(42);
    let mut pool = pool_on(&clock, 3600);
    assert_eq!(pool.label.pool_guid, twin.guid());
    assert_eq!(pool.label.created_ns, SIM_START_NS);

    clock.advance_ns(5 * SECOND_NS + 123);
    put_bytes(&mut pool, "file", b"data");
    snapfs::cmd::tree::mkdir(&mut pool, LIVE_TREE_ID, "dir", false).unwrap();
    let entries = ls(&mut pool, &PathSpec::parse("").unwrap(), false, None).unwrap();
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        assert_eq!((entry.inode.mtime.sec, entry.inode.mtime.nsec), ((SIM_START_NS / SECOND_NS) as i64 + 5, 123));
        assert_eq!(entry.inode.ctime, entry.inode.mtime, "{}", entry.path);
    }

    clock.advance_seconds(60);
    snapshot::snapshot(&mut pool, LIVE_TREE_ID, "s").unwrap();
    let taken = pool.snapshot(LIVE_TREE_ID, "s").unwrap();
    assert_eq!(taken.guid, twin.guid(), "the snapshot's guid is the clock's next");
    assert_eq!(taken.time_ns, SIM_START_NS + 65 * SECOND_NS + 123);
    assert_eq!(pool.clock().now_ns(), taken.time_ns, "the handle's clock is the one it was given");
}
