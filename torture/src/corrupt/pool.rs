//! The pools the injector damages: small, in memory, with files of every size class,
//! directories, snapshots and retained history, all from a seed; and what every file of
//! every view must read. The pool's guid and times come from a clock simulated from the
//! same seed, so a seed names one image, byte for byte, and a failure replays exactly.

use crate::rng::Rng;
use snapfs::clock::SimClock;
use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::fs::{FileType, FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool_with_clock};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const IMAGE_BYTES: u64 = 24 << 20;

/// Every regular file of the live tree and of each snapshot: (view, path) -> bytes.
/// The view is None for the live tree, else the snapshot's name.
pub type Contents = BTreeMap<FileKey, Vec<u8>>;

/// A file of a view: (None for the live tree or the snapshot's name, path).
pub type FileKey = (Option<String>, String);

pub struct Built {
    pub image: Vec<u8>,
    /// File data block (first address) -> the files of the views that hold it.
    pub owners: BTreeMap<u64, Vec<FileKey>>,
    /// What every view reads now.
    pub contents: Contents,
    /// What the live tree read at the commit before the last (for a lost newest commit).
    pub previous_live: Contents,
}

/// Rounds of writes, each committed with a snapshot but the last: the newest commit and
/// the one before it differ in the live tree only.
pub fn build(seed: u64) -> Built {
    let mut rng = Rng::derive(seed, &[1]);
    // A minute passes per reading of the clock (one per commit here): the default day of
    // history keeps every commit.
    let clock = Arc::new(SimClock::ticking(seed, 60_000_000_000));
    let mut pool = format_pool_with_clock(Box::new(MemoryDevice::new(IMAGE_BYTES)), &FormatOptions::default(), clock)
        .expect("format an in-memory pool");
    let rounds = rng.between(3, 5);
    let mut previous_live = Contents::new();
    for round in 0..rounds {
        write_round(&mut pool, &mut rng, round).expect("fill the pool");
        if round + 1 < rounds {
            pool.create_snapshot(LIVE_TREE_ID, &format!("r{round}")).expect("snapshot");
        }
        pool.commit().expect("commit");
        if round + 2 == rounds {
            previous_live = read_view(&mut pool, None).expect("read the live tree");
        }
    }
    let mut contents = Contents::new();
    let mut owners: BTreeMap<u64, Vec<FileKey>> = BTreeMap::new();
    let mut views: Vec<Option<String>> =
        pool.snapshots_of(LIVE_TREE_ID).expect("the snapshots read").iter().map(|s| Some(s.name.clone())).collect();
    views.push(None);
    for view in views {
        contents.extend(read_view(&mut pool, view.as_deref()).expect("read a view"));
        for (block, file) in data_blocks(&mut pool, view.as_deref()).expect("list records") {
            owners.entry(block).or_default().push(file);
        }
    }
    let mut image = vec![0u8; IMAGE_BYTES as usize];
    pool.store.dev.read_at(0, &mut image).expect("read the image back");
    Built { image, owners, contents, previous_live }
}

fn write_round(pool: &mut Pool, rng: &mut Rng, round: u64) -> snapfs::Result<()> {
    let mut fs = pool.live(LIVE_TREE_ID)?;
    let dir = match fs.lookup(ROOT_INO, b"dir")? {
        Some(entry) => entry.ino,
        None => fs.create(ROOT_INO, b"dir", Inode::new(0o040755, Timespec::default()))?,
    };
    let files = rng.between(10, 80);
    for i in 0..files {
        let parent = if rng.chance(1, 2) { dir } else { ROOT_INO };
        let name = format!("f{}", rng.below(300));
        if rng.chance(1, 6) {
            if let Some(entry) = fs.lookup(parent, name.as_bytes())? {
                if fs.inode(entry.ino)?.file_type() == FileType::Regular {
                    fs.unlink(parent, name.as_bytes())?;
                }
            }
            continue;
        }
        let ino = match fs.lookup(parent, name.as_bytes())? {
            Some(entry) => entry.ino,
            None => fs.create(parent, name.as_bytes(), Inode::new(0o100644, Timespec::default()))?,
        };
        // Empty, a few bytes, under a record, several records; half compressible.
        let len = [0, 1 + rng.below(100), 1 + rng.below(100_000), 130_000 + rng.below(300_000)][rng.below(4) as usize];
        let mut data = vec![0u8; len as usize];
        if rng.chance(1, 2) {
            rng.fill(&mut data);
        } else {
            data.iter_mut().enumerate().for_each(|(j, b)| *b = (j as u64 / 64 + round + i) as u8);
        }
        fs.truncate(ino, 0)?;
        fs.write_at(ino, 0, &data)?;
    }
    Ok(())
}

