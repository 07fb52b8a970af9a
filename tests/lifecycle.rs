//! Managing snapshots over months (issue 15): rollback and rename, on image files through
//! the binaries. Every test ends with `check` finding the pool exact.

mod common;
use common::*;
use predicates::prelude::*;
use snapfs::cli::exit_code;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// Writes `files` (name, seed, length: incompressible bytes) into `src` (emptied first)
/// and syncs it.
fn sync_files(src: &Path, img: &Path, files: &[(&str, u8, usize)]) {
    let _ = std::fs::remove_dir_all(src);
    std::fs::create_dir_all(src).unwrap();
    for (name, seed, len) in files {
        std::fs::write(src.join(name), noise(*len, *seed as u64)).unwrap();
    }
    snapctl().arg("sync").arg(src).arg(img).assert().success();
}

fn snapshot(img: &Path, name: &str) {
    snapctl().arg("snapshot").arg(name).arg(img).assert().success();
}

/// The names `list --json` shows, oldest first.
fn names(img: &Path) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(&stdout(snapctl().args(["list", "--json"]).arg(img))).unwrap();
    listed.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

fn listed(img: &Path, name: &str) -> serde_json::Value {
    let listed: serde_json::Value = serde_json::from_str(&stdout(snapctl().args(["list", "--json"]).arg(img))).unwrap();
    listed.as_array().unwrap().iter().find(|s| s["name"] == name).cloned().expect("listed")
}

fn used_bytes(img: &Path) -> u64 {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap();
    status["used_bytes"].as_u64().unwrap()
}

/// The live tree exported into a fresh directory, as the workload digest sees it.
fn live_digest(dir: &Path, img: &Path, name: &str) -> String {
    let out = dir.join(name);
    snapctl().arg("export").arg("/").arg(&out).arg(img).assert().success();
    digest(&out)
}

#[test]
fn rollback_makes_the_live_tree_the_snapshot_again_and_frees_what_it_gained() {
    // Goal: after changes, additions and removals, rollback gives back exactly the
    // snapshot's tree, and (history off) the space returns to what it was at the snapshot.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &["--history", "0"]);
    let src = dir.path().join("src");
    sync_files(&src, &img, &[("keep", 1, 300_000), ("change", 2, 200_000), ("gone", 3, 100_000)]);
    snapshot(&img, "@a");
    let at_snapshot = used_bytes(&img);
    let expected = live_digest(dir.path(), &img, "at-a");
    sync_files(&src, &img, &[("keep", 1, 300_000), ("change", 9, 250_000), ("new", 4, 400_000)]);
    assert!(used_bytes(&img) > at_snapshot + 400_000);
    snapctl()
        .args(["rollback", "@a"])
        .arg(&img)
        .assert()
        .success()
        .stdout(predicate::str::contains("rolled the live tree back to @a"));
    assert_eq!(live_digest(dir.path(), &img, "rolled"), expected);
    assert_eq!(used_bytes(&img), at_snapshot, "what the live tree gained since @a is freed");
    check(&img);
    // Nothing changed since: a second rollback changes nothing and succeeds.
    snapctl().args(["rollback", "@a"]).arg(&img).assert().success();
    assert_eq!(used_bytes(&img), at_snapshot);
    check(&img);
}

#[test]
fn rollback_past_later_snapshots_is_refused_without_r_and_destroys_them_with_it() {
    // Goal: later snapshots refuse the rollback, named, with the way out in the hint, and
    // nothing changes; -r destroys them and rolls back in one commit. With retained
    // history too: the commits after the snapshot leave the history.
    for history in ["0", "24h"] {
        let dir = TempDir::new().unwrap();
        let img = pool(dir.path(), 64 * MIB, &["--history", history]);
        let src = dir.path().join("src");
        sync_files(&src, &img, &[("f", 1, 100_000)]);
        snapshot(&img, "@a");
        let expected = live_digest(dir.path(), &img, "at-a");
        sync_files(&src, &img, &[("f", 2, 100_000), ("g", 3, 50_000)]);
        snapshot(&img, "@b");
        sync_files(&src, &img, &[("h", 4, 70_000)]);
        snapshot(&img, "@c");
        sync_files(&src, &img, &[("h", 5, 70_000)]);
        let before = live_digest(dir.path(), &img, "before");
        snapctl().args(["rollback", "@a"]).arg(&img).assert().code(exit_code::REFUSED).stderr(
            predicate::str::contains("snapshots @b, @c were taken after it")
                .and(predicate::str::contains("snapctl rollback -r @a")),
        );
        assert_eq!(names(&img), ["a", "b", "c"]);
        assert_eq!(live_digest(dir.path(), &img, "refused"), before, "a refused rollback changes nothing");
        check(&img);
        snapctl()
            .args(["rollback", "-r", "@a"])
            .arg(&img)
            .assert()
            .success()
            .stdout(predicate::str::contains("destroyed @b, @c"));
        assert_eq!(names(&img), ["a"]);
        assert_eq!(live_digest(dir.path(), &img, "rolled"), expected);
        check(&img);
        // The names are free again, and the tree goes on from @a.
        sync_files(&src, &img, &[("f", 7, 100_000)]);
        snapshot(&img, "@b");
        snapctl().args(["cat", "@a:f"]).arg(&img).assert().success();
        check(&img);
    }
}

