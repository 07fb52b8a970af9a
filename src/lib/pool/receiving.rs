//! A tree being received: it grows beside the head it will replace, as its own tree of
//! blocks (owner `Staging`), so that an interrupted receive can be saved and resumed
//! without the head ever showing a partial stream.
//!
//! - Started from the target's newest snapshot (txg `origin`) or from nothing (a full
//!   stream). Blocks born at or before `origin` belong to that snapshot; the staging tree
//!   never frees them. Newer blocks are its own and no checkpoint sees them.
//! - Finished: the head takes the staging tree's content. For a full stream received in
//!   one transaction, the head takes its root as is. So it does for an incremental one
//!   received in one transaction onto a head that is the origin snapshot, and kills the
//!   snapshot's blocks the staging tree stopped referencing (the store lists them as the
//!   staging tree drops them; they go to the dead index). Otherwise the difference between
//!   the origin snapshot and the staging tree is applied to the head key by key, so the
//!   head kills exactly the snapshot's blocks the stream replaced (they go to the dead
//!   index, since the snapshot still sees them); pointers to blocks the staging tree
//!   committed in an earlier transaction get this transaction as their birth, because
//!   that is when the head gains them. Then the staging tree's own nodes are freed.
//! - Saved (`snaprecv -s`): the staging root goes into a receive state that the pool
//!   root names; discarded (`snaprecv -A`): every block it owns is freed.

use super::Pool;
use crate::block::{BlockKind, BlockPtr};
use crate::error::{Error, Result};
use crate::format::node::TreeKind;
use crate::format::receive_state::ReceiveState;
use crate::fs::inode::{ItemKind, key_is};
use crate::fs::record::Record;
use crate::store::Owner;
use crate::tree::{Tree, TreeDiff};

/// The head writes its dirty nodes out after this many changed keys while it takes a
/// staging tree's content, which bounds memory.
const ADOPT_SPILL_KEYS: u64 = 200_000;

impl Pool {
    /// The saved state of an interrupted receive, if there is one.
    pub fn receive_state(&mut self) -> Result<Option<ReceiveState>> {
        let Some(ptr) = self.root.receive else { return Ok(None) };
        if ptr.kind != BlockKind::Blob {
            return Err(Error::corrupt(format!("a {} block where the receive state belongs", ptr.kind.name())));
        }
        Ok(Some(ReceiveState::decode(&self.store.read_block(&ptr)?)?))
    }

    /// Replaces (or with None, removes) the saved receive state, in this transaction.
    pub fn set_receive_state(&mut self, state: Option<&ReceiveState>) -> Result<()> {
        self.writable()?;
        if let Some(old) = self.root.receive.take() {
            self.store.kill(Owner::Meta, &old)?;
        }
        if let Some(state) = state {
            self.root.receive = Some(self.store.write_block(BlockKind::Blob, 0, &state.encode())?);
        }
        self.config_changed = true;
        Ok(())
    }

    /// A staging tree for a stream into `tree`, from `start` (the origin snapshot's
    /// root, or a saved partial tree).
    pub fn staging_tree(&mut self, origin: u64, start: Option<BlockPtr>) -> Result<Tree> {
        self.store.staging_replaced = Some(Vec::new());
        self.refresh_space_hints()?;
        Ok(Tree::open(TreeKind::Files, Owner::Staging { origin }, start))
    }

