//! The JSON that `snapctl --json` writes is an API: scripts read it by field names, and
//! some by position. This pins, for every command with `--json`, each object's keys in
//! the order they are written, and each value's type.
//!
//! Goal: a change to an outcome struct (a field renamed, moved, dropped, or one that no
//! longer serializes as it did) fails here, not in someone's script. Method: a pool with
//! files, snapshots, retained history and a saved partial receive; the raw output's keys
//! are read in order (serde_json::Value would sort them) and its values' types checked.

mod common;
use snapfs::cli::exit_code;

use common::*;
use serde_json::Value;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// The keys of every object in `text`, each object's in order of appearance, keyed by
/// its path (the keys of its parents, "" at the top, "[]" for array elements).
fn keys_in_order(text: &str) -> Vec<(String, Vec<String>)> {
    let value: Value = serde_json::from_str(text).expect("valid JSON");
    let mut found = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    // Walk the raw text: a string followed by ':' is a key of the innermost open object.
    // Open containers: (path, is an array, keys so far, the last key).
    let mut stack: Vec<(String, bool, Vec<String>, String)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            open @ ('{' | '[') => {
                let path = match stack.last() {
                    None => String::new(),
                    Some((parent, true, _, _)) => format!("{parent}[]"),
                    Some((parent, false, _, key)) => format!("{parent}.{key}"),
                };
                stack.push((path, open == '[', Vec::new(), String::new()));
            }
            close @ ('}' | ']') => {
                let (path, _, keys, _) = stack.pop().unwrap();
                if close == '}' {
                    found.push((path, keys));
                }
            }
            '"' => {
                let start = i + 1;
                i += 1;
                while chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                let string: String = chars[start..i].iter().collect();
                if chars.get(i + 1) == Some(&':') {
                    let top = stack.last_mut().unwrap();
                    top.2.push(string.clone());
                    top.3 = string;
                }
            }
            _ => {}
        }
        i += 1;
    }
    assert!(value.is_object() || value.is_array());
    found
}

/// The keys of the objects at `path`, which must all have the same.
fn keys_at(text: &str, path: &str) -> Vec<String> {
    let all = keys_in_order(text);
    let at: Vec<&Vec<String>> = all.iter().filter(|(p, _)| p == path).map(|(_, k)| k).collect();
    assert!(!at.is_empty(), "no object at {path:?} in {text}");
    assert!(at.windows(2).all(|w| w[0] == w[1]), "objects at {path:?} differ in keys: {text}");
    at[0].clone()
}

fn json(args: &[&str], img: &std::path::Path) -> (String, Value) {
    let text = stdout(snapctl().args(args).arg(img));
    assert!(text.ends_with('\n') && text.lines().count() == 1, "one line of JSON: {text:?}");
    let value = serde_json::from_str(&text).expect("valid JSON");
    (text, value)
}

/// A test of a JSON value's type, as `Value::is_string`.
type IsType = fn(&Value) -> bool;

fn assert_types(value: &Value, expected: &[(&str, IsType)]) {
    for (key, is) in expected {
        assert!(is(&value[*key]), "{key} has the wrong type in {value}");
    }
}

const STATUS_KEYS: [&str; 35] = [
    "clones",
    "compression",
    "compression_level",
    "compression_ratio",
    "data_bytes",
    "device",
    "device_bytes",
    "extracting",
    "features",
    "format_version",
    "free_bytes",
    "held_by_history_only_bytes",
    "held_by_snapshots_and_history_bytes",
    "held_by_snapshots_bytes",
    "history_commits",
    "history_oldest",
    "history_oldest_txg",
    "history_reserve_percent",
    "history_seconds",
    "history_space_percent",
    "last_commit",
    "last_txg",
    "live_files",
    "live_logical_bytes",
    "live_records_compressed",
    "live_records_raw",
    "live_referenced_bytes",
    "live_stored_bytes",
    "partial_receive",
    "pool_guid",
    "pool_metadata_bytes",
    "readers",
    "receive_resume_token",
    "snapshots",
    "used_bytes",
];

