//! Opening a pool (labels, newest valid commit, space log replay, tables) and laying a
//! new one onto a device.

use super::features::lz4_feature;
use super::labels::{find_label, holds_pool, read_blocks, read_region};
use super::warning::OpenWarning;
use super::{LIVE_TREE_ID, LIVE_TREE_NAME, Pool};
use crate::alloc::Allocator;
use crate::alloc::space_log::{SpaceLogBlock, free_after};
use crate::block::{BLOCK_BYTES, BlockKind, BlockPtr, Txg};
use crate::clock::{Clock, system_clock};
use crate::compress::Codec;
use crate::device::{Device, OpenMode};
use crate::error::{DeviceError, Error, Refusal, Result, Shrunk, human_bytes};
use crate::format::commit::CommitRecord;
use crate::format::label::{FORMAT_VERSION, Label, REGION_BLOCKS, RING_SLOTS, region_start};
use crate::format::node::TreeKind;
use crate::format::pool_root::{PoolConfig, PoolRoot, SnapshotIndexRoot};
use crate::format::probe::foreign_signature;
use crate::format::tables::TreeEntry;
use crate::store::{Owner, Store};
use crate::tree::Tree;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Two label regions and room for a useful pool.
pub const MIN_DEVICE_BYTES: u64 = 16 << 20;
/// Longest space log chain we follow before calling it corrupt.
const SPACE_LOG_BLOCKS_MAX: u64 = 1 << 24;

#[derive(Clone, Debug, Default)]
pub struct FormatOptions {
    pub force: bool,
    pub config: PoolConfig,
}

fn check_size(dev: &dyn Device) -> Result<()> {
    if dev.len() < MIN_DEVICE_BYTES {
        return Err(Error::invalid(format!(
            "{} is too small: {} where snapfs needs at least {}",
            dev.name(),
            human_bytes(dev.len()),
            human_bytes(MIN_DEVICE_BYTES)
        )));
    }
    Ok(())
}

impl Pool {
    /// Opens the pool on `dev`, taking times and guids from the host (clock.rs).
    pub fn open(dev: Box<dyn Device>, mode: OpenMode) -> Result<Pool> {
        Pool::open_with_clock(dev, mode, system_clock())
    }

    /// Opens the pool on `dev`; its commits, snapshots and the commands on it take times
    /// and guids from `clock`.
    pub fn open_with_clock(dev: Box<dyn Device>, mode: OpenMode, clock: Arc<dyn Clock>) -> Result<Pool> {
        Pool::open_inner(dev, mode, clock, &mut |_| Ok(()))
    }

