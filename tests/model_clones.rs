//! Model test of many trees: random writes, snapshots, clones, rollbacks (-r),
//! destroys of snapshots and clones, history changes and reopens, applied to a pool on
//! an in-memory device and to a plain model (each tree and snapshot a map of paths to
//! bytes), compared after every step for every tree and snapshot; `check` must find the
//! pool exact after every step, and at the end, with everything destroyed but the live
//! tree and the history pruned, no dead block may remain.
//!
//! A refusal is part of the model: destroying an origin, a clone with snapshots, or
//! rolling back past an origin must be refused and change nothing. A failure prints the
//! seed; `MODEL_SEED=n cargo test --test model_clones` replays one, `MODEL_SEEDS=n` runs
//! more.

mod common;
use common::Rng;
use snapfs::block::Txg;
use snapfs::check::check_pool;
use snapfs::clock::SimClock;
use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::error::Error;
use snapfs::fs::{FileType, FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, LIVE_TREE_NAME, Pool, format_pool_with_clock};
use std::collections::BTreeMap;
use std::sync::Arc;

type Files = BTreeMap<String, Vec<u8>>;

/// The model: each tree's files by name, and each snapshot's by (tree, name) with its txg.
#[derive(Default)]
struct Model {
    trees: BTreeMap<String, Files>,
    snapshots: BTreeMap<(String, String), (u64, Files)>,
}

fn read_files(pool: &mut Pool, tree: u64, snapshot: Option<&str>) -> Files {
    let (mut view, store) = pool.view(tree, snapshot).unwrap();
    let mut fs = FsTree::new(&mut view, store, false);
    let mut files = Files::new();
    for entry in fs.readdir(ROOT_INO).unwrap() {
        assert_eq!(entry.file_type, FileType::Regular);
        let size = fs.inode(entry.ino).unwrap().size;
        files.insert(String::from_utf8(entry.name.clone()).unwrap(), fs.read(entry.ino, 0, size).unwrap());
    }
    files
}

fn compare(pool: &mut Pool, model: &Model, seed: u64, step: usize) {
    let names: Vec<String> = pool.trees().unwrap().map(|t| t.name.clone()).collect();
    assert_eq!(names.len(), model.trees.len(), "seed {seed} step {step}: trees {names:?}");
    for (name, files) in &model.trees {
        let id = pool.tree_id(name).unwrap();
        assert_eq!(&read_files(pool, id, None), files, "seed {seed} step {step}: tree {name}");
    }
    let mut listed = 0;
    for id in pool.trees().unwrap().map(|t| t.id).collect::<Vec<_>>() {
        listed += pool.snapshots_of(id).unwrap().len();
    }
    assert_eq!(listed, model.snapshots.len(), "seed {seed} step {step}: snapshot count");
    for ((tree, name), (txg, files)) in &model.snapshots {
        let id = pool.tree_id(tree).unwrap();
        assert_eq!(pool.snapshot(id, name).unwrap().txg.0, *txg, "seed {seed} step {step}: {tree}@{name}");
        assert_eq!(&read_files(pool, id, Some(name)), files, "seed {seed} step {step}: {tree}@{name}");
    }
    let report = check_pool(pool).unwrap();
    assert!(report.is_clean(), "seed {seed} step {step}: check: {:?}", report.problems);
}

fn reopen(pool: Pool, clock: &Arc<SimClock>) -> Pool {
    let dev = pool.store.dev;
    Pool::open_with_clock(dev, OpenMode::Write, clock.clone()).unwrap()
}

fn refused(result: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::Refused(_)))
}

