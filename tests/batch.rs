//! `snapctl batch`: several changes in one commit, all or none (issue 16, part 1: an
//! application makes its own multi-file transaction atomic).

mod common;
use common::*;
use snapfs::cli::exit_code;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// The newest retained commit's txg, from `snapctl history`.
fn newest_txg(img: &Path) -> u64 {
    let history = run(img, &["history"]);
    let last = history.lines().rfind(|l| l.starts_with("txg")).expect("a retained commit");
    last.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn batch(img: &Path, text: &str) -> std::process::Output {
    snapctl().arg("batch").arg(img).write_stdin(text.to_string()).output().unwrap()
}

#[test]
fn a_batch_is_one_commit_and_all_of_it_lands() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let (a, b) = (dir.path().join("a"), dir.path().join("b b"));
    std::fs::write(&a, b"first\n").unwrap();
    std::fs::write(&b, noise(300_000, 3)).unwrap();
    run(&img, &["mkdir", "old"]);
    let before = newest_txg(&img);
    let text = format!(
        "# an application's transaction\nmkdir -p data/sets\nput {} data/sets/a\nput '{}' \"data/sets/b b\"\n\
         setxattr data/sets/a user.label cat\nmv old data/old\nrm -r data/old\n",
        a.display(),
        b.display()
    );
    let out = batch(&img, &text);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 changes committed"));
    assert_eq!(newest_txg(&img), before + 1, "one commit");
    assert_eq!(run(&img, &["cat", "data/sets/a"]), "first\n");
    let b_bytes = snapctl().args(["cat", "data/sets/b b"]).arg(&img).output().unwrap().stdout;
    assert_eq!(b_bytes, noise(300_000, 3));
    let listing = run(&img, &["ls", "data"]);
    assert!(listing.contains("sets") && !listing.contains("old"), "{listing}");
    check(&img);
}

#[test]
fn a_failing_change_leaves_nothing_of_the_batch() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let small = dir.path().join("small");
    std::fs::write(&small, b"small\n").unwrap();
    run(&img, &["mkdir", "keep"]);
    let before = (newest_txg(&img), run(&img, &["ls", "-l", "/"]));
    // A path that is not there, at line 3: the first two changes are gone with it.
    let out = batch(&img, &format!("mkdir new\nput {} new/f\nrm nothere\n", small.display()));
    assert_eq!(out.status.code(), Some(exit_code::NOT_FOUND_OR_EXISTS));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3 of the batch failed (rm nothere); nothing was changed"), "{stderr}");
    assert_eq!((newest_txg(&img), run(&img, &["ls", "-l", "/"])), before);
    // A full device at the last change: nothing of the batch either.
    let big = dir.path().join("big");
    std::fs::write(&big, noise(48 * MIB as usize, 9)).unwrap();
    let out = batch(&img, &format!("mkdir new\nput {} new/big\n", big.display()));
    assert_eq!(out.status.code(), Some(exit_code::NO_SPACE), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((newest_txg(&img), run(&img, &["ls", "-l", "/"])), before);
    // A line that is not a change: refused before the pool is opened, named by number.
    let out = batch(&img, "mkdir a\nmkdir\n");
    assert_eq!(out.status.code(), Some(exit_code::INVALID));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2 of the batch (mkdir)"));
    assert_eq!((newest_txg(&img), run(&img, &["ls", "-l", "/"])), before);
    check(&img);
}

#[test]
fn a_batch_writes_into_clones_by_their_names() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    run(&img, &["mkdir", "d"]);
    run(&img, &["snapshot", "@base"]);
    run(&img, &["clone", "@base", "work"]);
    let f = dir.path().join("f");
    std::fs::write(&f, b"in the clone\n").unwrap();
    let out = batch(&img, &format!("put {} work:d/f\nmkdir work:e\nmkdir e2\n", f.display()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(run(&img, &["cat", "work:d/f"]), "in the clone\n");
    assert!(run(&img, &["ls", "work:"]).contains('e'));
    assert!(run(&img, &["ls", "/"]).contains("e2"));
    // Records in flight are of one tree's files: a put into another tree waits for them.
    let bigs: Vec<std::path::PathBuf> = (0..3u64)
        .map(|i| {
            let path = dir.path().join(format!("big{i}"));
            std::fs::write(&path, noise(700_000, 40 + i)).unwrap();
            path
        })
        .collect();
    let text = format!(
        "put {} d/live1\nput {} work:d/c1\nput {} d/live2\n",
        bigs[0].display(),
        bigs[1].display(),
        bigs[2].display()
    );
    let out = batch(&img, &text);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (path, i) in [("d/live1", 0u64), ("work:d/c1", 1), ("d/live2", 2)] {
        let bytes = snapctl().args(["cat", path]).arg(&img).output().unwrap().stdout;
        assert!(bytes == noise(700_000, 40 + i), "{path}");
    }
    check(&img);
    let out = batch(&img, "mv work:d e3\n");
    assert_eq!(out.status.code(), Some(exit_code::INVALID));
    check(&img);
}

#[test]
fn a_batch_leaves_the_tree_that_the_same_changes_one_by_one_leave() {
    // The batch keeps files' records in flight from one put to the next: a put over a
    // file put before, a remove or rename of it, or a put into another tree must still
    // see every record. Method: random batches against the same changes made by separate
    // commands on a second pool; the exported trees must be equal.
    let dir = TempDir::new().unwrap();
    let hosts: Vec<std::path::PathBuf> = (0..12)
        .map(|i| {
            let path = dir.path().join(format!("h{i}"));
            std::fs::write(&path, noise(100 + i * 40_000, i as u64)).unwrap();
            path
        })
        .collect();
    for seed in 1..=4u64 {
        let mut rng = Rng(seed);
        let (one, separate) = (pool(dir.path(), 128 * MIB, &[]), dir.path().join(format!("separate{seed}.img")));
        std::fs::copy(&one, &separate).unwrap();
        let mut lines = vec!["mkdir -p d/e".to_string()];
        run(&separate, &["mkdir", "-p", "d/e"]);
        for _ in 0..60 {
            let name = format!("d/f{}", rng.below(8));
            let args: Vec<String> = match rng.below(10) {
                0 => vec!["rm".into(), name],
                1 => vec!["mv".into(), name, format!("d/e/moved{}", rng.below(3))],
                _ => vec!["put".into(), hosts[rng.below(12) as usize].display().to_string(), name],
            };
            // Made one by one first; only what succeeds goes into the batch, which is
            // all or nothing.
            if snapctl().args(&args).arg(&separate).output().unwrap().status.success() {
                lines.push(args.join(" "));
            }
        }
        let out = batch(&one, &(lines.join("\n") + "\n"));
        assert!(out.status.success(), "seed {seed}: {}", String::from_utf8_lossy(&out.stderr));
        let (a, b) = (dir.path().join(format!("a{seed}")), dir.path().join(format!("b{seed}")));
        run(&one, &["export", "/", a.to_str().unwrap()]);
        run(&separate, &["export", "/", b.to_str().unwrap()]);
        assert_eq!(digest(&a), digest(&b), "seed {seed}: {lines:?}");
        check(&one);
    }
}
