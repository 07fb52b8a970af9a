//! The library's layering, as `src/lib/lib.rs` states it, holds in the code.
//!
//! Goal: a module never imports one of its own layer or above (in the spirit of
//! TigerBeetle's tidy.zig), so the layers the documentation names are the real ones and
//! a front end added on top (a FUSE mount, a replication daemon) finds them as described.
//! Method: the layers are read from lib.rs's header (one numbered line per layer, bottom
//! up, naming its modules in backquotes); every `crate::MODULE` path in every file under
//! src/lib/ (test modules excepted: a unit test may build a pool to test a layer below)
//! is checked against them, and every module lib.rs declares must be in exactly one layer.
//! Inside a folder, the files' imports of each other (`super::NAME`, `crate::FOLDER::NAME`)
//! must not form a cycle: each folder reads from its entry point down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn lib_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib")
}

/// Layer of each module, from lib.rs lines like "//! 3. `block`, `checksum`: ...".
fn layers(lib_rs: &str) -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    for line in lib_rs.lines() {
        let Some(rest) = line.strip_prefix("//!") else { continue };
        let rest = rest.trim_start();
        let Some((number, text)) = rest.split_once(". ") else { continue };
        let Ok(rank) = number.parse::<usize>() else { continue };
        let names = text.split(':').next().unwrap_or("");
        for name in names.split('`').skip(1).step_by(2) {
            assert!(layers.insert(name.to_string(), rank).is_none(), "lib.rs puts `{name}` in two layers");
        }
    }
    layers
}

fn declared_modules(lib_rs: &str) -> BTreeSet<String> {
    lib_rs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod ").or_else(|| l.trim().strip_prefix("mod ")))
        .map(|m| m.trim_end_matches(';').trim().to_string())
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test module and without comments.
fn product_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]" && lines.peek().is_some_and(|next| next.trim().starts_with("mod tests")) {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line.split(" // ").next().unwrap_or(""));
        code.push('\n');
    }
    code
}

