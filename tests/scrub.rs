//! `snapctl scrub`: bad metadata copies are survived by reads and rewritten from the good
//! copy; damage beyond repair names the files and snapshots it affects; labels too.

mod common;

use snapfs::block::BlockPtr;
use snapfs::check::check_pool;
use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::fs::{FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
use snapfs::scrub::{ScrubOptions, ScrubReport, scrub_pool};

const IMAGE_BYTES: u64 = 16 << 20;

/// A pool with two files, a snapshot between two rounds of writes: the image bytes.
fn build() -> Vec<u8> {
    // No history: the files a damaged block affects are then the live tree's and @first's.
    let mut options = FormatOptions::default();
    options.config.history_seconds = 0;
    let mut pool = format_pool(Box::new(MemoryDevice::new(IMAGE_BYTES)), &options).unwrap();
    for round in 0..2u8 {
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        for name in ["a", "b"] {
            let ino = match fs.lookup(ROOT_INO, name.as_bytes()).unwrap() {
                Some(e) => e.ino,
                None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Timespec::default())).unwrap(),
            };
            let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + u32::from(round)) as u8).collect();
            fs.write_at(ino, 0, &data[..if name == "a" { 300_000 } else { 5000 }]).unwrap();
        }
        if round == 0 {
            pool.create_snapshot(LIVE_TREE_ID, "first").unwrap();
        }
        pool.commit().unwrap();
    }
    image_of(&pool)
}

fn image_of(pool: &Pool) -> Vec<u8> {
    let mut bytes = vec![0u8; IMAGE_BYTES as usize];
    pool.store.dev.read_at(0, &mut bytes).unwrap();
    bytes
}

fn open(bytes: &[u8], mode: OpenMode) -> Pool {
    let mut dev = MemoryDevice::new(bytes.len() as u64);
    dev.bytes = bytes.to_vec();
    Pool::open(Box::new(dev), mode).unwrap()
}

fn scrub(pool: &mut Pool, repair: bool) -> ScrubReport {
    scrub_pool(pool, ScrubOptions { repair }, &mut |_| {}).unwrap()
}

fn flip(image: &mut [u8], block: u64, at: usize) {
    image[(block * 4096) as usize + at] ^= 0x20;
}

/// The live tree's root node, the root of a metadata table, and file a's first data block.
fn some_blocks(pool: &mut Pool) -> (BlockPtr, BlockPtr, BlockPtr) {
    let tree_root = pool.trees().find(|t| t.id == LIVE_TREE_ID).unwrap().root.unwrap();
    let table_root = pool.meta_roots()[0].1.unwrap();
    let (mut tree, store) = pool.view(LIVE_TREE_ID, None).unwrap();
    let mut fs = FsTree::new(&mut tree, store, false);
    let ino = fs.lookup(ROOT_INO, b"a").unwrap().unwrap().ino;
    let record = fs.records(ino).unwrap().remove(0).1;
    let data = *record.blocks().next().unwrap();
    (tree_root, table_root, data)
}

fn read_all(pool: &mut Pool, snapshot: Option<&str>) -> Vec<Result<Vec<u8>, String>> {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, snapshot).unwrap();
    let mut fs = FsTree::new(&mut tree, store, false);
    ["a", "b"]
        .iter()
        .map(|name| {
            let ino = fs.lookup(ROOT_INO, name.as_bytes()).map_err(|e| e.to_string())?.unwrap().ino;
            fs.read(ino, 0, u64::MAX).map_err(|e| e.to_string())
        })
        .collect()
}

#[test]
fn a_clean_pool_scrubs_clean_and_every_metadata_block_has_two_copies() {
    let image = build();
    let mut pool = open(&image, OpenMode::Write);
    let report = scrub(&mut pool, true);
    assert!(report.is_clean(), "{report:?}");
    assert!(report.metadata_blocks >= 5 && report.data_blocks >= 4, "{report:?}");
    assert_eq!(report.blocks_verified, 2 * report.metadata_blocks + report.data_blocks);
    assert!(check_pool(&mut pool).unwrap().is_clean());
}

