//! Readers that never block writers, on the pool's side (the files are device/pins.rs).
//!
//! A reader opens the pool behind the pins gate, pins the checkpoints it will read (a
//! snapshot, or the commit whose live tree it reads) and opens the gate: from then on it
//! reads only blocks that those checkpoints see, and retention keeps every such block
//! while the checkpoint exists (retention.rs). So a writer's commit, which reads the pins
//! behind the gate:
//! - keeps a pinned retained commit past its expiry (history.rs expires around it);
//! - refuses to destroy a pinned snapshot, or to drop a pinned retained commit in a
//!   rollback, naming the reader.
//!
//! What a reader reads before it opens the gate (tables, the space log) is safe because
//! no commit runs meanwhile; what it reads after is file trees of pinned checkpoints only.
//! A reader that never opens the gate (list, status) holds commits off until it exits:
//! correct, and short.
//!
//! A reader that reads everything the opened commit references, tables too (check,
//! scrub, which repairs through a writer it opens at its end), pins that commit whole (`pin_whole_commit`, tree 0 in the pin file) once it
//! has read the blocks that are not in the space log (the pool root, the log itself).
//! A writer then uses no block freed after that commit: its open holds back what the
//! space log says was freed since (`hold_frees_for_pins`), its commits hold back what
//! they free, and none condenses the log, which would forget when a block was freed.
//! The first writer to open after the reader exits gets them all back.

use super::Pool;
use crate::alloc::space_log::{SpaceLogBlock, SpaceOp};
use crate::block::Txg;
use crate::device::Device;
use crate::device::OpenMode;
use crate::device::pins::{CommitGate, Pin, PinRegistry, ReaderPins};
use crate::device::wait::WaitPolicy;
use crate::error::{Error, Refusal, Result};
use crate::format::label::Label;

/// How a pool handle takes part in pinning: not at all (tests, in-memory devices), as a
/// reader, or as a writer that honours the readers' pins.
/// The tree a pin names to hold a whole commit (ids start at 1).
pub const WHOLE_COMMIT: u64 = 0;

#[derive(Default)]
pub(super) enum PinSide {
    #[default]
    None,
    Reader(ReaderPins),
    Writer {
        registry: PinRegistry,
        wait: WaitPolicy,
    },
}

impl Pool {
    /// Opens the pool as the tools do: a reader behind the pins gate of the pool (entered
    /// before any commit record is read, and held until `pin_for_reading`), named
    /// `reader` in the messages of writers that wait for it; a writer honouring the
    /// readers' pins and waiting for readers that are opening the pool as `wait` allows.
    pub fn open_for_tool(dev: Box<dyn Device>, mode: OpenMode, wait: WaitPolicy, reader: &str) -> Result<Pool> {
        let mut entered: Option<ReaderPins> = None;
        let mut registry: Option<PinRegistry> = None;
        let mut on_label = |label: &Label| {
            let pins = PinRegistry::of_pool(&label.pool_guid);
            if mode == OpenMode::Read {
                entered = Some(pins.enter_reader(reader, &*wait.announce)?);
            }
            registry = Some(pins);
            Ok(())
        };
        let mut pool = Pool::open_inner(dev, mode, crate::clock::system_clock(), &mut on_label)?;
        match (entered, registry) {
            (Some(pins), _) => pool.attach_reader_pins(pins),
            (None, Some(registry)) => {
                pool.attach_pin_registry(registry, wait);
                pool.hold_frees_for_pins()?;
            }
            (None, None) => {}
        }
        Ok(pool)
    }

    /// A reader's handle: its pin file and the gate, held since before the open.
    fn attach_reader_pins(&mut self, pins: ReaderPins) {
        self.pin_side = PinSide::Reader(pins);
    }

    /// A writer's handle: its commits read the pins of `registry` behind the gate,
    /// waiting for readers that are opening the pool as `wait` allows.
    fn attach_pin_registry(&mut self, registry: PinRegistry, wait: WaitPolicy) {
        self.pin_side = PinSide::Writer { registry, wait };
    }

    /// A reader pins what it will read, `(tree, txg)` each (a snapshot's, or the opened
    /// commit's for the live tree), and lets commits go on. Anything but the file trees
    /// of those checkpoints must be read before this. Nothing to do for a writer, which
    /// excludes other writers anyway.
    pub fn pin_for_reading(&mut self, checkpoints: &[(u64, Txg)]) -> Result<()> {
        if let PinSide::Reader(pins) = &mut self.pin_side {
            for &(tree, txg) in checkpoints {
                pins.pin(tree, txg.0)?;
            }
            pins.open_gate();
        }
        Ok(())
    }

    /// A reader of everything the opened commit references (check, scrub) pins it whole
    /// and lets commits go on. The pool root and the space log must be read before.
    pub fn pin_whole_commit(&mut self) -> Result<()> {
        let txg = self.commit.txg;
        self.pin_for_reading(&[(WHOLE_COMMIT, txg)])
    }