/// Every regular file of one view, by path; fails at the first error.
pub fn read_view(pool: &mut Pool, view: Option<&str>) -> snapfs::Result<Contents> {
    read_each(pool, view)?.into_iter().map(|(key, bytes)| Ok((key, bytes?))).collect()
}

/// Every regular file of one view, each read on its own: a damaged file's error does
/// not hide the others. Fails only if a directory cannot be listed.
pub type Reads = Vec<(FileKey, snapfs::Result<Vec<u8>>)>;
pub fn read_each(pool: &mut Pool, view: Option<&str>) -> snapfs::Result<Reads> {
    let mut out = Vec::new();
    walk_files(pool, view, &mut |fs, ino, path| {
        out.push(((view.map(str::to_string), path.to_string()), fs.read(ino, 0, u64::MAX)));
        Ok(())
    })?;
    Ok(out)
}

/// (first address of a file data block, the file holding it) for every record of a view.
fn data_blocks(pool: &mut Pool, view: Option<&str>) -> snapfs::Result<Vec<(u64, FileKey)>> {
    let mut out = Vec::new();
    walk_files(pool, view, &mut |fs, ino, path| {
        for (_, record) in fs.records(ino)? {
            for block in record.blocks() {
                out.push((block.addr.0, (view.map(str::to_string), path.to_string())));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

type Visit<'a> = dyn FnMut(&mut FsTree, u64, &str) -> snapfs::Result<()> + 'a;

fn walk_files(pool: &mut Pool, view: Option<&str>, visit: &mut Visit) -> snapfs::Result<()> {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, view)?;
    let mut fs = FsTree::new(&mut tree, store, false);
    let mut stack = vec![(ROOT_INO, String::new())];
    while let Some((dir, path)) = stack.pop() {
        for entry in fs.readdir(dir)? {
            let child = format!("{path}/{}", String::from_utf8_lossy(&entry.name));
            match fs.inode(entry.ino)?.file_type() {
                FileType::Directory => stack.push((entry.ino, child)),
                FileType::Regular => visit(&mut fs, entry.ino, &child)?,
                _ => {}
            }
        }
    }
    Ok(())
}

pub fn open(image: &[u8], mode: OpenMode) -> snapfs::Result<Pool> {
    let mut dev = MemoryDevice::new(image.len() as u64);
    dev.bytes = image.to_vec();
    Pool::open(Box::new(dev), mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a seed names one pool image, so a failing seed replays the very image that
    /// failed. Method: build twice from one seed, and once from another.
    #[test]
    fn a_seed_builds_the_same_image() {
        let (a, b) = (build(3), build(3));
        assert!(a.image == b.image, "two builds of seed 3 differ");
        assert_eq!(a.contents, b.contents);
        let other = build(4);
        assert!(other.image != a.image);
        let mut pool = open(&a.image, OpenMode::Read).unwrap();
        assert_eq!(
            pool.history().unwrap().len(),
            pool.snapshots_of(LIVE_TREE_ID).unwrap().len() + 2,
            "every commit is retained"
        );
    }
}
