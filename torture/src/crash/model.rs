//! The crash model: which images a power cut at a flush boundary may leave.
//!
//! At a cut, every write before the last completed flush is durable. Each write issued
//! since (a *pending* write) may have reached the media in part, in whole or not at all,
//! and pending writes may have landed in any order. The device promises nothing smaller
//! than a 512-byte sector (FORMAT.md, "Assumptions about the device"), so:
//!
//! - a pending write is split into *pieces*, one per 4 KiB block it covers, each durable
//!   or not on its own (a large write may be torn into any subset of its blocks);
//! - the durable pieces are applied in some order (only the order of pieces of one block
//!   matters: the last one wins);
//! - a piece may also be torn itself, some of its eight 512-byte sectors durable and the
//!   others not.
//!
//! The states tried at each boundary: none of the pending writes, all of them in order,
//! in-order prefixes (at piece granularity, so the write in flight is torn), and random
//! subsets in random orders with some torn sectors, all drawn from a generator seeded by
//! (seed, boundary, draw), so one (seed, boundary, state) names one image. Duplicate
//! images within a boundary are tried once.

use crate::rng::Rng;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

pub const BLOCK: usize = 4096;
pub const SECTOR: usize = 512;
/// All eight sectors of a block.
pub const WHOLE: u8 = 0xFF;

/// The part of one pending write that falls in one 4 KiB block of the device.
#[derive(Clone, Debug)]
pub struct Piece {
    /// Index of the write among the boundary's pending writes.
    pub write: usize,
    /// Index of this piece within its write.
    pub index: usize,
    pub block: u64,
    /// Bytes [start, end) of the block that the write covers.
    pub start: usize,
    pub end: usize,
    /// Where those bytes are in the log.
    pub source: usize,
}

/// One pending write: its device offset and its bytes in the log.
#[derive(Clone, Debug)]
pub struct PendingWrite {
    pub offset: u64,
    pub data: std::ops::Range<usize>,
}

pub fn pieces_of(writes: &[PendingWrite]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    for (w, write) in writes.iter().enumerate() {
        let mut at = write.offset;
        let end = write.offset + write.data.len() as u64;
        let mut index = 0;
        while at < end {
            let block = at / BLOCK as u64;
            let start = (at % BLOCK as u64) as usize;
            let stop = ((end - block * BLOCK as u64) as usize).min(BLOCK);
            pieces.push(Piece {
                write: w,
                index,
                block,
                start,
                end: stop,
                source: write.data.start + (at - write.offset) as usize,
            });
            at = block * BLOCK as u64 + stop as u64;
            index += 1;
        }
    }
    pieces
}

/// A crash image relative to the durable one: pieces applied in this order, each with
/// the sectors of it that are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashState {
    pub kind: StateKind,
    pub applied: Vec<(usize, u8)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    Nothing,
    All,
    Prefix,
    Random,
}

impl CrashState {
    /// Identifies the image: per block, the pieces that still show after the last whole
    /// one, in order.
    fn image_key(&self, pieces: &[Piece]) -> u64 {
        let mut per_block: HashMap<u64, Vec<(usize, u8)>> = HashMap::new();
        for &(p, mask) in &self.applied {
            let piece = &pieces[p];
            let list = per_block.entry(piece.block).or_default();
            if mask == WHOLE && piece.start == 0 && piece.end == BLOCK {
                list.clear();
            }
            list.push((p, mask));
        }
        let mut blocks: Vec<_> = per_block.into_iter().collect();
        blocks.sort();
        let mut hasher = DefaultHasher::new();
        blocks.hash(&mut hasher);
        hasher.finish()
    }

