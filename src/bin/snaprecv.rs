//! snaprecv: applies a replication stream from stdin to a pool, atomically.
//!
//! This file parses arguments into a mode, calls the library (stream::receive, and
//! snapfs::cmd::receive for the rest), prints each outcome (render.rs) and maps errors
//! to exit codes.

#[path = "snaprecv/render.rs"]
mod render;
#[path = "shared/transfer_bar.rs"]
mod transfer_bar;

use clap::Parser;
use snapfs::cli::{open_pool, report};
use snapfs::cmd;
use snapfs::device::OpenMode;
use snapfs::error::{Error, Result};
use snapfs::pool::LIVE_TREE_ID;
use snapfs::stream::framing::StreamReader;
use snapfs::stream::receive::{ReceiveOptions, Received, receive};
use std::io::{IsTerminal, Write};
use transfer_bar::transfer_bar;

const PROGRAM: &str = "snaprecv";

/// Apply a replication stream from standard input to DEVICE. Each snapshot in the
/// stream is applied atomically: nothing of it is visible until its last record is
/// checked, and a damaged, truncated or interrupted stream leaves DEVICE as it was.
#[derive(Parser)]
#[command(
    name = "snaprecv",
    version,
    about,
    long_about = None,
    override_usage = "snaprecv [-F] [-s] [-v] DEVICE < STREAM\n       snaprecv -A DEVICE\n       snaprecv -n [-v] [DEVICE] < STREAM\n       snaprecv --dump < STREAM"
)]
struct Args {
    /// Roll the live tree back to its newest snapshot first if it changed since (no
    /// snapshot is ever destroyed); for a full stream, replace a live tree that holds files.
    #[arg(short = 'F')]
    force: bool,
    /// If the stream breaks, keep what was received on DEVICE and print a token to resume
    /// it with `snapsend -t` (`snapctl status` shows it too).
    #[arg(short = 's')]
    save_partial: bool,
    /// Discard a partial receive that -s saved on DEVICE, freeing its space; reads no stream.
    #[arg(short = 'A', conflicts_with_all = ["verify", "force", "save_partial", "dump"])]
    abort: bool,
    /// Verify only: read the whole stream, check every record and digest, and say whether
    /// it would apply to DEVICE (if given). Changes nothing.
    #[arg(short = 'n', long = "verify")]
    verify: bool,
    /// Print every record in readable form; applies nothing. No DEVICE.
    #[arg(long, conflicts_with_all = ["verify", "force"])]
    dump: bool,
    /// Show a progress bar on stderr (bytes, rate, time left against the sender's exact size).
    #[arg(short = 'v')]
    verbose: bool,
    /// Block device or image file to receive into.
    device: Option<String>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        std::process::exit(report(PROGRAM, &e));
    }
}

/// What a run does, its arguments checked.
enum Mode {
    /// Discard the partial receive saved on a device (reads no stream).
    Abort(String),
    /// Print every record of the stream.
    Dump,
    /// Verify the stream, and whether it would apply to a device if given.
    Verify(Option<String>),
    Receive(String),
}

fn mode(args: &Args) -> Result<Mode> {
    let device = args.device.clone();
    if args.abort {
        return device
            .map(Mode::Abort)
            .ok_or_else(|| Error::invalid("give the DEVICE whose partial receive to discard"));
    }
    match device {
        Some(_) if args.dump => Err(Error::invalid("--dump reads a stream only; give no device")),
        None if args.dump => Ok(Mode::Dump),
        device if args.verify => Ok(Mode::Verify(device)),
        Some(device) => Ok(Mode::Receive(device)),
        None => Err(Error::invalid("give the DEVICE to receive into (or -n to verify, --dump to print the stream)")),
    }
}

fn run(args: Args) -> Result<()> {
    let mode = mode(&args)?;
    if let Mode::Abort(device) = &mode {
        let discarded = cmd::receive::discard(&mut open_pool(PROGRAM, device, OpenMode::Write)?, device)?;
        print!("{}", render::discarded(&discarded));
        return Ok(());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::invalid(
            "standard input is a terminal; give the stream on standard input (snapsend ... | snaprecv DEVICE)",
        ));
    }
    snapfs::cli::enlarge_pipe(0);
    let mut input = std::io::BufReader::with_capacity(1 << 20, stdin.lock());
    if let Mode::Dump = mode {
        let mut out = std::io::stdout().lock();
        return cmd::receive::dump(&mut input, &mut |at, record| {
            out.write_all(render::dump_line(at, record).as_bytes())
                .map_err(|e| Error::io("cannot write to standard output", e))
        });
    }
    let options = ReceiveOptions { force: args.force, save_partial: args.save_partial };
    let bar = transfer_bar(args.verbose, None);
    let mut progress = bar.clone();
    let mut reader = StreamReader::new(&mut input, Some(&mut progress));
    let result = match mode {
        Mode::Abort(_) | Mode::Dump => unreachable!("handled above"),
        Mode::Verify(device) => {
            let target = match &device {
                Some(device) => Some(cmd::receive::Target::of(&mut open_pool(PROGRAM, device, OpenMode::Read)?)?),
                None => None,
            };
            let parts = cmd::receive::verify_stream(&mut reader, target, options);
            bar.finish_and_clear();
            let mut refused = None;
            for part in parts? {
                print!("{}", render::verified(&part, device.as_deref()));
                refused = refused.or(part.refusal);
            }
            refused.map_or(Ok(()), Err)
        }
        Mode::Receive(device) => {
            let mut pool = open_pool(PROGRAM, &device, OpenMode::Write)?;
            let mut report = |r: &Received| bar.suspend(|| print!("{}", render::received(r)));
            receive(&mut pool, LIVE_TREE_ID, &mut reader, options, &mut report).map(drop)
        }
    };
    bar.finish_and_clear();
    result
}
