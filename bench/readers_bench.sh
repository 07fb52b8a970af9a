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
# The same beside btrfs, on a loop device of its own: `cp -a` of the data set into a fresh
# directory plus `sync`, alone and while `btrfs send` of a read-only snapshot of the 1 GiB
# data set streams to /dev/null over and over (both tools have the same two cores and
# the same kind of device to share).
#
# Output: per round and tool "tool=T round=R alone_s=... beside_send_s=... ratio=...",
# then per tool the median of the ratios and the sends completed while copies ran.
#
# Settings (environment): RUNS=5, SYNC_SIZE=256M, BENCH_DIR=/tmp/bench; SENDER_PREFIX, a
# command the snapfs sender runs under (for example "nice -n 19", to see what the
# writers gain when the sender yields the CPU; empty by default). Run as root (loop
# devices, btrfs, drop_caches); the rest as in shared/bench/lib.sh.
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
# shellcheck source=bench/start.sh
source "$(dirname "$0")/start.sh"
RUNS=${RUNS:-5} SYNC_SIZE=${SYNC_SIZE:-256M}
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
        while pgrep -x snapsend > /dev/null || pgrep -f 'btrfs send' > /dev/null; do sleep 0.05; done
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
new_loop bdev readers-btrfs $((4 << 30))
mkfs.btrfs -q "$bdev"
MNT=$BENCH_DIR/mnt/readers-btrfs
mount_dev "$bdev" "$MNT"
btrfs subvolume create "$MNT/live" > /dev/null
cp -a "$big" "$MNT/live/big"
btrfs subvolume snapshot -r "$MNT/live" "$MNT/big" > /dev/null
sync
SENDS=$BENCH_DIR/readers-sends

# sends_forever TOOL: streams the 1 GiB snapshot to /dev/null until killed, counting
# whole sends.
sends_forever() {
    : > "$SENDS"
    case $1 in
        snapfs) while ${SENDER_PREFIX:-} "$BIN/snapsend" @big "$dev" > /dev/null; do echo >> "$SENDS"; done ;;
        btrfs) while btrfs send -q "$MNT/big" > /dev/null; do echo >> "$SENDS"; done ;;
    esac
}

copy_in() {  # copy_in TOOL: the timed write
    case $1 in
        snapfs) "$BIN/snapctl" sync "$small" /copy "$dev" > /dev/null ;;
        btrfs) cp -a "$small" "$MNT/live/copy" && sync ;;
    esac
}

remove_copy() {
    case $1 in
        snapfs) "$BIN/snapctl" rm -r /copy "$dev" > /dev/null ;;
        btrfs) rm -rf "$MNT/live/copy" && sync ;;
    esac
}

timed_copy() {  # timed_copy TOOL beside|alone: prints the seconds the copy-in took
    warm_tree "$small"
    sync
    if [[ $2 == beside ]]; then
        sends_forever "$1" > /dev/null &
        SENDER=$!
        sleep 0.5  # the sender is past its open and streaming
    fi
    tic
    copy_in "$1"
    toc
    stop_sender
    remove_copy "$1"
    echo "$SECS"
}

declare -A RATIOS SENT
for ((run = 1; run <= RUNS; run++)); do
    tools="snapfs btrfs"
    ((run % 2)) || tools="btrfs snapfs"
    for tool in $tools; do
        if ((run % 2)); then
            alone=$(timed_copy "$tool" alone) beside=$(timed_copy "$tool" beside)
        else
            beside=$(timed_copy "$tool" beside) alone=$(timed_copy "$tool" alone)
        fi
        SENT[$tool]=$((${SENT[$tool]:-0} + $(wc -l < "$SENDS")))
        ratio=$(awk -v a="$alone" -v b="$beside" 'BEGIN { printf "%.2f", b / a }')
        RATIOS[$tool]+="$ratio "
        echo "tool=$tool round=$run alone_s=$alone beside_send_s=$beside ratio=$ratio"
    done
done
"$BIN/snapctl" check "$dev" > /dev/null || die "check failed"
for tool in snapfs btrfs; do
    # shellcheck disable=SC2086  # the list splits on purpose
    echo "tool=$tool median ratio=$(median ${RATIOS[$tool]}) (target < 1.5); whole sends beside the copies: ${SENT[$tool]}"
done
