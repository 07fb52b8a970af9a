#!/usr/bin/env bash
# setup.sh: installs what snapfs needs on a fresh Debian machine, then builds it.
# Idempotent and quick when everything is present. Called by demo.sh and test.sh.
#
#   apt: python3 (workload generator), e2fsprogs and util-linux (loop-device tests),
#        btrfs-progs and time (the benchmark beside btrfs), openssh-server,
#        openssh-client, netcat-openbsd and iproute2 (the ssh and nc pipeline test),
#        g++ (libFuzzer, which the fuzz targets link, is C++), jq (scripts/snapfs-replicate)
#   cargo: the crates in Cargo.lock; cargo-fuzz (scripts/fuzz.sh; about 2 minutes to
#        build, once)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 > /dev/null || need+=(python3)
command -v mkfs.ext4 > /dev/null || need+=(e2fsprogs)
command -v losetup > /dev/null || need+=(util-linux)
command -v mkfs.btrfs > /dev/null || need+=(btrfs-progs)
[[ -x /usr/bin/time ]] || need+=(time)
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v ssh > /dev/null && command -v ssh-keygen > /dev/null || need+=(openssh-client)
command -v nc.openbsd > /dev/null || need+=(netcat-openbsd)
command -v ip > /dev/null || need+=(iproute2)
command -v g++ > /dev/null || need+=(g++)
command -v jq > /dev/null || need+=(jq)
if ((${#need[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "setup: missing packages ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" > /dev/null
fi

if ! command -v cargo > /dev/null; then
    echo "setup: cargo is missing; install Rust with https://rustup.rs" >&2
    exit 1
fi
cargo fuzz --version > /dev/null 2>&1 || cargo install --locked --quiet cargo-fuzz@0.13.2
cargo build --release --quiet --locked
