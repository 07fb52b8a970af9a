//! A copy-on-write device in memory: a base image shared between many devices, and the
//! 4 KiB blocks this one wrote laid over it. The crash harness opens every crash image on
//! one and the receive fuzz target every run, so each costs only the blocks it writes.

use super::Device;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Granularity of the overlay: 4 KiB, the pool's block size, so that a block written is
/// one page (devices sit below blocks, so the constant is not imported).
const BLOCK: usize = 4096;

/// Clones share the base and the written blocks: a pool reopened on a clone sees the
/// writes of the one before.
#[derive(Clone)]
pub struct OverlayDevice {
    base: Arc<Vec<u8>>,
    /// Block number to its whole 4 KiB content.
    blocks: Arc<Mutex<HashMap<u64, Vec<u8>>>>,
    writable: bool,
}

impl OverlayDevice {
    /// `base` with `blocks` (each a whole block) laid over it, open for writing.
    pub fn new(base: Arc<Vec<u8>>, blocks: HashMap<u64, Vec<u8>>) -> OverlayDevice {
        debug_assert!(blocks.values().all(|b| b.len() == BLOCK));
        OverlayDevice { base, blocks: Arc::new(Mutex::new(blocks)), writable: true }
    }

    /// The same image, refusing writes.
    pub fn read_only(&self) -> OverlayDevice {
        OverlayDevice { writable: false, ..self.clone() }
    }

    /// Blocks that differ from the base (or were written with the same bytes).
    pub fn written_blocks(&self) -> usize {
        self.lock().len()
    }

    /// The base with every written block applied.
    pub fn image(&self) -> Vec<u8> {
        let mut bytes = self.base.to_vec();
        for (&block, data) in self.lock().iter() {
            let start = block as usize * BLOCK;
            let end = (start + BLOCK).min(bytes.len());
            bytes[start..end].copy_from_slice(&data[..end - start]);
        }
        bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<u8>>> {
        // A panic while holding it leaves whole blocks: the map is still consistent.
        self.blocks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The blocks `[offset, offset + len)` covers, each with the part of it covered.
    fn spans(&self, offset: u64, len: usize, what: &str) -> Result<Vec<(u64, std::ops::Range<usize>)>> {
        let Some(end) = offset.checked_add(len as u64).filter(|&end| end <= self.base.len() as u64) else {
            return Err(Error::io(
                format!("overlay image: a {what} of {len} bytes at {offset} is past its end"),
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        };
        let (mut at, end) = (offset as usize, end as usize);
        let mut spans = Vec::new();
        while at < end {
            let block = at / BLOCK;
            let stop = end.min((block + 1) * BLOCK);
            spans.push((block as u64, at - block * BLOCK..stop - block * BLOCK));
            at = stop;
        }
        Ok(spans)
    }
}

impl Device for OverlayDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let spans = self.spans(offset, buf.len(), "read")?;
        let blocks = self.lock();
        let mut filled = 0;
        for (block, range) in spans {
            let len = range.len();
            let source = match blocks.get(&block) {
                Some(data) => &data[range],
                None => &self.base[block as usize * BLOCK..][range],
            };
            buf[filled..filled + len].copy_from_slice(source);
            filled += len;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::invalid("this overlay image is opened read-only"));
        }
        let spans = self.spans(offset, buf.len(), "write")?;
        let mut blocks = self.lock();
        let mut taken = 0;
        for (block, range) in spans {
            let len = range.len();
            let data = blocks.entry(block).or_insert_with(|| {
                let start = block as usize * BLOCK;
                let mut data = self.base[start..(start + BLOCK).min(self.base.len())].to_vec();
                data.resize(BLOCK, 0);
                data
            });
            data[range].copy_from_slice(&buf[taken..taken + len]);
            taken += len;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn len(&self) -> u64 {
        self.base.len() as u64
    }

    fn name(&self) -> &str {
        "overlay image"
    }

    fn written_bytes(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_in_the_overlay_and_clones_share_them() {
        let base = Arc::new((0..3 * BLOCK).map(|i| (i / BLOCK) as u8).collect::<Vec<u8>>());
        let mut dev = OverlayDevice::new(Arc::clone(&base), HashMap::new());
        // A write across a block boundary takes both blocks whole; the base stays.
        dev.write_at(BLOCK as u64 - 2, &[9; 4]).unwrap();
        assert_eq!(dev.written_blocks(), 2);
        let mut got = vec![0; 6];
        dev.clone().read_at(BLOCK as u64 - 3, &mut got).unwrap();
        assert_eq!(got, [0, 9, 9, 9, 9, 1]);
        assert_eq!(base[BLOCK - 1], 0);
        assert_eq!(dev.image()[BLOCK - 3..BLOCK + 3], got[..]);
        assert!(dev.read_only().write_at(0, &[1]).is_err());
        assert!(dev.read_at(3 * BLOCK as u64 - 1, &mut got).is_err(), "past the end");
    }
}
