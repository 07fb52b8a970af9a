//! Metadata blocks this process read or wrote lately, kept by address and checksum, so
//! a walk that comes back to a node (a receive checks the tree it just built against
//! the one it started from; a commit rereads what it changed) costs no device read.
//!
//! Sound whatever happens on the device: an entry answers only a pointer with the same
//! address and the same checksum, and a BLAKE3 checksum names the bytes. A block freed
//! and written again has another checksum, so its old entry is simply never asked for.
//! `check` and `scrub` turn the cache off: their job is to read what the device holds.
//!
//! Bounded in bytes; eviction is CLOCK (second chance), so nodes near the root, read
//! over and over, stay while a long walk streams through.

use crate::block::Checksum;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What the cache holds at most by default: about 4,000 tree nodes of 8 KiB.
pub const NODE_CACHE_BYTES: usize = 32 << 20;

struct Cached {
    checksum: Checksum,
    /// Shared with the decoded leaves made of it (tree/leaf.rs), so neither copies.
    bytes: Arc<Vec<u8>>,
    referenced: bool,
}

pub struct NodeCache {
    entries: HashMap<u64, Cached>,
    /// Every address in `entries` once, in CLOCK order: the hand is at the front.
    clock: VecDeque<u64>,
    held_bytes: usize,
    limit_bytes: usize,
}

impl NodeCache {
    pub fn new(limit_bytes: usize) -> NodeCache {
        NodeCache { entries: HashMap::new(), clock: VecDeque::new(), held_bytes: 0, limit_bytes }
    }

    /// Holds at most `limit_bytes` from now on, evicting what is over (0: drops everything).
    pub fn set_limit(&mut self, limit_bytes: usize) {
        self.limit_bytes = limit_bytes;
        self.evict_to(limit_bytes);
    }

    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The logical bytes of the block at `addr` with this checksum, if held.
    pub fn get(&mut self, addr: u64, checksum: &Checksum) -> Option<&[u8]> {
        self.get_shared(addr, checksum).map(|bytes| bytes.as_slice())
    }

    /// As `get`, the bytes themselves, shared.
    pub fn get_shared(&mut self, addr: u64, checksum: &Checksum) -> Option<&Arc<Vec<u8>>> {
        match self.entries.get_mut(&addr) {
            Some(entry) if entry.checksum == *checksum => {
                entry.referenced = true;
                Some(&entry.bytes)
            }
            _ => None,
        }
    }

    /// Whether the block at `addr` with this checksum is held (a read of it would not
    /// reach the device); unlike `get`, not a use.
    pub fn holds(&self, addr: u64, checksum: &Checksum) -> bool {
        self.entries.get(&addr).is_some_and(|entry| entry.checksum == *checksum)
    }

    /// Keeps a block's logical bytes; replaces what the address held before.
    pub fn insert(&mut self, addr: u64, checksum: Checksum, bytes: &[u8]) {
        if bytes.len() <= self.limit_bytes / 4 {
            self.insert_shared(addr, checksum, Arc::new(bytes.to_vec()));
        } else {
            self.remove(addr);
        }
    }

    /// As `insert`, keeping `bytes` themselves (shared with whoever else holds them).
    pub fn insert_shared(&mut self, addr: u64, checksum: Checksum, bytes: Arc<Vec<u8>>) {
        // One block larger than a quarter of the cache would push out too much for it.
        if bytes.len() > self.limit_bytes / 4 {
            self.remove(addr);
            return;
        }
        match self.entries.get_mut(&addr) {
            Some(entry) => {
                self.held_bytes = self.held_bytes - entry.bytes.len() + bytes.len();
                entry.checksum = checksum;
                entry.bytes = bytes;
                entry.referenced = false;
            }
            None => {
                self.held_bytes += bytes.len();
                self.entries.insert(addr, Cached { checksum, bytes, referenced: false });
                self.clock.push_back(addr);
            }
        }
        self.evict_to(self.limit_bytes);
    }

    fn remove(&mut self, addr: u64) {
        if let Some(entry) = self.entries.remove(&addr) {
            self.held_bytes -= entry.bytes.len();
            self.clock.retain(|&a| a != addr);
        }
    }

    fn evict_to(&mut self, limit: usize) {
        while self.held_bytes > limit {
            let Some(addr) = self.clock.pop_front() else { break };
            let entry = self.entries.get_mut(&addr).expect("the clock lists held addresses only");
            if entry.referenced && limit > 0 {
                entry.referenced = false;
                self.clock.push_back(addr);
            } else {
                let entry = self.entries.remove(&addr).expect("held");
                self.held_bytes -= entry.bytes.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_the_same_address_and_checksum() {
        let mut cache = NodeCache::new(1 << 20);
        cache.insert(10, [1; 32], b"first");
        assert_eq!(cache.get(10, &[1; 32]), Some(&b"first"[..]));
        assert_eq!(cache.get(10, &[2; 32]), None, "another checksum is another block");
        assert_eq!(cache.get(11, &[1; 32]), None);
        cache.insert(10, [2; 32], b"second");
        assert_eq!(cache.get(10, &[1; 32]), None, "the address was written again");
        assert_eq!(cache.get(10, &[2; 32]), Some(&b"second"[..]));
        assert_eq!(cache.held_bytes(), 6);
    }

    #[test]
    fn stays_within_its_bytes_and_keeps_what_is_read_again() {
        // Goal: the bound holds, and CLOCK spares an entry that was used since the hand
        // last passed (the root of a tree a walk keeps coming back to).
        let mut cache = NodeCache::new(10 * 100);
        cache.insert(0, [0; 32], &[0u8; 100]);
        for addr in 1..50u64 {
            assert!(cache.get(0, &[0; 32]).is_some(), "the hot entry is still held at {addr}");
            cache.insert(addr, [addr as u8; 32], &[addr as u8; 100]);
            assert!(cache.held_bytes() <= 1000);
        }
        assert!(cache.get(1, &[1; 32]).is_none(), "a cold entry was evicted");
        assert!(cache.get(49, &[49; 32]).is_some());
        cache.set_limit(0);
        assert_eq!(cache.held_bytes(), 0);
        cache.insert(1, [1; 32], b"x");
        assert_eq!(cache.held_bytes(), 0, "a cache of no bytes holds nothing");
    }
}
