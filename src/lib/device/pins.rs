//! Readers that never block writers: pins in the lock directory.
//!
//! A reader (`snapsend`, `cat`, `export`...) takes no storage lock. It pins the
//! checkpoints it reads instead, each named by (tree, txg): a snapshot it reads, or the
//! commit whose live tree it reads. A writer's commit neither destroys a pinned snapshot
//! nor expires a pinned retained commit, so every block a reader reaches stays where it
//! is until the reader is done (pool/pins.rs). A folder per pool, `readers-GUIDHEX` in the
//! lock directory every snapfs process agrees on (lock.rs), holds (a folder of its own,
//! so that a commit lists a few files, not every lock file of the machine):
//!
//! - `gate`: a reader holds it shared while it opens the pool and pins what it will
//!   read; a writer's commit holds it exclusive from reading the pins to the commit
//!   record being durable. So a reader never opens a commit whose blocks a commit is
//!   freeing, and a commit never misses a pin made before it looked.
//! - `pin-PID-N`, one per reader process: its pins, one line each, under an exclusive
//!   flock that the kernel drops when the process ends, even by kill -9. A writer takes a
//!   file nobody locks for a dead reader's, and removes it.
//!
//! flock, not the record locks of lock.rs: a flock belongs to an open file, so a process
//! that opens a pool twice (tests) conflicts with itself as two processes would.

use super::lock::{lock_dir, open_lock_file};
use super::wait::WaitPolicy;
use super::wait::{ANNOUNCE_AFTER, POLL};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One pin: the checkpoint of `tree` at `txg` stays while process `pid` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub tree: u64,
    pub txg: u64,
    pub pid: u32,
    /// What the reader is (its command line, shortened), for messages.
    pub reader: String,
}

impl Pin {
    pub fn holder(&self) -> String {
        format!("pid {} ({})", self.pid, self.reader)
    }
}

/// The pins of one pool: its gate and its readers' pin files.
#[derive(Clone, Debug)]
pub struct PinRegistry {
    dir: PathBuf,
    guid_hex: String,
}

/// A reader's side: its pin file, and the gate held shared until `open_gate`.
pub struct ReaderPins {
    file: File,
    path: PathBuf,
    gate: Option<File>,
    pins: Vec<(u64, u64)>,
}

/// A reader process alive now, as its pin file says: its pid, its command line, and
/// the (tree, txg) checkpoints it pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveReader {
    pub pid: u32,
    pub reader: String,
    pub pins: Vec<(u64, u64)>,
}

/// A writer's commit holds the gate exclusive until this is dropped.
pub struct CommitGate {
    _gate: File,
}

static PIN_FILES: AtomicU64 = AtomicU64::new(0);

impl PinRegistry {
    pub fn of_pool(pool_guid: &[u8; 16]) -> PinRegistry {
        let guid_hex: String = pool_guid.iter().map(|b| format!("{b:02x}")).collect();
        PinRegistry { dir: lock_dir().join(format!("readers-{guid_hex}")), guid_hex }
    }

    fn gate_path(&self) -> PathBuf {
        self.dir.join("gate")
    }

    fn pin_prefix(&self) -> String {
        "pin-".to_string()
    }

    /// The pool's folder, made if missing (and the lock directory above it).
    fn prepare(&self) -> Result<()> {
        if let Some(parent) = self.dir.parent() {
            super::lock::prepare_dir(parent)?;
        }
        super::lock::prepare_dir(&self.dir)
    }

