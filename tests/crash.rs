//! Crash points of a transaction: a device that stops at the N-th write (tearing it in
//! half) stands for a power cut after N writes, for every N the transaction issues.
//! Each image left behind must open, pass `check`, and hold exactly the commit before
//! the transaction or the one it made, never a mix.
//!
//! Receives are tested the same way: the incremental, and the commit that saves a broken
//! part. (Writes here reach the image in order; the integrity issue's harness also reorders
//! and drops writes that were not flushed.)

use snapfs::check::check_pool;
use snapfs::device::{CrashDevice, OpenMode};
use snapfs::error::Result;
use snapfs::fs::{FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
use std::sync::{Arc, Mutex};

fn open(bytes: &Arc<Mutex<Vec<u8>>>, writes_left: Option<u64>) -> Pool {
    Pool::open(Box::new(CrashDevice::new(Arc::clone(bytes), writes_left)), OpenMode::Write).unwrap()
}

/// Files of the root directory with their contents.
fn contents(pool: &mut Pool, snapshot: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, snapshot).unwrap();
    let mut fs = FsTree::new(&mut tree, store, false);
    let entries = fs.readdir(ROOT_INO).unwrap();
    entries.into_iter().map(|e| (e.name, fs.read(e.ino, 0, u64::MAX).unwrap())).collect()
}

fn write_files(pool: &mut Pool, round: u8) -> Result<()> {
    let mut fs = pool.live(LIVE_TREE_ID)?;
    for i in 0..6u8 {
        let name = format!("file{i}");
        let ino = match fs.lookup(ROOT_INO, name.as_bytes())? {
            Some(e) => e.ino,
            None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Timespec::default()))?,
        };
        let data: Vec<u8> = (0..(i as usize + 1) * 70_000).map(|j| (j as u8).wrapping_mul(round + i)).collect();
        fs.truncate(ino, 0)?;
        fs.write_at(ino, 0, &data)?;
    }
    if round.is_multiple_of(2) {
        fs.unlink(ROOT_INO, b"file0")?;
    }
    pool.create_snapshot(LIVE_TREE_ID, &format!("round{round}"))?;
    pool.commit()?;
    Ok(())
}

#[test]
fn every_write_of_a_transaction_is_a_safe_crash_point() {
    for history_seconds in [0, 86400] {
        let mut options = FormatOptions::default();
        options.config.history_seconds = history_seconds;
        let bytes = Arc::new(Mutex::new(vec![0u8; 48 << 20]));
        let dev = CrashDevice::new(Arc::clone(&bytes), None);
        let mut pool = format_pool(Box::new(dev), &options).unwrap();
        write_files(&mut pool, 1).unwrap();
        drop(pool);
        let base = bytes.lock().unwrap().clone();
        let before = contents(&mut open(&bytes, None), None);
        let mut after = None;
        let mut crash_points = 0;
        for n in 0.. {
            *bytes.lock().unwrap() = base.clone();
            let mut pool = open(&bytes, Some(n));
            let finished = write_files(&mut pool, 2).is_ok();
            drop(pool);
            let mut reopened = open(&bytes, None);
            let report = check_pool(&mut reopened).unwrap();
            assert!(report.is_clean(), "history {history_seconds}, crash at write {n}: {:?}", report.problems);
            let seen = contents(&mut reopened, None);
            if finished {
                assert_ne!(seen, before);
                after = Some(seen);
                break;
            }
            crash_points += 1;
            // Before the commit record is whole, the old state; never a mix.
            if seen != before {
                let new_state = {
                    let mut fresh = open(&bytes, None);
                    contents(&mut fresh, Some("round2"))
                };
                assert_eq!(seen, new_state, "history {history_seconds}, crash at write {n}: a mix of states");
            }
            assert_eq!(contents(&mut reopened, Some("round1")), before);
        }
        assert!(after.is_some());
        assert!(crash_points >= 3, "the transaction issued only {crash_points} writes");
    }
}

/// The stream of `@to` (from `@from`) of a pool on `bytes`.
fn stream_of(bytes: &Arc<Mutex<Vec<u8>>>, from: Option<&str>, to: &str) -> Vec<u8> {
    use snapfs::stream::{framing::StreamWriter, send};
    let mut pool = open(bytes, None);
    let parts = send::plan(&mut pool, LIVE_TREE_ID, from, to, false).unwrap();
    let mut out = Vec::new();
    let mut writer = StreamWriter::new(&mut out, None);
    send::send(&mut pool, &parts, None, &mut writer).unwrap();
    out
}

fn receive_into(pool: &mut Pool, stream: &[u8], save_partial: bool) -> Result<()> {
    use snapfs::stream::{framing::StreamReader, receive};
    let mut input = stream;
    let mut reader = StreamReader::new(&mut input, None);
    let options = receive::ReceiveOptions { force: false, save_partial };
    receive::receive(pool, LIVE_TREE_ID, &mut reader, options, &mut |_| {}).map(|_| ())
}

