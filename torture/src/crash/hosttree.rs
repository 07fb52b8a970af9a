//! Host directory trees for the workload, made from a seed: the same seed makes the same
//! names, sizes, contents, modes, mtimes, links and xattrs, so a run can be repeated.

use crate::rng::Rng;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const DIRECTORIES: [&str; 5] = ["docs", "src/a", "src/b", "data", "empty"];
const WORDS: [&str; 16] = [
    "snapshot", "commit", "block", "pointer", "tree", "record", "flush", "device", "label", "ring", "txg", "checksum",
    "space", "log", "inode", "extent",
];

/// How big a tree to make.
#[derive(Clone, Copy, Debug)]
pub struct TreeSize {
    pub small_files: usize,
    pub medium_files: usize,
    /// Bytes of the one large file (several 128 KiB records, compressible and not).
    pub large_bytes: usize,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Text-like (compressible) or random bytes, half and half.
fn content(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    if rng.chance(1, 2) {
        while bytes.len() < len {
            bytes.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
            bytes.push(if rng.chance(1, 12) { b'\n' } else { b' ' });
        }
        bytes.truncate(len);
    } else {
        bytes.resize(len, 0);
        rng.fill(&mut bytes);
    }
    bytes
}

fn set_mtime(path: &Path, rng: &mut Rng) -> Result<(), String> {
    let when =
        SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000 + rng.below(10_000_000), rng.below(1_000_000_000) as u32);
    let file = fs::File::options().write(true).open(path).map_err(|e| io("open", path, e))?;
    file.set_modified(when).map_err(|e| io("set the mtime of", path, e))
}

fn write_file(path: &Path, bytes: &[u8], rng: &mut Rng) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| io("write", path, e))?;
    set_mtime(path, rng)
}

/// Sets a user xattr if the host file system takes them (where it does not, the tree has
/// none, which changes nothing else).
fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let Ok(cpath) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return };
    let Ok(cname) = std::ffi::CString::new(name) else { return };
    // SAFETY: the strings are NUL-terminated and the value pointer and length match.
    unsafe {
        libc::lsetxattr(cpath.as_ptr(), cname.as_ptr(), value.as_ptr() as *const libc::c_void, value.len(), 0);
    }
}

/// Makes a new tree under `root` (which must not exist).
pub fn generate(root: &Path, seed: u64, size: TreeSize) -> Result<(), String> {
    let mut rng = Rng::derive(seed, &[0x7EE]);
    for dir in DIRECTORIES {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(|e| io("create", &path, e))?;
    }
    let mut small = Vec::new();
    for i in 0..size.small_files {
        let dir = DIRECTORIES[rng.below(4) as usize];
        let path = root.join(dir).join(format!("f{i}.txt"));
        let len = if rng.chance(1, 10) { 0 } else { rng.between(1, 20_000) as usize };
        let bytes = content(&mut rng, len);
        write_file(&path, &bytes, &mut rng)?;
        small.push(path);
    }
    for i in 0..size.medium_files {
        let path = root.join("data").join(format!("m{i}.bin"));
        let len = rng.between(100_000, 400_000) as usize;
        let bytes = content(&mut rng, len);
        write_file(&path, &bytes, &mut rng)?;
    }
    let mut large = Vec::with_capacity(size.large_bytes);
    while large.len() < size.large_bytes {
        let chunk = (size.large_bytes - large.len()).min(128 << 10);
        large.extend_from_slice(&content(&mut rng, chunk));
    }
    write_file(&root.join("data/big.bin"), &large, &mut rng)?;

    let link = root.join("docs/big-link");
    std::os::unix::fs::symlink("../data/big.bin", &link).map_err(|e| io("symlink", &link, e))?;
    let dangling = root.join("src/dangling");
    std::os::unix::fs::symlink("nowhere/at/all", &dangling).map_err(|e| io("symlink", &dangling, e))?;
    if let Some(first) = small.first() {
        let hard = root.join("src/a/hard-link");
        fs::hard_link(first, &hard).map_err(|e| io("hard link", &hard, e))?;
    }
    for (i, path) in small.iter().enumerate().take(6) {
        let mode = [0o600, 0o755, 0o640, 0o444, 0o700, 0o664][i];
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", path, e))?;
    }
    for path in small.iter().skip(1).step_by(7) {
        set_xattr(path, "user.note", format!("note of {}", path.display()).as_bytes());
    }
    let private = root.join("src/b");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o750)).map_err(|e| io("chmod", &private, e))?;
    Ok(())
}

/// Every regular file under `dir`, sorted (so a mutation picks the same ones each run).
fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| io("read", &d, e))? {
            let entry = entry.map_err(|e| io("read", &d, e))?;
            let kind = entry.file_type().map_err(|e| io("stat", &entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Changes a tree the way a day of use would: in-place overwrites of a 4 KiB piece,
/// appends, deletions, new files in a new directory, a rename, a chmod, an xattr.
pub fn mutate(root: &Path, seed: u64, round: u64) -> Result<(), String> {
    let mut rng = Rng::derive(seed, &[0x3117, round]);
    let all = files(root)?;
    let pick = |rng: &mut Rng, list: &[PathBuf]| list[rng.below(list.len() as u64) as usize].clone();
    let big = root.join("data/big.bin");
    for target in [big.clone(), pick(&mut rng, &all)] {
        let len = fs::metadata(&target).map_err(|e| io("stat", &target, e))?.len();
        if len >= 4096 {
            let mut file = fs::File::options().write(true).open(&target).map_err(|e| io("open", &target, e))?;
            let offset = rng.below(len / 4096) * 4096;
            file.seek(SeekFrom::Start(offset)).map_err(|e| io("seek", &target, e))?;
            file.write_all(&content(&mut rng, 4096)).map_err(|e| io("write", &target, e))?;
            drop(file);
            set_mtime(&target, &mut rng)?;
        }
    }
    let appended = pick(&mut rng, &all);
    let mut file = fs::File::options().append(true).open(&appended).map_err(|e| io("open", &appended, e))?;
    file.write_all(&content(&mut rng, 10_000)).map_err(|e| io("append to", &appended, e))?;
    drop(file);
    set_mtime(&appended, &mut rng)?;
    let mut removed = Vec::new();
    for _ in 0..2 {
        let victim = pick(&mut rng, &all);
        if victim != big && victim != appended && !removed.contains(&victim) && victim.exists() {
            fs::remove_file(&victim).map_err(|e| io("remove", &victim, e))?;
            removed.push(victim);
        }
    }
    let new_dir = root.join(format!("new{round}"));
    fs::create_dir_all(&new_dir).map_err(|e| io("create", &new_dir, e))?;
    for i in 0..3 {
        let path = new_dir.join(format!("n{i}.dat"));
        let len = rng.between(1, 30_000) as usize;
        let bytes = content(&mut rng, len);
        write_file(&path, &bytes, &mut rng)?;
    }
    let survivors: Vec<PathBuf> = all.into_iter().filter(|p| !removed.contains(p) && *p != big).collect();
    let moved = pick(&mut rng, &survivors);
    let destination = moved.with_file_name(format!("renamed-{round}.txt"));
    fs::rename(&moved, &destination).map_err(|e| io("rename", &moved, e))?;
    let chmod = pick(&mut rng, &survivors);
    if chmod.exists() {
        fs::set_permissions(&chmod, fs::Permissions::from_mode(0o604)).map_err(|e| io("chmod", &chmod, e))?;
    }
    set_xattr(&destination, "user.round", format!("{round}").as_bytes());
    Ok(())
}
