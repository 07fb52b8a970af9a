//! A device shorter than the pool laid out on it: its tail, with the second label
//! region and whatever data lay there, is gone (a shrunk volume, a truncated image).
//!
//! Such a pool opens read-only, so that whatever still reads can be exported; every
//! write is refused, and so is every read of a block past the end. The messages give
//! exact byte counts: a human size rounds two different sizes to the same figure.

use crate::error::{Error, human_bytes};

pub struct ShrunkDevice {
    pub name: String,
    /// The device's size now.
    pub device_bytes: u64,
    /// The size the pool was made on (its label's `device_bytes`).
    pub pool_bytes: u64,
}

/// "104857600 bytes (100.0 MiB)".
fn exact(bytes: u64) -> String {
    format!("{bytes} bytes ({})", human_bytes(bytes))
}

impl ShrunkDevice {
    pub fn new(name: &str, device_bytes: u64, pool_bytes: u64) -> ShrunkDevice {
        assert!(device_bytes < pool_bytes, "only a shrunk device is described");
        ShrunkDevice { name: name.to_string(), device_bytes, pool_bytes }
    }

    fn describe(&self) -> String {
        format!(
            "{} is {} but the pool was made on {}: its last {} are missing",
            self.name,
            exact(self.device_bytes),
            exact(self.pool_bytes),
            exact(self.pool_bytes - self.device_bytes)
        )
    }

    /// How to get a writable pool back.
    pub fn recovery(&self) -> String {
        format!(
            "grow it back to {} bytes (`truncate -s {} {}` for an image file, or resize the volume), then run \
             `snapctl scrub {}` to rewrite the label at its end; or copy the files out (`snapctl export`, \
             `snapsend`) to a new pool",
            self.pool_bytes, self.pool_bytes, self.name, self.name
        )
    }

    /// Printed at open.
    pub fn warning(&self) -> String {
        format!(
            "{}; opened read-only so that files can be exported (blocks in the missing part cannot be read); to \
             recover, {}",
            self.describe(),
            self.recovery()
        )
    }

    /// Any command that would write.
    pub fn refusal(&self) -> Error {
        Error::Refused { what: format!("{}; refusing to write to it", self.describe()), hint: self.recovery() }
    }

    /// A block the pool needs lies in the missing part.
    pub fn beyond_end(&self, what: &str, block: u64) -> Error {
        Error::Lost {
            what: format!("{what} at block {block} lies in the missing part: {}", self.describe()),
            hint: self.recovery(),
        }
    }
}