    /// The open itself; `on_label` runs once the label is read and before any commit
    /// record is (pins.rs: a reader enters the pins gate there).
    pub(super) fn open_inner(
        mut dev: Box<dyn Device>,
        mode: OpenMode,
        clock: Arc<dyn Clock>,
        on_label: &mut dyn FnMut(&Label) -> Result<()>,
    ) -> Result<Pool> {
        let first_region = read_region(dev.as_ref(), 0, dev.len())?;
        if dev.len() < MIN_DEVICE_BYTES && !holds_pool(dev.as_ref())? {
            // Too small to have been formatted: say what it is not, rather than that
            // it is too small, which reads as advice to make it bigger.
            return Err(Error::NotSnapfs {
                device: dev.name().to_string(),
                found: format!(
                    "at {} it is smaller than any pool, which needs at least {}",
                    human_bytes(dev.len()),
                    human_bytes(MIN_DEVICE_BYTES)
                ),
            });
        }
        let found = find_label(dev.as_ref(), &first_region)?;
        let label = found.label;
        dev.lock_pool(&label.pool_guid, mode)?;
        on_label(&label)?;
        let mut warnings: Vec<OpenWarning> = found.warning.into_iter().collect();
        if label.device_bytes % BLOCK_BYTES != 0 || label.device_bytes < MIN_DEVICE_BYTES {
            // Checksummed, so written this way: region 1's place cannot be computed from it.
            return Err(Error::corrupt(format!(
                "the label says the pool spans {} bytes, which is not a whole number of blocks of at least {}",
                label.device_bytes, MIN_DEVICE_BYTES
            )));
        }
        if dev.len() < label.device_bytes {
            // The tail is gone: what lies before it may still be read and exported.
            let shrunk = Shrunk::new(dev.name(), dev.len(), label.device_bytes);
            if mode == OpenMode::Write {
                return Err(Error::Device(DeviceError::ShrunkWrite(shrunk)));
            }
            warnings.push(OpenWarning::Shrunk(shrunk));
        }
        if mode == OpenMode::Write {
            if let Some(why) = label.read_only_reason() {
                return Err(Error::Unsupported { what: why });
            }
            if let Some(previous_end) = found.unfinished_expand {
                // Before anything is allocated over the previous end label, which marks
                // the first label's damage as the expand's (labels.rs).
                warnings.push(super::resize::finish_expand(dev.as_mut(), &label, previous_end)?);
            }
            super::features::finish_feature_rewrite(dev.as_mut(), &label)?;
        }
        let commits = read_commits(dev.as_ref(), &label, first_region)?;
        if commits.is_empty() {
            return Err(Error::corrupt("no valid commit record in either label region"));
        }
        let usable_start = REGION_BLOCKS;
        let usable_end = region_start(1, label.device_bytes);
        let mut store = Store::new(dev, Allocator::new(usable_start, usable_end), Txg(0), Codec::Off);
        store.ditto_metadata = label.has_ditto_metadata();
        let mut last_error: Option<Error> = None;
        for (skipped, commit) in commits.iter().enumerate() {
            match load_root(&mut store, commit) {
                Ok(root) => {
                    if let Some(e) = last_error {
                        warnings.push(OpenWarning::NewestCommitsUnreadable {
                            skipped,
                            cause: e.to_string(),
                            opened_txg: commit.txg.0,
                        });
                    }
                    return Pool::assemble(store, label, commit.clone(), root, mode, warnings, clock);
                }
                // A root in the cut-off tail of a shrunk device is not a torn commit:
                // an older commit would show an older state as if it were the pool's.
                Err(e @ Error::Device(DeviceError::ShrunkRead { .. })) => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::corrupt("no readable commit")))
    }

    fn assemble(
        mut store: Store,
        label: Label,
        commit: CommitRecord,
        root: PoolRoot,
        mode: OpenMode,
        warnings: Vec<OpenWarning>,
        clock: Arc<dyn Clock>,
    ) -> Result<Pool> {
        let space_log_head = replay_space_log(&mut store, &root, &commit)?;
        store.txg = Txg(root.txg.0 + 1);
        store.compression = root.config.compression;
        let mut pool = Pool::handle(store, label, root, commit, mode, warnings, clock);
        pool.space_log_head = space_log_head;
        // No table is loaded: a command reads only the entries it needs (trees.rs,
        // mod.rs, history.rs).
        if pool.tree_entry(LIVE_TREE_ID)?.is_none() {
            return Err(Error::corrupt("the pool has no live tree"));
        }
        Ok(pool)
    }

