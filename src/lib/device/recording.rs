//! A device that passes every call through to another one and appends every write and
//! flush to a log file, as dm-log-writes does for a block device. A testing aid: the
//! crash harness (`snaptorture crash`) runs the real tools with `SNAPFS_WRITE_LOG=PATH`
//! and rebuilds, from the log, every image a power cut could have left behind.
//!
//! Invariants: a write or flush is logged only once the device has done it, and before
//! the call returns, so the log is exactly what the device was asked to do, in order,
//! even if the process dies right after; reads are not logged. The log is appended to
//! (O_APPEND) and not buffered, so several processes that use the device one after the
//! other can share one log.
//!
//! Log format (little-endian), a sequence of records, each opened by a kind byte:
//!
//! | kind | name  | body                                                               |
//! |------|-------|--------------------------------------------------------------------|
//! | `O`  | open  | magic `SNAPWLOG` (8), version u32 = 1, device bytes u64, pid u32    |
//! | `W`  | write | offset u64, length u32, then `length` bytes as written              |
//! | `F`  | flush | nothing: every write logged before it is durable                    |
//! | `C`  | close | nothing: the device was dropped (the process did not die mid-way)   |
//!
//! A process appends one open record when it opens the device, then its writes and
//! flushes, then a close record when the device is dropped.

use super::{Device, SharedReader};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;

/// The environment variable that turns recording on in the tools: the log's path.
pub const WRITE_LOG_ENV: &str = "SNAPFS_WRITE_LOG";

pub const LOG_MAGIC: [u8; 8] = *b"SNAPWLOG";
pub const LOG_VERSION: u32 = 1;
pub const KIND_OPEN: u8 = b'O';
pub const KIND_WRITE: u8 = b'W';
pub const KIND_FLUSH: u8 = b'F';
pub const KIND_CLOSE: u8 = b'C';

pub struct RecordingDevice {
    inner: Box<dyn Device>,
    log: File,
    log_path: String,
}

impl RecordingDevice {
    /// Wraps `inner`, appending to the log at `log_path` (created if missing).
    pub fn new(inner: Box<dyn Device>, log_path: &str) -> Result<RecordingDevice> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| Error::io(format!("cannot open the write log {log_path}"), e))?;
        let mut device = RecordingDevice { inner, log, log_path: log_path.to_string() };
        let mut record = vec![KIND_OPEN];
        record.extend_from_slice(&LOG_MAGIC);
        record.extend_from_slice(&LOG_VERSION.to_le_bytes());
        record.extend_from_slice(&device.inner.len().to_le_bytes());
        record.extend_from_slice(&std::process::id().to_le_bytes());
        device.append(&record)?;
        Ok(device)
    }

    fn append(&mut self, record: &[u8]) -> Result<()> {
        self.log
            .write_all(record)
            .map_err(|e| Error::io(format!("cannot append to the write log {}", self.log_path), e))
    }
}

impl Device for RecordingDevice {
    fn will_need(&self, offset: u64, len: u64) {
        self.inner.will_need(offset, len)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()> {
        self.inner.write_at(offset, buf)?;
        let length = u32::try_from(buf.len()).expect("a device write is under 4 GiB");
        let mut record = Vec::with_capacity(13 + buf.len());
        record.push(KIND_WRITE);
        record.extend_from_slice(&offset.to_le_bytes());
        record.extend_from_slice(&length.to_le_bytes());
        record.extend_from_slice(buf);
        self.append(&record)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()?;
        self.append(&[KIND_FLUSH])
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn written_bytes(&self) -> u64 {
        self.inner.written_bytes()
    }
    fn shared_reader(&self) -> Option<Arc<dyn SharedReader>> {
        self.inner.shared_reader()
    }
    fn lock_pool(&mut self, pool_guid: &[u8; 16], mode: super::OpenMode) -> Result<()> {
        self.inner.lock_pool(pool_guid, mode)
    }
    fn data_ranges(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.inner.data_ranges(start, end)
    }
}

impl Drop for RecordingDevice {
    fn drop(&mut self) {
        // Best effort: a missing close record only tells the reader the process died.
        let _ = self.log.write_all(&[KIND_CLOSE]);
    }
}

/// Opens an image file or block device for the tools: a `FileDevice`, wrapped in a
/// `RecordingDevice` when `SNAPFS_WRITE_LOG` names a log and the device is opened for
/// writing (a reader writes nothing worth logging).
pub fn open_tool_device(path: &str, mode: super::OpenMode, wait: &super::wait::WaitPolicy) -> Result<Box<dyn Device>> {
    let device = super::file::open_file_device_waiting(path, mode, wait)?;
    match std::env::var(WRITE_LOG_ENV) {
        Ok(log) if !log.is_empty() && mode == super::OpenMode::Write => {
            Ok(Box::new(RecordingDevice::new(Box::new(device), &log)?))
        }
        _ => Ok(Box::new(device)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemoryDevice;

    #[test]
    fn the_log_holds_every_write_and_flush_in_order() {
        // Goal: the log records what the device was asked to do, byte for byte.
        // Method: two writes, a flush, a write, drop; then decode the log by hand.
        let dir = std::env::temp_dir().join(format!("snapfs-recording-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let _ = std::fs::remove_file(&log);
        let mut device = RecordingDevice::new(Box::new(MemoryDevice::new(1 << 20)), log.to_str().unwrap()).unwrap();
        device.write_at(4096, b"abc").unwrap();
        device.write_at(0, &[7u8; 5]).unwrap();
        device.flush().unwrap();
        device.write_at(8192, b"z").unwrap();
        let mut back = [0u8; 3];
        device.read_at(4096, &mut back).unwrap();
        assert_eq!(&back, b"abc");
        drop(device);
        let bytes = std::fs::read(&log).unwrap();
        let mut expected = vec![KIND_OPEN];
        expected.extend_from_slice(&LOG_MAGIC);
        expected.extend_from_slice(&1u32.to_le_bytes());
        expected.extend_from_slice(&(1u64 << 20).to_le_bytes());
        expected.extend_from_slice(&std::process::id().to_le_bytes());
        for (offset, data) in [(4096u64, &b"abc"[..]), (0, &[7u8; 5][..])] {
            expected.push(KIND_WRITE);
            expected.extend_from_slice(&offset.to_le_bytes());
            expected.extend_from_slice(&(data.len() as u32).to_le_bytes());
            expected.extend_from_slice(data);
        }
        expected.push(KIND_FLUSH);
        expected.push(KIND_WRITE);
        expected.extend_from_slice(&8192u64.to_le_bytes());
        expected.extend_from_slice(&1u32.to_le_bytes());
        expected.push(b'z');
        expected.push(KIND_CLOSE);
        assert_eq!(bytes, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
