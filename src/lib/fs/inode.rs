//! Inodes, and the keys under which a file tree stores everything about a file.
//!
//! Every key starts with the inode number (big-endian) and a kind byte, so all items of
//! one inode are neighbours in the tree and a file's records are in offset order.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

/// The largest value, as Linux allows (XATTR_SIZE_MAX).
pub const XATTR_VALUE_BYTES_MAX: usize = 65536;
/// Bytes of a value in one item: the attribute's own, and each continuation.
pub const XATTR_CHUNK_BYTES: usize = 4096;
/// Continuations of the largest value.
pub const XATTR_PARTS_MAX: usize = XATTR_VALUE_BYTES_MAX / XATTR_CHUNK_BYTES - 1;

pub const ROOT_INO: u64 = 1;
/// Inode 0 holds the tree's own counters.
pub const META_INO: u64 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ItemKind {
    Meta = 0,
    Inode = 1,
    DirEntry = 2,
    BackRef = 3,
    Xattr = 4,
    Symlink = 5,
    Record = 6,
}

/// Whether every key in [low, high) is a content item of one inode: its directory
/// entries alone, or its extended attributes, symlink target and records; never its
/// inode item or back references, which sort between (fs/path_diff.rs).
pub fn only_contents_of_one_inode(low: &[u8], high: &[u8]) -> bool {
    let (Some(low), Some(high)) = (FileKey::parse(low), FileKey::parse(high)) else { return false };
    let entries = ItemKind::DirEntry as u8;
    let contents = ItemKind::Xattr as u8;
    low.ino == high.ino
        && low.ino != META_INO
        && ((low.kind_byte == entries && high.kind_byte == entries) || low.kind_byte >= contents)
}

pub fn key(ino: u64, kind: ItemKind, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + suffix.len());
    k.extend_from_slice(&ino.to_be_bytes());
    k.push(kind as u8);
    k.extend_from_slice(suffix);
    k
}

/// The key of an extended attribute: its value, or the first XATTR_CHUNK_BYTES of a
/// larger one (fs/xattr.rs).
pub fn xattr_key(ino: u64, name: &[u8]) -> Vec<u8> {
    key(ino, ItemKind::Xattr, name)
}

/// The key of continuation `index` (1..) of a large xattr value: name ‖ 0 ‖ index. An
/// attribute name holds no NUL, so these keys sort right after the attribute's own key,
/// in index order, and before any other name.
pub fn xattr_part_key(ino: u64, name: &[u8], index: u8) -> Vec<u8> {
    let mut suffix = Vec::with_capacity(name.len() + 2);
    suffix.extend_from_slice(name);
    suffix.extend_from_slice(&[0, index]);
    key(ino, ItemKind::Xattr, &suffix)
}

/// What the suffix of an Xattr key names: (name, 0) for the attribute's own item, (name,
/// index) for a continuation; None if it is neither (a NUL anywhere else, or an index
/// outside 1..=XATTR_PARTS_MAX).
pub fn parse_xattr_suffix(suffix: &[u8]) -> Option<(&[u8], u8)> {
    match suffix.iter().position(|&b| b == 0) {
        None => Some((suffix, 0)),
        Some(at) if suffix.len() == at + 2 && (1..=XATTR_PARTS_MAX).contains(&(suffix[at + 1] as usize)) => {
            Some((&suffix[..at], suffix[at + 1]))
        }
        Some(_) => None,
    }
}

pub fn backref_key(ino: u64, parent: u64, name: &[u8]) -> Vec<u8> {
    let mut suffix = parent.to_be_bytes().to_vec();
    suffix.extend_from_slice(name);
    key(ino, ItemKind::BackRef, &suffix)
}

/// A file tree key, read: `ino (u64, big-endian) | kind (u8) | suffix` (FORMAT.md, File
/// trees). The one place that takes keys apart; `key` and the `*_key` functions above
/// put them together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKey<'k> {
    pub ino: u64,
    /// The kind byte as stored: `kind()` says which ItemKind it is, if any.
    pub kind_byte: u8,
    pub suffix: &'k [u8],
}

impl<'k> FileKey<'k> {
    /// None if the key is too short to hold an inode number and a kind.
    pub fn parse(key: &'k [u8]) -> Option<FileKey<'k>> {
        Some(FileKey { ino: FileKey::ino_of(key)?, kind_byte: *key.get(8)?, suffix: &key[9..] })
    }

    /// The inode number a key (or a key prefix, as in branch nodes) starts with.
    pub fn ino_of(key: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(key.get(..8)?.try_into().ok()?))
    }

    pub fn kind(&self) -> Option<ItemKind> {
        ItemKind::from_byte(self.kind_byte)
    }

