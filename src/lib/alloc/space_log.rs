//! The space log: a chain of blocks, newest first, each pointing to the one before.
//!
//! Replaying the chain from its oldest block gives the set of explicitly allocated blocks.
//! Each commit appends one or more blocks with its allocations and frees; when the chain
//! grows long, a commit rewrites it as a fresh "base" that lists every allocated extent.

use super::ExtentSet;
use crate::block::{BlockPtr, Txg};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

pub const SPACE_LOG_MAGIC: [u8; 4] = *b"SNSL";
pub const SPACE_LOG_HEADER_BYTES: usize = 96;
pub const SPACE_LOG_ENTRY_BYTES: usize = 16;
pub const SPACE_LOG_ENTRIES_MAX: usize = 4090;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceOp {
    Alloc = 1,
    Free = 2,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceLogBlock {
    pub txg: Txg,
    pub prev: Option<BlockPtr>,
    pub entries: Vec<(u64, u64, SpaceOp)>,
}

impl SpaceLogBlock {
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.entries.len() <= SPACE_LOG_ENTRIES_MAX);
        let mut w = Writer::new();
        w.raw(&SPACE_LOG_MAGIC);
        w.u32(0);
        w.u64(self.txg.0);
        BlockPtr::encode(self.prev.as_ref(), &mut w);
        w.u32(self.entries.len() as u32);
        w.u32(0);
        assert_eq!(w.len(), SPACE_LOG_HEADER_BYTES);
        for &(start, len, op) in &self.entries {
            assert!(len > 0 && len <= u32::MAX as u64);
            w.u64(start);
            w.u32(len as u32);
            w.u8(op as u8);
            w.zeros(3);
        }
        w.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<SpaceLogBlock> {
        let mut r = Reader::new(bytes, "space log block");
        if r.array::<4>()? != SPACE_LOG_MAGIC {
            return Err(Error::corrupt("space log block has a bad magic"));
        }
        r.zeros(4)?;
        let txg = Txg(r.u64()?);
        let prev = BlockPtr::decode(&mut r)?;
        let count = r.u32()? as usize;
        r.zeros(4)?;
        if count > SPACE_LOG_ENTRIES_MAX || r.remaining() != count * SPACE_LOG_ENTRY_BYTES {
            return Err(Error::corrupt(format!("space log block claims {count} entries")));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let start = r.u64()?;
            let len = r.u32()? as u64;
            let op = match r.u8()? {
                1 => SpaceOp::Alloc,
                2 => SpaceOp::Free,
                other => return Err(Error::corrupt(format!("space log entry with op {other}"))),
            };
            r.zeros(3)?;
            if len == 0 {
                return Err(Error::corrupt("space log entry of length 0"));
            }
            entries.push((start, len, op));
        }
        Ok(SpaceLogBlock { txg, prev, entries })
    }
}

