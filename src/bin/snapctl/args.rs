//! snapctl's arguments, as clap parses them: every command, option and help text
//! (man/snapctl.1 documents each; tests/man_pages.rs keeps them in step).

use clap::{Parser, Subcommand};

/// Fill and read the live tree, take and manage snapshots, inspect and check a snapfs
/// pool. The device (block device or image file) is always the last argument; paths name
/// the live tree, @SNAP:PATH a snapshot.
#[derive(Parser)]
#[command(name = "snapctl", version, about, long_about = None)]
pub struct Args {
    /// A command that writes waits at most SECONDS for another process writing the pool
    /// (default: until it is done), saying whom it waits for after a second.
    #[arg(long, value_name = "SECONDS", conflicts_with = "nowait")]
    pub wait: Option<u64>,
    /// A command that writes fails at once (exit 4) if another process is writing the pool.
    #[arg(long)]
    pub nowait: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// A rule over files (fs/select.rs), as `ls` previews it and `snapshot` takes it.
#[derive(clap::Args, Debug, Default)]
pub struct RuleArgs {
    /// Only files whose path from the tree's root matches GLOB (`*` within a name, `**`
    /// across directories); any of several.
    #[arg(long = "match", value_name = "GLOB")]
    pub matches: Vec<String>,
    /// Leave out files whose path from the tree's root matches GLOB.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Only files whose metadata meet every condition: FIELD OP VALUE, separated by
    /// commas, fields uid, gid, mode, size, mtime, ctime, type, xattr.NAME (for example
    /// 'uid=1000,size<1M,mtime<2026-11-01').
    #[arg(long = "where", value_name = "CONDITIONS")]
    pub conditions: Vec<String>,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// List a directory of the live tree or of a snapshot (@SNAP:PATH); with --match,
    /// --exclude or --where, the files below it that the rule selects.
    #[command(
        override_usage = "snapctl ls [-l] [-R] [--match GLOB]... [--exclude GLOB]... [--where CONDITIONS]... [PATH] DEVICE"
    )]
    Ls {
        /// Long format: mode, links, owner, group, size, time.
        #[arg(short = 'l')]
        long: bool,
        /// List subdirectories too.
        #[arg(short = 'R')]
        recursive: bool,
        #[command(flatten)]
        rule: RuleArgs,
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
    /// Make the changes listed on standard input in one commit, all or none: one a line,
    /// put HOST_FILE PATH, mkdir [-p] PATH, rm [-r] PATH, mv FROM TO, setxattr PATH NAME
    /// VALUE, rmxattr PATH NAME (words split as a shell splits them; # comments).
    Batch {
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
    /// Take a snapshot of the live tree: O(1), consistent; or, with --at, of a past
    /// moment the retained history still holds; with a rule (--match, --exclude,
    /// --where, --like), a subset snapshot of the files it selects; with --merge, the
    /// union of snapshots.
    #[command(
        override_usage = "snapctl snapshot [--auto] [--at TIME] [--from @SNAP] [--match GLOB]... [--exclude GLOB]... [--where CONDITIONS]... [--like @SNAP] [--merge @SNAP]... [@NAME] DEVICE"
    )]
    Snapshot {
        /// Name it from the time, UTC, to the minute: @auto-2026-11-25T0200Z (to the
        /// second if that exists); `prune` destroys only these.
        #[arg(long)]
        auto: bool,
        /// Take the tree as it was at TIME: the last retained commit at or before it.
        /// TIME is RFC 3339 with an offset (2026-11-25T02:00:00Z) or a span before now
        /// (-6h, -2d, "90m ago").
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        at: Option<String>,
        /// A subset of snapshot @SNAP instead of the tree: its moment, and the files of it
        /// the rule selects (a refinement).
        #[arg(long, value_name = "@SNAP")]
        from: Option<String>,
        /// With a rule, a subset snapshot: the files it selects and the directories
        /// leading to them (spans such as -7d count back from the snapshot's moment).
        #[command(flatten)]
        rule: RuleArgs,
        /// A subset snapshot with the rule subset snapshot @SNAP was taken with, of the
        /// tree now (or --at, or --from another snapshot).
        #[arg(long, value_name = "@SNAP", conflicts_with_all = ["matches", "exclude", "conditions"])]
        like: Option<String>,
        /// A snapshot uniting snapshots @SNAP... of the tree (two or more): where they
        /// differ, the newest gives the path or the file.
        #[arg(long, value_name = "@SNAP", num_args = 2.., conflicts_with_all = ["matches", "exclude", "conditions", "like", "from", "at", "auto"])]
        merge: Vec<String>,
        /// The new snapshot's name, @NAME (CLONE@NAME for a clone's; with --auto, CLONE: or
        /// nothing), then DEVICE.
        #[arg(num_args = 1..=2, required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Destroy, in one commit, the automatic snapshots (@auto-...) no --keep rule keeps.
    #[command(override_usage = "snapctl prune --keep RULES [-n] [--json] [CLONE:] DEVICE")]
    Prune {
        /// Periods and how many of each keep a snapshot, for example
        /// hourly=24,daily=7,weekly=4,monthly=12,yearly=2: each keeps the newest snapshot
        /// of each of its COUNT newest periods that have one.
        #[arg(long, value_name = "RULES")]
        keep: String,
        /// Destroy nothing: list what would be destroyed and what that would free.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Optionally CLONE: (prune a clone's snapshots; default the live tree's), then
        /// DEVICE.
        #[arg(num_args = 1..=2, required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// List snapshots, then bookmarks.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// List the bookmarks only (with --json, the bookmarks' JSON).
        #[arg(long)]
        bookmarks: bool,
        /// Block device or image file.
        device: String,
    },
    /// Destroy snapshots in one commit; the blocks only they kept are freed. Also destroys
    /// a bookmark (#NAME) or a clone (NAME).
    #[command(override_usage = "snapctl destroy [-n] [-v] @NAME... DEVICE")]
    Destroy {
        /// Destroy nothing: say what would be destroyed and exactly how many bytes that
        /// would free now.
        #[arg(short = 'n')]
        dry_run: bool,
        /// Name each snapshot destroyed.
        #[arg(short = 'v')]
        verbose: bool,
        /// The snapshots, each @NAME or a range @FIRST%@LAST (every snapshot from FIRST
        /// to LAST), then DEVICE.
        #[arg(num_args = 2.., required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Make clone NAME, a writable tree that starts as the snapshot and shares its blocks.
    Clone {
        /// The snapshot, written @SNAP (of the live tree) or TREE@SNAP (of a clone).
        #[arg(value_name = "@SNAP")]
        snapshot: String,
        /// The clone's name; its paths are then written NAME:PATH, its snapshots NAME@SNAP.
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// Swap a clone's role with the tree it was made from, as `zfs promote` does: the
    /// snapshots up to its origin move to it, and that tree becomes its clone.
    Promote {
        /// The clone.
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// Give a snapshot (or a bookmark, or a clone) another name; streams find a
    /// snapshot by its guid, so replication goes on.
    Rename {
        /// The snapshot, written @OLD (a bookmark: #OLD; a clone: its bare name).
        #[arg(value_name = "@OLD")]
        old: String,
        /// Its new name, written @NEW (a bookmark: #NEW; a clone: its bare name).
        #[arg(value_name = "@NEW")]
        new: String,
        /// Block device or image file.
        device: String,
    },
    /// Make the live tree that snapshot again; what it gained since is discarded.
    Rollback {
        /// Destroy the snapshots taken and bookmarks made after it (refused without).
        #[arg(short = 'r')]
        recursive: bool,
        /// The snapshot, written @NAME.
        #[arg(value_name = "@NAME")]
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// What changed from a snapshot to a later one or to the live tree, one line per path.
    #[command(override_usage = "snapctl diff [-t] [--json] @A [@B] DEVICE")]
    Diff {
        /// Start each line with the inode's change time (seconds.nanoseconds).
        #[arg(short = 't')]
        times: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// The snapshot to compare from, written @A.
        #[arg(value_name = "@A")]
        from: String,
        /// Optionally the snapshot to compare with, @B (default: the live tree), then
        /// DEVICE.
        #[arg(num_args = 1..=2, required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Keep what an incremental stream needs to start from a snapshot, after the snapshot
    /// itself is destroyed: `snapsend -i '#NAME' @NEW` then sends from it.
    Bookmark {
        /// The snapshot, written @SNAP (of the live tree) or TREE@SNAP (of a clone).
        #[arg(value_name = "@SNAP")]
        snapshot: String,
        /// The bookmark's name, written #NAME (quote it in a shell).
        #[arg(value_name = "#NAME")]
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// Hold a snapshot: while any hold is on it, destroy (and rollback -r) refuse it.
    Hold {
        /// A name for the hold, for example the replica that needs the snapshot.
        tag: String,
        /// The snapshot, written @NAME.
        #[arg(value_name = "@NAME")]
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// Release a hold placed by `hold`.
    Release {
        /// The hold's tag.
        tag: String,
        /// The snapshot, written @NAME.
        #[arg(value_name = "@NAME")]
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// Finish extracting subset snapshots whose files are still being copied (after a
    /// kill or a crash during `snapshot --match/--where`): each goes on from where it
    /// stopped, one commit at a time. With no @NAME, every such snapshot.
    #[command(override_usage = "snapctl extract [@NAME]... DEVICE")]
    Extract {
        /// The snapshots, each @NAME (CLONE@NAME for a clone's), then DEVICE.
        #[arg(num_args = 1.., required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// One snapshot in full: its moment, the rule a subset was taken with, what it holds
    /// (files, directories, bytes) and what destroying it would free.
    Show {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// The snapshot, written @NAME (CLONE@NAME for a clone's).
        #[arg(value_name = "@NAME")]
        name: String,
        /// Block device or image file.
        device: String,
    },
    /// List the holds on a snapshot, with when each was placed.
    Holds {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
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
    /// Change a property of the pool from now on: compression=zstd:N|lz4|off,
    /// history=DURATION, history-space=PERCENT.
    Set {
        /// PROPERTY=VALUE: compression=zstd:1 to zstd:19, zstd (level 3), lz4, or off;
        /// history=24h (how long commits are retained; 0 keeps only the newest);
        /// history-space=10% (the most the history may hold in blocks nothing else keeps;
        /// 0% for no cap).
        property: String,
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

/// `sync`'s operands: SOURCE, PATH ("" for the root), DEVICE.
pub fn sync_operands(args: &[String]) -> [&str; 3] {
    match args {
        [s, d] => [s, "", d],
        [s, p, d] => [s, p, d],
        _ => unreachable!("clap enforces 2 or 3 arguments"),
    }
}

/// `diff`'s operands after @A: @B (None for the live tree), DEVICE.
pub fn diff_operands(args: &[String]) -> (Option<&str>, &str) {
    match args {
        [d] => (None, d),
        [b, d] => (Some(b), d),
        _ => unreachable!("clap enforces 1 or 2 arguments"),
    }
}

/// `ls`'s operands: PATH ("" for the root of the live tree), DEVICE.
pub fn ls_operands(args: &[String]) -> [&str; 2] {
    match args {
        [d] => ["", d],
        [p, d] => [p, d],
        _ => unreachable!("clap enforces 1 or 2 arguments"),
    }
}