fn source_tree(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("docs")).unwrap();
    for i in 0..12 {
        std::fs::write(src.join(format!("docs/f{i}")), "some text that compresses well\n".repeat(400 * (i + 1)))
            .unwrap();
    }
    src
}

#[test]
fn status_list_check_history_keep_their_keys_order_and_types() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = source_tree(dir.path());
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapctl().args(["snapshot", "@a"]).arg(&img).assert().success();
    std::fs::remove_file(src.join("docs/f3")).unwrap();
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapctl().args(["snapshot", "@b"]).arg(&img).assert().success();

    let (text, status) = json(&["status", "--json"], &img);
    assert_eq!(keys_at(&text, ""), STATUS_KEYS);
    let number = Value::is_u64 as IsType;
    let string = Value::is_string as IsType;
    assert_types(
        &status,
        &[
            ("compression", string),
            ("compression_level", number),
            ("compression_ratio", Value::is_f64),
            ("live_records_compressed", number),
            ("live_records_raw", number),
            ("live_referenced_bytes", number),
            ("held_by_snapshots_bytes", number),
            ("pool_metadata_bytes", number),
            ("device", string),
            ("extracting", Value::is_array),
            ("features", Value::is_array),
            ("history_oldest", string),
            ("history_oldest_txg", number),
            ("last_commit", string),
            ("partial_receive", Value::is_null),
            ("pool_guid", string),
            ("readers", Value::is_array),
            ("receive_resume_token", Value::is_null),
            ("snapshots", number),
            ("used_bytes", number),
        ],
    );
    assert_eq!(status["snapshots"], 2);
    assert_eq!(status["device"], img.to_str().unwrap(), "the device as it was named");
    let ratio = status["compression_ratio"].as_f64().unwrap();
    assert!(ratio > 1.5 && (ratio * 100.0).fract() == 0.0, "two decimals at most: {ratio}");

    let (text, list) = json(&["list", "--json"], &img);
    assert_eq!(
        keys_at(&text, "[]"),
        [
            "created",
            "created_unix_ns",
            "extracting",
            "guid",
            "holds",
            "name",
            "referenced_bytes",
            "rule",
            "tree",
            "txg",
            "unique_bytes",
            "written_bytes"
        ]
    );
    assert!(list[0]["rule"].is_null(), "a whole snapshot has no rule");
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["name"], "b");
    assert_types(
        &list[0],
        &[
            ("created", string),
            ("created_unix_ns", number),
            ("guid", string),
            ("holds", Value::is_array),
            ("name", string),
            ("referenced_bytes", number),
            ("txg", number),
            ("unique_bytes", number),
            ("written_bytes", number),
        ],
    );
    assert_eq!(list[0]["guid"].as_str().unwrap().len(), 32);

    let (text, check) = json(&["check", "--json"], &img);
    assert_eq!(
        keys_at(&text, ""),
        [
            "blocks_verified",
            "bytes_verified",
            "clean",
            "dead_entries",
            "free_blocks",
            "problems",
            "referenced_blocks",
            "trees_walked"
        ]
    );
    assert_eq!(check["clean"], true);
    assert_eq!(check["problems"], Value::Array(vec![]));

    let (text, history) = json(&["history", "--json"], &img);
    assert_eq!(keys_at(&text, ""), ["keep_seconds", "space_percent", "held_by_history_only_bytes", "commits"]);
    assert_eq!(keys_at(&text, ".commits[]"), ["txg", "time", "time_unix_ns"]);
    assert_eq!(history["keep_seconds"], 86400);
    assert_eq!(history["commits"].as_array().unwrap().len(), 5, "{history}");
    assert_types(&history["commits"][0], &[("txg", number), ("time", string), ("time_unix_ns", number)]);

    // A change first prints what it released, then the same JSON.
    let out = stdout(snapctl().args(["history", "--prune", "--keep", "1h", "--json"]).arg(&img));
    let (released, text) = out.split_once('\n').unwrap();
    assert!(released.starts_with("snapctl: released "), "{out}");
    assert_eq!(keys_at(text, ""), ["keep_seconds", "space_percent", "held_by_history_only_bytes", "commits"]);
    let history: Value = serde_json::from_str(text).unwrap();
    assert_eq!(history["keep_seconds"], 3600);
    assert_eq!(history["commits"].as_array().unwrap().len(), 1, "{history}");
}

