//! snapctl: fill and read the live tree, take and manage snapshots, inspect and check
//! the pool. The device is always the last argument.
//!
//! This file parses arguments (args.rs), opens the pool, calls the command's library
//! function (snapfs::cmd), prints its outcome (render.rs) and maps errors to exit codes.

#[path = "snapctl/args.rs"]
mod args;
#[path = "snapctl/render.rs"]
mod render;

use args::{Args, Command, RuleArgs};
use clap::Parser;
use snapfs::cli::exit_code;
use snapfs::cli::moment::parse_moment;
use snapfs::cli::{
    PathSpec, extract_inodes, extract_stop_after, open_pool, parse_duration, parse_property, print_io_stats,
    print_io_written, report, snapshot_name,
};
use snapfs::cmd::snapshot::{Extraction, SubsetFrom};
use snapfs::cmd::{
    batch, bookmark_of, bookmarks, check, clone, diff, history, holds, prune, scrub, set, snapshot, split_bookmark,
    split_tree, status, tree, tree_of,
};
use snapfs::device::{OpenMode, writers_waiting};
use snapfs::error::{Error, Result};
use snapfs::format::tables::RecordedRule;
use snapfs::fs::select::Rule;
use snapfs::pool::{LIVE_TREE_ID, Pool};
use std::io::{Read, Write};
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

