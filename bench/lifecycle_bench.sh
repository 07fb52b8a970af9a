#!/usr/bin/env bash
# lifecycle_bench.sh: what the snapshot-management commands cost on pools holding few and
# many snapshots, or little and much data (issue 15: flat within 1.5x across 10 and 10,000
# snapshots and across 256 MiB / 1 GiB / 2 GiB; `list` of 10,000 under 0.5 s; a prune of
# 5,000 in one commit under 5 s).
#
# Per count N of COUNTS, one pool on a loop device (so every command opens the device
# cold: the kernel drops a block device's cache at its last close) with a small tree and N
# automatic snapshots; or, with SIZES set, per size one pool holding the workload's data
# set of that size and 10 automatic snapshots. Then RUNS rounds, the pools' order
# alternating: each round times snapshot, rename, hold, release, bookmark, clone (of the
# newest), rollback (to the newest) and diff (the newest two), and list. Last, `prune
# --keep hourly=1`, which destroys all but the newest automatic snapshot in one commit,
# timed once per pool. The pools are made first, then written back (`sync`) and the
# caches dropped, so the timed commands do not wait for the writeback of the ones that
# made them.
#
# Output: "N=... op=... ms=..." per measurement (N the count, or the size), then per op
# the median at each N and the ratio of the last N's median to the first's.
#
# Settings (environment): COUNTS="10 10000", SIZES (for example "256M 1G 2G"; replaces
# COUNTS), RUNS=5, BENCH_DIR=/tmp/bench-lifecycle, DATA_DIR (datasets are cached by
# shared/bench). Run as root (loop devices, drop_caches); LOOP_DIO and the rest as in
# shared/bench/lib.sh.
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/bench-lifecycle}
# shellcheck source=bench/start.sh
source "$(dirname "$0")/start.sh"
COUNTS=${COUNTS:-10 10000} RUNS=${RUNS:-5} SIZES=${SIZES:-}
DATA_DIR=${DATA_DIR:-/tmp/bench/data}
LABELS=${SIZES:-$COUNTS}
on_loop_devices

declare -A DEV TIMES
OPS="snapshot rename hold release bookmark clone rollback diff list"
ms() {  # ms COMMAND...: runs it, prints its wall time in milliseconds
    tic
    "$@" > /dev/null
    toc
    printf "%.1f\n" "$MS"  # tenths: whole milliseconds made 4 against 6 read as 1.50
}

for n in $LABELS; do
    if [[ -n $SIZES ]]; then
        dataset src "$n"
        count=10 bytes=$(dataset_bytes "$src")
    else
        src=$BENCH_DIR/src count=$n bytes=0
        mkdir -p "$src"
        head -c 100000 /dev/urandom > "$src/f"
    fi
    new_loop dev "lifecycle-$n" $(((1 << 30) + (2 * bytes >> 20 << 20)))
    DEV[$n]=$dev
    "$BIN/snapfmt" --history 0 "$dev" > /dev/null
    "$BIN/snapctl" sync "$src" "$dev" > /dev/null
    start=$SECONDS
    for ((i = 0; i < count; i++)); do "$BIN/snapctl" snapshot --auto "$dev" > /dev/null; done
    echo "# N=$n: $count snapshots made in $((SECONDS - start)) s ($bytes bytes of data)"
done
# What making them left dirty in the page cache must not be written back during the runs.
drop_caches

for ((run = 1; run <= RUNS; run++)); do
    for n in $(alternating "$LABELS" "$run"); do
        dev=${DEV[$n]} c="$BIN/snapctl"
        for op in $OPS; do
            case $op in
                snapshot) t=$(ms "$c" snapshot "@x$run" "$dev") ;;
                rename) t=$(ms "$c" rename "@x$run" "@y$run" "$dev") ;;
                hold) t=$(ms "$c" hold bench "@y$run" "$dev") ;;
                release) t=$(ms "$c" release bench "@y$run" "$dev") ;;
                bookmark) t=$(ms "$c" bookmark "@y$run" "#b$run" "$dev") ;;
                clone) t=$(ms "$c" clone "@y$run" "c$run" "$dev") ;;
                rollback) t=$(ms "$c" rollback "@y$run" "$dev") ;;
                diff) t=$(ms "$c" diff "@y$run" "$dev") ;;
                list) t=$(ms "$c" list "$dev") ;;
            esac
            echo "N=$n run=$run op=$op ms=$t"
            TIMES[$n.$op]+="$t "
        done
    done
done
for n in $LABELS; do
    t=$(ms "$BIN/snapctl" prune --keep hourly=1 "${DEV[$n]}")
    echo "N=$n op=prune(all but one) ms=$t"
    "$BIN/snapctl" check "${DEV[$n]}" > /dev/null || { echo "check failed on the pool of $n" >&2; exit 1; }
done
scaling_report "$LABELS" "$OPS"