    /// What was applied, compactly: "w3 b0-17, w4 b2 [sectors 0x0f]" in applied order.
    pub fn describe(&self, pieces: &[Piece]) -> String {
        if self.applied.is_empty() {
            return "no pending write durable".to_string();
        }
        let mut parts: Vec<String> = Vec::new();
        let mut run: Option<(usize, usize, usize)> = None; // write, first index, last index
        let flush = |run: &mut Option<(usize, usize, usize)>, parts: &mut Vec<String>| {
            if let Some((w, a, b)) = run.take() {
                parts.push(if a == b { format!("w{w} b{a}") } else { format!("w{w} b{a}-{b}") });
            }
        };
        for &(p, mask) in &self.applied {
            let piece = &pieces[p];
            if mask != WHOLE {
                flush(&mut run, &mut parts);
                parts.push(format!("w{} b{} [sectors {mask:#04x}]", piece.write, piece.index));
                continue;
            }
            match run {
                Some((w, _, b)) if w == piece.write && b + 1 == piece.index => {
                    run.as_mut().expect("a run").2 = piece.index
                }
                _ => {
                    flush(&mut run, &mut parts);
                    run = Some((piece.write, piece.index, piece.index));
                }
            }
        }
        flush(&mut run, &mut parts);
        let total = parts.len();
        if total > 40 {
            parts.truncate(40);
            parts.push(format!("... ({} more runs)", total - 40));
        }
        format!("{} of {} pieces, in this order: {}", self.applied.len(), pieces.len(), parts.join(", "))
    }
}

/// Prefix lengths tried at one boundary, at most this many (evenly spread).
const PREFIXES_MAX: usize = 24;

/// How many deterministic states a boundary has (before duplicates are dropped).
pub fn fixed_count(pieces: &[Piece], writes: usize) -> usize {
    fixed_states(pieces, writes).len()
}

/// The deterministic states of a boundary: nothing, all, in-order prefixes.
fn fixed_states(pieces: &[Piece], writes: usize) -> Vec<CrashState> {
    let n = pieces.len();
    let mut states = vec![
        CrashState { kind: StateKind::Nothing, applied: Vec::new() },
        CrashState { kind: StateKind::All, applied: (0..n).map(|p| (p, WHOLE)).collect() },
    ];
    let mut lengths: Vec<usize> = Vec::new();
    // Every write boundary when there are few writes, then evenly spread piece counts.
    if writes <= PREFIXES_MAX / 2 {
        lengths.extend((1..n).filter(|&p| pieces[p].index == 0));
    }
    let spread = PREFIXES_MAX.saturating_sub(lengths.len()).min(n.saturating_sub(1));
    lengths.extend((1..=spread).map(|j| j * n / (spread + 1)).filter(|&l| l > 0 && l < n));
    lengths.sort();
    lengths.dedup();
    for length in lengths {
        states.push(CrashState { kind: StateKind::Prefix, applied: (0..length).map(|p| (p, WHOLE)).collect() });
    }
    states
}

/// One random state, drawn from `rng`.
fn random_state(pieces: &[Piece], rng: &mut Rng) -> CrashState {
    let n = pieces.len() as u64;
    let mut applied: Vec<(usize, u8)> = match rng.below(3) {
        // An independent subset, each piece durable with one probability, in any order.
        0 | 1 => {
            let numerator = [1, 4, 7, rng.between(1, 7)][rng.below(4) as usize];
            let mut chosen: Vec<(usize, u8)> =
                (0..pieces.len()).filter(|_| rng.chance(numerator, 8)).map(|p| (p, WHOLE)).collect();
            rng.shuffle(&mut chosen);
            chosen
        }
        // The device worked in order up to a point, and a few later pieces got through.
        _ => {
            let prefix = rng.below(n + 1) as usize;
            (0..pieces.len()).filter(|&p| p < prefix || rng.chance(1, 16)).map(|p| (p, WHOLE)).collect()
        }
    };
    if rng.chance(1, 3) {
        // Torn sectors: some applied pieces only in part.
        for entry in applied.iter_mut() {
            if rng.chance(1, 6) {
                entry.1 = (rng.between(1, 254)) as u8;
            }
        }
    }
    CrashState { kind: StateKind::Random, applied }
}

/// Generates the states of one boundary in their fixed order, skipping images seen
/// before, until `wanted` are found or the draws run out (small boundaries have few
/// distinct images). State `k` of a boundary is the same whatever `wanted` is.
pub fn states(pieces: &[Piece], writes: usize, seed: u64, boundary: u64, wanted: usize) -> Vec<CrashState> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for state in fixed_states(pieces, writes) {
        if out.len() >= wanted {
            return out;
        }
        if seen.insert(state.image_key(pieces)) {
            out.push(state);
        }
    }
    if pieces.is_empty() {
        return out;
    }
    let draws_max = 64 + 16 * wanted as u64;
    for draw in 0..draws_max {
        if out.len() >= wanted {
            break;
        }
        let mut rng = Rng::derive(seed, &[boundary, draw]);
        let state = random_state(pieces, &mut rng);
        if seen.insert(state.image_key(pieces)) {
            out.push(state);
        }
    }
    out
}

