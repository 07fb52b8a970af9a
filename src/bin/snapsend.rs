//! snapsend: writes a full or incremental replication stream of a snapshot to stdout.
//!
//! This file parses arguments into what to send (args.rs, a `cmd::send::Source`),
//! plans and sends it (snapfs::cmd::send), prints the plan and the summary (render.rs)
//! and maps errors to exit codes. Standard output carries the stream and nothing else
//! (but for -n, which prints the plan there instead).

#[path = "snapsend/args.rs"]
mod args;
#[path = "snapsend/render.rs"]
mod render;
#[path = "shared/transfer_bar.rs"]
mod transfer_bar;

use args::{Args, source};
use clap::Parser;
use snapfs::cli::{open_pool, report};
use snapfs::cmd;
use snapfs::cmd::send::Unfinished;
use snapfs::device::OpenMode;
use snapfs::error::{Error, Refusal, Result};
use std::io::{IsTerminal, Write};
use transfer_bar::transfer_bar;

const PROGRAM: &str = "snapsend";

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        std::process::exit(report(PROGRAM, &e));
    }
}

fn run(args: Args) -> Result<()> {
    let (source, device) = source(&args)?;
    if !args.dry_run && std::io::stdout().is_terminal() {
        return Err(Error::Refused(Refusal::StreamToTerminal));
    }
    snapfs::cli::yield_to_writers();
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
