//! What the four binaries share: opening a device, naming snapshots and paths, parsing
//! durations, printing times and sizes, and turning errors into messages and exit codes.
//!
//! Exit codes: the table is `exit_code` (man/*.1 and the README say it in prose); what
//! to do next after an error: `hint`.

pub mod exit_code;
pub mod hint;
pub mod moment;

use crate::cmd::set::Property;
use crate::compress::Codec;
use crate::device::wait::{WaitLimit, WaitPolicy};
use crate::device::{OpenMode, open_tool_device};
use crate::error::{Error, Result};
use crate::pool::Pool;
pub use hint::hint;
use std::sync::{Arc, OnceLock};
// What a command names and how times print live below this module; the binaries take
// them from here with the rest.
pub use crate::cmd::PathSpec;
pub use crate::utc::{format_time, format_time_ns};

static WAIT_LIMIT: OnceLock<WaitLimit> = OnceLock::new();

/// How long this process's writers wait for another writer (`--wait SECONDS`,
/// `--nowait`; without either, until it is done). Set once, before any open.
pub fn set_wait_limit(limit: WaitLimit) {
    let _ = WAIT_LIMIT.set(limit);
}

/// The wait policy of this process: its limit, and a line on stderr after a second.
pub fn wait_policy(program: &str) -> WaitPolicy {
    let program = program.to_string();
    WaitPolicy {
        limit: WAIT_LIMIT.get().copied().unwrap_or(WaitLimit::Forever),
        announce: Arc::new(move |whom| eprintln!("{program}: waiting for {whom}")),
    }
}

/// `--wait SECONDS` / `--nowait` as a limit (neither: None, the default).
pub fn wait_limit(seconds: Option<u64>, nowait: bool) -> Option<WaitLimit> {
    match (seconds, nowait) {
        (_, true) => Some(WaitLimit::No),
        (Some(s), false) => Some(WaitLimit::For(std::time::Duration::from_secs(s))),
        (None, false) => None,
    }
}

/// Opens the pool on DEVICE for reading or writing, and prints what the operator should
/// know about how it was opened. A writer waits for another writer as the wait limit
/// allows; a reader takes no lock and pins what it reads (pool/pins.rs).
pub fn open_pool(program: &str, device: &str, mode: OpenMode) -> Result<Pool> {
    let wait = wait_policy(program);
    let dev = open_tool_device(device, mode, &wait)?;
    let pool = Pool::open_for_tool(dev, mode, wait, &reader_name())?;
    for warning in &pool.warnings {
        match hint::warning_advice(warning) {
            Some(advice) => eprintln!("{program}: warning: {warning}; {advice}"),
            None => eprintln!("{program}: warning: {warning}"),
        }
    }
    Ok(pool)
}

/// This process as writers waiting for it name it: its command line, shortened.
fn reader_name() -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if let Some(program) = words.first_mut() {
        *program = program.rsplit('/').next().unwrap_or(program).to_string();
    }
    let mut line = words.join(" ");
    if line.len() > 120 {
        let cut = (0..=117).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// Prints an error with its hint; returns the exit code.
pub fn report(program: &str, error: &Error) -> i32 {
    if let Error::Io { source, .. } = error {
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            return exit_code::SUCCESS; // the reader went away, as with `| head`: not an error
        }
    }
    eprintln!("{program}: error: {error}");
    if let Some(hint) = hint(error) {
        eprintln!("hint: {hint}");
    }
    let code = exit_code::of_error(error);
    // The man page of each binary lists the codes it can exit with: a test that drives a
    // binary into a code its page lacks fails here rather than passing with stale docs.
    debug_assert!(
        exit_code::of_program(program).is_none_or(|codes| codes.contains(&code)),
        "{program} exits {code} ({}), which exit_code::BY_PROGRAM and man/{program}.1 do not list: {error}",
        exit_code::name(code).unwrap_or("unnamed")
    );
    code
}

/// Prints bytes written to the device when SNAPFS_IO_STATS is set (benchmarks, tests).
pub fn print_io_stats(program: &str, pool: &Pool) {
    print_io_written(program, pool.store.dev.written_bytes());
}

/// `print_io_stats` for a command that opened the pool several times: the sum.
pub fn print_io_written(program: &str, written_bytes: u64) {
    if std::env::var_os("SNAPFS_IO_STATS").is_some() {
        eprintln!("{program}: io: written_bytes={written_bytes}");
    }
}

