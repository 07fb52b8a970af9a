//! `snaptorture crash`: the crash-consistency harness.
//!
//! 1. Record (workload.rs): run a workload of real snapfs commands on an image file with
//!    `SNAPFS_WRITE_LOG` set, so every write and flush they issue lands in a log, and
//!    capture the state each command leaves (and its intermediate commits, if any).
//! 2. Explore (explore.rs, model.rs): for every flush boundary after the format, build
//!    the images a power cut could leave (nothing of the pending writes, all, in-order
//!    prefixes, random subsets in random orders with torn sectors), and require each to
//!    open, pass `check`, and hold the state before or after the command in flight (or an
//!    intermediate commit of it: a receive of several snapshots, a subset snapshot's
//!    extraction), never anything else. An image that holds a subset snapshot still
//!    being extracted is then finished as `snapctl extract` would, and must end with the
//!    tree readers saw in it (explore.rs `finish_extractions`).
//!
//! Every state is named by the seed and a crash point `BOUNDARY.STATE`; `--replay
//! SEED:BOUNDARY.STATE` re-runs the workload from the seed and judges that state alone.

pub mod explore;
pub mod hosttree;
pub mod log;
pub mod model;
pub mod state;
pub mod workload;

use explore::{Boundary, Outcome, Tally};
use snapfs::device::{MemoryDevice, OpenMode};
use snapfs::pool::Pool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use workload::Recording;

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Crash states to try (at least; a boundary's states are all tried once planned).
    pub states: usize,
    /// Keep the work directory (images, log, streams) here, and write failing images.
    pub keep: Option<PathBuf>,
    /// Judge only this crash point: (boundary, state).
    pub replay: Option<(usize, usize)>,
    /// Take the recording kept in this directory instead of running the workload.
    pub from: Option<PathBuf>,
    /// Where snapfmt, snapctl, snapsend and snaprecv are.
    pub bins: PathBuf,
    pub threads: usize,
    /// Reuse the digest of a tree whose root pointer was digested before (sound: trees
    /// are content-addressed and every read is verified). Off: read every tree of every
    /// crash image.
    pub digest_cache: bool,
    pub verbose: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// One per workload run (round).
    pub seeds: Vec<u64>,
    /// Per round: a hash of the log's events without their data (kinds, offsets,
    /// lengths). A replay whose shape differs did not reproduce the run's writes.
    pub shapes: Vec<u64>,
    pub commands: usize,
    pub commits: u64,
    pub writes: usize,
    pub written_bytes: u64,
    pub flushes: usize,
    pub boundaries: usize,
    pub tally: Tally,
    /// Negative controls: images that break the flush order, which the judge rejected.
    pub controls: usize,
    /// Crash states during `snapctl expand` that opened at the old size, and at the new.
    pub expand_states: [usize; 2],
    /// Per expand: the pool's size before and after it.
    pub expand_bytes: Vec<(u64, u64)>,
    pub failures: Vec<String>,
    pub record_seconds: f64,
    pub explore_seconds: f64,
}

impl Summary {
    pub fn print(&self) {
        let t = &self.tally;
        let seeds: Vec<String> = self.seeds.iter().map(|s| s.to_string()).collect();
        let shapes: Vec<String> = self.shapes.iter().map(|s| format!("{s:016x}")).collect();
        println!("snaptorture crash: seed {} (write log shape {})", seeds.join(", "), shapes.join(", "));
        println!(
            "  workload: {} run(s) of {} recorded commands (format, receives, sync, snapshot, put, mkdir, mv, rm, \
             destroy, history, expand after the device grew), {} commits",
            self.seeds.len(),
            self.commands / self.seeds.len().max(1),
            self.commits
        );
        println!(
            "  write log: {} writes ({:.1} MiB), {} flushes; {} flush boundaries explored",
            self.writes,
            self.written_bytes as f64 / (1 << 20) as f64,
            self.flushes,
            self.boundaries
        );
        let mut kinds: Vec<_> = t.by_kind.iter().collect();
        kinds.sort();
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("  crash states tried: {} ({})", t.states, kinds.join(", "));
        let count = |o: Outcome| t.by_outcome.get(&o).copied().unwrap_or(0);
        println!(
            "  opened at: the commit before the command {}, the command's own commit {}, an intermediate commit {}",
            count(Outcome::Before),
            count(Outcome::After),
            count(Outcome::Intermediate)
        );
        println!(
            "  of which {} also took a new commit after the crash (open for writing, write a file, commit), checked again",
            t.recovered
        );
        println!(
            "  {} held a subset snapshot being extracted, which was then finished (a new selection, a step per \
             commit) and checked to hold what readers saw in it",
            t.extractions_finished
        );
        let sizes: Vec<String> = self.expand_bytes.iter().map(|(a, b)| format!("{a} -> {b} bytes")).collect();
        println!(
            "  during expand ({}): {} opened at the old size, {} at the new; {} states had the first label torn (all \
             opened without a warning)",
            sizes.join(", "),
            self.expand_states[0],
            self.expand_states[1],
            t.first_label_unusable
        );
        println!(
            "  negative controls rejected: {} (commit records durable without the blocks they name)",
            self.controls
        );
        println!("  failures: {}", self.failures.len());
        println!(
            "  time: {:.1} s (recording {:.1} s, crash states {:.1} s)",
            self.record_seconds + self.explore_seconds,
            self.record_seconds,
            self.explore_seconds
        );
    }
}