/// The longest an extraction lets waiting writers go first between two of its commits:
/// a stream of writers does not hold it off for ever.
const YIELD_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Extracts the rest of a subset snapshot's files, a step per commit, each by a writer
/// opened for it alone: other writers wait for one commit at most, never for the whole
/// extraction. `written` adds what each wrote. Returns what it did to say (nothing
/// without an extraction).
fn finish_extraction(device: &str, extraction: Option<Extraction>, written: &mut u64) -> Result<String> {
    let Some(mut extraction) = extraction else { return Ok(String::new()) };
    let stop_after = extract_stop_after()?;
    while !extraction.done.is_done() {
        if stop_after.is_some_and(|n| extraction.commits >= n) {
            eprintln!(
                "{PROGRAM}: stopped extracting @{} after {} commit(s), as SNAPFS_EXTRACT_STOP_AFTER asks: `snapctl \
                 extract` finishes it",
                extraction.done.name, extraction.commits
            );
            break;
        }
        // Writers that came meanwhile go first (each takes its turn within a poll).
        let yielding = std::time::Instant::now();
        while writers_waiting(device) && yielding.elapsed() < YIELD_MAX {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut pool = open(device, OpenMode::Write)?;
        snapshot::extract_step(&mut pool, &mut extraction)?;
        *written += pool.store.dev.written_bytes();
    }
    Ok(render::extracted(&extraction))
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
            let (tree, path) = tree_of(&mut pool, path)?;
            let synced = tree::sync(&mut pool, tree, Path::new(source), path)?;
            stored(pool, &render::synced(source, &synced), &synced.stats.changed_while_read)
        }
        Command::Put { offset, source, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let mut stdin = std::io::stdin().lock();
            let input = match source.as_str() {
                "-" => tree::PutSource::Stream(&mut stdin),
                file => tree::PutSource::File(Path::new(file)),
            };
            let (tree, in_tree) = tree_of(&mut pool, &path)?;
            let stats = tree::put(&mut pool, tree, input, in_tree, offset)?;
            stored(pool, &render::put(&path, &stats), &stats.changed_while_read)
        }
        Command::Cat { path, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            let spec = PathSpec::parse_in(&mut pool, &path)?;
            tree::cat(&mut pool, &spec, &mut std::io::stdout().lock())
        }
        Command::Ls { long, recursive, rule: RuleArgs { matches, exclude, conditions }, args } => {
            let [path, device] = args::ls_operands(&args);
            let mut pool = open(device, OpenMode::Read)?;
            let spec = PathSpec::parse_in(&mut pool, path)?;
            let ruled = !(matches.is_empty() && exclude.is_empty() && conditions.is_empty());
            let rule =
                ruled.then(|| Rule::parse(&matches, &exclude, &conditions, pool.clock().now_ns())).transpose()?;
            let entries = tree::ls(&mut pool, &spec, recursive, rule.as_ref())?;
            if ruled && entries.is_empty() {
                eprintln!("{PROGRAM}: the rule selects no file here");
            }
            stdout_write(&render::ls(&entries, long))
        }
        Command::Mkdir { parents, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let (tree, path) = tree_of(&mut pool, &path)?;
            tree::mkdir(&mut pool, tree, path, parents).map(drop)
        }
        Command::Rm { recursive, path, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let (tree, path) = tree_of(&mut pool, &path)?;
            tree::rm(&mut pool, tree, path, recursive).map(drop)
        }
        Command::Mv { source, dest, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let ((tree, source), (dest_tree, dest)) = (tree_of(&mut pool, &source)?, tree_of(&mut pool, &dest)?);
            if tree != dest_tree {
                return Err(Error::invalid("mv moves within one tree; copy between trees with export and sync"));
            }
            tree::mv(&mut pool, tree, source, dest).map(drop)
        }
        Command::Batch { device } => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| Error::io("cannot read the batch", e))?;
            // Every line is read and checked before the pool is opened.
            let lines = batch::parse(&text)?;
            let mut pool = open(&device, OpenMode::Write)?;
            let done = batch::batch(&mut pool, &lines).map_err(|failed| {
                eprintln!("{PROGRAM}: line {} of the batch failed ({}); nothing was changed", failed.line, failed.text);
                failed.error
            })?;
            stdout_write(&match done.txg {
                Some(txg) => format!("{PROGRAM}: {} changes committed at txg {txg}\n", done.changes),
                None => format!("{PROGRAM}: {} changes, nothing to commit\n", done.changes),
            })
        }
        Command::Export { nodev, nosuid, source, dest, device } => {
            snapfs::cli::yield_to_writers();
            let mut pool = open(&device, OpenMode::Read)?;
            let spec = PathSpec::parse_in(&mut pool, &source)?;
            let options = snapfs::fs::export::ExportOptions { nodev, nosuid };
            let stats = tree::export(&mut pool, &spec, Path::new(&dest), options)?;
            eprint!("{}", render::withheld(&stats));
            stdout_write(&render::exported(&source, &dest, &stats))
        }
        Command::Snapshot {
            auto,
            at,
            from,
            rule: RuleArgs { matches, exclude, conditions },
            like,
            mut merge,
            args,
        } => {
            if !merge.is_empty() {
                // --merge takes every word after it: the device is its last.
                let device = match args.as_slice() {
                    [_, device] => device.clone(),
                    _ => merge.pop().unwrap_or_default(),
                };
                let mut pool = open(&device, OpenMode::Write)?;
                let (tree, name) = snapshot_arg(&mut pool, &args[0])?;
                let mut sources = Vec::new();
                for source in &merge {
                    let (source_tree, source) = snapshot_arg(&mut pool, source)?;
                    if source_tree != tree {
                        return Err(Error::invalid(format!(
                            "{} is a snapshot of another tree than @{name}: a merge unites snapshots of one tree",
                            merge.iter().find(|m| m.ends_with(&format!("@{source}"))).map_or(source, |m| m.as_str())
                        )));
                    }
                    sources.push(source.to_string());
                }
                let (taken, extraction) =
                    snapshot::snapshot_merged(&mut pool, tree, name, &sources, extract_inodes()?)?;
                let mut written = pool.store.dev.written_bytes();
                drop(pool);
                let text = render::merged(&taken) + &finish_extraction(&device, extraction, &mut written)?;
                print_io_written(PROGRAM, written);
                return stdout_write(&text);
            }
            let rule = RecordedRule { from: None, matches, excludes: exclude, conditions, merged: Vec::new() };
            let subset = from.is_some() || like.is_some() || rule != RecordedRule::default();
            let (name, clone, device) = match (auto, args.as_slice()) {
                (true, [device]) => (None, None, device),
                (true, [clone, device]) if clone.ends_with(':') => (None, Some(clone), device),
                (false, [name, device]) => (Some(name), None, device),
                (true, _) => {
                    return Err(Error::invalid(
                        "--auto names the snapshot itself: give no @NAME with it (CLONE: for a clone's)",
                    ));
                }
                (false, _) => return Err(Error::invalid("name the snapshot (@NAME), or give --auto")),
            };
            if subset && auto {
                return Err(Error::invalid("--auto takes whole snapshots: name a subset snapshot (@NAME)"));
            }
            if from.is_some() && at.is_some() {
                return Err(Error::invalid("--from takes the moment of the snapshot it refines: give --at or --from"));
            }
            if subset && let Some(name) = name {
                // The files are selected by a reader, which pins the moment: writers go
                // on meanwhile; then a writer copies what was selected in one commit.
                let mut reader = open(device, OpenMode::Read)?;
                let moment = at.map(|at| parse_moment(&at, reader.clock().now_ns())).transpose()?;
                let (tree, name) = snapshot_arg(&mut reader, name)?;
                let rule = match like {
                    Some(like) => snapshot::rule_of(&mut reader, tree, snapshot_name(&like)?, from.is_some())?,
                    None => rule,
                };
                let source = match (from, moment) {
                    (Some(from), _) => SubsetFrom::Snapshot(snapshot_name(&from)?.to_string()),
                    (None, Some(moment)) => SubsetFrom::Moment(moment),
                    (None, None) => SubsetFrom::Now,
                };
                let planned = snapshot::plan_subset(&mut reader, tree, name, source, rule)?;
                let mut pool = open(device, OpenMode::Write)?;
                let (taken, extraction) = snapshot::take_subset(&mut pool, tree, name, planned, extract_inodes()?)?;
                let mut written = pool.store.dev.written_bytes();
                // The writer first: closing the reader's descriptor of the device would
                // drop the writer's record lock on it.
                drop(pool);
                let text = render::taken(&taken) + &finish_extraction(device, extraction, &mut written)?;
                print_io_written(PROGRAM, written);
                drop(reader);
                return stdout_write(&text);
            }
            let mut pool = open(device, OpenMode::Write)?;
            let moment = at.map(|at| parse_moment(&at, pool.clock().now_ns())).transpose()?;
            let taken = match (name, moment) {
                (Some(name), moment) => {
                    let (tree, name) = snapshot_arg(&mut pool, name)?;
                    match moment {
                        None => snapshot::snapshot(&mut pool, tree, name)?,
                        Some(moment) => snapshot::snapshot_at(&mut pool, tree, name, moment)?,
                    }
                }
                (None, moment) => {
                    let tree = clone.map(|c| whole_tree(&mut pool, c)).transpose()?.unwrap_or(LIVE_TREE_ID);
                    prune::snapshot_auto(&mut pool, tree, moment)?
                }
            };
            print_io_stats(PROGRAM, &pool);
            stdout_write(&render::taken(&taken))
        }
        Command::Prune { keep, dry_run, json, args } => {
            let (clone, device) = match args.as_slice() {
                [device] => (None, device),
                [clone, device] => (Some(clone), device),
                _ => unreachable!("clap enforces 1 or 2 arguments"),
            };
            let mut pool = open(device, if dry_run { OpenMode::Read } else { OpenMode::Write })?;
            let rules = prune::KeepRules::parse(&keep)?;
            let tree = clone.map(|c| whole_tree(&mut pool, c)).transpose()?.unwrap_or(LIVE_TREE_ID);
            let pruned = prune::prune(&mut pool, tree, &rules, dry_run)?;
            stdout_write(&if json { render::json(&pruned) } else { render::pruned(&pruned) })
        }
        Command::List { json, bookmarks: true, device } => {
            let listed = bookmarks::list(&mut open(&device, OpenMode::Read)?)?;
            stdout_write(&if json { render::json(&listed) } else { render::bookmarks(&listed) })
        }
        Command::List { json, bookmarks: false, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            let trees: Vec<u64> = pool.trees()?.map(|t| t.id).collect();
            let mut listed = Vec::new();
            for tree in trees {
                listed.extend(snapshot::list(&mut pool, tree)?);
            }
            if json {
                return stdout_write(&render::json(&listed));
            }
            let marks = bookmarks::list(&mut pool)?;
            let marks = if marks.is_empty() { String::new() } else { format!("\n{}", render::bookmarks(&marks)) };
            stdout_write(&format!("{}{marks}", render::list(&listed)))
        }
        Command::Destroy { dry_run, verbose, args } => {
            let (specs, device) = args.split_at(args.len() - 1);
            let mut pool = open(&device[0], if dry_run { OpenMode::Read } else { OpenMode::Write })?;
            if let [spec] = specs
                && let Some((tree, name)) = bookmark_of(&mut pool, spec)?
            {
                if dry_run {
                    return Err(Error::invalid("-n is for snapshots; a bookmark holds no blocks"));
                }
                let destroyed = bookmarks::destroy(&mut pool, tree, name)?;
                return stdout_write(&format!("{PROGRAM}: destroyed bookmark {spec} (of @{})\n", destroyed.snapshot));
            }
            // A bare name is a clone's; one that names none gets the snapshot's error.
            if let [name] = specs
                && !name.contains(['@', ':', '%'])
                && pool.tree_id(name).is_ok()
            {
                if dry_run {
                    return Err(Error::invalid("-n is for snapshots; a clone's space is its REFER in `snapctl list`"));
                }
                return stdout_write(&render::clone_destroyed(&clone::destroy_clone(&mut pool, name)?));
            }
            let (tree, specs) = snapshot_specs(&mut pool, specs)?;
            let names = snapshot::select(&mut pool, tree, &specs)?;
            let destroyed = snapshot::destroy(&mut pool, tree, &names, dry_run)?;
            let prefix = if tree == LIVE_TREE_ID { String::new() } else { pool.tree_name(tree)? };
            stdout_write(&render::destroyed(&destroyed, &prefix, verbose))
        }
        Command::Rename { old, new, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            if let Some((tree, old_name)) = bookmark_of(&mut pool, &old)? {
                let Some((new_tree, new_name)) = bookmark_of(&mut pool, &new)? else {
                    return Err(Error::invalid("a bookmark's new name is a bookmark name too: #NEW"));
                };
                if new_tree != tree && split_tree(&new).0.is_some() {
                    return Err(Error::invalid("rename keeps a bookmark in its tree: give the new name as #NEW"));
                }
                bookmarks::rename(&mut pool, tree, old_name, new_name)?;
                return stdout_write(&format!("{PROGRAM}: renamed {old} to {new}\n"));
            }
            if !old.contains(['@', ':']) {
                if new.contains(['@', ':', '#']) {
                    return Err(Error::invalid("a clone's new name is a bare name too: rename OLD NEW"));
                }
                clone::rename_clone(&mut pool, &old, &new)?;
                return stdout_write(&format!("{PROGRAM}: renamed clone {old} to {new}\n"));
            }
            let (tree, old) = snapshot_arg(&mut pool, &old)?;
            // The new name may leave out the tree: it stays in the old one's.
            let (new_tree, new_name) = snapshot_arg(&mut pool, &new)?;
            if new_tree != tree && split_tree(&new).0.is_some() {
                return Err(Error::invalid("rename keeps a snapshot in its tree: give the new name as @NEW"));
            }
            let new = new_name;
            let renamed = snapshot::rename(&mut pool, tree, old, new)?;
            stdout_write(&render::renamed(&renamed))
        }
        Command::Rollback { recursive, name, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let (tree, name) = snapshot_arg(&mut pool, &name)?;
            let rolled = snapshot::rollback(&mut pool, tree, name, recursive)?;
            stdout_write(&render::rolled_back(&rolled))
        }
        Command::Diff { times, json, from, args } => {
            let (to, device) = args::diff_operands(&args);
            let mut pool = open(device, OpenMode::Read)?;
            let (tree, from) = snapshot_arg(&mut pool, &from)?;
            let to = match to.map(|to| snapshot_arg(&mut pool, to)).transpose()? {
                Some((to_tree, _)) if to_tree != tree => {
                    return Err(Error::invalid("diff compares two snapshots of one tree (or one and that tree)"));
                }
                to => to.map(|(_, name)| name),
            };
            let changes = diff::diff(&mut pool, tree, from, to)?;
            stdout_write(&if json { render::json(&changes) } else { render::diff(&changes, times) })
        }
        Command::Bookmark { snapshot, name, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let (tree, snapshot) = snapshot_arg(&mut pool, &snapshot)?;
            let Some((mark_tree, mark)) = bookmark_of(&mut pool, &name)? else {
                return Err(Error::invalid(format!("{name:?}: write the bookmark's name #NAME (quoted in a shell)")));
            };
            if mark_tree != tree && split_bookmark(&name).is_some_and(|(t, _)| t.is_some()) {
                return Err(Error::invalid("a bookmark is in its snapshot's tree: give its name as #NAME"));
            }
            let made = bookmarks::bookmark(&mut pool, tree, snapshot, mark)?;
            stdout_write(&format!("{PROGRAM}: bookmarked @{} as #{} (txg {})\n", made.snapshot, made.name, made.txg))
        }
        Command::Hold { tag, name, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let (tree, short) = snapshot_arg(&mut pool, &name)?;
            holds::hold(&mut pool, tree, short, &tag)?;
            stdout_write(&format!("{PROGRAM}: held {name} with tag {tag}\n"))
        }
        Command::Release { tag, name, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let (tree, short) = snapshot_arg(&mut pool, &name)?;
            holds::release(&mut pool, tree, short, &tag)?;
            stdout_write(&format!("{PROGRAM}: released hold {tag} on {name}\n"))
        }
        Command::Extract { args } => {
            let (names, device) = args.split_at(args.len() - 1);
            let mut reader = open(&device[0], OpenMode::Read)?;
            let mut named = Vec::new();
            for name in names {
                let (tree, name) = snapshot_arg(&mut reader, name)?;
                named.push((tree, name.to_string()));
            }
            let planned = snapshot::plan_extractions(&mut reader, &named, extract_inodes()?)?;
            let (mut text, mut written) = (String::new(), 0);
            for extraction in planned {
                text.push_str(&finish_extraction(&device[0], Some(extraction), &mut written)?);
            }
            if text.is_empty() {
                text = format!("{PROGRAM}: no subset snapshot is being extracted: nothing to do\n");
            }
            print_io_written(PROGRAM, written);
            drop(reader);
            stdout_write(&text)
        }
        Command::Show { json, name, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            let (tree, name) = snapshot_arg(&mut pool, &name)?;
            let shown = snapshot::show(&mut pool, tree, name)?;
            stdout_write(&if json { render::json(&shown) } else { render::shown(&shown) })
        }
        Command::Holds { json, name, device } => {
            let mut pool = open(&device, OpenMode::Read)?;
            let (tree, name) = snapshot_arg(&mut pool, &name)?;
            let listed = holds::holds(&mut pool, tree, name)?;
            stdout_write(&if json { render::json(&listed) } else { render::holds(&listed) })
        }
        Command::Clone { snapshot, name, device } => {
            let mut pool = open(&device, OpenMode::Write)?;
            let (tree, snapshot) = snapshot_arg(&mut pool, &snapshot)?;
            let cloned = clone::clone(&mut pool, tree, snapshot, &name)?;
            stdout_write(&format!("{PROGRAM}: cloned {} as {} at txg {}\n", cloned.origin, cloned.name, cloned.txg))
        }
        Command::Promote { name, device } => {
            let promoted = clone::promote(&mut open(&device, OpenMode::Write)?, &name)?;
            let moved: Vec<String> = promoted.moved.iter().map(|n| format!("@{n}")).collect();
            stdout_write(&format!(
                "{PROGRAM}: promoted {name}: {} moved from {}, which is now a clone of {name}; the retained history \
                 was dropped\n",
                if moved.is_empty() { "no snapshot".to_string() } else { moved.join(", ") },
                promoted.demoted
            ))
        }
        Command::Status { json, device } => {
            let status = status::status(&mut open(&device, OpenMode::Read)?, &device)?;
            stdout_write(&if json { render::json(&status) } else { render::status(&status) })
        }
        Command::Check { json, device } => {
            snapfs::cli::yield_to_writers();
            let checked = check::check(&mut open(&device, OpenMode::Read)?)?;
            stdout_write(&if json { render::json(&checked) } else { render::checked(&checked) })?;
            render::check_verdict(&checked)
        }
        Command::Scrub { json, no_repair, device } => {
            snapfs::cli::yield_to_writers();
            // A reader beside writers; repairs, if any, through a writer opened at the end.
            let mut pool = open(&device, OpenMode::Read)?;
            let bar = render::ScrubBar::start();
            let scrubbed =
                scrub::scrub(&mut pool, !no_repair, &mut |p| bar.show(p), &mut || open(&device, OpenMode::Write))?;
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
            let changed = set::set(&mut pool, parse_property(&property)?)?;
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

/// The tree and snapshot name an argument gives: "@SNAP" (the live tree) or "NAME@SNAP".
fn snapshot_arg<'a>(pool: &mut Pool, arg: &'a str) -> Result<(u64, &'a str)> {
    let (tree, rest) = tree_of(pool, arg)?;
    Ok((tree, snapshot_name(rest)?))
}

