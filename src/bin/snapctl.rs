//! snapctl: fill and read the live tree, take and manage snapshots, inspect and check
//! the pool. The device is always the last argument.
//!
//! This file parses arguments (args.rs), opens the pool, calls the command's library
//! function (snapfs::cmd), prints its outcome (render.rs) and maps errors to exit codes.

#[path = "snapctl/args.rs"]
mod args;
#[path = "snapctl/render.rs"]
mod render;

use args::{Args, Command};
use clap::Parser;
use snapfs::cli::exit_code;
use snapfs::cli::{PathSpec, open_pool, parse_duration, parse_property, print_io_stats, report, snapshot_name};
use snapfs::cmd::{check, diff, history, holds, prune, scrub, set, snapshot, status, tree};
use snapfs::device::OpenMode;
use snapfs::error::{Error, Result};
use snapfs::pool::{LIVE_TREE_ID, Pool};
use std::io::Write;
use std::path::{Path, PathBuf};

const PROGRAM: &str = "snapctl";

fn main() {
    let args = Args::parse();
    if let Some(limit) = snapfs::cli::wait_limit(args.wait, args.nowait) {
        snapfs::cli::set_wait_limit(limit);
    }
    if let Err(e) = run(args.command) {
        std::process::exit(report(PROGRAM, &e));
    }
}