/// Applies a state to a copy of the blocks it touches: block -> new contents.
pub fn overlay(state: &CrashState, pieces: &[Piece], log: &[u8], durable: &[u8]) -> HashMap<u64, Vec<u8>> {
    let mut blocks: HashMap<u64, Vec<u8>> = HashMap::new();
    for &(p, mask) in &state.applied {
        let piece = &pieces[p];
        let start = piece.block as usize * BLOCK;
        let block = blocks.entry(piece.block).or_insert_with(|| durable[start..start + BLOCK].to_vec());
        let bytes = &log[piece.source..piece.source + (piece.end - piece.start)];
        for sector in 0..BLOCK / SECTOR {
            if mask & (1 << sector) == 0 {
                continue;
            }
            let lo = (sector * SECTOR).max(piece.start);
            let hi = ((sector + 1) * SECTOR).min(piece.end);
            if lo < hi {
                block[lo..hi].copy_from_slice(&bytes[lo - piece.start..hi - piece.start]);
            }
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes() -> (Vec<u8>, Vec<PendingWrite>) {
        // w0: 3 blocks at block 2; w1: 1 block at block 3 (overlaps w0); w2: 100 bytes mid-block 9.
        let log: Vec<u8> = (0..5 * BLOCK).map(|i| (i / BLOCK + 1) as u8).collect();
        let writes = vec![
            PendingWrite { offset: 2 * BLOCK as u64, data: 0..3 * BLOCK },
            PendingWrite { offset: 3 * BLOCK as u64, data: 3 * BLOCK..4 * BLOCK },
            PendingWrite { offset: 9 * BLOCK as u64 + 1000, data: 4 * BLOCK..4 * BLOCK + 100 },
        ];
        (log, writes)
    }

    #[test]
    fn pieces_split_writes_at_block_boundaries() {
        let (_, writes) = writes();
        let pieces = pieces_of(&writes);
        let shape: Vec<_> = pieces.iter().map(|p| (p.write, p.index, p.block, p.start, p.end)).collect();
        assert_eq!(
            shape,
            [(0, 0, 2, 0, 4096), (0, 1, 3, 0, 4096), (0, 2, 4, 0, 4096), (1, 0, 3, 0, 4096), (2, 0, 9, 1000, 1100)]
        );
    }

    #[test]
    fn states_are_distinct_reproducible_and_cover_the_fixed_ones() {
        // Goal: the first states are nothing, all and prefixes; a state's place does not
        // depend on how many are wanted; no image is tried twice.
        let (_, writes) = writes();
        let pieces = pieces_of(&writes);
        let many = states(&pieces, writes.len(), 9, 4, 60);
        let few = states(&pieces, writes.len(), 9, 4, 10);
        assert_eq!(many[..10], few[..]);
        assert_eq!(many[0].kind, StateKind::Nothing);
        assert_eq!(many[1].kind, StateKind::All);
        assert!(many.iter().any(|s| s.kind == StateKind::Prefix));
        let keys: HashSet<u64> = many.iter().map(|s| s.image_key(&pieces)).collect();
        assert_eq!(keys.len(), many.len());
    }

    #[test]
    fn overlay_applies_pieces_in_order_and_by_sector() {
        let (log, writes) = writes();
        let pieces = pieces_of(&writes);
        let durable = vec![0u8; 16 * BLOCK];
        // w1 then w0's second piece: block 3 shows w0 (applied last).
        let state = CrashState { kind: StateKind::Random, applied: vec![(3, WHOLE), (1, WHOLE), (4, WHOLE)] };
        let blocks = overlay(&state, &pieces, &log, &durable);
        assert!(blocks[&3].iter().all(|&b| b == 2));
        assert_eq!(blocks[&9][999..1101], [[0u8].as_slice(), &[5u8; 100], &[0u8]].concat());
        // Sector 1 only of w1's piece.
        let torn = CrashState { kind: StateKind::Random, applied: vec![(3, 0b10)] };
        let blocks = overlay(&torn, &pieces, &log, &durable);
        assert!(blocks[&3][..512].iter().all(|&b| b == 0));
        assert!(blocks[&3][512..1024].iter().all(|&b| b == 4));
        assert!(blocks[&3][1024..].iter().all(|&b| b == 0));
    }
}
