//! snapctl: fill and read the live tree, take and manage snapshots, inspect and check
//! the pool. The device is always the last argument.

use clap::{Parser, Subcommand};
use snapfs::check::check_pool;
use snapfs::cli::{
    PathSpec, format_duration, format_time, format_time_ns, json_string, open_pool, parse_duration, print_io_stats,
    report, snapshot_name,
};
use snapfs::device::OpenMode;
use snapfs::error::{Error, Result, human_bytes};
use snapfs::exit_code;
use snapfs::ops;
use snapfs::pool::{ExpandOutcome, LIVE_TREE_ID, Pool, guid_hex};
use std::io::Write;
use std::path::Path;

const PROGRAM: &str = "snapctl";

/// Fill and read the live tree, take and manage snapshots, inspect and check a snapfs
/// pool. The device (block device or image file) is always the last argument; paths name
/// the live tree, @SNAP:PATH a snapshot.
#[derive(Parser)]
#[command(name = "snapctl", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make PATH (default: the root) mirror host directory SOURCE, as one transaction.
    #[command(override_usage = "snapctl sync SOURCE [PATH] DEVICE")]
    Sync {
        /// SOURCE (a host directory), then optionally PATH (a directory of the live tree,
        /// created if missing; default the root), then DEVICE.
        #[arg(num_args = 2..=3, required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Write host file SOURCE ('-' for standard input) to PATH.
    Put {
        /// Write at this byte offset without truncating, as dd conv=notrunc does.
        #[arg(long, value_name = "BYTES")]
        offset: Option<u64>,
        /// Host file to read, or '-' for standard input.
        source: String,
        /// Where in the live tree; the parent directory must exist.
        path: String,
        /// Block device or image file.
        device: String,
    },
    /// Print a file of the live tree or of a snapshot (@SNAP:PATH).
    Cat {
        /// File in the live tree, or @SNAP:PATH.
        path: String,
        /// Block device or image file.
        device: String,
    },
    /// List a directory of the live tree or of a snapshot (@SNAP:PATH).
    #[command(override_usage = "snapctl ls [-l] [-R] [PATH] DEVICE")]
    Ls {
        /// Long format: mode, links, owner, group, size, time.
        #[arg(short = 'l')]
        long: bool,
        /// List subdirectories too.
        #[arg(short = 'R')]
        recursive: bool,
        /// Optionally PATH (a directory or file; @SNAP or @SNAP:PATH for a snapshot;
        /// default the root of the live tree), then DEVICE.
        #[arg(num_args = 1..=2, required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Create a directory.
    Mkdir {
        /// Create missing parents; no error if it exists.
        #[arg(short = 'p')]
        parents: bool,
        /// Directory to create in the live tree.
        path: String,
        /// Block device or image file.
        device: String,
    },
    /// Remove a file, symlink or empty directory.
    Rm {
        /// Remove a directory and everything below it.
        #[arg(short = 'r')]
        recursive: bool,
        /// What to remove from the live tree.
        path: String,
        /// Block device or image file.
        device: String,
    },
    /// Rename or move; into DEST if DEST is a directory.
    Mv {
        /// Path in the live tree to move.
        source: String,
        /// New path, or an existing directory to move into.
        dest: String,
        /// Block device or image file.
        device: String,
    },
    /// Write a tree (PATH, @SNAP or @SNAP:PATH) to a new or empty host directory.
    Export {
        /// Do not create device nodes (each is named on standard error), as mount -o nodev
        /// ignores them: for a tree from a sender you do not trust.
        #[arg(long)]
        nodev: bool,
        /// Clear setuid and setgid bits and leave out file capabilities
        /// (security.capability), as mount -o nosuid ignores them.
        #[arg(long)]
        nosuid: bool,
        /// What to export: a directory of the live tree (/ for all), @SNAP or @SNAP:PATH.
        source: String,
        /// Host directory to create, or an empty one.
        dest: String,
        /// Block device or image file.
        device: String,
    },
    /// Take a snapshot of the live tree: O(1), consistent.
    Snapshot {
        /// Name of the new snapshot, written @NAME.
        #[arg(value_name = "@NAME")]
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// List snapshots.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Block device or image file.
        device: String,
    },
    /// Destroy a snapshot; the blocks only it kept are freed.
    Destroy {
        /// The snapshot, written @NAME.
        #[arg(value_name = "@NAME")]
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// Size, use, compression, last commit, history.
    Status {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Block device or image file.
        device: String,
    },
    /// Verify every checksum and prove the free-space map exact.
    Check {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Block device or image file.
        device: String,
    },
    /// Read every copy of every block, verify it, and rewrite bad metadata copies from
    /// good ones; name the files and snapshots that damage beyond repair affects.
    Scrub {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Report only: rewrite nothing (opens the device read-only).
        #[arg(short = 'n', long = "no-repair")]
        no_repair: bool,
        /// Block device or image file.
        device: String,
    },
    /// Print labels, commit records, the pool root and tree nodes (for debugging).
    Dump {
        /// Also print the nodes of every file tree.
        #[arg(long)]
        files: bool,
        /// Block device or image file.
        device: String,
    },
    /// Grow the pool into the space a grown device gained (after resizing a volume or
    /// an image file), as `zpool online -e` does.
    Expand {
        /// Block device or image file.
        device: String,
    },
    /// Show the retained commits; change how long they are kept; release them.
    History {
        /// Keep commits this long from now on (e.g. 24h, 0).
        #[arg(long, value_name = "DURATION")]
        keep: Option<String>,
        /// Release every retained commit now; only this command's commit remains.
        #[arg(long)]
        prune: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Block device or image file.
        device: String,
    },
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args.command) {
        std::process::exit(report(PROGRAM, &e));
    }
}

/// Names each host file stored while it kept changing, and exits with
/// exit_code::SOURCE_CHANGED: the command committed, but the copies may mix versions.
fn warn_changed_while_read(paths: &[std::path::PathBuf]) {
    if paths.is_empty() {
        return;
    }
    for path in paths {
        eprintln!("{PROGRAM}: warning: {} changed as we read it; the copy may mix versions", path.display());
    }
    eprintln!(
        "hint: the rest was stored and committed; run the command again when the file is quiet to store \
         one version of it"
    );
    std::process::exit(exit_code::SOURCE_CHANGED);
}

fn open(device: &str, mode: OpenMode) -> Result<Pool> {
    open_pool(PROGRAM, device, mode)
}

fn stdout_write(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Sync { args } => {
            let (source, path, device) = match args.as_slice() {
                [s, d] => (s, "", d),
                [s, p, d] => (s, p.as_str(), d),
                _ => unreachable!("clap enforces 2 or 3 arguments"),
            };
            let mut pool = open(device, OpenMode::Write)?;
            let (stats, summary) = ops::sync(&mut pool, LIVE_TREE_ID, Path::new(source), path)?;
            let txg = summary.txg.map_or("nothing to commit".to_string(), |t| format!("txg {}", t.0));
            println!(
                "{PROGRAM}: synced {source}: {} changed files read ({}), {} created, {} removed, {} moves detected, {} metadata updates, {} unchanged; {txg}",
                stats.files_written,
                human_bytes(stats.bytes_read),
                stats.entries_created,
                stats.entries_removed,
                stats.renames_detected,
                stats.metadata_updated,
                stats.unchanged
            );
            print_io_stats(PROGRAM, &pool);
            drop(pool); // closed before a warning's exit, which runs no destructors
            warn_changed_while_read(&stats.changed_while_read);
            Ok(())
        }
        Command::Put { offset, source, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let mut stdin = std::io::stdin().lock();
            let input = match source.as_str() {
                "-" => ops::PutSource::Stream(&mut stdin),
                file => ops::PutSource::File(Path::new(file)),
            };
            let (stats, _) = ops::put(&mut pool, LIVE_TREE_ID, input, &path, offset)?;
            println!("{PROGRAM}: wrote {} to {path}", human_bytes(stats.bytes));
            print_io_stats(PROGRAM, &pool);
            drop(pool);
            if stats.changed_while_read {
                warn_changed_while_read(&[std::path::PathBuf::from(&source)]);
            }
            Ok(())
        }
        Command::Cat { path, device } => {
            let spec = PathSpec::parse(&path)?;
            let mut pool = open(&device, OpenMode::Read)?;
            let mut out = std::io::stdout().lock();
            ops::cat(&mut pool, &spec, &mut out)
        }
        Command::Ls { long, recursive, args } => {
            let (path, device) = match args.as_slice() {
                [d] => ("", d),
                [p, d] => (p.as_str(), d),
                _ => unreachable!("clap enforces 1 or 2 arguments"),
            };
            let spec = PathSpec::parse(path)?;
            let mut pool = open(device, OpenMode::Read)?;
            let entries = ops::ls(&mut pool, &spec, recursive)?;
            let mut text = String::new();
            for e in entries {
                let mut line = if long { long_line(&e) } else { String::new() };
                line.push_str(&e.path);
                if let (true, Some(target)) = (long, &e.symlink_target) {
                    line.push_str(" -> ");
                    line.push_str(&String::from_utf8_lossy(target));
                }
                text.push_str(&line);
                text.push('\n');
            }
            stdout_write(&text)
        }
        Command::Mkdir { parents, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            ops::mkdir(&mut pool, LIVE_TREE_ID, &path, parents)?;
            Ok(())
        }
        Command::Rm { recursive, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            ops::rm(&mut pool, LIVE_TREE_ID, &path, recursive)?;
            Ok(())
        }
        Command::Mv { source, dest, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            ops::mv(&mut pool, LIVE_TREE_ID, &source, &dest)?;
            Ok(())
        }
        Command::Export { nodev, nosuid, source, dest, device } => {
            let spec = PathSpec::parse(&source)?;
            let mut pool = open(&device, OpenMode::Read)?;
            let options = snapfs::fs::export::ExportOptions { nodev, nosuid };
            let stats = ops::export(&mut pool, &spec, Path::new(&dest), options)?;
            for line in &stats.withheld {
                eprintln!("{PROGRAM}: warning: {line}");
            }
            println!(
                "{PROGRAM}: exported {} to {dest}: {} files ({}), {} directories, {} symlinks, {} hard links, {} special files{}",
                if source.is_empty() { "the live tree" } else { &source },
                stats.files,
                human_bytes(stats.bytes),
                stats.directories,
                stats.symlinks,
                stats.hard_links,
                stats.specials,
                if stats.withheld.is_empty() {
                    String::new()
                } else {
                    format!("; {} withheld by --nodev/--nosuid (named above)", stats.withheld.len())
                }
            );
            Ok(())
        }
        Command::Snapshot { name, device } => {
            let name = snapshot_name(&name)?;
            let mut pool = open(&device, OpenMode::Write)?;
            pool.create_snapshot(LIVE_TREE_ID, name)?;
            let summary = pool.commit()?;
            let txg = summary.txg.map_or(0, |t| t.0);
            println!("{PROGRAM}: snapshot @{name} taken at txg {txg}");
            Ok(())
        }
        Command::List { json, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            list(&mut pool, json)
        }
        Command::Destroy { name, device } => {
            let name = snapshot_name(&name)?;
            let mut pool = open(&device, OpenMode::Write)?;
            pool.destroy_snapshot(LIVE_TREE_ID, name)?;
            let summary = pool.commit()?;
            let held = ops::history_unique_bytes(&mut pool)?;
            let mut message = format!("{PROGRAM}: destroyed @{name}, freed {}", human_bytes(summary.freed_bytes));
            if pool.history().count() > 1 {
                message.push_str(&format!(
                    "; blocks it shared with retained commits stay until those expire (history holds {} in all; `snapctl history --prune` releases it)",
                    human_bytes(held)
                ));
            }
            println!("{message}");
            Ok(())
        }
        Command::Status { json, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            status(&mut pool, &device, json)
        }
        Command::Check { json, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            let report = check_pool(&mut pool)?;
            if json {
                let value = serde_json::json!({
                    "clean": report.is_clean(),
                    "problems": report.problems,
                    "blocks_verified": report.blocks_verified,
                    "bytes_verified": report.bytes_verified,
                    "trees_walked": report.trees_walked,
                    "dead_entries": report.dead_entries,
                    "referenced_blocks": report.referenced_blocks,
                    "free_blocks": report.free_blocks,
                });
                stdout_write(&format!("{value}\n"))?;
            } else {
                for p in &report.problems {
                    println!("problem: {p}");
                }
                println!(
                    "{PROGRAM}: check {}: {} blocks verified ({}), {} trees walked, {} dead index entries, {} blocks referenced + {} free = data area{}",
                    if report.is_clean() { "clean" } else { "FAILED" },
                    report.blocks_verified,
                    human_bytes(report.bytes_verified),
                    report.trees_walked,
                    report.dead_entries,
                    report.referenced_blocks,
                    report.free_blocks,
                    if report.is_clean() { "" } else { " (not exact)" }
                );
            }
            if report.is_clean() {
                Ok(())
            } else {
                Err(Error::corrupt(format!("{} problems found", report.problems.len())))
            }
        }
        Command::Scrub { json, no_repair, device } => scrub(&device, json, no_repair),
        Command::Dump { files, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            stdout_write(&snapfs::dump::dump_pool(&mut pool, files)?)
        }
        Command::Expand { device } => expand(&device),
        Command::History { keep, prune, json, device } => {
            let mode = if keep.is_some() || prune { OpenMode::Write } else { OpenMode::Read };
            let mut pool = open(&device, mode)?;
            if let Some(keep) = keep {
                pool.set_history_seconds(parse_duration(&keep)?)?;
            }
            if prune {
                pool.prune_history()?;
            }
            let summary = if mode == OpenMode::Write { pool.commit()? } else { Default::default() };
            if summary.freed_bytes > 0 {
                println!("{PROGRAM}: released {}", human_bytes(summary.freed_bytes));
            }
            history(&mut pool, json)
        }
    }
}