fn run_seed(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let clock = Arc::new(SimClock::new(seed));
    let mut options = FormatOptions::default();
    options.config.history_seconds = [0, 86400, 600][seed as usize % 3];
    let mut pool = format_pool_with_clock(Box::new(MemoryDevice::new(96 << 20)), &options, clock.clone()).unwrap();
    let mut model = Model::default();
    model.trees.insert(LIVE_TREE_NAME.to_string(), Files::new());
    let (mut snapshots_taken, mut clones_made) = (0, 0);
    let now = Timespec { sec: 1_700_000_000, nsec: 0 };
    for step in 0..140 {
        clock.advance_seconds(rng.below(300));
        let trees: Vec<String> = model.trees.keys().cloned().collect();
        let tree = rng.pick(&trees).unwrap();
        let id = pool.tree_id(&tree).unwrap();
        let snapshot_keys: Vec<(String, String)> = model.snapshots.keys().cloned().collect();
        match rng.below(100) {
            // Write a whole file.
            0..=39 => {
                let name = format!("f{}", rng.below(8));
                let len = [rng.below(100), rng.below(200_000)][rng.below(2) as usize] as usize;
                let fill = rng.next();
                let data: Vec<u8> = (0..len).map(|i| (fill.rotate_left(i as u32 % 64) ^ i as u64) as u8).collect();
                let mut fs = pool.live(id).unwrap();
                let ino = match fs.lookup(ROOT_INO, name.as_bytes()).unwrap() {
                    Some(e) => e.ino,
                    None => fs.create(ROOT_INO, name.as_bytes(), Inode::new(0o100644, now)).unwrap(),
                };
                fs.truncate(ino, 0).unwrap();
                fs.write_at(ino, 0, &data).unwrap();
                model.trees.get_mut(&tree).unwrap().insert(name, data);
            }
            // Remove a file.
            40..=49 => {
                let names: Vec<String> = model.trees[&tree].keys().cloned().collect();
                let Some(name) = rng.pick(&names) else { continue };
                pool.live(id).unwrap().unlink(ROOT_INO, name.as_bytes()).unwrap();
                model.trees.get_mut(&tree).unwrap().remove(&name);
            }
            // Snapshot a tree.
            50..=64 => {
                pool.commit().unwrap();
                snapshots_taken += 1;
                let name = format!("s{snapshots_taken}");
                pool.create_snapshot(id, &name).unwrap();
                let txg = pool.commit().unwrap().txg.unwrap().0;
                model.snapshots.insert((tree.clone(), name), (txg, model.trees[&tree].clone()));
            }
            // Clone a snapshot.
            65..=71 => {
                let Some((origin_tree, origin)) = rng.pick(&snapshot_keys) else { continue };
                pool.commit().unwrap();
                clones_made += 1;
                let name = format!("c{clones_made}");
                let origin_id = pool.tree_id(&origin_tree).unwrap();
                pool.create_clone(origin_id, &origin, &name).unwrap();
                pool.commit().unwrap();
                let files = model.snapshots[&(origin_tree, origin)].1.clone();
                model.trees.insert(name, files);
            }
            // Destroy a snapshot: refused while it is a clone's origin.
            72..=77 => {
                let Some((snap_tree, name)) = rng.pick(&snapshot_keys) else { continue };
                pool.commit().unwrap();
                let snap_id = pool.tree_id(&snap_tree).unwrap();
                let txg = model.snapshots[&(snap_tree.clone(), name.clone())].0;
                let needed = !pool.clones_of(snap_id, Txg(txg)).unwrap().is_empty()
                    && !model.snapshots.iter().any(|((t, n), (x, _))| *t == snap_tree && *n != name && *x == txg);
                let result = pool.destroy_snapshot(snap_id, &name);
                assert_eq!(refused(&result), needed, "seed {seed} step {step}: destroy {snap_tree}@{name}: {result:?}");
                if result.is_ok() {
                    model.snapshots.remove(&(snap_tree, name));
                }
            }
            // Destroy a clone: refused while it has snapshots.
            78..=82 => {
                if tree == LIVE_TREE_NAME {
                    continue;
                }
                pool.commit().unwrap();
                let has_snapshots = model.snapshots.keys().any(|(t, _)| *t == tree);
                let result = pool.destroy_clone(&tree);
                assert_eq!(refused(&result), has_snapshots, "seed {seed} step {step}: destroy {tree}: {result:?}");
                if result.is_ok() {
                    model.trees.remove(&tree);
                }
            }
            // Destroy a clone, or a snapshot of it, chosen again (more trees come and go).
            83..=88 => {
                let own: Vec<String> =
                    model.snapshots.keys().filter(|(t, _)| *t == tree).map(|(_, n)| n.clone()).collect();
                let Some(name) = rng.pick(&own) else { continue };
                pool.commit().unwrap();
                let txg = model.snapshots[&(tree.clone(), name.clone())].0;
                let needed = !pool.clones_of(id, Txg(txg)).unwrap().is_empty();
                let result = pool.destroy_snapshot(id, &name);
                assert_eq!(refused(&result), needed, "seed {seed} step {step}: destroy {tree}@{name}: {result:?}");
                if result.is_ok() {
                    model.snapshots.remove(&(tree.clone(), name));
                }
            }
            // Roll a tree back to one of its snapshots (-r): refused, with nothing
            // changed, if a later one is a clone's origin.
            89..=93 => {
                let own: Vec<String> =
                    model.snapshots.keys().filter(|(t, _)| *t == tree).map(|(_, n)| n.clone()).collect();
                let Some(name) = rng.pick(&own) else { continue };
                pool.commit().unwrap();
                let result = pool.rollback_to(id, &name, true);
                if refused(&result) {
                    pool = reopen(pool, &clock);
                } else {
                    let (target, _, _) = result.unwrap();
                    model.snapshots.retain(|(t, _), (txg, _)| *t != tree || *txg <= target.txg.0);
                    let files = model.snapshots[&(tree.clone(), name)].1.clone();
                    model.trees.insert(tree.clone(), files);
                }
            }
            // History: prune it, or change the window.
            94..=96 => match rng.below(3) {
                0 => pool.prune_history().unwrap(),
                1 => pool.set_history_seconds(0).unwrap(),
                _ => pool.set_history_seconds(86400).unwrap(),
            },
            // Promote a clone: the snapshots of its origin's tree up to its origin move
            // to it (snapshot names are unique here, so none collides).
            97..=98 => {
                let Some((parent, origin)) = pool.origin_of(id).unwrap() else { continue };
                pool.commit().unwrap();
                let parent = pool.tree_name(parent).unwrap();
                promote(&mut pool, &mut model, &tree, &parent, origin.0, seed, step);
            }
            _ => {
                pool.commit().unwrap();
                pool = reopen(pool, &clock);
            }
        }
        pool.commit().unwrap();
        compare(&mut pool, &model, seed, step);
    }
    clean_up(&mut pool, &mut model, seed);
}

