//! What snapctl prints: each command's outcome as human text, in one function per
//! outcome, and as JSON (for the commands with `--json`), always through serde, so the
//! JSON of every command is built the same way. Both are APIs: tests and scripts read them.

use super::PROGRAM;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use snapfs::cli::{format_duration, format_time, format_time_ns};
use snapfs::cmd::bookmarks::ListedBookmark;
use snapfs::cmd::check::Checked;
use snapfs::cmd::diff::ChangedPath;
use snapfs::cmd::history::History;
use snapfs::cmd::holds::ListedHold;
use snapfs::cmd::prune::Pruned;
use snapfs::cmd::scrub::{Scrubbed, Verdict};
use snapfs::cmd::set::{Changed, Property};
use snapfs::cmd::snapshot::Extraction;
use snapfs::cmd::snapshot::{Destroyed, Listed, Renamed, RolledBack, Taken};
use snapfs::cmd::status::PoolStatus;
use snapfs::cmd::tree::{ListedEntry, PutStats, Synced};
use snapfs::error::human_bytes;
use snapfs::error::{Error, Result};
use snapfs::fs::export::ExportStats;
use snapfs::fs::pipeline::CompressionCounts;
use snapfs::pool::ExpandOutcome;
use snapfs::scrub::ScrubProgress;

/// An outcome as one line of JSON.
pub fn json<T: Serialize>(outcome: &T) -> String {
    let mut text = serde_json::to_string(outcome).expect("outcomes serialize: no maps with non-string keys");
    text.push('\n');
    text
}

pub fn synced(source: &str, s: &Synced) -> String {
    let txg = s.txg.map_or("nothing to commit".to_string(), |t| format!("txg {}", t.0));
    let st = &s.stats;
    format!(
        "{PROGRAM}: synced {source}: {} changed files read ({}), {} created, {} removed, {} moves detected, {} metadata updates, {} unchanged; {txg}\n{}",
        st.files_written,
        human_bytes(st.bytes_read),
        st.entries_created,
        st.entries_removed,
        st.renames_detected,
        st.metadata_updated,
        st.unchanged,
        compression_counts(&st.compression),
    )
}

/// The records a copy-in gave the compressor, kept compressed, and did not try.
fn compression_counts(c: &CompressionCounts) -> String {
    if c.tried + c.skipped == 0 {
        return String::new();
    }
    format!("{PROGRAM}: compression: {} records tried, {} kept compressed, {} skipped\n", c.tried, c.kept, c.skipped)
}

pub fn set(device: &str, changed: &Changed) -> String {
    let txg = changed.txg.0;
    let freed = match changed.freed_bytes {
        0 => String::new(),
        bytes => format!("; the commits it no longer retains freed {}", human_bytes(bytes)),
    };
    match changed.property {
        Property::Compression(codec) => format!(
            "{PROGRAM}: {device}: compression={} for new writes (txg {txg}); stored data is unchanged\n",
            codec.name()
        ),
        Property::History { seconds } => {
            format!("{PROGRAM}: {device}: history={} (txg {txg}){freed}\n", format_duration(seconds))
        }
        Property::HistorySpace { percent: 0 } => {
            format!("{PROGRAM}: {device}: history-space=0%: no cap on the history's space (txg {txg})\n")
        }
        Property::HistorySpace { percent } => format!(
            "{PROGRAM}: {device}: history-space={percent}% (at most {}; the history alone holds {} now) (txg {txg}){freed}\n",
            human_bytes(changed.cap_bytes.unwrap_or(0)),
            human_bytes(changed.history_only_bytes.unwrap_or(0)),
        ),
    }
}

pub fn put(path: &str, stats: &PutStats) -> String {
    format!("{PROGRAM}: wrote {} to {path}\n", human_bytes(stats.bytes))
}

/// What --nodev/--nosuid left out of an export, a warning a line.
pub fn withheld(stats: &ExportStats) -> String {
    stats.withheld.iter().map(|line| format!("{PROGRAM}: warning: {line}\n")).collect()
}

pub fn exported(source: &str, dest: &str, stats: &ExportStats) -> String {
    format!(
        "{PROGRAM}: exported {} to {dest}: {} files ({}), {} directories, {} symlinks, {} hard links, {} special files{}\n",
        if source.is_empty() { "the live tree" } else { source },
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
    )
}

