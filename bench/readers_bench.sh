#!/usr/bin/env bash
# readers_bench.sh: does a long send slow a writer down? (issue 15: a `sync` started while
# a 1 GiB `snapsend` runs finishes in under 1.5x its time alone.)
#
# One pool on a loop device holding the workload's 1 GiB data set as snapshot @big, and
# the workload's SYNC_SIZE data set (256M) on the host. Per round, `snapctl sync` of that
# data set into a fresh directory of the live tree is timed twice: alone, and while
# `snapsend @big` streams to /dev/null over and over (started first, stopped when the sync
# is done); the order alternates between rounds. Before each timing the host tree is read
# into the page cache and the pool's written back, so both timings start alike; after it
# the copy is removed (history 0 frees it at the next commit). Before readers pinned what
# they read, a sync during a send was refused at once (exit 4).
#
# Output: per round "round=R alone_s=... beside_send_s=... ratio=...", then the median of
# the ratios and the sends completed while syncs ran.
#
# Settings (environment): RUNS=5, SYNC_SIZE=256M, BENCH_DIR=/tmp/bench. Run as root (loop
# devices, drop_caches); the rest as in shared/bench/lib.sh.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"
RESULTS=${RESULTS:-/dev/null}
RUNS=${RUNS:-5} SYNC_SIZE=${SYNC_SIZE:-256M}
BIN=$REPO/target/release
[[ $(id -u) == 0 ]] || die "run as root (loop devices, drop_caches)"
mkdir -p "$BENCH_DIR"
SENDER=
stop_sender() {
    if [[ -n $SENDER ]]; then
        local children
        children=$(pgrep -P "$SENDER" || true)
        kill "$SENDER" 2> /dev/null || true
        # shellcheck disable=SC2086  # one pid a word
        [[ -z $children ]] || kill $children 2> /dev/null || true
        wait "$SENDER" 2> /dev/null || true
        while pgrep -x snapsend > /dev/null; do sleep 0.05; done
        SENDER=
    fi
}
trap 'stop_sender; release_devices' EXIT
probe_drop_caches
(cd "$REPO" && cargo build --release --quiet)

dataset big 1G
dataset small "$SYNC_SIZE"
new_loop dev readers $((4 << 30))
"$BIN/snapfmt" --history 0 "$dev" > /dev/null
"$BIN/snapctl" sync "$big" /big "$dev" > /dev/null
"$BIN/snapctl" snapshot @big "$dev" > /dev/null
SENDS=$BENCH_DIR/readers-sends

# sends_forever: streams @big to /dev/null until killed, counting whole sends.
sends_forever() {
    : > "$SENDS"
    while "$BIN/snapsend" @big "$dev" > /dev/null; do echo >> "$SENDS"; done
}

timed_sync() {  # timed_sync beside|alone: prints the seconds `snapctl sync` took
    warm_tree "$small"
    sync
    if [[ $1 == beside ]]; then
        sends_forever > /dev/null &
        SENDER=$!
        sleep 0.5  # the sender is past its open and streaming
    fi
    tic
    "$BIN/snapctl" sync "$small" /copy "$dev" > /dev/null
    toc
    stop_sender
    "$BIN/snapctl" rm -r /copy "$dev" > /dev/null
    echo "$SECS"
}

ratios=() sends=0
for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then
        alone=$(timed_sync alone) beside=$(timed_sync beside)
    else
        beside=$(timed_sync beside) alone=$(timed_sync alone)
    fi
    sends=$((sends + $(wc -l < "$SENDS")))
    ratio=$(awk -v a="$alone" -v b="$beside" 'BEGIN { printf "%.2f", b / a }')
    ratios+=("$ratio")
    echo "round=$run alone_s=$alone beside_send_s=$beside ratio=$ratio"
done
"$BIN/snapctl" check "$dev" > /dev/null || die "check failed"
echo "median ratio=$(median "${ratios[@]}") (target < 1.5); whole sends completed beside the syncs: $sends"
