//! The workload: real `snapfmt`, `snapctl`, `snapsend` and `snaprecv` processes on an
//! image file, every write and flush of theirs recorded (`SNAPFS_WRITE_LOG`), and after
//! each command the state it left, read through the library.
//!
//! The recorded pool receives a full stream, an incremental and a `-I` stream of two
//! snapshots (two commits in one command) from a second pool, then is filled and changed
//! by snapctl (sync, snapshot, put, put --offset, mkdir -p, mv, rm -r, rename, destroy,
//! destroy of a range, set compression=lz4, history, set history-space),
//! then a broken incremental is saved with `snaprecv -s -F` and resumed (a rollback).
//!
//! Then the image file grows (the device grows between two commands: `set_len`, made
//! durable before the next command), `snapctl expand` grows the pool into the new space,
//! and a sync and a snapshot allocate past the old end. Last, a hold (the commit that
//! sets the `holds` feature bit in both labels), `rollback -r` discarding a changed live
//! tree and destroying a later snapshot in one commit, the release, two `snapshot
//! --auto`, a `prune` that destroys the older, a clone written, snapshotted and
//! destroyed, a batch, a snapshot of the moment before it taken after it (`snapshot
//! --at`), a subset snapshot, its refinement (both extracted four inodes per commit), a
//! subset whose extraction stops after two commits as a kill leaves it and `extract`
//! finishes, a merge of two moments and a clone of it (both destroyed), the subset's
//! destroy, and a full stream received into a new tree (`snaprecv --tree`). The growth is
//! not a log record:
//! every process's open record carries the device size it saw, so the size at every
//! event is the one the last open record gave, and the log may not grow the device with
//! a write pending (a crash then is before the growth, with the state of the command
//! before it, or after it). Crash images of a boundary have its size.
//!
//! Invariants checked while recording: each command exits as expected; the image built
//! by applying the log's writes in order equals the image file byte for byte (no write
//! bypassed the log; the image grows to the size each open record gives, with zeros);
//! the pool opens and `check` finds it clean after every command.

use super::log::{Event, Logged, parse};
use super::state::{PoolState, SnapshotState, capture, history_tree};
use super::{Workdir, open_image};
use crate::crash::hosttree::{self, TreeSize};
use snapfs::check::check_pool;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Size of the recorded pool's image file.
pub const IMAGE_BYTES: u64 = 48 << 20;
/// Its size after the growth before `snapctl expand`: large enough that metadata's second
/// copies (placed three quarters into the data area) land past the old end.
pub const GROWN_BYTES: u64 = 80 << 20;

/// One recorded command and the states a crash during it may leave.
pub struct RecordedCommand {
    pub label: String,
    /// Events of this command: `events[range]`.
    pub events: std::ops::Range<usize>,
    /// States of commits the command made before its last one (a receive of several
    /// snapshots), in order.
    pub intermediate: Vec<PoolState>,
    /// The state after it.
    pub after: PoolState,
}

pub struct Recording {
    pub log: Vec<u8>,
    pub events: Vec<Logged>,
    /// Command 0 is the format: crash states start after its last flush.
    pub commands: Vec<RecordedCommand>,
}

impl Recording {
    /// The command whose events include `event`.
    pub fn command_of(&self, event: usize) -> usize {
        self.commands.iter().position(|c| c.events.contains(&event)).expect("every event belongs to a command")
    }

    /// The device's size at `event`: what the last open record up to it gave.
    pub fn device_bytes_at(&self, event: usize) -> u64 {
        self.events[..=event]
            .iter()
            .rev()
            .find_map(|l| match l.event {
                Event::Open { device_bytes } => Some(device_bytes),
                _ => None,
            })
            .expect("the log opens with an open record")
    }
}

/// Applies `events` to `image` in order: an open record sizes it (a grown device reads
/// zeros past its old end), a write overwrites its bytes.
pub fn apply_logged(image: &mut Vec<u8>, log: &[u8], events: &[Logged]) {
    for logged in events {
        match &logged.event {
            Event::Open { device_bytes } => image.resize(*device_bytes as usize, 0),
            Event::Write { offset, data } => {
                let offset = *offset as usize;
                image[offset..offset + data.len()].copy_from_slice(&log[data.clone()]);
            }
            Event::Flush | Event::Close => {}
        }
    }
}