/// Selected inodes one commit of a subset snapshot's extraction copies at most
/// (pool/extraction.rs): `SNAPFS_EXTRACT_INODES`, else `EXTRACT_INODES`.
pub fn extract_inodes() -> Result<usize> {
    Ok(env_count("SNAPFS_EXTRACT_INODES", "a number of inodes")?.map_or(crate::pool::EXTRACT_INODES, |n| n as usize))
}

/// A testing aid: `SNAPFS_EXTRACT_STOP_AFTER=N` stops an extraction after its Nth commit,
/// as a kill would, so that tests and the crash harness can leave one to `extract`.
pub fn extract_stop_after() -> Result<Option<u64>> {
    env_count("SNAPFS_EXTRACT_STOP_AFTER", "a number of commits")
}

/// The whole number above 0 environment variable `name` holds, if it is set.
fn env_count(name: &str, what: &str) -> Result<Option<u64>> {
    let Some(value) = std::env::var_os(name) else { return Ok(None) };
    match value.to_str().and_then(|v| v.parse::<u64>().ok()) {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(Error::invalid(format!("{name}={}: give {what} above 0", value.to_string_lossy()))),
    }
}

/// Grows a pipe on `fd` to 1 MiB, so that a stream crosses it in fewer, larger steps;
/// anything that is not a pipe, or a kernel that refuses, is left as it is.
pub fn enlarge_pipe(fd: i32) {
    // SAFETY: F_SETPIPE_SZ takes an int and fails harmlessly on anything but a pipe.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
}

pub use crate::pool::snapshot_name;

/// The longest duration an argument may give: the most seconds whose nanoseconds fit
/// the u64 that commit times are kept in (about 584 years).
pub const DURATION_SECONDS_MAX: u64 = u64::MAX / 1_000_000_000;

/// "24h", "30m", "7d", "3600s", "3600", "0" -> seconds, at most DURATION_SECONDS_MAX.
/// CPU niceness a long reader adds to its own (see `yield_to_writers`).
pub const READER_NICENESS: i32 = 10;

/// Long readers (snapsend, export, check, scrub) give way to writers: ten steps of CPU
/// niceness and the lowest best-effort I/O priority, for this process and the threads
/// it starts after. On an idle machine that costs nothing; beside a `sync` it keeps
/// the writer near its time alone (bench/readers_bench.sh), where at equal priority a
/// sender streaming as fast as it can took half the CPU and the disk. Run under
/// `nice -n -10` (as root) for the former priority. Failures are ignored: the
/// priority stays as it was.
pub fn yield_to_writers() {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_BEST_EFFORT_LOWEST: libc::c_long = (2 << 13) | 7;
    // SAFETY: system calls on this process that take and return plain integers.
    unsafe {
        libc::nice(READER_NICENESS);
        libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0 as libc::c_long, IOPRIO_BEST_EFFORT_LOWEST);
    }
}

pub fn parse_duration(text: &str) -> Result<u64> {
    let bad = || {
        Error::invalid(format!(
            "bad duration {text:?}: use a number with s, m, h, d or w, like 24h, of at most \
             {DURATION_SECONDS_MAX}s (about 584 years)"
        ))
    };
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(bad()),
    };
    value.checked_mul(scale).filter(|&seconds| seconds <= DURATION_SECONDS_MAX).ok_or_else(bad)
}

/// `--compress` and `set compression=`: "zstd" (level 3), "zstd:1" to "zstd:19", "lz4",
/// or "off" (also "none").
pub fn parse_compression(text: &str) -> Result<Codec> {
    Codec::parse(text).ok_or_else(|| {
        Error::invalid(format!("bad compression {text:?}: use zstd:1 to zstd:19, zstd (level 3), lz4, or off"))
    })
}

/// `snapctl set`'s operand, PROPERTY=VALUE, as the change it asks for.
pub fn parse_property(text: &str) -> Result<Property> {
    const PROPERTIES: &str = "snapctl sets compression=VALUE (zstd:N, lz4 or off), history=DURATION (24h, 7d, 0) \
                              or history-space=PERCENT (10%, or 0 for no cap)";
    match text.split_once('=') {
        Some(("compression", value)) => Ok(Property::Compression(parse_compression(value)?)),
        Some(("history", value)) => Ok(Property::History { seconds: parse_duration(value)? }),
        Some(("history-space", value)) => {
            let digits = value.strip_suffix('%').unwrap_or(value);
            match digits.parse::<u8>() {
                Ok(percent) if percent <= 100 => Ok(Property::HistorySpace { percent }),
                _ => Err(Error::invalid(format!(
                    "bad history-space {value:?}: give a share of the device from 0% (no cap) to 100%, like 10%"
                ))),
            }
        }
        _ => Err(Error::invalid(format!("bad property {text:?}: {PROPERTIES}"))),
    }
}