#[test]
fn rollback_and_rename_of_what_is_not_there_or_not_allowed() {
    // Goal: each bad input gets its exit status and a message naming the problem, and
    // leaves the pool as it was.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let src = dir.path().join("src");
    sync_files(&src, &img, &[("f", 1, 10_000)]);
    snapshot(&img, "@a");
    snapshot(&img, "@b");
    let not_found = exit_code::NOT_FOUND_OR_EXISTS;
    let cases: &[(&[&str], i32, &str)] = &[
        (&["rollback", "@missing"], not_found, "@missing"),
        (&["rollback", "a"], exit_code::INVALID, "snapshots are written @NAME"),
        (&["rename", "@missing", "@x"], not_found, "@missing"),
        (&["rename", "@a", "@b"], not_found, "snapshot @b already exists"),
        (&["rename", "@a", "@a"], not_found, "snapshot @a already exists"),
        (&["rename", "@a", "@bad/name"], exit_code::INVALID, "bad/name"),
        (&["rename", "@a", "b2"], exit_code::INVALID, "snapshots are written @NAME"),
    ];
    for (args, code, message) in cases {
        snapctl().args(*args).arg(&img).assert().code(*code).stderr(predicate::str::contains(*message));
        assert_eq!(names(&img), ["a", "b"], "{args:?} changed nothing");
    }
    check(&img);
}

#[test]
fn rollback_is_refused_while_a_partial_receive_is_saved() {
    // Goal: a saved partial receive started from a snapshot of the tree; the rollback
    // would change what it builds on, so it is refused until the receive is finished or
    // discarded.
    let dir = TempDir::new().unwrap();
    let source = fresh_pool(dir.path(), "source.img", 64 * MIB);
    let src = dir.path().join("src");
    sync_files(&src, &source, &[("f", 1, 100_000)]);
    snapshot(&source, "@a");
    let files: Vec<(String, u8, usize)> = (0..40).map(|i| (format!("n{i}"), i as u8, 30_000)).collect();
    let files: Vec<(&str, u8, usize)> = files.iter().map(|(n, b, l)| (n.as_str(), *b, *l)).collect();
    sync_files(&src, &source, &files);
    snapshot(&source, "@b");
    let target = fresh_pool(dir.path(), "target.img", 64 * MIB);
    receive(&target, &send(&["@a"], &source));
    let inc = send(&["-i", "@a", "@b"], &source);
    snaprecv()
        .arg("-s")
        .arg(&target)
        .write_stdin(inc[..inc.len() * 2 / 3].to_vec())
        .assert()
        .code(exit_code::BAD_STREAM);
    snapctl().args(["rollback", "@a"]).arg(&target).assert().code(exit_code::REFUSED).stderr(
        predicate::str::contains("partial receive of @b is saved").and(predicate::str::contains("snaprecv -A")),
    );
    snaprecv().arg("-A").arg(&target).assert().success();
    snapctl().args(["rollback", "@a"]).arg(&target).assert().success();
    check(&target);
}

