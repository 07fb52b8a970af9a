//! Fuzz target `receive`: a resealed stream applied to a pool in memory, where a bad
//! stream could do harm. Whatever the stream holds, the receive must end in `Ok` or
//! `Err` without a panic, the target must open again afterwards, and `check` must find
//! it clean: any part that committed built a valid file system, and a saved partial
//! receive holds only blocks whose content was checked.
//!
//! Each run starts from one of two prepared images: a freshly formatted pool for a full
//! stream, and the same pool after receiving the base stream (`ReceiveTarget::new`) for
//! an incremental one, so that incremental seeds made from the same source apply. The
//! run writes to a copy-on-write view of the image, which costs only the blocks written.

use super::reseal::{Seal, reseal};
use crate::check::check_pool;
use crate::device::{OpenMode, OverlayDevice};
use crate::error::Result;
use crate::pool::{FormatOptions, LIVE_TREE_ID, MIN_DEVICE_BYTES, Pool, format_pool};
use crate::stream::framing::StreamReader;
use crate::stream::receive::{ReceiveOptions, receive};
use std::collections::HashMap;
use std::sync::Arc;

pub struct ReceiveTarget {
    /// A formatted, empty pool.
    pub(super) empty: Arc<Vec<u8>>,
    /// The pool after receiving the base stream: what incremental streams apply to.
    pub(super) based: Arc<Vec<u8>>,
}

impl ReceiveTarget {
    /// Prepares both images; `base_stream` is a full stream that the incremental seeds
    /// are based on.
    pub fn new(base_stream: &[u8]) -> Result<ReceiveTarget> {
        let zeros = Arc::new(vec![0u8; MIN_DEVICE_BYTES as usize]);
        let device = OverlayDevice::new(zeros, HashMap::new());
        drop(format_pool(Box::new(device.clone()), &FormatOptions { force: true, ..Default::default() })?);
        let empty = Arc::new(device.image());
        let device = OverlayDevice::new(Arc::clone(&empty), HashMap::new());
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write)?;
        receive_stream(&mut pool, base_stream, &mut 0)?;
        drop(pool);
        Ok(ReceiveTarget { empty, based: Arc::new(device.image()) })
    }

    pub fn run(&self, data: &[u8]) {
        let stream = reseal(data, Seal { write_checksums: true });
        let mut input = &stream[..];
        let Ok(Some(begin)) = StreamReader::new(&mut input, None).next_part() else { return };
        let image = if begin.base.is_some() { &self.based } else { &self.empty };
        let device = OverlayDevice::new(Arc::clone(image), HashMap::new());
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).expect("the prepared image opens");
        let mut committed_parts = 0;
        let received = receive_stream(&mut pool, &stream, &mut committed_parts);
        drop(pool);
        if device.written_blocks() == 0 {
            return;
        }
        let mut reopened = Pool::open(Box::new(device), OpenMode::Write)
            .unwrap_or_else(|e| panic!("the target does not open after a receive ({received:?}): {e}"));
        // Whatever the outcome, the pool checks clean: a part commits only a tree that
        // would (fs/validate.rs), and a saved partial receive only blocks whose content
        // was checked (fs/apply.rs).
        let report = check_pool(&mut reopened).unwrap_or_else(|e| {
            panic!("check fails after a receive ({received:?}, {committed_parts} parts committed): {e}")
        });
        assert!(report.is_clean(), "a receive ({received:?}) left problems: {:?}", report.problems);
    }
}

/// Receives every part into the live tree, saving a broken part for resuming (the path
/// that commits after an error); counts the parts committed whole.
fn receive_stream(pool: &mut Pool, stream: &[u8], committed_parts: &mut u32) -> Result<u32> {
    let mut input = stream;
    let mut reader = StreamReader::new(&mut input, None);
    let options = ReceiveOptions { force: false, save_partial: true };
    receive(pool, LIVE_TREE_ID, &mut reader, options, &mut |_| *committed_parts += 1)
}
