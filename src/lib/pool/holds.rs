//! Holds: tags on a snapshot that keep it from being destroyed, as `zfs hold` places
//! them. A replication job holds the base its next incremental needs, and neither a
//! `destroy` nor a `rollback -r` nor (later) a prune takes that snapshot away while the
//! tag is there. They live in the snapshot's own table entry (docs/FORMAT.md, version 8),
//! so a rename keeps them and a destroy has nothing else to clean up.

use super::Pool;
use crate::error::{Error, Refusal, Result};
use crate::format::label::FEATURE_HOLDS;
use crate::format::tables::{HOLD_TAG_BYTES_MAX, HOLDS_MAX, Hold, SnapshotEntry};

/// A tag is 1..=64 letters, digits, `_ - . + : @`, not starting with `-` (it would read
/// as an option).
pub fn validate_hold_tag(tag: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | ':' | '@');
    if tag.is_empty() || tag.len() > HOLD_TAG_BYTES_MAX || !tag.chars().all(ok_char) || tag.starts_with('-') {
        return Err(Error::invalid(format!(
            "bad hold tag {tag:?}: use 1 to {HOLD_TAG_BYTES_MAX} letters, digits, '_', '-', '.', '+', ':' or '@', \
             not starting with '-'"
        )));
    }
    Ok(())
}

impl Pool {
    /// Places hold `tag` on snapshot `name` of `tree`, in this transaction.
    pub fn hold_snapshot(&mut self, tree: u64, name: &str, tag: &str) -> Result<SnapshotEntry> {
        self.writable()?;
        validate_hold_tag(tag)?;
        let mut entry = self.snapshot(tree, name)?;
        if entry.holds.iter().any(|h| h.tag == tag) {
            return Err(Error::exists(format!("hold {tag:?} on @{name}")));
        }
        if entry.holds.len() >= HOLDS_MAX {
            return Err(Error::invalid(format!(
                "@{name} has {HOLDS_MAX} holds, the most a snapshot takes: release one first"
            )));
        }
        entry.holds.push(Hold { tag: tag.to_string(), time_ns: self.clock.now_ns() });
        // An older binary reads only zeros where holds are: the commit marks the pool.
        self.store.features_needed |= FEATURE_HOLDS;
        self.rewrite_snapshot(&entry)?;
        Ok(entry)
    }

    /// Releases hold `tag` from snapshot `name` of `tree`, in this transaction.
    pub fn release_snapshot(&mut self, tree: u64, name: &str, tag: &str) -> Result<SnapshotEntry> {
        self.writable()?;
        let mut entry = self.snapshot(tree, name)?;
        let Some(at) = entry.holds.iter().position(|h| h.tag == tag) else {
            return Err(Error::not_found(format!("hold {tag:?} on @{name}")));
        };
        entry.holds.remove(at);
        self.rewrite_snapshot(&entry)?;
        Ok(entry)
    }

    /// Refuses to destroy a held snapshot, naming its tags.
    pub fn refuse_if_held(entry: &SnapshotEntry) -> Result<()> {
        if entry.holds.is_empty() {
            return Ok(());
        }
        let tags = entry.holds.iter().map(|h| h.tag.clone()).collect();
        Err(Error::Refused(Refusal::HeldSnapshot { name: entry.name.clone(), tags }))
    }

    /// Writes a snapshot's entry under its name (over the old one, if any), and keeps the
    /// loaded snapshots in step.
    pub(super) fn rewrite_snapshot(&mut self, entry: &SnapshotEntry) -> Result<()> {
        let key = SnapshotEntry::key(entry.tree, &entry.name);
        self.snapshots_table.insert(&mut self.store, &key, &entry.encode_value())?;
        self.uncache_snapshot(entry.tree, &entry.name);
        if self.snapshots_loaded {
            self.cache_snapshot(entry.clone());
        }
        Ok(())
    }
}
