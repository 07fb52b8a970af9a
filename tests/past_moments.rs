//! `snapshot --at`: a snapshot of a moment in the past, taken after the fact from the
//! retained history (issue 16, part 1).

mod common;
use common::*;
use snapfs::cli::exit_code;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// The retained commits, (txg, time in ns), from `snapctl history --json`.
fn history(img: &Path) -> Vec<(u64, u64)> {
    let json: serde_json::Value = serde_json::from_str(&run(img, &["history", "--json"])).unwrap();
    json["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["txg"].as_u64().unwrap(), c["time_unix_ns"].as_u64().unwrap()))
        .collect()
}

/// RFC 3339, UTC, to the nanosecond.
fn rfc3339(ns: u64) -> String {
    let seconds = snapfs::utc::format_time((ns / 1_000_000_000) as i64);
    format!("{}.{:09}Z", seconds.trim_end_matches('Z'), ns % 1_000_000_000)
}

/// The `--json` listing's entry of snapshot `name`.
fn listed(img: &Path, name: &str) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&run(img, &["list", "--json"])).unwrap();
    json.as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone()
}

#[test]
fn a_snapshot_at_a_moment_holds_the_tree_as_the_last_commit_before_it_left_it() {
    // Goal: any moment in the history, at a commit's time or between two, gives the
    // tree as the newest commit at or before it left it, with that commit's txg and time,
    // and the snapshot keeps it after the history that held it is released.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let mut states = Vec::new();
    // One commit a round: the moments between two rounds fall between two commits.
    for round in 0..8u64 {
        match round % 3 {
            2 => {
                let host = dir.path().join(format!("round{round}"));
                std::fs::write(&host, format!("round {round}\n")).unwrap();
                let text = format!("rm /f\nput {} /f\n", host.display());
                snapctl().arg("batch").arg(&img).write_stdin(text).assert().success();
            }
            _ => put(&img, "/f", &noise(20_000 + round as usize * 7_000, round)),
        }
        let (txg, time) = *history(&img).last().unwrap();
        let bytes = snapctl().args(["cat", "/f"]).arg(&img).output().unwrap().stdout;
        states.push((txg, time, bytes));
    }
    for (i, (txg, time, bytes)) in states.iter().enumerate().rev() {
        // Exactly at the commit, then a nanosecond before the next one.
        let next = states.get(i + 1).map_or(*time + 1, |s| s.1 - 1);
        for (name, moment) in [(format!("at{i}"), *time), (format!("before{i}"), next.max(*time))] {
            let out = run(&img, &["snapshot", &format!("@{name}"), "--at", &rfc3339(moment)]);
            assert!(out.contains(&format!("taken of txg {txg}")), "{out}");
            let read = snapctl().args(["cat", &format!("@{name}:/f")]).arg(&img).output().unwrap().stdout;
            assert!(read == *bytes, "@{name} (moment {moment}) holds another state than commit {txg}");
            let entry = listed(&img, &name);
            assert_eq!((entry["txg"].as_u64(), entry["created_unix_ns"].as_u64()), (Some(*txg), Some(*time)));
        }
    }
    check(&img);
    // The history goes; the snapshots keep what they hold; overwritten, still there.
    run(&img, &["history", "--prune"]);
    put(&img, "/f", &noise(90_000, 99));
    for (i, (_, _, bytes)) in states.iter().enumerate() {
        let read = snapctl().args(["cat", &format!("@at{i}:/f")]).arg(&img).output().unwrap().stdout;
        assert!(read == *bytes, "@at{i} lost its data once the history was pruned");
    }
    check(&img);
    run(&img, &["destroy", "@at0%@before7"]);
    check(&img);
}