pub fn taken(t: &Taken) -> String {
    if let Some(stats) = &t.subset {
        let of = t.past.map_or(String::new(), |time| format!(", the tree as committed at {}", format_time_ns(time)));
        let none = if stats.files == 0 { " (the rule selects no file)" } else { "" };
        return format!(
            "{PROGRAM}: subset snapshot @{} taken of txg {}{of}: {} files, {} directories, {} ({} bytes) of file \
             data shared, none copied{none}\n",
            t.name,
            t.txg,
            stats.files,
            stats.directories,
            human_bytes(stats.file_bytes),
            stats.file_bytes
        );
    }
    match t.past {
        None => format!("{PROGRAM}: snapshot @{} taken at txg {}\n", t.name, t.txg),
        Some(time) => format!(
            "{PROGRAM}: snapshot @{} taken of txg {}, the tree as committed at {}\n",
            t.name,
            t.txg,
            format_time_ns(time)
        ),
    }
}

/// A subset snapshot's extraction finished by this process.
pub fn extracted(e: &Extraction) -> String {
    let commits = match e.commits {
        1 => "1 commit".to_string(),
        n => format!("{n} commits"),
    };
    if !e.done.is_done() {
        return format!(
            "{PROGRAM}: @{}: {} of its {} inodes extracted in {commits}; `snapctl extract @{} DEVICE` does the rest\n",
            e.done.name, e.done.inodes_done, e.done.inodes, e.done.name
        );
    }
    format!(
        "{PROGRAM}: @{}: its files extracted, {} inodes in {commits} of at most {} (writers went on between them)\n",
        e.done.name,
        e.done.inodes,
        e.most()
    )
}

pub fn clone_destroyed(d: &snapfs::cmd::clone::CloneDestroyed) -> String {
    format!("{PROGRAM}: destroyed clone {}, freed {} ({} bytes)\n", d.name, human_bytes(d.freed_bytes), d.freed_bytes)
}

/// `tree`: the clone the snapshots are of ("" for the live tree), named before each.
pub fn destroyed(d: &Destroyed, tree: &str, verbose: bool) -> String {
    let would = if d.dry_run { "would " } else { "" };
    let mut text = String::new();
    if verbose {
        for name in &d.names {
            text.push_str(&format!("{PROGRAM}: {would}destroy {tree}@{name}\n"));
        }
    }
    let names: Vec<String> = d.names.iter().map(|n| format!("{tree}@{n}")).collect();
    let freed = format!("{} ({} bytes)", human_bytes(d.freed_bytes), d.freed_bytes);
    if d.dry_run {
        text.push_str(&format!("{PROGRAM}: would destroy {}, freeing {freed}", names.join(", ")));
        match d.history_held_bytes {
            Some(held) if held > 0 => text.push_str(&format!(
                "; retained commits would go on holding {} ({held} bytes) of what only they keep, until those expire",
                human_bytes(held)
            )),
            _ => {}
        }
        text.push('\n');
        return text;
    }
    text.push_str(&format!("{PROGRAM}: destroyed {}, freed {freed}", names.join(", ")));
    if let Some(held) = d.history_held_bytes {
        text.push_str(&format!(
            "; blocks they shared with retained commits stay until those expire (history holds {} in all; `snapctl history --prune` releases it)",
            human_bytes(held)
        ));
    }
    text.push('\n');
    text
}

pub fn pruned(p: &Pruned) -> String {
    let would = if p.dry_run { "would " } else { "" };
    let mut text: String = p.destroyed.iter().map(|n| format!("{PROGRAM}: {would}destroy @{n}\n")).collect();
    let freed = format!("{} ({} bytes)", human_bytes(p.freed_bytes), p.freed_bytes);
    let count = p.destroyed.len();
    let verb = if p.dry_run { "would prune" } else { "pruned" };
    let what = if p.dry_run { "would free" } else { "freed" };
    text.push_str(&format!("{PROGRAM}: {verb} {count} automatic snapshots, kept {}, {what} {freed}\n", p.kept));
    text
}

pub fn renamed(r: &Renamed) -> String {
    format!("{PROGRAM}: renamed @{} to @{}\n", r.old, r.new)
}

