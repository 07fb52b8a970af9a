//! Two `snapctl` writers and a `snapsend` reader started at once on one device: the
//! writers take turns (the second waits for the first), the reader runs beside them
//! (it pins the snapshot it sends); all three finish, the pool is consistent, and the
//! stream is the snapshot whole.

mod common;

use common::*;
use std::process::{Command, Stdio};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

struct Outcome {
    code: i32,
    stderr: String,
    stdout: Vec<u8>,
}

fn spawn(program: &std::ffi::OsStr, args: &[&std::ffi::OsStr]) -> std::process::Child {
    Command::new(program).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn")
}

fn finish(child: std::process::Child) -> Outcome {
    let out = child.wait_with_output().expect("wait");
    Outcome {
        code: out.status.code().expect("exited, not killed"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: out.stdout,
    }
}

fn assert_ran(what: &str, outcome: &Outcome) {
    assert_eq!(outcome.code, 0, "{what} exited {}: {}", outcome.code, outcome.stderr);
}

#[test]
fn two_writers_and_a_sender_at_once_all_finish() {
    let dir = TempDir::new().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 256 * MIB);
    // What each round removes is freed by the next commit, so six rounds fit.
    snapctl().args(["history", "--keep", "0"]).arg(&img).assert().success();
    put(&img, "base", &noise(8 * MIB as usize, 1));
    snapctl().args(["snapshot", "@a"]).arg(&img).assert().success();
    let expected_a = noise(8 * MIB as usize, 1);
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    std::fs::write(&one, noise(24 * MIB as usize, 2)).unwrap();
    std::fs::write(&two, noise(24 * MIB as usize, 3)).unwrap();
    let snapctl_bin = snapctl().get_program().to_owned();
    let snapsend_bin = snapsend().get_program().to_owned();

    for round in 0..6 {
        let names = [format!("one{round}"), format!("two{round}")];
        // Started back to back, in an order that turns each round, so each gets the lock first.
        let start = |which: usize| match which {
            0 => spawn(&snapctl_bin, &["put".as_ref(), one.as_os_str(), names[0].as_ref(), img.as_os_str()]),
            1 => spawn(&snapctl_bin, &["put".as_ref(), two.as_os_str(), names[1].as_ref(), img.as_os_str()]),
            _ => spawn(&snapsend_bin, &["@a".as_ref(), img.as_os_str()]),
        };
        let mut children: Vec<(usize, std::process::Child)> =
            (0..3).map(|i| (round + i) % 3).map(|which| (which, start(which))).collect();
        children.sort_by_key(|(which, _)| *which);
        let mut outcomes = children.into_iter().map(|(_, child)| finish(child));
        let mut next = || outcomes.next().expect("three processes");
        let (first, second, sender) = (next(), next(), next());
        eprintln!("round {round}: writers exit {} and {}, sender exit {}", first.code, second.code, sender.code);
        assert_ran("the first writer", &first);
        assert_ran("the second writer", &second);
        assert_ran("the sender", &sender);
        check(&img);
        for (name, source) in [(&names[0], &one), (&names[1], &two)] {
            let cat = snapctl().args(["cat", name]).arg(&img).output().unwrap();
            assert_eq!(cat.stdout, std::fs::read(source).unwrap(), "round {round}: {name}");
            snapctl().args(["rm", name]).arg(&img).assert().success();
        }
        // The stream is @a whole, whatever the writers did meanwhile.
        let target = fresh_pool(dir.path(), "target.img", 64 * MIB);
        snaprecv().arg(&target).write_stdin(sender.stdout).assert().success();
        let got = snapctl().args(["cat", "@a:base"]).arg(&target).output().unwrap();
        assert_eq!(got.stdout, expected_a, "round {round}: the stream of @a");
        std::fs::remove_file(&target).unwrap();
    }
}
