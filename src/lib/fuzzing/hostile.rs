//! Streams that are valid record by record but hostile as a whole, and the oracle they
//! must meet: a receive either refuses the stream (exit 8, the target as it was) or
//! leaves a pool that checks clean, exports, and takes further writes without touching
//! the files it received.
//!
//! A source stream (a real one, from `fuzz/seeds/receive/`) is split into parts and
//! records; a mutation changes the records of a part as a crafted sender would (an
//! inode counter below a received inode, a directory under itself or under two parents,
//! entries under a file, a freed inode still named, a missing root, sizes that records
//! contradict, ...); the parts are written again with a real `StreamWriter`, so every
//! checksum and digest holds and only the tree they build is wrong. Named mutations
//! each break one invariant on purpose and must be refused; random ones (driven by a
//! seed or by a fuzzer's bytes) may or may not be valid, and must meet the oracle.

use super::receive::ReceiveTarget;
use crate::check::check_pool;
use crate::cmd::tree::{PutSource, put};
use crate::device::{OpenMode, OverlayDevice};
use crate::error::{Error, Result};
use crate::fs::FsTree;
use crate::fs::export::{ExportOptions, export_root};
use crate::fs::inode::{FileType, Inode, ROOT_INO, S_IFDIR, S_IFMT, S_IFREG};
use crate::fs::record::RECORD_BYTES;
use crate::pool::{LIVE_TREE_ID, Pool};
use crate::stream::framing::{StreamReader, StreamWriter};
use crate::stream::receive::{ReceiveOptions, receive};
use crate::stream::wire::{Begin, Record};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One part of a stream, its End left out (the writer makes a new one).
#[derive(Clone, Debug)]
pub struct Part {
    pub begin: Begin,
    pub records: Vec<Record>,
}

/// The parts of a well-formed stream.
pub fn split_parts(stream: &[u8]) -> Result<Vec<Part>> {
    let mut input = stream;
    let mut reader = StreamReader::new(&mut input, None);
    let mut parts = Vec::new();
    while let Some(begin) = reader.next_part()? {
        let mut records = Vec::new();
        loop {
            match reader.next_record()? {
                Record::End(_) => break,
                record => records.push(record),
            }
        }
        parts.push(Part { begin, records });
    }
    Ok(parts)
}

/// The parts written as a stream, every checksum and digest right. Sizes the sender
/// announced are cleared (0: not computed), since the records changed.
pub fn join_parts(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::new(&mut out, None);
    for part in parts {
        let begin = Begin { part_bytes: 0, run_bytes: 0, ..part.begin.clone() };
        writer.begin(begin).expect("writing to memory");
        for record in &part.records {
            crate::stream::generate::Sink::record(&mut writer, record).expect("writing to memory");
        }
        writer.end().expect("writing to memory");
    }
    out
}

/// What a part's records say of its inodes (as the last INODE record of each has it).
struct Facts {
    inodes: BTreeMap<u64, Inode>,
    /// (dir, name, ino) of every LINK and RENAME target.
    links: Vec<(u64, Vec<u8>, u64)>,
    next_ino: u64,
}

impl Facts {
    fn of(part: &Part) -> Facts {
        let mut inodes = BTreeMap::new();
        let mut links = Vec::new();
        let mut next_ino = 0;
        for record in &part.records {
            match record {
                Record::Inode { ino, inode } => {
                    inodes.insert(*ino, inode.clone());
                }
                Record::Link { dir, name, ino } => links.push((*dir, name.clone(), *ino)),
                Record::Rename { ino, to_dir, to_name, .. } => links.push((*to_dir, to_name.clone(), *ino)),
                Record::TreeMeta { next_ino: n } => next_ino = *n,
                _ => {}
            }
        }
        Facts { inodes, links, next_ino }
    }

    fn of_type(&self, file_type: FileType) -> Vec<u64> {
        self.inodes.iter().filter(|(i, n)| **i != ROOT_INO && n.file_type() == file_type).map(|(i, _)| *i).collect()
    }

    fn first(&self, file_type: FileType) -> Option<u64> {
        self.of_type(file_type).first().copied()
    }

    fn link_of(&self, ino: u64) -> Option<(u64, Vec<u8>)> {
        self.links.iter().find(|(_, _, i)| *i == ino).map(|(d, n, _)| (*d, n.clone()))
    }

