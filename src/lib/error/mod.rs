//! Errors that an operator can meet: bad devices, corrupt blocks, full disks, bad names.
//!
//! Programmer errors are assertions, not variants here. Every variant carries enough to
//! say what went wrong and where. What to try next is the front end's to say (the CLI's
//! hints are `cli::hint`); the library names no command.

pub mod device;
pub mod receive;
pub mod refusal;

pub use device::{DeviceError, Shrunk};
pub use receive::{ReceiveRefusal, SnapshotId};
pub use refusal::Refusal;

use std::fmt;
use std::io;

pub type Result<T> = std::result::Result<T, Error>;

/// `Error::NoSpace`'s `snapshots` when the pool has snapshots but did not count them
/// (counting reads the whole table: pool/mod.rs).
pub const SNAPSHOTS_UNCOUNTED: u64 = u64::MAX;

#[derive(Debug)]
pub enum Error {
    /// An I/O call failed; `context` says what was being done.
    Io { context: String, source: io::Error },
    /// Bytes read from the device are not what the format allows.
    Corrupt(Corruption),
    /// A scrub found damage; the report printed before says where and what to do.
    Damaged { what: String },
    /// The device cannot be written, or lost part of the pool (damaged labels, a tail cut
    /// off by a shrink).
    Device(DeviceError),
    /// The device holds no snapfs pool.
    NotSnapfs { device: String, found: String },
    /// The pool was written by a newer snapfs, or uses features this binary lacks.
    Unsupported { what: String },
    /// Another process has the device open for writing.
    InUse { device: String, holder: String },
    /// The device has too little free space for the transaction. `need` says what needs
    /// `needed_bytes` more than is free ("the transaction needs at least 128.0 KiB more");
    /// `snapshots` and `history_bytes` say what could be released to make room
    /// (`snapshots` is `SNAPSHOTS_UNCOUNTED` when there are some, not counted).
    NoSpace { need: String, needed_bytes: u64, free_bytes: u64, history_bytes: u64, snapshots: u64 },
    /// A path or tree that does not exist.
    NotFound { what: String },
    /// A moment (`snapshot --at`, as UTC text) older than every retained commit: `oldest`
    /// is the oldest one still there, (txg, its time as text), None if there is none.
    MomentNotRetained { moment: String, oldest: Option<(u64, String)> },
    /// A snapshot that does not exist; `base` when it was asked for as a stream's base.
    SnapshotNotFound { name: String, base: bool },
    /// A path, snapshot or tree that already exists.
    Exists { what: String },
    /// A bad argument: name, path, size, option combination.
    Invalid { what: String },
    /// A resume token that is not one a receiver printed (`why`: cut short, mistyped).
    BadResumeToken { why: String },
    /// A command that would destroy or lose something.
    Refused(Refusal),
    /// A stream's part that does not fit the target: refused before anything is applied.
    Receive(ReceiveRefusal),
    /// The stream's input could not be read at byte `at` (a broken transfer: worth
    /// saving with -s and resuming).
    StreamRead { at: u64, source: io::Error },
    /// A replication stream that is damaged, truncated or not a snapfs stream; `what`
    /// names the record and byte offset.
    Stream { what: String },
    /// A stream whose records are each well formed but whose tree as a whole is not a
    /// valid file system (crafted, or sent from a damaged pool): refused before commit.
    InvalidTree { what: String },
    /// A host file or directory changed while `sync` or `put` read it, in a way that
    /// cannot be stored (it vanished, or became another type); nothing was committed.
    SourceChanged { path: String, what: String },
    /// A stream's part broke (`cause`), and the `records` it applied are saved on the
    /// target: a sender given `token` sends the rest.
    PartSaved { cause: Box<Error>, records: u64, token: String },
}

