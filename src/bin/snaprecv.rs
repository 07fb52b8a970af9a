//! snaprecv: applies a replication stream from stdin to a pool, atomically.

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapfs::cli::{open_pool, report};
use snapfs::cmd;
use snapfs::device::OpenMode;
use snapfs::error::{Error, Result, human_bytes};
use snapfs::pool::LIVE_TREE_ID;
use snapfs::stream::dump::{describe, describe_begin};
use snapfs::stream::framing::StreamReader;
use snapfs::stream::receive::{Preparation, ReceiveOptions, Received, plural, receive};
use snapfs::stream::wire::Record;
use std::io::{IsTerminal, Read, Write};

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

fn run(args: Args) -> Result<()> {
    if args.abort {
        let Some(device) = &args.device else {
            return Err(Error::invalid("give the DEVICE whose partial receive to discard"));
        };
        let discarded = cmd::receive::discard(&mut open_pool(PROGRAM, device, OpenMode::Write)?, device)?;
        println!(
            "{PROGRAM}: discarded the partial receive of @{} ({}), freed {}",
            discarded.snapshot,
            plural(discarded.records_applied, "record"),
            human_bytes(discarded.freed_bytes)
        );
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
    if args.dump {
        if args.device.is_some() {
            return Err(Error::invalid("--dump reads a stream only; give no device"));
        }
        return dump(&mut input);
    }
    let options = ReceiveOptions { force: args.force, save_partial: args.save_partial };
    let bar = progress_bar(args.verbose);
    let mut progress = bar.clone();
    let mut reader = StreamReader::new(&mut input, Some(&mut progress));
    if args.verify {
        let target = match &args.device {
            Some(device) => Some(cmd::receive::Target::of(&mut open_pool(PROGRAM, device, OpenMode::Read)?)?),
            None => None,
        };
        let parts = cmd::receive::verify_stream(&mut reader, target, options);
        bar.finish_and_clear();
        let parts = parts?;
        let mut refused = None;
        for part in parts {
            println!(
                "{PROGRAM}: part {}/{}: {} records, {} bytes: every checksum and the END digest verified",
                part.begin.part + 1,
                part.begin.parts,
                part.records,
                part.bytes
            );
            println!("  {}", describe_begin(&part.begin));
            match (&args.device, part.refusal) {
                (Some(device), None) => println!(
                    "  would apply to {device}{}",
                    if part.preparation == Some(Preparation::RollBack) {
                        " after rolling its live tree back (-F)"
                    } else {
                        ""
                    }
                ),
                (Some(device), Some(e)) => {
                    println!("  would NOT apply to {device}: {e}");
                    refused.get_or_insert(e);
                }
                (None, _) => {}
            }
        }
        return refused.map_or(Ok(()), Err);
    }
    let Some(device) = &args.device else {
        return Err(Error::invalid("give the DEVICE to receive into (or -n to verify, --dump to print the stream)"));
    };
    let mut pool = open_pool(PROGRAM, device, OpenMode::Write)?;
    let mut report = |r: &Received| {
        let rolled = if r.rolled_back { " after rolling the live tree back" } else { "" };
        bar.suspend(|| {
            println!(
                "{PROGRAM}: received @{}{}{rolled}: {}, {}, txg {}",
                r.name,
                if r.resumed { " (resumed)" } else { "" },
                plural(r.records, "record"),
                human_bytes(r.bytes),
                r.txg
            )
        });
    };
    let result = receive(&mut pool, LIVE_TREE_ID, &mut reader, options, &mut report);
    bar.finish_and_clear();
    result.map(|_| ())
}

fn progress_bar(verbose: bool) -> ProgressBar {
    if !verbose {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{binary_bytes:>10} / {binary_total_bytes} {wide_bar} {binary_bytes_per_sec:>12} eta {eta}",
    )
    .expect("a valid template");
    bar.set_style(style);
    bar
}

fn dump(input: &mut dyn Read) -> Result<()> {
    let mut reader = StreamReader::new(input, None);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut emit = |reader: &StreamReader, text: String| {
        let p = reader.position;
        writeln!(out, "{:>12} {:>3}:{:<8} {text}", p.offset, p.part, p.record)
            .map_err(|e| Error::io("cannot write to standard output", e))
    };
    while let Some(begin) = reader.next_part()? {
        emit(&reader, describe(&Record::Begin(begin)))?;
        loop {
            let record = reader.next_record()?;
            let end = matches!(record, Record::End(_));
            emit(&reader, describe(&record))?;
            if end {
                break;
            }
        }
    }
    Ok(())
}