#[test]
fn a_renamed_snapshot_is_the_same_snapshot_and_replication_finds_it() {
    // Goal: rename keeps guid, txg, time and contents; the old name is gone; incrementals
    // start from it on the sender and land on it on the receiver after renames on
    // either side (streams find bases by guid); received snapshots keep the source's
    // creation times.
    let dir = TempDir::new().unwrap();
    let source = fresh_pool(dir.path(), "source.img", 64 * MIB);
    let src = dir.path().join("src");
    sync_files(&src, &source, &[("f", 1, 100_000)]);
    snapshot(&source, "@nightly");
    let before = listed(&source, "nightly");
    snapctl()
        .args(["rename", "@nightly", "@base"])
        .arg(&source)
        .assert()
        .success()
        .stdout(predicate::str::contains("renamed @nightly to @base"));
    let after = listed(&source, "base");
    for field in ["guid", "txg", "created_unix_ns"] {
        assert_eq!(before[field], after[field], "{field}");
    }
    assert_eq!(names(&source), ["base"]);
    snapctl().args(["cat", "@nightly:f"]).arg(&source).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    snapctl().args(["cat", "@base:f"]).arg(&source).assert().success();
    check(&source);

    let target = fresh_pool(dir.path(), "target.img", 64 * MIB);
    receive(&target, &send(&["@base"], &source));
    snapctl().args(["rename", "@base", "@replica-base"]).arg(&target).assert().success();
    sync_files(&src, &source, &[("f", 2, 100_000), ("g", 3, 20_000)]);
    snapshot(&source, "@next");
    std::thread::sleep(std::time::Duration::from_millis(20));
    receive(&target, &send(&["-i", "@base", "@next"], &source));
    assert_eq!(names(&target), ["replica-base", "next"]);
    // A replica keeps its source's creation times, full and incremental: it prunes by
    // the same calendar.
    let created = |img: &Path, name: &str| listed(img, name)["created_unix_ns"].as_u64().unwrap();
    assert_eq!(created(&target, "replica-base"), created(&source, "base"));
    assert_eq!(created(&target, "next"), created(&source, "next"));
    let out = dir.path().join("received");
    snapctl().arg("export").arg("@next").arg(&out).arg(&target).assert().success();
    assert_eq!(digest(&out), digest(&src));
    check(&source);
    check(&target);
}

fn features(img: &Path) -> Vec<String> {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap();
    status["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
}

fn holds(img: &Path, name: &str) -> Vec<String> {
    let holds: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["holds", "--json", name]).arg(img))).unwrap();
    holds.as_array().unwrap().iter().map(|h| h["tag"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_held_snapshot_outlives_destroy_and_rollback_until_every_hold_is_released() {
    // Goal: destroy and rollback -r refuse a held snapshot, naming the tags, and change
    // nothing; holds survive a rename; once all are released destroy frees it. The pool
    // gets the holds feature with its first hold, not before.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &["--history", "0"]);
    let src = dir.path().join("src");
    sync_files(&src, &img, &[("f", 1, 200_000)]);
    snapshot(&img, "@a");
    sync_files(&src, &img, &[("f", 2, 200_000)]);
    snapshot(&img, "@b");
    assert!(!features(&img).contains(&"holds".to_string()), "no hold, no feature");
    snapctl().args(["hold", "offsite", "@b"]).arg(&img).assert().success();
    snapctl().args(["hold", "backup:nightly", "@b"]).arg(&img).assert().success();
    assert!(features(&img).contains(&"holds".to_string()));
    assert_eq!(holds(&img, "@b"), ["offsite", "backup:nightly"]);
    assert_eq!(listed(&img, "b")["holds"], serde_json::json!(["offsite", "backup:nightly"]));
    let held = stdout(snapctl().args(["holds", "@b"]).arg(&img));
    assert!(held.contains("@b") && held.contains("offsite") && held.contains("backup:nightly"), "{held}");

    snapctl().args(["destroy", "@b"]).arg(&img).assert().code(exit_code::REFUSED).stderr(
        predicate::str::contains("@b is held (holds offsite, backup:nightly)")
            .and(predicate::str::contains("snapctl release offsite @b")),
    );
    snapctl()
        .args(["rollback", "-r", "@a"])
        .arg(&img)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("@b is held"));
    assert_eq!(names(&img), ["a", "b"], "refusals destroy nothing");
    check(&img);

    snapctl().args(["rename", "@b", "@kept"]).arg(&img).assert().success();
    assert_eq!(holds(&img, "@kept"), ["offsite", "backup:nightly"], "a rename keeps the holds");
    snapctl().args(["release", "offsite", "@kept"]).arg(&img).assert().success();
    snapctl()
        .args(["destroy", "@kept"])
        .arg(&img)
        .assert()
        .code(exit_code::REFUSED)
        .stderr(predicate::str::contains("(hold backup:nightly)"));
    snapctl().args(["release", "backup:nightly", "@kept"]).arg(&img).assert().success();
    assert!(holds(&img, "@kept").is_empty());
    let before = used_bytes(&img);
    snapctl().args(["rollback", "-r", "@a"]).arg(&img).assert().success();
    assert_eq!(names(&img), ["a"]);
    assert!(used_bytes(&img) < before - 150_000, "the released snapshot's data is freed");
    check(&img);
}

#[test]
fn holds_that_are_not_there_or_not_allowed() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let src = dir.path().join("src");
    sync_files(&src, &img, &[("f", 1, 10_000)]);
    snapshot(&img, "@a");
    snapctl().args(["hold", "keep", "@a"]).arg(&img).assert().success();
    let not_found = exit_code::NOT_FOUND_OR_EXISTS;
    let long = "t".repeat(65);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["hold", "keep", "@a"], not_found, "hold \"keep\" on @a already exists"),
        (&["hold", "x", "@missing"], not_found, "@missing"),
        (&["hold", "bad tag", "@a"], exit_code::INVALID, "bad hold tag"),
        (&["hold", &long, "@a"], exit_code::INVALID, "bad hold tag"),
        (&["hold", "--", "-x", "@a"], exit_code::INVALID, "bad hold tag"),
        (&["release", "other", "@a"], not_found, "hold \"other\" on @a"),
        (&["release", "keep", "@missing"], not_found, "@missing"),
        (&["holds", "@missing"], not_found, "@missing"),
    ];
    for (args, code, message) in cases {
        snapctl().args(*args).arg(&img).assert().code(*code).stderr(predicate::str::contains(*message));
        assert_eq!(holds(&img, "@a"), ["keep"], "{args:?} changed nothing");
    }
    for i in 1..32 {
        snapctl().args(["hold", &format!("t{i}"), "@a"]).arg(&img).assert().success();
    }
    snapctl()
        .args(["hold", "one-more", "@a"])
        .arg(&img)
        .assert()
        .code(exit_code::INVALID)
        .stderr(predicate::str::contains("32 holds"));
    check(&img);
}

