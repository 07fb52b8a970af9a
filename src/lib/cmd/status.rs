//! `status`: the pool's size, use, compression, last commit, history and any saved
//! partial receive, as one report.

use crate::block::BLOCK_BYTES;
use crate::error::Result;
use crate::pool::{LIVE_TREE_ID, Pool, guid_hex};
use crate::stream::receive::state_token;
use crate::utc::format_time_ns;
use serde::{Serialize, Serializer};

/// The pool's status. Fields in the order `snapctl status --json` has always written
/// them (alphabetical); scripts read them by these names. Times are UTC text.
#[derive(Clone, Debug, Serialize)]
pub struct PoolStatus {
    /// The clones and trees besides the live tree, by name, and the live tree too once a
    /// promote made it a clone.
    pub clones: Vec<Clone>,
    /// How new file data is compressed: "off", "lz4" or "zstd:N".
    pub compression: String,
    /// Its zstd level; 0 when it is not zstd.
    pub compression_level: u8,
    /// Logical / stored bytes of the live tree (1 when it stores nothing); the JSON
    /// rounds it to two decimals.
    #[serde(serialize_with = "two_decimals")]
    pub compression_ratio: f64,
    /// Bytes of the data area (the device less labels and metadata regions).
    pub data_bytes: u64,
    /// The device as the caller named it.
    pub device: String,
    pub device_bytes: u64,
    /// Whole blocks the device has beyond the pool, which expanding would add.
    #[serde(skip)]
    pub device_grown_bytes: u64,
    /// Subset snapshots whose files are still being extracted (by a running command, or
    /// stopped by a kill or a crash: `snapctl extract` finishes them), as @NAME
    /// (CLONE@NAME for a clone's).
    pub extracting: Vec<String>,
    pub features: Vec<String>,
    pub format_version: u32,
    pub free_bytes: u64,
    /// Blocks the heads no longer reach that only retained commits keep.
    pub held_by_history_only_bytes: u64,
    pub held_by_snapshots_and_history_bytes: u64,
    /// Blocks the heads no longer reach that a snapshot keeps (retained commits may see
    /// them too).
    pub held_by_snapshots_bytes: u64,
    pub history_commits: usize,
    pub history_oldest: Option<String>,
    pub history_oldest_txg: Option<u64>,
    pub history_reserve_percent: u8,
    pub history_seconds: u64,
    /// The most the history may hold alone, as a share of the data area (0: no cap).
    pub history_space_percent: u8,
    pub last_commit: String,
    pub last_txg: u64,
    pub live_files: u64,
    pub live_logical_bytes: u64,
    /// Blocks of the live tree's file records stored compressed and raw (computed from
    /// the tree, so exact for what is stored whoever wrote it).
    pub live_records_compressed: u64,
    pub live_records_raw: u64,
    /// Bytes of every block the live tree reaches: its nodes and file data.
    pub live_referenced_bytes: u64,
    pub live_stored_bytes: u64,
    pub partial_receive: Option<PartialReceive>,
    pub pool_guid: String,
    /// The rest of `used_bytes`: the pool's own tables, space log and root, and a
    /// saved partial receive. used = live referenced + held by snapshots and history
    /// + this, byte for byte.
    pub pool_metadata_bytes: u64,
    /// Other processes reading the pool now (snapsend, cat...), and what each pins.
    pub readers: Vec<Reader>,
    /// The token that resumes the partial receive.
    pub receive_resume_token: Option<String>,
    pub snapshots: usize,
    pub used_bytes: u64,
}

/// A clone, or a tree a full stream made (pool/clones.rs).
#[derive(Clone, Debug, Serialize)]
pub struct Clone {
    pub name: String,
    /// The snapshot it was made from ("@snap", or "tree@snap" for a clone's); None for a
    /// tree of its own.
    pub origin: Option<String>,
    pub referenced_bytes: u64,
}

/// A process reading the pool, which writers let be (pool/pins.rs).
#[derive(Clone, Debug, Serialize)]
pub struct Reader {
    /// Its command line.
    pub command: String,
    pub pid: u32,
    /// What it pins: "@name" for a snapshot, "commit N" for the live tree as commit N
    /// left it.
    pub pins: Vec<String>,
}

/// A receive cut short and saved, to be resumed or discarded.
#[derive(Clone, Debug, Serialize)]
pub struct PartialReceive {
    /// The snapshot an incremental stream starts from.
    pub base: Option<String>,
    pub records_applied: u64,
    pub saved: String,
    /// The snapshot being received.
    pub snapshot: String,
    pub stream_bytes_applied: u64,
}