/// A temporary or kept work directory.
pub enum Workdir {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl Workdir {
    pub fn path(&self) -> &Path {
        match self {
            Workdir::Temporary(t) => t.path(),
            Workdir::Kept(p) => p,
        }
    }
}

/// Opens image bytes read-only through the library.
pub fn open_image(bytes: Vec<u8>) -> Result<Pool, String> {
    let mut device = MemoryDevice::new(0);
    device.bytes = bytes;
    Pool::open(Box::new(device), OpenMode::Read).map_err(|e| e.to_string())
}

/// The binaries the workload runs: `SNAPFS_BIN_DIR`, else the workspace's target/release.
pub fn default_bins() -> PathBuf {
    match std::env::var_os("SNAPFS_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"),
    }
}

pub const PROGRAMS: [&str; 4] = ["snapfmt", "snapctl", "snapsend", "snaprecv"];

/// The programs missing from `bins`, if any.
pub fn missing_programs(bins: &Path) -> Vec<String> {
    PROGRAMS.iter().filter(|p| !bins.join(p).is_file()).map(|p| bins.join(p).display().to_string()).collect()
}

/// How many states each boundary gets: its fixed states (nothing, all, prefixes) at
/// least, and a share of the rest of the budget that grows with its pending pieces (a
/// boundary of many pending blocks has many more distinct images).
fn plan_all(boundaries: &[Boundary], seed: u64, budget: usize) -> Vec<explore::Planned> {
    let pieces: Vec<usize> = boundaries.iter().map(|b| model::pieces_of(&b.writes).len()).collect();
    let fixed: Vec<usize> = boundaries
        .iter()
        .zip(&pieces)
        .map(|(b, &n)| if n == 0 { 1 } else { model::fixed_count(&model::pieces_of(&b.writes), b.writes.len()) })
        .collect();
    let weights: Vec<usize> = pieces.iter().map(|&n| if n == 0 { 0 } else { 4 + n.min(64) }).collect();
    let total: usize = weights.iter().sum::<usize>().max(1);
    let random_budget = budget.saturating_sub(fixed.iter().sum());
    let mut wanted: Vec<usize> =
        weights.iter().zip(&fixed).map(|(&w, &f)| f + (random_budget * w).div_ceil(total)).collect();
    let mut planned: Vec<explore::Planned> =
        boundaries.iter().zip(&wanted).map(|(b, &n)| explore::plan(b, seed, n)).collect();
    // Boundaries with few distinct images fall short: give their share to the others.
    for _ in 0..8 {
        let have: usize = planned.iter().map(|p| p.states.len()).sum();
        if have >= budget {
            break;
        }
        let open: Vec<usize> =
            (0..boundaries.len()).filter(|&i| planned[i].states.len() >= wanted[i] && weights[i] > 0).collect();
        if open.is_empty() {
            break;
        }
        let extra = (budget - have).div_ceil(open.len());
        for i in open {
            wanted[i] += extra;
            planned[i] = explore::plan(&boundaries[i], seed, wanted[i]);
        }
    }
    planned
}

