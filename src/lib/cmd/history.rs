//! The retained commits: change how long they are kept, release them, list them.

use crate::error::Result;
use crate::pool::Pool;
use crate::utc::format_time_ns;
use serde::Serialize;

/// What `history` changes before it lists; nothing by default (then it only reads).
#[derive(Clone, Copy, Debug, Default)]
pub struct Change {
    /// Keep commits this many seconds from now on.
    pub keep_seconds: Option<u64>,
    /// Release every retained commit; only this command's commit remains.
    pub prune: bool,
}

impl Change {
    /// Whether the pool must be open for writing.
    pub fn writes(&self) -> bool {
        self.keep_seconds.is_some() || self.prune
    }
}

/// The retained commits after the change. Fields in the order `snapctl history --json`
/// writes them.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    /// What the change's commit released (not in the JSON, which lists what remains).
    #[serde(skip)]
    pub released_bytes: u64,
    pub keep_seconds: u64,
    /// The most the history may hold alone, as a share of the data area (0: no cap).
    pub space_percent: u8,
    /// What the retained commits alone keep: what releasing them all would free.
    pub held_by_history_only_bytes: u64,
    pub commits: Vec<Retained>,
}

/// One retained commit.
#[derive(Clone, Debug, Serialize)]
pub struct Retained {
    pub txg: u64,
    /// Commit time, UTC, as text.
    pub time: String,
    pub time_unix_ns: u64,
}

/// Applies `change` (one commit, if it changes anything) and lists what is retained.
pub fn history(pool: &mut Pool, change: Change) -> Result<History> {
    if let Some(seconds) = change.keep_seconds {
        pool.set_history_seconds(seconds)?;
    }
    if change.prune {
        pool.prune_history()?;
    }
    let released_bytes = if change.writes() { pool.commit()?.freed_bytes } else { 0 };
    let commits = pool
        .history()?
        .into_iter()
        .map(|(t, ns)| Retained { txg: t.0, time: format_time_ns(ns), time_unix_ns: ns })
        .collect();
    Ok(History {
        released_bytes,
        keep_seconds: pool.root.config.history_seconds,
        space_percent: pool.root.config.history_space_percent,
        held_by_history_only_bytes: pool.history_held_bytes()?,
        commits,
    })
}