    fn max_ino(&self) -> u64 {
        self.inodes.keys().copied().chain(self.links.iter().map(|l| l.2)).max().unwrap_or(ROOT_INO)
    }
}

/// An INODE record that sets `ino`'s inode to `inode`.
fn inode_record(ino: u64, inode: Inode) -> Record {
    Record::Inode { ino, inode }
}

fn with_nlink(inode: &Inode, nlink: u32) -> Inode {
    Inode { nlink, ..inode.clone() }
}

/// Mutations that each break one invariant of a file tree on purpose. Each returns
/// false if the part lacks what it needs (no directory to move, say).
/// A change of a part's records; false if the part lacks what it needs.
pub type Mutation = fn(&mut Part) -> bool;

pub const NAMED: &[(&str, Mutation)] = &[
    ("counter below a received inode", counter_below),
    ("counter equal to the largest inode", counter_equal),
    ("directory linked under itself", dir_under_itself),
    ("directory under a second parent", dir_two_parents),
    ("entry under a regular file", entry_under_file),
    ("entry under a symlink", entry_under_symlink),
    ("entry under a missing inode", entry_under_missing),
    ("xattr name with a NUL byte", xattr_nul),
    ("xattr value over 65536 bytes", xattr_too_large),
    ("entry naming a freed inode", entry_to_freed),
    ("root left out", root_left_out),
    ("root turned into a file", root_into_file),
    ("size shorter than its records", size_shorter),
    ("size past a partial record", size_past_partial),
    ("directory turned into a file", dir_into_file),
    ("file turned into a directory", file_into_dir),
    ("file turned into a fifo, its entry unchanged", file_into_fifo),
    ("name dropped (orphan)", name_dropped),
    ("nlink one too many", nlink_too_many),
    ("directory nlink one too few", dir_nlink_too_few),
    ("file record under a directory", record_under_dir),
    ("symlink target on a file", target_on_file),
    ("symlink without a target", symlink_without_target),
    ("directory moved under its own child", dir_cycle),
    ("hard link to a directory", dir_hard_link),
    ("WRITE data other than its fingerprints say", write_content_lies),
];

fn push_counter(part: &mut Part, next: u64) {
    part.records.retain(|r| !matches!(r, Record::TreeMeta { .. }));
    part.records.insert(0, Record::TreeMeta { next_ino: next });
}

fn counter_below(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    if facts.max_ino() < 3 {
        return false;
    }
    push_counter(part, 2);
    true
}

fn counter_equal(part: &mut Part) -> bool {
    let max = Facts::of(part).max_ino();
    if max < 2 {
        return false;
    }
    push_counter(part, max);
    true
}

fn dir_under_itself(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(dir) = facts.first(FileType::Directory) else { return false };
    part.records.push(Record::Link { dir, name: b"itself".to_vec(), ino: dir });
    true
}

fn dir_two_parents(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(dir) = facts.first(FileType::Directory) else { return false };
    grow_subdirs(part, &facts, ROOT_INO, 1);
    part.records.push(Record::Link { dir: ROOT_INO, name: b"second-parent".to_vec(), ino: dir });
    true
}

/// Keeps a directory's nlink right for `delta` more subdirectories, if the part has its
/// inode, so that a mutation breaks only the invariant it is named after.
fn grow_subdirs(part: &mut Part, facts: &Facts, dir: u64, delta: i32) {
    if let Some(inode) = facts.inodes.get(&dir) {
        part.records.push(inode_record(dir, with_nlink(inode, inode.nlink.saturating_add_signed(delta))));
    }
}

/// A second name for `ino` under `dir`, its nlink raised to match.
fn extra_name(part: &mut Part, dir: u64, ino: u64) -> bool {
    let facts = Facts::of(part);
    let Some(inode) = facts.inodes.get(&ino) else { return false };
    let inode = with_nlink(inode, inode.nlink.saturating_add(1));
    part.records.push(inode_record(ino, inode));
    part.records.push(Record::Link { dir, name: b"extra".to_vec(), ino });
    true
}

fn entry_under_file(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let files = facts.of_type(FileType::Regular);
    let [dir, ino, ..] = files[..] else { return false };
    extra_name(part, dir, ino)
}

fn entry_under_symlink(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let (Some(dir), Some(ino)) = (facts.first(FileType::Symlink), facts.first(FileType::Regular)) else { return false };
    extra_name(part, dir, ino)
}

