#!/usr/bin/env bash
# lifecycle_bench.sh: what the snapshot-management commands cost on pools holding few and
# many snapshots (issue 15: flat within 1.5x across 10 and 10,000 snapshots; `list` of
# 10,000 under 0.5 s; a prune of 5,000 in one commit under 5 s).
#
# Per count N of COUNTS, one pool on a loop device (so every command opens the device
# cold: the kernel drops a block device's cache at its last close) with a small tree and N
# automatic snapshots. Then RUNS rounds, the pools' order alternating: each round times
# snapshot, rename, hold, release, rollback (to the newest) and diff (the newest two), and
# list. Last, `prune --keep hourly=1`, which destroys all but the newest automatic
# snapshot in one commit, timed once per pool. The pools are made first, then written
# back (`sync`) and the caches dropped, so the timed commands do not wait for the
# writeback of the ones that made them.
#
# Output: "N=... op=... ms=..." per measurement, then per op the median at each N and the
# ratio of the largest N's median to the smallest's.
#
# Settings (environment): COUNTS="10 10000", RUNS=5, BENCH_DIR=/tmp/bench-lifecycle. Run
# as root (loop devices, drop_caches); LOOP_DIO and the rest as in shared/bench/lib.sh.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
BENCH_DIR=${BENCH_DIR:-/tmp/bench-lifecycle}
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"
RESULTS=${RESULTS:-/dev/null}
COUNTS=${COUNTS:-10 10000} RUNS=${RUNS:-5}
BIN=$REPO/target/release
[[ $(id -u) == 0 ]] || die "run as root (loop devices, drop_caches)"
mkdir -p "$BENCH_DIR"
trap release_devices EXIT
probe_drop_caches
(cd "$REPO" && cargo build --release --quiet)

declare -A DEV TIMES
ms() {  # ms COMMAND...: runs it, prints its wall time in milliseconds
    tic
    "$@" > /dev/null
    toc
    printf "%.1f\n" "$MS"  # tenths: whole milliseconds made 4 against 6 read as 1.50
}

for n in $COUNTS; do
    new_loop dev "lifecycle-$n" $((1 << 30))
    DEV[$n]=$dev
    "$BIN/snapfmt" --history 0 "$dev" > /dev/null
    mkdir -p "$BENCH_DIR/src"
    head -c 100000 /dev/urandom > "$BENCH_DIR/src/f"
    "$BIN/snapctl" sync "$BENCH_DIR/src" "$dev" > /dev/null
    start=$SECONDS
    for ((i = 0; i < n; i++)); do "$BIN/snapctl" snapshot --auto "$dev" > /dev/null; done
    echo "# N=$n: $n snapshots made in $((SECONDS - start)) s"
done
# What making them left dirty in the page cache must not be written back during the runs.
drop_caches

for ((run = 1; run <= RUNS; run++)); do
    order=$COUNTS
    ((run % 2 == 0)) && order=$(printf '%s\n' $COUNTS | tac | xargs)
    for n in $order; do
        dev=${DEV[$n]} c="$BIN/snapctl"
        for op in snapshot rename hold release rollback diff list; do
            case $op in
                snapshot) t=$(ms "$c" snapshot "@x$run" "$dev") ;;
                rename) t=$(ms "$c" rename "@x$run" "@y$run" "$dev") ;;
                hold) t=$(ms "$c" hold bench "@y$run" "$dev") ;;
                release) t=$(ms "$c" release bench "@y$run" "$dev") ;;
                rollback) t=$(ms "$c" rollback "@y$run" "$dev") ;;
                diff) t=$(ms "$c" diff "@y$run" "$dev") ;;
                list) t=$(ms "$c" list "$dev") ;;
            esac
            echo "N=$n run=$run op=$op ms=$t"
            TIMES[$n.$op]+="$t "
        done
    done
done
for n in $COUNTS; do
    t=$(ms "$BIN/snapctl" prune --keep hourly=1 "${DEV[$n]}")
    echo "N=$n op=prune(all but one) ms=$t"
    "$BIN/snapctl" check "${DEV[$n]}" > /dev/null || { echo "check failed on the pool of $n" >&2; exit 1; }
done
first=${COUNTS%% *} last=${COUNTS##* }
for op in snapshot rename hold release rollback diff list; do
    # shellcheck disable=SC2086  # the lists split on purpose
    a=$(median ${TIMES[$first.$op]}) b=$(median ${TIMES[$last.$op]})
    echo "median op=$op N=$first ms=$a N=$last ms=$b ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / (a > 0 ? a : 1) }')"
done
