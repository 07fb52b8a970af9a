//! Model test: random operations applied to a pool on an in-memory device and to a plain
//! model (maps of paths to bytes), compared after every commit, for the live tree and
//! every snapshot; `check` runs after every commit and must find the pool exact.
//!
//! Method: each seed drives writes, partial overwrites, truncations, hard links,
//! renames, removals, snapshots, destroys, snapshot renames, rollbacks (-r), history
//! changes and reopens. A failure prints
//! the seed; `MODEL_SEED=n cargo test --test model` replays one seed, `MODEL_SEEDS=n`
//! runs more. The pool's clock is simulated from the seed (src/lib/clock.rs) and moves a
//! seeded few minutes per step, so a window of minutes expires history part by part, and
//! a seed replays the same guids and commit times.

mod common;
use common::Rng;
use snapfs::check::check_pool;
use snapfs::clock::SimClock;
use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::fs::{FileType, FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool_with_clock};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The model: directories, and files as (inode id, bytes) shared by hard links.
#[derive(Clone, Default, PartialEq, Debug)]
struct Model {
    dirs: Vec<String>,
    files: BTreeMap<String, u64>,
    contents: BTreeMap<u64, Vec<u8>>,
}

impl Model {
    fn new() -> Model {
        Model { dirs: vec![String::new()], ..Default::default() }
    }
    /// Path -> bytes, with directories as None: what a tree should show.
    fn view(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut out: BTreeMap<String, Option<Vec<u8>>> =
            self.dirs.iter().filter(|d| !d.is_empty()).map(|d| (d.clone(), None)).collect();
        for (path, id) in &self.files {
            out.insert(path.clone(), Some(self.contents[id].clone()));
        }
        out
    }
}

fn read_tree(fs: &mut FsTree) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), ROOT_INO)];
    while let Some((prefix, dir)) = stack.pop() {
        for e in fs.readdir(dir).unwrap() {
            let path = format!("{prefix}{}", String::from_utf8(e.name.clone()).unwrap());
            match e.file_type {
                FileType::Directory => {
                    out.insert(path.clone(), None);
                    stack.push((format!("{path}/"), e.ino));
                }
                _ => {
                    out.insert(path, Some(fs.read(e.ino, 0, u64::MAX).unwrap()));
                }
            }
        }
    }
    out
}

