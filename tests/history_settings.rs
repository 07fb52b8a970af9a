//! `snapctl set history=` and `set history-space=`: how long commits are retained and
//! how much space the history may hold alone (issue 16, part 2).

mod common;
use common::*;
use snapfs::cli::exit_code;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn status(img: &Path) -> serde_json::Value {
    serde_json::from_str(&run(img, &["status", "--json"])).unwrap()
}

#[test]
fn set_changes_the_window_and_the_cap_and_status_and_history_show_them() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let out = run(&img, &["set", "history=7d"]);
    assert!(out.contains("history=7d"), "{out}");
    assert_eq!(status(&img)["history_seconds"], 7 * 86400);
    let out = run(&img, &["set", "history-space=10%"]);
    assert!(out.contains("history-space=10% (at most 6."), "{out}");
    assert_eq!(status(&img)["history_space_percent"], 10);
    assert!(run(&img, &["history"]).contains("keep 7d, hold at most 10% of the device"));
    assert!(run(&img, &["status"]).contains("hold at most 10%"));
    // Overwrites: the history alone never holds more than the cap after a commit.
    let cap = 64 * MIB / 10;
    for round in 0..14 {
        put(&img, "/big", &noise(1_500_000, round));
        let held = status(&img)["held_by_history_only_bytes"].as_u64().unwrap();
        assert!(held <= cap, "round {round}: the history alone holds {held} bytes over a cap of about {cap}");
    }
    assert!(status(&img)["history_commits"].as_u64().unwrap() < 14, "the cap released no commit");
    check(&img);
    let out = run(&img, &["set", "history-space=0"]);
    assert!(out.contains("no cap"), "{out}");
    assert_eq!(status(&img)["history_space_percent"], 0);
    check(&img);
}

#[test]
fn bad_settings_are_refused_and_change_nothing() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    for (setting, says) in [
        ("history-space=101%", "0% (no cap) to 100%"),
        ("history-space=ten", "0% (no cap) to 100%"),
        ("history=soon", "bad duration"),
        ("retention=1d", "history=DURATION"),
    ] {
        refused(&img, &["set", setting], exit_code::INVALID, says);
    }
    assert_eq!(status(&img)["history_seconds"], 86400);
    assert_eq!(status(&img)["history_space_percent"], 0);
}
