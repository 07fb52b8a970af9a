//! snaptorture: torture tests for snapfs. `snaptorture crash --help` says what the crash
//! harness does; exit 0 when every state passed, 1 on a failure, 2 when it cannot run.

use clap::{Parser, Subcommand};
use snapfs_torture::crash;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "snaptorture", version, about = "Torture tests for snapfs that run its real binaries")]
struct Args {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Record every write and flush of a workload of real snapfs commands, then open and
    /// check every image a power cut could leave at every flush boundary (nothing, all,
    /// in-order prefixes, random subsets and orders of the pending 4 KiB blocks, torn
    /// sectors): each must hold the commit before the command or the one it made
    Crash {
        /// Crash states to try
        #[arg(long, default_value_t = 1000)]
        states: usize,
        /// Seed of the workload and of the crash states (default: from the clock, printed)
        #[arg(long)]
        seed: Option<u64>,
        /// Keep the work directory (image, write log, streams) in DIR, and write failing
        /// crash images there
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Judge one crash point only, as a failure prints it: SEED:BOUNDARY.STATE
        #[arg(long, value_name = "SEED:POINT")]
        replay: Option<String>,
        /// Take the recording kept in DIR (by --keep, or after a failure) instead of running
        /// the workload: the exact writes of that run
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Directory of snapfmt, snapctl, snapsend and snaprecv (default: $SNAPFS_BIN_DIR,
        /// else the workspace's target/release)
        #[arg(long, value_name = "DIR")]
        bins: Option<PathBuf>,
        /// Threads judging crash states (default: the number of CPUs)
        #[arg(long)]
        threads: Option<usize>,
        /// Read every tree of every crash image, even one whose root pointer was read before
        #[arg(long)]
        no_digest_cache: bool,
        /// Run this many workloads (seeds SEED, SEED+1, ...), sharing the states between them
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Print each command and boundary
        #[arg(short, long)]
        verbose: bool,
    },
}

fn main() {
    let Commands::Crash { states, seed, keep, replay, from, bins, threads, no_digest_cache, rounds, verbose } =
        Args::parse().command;
    let (seed, replay) = match replay.as_deref().map(crash::parse_replay) {
        Some(Ok((seed, boundary, state))) => (seed, Some((boundary, state))),
        Some(Err(e)) => {
            eprintln!("snaptorture: error: {e}");
            std::process::exit(2);
        }
        None => (seed.unwrap_or_else(clock_seed), None),
    };
    let config = crash::Config {
        seed,
        states,
        keep,
        replay,
        from,
        bins: bins.unwrap_or_else(crash::default_bins),
        threads: threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        digest_cache: !no_digest_cache,
        verbose,
    };
    println!("snaptorture crash: seed {seed} (reproduce with --seed {seed})");
    let result = if config.replay.is_some() { crash::run(&config) } else { crash::run_rounds(&config, rounds) };
    match result {
        Ok(summary) => {
            summary.print();
            std::process::exit(if summary.failures.is_empty() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("snaptorture: error: {e}");
            std::process::exit(2);
        }
    }
}

fn clock_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_secs() ^ u64::from(now.subsec_nanos())
}
