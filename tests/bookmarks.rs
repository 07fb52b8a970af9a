//! Bookmarks (issue 15 part 7): `snapctl bookmark @snap '#name'` keeps what an
//! incremental needs; `snapsend -i '#name' @new` sends from it after @snap is destroyed,
//! to a receiver that has its own copy of @snap. Through the binaries on image files;
//! `check` proves each pool exact after each step.

mod common;
use common::*;
use predicates::prelude::*;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn sync(src: &Path, img: &Path) {
    snapctl().arg("sync").arg(src).arg(img).assert().success();
}

fn export_digest(img: &Path, snapshot: &str, dir: &Path) -> String {
    let out = dir.join(format!("export-{}", snapshot.trim_start_matches('@')));
    let _ = std::fs::remove_dir_all(&out);
    snapctl().arg("export").arg(snapshot).arg(&out).arg(img).assert().success();
    let digest = digest(&out);
    std::fs::remove_dir_all(&out).unwrap();
    digest
}

#[test]
fn an_incremental_from_a_bookmark_reaches_a_replica_after_its_snapshot_is_gone() {
    // Goal: after @a is destroyed on the source, `snapsend -i '#a' @b` brings a replica
    // holding @a to @b: the same files, metadata, links and xattrs (digests), a tree the
    // replica's check proves, and one key for key the source's, since an ordinary
    // incremental from @b applies after it. Whole directories go between the two (their
    // leaves empty out and drop from the tree: the case that needs nodes rewritten when
    // their key range changes). -n -P says the exact size.
    let dir = TempDir::new().unwrap();
    let src = dir.path().join("src");
    run_workload(&["generate", src.to_str().unwrap(), "128M"], &[]);
    let source = pool(dir.path(), 512 * MIB, &[]);
    let replica = image(dir.path(), "replica.img", 512 * MIB);
    snapfmt().arg(&replica).assert().success();
    sync(&src, &source);
    run(&source, &["snapshot", "@a"]);
    receive(&replica, &send(&["@a"], &source));
    assert!(run(&source, &["bookmark", "@a", "#a"]).contains("bookmarked @a as #a"));
    check(&source);

    run_workload(&["mutate", src.to_str().unwrap()], &[]);
    let mut dirs: Vec<_> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for gone in dirs.iter().take(3) {
        std::fs::remove_dir_all(gone).unwrap();
    }
    sync(&src, &source);
    run(&source, &["snapshot", "@b"]);
    run(&source, &["destroy", "@a"]);
    let listed = run(&source, &["list"]);
    assert!(listed.contains("BOOKMARK") && listed.contains("#a") && !listed.contains("@a "), "{listed}");

    let planned = stdout(snapsend().args(["-n", "-P", "-i", "#a", "@b"]).arg(&source));
    assert!(planned.starts_with("incremental\t#a\t@b\t"), "{planned}");
    let stream = send(&["-i", "#a", "@b"], &source);
    assert!(planned.contains(&format!("size\t{}", stream.len())), "{planned} vs {} bytes", stream.len());
    receive(&replica, &stream);
    check(&replica);
    assert_eq!(export_digest(&replica, "@b", dir.path()), digest(&src));

    // Key for key: an ordinary incremental from @b applies on top.
    run_workload(&["mutate", src.to_str().unwrap()], &[("MUTATE_ROUND", "2")]);
    sync(&src, &source);
    run(&source, &["snapshot", "@c"]);
    receive(&replica, &send(&["-i", "@b", "@c"], &source));
    check(&replica);
    assert_eq!(export_digest(&replica, "@c", dir.path()), digest(&src));

    // A bookmark of the newest snapshot sends nothing while nothing changed.
    run(&source, &["bookmark", "@c", "#c"]);
    run(&source, &["snapshot", "@d"]);
    let empty = send(&["-i", "#c", "@d"], &source);
    assert!(empty.len() < 1024, "an unchanged tree sent {} bytes", empty.len());
    receive(&replica, &empty);
    check(&replica);
}

