//! What storage a device path reaches, whatever its name: the bases (a regular file by
//! device and inode, or a whole block device by major:minor) and the byte range of each
//! that the device covers. The lock (lock.rs) is taken on these, so an image file, a loop
//! device on it, a partition of that loop, a symlink or a node made with mknod all meet
//! on the same lock.
//!
//! Resolution follows sysfs (/sys/dev/block/MAJ:MIN) down the stack:
//! - a partition adds its start and limits the range to its size, then its disk;
//! - a loop device adds its offset and limits to its sizelimit, then its backing file
//!   (by device and inode) or, for a loop over a block device, that device;
//! - a device-mapper or md device (`slaves/` not empty) is its own base, whole, and each
//!   slave whole: conservative, as their mapping is not read here;
//! - anything else (or no sysfs) is a base of its own, at the range reached so far.
//!
//! Invariant: two paths whose devices share bytes resolve to overlapping ranges of one
//! base, as long as sysfs describes every layer between them.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Where sysfs is mounted; unit tests give a directory laid out like it.
pub const SYSFS_ROOT: &str = "/sys";

/// Layers followed before giving up and locking the device reached whole: far more than
/// any real stack (partition, loop, loop, dm...), and a guard against a sysfs cycle.
const LAYERS_MAX: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Base {
    /// A regular file, by its file system's device number and its inode.
    File { dev: u64, ino: u64 },
    /// A block device that is not a partition or a loop device, by major:minor.
    Block { major: u32, minor: u32 },
}

impl Base {
    /// The lock file's name for this base: stable across processes and boots.
    pub fn lock_name(&self) -> String {
        match self {
            Base::File { dev, ino } => format!("file-{dev}-{ino}"),
            Base::Block { major, minor } => format!("block-{major}-{minor}"),
        }
    }

    /// For messages: "the file with inode 12 on device 254:0", "block device 8:0".
    pub fn describe(&self) -> String {
        match self {
            Base::File { dev, ino } => {
                format!("the file with inode {ino} on device {}:{}", libc::major(*dev), libc::minor(*dev))
            }
            Base::Block { major, minor } => format!("block device {major}:{minor}"),
        }
    }
}

/// Bytes [start, end) of a base; `end` None runs to the end, however far it grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl ByteRange {
    pub const WHOLE: ByteRange = ByteRange { start: 0, end: None };

    /// This range of a device that maps onto its parent at `offset`, at most `limit`
    /// bytes long (None: to the parent's end), in the parent's offsets.
    pub fn within(self, offset: u64, limit: Option<u64>) -> ByteRange {
        let end = match (self.end, limit) {
            (Some(e), Some(l)) => Some(e.min(l)),
            (Some(e), None) => Some(e),
            (None, Some(l)) => Some(l),
            (None, None) => None,
        };
        ByteRange {
            start: offset.saturating_add(self.start),
            end: end.map(|e| offset.saturating_add(e.max(self.start))),
        }
    }

    pub fn overlaps(&self, other: &ByteRange) -> bool {
        let before = |a: &ByteRange, b: &ByteRange| a.end.is_some_and(|e| e <= b.start);
        !before(self, other) && !before(other, self)
    }
}

/// One base and the range of it that a device covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub base: Base,
    pub range: ByteRange,
}

/// The storage an opened regular file or block device reaches. `file` is the opened
/// device, used for the loop ioctl (which tracks the backing file even when renamed or
/// unlinked); `sysfs` is normally `SYSFS_ROOT`.
pub fn resolve(file: &File, sysfs: &Path) -> std::io::Result<Vec<Extent>> {
    let metadata = file.metadata()?;
    if !metadata.file_type().is_block_device() {
        return Ok(vec![Extent {
            base: Base::File { dev: metadata.dev(), ino: metadata.ino() },
            range: ByteRange::WHOLE,
        }]);
    }
    let rdev = metadata.rdev();
    let mut out = Vec::new();
    Resolver { sysfs, opened: Some(file) }.block(libc::major(rdev), libc::minor(rdev), ByteRange::WHOLE, 0, &mut out);
    out.sort_by_key(|e| (e.base, e.range.start));
    out.dedup();
    Ok(out)
}