pub fn rolled_back(r: &RolledBack) -> String {
    let mut text = format!("{PROGRAM}: rolled the live tree back to @{} (txg {})", r.name, r.txg);
    if !r.destroyed.is_empty() {
        let names: Vec<String> = r.destroyed.iter().map(|n| format!("@{n}")).collect();
        text.push_str(&format!(", destroyed {}", names.join(", ")));
    }
    if !r.destroyed_bookmarks.is_empty() {
        let names: Vec<String> = r.destroyed_bookmarks.iter().map(|n| format!("#{n}")).collect();
        let noun = if names.len() == 1 { "bookmark" } else { "bookmarks" };
        text.push_str(&format!(", destroyed {noun} {}", names.join(", ")));
    }
    text.push_str(&format!(", freed {}\n", human_bytes(r.freed_bytes)));
    text
}

/// `zfs diff`'s lines: [TIME\t]MARKER\tPATH[ -> NEW PATH].
pub fn diff(changes: &[ChangedPath], times: bool) -> String {
    let mut text = String::new();
    for c in changes {
        if times {
            text.push_str(&format!("{}.{:09}\t", c.ctime_unix_ns / 1_000_000_000, c.ctime_unix_ns % 1_000_000_000));
        }
        text.push_str(&format!("{}\t{}", c.change, c.path));
        if let Some(new_path) = &c.new_path {
            text.push_str(&format!(" -> {new_path}"));
        }
        text.push('\n');
    }
    text
}

pub fn holds(holds: &[ListedHold]) -> String {
    let mut text = format!("{:<24} {:<32} {:<21}\n", "NAME", "TAG", "PLACED");
    for h in holds {
        text.push_str(&format!("{:<24} {:<32} {:<21}\n", format!("@{}", h.snapshot), h.tag, h.placed));
    }
    text
}

pub fn list(snapshots: &[Listed]) -> String {
    let mut text =
        format!("{:<24} {:>8} {:<21} {:>10} {:>10} {:>10}\n", "NAME", "TXG", "CREATED", "UNIQUE", "REFER", "WRITTEN");
    for s in snapshots {
        text.push_str(&format!(
            "{:<24} {:>8} {:<21} {:>10} {:>10} {:>10}\n",
            match s.tree.as_str() {
                snapfs::pool::LIVE_TREE_NAME => format!("@{}", s.name),
                tree => format!("{tree}@{}", s.name),
            } + if s.extracting { " (extracting)" } else { "" },
            s.txg,
            s.created,
            human_bytes(s.unique_bytes),
            human_bytes(s.referenced_bytes),
            human_bytes(s.written_bytes)
        ));
    }
    text
}

/// Bookmarks, apart from the snapshots: each with the snapshot it was made from.
pub fn bookmarks(marks: &[ListedBookmark]) -> String {
    let mut text = format!("{:<24} {:>8} {:<21} {}\n", "BOOKMARK", "TXG", "CREATED", "FROM");
    for b in marks {
        let prefix = if b.tree == snapfs::pool::LIVE_TREE_NAME { String::new() } else { b.tree.clone() };
        text.push_str(&format!(
            "{:<24} {:>8} {:<21} @{}\n",
            format!("{prefix}#{}", b.name),
            b.txg,
            b.created,
            b.snapshot
        ));
    }
    text
}

