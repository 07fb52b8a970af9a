//! All device I/O goes through `Device`. A pool never touches a file descriptor directly,
//! so tests can put an in-memory, recording or fault-injecting device in its place.

pub mod aligned;
#[cfg(any(test, feature = "testing"))]
mod crash;
mod file;
pub mod lock;
#[cfg(any(test, feature = "testing"))]
mod memory;
#[cfg(any(test, feature = "testing"))]
mod overlay;
pub mod pins;
pub mod recording;
pub mod storage;
pub mod wait;
mod write_behind;

pub use aligned::AlignedBuf;
pub use file::{FileDevice, OpenMode, open_file_device, writers_waiting};
// In-memory devices for tests, fuzzing and the crash harness; no binary uses them.
#[cfg(any(test, feature = "testing"))]
pub use crash::CrashDevice;
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryDevice;
#[cfg(any(test, feature = "testing"))]
pub use overlay::OverlayDevice;
pub use recording::{RecordingDevice, open_tool_device};

use crate::error::Result;

pub trait Device: Send {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Writes all of `buf` at `offset`. Not durable until `flush` returns.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<()>;
    /// `write_at` of a buffer the device may keep while it writes it in the background
    /// (a file device, past the page cache): returns an empty buffer to fill next. Every
    /// other call waits for such a write first, so reads, later writes and `flush` come
    /// after it; its error shows there if not here.
    fn write_owned(&mut self, offset: u64, buf: AlignedBuf) -> Result<AlignedBuf> {
        self.write_at(offset, &buf)?;
        let mut buf = buf;
        buf.clear();
        Ok(buf)
    }
    /// Makes every completed write durable (fdatasync, or a cache flush on a block device).
    fn flush(&mut self) -> Result<()>;
    /// Size in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A name for messages: the path, or "memory".
    fn name(&self) -> &str;
    /// Bytes written since the device was opened (for `SNAPFS_IO_STATS` and tests).
    fn written_bytes(&self) -> u64;
    /// Advice that `len` bytes at `offset` will be read soon: a device behind a cache
    /// starts reading them now, so that many reads a walk makes one after another find
    /// them there instead of each waiting for the device. Nothing by default.
    fn will_need(&self, _offset: u64, _len: u64) {}
    /// A second handle that reads committed blocks from other threads (worker threads
    /// of a receive), or None if the device cannot give one. It must not be used for
    /// blocks written in the running transaction.
    fn shared_reader(&self) -> Option<std::sync::Arc<dyn SharedReader>> {
        None
    }
    /// A reader that bypasses the page cache (O_DIRECT), for reading most of a pool once
    /// as scrub does: no copy through the cache, and nothing others cache is evicted.
    /// Its offsets, lengths and buffers must be multiples of 4096. None if the device
    /// cannot give one (memory, or a file system without O_DIRECT such as tmpfs).
    fn direct_reader(&self) -> Option<std::sync::Arc<dyn SharedReader>> {
        None
    }
    /// Takes, for a writer, the lock on the pool's id, held as long as the device: one
    /// writer per pool even through a name the storage lock cannot see. A device no
    /// other process can reach (memory) takes none.
    fn lock_pool(&mut self, _pool_guid: &[u8; 16], _mode: OpenMode) -> Result<()> {
        Ok(())
    }
    /// The byte ranges within `[start, end)` that may hold data, in order; the rest reads
    /// as zeros (the holes of a sparse image file). A search for a label past the end
    /// of a grown image skips them. By default the whole range.
    fn data_ranges(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        vec![(start, end)]
    }
}

pub trait SharedReader: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}