/// Bytes on the device that the format does not allow: what is wrong, with the figures
/// the check compared (found and expected), and where, as far as the reader knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// What is wrong ("checksum mismatch in tree block at block 4711 (born in txg 9, 4096 bytes)").
    pub what: String,
    /// The device block it was found in, when the reader knows it.
    pub block: Option<u64>,
    /// The file whose read met it ("@snap:/path"), when a file was being read.
    pub file: Option<String>,
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub fn corrupt(what: impl Into<String>) -> Error {
        Error::Corrupt(Corruption { what: what.into(), block: None, file: None })
    }

    /// Corruption found in device block `block`.
    pub fn corrupt_at(block: u64, what: impl Into<String>) -> Error {
        Error::Corrupt(Corruption { what: what.into(), block: Some(block), file: None })
    }

    pub fn invalid(what: impl Into<String>) -> Error {
        Error::Invalid { what: what.into() }
    }

    pub fn not_found(what: impl Into<String>) -> Error {
        Error::NotFound { what: what.into() }
    }

    pub fn exists(what: impl Into<String>) -> Error {
        Error::Exists { what: what.into() }
    }

    pub fn stream(what: impl Into<String>) -> Error {
        Error::Stream { what: what.into() }
    }

    pub fn source_changed(path: &std::path::Path, what: impl Into<String>) -> Error {
        Error::SourceChanged { path: path.display().to_string(), what: what.into() }
    }

    /// Names the file whose read met a damaged block ("@snap:/path: checksum mismatch ...").
    pub fn in_file(self, file: &str) -> Error {
        match self {
            Error::Corrupt(c) => Error::Corrupt(Corruption { file: Some(file.to_string()), ..c }),
            other => other,
        }
    }

    /// Adds to a corruption's words where it was met ("(while applying record 7 of the
    /// stream)"); other errors pass through.
    pub fn corrupt_context(self, context: impl FnOnce(&str) -> String) -> Error {
        match self {
            Error::Corrupt(c) => Error::Corrupt(Corruption { what: context(&c.what), ..c }),
            other => other,
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}: {}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Corrupt(corruption) => write!(f, "corrupt pool: {corruption}"),
            Error::Device(e) => write!(f, "{e}"),
            Error::Damaged { what } => write!(f, "damaged pool: {what}"),
            Error::NotSnapfs { device, found } => write!(f, "{device} holds no snapfs pool ({found})"),
            Error::Unsupported { what } => write!(f, "{what}"),
            Error::InUse { device, holder } => write!(f, "{device} is in use by {holder}"),
            Error::NoSpace { need, free_bytes, .. } => {
                write!(f, "device full: {need} and {} is free; nothing was changed", human_bytes(*free_bytes))
            }
            Error::NotFound { what } => write!(f, "{what} not found"),
            Error::MomentNotRetained { moment, oldest: Some((txg, time)) } => {
                write!(f, "{moment} is older than the retained history, which goes back to {time} (commit {txg})")
            }
            Error::MomentNotRetained { moment, oldest: None } => {
                write!(f, "{moment} is not in the retained history: the pool retains no commit")
            }
            Error::SnapshotNotFound { name, base: false } => write!(f, "snapshot @{name} not found"),
            Error::SnapshotNotFound { name, base: true } => write!(f, "base snapshot @{name} not found"),
            Error::Exists { what } => write!(f, "{what} already exists"),
            Error::Invalid { what } => write!(f, "{what}"),
            Error::BadResumeToken { why } => write!(f, "bad resume token ({why})"),
            Error::Refused(refusal) => write!(f, "{refusal}"),
            Error::Receive(refusal) => write!(f, "{refusal}"),
            Error::StreamRead { at, source } => write!(f, "cannot read the stream at byte {at}: {source}"),
            Error::Stream { what } => write!(f, "bad stream: {what}"),
            Error::InvalidTree { what } => {
                write!(f, "bad stream: the tree it builds is not a valid file system: {what}")
            }
            Error::SourceChanged { path, what } => {
                write!(f, "{path} changed while it was read ({what}); nothing was committed")
            }
            Error::PartSaved { cause, records, .. } => write!(
                f,
                "{cause}\nthe {} received so far {} saved on the target",
                plural(*records, "record"),
                if *records == 1 { "is" } else { "are" }
            ),
        }
    }
}

impl std::error::Error for Error {}

/// "1 record", "2 records".
pub fn plural(count: u64, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// Bytes in binary units with one decimal: "1.5 GiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
