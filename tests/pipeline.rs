//! The README's replication pipeline for real, between two network namespaces joined by
//! a veth pair: `snapsend | ssh root@host snaprecv` to a real sshd, and
//! `snapsend | nc` into `nc -l | snaprecv`, each a full stream then an incremental one.
//! Every step checks the exit status of both ends, `snapctl check`s the destination and
//! exports each received snapshot against the digest of the source tree it was taken of.
//! Needs root (namespaces, sshd) and ip, ss, sshd, ssh, ssh-keygen and nc (scripts/setup.sh
//! installs them); in CI (CI=true) a missing one fails instead of skipping.

mod common;

use common::*;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const SENDER_ADDR: &str = "10.203.77.1";
const RECEIVER_ADDR: &str = "10.203.77.2";
/// Each test has namespaces of its own, so fixed ports cannot collide.
const SSH_PORT: u16 = 2222;
const NC_PORT: u16 = 9000;
/// For any one command or wait: far above what each takes (a few seconds at most).
const TIMEOUT: Duration = Duration::from_secs(30);
const SSHD: &str = "/usr/sbin/sshd";
const TOOLS: &[&str] = &["ip", "ss", SSHD, "ssh", "ssh-keygen", "nc", "bash"];

/// Two network namespaces, a sender and a receiver, joined by a veth pair; removed on drop.
struct Namespaces {
    sender: String,
    receiver: String,
}

