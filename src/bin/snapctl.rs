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
use snapfs::cli::{PathSpec, open_pool, parse_duration, print_io_stats, report, snapshot_name};
use snapfs::cmd::{check, history, snapshot, status, tree};
use snapfs::device::OpenMode;
use snapfs::error::{Error, Result};
use snapfs::pool::{LIVE_TREE_ID, Pool};
use std::io::Write;
use std::path::Path;

const PROGRAM: &str = "snapctl";

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
            let [source, path, device] = args::sync_operands(&args);
            let mut pool = open(device, OpenMode::Write)?;
            let synced = tree::sync(&mut pool, LIVE_TREE_ID, Path::new(source), path)?;
            stdout_write(&render::synced(source, &synced))?;
            print_io_stats(PROGRAM, &pool);
            drop(pool); // closed before a warning's exit, which runs no destructors
            warn_changed_while_read(&synced.stats.changed_while_read);
            Ok(())
        }
        Command::Put { offset, source, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let mut stdin = std::io::stdin().lock();
            let input = match source.as_str() {
                "-" => tree::PutSource::Stream(&mut stdin),
                file => tree::PutSource::File(Path::new(file)),
            };
            let stats = tree::put(&mut pool, LIVE_TREE_ID, input, &path, offset)?;
            stdout_write(&render::put(&path, &stats))?;
            print_io_stats(PROGRAM, &pool);
            drop(pool);
            if stats.changed_while_read {
                warn_changed_while_read(&[std::path::PathBuf::from(&source)]);
            }
            Ok(())
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
            for line in &stats.withheld {
                eprintln!("{PROGRAM}: warning: {line}");
            }
            stdout_write(&render::exported(&source, &dest, &stats))
        }
        Command::Snapshot { name, device } => {
            let name = snapshot_name(&name)?;
            let taken = snapshot::snapshot(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, name)?;
            stdout_write(&render::taken(&taken))
        }
        Command::List { json, device } => {
            let listed = snapshot::list(&mut open(&device, OpenMode::Read)?, LIVE_TREE_ID)?;
            stdout_write(&if json { render::json(&listed) } else { render::list(&listed) })
        }
        Command::Destroy { name, device } => {
            let name = snapshot_name(&name)?;
            let destroyed = snapshot::destroy(&mut open(&device, OpenMode::Write)?, LIVE_TREE_ID, name)?;
            stdout_write(&render::destroyed(&destroyed))
        }
        Command::Status { json, device } => {
            let status = status::status(&mut open(&device, OpenMode::Read)?, &device)?;
            stdout_write(&if json { render::json(&status) } else { render::status(&status) })
        }
        Command::Check { json, device } => {
            let report = check::check(&mut open(&device, OpenMode::Read)?)?;
            stdout_write(&if json { render::json(&report) } else { render::checked(&report) })?;
            if report.clean { Ok(()) } else { Err(Error::corrupt(format!("{} problems found", report.problems.len()))) }
        }
        Command::Scrub { json, no_repair, device } => scrub(&device, json, no_repair),
        Command::Dump { files, device } => {
            stdout_write(&snapfs::dump::dump_pool(&mut open(&device, OpenMode::Read)?, files)?)
        }
        Command::Expand { device } => {
            let outcome = open(&device, OpenMode::Write)?.expand()?;
            stdout_write(&render::expanded(&device, outcome))
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

fn scrub(device: &str, json: bool, no_repair: bool) -> Result<()> {
    use snapfs::scrub::{ScrubOptions, scrub_pool};
    let mut pool = open(device, if no_repair { OpenMode::Read } else { OpenMode::Write })?;
    let bar = render::ScrubBar::start();
    let report = scrub_pool(&mut pool, ScrubOptions { repair: !no_repair }, &mut |p| bar.show(p))?;
    bar.finish();
    stdout_write(&if json { format!("{}\n", report.to_json()) } else { render::scrub(&report) })?;
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
                render::counted(damaged, "damaged copy", "damaged copies"),
            ),
        }
    })
}