fn entry_under_missing(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(ino) = facts.first(FileType::Regular) else { return false };
    extra_name(part, facts.max_ino().saturating_add(1000), ino)
}

fn xattr_nul(part: &mut Part) -> bool {
    let Some(ino) = Facts::of(part).first(FileType::Regular) else { return false };
    part.records.push(Record::SetXattr { ino, name: b"user.a\0b".to_vec(), value: b"v".to_vec() });
    true
}

fn xattr_too_large(part: &mut Part) -> bool {
    let Some(ino) = Facts::of(part).first(FileType::Regular) else { return false };
    let value = vec![b'v'; crate::fs::xattr::XATTR_VALUE_BYTES_MAX + 4464]; // 70,000 bytes
    part.records.push(Record::SetXattr { ino, name: b"user.big".to_vec(), value });
    true
}

fn entry_to_freed(part: &mut Part) -> bool {
    let Some(ino) = Facts::of(part).first(FileType::Regular) else { return false };
    part.records.push(Record::FreeInode { ino });
    true
}

fn root_left_out(part: &mut Part) -> bool {
    let before = part.records.len();
    part.records.retain(|r| !matches!(r, Record::Inode { ino: ROOT_INO, .. }));
    part.begin.base.is_none() && part.records.len() < before
}

fn root_into_file(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(root) = facts.inodes.get(&ROOT_INO) else { return false };
    let inode = Inode { mode: S_IFREG | 0o644, nlink: 1, size: 0, ..root.clone() };
    part.records.push(inode_record(ROOT_INO, inode));
    true
}

/// The first regular file whose records the part writes, and its inode.
fn written_file(part: &Part) -> Option<(u64, Inode)> {
    let facts = Facts::of(part);
    part.records.iter().find_map(|r| match r {
        Record::Write(w) => facts.inodes.get(&w.ino).filter(|i| i.size > 1).map(|i| (w.ino, i.clone())),
        _ => None,
    })
}

fn size_shorter(part: &mut Part) -> bool {
    let Some((ino, inode)) = written_file(part) else { return false };
    part.records.push(inode_record(ino, Inode { size: 1, ..inode }));
    true
}

fn size_past_partial(part: &mut Part) -> bool {
    let Some((ino, inode)) = written_file(part) else { return false };
    if inode.size % RECORD_BYTES == 0 {
        return false;
    }
    part.records.push(inode_record(ino, Inode { size: inode.size.saturating_add(2 * RECORD_BYTES), ..inode }));
    true
}

fn retype(inode: &Inode, mode_type: u32) -> Inode {
    Inode { mode: (inode.mode & !S_IFMT) | mode_type, ..inode.clone() }
}

fn dir_into_file(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(dir) = facts.first(FileType::Directory) else { return false };
    let inode = with_nlink(&retype(&facts.inodes[&dir], S_IFREG), 1);
    part.records.push(inode_record(dir, inode));
    true
}

fn file_into_dir(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(file) = facts.first(FileType::Regular) else { return false };
    let inode = Inode { size: 0, ..with_nlink(&retype(&facts.inodes[&file], S_IFDIR), 2) };
    part.records.retain(|r| !matches!(r, Record::Write(w) if w.ino == file));
    part.records.push(inode_record(file, inode));
    true
}

/// Only the inode changes type: nothing else in the part says it changed (the soak
/// found this one: the entries of a changed inode were checked for its number only).
fn file_into_fifo(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(file) = facts.first(FileType::Regular) else { return false };
    let inode = Inode { size: 0, ..retype(&facts.inodes[&file], 0o010000) };
    part.records.retain(|r| !matches!(r, Record::Write(w) if w.ino == file));
    part.records.push(inode_record(file, inode));
    true
}

fn name_dropped(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(file) = facts.of_type(FileType::Regular).into_iter().find(|f| facts.link_of(*f).is_some()) else {
        return false;
    };
    part.records.retain(|r| !matches!(r, Record::Link { ino, .. } if *ino == file));
    true
}

fn nlink_too_many(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(file) = facts.first(FileType::Regular) else { return false };
    let inode = &facts.inodes[&file];
    part.records.push(inode_record(file, with_nlink(inode, inode.nlink.saturating_add(1))));
    true
}

fn dir_nlink_too_few(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(root) = facts.inodes.get(&ROOT_INO) else { return false };
    part.records.push(inode_record(ROOT_INO, with_nlink(root, root.nlink.saturating_sub(1))));
    true
}

