//! Clones (issue 15 part 3): writable trees made from snapshots, addressed NAME:PATH and
//! NAME@SNAP by every command, through the binaries on image files. `check` proves the
//! pool exact after each step.

mod common;
use common::*;
use predicates::prelude::*;
use snapfs::cli::exit_code;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// A pool whose live tree holds /data/a and /data/b, snapshotted as @base.
fn pool_with_base(dir: &Path) -> std::path::PathBuf {
    let img = pool(dir, 64 * MIB, &[]);
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::write(src.join("data/a"), noise(300_000, 1)).unwrap();
    std::fs::write(src.join("data/b"), b"bee\n").unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    run(&img, &["snapshot", "@base"]);
    img
}

#[test]
fn a_clone_is_a_tree_of_its_own_that_shares_its_origin_until_it_changes() {
    // Goal: a clone starts as its snapshot, costs no data, takes writes that the live
    // tree never sees, has snapshots, diffs and rollbacks of its own, and every command
    // names it NAME:PATH or NAME@SNAP.
    let dir = TempDir::new().unwrap();
    let img = pool_with_base(dir.path());
    let used_before: serde_json::Value = serde_json::from_str(&run(&img, &["status", "--json"])).unwrap();
    assert!(run(&img, &["clone", "@base", "dev"]).contains("cloned @base as dev"));
    let used_after: serde_json::Value = serde_json::from_str(&run(&img, &["status", "--json"])).unwrap();
    let grew = used_after["used_bytes"].as_u64().unwrap() - used_before["used_bytes"].as_u64().unwrap();
    assert!(grew < 64 * 1024, "a clone copies no data: used grew by {grew}");
    check(&img);

    assert_eq!(run(&img, &["cat", "dev:data/b"]), "bee\n");
    // Retention from cron works on a clone as on the live tree.
    run(&img, &["snapshot", "--auto", "dev:"]);
    let pruned: serde_json::Value =
        serde_json::from_str(&run(&img, &["prune", "--keep", "hourly=0", "--json", "dev:"])).unwrap();
    assert_eq!(pruned["kept"], 1, "the newest automatic snapshot stays: {pruned}");
    let listed: serde_json::Value = serde_json::from_str(&run(&img, &["list", "--json"])).unwrap();
    for auto in listed.as_array().unwrap().iter().filter(|s| s["tree"] == "dev") {
        run(&img, &["destroy", &format!("dev@{}", auto["name"].as_str().unwrap())]);
    }
    let clones = &used_after["clones"];
    assert_eq!(clones[0]["name"], "dev", "{used_after}");
    assert_eq!(clones[0]["origin"], "@base");
    let status = run(&img, &["status"]);
    assert!(status.contains("clone:       dev (from @base)"), "{status}");
    snapctl().args(["put", "-", "dev:data/b"]).arg(&img).write_stdin("clone's own\n").assert().success();
    run(&img, &["mkdir", "dev:new"]);
    run(&img, &["mv", "dev:data/a", "dev:new/a"]);
    assert_eq!(run(&img, &["cat", "dev:data/b"]), "clone's own\n");
    assert_eq!(run(&img, &["cat", "data/b"]), "bee\n", "the live tree is untouched");
    assert_eq!(run(&img, &["cat", "@base:data/b"]), "bee\n");
    assert_eq!(run(&img, &["ls", "dev:"]), "data\nnew\n");
    run(&img, &["snapshot", "dev@one"]);
    run(&img, &["rm", "dev:new/a"]);
    let listed = run(&img, &["list"]);
    assert!(listed.contains("@base") && listed.contains("dev@one"), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&run(&img, &["list", "--json"])).unwrap();
    let trees: Vec<(&str, &str)> =
        json.as_array().unwrap().iter().map(|s| (s["tree"].as_str().unwrap(), s["name"].as_str().unwrap())).collect();
    assert_eq!(trees, [("live", "base"), ("dev", "one")]);
    assert!(run(&img, &["diff", "dev@one"]).contains("-\t/new/a"), "{}", run(&img, &["diff", "dev@one"]));
    run(&img, &["rollback", "dev@one"]);
    let restored = snapctl().args(["cat", "dev:new/a"]).arg(&img).output().unwrap();
    assert_eq!(restored.stdout, noise(300_000, 1), "rolled back");
    run(&img, &["hold", "keep", "dev@one"]);
    assert!(run(&img, &["holds", "dev@one"]).contains("keep"));
    run(&img, &["release", "keep", "dev@one"]);
    run(&img, &["rename", "dev@one", "@first"]);
    let out = dir.path().join("out");
    run(&img, &["export", "dev@first:new", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("a")).unwrap(), noise(300_000, 1));
    check(&img);

    // Nothing of the clone's own outlives it.
    assert!(run(&img, &["destroy", "-v", "dev@first"]).contains("destroyed dev@first, freed"));
    run(&img, &["history", "--prune"]);
    run(&img, &["destroy", "dev"]);
    run(&img, &["destroy", "@base"]);
    run(&img, &["rm", "-r", "data"]);
    run(&img, &["history", "--prune"]);
    check(&img);
    let status: serde_json::Value = serde_json::from_str(&run(&img, &["status", "--json"])).unwrap();
    assert_eq!(status["held_by_snapshots_and_history_bytes"], 0, "{status}");
    assert!(status["used_bytes"].as_u64().unwrap() < 128 * 1024, "{status}");
}

