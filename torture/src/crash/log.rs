//! Reads the write log that `SNAPFS_WRITE_LOG` makes the tools append to (its format is
//! specified in snapfs's src/lib/device/recording.rs).
//!
//! Write data is not copied: a write names its bytes as a range of the log, which the
//! caller keeps in memory.

use snapfs::device::recording::{KIND_CLOSE, KIND_FLUSH, KIND_OPEN, KIND_WRITE, LOG_MAGIC, LOG_VERSION};
use std::ops::Range;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A process opened the device for writing.
    Open {
        device_bytes: u64,
    },
    /// `data` is a range of the log's bytes.
    Write {
        offset: u64,
        data: Range<usize>,
    },
    Flush,
    Close,
}

/// One event and where its record starts in the log.
#[derive(Clone, Debug)]
pub struct Logged {
    pub at: usize,
    pub event: Event,
}

/// Decodes `log[start..]`. A log that ends inside a record, or holds an unknown kind,
/// is an error that names the offset: the tools append whole records.
pub fn parse(log: &[u8], start: usize) -> Result<Vec<Logged>, String> {
    let mut events = Vec::new();
    let mut at = start;
    while at < log.len() {
        let kind = log[at];
        let body = at + 1;
        let (event, next) = match kind {
            KIND_OPEN => {
                let bytes = slice(log, body, 24, "open")?;
                if bytes[..8] != LOG_MAGIC {
                    return Err(format!("write log: bad magic in the open record at offset {at}"));
                }
                let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
                if version != LOG_VERSION {
                    return Err(format!(
                        "write log: version {version} at offset {at}; this harness reads {LOG_VERSION}"
                    ));
                }
                let device_bytes = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
                (Event::Open { device_bytes }, body + 24)
            }
            KIND_WRITE => {
                let header = slice(log, body, 12, "write")?;
                let offset = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
                let length = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
                let data = body + 12..body + 12 + length;
                slice(log, data.start, length, "write data")?;
                let next = data.end;
                (Event::Write { offset, data }, next)
            }
            KIND_FLUSH => (Event::Flush, body),
            KIND_CLOSE => (Event::Close, body),
            other => return Err(format!("write log: unknown record kind {other:#04x} at offset {at}")),
        };
        events.push(Logged { at, event });
        at = next;
    }
    Ok(events)
}

fn slice<'a>(log: &'a [u8], start: usize, len: usize, what: &str) -> Result<&'a [u8], String> {
    log.get(start..start + len).ok_or_else(|| format!("write log: ends inside a {what} record (at offset {start})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapfs::device::{Device, MemoryDevice, RecordingDevice};

    #[test]
    fn parses_what_the_recording_device_writes() {
        // Goal: the library's writer and this reader agree on the format.
        // Method: record a few calls through RecordingDevice, parse, compare.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let path = path.to_str().unwrap();
        let mut device = RecordingDevice::new(Box::new(MemoryDevice::new(1 << 20)), path).unwrap();
        device.write_at(8192, &[1, 2, 3]).unwrap();
        device.flush().unwrap();
        drop(device);
        let log = std::fs::read(path).unwrap();
        let events: Vec<Event> = parse(&log, 0).unwrap().into_iter().map(|l| l.event).collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0], Event::Open { device_bytes: 1 << 20 });
        let Event::Write { offset, data } = &events[1] else { panic!("{events:?}") };
        assert_eq!((*offset, &log[data.clone()]), (8192, &[1u8, 2, 3][..]));
        assert_eq!(events[2..], [Event::Flush, Event::Close]);
        assert!(parse(&log[..log.len() - 3], 0).is_err());
    }
}
