//! snaprecv's arguments, as clap parses them (man/snaprecv.1 documents each;
//! tests/man_pages.rs keeps them in step), and the mode they select, checked.

use clap::Parser;
use snapfs::error::{Error, Result};

/// Apply a replication stream from standard input to DEVICE. Each snapshot in the
/// stream is applied atomically: nothing of it is visible until its last record is
/// checked, and a damaged, truncated or interrupted stream leaves DEVICE as it was.
#[derive(Parser)]
#[command(
    name = "snaprecv",
    version,
    about,
    long_about = None,
    override_usage = "snaprecv [-F] [-s] [-v] [--wait SECONDS] [--nowait] DEVICE < STREAM\n       snaprecv -A DEVICE\n       snaprecv -n [-v] [DEVICE] < STREAM\n       snaprecv --dump < STREAM"
)]
pub struct Args {
    /// Roll the live tree back to its newest snapshot first if it changed since (no
    /// snapshot is ever destroyed); for a full stream, replace a live tree that holds files.
    #[arg(short = 'F')]
    pub force: bool,
    /// If the stream breaks, keep what was received on DEVICE and print a token to resume
    /// it with `snapsend -t` (`snapctl status` shows it too).
    #[arg(short = 's')]
    pub save_partial: bool,
    /// Discard a partial receive that -s saved on DEVICE, freeing its space; reads no stream.
    #[arg(short = 'A', conflicts_with_all = ["verify", "force", "save_partial", "dump"])]
    pub abort: bool,
    /// Verify only: read the whole stream, check every record and digest, and say whether
    /// it would apply to DEVICE (if given). Changes nothing.
    #[arg(short = 'n', long = "verify")]
    pub verify: bool,
    /// Print every record in readable form; applies nothing. No DEVICE.
    #[arg(long, conflicts_with_all = ["verify", "force"])]
    pub dump: bool,
    /// Show a progress bar on stderr (bytes, rate, time left against the sender's exact size).
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Wait at most SECONDS for another process writing DEVICE (default: until it is
    /// done), saying whom it waits for after a second.
    #[arg(long, value_name = "SECONDS", conflicts_with = "nowait")]
    pub wait: Option<u64>,
    /// Fail at once (exit 4) if another process is writing DEVICE.
    #[arg(long)]
    pub nowait: bool,
    /// Receive into tree NAME: a clone (an incremental from its newest snapshot), or a
    /// new tree that a full stream fills. Default: the live tree.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["abort", "dump", "verify"])]
    pub tree: Option<String>,
    /// Block device or image file to receive into.
    pub device: Option<String>,
}

/// What a run does, its arguments checked.
pub enum Mode {
    /// Discard the partial receive saved on a device (reads no stream).
    Abort(String),
    /// Print every record of the stream.
    Dump,
    /// Verify the stream, and whether it would apply to a device if given.
    Verify(Option<String>),
    Receive(String),
}

pub fn mode(args: &Args) -> Result<Mode> {
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