    /// A reader enters: its pin file first (so a writer waiting at the gate can name
    /// it), then the gate, shared. Waits while a commit holds the gate (a commit takes
    /// as long as its last flush, so the wait is not bounded by a policy).
    pub fn enter_reader(&self, reader: &str, announce: &dyn Fn(&str)) -> Result<ReaderPins> {
        self.prepare()?;
        let n = PIN_FILES.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{}-{n}", self.pin_prefix(), std::process::id());
        // Locked and filled under a name no writer looks at, then renamed: a writer that
        // finds a pin file unlocked may take it for a dead reader's.
        let staging = self.dir.join(format!(".{name}"));
        let file = create_file(&staging).map_err(|e| self.unusable(&staging, e))?;
        flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(|e| self.unusable(&staging, e))?;
        let mut pins = ReaderPins { file, path: staging, gate: None, pins: Vec::new() };
        writeln!(pins.file, "reader {}", reader.replace('\n', " ")).map_err(|e| self.unusable(&pins.path, e))?;
        let path = self.dir.join(&name);
        std::fs::rename(&pins.path, &path).map_err(|e| self.unusable(&path, e))?;
        pins.path = path;
        // The gate is opened as lock files are: made if missing, for every user.
        let gate = open_lock_file(&self.gate_path()).map_err(|e| self.unusable(&self.gate_path(), e))?;
        let mut announced = false;
        let start = Instant::now();
        loop {
            match flock(&gate, libc::LOCK_SH | libc::LOCK_NB) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
                Err(e) => return Err(self.unusable(&self.gate_path(), e)),
            }
            if !announced && start.elapsed() >= ANNOUNCE_AFTER {
                announce("a commit of the pool to be durable");
                announced = true;
            }
            std::thread::sleep(POLL);
        }
        pins.gate = Some(gate);
        Ok(pins)
    }

    /// A writer's commit: the gate, exclusive, waiting for readers that are opening the
    /// pool as `wait` allows; then every live pin. Pin files of readers that are gone
    /// are removed.
    pub fn enter_commit(&self, wait: &WaitPolicy) -> Result<(CommitGate, Vec<Pin>)> {
        self.prepare()?;
        let gate_path = self.gate_path();
        let gate = open_lock_file(&gate_path).map_err(|e| self.unusable(&gate_path, e))?;
        let taken = wait.wait_for(
            || match flock(&gate, libc::LOCK_EX | libc::LOCK_NB) {
                Ok(()) => Ok(Some(())),
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
                Err(e) => Err(self.unusable(&gate_path, e)),
            },
            || {
                let readers = self.live_readers().unwrap_or_default();
                let names: Vec<String> = readers.iter().map(|r| format!("pid {} ({})", r.pid, r.reader)).collect();
                match names.is_empty() {
                    true => "readers opening the pool".to_string(),
                    false => format!("readers opening the pool: {}", names.join(", ")),
                }
            },
        )?;
        if taken.is_none() {
            let readers = self.live_readers()?;
            let holder = match readers.first() {
                Some(r) => format!("pid {} ({}), which is opening the pool to read it", r.pid, r.reader),
                None => "a reader opening the pool".to_string(),
            };
            return Err(Error::InUse { device: format!("pool {}", self.guid_hex), holder });
        }
        Ok((CommitGate { _gate: gate }, self.pins_of_live_readers()?))
    }

    /// The pins of readers alive now, without the gate: what a writer checks early, to
    /// refuse before it does any work (its commit checks again under the gate).
    pub fn pins_now(&self) -> Result<Vec<Pin>> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        self.pins_of_live_readers()
    }

    fn pins_of_live_readers(&self) -> Result<Vec<Pin>> {
        let mut pins = Vec::new();
        for r in self.live_readers()? {
            pins.extend(r.pins.iter().map(|&(tree, txg)| Pin { tree, txg, pid: r.pid, reader: r.reader.clone() }));
        }
        Ok(pins)
    }

    /// Readers alive now. A pin file nobody locks was left by a reader that died (a
    /// reader's file has its lock before it has its name): it is removed where we may
    /// (another user's stays, ignored).
    pub fn live_readers(&self) -> Result<Vec<LiveReader>> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let prefix = self.pin_prefix();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => return Err(self.unusable(&self.dir, e)),
        };
        let mut live = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(staged) = name.to_str().and_then(|n| n.strip_prefix('.')) {
                remove_if_creator_died(&entry.path(), staged.strip_prefix(&prefix));
                continue;
            }
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let Ok(file) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(entry.path()) else {
                continue;
            };
            match flock(&file, libc::LOCK_SH | libc::LOCK_NB) {
                Ok(()) => {
                    // Nobody holds it: its reader is gone.
                    let _ = std::fs::remove_file(entry.path());
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
                Err(_) => continue,
            }
            let (reader, pins) = parse_pin_file(&file);
            live.push(LiveReader { pid, reader, pins });
        }
        Ok(live)
    }

    fn unusable(&self, path: &std::path::Path, e: io::Error) -> Error {
        Error::io(format!("cannot use the pin file {}", path.display()), e)
    }
}