/// The device may only grow, and only with no write pending (see the module header): a
/// crash image of a boundary then has one size, the boundary's.
pub fn check_growth(events: &[Logged]) -> Result<(), String> {
    let (mut size, mut pending) = (None, 0usize);
    for (i, logged) in events.iter().enumerate() {
        match logged.event {
            Event::Open { device_bytes } => {
                match size {
                    Some(before) if device_bytes < before => {
                        return Err(format!(
                            "write log event {i}: the device shrank from {before} to {device_bytes} bytes; the \
                             harness models growth only"
                        ));
                    }
                    Some(before) if device_bytes > before && pending > 0 => {
                        return Err(format!(
                            "write log event {i}: the device grew from {before} to {device_bytes} bytes with \
                             {pending} writes not flushed; grow it only between flushed commands"
                        ));
                    }
                    _ => {}
                }
                size = Some(device_bytes);
            }
            Event::Write { .. } => pending += 1,
            Event::Flush => pending = 0,
            Event::Close => {}
        }
    }
    Ok(())
}

struct Runner {
    bins: PathBuf,
    dir: PathBuf,
    image: PathBuf,
    log_path: PathBuf,
    log: Vec<u8>,
    events: Vec<Logged>,
    replayed: Vec<u8>,
    commands: Vec<RecordedCommand>,
    verbose: bool,
    /// Environment for the next commands, beside the write log's.
    env: Vec<(String, String)>,
}

enum Input<'a> {
    None,
    File(&'a Path),
    Bytes(Vec<u8>),
}

fn os(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    args.iter().map(|a| a.as_ref().to_os_string()).collect()
}

