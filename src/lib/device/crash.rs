//! An in-memory device whose bytes the test keeps a handle on, and which can cut the
//! power: the write that finds no writes left lands half and fails, as a power cut tears
//! it; it counts its reads and writes. For crash tests (tests/crash.rs,
//! tests/bounded_memory.rs) and I/O counts (pool/history.rs); no
//! binary uses it.

use super::Device;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct CrashDevice {
    /// The device's bytes, shared with the test, which reopens or inspects them.
    pub bytes: Arc<Mutex<Vec<u8>>>,
    /// Whole writes still allowed before the power cut; None: never cut.
    pub writes_left: Option<u64>,
    /// Whole writes taken so far, and reads, shared with the test.
    pub writes: Arc<AtomicU64>,
    pub reads: Arc<AtomicU64>,
}

impl CrashDevice {
    pub fn new(bytes: Arc<Mutex<Vec<u8>>>, writes_left: Option<u64>) -> CrashDevice {
        CrashDevice { bytes, writes_left, writes: Arc::default(), reads: Arc::default() }
    }
}

impl Device for CrashDevice {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let bytes = self.bytes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        buf.copy_from_slice(&bytes[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let mut bytes = self.bytes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(left) = self.writes_left.as_mut() {
            if *left == 0 {
                // The power goes: half of this write reaches the device.
                let half = buf.len() / 2;
                bytes[offset as usize..offset as usize + half].copy_from_slice(&buf[..half]);
                return Err(Error::io("simulated power cut", std::io::Error::other("crash")));
            }
            *left -= 1;
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        bytes[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn len(&self) -> u64 {
        self.bytes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len() as u64
    }

    fn name(&self) -> &str {
        "crash"
    }

    fn written_bytes(&self) -> u64 {
        0
    }
}
