//! The blocks a check has reached, kept in a few bytes each so that checking a pool of
//! millions of files fits in a small, fixed share of memory: 16 bytes a referenced block
//! (its address, a fingerprint of its pointer and who reached it first), and runs of
//! addresses for the space they take and for what each tree's head and checkpoints
//! reach (blocks are allocated in runs, so those sets stay a few entries long).
//!
//! The pointer itself is not kept: a second pointer to a block is compared with the
//! first by a 32-bit fingerprint of all its fields, enough to catch two owners that
//! disagree about a block (a block handed out twice) and cheap enough to keep for all.

use crate::alloc::{Allocator, ExtentSet};
use crate::block::{BLOCK_PTR_BYTES, BlockPtr};
use crate::checksum::record_hash;
use crate::codec::Writer;
use std::collections::HashMap;

/// What claiming a block found.
pub enum Claim {
    /// Not reached before: verify it.
    New,
    /// Reached before through the same pointer.
    Again,
    /// Reached before through another pointer; the first owner's name.
    Conflict(String),
}

pub struct BlockBook {
    /// Address -> fingerprint of the first pointer seen there (low 32 bits) and the
    /// index of its owner in `owners` (high 32 bits).
    claims: HashMap<u64, u64>,
    /// Who reaches blocks ("tree 1 head", "snapshot @a", ...), in the order first named.
    owners: Vec<String>,
    /// Every copy of every referenced block, merged into runs.
    used: ExtentSet,
    /// Whole blocks all copies of referenced blocks take.
    pub referenced_blocks: u64,
    /// Per tree: blocks reachable from its head.
    head: HashMap<u64, ExtentSet>,
    /// Per tree: blocks reachable from a checkpoint and not from the head.
    only_checkpoint: HashMap<u64, ExtentSet>,
    /// Every pointer claimed, when the caller wants them (the corruption injector).
    pub inventory: Option<Vec<BlockPtr>>,
}

impl BlockBook {
    /// A book sized for about `blocks` referenced blocks, so the table is not grown
    /// (and briefly held twice) on the way.
    pub fn new(blocks: u64, keep_inventory: bool) -> BlockBook {
        BlockBook {
            claims: HashMap::with_capacity(blocks.min(1 << 26) as usize),
            owners: Vec::new(),
            used: ExtentSet::new(),
            referenced_blocks: 0,
            head: HashMap::new(),
            only_checkpoint: HashMap::new(),
            inventory: keep_inventory.then(Vec::new),
        }
    }

    /// Records that `owner` reaches `ptr`; on a block reached for the first time, the
    /// problems of the space it takes (outside the data area, over another block, or
    /// marked free) are passed to `problem`.
    pub fn claim(&mut self, ptr: &BlockPtr, owner: &str, alloc: &Allocator, problem: &mut dyn FnMut(String)) -> Claim {
        let fingerprint = fingerprint(ptr);
        if let Some(&seen) = self.claims.get(&ptr.addr.0) {
            if seen as u32 == fingerprint {
                return Claim::Again;
            }
            return Claim::Conflict(self.owners[(seen >> 32) as usize].clone());
        }
        if self.owners.last().is_none_or(|last| last != owner) {
            self.owners.push(owner.to_string());
        }
        let owner_index = (self.owners.len() - 1) as u64;
        self.claims.insert(ptr.addr.0, owner_index << 32 | fingerprint as u64);
        if let Some(inventory) = &mut self.inventory {
            inventory.push(*ptr);
        }
        self.referenced_blocks += ptr.footprint_blocks();
        for (start, len) in ptr.extents() {
            if start < alloc.usable_start || start.saturating_add(len) > alloc.usable_end {
                problem(format!("block {start} (+{len}) lies outside the data area"));
            } else if !self.used.insert(start, len) {
                problem(format!("block {start} (+{len}) overlaps another referenced block"));
            } else if alloc.free.overlaps(start, len) {
                problem(format!("block {start} (+{len}) is referenced but marked free"));
            }
        }
        Claim::New
    }

    /// Whether the block at `ptr`'s address was claimed through this very pointer.
    pub fn claimed_as(&self, ptr: &BlockPtr) -> bool {
        self.claims.get(&ptr.addr.0).is_some_and(|&seen| seen as u32 == fingerprint(ptr))
    }

    /// Marks a block reachable from `tree`'s head; false if it already was.
    pub fn reach_from_head(&mut self, tree: u64, ptr: &BlockPtr) -> bool {
        insert_block(self.head.entry(tree).or_default(), ptr)
    }

    /// Marks a block reachable from a checkpoint of `tree`; false if the head reaches
    /// it or a checkpoint already did.
    pub fn reach_from_checkpoint(&mut self, tree: u64, ptr: &BlockPtr) -> bool {
        if self.head.get(&tree).is_some_and(|h| h.contains(ptr.addr.0, 1)) {
            return false;
        }
        insert_block(self.only_checkpoint.entry(tree).or_default(), ptr)
    }