/// Ends a command that stored host files: its line, the I/O figures, then exit status
/// SOURCE_CHANGED if some kept changing as they were read (each named): it committed.
fn stored(pool: Pool, text: &str, changed_while_read: &[PathBuf]) -> Result<()> {
    stdout_write(text)?;
    print_io_stats(PROGRAM, &pool);
    drop(pool); // closed before a warning's exit, which runs no destructors
    if !changed_while_read.is_empty() {
        eprint!("{}", render::changed_while_read(changed_while_read));
        std::process::exit(exit_code::SOURCE_CHANGED);
    }
    Ok(())
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
            let [source, path, device] = args::sync_operands(&args);
            let mut pool = open(device, OpenMode::Write)?;
            let synced = tree::sync(&mut pool, LIVE_TREE_ID, Path::new(source), path)?;
            stored(pool, &render::synced(source, &synced), &synced.stats.changed_while_read)
        }
        Command::Put { offset, source, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let mut stdin = std::io::stdin().lock();
            let input = match source.as_str() {
                "-" => tree::PutSource::Stream(&mut stdin),
                file => tree::PutSource::File(Path::new(file)),
            };
            let stats = tree::put(&mut pool, LIVE_TREE_ID, input, &path, offset)?;
            stored(pool, &render::put(&path, &stats), &stats.changed_while_read)
        }
        Command::Cat { path, device } => {
            let spec = PathSpec::parse(&path)?;
            tree::cat(&mut open(&device, OpenMode::Read)?, &spec, &mut std::io::stdout().lock())
        }
        Command::Ls { long, recursive, args } => {
            let [path, device] = args::ls_operands(&args);
            let spec = PathSpec::parse(path)?;
            let entries = tree::ls(&mut open(device, OpenMode::Read)?, &spec, recursive)?;
            stdout_write(&render::ls(&entries, long))
        }
        Command::Mkdir { parents, path, device } => {
            tree::mkdir(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, &path, parents).map(drop)
        }
        Command::Rm { recursive, path, device } => {
            tree::rm(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, &path, recursive).map(drop)
        }
        Command::Mv { source, dest, device } => {
            tree::mv(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, &source, &dest).map(drop)
        }
        Command::Export { nodev, nosuid, source, dest, device } => {
            let spec = PathSpec::parse(&source)?;
            let options = snapfs::fs::export::ExportOptions { nodev, nosuid };
            let stats = tree::export(&mut open(&device, OpenMode::Read)?, &spec, Path::new(&dest), options)?;
            eprint!("{}", render::withheld(&stats));
            stdout_write(&render::exported(&source, &dest, &stats))
        }
        Command::Snapshot { auto, args } => {
            let (name, device) = match (auto, args.as_slice()) {
                (true, [device]) => (None, device),
                (false, [name, device]) => (Some(snapshot_name(name)?), device),
                (true, _) => return Err(Error::invalid("--auto names the snapshot itself: give no @NAME with it")),
                (false, _) => return Err(Error::invalid("name the snapshot (@NAME), or give --auto")),
            };
            let mut pool = open(device, OpenMode::Write)?;
            let taken = match name {
                Some(name) => snapshot::snapshot(&mut pool, LIVE_TREE_ID, name)?,
                None => prune::snapshot_auto(&mut pool, LIVE_TREE_ID)?,
            };
            stdout_write(&render::taken(&taken))
        }
        Command::Prune { keep, dry_run, json, device } => {
            let mut pool = open(&device, if dry_run { OpenMode::Read } else { OpenMode::Write })?;
            let rules = prune::KeepRules::parse(&keep)?;
            let pruned = prune::prune(&mut pool, LIVE_TREE_ID, &rules, dry_run)?;
            stdout_write(&if json { render::json(&pruned) } else { render::pruned(&pruned) })
        }
        Command::List { json, device } => {
            let listed = snapshot::list(&mut open(&device, OpenMode::Read)?, LIVE_TREE_ID)?;
            stdout_write(&if json { render::json(&listed) } else { render::list(&listed) })
        }
        Command::Destroy { dry_run, verbose, args } => {
            let (specs, device) = args.split_at(args.len() - 1);
            let mut pool = open(&device[0], if dry_run { OpenMode::Read } else { OpenMode::Write })?;
            let names = snapshot::select(&mut pool, LIVE_TREE_ID, specs)?;
            let destroyed = snapshot::destroy(&mut pool, LIVE_TREE_ID, &names, dry_run)?;
            stdout_write(&render::destroyed(&destroyed, verbose))
        }
        Command::Rename { old, new, device } => {
            let (old, new) = (snapshot_name(&old)?, snapshot_name(&new)?);
            let renamed = snapshot::rename(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, old, new)?;
            stdout_write(&render::renamed(&renamed))
        }
        Command::Rollback { recursive, name, device } => {
            let name = snapshot_name(&name)?;
            let rolled = snapshot::rollback(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, name, recursive)?;
            stdout_write(&render::rolled_back(&rolled))
        }
        Command::Diff { times, json, from, args } => {
            let (to, device) = args::diff_operands(&args);
            let from = snapshot_name(&from)?;
            let to = to.map(snapshot_name).transpose()?;
            let changes = diff::diff(&mut open(device, OpenMode::Read)?, LIVE_TREE_ID, from, to)?;
            stdout_write(&if json { render::json(&changes) } else { render::diff(&changes, times) })
        }
        Command::Hold { tag, name, device } => {
            let name = snapshot_name(&name)?;
            holds::hold(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, name, &tag)?;
            stdout_write(&format!("{PROGRAM}: held @{name} with tag {tag}\n"))
        }
        Command::Release { tag, name, device } => {
            let name = snapshot_name(&name)?;
            holds::release(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, name, &tag)?;
            stdout_write(&format!("{PROGRAM}: released hold {tag} on @{name}\n"))
        }
        Command::Holds { json, name, device } => {
            let name = snapshot_name(&name)?;
            let listed = holds::holds(&mut open(&device, OpenMode::Read)?, LIVE_TREE_ID, name)?;
            stdout_write(&if json { render::json(&listed) } else { render::holds(&listed) })
        }
        Command::Status { json, device } => {
            let status = status::status(&mut open(&device, OpenMode::Read)?, &device)?;
            stdout_write(&if json { render::json(&status) } else { render::status(&status) })
        }
        Command::Check { json, device } => {
            let checked = check::check(&mut open(&device, OpenMode::Read)?)?;
            stdout_write(&if json { render::json(&checked) } else { render::checked(&checked) })?;
            render::check_verdict(&checked)
        }
        Command::Scrub { json, no_repair, device } => {
            let mut pool = open(&device, if no_repair { OpenMode::Read } else { OpenMode::Write })?;
            let bar = render::ScrubBar::start();
            let scrubbed = scrub::scrub(&mut pool, !no_repair, &mut |p| bar.show(p))?;
            bar.finish();
            stdout_write(&if json { render::json(&scrubbed) } else { render::scrub(&scrubbed) })?;
            render::scrub_verdict(scrubbed.verdict(), &device)
        }
        Command::Dump { files, device } => {
            stdout_write(&snapfs::dump::dump_pool(&mut open(&device, OpenMode::Read)?, files)?)
        }
        Command::Expand { device } => {
            let outcome = open(&device, OpenMode::Write)?.expand()?;
            stdout_write(&render::expanded(&device, outcome))
        }
        Command::Set { property, device } => {
            let mut pool = open(&device, OpenMode::Write)?; // opened first, as for history
            let changed = set::set_compression(&mut pool, parse_property(&property)?)?;
            stdout_write(&render::set(&device, &changed))
        }
        Command::History { keep, prune, json, device } => {
            let mode = if keep.is_some() || prune { OpenMode::Write } else { OpenMode::Read };
            let mut pool = open(&device, mode)?; // opened first: a missing device is named before a bad --keep
            let change = history::Change { keep_seconds: keep.as_deref().map(parse_duration).transpose()?, prune };
            let history = history::history(&mut pool, change)?;
            let listing = if json { render::json(&history) } else { render::history(&history) };
            stdout_write(&(render::released(&history) + &listing))
        }
    }
}