#[test]
fn diff_names_each_change_as_zfs_diff_does() {
    // Goal: additions, removals, content and metadata changes, a file moved on the host
    // (sync moves it), a directory renamed with `mv` (one line: its children did not
    // change) each get their line and marker; the live tree diffs as its last commit;
    // nothing changed, nothing printed; -t and --json carry the same changes.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = dir.path().join("src");
    for d in ["docs", "old-dir/deep", "stay"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    // noise() takes odd seeds apart only (seed | 1).
    for (path, seed) in
        [("docs/a", 11), ("docs/gone", 13), ("old-dir/deep/f", 15), ("stay/moved", 17), ("stay/chmod", 19)]
    {
        std::fs::write(src.join(path), noise(5000, seed)).unwrap();
    }
    std::os::unix::fs::symlink("docs/a", src.join("link")).unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapshot(&img, "@a");
    snapctl().args(["diff", "@a"]).arg(&img).assert().success().stdout("");

    std::fs::write(src.join("docs/a"), noise(6000, 21)).unwrap();
    std::fs::remove_file(src.join("docs/gone")).unwrap();
    std::fs::write(src.join("docs/new"), b"new").unwrap();
    std::fs::rename(src.join("stay/moved"), src.join("docs/moved-here")).unwrap();
    let mut perms = std::fs::metadata(src.join("stay/chmod")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(src.join("stay/chmod"), perms).unwrap();
    std::fs::remove_file(src.join("link")).unwrap();
    std::os::unix::fs::symlink("docs/new", src.join("link")).unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapctl().args(["mv", "old-dir", "new-dir"]).arg(&img).assert().success();
    snapshot(&img, "@b");

    let lines = stdout(snapctl().args(["diff", "@a", "@b"]).arg(&img));
    let expected = [
        "M\t/",
        "M\t/docs",
        "M\t/docs/a",
        "-\t/docs/gone",
        "+\t/docs/new",
        "M\t/link",
        "R\t/old-dir -> /new-dir",
        "M\t/stay",
        "M\t/stay/chmod",
        "R\t/stay/moved -> /docs/moved-here",
    ];
    assert_eq!(lines.lines().collect::<Vec<_>>(), expected, "{lines}");
    assert_eq!(stdout(snapctl().args(["diff", "@a"]).arg(&img)), lines, "the live tree is @b");

    let timed = stdout(snapctl().args(["diff", "-t", "@a", "@b"]).arg(&img));
    for (timed, plain) in timed.lines().zip(lines.lines()) {
        let (time, rest) = timed.split_once('\t').unwrap();
        assert_eq!(rest, plain);
        let (sec, nsec) = time.split_once('.').unwrap();
        assert!(sec.parse::<u64>().unwrap() > 1_600_000_000 && nsec.len() == 9, "{timed}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["diff", "--json", "@a", "@b"]).arg(&img))).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), expected.len());
    let renamed = entries.iter().find(|e| e["path"] == "/old-dir").unwrap();
    assert_eq!(renamed["change"], "R");
    assert_eq!(renamed["new_path"], "/new-dir");
    assert_eq!(renamed["type"], "directory");
    assert!(renamed["ctime_unix_ns"].as_u64().unwrap() > 0);
    let link = entries.iter().find(|e| e["path"] == "/link").unwrap();
    assert_eq!(link["type"], "symlink");
    check(&img);
}

#[test]
fn diff_of_what_is_not_there() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    snapshot(&img, "@a");
    let cases: &[(&[&str], i32, &str)] = &[
        (&["diff", "@missing"], exit_code::NOT_FOUND_OR_EXISTS, "@missing"),
        (&["diff", "@a", "@missing"], exit_code::NOT_FOUND_OR_EXISTS, "@missing"),
        (&["diff", "a"], exit_code::INVALID, "snapshots are written @NAME"),
        (&["diff", "@a", "b"], exit_code::INVALID, "snapshots are written @NAME"),
    ];
    for (args, code, message) in cases {
        snapctl().args(*args).arg(&img).assert().code(*code).stderr(predicate::str::contains(*message));
    }
}

fn held_by_snapshots(img: &Path) -> u64 {
    let status: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap();
    status["held_by_snapshots_and_history_bytes"].as_u64().unwrap()
}

/// The "(N bytes)" of a destroy message's "freeing"/"freed" figure.
fn bytes_after(text: &str, word: &str) -> u64 {
    let rest = &text[text.find(word).unwrap_or_else(|| panic!("{word:?} in {text:?}")) + word.len()..];
    let open = rest.find('(').unwrap();
    rest[open + 1..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn destroy_n_says_to_the_byte_what_destroying_a_set_of_snapshots_frees() {
    // Goal: for single snapshots, ranges and lists (sharing blocks with each other and
    // with the snapshots that stay), -n predicts exactly what the destroy then takes out
    // of what snapshots hold (status, byte for byte), changes nothing itself, and with
    // retained history says what the history goes on holding.
    for history in ["0", "24h"] {
        let dir = TempDir::new().unwrap();
        let img = pool(dir.path(), 64 * MIB, &["--history", history]);
        let src = dir.path().join("src");
        // Each round keeps some files, changes some, adds one: neighbours share blocks.
        for round in 1..=5u8 {
            let files: Vec<(String, u8, usize)> = (0..6u8)
                .map(|i| (format!("f{i}"), if i < round { round * 16 + i * 2 + 1 } else { i * 2 + 1 }, 60_000))
                .chain(std::iter::once((format!("only{round}"), round * 2 + 101, 40_000)))
                .collect();
            let files: Vec<(&str, u8, usize)> = files.iter().map(|(n, s, l)| (n.as_str(), *s, *l)).collect();
            sync_files(&src, &img, &files);
            snapshot(&img, &format!("@s{round}"));
        }
        sync_files(&src, &img, &[("final", 7, 10_000)]);
        let pristine = dir.path().join("pristine.img");
        std::fs::copy(&img, &pristine).unwrap();
        let cases: &[&[&str]] = &[&["@s3"], &["@s2%@s4"], &["@s1", "@s3"], &["@s2%s3", "@s5"], &["@s1%@s5"]];
        for specs in cases {
            std::fs::copy(&pristine, &img).unwrap();
            let before = held_by_snapshots(&img);
            let dry = stdout(snapctl().args(["destroy", "-n"]).args(*specs).arg(&img));
            assert_eq!(held_by_snapshots(&img), before, "-n changes nothing");
            let predicted = bytes_after(&dry, "freeing ");
            let real = stdout(snapctl().arg("destroy").args(*specs).arg(&img));
            let after = held_by_snapshots(&img);
            assert_eq!(before - after, predicted, "history {history}, {specs:?}: {dry}{real}");
            assert!(bytes_after(&real, "freed ") >= predicted, "{real}");
            if history == "0" {
                assert!(predicted > 0, "{specs:?} keeps blocks of its own");
                assert!(!dry.contains("retained commits"), "{dry}");
            } else {
                assert!(dry.contains("retained commits would go on holding"), "{dry}");
            }
            check(&img);
        }
    }
}

#[test]
fn destroy_of_a_set_is_all_or_nothing() {
    // Goal: -v names each snapshot in txg order; a held snapshot, an unknown name or a
    // backwards range refuses the whole command, and nothing is destroyed.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    let src = dir.path().join("src");
    for round in 1..=4u8 {
        sync_files(&src, &img, &[("f", round * 2 + 1, 20_000)]);
        snapshot(&img, &format!("@s{round}"));
    }
    snapctl().args(["hold", "keep", "@s3"]).arg(&img).assert().success();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["destroy", "@s1", "@s2%@s4"], exit_code::REFUSED, "@s3 is held (hold keep)"),
        (&["destroy", "-n", "@s3"], exit_code::REFUSED, "@s3 is held"),
        (&["destroy", "@s1", "@missing"], exit_code::NOT_FOUND_OR_EXISTS, "@missing"),
        (&["destroy", "@s1%@missing"], exit_code::NOT_FOUND_OR_EXISTS, "@missing"),
        (&["destroy", "@s4%@s1"], exit_code::INVALID, "@s1 is older than @s4"),
        (&["destroy", "s1"], exit_code::INVALID, "snapshots are written @NAME"),
    ];
    for (args, code, message) in cases {
        snapctl().args(*args).arg(&img).assert().code(*code).stderr(predicate::str::contains(*message));
        assert_eq!(names(&img), ["s1", "s2", "s3", "s4"], "{args:?} destroyed nothing");
    }
    let out = stdout(snapctl().args(["destroy", "-v", "@s4", "@s1%@s2"]).arg(&img));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["snapctl: destroy @s1", "snapctl: destroy @s2", "snapctl: destroy @s4"], "{out}");
    assert!(lines[3].starts_with("snapctl: destroyed @s1, @s2, @s4, freed "), "{out}");
    assert_eq!(names(&img), ["s3"]);
    check(&img);
}

#[test]
fn snapshot_auto_and_prune_from_the_command_line() {
    // Goal: --auto names snapshots from the time, never twice the same; prune -n lists
    // what prune then destroys (only automatic snapshots, never the newest); malformed
    // rules and a name beside --auto are refused, naming the problem. (The rules over
    // simulated months: tests/retention.rs.)
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &["--history", "0"]);
    let src = dir.path().join("src");
    snapshot(&img, "@manual");
    for round in 1..=3u8 {
        sync_files(&src, &img, &[("f", round * 2 + 1, 30_000)]);
        snapctl().args(["snapshot", "--auto"]).arg(&img).assert().success();
    }
    let all = names(&img);
    assert_eq!(all.len(), 4);
    assert!(all[1..].iter().all(|n| n.starts_with("auto-20")), "{all:?}");
    let dry = stdout(snapctl().args(["prune", "--keep", "hourly=0", "-n"]).arg(&img));
    assert_eq!(names(&img), all, "-n destroys nothing");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(snapctl().args(["prune", "--keep", "hourly=0", "--json"]).arg(&img))).unwrap();
    let destroyed: Vec<&str> = json["destroyed"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(destroyed, all[1..3], "the older automatic snapshots; not @manual, not the newest");
    for name in &destroyed {
        assert!(dry.contains(&format!("would destroy @{name}")), "{dry}");
    }
    assert_eq!(names(&img), ["manual".to_string(), all[3].clone()]);
    let cases: &[(&[&str], &str)] = &[
        (&["prune", "--keep", "hourly=24,daily"], "bad --keep rule \"daily\""),
        (&["prune", "--keep", "fortnightly=2"], "unknown period"),
        (&["snapshot", "--auto", "@x"], "--auto names the snapshot itself"),
    ];
    for (args, message) in cases {
        snapctl().args(*args).arg(&img).assert().code(exit_code::INVALID).stderr(predicate::str::contains(*message));
    }
    check(&img);
}

fn status_json(img: &Path) -> serde_json::Value {
    serde_json::from_str(&stdout(snapctl().args(["status", "--json"]).arg(img))).unwrap()
}

fn figure(value: &serde_json::Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or_else(|| panic!("{key} in {value}"))
}

#[test]
fn list_and_status_account_for_every_byte_as_zfs_does() {
    // Goal: `referenced` is what a snapshot reaches, `written` what it gained over the
    // one before (nothing, for two in a row without a change), `unique` what only it
    // keeps; status splits `used` into live tree, snapshots, history and pool metadata,
    // byte for byte, and the live tree's figure is the newest snapshot's when nothing
    // changed since. On a replica, the same figures come with the received snapshots.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &["--history", "0"]);
    let src = dir.path().join("src");
    let (a, b) = (1_000_000, 500_000);
    sync_files(&src, &img, &[("a", 1, a)]);
    snapshot(&img, "@one");
    sync_files(&src, &img, &[("a", 1, a), ("b", 2, b)]);
    snapshot(&img, "@two");
    snapshot(&img, "@same");
    sync_files(&src, &img, &[("b", 2, b)]);
    snapshot(&img, "@three");
    let (one, two, same, three) =
        (listed(&img, "one"), listed(&img, "two"), listed(&img, "same"), listed(&img, "three"));
    let metadata = 64 * 1024; // tree nodes, each written twice (ditto)
    assert_eq!(figure(&one, "written_bytes"), figure(&one, "referenced_bytes"), "the first has nothing before it");
    assert!((a as u64..a as u64 + metadata).contains(&figure(&one, "referenced_bytes")), "{one}");
    let gained = figure(&two, "written_bytes");
    assert!((b as u64..b as u64 + metadata).contains(&gained), "{two}");
    assert_eq!(figure(&same, "written_bytes"), 0, "{same}");
    assert_eq!(figure(&same, "referenced_bytes"), figure(&two, "referenced_bytes"));
    assert!(figure(&three, "written_bytes") < metadata, "removing a file writes only nodes: {three}");
    let dropped = figure(&two, "referenced_bytes") - figure(&three, "referenced_bytes");
    assert!((a as u64 - metadata..a as u64 + metadata).contains(&dropped), "{two} {three}");
    assert_eq!(figure(&two, "unique_bytes"), 0, "@same sees all it sees");

    let status = status_json(&img);
    assert_eq!(figure(&status, "live_referenced_bytes"), figure(&three, "referenced_bytes"));
    assert_eq!(
        figure(&status, "used_bytes"),
        figure(&status, "live_referenced_bytes")
            + figure(&status, "held_by_snapshots_and_history_bytes")
            + figure(&status, "pool_metadata_bytes"),
        "{status}"
    );
    assert_eq!(figure(&status, "held_by_history_only_bytes"), 0, "no history kept");
    assert!(figure(&status, "held_by_snapshots_bytes") >= a as u64, "@one and @two keep file a: {status}");
    let text = stdout(snapctl().arg("list").arg(&img));
    assert!(
        text.lines().next().unwrap().split_whitespace().eq(["NAME", "TXG", "CREATED", "UNIQUE", "REFER", "WRITTEN"])
    );

    let replica = fresh_pool(dir.path(), "replica.img", 64 * MIB);
    receive(&replica, &send(&["@one"], &img));
    receive(&replica, &send(&["-I", "@one", "@three"], &img));
    check(&replica);
    for name in ["one", "two", "same", "three"] {
        let (here, there) = (listed(&img, name), listed(&replica, name));
        let gap = figure(&here, "referenced_bytes").abs_diff(figure(&there, "referenced_bytes"));
        assert!(gap < metadata, "@{name}: {here} against {there}");
    }
    for name in ["@one", "@two", "@same", "@three"] {
        snapctl().arg("destroy").arg(name).arg(&img).assert().success();
    }
    let status = status_json(&img);
    assert_eq!(figure(&status, "held_by_snapshots_and_history_bytes"), 0, "{status}");
    check(&img);
}