#[test]
fn every_write_of_a_receive_is_a_safe_crash_point() {
    // Goal: a power cut at any write of a receive leaves the target with its previous
    // commit or the received snapshot, never a mix; also for the commit that saves a
    // broken part (snaprecv -s), which leaves no state or a whole one.
    // Method: a source pool with two rounds of files; the target receives round1 whole,
    // then for every N the incremental (and a truncated copy with saving on) is applied
    // on a device that stops at write N; each image left must open, pass check, and
    // show round1's files, or round2's in the live tree and @round2.
    let source = Arc::new(Mutex::new(vec![0u8; 48 << 20]));
    let mut pool =
        format_pool(Box::new(CrashDevice::new(Arc::clone(&source), None)), &FormatOptions::default()).unwrap();
    write_files(&mut pool, 1).unwrap();
    write_files(&mut pool, 2).unwrap();
    drop(pool);
    let full = stream_of(&source, None, "round1");
    let incremental = stream_of(&source, Some("round1"), "round2");
    let round2 = contents(&mut open(&source, None), Some("round2"));

    let target = Arc::new(Mutex::new(vec![0u8; 48 << 20]));
    let mut pool =
        format_pool(Box::new(CrashDevice::new(Arc::clone(&target), None)), &FormatOptions::default()).unwrap();
    receive_into(&mut pool, &full, false).unwrap();
    drop(pool);
    let base = target.lock().unwrap().clone();
    let before = contents(&mut open(&target, None), None);
    let truncated = &incremental[..incremental.len() * 2 / 3];
    for (stream, save) in [(&incremental[..], false), (truncated, true)] {
        let mut crash_points = 0;
        for n in 0.. {
            *target.lock().unwrap() = base.clone();
            let mut pool = open(&target, Some(n));
            let result = receive_into(&mut pool, stream, save);
            let cut = matches!(&result, Err(e) if e.to_string().contains("simulated power cut"));
            drop(pool);
            let mut reopened = open(&target, None);
            let report = check_pool(&mut reopened).unwrap();
            assert!(report.is_clean(), "save {save}, crash at write {n}: {:?}", report.problems);
            let seen = contents(&mut reopened, None);
            assert_eq!(contents(&mut reopened, Some("round1")), before);
            if seen != before {
                assert_eq!(seen, round2, "save {save}, crash at write {n}: a mix of states");
                assert_eq!(contents(&mut reopened, Some("round2")), round2);
            }
            if !cut {
                // The run got through without reaching write N: every point was tried.
                assert_eq!(result.is_ok(), !save, "save {save}: {result:?}");
                if save {
                    assert!(reopened.receive_state().unwrap().is_some(), "the broken part was saved: {result:?}");
                }
                break;
            }
            crash_points += 1;
        }
        assert!(crash_points >= 3, "save {save}: the receive issued only {crash_points} writes");
    }
}

/// Goal: the commit that first stores an xattr value over 4096 bytes, which also writes
/// both labels with the `large_xattrs` feature before its commit record, is safe at
/// every write: the pool opens and checks clean, and holds the value whole, under a
/// label with the feature, or not at all. A label the crash tore (half written) is a
/// feature rewrite cut short, not damage: the open for writing after the crash rewrites
/// it (it used to stay torn until a scrub, and `check` called it damage).
#[test]
fn the_commit_that_turns_large_xattrs_on_is_safe_at_every_write() {
    use snapfs::format::label::FEATURE_LARGE_XATTRS;
    let value: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let stored = value.clone();
    feature_commit_is_safe_at_every_write(
        FEATURE_LARGE_XATTRS,
        &move |pool| {
            let mut fs = pool.live(LIVE_TREE_ID)?;
            let ino = fs.lookup(ROOT_INO, b"file1")?.expect("file1").ino;
            fs.set_xattr(ino, b"user.big", &value)
        },
        &move |pool| {
            let (mut tree, store) = pool.view(LIVE_TREE_ID, None)?;
            let mut fs = FsTree::new(&mut tree, store, false);
            let ino = fs.lookup(ROOT_INO, b"file1")?.expect("file1").ino;
            Ok(fs.xattr(ino, b"user.big")?.map(|v| v == stored))
        },
    );
}

