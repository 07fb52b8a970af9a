#!/usr/bin/env bash
# inc_send_ab.sh OLD_BIN_DIR NEW_BIN_DIR: the cold `snapsend -i @a @b` of the workload's
# 1% change, binaries of OLD_BIN_DIR against NEW_BIN_DIR (each holding snapfmt, snapctl,
# snapsend), each side on a pool its own binaries made of the same data (a pool made by
# a binary with frame indexes cannot be opened by one without them). Per size of SIZES
# and per run (the order of the sides alternates), for each side:
#   send_s          time of `snapsend -i @a @b > /dev/null`, caches dropped first
#   read_MB         what the pool's loop device read during it (its stat counters)
#   stream_MB       the stream's size
# then medians per size and side, and the ratio of the largest size's send time to the
# smallest's per side.
#
# Settings (environment): SIZES="256M 1G", RUNS=2, CHANGE=10737418 (1% of 1 GiB, the same
# at every size, as stream_bench.sh), BENCH_DIR=/tmp/bench-inc-ab (datasets come from
# shared/bench's cache, DATA_DIR=/tmp/bench/data), LOOP_DIO, WORKLOAD_SEED. Run as root.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help || $# -ne 2 ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    [[ $# -eq 2 ]] && exit 0 || exit 2
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
BENCH_DIR=${BENCH_DIR:-/tmp/bench-inc-ab}
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"
RESULTS=${RESULTS:-/dev/null}
OLD=$(cd "$1" && pwd) NEW=$(cd "$2" && pwd)
SIZES=${SIZES:-256M 1G} RUNS=${RUNS:-2} CHANGE=${CHANGE:-10737418}
DATA_DIR=${DATA_DIR:-/tmp/bench/data}
[[ $(id -u) == 0 ]] || die "run as root (loop devices, drop_caches)"
mkdir -p "$BENCH_DIR"
[[ -e $BENCH_DIR/data ]] || ln -s "$DATA_DIR" "$BENCH_DIR/data"
trap release_devices EXIT
probe_drop_caches

sectors_read() { awk '{ print $3 }' "/sys/block/$(basename "$1")/stat"; }
declare -A DEV TIMES READS
for size in $SIZES; do
    mutated_dataset "$size"
    for side in old new; do
        bin=$OLD
        [[ $side == new ]] && bin=$NEW
        new_loop dev "inc-$side-$size" "$bytes"
        DEV[$side.$size]=$dev
        "$bin/snapfmt" --history 0 "$dev" > /dev/null 2>&1
        "$bin/snapctl" sync "$data" "$dev" > /dev/null 2>&1
        "$bin/snapctl" snapshot @a "$dev" > /dev/null 2>&1
        "$bin/snapctl" sync "$mutated" "$dev" > /dev/null 2>&1
        "$bin/snapctl" snapshot @b "$dev" > /dev/null 2>&1
    done
    for ((run = 1; run <= RUNS; run++)); do
        order="old new"
        ((run % 2 == 0)) && order="new old"
        for side in $order; do
            bin=$OLD
            [[ $side == new ]] && bin=$NEW
            dev=${DEV[$side.$size]}
            drop_caches
            before=$(sectors_read "$dev")
            tic
            stream=$("$bin/snapsend" -i @a @b "$dev" | wc -c)
            toc
            read_mb=$(awk -v s=$(($(sectors_read "$dev") - before)) 'BEGIN { printf "%.1f", s * 512 / 1e6 }')
            echo "size=$size run=$run side=$side send_s=$SECS read_MB=$read_mb stream_MB=$(awk -v b="$stream" 'BEGIN { printf "%.1f", b / 1e6 }')"
            TIMES[$side.$size]+="$SECS " READS[$side.$size]+="$read_mb "
        done
    done
done
for side in old new; do
    for size in $SIZES; do
        # shellcheck disable=SC2086  # the lists split on purpose
        echo "median side=$side size=$size send_s=$(median ${TIMES[$side.$size]}) read_MB=$(median ${READS[$side.$size]})"
    done
    first=${SIZES%% *} last=${SIZES##* }
    # shellcheck disable=SC2086
    echo "scaling side=$side $last/$first send time: $(awk -v a="$(median ${TIMES[$side.$last]})" -v b="$(median ${TIMES[$side.$first]})" 'BEGIN { printf "%.2f", a / b }')"
done
