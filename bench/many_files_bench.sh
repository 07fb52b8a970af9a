#!/usr/bin/env bash
# many_files_bench.sh: many small files. `snapctl sync` beside `cp -a` + `sync` into btrfs
# on the same kind of loop device, its peak memory, and the re-sync of the unchanged tree.
#
# Usage: bench/many_files_bench.sh [FILES]        (default 200000)
#
# The tree is made by a deterministic generator (the same FILES and seed give the same
# names, sizes and bytes): 1,000 files a directory, each of SIZE_MIN-SIZE_MAX bytes, half
# text-like, half random. It lives on a private tmpfs, so reading it costs no disk.
#
# Each run (RUNS, order alternating so a drift of the busy machine favours neither side):
#   snapfs   `snapctl sync` into a fresh pool + `sync`: seconds and peak RSS (/usr/bin/time
#            %M, target < 256 MiB at any file count); then the re-sync of the unchanged
#            tree, caches dropped first (target < 1 s at 200,000 files). Each with its CPU
#            seconds (user + kernel), the figure a busy machine disturbs least.
#   btrfs    `cp -a` + `sync` into a fresh btrfs subvolume (target: snapfs >= 1.5x)
#
# Environment:
#   RUNS=3             runs of both sides
#   SIZE_MIN=200 SIZE_MAX=4096   file sizes in bytes; SIZE_MAX=0 makes empty files (a
#                      file count the host disk could not hold with data: 2,000,000 files
#                      of 2 KiB need some 8 GiB of tmpfs and 8 GiB of pool)
#   BTRFS=1            0 skips btrfs (the memory figure alone)
#   CHECK=1            0 skips `snapctl check` and `snapctl scrub` of the pool after the
#                      re-sync, each timed with its peak RSS (target < 256 MiB; check reads
#                      every block: minutes at 2,000,000 files)
#   SNAPCTL_BIN=DIR    binaries to measure (default target/release of this checkout)
#   BENCH_DIR, LOOP_DIO, WORKLOAD_SEED: see shared/bench/lib.sh
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"

FILES=${1:-200000}
RUNS=${RUNS:-3}
SIZE_MIN=${SIZE_MIN:-200}
SIZE_MAX=${SIZE_MAX:-4096}
BTRFS=${BTRFS:-1}
CHECK=${CHECK:-1}
BIN=${SNAPCTL_BIN:-$REPO/target/release}
RESULTS=${RESULTS:-$BENCH_DIR/results/many_files-$(date +%Y%m%d-%H%M%S).txt}
SRC_MNT=$BENCH_DIR/many_src
MNT=$BENCH_DIR/many_btrfs

[[ $(id -u) == 0 ]] || die "run as root (loop devices, tmpfs, drop_caches)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: apt-get install -y time"
[[ -x $BIN/snapctl && -x $BIN/snapfmt ]] || die "no binaries in $BIN: cargo build --release"
mkdir -p "$BENCH_DIR" "$(dirname "$RESULTS")"
WORK=$(mktemp -d /tmp/many-files-bench.XXXXXX)
cp "$BIN/snapctl" "$BIN/snapfmt" "$WORK/"  # others may rebuild target/ during the run
SNAPCTL=$WORK/snapctl SNAPFMT=$WORK/snapfmt