fn readers(pool: &mut Pool) -> Result<Vec<Reader>> {
    let snapshots = pool.snapshots_of(LIVE_TREE_ID)?;
    let name_of = |(tree, txg): (u64, u64)| {
        if tree == crate::pool::WHOLE_COMMIT {
            return vec![format!("all of commit {txg}")];
        }
        let names: Vec<String> =
            snapshots.iter().filter(|s| s.tree == tree && s.txg.0 == txg).map(|s| format!("@{}", s.name)).collect();
        if names.is_empty() { vec![format!("commit {txg}")] } else { names }
    };
    Ok(pool
        .readers_now()?
        .into_iter()
        .map(|r| Reader { command: r.reader, pid: r.pid, pins: r.pins.into_iter().flat_map(name_of).collect() })
        .collect())
}

fn clones(pool: &mut Pool) -> Result<Vec<Clone>> {
    let trees: Vec<_> = pool.trees()?.filter(|t| t.id != LIVE_TREE_ID || t.origin.is_some()).cloned().collect();
    let mut out = Vec::new();
    for tree in trees {
        let origin = match tree.origin {
            None => None,
            Some((origin_tree, txg)) => {
                let prefix = match origin_tree {
                    LIVE_TREE_ID => String::new(),
                    other => pool.tree_name(other)?,
                };
                let names = pool.snapshots_of(origin_tree)?.into_iter().filter(|s| s.txg == txg).map(|s| s.name);
                names.min().map(|name| format!("{prefix}@{name}"))
            }
        };
        let referenced_bytes = pool.head_referenced(tree.id)?;
        out.push(Clone { name: tree.name, origin, referenced_bytes });
    }
    Ok(out)
}

fn two_decimals<S: Serializer>(ratio: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((ratio * 100.0).round() / 100.0)
}

/// The status of the pool open on `device` (the name is only repeated in the report).
/// The subset snapshots being extracted, named as `list` names them.
fn extracting(pool: &mut Pool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in pool.extracting_snapshots()? {
        names.push(match entry.tree {
            LIVE_TREE_ID => format!("@{}", entry.name),
            tree => format!("{}@{}", pool.tree_name(tree)?, entry.name),
        });
    }
    Ok(names)
}

pub fn status(pool: &mut Pool, device: &str) -> Result<PoolStatus> {
    let usage = pool.tree_usage(LIVE_TREE_ID)?;
    let history_bytes = pool.history_held_bytes()?;
    let trees: Vec<u64> = pool.trees()?.map(|t| t.id).collect();
    let mut live_referenced = 0;
    for tree in trees {
        live_referenced += pool.head_referenced(tree)?;
    }
    let (used, dead) = (pool.used_bytes(), pool.root.dead_bytes);
    let ratio = if usage.stored_bytes > 0 { usage.logical_bytes as f64 / usage.stored_bytes as f64 } else { 1.0 };
    let history = pool.history()?;
    let oldest = history.first().copied();
    let config = pool.root.config.clone();
    let partial = pool.receive_state()?;
    Ok(PoolStatus {
        clones: clones(pool)?,
        compression: config.compression.name(),
        compression_level: match config.compression {
            crate::compress::Codec::Zstd { level } => level,
            _ => 0,
        },
        compression_ratio: ratio,
        data_bytes: pool.store.alloc.usable_blocks() * BLOCK_BYTES,
        device: device.to_string(),
        device_bytes: pool.label.device_bytes,
        device_grown_bytes: pool.store.dev.len().saturating_sub(pool.label.device_bytes) / BLOCK_BYTES * BLOCK_BYTES,
        extracting: extracting(pool)?,
        features: pool.label.feature_names(),
        format_version: pool.label.version,
        free_bytes: pool.free_bytes(),
        held_by_history_only_bytes: history_bytes,
        held_by_snapshots_and_history_bytes: dead,
        held_by_snapshots_bytes: dead.saturating_sub(history_bytes),
        history_commits: history.len(),
        history_oldest: oldest.map(|(_, time)| format_time_ns(time)),
        history_oldest_txg: oldest.map(|(t, _)| t.0),
        history_reserve_percent: config.history_reserve_percent,
        history_seconds: config.history_seconds,
        history_space_percent: config.history_space_percent,
        last_commit: format_time_ns(pool.commit.time_ns),
        last_txg: pool.txg().0,
        live_files: usage.files,
        live_logical_bytes: usage.logical_bytes,
        live_records_compressed: usage.compressed_blocks,
        live_records_raw: usage.raw_blocks,
        live_referenced_bytes: live_referenced,
        live_stored_bytes: usage.stored_bytes,
        receive_resume_token: partial.as_ref().map(state_token),
        partial_receive: partial.map(|p| PartialReceive {
            base: (!p.base_name.is_empty()).then_some(p.base_name),
            records_applied: p.records_applied,
            saved: format_time_ns(p.saved_ns),
            snapshot: p.snapshot_name,
            stream_bytes_applied: p.bytes_applied,
        }),
        pool_guid: guid_hex(&pool.label.pool_guid),
        pool_metadata_bytes: used.saturating_sub(live_referenced + dead),
        readers: readers(pool)?,
        snapshots: pool.snapshots_of(LIVE_TREE_ID)?.len(),
        used_bytes: used,
    })
}