fn expand(device: &str) -> Result<()> {
    let mut pool = open(device, OpenMode::Write)?;
    match pool.expand()? {
        ExpandOutcome::Grown { old_bytes, new_bytes } => println!(
            "{PROGRAM}: expanded {device} from {old_bytes} bytes ({}) to {new_bytes} bytes ({}): {} more",
            human_bytes(old_bytes),
            human_bytes(new_bytes),
            human_bytes(new_bytes - old_bytes)
        ),
        ExpandOutcome::FirstLabelRewritten { pool_bytes } => println!(
            "{PROGRAM}: the pool already spans {device} ({pool_bytes} bytes); rewrote the damaged label at its start"
        ),
        ExpandOutcome::Unchanged { pool_bytes, device_bytes } => println!(
            "{PROGRAM}: nothing to expand: the pool already spans {device} ({pool_bytes} bytes of {device_bytes}); \
             grow the device first"
        ),
    }
    Ok(())
}

fn long_line(e: &ops::ListedEntry) -> String {
    let i = &e.inode;
    let time = format_time(i.mtime.sec);
    let minute = time[..time.len() - 4].replace('T', " "); // without ":SSZ", whatever the year's width
    format!("{} {:3} {:5} {:5} {:>12} {minute} ", mode_string(i.mode), i.nlink, i.uid, i.gid, size_column(i))
}