fn record_under_dir(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(dir) = facts.first(FileType::Directory) else { return false };
    let Some(mut write) = part.records.iter().find_map(|r| match r {
        Record::Write(w) => Some(w.clone()),
        _ => None,
    }) else {
        return false;
    };
    write.ino = dir;
    part.records.push(Record::Write(write));
    true
}

fn target_on_file(part: &mut Part) -> bool {
    let Some(ino) = Facts::of(part).first(FileType::Regular) else { return false };
    part.records.push(Record::Symlink { ino, target: b"elsewhere".to_vec() });
    true
}

fn symlink_without_target(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(file) = facts.first(FileType::Regular) else { return false };
    let inode = Inode { size: 0, ..retype(&facts.inodes[&file], crate::fs::inode::S_IFLNK) };
    part.records.retain(|r| !matches!(r, Record::Write(w) if w.ino == file));
    part.records.push(inode_record(file, inode));
    true
}

/// A new directory under an existing one, then the existing one moved under it.
fn dir_cycle(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(outer) = facts.first(FileType::Directory) else { return false };
    let Some((outer_parent, outer_name)) = facts.link_of(outer) else { return false };
    let inner = facts.max_ino().max(facts.next_ino).saturating_add(1);
    let outer_inode = &facts.inodes[&outer];
    part.records.push(Record::TreeMeta { next_ino: inner.saturating_add(1) });
    grow_subdirs(part, &facts, outer_parent, -1);
    part.records.push(inode_record(inner, with_nlink(outer_inode, 3)));
    part.records.push(inode_record(outer, with_nlink(outer_inode, outer_inode.nlink.saturating_add(1))));
    part.records.push(Record::Link { dir: outer, name: b"inner".to_vec(), ino: inner });
    part.records.push(Record::Rename {
        ino: outer,
        from_dir: outer_parent,
        from_name: outer_name,
        to_dir: inner,
        to_name: b"outer".to_vec(),
    });
    true
}

fn dir_hard_link(part: &mut Part) -> bool {
    let facts = Facts::of(part);
    let Some(dir) = facts.first(FileType::Directory) else { return false };
    grow_subdirs(part, &facts, ROOT_INO, 1);
    extra_name(part, ROOT_INO, dir)
}

/// A WRITE whose bytes are changed, with a blake3 checksum that matches them: the
/// frame and the block checksum hold, the record's fingerprints (or, for a zstd block,
/// its decompression) do not.
fn write_content_lies(part: &mut Part) -> bool {
    let Some(write) = part.records.iter_mut().find_map(|r| match r {
        Record::Write(w) if !w.stored.is_empty() => Some(w),
        _ => None,
    }) else {
        return false;
    };
    let last = write.stored.len() - 1;
    write.stored[last] ^= 0x5a;
    write.checksum = crate::checksum::blake3(&write.stored);
    true
}

/// A small deterministic generator (xorshift*), so that a seed names a mutation.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }
}

