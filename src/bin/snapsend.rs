//! snapsend: writes a full or incremental replication stream of a snapshot to stdout.

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapfs::cli::{open_pool, report, snapshot_name};
use snapfs::device::OpenMode;
use snapfs::error::{Error, Refusal, Result, human_bytes};
use snapfs::pool::LIVE_TREE_ID;
use snapfs::stream::framing::StreamWriter;
use snapfs::stream::send::{Part, part_sizes, plan, plan_resume, send};
use snapfs::stream::token::ResumeToken;
use std::io::{IsTerminal, Write};

const PROGRAM: &str = "snapsend";

/// Write a replication stream of snapshot @SNAP of DEVICE to standard output: full, or
/// incremental from a base snapshot that the receiver has. Pipe it into snaprecv.
#[derive(Parser)]
#[command(
    name = "snapsend",
    version,
    about,
    long_about = None,
    override_usage = "snapsend [-i @BASE | -I @BASE] [-n] [-v] [-P] @SNAP DEVICE\n       snapsend -t TOKEN [-n] [-v] [-P] DEVICE"
)]
struct Args {
    /// Send only what changed since @BASE, which the receiver must have as its newest snapshot.
    #[arg(short = 'i', value_name = "@BASE", conflicts_with = "intermediates")]
    incremental: Option<String>,
    /// Like -i, and send every snapshot between @BASE and @SNAP too, each received as its own snapshot.
    #[arg(short = 'I', value_name = "@BASE")]
    intermediates: Option<String>,
    /// Dry run: send nothing; with -v or -P, print the exact size of the stream.
    #[arg(short = 'n')]
    dry_run: bool,
    /// Show a progress bar on stderr (bytes, rate, time left, against the exact size).
    #[arg(short = 'v')]
    verbose: bool,
    /// Print parsable lines for scripts: one per part, then `size BYTES`.
    #[arg(short = 'P')]
    parsable: bool,
    /// Send the rest of a part whose receive broke: TOKEN comes from `snaprecv -s` or
    /// `snapctl status` on the receiving side.
    #[arg(short = 't', value_name = "TOKEN", conflicts_with_all = ["incremental", "intermediates"])]
    token: Option<String>,
    /// @SNAP (the snapshot to send; not with -t), then DEVICE (block device or image file).
    #[arg(num_args = 1..=2, required = true, value_name = "ARGS")]
    args: Vec<String>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        std::process::exit(report(PROGRAM, &e));
    }
}

fn part_line(part: &Part, bytes: u64) -> String {
    match &part.base {
        Some(base) if part.resume.is_some() => {
            format!("resume\t@{}\t@{}\t{bytes}", base.name, part.target.name)
        }
        Some(base) => format!("incremental\t@{}\t@{}\t{bytes}", base.name, part.target.name),
        None if part.resume.is_some() => format!("resume\t@{}\t{bytes}", part.target.name),
        None => format!("full\t@{}\t{bytes}", part.target.name),
    }
}

fn run(args: Args) -> Result<()> {
    let (snapshot, device) = match (args.args.as_slice(), &args.token) {
        ([device], Some(_)) => (None, device.clone()),
        ([snapshot, device], None) => (Some(snapshot_name(snapshot)?.to_string()), device.clone()),
        ([_], None) => return Err(Error::invalid("give the snapshot to send (@SNAP) and the DEVICE")),
        (_, Some(_)) => return Err(Error::invalid("with -t, give only the DEVICE: the token names the snapshot")),
        _ => unreachable!("clap enforces 1 or 2 arguments"),
    };
    let token = args.token.as_deref().map(ResumeToken::decode).transpose()?;
    let (base, intermediates) = match (&args.incremental, &args.intermediates) {
        (Some(b), None) => (Some(snapshot_name(b)?), false),
        (None, Some(b)) => (Some(snapshot_name(b)?), true),
        _ => (None, false),
    };
    if !args.dry_run && std::io::stdout().is_terminal() {
        return Err(Error::Refused(Refusal::StreamToTerminal));
    }
    let mut pool = open_pool(PROGRAM, &device, OpenMode::Read)?;
    let parts = match (&token, &snapshot) {
        (Some(token), _) => vec![plan_resume(&pool, LIVE_TREE_ID, token)?],
        (None, Some(target)) => plan(&pool, LIVE_TREE_ID, base, target, intermediates)?,
        (None, None) => unreachable!("checked above"),
    };
    let sizes = part_sizes(&mut pool, &parts)?;
    let total: u64 = sizes.bytes.iter().sum();
    let mut info = String::new();
    if args.parsable {
        for (part, bytes) in parts.iter().zip(&sizes.bytes) {
            info.push_str(&part_line(part, *bytes));
            info.push('\n');
        }
        info.push_str(&format!("size\t{total}\n"));
    } else if args.dry_run && args.verbose {
        for (part, bytes) in parts.iter().zip(&sizes.bytes) {
            info.push_str(&format!("would send {}: {} ({bytes} bytes)\n", part.describe(), human_bytes(*bytes)));
        }
        info.push_str(&format!("total size is {} ({total} bytes), exact\n", human_bytes(total)));
    }
    if args.dry_run {
        return std::io::stdout()
            .write_all(info.as_bytes())
            .map_err(|e| Error::io("cannot write to standard output", e));
    }
    eprint!("{info}");
    let bar = progress_bar(args.verbose, total);
    snapfs::cli::enlarge_pipe(1);
    let stdout = std::io::stdout().lock();
    // Smaller than a data record: whole records bypass the buffer, small ones gather.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout);
    let mut progress = bar.clone();
    let mut writer = StreamWriter::new(&mut out, Some(&mut progress));
    let result = send(&mut pool, &parts, Some(sizes), &mut writer);
    let written = writer.total_bytes;
    bar.finish_and_clear();
    let summary = result.map_err(|e| broken_pipe(e, written))?;
    if args.verbose {
        eprintln!(
            "{PROGRAM}: sent {} in {} part{} ({} of file data)",
            human_bytes(summary.bytes),
            parts.len(),
            if parts.len() == 1 { "" } else { "s" },
            human_bytes(summary.data_bytes)
        );
    }
    Ok(())
}

fn progress_bar(verbose: bool, total: u64) -> ProgressBar {
    if !verbose {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{binary_bytes:>10} / {binary_total_bytes} {wide_bar} {binary_bytes_per_sec:>12} eta {eta}",
    )
    .expect("a valid template");
    bar.set_style(style);
    bar
}

/// A reader that went away makes the stream incomplete: an error, unlike `| head` for text.
fn broken_pipe(e: Error, written: u64) -> Error {
    match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe => Error::io(
            format!("the receiving side closed the pipe after {written} bytes; the stream is incomplete"),
            std::io::Error::other(
                "broken pipe (the receiver keeps nothing of the unfinished part, unless it runs with -s)",
            ),
        ),
        other => other,
    }
}
