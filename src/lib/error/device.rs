//! What is wrong with a device, as facts: which device, its sizes, why it cannot be
//! written. The front end says what to do about it (`cli::hint`).

use super::human_bytes;
use std::fmt;

/// A device shorter than the pool laid out on it: its tail, with the second label region
/// and whatever data lay there, is gone (a shrunk volume, a truncated image). Such a pool
/// opens read-only, so that whatever still reads can be exported. Sizes are kept exact:
/// a human size rounds two different sizes to the same figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shrunk {
    pub device: String,
    /// The device's size now.
    pub device_bytes: u64,
    /// The size the pool was made on (its label's `device_bytes`).
    pub pool_bytes: u64,
}

impl Shrunk {
    pub fn new(device: &str, device_bytes: u64, pool_bytes: u64) -> Shrunk {
        assert!(device_bytes < pool_bytes, "only a shrunk device is described");
        Shrunk { device: device.to_string(), device_bytes, pool_bytes }
    }
}

/// "104857600 bytes (100.0 MiB)".
fn exact(bytes: u64) -> String {
    format!("{bytes} bytes ({})", human_bytes(bytes))
}

impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} but the pool was made on {}: its last {} are missing",
            self.device,
            exact(self.device_bytes),
            exact(self.pool_bytes),
            exact(self.pool_bytes - self.device_bytes)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The device cannot be opened for writing: a read-only block device, or permissions.
    NotWritable { device: String, why: String },
    /// The directory where storage locks live cannot be used (a symlink, another user's).
    LockDirUnusable { dir: String, why: String },
    /// A command would write to a shrunk device.
    ShrunkWrite(Shrunk),
    /// A block the pool needs (`what`, at `block`) lies in a shrunk device's missing tail.
    ShrunkRead { shrunk: Shrunk, what: String, block: u64 },
    /// The label at the device's start is damaged (`why`) and no intact copy was found at
    /// its end, in its last `searched_bytes`, nor at any whole GiB: the pool cannot be
    /// found, though its data may all be there.
    LabelsLost { device: String, why: String, device_bytes: u64, searched_bytes: u64 },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NotWritable { device, why } => write!(f, "{device} cannot be opened for writing: {why}"),
            DeviceError::LockDirUnusable { dir, why } => write!(f, "cannot use the lock directory {dir}: {why}"),
            DeviceError::ShrunkWrite(shrunk) => write!(f, "{shrunk}; refusing to write to it"),
            DeviceError::ShrunkRead { shrunk, what, block } => {
                write!(f, "damaged pool: {what} at block {block} lies in the missing part: {shrunk}")
            }
            DeviceError::LabelsLost { device, why, searched_bytes, .. } => write!(
                f,
                "damaged pool: {device}: the label at its start is damaged ({why}) and no intact copy was found at \
                 the end of the device, in its last {} nor at any whole GiB",
                human_bytes(*searched_bytes)
            ),
        }
    }
}