/// The tree that `destroy`'s snapshot arguments name (one for all), and the arguments
/// without it: "@A", "NAME@A", ranges "NAME@A%@B" or "NAME@A%NAME@B".
fn snapshot_specs(pool: &mut Pool, specs: &[String]) -> Result<(u64, Vec<String>)> {
    let mut tree = None;
    let mut out = Vec::new();
    for spec in specs {
        let mut parts = Vec::new();
        for part in spec.splitn(2, '%') {
            let (part_tree, rest) = match (parts.is_empty(), split_tree(part)) {
                // A range's end may be a bare name: it is in the range's tree.
                (false, (None, rest)) => (tree.unwrap_or(snapfs::pool::LIVE_TREE_ID), rest),
                _ => tree_of(pool, part)?,
            };
            if tree.is_some_and(|t| t != part_tree) {
                return Err(Error::invalid("destroy takes snapshots of one tree at a time"));
            }
            tree = Some(part_tree);
            parts.push(rest);
        }
        out.push(parts.join("%"));
    }
    Ok((tree.unwrap_or(snapfs::pool::LIVE_TREE_ID), out))
}

/// The tree a "CLONE:" argument names (nothing after the colon).
fn whole_tree(pool: &mut Pool, arg: &str) -> Result<u64> {
    match tree_of(pool, arg)? {
        (tree, "") => Ok(tree),
        _ => Err(Error::invalid(format!("{arg:?}: give the clone as CLONE: (a tree, not a path in it)"))),
    }
}
