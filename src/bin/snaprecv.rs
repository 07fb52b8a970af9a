//! snaprecv: applies a replication stream from stdin to a pool, atomically.
//!
//! This file parses arguments into a mode (args.rs), calls the library
//! (stream::receive, and snapfs::cmd::receive for the rest), prints each outcome
//! (render.rs) and maps errors to exit codes.

#[path = "snaprecv/args.rs"]
mod args;
#[path = "snaprecv/render.rs"]
mod render;
#[path = "shared/transfer_bar.rs"]
mod transfer_bar;

use args::{Args, Mode, mode};
use clap::Parser;
use snapfs::cli::{open_pool, report};
use snapfs::cmd;
use snapfs::device::OpenMode;
use snapfs::error::{Error, Result};
use snapfs::pool::LIVE_TREE_ID;
use snapfs::stream::framing::StreamReader;
use snapfs::stream::receive::{ReceiveOptions, Received, receive, receive_into};
use std::io::{IsTerminal, Write};
use transfer_bar::transfer_bar;

const PROGRAM: &str = "snaprecv";

fn main() {
    let args = Args::parse();
    if let Some(limit) = snapfs::cli::wait_limit(args.wait, args.nowait) {
        snapfs::cli::set_wait_limit(limit);
    }
    if let Err(e) = run(args) {
        std::process::exit(report(PROGRAM, &e));
    }
}

fn run(args: Args) -> Result<()> {
    let options = ReceiveOptions { force: args.force, save_partial: args.save_partial };
    match mode(&args)? {
        Mode::Abort(device) => {
            let discarded = cmd::receive::discard(&mut open_pool(PROGRAM, &device, OpenMode::Write)?, &device)?;
            print!("{}", render::discarded(&discarded));
            Ok(())
        }
        Mode::Dump => {
            let mut out = std::io::stdout().lock();
            cmd::receive::dump(&mut stream_input()?, &mut |at, record| {
                out.write_all(render::dump_line(at, record).as_bytes())
                    .map_err(|e| Error::io("cannot write to standard output", e))
            })
        }
        Mode::Verify(device) => {
            let mut input = stream_input()?;
            let bar = transfer_bar(args.verbose, None);
            let target = match &device {
                Some(device) => Some(cmd::receive::Target::of(&mut open_pool(PROGRAM, device, OpenMode::Read)?)?),
                None => None,
            };
            let mut progress = bar.clone();
            let mut reader = StreamReader::new(&mut input, Some(&mut progress));
            let parts = cmd::receive::verify_stream(&mut reader, target, options);
            bar.finish_and_clear();
            let mut refused = None;
            for part in parts? {
                print!("{}", render::verified(&part, device.as_deref()));
                refused = refused.or(part.refusal.filter(|_| device.is_some()));
            }
            refused.map_or(Ok(()), Err)
        }
        Mode::Receive(device) => {
            let mut input = stream_input()?;
            let bar = transfer_bar(args.verbose, None);
            let mut pool = open_pool(PROGRAM, &device, OpenMode::Write)?;
            let mut progress = bar.clone();
            let mut reader = StreamReader::new(&mut input, Some(&mut progress));
            let mut report = |r: &Received| bar.suspend(|| print!("{}", render::received(r)));
            let result = match &args.tree {
                None => receive(&mut pool, LIVE_TREE_ID, &mut reader, options, &mut report),
                Some(name) => receive_into(&mut pool, name, &mut reader, options, &mut report),
            };
            bar.finish_and_clear();
            result.map(drop)
        }
    }
}

/// Standard input, which carries the stream (a terminal cannot). Unbuffered: the stream
/// reader reads it in large aligned chunks of its own.
fn stream_input() -> Result<std::io::StdinLock<'static>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::invalid(
            "standard input is a terminal; give the stream on standard input (snapsend ... | snaprecv DEVICE)",
        ));
    }
    snapfs::cli::enlarge_pipe(0);
    Ok(stdin.lock())
}