/// Promotes clone `tree` of `parent`'s snapshot of txg `origin`, in the pool and the model.
fn promote(pool: &mut Pool, model: &mut Model, tree: &str, parent: &str, origin: u64, seed: u64, step: usize) {
    let moved = pool.promote_clone(tree).unwrap_or_else(|e| panic!("seed {seed} step {step}: promote {tree}: {e}"));
    pool.commit().unwrap();
    let moving: Vec<(String, String)> =
        model.snapshots.iter().filter(|((t, _), (x, _))| t == parent && *x <= origin).map(|(k, _)| k.clone()).collect();
    assert_eq!(moved.moved.len(), moving.len(), "seed {seed} step {step}: promote {tree}: {:?}", moved.moved);
    for key in moving {
        let value = model.snapshots.remove(&key).unwrap();
        model.snapshots.insert((tree.to_string(), key.1), value);
    }
}

/// Everything but the live tree goes, each tree once nothing depends on it; with the
/// history pruned, no dead block may remain. A live tree made a clone by a promote is
/// promoted back first.
fn clean_up(pool: &mut Pool, model: &mut Model, seed: u64) {
    while let Some((parent, origin)) = pool.origin_of(LIVE_TREE_ID).unwrap() {
        let parent = pool.tree_name(parent).unwrap();
        promote(pool, model, LIVE_TREE_NAME, &parent, origin.0, seed, usize::MAX);
        compare(pool, model, seed, usize::MAX);
    }
    loop {
        let clones: Vec<(u64, String)> =
            pool.trees().unwrap().filter(|t| t.id != LIVE_TREE_ID).map(|t| (t.id, t.name.clone())).collect();
        let origins: Vec<u64> = pool.trees().unwrap().filter_map(|t| t.origin.map(|(o, _)| o)).collect();
        let Some((id, name)) = clones.into_iter().find(|(id, _)| !origins.contains(id)) else {
            break;
        };
        for snapshot in pool.snapshots_of(id).unwrap() {
            pool.destroy_snapshot(id, &snapshot.name).unwrap();
        }
        pool.commit().unwrap();
        pool.destroy_clone(&name).unwrap();
        pool.commit().unwrap();
        model.trees.remove(&name);
    }
    for snapshot in pool.snapshots_of(LIVE_TREE_ID).unwrap() {
        pool.destroy_snapshot(LIVE_TREE_ID, &snapshot.name).unwrap();
    }
    model.snapshots.clear();
    pool.prune_history().unwrap();
    pool.commit().unwrap();
    compare(pool, model, seed, usize::MAX);
    assert_eq!(pool.root.dead_bytes, 0, "seed {seed}: dead blocks remain with no snapshot and no history");
}

#[test]
fn random_trees_and_clones_match_the_model() {
    let seeds: Vec<u64> = match std::env::var("MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("MODEL_SEED is a number")],
        Err(_) => {
            (0..std::env::var("MODEL_SEEDS").map_or(9, |n| n.parse().expect("MODEL_SEEDS is a number"))).collect()
        }
    };
    for seed in seeds {
        run_seed(seed);
    }
}