    /// A handle on a pool whose tables are not loaded yet.
    fn handle(
        store: Store,
        label: Label,
        root: PoolRoot,
        commit: CommitRecord,
        mode: OpenMode,
        warnings: Vec<OpenWarning>,
        clock: Arc<dyn Clock>,
    ) -> Pool {
        Pool {
            trees_table: Tree::open(TreeKind::Trees, Owner::Meta, root.trees),
            snapshots_table: Tree::open(TreeKind::Snapshots, Owner::Meta, root.snapshots),
            history_table: Tree::open(TreeKind::History, Owner::Meta, root.history),
            dead_table: Tree::open(TreeKind::Dead, Owner::Meta, root.dead),
            snapshot_index: Tree::open(TreeKind::SnapshotIndex, Owner::Meta, root.snapshot_index.root()),
            bookmarks_table: Tree::open(TreeKind::Bookmarks, Owner::Meta, root.bookmarks),
            store,
            label,
            root,
            commit,
            mode,
            warnings,
            tree_entries: BTreeMap::new(),
            trees_loaded: false,
            tree_index: None,
            heads: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            snapshots_loaded: false,
            snapshot_txgs: BTreeMap::new(),
            pending_snapshots: Vec::new(),
            removed_snapshots: Vec::new(),
            released_history: Vec::new(),
            released_snapshots: Vec::new(),
            prune_pending: false,
            count_restarts: BTreeMap::new(),
            destroyed_trees: Vec::new(),
            history_changed: Default::default(),
            config_changed: false,
            poisoned: false,
            space_log_head: None,
            pin_side: Default::default(),
            commit_pins: Vec::new(),
            pins_seen: None,
            clock,
        }
    }
}

/// Valid commit records, newest first. `first_region` is region 0, already read for the
/// label. Every commit goes to both rings, and region 1's copy is written after region
/// 0's, so region 1 can only hold a newer record than region 0 where region 0's copy was
/// damaged: the next slots after region 0's newest. Reading just those keeps an open from
/// reading 256 KiB at the end of a cold device; region 1 is read whole when region 0
/// shows nothing.
fn read_commits(dev: &dyn Device, label: &Label, first_region: Vec<u8>) -> Result<Vec<CommitRecord>> {
    let mut commits = ring_records(&first_region, label)?;
    let region_1 = region_start(1, label.device_bytes);
    match commits.iter().map(|c| c.txg.0).max() {
        Some(newest) => {
            // The slots after the newest, in one read unless the ring wraps between them.
            let first_slot = (newest + 1) % RING_SLOTS;
            let contiguous = first_slot + LOOKAHEAD_SLOTS <= RING_SLOTS;
            // Slots past the end of a shrunk device read as empty.
            let ahead =
                if contiguous { read_blocks(dev, region_1 + 1 + first_slot, LOOKAHEAD_SLOTS)? } else { Vec::new() };
            for (i, txg) in (newest + 1..=newest + LOOKAHEAD_SLOTS).enumerate() {
                let slot = if contiguous {
                    ahead[i * BLOCK_BYTES as usize..(i + 1) * BLOCK_BYTES as usize].to_vec()
                } else {
                    read_blocks(dev, region_1 + 1 + txg % RING_SLOTS, 1)?
                };
                if let Some(c) = CommitRecord::decode(&slot, &label.pool_guid)? {
                    if c.txg.0 == txg {
                        commits.push(c);
                    }
                }
            }
        }
        None => commits.extend(ring_records(&read_region(dev, 1, label.device_bytes)?, label)?),
    }
    commits.sort_by_key(|c| std::cmp::Reverse(c.txg));
    commits.dedup_by(|a, b| a.txg == b.txg);
    Ok(commits)
}

/// Region 1 slots read past region 0's newest commit.
const LOOKAHEAD_SLOTS: u64 = 2;

fn ring_records(region: &[u8], label: &Label) -> Result<Vec<CommitRecord>> {
    let mut out = Vec::new();
    for slot in 0..RING_SLOTS as usize {
        let offset = (slot + 1) * BLOCK_BYTES as usize;
        if let Some(c) = CommitRecord::decode(&region[offset..offset + BLOCK_BYTES as usize], &label.pool_guid)? {
            out.push(c);
        }
    }
    Ok(out)
}

