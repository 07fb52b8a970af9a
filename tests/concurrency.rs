//! Two `snapctl` writers and a `snapsend` reader started at once on one device: each
//! either runs alone under the device lock or is refused with exit 4 naming the holder;
//! whatever ran left a consistent pool, and a stream that was sent is the snapshot whole.

mod common;
use snapfs::cli::exit_code;

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

fn assert_ran_or_refused(what: &str, outcome: &Outcome) {
    match outcome.code {
        0 => {}
        4 => assert!(
            outcome.stderr.contains("is in use by") && outcome.stderr.contains("wait for that process"),
            "{what} refused without saying why: {}",
            outcome.stderr
        ),
        code => panic!("{what} exited {code}: {}", outcome.stderr),
    }
}

#[test]
fn two_writers_and_a_sender_at_once_serialize_or_are_refused() {
    let dir = TempDir::new().unwrap();
    let img = fresh_pool(dir.path(), "pool.img", 256 * MIB);
    put(&img, "base", &noise(8 * MIB as usize, 1));
    snapctl().args(["snapshot", "@a"]).arg(&img).assert().success();
    let expected_a = noise(8 * MIB as usize, 1);
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    std::fs::write(&one, noise(24 * MIB as usize, 2)).unwrap();
    std::fs::write(&two, noise(24 * MIB as usize, 3)).unwrap();
    let snapctl_bin = snapctl().get_program().to_owned();
    let snapsend_bin = snapsend().get_program().to_owned();

    let mut writes_done = [false, false];
    let mut sends_done = 0;
    // At least 6 rounds, and more (up to 30) until each process has got through once.
    for round in 0..30 {
        if round >= 6 && writes_done.iter().all(|&d| d) && sends_done > 0 {
            break;
        }
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
        assert_ran_or_refused("the first writer", &first);
        assert_ran_or_refused("the second writer", &second);
        assert_ran_or_refused("the sender", &sender);
        check(&img);
        for (i, (outcome, source)) in [(&first, &one), (&second, &two)].into_iter().enumerate() {
            let cat = snapctl().args(["cat", &names[i]]).arg(&img).output().unwrap();
            if outcome.code == 0 {
                assert_eq!(cat.stdout, std::fs::read(source).unwrap(), "round {round}: {}", names[i]);
                writes_done[i] = true;
            } else {
                assert_eq!(
                    cat.status.code(),
                    Some(exit_code::NOT_FOUND_OR_EXISTS),
                    "round {round}: a refused put left {}",
                    names[i]
                );
            }
        }
        if sender.code == 0 {
            // The stream is @a whole, whatever the writers did meanwhile.
            let target = fresh_pool(dir.path(), "target.img", 64 * MIB);
            snaprecv().arg(&target).write_stdin(sender.stdout).assert().success();
            let got = snapctl().args(["cat", "@a:base"]).arg(&target).output().unwrap();
            assert_eq!(got.stdout, expected_a, "round {round}: the stream of @a");
            sends_done += 1;
        }
    }
    assert!(writes_done.iter().all(|&d| d) && sends_done > 0, "writes {writes_done:?}, sends {sends_done}");
}
