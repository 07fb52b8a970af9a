//! Round trip of the shared workload: the digest of the tree before sync equals the
//! digest after export, metadata included, for two snapshots around a mutation.

mod common;

use common::*;
use tempfile::TempDir;

#[test]
fn workload_round_trip_with_snapshots() {
    let dir = TempDir::new().unwrap();
    let src = dir.path().join("src");
    run_workload(&["generate", src.to_str().unwrap(), "64M"], &[("WORKLOAD_SEED", "7")]);
    let img = pool(dir.path(), 256 << 20, &[]);
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapctl().args(["snapshot", "@a"]).arg(&img).assert().success();
    let digest_a = digest(&src);
    run_workload(&["mutate", src.to_str().unwrap()], &[("WORKLOAD_SEED", "7")]);
    snapctl().arg("sync").arg(&src).arg(&img).assert().success();
    snapctl().args(["snapshot", "@b"]).arg(&img).assert().success();
    let digest_b = digest(&src);
    assert_ne!(digest_a, digest_b);
    check(&img);

    let out_a = dir.path().join("out-a");
    let out_b = dir.path().join("out-b");
    snapctl().args(["export", "@a"]).arg(&out_a).arg(&img).assert().success();
    snapctl().args(["export", "@b"]).arg(&out_b).arg(&img).assert().success();
    assert_eq!(digest(&out_a), digest_a, "snapshot @a differs from the tree it was taken of");
    assert_eq!(digest(&out_b), digest_b, "snapshot @b differs from the tree it was taken of");

    // Hard links come back as hard links.
    let links = |d: &std::path::Path| -> usize {
        walk(d)
            .iter()
            .filter(|p| {
                std::fs::symlink_metadata(p)
                    .map(|m| m.is_file() && std::os::unix::fs::MetadataExt::nlink(&m) > 1)
                    .unwrap_or(false)
            })
            .count()
    };
    assert_eq!(links(&out_b), links(&src));

    // Destroy the older snapshot, then the newer: the live tree is intact throughout.
    snapctl().args(["destroy", "@a"]).arg(&img).assert().success();
    check(&img);
    snapctl().args(["destroy", "@b"]).arg(&img).assert().success();
    check(&img);
    let out_live = dir.path().join("out-live");
    snapctl().args(["export", "/"]).arg(&out_live).arg(&img).assert().success();
    assert_eq!(digest(&out_live), digest_b);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}