#[test]
fn relative_moments_and_automatic_names_follow_the_commit_they_find() {
    // Goal: "-0s" is now (the newest commit); --auto names the snapshot from the time of
    // the commit it holds, so that prune's calendar keeps it by that time.
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    put(&img, "/a", b"a\n");
    let (txg, time) = *history(&img).last().unwrap();
    let out = run(&img, &["snapshot", "--auto", "--at", "-0s"]);
    assert!(out.contains(&format!("taken of txg {txg}")), "{out}");
    let minute = snapfs::utc::format_time((time / 1_000_000_000) as i64);
    let name = format!("auto-{}Z", minute[..16].replace(':', ""));
    assert_eq!(listed(&img, &name)["txg"].as_u64(), Some(txg), "{}", run(&img, &["list"]));
    let newest = history(&img).last().unwrap().0;
    let out = run(&img, &["snapshot", "@now", "--at", "0s ago"]);
    assert!(out.contains(&format!("taken of txg {newest}")), "{out}");
    check(&img);
}

#[test]
fn moments_outside_the_history_or_not_moments_at_all_are_refused_and_change_nothing() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    put(&img, "/a", b"a\n");
    let oldest = history(&img)[0];
    let oldest_text = snapfs::utc::format_time((oldest.1 / 1_000_000_000) as i64);
    let before = run(&img, &["list"]);
    refused(&img, &["snapshot", "@x", "--at", "2020-01-01T00:00:00Z"], exit_code::NOT_FOUND_OR_EXISTS, &oldest_text);
    refused(
        &img,
        &["snapshot", "@x", "--at", "-3650d"],
        exit_code::NOT_FOUND_OR_EXISTS,
        "older than the retained history",
    );
    refused(&img, &["snapshot", "@x", "--at", "2999-01-01T00:00:00Z"], exit_code::INVALID, "in the future");
    refused(&img, &["snapshot", "@x", "--at", "6h"], exit_code::INVALID, "-6h");
    refused(&img, &["snapshot", "@x", "--at", "2026-11-25T02:00:00"], exit_code::INVALID, "offset");
    refused(&img, &["snapshot", "@x", "--at", "noon"], exit_code::INVALID, "RFC 3339");
    // A clone made after the moment did not exist then.
    run(&img, &["snapshot", "@base"]);
    let moment = rfc3339(history(&img).last().unwrap().1);
    run(&img, &["clone", "@base", "work"]);
    refused(&img, &["snapshot", "work@x", "--at", &moment], exit_code::INVALID, "did not exist");
    // History kept at 0: only the newest commit is there to take.
    run(&img, &["history", "--keep", "0"]);
    let newest = *history(&img).last().unwrap();
    refused(&img, &["snapshot", "@x", "--at", &rfc3339(newest.1 - 1)], exit_code::NOT_FOUND_OR_EXISTS, "goes back to");
    assert!(run(&img, &["list"]).contains("@base") && !run(&img, &["list"]).contains("@x"), "{before}");
}

#[test]
fn a_snapshot_of_a_past_moment_is_sent_and_received_like_any_other() {
    // Goal: a replica that has @a receives the moment taken later between @a and @b as
    // an incremental, then @b from it; the trees arrive equal and check clean.
    let dir = TempDir::new().unwrap();
    let source = fresh_pool(dir.path(), "source.img", 64 * MIB);
    let target = fresh_pool(dir.path(), "target.img", 64 * MIB);
    put(&source, "/f", &noise(100_000, 1));
    run(&source, &["snapshot", "@a"]);
    put(&source, "/g", &noise(50_000, 2));
    let middle = history(&source).last().unwrap().1;
    put(&source, "/f", &noise(100_000, 3));
    run(&source, &["snapshot", "@b"]);
    run(&source, &["snapshot", "@mid", "--at", &rfc3339(middle)]);
    receive(&target, &send(&["@a"], &source));
    receive(&target, &send(&["-i", "@a", "@mid"], &source));
    receive(&target, &send(&["-i", "@mid", "@b"], &source));
    for (snapshot, path, seed) in [("@mid", "/f", 1), ("@mid", "/g", 2), ("@b", "/f", 3)] {
        let read = snapctl().args(["cat", &format!("{snapshot}:{path}")]).arg(&target).output().unwrap().stdout;
        assert!(read == noise(read.len().max(1), seed) && !read.is_empty(), "{snapshot}:{path} differs on the replica");
    }
    check(&source);
    check(&target);
}
