//! `set`: change a property of the pool for new writes (compression), as `zfs set` does.
//! What is stored stays as it is; the change is one commit.

use crate::block::Txg;
use crate::compress::Codec;
use crate::error::Result;
use crate::pool::Pool;

/// What `set` changed.
#[derive(Clone, Debug)]
pub struct Changed {
    pub compression: Codec,
    /// The commit that holds the change.
    pub txg: Txg,
}

/// Compresses new file data with `codec` from now on (choosing lz4 turns on its pool
/// feature with the same commit).
pub fn set_compression(pool: &mut Pool, codec: Codec) -> Result<Changed> {
    pool.set_compression(codec)?;
    pool.commit()?;
    Ok(Changed { compression: codec, txg: pool.txg() })
}
