//! The receiving side's commands beyond `stream::receive` itself: check a stream against
//! a target without applying it (`snaprecv -n`), read its records one by one (`snaprecv
//! --dump`), and discard a saved partial receive (`snaprecv -A`).

use crate::error::{Error, Result, human_bytes};
use crate::pool::{LIVE_TREE_ID, Pool};
use crate::stream::framing::{Position, StreamReader};
use crate::stream::receive::{Preparation, ReceiveOptions, TargetState, VerifiedPart, verify};
use crate::stream::wire::Record;
use std::io::Read;

/// A partial receive discarded and the blocks it held freed, committed.
pub struct Discarded {
    /// The snapshot it was receiving.
    pub snapshot: String,
    pub records_applied: u64,
    pub freed_bytes: u64,
}

/// Discards the partial receive saved on the pool open on `device` (named in the error
/// when there is none).
pub fn discard(pool: &mut Pool, device: &str) -> Result<Discarded> {
    let state =
        pool.discard_receive_state()?.ok_or_else(|| Error::not_found(format!("partial receive on {device}")))?;
    // A tree that the full stream was to fill (`snaprecv --tree NEW`) goes with it.
    if state.tree != LIVE_TREE_ID && pool.committed_head_root(state.tree)?.is_none() {
        let name = pool.tree_name(state.tree)?;
        pool.destroy_clone(&name)?;
    }
    let summary = pool.commit()?;
    Ok(Discarded {
        snapshot: state.snapshot_name,
        records_applied: state.records_applied,
        freed_bytes: summary.freed_bytes,
    })
}

/// What a target has, for checking a stream against it: its snapshots and live tree,
/// and the room its data would take.
pub struct Target {
    state: TargetState,
    room: Room,
}

impl Target {
    pub fn of(pool: &mut Pool) -> Result<Target> {
        let room = Room {
            free_bytes: pool.free_bytes(),
            history_bytes: pool.root.dead_bytes,
            snapshots: pool.snapshots_of(LIVE_TREE_ID)?.len() as u64,
        };
        Ok(Target { state: TargetState::of(pool, LIVE_TREE_ID)?, room })
    }
}

/// Reads and verifies every part of a stream without applying it. With a target, each
/// part's `refusal` says why it would not apply there, the space it needs included (the
/// parts before it counted as applied).
pub fn verify_stream(
    reader: &mut StreamReader,
    target: Option<Target>,
    options: ReceiveOptions,
) -> Result<Vec<VerifiedPart>> {
    let (state, mut room) = match target {
        Some(t) => (Some(t.state), Some(t.room)),
        None => (None, None),
    };
    let mut parts = verify(reader, state, options)?;
    if let Some(room) = room.as_mut() {
        for part in parts.iter_mut().filter(|p| p.refusal.is_none()) {
            part.refusal = room.take(part);
        }
    }
    Ok(parts)
}

/// Reads every part of a stream, each record checked as a receive checks it, and hands
/// each record to `emit` with where it was read. Applies nothing; stops at the first error.
pub fn dump(input: &mut dyn Read, emit: &mut dyn FnMut(Position, &Record) -> Result<()>) -> Result<()> {
    let mut reader = StreamReader::new(input, None);
    while let Some(begin) = reader.next_part()? {
        emit(reader.position, &Record::Begin(begin))?;
        loop {
            let record = reader.next_record()?;
            emit(reader.position, &record)?;
            if matches!(record, Record::End(_)) {
                break;
            }
        }
    }
    Ok(())
}

/// The target's free space as a verify counts it down part by part.
struct Room {
    free_bytes: u64,
    history_bytes: u64,
    snapshots: u64,
}

impl Room {
    /// Takes the space a part's data needs at least; the device-full error if it is not
    /// there. A part that rolls the target back first (-F) may free space: not counted.
    fn take(&mut self, part: &VerifiedPart) -> Option<Error> {
        let counted = matches!(part.preparation, Some(Preparation::None | Preparation::Replace));
        if !counted || part.data_bytes_min <= self.free_bytes {
            self.free_bytes = self.free_bytes.saturating_sub(part.data_bytes_min);
            return None;
        }
        Some(Error::NoSpace {
            need: format!(
                "@{} needs at least {} for its data ({} more than the target has)",
                part.begin.snapshot.name,
                human_bytes(part.data_bytes_min),
                human_bytes(part.data_bytes_min - self.free_bytes)
            ),
            needed_bytes: part.data_bytes_min - self.free_bytes,
            free_bytes: self.free_bytes,
            history_bytes: self.history_bytes,
            snapshots: self.snapshots,
        })
    }
}