/// Top-level modules a piece of code names as `crate::NAME`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `snapfs::crate::` cannot occur; skip identifiers that merely end in "crate".
        if code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_module_imports_only_layers_below_its_own() {
    let lib_rs = std::fs::read_to_string(lib_dir().join("lib.rs")).unwrap();
    let layers = layers(&lib_rs);
    assert!(layers.len() >= 10, "lib.rs's header names only {} modules in layers", layers.len());
    let declared = declared_modules(&lib_rs);
    let unplaced: Vec<_> = declared.iter().filter(|m| !layers.contains_key(*m)).collect();
    assert!(unplaced.is_empty(), "modules lib.rs declares but puts in no layer: {unplaced:?}");
    let unknown: Vec<_> = layers.keys().filter(|m| !declared.contains(*m)).collect();
    assert!(unknown.is_empty(), "lib.rs's layers name modules it does not declare: {unknown:?}");

    let mut files = Vec::new();
    rust_files(&lib_dir(), &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(lib_dir()).unwrap();
        let module = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let own = *layers.get(&module).unwrap_or_else(|| panic!("{} is in no layer", relative.display()));
        let code = product_code(&std::fs::read_to_string(file).unwrap());
        for name in imports(&code) {
            if name == module {
                continue;
            }
            match layers.get(&name) {
                Some(&rank) if rank < own => {}
                Some(&rank) => {
                    wrong.push(format!("{} (layer {own}) imports `{name}` (layer {rank})", relative.display()))
                }
                None => wrong.push(format!("{} imports `{name}`, which is in no layer", relative.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering of src/lib/lib.rs:\n{}", wrong.join("\n"));
}

/// Files of the folder that a piece of code names as `super::NAME` or `crate::FOLDER::NAME`
/// (also inside `super::{..}` groups).
fn sibling_imports(code: &str, folder: &str, siblings: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let own = format!("crate::{folder}::");
    for prefix in ["super::", own.as_str()] {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if siblings.contains(&name) {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// A cycle in `graph`, as the path that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_folder_has_a_cycle_between_its_files() {
    let mut cycles = Vec::new();
    for entry in std::fs::read_dir(lib_dir()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let folder = dir.file_name().unwrap().to_string_lossy().to_string();
        let siblings: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str().and_then(|n| n.strip_suffix(".rs")).map(String::from))
            .filter(|n| n != "mod")
            .collect();
        let mut graph = BTreeMap::new();
        for file in &siblings {
            let code = product_code(&std::fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap());
            let mut uses = sibling_imports(&code, &folder, &siblings);
            uses.remove(file);
            graph.insert(file.clone(), uses);
        }
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("src/lib/{folder}/: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "files that import each other in a cycle:\n{}", cycles.join("\n"));
}

/// Goal: the file-tree key layout (`ino | kind | suffix`) has one owner, fs/inode.rs
/// (`FileKey`, `key_is`, the `*_key` builders), so that a new item kind or a key prefix
/// for clones changes one file. Method: no other file compares an `ItemKind` as a byte.
#[test]
fn file_tree_keys_are_taken_apart_only_by_their_owner() {
    let mut files = Vec::new();
    rust_files(&lib_dir(), &mut files);
    let mut wrong = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("fs/inode.rs")) {
        let code = product_code(&std::fs::read_to_string(file).unwrap());
        for line in code.lines().filter(|l| l.contains("ItemKind::") && l.contains(" as u8")) {
            wrong.push(format!("{}: {}", file.strip_prefix(lib_dir()).unwrap().display(), line.trim()));
        }
    }
    assert!(wrong.is_empty(), "file tree keys decoded by hand (use fs::inode::FileKey):\n{}", wrong.join("\n"));
}

/// The library says what is wrong and the front end what to type (issue 13): a FUSE
/// mount or a replication daemon gets facts it can act on, not advice to run a command
/// it is not. Method: below `cli` (and outside the test-only `fuzzing`), no product
/// code names a binary (comments may: they explain).
#[test]
fn no_library_code_names_a_binary() {
    let mut files = Vec::new();
    rust_files(&lib_dir(), &mut files);
    let mut wrong = Vec::new();
    let front_end = ["cli", "fuzzing"].map(|folder| lib_dir().join(folder));
    for file in files.iter().filter(|f| !front_end.iter().any(|dir| f.starts_with(dir))) {
        for line in product_code(&std::fs::read_to_string(file).unwrap()).lines() {
            if names_a_binary(line) {
                wrong.push(format!("{}: {}", file.strip_prefix(lib_dir()).unwrap().display(), line.trim()));
            }
        }
    }
    assert!(wrong.is_empty(), "library code that names a binary (say it in cli::hint):\n{}", wrong.join("\n"));
}

fn names_a_binary(line: &str) -> bool {
    ["snapfmt", "snapctl", "snapsend", "snaprecv"].iter().any(|binary| line.contains(binary))
}

/// The checker itself: it sees imports, skips comments and test modules.
#[test]
fn the_checker_sees_what_it_should() {
    let code = product_code(
        "use crate::pool::Pool;\n// crate::stream in a comment\nlet x = crate::fs::ROOT_INO; // crate::ops\n\
         #[cfg(test)]\nmod tests {\n    use crate::check::check_pool;\n}\n",
    );
    assert_eq!(imports(&code), BTreeSet::from(["pool".to_string(), "fs".to_string()]));
    let layers = layers("//! 0. `error`: errors;\n//! 1. `a`, `b`: two; see `c`\n//! text 2. `d`\n");
    assert_eq!(layers.get("a"), Some(&1));
    assert_eq!(layers.get("b"), Some(&1));
    assert_eq!(layers.get("c"), None, "only names before the colon are modules");
    assert_eq!(layers.get("d"), None);
    let siblings = BTreeSet::from(["a".to_string(), "b".to_string(), "c".to_string()]);
    let uses = sibling_imports("use super::{a::X, b};\nlet y = crate::f::c::Y; super::FsTree", "f", &siblings);
    assert_eq!(uses, siblings);
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(4));
    assert_eq!(find_cycle(&BTreeMap::from([("a".to_string(), BTreeSet::new())])), None);
    let code = product_code("let hint = \"run `snapctl scrub`\";\n// snapctl in a comment\n");
    assert_eq!(code.lines().filter(|l| names_a_binary(l)).count(), 1);
    let clocked = product_code(
        "let t = std::time::SystemTime::now();\n// SystemTime::now in a comment\nlet i = Instant::now();\n",
    );
    assert_eq!(host_nondeterminism(&clocked), ["SystemTime::now"]);
}

/// What reads the time of day or the kernel's random source, in a piece of code.
fn host_nondeterminism(code: &str) -> Vec<&'static str> {
    ["SystemTime::now", "/dev/urandom", "/dev/random", "getrandom"]
        .into_iter()
        .filter(|needle| code.contains(needle))
        .collect()
}

/// Goal: every time and guid the library records comes from the clock seam (clock.rs),
/// so a test that gives a pool a simulated clock controls all of them, and a seeded run
/// replays. Method: no file of src/lib but clock.rs reads the time of day or the random
/// source (monotonic `Instant`s for progress reports are fine: they reach no device).
#[test]
fn time_and_guids_come_only_from_the_clock_seam() {
    let mut files = Vec::new();
    rust_files(&lib_dir(), &mut files);
    let mut wrong = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("src/lib/clock.rs")) {
        let code = product_code(&std::fs::read_to_string(file).unwrap());
        for found in host_nondeterminism(&code) {
            wrong.push(format!("{}: {found}", file.strip_prefix(lib_dir()).unwrap().display()));
        }
    }
    assert!(wrong.is_empty(), "time or entropy read outside src/lib/clock.rs (use Pool::clock):\n{}", wrong.join("\n"));
    let seam = product_code(&std::fs::read_to_string(lib_dir().join("clock.rs")).unwrap());
    assert_eq!(
        host_nondeterminism(&seam),
        ["SystemTime::now", "/dev/urandom"],
        "the check looks for what the seam uses"
    );
}
