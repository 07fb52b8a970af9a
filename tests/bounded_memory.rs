//! Memory that does not grow with the file count: a file tree past its node cache limit
//! writes its dirty nodes out inside the running transaction and drops them (tree/btree.rs).
//! These tests set a limit of a few nodes so that a sync of a few thousand files does
//! what a sync of millions does with the default limit, and check that the transaction
//! stays atomic at every write, that the pool checks clean, and that the nodes held stay
//! under the bound. Nothing here is timed.

use snapfs::check::check_pool;
use snapfs::device::{CrashDevice, MemoryDevice, OpenMode};
use snapfs::error::Result;
use snapfs::fs::sync::Syncer;
use snapfs::fs::{FsTree, ROOT_INO};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Writes `count` files of 1-200 bytes into `dir`, their bytes depending on `round`.
fn write_host_files(dir: &Path, count: u32, round: u32) {
    for i in 0..count {
        let len = 1 + (i * 37 + round * 11) % 200;
        let data: Vec<u8> = (0..len).map(|j| (i ^ j ^ round) as u8).collect();
        std::fs::write(dir.join(format!("file{i:05}")), data).unwrap();
    }
}

/// Syncs `source` into the root of the live tree with a node cache of `limit` nodes and
/// commits; returns the tree's peak of nodes held and its write-outs.
fn sync_bounded(pool: &mut Pool, source: &Path, limit: u64) -> Result<(u64, u64)> {
    let mut fs = pool.live(LIVE_TREE_ID)?;
    fs.tree().set_cache_limit(limit);
    Syncer::new(&mut fs).sync_dir(source, ROOT_INO)?;
    let figures = (fs.tree().peak_nodes_held(), fs.tree().write_outs());
    pool.commit()?;
    Ok(figures)
}

/// Files of the root directory with their contents.
fn contents(pool: &mut Pool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, None).unwrap();
    let mut fs = FsTree::new(&mut tree, store, false);
    let entries = fs.readdir(ROOT_INO).unwrap();
    entries.into_iter().map(|e| (e.name, fs.read(e.ino, 0, u64::MAX).unwrap())).collect()
}