pub fn run(config: &Config) -> Result<Summary, String> {
    let started = Instant::now();
    let mut work = None;
    let rec = match &config.from {
        Some(dir) => workload::load(dir)?,
        None => {
            let missing = missing_programs(&config.bins);
            if !missing.is_empty() {
                return Err(format!(
                    "missing {}: build the release binaries (cargo build --release, which scripts/setup.sh runs) or set \
                     SNAPFS_BIN_DIR",
                    missing.join(", ")
                ));
            }
            let dir = match &config.keep {
                Some(dir) => {
                    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
                    Workdir::Kept(dir.clone())
                }
                None => Workdir::Temporary(tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?),
            };
            let rec = workload::record(&dir, &config.bins, config.seed, config.verbose)?;
            work = Some(dir);
            rec
        }
    };
    let record_seconds = started.elapsed().as_secs_f64();
    let boundaries = explore::boundaries(&rec);
    let mut summary = Summary {
        seeds: vec![config.seed],
        shapes: vec![log_shape(&rec)],
        commands: rec.commands.len(),
        commits: rec.commands.last().map_or(0, |c| c.after.txg),
        writes: rec.events.iter().filter(|l| matches!(l.event, log::Event::Write { .. })).count(),
        written_bytes: rec
            .events
            .iter()
            .map(|l| match &l.event {
                log::Event::Write { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum(),
        flushes: rec.events.iter().filter(|l| l.event == log::Event::Flush).count(),
        boundaries: boundaries.len(),
        record_seconds,
        ..Summary::default()
    };
    if config.verbose {
        for (i, c) in rec.commands.iter().enumerate() {
            eprintln!("  command {i}: {} -> {} ({} events)", c.label, c.after.describe(), c.events.len());
        }
    }
    let explore_started = Instant::now();
    let planned = match config.replay {
        Some((b, k)) => {
            let boundary =
                boundaries.get(b).ok_or_else(|| format!("no boundary {b}: this run has {}", boundaries.len()))?;
            let mut one = explore::plan(boundary, config.seed, k + 1);
            if one.states.len() <= k {
                return Err(format!("boundary {b} has only {} distinct crash states", one.states.len()));
            }
            one.states.drain(..k);
            one.first = k;
            vec![one]
        }
        None => plan_all(&boundaries, config.seed, config.states),
    };
    let cache = config.digest_cache.then(state::DigestCache::default);
    let mut durable = Arc::new(Vec::new());
    let mut applied_to = 0;
    let selected: Vec<(usize, &explore::Planned)> = match config.replay {
        Some((b, _)) => vec![(b, &planned[0])],
        None => planned.iter().enumerate().collect(),
    };
    for (b, plan) in selected {
        let boundary = &boundaries[b];
        let image = Arc::get_mut(&mut durable).expect("no crash image holds the durable one");
        explore::apply_events(&rec, image, applied_to, boundary.flush);
        applied_to = boundary.flush;
        // A device that grew after the flush, before its pending writes (workload.rs).
        image.resize(boundary.device_bytes as usize, 0);
        let mut failed = |k: usize, why: &str| {
            let message = failure_message(&rec, boundary, plan, config.seed, k - plan.first, k, why);
            eprintln!("{message}");
            if let Some(dir) = &config.keep {
                let path = dir.join(format!("crash-{}.{k}.img", boundary.number));
                let blocks = model::overlay(&plan.states[k - plan.first], &plan.pieces, &rec.log, &durable);
                let mut image = durable.as_ref().clone();
                for (block, bytes) in blocks {
                    let at = block as usize * model::BLOCK;
                    image[at..at + model::BLOCK].copy_from_slice(&bytes);
                }
                match std::fs::write(&path, &image) {
                    Ok(()) => eprintln!("  the crash image is in {}", path.display()),
                    Err(e) => eprintln!("  could not write {}: {e}", path.display()),
                }
            }
            summary.failures.push(message);
        };
        let judging = explore::Judging { threads: config.threads, cache: cache.as_ref() };
        explore::run_boundary(&rec, boundary, plan, &durable, &judging, &mut summary.tally, &mut failed);
        let next = boundaries.get(b + 1);
        let pool_bytes = |n: &Boundary| rec.commands[*n.commands.last().expect("a command")].after.pool_bytes;
        if let Some(next) =
            next.filter(|n| config.replay.is_none() && explore::writes_only_commit_records(n, pool_bytes(n)))
        {
            if !boundary.writes.is_empty() {
                summary.controls += 1;
                if !explore::control_rejected(&rec, boundary, next, &durable) {
                    summary.failures.push(format!(
                        "HARNESS SELF-CHECK FAILED seed {}: the commit records of boundary {} durable without the \
                         blocks of boundary {} passed as a good state",
                        config.seed, next.number, boundary.number
                    ));
                    eprintln!("{}", summary.failures.last().expect("just pushed"));
                }
            }
        }
        if config.verbose {
            eprintln!(
                "  boundary {} (flush {}, commands {:?}): {} writes, {} pieces, {} states",
                boundary.number,
                boundary.flush_ordinal,
                boundary.commands,
                boundary.writes.len(),
                plan.pieces.len(),
                plan.states.len()
            );
        }
    }
    summary.explore_seconds = explore_started.elapsed().as_secs_f64();
    for (c, command) in rec.commands.iter().enumerate().filter(|(_, c)| c.label.starts_with("snapctl expand")) {
        let count = |o: Outcome| summary.tally.by_command.get(&(c, o)).copied().unwrap_or(0);
        summary.expand_states[0] += count(Outcome::Before);
        summary.expand_states[1] += count(Outcome::After);
        summary.expand_bytes.push((rec.commands[c - 1].after.pool_bytes, command.after.pool_bytes));
    }
    match work {
        Some(Workdir::Kept(dir)) => eprintln!("snaptorture crash: work directory kept in {}", dir.display()),
        Some(Workdir::Temporary(dir)) if !summary.failures.is_empty() => {
            // The workload's writes are not bit-for-bit repeatable (guids, times, and the
            // order of some allocations): keep what this run recorded for an exact replay.
            let kept = dir.keep();
            eprintln!(
                "snaptorture crash: the recording is kept in {}; replay a failure exactly with --from {} --replay SEED:POINT",
                kept.display(),
                kept.display()
            );
        }
        _ => {}
    }
    Ok(summary)
}

fn failure_message(
    rec: &Recording,
    boundary: &Boundary,
    plan: &explore::Planned,
    seed: u64,
    index: usize,
    k: usize,
    why: &str,
) -> String {
    let commands: Vec<String> = boundary.commands.iter().map(|&c| format!("{c} `{}`", rec.commands[c].label)).collect();
    format!(
        "FAILURE seed {seed} crash point {b}.{k}: during command {commands} at flush boundary {b} (after flush {f} of \
         the log; {w} pending writes, {p} pieces of 4 KiB): {kind}, {what}\n  {why}\n  reproduce: snaptorture crash \
         --replay {seed}:{b}.{k} [--keep DIR] (write log shape {shape:016x})",
        shape = log_shape(rec),
        b = boundary.number,
        commands = commands.join(" and "),
        f = boundary.flush_ordinal,
        w = boundary.writes.len(),
        p = plan.pieces.len(),
        kind = explore::kind_name(plan.states[index].kind),
        what = plan.states[index].describe(&plan.pieces),
    )
}

/// A hash of the log without its data: the same workload of the same binaries gives the
/// same shape from the same seed, whatever the clock and the pool's random guid.
pub fn log_shape(rec: &Recording) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for logged in &rec.events {
        match &logged.event {
            log::Event::Open { device_bytes } => (0u8, *device_bytes).hash(&mut hasher),
            log::Event::Write { offset, data } => (1u8, *offset, data.len()).hash(&mut hasher),
            log::Event::Flush => 2u8.hash(&mut hasher),
            log::Event::Close => 3u8.hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// Runs `rounds` workloads, seeds `config.seed`, `config.seed + 1`, ..., sharing the
/// state budget, and adds up their summaries.
pub fn run_rounds(config: &Config, rounds: usize) -> Result<Summary, String> {
    let rounds = rounds.max(1);
    let mut total = Summary::default();
    for round in 0..rounds {
        let mut one = config.clone();
        one.seed = config.seed.wrapping_add(round as u64);
        one.states = config.states.div_ceil(rounds);
        if rounds > 1 {
            one.keep = config.keep.as_ref().map(|dir| dir.join(format!("seed-{}", one.seed)));
        }
        let s = run(&one)?;
        if rounds > 1 {
            println!(
                "  round {}/{rounds}: seed {}, {} states, {} failures, {:.1} s",
                round + 1,
                one.seed,
                s.tally.states,
                s.failures.len(),
                s.record_seconds + s.explore_seconds
            );
        }
        total.seeds.extend(s.seeds);
        total.shapes.extend(s.shapes);
        total.commands += s.commands;
        total.commits += s.commits;
        total.writes += s.writes;
        total.written_bytes += s.written_bytes;
        total.flushes += s.flushes;
        total.boundaries += s.boundaries;
        total.tally.add(&s.tally);
        total.controls += s.controls;
        total.expand_states[0] += s.expand_states[0];
        total.expand_states[1] += s.expand_states[1];
        total.expand_bytes.extend(s.expand_bytes);
        total.failures.extend(s.failures);
        total.record_seconds += s.record_seconds;
        total.explore_seconds += s.explore_seconds;
    }
    Ok(total)
}

/// Parses `SEED:BOUNDARY.STATE`.
pub fn parse_replay(text: &str) -> Result<(u64, usize, usize), String> {
    let bad = || format!("bad --replay {text:?}: use SEED:BOUNDARY.STATE as a failure prints it");
    let (seed, point) = text.split_once(':').ok_or_else(bad)?;
    let (boundary, state) = point.split_once('.').ok_or_else(bad)?;
    Ok((seed.parse().map_err(|_| bad())?, boundary.parse().map_err(|_| bad())?, state.parse().map_err(|_| bad())?))
}