pub fn status(s: &PoolStatus) -> String {
    let mut text = String::new();
    let mut line = |k: &str, v: String| text.push_str(&format!("{k:<13}{v}\n"));
    line("device:", format!("{} (pool {})", s.device, s.pool_guid));
    let features = if s.features.is_empty() { "none".to_string() } else { s.features.join(", ") };
    line("format:", format!("label version {}, features: {features}", s.format_version));
    line("size:", format!("{} ({} for data)", human_bytes(s.device_bytes), human_bytes(s.data_bytes)));
    if s.device_grown_bytes > 0 {
        let grown = s.device_grown_bytes;
        line("", format!("the device has grown by {grown} bytes ({}): `snapctl expand` adds them", human_bytes(grown)));
    }
    line("used:", format!("{} ({:.1}%)", human_bytes(s.used_bytes), 100.0 * s.used_bytes as f64 / s.data_bytes as f64));
    line(
        "",
        format!(
            "live tree {}, snapshots {}, history alone {}, pool metadata {}",
            human_bytes(s.live_referenced_bytes),
            human_bytes(s.held_by_snapshots_bytes),
            human_bytes(s.held_by_history_only_bytes),
            human_bytes(s.pool_metadata_bytes)
        ),
    );
    line("free:", human_bytes(s.free_bytes));
    line(
        "live tree:",
        format!(
            "{} files, {} of data stored in {} (compression {:.2}x)",
            s.live_files,
            human_bytes(s.live_logical_bytes),
            human_bytes(s.live_stored_bytes),
            s.compression_ratio
        ),
    );
    line(
        "snapshots:",
        format!(
            "{}; snapshots and history hold {} the live tree no longer uses",
            s.snapshots,
            human_bytes(s.held_by_snapshots_and_history_bytes)
        ),
    );
    line("last commit:", format!("txg {} at {}", s.last_txg, s.last_commit));
    let oldest = match (s.history_oldest_txg, &s.history_oldest) {
        (Some(txg), Some(time)) => format!("txg {txg} at {time}"),
        _ => "-".to_string(),
    };
    line(
        "history:",
        format!(
            "{} commits retained since {oldest} (keep {}, leave {}% free{}); {} held by history alone",
            s.history_commits,
            format_duration(s.history_seconds),
            s.history_reserve_percent,
            match s.history_space_percent {
                0 => String::new(),
                percent => format!(", hold at most {percent}%"),
            },
            human_bytes(s.held_by_history_only_bytes)
        ),
    );
    line(
        "compression:",
        format!(
            "{} for new data; live records: {} stored compressed, {} raw",
            s.compression, s.live_records_compressed, s.live_records_raw
        ),
    );
    for c in &s.clones {
        let origin = c.origin.as_deref().map_or("a tree of its own".to_string(), |o| format!("from {o}"));
        line("clone:", format!("{} ({origin}), {} referenced", c.name, human_bytes(c.referenced_bytes)));
    }
    for r in &s.readers {
        let pins = if r.pins.is_empty() { "nothing yet".to_string() } else { r.pins.join(", ") };
        line("reader:", format!("pid {} ({}) pins {pins}", r.pid, r.command));
    }
    for name in &s.extracting {
        line("extracting:", format!("{name}: a subset snapshot whose files are still being copied into its tree"));
        line("", format!("unless a snapshot or extract command is doing it: snapctl extract {name} DEVICE"));
    }
    if let (Some(p), Some(token)) = (&s.partial_receive, &s.receive_resume_token) {
        line(
            "receiving:",
            format!(
                "partial receive of @{}{} saved at {}: {} records ({}) applied",
                p.snapshot,
                p.base.as_ref().map_or(String::new(), |base| format!(" (from @{base})")),
                p.saved,
                p.records_applied,
                human_bytes(p.stream_bytes_applied)
            ),
        );
        line("token:", token.clone());
        line("", "resume: snapsend -t TOKEN DEVICE | snaprecv -s TARGET; discard: snaprecv -A TARGET".into());
    }
    text
}

/// A host file stored while it kept changing, named each (the command committed).
pub fn changed_while_read(paths: &[std::path::PathBuf]) -> String {
    let mut text = String::new();
    for path in paths {
        text.push_str(&format!(
            "{PROGRAM}: warning: {} changed as we read it; the copy may mix versions\n",
            path.display()
        ));
    }
    text.push_str(
        "hint: the rest was stored and committed; run the command again when the file is quiet to store \
         one version of it\n",
    );
    text
}

/// Check's verdict as the exit status and last word: problems found are corruption.
pub fn check_verdict(c: &Checked) -> Result<()> {
    if c.clean { Ok(()) } else { Err(Error::corrupt(format!("{} problems found", c.problems.len()))) }
}

pub fn checked(c: &Checked) -> String {
    let mut text = String::new();
    for p in &c.problems {
        text.push_str(&format!("problem: {p}\n"));
    }
    text.push_str(&format!(
        "{PROGRAM}: check {}: {} blocks verified ({}), {} trees walked, {} dead index entries, {} blocks referenced + {} free = data area{}\n",
        if c.clean { "clean" } else { "FAILED" },
        c.blocks_verified,
        human_bytes(c.bytes_verified),
        c.trees_walked,
        c.dead_entries,
        c.referenced_blocks,
        c.free_blocks,
        if c.clean { "" } else { " (not exact)" }
    ));
    text
}

