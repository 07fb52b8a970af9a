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
    /// Snapshot `target` of tree `tree` (a clone's name; None for the live tree) whole,
    /// or what changed since `base` of the same tree (with every snapshot between them,
    /// each its own part, if `intermediates`).
    Snapshot { tree: Option<String>, target: String, base: Option<String>, intermediates: bool },
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
        Source::Resume(token) => {
            // The token names its snapshots by guid: the tree is the one that has it.
            let trees: Vec<u64> = pool.trees()?.map(|t| t.id).collect();
            let mut tree = LIVE_TREE_ID;
            for id in trees {
                if pool.snapshot_by_guid(id, &token.snapshot_guid)?.is_some() {
                    tree = id;
                }
            }
            vec![plan_resume(pool, tree, token)?]
        }
        Source::Snapshot { tree, target, base, intermediates } => {
            let tree = match tree {
                Some(name) => pool.tree_id(name)?,
                None => LIVE_TREE_ID,
            };
            plan(pool, tree, base.as_deref(), target, *intermediates)?
        }
    };
    let sizes = part_sizes(pool, &parts)?;
    // Sending reads only the trees of these snapshots: writers commit meanwhile.
    let checkpoints: Vec<(u64, crate::block::Txg)> =
        // A bookmark's snapshot may be gone: its part reads the target's tree alone.
        parts
            .iter()
            .flat_map(|p| p.base.iter().filter(|_| p.bookmark.is_none()).chain([&p.target]))
            .map(|s| (s.tree, s.txg))
            .collect();
    pool.pin_for_reading(&checkpoints)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::snapshot::snapshot;
    use crate::cmd::tree::{PutSource, put};
    use crate::device::MemoryDevice;
    use crate::pool::{FormatOptions, format_pool};

    /// Counts what the stream writer reports.
    #[derive(Default)]
    struct Counted(u64);

    impl Progress for Counted {
        fn advance(&mut self, bytes: u64) {
            self.0 += bytes;
        }
    }

    /// Takes `room` bytes, then fails as a closed pipe does.
    struct ClosesAfter {
        room: usize,
        taken: Vec<u8>,
    }

    impl Write for ClosesAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.taken.len() >= self.room {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room - self.taken.len());
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A pool with @a, @b and @c, each after a file of 100 KB more.
    fn pool() -> Pool {
        let mut pool = format_pool(Box::new(MemoryDevice::new(64 << 20)), &FormatOptions::default()).unwrap();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let data: Vec<u8> = (0..100_000u32).map(|n| ((n * 31 + i as u32) ^ (n >> 7)) as u8).collect();
            put(&mut pool, LIVE_TREE_ID, PutSource::Stream(&mut &data[..]), name, None).unwrap();
            snapshot(&mut pool, LIVE_TREE_ID, name).unwrap();
        }
        pool
    }

    fn from(base: Option<&str>, target: &str, intermediates: bool) -> Source {
        Source::Snapshot { tree: None, target: target.into(), base: base.map(String::from), intermediates }
    }

    /// Goal: what a plan promises (parts and sizes, which snapsend -n -P prints) is what
    /// the send writes, and a send that fails part way says how far it got. Method: full,
    /// incremental and intermediate runs of a pool in memory planned, then sent into a
    /// vector and into a writer that closes after a few bytes.
    #[test]
    fn a_plan_sizes_exactly_what_the_send_writes() {
        let mut pool = pool();
        for (source, parts) in
            [(from(None, "c", false), 1), (from(Some("a"), "c", false), 1), (from(Some("a"), "c", true), 2)]
        {
            let plan = plan_run(&mut pool, &source).unwrap();
            assert_eq!(plan.parts().count(), parts);
            let total = plan.total_bytes();
            assert_eq!(total, plan.parts().map(|(_, bytes)| bytes).sum::<u64>());
            let (mut out, mut counted) = (Vec::new(), Counted::default());
            let sent = send(&mut pool, plan, &mut out, &mut counted).unwrap_or_else(|u| panic!("{}", u.error));
            assert_eq!((sent.parts, sent.bytes, counted.0, out.len() as u64), (parts, total, total, total));
        }
        let full = plan_run(&mut pool, &from(None, "c", false)).unwrap().total_bytes();
        assert!(full > 300_000, "the three files' data: {full}");

        for room in [0, 100, 200_000] {
            let plan = plan_run(&mut pool, &from(None, "c", false)).unwrap();
            let mut out = ClosesAfter { room, taken: Vec::new() };
            let Err(unfinished) = send(&mut pool, plan, &mut out, &mut Counted::default()) else {
                panic!("a send into {room} bytes succeeded");
            };
            assert!(
                matches!(&unfinished.error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
            );
            // Whole records handed on: at most a buffer more than the reader took, at most
            // a record (a part of which it may have taken) less.
            let written = unfinished.written_bytes;
            assert!(written <= room as u64 + (64 << 10), "room {room}: written {written}");
            assert!(written + (256 << 10) >= room as u64 && written < full, "room {room}: written {written}");
        }
        let missing = plan_run(&mut pool, &from(Some("nope"), "c", false));
        assert!(matches!(missing, Err(Error::SnapshotNotFound { base: true, .. })));
    }
}