impl ReaderPins {
    /// Pins the checkpoint of `tree` at `txg` until this reader ends. Only while the
    /// gate is held: a pin made after it is opened could come too late for a commit.
    pub fn pin(&mut self, tree: u64, txg: u64) -> Result<()> {
        if self.pins.contains(&(tree, txg)) {
            return Ok(());
        }
        if self.gate.is_none() {
            // Commits went on since the gate opened: what this pins may be gone already.
            return Err(Error::invalid("a reader pinned more after it let writers commit (a bug): run it again"));
        }
        writeln!(self.file, "pin {tree} {txg}")
            .map_err(|e| Error::io(format!("cannot write {}", self.path.display()), e))?;
        self.pins.push((tree, txg));
        Ok(())
    }

    /// Lets commits go on: what this reader reads from now on is pinned.
    pub fn open_gate(&mut self) {
        self.gate = None;
    }

    pub fn pins(&self) -> &[(u64, u64)] {
        &self.pins
    }
}

impl Drop for ReaderPins {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A pin file still under its staging name (`rest` is "PID-N") is being made, unless the
/// process making it is gone (killed between creating and renaming it): then it goes.
fn remove_if_creator_died(path: &std::path::Path, rest: Option<&str>) {
    let Some(pid) = rest.and_then(|r| r.split('-').next()).and_then(|p| p.parse::<libc::pid_t>().ok()) else {
        return;
    };
    // SAFETY: kill with signal 0 only asks whether the process exists.
    let gone = unsafe { libc::kill(pid, 0) } != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    if gone {
        let _ = std::fs::remove_file(path);
    }
}

fn parse_pin_file(file: &File) -> (String, Vec<(u64, u64)>) {
    let mut reader = String::from("a reader");
    let mut pins = Vec::new();
    for line in io::BufReader::new(file).lines().map_while(|l| l.ok()) {
        if let Some(what) = line.strip_prefix("reader ") {
            reader = what.to_string();
        } else if let Some(pin) = line.strip_prefix("pin ") {
            let mut numbers = pin.split(' ').map(|n| n.parse::<u64>());
            if let (Some(Ok(tree)), Some(Ok(txg))) = (numbers.next(), numbers.next()) {
                pins.push((tree, txg));
            }
        }
    }
    (reader, pins)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor we own.
    match unsafe { libc::flock(file.as_raw_fd(), operation) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// A reader's own pin file, new, readable by the writers of every user.
fn create_file(path: &std::path::Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &std::path::Path) -> PinRegistry {
        PinRegistry { dir: dir.to_path_buf(), guid_hex: "ab".repeat(16) }
    }

    #[test]
    fn a_commit_sees_the_pins_of_live_readers_only_and_waits_for_readers_opening() {
        // Goal: the gate keeps a commit out while a reader opens the pool; a commit then
        // sees exactly the pins of readers alive, and a dead reader's file goes.
        let dir = tempfile::TempDir::new().unwrap();
        let pins = registry(dir.path());
        let mut reader = pins.enter_reader("snapsend @a pool.img", &|_| {}).unwrap();
        reader.pin(1, 7).unwrap();
        let refused = pins.enter_commit(&WaitPolicy::nowait()).err().expect("the gate is held");
        assert!(refused.to_string().contains("snapsend @a pool.img"), "{refused}");
        reader.open_gate();
        // A little wait: a process another test forks in the meantime holds a copy of the
        // gate's descriptor, and so its lock, until it execs.
        let briefly = WaitPolicy {
            limit: crate::device::wait::WaitLimit::For(std::time::Duration::from_secs(10)),
            ..WaitPolicy::nowait()
        };
        let (gate, seen) = pins.enter_commit(&briefly).unwrap();
        assert_eq!(seen, [Pin { tree: 1, txg: 7, pid: std::process::id(), reader: "snapsend @a pool.img".into() }]);
        drop(gate);
        // A pin file nobody locks: its reader died. It is no pin, and it is removed.
        let dead = dir.path().join(format!("{}4242-0", pins.pin_prefix()));
        std::fs::write(&dead, "reader snapctl cat f\npin 1 9\n").unwrap();
        assert_eq!(pins.pins_now().unwrap().len(), 1);
        assert!(!dead.exists());
        // One left under its staging name by a process that is gone goes too.
        let staged = dir.path().join(format!(".{}{}-0", pins.pin_prefix(), i32::MAX));
        std::fs::write(&staged, "reader snapsend @b pool.img\n").unwrap();
        drop(reader);
        assert!(pins.pins_now().unwrap().is_empty());
        assert!(!staged.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the gate is left");
    }
}
