//! Pool behaviour on an in-memory device: format, write, snapshot, destroy, reopen.

use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::fs::{Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};

fn options(history_seconds: u64) -> FormatOptions {
    let mut o = FormatOptions::default();
    o.config.history_seconds = history_seconds;
    o
}

fn write_file(pool: &mut Pool, name: &str, data: &[u8]) {
    let mut fs = pool.live(LIVE_TREE_ID).unwrap();
    let ino = match fs.lookup(ROOT_INO, name.as_bytes()).unwrap() {
        Some(e) => e.ino,
        None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Timespec::default())).unwrap(),
    };
    fs.truncate(ino, 0).unwrap();
    fs.write_at(ino, 0, data).unwrap();
}

fn read_file(pool: &mut Pool, snapshot: Option<&str>, name: &str) -> Vec<u8> {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, snapshot).unwrap();
    let mut fs = snapfs::fs::FsTree::new(&mut tree, store, false);
    let ino = fs.resolve(name).unwrap();
    fs.read(ino, 0, u64::MAX).unwrap()
}

fn reopen(pool: Pool) -> Pool {
    let dev = pool.store.dev;
    Pool::open(dev, OpenMode::Write).unwrap()
}

#[test]
fn write_snapshot_destroy_reopen() {
    // Goal: data and snapshots survive reopen; destroying a snapshot frees its blocks.
    let dev = Box::new(MemoryDevice::new(64 << 20));
    let mut pool = format_pool(dev, &options(0)).unwrap();
    let free_empty = pool.free_bytes();
    let a: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_file(&mut pool, "a", &a);
    pool.commit().unwrap();
    pool.create_snapshot(LIVE_TREE_ID, "one").unwrap();
    pool.commit().unwrap();
    let b = vec![9u8; 300_000];
    write_file(&mut pool, "a", &b);
    pool.commit().unwrap();
    let mut pool = reopen(pool);
    if std::env::var("DUMP").is_ok() {
        eprintln!("{}", snapfs::dump::dump_pool(&mut pool, true).unwrap());
    }
    assert_eq!(read_file(&mut pool, None, "a"), b);
    assert_eq!(read_file(&mut pool, Some("one"), "a"), a);
    snapfs::check::check_pool(&mut pool).unwrap().into_result().unwrap();
    let free_with_snapshot = pool.free_bytes();
    pool.destroy_snapshot(LIVE_TREE_ID, "one").unwrap();
    pool.commit().unwrap();
    assert!(pool.free_bytes() > free_with_snapshot);
    snapfs::check::check_pool(&mut pool).unwrap().into_result().unwrap();
    let mut fs = pool.live(LIVE_TREE_ID).unwrap();
    fs.unlink(ROOT_INO, b"a").unwrap();
    pool.commit().unwrap();
    pool.commit().unwrap();
    let mut pool = reopen(pool);
    snapfs::check::check_pool(&mut pool).unwrap().into_result().unwrap();
    // Only metadata of an empty tree remains.
    assert!(free_empty - pool.free_bytes() < 64 << 10, "{} {}", free_empty, pool.free_bytes());
}