    /// Whether a checkpoint of `tree`, and not its head, reaches the block at `addr`.
    pub fn only_checkpoint_reaches(&self, tree: u64, addr: u64) -> bool {
        self.only_checkpoint.get(&tree).is_some_and(|s| s.contains(addr, 1))
    }

    /// Per tree, how many blocks only its checkpoints reach.
    pub fn only_checkpoint_counts(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.only_checkpoint.iter().map(|(&tree, set)| (tree, set.blocks()))
    }

    /// Blocks of `tree` only checkpoints reach for which `listed` is false, at most `max`.
    pub fn only_checkpoint_missing(&self, tree: u64, listed: &ExtentSet, max: usize) -> Vec<u64> {
        let Some(set) = self.only_checkpoint.get(&tree) else { return Vec::new() };
        set.iter().flat_map(|(start, len)| start..start + len).filter(|&a| !listed.contains(a, 1)).take(max).collect()
    }

    /// Whole blocks referenced blocks take, each counted once.
    pub fn used_blocks(&self) -> u64 {
        self.used.blocks()
    }
}

/// Adds the block's first address to `set`; false if it was there.
fn insert_block(set: &mut ExtentSet, ptr: &BlockPtr) -> bool {
    if set.contains(ptr.addr.0, 1) {
        return false;
    }
    set.insert(ptr.addr.0, 1)
}

/// 32 bits of a hash of every field of the pointer.
fn fingerprint(ptr: &BlockPtr) -> u32 {
    let mut w = Writer::new();
    BlockPtr::encode(Some(ptr), &mut w);
    debug_assert_eq!(w.bytes.len(), BLOCK_PTR_BYTES);
    record_hash(&w.bytes) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BlockAddr, BlockKind, Compression, Txg};

    fn ptr(addr: u64, birth: u64) -> BlockPtr {
        BlockPtr {
            addr: BlockAddr(addr),
            ditto: BlockAddr(0),
            birth: Txg(birth),
            stored_bytes: 8192,
            logical_bytes: 8192,
            kind: BlockKind::FileData,
            compression: Compression::None,
            level: 0,
            checksum: [birth as u8; 32],
        }
    }

    /// Goal: a block reached twice through one pointer is seen once; through another
    /// pointer it is a conflict naming the first owner; overlaps and free blocks are
    /// reported once, when first reached.
    #[test]
    fn claims_tell_repeats_from_conflicts() {
        let mut alloc = Allocator::new(10, 1000);
        alloc.free.insert(500, 10);
        let mut book = BlockBook::new(16, true);
        let mut problems = Vec::new();
        let mut claim = |book: &mut BlockBook, p: &BlockPtr, owner: &str| {
            book.claim(p, owner, &alloc, &mut |what| problems.push(what))
        };
        assert!(matches!(claim(&mut book, &ptr(20, 3), "tree 1 head"), Claim::New));
        assert!(matches!(claim(&mut book, &ptr(20, 3), "snapshot @a"), Claim::Again));
        assert!(matches!(claim(&mut book, &ptr(20, 4), "snapshot @b"), Claim::Conflict(o) if o == "tree 1 head"));
        assert!(matches!(claim(&mut book, &ptr(21, 5), "snapshot @b"), Claim::New)); // overlaps 20 (+2)
        assert!(matches!(claim(&mut book, &ptr(505, 5), "snapshot @b"), Claim::New)); // free
        assert!(matches!(claim(&mut book, &ptr(5, 5), "snapshot @b"), Claim::New)); // outside
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("block 21 (+2) overlaps"), "{problems:?}");
        assert!(problems[1].contains("block 505 (+2) is referenced but marked free"), "{problems:?}");
        assert!(problems[2].contains("block 5 (+2) lies outside the data area"), "{problems:?}");
        assert!(book.claimed_as(&ptr(20, 3)) && !book.claimed_as(&ptr(20, 4)));
        assert_eq!(book.inventory.as_ref().unwrap().len(), 4);
        assert_eq!(book.referenced_blocks, 8);
    }

    /// Goal: what only checkpoints reach is what the head does not, whatever the order
    /// the two are walked in after the head.
    #[test]
    fn checkpoint_reach_excludes_the_head() {
        let mut book = BlockBook::new(0, false);
        assert!(book.reach_from_head(1, &ptr(100, 2)));
        assert!(!book.reach_from_head(1, &ptr(100, 2)));
        assert!(!book.reach_from_checkpoint(1, &ptr(100, 2)));
        assert!(book.reach_from_checkpoint(1, &ptr(102, 2)));
        assert!(!book.reach_from_checkpoint(1, &ptr(102, 2)));
        assert!(book.reach_from_checkpoint(2, &ptr(100, 2)), "another tree's head does not count");
        assert!(book.only_checkpoint_reaches(1, 102) && !book.only_checkpoint_reaches(1, 100));
        let mut listed = ExtentSet::new();
        assert_eq!(book.only_checkpoint_missing(1, &listed, 5), vec![102]);
        listed.insert(102, 1);
        assert!(book.only_checkpoint_missing(1, &listed, 5).is_empty());
    }
}