/// What the change released, printed before the listing (also before `--json`'s).
pub fn released(h: &History) -> String {
    if h.released_bytes == 0 {
        String::new()
    } else {
        format!("{PROGRAM}: released {}\n", human_bytes(h.released_bytes))
    }
}

pub fn history(h: &History) -> String {
    let cap = match h.space_percent {
        0 => String::new(),
        percent => format!(", hold at most {percent}% of the device"),
    };
    let mut text = format!(
        "history: keep {}{cap}; {} commits retained, holding {} that nothing else keeps\n",
        format_duration(h.keep_seconds),
        h.commits.len(),
        human_bytes(h.held_by_history_only_bytes)
    );
    for c in &h.commits {
        text.push_str(&format!("txg {:>8}  {}\n", c.txg, c.time));
    }
    text
}

pub fn expanded(device: &str, outcome: ExpandOutcome) -> String {
    match outcome {
        ExpandOutcome::Grown { old_bytes, new_bytes } => format!(
            "{PROGRAM}: expanded {device} from {old_bytes} bytes ({}) to {new_bytes} bytes ({}): {} more\n",
            human_bytes(old_bytes),
            human_bytes(new_bytes),
            human_bytes(new_bytes - old_bytes)
        ),
        ExpandOutcome::FirstLabelRewritten { pool_bytes } => format!(
            "{PROGRAM}: the pool already spans {device} ({pool_bytes} bytes); rewrote the damaged label at its start\n"
        ),
        ExpandOutcome::Unchanged { pool_bytes, device_bytes } => format!(
            "{PROGRAM}: nothing to expand: the pool already spans {device} ({pool_bytes} bytes of {device_bytes}); \
             grow the device first\n"
        ),
    }
}

pub fn ls(entries: &[ListedEntry], long: bool) -> String {
    let mut text = String::new();
    for e in entries {
        if long {
            text.push_str(&long_line(e));
        }
        text.push_str(&e.path);
        if let (true, Some(target)) = (long, &e.symlink_target) {
            text.push_str(" -> ");
            text.push_str(&String::from_utf8_lossy(target));
        }
        text.push('\n');
    }
    text
}

fn long_line(e: &ListedEntry) -> String {
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

/// Scrub's progress bar, drawn only when standard error is a terminal.
pub struct ScrubBar(ProgressBar);

impl ScrubBar {
    pub fn start() -> ScrubBar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "scrub {msg:8} {binary_bytes:>10} / {binary_total_bytes} {wide_bar} {binary_bytes_per_sec:>12} eta {eta}",
        )
        .expect("a valid template");
        bar.set_style(style);
        ScrubBar(bar)
    }

    pub fn show(&self, p: &ScrubProgress) {
        self.0.set_message(p.phase);
        if p.phase == "data" {
            self.0.set_length(p.total_bytes);
            self.0.set_position(p.done_bytes);
        }
    }

    pub fn finish(self) {
        self.0.finish_and_clear();
    }
}

pub fn scrub(report: &Scrubbed) -> String {
    let mut text = String::new();
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
        text.push_str(&format!(
            "damage: {} block {}{copy}, born in txg {}: {}: {outcome}\n",
            d.kind, d.block, d.birth_txg, d.error
        ));
    }
    for label in &report.labels_damaged {
        let outcome = if report.labels_repaired { "rewritten from the good one" } else { "the other label is good" };
        text.push_str(&format!("damage: {label}: {outcome}\n"));
    }
    for p in &report.problems {
        text.push_str(&format!("problem: {p}\n"));
    }
    let rate = report.bytes_verified as f64 / report.seconds.max(1e-6);
    text.push_str(&format!(
        "{PROGRAM}: scrub {}: {} verified ({}) in {:.2} s ({}/s): {}, {}; {} repaired, {} without a good copy\n",
        if report.clean { "clean" } else { "FOUND DAMAGE" },
        counted(report.blocks_verified, "copy", "copies"),
        human_bytes(report.bytes_verified),
        report.seconds,
        human_bytes(rate as u64),
        counted(report.metadata_blocks, "metadata block", "metadata blocks"),
        counted(report.data_blocks, "data block", "data blocks"),
        counted(report.repaired, "copy", "copies"),
        counted(report.unrecoverable, "block", "blocks"),
    ));
    text
}