#[test]
fn what_a_clone_depends_on_is_refused_with_the_clone_named() {
    // Goal: the origin cannot go while a clone needs it (destroy, rollback -r past it,
    // prune), a clone with snapshots is not destroyed, and bad names are refused; each
    // refusal changes nothing.
    let dir = TempDir::new().unwrap();
    let img = pool_with_base(dir.path());
    run(&img, &["snapshot", "@later"]);
    run(&img, &["clone", "@later", "dev"]);
    run(&img, &["snapshot", "dev@s"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["destroy", "@later"], exit_code::REFUSED, "@later is the origin of the clone dev"),
        (&["destroy", "@base%@later"], exit_code::REFUSED, "@later is the origin of the clone dev"),
        (&["rollback", "-r", "@base"], exit_code::REFUSED, "@later is the origin of the clone dev"),
        (&["destroy", "dev"], exit_code::REFUSED, "clone dev has snapshots: dev@s"),
        (&["clone", "@base", "dev"], exit_code::NOT_FOUND_OR_EXISTS, "clone dev already exists"),
        (&["clone", "@base", "live"], exit_code::INVALID, "is the live tree's name"),
        (&["clone", "@base", "bad name"], exit_code::INVALID, "clone name \"bad name\" is not allowed"),
        (&["clone", "@missing", "x"], exit_code::NOT_FOUND_OR_EXISTS, "@missing"),
        (&["cat", "nope:data/b"], exit_code::NOT_FOUND_OR_EXISTS, "clone nope not found"),
        (&["rollback", "dev@base"], exit_code::NOT_FOUND_OR_EXISTS, "@base"),
        (&["destroy", "live"], exit_code::INVALID, "the live tree cannot be destroyed"),
        (&["destroy", "@base", "dev@s"], exit_code::INVALID, "one tree at a time"),
        (&["mv", "dev:data/b", "data/c"], exit_code::INVALID, "within one tree"),
        (&["diff", "@base", "dev@s"], exit_code::INVALID, "diff compares two snapshots of one tree"),
        (&["promote", "nope"], exit_code::NOT_FOUND_OR_EXISTS, "clone nope not found"),
    ];
    for (args, code, message) in cases {
        refused(&img, args, *code, message);
    }
    assert_eq!(run(&img, &["cat", "dev:data/b"]), "bee\n");
    assert_eq!(run(&img, &["list"]).lines().count(), 4, "nothing was destroyed");
    run(&img, &["destroy", "dev@s"]);
    run(&img, &["destroy", "dev"]);
    run(&img, &["rollback", "-r", "@base"]);
    check(&img);
}

