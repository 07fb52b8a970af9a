//! Recognises what a device already holds, so that `snapfmt` does not overwrite another
//! file system or a partition table without `--force`.

use crate::device::Device;

/// (byte offset, signature, name): the magic numbers blkid also looks for.
const SIGNATURES: &[(u64, &[u8], &str)] = &[
    (1080, &[0x53, 0xef], "an ext2/ext3/ext4 file system"),
    (65600, b"_BHRfS_M", "a btrfs file system"),
    (0, b"XFSB", "an XFS file system"),
    (4086, b"SWAPSPACE2", "a Linux swap area"),
    (32769, b"CD001", "an ISO 9660 image"),
    (3, b"NTFS    ", "an NTFS file system"),
    (82, b"FAT32   ", "a FAT32 file system"),
    (54, b"FAT16   ", "a FAT16 file system"),
    (512, b"EFI PART", "a GPT partition table"),
    (0, b"LUKS\xba\xbe", "a LUKS encrypted volume"),
    (1024, b"LVM2 001", "an LVM physical volume"),
    (536, b"LVM2 001", "an LVM physical volume"),
];

/// Names what the device holds, if we recognise anything.
pub fn foreign_signature(device: &dyn Device) -> Option<&'static str> {
    for &(offset, magic, name) in SIGNATURES {
        if offset + magic.len() as u64 > device.len() {
            continue;
        }
        let mut buf = vec![0u8; magic.len()];
        if device.read_at(offset, &mut buf).is_ok() && buf == magic {
            return Some(name);
        }
    }
    let mut mbr = [0u8; 512];
    if device.len() >= 512 && device.read_at(0, &mut mbr).is_ok() && mbr[510..] == [0x55, 0xaa] {
        return Some("a DOS partition table or boot sector");
    }
    None
}