/// The free blocks of [start, end) that a log leaves, its blocks given oldest first: an
/// error names the first entry the log before it does not allow (an extent allocated
/// twice, freed while free, or outside the range).
///
/// A log starts with its base, the allocated extents in order (a commit condenses it
/// so): the free space is what lies between them, found in one pass; every entry after
/// them changes it in turn.
pub fn free_after<'a>(blocks: impl Iterator<Item = &'a SpaceLogBlock>, start: u64, end: u64) -> Result<ExtentSet> {
    let mut entries = blocks.flat_map(|b| b.entries.iter().map(|&(s, len, op)| (b.txg, s, len, op)));
    let mut base = Vec::new();
    let mut first_change = None;
    for (txg, s, len, op) in entries.by_ref() {
        let at = base.last().map_or(start, |&(s, len)| s + len);
        if op != SpaceOp::Alloc || s < at || len == 0 || s.checked_add(len).is_none_or(|e| e > end) {
            first_change = Some((txg, s, len, op));
            break;
        }
        base.push((s, len));
    }
    let mut free = ExtentSet::gaps_between(&base, start, end)
        .ok_or_else(|| Error::corrupt("space log base lists extents out of order"))?;
    for (txg, s, len, op) in first_change.into_iter().chain(entries) {
        let inside = s >= start && len > 0 && s.checked_add(len).is_some_and(|e| e <= end);
        let allowed = inside
            && match op {
                SpaceOp::Alloc => free.remove(s, len),
                SpaceOp::Free => free.insert(s, len),
            };
        if !allowed {
            return Err(Error::corrupt(format!(
                "space log of txg {} {op:?}s blocks {s}+{len}, which the log before it does not allow",
                txg.0
            )));
        }
    }
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_log_round_trip() {
        let block =
            SpaceLogBlock { txg: Txg(3), prev: None, entries: vec![(100, 4, SpaceOp::Alloc), (200, 1, SpaceOp::Free)] };
        assert_eq!(SpaceLogBlock::decode(&block.encode()).unwrap(), block);
    }

    #[test]
    fn the_free_space_a_log_leaves_is_its_entries_applied_in_turn() {
        // Goal: the one-pass reading of a log's base gives the free space that applying
        // every entry in turn to a set of allocated blocks gives, for logs with a base
        // (sorted, coalesced or touching), with changes after it, with none; and an
        // entry the log before it does not allow is refused, in the base or after it.
        // Method: random logs against a model, block by block.
        let (start, end) = (10u64, 400u64);
        let mut steps = crate::fuzzing::Steps(5);
        for _ in 0..300 {
            let mut allocated = std::collections::BTreeSet::new();
            let mut blocks = Vec::new();
            let mut at = start + steps.next(5);
            let mut base = Vec::new();
            while at < end - 20 && steps.next(8) != 0 {
                let len = 1 + steps.next(6);
                base.push((at, len, SpaceOp::Alloc));
                allocated.extend(at..at + len);
                at += len + steps.next(3);
            }
            blocks.push(SpaceLogBlock { txg: Txg(1), prev: None, entries: base });
            for txg in 2..2 + steps.next(4) {
                let mut entries = Vec::new();
                for _ in 0..steps.next(10) {
                    let s = start + steps.next(end - start - 8);
                    let len = 1 + steps.next(7);
                    let range: Vec<u64> = (s..s + len).collect();
                    if range.iter().all(|b| allocated.contains(b)) {
                        range.iter().for_each(|b| _ = allocated.remove(b));
                        entries.push((s, len, SpaceOp::Free));
                    } else if range.iter().all(|b| !allocated.contains(b)) {
                        allocated.extend(range);
                        entries.push((s, len, SpaceOp::Alloc));
                    }
                }
                blocks.push(SpaceLogBlock { txg: Txg(txg), prev: None, entries });
            }
            let free = free_after(blocks.iter(), start, end).unwrap();
            let expected: Vec<u64> = (start..end).filter(|b| !allocated.contains(b)).collect();
            let got: Vec<u64> = free.iter().flat_map(|(s, len)| s..s + len).collect();
            assert_eq!(got, expected);
            // An entry nothing allows, at the end: allocating what is allocated, freeing
            // what is free, or reaching past the range.
            let wrong = match (allocated.first(), steps.next(3)) {
                (Some(&b), 0) => (b, 1, SpaceOp::Alloc),
                (_, 1) => match expected.first() {
                    Some(&b) => (b, 1, SpaceOp::Free),
                    None => continue,
                },
                _ => (end - 1, 2, SpaceOp::Alloc),
            };
            blocks.push(SpaceLogBlock { txg: Txg(99), prev: None, entries: vec![wrong] });
            let refused = free_after(blocks.iter(), start, end).unwrap_err().to_string();
            assert!(refused.contains("txg 99") && refused.contains("does not allow"), "{refused}");
        }
        // In a base: an extent allocated twice.
        let twice =
            SpaceLogBlock { txg: Txg(4), prev: None, entries: vec![(20, 5, SpaceOp::Alloc), (22, 1, SpaceOp::Alloc)] };
        assert!(free_after([twice].iter(), start, end).unwrap_err().to_string().contains("txg 4 Allocs blocks 22+1"));
    }
}