#[test]
fn a_thousand_clones_live_side_by_side() {
    // Goal: the foundation's limit of trees per pool is gone (a history entry held every
    // tree's root, 59 at most): 1000 clones, each written, stay exact.
    let dir = TempDir::new().unwrap();
    let img = pool_with_base(dir.path());
    for i in 0..1000 {
        run(&img, &["clone", "@base", &format!("c{i}")]);
        if i % 100 == 0 {
            snapctl()
                .args(["put", "-", &format!("c{i}:data/b")])
                .arg(&img)
                .write_stdin(format!("{i}\n"))
                .assert()
                .success();
        }
    }
    for i in (0..1000).step_by(100) {
        assert_eq!(run(&img, &["cat", &format!("c{i}:data/b")]), format!("{i}\n"));
    }
    assert_eq!(run(&img, &["cat", "c999:data/b"]), "bee\n");
    refused(&img, &["destroy", "@base"], exit_code::REFUSED, "origin of the clones c0, c1");
    for i in 0..1000 {
        run(&img, &["destroy", &format!("c{i}")]);
    }
    run(&img, &["destroy", "@base"]);
    check(&img);
}

#[test]
fn a_clone_is_sent_and_received_as_a_tree_of_its_own() {
    // Goal: snapshots of a clone go out full and incremental (NAME@SNAP, the base in the
    // same clone), and snaprecv --tree receives them into a new tree, then into it
    // again; a resumed receive finds the clone's snapshot by its guid.
    let dir = TempDir::new().unwrap();
    let img = pool_with_base(dir.path());
    run(&img, &["clone", "@base", "dev"]);
    snapctl().args(["put", "-", "dev:data/b"]).arg(&img).write_stdin("first\n").assert().success();
    run(&img, &["snapshot", "dev@one"]);
    snapctl().args(["put", "-", "dev:data/c"]).arg(&img).write_stdin("second\n").assert().success();
    run(&img, &["snapshot", "dev@two"]);

    let replica = fresh_pool(dir.path(), "replica.img", 64 * MIB);
    let receive_into = |tree: &str, stream: Vec<u8>| {
        snaprecv().args(["--tree", tree]).arg(&replica).write_stdin(stream).assert().success();
    };
    receive_into("copy", send(&["dev@one"], &img));
    receive_into("copy", send(&["-i", "@one", "dev@two"], &img));
    assert_eq!(run(&replica, &["cat", "copy:data/b"]), "first\n");
    assert_eq!(run(&replica, &["cat", "copy:data/c"]), "second\n");
    assert_eq!(run(&replica, &["cat", "copy@one:data/b"]), "first\n");
    let listed = run(&replica, &["list"]);
    assert!(listed.contains("copy@one") && listed.contains("copy@two"), "{listed}");
    check(&replica);
    // The same stream again: the snapshot is there already.
    snaprecv()
        .args(["--tree", "copy"])
        .arg(&replica)
        .write_stdin(send(&["-i", "dev@one", "dev@two"], &img))
        .assert()
        .failure();
    snapsend()
        .args(["-i", "@nowhere", "dev@two"])
        .arg(&img)
        .assert()
        .code(exit_code::NOT_FOUND_OR_EXISTS)
        .stderr(predicate::str::contains("base snapshot @nowhere not found"));
    check(&replica);

    // Cut short and saved, the full stream of dev@two resumes from its token.
    let full = send(&["dev@two"], &img);
    snaprecv()
        .args(["-s", "--tree", "again"])
        .arg(&replica)
        .write_stdin(full[..full.len() / 2].to_vec())
        .assert()
        .failure();
    check(&replica);
    let status: serde_json::Value = serde_json::from_str(&run(&replica, &["status", "--json"])).unwrap();
    let token = status["receive_resume_token"].as_str().expect("a saved partial receive").to_string();
    receive_into("again", send(&["-t", &token], &img));
    assert_eq!(run(&replica, &["cat", "again:data/c"]), "second\n");
    check(&replica);
    // Discarded, a partial receive takes the empty tree it was filling with it.
    snaprecv()
        .args(["-s", "--tree", "gone"])
        .arg(&replica)
        .write_stdin(full[..full.len() / 2].to_vec())
        .assert()
        .failure();
    snaprecv().arg("-A").arg(&replica).assert().success();
    snapctl().args(["ls", "gone:"]).arg(&replica).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    check(&replica);
}