#[test]
fn a_saved_partial_receive_shows_in_status_json_with_its_keys() {
    let dir = TempDir::new().unwrap();
    let src_img = pool(dir.path(), 64 * MIB, &[]);
    let src = source_tree(dir.path());
    snapctl().arg("sync").arg(&src).arg(&src_img).assert().success();
    snapctl().args(["snapshot", "@a"]).arg(&src_img).assert().success();
    let stream = snapsend().arg("@a").arg(&src_img).output().unwrap().stdout;
    let target = image(dir.path(), "target.img", 64 * MIB);
    snapfmt().arg(&target).assert().success();
    snaprecv()
        .arg("-s")
        .arg(&target)
        .write_stdin(stream[..stream.len() / 2].to_vec())
        .assert()
        .code(exit_code::BAD_STREAM);

    let (text, status) = json(&["status", "--json"], &target);
    assert_eq!(keys_at(&text, ""), STATUS_KEYS);
    assert_eq!(
        keys_at(&text, ".partial_receive"),
        ["base", "records_applied", "saved", "snapshot", "stream_bytes_applied"]
    );
    let partial = &status["partial_receive"];
    assert_eq!(partial["snapshot"], "a");
    assert_eq!(partial["base"], Value::Null, "a full stream has no base");
    assert!(partial["records_applied"].as_u64().unwrap() > 0, "{partial}");
    assert!(status["receive_resume_token"].as_str().unwrap().starts_with("1-"), "{status}");
}