/// "-rwsr-xr-t" as ls prints it: the type letter, then rwx with setuid, setgid and
/// sticky shown as s/S and t/T in the execute places.
fn mode_string(mode: u32) -> String {
    let mut text = String::with_capacity(10);
    text.push(match mode & libc::S_IFMT {
        libc::S_IFREG => '-',
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFBLK => 'b',
        libc::S_IFCHR => 'c',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        _ => '?',
    });
    for (shift, special, marks) in
        [(6, libc::S_ISUID, ['s', 'S']), (3, libc::S_ISGID, ['s', 'S']), (0, libc::S_ISVTX, ['t', 'T'])]
    {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        let execute = bits & 1 != 0;
        text.push(match (mode & special != 0, execute) {
            (true, true) => marks[0],
            (true, false) => marks[1],
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// The size, or "major, minor" for a device, as ls prints them.
fn size_column(i: &snapfs::fs::Inode) -> String {
    match i.mode & libc::S_IFMT {
        libc::S_IFBLK | libc::S_IFCHR => {
            let rdev = i.rdev as libc::dev_t;
            format!("{}, {}", libc::major(rdev), libc::minor(rdev))
        }
        _ => i.size.to_string(),
    }
}

fn list(pool: &mut Pool, json: bool) -> Result<()> {
    let unique = ops::snapshot_unique_bytes(pool, LIVE_TREE_ID)?;
    let snapshots: Vec<_> = pool.snapshots_of(LIVE_TREE_ID).into_iter().cloned().collect();
    let text = if json {
        let items: Vec<serde_json::Value> = snapshots
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "guid": guid_hex(&s.guid),
                    "txg": s.txg.0,
                    "created": format_time_ns(s.time_ns),
                    "created_unix_ns": s.time_ns,
                    "unique_bytes": unique.get(&s.name).copied().unwrap_or(0),
                })
            })
            .collect();
        format!("{}\n", serde_json::Value::Array(items))
    } else {
        let mut text = format!("{:<24} {:>8} {:<21} {:>10}\n", "NAME", "TXG", "CREATED", "UNIQUE");
        for s in &snapshots {
            text.push_str(&format!(
                "{:<24} {:>8} {:<21} {:>10}\n",
                format!("@{}", s.name),
                s.txg.0,
                format_time_ns(s.time_ns),
                human_bytes(unique.get(&s.name).copied().unwrap_or(0))
            ));
        }
        text
    };
    stdout_write(&text)
}

