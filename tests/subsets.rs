//! Subset snapshots (issue 16, parts 3-5): a snapshot of the files a rule selects, that
//! shares every data block with its tree, refined with --from, taken again with --like,
//! and listed, shown, sent, received, cloned and destroyed like any other.

mod common;
use common::*;
use snapfs::cli::exit_code;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// A host tree of images for training and testing, and other files:
/// data/train/{0..7}.jpg (8-24 KiB), data/test/{0..3}.jpg, data/notes.txt, other/big.bin
/// (1 MiB), other/link.jpg -> a hard link to data/train/0.jpg.
fn dataset(dir: &Path) -> PathBuf {
    let root = dir.join("src");
    for sub in ["data/train", "data/test", "other"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    for i in 0..8u64 {
        std::fs::write(root.join(format!("data/train/{i}.jpg")), noise(8192 + 2048 * i as usize, i)).unwrap();
    }
    for i in 0..4u64 {
        std::fs::write(root.join(format!("data/test/{i}.jpg")), noise(4096, 100 + i)).unwrap();
    }
    std::fs::write(root.join("data/notes.txt"), b"notes\n").unwrap();
    std::fs::write(root.join("other/big.bin"), noise(MIB as usize, 7)).unwrap();
    std::fs::hard_link(root.join("data/train/0.jpg"), root.join("other/link.jpg")).unwrap();
    root
}

fn synced(dir: &Path) -> (PathBuf, PathBuf) {
    let img = pool(dir, 64 * MIB, &[]);
    let src = dataset(dir);
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    (img, src)
}

/// `ls -R` of a snapshot, one path a line, sorted.
fn tree_of(img: &Path, snapshot: &str) -> Vec<String> {
    let mut paths: Vec<String> = run(img, &["ls", "-R", &format!("@{snapshot}:")]).lines().map(String::from).collect();
    paths.sort();
    paths
}

fn cat(img: &Path, path: &str) -> Vec<u8> {
    let out = snapctl().arg("cat").arg(path).arg(img).output().unwrap();
    assert!(out.status.success(), "cat {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn used_bytes(img: &Path) -> u64 {
    let json: serde_json::Value = serde_json::from_str(&run(img, &["status", "--json"])).unwrap();
    json["used_bytes"].as_u64().unwrap()
}

fn shown(img: &Path, snapshot: &str) -> serde_json::Value {
    serde_json::from_str(&run(img, &["show", "--json", &format!("@{snapshot}")])).unwrap()
}

const TRAIN: [&str; 4] = ["--match", "data/**/*.jpg", "--exclude", "data/test/**"];

#[test]
fn a_subset_holds_the_selected_files_and_the_way_to_them_and_copies_no_data() {
    // Goal: the subset holds exactly what `ls --match` previews, with the directories
    // above, each file's bytes, a hard link only by its selected name; taking it writes
    // only its own nodes (what destroying it frees), never a data block; check is clean.
    let dir = TempDir::new().unwrap();
    let (img, _) = synced(dir.path());
    let preview = run(&img, &["ls", "--match", "data/**/*.jpg", "--exclude", "data/test/**"]);
    let before = used_bytes(&img);
    let out = run(&img, &[&["snapshot", "@train"][..], &TRAIN].concat());
    assert!(out.contains("8 files, 3 directories"), "{out}");
    let grown = used_bytes(&img) - before;
    let mut expected: Vec<String> = vec!["data".into(), "data/train".into()];
    expected.extend(preview.lines().map(String::from));
    expected.sort();
    assert_eq!(tree_of(&img, "train"), expected);
    for i in 0..8 {
        let path = format!("data/train/{i}.jpg");
        assert_eq!(cat(&img, &format!("@train:{path}")), cat(&img, &format!("/{path}")), "{path}");
    }
    // 8 files of 8-22 KiB (120 KiB) and the 1 MiB file outside: what the snapshot wrote
    // is its nodes, each with its copy, and destroying it frees exactly that.
    let show = shown(&img, "train");
    assert_eq!((show["files"].as_u64(), show["directories"].as_u64()), (Some(8), Some(3)));
    assert_eq!(show["file_bytes"].as_u64(), Some((0..8).map(|i| 8192 + 2048 * i).sum()));
    assert_eq!(show["rule"]["matches"][0], "data/**/*.jpg");
    let own = show["unique_bytes"].as_u64().unwrap();
    assert!(grown <= own + 64 * 1024 && own <= 32 * 1024, "grew {grown}, its own nodes {own}");
    let link = run(&img, &["ls", "-l", "@train:data/train/0.jpg"]);
    assert!(link.split_whitespace().nth(1) == Some("1"), "the hard link outside is not counted: {link}");
    check(&img);
    let dry = run(&img, &["destroy", "-n", "@train"]);
    assert!(dry.contains(&format!("({own} bytes)")), "{dry}");
    let used = used_bytes(&img);
    run(&img, &["destroy", "@train"]);
    assert!(used - used_bytes(&img) >= own, "destroying it freed less than its own nodes");
    check(&img);
}

/// RFC 3339, UTC, to the nanosecond.
fn rfc3339(ns: u64) -> String {
    let seconds = snapfs::utc::format_time((ns / 1_000_000_000) as i64);
    format!("{}.{:09}Z", seconds.trim_end_matches('Z'), ns % 1_000_000_000)
}

#[test]
fn conditions_select_by_metadata_and_refinements_outlive_what_they_refine() {
    // Goal: --where reads size and extended attributes; --from applies a rule to another
    // snapshot at its moment; the refined one keeps its files after the tree and the
    // snapshot it came from change or go; --like takes a rule again, later.
    let dir = TempDir::new().unwrap();
    let (img, _) = synced(dir.path());
    let text = "setxattr /data/train/1.jpg user.label cat\nsetxattr /data/test/2.jpg user.label cat\n\
                setxattr /data/train/2.jpg user.label dog\n";
    snapctl().arg("batch").arg(&img).write_stdin(text).assert().success();
    run(&img, &["snapshot", "@cats", "--where", "xattr.user.label=cat"]);
    assert_eq!(tree_of(&img, "cats"), ["data", "data/test", "data/test/2.jpg", "data/train", "data/train/1.jpg"]);
    run(&img, &[&["snapshot", "@train"][..], &TRAIN].concat());
    run(&img, &["snapshot", "@small", "--from", "@train", "--where", "size<14K"]);
    assert_eq!(
        tree_of(&img, "small"),
        ["data", "data/train", "data/train/0.jpg", "data/train/1.jpg", "data/train/2.jpg"]
    );
    let small = shown(&img, "small");
    assert_eq!(small["rule"]["from"], "train");
    assert_eq!(small["txg"], shown(&img, "train")["txg"], "a refinement holds the moment it refines");
    let before = cat(&img, "@small:data/train/1.jpg");
    run(&img, &["rm", "-r", "/data"]);
    run(&img, &["history", "--prune"]);
    run(&img, &["destroy", "@train"]);
    check(&img);
    assert_eq!(cat(&img, "@small:data/train/1.jpg"), before);
    // --like: the same rule, of the tree as it is now (the images are gone: nothing).
    let out = run(&img, &["snapshot", "@cats2", "--like", "@cats"]);
    assert!(out.contains("0 files") && out.contains("the rule selects no file"), "{out}");
    assert_eq!(shown(&img, "cats2")["rule"], shown(&img, "cats")["rule"]);
    refused(&img, &["snapshot", "@x", "--like", "@small"], exit_code::INVALID, "give that one with --from");
    check(&img);
}

#[test]
fn streams_between_subsets_of_one_rule_carry_only_what_changed_inside() {
    // Goal: a full stream of a subset carries its files only; after changes inside and
    // (far larger) outside the subset, an incremental between two subsets of the rule
    // carries about the inside change; the replica holds what the sender's subset holds
    // and checks clean; -I sends the subsets of that rule between, not whole snapshots.
    let dir = TempDir::new().unwrap();
    let (img, src) = synced(dir.path());
    let replica = fresh_pool(dir.path(), "replica.img", 64 * MIB);
    run(&img, &[&["snapshot", "@t1"][..], &TRAIN].concat());
    let full = send(&["@t1"], &img);
    assert!(full.len() < 256 * 1024, "a full stream of 120 KiB of images is {} bytes", full.len());
    receive(&replica, &full);
    std::fs::write(src.join("data/train/3.jpg"), noise(14336, 333)).unwrap();
    std::fs::write(src.join("other/big.bin"), noise(MIB as usize, 77)).unwrap();
    std::fs::write(src.join("data/test/0.jpg"), noise(300_000, 78)).unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    run(&img, &["snapshot", "@whole"]);
    run(&img, &[&["snapshot", "@t2"][..], &TRAIN].concat());
    let inc = send(&["-i", "@t1", "@t2"], &img);
    assert!(inc.len() < 14336 + 16 * 1024, "the incremental is {} bytes for a 14 KiB change inside", inc.len());
    receive(&replica, &inc);
    assert_eq!(tree_of(&replica, "t2"), tree_of(&img, "t2"));
    assert_eq!(cat(&replica, "@t2:data/train/3.jpg"), cat(&img, "@t2:data/train/3.jpg"));
    check(&replica);
    // -I between the rule's subsets skips @whole, taken between them.
    std::fs::write(src.join("data/train/4.jpg"), noise(9000, 444)).unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    run(&img, &[&["snapshot", "@t3"][..], &TRAIN].concat());
    let again = fresh_pool(dir.path(), "again.img", 64 * MIB);
    receive(&again, &full);
    receive(&again, &send(&["-I", "@t1", "@t3"], &img));
    let names: Vec<String> =
        run(&again, &["list"]).lines().skip(1).map(|l| l.split(' ').next().unwrap().into()).collect();
    assert_eq!(names, ["@t1", "@t2", "@t3"]);
    check(&again);
    // Rules that differ: the stream carries what differs (here the test images come in).
    let all = fresh_pool(dir.path(), "all.img", 64 * MIB);
    run(&img, &["snapshot", "@images", "--match", "data/**/*.jpg"]);
    receive(&all, &full);
    receive(&all, &send(&["-i", "@t1", "@images"], &img));
    assert_eq!(tree_of(&all, "images"), tree_of(&img, "images"));
    check(&all);
}

#[test]
fn a_subset_is_a_snapshot_like_any_other_except_where_the_whole_tree_is_needed() {
    // Goal: hold, rename, clone (a tree of its own, writable) and destroy work; its
    // clone keeps it from being destroyed; rollback and bookmarks, which need the whole
    // tree of its moment, are refused with a clear message; bad rules exit 2 naming the
    // bad part; --at and a subset together take the past moment's files.
    let dir = TempDir::new().unwrap();
    let (img, _) = synced(dir.path());
    let moment = serde_json::from_str::<serde_json::Value>(&run(&img, &["history", "--json"])).unwrap()["commits"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["time_unix_ns"]
        .as_u64()
        .unwrap();
    run(&img, &["rm", "/data/train/5.jpg"]);
    let at = rfc3339(moment);
    run(&img, &[&["snapshot", "@then", "--at", &at][..], &TRAIN].concat());
    assert!(tree_of(&img, "then").contains(&"data/train/5.jpg".to_string()));
    run(&img, &["hold", "keep", "@then"]);
    refused(&img, &["destroy", "@then"], exit_code::REFUSED, "hold");
    run(&img, &["release", "keep", "@then"]);
    run(&img, &["rename", "@then", "@before"]);
    run(&img, &["clone", "@before", "work"]);
    put(&img, "work:/data/train/new.jpg", &noise(5000, 5));
    assert!(tree_of(&img, "before").iter().all(|p| !p.ends_with("new.jpg")));
    refused(&img, &["destroy", "@before"], exit_code::REFUSED, "work");
    check(&img);
    refused(&img, &["rollback", "@before"], exit_code::INVALID, "subset snapshot");
    refused(&img, &["bookmark", "@before", "#b"], exit_code::INVALID, "subset snapshot");
    refused(&img, &["snapshot", "@bad", "--match", "data/[x"], exit_code::INVALID, "--match");
    refused(&img, &["snapshot", "@bad", "--where", "size<lots"], exit_code::INVALID, "size");
    refused(
        &img,
        &["snapshot", "@bad", "--from", "@before", "--at", "-1m", "--match", "*"],
        exit_code::INVALID,
        "--from",
    );
    refused(&img, &["snapshot", "--auto", "--match", "*"], exit_code::INVALID, "--auto");
    run(&img, &["destroy", "work"]);
    run(&img, &["destroy", "@before"]);
    check(&img);
}

#[test]
fn a_merge_unites_snapshots_of_one_tree_the_newer_winning_and_keeps_the_older_ones() {
    // Goal: --merge holds every file of its sources, a path in several as the newest
    // holds it, and says how many it took from each; the older sources cannot be
    // destroyed while it needs them (exit 7, naming it), the newest can; it outlives the
    // history; a merge of snapshots of two trees, or of one snapshot, is refused (exit 2).
    let dir = TempDir::new().unwrap();
    let (img, src) = synced(dir.path());
    run(&img, &[&["snapshot", "@train"][..], &TRAIN].concat());
    let old_1 = cat(&img, "/data/train/1.jpg");
    std::fs::write(src.join("data/train/1.jpg"), noise(5000, 501)).unwrap();
    std::fs::remove_file(src.join("data/train/2.jpg")).unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    run(&img, &["snapshot", "@test", "--match", "data/test/**", "--match", "data/train/1.jpg"]);
    let out = run(&img, &["snapshot", "@all-sets", "--merge", "@train", "@test"]);
    assert!(out.contains("5 from @test, 7 from @train") && out.contains("1 older"), "{out}");
    let all = tree_of(&img, "all-sets");
    assert!(all.contains(&"data/train/2.jpg".to_string()) && all.contains(&"data/test/3.jpg".to_string()));
    assert_eq!(cat(&img, "@all-sets:data/train/1.jpg"), cat(&img, "/data/train/1.jpg"), "the newer version");
    assert_ne!(cat(&img, "@all-sets:data/train/1.jpg"), old_1);
    let show = shown(&img, "all-sets");
    assert_eq!(show["rule"]["merged"], serde_json::json!(["test", "train"]));
    assert_eq!(show["txg"], shown(&img, "test")["txg"], "the newest source's moment");
    refused(&img, &["destroy", "@train"], exit_code::REFUSED, "@all-sets");
    run(&img, &["destroy", "@test"]);
    run(&img, &["history", "--prune"]);
    run(&img, &["rm", "-r", "/data"]);
    assert_eq!(cat(&img, "@all-sets:data/train/2.jpg"), cat(&img, "@train:data/train/2.jpg"));
    check(&img);
    run(&img, &["destroy", "@all-sets"]);
    run(&img, &["destroy", "@train"]);
    check(&img);
    // Snapshots of two trees: unrelated; one snapshot: nothing to unite.
    run(&img, &["snapshot", "@w"]);
    run(&img, &["clone", "@w", "other"]);
    run(&img, &["snapshot", "other@o"]);
    refused(&img, &["snapshot", "@m", "--merge", "@w", "other@o"], exit_code::INVALID, "one tree");
    refused(&img, &["snapshot", "@m", "--merge", "@w", "@w"], exit_code::INVALID, "twice");
}

/// Leaves on `img` subset snapshot `name` (the files under data/) recorded with only
/// `most` of its inodes copied, as a kill or a crash during `snapshot` leaves it.
fn interrupted_subset(img: &Path, name: &str, most: usize) {
    use snapfs::device::{CrashDevice, OpenMode};
    use snapfs::format::tables::RecordedRule;
    use snapfs::pool::{LIVE_TREE_ID, Pool, SubsetSource};
    use std::sync::{Arc, Mutex};
    let bytes = Arc::new(Mutex::new(std::fs::read(img).unwrap()));
    let mut pool = Pool::open(Box::new(CrashDevice::new(bytes.clone(), None)), OpenMode::Write).unwrap();
    let rule = RecordedRule { matches: vec!["data/**".into()], ..RecordedRule::default() };
    let parsed = snapfs::fs::select::Rule::parse(&rule.matches, &[], &[], 0).unwrap();
    let source = SubsetSource::Commit(pool.commit.txg);
    let mut plan = pool.plan_subset(LIVE_TREE_ID, name, &source).unwrap();
    pool.select_subset(LIVE_TREE_ID, &mut plan, &parsed).unwrap();
    pool.create_planned_subset(LIVE_TREE_ID, name, &plan, rule, most).unwrap();
    pool.commit().unwrap();
    drop(pool);
    std::fs::write(img, &*bytes.lock().unwrap()).unwrap();
}

#[test]
fn a_large_subset_is_extracted_in_steps_and_one_interrupted_is_read_meanwhile_and_finished() {
    // Goal (part 6): a subset whose files take more than one commit is recorded at once
    // and extracted a step per commit, into the tree one commit would have made; one
    // left half-extracted (a kill, a crash) is listed and shown as such, read whole by
    // `ls` and `cat`, refused by what needs its tree on the device (exit 7, naming
    // `snapctl extract`), and `snapctl extract` finishes it; check is clean throughout.
    let dir = TempDir::new().unwrap();
    let (img, src) = synced(dir.path());
    run(&img, &["snapshot", "@once", "--match", "data/**"]);
    let out = snapctl()
        .env("SNAPFS_EXTRACT_INODES", "3")
        .args(["snapshot", "@steps", "--match", "data/**"])
        .arg(&img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("extracted, 17 inodes in 6 commits of at most 3"), "{text}");
    assert_eq!(tree_of(&img, "steps"), tree_of(&img, "once"));
    check(&img);
    // A merge too: the same tree as one commit makes.
    run(&img, &["snapshot", "@whole"]);
    run(&img, &["snapshot", "@m1", "--merge", "@steps", "@whole"]);
    let out = snapctl()
        .env("SNAPFS_EXTRACT_INODES", "2")
        .args(["snapshot", "@m2", "--merge", "@steps", "@whole"])
        .arg(&img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("@m2: its files extracted"), "{text}");
    assert_eq!(run(&img, &["diff", "@m1", "@m2"]), "");
    assert_eq!(tree_of(&img, "m2"), tree_of(&img, "m1"));
    for name in ["@m1", "@m2", "@whole"] {
        run(&img, &["destroy", name]);
    }
    check(&img);

    interrupted_subset(&img, "cut", 4);
    check(&img);
    let list = run(&img, &["list"]);
    assert!(list.contains("@cut (extracting)") && !list.contains("@steps (extracting)"), "{list}");
    let listed: serde_json::Value = serde_json::from_str(&run(&img, &["list", "--json"])).unwrap();
    let extracting: Vec<bool> = listed.as_array().unwrap().iter().map(|s| s["extracting"].as_bool().unwrap()).collect();
    assert_eq!(extracting, [false, false, true]);
    let show = shown(&img, "cut");
    assert_eq!((show["files"].as_u64(), show["directories"].as_u64()), (Some(13), Some(4)), "{show}");
    assert!(run(&img, &["show", "@cut"]).contains("snapctl extract @cut"));
    let status: serde_json::Value = serde_json::from_str(&run(&img, &["status", "--json"])).unwrap();
    assert_eq!(status["extracting"], serde_json::json!(["@cut"]));
    assert!(run(&img, &["status"]).contains("snapctl extract @cut DEVICE"));
    assert_eq!(tree_of(&img, "cut"), tree_of(&img, "once"), "readers see the whole subset meanwhile");
    assert_eq!(cat(&img, "@cut:data/test/3.jpg"), std::fs::read(src.join("data/test/3.jpg")).unwrap());
    let hint = "snapctl extract @cut";
    refused(&img, &["clone", "@cut", "work"], exit_code::REFUSED, hint);
    refused(&img, &["diff", "@once", "@cut"], exit_code::REFUSED, hint);
    refused(&img, &["snapshot", "@more", "--from", "@cut", "--match", "*"], exit_code::REFUSED, hint);
    refused(&img, &["snapshot", "@both", "--merge", "@cut", "@once"], exit_code::REFUSED, hint);
    let send = snapsend().arg("@cut").arg(&img).output().unwrap();
    let stderr = String::from_utf8_lossy(&send.stderr);
    assert_eq!(send.status.code(), Some(exit_code::REFUSED), "{stderr}");
    assert!(stderr.contains(hint) && send.stdout.is_empty(), "{stderr}");
    refused(&img, &["extract", "@once"], exit_code::INVALID, "whole");
    let refused_env = snapctl().env("SNAPFS_EXTRACT_INODES", "0").args(["extract"]).arg(&img).output().unwrap();
    assert_eq!(refused_env.status.code(), Some(exit_code::INVALID));

    let out = snapctl().env("SNAPFS_EXTRACT_INODES", "5").arg("extract").arg(&img).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("@cut: its files extracted, 17 inodes in 3 commits"), "{text}");
    assert!(!run(&img, &["list"]).contains("extracting"));
    assert!(run(&img, &["extract"]).contains("nothing to do"));
    assert!(!run(&img, &["status"]).contains("extracting"));
    check(&img);
    // The finished tree is the one a single commit makes: no difference between them,
    // and a stream of it is received whole.
    assert_eq!(run(&img, &["diff", "@once", "@cut"]), "");
    let dest = image(dir.path(), "dest.img", 64 * MIB);
    snapfmt().arg(&dest).assert().success();
    let full = snapsend().arg("@once").arg(&img).output().unwrap().stdout;
    snaprecv().arg(&dest).write_stdin(full).assert().success();
    let incremental = snapsend().args(["-i", "@once", "@cut"]).arg(&img).output().unwrap().stdout;
    snaprecv().arg(&dest).write_stdin(incremental).assert().success();
    assert_eq!(tree_of(&dest, "cut"), tree_of(&img, "once"));
    check(&dest);
}