/// The storage a path reaches, from sysfs alone (no ioctl): for naming another process's
/// device in a message, where opening it is not wanted.
pub fn resolve_path(path: &Path, sysfs: &Path) -> Option<Vec<Extent>> {
    let metadata = std::fs::metadata(path).ok()?;
    if metadata.file_type().is_block_device() {
        let rdev = metadata.rdev();
        let mut out = Vec::new();
        Resolver { sysfs, opened: None }.block(libc::major(rdev), libc::minor(rdev), ByteRange::WHOLE, 0, &mut out);
        Some(out)
    } else if metadata.is_file() {
        Some(vec![Extent { base: Base::File { dev: metadata.dev(), ino: metadata.ino() }, range: ByteRange::WHOLE }])
    } else {
        None
    }
}

struct Resolver<'a> {
    sysfs: &'a Path,
    /// The opened device: a loop device or a partition of one answers the loop ioctl.
    opened: Option<&'a File>,
}

impl Resolver<'_> {
    fn block(&self, major: u32, minor: u32, range: ByteRange, layer: u32, out: &mut Vec<Extent>) {
        let whole = Extent { base: Base::Block { major, minor }, range };
        let dir = self.sysfs.join(format!("dev/block/{major}:{minor}"));
        let Ok(dir) = dir.canonicalize() else {
            return out.push(whole); // no sysfs: the device itself is all we know
        };
        if layer >= LAYERS_MAX {
            return out.push(whole);
        }
        if dir.join("partition").exists() {
            let (Some(start), Some(size), Some((disk_major, disk_minor))) = (
                read_number(&dir.join("start")),
                read_number(&dir.join("size")),
                dir.parent().and_then(|p| read_dev(&p.join("dev"))),
            ) else {
                return out.push(whole);
            };
            let range = range.within(start.saturating_mul(512), Some(size.saturating_mul(512)));
            return self.block(disk_major, disk_minor, range, layer + 1, out);
        }
        if dir.join("loop").is_dir() {
            return self.backing(&dir, Base::Block { major, minor }, range, layer, out);
        }
        let slaves = slave_devices(&dir);
        if !slaves.is_empty() {
            out.push(Extent { base: Base::Block { major, minor }, range: ByteRange::WHOLE });
            for (slave_major, slave_minor) in slaves {
                self.block(slave_major, slave_minor, ByteRange::WHOLE, layer + 1, out);
            }
            return;
        }
        out.push(whole);
    }

    /// A loop device: its backing file, or the block device a loop over a loop stands on.
    fn backing(&self, dir: &Path, device: Base, range: ByteRange, layer: u32, out: &mut Vec<Extent>) {
        let from_ioctl = match (layer, self.opened) {
            (0, Some(file)) | (1, Some(file)) => loop_status(file),
            _ => None,
        };
        // The ioctl answers for the opened device's own disk only: at layer 1 that disk
        // must be this loop (the opened device was its partition).
        let from_ioctl = from_ioctl.filter(|_| layer == 0 || self.opened_is_partition_of(device));
        let backing_path =
            std::fs::read_to_string(dir.join("loop/backing_file")).ok().map(|s| PathBuf::from(s.trim_end()));
        let backing_stat = backing_path.as_deref().and_then(|p| std::fs::metadata(p).ok());
        let (offset, sizelimit, file) = match from_ioctl {
            Some(status) => (status.lo_offset, status.lo_sizelimit, Some((status.lo_device, status.lo_inode))),
            None => (
                read_number(&dir.join("loop/offset")).unwrap_or(0),
                read_number(&dir.join("loop/sizelimit")).unwrap_or(0),
                None,
            ),
        };
        let range = range.within(offset, if sizelimit == 0 { None } else { Some(sizelimit) });
        match (&backing_stat, file) {
            // A loop over a block device: that device, if the path still names it.
            (Some(m), file) if m.file_type().is_block_device() && file.is_none_or(|f| f == (m.dev(), m.ino())) => {
                let rdev = m.rdev();
                self.block(libc::major(rdev), libc::minor(rdev), range, layer + 1, out)
            }
            (_, Some((dev, ino))) => out.push(Extent { base: Base::File { dev, ino }, range }),
            (Some(m), None) if m.is_file() => {
                out.push(Extent { base: Base::File { dev: m.dev(), ino: m.ino() }, range })
            }
            // The backing file is gone from its path and there is no ioctl answer: the
            // loop device itself is the only name left to lock.
            _ => out.push(Extent { base: device, range }),
        }
    }

    fn opened_is_partition_of(&self, disk: Base) -> bool {
        let Some(rdev) = self.opened.and_then(|f| f.metadata().ok()).map(|m| m.rdev()) else {
            return false;
        };
        let dir = self.sysfs.join(format!("dev/block/{}:{}", libc::major(rdev), libc::minor(rdev)));
        let parent = dir.canonicalize().ok().and_then(|d| d.parent().and_then(|p| read_dev(&p.join("dev"))));
        parent.is_some_and(|(major, minor)| Base::Block { major, minor } == disk)
    }
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// "MAJ:MIN\n" as sysfs writes a `dev` file.
fn read_dev(path: &Path) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn slave_devices(dir: &Path) -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir(dir.join("slaves")) else {
        return Vec::new();
    };
    let mut slaves: Vec<(u32, u32)> = entries.flatten().filter_map(|e| read_dev(&e.path().join("dev"))).collect();
    slaves.sort();
    slaves
}