fn status(pool: &mut Pool, device: &str, json: bool) -> Result<()> {
    let usage = ops::tree_usage(pool, LIVE_TREE_ID)?;
    let history_bytes = ops::history_unique_bytes(pool)?;
    let ratio = if usage.stored_bytes > 0 { usage.logical_bytes as f64 / usage.stored_bytes as f64 } else { 1.0 };
    let data_bytes = pool.store.alloc.usable_blocks() * snapfs::block::BLOCK_BYTES;
    let history: Vec<_> = pool.history().collect();
    let oldest = history.first().copied();
    let snapshots = pool.snapshots_of(LIVE_TREE_ID).len();
    let config = pool.root.config.clone();
    let partial = pool.receive_state()?;
    let token = partial.as_ref().map(snapfs::stream::receive::state_token);
    if json {
        let value = serde_json::json!({
            "device": device,
            "pool_guid": guid_hex(&pool.label.pool_guid),
            "format_version": pool.label.version,
            "features": pool.label.feature_names(),
            "device_bytes": pool.label.device_bytes,
            "data_bytes": data_bytes,
            "used_bytes": pool.used_bytes(),
            "free_bytes": pool.free_bytes(),
            "live_files": usage.files,
            "live_logical_bytes": usage.logical_bytes,
            "live_stored_bytes": usage.stored_bytes,
            "compression_ratio": (ratio * 100.0).round() / 100.0,
            "held_by_snapshots_and_history_bytes": pool.root.dead_bytes,
            "held_by_history_only_bytes": history_bytes,
            "snapshots": snapshots,
            "last_txg": pool.txg().0,
            "last_commit": format_time_ns(pool.commit.time_ns),
            "history_commits": history.len(),
            "history_oldest_txg": oldest.map(|(t, _)| t.0),
            "history_oldest": oldest.map(|(_, time)| format_time_ns(time)),
            "history_seconds": config.history_seconds,
            "history_reserve_percent": config.history_reserve_percent,
            "compression_level": config.compression_level,
            "receive_resume_token": token,
            "partial_receive": partial.as_ref().map(|p| serde_json::json!({
                "snapshot": p.snapshot_name,
                "base": (!p.base_name.is_empty()).then_some(&p.base_name),
                "records_applied": p.records_applied,
                "stream_bytes_applied": p.bytes_applied,
                "saved": format_time_ns(p.saved_ns),
            })),
        });
        return stdout_write(&format!("{value}\n"));
    }
    let mut text = String::new();
    let mut line = |k: &str, v: String| text.push_str(&format!("{k:<13}{v}\n"));
    line("device:", format!("{device} (pool {})", guid_hex(&pool.label.pool_guid)));
    let features = pool.label.feature_names();
    let features = if features.is_empty() { "none".to_string() } else { features.join(", ") };
    line("format:", format!("label version {}, features: {features}", pool.label.version));
    line("size:", format!("{} ({} for data)", human_bytes(pool.label.device_bytes), human_bytes(data_bytes)));
    let unused = pool.store.dev.len().saturating_sub(pool.label.device_bytes) / 4096 * 4096;
    if unused > 0 {
        line(
            "",
            format!("the device has grown by {} bytes ({}): `snapctl expand` adds them", unused, human_bytes(unused)),
        );
    }
    line(
        "used:",
        format!("{} ({:.1}%)", human_bytes(pool.used_bytes()), 100.0 * pool.used_bytes() as f64 / data_bytes as f64),
    );
    line("free:", human_bytes(pool.free_bytes()));
    line(
        "live tree:",
        format!(
            "{} files, {} of data stored in {} (compression {ratio:.2}x)",
            usage.files,
            human_bytes(usage.logical_bytes),
            human_bytes(usage.stored_bytes)
        ),
    );
    line(
        "snapshots:",
        format!(
            "{snapshots}; snapshots and history hold {} the live tree no longer uses",
            human_bytes(pool.root.dead_bytes)
        ),
    );
    line("last commit:", format!("txg {} at {}", pool.txg().0, format_time_ns(pool.commit.time_ns)));
    line(
        "history:",
        format!(
            "{} commits retained since {} (keep {}, leave {}% free); {} held by history alone",
            history.len(),
            oldest.map_or("-".to_string(), |(t, time)| format!("txg {} at {}", t.0, format_time_ns(time))),
            format_duration(config.history_seconds),
            config.history_reserve_percent,
            human_bytes(history_bytes)
        ),
    );
    line(
        "compression:",
        if config.compression_level == 0 { "none".into() } else { format!("zstd:{}", config.compression_level) },
    );
    if let (Some(p), Some(token)) = (&partial, &token) {
        line(
            "receiving:",
            format!(
                "partial receive of @{}{} saved at {}: {} records ({}) applied",
                p.snapshot_name,
                if p.base_name.is_empty() { String::new() } else { format!(" (from @{})", p.base_name) },
                format_time_ns(p.saved_ns),
                p.records_applied,
                human_bytes(p.bytes_applied)
            ),
        );
        line("token:", token.clone());
        line("", "resume: snapsend -t TOKEN DEVICE | snaprecv -s TARGET; discard: snaprecv -A TARGET".into());
    }
    stdout_write(&text)
}