fn parent_and_name(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn compare(pool: &mut Pool, model: &Model, snapshots: &BTreeMap<String, Model>, seed: u64, step: usize) {
    let (mut tree, store) = pool.view(LIVE_TREE_ID, None).unwrap();
    let live = read_tree(&mut FsTree::new(&mut tree, store, false));
    assert_eq!(live, model.view(), "seed {seed} step {step}: live tree differs from the model");
    for (name, snap_model) in snapshots {
        let (mut tree, store) = pool.view(LIVE_TREE_ID, Some(name)).unwrap();
        let seen = read_tree(&mut FsTree::new(&mut tree, store, false));
        assert_eq!(seen, snap_model.view(), "seed {seed} step {step}: snapshot @{name} differs from the model");
    }
    let report = check_pool(pool).unwrap();
    assert!(report.is_clean(), "seed {seed} step {step}: check: {:?}", report.problems);
}

/// A history window of minutes: it keeps the last few steps' commits (steps are 0 to 4
/// minutes apart).
const HISTORY_WINDOW_S: u64 = 12 * 60;

/// Runs seed `seed`; returns whether it was one with a window of minutes (a third of
/// the seeds) and its window slid, expiring older commits while newer ones stayed.
fn run_seed(seed: u64) -> bool {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    // Its own generator, so that the operations a seed drives stay those it always drove.
    let mut time = Rng(seed.wrapping_mul(0xc10c_c10c_c10c_c10d) | 1);
    let clock = Arc::new(SimClock::new(seed));
    let mut options = FormatOptions::default();
    options.config.history_seconds = [0, 86400, HISTORY_WINDOW_S][seed as usize % 3];
    let mut pool = format_pool_with_clock(Box::new(MemoryDevice::new(96 << 20)), &options, clock.clone()).unwrap();
    let mut model = Model::new();
    let mut snapshots: BTreeMap<String, Model> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut snapshot_count = 0;
    // Its own generator for lifecycle choices (rename, rollback), so that the operations
    // a seed drove before them stay as they were.
    let mut life = Rng(seed.wrapping_mul(0x11fe_c7c1_e000_0001) | 1);
    // Snapshot names in the order they were taken, and how many renames there were.
    let mut taken: Vec<String> = Vec::new();
    let mut renamed = 0u64;
    // Steps after which older commits had expired while more than one stayed.
    let (mut oldest_retained, mut window_slid) = (0, 0);
    let steps = 160;
    for step in 0..steps {
        clock.advance_seconds(time.below(HISTORY_WINDOW_S / 3));
        let op = rng.below(100);
        let mut fs = pool.live(LIVE_TREE_ID).unwrap();
        let now = Timespec { sec: 1_700_000_000 + step as i64, nsec: 0 };
        match op {
            // Create or replace a whole file.
            0..=24 => {
                let dir = model.dirs[rng.below(model.dirs.len() as u64) as usize].clone();
                let name = format!("f{}", rng.below(12));
                let path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
                if model.dirs.contains(&path) {
                    continue;
                }
                let len = match rng.below(4) {
                    0 => rng.below(100) as usize,
                    1 => rng.below(5000) as usize,
                    _ => rng.below(400_000) as usize,
                };
                let data = rng.bytes(len);
                let parent = fs.resolve(&dir).unwrap();
                let ino = match fs.lookup(parent, name.as_bytes()).unwrap() {
                    Some(e) => e.ino,
                    None => fs.create(parent, name.as_bytes(), Inode::new(0o100644, now)).unwrap(),
                };
                fs.truncate(ino, 0).unwrap();
                fs.write_at(ino, 0, &data).unwrap();
                let id = *model.files.entry(path).or_insert_with(|| {
                    next_id += 1;
                    next_id
                });
                model.contents.insert(id, data);
            }
            // Overwrite or extend part of a file.
            25..=39 => {
                let Some((path, id)) = pick(&mut rng, &model.files) else { continue };
                let old_len = model.contents[&id].len() as u64;
                let offset = rng.below(old_len + 200_000);
                let len = rng.below(140_000) as usize + 1;
                let data = rng.bytes(len);
                let ino = fs.resolve(&path).unwrap();
                fs.write_at(ino, offset, &data).unwrap();
                let content = model.contents.get_mut(&id).unwrap();
                let end = offset as usize + data.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[offset as usize..end].copy_from_slice(&data);
            }
            // Truncate, shorter or longer.
            40..=46 => {
                let Some((path, id)) = pick(&mut rng, &model.files) else { continue };
                let size = rng.below(500_000);
                let ino = fs.resolve(&path).unwrap();
                fs.truncate(ino, size).unwrap();
                model.contents.get_mut(&id).unwrap().resize(size as usize, 0);
            }
            // Hard link.
            47..=51 => {
                let Some((path, id)) = pick(&mut rng, &model.files) else { continue };
                let dir = model.dirs[rng.below(model.dirs.len() as u64) as usize].clone();
                let name = format!("h{}", rng.below(8));
                let new_path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
                if model.files.contains_key(&new_path) || model.dirs.contains(&new_path) {
                    continue;
                }
                let ino = fs.resolve(&path).unwrap();
                let parent = fs.resolve(&dir).unwrap();
                fs.link(ino, parent, name.as_bytes()).unwrap();
                model.files.insert(new_path, id);
            }
            // Remove a file.
            52..=59 => {
                let Some((path, id)) = pick(&mut rng, &model.files) else { continue };
                let (dir, name) = parent_and_name(&path);
                let parent = fs.resolve(dir).unwrap();
                fs.unlink(parent, name.as_bytes()).unwrap();
                model.files.remove(&path);
                if !model.files.values().any(|&v| v == id) {
                    model.contents.remove(&id);
                }
            }
            // Rename a file (possibly over another file).
            60..=66 => {
                let Some((path, id)) = pick(&mut rng, &model.files) else { continue };
                let dir = model.dirs[rng.below(model.dirs.len() as u64) as usize].clone();
                let name = format!("f{}", rng.below(12));
                let new_path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
                if model.dirs.contains(&new_path) {
                    continue;
                }
                let (src_dir, src_name) = parent_and_name(&path);
                let src_parent = fs.resolve(src_dir).unwrap();
                let dst_parent = fs.resolve(&dir).unwrap();
                fs.rename(src_parent, src_name.as_bytes(), dst_parent, name.as_bytes()).unwrap();
                if new_path != path {
                    if let Some(old) = model.files.insert(new_path.clone(), id) {
                        if old != id && !model.files.values().any(|&v| v == old) {
                            model.contents.remove(&old);
                        }
                    }
                    model.files.remove(&path);
                }
            }
            // Make a directory.
            67..=71 => {
                let parent_dir = model.dirs[rng.below(model.dirs.len() as u64) as usize].clone();
                if parent_dir.matches('/').count() >= 2 {
                    continue;
                }
                let name = format!("d{}", rng.below(4));
                let path = if parent_dir.is_empty() { name.clone() } else { format!("{parent_dir}/{name}") };
                if model.dirs.contains(&path) || model.files.contains_key(&path) {
                    continue;
                }
                let parent = fs.resolve(&parent_dir).unwrap();
                fs.create(parent, name.as_bytes(), Inode::new(0o040755, now)).unwrap();
                model.dirs.push(path);
            }
            // Remove a directory and everything below it.
            72..=74 => {
                if model.dirs.len() < 2 {
                    continue;
                }
                let path = model.dirs[1 + rng.below(model.dirs.len() as u64 - 1) as usize].clone();
                let (dir, name) = parent_and_name(&path);
                let parent = fs.resolve(dir).unwrap();
                fs.remove_recursive(parent, name.as_bytes()).unwrap();
                let prefix = format!("{path}/");
                model.dirs.retain(|d| d != &path && !d.starts_with(&prefix));
                model.files.retain(|f, _| !f.starts_with(&prefix));
                let live: Vec<u64> = model.files.values().copied().collect();
                model.contents.retain(|id, _| live.contains(id));
            }
            // Commit, and sometimes snapshot.
            75..=86 => {
                pool.commit().unwrap();
                if rng.below(2) == 0 {
                    snapshot_count += 1;
                    let name = format!("s{snapshot_count}");
                    pool.create_snapshot(LIVE_TREE_ID, &name).unwrap();
                    pool.commit().unwrap();
                    taken.push(name.clone());
                    snapshots.insert(name, model.clone());
                }
                compare(&mut pool, &model, &snapshots, seed, step);
            }
            // Destroy a snapshot, rename one, or roll the live tree back to one.
            87..=92 => {
                pool.commit().unwrap();
                let names: Vec<String> = snapshots.keys().cloned().collect();
                if names.is_empty() {
                    continue;
                }
                let name = names[rng.below(names.len() as u64) as usize].clone();
                match life.below(4) {
                    0 => {
                        renamed += 1;
                        let new = format!("r{renamed}");
                        pool.rename_snapshot(LIVE_TREE_ID, &name, &new).unwrap();
                        let kept = snapshots.remove(&name).unwrap();
                        snapshots.insert(new.clone(), kept);
                        taken.iter_mut().filter(|n| **n == name).for_each(|n| *n = new.clone());
                    }
                    1 => {
                        // -r: the snapshots taken after it go with the rollback.
                        let at = taken.iter().position(|n| *n == name).unwrap();
                        let (target, later, _) = pool.rollback_to(LIVE_TREE_ID, &name, true).unwrap();
                        assert_eq!(target.name, name);
                        let later: Vec<String> = later.into_iter().map(|s| s.name).rev().collect();
                        assert_eq!(later, taken[at + 1..], "seed {seed} step {step}: the later snapshots");
                        for gone in taken.drain(at + 1..) {
                            snapshots.remove(&gone);
                        }
                        model = snapshots[&name].clone();
                    }
                    _ => {
                        pool.destroy_snapshot(LIVE_TREE_ID, &name).unwrap();
                        snapshots.remove(&name);
                        taken.retain(|n| *n != name);
                    }
                }
                pool.commit().unwrap();
                compare(&mut pool, &model, &snapshots, seed, step);
            }
            // History: prune, or change the window.
            93..=95 => {
                match rng.below(3) {
                    0 => pool.prune_history().unwrap(),
                    1 => pool.set_history_seconds([0, HISTORY_WINDOW_S][time.below(2) as usize]).unwrap(),
                    _ => pool.set_history_seconds(86400).unwrap(),
                }
                pool.commit().unwrap();
                compare(&mut pool, &model, &snapshots, seed, step);
            }
            // Commit and reopen from the device.
            _ => {
                pool.commit().unwrap();
                let dev = pool.store.dev;
                pool = Pool::open_with_clock(dev, OpenMode::Write, clock.clone()).unwrap();
                compare(&mut pool, &model, &snapshots, seed, step);
            }
        }
        let retained: Vec<u64> = pool.history().unwrap().into_iter().map(|(txg, _)| txg.0).collect();
        if retained.len() >= 2 && retained[0] > oldest_retained {
            window_slid += 1;
        }
        oldest_retained = *retained.first().unwrap_or_else(|| panic!("seed {seed} step {step}: no retained commit"));
    }
    pool.commit().unwrap();
    compare(&mut pool, &model, &snapshots, seed, steps);
    // Destroy every snapshot and prune: only the live tree's blocks remain.
    for name in snapshots.keys().cloned().collect::<Vec<_>>() {
        pool.destroy_snapshot(LIVE_TREE_ID, &name).unwrap();
    }
    pool.prune_history().unwrap();
    pool.commit().unwrap();
    snapshots.clear();
    compare(&mut pool, &model, &snapshots, seed, steps + 1);
    assert_eq!(pool.root.dead_bytes, 0, "seed {seed}: dead blocks remain with no snapshot and no history");
    options.config.history_seconds == HISTORY_WINDOW_S && window_slid > 0
}

fn pick(rng: &mut Rng, files: &BTreeMap<String, u64>) -> Option<(String, u64)> {
    if files.is_empty() {
        return None;
    }
    let i = rng.below(files.len() as u64) as usize;
    files.iter().nth(i).map(|(p, &id)| (p.clone(), id))
}

#[test]
fn random_operations_match_the_model() {
    if let Ok(seed) = std::env::var("MODEL_SEED") {
        run_seed(seed.parse().expect("MODEL_SEED is a number"));
        return;
    }
    let seeds: u64 = std::env::var("MODEL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    // Whether a window slid depends on how a seed's commits fall in time (seed 17's come
    // in bursts further apart than the window, so each expires all but the newest): the
    // seeds together must cover it, not each one.
    let slid = (1..=seeds).filter(|&seed| run_seed(seed)).count();
    assert!(slid > 0, "in {seeds} seeds, no history window ever expired part of the history");
}
