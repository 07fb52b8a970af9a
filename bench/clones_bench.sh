#!/usr/bin/env bash
# clones_bench.sh: what commands cost on pools holding few and many clones (issue 15:
# 1000 clones must work; clone, snapshot and any commit flat within 1.5x).
#
# Per count N of COUNTS, one pool on a loop device (every command opens it cold) with a
# small tree, a snapshot @base and N clones of it, each written once. Then RUNS rounds,
# the pools' order alternating: each round times clone (of @base), a put into that
# clone, a snapshot of it, the destroy of that snapshot and of the clone, a snapshot of
# the live tree, a put into the live tree, and list. The pools are written back and
# the caches dropped before the rounds.
#
# Output: "N=... op=... ms=..." per measurement, then per op the median at each N and the
# ratio of the largest N's median to the smallest's.
#
# Settings (environment): COUNTS="10 1000", RUNS=5, BENCH_DIR=/tmp/bench-clones. Run as
# root (loop devices, drop_caches); LOOP_DIO and the rest as in shared/bench/lib.sh.
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/bench-clones}
# shellcheck source=bench/start.sh
source "$(dirname "$0")/start.sh"
COUNTS=${COUNTS:-10 1000} RUNS=${RUNS:-5}
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

head -c 100000 /dev/urandom > "$BENCH_DIR/f"
for n in $COUNTS; do
    new_loop dev "clones-$n" $((1 << 30))
    DEV[$n]=$dev
    "$BIN/snapfmt" --history 0 "$dev" > /dev/null
    mkdir -p "$BENCH_DIR/src"
    cp "$BENCH_DIR/f" "$BENCH_DIR/src/f"
    "$BIN/snapctl" sync "$BENCH_DIR/src" "$dev" > /dev/null
    "$BIN/snapctl" snapshot @base "$dev" > /dev/null
    start=$SECONDS
    for ((i = 0; i < n; i++)); do
        "$BIN/snapctl" clone @base "c$i" "$dev" > /dev/null
        echo "$i" | "$BIN/snapctl" put - "c$i:f" "$dev" > /dev/null
    done
    echo "# N=$n: $n clones made and written in $((SECONDS - start)) s"
done
drop_caches

OPS="clone put-clone snapshot-clone destroy-snapshot destroy-clone snapshot-live put-live list"
for ((run = 1; run <= RUNS; run++)); do
    for n in $(alternating "$COUNTS" "$run"); do
        dev=${DEV[$n]} c="$BIN/snapctl"
        for op in $OPS; do
            case $op in
                clone) t=$(ms "$c" clone @base "x$run" "$dev") ;;
                put-clone) t=$(ms "$c" put "$BENCH_DIR/f" "x$run:g" "$dev") ;;
                snapshot-clone) t=$(ms "$c" snapshot "x$run@s" "$dev") ;;
                destroy-snapshot) t=$(ms "$c" destroy "x$run@s" "$dev") ;;
                destroy-clone) t=$(ms "$c" destroy "x$run" "$dev") ;;
                snapshot-live) t=$(ms "$c" snapshot "@l$run" "$dev") ;;
                put-live) t=$(ms "$c" put "$BENCH_DIR/f" "g$run" "$dev") ;;
                list) t=$(ms "$c" list "$dev") ;;
            esac
            echo "N=$n run=$run op=$op ms=$t"
            TIMES[$n.$op]+="$t "
        done
    done
done
for n in $COUNTS; do
    "$BIN/snapctl" check "${DEV[$n]}" > /dev/null || { echo "check failed on the pool of $n" >&2; exit 1; }
done
scaling_report "$COUNTS" "$OPS"
