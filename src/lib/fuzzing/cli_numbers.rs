//! Fuzz target: the parsers of the numbers an operator types (durations, compression
//! levels, resume tokens, moments, `set` properties, file-selection rules) and the limit
//! every file offset and size from an argument meets (`record::file_end`).
//!
//! Each must turn any text into a value within its limits or a clean `Invalid` error
//! (exit 2) that says what is wrong; never a panic, never a wrapped number. What parses
//! also prints back to text that parses to the same value.

use crate::cli::{DURATION_SECONDS_MAX, format_duration, parse_compression, parse_duration};
use crate::error::Error;
use crate::fs::record::{FILE_BYTES_MAX, file_end};
use crate::stream::token::ResumeToken;

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    duration(&text);
    compression(&text);
    token(&text);
    moment(&text);
    property(&text);
    rule(&text);
    offsets(data);
}

/// Now, as the parsers relative to it take it: 2026-01-01T00:00:00Z.
const NOW_NS: u64 = 1_767_225_600 * 1_000_000_000;

fn moment(text: &str) {
    match crate::cli::moment::parse_moment(text, NOW_NS) {
        Ok(ns) => assert!(ns <= NOW_NS, "{text:?} gave a moment after now"),
        Err(e) => assert_eq!(crate::cli::exit_code::of_error(&e), crate::cli::exit_code::INVALID, "{e}"),
    }
}

fn property(text: &str) {
    if let Err(e) = crate::cli::parse_property(text) {
        assert_eq!(crate::cli::exit_code::of_error(&e), crate::cli::exit_code::INVALID, "{e}");
    }
}

/// The text as a glob and as conditions; a rule that parses judges a file without panicking.
fn rule(text: &str) {
    use crate::fs::select::{Rule, Xattrs};
    struct NoXattrs;
    impl Xattrs for NoXattrs {
        fn xattr(&mut self, _: &[u8]) -> crate::error::Result<Option<Vec<u8>>> {
            Ok(Some(b"cat".to_vec()))
        }
    }
    let one = [text.to_string()];
    for (matches, wheres) in [(&one[..], &[][..]), (&[][..], &one[..])] {
        match Rule::parse(matches, &[], wheres, NOW_NS) {
            Ok(rule) => {
                let file = crate::fs::inode::Inode::new(crate::fs::inode::S_IFREG | 0o644, Default::default());
                let _ = rule.selects(text.as_bytes(), &file, &mut NoXattrs).expect("no xattr read fails");
            }
            Err(e) => assert_eq!(crate::cli::exit_code::of_error(&e), crate::cli::exit_code::INVALID, "{e}"),
        }
    }
}

fn refused_cleanly(error: &Error, words: &str) {
    assert_eq!(crate::cli::exit_code::of_error(error), crate::cli::exit_code::INVALID, "{error}");
    assert!(error.to_string().contains(words), "{error}");
}

fn duration(text: &str) {
    match parse_duration(text) {
        Ok(seconds) => {
            assert!(seconds <= DURATION_SECONDS_MAX, "{text:?} gave {seconds}");
            let printed = format_duration(seconds);
            assert_eq!(parse_duration(&printed).ok(), Some(seconds), "{text:?} printed as {printed:?}");
        }
        Err(e) => refused_cleanly(&e, "bad duration"),
    }
}

fn compression(text: &str) {
    match parse_compression(text) {
        // Whatever it accepts names itself back: what status prints parses again.
        Ok(codec) => assert_eq!(parse_compression(&codec.name()).ok(), Some(codec), "{text:?}"),
        Err(e) => refused_cleanly(&e, "bad compression"),
    }
}

fn token(text: &str) {
    match ResumeToken::decode(text) {
        Ok(token) => assert_eq!(ResumeToken::decode(&token.encode()).ok(), Some(token)),
        Err(e) => refused_cleanly(&e, "bad resume token"),
    }
}

/// The first 16 bytes as an offset and a length, as `put --offset` gives them.
fn offsets(data: &[u8]) {
    let Some(words) = data.get(..16) else { return };
    let offset = u64::from_le_bytes(words[..8].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(words[8..].try_into().expect("8 bytes"));
    let fits = offset.checked_add(len).is_some_and(|end| end <= FILE_BYTES_MAX);
    match file_end(offset, len) {
        Ok(end) => {
            assert!(fits, "{len} bytes at {offset} accepted");
            assert_eq!(end, offset + len);
        }
        Err(e) => {
            assert!(!fits, "{len} bytes at {offset} refused: {e}");
            refused_cleanly(&e, "the largest file snapfs stores");
        }
    }
}