impl Runner {
    /// Runs one process; returns its output. `log` turns recording on.
    fn run(
        &self,
        program: &str,
        args: &[OsString],
        input: Input,
        log: bool,
        expect_ok: bool,
    ) -> Result<std::process::Output, String> {
        let mut cmd = Command::new(self.bins.join(program));
        cmd.args(args).env_remove(snapfs::device::recording::WRITE_LOG_ENV).current_dir(&self.dir);
        if log {
            cmd.env(snapfs::device::recording::WRITE_LOG_ENV, &self.log_path);
        }
        // Subset snapshots extracted over several commits, four inodes each.
        cmd.env("SNAPFS_EXTRACT_INODES", "4").env_remove("SNAPFS_EXTRACT_STOP_AFTER");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let shown = format!("{program} {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = match input {
            Input::None => cmd.stdin(Stdio::null()).output(),
            Input::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
                cmd.stdin(file).output()
            }
            Input::Bytes(bytes) => {
                use std::io::Write;
                cmd.stdin(Stdio::piped());
                let mut child = cmd.spawn().map_err(|e| format!("run {shown}: {e}"))?;
                let mut stdin = child.stdin.take().expect("piped stdin");
                let writer = std::thread::spawn(move || stdin.write_all(&bytes));
                let output = child.wait_with_output();
                writer.join().expect("stdin writer").map_err(|e| format!("{shown}: write stdin: {e}"))?;
                output
            }
        }
        .map_err(|e| format!("run {shown}: {e}"))?;
        if output.status.success() != expect_ok {
            return Err(format!(
                "`{shown}` {} ({}); expected {}:\n{}{}",
                if output.status.success() { "succeeded" } else { "failed" },
                output.status,
                if expect_ok { "success" } else { "failure" },
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        if self.verbose {
            eprintln!("  ran {shown}");
        }
        Ok(output)
    }

    /// Runs a command on the recorded image, then takes in its log records, checks the
    /// image against them, and captures the state it left.
    fn record(
        &mut self,
        label: &str,
        program: &str,
        args: &[OsString],
        input: Input,
        expect_ok: bool,
    ) -> Result<String, String> {
        let mut full: Vec<OsString> = args.to_vec();
        full.push(self.image.clone().into_os_string());
        let output = self.run(program, &full, input, true, expect_ok)?;
        let log = std::fs::read(&self.log_path).map_err(|e| format!("read the write log: {e}"))?;
        let new = parse(&log, self.log.len())?;
        self.log = log;
        let first = self.events.len();
        if !matches!(new.first().map(|l| &l.event), Some(Event::Open { .. })) {
            return Err(format!("`{label}` logged no open record: did it open the device through the write log?"));
        }
        if !matches!(new.last().map(|l| &l.event), Some(Event::Close)) {
            return Err(format!("`{label}` did not close the device (no close record)"));
        }
        apply_logged(&mut self.replayed, &self.log, &new);
        self.events.extend(new);
        check_growth(&self.events)?;
        let image = std::fs::read(&self.image).map_err(|e| format!("read {}: {e}", self.image.display()))?;
        if image != self.replayed {
            let block = image.chunks(4096).zip(self.replayed.chunks(4096)).position(|(a, b)| a != b);
            return Err(format!(
                "after `{label}` the image differs from its write log at block {block:?}: a write bypassed the log"
            ));
        }
        finish_command(&mut self.commands, label, first..self.events.len(), &image)?;
        Ok(String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// Grows the image file to `bytes` between two commands, durably, as a resized
    /// volume grows. Not a log record: the next command's open record gives the size.
    fn grow(&mut self, bytes: u64) -> Result<(), String> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.image)
            .map_err(|e| format!("open {}: {e}", self.image.display()))?;
        file.set_len(bytes).and_then(|()| file.sync_all()).map_err(|e| format!("grow the image to {bytes}: {e}"))
    }
}

/// Adds a command whose events are `events` and which left `image`.
fn finish_command(
    commands: &mut Vec<RecordedCommand>,
    label: &str,
    events: std::ops::Range<usize>,
    image: &[u8],
) -> Result<(), String> {
    let after = state_of(image, label)?;
    let intermediate = match commands.last() {
        Some(before) => intermediate_states(&before.after, &after, image, label)?,
        None => Vec::new(),
    };
    commands.push(RecordedCommand { label: label.to_string(), events, intermediate, after });
    Ok(())
}

/// The list of recorded commands kept beside the log: "FIRST_EVENT END_EVENT LABEL".
pub const COMMANDS_FILE: &str = "commands.txt";
pub const LOG_FILE: &str = "write.log";

/// Loads a recording kept by an earlier run (`--keep`, or the directory a failure
/// names): the log and the list of commands. The states are rebuilt from the log, so
/// the crash images are exactly those of that run, whatever the binaries do today.
pub fn load(dir: &Path) -> Result<Recording, String> {
    let log_path = dir.join(LOG_FILE);
    let log = std::fs::read(&log_path).map_err(|e| format!("read {}: {e}", log_path.display()))?;
    let events = parse(&log, 0)?;
    let list_path = dir.join(COMMANDS_FILE);
    let list = std::fs::read_to_string(&list_path).map_err(|e| format!("read {}: {e}", list_path.display()))?;
    check_growth(&events)?;
    let mut image = Vec::new();
    let mut commands = Vec::new();
    for line in list.lines() {
        let mut fields = line.splitn(3, ' ');
        let mut number = || fields.next().and_then(|f| f.parse::<usize>().ok());
        let (Some(first), Some(end)) = (number(), number()) else {
            return Err(format!("{}: bad line {line:?}", list_path.display()));
        };
        let label = fields.next().unwrap_or("");
        if first > end || end > events.len() {
            return Err(format!("{}: events {first}..{end} of {}", list_path.display(), events.len()));
        }
        apply_logged(&mut image, &log, &events[first..end]);
        finish_command(&mut commands, label, first..end, &image)?;
    }
    Ok(Recording { log, events, commands })
}

/// Opens image bytes read-only, checks them, and returns their state.
fn state_of(image: &[u8], label: &str) -> Result<PoolState, String> {
    let mut pool = open_image(image.to_vec()).map_err(|e| format!("after `{label}` the pool does not open: {e}"))?;
    let report = check_pool(&mut pool).map_err(|e| format!("after `{label}` check fails: {e}"))?;
    if !report.is_clean() {
        return Err(format!("after `{label}` check finds problems: {:?}", report.problems));
    }
    capture(&mut pool, None).map_err(|e| format!("after `{label}`: {e}"))
}

/// The states of the commits a command made before its last: derived from the state
/// before it and the finished image (its retained commits), never from a crash image.
/// Sound for what the workload does in one command with several commits (a receive of
/// several snapshots): each commit adds one snapshot and sets the live tree to it, and
/// changes nothing else; anything else is refused here rather than guessed.
fn intermediate_states(
    before: &PoolState,
    after: &PoolState,
    image: &[u8],
    label: &str,
) -> Result<Vec<PoolState>, String> {
    if after.txg <= before.txg + 1 {
        return Ok(Vec::new());
    }
    if let Some(states) = extraction_states(before, after) {
        return Ok(states);
    }
    let refuse = |why: &str| {
        Err(format!("`{label}` made commits {}..{}; cannot derive their states: {why}", before.txg + 1, after.txg))
    };
    if before.config != after.config || before.receive != after.receive || before.pool_bytes != after.pool_bytes {
        return refuse("it changed the configuration, the partial receive or the pool's size");
    }
    if !before.snapshots.iter().all(|(name, s)| after.snapshots.get(name) == Some(s)) {
        return refuse("it destroyed or changed a snapshot");
    }
    if !before.history.iter().all(|t| after.history.contains(t)) {
        return refuse("it released retained commits");
    }
    let mut pool = open_image(image.to_vec())?;
    let mut states = Vec::new();
    for txg in before.txg + 1..after.txg {
        if !after.history.contains(&txg) {
            return refuse(&format!("commit {txg} is not retained"));
        }
        let mut snapshots = before.snapshots.clone();
        snapshots.extend(after.snapshots.iter().filter(|(_, s)| s.txg <= txg).map(|(n, s)| (n.clone(), s.clone())));
        let new: Vec<_> = after.snapshots.values().filter(|s| s.txg == txg).collect();
        let live = history_tree(&mut pool, txg, None)?;
        if new.len() != 1 || new[0].tree != live {
            return refuse(&format!("commit {txg} did not make exactly one snapshot of its live tree"));
        }
        let history = after.history.iter().copied().filter(|&t| t <= txg).collect();
        states.push(PoolState {
            txg,
            pool_bytes: before.pool_bytes,
            config: before.config.clone(),
            history,
            receive: before.receive.clone(),
            live,
            snapshots,
            clones: before.clones.clone(),
        });
    }
    Ok(states)
}

/// The states of the commits a command made before its last if all it changed is one
/// subset snapshot, which it took or went on extracting (`snapshot --match` larger than a
/// commit copies, `extract`; pool/extraction.rs): each is the state after it at its own
/// txg, with the history up to it, and that snapshot still being extracted (readers see
/// the same tree in it). None if the command changed anything else.
fn extraction_states(before: &PoolState, after: &PoolState) -> Option<Vec<PoolState>> {
    let same = before.config == after.config
        && before.receive == after.receive
        && before.pool_bytes == after.pool_bytes
        && before.live == after.live
        && before.clones == after.clones
        && before.history.iter().all(|t| after.history.contains(t))
        && before.snapshots.keys().all(|name| after.snapshots.contains_key(name));
    let changed: Vec<&String> =
        after.snapshots.iter().filter(|(name, s)| before.snapshots.get(*name) != Some(s)).map(|(n, _)| n).collect();
    let ([name], true) = (changed.as_slice(), same) else { return None };
    let extracting = SnapshotState { extracting: true, ..after.snapshots[*name].clone() };
    if before.snapshots.get(*name).is_some_and(|old| *old != extracting) {
        return None;
    }
    let mut states = Vec::new();
    for txg in before.txg + 1..after.txg {
        if !after.history.contains(&txg) {
            return None;
        }
        let mut state = after.clone();
        state.txg = txg;
        state.history.retain(|&t| t <= txg);
        state.snapshots.insert(name.to_string(), extracting.clone());
        states.push(state);
    }
    Some(states)
}

/// Runs the whole workload in `work` and returns what it recorded.
pub fn record(work: &Workdir, bins: &Path, seed: u64, verbose: bool) -> Result<Recording, String> {
    let dir = work.path().to_path_buf();
    let image = dir.join("pool.img");
    let source = dir.join("source.img");
    for path in [&image, &source] {
        let file = std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        file.set_len(IMAGE_BYTES).map_err(|e| format!("size {}: {e}", path.display()))?;
    }
    let mut r = Runner {
        bins: bins.to_path_buf(),
        dir: dir.clone(),
        image,
        log_path: dir.join(LOG_FILE),
        log: Vec::new(),
        events: Vec::new(),
        replayed: vec![0; IMAGE_BYTES as usize],
        commands: Vec::new(),
        verbose,
        env: Vec::new(),
    };
    let streams = source_streams(&r, &source, seed)?;
    let s = |name: &str| streams.join(name);

    r.record("snapfmt", "snapfmt", &[], Input::None, true)?;
    r.record("snaprecv (full @r1)", "snaprecv", &[], Input::File(&s("full-r1")), true)?;
    r.record("snaprecv (incremental @r1..@r2)", "snaprecv", &[], Input::File(&s("r1-r2")), true)?;
    r.record("snaprecv (-I @r2..@r4: two snapshots)", "snaprecv", &[], Input::File(&s("r2-r4")), true)?;

    let tree = dir.join("tree");
    hosttree::generate(&tree, seed, TreeSize { small_files: 40, medium_files: 3, large_bytes: 1_200_000 })?;
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, b"notes put from the host\n".repeat(300)).map_err(|e| format!("write notes: {e}"))?;
    let patch = dir.join("patch.bin");
    let mut patch_bytes = vec![0u8; 20_000];
    crate::rng::Rng::derive(seed, &[0xBA7C]).fill(&mut patch_bytes);
    std::fs::write(&patch, &patch_bytes).map_err(|e| format!("write patch: {e}"))?;
    let mut stdin_bytes = vec![0u8; 300_000];
    crate::rng::Rng::derive(seed, &[0x57D1]).fill(&mut stdin_bytes[..150_000]);

    r.record("snapctl sync (tree replaces the live tree)", "snapctl", &os(&[&"sync", &tree]), Input::None, true)?;
    r.record("snapctl snapshot @s1", "snapctl", &os(&[&"snapshot", &"@s1"]), Input::None, true)?;
    r.record("snapctl put notes.txt", "snapctl", &os(&[&"put", &notes, &"docs/notes.txt"]), Input::None, true)?;
    r.record(
        "snapctl put - (stdin)",
        "snapctl",
        &os(&[&"put", &"-", &"data/stdin.bin"]),
        Input::Bytes(stdin_bytes),
        true,
    )?;
    r.record("snapctl mkdir -p", "snapctl", &os(&[&"mkdir", &"-p", &"new/deep/er"]), Input::None, true)?;
    r.record(
        "snapctl mv src/a into new/deep/er",
        "snapctl",
        &os(&[&"mv", &"src/a", &"new/deep/er"]),
        Input::None,
        true,
    )?;
    r.record("snapctl rm -r src/b", "snapctl", &os(&[&"rm", &"-r", &"src/b"]), Input::None, true)?;
    hosttree::mutate(&tree, seed, 1)?;
    r.record("snapctl sync (after a mutation)", "snapctl", &os(&[&"sync", &tree]), Input::None, true)?;
    r.record("snapctl snapshot @s2", "snapctl", &os(&[&"snapshot", &"@s2"]), Input::None, true)?;
    let put_offset = os(&[&"put", &"--offset", &"200704", &patch, &"data/big.bin"]);
    r.record("snapctl put --offset", "snapctl", &put_offset, Input::None, true)?;
    r.record("snapctl destroy @s1", "snapctl", &os(&[&"destroy", &"@s1"]), Input::None, true)?;
    // A new compression for new writes: the commit that names lz4 sets its feature bit in
    // both labels first, and the sync after it writes lz4 blocks beside zstd ones.
    let lz4 = os(&[&"set", &"compression=lz4"]);
    r.record("snapctl set compression=lz4", "snapctl", &lz4, Input::None, true)?;
    hosttree::mutate(&tree, seed, 2)?;
    r.record("snapctl sync (second mutation)", "snapctl", &os(&[&"sync", &tree]), Input::None, true)?;
    r.record("snapctl history --prune", "snapctl", &os(&[&"history", &"--prune"]), Input::None, true)?;
    r.record("snapctl history --keep 2h", "snapctl", &os(&[&"history", &"--keep", &"2h"]), Input::None, true)?;
    // A cap on the history's space (pool root version 5): every later commit trims it.
    let cap = os(&[&"set", &"history-space=5%"]);
    r.record("snapctl set history-space=5%", "snapctl", &cap, Input::None, true)?;
    r.record("snapctl rename @s2 @kept", "snapctl", &os(&[&"rename", &"@s2", &"@kept"]), Input::None, true)?;
    r.record("snapctl destroy @kept", "snapctl", &os(&[&"destroy", &"@kept"]), Input::None, true)?;
    let range = os(&[&"destroy", &"@r1%@r2"]);
    r.record("snapctl destroy @r1%@r2 (two in one commit)", "snapctl", &range, Input::None, true)?;

    // A broken incremental, saved (-s); its resume rolls the changed live tree back (-F).
    let stderr = r.record(
        "snaprecv -s -F (truncated @r4..@r5)",
        "snaprecv",
        &os(&[&"-s", &"-F"]),
        Input::File(&s("r4-r5-cut")),
        false,
    )?;
    // The rest of a broken part, sent with the token its receive printed (not recorded).
    let rest_of = |r: &mut Runner, stderr: &str, name: &str| -> Result<PathBuf, String> {
        let token = stderr
            .split("snapsend -t ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or_else(|| format!("the broken receive printed no resume token:\n{stderr}"))?
            .to_string();
        let path = streams.join(name);
        let out = r.run("snapsend", &os(&[&"-t", &token, &source]), Input::None, false, true)?;
        std::fs::write(&path, &out.stdout).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    };
    let resume = rest_of(&mut r, &stderr, "resume")?;
    r.record("snaprecv -s -F (resumed @r5)", "snaprecv", &os(&[&"-s", &"-F"]), Input::File(&resume), true)?;

    // The device grows; expand, then commits that allocate in the new space.
    r.grow(GROWN_BYTES)?;
    r.record("snapctl expand (grown device)", "snapctl", &os(&[&"expand"]), Input::None, true)?;
    let expanded = r.events.len();
    hosttree::mutate(&tree, seed, 3)?;
    r.record("snapctl sync (third mutation)", "snapctl", &os(&[&"sync", &tree]), Input::None, true)?;
    r.record("snapctl snapshot @s3", "snapctl", &os(&[&"snapshot", &"@s3"]), Input::None, true)?;
    let past_old_end = r.events[expanded..].iter().any(|l| match &l.event {
        Event::Write { offset, data } => {
            offset + data.len() as u64 <= GROWN_BYTES - (1 << 18) && *offset >= IMAGE_BYTES
        }
        _ => false,
    });
    if !past_old_end {
        return Err("no command after `snapctl expand` wrote past the old end: the new space is not exercised".into());
    }

    // A hold (the first sets the holds feature in both labels) and its release; a
    // rollback past a later snapshot (-r destroys it) that discards a changed live tree.
    r.record("snapctl hold replica @s3", "snapctl", &os(&[&"hold", &"replica", &"@s3"]), Input::None, true)?;
    hosttree::mutate(&tree, seed, 4)?;
    r.record("snapctl sync (fourth mutation)", "snapctl", &os(&[&"sync", &tree]), Input::None, true)?;
    r.record("snapctl snapshot @s4", "snapctl", &os(&[&"snapshot", &"@s4"]), Input::None, true)?;
    // A bookmark (the first sets the bookmarks feature in both labels), which the
    // rollback -r below destroys with @s4.
    r.record("snapctl bookmark @s4 #s4", "snapctl", &os(&[&"bookmark", &"@s4", &"#s4"]), Input::None, true)?;
    hosttree::mutate(&tree, seed, 5)?;
    r.record("snapctl sync (fifth mutation)", "snapctl", &os(&[&"sync", &tree]), Input::None, true)?;
    r.record("snapctl rollback -r @s3", "snapctl", &os(&[&"rollback", &"-r", &"@s3"]), Input::None, true)?;
    r.record("snapctl release replica @s3", "snapctl", &os(&[&"release", &"replica", &"@s3"]), Input::None, true)?;
    r.record("snapctl bookmark @s3 #s3", "snapctl", &os(&[&"bookmark", &"@s3", &"#s3"]), Input::None, true)?;
    r.record("snapctl rename #s3 #kept", "snapctl", &os(&[&"rename", &"#s3", &"#kept"]), Input::None, true)?;
    // Retention from cron: two automatic snapshots, and a prune that destroys the older.
    r.record("snapctl snapshot --auto", "snapctl", &os(&[&"snapshot", &"--auto"]), Input::None, true)?;
    hosttree::mutate(&tree, seed, 6)?;
    r.record("snapctl sync (sixth mutation)", "snapctl", &os(&[&"sync", &tree]), Input::None, true)?;
    r.record("snapctl snapshot --auto (again)", "snapctl", &os(&[&"snapshot", &"--auto"]), Input::None, true)?;
    let prune = os(&[&"prune", &"--keep", &"hourly=0"]);
    r.record("snapctl prune --keep hourly=0", "snapctl", &prune, Input::None, true)?;
    // A clone (the first sets the clones and tree_index features in both labels),
    // written, snapshotted, renamed and destroyed with its snapshot.
    r.record("snapctl clone @s3 work", "snapctl", &os(&[&"clone", &"@s3", &"work"]), Input::None, true)?;
    let put = os(&[&"put", &"-", &"work:clone-file"]);
    r.record("snapctl put - work:clone-file", "snapctl", &put, Input::Bytes(vec![7; 70_000]), true)?;
    r.record("snapctl snapshot work@w1", "snapctl", &os(&[&"snapshot", &"work@w1"]), Input::None, true)?;
    r.record("snapctl rm -r work:", "snapctl", &os(&[&"rm", &"-r", &"work:clone-file"]), Input::None, true)?;
    // Promote: @s3 (and the live tree's snapshots before it) move to work, the live tree
    // becomes its clone; promoting the live tree back restores the roles.
    r.record("snapctl promote work", "snapctl", &os(&[&"promote", &"work"]), Input::None, true)?;
    r.record("snapctl promote live", "snapctl", &os(&[&"promote", &"live"]), Input::None, true)?;
    // A batch: several changes in one commit, all or none (cmd/batch.rs).
    let batch_file = dir.join("batch-file");
    std::fs::write(&batch_file, vec![5; 90_000]).map_err(|e| format!("write {}: {e}", batch_file.display()))?;
    let changes = format!(
        "mkdir -p batch/a\nput '{}' batch/a/f\nsetxattr batch/a/f user.k v\nmv batch/a batch/b\nput '{}' work:batch-f\n",
        batch_file.display(),
        batch_file.display()
    );
    let before_batch = rfc3339_now();
    r.record("snapctl batch", "snapctl", &os(&[&"batch"]), Input::Bytes(changes.into_bytes()), true)?;
    // A snapshot of a past moment, taken after the fact: the commit before the batch.
    let past = os(&[&"snapshot", &"@past", &"--at", &before_batch]);
    r.record("snapctl snapshot @past --at (before the batch)", "snapctl", &past, Input::None, true)?;
    // Subset snapshots (the first sets the subsets feature bit in both labels): the
    // batch's files, a refinement of it, and the first destroyed (its own nodes freed).
    let subset = os(&[&"snapshot", &"@sub", &"--match", &"batch/**", &"--match", &"**/*1*"]);
    r.record("snapctl snapshot @sub --match", "snapctl", &subset, Input::None, true)?;
    let refined = os(&[&"snapshot", &"@sub2", &"--from", &"@sub", &"--where", &"size<80K"]);
    r.record("snapctl snapshot @sub2 --from @sub", "snapctl", &refined, Input::None, true)?;
    // A subset whose extraction stops after two commits, as a kill leaves it, then
    // finished by `extract` and destroyed.
    r.env = vec![("SNAPFS_EXTRACT_STOP_AFTER".into(), "2".into())];
    let part = os(&[&"snapshot", &"@part", &"--match", &"**"]);
    r.record("snapctl snapshot @part --match (stopped after 2 commits)", "snapctl", &part, Input::None, true)?;
    r.env.clear();
    r.record("snapctl extract", "snapctl", &os(&[&"extract"]), Input::None, true)?;
    r.record("snapctl destroy @part", "snapctl", &os(&[&"destroy", &"@part"]), Input::None, true)?;
    // A merge of the refinement and the past moment (two moments: the older is needed),
    // a clone of the merge (a copy of its nodes), both destroyed.
    let merge = os(&[&"snapshot", &"@both", &"--merge", &"@sub2", &"@past"]);
    r.record("snapctl snapshot @both --merge @sub2 @past", "snapctl", &merge, Input::None, true)?;
    r.record("snapctl clone @both picked", "snapctl", &os(&[&"clone", &"@both", &"picked"]), Input::None, true)?;
    r.record("snapctl destroy picked", "snapctl", &os(&[&"destroy", &"picked"]), Input::None, true)?;
    r.record("snapctl destroy @both", "snapctl", &os(&[&"destroy", &"@both"]), Input::None, true)?;
    r.record("snapctl destroy @sub", "snapctl", &os(&[&"destroy", &"@sub"]), Input::None, true)?;
    // A rename changes only the clone's entry and its name key (pool/trees.rs).
    r.record("snapctl rename work job", "snapctl", &os(&[&"rename", &"work", &"job"]), Input::None, true)?;
    r.record("snapctl destroy job@w1", "snapctl", &os(&[&"destroy", &"job@w1"]), Input::None, true)?;
    r.record("snapctl destroy job", "snapctl", &os(&[&"destroy", &"job"]), Input::None, true)?;
    // A full stream into a tree of its own, made by the receive's commit.
    let into = os(&[&"--tree", &"copy"]);
    r.record("snaprecv --tree copy (full @r1)", "snaprecv", &into, Input::File(&s("full-r1")), true)?;
    // An incremental from a bookmark (ranges of keys replace the tree's), broken and
    // saved (-s), then its rest from the token (a receive state of version 2).
    let saving = os(&[&"-s", &"--tree", &"copy"]);
    let cut = Input::File(&s("bm-r1-r2-cut"));
    let stderr = r.record("snaprecv -s --tree copy (truncated #r1 -> @r2)", "snaprecv", &saving, cut, false)?;
    let resume = rest_of(&mut r, &stderr, "bm-resume")?;
    r.record("snaprecv -s --tree copy (resumed #r1 -> @r2)", "snaprecv", &saving, Input::File(&resume), true)?;
    r.record("snapctl destroy #kept", "snapctl", &os(&[&"destroy", &"#kept"]), Input::None, true)?;

    let list: String =
        r.commands.iter().map(|c| format!("{} {} {}\n", c.events.start, c.events.end, c.label)).collect();
    let list_path = dir.join(COMMANDS_FILE);
    std::fs::write(&list_path, list).map_err(|e| format!("write {}: {e}", list_path.display()))?;
    Ok(Recording { log: r.log, events: r.events, commands: r.commands })
}

/// The time now as `snapshot --at` takes it: RFC 3339, UTC, to the nanosecond.
fn rfc3339_now() -> String {
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let seconds = snapfs::utc::format_time((ns / 1_000_000_000) as i64);
    format!("{}.{:09}Z", seconds.trim_end_matches('Z'), ns % 1_000_000_000)
}

/// Fills the source pool (not recorded) and writes its streams into `dir/streams`.
fn source_streams(r: &Runner, source: &Path, seed: u64) -> Result<PathBuf, String> {
    let streams = r.dir.join("streams");
    std::fs::create_dir_all(&streams).map_err(|e| format!("create {}: {e}", streams.display()))?;
    let tree = r.dir.join("source-tree");
    hosttree::generate(&tree, seed ^ 0x5EED, TreeSize { small_files: 25, medium_files: 2, large_bytes: 700_000 })?;
    r.run("snapfmt", &os(&[&source]), Input::None, false, true)?;
    for round in 1..=5u64 {
        if round > 1 {
            hosttree::mutate(&tree, seed ^ 0x5EED, round)?;
        }
        r.run("snapctl", &os(&[&"sync", &tree, &source]), Input::None, false, true)?;
        r.run("snapctl", &os(&[&"snapshot", &format!("@r{round}"), &source]), Input::None, false, true)?;
    }
    let send = |name: &str, args: &[&str]| -> Result<Vec<u8>, String> {
        let mut full: Vec<OsString> = args.iter().map(OsString::from).collect();
        full.push(source.as_os_str().to_os_string());
        let out = r.run("snapsend", &full, Input::None, false, true)?;
        let path = streams.join(name);
        std::fs::write(&path, &out.stdout).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(out.stdout)
    };
    r.run("snapctl", &os(&[&"bookmark", &"@r1", &"#r1", &source]), Input::None, false, true)?;
    send("full-r1", &["@r1"])?;
    let cut = |name: &str, stream: &[u8]| {
        let path = streams.join(format!("{name}-cut"));
        std::fs::write(&path, &stream[..stream.len() * 2 / 3]).map_err(|e| format!("write {}: {e}", path.display()))
    };
    cut("bm-r1-r2", &send("bm-r1-r2", &["-i", "#r1", "@r2"])?)?;
    send("r1-r2", &["-i", "@r1", "@r2"])?;
    send("r2-r4", &["-I", "@r2", "@r4"])?;
    cut("r4-r5", &send("r4-r5", &["-i", "@r4", "@r5"])?)?;
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(events: Vec<Event>) -> Vec<Logged> {
        events.into_iter().map(|event| Logged { at: 0, event }).collect()
    }

    #[test]
    fn the_device_grows_only_between_flushed_writes() {
        // Goal: growth after a flush (or with no write at all) is accepted; growth with a
        // write pending, or a shrink, is refused: their crash images would have no one size.
        let open = |device_bytes| Event::Open { device_bytes };
        let write = || Event::Write { offset: 0, data: 0..1 };
        let ok = [
            vec![open(100), write(), Event::Flush, Event::Close, open(200), write(), Event::Flush],
            vec![open(100), Event::Close, open(200), open(200)],
        ];
        for events in ok {
            assert!(check_growth(&logged(events.clone())).is_ok(), "{events:?}");
        }
        let refused = [
            (vec![open(100), write(), Event::Close, open(200)], "not flushed"),
            (vec![open(200), write(), Event::Flush, open(100)], "shrank"),
        ];
        for (events, why) in refused {
            let error = check_growth(&logged(events)).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn open_records_size_the_replayed_image() {
        // Goal: a grown device reads zeros past its old end, and writes land where logged.
        let log = vec![7u8, 8, 9];
        let events = logged(vec![
            Event::Open { device_bytes: 4 },
            Event::Write { offset: 1, data: 0..2 },
            Event::Open { device_bytes: 8 },
            Event::Write { offset: 6, data: 2..3 },
        ]);
        let mut image = Vec::new();
        apply_logged(&mut image, &log, &events);
        assert_eq!(image, [0, 7, 8, 0, 0, 0, 9, 0]);
    }
}
