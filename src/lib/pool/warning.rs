//! What the operator should know about how a pool was opened: damage worked around, a
//! device that shrank, an expand finished. Facts only; the front end adds what to do
//! (`cli::hint::warning_advice`).

use crate::error::Shrunk;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenWarning {
    /// The label at the device's start is unusable (`why`); the pool opened from the copy
    /// `at` ("at its end", or where a grown device's pool ends).
    LabelCopyUsed { why: String, at: String },
    /// The device is shorter than the pool: opened read-only.
    Shrunk(Shrunk),
    /// An expand cut short was finished at open: the pool spans `pool_bytes` (it was
    /// `old_bytes`).
    ExpandFinished { pool_bytes: u64, old_bytes: u64 },
    /// The newest `skipped` commits are unreadable (`cause`); the pool opened at
    /// `opened_txg`, which may be damaged too unless it is the one just before.
    NewestCommitsUnreadable { skipped: usize, cause: String, opened_txg: u64 },
}

impl fmt::Display for OpenWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenWarning::LabelCopyUsed { why, at } => {
                write!(f, "the label at the start of the device is unusable ({why}); opened from the copy {at}")
            }
            OpenWarning::Shrunk(shrunk) => write!(
                f,
                "{shrunk}; opened read-only so that files can be exported (blocks in the missing part cannot be read)"
            ),
            OpenWarning::ExpandFinished { pool_bytes, old_bytes } => write!(
                f,
                "an earlier expand was cut short; finished it: the pool spans {pool_bytes} bytes (it was {old_bytes})"
            ),
            OpenWarning::NewestCommitsUnreadable { skipped, cause, opened_txg } => write!(
                f,
                "the newest {skipped} commit(s) are unreadable ({cause}); opened txg {opened_txg}, which may itself \
                 be damaged if it is not the one just before"
            ),
        }
    }
}