fn history(pool: &mut Pool, json: bool) -> Result<()> {
    let commits: Vec<_> = pool.history().collect();
    let seconds = pool.root.config.history_seconds;
    let text = if json {
        let items: Vec<String> = commits
            .iter()
            .map(|(t, time)| {
                format!("{{\"txg\":{},\"time\":{},\"time_unix_ns\":{time}}}", t.0, json_string(&format_time_ns(*time)))
            })
            .collect();
        format!("{{\"keep_seconds\":{seconds},\"commits\":[{}]}}\n", items.join(","))
    } else {
        let mut text = format!("history: keep {}; {} commits retained\n", format_duration(seconds), commits.len());
        for (t, time) in commits {
            text.push_str(&format!("txg {:>8}  {}\n", t.0, format_time_ns(time)));
        }
        text
    };
    stdout_write(&text)
}

fn scrub(device: &str, json: bool, no_repair: bool) -> Result<()> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use snapfs::scrub::{ScrubOptions, scrub_pool};
    let mut pool = open(device, if no_repair { OpenMode::Read } else { OpenMode::Write })?;
    // Drawn only when standard error is a terminal.
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "scrub {msg:8} {binary_bytes:>10} / {binary_total_bytes} {wide_bar} {binary_bytes_per_sec:>12} eta {eta}",
    )
    .expect("a valid template");
    bar.set_style(style);
    let report = scrub_pool(&mut pool, ScrubOptions { repair: !no_repair }, &mut |p| {
        bar.set_message(p.phase);
        if p.phase == "data" {
            bar.set_length(p.total_bytes);
            bar.set_position(p.done_bytes);
        }
    })?;
    bar.finish_and_clear();
    if json {
        stdout_write(&format!("{}\n", report.to_json()))?;
    } else {
        print_scrub(&report);
    }
    if report.is_clean() {
        return Ok(());
    }
    let lost = report.unrecoverable();
    Err(if lost > 0 {
        Error::Damaged {
            what: format!(
                "{} no good copy left: what is named above cannot be read; restore it from a replica or a backup",
                if lost == 1 { "1 block has".to_string() } else { format!("{lost} blocks have") }
            ),
        }
    } else if !report.problems.is_empty() {
        Error::corrupt(format!("{} structures verified but do not decode", report.problems.len()))
    } else {
        let damaged = (report.damage.len() + report.labels_damaged.len()) as u64;
        let (left, them) = if damaged == 1 { ("it is", "it") } else { ("they are", "them") };
        Error::Damaged {
            what: format!(
                "{} found and left as {left} (-n): every block still has a good copy; run `snapctl scrub {device}` to rewrite {them}",
                counted(damaged, "damaged copy", "damaged copies"),
            ),
        }
    })
}

