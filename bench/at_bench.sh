#!/usr/bin/env bash
# at_bench.sh: what a snapshot of a past moment (`snapctl snapshot --at`) costs beside a
# plain snapshot, on pools holding a long retained history and on pools holding more
# data (issue 16: O(1), flat across 1,000 / 100,000 retained commits and across data set
# sizes, at most 2x a plain snapshot), and what else a long history could slow: opening
# the pool and reading a file (`cat`), a one-file `put`, and expiry (`set history=`
# dropping the 100 oldest commits).
#
# Per count N of COUNTS, one pool on a loop device whose history holds N commits, one
# every 2 seconds up to now, each rewriting a small file (`snaptorture history`: one
# process makes them all; a process per commit would take most of an hour at 100,000),
# every one on a device of the size the largest N needs.
# The moment taken is three quarters along (the expiry rounds drop the oldest). With SIZES set instead, per size one pool holding
# the workload's data set of that size, then 20 one-file commits; the moment taken is the
# fifth newest commit (after the sync: a moment of the whole tree). The pools are made
# first, written back and the caches dropped; every command then opens its device cold
# (a block device's cache goes at its last close). RUNS rounds, the pools' order
# alternating, each timing snapshot, snapshot --at, cat, put and (with COUNTS) expire.
#
# Output: "N=... op=... ms=..." per measurement, then per op the median at each N, the
# ratio of the last N's median to the first's, and at each N the ratio of --at's median
# to the plain snapshot's.
#
# Settings (environment): COUNTS="1000 100000", SIZES (for example "256M 1G 2G";
# replaces COUNTS), RUNS=5, BENCH_DIR=/tmp/bench-at, DATA_DIR (datasets are cached by
# shared/bench). Run as root (loop devices, drop_caches); LOOP_DIO and the rest as in
# shared/bench/lib.sh.
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/bench-at}
# shellcheck source=bench/start.sh
source "$(dirname "$0")/start.sh"
COUNTS=${COUNTS:-1000 100000} RUNS=${RUNS:-5} SIZES=${SIZES:-}
DATA_DIR=${DATA_DIR:-/tmp/bench/data}
LABELS=${SIZES:-$COUNTS}
SPACING=2
on_loop_devices

declare -A DEV MOMENT TIMES
CAT_PATH=/history-1  # a file every pool has: the history's, or with SIZES one put after the sync
[[ -n $SIZES ]] && CAT_PATH=/after-1
OPS="snapshot at cat put"
[[ -z $SIZES ]] && OPS+=" expire"
ms() {  # ms COMMAND...: runs it, prints its wall time in milliseconds; a failure ends the run
    tic
    "$@" > /dev/null || die "failed: $*"
    toc
    printf "%.1f\n" "$MS"
}
# The retained commits' times (ns), oldest first.
commit_times() { "$BIN/snapctl" history --json "$1" | grep -o '"time_unix_ns":[0-9]*' | cut -d: -f2; }
# RFC 3339 to the nanosecond, from nanoseconds since the epoch.
rfc3339() { printf '%s.%09dZ' "$(date -u -d "@$(($1 / 1000000000))" +%Y-%m-%dT%H:%M:%S)" $(($1 % 1000000000)); }

head -c 3000 /dev/urandom > "$BENCH_DIR/small"
for n in $LABELS; do
    if [[ -n $SIZES ]]; then
        dataset src "$n"
        bytes=$(dataset_bytes "$src")
        new_loop dev "at-$n" $(((1 << 30) + (2 * bytes >> 20 << 20)))
        "$BIN/snapfmt" "$dev" > /dev/null
        "$BIN/snapctl" sync "$src" "$dev" > /dev/null
        for ((i = 0; i < 20; i++)); do "$BIN/snapctl" put "$BENCH_DIR/small" "/after-$i" "$dev" > /dev/null; done
        MOMENT[$n]=$(commit_times "$dev" | tail -5 | sed -n 1p)
    else
        # Each commit leaves about 35 KiB of old nodes (and their copies) to the history.
        # Every pool gets the device the longest history needs: the question is what the
        # history costs, and a cold read costs more on a larger (sparser) backing file.
        most=$(tr ' ' '\n' <<< "$COUNTS" | sort -n | tail -1)
        new_loop dev "at-$n" $(((1 << 30) + most * 49152))
        start=$SECONDS
        "$BIN/snaptorture" history --commits "$n" --spacing "$SPACING" "$dev" > /dev/null
        echo "# N=$n: $n commits made in $((SECONDS - start)) s"
        mapfile -t times < <(commit_times "$dev")
        echo "# N=$n: ${#times[@]} commits retained"
        MOMENT[$n]=${times[$((${#times[@]} * 3 / 4))]}
    fi
    DEV[$n]=$dev
    echo "# N=$n: --at $(rfc3339 "${MOMENT[$n]}")"
done
drop_caches

for ((run = 1; run <= RUNS; run++)); do
    for n in $(alternating "$LABELS" "$run"); do
        dev=${DEV[$n]} c="$BIN/snapctl"
        for op in $OPS; do
            case $op in
                snapshot) t=$(ms "$c" snapshot "@p$run" "$dev") ;;
                at) t=$(ms "$c" snapshot "@a$run" --at "$(rfc3339 "${MOMENT[$n]}")" "$dev") ;;
                cat) t=$(ms "$c" cat "$CAT_PATH" "$dev") ;;
                put) t=$(ms "$c" put "$BENCH_DIR/small" "/p$run" "$dev") ;;
                expire)
                    # A window that leaves out the 100 oldest commits (2 s apart) and
                    # keeps the moment the rounds take.
                    oldest=$(commit_times "$dev" | sed -n 1p)  # not head: it would cut the pipe (pipefail)
                    keep=$(((${EPOCHREALTIME/./} * 1000 - oldest) / 1000000000 - 100 * SPACING))
                    t=$(ms "$c" set "history=${keep}s" "$dev")
                    ;;
            esac
            echo "N=$n run=$run op=$op ms=$t"
            TIMES[$n.$op]+="$t "
        done
    done
done
for n in $LABELS; do
    "$BIN/snapctl" check "${DEV[$n]}" > /dev/null || { echo "check failed on the pool of $n" >&2; exit 1; }
done
scaling_report "$LABELS" "$OPS"
for n in $LABELS; do
    # shellcheck disable=SC2086
    a=$(median ${TIMES[$n.snapshot]}) b=$(median ${TIMES[$n.at]})
    echo "at/snapshot N=$n ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / (a > 0 ? a : 1) }')"
done
