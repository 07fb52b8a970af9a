//! `set`: change a property of the pool from now on, as `zfs set` does: how new data is
//! compressed, how long commits are retained, how much space the history may hold. What
//! is stored stays as it is; the change is one commit (which applies the new history
//! settings at once: commits they no longer retain go with it).

use crate::block::Txg;
use crate::compress::Codec;
use crate::error::Result;
use crate::pool::Pool;

/// A property and its new value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    /// `compression=`: new file data (choosing lz4 turns on its pool feature).
    Compression(Codec),
    /// `history=`: commits younger than this are retained.
    History { seconds: u64 },
    /// `history-space=`: the history may hold at most this share of the data area in
    /// blocks nothing else keeps (0: no cap).
    HistorySpace { percent: u8 },
}

/// What `set` changed.
#[derive(Clone, Debug)]
pub struct Changed {
    pub property: Property,
    /// The commit that holds the change.
    pub txg: Txg,
    /// What the commit freed: commits the new history settings no longer retain.
    pub freed_bytes: u64,
    /// What the history alone holds after it, in bytes, when a cap is set.
    pub history_only_bytes: Option<u64>,
    /// The cap, in bytes, when one is set.
    pub cap_bytes: Option<u64>,
}

/// Sets `property` and commits.
pub fn set(pool: &mut Pool, property: Property) -> Result<Changed> {
    match property {
        Property::Compression(codec) => pool.set_compression(codec)?,
        Property::History { seconds } => pool.set_history_seconds(seconds)?,
        Property::HistorySpace { percent } => pool.set_history_space_percent(percent)?,
    }
    let freed_bytes = pool.commit()?.freed_bytes;
    let cap_bytes = pool.history_space_cap_bytes();
    let history_only_bytes = match cap_bytes {
        Some(_) => Some(pool.history_held_bytes()?),
        None => None,
    };
    Ok(Changed { property, txg: pool.txg(), freed_bytes, history_only_bytes, cap_bytes })
}