/// Goal: the same for the commit that chooses lz4 and writes the first lz4 blocks.
#[test]
fn the_commit_that_turns_lz4_on_is_safe_at_every_write() {
    use snapfs::format::label::FEATURE_LZ4;
    let text: Vec<u8> = b"an lz4 record of repeated text; ".iter().cycle().take(300_000).copied().collect();
    let stored = text.clone();
    feature_commit_is_safe_at_every_write(
        FEATURE_LZ4,
        &move |pool| {
            pool.set_compression(snapfs::compress::Codec::Lz4)?;
            let mut fs = pool.live(LIVE_TREE_ID)?;
            let ino = fs.create(ROOT_INO, b"lz4", Inode::new(0o100644, Timespec::default()))?;
            fs.write_at(ino, 0, &text)
        },
        &move |pool| {
            let (mut tree, store) = pool.view(LIVE_TREE_ID, None)?;
            let mut fs = FsTree::new(&mut tree, store, false);
            match fs.lookup(ROOT_INO, b"lz4")? {
                Some(entry) => Ok(Some(fs.read(entry.ino, 0, stored.len() as u64)? == stored)),
                None => Ok(None),
            }
        },
    );
}

/// Goal: the same for the commit that writes the first records with a frame index (a
/// base pool that stored nothing compressed has no `frame_index` bit).
#[test]
fn the_commit_that_turns_frame_index_on_is_safe_at_every_write() {
    use snapfs::format::label::FEATURE_FRAME_INDEX;
    let text: Vec<u8> = b"a zstd record of repeated text; ".iter().cycle().take(300_000).copied().collect();
    let stored = text.clone();
    feature_commit_is_safe_at_every_write(
        FEATURE_FRAME_INDEX,
        &move |pool| {
            pool.set_compression(snapfs::compress::Codec::Zstd { level: 1 })?;
            let mut fs = pool.live(LIVE_TREE_ID)?;
            let ino = fs.create(ROOT_INO, b"indexed", Inode::new(0o100644, Timespec::default()))?;
            fs.write_at(ino, 0, &text)
        },
        &move |pool| {
            let (mut tree, store) = pool.view(LIVE_TREE_ID, None)?;
            let mut fs = FsTree::new(&mut tree, store, false);
            match fs.lookup(ROOT_INO, b"indexed")? {
                Some(entry) => {
                    let indexed = fs.records(entry.ino)?.iter().all(|(_, r)| !r.frames.is_empty());
                    Ok(Some(indexed && fs.read(entry.ino, 0, stored.len() as u64)? == stored))
                }
                None => Ok(None),
            }
        },
    );
}

/// Crashes the commit of `change` at each of its writes in turn (the write cut in half);
/// after each, the pool must open, check clean, and `holds` must say the change is
/// absent (None) or whole (Some(true)) under a label with `feature`.
fn feature_commit_is_safe_at_every_write(
    feature: u64,
    change: &dyn Fn(&mut Pool) -> Result<()>,
    holds: &dyn Fn(&mut Pool) -> Result<Option<bool>>,
) {
    use snapfs::format::label::{Label, region_start};
    let bytes = Arc::new(Mutex::new(vec![0u8; 48 << 20]));
    let dev = CrashDevice::new(Arc::clone(&bytes), None);
    let mut pool = format_pool(Box::new(dev), &FormatOptions::default()).unwrap();
    // Stored raw: the base needs none of the features a change turns on.
    pool.set_compression(snapfs::compress::Codec::Off).unwrap();
    write_files(&mut pool, 1).unwrap();
    assert_eq!(pool.label.features_incompat & feature, 0, "the base has the feature already");
    drop(pool);
    let base = bytes.lock().unwrap().clone();
    let labels_torn = || {
        let image = bytes.lock().unwrap();
        let device_bytes = image.len() as u64;
        (0..2u32)
            .filter(|&index| {
                let at = (region_start(index, device_bytes) * 4096) as usize;
                Label::decode(&image[at..at + 4096]).is_err()
            })
            .count()
    };
    let (mut torn_labels, mut crash_points, mut done) = (0, 0, false);
    for n in 0..1000 {
        *bytes.lock().unwrap() = base.clone();
        let mut pool = open(&bytes, Some(n));
        let finished = (|| {
            change(&mut pool)?;
            pool.commit().map(|_| ())
        })()
        .is_ok();
        drop(pool);
        torn_labels += labels_torn();
        let mut reopened = open(&bytes, None);
        assert_eq!(labels_torn(), 0, "crash at write {n}: the open for writing left a label torn");
        let has_feature = reopened.label.features_incompat & feature != 0;
        match holds(&mut reopened).unwrap() {
            Some(whole) => assert!(whole && has_feature, "crash at write {n}: content or label wrong"),
            None => assert!(!finished, "the commit finished without the change"),
        }
        let report = check_pool(&mut reopened).unwrap();
        assert!(report.is_clean(), "crash at write {n}: {:?}", report.problems);
        if finished {
            done = true;
            break;
        }
        crash_points += 1;
    }
    assert!(done, "the commit never finished");
    // Each label write, torn, is seen once, and mended by the next open.
    assert!(crash_points >= 3 && torn_labels == 2, "{crash_points} crash points, {torn_labels} torn labels");
}