impl Namespaces {
    fn create() -> Namespaces {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let ns = Namespaces { sender: format!("snapfs-send-{id}"), receiver: format!("snapfs-recv-{id}") };
        for name in [&ns.sender, &ns.receiver] {
            // One left by a dead process that had our pid is stale.
            if Path::new("/run/netns").join(name).exists() {
                let _ = Process::new("ip").args(["netns", "del", name]).status();
            }
            ip(&["netns", "add", name]);
        }
        // The peer is created inside the receiver directly: no name in the root namespace.
        ip(&["-n", &ns.sender, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", &ns.receiver]);
        for (name, addr) in [(&ns.sender, SENDER_ADDR), (&ns.receiver, RECEIVER_ADDR)] {
            ip(&["-n", name, "addr", "add", &format!("{addr}/24"), "dev", "veth0"]);
            ip(&["-n", name, "link", "set", "veth0", "up"]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.sender, &self.receiver] {
            if Path::new("/run/netns").join(name).exists() {
                match Process::new("ip").args(["netns", "del", name]).output() {
                    Ok(out) if out.status.success() => {}
                    Ok(out) => eprintln!("ip netns del {name}: {}", String::from_utf8_lossy(&out.stderr)),
                    Err(e) => eprintln!("ip netns del {name}: {e}"),
                }
            }
        }
    }
}

fn ip(args: &[&str]) {
    let out = Process::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A command run inside network namespace `ns`.
fn in_ns(ns: &str, program: &str) -> Process {
    let mut cmd = Process::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// A process in a process group of its own, killed with its group on drop.
struct Background {
    child: Child,
    what: String,
}

impl Background {
    /// Runs `cmd` with no standard input and its output into `stdout` and `stderr`.
    fn spawn(mut cmd: Process, what: &str, stdout: &Path, stderr: &Path) -> Background {
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(stdout).expect("create stdout file"))
            .stderr(std::fs::File::create(stderr).expect("create stderr file"))
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Background { child, what: what.to_string() }
    }

    /// Its exit status, or None while it runs.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what))
    }

    /// Waits up to `timeout` for it to exit.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.exited().is_none() {
            // SAFETY: kill has no memory effects; the group is the child's own (process_group(0)).
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to its end with no standard input, killing its process group and failing
/// the test past TIMEOUT.
fn run(mut cmd: Process, what: &str) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let mut child = Background { child, what: what.to_string() };
    let status = child.wait(TIMEOUT);
    if status.is_none() {
        drop(child); // kills the group, which closes the pipes
    }
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) => Output { status, stdout, stderr },
        None => panic!(
            "{what} did not finish in {TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Waits up to TIMEOUT for a TCP socket listening on `port` inside `ns` (no connection is
/// made: a one-shot `nc -l` must keep its one connection for the stream).
fn wait_listening(ns: &str, port: u16, server: &mut Background, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let out = in_ns(ns, "ss").args(["-Hltn", &format!("sport = :{port}")]).output().expect("run ss");
        assert!(out.status.success(), "ss failed: {}", String::from_utf8_lossy(&out.stderr));
        if !out.stdout.is_empty() {
            return;
        }
        if let Some(status) = server.exited() {
            panic!("{} exited ({status}) before listening on port {port}:\n{}", server.what, log());
        }
        assert!(
            Instant::now() < deadline,
            "{} not listening on port {port} after {TIMEOUT:?}:\n{}",
            server.what,
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `s` quoted for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn quote_path(p: &Path) -> String {
    quote(p.to_str().expect("utf-8 path"))
}

fn bin(name: &str) -> String {
    assert_cmd::cargo::cargo_bin(name).to_str().expect("utf-8 path").to_string()
}

fn read(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// `snapsend ARGS DEV` as a shell command.
fn snapsend(args: &[&str], dev: &Path) -> String {
    let mut words = vec![quote(&bin("snapsend"))];
    words.extend(args.iter().map(|a| quote(a)));
    words.push(quote_path(dev));
    words.join(" ")
}

/// A bash script running `left | right`, then printing the exit status of both ends to
/// stderr as its last line; pipefail makes its own status that of the pipeline.
fn pipeline(left: &str, right: &str) -> String {
    format!(
        r#"set -o pipefail; {left} | {right}; st=("${{PIPESTATUS[@]}}"); echo "pipestatus: ${{st[*]}}" >&2; exit $(( st[0] ? st[0] : st[1] ))"#
    )
}

/// The exit statuses of both ends, from the last line of a `pipeline` script's stderr.
fn pipestatus(stderr: &str) -> Option<String> {
    stderr.lines().rev().find_map(|l| l.strip_prefix("pipestatus: ")).map(str::to_string)
}

/// A pool with snapshots @a and @b of the shared workload, and the digests of the tree
/// each was taken of.
struct Source {
    pool: PathBuf,
    digest_a: String,
    digest_b: String,
    _dir: TempDir,
}

impl Source {
    /// The source, built once for the tests that run at the same time (generating the
    /// workload is most of their time) and removed when the last of them drops it.
    fn shared() -> Arc<Source> {
        static SHARED: Mutex<Weak<Source>> = Mutex::new(Weak::new());
        // Held while building, so a test starting meanwhile waits and shares it.
        let mut slot = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(source) = slot.upgrade() {
            return source;
        }
        let source = Arc::new(Source::build());
        *slot = Arc::downgrade(&source);
        source
    }

    fn build() -> Source {
        let dir = TempDir::new().unwrap();
        let data = dir.path().join("data");
        let data_str = data.to_str().expect("utf-8 path");
        // 64M: the least that mutate accepts (it needs 250 files).
        run_workload(&["generate", data_str, "64M"], &[]);
        let pool = pool(dir.path(), 256 << 20, &[]);
        snapctl().arg("sync").arg(&data).arg(&pool).assert().success();
        snapctl().args(["snapshot", "@a"]).arg(&pool).assert().success();
        let digest_a = digest(&data);
        run_workload(&["mutate", data_str], &[]);
        snapctl().arg("sync").arg(&data).arg(&pool).assert().success();
        snapctl().args(["snapshot", "@b"]).arg(&pool).assert().success();
        let digest_b = digest(&data);
        assert_ne!(digest_a, digest_b, "mutate changed nothing");
        Source { pool, digest_a, digest_b, _dir: dir }
    }
}

/// A fresh, empty destination pool in its own folder under `dir`.
fn destination(dir: &Path, name: &str) -> PathBuf {
    let pool_dir = dir.join(name);
    std::fs::create_dir(&pool_dir).unwrap();
    pool(&pool_dir, 256 << 20, &[])
}

/// The destination checks clean and each snapshot exports to the tree it was taken of.
fn verify(dst: &Path, snapshots: &[(&str, &str)], scratch: &Path) {
    check(dst);
    for (snap, want) in snapshots {
        let out = scratch.join(format!("export-{}", snap.trim_start_matches('@')));
        snapctl().args(["export", snap]).arg(&out).arg(dst).assert().success();
        assert_eq!(digest(&out), *want, "{snap} received at {} differs from the source tree", dst.display());
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// A real sshd in the receiver namespace, with a throwaway host key and client key.
struct Sshd {
    server: Background,
    client_key: PathBuf,
    log: PathBuf,
}

impl Sshd {
    fn start(ns: &Namespaces, dir: &Path) -> Sshd {
        std::fs::create_dir(dir).unwrap();
        let keygen = |path: &Path| {
            let out = Process::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "snapfs-pipeline-test", "-f"])
                .arg(path)
                .output()
                .expect("run ssh-keygen");
            assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
        };
        let host_key = dir.join("host_key");
        let client_key = dir.join("client_key");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = dir.join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
        let config = dir.join("sshd_config");
        let p = |path: &Path| path.to_str().expect("utf-8 path").to_string();
        std::fs::write(
            &config,
            format!(
                "Port {SSH_PORT}\n\
                 ListenAddress {RECEIVER_ADDR}\n\
                 HostKey {}\n\
                 AuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 PidFile {}\n\
                 StrictModes no\n\
                 PrintMotd no\n",
                p(&host_key),
                p(&authorized),
                p(&dir.join("sshd.pid")),
            ),
        )
        .unwrap();
        // The privilege separation directory, which a fresh install may lack.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = dir.join("sshd.log");
        let mut cmd = in_ns(&ns.receiver, SSHD);
        cmd.args(["-D", "-e", "-f"]).arg(&config);
        let mut server = Background::spawn(cmd, "sshd", &dir.join("sshd.out"), &log);
        wait_listening(&ns.receiver, SSH_PORT, &mut server, &|| read(&log));
        Sshd { server, client_key, log }
    }

    /// `ssh root@RECEIVER REMOTE` as a shell command; REMOTE is already shell words.
    fn ssh(&self, remote: &str) -> String {
        let mut words = self.ssh_options();
        words.push(format!("root@{RECEIVER_ADDR}"));
        words.push(quote(remote));
        words.join(" ")
    }

    /// `ssh` with the options that reach this server, as words: no host, no command.
    fn ssh_options(&self) -> Vec<String> {
        let mut words =
            vec!["ssh".to_string(), "-F".into(), "/dev/null".into(), "-i".into(), quote_path(&self.client_key)];
        words.extend(["-p".to_string(), SSH_PORT.to_string()]);
        for option in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "ConnectTimeout=10",
            "LogLevel=ERROR",
        ] {
            words.extend(["-o".to_string(), option.to_string()]);
        }
        words
    }
}

/// Sends `args` of the source through ssh into `dst`, from the sender namespace.
fn send_through_ssh(ns: &Namespaces, sshd: &mut Sshd, args: &[&str], src: &Path, dst: &Path) {
    let remote = format!("{} {}", quote(&bin("snaprecv")), quote_path(dst));
    let script = pipeline(&snapsend(args, src), &sshd.ssh(&remote));
    let what = format!("snapsend {} | ssh snaprecv", args.join(" "));
    let out = run(
        {
            let mut cmd = in_ns(&ns.sender, "bash");
            cmd.args(["-c", &script]);
            cmd
        },
        &what,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let server = match sshd.server.exited() {
        Some(status) => format!("sshd exited: {status}"),
        None => "sshd running".to_string(),
    };
    let diagnostics = || {
        format!(
            "script: {script}\nstdout:\n{stdout}\nstderr (snapsend, ssh, snaprecv):\n{stderr}\n{server}; its log:\n{}",
            read(&sshd.log)
        )
    };
    assert_eq!(pipestatus(&stderr).as_deref(), Some("0 0"), "{what}: exit statuses (snapsend ssh)\n{}", diagnostics());
    assert!(out.status.success(), "{what}: {}\n{}", out.status, diagnostics());
    let target = args.last().expect("a snapshot");
    assert!(
        stdout.contains(&format!("received {target}")),
        "{what}: snaprecv did not say it received {target}\n{}",
        diagnostics()
    );
}

/// The flags of the installed nc: (to send and close at EOF, to listen on a port).
fn nc_flags() -> (Vec<String>, Vec<String>) {
    let out = Process::new("nc").arg("-h").output().expect("run nc -h");
    let help = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let listen = vec!["-l".to_string(), "-p".to_string(), NC_PORT.to_string()];
    if help.contains("OpenBSD netcat") {
        // -N: shut the socket down at EOF on stdin, so the listener sees the end.
        (vec!["-N".to_string()], listen)
    } else if help.contains("[v1.10") {
        // netcat-traditional: -q 0 quits (closing the socket) at EOF on stdin.
        (vec!["-q".to_string(), "0".to_string()], listen)
    } else {
        panic!("unknown nc (install netcat-openbsd: scripts/setup.sh); its help:\n{help}");
    }
}

/// Sends `args` of the source over TCP with nc into `dst`: `nc -l | snaprecv` in the
/// receiver namespace, `snapsend | nc` from the sender namespace.
fn send_through_nc(ns: &Namespaces, args: &[&str], src: &Path, dst: &Path, scratch: &Path) {
    let (send_flags, listen_flags) = nc_flags();
    let what = format!("snapsend {} | nc", args.join(" "));
    let recv_script = pipeline(
        &format!("nc {} < /dev/null", listen_flags.join(" ")),
        &format!("{} {}", quote(&bin("snaprecv")), quote_path(dst)),
    );
    let (recv_out, recv_err) = (scratch.join("nc-recv.out"), scratch.join("nc-recv.err"));
    let mut cmd = in_ns(&ns.receiver, "bash");
    cmd.args(["-c", &recv_script]);
    let mut receiver = Background::spawn(cmd, "nc -l | snaprecv", &recv_out, &recv_err);
    let recv_log =
        || format!("receiver stdout:\n{}\nreceiver stderr (nc, snaprecv):\n{}", read(&recv_out), read(&recv_err));
    wait_listening(&ns.receiver, NC_PORT, &mut receiver, &recv_log);

    let send_script = pipeline(&snapsend(args, src), &format!("nc {} {RECEIVER_ADDR} {NC_PORT}", send_flags.join(" ")));
    let mut cmd = in_ns(&ns.sender, "bash");
    cmd.args(["-c", &send_script]);
    let sent = run(cmd, &what);
    let received = receiver.wait(TIMEOUT);
    let send_err = String::from_utf8_lossy(&sent.stderr);
    let diagnostics = || {
        format!(
            "sender script: {send_script}\nsender stderr (snapsend, nc):\n{send_err}\n\
             receiver script: {recv_script}\nreceiver: {received:?}\n{}",
            recv_log()
        )
    };
    assert_eq!(pipestatus(&send_err).as_deref(), Some("0 0"), "{what}: exit statuses (snapsend nc)\n{}", diagnostics());
    assert!(sent.status.success(), "{what}: {}\n{}", sent.status, diagnostics());
    let received =
        received.unwrap_or_else(|| panic!("{what}: the receiver did not finish in {TIMEOUT:?}\n{}", diagnostics()));
    assert_eq!(
        pipestatus(&read(&recv_err)).as_deref(),
        Some("0 0"),
        "{what}: exit statuses (nc snaprecv)\n{}",
        diagnostics()
    );
    assert!(received.success(), "{what}: receiver {received}\n{}", diagnostics());
    let target = args.last().expect("a snapshot");
    assert!(
        read(&recv_out).contains(&format!("received {target}")),
        "{what}: snaprecv did not say it received {target}\n{}",
        diagnostics()
    );
}

#[test]
fn full_and_incremental_through_ssh() {
    const NAME: &str = "full_and_incremental_through_ssh";
    if !require_root(NAME) || !require_commands(NAME, TOOLS) {
        return;
    }
    let started = Instant::now();
    let step = |what: &str| eprintln!("{NAME}: {what} at {:.1?}", started.elapsed());
    let dir = TempDir::new().unwrap();
    let source = Source::shared();
    step("source ready");
    let ns = Namespaces::create();
    // Declared after the namespaces, so dropped (killed) before they are removed.
    let mut sshd = Sshd::start(&ns, &dir.path().join("ssh"));
    step("sshd listening");
    let dst = destination(dir.path(), "ssh-destination");

    send_through_ssh(&ns, &mut sshd, &["@a"], &source.pool, &dst);
    step("full stream received");
    verify(&dst, &[("@a", &source.digest_a)], dir.path());
    send_through_ssh(&ns, &mut sshd, &["-i", "@a", "@b"], &source.pool, &dst);
    step("incremental stream received");
    verify(&dst, &[("@a", &source.digest_a), ("@b", &source.digest_b)], dir.path());
    step("done");
}

#[test]
fn full_and_incremental_through_nc() {
    const NAME: &str = "full_and_incremental_through_nc";
    if !require_root(NAME) || !require_commands(NAME, TOOLS) {
        return;
    }
    let started = Instant::now();
    let step = |what: &str| eprintln!("{NAME}: {what} at {:.1?}", started.elapsed());
    let dir = TempDir::new().unwrap();
    let source = Source::shared();
    step("source ready");
    let ns = Namespaces::create();
    let dst = destination(dir.path(), "nc-destination");

    send_through_nc(&ns, &["@a"], &source.pool, &dst, dir.path());
    step("full stream received");
    verify(&dst, &[("@a", &source.digest_a)], dir.path());
    send_through_nc(&ns, &["-i", "@a", "@b"], &source.pool, &dst, dir.path());
    step("incremental stream received");
    verify(&dst, &[("@a", &source.digest_a), ("@b", &source.digest_b)], dir.path());
    step("done");
}

/// Runs scripts/snapfs-replicate from the sender namespace to `dst` through `sshd`; its
/// stderr, which must say nothing went wrong.
fn replicate(ns: &Namespaces, sshd: &Sshd, src: &Path, dst: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/snapfs-replicate");
    let bin_dir = Path::new(&bin("snapctl")).parent().unwrap().to_path_buf();
    let command = format!(
        "SNAPFS_SSH={} SNAPFS_BIN={} SNAPFS_REMOTE_BIN={} {} {} root@{RECEIVER_ADDR} {}",
        // The script splits SNAPFS_SSH on blanks, without the shell's quoting.
        quote(&sshd.ssh_options().iter().map(|w| w.trim_matches('\'')).collect::<Vec<_>>().join(" ")),
        quote_path(&bin_dir),
        quote_path(&bin_dir),
        quote_path(&script),
        quote_path(src),
        quote_path(dst)
    );
    let mut cmd = in_ns(&ns.sender, "bash");
    cmd.args(["-c", &command]);
    let out = run(cmd, "snapfs-replicate");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "snapfs-replicate: {}\n{stderr}\nsshd log:\n{}", out.status, read(&sshd.log));
    stderr
}

/// The snapshots of a pool holding tag `replica`.
fn held_by_replica(dev: &Path) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(&stdout(snapctl().args(["list", "--json"]).arg(dev))).unwrap();
    let held =
        listed.as_array().unwrap().iter().filter(|s| s["holds"].as_array().unwrap().iter().any(|t| t == "replica"));
    held.map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn nightly_replication_over_ssh_goes_on_after_pruning_on_both_sides() {
    // Goal: the README's nightly recipe, as the script it ships (scripts/snapfs-replicate),
    // through a real sshd: a full send the first night, incrementals after, the replica
    // away for two nights while both sides prune down to one automatic snapshot (`prune
    // --keep hourly=1`: all the nights fall in one hour), and a run that finds nothing
    // new. The base of the next incremental survives every prune through its holds.
    const NAME: &str = "nightly_replication_over_ssh_goes_on_after_pruning_on_both_sides";
    if !require_root(NAME) || !require_commands(NAME, &[TOOLS, &["jq"]].concat()) {
        return;
    }
    let dir = TempDir::new().unwrap();
    let ns = Namespaces::create();
    let sshd = Sshd::start(&ns, &dir.path().join("ssh"));
    let src = fresh_pool(dir.path(), "source.img", 128 << 20);
    let dst = destination(dir.path(), "replica");
    for night in 1..=6u64 {
        put(&src, &format!("night-{night}"), &noise(1 << 20, night));
        if night == 4 {
            snapctl().args(["rm", "night-1"]).arg(&src).assert().success();
        }
        snapctl().args(["snapshot", "--auto"]).arg(&src).assert().success();
        let away = night == 3 || night == 4;
        if !away {
            let said = replicate(&ns, &sshd, &src, &dst);
            assert!(said.contains(if night == 1 { "sending @" } else { " -> @" }), "night {night}: {said}");
        }
        snapctl().args(["prune", "--keep", "hourly=1"]).arg(&src).assert().success();
        snapctl().args(["prune", "--keep", "hourly=1"]).arg(&dst).assert().success();
        let (mine, theirs) = (held_by_replica(&src), held_by_replica(&dst));
        assert_eq!(mine.len(), 1, "night {night}: one base held here: {mine:?}");
        assert_eq!(mine, theirs, "night {night}: the same base held on both sides");
    }
    // Up to date: a run sends nothing.
    let said = replicate(&ns, &sshd, &src, &dst);
    assert!(said.contains("is up to date"), "{said}");
    check(&dst);
    let newest = held_by_replica(&dst).remove(0);
    for night in 2..=6u64 {
        let got = snapctl().args(["cat", &format!("@{newest}:night-{night}")]).arg(&dst).output().unwrap();
        assert!(got.stdout == noise(1 << 20, night), "night-{night} differs on the replica");
    }
    let gone = snapctl().args(["cat", &format!("@{newest}:night-1")]).arg(&dst).output().unwrap();
    assert!(!gone.status.success(), "night-1 was removed at the source and must be gone");
}