#[test]
fn a_clone_replicates_as_a_clone_of_the_replicas_own_origin() {
    // Goal: `snapsend -i @origin clone@snap` sends only what the clone changed, and
    // `snaprecv --tree NAME` makes NAME a clone of the replica's copy of @origin (found
    // by guid), sharing its blocks; later incrementals go into it as into any tree.
    let dir = TempDir::new().unwrap();
    let img = pool_with_base(dir.path());
    run(&img, &["clone", "@base", "dev"]);
    snapctl().args(["put", "-", "dev:data/b"]).arg(&img).write_stdin("dev 1\n").assert().success();
    run(&img, &["snapshot", "dev@one"]);
    snapctl().args(["put", "-", "dev:data/c"]).arg(&img).write_stdin("dev 2\n").assert().success();
    run(&img, &["snapshot", "dev@two"]);

    let replica = fresh_pool(dir.path(), "replica.img", 64 * MIB);
    receive(&replica, &send(&["@base"], &img));
    let used = |img: &Path| -> u64 {
        let s: serde_json::Value = serde_json::from_str(&run(img, &["status", "--json"])).unwrap();
        s["used_bytes"].as_u64().unwrap()
    };
    let before = used(&replica);
    let stream = send(&["-i", "@base", "dev@one"], &img);
    assert!(stream.len() < 100_000, "only the change travels: {} bytes", stream.len());
    snaprecv().args(["--tree", "dev"]).arg(&replica).write_stdin(stream).assert().success();
    assert!(used(&replica) - before < 128 * 1024, "the clone shares its origin's blocks");
    snaprecv()
        .args(["--tree", "dev"])
        .arg(&replica)
        .write_stdin(send(&["-i", "dev@one", "dev@two"], &img))
        .assert()
        .success();
    assert_eq!(run(&replica, &["cat", "dev:data/b"]), "dev 1\n");
    assert_eq!(run(&replica, &["cat", "dev:data/c"]), "dev 2\n");
    let status: serde_json::Value = serde_json::from_str(&run(&replica, &["status", "--json"])).unwrap();
    assert_eq!(status["clones"][0]["origin"], "@base", "{status}");
    refused(&replica, &["destroy", "@base"], exit_code::REFUSED, "origin of the clone dev");
    // A base the replica lacks: refused, and no tree is left behind.
    let other = fresh_pool(dir.path(), "other.img", 64 * MIB);
    snaprecv()
        .args(["--tree", "dev"])
        .arg(&other)
        .write_stdin(send(&["-i", "@base", "dev@one"], &img))
        .assert()
        .failure();
    snapctl().args(["ls", "dev:"]).arg(&other).assert().code(exit_code::NOT_FOUND_OR_EXISTS);
    check(&replica);
    check(&other);
}

