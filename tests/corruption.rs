//! Damage anywhere gives an error or the right bytes, never a panic or wrong data.
//!
//! Method: build a small pool with files, snapshots and history; then, one at a time,
//! flip a bit at many offsets spread over the used part of the image and run what a
//! reader runs (open, check, list every file of every tree, read it). Every read either
//! fails or returns exactly the original bytes; nothing panics.

use snapfs::check::check_pool;
use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::fs::{FileType, FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// (snapshot or None for the live tree, file name) -> the bytes it must hold.
type Expected = BTreeMap<(Option<String>, String), Vec<u8>>;

fn build() -> (Vec<u8>, Expected) {
    let mut pool = format_pool(Box::new(MemoryDevice::new(16 << 20)), &FormatOptions::default()).unwrap();
    let mut expected = BTreeMap::new();
    for round in 0..3u8 {
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        for i in 0..8u8 {
            let name = format!("f{i}");
            let ino = match fs.lookup(ROOT_INO, name.as_bytes()).unwrap() {
                Some(e) => e.ino,
                None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, Timespec::default())).unwrap(),
            };
            let data: Vec<u8> = (0..(i as usize * 40_000 + 10)).map(|j| (j as u8) ^ round ^ (i * 3)).collect();
            fs.truncate(ino, 0).unwrap();
            fs.write_at(ino, 0, &data).unwrap();
            expected.insert((Some(format!("r{round}")), name.clone()), data.clone());
            if round == 2 {
                expected.insert((None, name), data);
            }
        }
        pool.create_snapshot(LIVE_TREE_ID, &format!("r{round}")).unwrap();
        pool.commit().unwrap();
    }
    // The image bytes, through a reopen that shows the device as written.
    let mut bytes = vec![0u8; 16 << 20];
    pool.store.dev.read_at(0, &mut bytes).unwrap();
    (bytes, expected)
}

/// Opens the damaged image and reads everything; returns how many reads failed.
fn exercise(bytes: Vec<u8>, expected: &Expected) -> usize {
    let mut dev = MemoryDevice::new(bytes.len() as u64);
    dev.bytes = bytes;
    let Ok(mut pool) = Pool::open(Box::new(dev), OpenMode::Read) else { return 1 };
    let mut failures = 0;
    if let Ok(report) = check_pool(&mut pool) {
        failures += report.problems.len();
    } else {
        failures += 1;
    }
    for ((snapshot, name), data) in expected {
        let Ok((mut tree, store)) = pool.view(LIVE_TREE_ID, snapshot.as_deref()) else {
            failures += 1;
            continue;
        };
        let mut fs = FsTree::new(&mut tree, store, false);
        let read = fs.resolve(name).and_then(|ino| {
            let inode = fs.inode(ino)?;
            assert_eq!(inode.file_type(), FileType::Regular);
            fs.read(ino, 0, u64::MAX)
        });
        match read {
            Ok(got) => assert!(&got == data, "{snapshot:?}:{name}: wrong bytes returned instead of an error"),
            Err(_) => failures += 1,
        }
    }
    failures
}

#[test]
fn bit_flips_are_detected_never_returned() {
    let (image, expected) = build();
    assert_eq!(exercise(image.clone(), &expected), 0, "the undamaged pool must read cleanly");
    // Offsets: every 4 KiB block that holds anything, at a varying place inside it.
    let used: Vec<usize> =
        (0..image.len() / 4096).filter(|b| image[b * 4096..(b + 1) * 4096].iter().any(|&x| x != 0)).collect();
    assert!(used.len() > 20);
    let mut detected = 0;
    for (n, block) in used.iter().enumerate() {
        let offset = block * 4096 + (n * 613) % 4096;
        let mut damaged = image.clone();
        damaged[offset] ^= 1 << (n % 8);
        let result = catch_unwind(AssertUnwindSafe(|| exercise(damaged, &expected)));
        let failures = result.unwrap_or_else(|_| panic!("panic with a bit flipped at offset {offset}"));
        if failures > 0 {
            detected += 1;
        }
    }
    // Flips in label copies, spare ring slots and block padding are harmless; most others
    // must show up.
    assert!(detected * 2 > used.len(), "only {detected} of {} flips were noticed", used.len());
}
