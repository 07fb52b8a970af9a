//! `check` knows every invariant of a file tree, not only link counts and sizes.
//! Goal: a tree broken in a way the older checks (link counts, entries against back
//! references, record sizes) could not see is reported, naming the invariant and the
//! inode. Method: a pool in memory with a small tree, broken through the key-level
//! changes a stream applies (`FsTree::apply_*`), which check nothing of the whole;
//! counts are kept right wherever the break allows, so that only the named invariant
//! fails; then `check_pool`. (Breaks no public call can make, such as an xattr name
//! with a NUL byte, are tested beside the validator, in fs/validate.rs.)

use snapfs::check::check_pool;
use snapfs::device::MemoryDevice;
use snapfs::fs::{FsTree, Inode, ROOT_INO, Timespec};
use snapfs::pool::{FormatOptions, LIVE_TREE_ID, Pool, format_pool};

struct Tree {
    pool: Pool,
    dir: u64,
    file: u64,
    link: u64,
}

/// /dir, /dir/file (12 bytes), /link -> file.
fn tree() -> Tree {
    let mut pool = format_pool(Box::new(MemoryDevice::new(64 << 20)), &FormatOptions::default()).unwrap();
    let mut fs = pool.live(LIVE_TREE_ID).unwrap();
    let dir = fs.create(ROOT_INO, b"dir", Inode::new(0o040755, Timespec::default())).unwrap();
    let file = fs.create(dir, b"file", Inode::new(0o100644, Timespec::default())).unwrap();
    fs.write_at(file, 0, b"twelve bytes").unwrap();
    let link = fs.create(ROOT_INO, b"link", Inode::new(0o120777, Timespec::default())).unwrap();
    fs.set_symlink_target(link, b"dir/file").unwrap();
    pool.commit().unwrap();
    assert!(check_pool(&mut pool).unwrap().is_clean());
    Tree { pool, dir, file, link }
}

/// The inode numbers of the tree.
struct Shape {
    dir: u64,
    file: u64,
    link: u64,
}

fn broken(t: &mut Tree, change: impl FnOnce(&mut FsTree, &Shape)) -> Vec<String> {
    let shape = Shape { dir: t.dir, file: t.file, link: t.link };
    {
        let mut fs = t.pool.live(LIVE_TREE_ID).unwrap();
        change(&mut fs, &shape);
    }
    t.pool.commit().unwrap();
    check_pool(&mut t.pool).unwrap().problems
}

fn with_nlink(fs: &mut FsTree, ino: u64, delta: i32) {
    let mut inode = fs.inode(ino).unwrap();
    inode.nlink = inode.nlink.saturating_add_signed(delta);
    fs.put_inode(ino, &inode).unwrap();
}

fn expect(problems: Vec<String>, words: &str) {
    assert!(problems.iter().any(|p| p.contains(words)), "expected a problem with {words:?}, got {problems:?}");
}

#[test]
fn counter_below_an_inode() {
    let mut t = tree();
    let problems = broken(&mut t, |fs, _| fs.apply_next_ino(3).unwrap());
    expect(problems, "the inode counter is 3, not above inode");
}

#[test]
fn directory_under_a_second_parent() {
    let mut t = tree();
    let problems = broken(&mut t, |fs, t| {
        fs.apply_link(ROOT_INO, b"again", t.dir).unwrap();
        with_nlink(fs, ROOT_INO, 1);
    });
    expect(problems, &format!("directory {} has 2 parents", t.dir));
}

#[test]
fn entry_under_a_regular_file() {
    let mut t = tree();
    let problems = broken(&mut t, |fs, t| {
        fs.apply_link(t.file, b"inside", t.link).unwrap();
        with_nlink(fs, t.link, 1);
    });
    expect(problems, "a regular file and not a directory");
}

#[test]
fn entry_under_a_symlink() {
    let mut t = tree();
    let problems = broken(&mut t, |fs, t| {
        fs.apply_link(t.link, b"inside", t.file).unwrap();
        with_nlink(fs, t.file, 1);
    });
    expect(problems, "a symlink and not a directory");
}

#[test]
fn directory_in_a_loop() {
    let mut t = tree();
    let problems = broken(&mut t, |fs, t| {
        // /dir/sub, then /dir moved under /dir/sub: both keep one parent each.
        let sub = fs.create(t.dir, b"sub", Inode::new(0o040755, Timespec::default())).unwrap();
        fs.apply_unlink(ROOT_INO, b"dir", t.dir).unwrap();
        fs.apply_link(sub, b"dir", t.dir).unwrap();
        with_nlink(fs, ROOT_INO, -1);
        with_nlink(fs, sub, 1);
    });
    expect(problems, "loop");
}
