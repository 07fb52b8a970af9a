//! snapfmt: lays the snapfs copy-on-write format onto a device or image file.

use clap::Parser;
use snapfs::cli::{format_duration, parse_compression, parse_duration, report};
use snapfs::device::{OpenMode, open_tool_device};
use snapfs::error::{Result, human_bytes};
use snapfs::format::pool_root::PoolConfig;
use snapfs::pool::{FormatOptions, format_pool, guid_hex};

const PROGRAM: &str = "snapfmt";

/// Lay the snapfs copy-on-write format onto DEVICE (a block device or an image file).
///
/// Refuses a device that already holds a snapfs pool, another file system or a partition
/// table unless --force is given.
#[derive(Parser)]
#[command(name = "snapfmt", version, about, long_about = None)]
struct Args {
    /// Overwrite whatever the device holds.
    #[arg(short, long)]
    force: bool,
    /// How long past commits stay readable (e.g. 24h, 30m, 0 to keep only the newest).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    history: String,
    /// Share of the device the history leaves free: below it, the oldest commits go.
    #[arg(long, value_name = "PERCENT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=90))]
    history_reserve: u8,
    /// Most of the device the history may hold in blocks nothing else keeps: beyond it,
    /// the oldest commits go (0, the default: no cap).
    #[arg(long, value_name = "PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    history_space: u8,
    /// Compression of new file data (tree nodes stay raw): zstd:LEVEL (1-19), zstd (level 3), lz4, or off (none).
    #[arg(long, value_name = "ALGORITHM", default_value = "zstd:1")]
    compress: String,
    /// Block device or image file to format.
    device: String,
}

fn run(args: &Args) -> Result<()> {
    let config = PoolConfig {
        history_seconds: parse_duration(&args.history)?,
        history_reserve_percent: args.history_reserve,
        compression: parse_compression(&args.compress)?,
        history_space_percent: args.history_space,
    };
    let dev = open_tool_device(&args.device, OpenMode::Write, &snapfs::cli::wait_policy(PROGRAM))?;
    let options = FormatOptions { force: args.force, config: config.clone() };
    let pool = format_pool(dev, &options)?;
    println!(
        "{PROGRAM}: formatted {}: {} ({} free), pool {}, history {}, compression {}",
        args.device,
        human_bytes(pool.label.device_bytes),
        human_bytes(pool.free_bytes()),
        guid_hex(&pool.label.pool_guid),
        format_duration(config.history_seconds),
        config.compression.name()
    );
    Ok(())
}

fn main() {
    let args = Args::parse();
    // Formatting a device another process is writing is a mistake, not a queue.
    snapfs::cli::set_wait_limit(snapfs::device::wait::WaitLimit::No);
    if let Err(e) = run(&args) {
        std::process::exit(report(PROGRAM, &e));
    }
}