    pub fn is(&self, kind: ItemKind) -> bool {
        self.kind_byte == kind as u8
    }

    /// A back reference's parent directory and name.
    pub fn backref(&self) -> Option<(u64, &'k [u8])> {
        if !self.is(ItemKind::BackRef) {
            return None;
        }
        Some((FileKey::ino_of(self.suffix)?, &self.suffix[8..]))
    }

    /// Whether it sorts after every item of `kind` of its inode.
    pub fn sorts_after(&self, kind: ItemKind) -> bool {
        self.kind_byte > kind as u8
    }

    /// Whether it is content of its inode (an extended attribute, symlink target or
    /// record), not its inode item, directory entries or back references.
    pub fn is_content(&self) -> bool {
        self.kind_byte >= ItemKind::Xattr as u8
    }

    /// A file record's index.
    pub fn record_index(&self) -> Option<u64> {
        match self.is(ItemKind::Record) {
            true => Some(u64::from_be_bytes(self.suffix.try_into().ok()?)),
            false => None,
        }
    }
}

/// Whether a file tree key holds an item of `kind` (false for a key too short to say).
pub fn key_is(key: &[u8], kind: ItemKind) -> bool {
    FileKey::parse(key).is_some_and(|k| k.is(kind))
}

impl ItemKind {
    pub fn from_byte(byte: u8) -> Option<ItemKind> {
        use ItemKind::*;
        [Meta, Inode, DirEntry, BackRef, Xattr, Symlink, Record].into_iter().find(|k| *k as u8 == byte)
    }
}

/// A directory entry, read: its name (from the key) and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub file_type: FileType,
}

/// A directory entry's value: the child's inode (LE u64) and its file type (u8).
pub fn encode_dirent(ino: u64, file_type: FileType) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(ino);
    w.u8(file_type as u8);
    w.bytes
}

pub fn decode_dirent(name: &[u8], value: &[u8]) -> Result<DirEntry> {
    let mut r = Reader::new(value, "directory entry");
    let ino = r.u64()?;
    let file_type = match r.u8()? {
        0 => FileType::Regular,
        1 => FileType::Directory,
        2 => FileType::Symlink,
        3 => FileType::Special,
        other => return Err(Error::corrupt(format!("directory entry of type {other}"))),
    };
    if r.remaining() != 0 {
        return Err(Error::corrupt("directory entry has trailing bytes"));
    }
    Ok(DirEntry { name: name.to_vec(), ino, file_type })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    pub fn from_ns(ns: u64) -> Timespec {
        Timespec { sec: (ns / 1_000_000_000) as i64, nsec: (ns % 1_000_000_000) as u32 }
    }
}

pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFLNK: u32 = 0o120000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    /// Devices, fifos, sockets: stored with their mode and rdev, no content.
    Special,
}

