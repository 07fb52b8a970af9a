//! Crash safety of `expand` (pool/resize.rs), exhaustively and fast: the crash harness
//! (torture/) runs expand in its workload too, with a budget of random states.
//!
//! Method: a pool made on 16 MiB of a memory device that then grows to 20 MiB + 3
//! blocks; expand runs on a device that logs its writes and flushes. For each flush
//! boundary, crash images are the durable bytes plus pending writes applied in part: none,
//! all, every prefix of 4 KiB blocks, random subsets, and the first block (a label)
//! torn at its 512-byte sectors in many ways. Every image must open at the old or the
//! new size with the files intact, without a warning, and `check` must find it clean
//! (a first label torn by the expand is not damage: labels.rs). An open for writing of an
//! image with a torn first label finishes the expand (both labels at the new size, the
//! old end label gone); for it and every eighth image, a second `expand` then leaves the
//! pool at the new size, checking clean, and a commit into the new space works.

use snapfs::check::check_pool;
use snapfs::device::{Device, MemoryDevice, OpenMode};
use snapfs::error::Result;
use snapfs::format::label::{Label, region_start};
use snapfs::fs::{FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{ExpandOutcome, FormatOptions, LIVE_TREE_ID, OpenWarning, Pool, format_pool};
use std::sync::{Arc, Mutex};

const OLD_BYTES: u64 = 16 << 20;
const NEW_BYTES: u64 = (20 << 20) + 3 * 4096;
const SECTOR: usize = 512;

enum Op {
    Write(u64, Vec<u8>),
    Flush,
}

/// A memory device that logs what it is asked to write and flush.
struct Logging {
    inner: MemoryDevice,
    log: Arc<Mutex<Vec<Op>>>,
}

impl Device for Logging {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.log.lock().unwrap().push(Op::Write(offset, buf.to_vec()));
        self.inner.write_at(offset, buf)
    }
    fn flush(&mut self) -> Result<()> {
        self.log.lock().unwrap().push(Op::Flush);
        self.inner.flush()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn name(&self) -> &str {
        "logging"
    }
    fn written_bytes(&self) -> u64 {
        self.inner.written_bytes()
    }
}

fn file_bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed as u8).collect()
}

fn device(bytes: Vec<u8>) -> MemoryDevice {
    let mut dev = MemoryDevice::new(bytes.len() as u64);
    dev.bytes = bytes;
    dev
}

fn read_file(pool: &mut Pool, name: &str) -> Vec<u8> {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, None).unwrap();
    let mut fs = FsTree::new(&mut tree, store, false);
    let ino = fs.lookup(ROOT_INO, name.as_bytes()).unwrap().expect("file exists").ino;
    let size = fs.inode(ino).unwrap().size;
    fs.read(ino, 0, size).unwrap()
}

fn write_file(pool: &mut Pool, name: &str, data: &[u8]) {
    let mut fs = pool.live(LIVE_TREE_ID).unwrap();
    let ino = fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Timespec::default())).unwrap();
    fs.write_at(ino, 0, data).unwrap();
    pool.commit().unwrap();
}

/// The grown image before expand, and the files in it.
fn grown_image() -> (Vec<u8>, Vec<(&'static str, Vec<u8>)>) {
    let mut pool = format_pool(Box::new(MemoryDevice::new(OLD_BYTES)), &FormatOptions::default()).unwrap();
    let files = vec![("a", file_bytes(700_000, 1)), ("b", file_bytes(9000, 2))];
    for (name, data) in &files {
        write_file(&mut pool, name, data);
    }
    let mut bytes = vec![0u8; OLD_BYTES as usize];
    pool.store.dev.read_at(0, &mut bytes).unwrap();
    bytes.resize(NEW_BYTES as usize, 0);
    (bytes, files)
}

/// Crash images of one boundary: `durable` plus parts of `pending`.
fn crash_images(durable: &[u8], pending: &[(u64, Vec<u8>)], seed: u64) -> Vec<Vec<u8>> {
    let mut blocks: Vec<(u64, &[u8])> = Vec::new();
    for (offset, data) in pending {
        for (i, chunk) in data.chunks(4096).enumerate() {
            blocks.push((offset + i as u64 * 4096, chunk));
        }
    }
    let apply = |chosen: &[(u64, &[u8])]| {
        let mut image = durable.to_vec();
        for (offset, chunk) in chosen {
            image[*offset as usize..*offset as usize + chunk.len()].copy_from_slice(chunk);
        }
        image
    };
    let mut images = Vec::new();
    for prefix in 0..=blocks.len() {
        images.push(apply(&blocks[..prefix]));
    }
    let mut state = seed | 1;
    for _ in 0..24 {
        let chosen: Vec<_> = blocks
            .iter()
            .filter(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.is_multiple_of(2)
            })
            .copied()
            .collect();
        images.push(apply(&chosen));
    }
    // The first block (a label, at block 0, at the new or the old end) torn: its first
    // or last sectors, and others at random; the rest of the boundary not written.
    let mut masks: Vec<u32> = (1..8).flat_map(|k| [(1u32 << k) - 1, 0xFF & !((1u32 << k) - 1)]).collect();
    masks.extend((0..10).map(|i| (seed as u32).wrapping_mul(2654435761).rotate_left(i * 3) & 0xFF));
    masks.retain(|&m| m != 0 && m != 0xFF);
    for (offset, chunk) in blocks.iter().take(1) {
        for &mask in &masks {
            let mut image = durable.to_vec();
            for sector in 0..chunk.len() / SECTOR {
                if mask & (1 << sector) != 0 {
                    let at = *offset as usize + sector * SECTOR;
                    image[at..at + SECTOR].copy_from_slice(&chunk[sector * SECTOR..(sector + 1) * SECTOR]);
                }
            }
            images.push(image);
        }
    }
    images
}

