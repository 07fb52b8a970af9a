#!/usr/bin/env bash
# snapshot_scale.sh OLD_BIN_DIR NEW_BIN_DIR: what one `snapctl snapshot` costs on pools that
# already hold COUNTS snapshots (each also a retained commit), two builds side by side.
#
# Each pool is made once (a small tree synced, then N snapshots one by one; cached in
# $BENCH_DIR/snapscale-N.img, which takes a few minutes for 10000) and attached to a loop
# device, so every command opens the device cold (the kernel drops a block device's cache
# at its last close). Then, RUNS times, alternating which build goes first: a snapshot by
# each build, timed, and one more under `strace -c` for its pread64 and pwrite64 calls.
# Each snapshot adds to the pool, so later runs see N + a few: the same for both sides.
#
# Output: one line per measurement "N side run ms reads writes", then medians per N and side.
#
# Settings (environment): COUNTS="10 1000 10000", RUNS=5, BENCH_DIR=/tmp/bench. Run as root.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help || $# -ne 2 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ $# -eq 2 ]] && exit 0 || exit 2
fi
OLD=$1
NEW=$2
COUNTS=${COUNTS:-10 1000 10000}
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/bench}
[[ $(id -u) == 0 ]] || { echo "run as root (loop devices)" >&2; exit 2; }
mkdir -p "$BENCH_DIR"

make_pool() {  # make_pool N: the cached image with N snapshots
    local img=$BENCH_DIR/snapscale-$1.img src=$BENCH_DIR/snapscale-src
    [[ -f $img ]] && { echo "$img"; return; }
    mkdir -p "$src"
    for i in $(seq 1 50); do head -c 4096 /dev/urandom > "$src/f$i"; done
    truncate -s 1G "$img.tmp"
    "$NEW/snapfmt" "$img.tmp" > /dev/null
    "$NEW/snapctl" sync "$src" "$img.tmp" > /dev/null
    for i in $(seq 1 "$1"); do "$NEW/snapctl" snapshot "@s$i" "$img.tmp" > /dev/null; done
    mv "$img.tmp" "$img"
    echo "$img"
}

one() {  # one DIR DEV: prints "ms reads writes"
    local start end counts
    start=$(date +%s%N)
    "$1/snapctl" snapshot "@t$RANDOM$RANDOM" "$2" > /dev/null
    end=$(date +%s%N)
    counts=$(strace -c -e trace=pread64,pwrite64 "$1/snapctl" snapshot "@c$RANDOM$RANDOM" "$2" 2>&1 > /dev/null |
        awk '/pread64/ {r = $4} /pwrite64/ {w = $4} END {print r + 0, w + 0}')
    echo "$(( (end - start) / 1000 )) $counts" | awk '{printf "%.1f %s %s\n", $1 / 1000, $2, $3}'
}

results=$(mktemp)
for n in $COUNTS; do
    img=$(make_pool "$n")
    dev=$(losetup -f --show "$img")
    for run in $(seq 1 "$RUNS"); do
        order="old new"; (( run % 2 == 0 )) && order="new old"
        for side in $order; do
            dir=$OLD; [[ $side == new ]] && dir=$NEW
            echo "$n $side $run $(one "$dir" "$dev")" | tee -a "$results"
        done
    done
    losetup -d "$dev"
done
echo "# medians: N side ms reads writes"
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for n in $COUNTS; do
    for side in old new; do
        row="$n $side"
        for col in 4 5 6; do
            row="$row $(awk -v n="$n" -v s="$side" -v c="$col" '$1 == n && $2 == s {print $c}' "$results" | median)"
        done
        echo "$row"
    done
done
rm -f "$results"