    /// Makes the head of `tree` hold what `staging` holds. The head must equal the
    /// origin snapshot (`base`), or be empty for a full stream (`base` None, `origin` 0).
    /// `built_now`: every block of the staging tree was written by this transaction.
    pub fn adopt_staging(
        &mut self,
        tree: u64,
        base: Option<BlockPtr>,
        mut staging: Tree,
        origin: u64,
        built_now: bool,
    ) -> Result<()> {
        self.writable()?;
        let staging_root = staging.flush(&mut self.store)?;
        if base.is_none() && built_now {
            // A full stream received in one transaction: the head takes the tree as is.
            assert_eq!(origin, 0, "a full stream starts from nothing");
            self.heads.insert(tree, Tree::open(TreeKind::Files, Owner::Files(tree), staging_root));
            return Ok(());
        }
        let head_root = match self.heads.get(&tree) {
            Some(head) if head.is_dirty() => None,
            Some(head) => Some(head.committed_root()),
            None => Some(self.committed_head_root(tree)?),
        };
        let replaced = self.store.staging_replaced.take();
        if let (true, true, Some(replaced)) = (built_now && base.is_some(), head_root == Some(base), replaced) {
            // The head is the origin snapshot and the staging tree grew from it in this
            // transaction: the head takes the staging root, and kills what the staging
            // tree replaced of the snapshot, as if it had made the changes itself.
            self.heads.insert(tree, Tree::open(TreeKind::Files, Owner::Files(tree), staging_root));
            for ptr in replaced {
                self.store.kill(Owner::Files(tree), &ptr)?;
            }
            return Ok(());
        }
        self.copy_into_head(tree, base, staging_root, origin)?;
        self.free_staging(staging_root, origin, false)
    }

    fn copy_into_head(
        &mut self,
        tree: u64,
        base: Option<BlockPtr>,
        staging_root: Option<BlockPtr>,
        origin: u64,
    ) -> Result<()> {
        let txg = self.store.txg;
        let entry_root = self.committed_head_root(tree)?;
        let head =
            self.heads.entry(tree).or_insert_with(|| Tree::open(TreeKind::Files, Owner::Files(tree), entry_root));
        let mut diff = TreeDiff::new(TreeKind::Files, base, staging_root);
        let mut changed = 0u64;
        while let Some(change) = diff.next(&mut self.store)? {
            let is_record = key_is(&change.key, ItemKind::Record);
            let new_record = match (&change.new, is_record) {
                (Some(value), true) => {
                    let mut record = Record::decode(value)?;
                    let overlay = record.overlay.as_mut().map(|o| &mut o.ptr);
                    for ptr in std::iter::once(&mut record.ptr).chain(overlay) {
                        if ptr.birth.0 > origin && ptr.birth < txg {
                            // Committed by the staging tree earlier; the head gains it now.
                            ptr.birth = txg;
                            self.store.reborn.insert(ptr.addr.0);
                        }
                    }
                    Some(record)
                }
                _ => None,
            };
            if is_record {
                if let Some(old) = head.get(&mut self.store, &change.key)? {
                    // An overlay shares its base with the record it was laid over.
                    for ptr in Record::decode(&old)?.blocks_dropped_by(new_record.as_ref()) {
                        self.store.kill(Owner::Files(tree), ptr)?;
                    }
                }
            }
            let value = match new_record {
                Some(record) => Some(record.encode()),
                None => change.new,
            };
            match value {
                None => head.remove(&mut self.store, &change.key)?,
                Some(value) => head.insert(&mut self.store, &change.key, &value)?,
            };
            changed += 1;
            if changed.is_multiple_of(ADOPT_SPILL_KEYS) {
                head.flush(&mut self.store)?;
                head.evict();
            }
        }
        Ok(())
    }

    /// Frees the staging tree's own blocks: its nodes, and with `records` its file data
    /// too (a discarded receive; an adopted one gave its data to the head).
    fn free_staging(&mut self, root: Option<BlockPtr>, origin: u64, records: bool) -> Result<()> {
        let Some(root) = root else { return Ok(()) };
        for ptr in self.blocks_born_after(&root, origin, records)? {
            self.store.kill(Owner::Staging { origin }, &ptr)?;
        }
        Ok(())
    }

    /// Discards a saved partial receive: frees what it owns and forgets it.
    pub fn discard_receive_state(&mut self) -> Result<Option<ReceiveState>> {
        let Some(state) = self.receive_state()? else { return Ok(None) };
        self.free_staging(state.staging, state.origin_txg, true)?;
        self.set_receive_state(None)?;
        Ok(Some(state))
    }
}
