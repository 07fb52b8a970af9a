//! snapsend: writes a full or incremental replication stream of a snapshot to stdout.
//!
//! This file parses arguments into what to send (`cmd::send::Source`), plans and sends
//! it (snapfs::cmd::send), prints the plan and summary (render.rs) and maps errors to
//! exit codes. Standard output carries the stream and nothing else (but for -n).

#[path = "snapsend/render.rs"]
mod render;
#[path = "shared/transfer_bar.rs"]
mod transfer_bar;

use clap::Parser;
use snapfs::cli::{open_pool, report, snapshot_name};
use snapfs::cmd;
use snapfs::cmd::send::{Source, Unfinished};
use snapfs::device::OpenMode;
use snapfs::error::{Error, Result};
use snapfs::stream::token::ResumeToken;
use std::io::{IsTerminal, Write};
use transfer_bar::transfer_bar;

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

/// The validated arguments: what to send, from which device.
fn source(args: &Args) -> Result<(Source, &str)> {
    match (args.args.as_slice(), &args.token) {
        ([device], Some(token)) => Ok((Source::Resume(ResumeToken::decode(token)?), device)),
        ([snapshot, device], None) => {
            let target = snapshot_name(snapshot)?.to_string();
            let base = args.incremental.as_ref().or(args.intermediates.as_ref());
            let base = base.map(|b| snapshot_name(b).map(String::from)).transpose()?;
            Ok((Source::Snapshot { target, base, intermediates: args.intermediates.is_some() }, device))
        }
        ([_], None) => Err(Error::invalid("give the snapshot to send (@SNAP) and the DEVICE")),
        (_, Some(_)) => Err(Error::invalid("with -t, give only the DEVICE: the token names the snapshot")),
        _ => unreachable!("clap enforces 1 or 2 arguments"),
    }
}

fn run(args: Args) -> Result<()> {
    let (source, device) = source(&args)?;
    if !args.dry_run && std::io::stdout().is_terminal() {
        return Err(Error::refused(
            "standard output is a terminal: refusing to write a binary stream to it",
            "pipe it into snaprecv (snapsend ... | snaprecv TARGET) or redirect it to a file; -n -v shows its size",
        ));
    }
    let mut pool = open_pool(PROGRAM, device, OpenMode::Read)?;
    let plan = cmd::send::plan_run(&mut pool, &source)?;
    let info = render::planned(&plan, args.parsable, args.dry_run && args.verbose);
    if args.dry_run {
        return std::io::stdout()
            .write_all(info.as_bytes())
            .map_err(|e| Error::io("cannot write to standard output", e));
    }
    eprint!("{info}");
    let bar = transfer_bar(args.verbose, Some(plan.total_bytes()));
    snapfs::cli::enlarge_pipe(1);
    let result = cmd::send::send(&mut pool, plan, &mut std::io::stdout().lock(), &mut bar.clone());
    bar.finish_and_clear();
    let sent = result.map_err(broken_pipe)?;
    if args.verbose {
        eprint!("{}", render::sent(&sent));
    }
    Ok(())
}

/// A reader that went away makes the stream incomplete: an error, unlike `| head` for text.
fn broken_pipe(u: Unfinished) -> Error {
    match u.error {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe => Error::io(
            format!("the receiving side closed the pipe after {} bytes; the stream is incomplete", u.written_bytes),
            std::io::Error::other(
                "broken pipe (the receiver keeps nothing of the unfinished part, unless it runs with -s)",
            ),
        ),
        other => other,
    }
}