#[test]
fn bookmarks_are_listed_renamed_destroyed_and_rollbacks_do_not_go_behind_them() {
    // Goal: the bookmark commands and their refusals, each with a clear error and the
    // pool unchanged (check clean): a missing snapshot, a bookmark that exists, a bad
    // name; a rollback behind a bookmark needs -r, which destroys it; a bookmark is not
    // a receive target; a bookmark that is not an earlier state of the snapshot sent.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    put(&img, "f", b"one");
    run(&img, &["snapshot", "@a"]);
    put(&img, "f", b"two");
    run(&img, &["snapshot", "@b"]);
    run(&img, &["bookmark", "@a", "#a"]);
    run(&img, &["bookmark", "@b", "#b"]);

    refused(&img, &["bookmark", "@nope", "#n"], 3, "@nope");
    refused(&img, &["bookmark", "@a", "#a"], 3, "bookmark #a");
    refused(&img, &["bookmark", "@a", "#-x"], 2, "bad bookmark name");
    refused(&img, &["bookmark", "@a", "plain"], 2, "#NAME");

    let json: serde_json::Value = serde_json::from_str(&run(&img, &["list", "--bookmarks", "--json"])).unwrap();
    let names: Vec<&str> = json.as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(json[1]["snapshot"], "b");
    assert_eq!(json[1]["tree"], "live");

    run(&img, &["rename", "#b", "#later"]);
    refused(&img, &["rename", "#a", "#later"], 3, "bookmark #later");
    refused(&img, &["destroy", "-n", "#a"], 2, "bookmark holds no blocks");
    // With @b gone, the bookmark of it alone keeps the rollback off.
    run(&img, &["destroy", "@b"]);
    refused(&img, &["rollback", "@a"], 7, "bookmark #later made after @a");
    let rolled = run(&img, &["rollback", "-r", "@a"]);
    assert!(rolled.contains("destroyed bookmark #later"), "{rolled}");
    check(&img);
    assert!(run(&img, &["destroy", "#a"]).contains("destroyed bookmark #a"));
    refused(&img, &["destroy", "#a"], 3, "bookmark #a");
    assert!(run(&img, &["list", "--bookmarks"]).lines().count() == 1, "only the header is left");

    // A bookmark is no receive target.
    let stream = send(&["@a"], &img);
    snaprecv()
        .args(["--tree", "#a"])
        .arg(&img)
        .write_stdin(stream)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("names a bookmark"));
    check(&img);

    // A bookmark of a later snapshot, or of a tree the clone does not come from.
    put(&img, "f", b"three");
    run(&img, &["snapshot", "@c"]);
    run(&img, &["bookmark", "@c", "#c"]);
    snapsend()
        .args(["-i", "#c", "@a"])
        .arg(&img)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not an earlier state of @a"));
    run(&img, &["clone", "@a", "dev"]);
    snapctl().args(["put", "-", "dev:g"]).arg(&img).write_stdin("clone").assert().success();
    run(&img, &["snapshot", "dev@x"]);
    snapsend()
        .args(["-i", "#c", "dev@x"])
        .arg(&img)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not an earlier state of @x"));
    check(&img);
}

#[test]
fn a_clone_replicates_from_a_bookmark_of_its_origin_and_a_wrong_base_is_refused() {
    // Goal: a clone made from a snapshot at or after a bookmark of its origin's tree sends
    // from that bookmark to a replica of the origin (made a clone there, as from the
    // snapshot); a replica whose newest snapshot is not the bookmarked one refuses the
    // part and keeps what it had.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    put(&img, "f", &noise(200_000, 3));
    run(&img, &["snapshot", "@a"]);
    let replica = fresh_pool(dir.path(), "replica.img", 64 * MIB);
    receive(&replica, &send(&["@a"], &img));
    run(&img, &["bookmark", "@a", "#a"]);
    run(&img, &["clone", "@a", "dev"]);
    snapctl().args(["put", "-", "dev:g"]).arg(&img).write_stdin(noise(50_000, 4)).assert().success();
    run(&img, &["snapshot", "dev@x"]);
    run(&img, &["destroy", "dev@x"]);
    run(&img, &["snapshot", "dev@y"]);
    let stream = send(&["-i", "#a", "dev@y"], &img);
    snaprecv().args(["--tree", "dev"]).arg(&replica).write_stdin(stream.clone()).assert().success();
    check(&replica);
    let cat = |path: &str| snapctl().args(["cat", path]).arg(&replica).output().unwrap().stdout;
    assert_eq!(cat("dev:g"), noise(50_000, 4));
    assert_eq!(cat("dev:f"), noise(200_000, 3));

    // Another pool whose newest snapshot is not @a: refused, naming the base.
    let other = fresh_pool(dir.path(), "other.img", 64 * MIB);
    put(&other, "h", b"else");
    run(&other, &["snapshot", "@z"]);
    let before = run(&other, &["list"]);
    snaprecv().arg(&other).write_stdin(stream).assert().failure().stderr(predicate::str::contains("@a"));
    assert_eq!(run(&other, &["list"]), before);
    check(&other);
}