    /// A writer's open, while a reader holds a whole commit: holds back the blocks the
    /// space log says were freed after it (and, to be safe, all the frees of a log block
    /// that holds any later commit's).
    fn hold_frees_for_pins(&mut self) -> Result<()> {
        let pins = self.pins_now()?;
        let Some(since) = pins.iter().filter(|p| p.tree == WHOLE_COMMIT).map(|p| p.txg).min() else {
            return Ok(());
        };
        self.store.alloc.holding = true;
        let mut next = self.root.space_log;
        while let Some(ptr) = next {
            let block = SpaceLogBlock::decode(&self.store.read_block(&ptr)?)?;
            if block.txg.0 <= since {
                break;
            }
            for &(start, len, op) in &block.entries {
                if op == SpaceOp::Free {
                    self.store.alloc.hold(start, len);
                }
            }
            next = block.prev;
        }
        Ok(())
    }

    /// Whether a reader holds a whole commit (as the running commit found the pins).
    pub(super) fn whole_commit_pinned(&self) -> bool {
        self.commit_pins.iter().any(|p| p.tree == WHOLE_COMMIT)
    }

    /// The checkpoint a read of `snapshot` of `tree` (or of its live tree, as opened)
    /// pins.
    pub fn checkpoint_of(&mut self, tree: u64, snapshot: Option<&str>) -> Result<(u64, Txg)> {
        Ok(match snapshot {
            Some(name) => (tree, self.snapshot(tree, name)?.txg),
            None => (tree, self.commit.txg),
        })
    }

    /// The readers' pins now, without the gate: for refusing early, before any work.
    /// Read once per transaction: a prune checks thousands of snapshots against them.
    pub(super) fn pins_now(&mut self) -> Result<Vec<Pin>> {
        let PinSide::Writer { registry, .. } = &self.pin_side else { return Ok(Vec::new()) };
        if self.pins_seen.is_none() {
            self.pins_seen = Some(registry.pins_now()?);
        }
        Ok(self.pins_seen.clone().unwrap_or_default())
    }

    /// At commit: the gate, and the pins it finds.
    pub(super) fn enter_commit_gate(&mut self) -> Result<Option<CommitGate>> {
        let PinSide::Writer { registry, wait } = &self.pin_side else { return Ok(None) };
        let (gate, pins) = registry.enter_commit(wait)?;
        self.commit_pins = pins;
        self.pins_seen = None;
        Ok(Some(gate))
    }

    /// Is the checkpoint of `tree` at `txg` pinned by a reader (as the commit found the
    /// pins)? A retained commit is kept for a pin of any tree at its txg. A whole
    /// commit's pin keeps nothing: what is freed is held back instead.
    pub(super) fn pinned_by(&self, tree: Option<u64>, txg: u64) -> Option<&Pin> {
        self.commit_pins.iter().find(|p| p.tree != WHOLE_COMMIT && p.txg == txg && tree.is_none_or(|t| t == p.tree))
    }

    /// Refuses, early, to destroy snapshot `name` that a reader has pinned.
    pub(super) fn refuse_if_pinned(&mut self, tree: u64, name: &str, txg: Txg) -> Result<()> {
        if let Some(pin) = self.pins_now()?.iter().find(|p| p.tree == tree && p.txg == txg.0) {
            return Err(being_read(format!("@{name}"), pin));
        }
        Ok(())
    }

    /// At commit, behind the gate: no snapshot destroyed and no retained commit dropped
    /// by this transaction (a destroy, a prune, a rollback) may be pinned; a reader that
    /// pinned it after the early check makes the commit fail, and nothing is lost.
    pub(super) fn refuse_pinned_releases(&self) -> Result<()> {
        for removed in &self.removed_snapshots {
            if let Some(pin) = self.pinned_by(Some(removed.tree), removed.txg.0) {
                return Err(being_read(format!("@{}", removed.name), pin));
            }
        }
        for (tree, name) in &self.destroyed_trees {
            if let Some(pin) = self.commit_pins.iter().find(|p| p.tree == *tree) {
                return Err(being_read(format!("clone {name}"), pin));
            }
        }
        for &txg in &self.released_history {
            if let Some(pin) = self.pinned_by(None, txg) {
                return Err(being_read(format!("the retained commit {txg}"), pin));
            }
        }
        Ok(())
    }

    /// Early: would dropping the retained commits after `txg` (a rollback) take one a
    /// reader has pinned?
    pub(super) fn refuse_if_history_pinned_after(&mut self, txg: u64) -> Result<()> {
        for pin in self.pins_now()?.into_iter().filter(|p| p.tree != WHOLE_COMMIT && p.txg > txg) {
            if self.history_contains(pin.txg)? {
                return Err(being_read(format!("the retained commit {}", pin.txg), &pin));
            }
        }
        Ok(())
    }

    /// The pins' txgs, for names that the early checks of `prune` leave out.
    pub fn pinned_now(&mut self) -> Result<Vec<(u64, Txg)>> {
        Ok(self.pins_now()?.into_iter().map(|p| (p.tree, Txg(p.txg))).collect())
    }

    /// The other processes reading this pool now, with what each pinned.
    pub fn readers_now(&self) -> Result<Vec<crate::device::pins::LiveReader>> {
        let readers = PinRegistry::of_pool(&self.label.pool_guid).live_readers()?;
        Ok(readers.into_iter().filter(|r| r.pid != std::process::id()).collect())
    }
}

fn being_read(what: String, pin: &Pin) -> Error {
    Error::Refused(Refusal::BeingRead { what, holder: pin.holder() })
}
