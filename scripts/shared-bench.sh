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
