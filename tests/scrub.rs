//! `snapctl scrub`: bad metadata copies are survived by reads and rewritten from the good
//! copy; damage beyond repair names the files and snapshots it affects; labels too.

mod common;
use snapfs::cli::exit_code;

use snapfs::block::{BlockAddr, BlockKind, BlockPtr};
use snapfs::check::check_pool;
use snapfs::device::{Device, MemoryDevice, OpenMode};
use snapfs::format::commit::CommitRecord;
use snapfs::format::label::{Label, RING_SLOTS, region_start};
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
    let tree_root = pool.trees().unwrap().find(|t| t.id == LIVE_TREE_ID).unwrap().root.unwrap();
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
    assert_eq!(out.status.code(), Some(exit_code::CORRUPT), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("another copy is good"));
    let out = common::stdout(common::snapctl().arg("scrub").arg(&img));
    assert!(out.contains("rewritten from a good copy") && out.contains("scrub clean"), "{out}");
    common::check(&img);
}

#[test]
fn a_repair_never_writes_where_a_wrong_pointer_aims_outside_the_data_area() {
    // Goal: scrub rewrites bad copies through the store, which refuses a copy outside the
    // data area. Before, a table root whose ditto pointed at a commit ring or a label (a
    // crafted or miswritten pointer, under a valid checksum) had the node's bytes written
    // there. Method: commit a pool root whose snapshots-table pointer has its ditto aimed
    // at region 0's ring, region 1's label and region 1's ring; a repairing scrub reports
    // the copy, does not rewrite it, and changes no byte.
    let original = build();
    for target in ["region 0's ring", "region 1's label", "region 1's ring"] {
        let mut pool = open(&original, OpenMode::Write);
        let end_region = region_start(1, pool.label.device_bytes);
        let block = match target {
            "region 0's ring" => 1,
            "region 1's label" => end_region,
            _ => end_region + 1,
        };
        let mut root = pool.root.clone();
        let table = root.snapshots.unwrap();
        root.snapshots = Some(BlockPtr { ditto: BlockAddr(block), ..table });
        let mut root_ptr = pool.store.write_implicit_block(BlockKind::PoolRoot, &root.encode()).unwrap();
        pool.store.flush_buffer().unwrap();
        root_ptr.birth = pool.commit.txg;
        let record = CommitRecord { root: root_ptr, ..pool.commit.clone() };
        let slot = 1 + record.txg.0 % RING_SLOTS;
        for index in 0..2 {
            let at = (region_start(index, pool.label.device_bytes) + slot) * 4096;
            pool.store.dev.write_at(at, &record.encode()).unwrap();
        }
        let image = image_of(&pool);
        drop(pool);

        let mut pool = open(&image, OpenMode::Write);
        assert_eq!(pool.root.snapshots.unwrap().ditto.0, block, "{target}: the crafted root is the one opened");
        let report = scrub(&mut pool, true);
        assert!(image_of(&pool) == image, "{target}: scrub wrote nothing");
        let damage: Vec<_> = report.damage.iter().filter(|d| d.copy_block == block).collect();
        assert_eq!(damage.len(), 1, "{target}: {report:?}");
        assert!(damage[0].recoverable && !damage[0].repaired, "{target}: {report:?}");
        assert!(report.problems.iter().any(|p| p.contains("not rewritten")), "{target}: {report:?}");
        assert!(!report.is_clean());
    }
}

/// A write (offset, bytes), or None for a flush.
type Event = Option<(u64, Vec<u8>)>;

/// A memory device that logs every write and flush, in order.
struct Logged {
    inner: MemoryDevice,
    log: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
}

impl Device for Logged {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> snapfs::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> snapfs::Result<()> {
        self.log.lock().unwrap().push(Some((offset, buf.to_vec())));
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> snapfs::Result<()> {
        self.log.lock().unwrap().push(None);
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn name(&self) -> &str {
        "logged memory"
    }
    fn written_bytes(&self) -> u64 {
        self.inner.written_bytes()
    }
}

#[test]
fn a_crash_while_both_labels_are_rewritten_leaves_one_that_opens_the_pool() {
    // Goal: when both labels need rewriting (block 0 holds the pool's label but with the
    // end's index, which opens the pool; the end label is gone), a crash at any moment of
    // the repair leaves a label that opens the pool. Before, both were written before one
    // flush, so a crash could tear both. Method: log the scrub's writes and flushes; for
    // the writes between each two flushes, tear all of them, and each one alone (zeros
    // where it wrote), over what the earlier flushes made durable; every image opens.
    let original = build();
    let label = open(&original, OpenMode::Read).label.clone();
    let mut image = original.clone();
    image[..4096].copy_from_slice(&Label { index: 1, ..label.clone() }.encode());
    let end = (region_start(1, label.device_bytes) * 4096) as usize;
    image[end..end + 4096].fill(0);

    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut dev = MemoryDevice::new(image.len() as u64);
    dev.bytes = image.clone();
    let mut pool = Pool::open(Box::new(Logged { inner: dev, log: log.clone() }), OpenMode::Write).unwrap();
    let report = scrub(&mut pool, true);
    assert_eq!(report.labels_damaged.len(), 2, "{report:?}");
    assert!(report.labels_repaired && report.is_clean(), "{report:?}");
    assert!(image_of(&pool) == original, "both labels restored");
    drop(pool);

    let log = log.lock().unwrap().clone();
    let epochs: Vec<&[Event]> = log.split(|event| event.is_none()).collect();
    let mut durable = image.clone();
    let write = |bytes: &mut Vec<u8>, (offset, data): &(u64, Vec<u8>)| {
        bytes[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
    };
    for (n, epoch) in epochs.iter().enumerate() {
        let writes: Vec<&(u64, Vec<u8>)> = epoch.iter().flatten().collect();
        let mut torn_sets: Vec<Vec<usize>> = (0..writes.len()).map(|i| vec![i]).collect();
        torn_sets.push((0..writes.len()).collect());
        for torn in torn_sets {
            let mut crashed = durable.clone();
            for (i, w) in writes.iter().enumerate() {
                if torn.contains(&i) {
                    write(&mut crashed, &(w.0, vec![0u8; w.1.len()]));
                } else {
                    write(&mut crashed, w);
                }
            }
            let mut dev = MemoryDevice::new(crashed.len() as u64);
            dev.bytes = crashed;
            let opened = Pool::open(Box::new(dev), OpenMode::Read);
            assert!(opened.is_ok(), "epoch {n}, writes {torn:?} torn: {:?}", opened.err());
        }
        for w in writes {
            write(&mut durable, w);
        }
    }
}