/// One to three random changes of a part's records: an inode number swapped for
/// another, a record dropped, repeated or moved, an inode's type, size or nlink
/// changed, or a LINK, UNLINK, RENAME or FREE_INODE added between known inodes.
pub fn mutate_randomly(part: &mut Part, rng: &mut Rng) {
    for _ in 0..1 + rng.below(3) {
        let facts = Facts::of(part);
        let mut inos: Vec<u64> = facts.inodes.keys().copied().collect();
        inos.extend([0, 1, 2, facts.max_ino().saturating_add(1), u64::MAX]);
        let pick = |rng: &mut Rng| inos[rng.below(inos.len())];
        let n = part.records.len();
        match rng.below(9) {
            0 if n > 0 => {
                let i = rng.below(n);
                let new = pick(rng);
                set_some_ino(&mut part.records[i], new, rng.below(3));
            }
            1 if n > 0 => {
                part.records.remove(rng.below(n));
            }
            2 if n > 0 => {
                let record = part.records[rng.below(n)].clone();
                part.records.insert(rng.below(n + 1), record);
            }
            3 if n > 1 => {
                let (a, b) = (rng.below(n), rng.below(n));
                part.records.swap(a, b);
            }
            4 => {
                let ino = pick(rng);
                if let Some(inode) = facts.inodes.get(&ino) {
                    let mut inode = inode.clone();
                    match rng.below(3) {
                        0 => inode.mode = (inode.mode & !S_IFMT) | [S_IFREG, S_IFDIR, 0o120000, 0o020000][rng.below(4)],
                        1 => {
                            inode.size = [0, 1, RECORD_BYTES, inode.size.saturating_add(1), u64::MAX / 2][rng.below(5)]
                        }
                        _ => inode.nlink = inode.nlink.wrapping_add(rng.below(3) as u32).wrapping_sub(1),
                    }
                    part.records.push(inode_record(ino, inode));
                }
            }
            5 => part.records.push(Record::Link { dir: pick(rng), name: b"linked".to_vec(), ino: pick(rng) }),
            6 => {
                if let Some(&(dir, ref name, ino)) = facts.links.get(rng.below(facts.links.len().max(1))) {
                    part.records.push(Record::Unlink { dir, name: name.clone(), ino });
                }
            }
            7 => {
                if let Some(&(dir, ref name, ino)) = facts.links.get(rng.below(facts.links.len().max(1))) {
                    let to_dir = pick(rng);
                    let rename = Record::Rename {
                        ino,
                        from_dir: dir,
                        from_name: name.clone(),
                        to_dir,
                        to_name: b"moved".to_vec(),
                    };
                    part.records.push(rename);
                }
            }
            _ => part.records.push(Record::FreeInode { ino: pick(rng).max(2) }),
        }
    }
}

/// Sets one of a record's inode numbers (`which`: the inode, or a directory).
fn set_some_ino(record: &mut Record, new: u64, which: usize) {
    match record {
        Record::Link { dir, ino, .. } | Record::Unlink { dir, ino, .. } => *[ino, dir][which % 2] = new,
        Record::Rename { ino, from_dir, to_dir, .. } => *[ino, from_dir, to_dir][which % 3] = new,
        Record::Inode { ino, .. }
        | Record::FreeInode { ino }
        | Record::Symlink { ino, .. }
        | Record::SetXattr { ino, .. }
        | Record::RemoveXattr { ino, .. }
        | Record::Punch { ino, .. } => *ino = new,
        Record::Write(w) => w.ino = new,
        Record::Patch(p) => p.ino = new,
        Record::KeepRecord(k) => k.ino = new,
        Record::Item { key, .. } if key.len() >= 8 => key[..8].copy_from_slice(&new.to_be_bytes()),
        Record::Item { .. } | Record::Range { .. } => {}
        Record::TreeMeta { next_ino } => *next_ino = new,
        Record::Begin(_) | Record::End(_) => {}
    }
}

/// How the oracle saw a receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Refused with exit 8, the target unchanged.
    Refused(String),
    /// Received, and the pool checks clean, exports, and takes further writes.
    Received,
}

impl ReceiveTarget {
    /// Receives `stream` onto the prepared image its first part fits, and holds the
    /// result to the oracle; panics (a bug) if it fails it.
    pub fn run_hostile(&self, stream: &[u8]) -> Outcome {
        self.run_hostile_with(stream, false).0
    }

    /// As `run_hostile`, receiving with `-s` if `save_partial`; also says whether the
    /// target then holds a saved partial receive.
    pub fn run_hostile_with(&self, stream: &[u8], save_partial: bool) -> (Outcome, bool) {
        // From the first BEGIN alone: a record that does not decode (a value past the
        // limit) must still meet the target its part is for.
        let mut first = stream;
        let begin = StreamReader::new(&mut first, None).next_part().ok().flatten();
        let full = begin.is_none_or(|b| b.base.is_none());
        let device = OverlayDevice::new(Arc::clone(if full { &self.empty } else { &self.based }), HashMap::new());
        let mut pool = Pool::open(Box::new(device.clone()), OpenMode::Write).expect("the prepared image opens");
        let snapshots_before = pool.snapshots_of(LIVE_TREE_ID).unwrap().len();
        let mut committed = 0;
        let mut input = stream;
        let mut reader = StreamReader::new(&mut input, None);
        let options = ReceiveOptions { force: false, save_partial };
        let received = receive(&mut pool, LIVE_TREE_ID, &mut reader, options, &mut |_| committed += 1);
        drop(pool);
        let mut pool = Pool::open(Box::new(device), OpenMode::Write).expect("the target opens after a receive");
        let saved = pool.receive_state().expect("the receive state reads").is_some();
        let report = check_pool(&mut pool).expect("check runs");
        assert!(report.is_clean(), "{received:?} left a pool that fails check: {:?}", report.problems);
        match received {
            Err(e) => {
                // Parts before the refused one are committed, each a whole snapshot.
                assert_eq!(
                    crate::cli::exit_code::of_error(&e),
                    crate::cli::exit_code::BAD_STREAM,
                    "a hostile stream refused with another exit code: {e}"
                );
                let after = pool.snapshots_of(LIVE_TREE_ID).unwrap().len();
                assert_eq!(after, snapshots_before + committed, "a refused part changed the snapshots: {e}");
                (Outcome::Refused(e.to_string()), saved)
            }
            Ok(_) => {
                export_and_write(&mut pool).unwrap_or_else(|e| panic!("a received tree fails to export or write: {e}"));
                (Outcome::Received, saved)
            }
        }
    }
}