fn load_root(store: &mut Store, commit: &CommitRecord) -> Result<PoolRoot> {
    if commit.root.kind != BlockKind::PoolRoot {
        return Err(Error::corrupt("commit record does not point to a pool root"));
    }
    let bytes = store.read_block(&commit.root)?;
    let root = PoolRoot::decode(&bytes)?;
    if root.txg != commit.txg || root.pool_guid != commit.pool_guid {
        return Err(Error::corrupt(format!(
            "pool root of txg {} found where the commit record of txg {} points",
            root.txg.0, commit.txg.0
        )));
    }
    Ok(root)
}

/// Rebuilds the free-space set: replays the space log from its oldest block, then marks
/// the implicit blocks (the pool root and the log chain itself) allocated.
/// Returns the newest block of the chain, which the next commit may extend.
fn replay_space_log(
    store: &mut Store,
    root: &PoolRoot,
    commit: &CommitRecord,
) -> Result<Option<(BlockPtr, SpaceLogBlock)>> {
    let mut chain = Vec::new();
    let mut next = root.space_log;
    while let Some(ptr) = next {
        if ptr.kind != BlockKind::SpaceLog {
            return Err(Error::corrupt("space log chain reaches a block that is not a space log block"));
        }
        if chain.len() as u64 >= SPACE_LOG_BLOCKS_MAX {
            return Err(Error::corrupt("space log chain is longer than any pool can have"));
        }
        let block = SpaceLogBlock::decode(&store.read_block(&ptr)?)?;
        next = block.prev;
        chain.push((ptr, block));
    }
    if chain.len() as u64 != root.space_log_blocks {
        return Err(Error::corrupt(format!(
            "space log chain has {} blocks; the pool root says {}",
            chain.len(),
            root.space_log_blocks
        )));
    }
    let (start, end) = (store.alloc.usable_start, store.alloc.usable_end);
    let blocks = chain.iter().rev().map(|(_, block)| block);
    let free = free_after(blocks, start, end)?;
    let alloc = &mut store.alloc;
    alloc.free = free;
    let implicit = chain.iter().map(|(p, _)| p).chain(std::iter::once(&commit.root));
    for ptr in implicit {
        for (start, blocks) in ptr.extents() {
            if !alloc.free.remove(start, blocks) || !alloc.implicit_live.insert(start, blocks) {
                return Err(Error::corrupt(format!(
                    "{} block {start} is also listed as allocated in the space log",
                    ptr.kind.name(),
                )));
            }
        }
    }
    Ok(chain.into_iter().next())
}

/// Lays a new, empty pool onto the device: labels, an empty live tree, one commit. Its
/// guid and times come from the host (clock.rs).
pub fn format_pool(dev: Box<dyn Device>, options: &FormatOptions) -> Result<Pool> {
    format_pool_with_clock(dev, options, system_clock())
}