cleanup() {
    release_devices
    if mountpoint -q "$SRC_MNT"; then umount "$SRC_MNT"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

generate() {  # generate DIR: the tree of FILES files
    python3 - "$1" "$FILES" "$SIZE_MIN" "$SIZE_MAX" "$WORKLOAD_SEED" <<'PY'
import os, random, sys
root, files, lo, hi, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = random.Random(seed)
text = bytes(r.choice(b"etaoinshrdlu      \n") for _ in range(1 << 16))
noise = r.randbytes(1 << 16)
mtime = 1_700_000_000
for i in range(files):
    d = os.path.join(root, "d%05d" % (i // 1000))
    if i % 1000 == 0:
        os.mkdir(d)
    size = r.randint(lo, hi) if hi > 0 else 0
    start = r.randrange(0, (1 << 16) - size + 1)
    path = os.path.join(d, "f%07d" % i)
    with open(path, "wb") as f:
        f.write((text if i % 2 else noise)[start:start + size])
    os.utime(path, (mtime, mtime + i))
PY
}

probe_drop_caches
mkdir -p "$SRC_MNT"
# Pages of 4 KiB per file and some 1 KiB of inode and dentry each.
mount -t tmpfs -o "size=$((FILES * (4096 + 1024) + (256 << 20))),nr_inodes=$((FILES + FILES / 500 + 1000))" tmpfs "$SRC_MNT"
SRC=$SRC_MNT/tree
mkdir "$SRC"
tic; generate "$SRC"; toc
DATA_BYTES=$(du -sb --apparent-size "$SRC" | cut -f1)
note "many_files: $FILES files, $SIZE_MIN-$SIZE_MAX bytes, $DATA_BYTES bytes; generated in $SECS s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
IMG_BYTES=$((FILES * 12288 + (1 << 30)))

run_snapfs() {
    local dev rss user sys
    new_loop dev snapfs "$IMG_BYTES"
    "$SNAPFMT" -f "$dev" > /dev/null
    drop_caches
    tic
    /usr/bin/time -f '%M %U %S' -o "$WORK/time" "$SNAPCTL" sync "$SRC" "$dev" > "$WORK/sync.log" 2>&1 ||
        { cat "$WORK/sync.log" >&2; die "snapctl sync failed"; }
    sync
    toc
    read -r rss user sys < "$WORK/time"
    emit snapfs_sync_s "$SECS"
    emit snapfs_sync_cpu_s "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
    emit snapfs_sync_peak_rss_KiB "$rss"
    drop_caches
    tic
    /usr/bin/time -f '%M %U %S' -o "$WORK/time" "$SNAPCTL" sync "$SRC" "$dev" > "$WORK/sync.log" 2>&1 ||
        { cat "$WORK/sync.log" >&2; die "snapctl re-sync failed"; }
    sync
    toc
    read -r rss user sys < "$WORK/time"
    emit snapfs_resync_s "$SECS"
    emit snapfs_resync_cpu_s "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
    emit snapfs_resync_peak_rss_KiB "$rss"
    if ((CHECK)); then
        local cmd
        for cmd in check scrub; do
            drop_caches
            tic
            /usr/bin/time -f '%M %U %S' -o "$WORK/time" "$SNAPCTL" "$cmd" "$dev" > "$WORK/$cmd.log" 2>&1 ||
                { cat "$WORK/$cmd.log" >&2; die "snapctl $cmd failed"; }
            toc
            read -r rss user sys < "$WORK/time"
            emit "snapfs_${cmd}_s" "$SECS"
            emit "snapfs_${cmd}_peak_rss_KiB" "$rss"
        done
    fi
    release_devices
}

run_btrfs() {
    local dev
    new_loop dev btrfs "$IMG_BYTES"
    mkfs.btrfs -f -q "$dev" > /dev/null 2>&1
    mount_dev "$dev" "$MNT" noatime
    btrfs -q subvolume create "$MNT/live"
    drop_caches
    tic; cp -a "$SRC/." "$MNT/live/"; sync; toc
    emit btrfs_copy_s "$SECS"
    release_devices
}

for ((run = 1; run <= RUNS; run++)); do
    RUN_TAG=run$run RUNS_SEEN+=("$RUN_TAG")
    if ((BTRFS == 0)); then
        run_snapfs
    elif ((run % 2)); then
        run_snapfs; run_btrfs
    else
        run_btrfs; run_snapfs
    fi
    if ((BTRFS == 1)); then
        emit speedup "$(awk -v b="${FIG[$RUN_TAG.btrfs_copy_s]}" -v s="${FIG[$RUN_TAG.snapfs_sync_s]}" 'BEGIN { printf "%.2f", b / s }')"
    fi
done
summary