fn print_scrub(report: &snapfs::scrub::ScrubReport) {
    for d in &report.damage {
        let copy = if d.copy == 0 { String::new() } else { format!(" copy {} (at block {})", d.copy, d.copy_block) };
        let outcome = if d.repaired {
            "rewritten from a good copy".to_string()
        } else if d.recoverable {
            "another copy is good: reads are unaffected".to_string()
        } else {
            let more = d.files_total.saturating_sub(d.files.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!("no good copy; affects {}; files: {}{more}", d.affects.join(", "), d.files.join(", "))
        };
        println!("damage: {} block {}{copy}, born in txg {}: {}: {outcome}", d.kind, d.block, d.birth, d.error);
    }
    for label in &report.labels_damaged {
        let outcome = if report.labels_repaired { "rewritten from the good one" } else { "the other label is good" };
        println!("damage: {label}: {outcome}");
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    let rate = report.bytes_verified as f64 / report.seconds.max(1e-6);
    println!(
        "{PROGRAM}: scrub {}: {} verified ({}) in {:.2} s ({}/s): {}, {}; {} repaired, {} without a good copy",
        if report.is_clean() { "clean" } else { "FOUND DAMAGE" },
        counted(report.blocks_verified, "copy", "copies"),
        human_bytes(report.bytes_verified),
        report.seconds,
        human_bytes(rate as u64),
        counted(report.metadata_blocks, "metadata block", "metadata blocks"),
        counted(report.data_blocks, "data block", "data blocks"),
        counted(report.repaired() as u64, "copy", "copies"),
        counted(report.unrecoverable() as u64, "block", "blocks"),
    );
}

/// "1 copy", "2 copies".
fn counted(count: u64, one: &str, many: &str) -> String {
    if count == 1 { format!("1 {one}") } else { format!("{count} {many}") }
}