/// What one crash image opened as: its size, and whether its first label was torn.
fn judge(image: Vec<u8>, files: &[(&str, Vec<u8>)], what: &str, thorough: bool) -> (u64, bool) {
    let mut pool = Pool::open(Box::new(device(image.clone())), OpenMode::Read)
        .unwrap_or_else(|e| panic!("{what}: the pool does not open: {e}"));
    assert!(pool.warnings.is_empty(), "{what}: warnings {:?}", pool.warnings);
    let opened_at = pool.label.device_bytes;
    assert!(opened_at == OLD_BYTES || opened_at == NEW_BYTES / 4096 * 4096, "{what}: opened at {opened_at} bytes");
    for (name, data) in files {
        assert_eq!(&read_file(&mut pool, name), data, "{what}: file {name}");
    }
    let report = check_pool(&mut pool).unwrap();
    assert!(report.is_clean(), "{what}: check finds {:?}", report.problems);
    let torn = !matches!(Label::decode(&image[..4096]), Ok(Some(_)));
    if !thorough && !torn {
        return (opened_at, torn);
    }
    let mut image = image;
    if torn {
        // An open for writing finishes the expand before anything else.
        let pool = Pool::open(Box::new(device(image.clone())), OpenMode::Write).unwrap();
        assert_eq!(opened_at, NEW_BYTES / 4096 * 4096, "{what}: a torn first label opened at the old size");
        assert!(
            matches!(pool.warnings[..], [OpenWarning::ExpandFinished { pool_bytes, .. }] if pool_bytes == opened_at),
            "{what}: {:?}",
            pool.warnings
        );
        pool.store.dev.read_at(0, &mut image).unwrap();
        drop(pool);
        let first = Label::decode(&image[..4096]).unwrap().expect("the first label rewritten");
        assert_eq!(first.device_bytes, opened_at, "{what}");
        let old_end = region_start(1, OLD_BYTES) as usize * 4096;
        assert!(Label::decode(&image[old_end..old_end + 4096]).unwrap().is_none(), "{what}: old end label");
        let again = Pool::open(Box::new(device(image.clone())), OpenMode::Read).unwrap();
        assert!(again.warnings.is_empty(), "{what}: after the open for writing: {:?}", again.warnings);
    }
    // The next expand finishes the job, whatever the crash left.
    let mut pool = Pool::open(Box::new(device(image)), OpenMode::Write).unwrap();
    let outcome = pool.expand().unwrap_or_else(|e| panic!("{what}: expand again: {e}"));
    let grown = matches!(outcome, ExpandOutcome::Grown { .. });
    assert_eq!(grown, opened_at == OLD_BYTES, "{what}: {outcome:?}");
    assert_eq!(pool.label.device_bytes, NEW_BYTES / 4096 * 4096, "{what}");
    let extra = file_bytes(5 << 20, 3); // more than the old pool had free after a and b
    write_file(&mut pool, "extra", &extra);
    let report = check_pool(&mut pool).unwrap();
    assert!(report.is_clean(), "{what}: after expand again: {:?}", report.problems);
    assert_eq!(read_file(&mut pool, "a"), files[0].1, "{what}");
    assert_eq!(read_file(&mut pool, "extra"), extra, "{what}");
    (opened_at, torn)
}

#[test]
fn every_crash_during_expand_leaves_the_old_or_the_new_size() {
    let (image, files) = grown_image();
    let log = Arc::new(Mutex::new(Vec::new()));
    let dev = Logging { inner: device(image.clone()), log: Arc::clone(&log) };
    let mut pool = Pool::open(Box::new(dev), OpenMode::Write).unwrap();
    assert_eq!(
        pool.expand().unwrap(),
        ExpandOutcome::Grown { old_bytes: OLD_BYTES, new_bytes: NEW_BYTES / 4096 * 4096 }
    );
    drop(pool);
    let ops = std::mem::take(&mut *log.lock().unwrap());
    // Walk the log boundary by boundary: durable image, then the writes until the flush.
    let mut durable = image;
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut boundaries, mut sizes, mut torn) = (0, std::collections::BTreeSet::new(), 0);
    for op in ops {
        match op {
            Op::Write(offset, data) => pending.push((offset, data)),
            Op::Flush => {
                for (n, crash) in crash_images(&durable, &pending, boundaries as u64 + 7).into_iter().enumerate() {
                    let what = format!("boundary {boundaries}, image {n}");
                    let (size, first_torn) = judge(crash, &files, &what, n % 8 == 0);
                    sizes.insert(size);
                    torn += usize::from(first_torn);
                }
                for (offset, data) in pending.drain(..) {
                    durable[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
                }
                boundaries += 1;
            }
        }
    }
    assert!(pending.is_empty(), "expand ends with a flush");
    assert_eq!(boundaries, 3, "expand's three steps, each flushed");
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [OLD_BYTES, NEW_BYTES / 4096 * 4096]);
    assert!(torn >= 10, "only {torn} crash images tore the first label");
    judge(durable, &files, "after expand", true);
}