/// `struct loop_info64` from linux/loop.h.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);

nix::ioctl_read_bad!(loop_get_status64, 0x4C05, LoopInfo64);

/// The loop device's backing file and mapping, or None if `file` is not a bound loop
/// device (or a partition of one).
fn loop_status(file: &File) -> Option<LoopInfo64> {
    // SAFETY: a zeroed loop_info64 is valid; LOOP_GET_STATUS64 fills it in.
    let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one loop_info64 through the pointer we pass.
    unsafe { loop_get_status64(file.as_raw_fd(), &mut info) }.ok()?;
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn ranges_compose_and_overlap_as_the_layers_map_bytes() {
        // Goal: a partition of a loop with an offset lands where its bytes are in the file.
        // Method: compose by hand, then check overlaps at the edges (end is exclusive).
        let partition = ByteRange::WHOLE.within(1 << 20, Some(32 << 20));
        assert_eq!(partition, ByteRange { start: 1 << 20, end: Some(33 << 20) });
        let in_file = partition.within(4096, None);
        assert_eq!(in_file, ByteRange { start: (1 << 20) + 4096, end: Some((33 << 20) + 4096) });
        // A loop's sizelimit shorter than the partition's end cuts it.
        assert_eq!(partition.within(0, Some(2 << 20)), ByteRange { start: 1 << 20, end: Some(2 << 20) });
        let next = ByteRange { start: 33 << 20, end: Some(65 << 20) };
        assert!(!partition.overlaps(&next), "adjacent partitions do not overlap");
        assert!(!next.overlaps(&partition));
        assert!(partition.overlaps(&ByteRange::WHOLE));
        assert!(ByteRange::WHOLE.overlaps(&ByteRange { start: u64::MAX - 1, end: None }));
        assert!(ByteRange { start: 5, end: None }.overlaps(&ByteRange { start: 0, end: Some(6) }));
        assert!(!ByteRange { start: 6, end: None }.overlaps(&ByteRange { start: 0, end: Some(6) }));
    }

    /// A directory laid out like /sys for the devices in `layout`.
    struct FakeSysfs {
        dir: tempfile::TempDir,
    }

    impl FakeSysfs {
        fn new() -> FakeSysfs {
            let fake = FakeSysfs { dir: tempfile::TempDir::new().unwrap() };
            std::fs::create_dir_all(fake.dir.path().join("dev/block")).unwrap();
            fake
        }
        fn root(&self) -> &Path {
            self.dir.path()
        }
        /// A device at devices/`path` with major:minor, linked from dev/block.
        fn device(&self, path: &str, major: u32, minor: u32, files: &[(&str, String)]) -> PathBuf {
            let dir = self.root().join("devices").join(path);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("dev"), format!("{major}:{minor}\n")).unwrap();
            for (name, content) in files {
                let file = dir.join(name);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, format!("{content}\n")).unwrap();
            }
            symlink(&dir, self.root().join(format!("dev/block/{major}:{minor}"))).unwrap();
            dir
        }
        fn resolve(&self, major: u32, minor: u32) -> Vec<Extent> {
            let mut out = Vec::new();
            Resolver { sysfs: self.root(), opened: None }.block(major, minor, ByteRange::WHOLE, 0, &mut out);
            out
        }
    }

    fn inode_of(path: &Path) -> Base {
        let m = std::fs::metadata(path).unwrap();
        Base::File { dev: m.dev(), ino: m.ino() }
    }

    #[test]
    fn partitions_of_a_loop_with_an_offset_reach_the_file_at_their_bytes() {
        // Goal: loop0 (offset 4096, sizelimit 64 MiB) on pool.img and its two partitions
        // resolve to ranges of the file: each partition overlaps the loop, not the other.
        let sys = FakeSysfs::new();
        let image = tempfile::NamedTempFile::new().unwrap();
        let file = inode_of(image.path());
        let path = image.path().display().to_string();
        sys.device(
            "virtual/block/loop0",
            7,
            0,
            &[("loop/backing_file", path), ("loop/offset", "4096".into()), ("loop/sizelimit", "67108864".into())],
        );
        let part = |n: u32, start: u64| {
            let files = [("partition", n.to_string()), ("start", start.to_string()), ("size", "65536".into())];
            sys.device(&format!("virtual/block/loop0/loop0p{n}"), 259, n - 1, &files);
        };
        part(1, 2048);
        part(2, 2048 + 65536);
        let whole = sys.resolve(7, 0);
        assert_eq!(whole, vec![Extent { base: file, range: ByteRange { start: 4096, end: Some(4096 + (64 << 20)) } }]);
        let first = sys.resolve(259, 0);
        let second = sys.resolve(259, 1);
        let p1 = ByteRange { start: 4096 + (1 << 20), end: Some(4096 + (33 << 20)) };
        assert_eq!(first, vec![Extent { base: file, range: p1 }]);
        assert_eq!(second[0].range.start, 4096 + (33 << 20));
        assert!(!first[0].range.overlaps(&second[0].range));
        assert!(first[0].range.overlaps(&whole[0].range));
    }

    #[test]
    fn device_mapper_locks_itself_and_every_slave_whole() {
        // Goal: a dm device over a partition of sda conflicts with sda and with itself
        // under any name, conservatively whole.
        let sys = FakeSysfs::new();
        sys.device("pci/block/sda", 8, 0, &[]);
        let files = [("partition", "1".to_string()), ("start", "2048".into()), ("size", "1000".into())];
        sys.device("pci/block/sda/sda1", 8, 1, &files);
        let dm = sys.device("virtual/block/dm-0", 253, 0, &[]);
        std::fs::create_dir_all(dm.join("slaves")).unwrap();
        symlink(sys.root().join("devices/pci/block/sda/sda1"), dm.join("slaves/sda1")).unwrap();
        let got = sys.resolve(253, 0);
        assert_eq!(
            got,
            vec![
                Extent { base: Base::Block { major: 253, minor: 0 }, range: ByteRange::WHOLE },
                Extent {
                    base: Base::Block { major: 8, minor: 0 },
                    range: ByteRange { start: 2048 * 512, end: Some(3048 * 512) }
                },
            ]
        );
        assert_eq!(
            sys.resolve(8, 0),
            vec![Extent { base: Base::Block { major: 8, minor: 0 }, range: ByteRange::WHOLE }]
        );
    }

    #[test]
    fn a_device_sysfs_does_not_know_is_locked_whole_by_its_number() {
        // Goal: no sysfs entry (or no /sys at all) still locks the device by major:minor.
        let sys = FakeSysfs::new();
        assert_eq!(
            sys.resolve(9, 3),
            vec![Extent { base: Base::Block { major: 9, minor: 3 }, range: ByteRange::WHOLE }]
        );
    }

    #[test]
    fn a_loop_whose_backing_path_is_gone_locks_the_loop_device() {
        // Goal: with no ioctl answer and a backing path that no longer exists, the loop
        // device's own number is locked rather than nothing.
        let sys = FakeSysfs::new();
        sys.device("virtual/block/loop3", 7, 3, &[("loop/backing_file", "/nonexistent/x.img (deleted)".into())]);
        assert_eq!(
            sys.resolve(7, 3),
            vec![Extent { base: Base::Block { major: 7, minor: 3 }, range: ByteRange::WHOLE }]
        );
    }

    #[test]
    fn a_sysfs_cycle_ends_at_the_layer_maximum() {
        // Goal: a partition whose parent is itself (a corrupt or hostile sysfs) stops.
        let sys = FakeSysfs::new();
        let dir = sys.device(
            "virtual/block/x",
            250,
            0,
            &[("partition", "1".into()), ("start", "1".into()), ("size", "8".into())],
        );
        std::fs::write(dir.parent().unwrap().join("dev"), "250:0\n").unwrap();
        let got = sys.resolve(250, 0);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].base, Base::Block { major: 250, minor: 0 });
    }
}
