#!/usr/bin/env bash
# ab_commit.sh BASE: the cost of a change in the write path, as alternating runs of the
# binaries of commit BASE (built in a throwaway worktree) and of this checkout's release
# binaries, on the same workload, each run on a fresh loop device.
#
# Each run, for each side (the order alternates from run to run): snapfmt, caches
# dropped, then
#   sync_s, sync_MiB_written       `snapctl sync` of the SIZE dataset (cold source cache),
#                                  and what the device wrote (its stat counters)
#   snapshot_ms, snapshot_KiB_written   `snapctl snapshot @a` after it
# The summary prints every figure per run and the medians, side by side.
#
# README's figures for ditto metadata: `bench/ab_commit.sh 7181311~1` (format 3, one copy
# of metadata) against format 4.
#
# Settings (environment): SIZE=1G, RUNS=3, IMG_MIN=4G, RESULTS=bench/results/ab-<date>.txt,
# and BENCH_DIR, LOOP_DIO, WORKLOAD_SEED (see shared/bench/lib.sh). Run as root.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help || $# -ne 1 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ $# -eq 1 ]] && exit 0 || exit 2
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"

BASE=$1
SIZE=${SIZE:-1G}
RUNS=${RUNS:-3}
IMG_MIN=$(bytes_of "${IMG_MIN:-4G}")
RESULTS=${RESULTS:-$REPO/bench/results/ab-$(date +%Y%m%d-%H%M%S).txt}
SIZE_BYTES=$(bytes_of "$SIZE")
IMG_BYTES=$((3 * SIZE_BYTES > IMG_MIN ? 3 * SIZE_BYTES : IMG_MIN))

[[ $(id -u) == 0 ]] || die "run as root (loop devices, drop_caches)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
base_rev=$(git -C "$REPO" rev-parse --short "$BASE^{commit}" 2> /dev/null) || die "no commit $BASE in $REPO"
mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"

WORK=$(mktemp -d /tmp/snapfs-ab.XXXXXX)
cleanup() {
    set +e
    release_devices
    git -C "$REPO" worktree remove --force "$WORK/base" 2> /dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both sides' binaries are copied aside: a rebuild during the run changes nothing.
(cd "$REPO" && cargo build --release --quiet --bin snapfmt --bin snapctl) >&2 || die "cargo build failed"
mkdir -p "$WORK/new" "$WORK/old"
cp "$REPO/target/release/snapfmt" "$REPO/target/release/snapctl" "$WORK/new/"
git -C "$REPO" worktree add --quiet --detach "$WORK/base" "$base_rev"
(cd "$WORK/base" && CARGO_TARGET_DIR=$WORK/base/target cargo build --release --quiet --bin snapfmt --bin snapctl) >&2 ||
    die "cargo build of $base_rev failed"
cp "$WORK/base/target/release/snapfmt" "$WORK/base/target/release/snapctl" "$WORK/old/"

probe_drop_caches
note "ab_commit: old=$base_rev new=$(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo -dirty) SIZE=$SIZE RUNS=$RUNS $(date -u +%FT%TZ)"
dataset SRC "$SIZE"

written_kib() { awk '{ print $7 / 2 }' "/sys/block/$(basename "$1")/stat"; } # sectors written / 2

side_run() { # side_run old|new
    local bin=$WORK/$1 dev w0 w1 w2
    FIG_PREFIX=$1.
    new_loop dev "ab-$1" "$IMG_BYTES"
    "$bin/snapfmt" --history 0 "$dev" > /dev/null
    sync
    drop_caches
    w0=$(written_kib "$dev")
    tic; "$bin/snapctl" sync "$SRC" "$dev" > /dev/null; toc
    emit sync_s "$SECS"
    w1=$(written_kib "$dev")
    emit sync_MiB_written $(((${w1%.*} - ${w0%.*}) / 1024))
    tic; "$bin/snapctl" snapshot @a "$dev" > /dev/null; toc
    emit snapshot_ms "$MS"
    w2=$(written_kib "$dev")
    emit snapshot_KiB_written $((${w2%.*} - ${w1%.*}))
    release_devices
}

for ((run = 1; run <= RUNS; run++)); do
    RUN_TAG=run$run
    RUNS_SEEN+=("$RUN_TAG")
    if ((run % 2)); then side_run old && side_run new; else side_run new && side_run old; fi
done
FIG_PREFIX=
RUN_TAG=summary
summary
for figure in sync_s sync_MiB_written snapshot_ms snapshot_KiB_written; do
    old=() new=()
    for run in "${RUNS_SEEN[@]}"; do
        old+=("${FIG[$run.old.$figure]}") new+=("${FIG[$run.new.$figure]}")
    done
    o=$(median "${old[@]}") n=$(median "${new[@]}")
    note "$figure median: old ($base_rev) $o, new $n, new/old $(awk -v o="$o" -v n="$n" 'BEGIN { printf "%.3f", (o > 0 ? n / o : 0) }')"
done
