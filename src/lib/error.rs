//! Errors that an operator can meet: bad devices, corrupt blocks, full disks, bad names.
//!
//! Programmer errors are assertions, not variants here. Every variant carries enough to
//! say what went wrong and where; `hint()` says what to try next.

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
    /// The device has too little free space for the transaction.
    NoSpace { needed_bytes: u64, free_bytes: u64, history_bytes: u64 },
    /// A path, snapshot or tree that does not exist.
    NotFound { what: String },
    /// A path, snapshot or tree that already exists.
    Exists { what: String },
    /// A bad argument: name, path, size, option combination.
    Invalid { what: String },
    /// Refusing to overwrite something without --force.
    Refused { what: String, hint: String },
    /// A replication stream that is damaged, truncated or not a snapfs stream; `what`
    /// names the record and byte offset.
    Stream { what: String },
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

    /// A line that tells the operator what to do next, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Corrupt { .. } => Some(
                "run `snapctl scrub DEVICE`: it finds every damaged block, names the files and snapshots \
                 each affects, and rewrites bad metadata copies from good ones"
                    .into(),
            ),
            Error::NotSnapfs { .. } => Some("format it first with `snapfmt DEVICE`".into()),
            Error::Unsupported { .. } => Some("use a newer snapfs to open this pool".into()),
            Error::InUse { .. } => Some("wait for that process to finish, then run the command again".into()),
            Error::NoSpace { history_bytes, .. } => Some(if *history_bytes > 0 {
                format!(
                    "destroy snapshots you no longer need (`snapctl list DEVICE` shows what each holds), \
                     or release the commit history ({}) with `snapctl history --prune DEVICE`",
                    human_bytes(*history_bytes)
                )
            } else {
                "destroy snapshots you no longer need (`snapctl list DEVICE` shows what each holds), \
                 or remove files"
                    .into()
            }),
            Error::Refused { hint, .. } | Error::Lost { hint, .. } => Some(hint.clone()),
            Error::Stream { .. } => Some(
                "the part that failed is not on the target (earlier parts of a multi-part stream are); if \
                 -s saved it, resume it as shown above, else send it again (with snaprecv -s, a broken \
                 transfer can be resumed; `snaprecv -n` checks a stored stream without applying it)"
                    .into(),
            ),
            _ => None,
        }
    }

    /// The process exit code for this error; the table is in man/snapctl.1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. } => 2,
            Error::NotFound { .. } | Error::Exists { .. } => 3,
            Error::InUse { .. } => 4,
            Error::NoSpace { .. } => 5,
            Error::Corrupt { .. } | Error::Damaged { .. } | Error::Lost { .. } => 6,
            Error::NotSnapfs { .. } | Error::Unsupported { .. } | Error::Refused { .. } => 7,
            Error::Io { .. } => 1,
            Error::Stream { .. } => 8,
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
            Error::NoSpace { needed_bytes, free_bytes, .. } => write!(
                f,
                "device full: the transaction needs at least {} more and {} is free; nothing was changed",
                human_bytes(*needed_bytes),
                human_bytes(*free_bytes)
            ),
            Error::NotFound { what } => write!(f, "{what} not found"),
            Error::Exists { what } => write!(f, "{what} already exists"),
            Error::Invalid { what } => write!(f, "{what}"),
            Error::Refused { what, .. } => write!(f, "{what}"),
            Error::Stream { what } => write!(f, "bad stream: {what}"),
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
