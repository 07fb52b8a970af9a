//! `ls --match/--exclude/--where`: the files a rule selects, as a subset snapshot will
//! hold them (issue 16, part 3), in the live tree and in a snapshot.

mod common;
use common::*;
use snapfs::cli::exit_code;
use std::path::Path;
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn listed(img: &Path, args: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = run(img, &[&["ls"], args].concat()).lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn a_rule_lists_the_files_it_selects_by_path_and_metadata() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    for (path, bytes) in [
        ("data/train/a.jpg", 1000),
        ("data/train/deep/b.jpg", 3_000_000),
        ("data/test/c.jpg", 1000),
        ("data/train/notes.txt", 10),
        ("top.jpg", 10),
    ] {
        if let Some((parent, _)) = path.rsplit_once('/') {
            run(&img, &["mkdir", "-p", parent]);
        }
        put(&img, path, &noise(bytes, bytes as u64));
    }
    let label = "setxattr data/train/a.jpg user.label cat\n";
    snapctl().arg("batch").arg(&img).write_stdin(label).assert().success();
    run(&img, &["snapshot", "@s"]);
    run(&img, &["rm", "data/train/a.jpg"]);

    let train = ["--match", "data/**/*.jpg", "--exclude", "data/test/**"];
    assert_eq!(listed(&img, &train), ["data/train/deep/b.jpg"]);
    assert_eq!(listed(&img, &[&train[..], &["@s"]].concat()), ["data/train/a.jpg", "data/train/deep/b.jpg"]);
    // Paths are listed from the directory named; globs match from the root.
    assert_eq!(listed(&img, &[&train[..], &["@s:data/train"]].concat()), ["a.jpg", "deep/b.jpg"]);
    assert_eq!(listed(&img, &["--match", "*.jpg"]), ["top.jpg"], "* stays within one name");
    assert_eq!(listed(&img, &["--where", "size<1M,type=f", "--match", "data/**", "@s"]).len(), 3);
    assert_eq!(listed(&img, &["--where", "xattr.user.label=cat", "@s"]), ["data/train/a.jpg"]);
    let out = snapctl().args(["ls", "--where", "uid=4242"]).arg(&img).output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "a rule that selects nothing is allowed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("selects no file"), "and said");
}

#[test]
fn a_bad_rule_is_refused_naming_the_bad_part() {
    let dir = TempDir::new().unwrap();
    let img = pool(dir.path(), 32 * MIB, &[]);
    refused(&img, &["ls", "--match", "data/[a"], exit_code::INVALID, "--match \"data/[a\"");
    refused(&img, &["ls", "--where", "uid=1000,colour=red"], exit_code::INVALID, "unknown field \"colour\"");
    refused(&img, &["ls", "--where", "size<huge"], exit_code::INVALID, "in \"size<huge\"");
}
