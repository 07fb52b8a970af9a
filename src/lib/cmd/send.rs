//! `send`: which parts a run sends and their exact sizes (what a dry run reports), then
//! the stream itself, written to whatever the front end gives (snapsend: standard
//! output) while it shows the progress as it likes.

use crate::error::{Error, Result};
use crate::pool::{LIVE_TREE_ID, Pool};
use crate::stream::framing::{Progress, StreamWriter};
use crate::stream::send::{Part, PartSizes, part_sizes, plan, plan_resume, send as send_parts};
use crate::stream::token::ResumeToken;
use std::io::Write;

/// What a run sends.
pub enum Source {
    /// Snapshot `target` whole, or what changed since `base` (with every snapshot between
    /// them, each its own part, if `intermediates`).
    Snapshot { target: String, base: Option<String>, intermediates: bool },
    /// The rest of the part whose receive broke and saved this token.
    Resume(ResumeToken),
}

/// The parts of a run, each with its exact size, from metadata alone.
pub struct Plan {
    parts: Vec<Part>,
    sizes: PartSizes,
}

impl Plan {
    /// Each part with its size in bytes, in the order they are sent.
    pub fn parts(&self) -> impl Iterator<Item = (&Part, u64)> {
        self.parts.iter().zip(self.sizes.bytes.iter().copied())
    }

    pub fn total_bytes(&self) -> u64 {
        self.sizes.bytes.iter().sum()
    }
}

/// Resolves what to send into parts and sizes them.
pub fn plan_run(pool: &mut Pool, source: &Source) -> Result<Plan> {
    let parts = match source {
        Source::Resume(token) => vec![plan_resume(pool, LIVE_TREE_ID, token)?],
        Source::Snapshot { target, base, intermediates } => {
            plan(pool, LIVE_TREE_ID, base.as_deref(), target, *intermediates)?
        }
    };
    let sizes = part_sizes(pool, &parts)?;
    Ok(Plan { parts, sizes })
}

/// A run sent whole.
pub struct Sent {
    pub parts: usize,
    /// The stream's bytes, and the file data it carried.
    pub bytes: u64,
    pub data_bytes: u64,
}

/// A run that failed part way: the error, and how many bytes went out before it (a
/// receiver that saves partial receives has the whole parts and some records of these).
pub struct Unfinished {
    pub error: Error,
    pub written_bytes: u64,
}

/// Writes the stream of a plan to `out`, telling `progress` of every byte.
pub fn send(
    pool: &mut Pool,
    plan: Plan,
    out: &mut dyn Write,
    progress: &mut dyn Progress,
) -> std::result::Result<Sent, Unfinished> {
    // Smaller than a data record: whole records bypass the buffer, small ones gather.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    let mut writer = StreamWriter::new(&mut out, Some(progress));
    match send_parts(pool, &plan.parts, Some(plan.sizes), &mut writer) {
        Ok(summary) => Ok(Sent { parts: plan.parts.len(), bytes: summary.bytes, data_bytes: summary.data_bytes }),
        Err(error) => Err(Unfinished { error, written_bytes: writer.total_bytes }),
    }
}
