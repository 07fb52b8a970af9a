#!/usr/bin/env bash
# batch_bench.sh: a `snapctl batch` of many small changes against separate commands
# (issue 16: a batch of 1,000 small changes is one commit, faster than 10 separate
# `put`s).
#
# One pool on a loop device (every command opens it cold) and CHANGES small host files
# (200 B - 4 KiB). Per round, the order alternating: one `snapctl batch` that puts all
# CHANGES files into a fresh directory (plus its mkdir), and SEPARATE `snapctl put`s of
# as many of them into another. Before each timing the pool is written back, the
# caches dropped and the host files read back in (both sides read them from memory).
#
# Output: "round=R batch_ms=... separate_ms=..." per round, then the medians, the
# ratio batch / separate, and the commits each side made.
#
# Settings (environment): CHANGES=1000, SEPARATE=10, RUNS=5, BENCH_DIR=/tmp/bench-batch.
# Run as root (loop devices, drop_caches); LOOP_DIO and the rest as in shared/bench/lib.sh.
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/bench-batch}
# shellcheck source=bench/start.sh
source "$(dirname "$0")/start.sh"
CHANGES=${CHANGES:-1000} SEPARATE=${SEPARATE:-10} RUNS=${RUNS:-5}
[[ $(id -u) == 0 ]] || die "run as root (loop devices, drop_caches)"
mkdir -p "$BENCH_DIR"
trap release_devices EXIT
probe_drop_caches
(cd "$REPO" && cargo build --release --quiet)

files=$BENCH_DIR/files
rm -rf "$files"
mkdir -p "$files"
for ((i = 0; i < CHANGES; i++)); do
    head -c $((200 + (i * 3877) % 3897)) /dev/urandom > "$files/f$i"
done
new_loop dev batch $((1 << 30))
"$BIN/snapfmt" "$dev" > /dev/null

txg() { "$BIN/snapctl" history "$dev" | awk '/^txg/ { t = $2 } END { print t }'; }

timed_batch() {  # timed_batch ROUND: one batch of CHANGES puts; prints ms
    local list=$BENCH_DIR/list
    {
        echo "mkdir b$1"
        for ((i = 0; i < CHANGES; i++)); do echo "put $files/f$i b$1/f$i"; done
    } > "$list"
    sync
    drop_caches
    warm_tree "$files"
    tic
    "$BIN/snapctl" batch "$dev" < "$list" > /dev/null
    toc
    echo "$MS"
}

timed_separate() {  # timed_separate ROUND: SEPARATE puts, a commit each; prints ms
    "$BIN/snapctl" mkdir "s$1" "$dev" > /dev/null
    sync
    drop_caches
    warm_tree "$files"
    tic
    for ((i = 0; i < SEPARATE; i++)); do "$BIN/snapctl" put "$files/f$i" "s$1/f$i" "$dev" > /dev/null; done
    toc
    echo "$MS"
}

BATCHES="" SEPARATES="" BATCH_COMMITS=0 SEPARATE_COMMITS=0
for ((run = 1; run <= RUNS; run++)); do
    before=$(txg)
    if ((run % 2)); then
        b=$(timed_batch "$run")
        mid=$(txg)
        s=$(timed_separate "$run")
        BATCH_COMMITS=$((mid - before)) SEPARATE_COMMITS=$(($(txg) - mid - 1))
    else
        s=$(timed_separate "$run")
        mid=$(txg)
        b=$(timed_batch "$run")
        SEPARATE_COMMITS=$((mid - before - 1)) BATCH_COMMITS=$(($(txg) - mid))
    fi
    echo "round=$run batch_ms=$b separate_ms=$s"
    BATCHES+="$b " SEPARATES+="$s "
done
"$BIN/snapctl" check "$dev" > /dev/null || die "check failed"
# shellcheck disable=SC2086  # the lists split on purpose
a=$(median $BATCHES) b=$(median $SEPARATES)
echo "median batch of $CHANGES changes ms=$a ($BATCH_COMMITS commit); $SEPARATE separate puts ms=$b ($SEPARATE_COMMITS commits)"
echo "ratio batch / separate = $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }') (target < 1)"
