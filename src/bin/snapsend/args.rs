//! snapsend's arguments, as clap parses them (man/snapsend.1 documents each;
//! tests/man_pages.rs keeps them in step), and what they ask to send, checked.

use clap::Parser;
use snapfs::cli::snapshot_name;
use snapfs::cmd::send::Source;
use snapfs::cmd::{split_bookmark, split_tree};
use snapfs::error::{Error, Result};
use snapfs::stream::token::ResumeToken;

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
pub struct Args {
    /// Send only what changed since @BASE, which the receiver must have as its newest
    /// snapshot; or since bookmark #BASE (made of that snapshot, which may be gone here).
    #[arg(short = 'i', value_name = "@BASE", conflicts_with = "intermediates")]
    pub incremental: Option<String>,
    /// Like -i, and send every snapshot between @BASE and @SNAP too, each received as its own snapshot.
    #[arg(short = 'I', value_name = "@BASE")]
    pub intermediates: Option<String>,
    /// Dry run: send nothing; with -v or -P, print the exact size of the stream.
    #[arg(short = 'n')]
    pub dry_run: bool,
    /// Show a progress bar on stderr (bytes, rate, time left, against the exact size).
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Print parsable lines for scripts: one per part, then `size BYTES`.
    #[arg(short = 'P')]
    pub parsable: bool,
    /// Send the rest of a part whose receive broke: TOKEN comes from `snaprecv -s` or
    /// `snapctl status` on the receiving side.
    #[arg(short = 't', value_name = "TOKEN", conflicts_with_all = ["incremental", "intermediates"])]
    pub token: Option<String>,
    /// @SNAP (the snapshot to send, NAME@SNAP for a clone's; not with -t), then DEVICE
    /// (block device or image file).
    #[arg(num_args = 1..=2, required = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// The validated arguments: what to send, from which device.
pub fn source(args: &Args) -> Result<(Source, &str)> {
    match (args.args.as_slice(), &args.token) {
        ([device], Some(token)) => Ok((Source::Resume(ResumeToken::decode(token)?), device)),
        ([snapshot, device], None) => {
            // A clone's snapshot is NAME@SNAP; its base is in the same clone.
            let (tree, target) = split_tree(snapshot);
            let target = snapshot_name(target)?.to_string();
            let base = args.incremental.as_ref().or(args.intermediates.as_ref());
            let base = match (base.and_then(|b| split_bookmark(b)), base.map(|b| split_tree(b))) {
                // A bookmark, #NAME: of the same tree, or of one the clone comes from.
                (Some((_, mark)), _) => {
                    snapshot_name(&format!("@{mark}"))
                        .map_err(|_| Error::invalid(format!("bad bookmark name {mark:?}")))?;
                    Some(format!("#{mark}"))
                }
                (None, Some((base_tree, _))) if base_tree.is_some() && base_tree != tree => {
                    return Err(Error::invalid(
                        "the base must be a snapshot of the same tree as the one sent (write it @BASE)",
                    ));
                }
                (None, Some((_, base))) => Some(snapshot_name(base)?.to_string()),
                (None, None) => None,
            };
            let tree = tree.map(String::from);
            Ok((Source::Snapshot { tree, target, base, intermediates: args.intermediates.is_some() }, device))
        }
        ([_], None) => Err(Error::invalid("give the snapshot to send (@SNAP) and the DEVICE")),
        (_, Some(_)) => Err(Error::invalid("with -t, give only the DEVICE: the token names the snapshot")),
        _ => unreachable!("clap enforces 1 or 2 arguments"),
    }
}