#[test]
fn a_bad_copy_of_metadata_is_survived_reported_and_rewritten() {
    let original = build();
    let expected = read_all(&mut open(&original, OpenMode::Read), None);
    let (tree_root, table_root, _) = some_blocks(&mut open(&original, OpenMode::Read));
    let mut image = original.clone();
    flip(&mut image, tree_root.addr.0, 40);
    flip(&mut image, table_root.ditto.0, 20);

    // Reads take the good copy; check names both bad copies.
    let mut pool = open(&image, OpenMode::Read);
    assert_eq!(read_all(&mut pool, None), expected);
    let problems = check_pool(&mut pool).unwrap().problems;
    assert_eq!(problems.len(), 2, "{problems:?}");

    // -n reports and writes nothing.
    let report = scrub(&mut pool, false);
    assert_eq!(report.damage.len(), 2, "{report:?}");
    assert!(report.damage.iter().all(|d| d.recoverable && !d.repaired));
    assert!(!report.is_clean());
    assert_eq!(image_of(&pool), image);

    // A repairing scrub restores the image byte for byte.
    let mut pool = open(&image, OpenMode::Write);
    let report = scrub(&mut pool, true);
    assert_eq!(report.repaired(), 2, "{report:?}");
    assert!(report.is_clean());
    assert_eq!(image_of(&pool), original);
    assert!(check_pool(&mut pool).unwrap().is_clean());
}

#[test]
fn damage_beyond_repair_names_the_files_and_snapshots_it_affects() {
    let original = build();
    let (tree_root, _, data) = some_blocks(&mut open(&original, OpenMode::Read));
    let mut image = original.clone();
    flip(&mut image, data.addr.0, 100);
    let mut pool = open(&image, OpenMode::Write);
    let report = scrub(&mut pool, true);
    assert_eq!(report.unrecoverable(), 1, "{report:?}");
    let damage = &report.damage[0];
    assert_eq!((damage.kind, damage.block, damage.recoverable), ("file-data", data.addr.0, false));
    // File a's first record was rewritten in round 1, so only the live tree has it.
    assert_eq!(damage.files, vec!["/a".to_string()], "{damage:?}");
    assert!(!report.is_clean());
    let reads = read_all(&mut pool, None);
    assert!(reads[0].is_err() && reads[1].is_ok(), "{reads:?}");
    assert!(read_all(&mut pool, Some("first")).iter().all(|r| r.is_ok()));

    // Both copies of the live tree's root node: everything under it is named lost.
    let mut image = original.clone();
    flip(&mut image, tree_root.addr.0, 40);
    flip(&mut image, tree_root.ditto.0, 40);
    let mut pool = open(&image, OpenMode::Write);
    let report = scrub(&mut pool, true);
    assert_eq!(report.unrecoverable(), 1, "{report:?}");
    assert!(report.damage.iter().all(|d| d.affects.contains(&"the live tree".to_string())), "{report:?}");
    assert_eq!(report.damage[0].files, vec!["the live tree: everything (its root node is lost)".to_string()]);
}

#[test]
fn a_damaged_label_is_rewritten_from_the_other() {
    let original = build();
    for index in 0..2usize {
        let mut image = original.clone();
        let start = if index == 0 { 0 } else { image.len() - 256 * 1024 };
        image[start..start + 4096].fill(0);
        let mut pool = open(&image, OpenMode::Write);
        let report = scrub(&mut pool, true);
        assert_eq!(report.labels_damaged.len(), 1, "label {index}: {report:?}");
        assert!(report.is_clean());
        assert_eq!(image_of(&pool), original, "label {index} restored");
    }
}

#[test]
fn snapctl_scrub_exit_status_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let img = common::pool(dir.path(), 64 << 20, &[]);
    let file = dir.path().join("f");
    std::fs::write(&file, vec![7u8; 200_000]).unwrap();
    common::snapctl().arg("put").arg(&file).arg("f").arg(&img).assert().success();
    let out = common::stdout(common::snapctl().args(["scrub", "--json"]).arg(&img));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["clean"], true, "{json}");

    // Damage a copy of the pool root: -n fails (exit 6) and leaves it; scrub repairs it.
    let pool = Pool::open(
        Box::new(snapfs::device::open_file_device(img.to_str().unwrap(), OpenMode::Read).unwrap()),
        OpenMode::Read,
    )
    .unwrap();
    let ditto = pool.commit.root.ditto.0;
    assert_ne!(ditto, 0);
    drop(pool);
    let mut bytes = std::fs::read(&img).unwrap();
    flip(&mut bytes, ditto, 7);
    std::fs::write(&img, &bytes).unwrap();
    let out = common::snapctl().args(["scrub", "-n"]).arg(&img).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("another copy is good"));
    let out = common::stdout(common::snapctl().arg("scrub").arg(&img));
    assert!(out.contains("rewritten from a good copy") && out.contains("scrub clean"), "{out}");
    common::check(&img);
}