/// `format_pool`, with the pool's guid, creation time and every later time and guid of
/// the returned handle from `clock`.
pub fn format_pool_with_clock(dev: Box<dyn Device>, options: &FormatOptions, clock: Arc<dyn Clock>) -> Result<Pool> {
    check_size(dev.as_ref())?;
    let mut dev = dev;
    // Formatting over a pool that a writer holds under a name the storage lock cannot
    // see would pull it from under that writer: its id's lock says so.
    if let Ok(Some(old)) = Label::decode(&read_region(dev.as_ref(), 0, dev.len())?[..BLOCK_BYTES as usize]) {
        dev.lock_pool(&old.pool_guid, OpenMode::Write)?;
        // Readers take no lock; what they pinned would be overwritten under them.
        let pins = crate::device::pins::PinRegistry::of_pool(&old.pool_guid).pins_now()?;
        if let Some(pin) = pins.first() {
            let holder = format!("{}, which is reading the pool", pin.holder());
            return Err(Error::InUse { device: dev.name().to_string(), holder });
        }
    }
    if !options.force {
        refuse_if_in_use(dev.as_ref())?;
    }
    let device_bytes = dev.len() / BLOCK_BYTES * BLOCK_BYTES;
    let pool_guid = clock.guid();
    let created_ns = clock.now_ns();
    let zeros = vec![0u8; (REGION_BLOCKS * BLOCK_BYTES) as usize];
    for index in 0..2u32 {
        let label = Label {
            version: FORMAT_VERSION,
            index,
            features_incompat: crate::format::label::FEATURE_RECORD_OVERLAYS
                | crate::format::label::FEATURE_SPACE_COUNTERS
                | crate::format::label::FEATURE_HISTORY_BY_TREE
                | crate::format::label::FEATURE_HISTORY_COUNTS
                | lz4_feature(options.config.compression),
            features_ro_compat: crate::format::label::FEATURE_DITTO_METADATA,
            features_compat: 0,
            pool_guid,
            device_bytes,
            created_ns,
        };
        let offset = region_start(index, device_bytes) * BLOCK_BYTES;
        dev.write_at(offset, &zeros)?;
        dev.write_at(offset, &label.encode())?;
    }
    dev.flush()?;
    let label = Label::decode(&read_region(dev.as_ref(), 0, device_bytes)?[..BLOCK_BYTES as usize])?
        .ok_or_else(|| Error::corrupt("the label just written does not read back"))?;
    let usable_start = REGION_BLOCKS;
    let usable_end = region_start(1, device_bytes);
    let mut alloc = Allocator::new(usable_start, usable_end);
    alloc.free.insert(usable_start, usable_end - usable_start);
    let mut store = Store::new(dev, alloc, Txg(1), options.config.compression);
    store.txg = Txg(1);
    store.ditto_metadata = label.has_ditto_metadata();
    let root = PoolRoot {
        txg: Txg(0),
        time_ns: created_ns,
        pool_guid,
        trees: None,
        snapshots: None,
        history: None,
        dead: None,
        space_log: None,
        space_log_blocks: 0,
        space_base_blocks: 0,
        next_tree_id: LIVE_TREE_ID + 1,
        dead_bytes: 0,
        config: options.config.clone(),
        receive: None,
        // Built by the first commit that changes the snapshots table: a pool that never
        // has a snapshot stays readable by older binaries.
        snapshot_index: SnapshotIndexRoot::Absent,
        bookmarks: None,
        // An empty dead index: nothing held by the history alone.
        history_only_bytes: Some(0),
    };
    let commit = CommitRecord { txg: Txg(0), time_ns: created_ns, pool_guid, root: placeholder_ptr() };
    let mut pool = Pool::handle(store, label, root, commit, OpenMode::Write, Vec::new(), clock);
    pool.config_changed = true;
    pool.put_tree(TreeEntry {
        id: LIVE_TREE_ID,
        name: LIVE_TREE_NAME.to_string(),
        root: None,
        created_txg: Txg(1),
        origin: None,
        referenced_bytes: 0,
    })?;
    pool.live(LIVE_TREE_ID)?.init_root(created_ns)?;
    pool.commit()?;
    Ok(pool)
}

/// A stand-in for the commit record before the first commit: never read or freed.
fn placeholder_ptr() -> crate::block::BlockPtr {
    crate::block::BlockPtr {
        addr: crate::block::BlockAddr(0),
        ditto: crate::block::BlockAddr(0),
        birth: Txg(0),
        stored_bytes: 0,
        logical_bytes: 0,
        kind: BlockKind::PoolRoot,
        compression: crate::block::Compression::None,
        level: 0,
        checksum: [0; 32],
    }
}

fn refuse_if_in_use(dev: &dyn Device) -> Result<()> {
    // Any copy of a label, even a damaged one, or one where a grown device's pool ends.
    if holds_pool(dev)? {
        return Err(Error::Refused(Refusal::FormatOverPool { device: dev.name().to_string() }));
    }
    if let Some(name) = foreign_signature(dev) {
        return Err(Error::Refused(Refusal::FormatOverForeign {
            device: dev.name().to_string(),
            found: name.to_string(),
        }));
    }
    Ok(())
}
