# shellcheck shell=bash
# shared-bench.sh: sourced by the scripts; sets and exports SHARED_BENCH, the folder
# holding the shared workload generator: $SHARED_BENCH, else beside the repository, else
# the workplace's copy. Fails the sourcing script if none is found.
find_shared_bench() {
    local candidate repo
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    for candidate in "${SHARED_BENCH:-}" "$repo/../shared/bench" /work/shared/bench; do
        if [[ -n $candidate && -x $candidate/workload.sh ]]; then
            SHARED_BENCH=$(cd "$candidate" && pwd)
            export SHARED_BENCH
            return 0
        fi
    done
    echo "shared bench scripts (workload.sh) not found; set SHARED_BENCH" >&2
    exit 1
}
find_shared_bench

# mutated_dataset SIZE (after lib.sh is sourced): sets $data to the workload's dataset of
# SIZE, $mutated to a copy of it that `workload.sh mutate` changed by $CHANGE bytes (made
# once, kept in $BENCH_DIR), and $bytes to an image size that holds either three times
# over (1 GiB at least, whole MiB).
mutated_dataset() {
    dataset data "$1"
    mutated=$BENCH_DIR/mutated-$1
    if [[ ! -d $mutated ]]; then
        cp -a "$data" "$mutated.tmp"
        "$WORKLOAD" mutate "$mutated.tmp" "$CHANGE" > /dev/null
        mv "$mutated.tmp" "$mutated"
    fi
    bytes=$(($(dataset_bytes "$data") * 3))
    bytes=$(((bytes > 1 << 30 ? bytes : 1 << 30) / MiB * MiB))
}
