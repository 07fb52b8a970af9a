# shared-bench.sh: sourced by the scripts; sets SHARED_BENCH to the folder holding the
# shared workload generator: $SHARED_BENCH, else beside the repository, else the
# workplace's copy.
for candidate in "${SHARED_BENCH:-}" "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/bench" /work/shared/bench; do
    if [[ -n $candidate && -x $candidate/workload.sh ]]; then
        SHARED_BENCH=$(cd "$candidate" && pwd)
        export SHARED_BENCH
        return 0
    fi
done
echo "shared bench scripts (workload.sh) not found; set SHARED_BENCH" >&2
return 1