impl FileType {
    pub fn of_mode(mode: u32) -> FileType {
        match mode & S_IFMT {
            S_IFREG => FileType::Regular,
            S_IFDIR => FileType::Directory,
            S_IFLNK => FileType::Symlink,
            _ => FileType::Special,
        }
    }
    pub fn letter(self) -> char {
        match self {
            FileType::Regular => '-',
            FileType::Directory => 'd',
            FileType::Symlink => 'l',
            FileType::Special => '?',
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub rdev: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// The transaction that created the inode.
    pub generation: u64,
}

pub const INODE_BYTES: usize = 96;

impl Inode {
    pub fn new(mode: u32, now: Timespec) -> Inode {
        Inode { mode, uid: 0, gid: 0, nlink: 1, size: 0, rdev: 0, atime: now, mtime: now, ctime: now, generation: 0 }
    }

    pub fn file_type(&self) -> FileType {
        FileType::of_mode(self.mode)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.mode);
        w.u32(self.uid);
        w.u32(self.gid);
        w.u32(self.nlink);
        w.u64(self.size);
        w.u64(self.rdev);
        for t in [self.atime, self.mtime, self.ctime] {
            w.i64(t.sec);
            w.u32(t.nsec);
        }
        w.u64(self.generation);
        w.zeros(INODE_BYTES - w.len());
        w.bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Inode> {
        let mut r = Reader::new(bytes, "inode");
        let mode = r.u32()?;
        let uid = r.u32()?;
        let gid = r.u32()?;
        let nlink = r.u32()?;
        let size = r.u64()?;
        let rdev = r.u64()?;
        let mut times = [Timespec::default(); 3];
        for t in times.iter_mut() {
            t.sec = r.i64()?;
            t.nsec = r.u32()?;
            if t.nsec >= 1_000_000_000 {
                return Err(Error::corrupt(format!("inode time with {} nanoseconds", t.nsec)));
            }
        }
        let generation = r.u64()?;
        r.zeros(INODE_BYTES - r.offset())?;
        if r.remaining() != 0 {
            return Err(Error::corrupt("inode has trailing bytes"));
        }
        Ok(Inode { mode, uid, gid, nlink, size, rdev, atime: times[0], mtime: times[1], ctime: times[2], generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every key the writers build reads back as what it was built from, and a
    /// reader never panics on a short or odd key. Method: each key kind over a spread of
    /// inode numbers, parents, names and indexes; then every prefix of one key.
    #[test]
    fn file_keys_read_back_as_built() {
        for ino in [0, 1, 2, 255, 256, 1 << 40, u64::MAX] {
            let inode = key(ino, ItemKind::Inode, &[]);
            let parsed = FileKey::parse(&inode).unwrap();
            assert_eq!((parsed.ino, parsed.kind(), parsed.suffix), (ino, Some(ItemKind::Inode), &[][..]));
            for (parent, name) in [(1u64, &b"a"[..]), (7, b"name with spaces"), (u64::MAX, &[0xffu8; 255][..])] {
                let back = backref_key(ino, parent, name);
                assert_eq!(FileKey::parse(&back).unwrap().backref(), Some((parent, name)));
                assert_eq!(FileKey::parse(&back).unwrap().record_index(), None);
            }
            for index in [0u64, 1, 1 << 20, u64::MAX] {
                let record = key(ino, ItemKind::Record, &index.to_be_bytes());
                assert!(key_is(&record, ItemKind::Record));
                assert_eq!(FileKey::parse(&record).unwrap().record_index(), Some(index));
            }
            let part = xattr_part_key(ino, b"user.big", 3);
            let parsed = FileKey::parse(&part).unwrap();
            assert_eq!(parse_xattr_suffix(parsed.suffix), Some((&b"user.big"[..], 3)));
            assert_eq!(FileKey::ino_of(&part), Some(ino));
        }
        let whole = backref_key(5, 9, b"x");
        for cut in 0..whole.len() {
            let _ = FileKey::parse(&whole[..cut]).map(|k| (k.backref(), k.record_index(), k.kind()));
        }
        assert_eq!(FileKey::parse(&whole[..8]), None);
        assert_eq!(FileKey::parse(&key(3, ItemKind::Record, b"short")).unwrap().record_index(), None);
        assert_eq!(ItemKind::from_byte(7), None);
        for kind in [
            ItemKind::Meta,
            ItemKind::Inode,
            ItemKind::DirEntry,
            ItemKind::BackRef,
            ItemKind::Xattr,
            ItemKind::Symlink,
            ItemKind::Record,
        ] {
            assert_eq!(ItemKind::from_byte(kind as u8), Some(kind));
        }
        let entry = decode_dirent(b"n", &encode_dirent(42, FileType::Directory)).unwrap();
        assert_eq!((entry.ino, entry.file_type, entry.name), (42, FileType::Directory, b"n".to_vec()));
        assert!(decode_dirent(b"n", &[1, 2, 3]).is_err());
    }

    #[test]
    fn inode_round_trip() {
        let mut inode = Inode::new(S_IFREG | 0o644, Timespec { sec: 5, nsec: 6 });
        inode.size = 1 << 40;
        inode.uid = 1000;
        assert_eq!(Inode::decode(&inode.encode()).unwrap(), inode);
    }

    #[test]
    fn xattr_parts_follow_their_attribute_and_precede_other_names() {
        let head = xattr_key(3, b"user.a");
        let parts: Vec<_> = (1..=15).map(|i| xattr_part_key(3, b"user.a", i)).collect();
        assert!(parts.windows(2).all(|w| w[0] < w[1]));
        assert!(head < parts[0]);
        for other in [&b"user.a\x01"[..], b"user.ab", b"user.b"] {
            assert!(parts[14] < xattr_key(3, other));
        }
        assert_eq!(parse_xattr_suffix(&parts[4][9..]), Some((&b"user.a"[..], 5)));
        assert_eq!(parse_xattr_suffix(b"user.a"), Some((&b"user.a"[..], 0)));
        for bad in [&b"user.a\0"[..], b"user.a\0\0", b"user.a\0\x10", b"user.a\0b", b"user.a\0b\x01", b"\0\x01\x02"] {
            assert_eq!(parse_xattr_suffix(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_sort_by_inode_then_kind() {
        assert!(key(1, ItemKind::Record, &[]) < key(2, ItemKind::Inode, &[]));
        assert!(key(1, ItemKind::Inode, &[]) < key(1, ItemKind::DirEntry, b"a"));
    }
}