/// The host directory's files with their contents, as `contents` lists them.
fn host_contents(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().into_encoded_bytes(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

fn assert_clean(pool: &mut Pool, what: &str) {
    let report = check_pool(pool).unwrap();
    assert!(report.is_clean(), "{what}: {:?}", report.problems);
}

#[test]
fn a_sync_that_writes_nodes_out_early_is_atomic_wherever_it_is_cut() {
    // Goal: nodes written out before the commit record are invisible after a crash: at
    // every write of the transaction, the image opens, checks clean, and holds the
    // previous sync or the new one, never a mix; and the blocks written out early are
    // free again (check proves the free map exact).
    // Method: a sync of 300 files changed, removed and added, with a cache of 3 nodes,
    // cut at its n-th write: every n near the end (the write-outs, then the commit), a
    // stride of 60 points through the rest (each of them is a write-out or a data block
    // before the commit record, and every one took seconds).
    for history_seconds in [0, 86400] {
        let host = tempfile::tempdir().unwrap();
        write_host_files(host.path(), 300, 1);
        let mut options = FormatOptions::default();
        options.config.history_seconds = history_seconds;
        let bytes = Arc::new(Mutex::new(vec![0u8; 64 << 20]));
        let writes = Arc::new(AtomicU64::new(0));
        let dev = CrashDevice { writes: Arc::clone(&writes), ..CrashDevice::new(Arc::clone(&bytes), None) };
        let mut pool = format_pool(Box::new(dev), &options).unwrap();
        sync_bounded(&mut pool, host.path(), 3).unwrap();
        drop(pool);
        let base = bytes.lock().unwrap().clone();
        let open = |writes_left| {
            let dev = CrashDevice { writes: Arc::clone(&writes), ..CrashDevice::new(Arc::clone(&bytes), writes_left) };
            Pool::open(Box::new(dev), OpenMode::Write).unwrap()
        };
        let before = contents(&mut open(None));
        assert_eq!(before, host_contents(host.path()));

        write_host_files(host.path(), 200, 2);
        for i in 250..300 {
            std::fs::remove_file(host.path().join(format!("file{i:05}"))).unwrap();
        }
        for i in 300..360 {
            std::fs::write(host.path().join(format!("new{i}")), vec![i as u8; i as usize]).unwrap();
        }
        let after = host_contents(host.path());

        // The writes the whole transaction makes, counted on a run that does not crash.
        let mut pool = open(None);
        writes.store(0, Ordering::Relaxed);
        let (_, write_outs) = sync_bounded(&mut pool, host.path(), 3).unwrap();
        assert!(write_outs > 3, "the sync wrote its tree out early only {write_outs} times");
        let total = writes.load(Ordering::Relaxed);
        drop(pool);
        let stride = (total / 60).max(1);
        let points = (0..total).filter(|n| n % stride == 0 || n + 40 >= total).chain([total]);

        let mut crash_points = 0;
        for n in points {
            *bytes.lock().unwrap() = base.clone();
            let mut pool = open(Some(n));
            let outcome = sync_bounded(&mut pool, host.path(), 3);
            drop(pool);
            let mut reopened = open(None);
            assert_clean(&mut reopened, &format!("history {history_seconds}, crash at write {n}"));
            let seen = contents(&mut reopened);
            if outcome.is_ok() {
                // Records come back from the workers in the order they were read
                // (fs/pipeline.rs), so every run makes the writes counted (it did not
                // before: 41 to 61 writes under load); a little margin all the same.
                assert!(n + 8 >= total, "the transaction finished at write {n}, {total} counted");
                assert_eq!(seen, after);
                continue;
            }
            crash_points += 1;
            assert!(
                seen == before || seen == after,
                "history {history_seconds}, crash at write {n}: neither the old nor the new tree"
            );
        }
        // Metadata goes out in runs (alloc/allocator.rs), so the transaction is a handful
        // of large writes: every one of them but the last few must be a crash point.
        assert!(total >= 8 && crash_points + 8 >= total, "{crash_points} crash points of {total} writes");
    }
}

#[test]
fn a_large_sync_with_a_small_cache_checks_clean_and_resyncs_to_nothing() {
    // Goal: a sync far larger than its node cache commits a tree that checks clean and
    // mirrors the host; the re-sync of the unchanged tree, also bounded, changes nothing;
    // a sync of changes (rewrites, removals, new files) checks clean and mirrors them.
    let host = tempfile::tempdir().unwrap();
    write_host_files(host.path(), 3000, 1);
    let dev = Box::new(MemoryDevice::new(128 << 20));
    let mut pool = format_pool(dev, &FormatOptions::default()).unwrap();
    let (_, write_outs) = sync_bounded(&mut pool, host.path(), 8).unwrap();
    assert!(write_outs > 10, "only {write_outs} write-outs");
    assert_clean(&mut pool, "first sync");
    assert_eq!(contents(&mut pool), host_contents(host.path()));

    let mut fs = pool.live(LIVE_TREE_ID).unwrap();
    fs.tree().set_cache_limit(8);
    let mut syncer = Syncer::new(&mut fs);
    syncer.sync_dir(host.path(), ROOT_INO).unwrap();
    assert_eq!(syncer.stats.unchanged, 3000);
    assert_eq!(syncer.stats.files_written + syncer.stats.metadata_updated, 0);
    assert_eq!(pool.commit().unwrap().txg, None, "an unchanged tree commits nothing");

    write_host_files(host.path(), 500, 2);
    for i in 2900..3000 {
        std::fs::remove_file(host.path().join(format!("file{i:05}"))).unwrap();
    }
    std::fs::create_dir(host.path().join("sub")).unwrap();
    write_host_files(&host.path().join("sub"), 400, 3);
    sync_bounded(&mut pool, host.path(), 8).unwrap();
    assert_clean(&mut pool, "sync of changes");
    let mut seen = contents(&mut pool);
    seen.retain(|(name, _)| name != b"sub");
    let mut wanted = host_contents(host.path());
    wanted.retain(|(name, _)| name != b"sub");
    assert_eq!(seen, wanted);
    let reopened = Pool::open(pool.store.dev, OpenMode::Write).unwrap();
    let mut reopened = reopened;
    assert_clean(&mut reopened, "reopened");
}

#[test]
fn the_nodes_held_during_a_sync_stay_under_the_bound() {
    // Goal: whatever the file count, the tree holds at most its limit plus the few nodes
    // of one operation, at the end of every operation of the sync.
    // Method: the same sync of 5000 files with a limit of 12 nodes and with none; the
    // unbounded one must hold more than ten times the limit, so the bound is what keeps
    // the bounded one small (no time is measured).
    let host = tempfile::tempdir().unwrap();
    write_host_files(host.path(), 5000, 1);
    let limit = 12;
    let mut peaks = Vec::new();
    for cache in [limit, u64::MAX] {
        let dev = Box::new(MemoryDevice::new(128 << 20));
        let mut pool = format_pool(dev, &FormatOptions::default()).unwrap();
        let (peak, _) = sync_bounded(&mut pool, host.path(), cache).unwrap();
        assert_clean(&mut pool, &format!("cache of {cache} nodes"));
        peaks.push(peak);
    }
    let (bounded, unbounded) = (peaks[0], peaks[1]);
    assert!(unbounded > 10 * limit, "the sync needs only {unbounded} nodes: make it larger");
    // One operation loads a path of the tree and may split each node on it.
    let one_operation = 2 * u64::from(snapfs::format::node::TREE_LEVELS_MAX);
    assert!(bounded <= limit + one_operation, "{bounded} nodes held with a limit of {limit}");
}

#[test]
fn a_view_of_a_head_written_out_early_is_refused_until_the_commit() {
    // Goal: a tree whose nodes were written out before the commit holds no dirty node,
    // yet the trees table still names the last commit's root; a view of the live tree
    // then must not show that stale root as if it were the head (nor may an expand run).
    // Method: a sync of 1000 files with a cache of 3 nodes, not committed: the view is
    // refused; after the commit it shows the files.
    let host = tempfile::tempdir().unwrap();
    write_host_files(host.path(), 1000, 1);
    let dev = Box::new(MemoryDevice::new(64 << 20));
    let mut pool = format_pool(dev, &FormatOptions::default()).unwrap();
    {
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        fs.tree().set_cache_limit(3);
        Syncer::new(&mut fs).sync_dir(host.path(), ROOT_INO).unwrap();
        // A listing loads more nodes than the cache holds: the tree writes its dirty nodes
        // out and is left holding none.
        assert_eq!(fs.readdir(ROOT_INO).unwrap().len(), 1000);
        assert!(fs.tree().write_outs() > 0 && !fs.tree().is_dirty(), "the nodes were written out early");
    }
    let refused = pool.view(LIVE_TREE_ID, None).map(|_| ()).unwrap_err();
    assert!(refused.to_string().contains("uncommitted changes"), "{refused}");
    pool.commit().unwrap();
    assert_eq!(contents(&mut pool), host_contents(host.path()));
}
