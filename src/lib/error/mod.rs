//! Errors that an operator can meet: bad devices, corrupt blocks, full disks, bad names.
//!
//! Programmer errors are assertions, not variants here. Every variant carries enough to
//! say what went wrong and where. What to try next is the front end's to say (the CLI's
//! hints are `cli::hint`); the library names no command.

pub mod receive;

pub use receive::{ReceiveRefusal, SnapshotId};

use crate::exit_code;
use std::fmt;
use std::io;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
pub enum Error {
    /// An I/O call failed; `context` says what was being done.
    Io { context: String, source: io::Error },
    /// Bytes read from the device are not what the format allows.
    Corrupt { what: String },
    /// A scrub found damage; the report printed before says where and what to do.
    Damaged { what: String },
    /// Part of a pool cannot be read because the device lost it (damaged labels, a tail cut
    /// off by a shrink); `hint` says how to get it back. Never advice to format.
    Lost { what: String, hint: String },
    /// The device holds no snapfs pool.
    NotSnapfs { device: String, found: String },
    /// The pool was written by a newer snapfs, or uses features this binary lacks.
    Unsupported { what: String },
    /// Another process has the device open for writing.
    InUse { device: String, holder: String },
    /// The device has too little free space for the transaction. `need` says what needs
    /// `needed_bytes` more than is free ("the transaction needs at least 128.0 KiB more");
    /// `snapshots` and `history_bytes` say what could be released to make room.
    NoSpace { need: String, needed_bytes: u64, free_bytes: u64, history_bytes: u64, snapshots: u64 },
    /// A path, snapshot or tree that does not exist.
    NotFound { what: String },
    /// A path, snapshot or tree that already exists.
    Exists { what: String },
    /// A bad argument: name, path, size, option combination.
    Invalid { what: String },
    /// Refusing to overwrite something without --force.
    Refused { what: String, hint: String },
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
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    pub fn corrupt(what: impl Into<String>) -> Error {
        Error::Corrupt { what: what.into() }
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

    pub fn refused(what: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Refused { what: what.into(), hint: hint.into() }
    }

    /// Names the file whose read met a damaged block ("@snap:/path: checksum mismatch ...").
    pub fn in_file(self, file: &str) -> Error {
        match self {
            Error::Corrupt { what } => Error::Corrupt { what: format!("{file}: {what}") },
            other => other,
        }
    }

    /// The process exit code for this error, from the one table in `exit_code`.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. } => exit_code::INVALID,
            Error::NotFound { .. } | Error::Exists { .. } => exit_code::NOT_FOUND_OR_EXISTS,
            Error::InUse { .. } => exit_code::IN_USE,
            Error::NoSpace { .. } => exit_code::NO_SPACE,
            Error::Corrupt { .. } | Error::Damaged { .. } | Error::Lost { .. } => exit_code::CORRUPT,
            Error::NotSnapfs { .. } | Error::Unsupported { .. } | Error::Refused { .. } => exit_code::REFUSED,
            Error::Receive(ReceiveRefusal::AlreadyReceived { .. }) => exit_code::NOT_FOUND_OR_EXISTS,
            Error::Receive(_) => exit_code::REFUSED,
            Error::Io { .. } | Error::StreamRead { .. } | Error::SourceChanged { .. } => exit_code::IO_ERROR,
            Error::Stream { .. } | Error::InvalidTree { .. } => exit_code::BAD_STREAM,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Corrupt { what } => write!(f, "corrupt pool: {what}"),
            Error::Lost { what, .. } => write!(f, "damaged pool: {what}"),
            Error::Damaged { what } => write!(f, "damaged pool: {what}"),
            Error::NotSnapfs { device, found } => write!(f, "{device} holds no snapfs pool ({found})"),
            Error::Unsupported { what } => write!(f, "{what}"),
            Error::InUse { device, holder } => write!(f, "{device} is in use by {holder}"),
            Error::NoSpace { need, free_bytes, .. } => {
                write!(f, "device full: {need} and {} is free; nothing was changed", human_bytes(*free_bytes))
            }
            Error::NotFound { what } => write!(f, "{what} not found"),
            Error::Exists { what } => write!(f, "{what} already exists"),
            Error::Invalid { what } => write!(f, "{what}"),
            Error::Refused { what, .. } => write!(f, "{what}"),
            Error::Receive(refusal) => write!(f, "{refusal}"),
            Error::StreamRead { at, source } => write!(f, "cannot read the stream at byte {at}: {source}"),
            Error::Stream { what } => write!(f, "bad stream: {what}"),
            Error::InvalidTree { what } => {
                write!(f, "bad stream: the tree it builds is not a valid file system: {what}")
            }
            Error::SourceChanged { path, what } => {
                write!(f, "{path} changed while it was read ({what}); nothing was committed")
            }
        }
    }
}

impl std::error::Error for Error {}

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