#[test]
fn promote_swaps_a_clone_with_the_tree_it_came_from() {
    // Goal: `promote dev` moves the live tree's snapshots up to dev's origin to dev, makes
    // the live tree a clone of dev@base, and keeps every file where it was; the origin
    // can then no longer be destroyed from under the live tree, but the old live tree's
    // later snapshot can; promoting the live tree back restores the roles; a name that
    // would collide refuses the promote and changes nothing. `check` after each step.
    let dir = TempDir::new().unwrap();
    let img = pool_with_base(dir.path());
    put(&img, "data/b", b"live after base\n");
    run(&img, &["snapshot", "@after"]);
    run(&img, &["clone", "@base", "dev"]);
    snapctl().args(["put", "-", "dev:data/c"]).arg(&img).write_stdin("dev's own\n").assert().success();
    snapctl().args(["rm", "dev:data/a"]).arg(&img).assert().success();
    run(&img, &["snapshot", "dev@d1"]);
    refused(&img, &["promote", "live"], 2, "not a clone");

    let out = run(&img, &["promote", "dev"]);
    assert!(out.contains("promoted dev: @base moved from live"), "{out}");
    check(&img);
    let listed: serde_json::Value = serde_json::from_str(&run(&img, &["list", "--json"])).unwrap();
    let of = |name: &str| listed.as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["tree"].clone();
    assert_eq!((of("base"), of("after"), of("d1")), ("dev".into(), "live".into(), "dev".into()));
    assert_eq!(run(&img, &["cat", "data/b"]), "live after base\n");
    assert_eq!(run(&img, &["cat", "dev:data/c"]), "dev's own\n");
    assert_eq!(run(&img, &["cat", "dev@base:data/b"]), "bee\n");
    let status: serde_json::Value = serde_json::from_str(&run(&img, &["status", "--json"])).unwrap();
    let clones = status["clones"].as_array().unwrap();
    assert!(clones.iter().any(|c| c["name"] == "live"), "the live tree is the clone now: {status}");
    refused(&img, &["destroy", "dev@base"], 7, "live");
    run(&img, &["destroy", "@after"]);
    check(&img);

    // Back again: the live tree takes @base back. A snapshot of the live tree named as
    // one that would move refuses it, with nothing changed.
    run(&img, &["snapshot", "@base"]);
    refused(&img, &["promote", "live"], 3, "base");
    run(&img, &["destroy", "@base"]);
    assert!(run(&img, &["promote", "live"]).contains("@base moved from dev"));
    check(&img);
    assert_eq!(run(&img, &["cat", "@base:data/b"]), "bee\n");
    run(&img, &["destroy", "dev@d1"]);
    run(&img, &["destroy", "dev"]);
    run(&img, &["destroy", "@base"]);
    check(&img);
}

#[test]
fn a_clone_is_renamed_and_keeps_its_files_snapshots_and_origin() {
    let dir = TempDir::new().unwrap();
    let img = pool_with_base(dir.path());
    run(&img, &["clone", "@base", "work"]);
    snapctl().args(["put", "-", "work:data/b"]).arg(&img).write_stdin("mine\n").assert().success();
    run(&img, &["snapshot", "work@s1"]);
    run(&img, &["bookmark", "work@s1", "work#m1"]);
    run(&img, &["clone", "@base", "other"]);
    assert!(run(&img, &["rename", "work", "project"]).contains("renamed clone work to project"));
    assert_eq!(run(&img, &["cat", "project:data/b"]), "mine\n");
    assert_eq!(run(&img, &["cat", "project@s1:data/b"]), "mine\n");
    assert!(run(&img, &["list", "--bookmarks"]).contains("project#m1"));
    refused(&img, &["cat", "work:data/b"], exit_code::NOT_FOUND_OR_EXISTS, "clone work not found");
    // Its origin still names it, and the name is free again for a new clone.
    refused(&img, &["destroy", "@base"], exit_code::REFUSED, "project");
    run(&img, &["clone", "@base", "work"]);
    refused(&img, &["rename", "project", "other"], exit_code::NOT_FOUND_OR_EXISTS, "clone other already exists");
    refused(&img, &["rename", "nobody", "x"], exit_code::NOT_FOUND_OR_EXISTS, "clone nobody not found");
    refused(&img, &["rename", "live", "x"], exit_code::INVALID, "the live tree keeps its name");
    refused(&img, &["rename", "project", "a/b"], exit_code::INVALID, "not allowed");
    refused(&img, &["rename", "project", "x@y"], exit_code::INVALID, "bare name");
    // A replica goes on from the renamed clone's snapshot (streams name it by guid).
    run(&img, &["snapshot", "project@s2"]);
    let full = send(&["project@s1"], &img);
    let replica = fresh_pool(dir.path(), "replica", 64 * MIB);
    snaprecv().args(["--tree", "copy"]).arg(&replica).write_stdin(full).assert().success();
    let incremental = send(&["-i", "@s1", "project@s2"], &img);
    snaprecv().args(["--tree", "copy"]).arg(&replica).write_stdin(incremental).assert().success();
    assert_eq!(run(&replica, &["cat", "copy@s2:data/b"]), "mine\n");
    check(&img);
    check(&replica);
}