/// How a tree from a hostile stream is exported: no device nodes, no setuid programs.
const UNTRUSTED: ExportOptions = ExportOptions { nodev: true, nosuid: true };

/// Exports the live tree, writes new files into it, and checks that the files received
/// read the same afterwards and that the pool still checks clean.
fn export_and_write(pool: &mut Pool) -> Result<()> {
    let dest =
        std::env::temp_dir().join(format!("snapfs-hostile-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&dest);
    let before = files_digest(pool)?;
    let exported = pool.live(LIVE_TREE_ID).and_then(|mut fs| export_root(&mut fs, &dest, UNTRUSTED).map(|_| ()));
    let _ = std::fs::remove_dir_all(&dest);
    exported?;
    for n in 0..8 {
        let data = format!("written after the receive {n}").into_bytes();
        let source = PutSource::Stream(&mut &data[..]);
        put(pool, LIVE_TREE_ID, source, &format!("after-receive-{n}"), None)?;
    }
    let mut after = files_digest(pool)?;
    after.retain(|path, _| !path.starts_with("/after-receive-"));
    if after != before {
        let changed: Vec<&String> =
            before.keys().chain(after.keys()).filter(|p| before.get(*p) != after.get(*p)).collect();
        return Err(Error::corrupt(format!("files received changed when new files were written: {changed:?}")));
    }
    let report = check_pool(pool)?;
    if !report.is_clean() {
        return Err(Error::corrupt(format!("writes after the receive broke the pool: {:?}", report.problems)));
    }
    Ok(())
}

/// Every regular file of the live tree: path -> content.
fn files_digest(pool: &mut Pool) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut fs = pool.live(LIVE_TREE_ID)?;
    let mut out = BTreeMap::new();
    let mut stack = vec![(ROOT_INO, String::new())];
    while let Some((dir, path)) = stack.pop() {
        for entry in fs.readdir(dir)? {
            let child = format!("{path}/{}", String::from_utf8_lossy(&entry.name));
            match entry.file_type {
                FileType::Directory => stack.push((entry.ino, child)),
                FileType::Regular => {
                    let data = read_whole(&mut fs, entry.ino)?;
                    out.insert(child, data);
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

fn read_whole(fs: &mut FsTree, ino: u64) -> Result<Vec<u8>> {
    let size = fs.inode(ino)?.size;
    fs.read(ino, 0, size.min(64 << 20))
}

/// Fuzz target `hostile`: the fuzzer's bytes choose a source stream and seed the random
/// mutations of one of its parts; the result must meet the oracle (`run_hostile`).
pub struct HostileTarget {
    target: ReceiveTarget,
    sources: Vec<Vec<Part>>,
}

impl HostileTarget {
    /// `base` is the full stream the incremental `sources` apply to.
    pub fn new(base: &[u8], sources: &[&[u8]]) -> Result<HostileTarget> {
        let sources = sources.iter().map(|s| split_parts(s)).collect::<Result<Vec<_>>>()?;
        Ok(HostileTarget { target: ReceiveTarget::new(base)?, sources })
    }

    pub fn run(&self, data: &[u8]) {
        let Some((&choice, rest)) = data.split_first() else { return };
        let mut parts = self.sources[choice as usize % self.sources.len()].clone();
        let mut rng = Rng::new(xxhash_rust::xxh3::xxh3_64(rest));
        let index = rng.below(parts.len());
        mutate_randomly(&mut parts[index], &mut rng);
        self.target.run_hostile(&join_parts(&parts));
    }
}
