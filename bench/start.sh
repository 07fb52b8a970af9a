# shellcheck shell=bash
# start.sh: how every benchmark script starts, sourced right after its `set -euo pipefail`
# and its BENCH_DIR default: `--help` prints the script's header comment (the lines
# above `set -euo pipefail`); then REPO, BIN (the release binaries), RESULTS (default
# /dev/null) and the shared bench library (shared-bench.sh, then its lib.sh).
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"
RESULTS=${RESULTS:-/dev/null}
BIN=$REPO/target/release

# alternating LIST RUN: LIST in its order on odd runs, reversed on even ones, so that no
# pool always goes first.
alternating() {
    # shellcheck disable=SC2086  # the list splits on purpose
    if (($2 % 2 == 0)); then printf '%s\n' $1 | tac | xargs; else echo "$1"; fi
}

# scaling_report LABELS OPS: for each op, the median of TIMES[LABEL.OP] (milliseconds,
# space-separated) at the first and the last label, and the last's ratio to the first.
scaling_report() {
    local first=${1%% *} last=${1##* } op a b
    for op in $2; do
        # shellcheck disable=SC2086  # the lists split on purpose
        a=$(median ${TIMES[$first.$op]}) b=$(median ${TIMES[$last.$op]})
        echo "median op=$op N=$first ms=$a N=$last ms=$b ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / (a > 0 ? a : 1) }')"
    done
}

# on_loop_devices: what a benchmark on loop devices needs before its first one: root,
# BENCH_DIR (the shared datasets linked in as BENCH_DIR/data when DATA_DIR is set), its
# devices released at exit, a drop_caches that works, and the release binaries built.
on_loop_devices() {
    [[ $(id -u) == 0 ]] || die "run as root (loop devices, mounts, drop_caches)"
    mkdir -p "$BENCH_DIR"
    if [[ -n ${DATA_DIR:-} && ! -e $BENCH_DIR/data ]]; then ln -s "$DATA_DIR" "$BENCH_DIR/data"; fi
    trap release_devices EXIT
    probe_drop_caches
    (cd "$REPO" && cargo build --release --quiet --workspace)
}