#[test]
fn a_broken_part_from_a_bookmark_resumes_from_its_token() {
    // Goal: `snaprecv -s` keeps what a broken part from a bookmark applied; its token
    // (2-...) makes `snapsend -t` send the rest from the same bookmark, whose -n -P size
    // is exact; broken twice and resumed, the replica ends as an unbroken receive leaves
    // it (every file, check clean). Method: 40 files in 4 directories, a tenth changed,
    // one directory emptied, new files; streams cut at a third, then inside the rest.
    let dir = TempDir::new().unwrap();
    let src = pool(dir.path(), 128 * MIB, &[]);
    for d in 0..4 {
        snapctl().args(["mkdir", &format!("d{d}")]).arg(&src).assert().success();
    }
    for i in 0..40u64 {
        put(&src, &format!("d{}/f{i:02}", i % 4), &noise(64 * 1024 + (i as usize * 37 * 1024) % (336 * 1024), i + 1));
    }
    run(&src, &["snapshot", "@a"]);
    let full = send(&["@a"], &src);
    run(&src, &["bookmark", "@a", "#a"]);
    for i in (0..40u64).step_by(7) {
        put(&src, &format!("d{}/f{i:02}", i % 4), &noise(200 * 1024, i + 100));
    }
    snapctl().args(["rm", "-r", "d1"]).arg(&src).assert().success();
    put(&src, "d0/new", &noise(300 * 1024, 7));
    run(&src, &["snapshot", "@b"]);
    run(&src, &["destroy", "@a"]);
    let whole = send(&["-i", "#a", "@b"], &src);

    let reference = fresh_pool(dir.path(), "reference.img", 128 * MIB);
    receive(&reference, &full);
    receive(&reference, &whole);
    let replica = fresh_pool(dir.path(), "replica.img", 128 * MIB);
    receive(&replica, &full);
    let token_of = |img: &Path| -> String {
        let status: serde_json::Value = serde_json::from_str(&run(img, &["status", "--json"])).unwrap();
        status["receive_resume_token"].as_str().expect("a saved partial receive").to_string()
    };
    let mut stream = whole.clone();
    for cut in 0..2 {
        snaprecv().arg("-s").arg(&replica).write_stdin(stream[..stream.len() / 3].to_vec()).assert().failure();
        check(&replica);
        let token = token_of(&replica);
        assert!(token.starts_with("2-"), "cut {cut}: {token}");
        stream = send(&["-t", &token], &src);
        let sizes = stdout(snapsend().args(["-n", "-P", "-t", &token]).arg(&src));
        assert!(sizes.contains(&format!("size\t{}\n", stream.len())), "{sizes} vs {} bytes", stream.len());
        assert!(stream.len() < whole.len(), "cut {cut}: the rest is smaller than the whole part");
    }
    snaprecv().arg("-s").arg(&replica).write_stdin(stream).assert().success();
    check(&replica);
    let files = |img: &Path| {
        let mut all = Vec::new();
        for d in ["d0", "d2", "d3"] {
            let listed = run(img, &["ls", &format!("@b:{d}")]);
            for name in listed.split_whitespace() {
                let path = format!("@b:{d}/{name}");
                all.push((path.clone(), snapctl().args(["cat", &path]).arg(img).output().unwrap().stdout));
            }
        }
        all
    };
    assert_eq!(files(&replica), files(&reference));
    assert!(run(&replica, &["ls", "@b:"]).split_whitespace().all(|n| n != "d1"));
}
