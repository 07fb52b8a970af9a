//! The process exit codes of the snapfs commands: one table, by name.
//!
//! Scripts rely on these values: never change one. `of_error` maps each error to one of
//! them, and the binaries exit with nothing else. The man pages' EXIT STATUS
//! sections and the README's table say the same thing in prose; tests/exit_codes.rs
//! fails when they disagree with `ALL` or with `BY_PROGRAM`.

use crate::error::{DeviceError, Error, ReceiveRefusal};

/// The command did what it was asked (also when standard output closed early, as by `head`).
pub const SUCCESS: i32 = 0;
/// An I/O call failed on the device, a host file or a pipe.
pub const IO_ERROR: i32 = 1;
/// A bad argument: name, path, size, duration, option combination (clap's usage errors too).
pub const INVALID: i32 = 2;
/// A device, path or snapshot that does not exist, or one that already exists.
pub const NOT_FOUND_OR_EXISTS: i32 = 3;
/// Another process holds the device's lock, or a block device is mounted or opened exclusively.
pub const IN_USE: i32 = 4;
/// The device has too little free space for the transaction; nothing was changed.
pub const NO_SPACE: i32 = 5;
/// Bytes on the device are not what the format allows, or a check or scrub found damage.
pub const CORRUPT: i32 = 6;
/// Not a snapfs pool, a newer format, or the command would overwrite or lose data.
pub const REFUSED: i32 = 7;
/// A replication stream that is damaged, truncated, not a snapfs stream, or a tree that is not valid.
pub const BAD_STREAM: i32 = 8;
/// `sync` or `put` committed, but stored a host file that kept changing while it was read.
pub const SOURCE_CHANGED: i32 = 9;

/// Every code: value, name, and the meaning each man page's entry and the README's row
/// for it must contain (case aside).
pub const ALL: &[(i32, &str, &str)] = &[
    (SUCCESS, "SUCCESS", "success"),
    (IO_ERROR, "IO_ERROR", "I/O error"),
    (INVALID, "INVALID", "bad arguments"),
    (NOT_FOUND_OR_EXISTS, "NOT_FOUND_OR_EXISTS", "not found or already exists"),
    (IN_USE, "IN_USE", "device in use"),
    (NO_SPACE, "NO_SPACE", "device full"),
    (CORRUPT, "CORRUPT", "corruption found"),
    (REFUSED, "REFUSED", "refused"),
    (BAD_STREAM, "BAD_STREAM", "bad stream"),
    (SOURCE_CHANGED, "SOURCE_CHANGED", "committed, but a host file kept changing while it was read"),
];

/// The codes each binary can exit with; its man page lists exactly these (snapctl.1
/// holds the whole table, which all commands share). Decided from what each binary
/// calls: clap exits INVALID on a usage error; only snaprecv reads a stream (BAD_STREAM);
/// only snapctl's sync and put exit SOURCE_CHANGED; snapsend opens the pool read-only,
/// so it never runs out of space; snapfmt writes one commit of an empty pool on at least
/// 16 MiB, so it does not either, but finds corruption when the label it wrote does not
/// read back, and meets nothing that already exists but a pool (REFUSED).
pub const BY_PROGRAM: &[(&str, &[i32])] = &[
    ("snapfmt", &[SUCCESS, IO_ERROR, INVALID, NOT_FOUND_OR_EXISTS, IN_USE, CORRUPT, REFUSED]),
    ("snapctl", &[SUCCESS, IO_ERROR, INVALID, NOT_FOUND_OR_EXISTS, IN_USE, NO_SPACE, CORRUPT, REFUSED, SOURCE_CHANGED]),
    ("snapsend", &[SUCCESS, IO_ERROR, INVALID, NOT_FOUND_OR_EXISTS, IN_USE, CORRUPT, REFUSED]),
    ("snaprecv", &[SUCCESS, IO_ERROR, INVALID, NOT_FOUND_OR_EXISTS, IN_USE, NO_SPACE, CORRUPT, REFUSED, BAD_STREAM]),
];

/// The exit code for an error: decided by its variant, never by its words.
pub fn of_error(error: &Error) -> i32 {
    match error {
        Error::Invalid { .. } | Error::BadResumeToken { .. } => INVALID,
        Error::NotFound { .. }
        | Error::MomentNotRetained { .. }
        | Error::SnapshotNotFound { .. }
        | Error::Exists { .. } => NOT_FOUND_OR_EXISTS,
        Error::InUse { .. } => IN_USE,
        Error::NoSpace { .. } => NO_SPACE,
        Error::Corrupt(_) | Error::Damaged { .. } => CORRUPT,
        Error::Device(DeviceError::ShrunkRead { .. } | DeviceError::LabelsLost { .. }) => CORRUPT,
        Error::Device(
            DeviceError::NotWritable { .. } | DeviceError::LockDirUnusable { .. } | DeviceError::ShrunkWrite(_),
        ) => REFUSED,
        Error::NotSnapfs { .. } | Error::Unsupported { .. } | Error::Refused(_) => REFUSED,
        Error::Receive(ReceiveRefusal::AlreadyReceived { .. }) => NOT_FOUND_OR_EXISTS,
        Error::Receive(_) => REFUSED,
        Error::Io { .. } | Error::StreamRead { .. } | Error::SourceChanged { .. } => IO_ERROR,
        // Whatever broke the part: the stream did not arrive whole (man/snaprecv.1).
        Error::Stream { .. } | Error::InvalidTree { .. } | Error::PartSaved { .. } => BAD_STREAM,
    }
}

/// The codes `program` can exit with, or None for a program not in `BY_PROGRAM`.
pub fn of_program(program: &str) -> Option<&'static [i32]> {
    BY_PROGRAM.iter().find(|(name, _)| *name == program).map(|(_, codes)| *codes)
}

/// The name of a code ("IN_USE"), or None for a code not in the table.
pub fn name(code: i32) -> Option<&'static str> {
    ALL.iter().find(|(value, _, _)| *value == code).map(|(_, name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_order_without_gaps_and_names_match_the_constants() {
        // Goal: ALL lists each code once, 0 up, so the docs' tables can be read against it.
        for (index, (value, _, meaning)) in ALL.iter().enumerate() {
            assert_eq!(*value, index as i32, "ALL is out of order at {meaning:?}");
        }
        assert_eq!(name(IN_USE), Some("IN_USE"));
        assert_eq!(name(SOURCE_CHANGED), Some("SOURCE_CHANGED"));
        assert_eq!(name(ALL.len() as i32), None);
    }

    #[test]
    fn every_program_exits_with_codes_of_the_table_only() {
        for (program, codes) in BY_PROGRAM {
            assert!(codes.contains(&SUCCESS) && codes.contains(&INVALID), "{program}: clap exits 0 and 2");
            for code in codes.iter() {
                assert!(name(*code).is_some(), "{program} lists code {code}, which ALL lacks");
            }
        }
        assert_eq!(of_program("snapctl").map(<[i32]>::len), Some(9));
        assert_eq!(of_program("snaptorture"), None);
    }
}