/// Scrub's verdict as the exit status and last word: damage left is an error.
pub fn scrub_verdict(verdict: Verdict, device: &str) -> Result<()> {
    Err(match verdict {
        Verdict::Clean => return Ok(()),
        Verdict::Lost { blocks } => Error::Damaged {
            what: format!(
                "{} no good copy left: what is named above cannot be read; restore it from a replica or a backup",
                if blocks == 1 { "1 block has".to_string() } else { format!("{blocks} blocks have") }
            ),
        },
        Verdict::Undecodable { structures } => {
            Error::corrupt(format!("{structures} structures verified but do not decode"))
        }
        Verdict::Unrepaired { copies } => {
            let (left, them) = if copies == 1 { ("it is", "it") } else { ("they are", "them") };
            Error::Damaged {
                what: format!(
                    "{} found and left as {left} (-n): every block still has a good copy; run `snapctl scrub {device}` to rewrite {them}",
                    counted(copies, "damaged copy", "damaged copies"),
                ),
            }
        }
    })
}

/// "1 copy", "2 copies".
pub fn counted(count: u64, one: &str, many: &str) -> String {
    if count == 1 { format!("1 {one}") } else { format!("{count} {many}") }
}

pub fn merged(m: &snapfs::cmd::snapshot::Merged) -> String {
    let from: Vec<String> = m.sources.iter().map(|(name, files)| format!("{files} from @{name}")).collect();
    let overridden = match m.stats.overridden {
        0 => String::new(),
        n => format!("; {n} older versions or paths left out, the newer taken"),
    };
    format!(
        "{PROGRAM}: merged snapshot @{} taken of txg {}: {} files, {} directories, {} ({} bytes) of file data \
         shared, none copied ({}{overridden})\n",
        m.name,
        m.txg,
        m.stats.held.files,
        m.stats.held.directories,
        human_bytes(m.stats.held.file_bytes),
        m.stats.held.file_bytes,
        from.join(", ")
    )
}

/// One snapshot in full (`show`).
pub fn shown(s: &snapfs::cmd::snapshot::Shown) -> String {
    let l = &s.snapshot;
    let tree = if l.tree == "live" { String::from("the live tree") } else { format!("clone {}", l.tree) };
    let mut text = format!("@{}: a snapshot of {tree}, txg {}, as committed at {}\n", l.name, l.txg, l.created);
    match &l.rule {
        None => text.push_str("  rule:       none (the whole tree)\n"),
        Some(rule) => {
            let mut parts = Vec::new();
            if let Some(from) = &rule.from {
                parts.push(format!("--from @{from}"));
            }
            parts.extend(rule.matches.iter().map(|g| format!("--match '{g}'")));
            parts.extend(rule.excludes.iter().map(|g| format!("--exclude '{g}'")));
            parts.extend(rule.conditions.iter().map(|c| format!("--where '{c}'")));
            if !rule.merged.is_empty() {
                let names: Vec<String> = rule.merged.iter().map(|n| format!("@{n}")).collect();
                parts
                    .push(format!("--merge {} (newest first: where they differ, the first gives it)", names.join(" ")));
            }
            text.push_str(&format!("  rule:       {}\n", parts.join(" ")));
        }
    }
    text.push_str(&format!(
        "  holds:      {} files, {} directories, {} ({} bytes) of file data\n",
        s.files,
        s.directories,
        human_bytes(s.file_bytes),
        s.file_bytes
    ));
    text.push_str(&format!(
        "  space:      {} referenced, {} freed if destroyed, {} written since the snapshot before\n",
        human_bytes(l.referenced_bytes),
        human_bytes(l.unique_bytes),
        human_bytes(l.written_bytes)
    ));
    if l.extracting {
        text.push_str(&format!(
            "  extracting: its files are still being copied into its tree (`ls` and `cat` read them meanwhile); \
             `snapctl extract @{} DEVICE` finishes it\n",
            l.name
        ));
    }
    if !l.holds.is_empty() {
        text.push_str(&format!("  held by:    {}\n", l.holds.join(", ")));
    }
    text.push_str(&format!("  guid:       {}\n", l.guid));
    text
}
