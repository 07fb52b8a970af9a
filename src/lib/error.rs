//! Errors that an operator can meet: bad devices, corrupt blocks, full disks, bad names.
//!
//! Programmer errors are assertions, not variants here. Every variant carries enough to
//! say what went wrong and where; `hint()` says what to try next.

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
            Error::NoSpace { history_bytes, snapshots, .. } => Some(no_space_hint(*snapshots, *history_bytes)),
            Error::Refused { hint, .. } | Error::Lost { hint, .. } => Some(hint.clone()),
            Error::Stream { .. } => Some(
                "the part that failed is not on the target (earlier parts of a multi-part stream are); if \
                 -s saved it, resume it as shown above, else send it again (with snaprecv -s, a broken \
                 transfer can be resumed; `snaprecv -n` checks a stored stream without applying it)"
                    .into(),
            ),
            Error::InvalidTree { .. } => Some(
                "nothing of this part was received; sending it again cannot help: run `snapctl check` on \
                 the sending pool, and receive only streams from pools you trust"
                    .into(),
            ),
            Error::SourceChanged { .. } => Some(
                "run the command again: it reads the source afresh; if the source keeps changing, copy \
                 a frozen view of it (a file system snapshot) or pause what writes to it"
                    .into(),
            ),
            _ => None,
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
            Error::Io { .. } | Error::SourceChanged { .. } => exit_code::IO_ERROR,
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

/// What can make room on a full pool: only what it has (snapshots, retained commits),
/// and files, which any pool has.
fn no_space_hint(snapshots: u64, history_bytes: u64) -> String {
    let mut ways = Vec::new();
    if snapshots > 0 {
        ways.push(format!(
            "destroy snapshots you no longer need (the pool has {snapshots}; `snapctl list DEVICE` shows what each holds)"
        ));
    }
    if history_bytes > 0 {
        ways.push(format!(
            "release the commit history ({}) with `snapctl history --prune DEVICE`",
            human_bytes(history_bytes)
        ));
    }
    ways.push("remove files you no longer need (`snapctl rm PATH DEVICE`), or use a larger device".into());
    ways.join(", or ")
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
