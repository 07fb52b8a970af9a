//! Crash points of a transaction: a device that stops at the N-th write (tearing it in
//! half) stands for a power cut after N writes, for every N the transaction issues.
//! Each image left behind must open, pass `check`, and hold exactly the commit before
//! the transaction or the one it made, never a mix.
//!
//! (Writes here reach the image in order; the integrity issue's harness also reorders
//! and drops writes that were not flushed.)

use snapfs::check::check_pool;
use snapfs::device::{Device, OpenMode};
use snapfs::error::{Error, Result};
use snapfs::fs::{FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
use std::sync::{Arc, Mutex};

/// An in-memory device shared with the test, which stops after `writes_left` writes.
struct CrashDevice {
    bytes: Arc<Mutex<Vec<u8>>>,
    writes_left: Option<u64>,
}

impl Device for CrashDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let bytes = self.bytes.lock().unwrap();
        buf.copy_from_slice(&bytes[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let mut bytes = self.bytes.lock().unwrap();
        if let Some(left) = self.writes_left.as_mut() {
            if *left == 0 {
                // The power goes: half of this write reaches the device.
                let half = buf.len() / 2;
                bytes[offset as usize..offset as usize + half].copy_from_slice(&buf[..half]);
                return Err(Error::io("simulated power cut", std::io::Error::other("crash")));
            }
            *left -= 1;
        }
        bytes[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.bytes.lock().unwrap().len() as u64
    }
    fn name(&self) -> &str {
        "crash"
    }
    fn written_bytes(&self) -> u64 {
        0
    }
}

fn open(bytes: &Arc<Mutex<Vec<u8>>>, writes_left: Option<u64>) -> Pool {
    Pool::open(Box::new(CrashDevice { bytes: Arc::clone(bytes), writes_left }), OpenMode::Write).unwrap()
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
        let dev = CrashDevice { bytes: Arc::clone(&bytes), writes_left: None };
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