/// Scrub's JSON, clean and with a bad copy: its keys (alphabetical, as `serde_json::json!`
/// wrote them before scrub had an outcome struct), a damage entry's, and their types; the
/// exit status follows the verdict (6 while a bad copy is left, 0 once rewritten).
#[test]
fn scrub_keeps_its_keys_order_and_types_clean_and_damaged() {
    const SCRUB_KEYS: [&str; 13] = [
        "blocks_verified",
        "bytes_verified",
        "clean",
        "damage",
        "data_blocks",
        "labels_damaged",
        "labels_repaired",
        "metadata_blocks",
        "metadata_seconds",
        "problems",
        "repaired",
        "seconds",
        "unrecoverable",
    ];
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = source_tree(dir.path());
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();

    let (text, clean) = json(&["scrub", "--json"], &img);
    assert_eq!(keys_at(&text, ""), SCRUB_KEYS);
    let number = Value::is_u64 as IsType;
    assert_types(
        &clean,
        &[
            ("blocks_verified", number),
            ("bytes_verified", number),
            ("clean", Value::is_boolean),
            ("damage", Value::is_array),
            ("data_blocks", number),
            ("labels_damaged", Value::is_array),
            ("labels_repaired", Value::is_boolean),
            ("metadata_blocks", number),
            ("metadata_seconds", Value::is_f64),
            ("problems", Value::is_array),
            ("repaired", number),
            ("seconds", Value::is_f64),
            ("unrecoverable", number),
        ],
    );
    assert_eq!((clean["clean"].as_bool(), clean["repaired"].as_u64()), (Some(true), Some(0)), "{clean}");
    assert!(clean["data_blocks"].as_u64().unwrap() >= 12, "the files' data was read: {clean}");

    // A bad second copy of the pool root: reported and left by -n, rewritten without it.
    let pool = snapfs::pool::Pool::open(
        Box::new(snapfs::device::open_file_device(img.to_str().unwrap(), snapfs::device::OpenMode::Read).unwrap()),
        snapfs::device::OpenMode::Read,
    )
    .unwrap();
    let ditto = pool.commit.root.ditto.0;
    drop(pool);
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[(ditto * 4096) as usize + 9] ^= 0x20;
    std::fs::write(&img, &bytes).unwrap();
    let out = snapctl().args(["scrub", "-n", "--json"]).arg(&img).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "a bad copy left is damage: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(keys_at(&text, ""), SCRUB_KEYS);
    const DAMAGE_KEYS: [&str; 11] = [
        "affects",
        "birth_txg",
        "block",
        "copy",
        "copy_block",
        "error",
        "files",
        "files_total",
        "kind",
        "recoverable",
        "repaired",
    ];
    assert_eq!(keys_at(&text, ".damage[]"), DAMAGE_KEYS);
    let left: Value = serde_json::from_str(&text).unwrap();
    let damage = &left["damage"][0];
    assert_types(
        damage,
        &[
            ("affects", Value::is_array),
            ("birth_txg", number),
            ("block", number),
            ("copy", number),
            ("copy_block", number),
            ("error", Value::is_string),
            ("files", Value::is_array),
            ("files_total", number),
            ("kind", Value::is_string),
            ("recoverable", Value::is_boolean),
            ("repaired", Value::is_boolean),
        ],
    );
    assert_eq!((damage["copy"].as_u64(), damage["copy_block"].as_u64()), (Some(2), Some(ditto)), "{left}");
    assert_eq!((damage["recoverable"].as_bool(), damage["repaired"].as_bool()), (Some(true), Some(false)));
    assert_eq!((left["clean"].as_bool(), left["unrecoverable"].as_u64()), (Some(false), Some(0)), "{left}");

    let (text, repaired) = json(&["scrub", "--json"], &img);
    assert_eq!(keys_at(&text, ".damage[]"), DAMAGE_KEYS);
    assert_eq!((repaired["clean"].as_bool(), repaired["repaired"].as_u64()), (Some(true), Some(1)), "{repaired}");
    assert_eq!(repaired["damage"][0]["repaired"], true);
}

/// snapsend -P is read by scripts too: a line per part (kind, @base for an incremental,
/// @target, bytes), tab-separated, then `size` and the total.
#[test]
fn snapsend_parsable_lines_keep_their_fields() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 64 * MIB, &[]);
    let src = source_tree(dir.path());
    for name in ["@a", "@b", "@c"] {
        std::fs::write(src.join(name), name).unwrap();
        snapctl().arg("sync").arg(&src).arg(&img).assert().success();
        snapctl().args(["snapshot", name]).arg(&img).assert().success();
    }
    let lines = |args: &[&str]| -> Vec<Vec<String>> {
        let text = stdout(snapsend().arg("-n").arg("-P").args(args).arg(&img));
        text.lines().map(|l| l.split('\t').map(String::from).collect()).collect()
    };
    let shape = |lines: &[Vec<String>]| -> Vec<Vec<String>> {
        // Every field but the sizes, which are checked to be numbers and to add up.
        let total: u64 = lines.last().unwrap()[1].parse().unwrap();
        let parts: u64 = lines[..lines.len() - 1].iter().map(|l| l.last().unwrap().parse::<u64>().unwrap()).sum();
        assert_eq!(parts, total, "{lines:?}");
        lines.iter().map(|l| l[..l.len() - 1].to_vec()).collect()
    };
    let owned = |rows: &[&[&str]]| -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|f| f.to_string()).collect()).collect()
    };
    assert_eq!(shape(&lines(&["@b"])), owned(&[&["full", "@b"], &["size"]]));
    assert_eq!(shape(&lines(&["-i", "@a", "@c"])), owned(&[&["incremental", "@a", "@c"], &["size"]]));
    assert_eq!(
        shape(&lines(&["-I", "@a", "@c"])),
        owned(&[&["incremental", "@a", "@b"], &["incremental", "@b", "@c"], &["size"]])
    );
}
