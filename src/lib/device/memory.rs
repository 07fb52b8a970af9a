//! A device in memory, for unit tests and the crash harness.

use super::Device;
use crate::error::{Error, Result};
use std::io;

pub struct MemoryDevice {
    pub bytes: Vec<u8>,
    pub writes: u64,
    pub flushes: u64,
    pub written_bytes: u64,
    /// The offsets `will_need` was asked for, in order (tests of read-ahead).
    pub advised: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl MemoryDevice {
    pub fn new(len: u64) -> MemoryDevice {
        MemoryDevice {
            bytes: vec![0; len as usize],
            writes: 0,
            flushes: 0,
            written_bytes: 0,
            advised: Default::default(),
        }
    }

    fn range(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>> {
        let end = offset.checked_add(len as u64).filter(|&end| end <= self.bytes.len() as u64);
        match end {
            Some(end) => Ok(offset as usize..end as usize),
            None => Err(Error::io(
                format!("memory device: {len} bytes at {offset} is past its end"),
                io::Error::from(io::ErrorKind::UnexpectedEof),
            )),
        }
    }
}

impl Device for MemoryDevice {
    fn will_need(&self, offset: u64, _len: u64) {
        self.advised.lock().unwrap_or_else(|e| e.into_inner()).push(offset);
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let range = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        let range = self.range(offset, buf.len())?;
        self.bytes[range].copy_from_slice(buf);
        self.writes += 1;
        self.written_bytes += buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        self.flushes += 1;
        Ok(())
    }
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn written_bytes(&self) -> u64 {
        self.written_bytes
    }
    fn name(&self) -> &str {
        "memory"
    }
}
