//! snaptorture: torture tests for snapfs. `snaptorture crash --help` says what the crash
//! harness does, `snaptorture corrupt --help` the corruption injector; exit 0 when every
//! state or flip passed, 1 on a failure, 2 when it cannot run.

use clap::{Parser, Subcommand};
use snapfs_torture::{corrupt, crash, history};
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
    /// Flip one bit of every copy of every metadata block and of a sample of file data
    /// blocks of small pools, one flip at a time: reads must return the right bytes or
    /// fail (never wrong bytes), check and scrub must report every flip, scrub must
    /// restore every metadata copy; damaged labels and commit rings must fall back to
    /// the other copy or the previous commit; nothing may panic
    Corrupt {
        /// Pools to build and damage (seeds SEED, SEED+1, ...)
        #[arg(long, default_value_t = 1)]
        pools: u64,
        /// File data blocks flipped per pool at most
        #[arg(long, default_value_t = 40)]
        data_per_pool: usize,
        /// Seed of the first pool (default: from the clock, printed)
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Format DEVICE with a retained history of COMMITS commits, one every SPACING
    /// seconds up to now, each rewriting a small file, made by this one process (for
    /// bench/at_bench.sh: what a long history costs)
    History {
        /// Commits to make
        #[arg(long)]
        commits: u64,
        /// Seconds between two commits' times
        #[arg(long, default_value_t = 2)]
        spacing: u64,
        /// Block device or image file to format (what it holds is lost)
        device: String,
    },
}

fn main() {
    match Args::parse().command {
        Commands::Crash { states, seed, keep, replay, from, bins, threads, no_digest_cache, rounds, verbose } => {
            let config =
                CrashArgs { states, seed, keep, replay, from, bins, threads, no_digest_cache, rounds, verbose };
            crash_command(config)
        }
        Commands::Corrupt { pools, data_per_pool, seed } => corrupt_command(pools, data_per_pool, seed),
        Commands::History { commits, spacing, device } => {
            let started = std::time::Instant::now();
            let result = history::fill(&device, commits, spacing, &mut |made| println!("{made} commits made"));
            if let Err(e) = result {
                eprintln!("snaptorture: error: {e}");
                std::process::exit(2);
            }
            println!("snaptorture history: {commits} commits in {:.1} s", started.elapsed().as_secs_f64());
        }
    }
}

fn corrupt_command(pools: u64, data_per_pool: usize, seed: Option<u64>) {
    let seed = seed.unwrap_or_else(clock_seed);
    println!("snaptorture corrupt: seed {seed} (reproduce with --seed {seed})");
    let started = std::time::Instant::now();
    let config = corrupt::Config { seed, pools, data_per_pool };
    let tally = corrupt::run(&config, &mut |line| println!("{line}"));
    tally.print(started.elapsed().as_secs_f64());
    std::process::exit(if tally.failures.is_empty() { 0 } else { 1 });
}

struct CrashArgs {
    states: usize,
    seed: Option<u64>,
    keep: Option<PathBuf>,
    replay: Option<String>,
    from: Option<PathBuf>,
    bins: Option<PathBuf>,
    threads: Option<usize>,
    no_digest_cache: bool,
    rounds: usize,
    verbose: bool,
}

fn crash_command(args: CrashArgs) {
    let CrashArgs { states, seed, keep, replay, from, bins, threads, no_digest_cache, rounds, verbose } = args;
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