pub fn format_duration(seconds: u64) -> String {
    match seconds {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a binary driven into a code its man page does not list fails the test that
    // drove it (debug builds, as `cargo test` builds the binaries); listed codes pass.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "snapsend exits 8 (BAD_STREAM), which exit_code::BY_PROGRAM")]
    fn a_code_outside_the_binarys_man_page_fails_in_debug_builds() {
        assert_eq!(report("snaprecv", &Error::stream("test")), exit_code::BAD_STREAM);
        assert_eq!(report("snaptorture", &Error::stream("test")), exit_code::BAD_STREAM);
        report("snapsend", &Error::stream("test"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h").unwrap(), 86400);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(format_duration(86400), "1d");
    }

    /// Goal: a duration that overflows seconds or nanoseconds is refused, not wrapped.
    /// Method: the edges of u64 seconds and of DURATION_SECONDS_MAX, in each unit.
    #[test]
    fn durations_at_their_limits() {
        assert_eq!(parse_duration(&format!("{DURATION_SECONDS_MAX}s")).unwrap(), DURATION_SECONDS_MAX);
        assert_eq!(parse_duration(&format!("{}m", DURATION_SECONDS_MAX / 60)).unwrap(), DURATION_SECONDS_MAX / 60 * 60);
        for text in [
            format!("{}s", DURATION_SECONDS_MAX + 1),
            format!("{}m", DURATION_SECONDS_MAX / 60 + 1),
            "18446744073709551615".into(),
            "18446744073709551616".into(),
            "18446744073709551615w".into(),
            "30501w".into(),
            "-1".into(),
            "+5".into(),
            "".into(),
            "1e3".into(),
            "٣h".into(),
        ] {
            let e = parse_duration(&text).unwrap_err();
            assert_eq!(exit_code::of_error(&e), exit_code::INVALID, "{text:?}");
            assert!(e.to_string().contains("at most 18446744073s"), "{text:?}: {e}");
        }
    }

    #[test]
    fn compression_levels() {
        assert_eq!(parse_compression("none").unwrap(), Codec::Off);
        assert_eq!(parse_compression("off").unwrap(), Codec::Off);
        assert_eq!(parse_compression("lz4").unwrap(), Codec::Lz4);
        assert_eq!(parse_compression("zstd").unwrap(), Codec::Zstd { level: 3 });
        assert_eq!(parse_compression("zstd:19").unwrap(), Codec::Zstd { level: 19 });
        for codec in [Codec::Off, Codec::Lz4, Codec::Zstd { level: 1 }, Codec::Zstd { level: 19 }] {
            assert_eq!(parse_compression(&codec.name()).unwrap(), codec, "names read back");
        }
        for text in ["zstd:0", "zstd:20", "zstd:256", "zstd:-1", "zstd:", "gzip", "lz4:1", "Off", ""] {
            assert_eq!(exit_code::of_error(&parse_compression(text).unwrap_err()), exit_code::INVALID, "{text}");
        }
        assert_eq!(parse_property("compression=lz4").unwrap(), Property::Compression(Codec::Lz4));
        assert_eq!(parse_property("history=1h").unwrap(), Property::History { seconds: 3600 });
        assert_eq!(parse_property("history-space=10%").unwrap(), Property::HistorySpace { percent: 10 });
        assert_eq!(parse_property("history-space=0").unwrap(), Property::HistorySpace { percent: 0 });
        for text in [
            "compression",
            "compress=lz4",
            "compression=gzip",
            "=lz4",
            "history=1x",
            "history-space=101%",
            "history-space=-1",
            "history-space=10%%",
        ] {
            let e = parse_property(text).unwrap_err();
            assert_eq!(exit_code::of_error(&e), exit_code::INVALID, "{text}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59Z");
    }

    /// Goal: times far in the past or future, as a host file or a stream may carry them,
    /// print without a panic or an overflow. Method: the ends of i64 seconds and u64 ns.
    #[test]
    fn times_at_the_ends_of_their_range() {
        assert!(format_time(i64::MIN).ends_with('Z'));
        assert!(format_time(i64::MAX).ends_with('Z'));
        assert_eq!(format_time_ns(u64::MAX), "2554-07-21T23:34:33Z");
    }

    #[test]
    fn path_specs() {
        let p = PathSpec::parse("@nightly:docs/a").unwrap();
        assert_eq!(p.snapshot.as_deref(), Some("nightly"));
        assert_eq!(p.path, "docs/a");
        assert_eq!(PathSpec::parse("docs").unwrap().snapshot, None);
        assert!(PathSpec::parse("@bad name").is_err());
    }
}
