#!/usr/bin/env bash
# fuzz.sh: builds the fuzz targets (fuzz/, cargo-fuzz with libFuzzer) and runs them one
# after another on their seeds (fuzz/seeds/TARGET), saved crashes (fuzz/regressions/TARGET)
# and growing corpus (fuzz/corpus/TARGET, not committed).
#
#   scripts/fuzz.sh                  short run, as scripts/test.sh runs it: each target for
#                                    FUZZ_SECONDS seconds (default 8), unoptimized build
#   scripts/fuzz.sh --soak           10 million executions per target (receive: 1 million,
#                                    it opens and checks a pool per input: about 1 ms;
#                                    hostile: 200,000, it also exports and writes), optimized build
#   scripts/fuzz.sh --runs N         N executions per target, optimized build
#   scripts/fuzz.sh ... TARGET...    only these targets (default: all of them)
#   FUZZ_JOBS=N                      targets run at once (default: the CPUs in a soak, 1 in
#                                    the short run)
#
# Prints, per target, its executions, time and crashes as libFuzzer reports them, and at
# the end one summary line per target:
#   fuzz: TARGET executions=N seconds=S crashes=C ok|FAILED
# A crash, a hang (an input that runs over 10 s) or running out of memory (2 GiB) fails the
# run; libFuzzer saves the input in fuzz/artifacts/TARGET/. Shrink it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz tmin --sanitizer none TARGET FILE`, keep it in
# fuzz/regressions/TARGET/ under a name that says the bug (tests/fuzz_regressions.rs
# replays it), and fix the bug.
#
# The build has no sanitizer: the parsers are safe Rust, so a bug shows as a panic, and
# without AddressSanitizer the targets build and run faster.
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take cargo-fuzz's unstable flags.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(stream_reader label_commit tree_node receive hostile cli_numbers)
mode=short
runs=
receive_runs=
hostile_runs=
seconds=${FUZZ_SECONDS:-8}
targets=()
while (($#)); do
    case $1 in
        --soak) mode=long runs=10000000 receive_runs=1000000 hostile_runs=200000 ;;
        --runs) mode=long runs=$2 receive_runs=$2 hostile_runs=$2 && shift ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2 && exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
((${#targets[@]})) || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $target "* ]] ||
        { echo "fuzz.sh: no fuzz target $target (there are: ${all_targets[*]})" >&2 && exit 2; }
done

if ! cargo fuzz --version > /dev/null 2>&1; then
    if [[ ${CI:-} == true ]]; then
        echo "fuzz.sh: cargo-fuzz is missing (scripts/setup.sh installs it)" >&2
        exit 1
    fi
    echo "fuzz.sh: skipped: cargo-fuzz is missing; scripts/setup.sh installs it" >&2
    exit 0
fi

export RUSTC_BOOTSTRAP=1
build=(--sanitizer none)
[[ $mode == short ]] && build+=(--dev)
started=$(date +%s)
commit=$(git describe --always --dirty 2> /dev/null || echo unknown) # what is being built
cargo fuzz build "${build[@]}"
echo "fuzz: built in $(($(date +%s) - started)) s"

logs=fuzz/artifacts/logs/$mode # a short run beside a soak keeps its own logs
mkdir -p "$logs"

# Runs one target; prints and leaves in $logs/TARGET.summary its summary line.
run_target() {
    local target=$1 log=$logs/$1.log stamp=$logs/$1.started # artifacts newer than it are this run's
    local corpora=("fuzz/corpus/$target" "fuzz/seeds/$target")
    local limit=(-max_total_time="$seconds") status=0 start_ms elapsed_ms executions crashes verdict line
    mkdir -p "fuzz/corpus/$target"
    [[ -d fuzz/regressions/$target ]] && corpora+=("fuzz/regressions/$target")
    if [[ $mode == long ]]; then
        case $target in
            receive) limit=(-runs="$receive_runs") ;;
            hostile) limit=(-runs="$hostile_runs") ;;
            *) limit=(-runs="$runs") ;;
        esac
    fi
    touch "$stamp"
    start_ms=$(($(date +%s%N) / 1000000))
    cargo fuzz run "${build[@]}" "$target" "${corpora[@]}" -- \
        "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1 || status=$?
    elapsed_ms=$(($(date +%s%N) / 1000000 - start_ms))
    executions=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
    crashes=$( (find "fuzz/artifacts/$target" -newer "$stamp" -type f 2> /dev/null || true) | wc -l)
    if ((status == 0)) && ((crashes == 0)); then
        verdict=ok
    else
        verdict=FAILED
        grep -E -A6 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -20 | cut -c1-400 >&2 || true
        echo "fuzz: $target failed (exit $status); its log: $log; saved inputs: fuzz/artifacts/$target/" >&2
    fi
    line=$(printf 'fuzz: %-13s executions=%s seconds=%d.%d crashes=%s %s' \
        "$target" "$executions" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) "$crashes" "$verdict")
    echo "$line" | tee "$logs/$target.summary"
}

# Targets run side by side, as many at once as there are CPUs in a soak (libFuzzer uses
# one each), one at a time in the short run.
jobs_max=${FUZZ_JOBS:-$([[ $mode == long ]] && nproc || echo 1)}
for target in "${targets[@]}"; do
    rm -f "$logs/$target.summary"
    while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
    run_target "$target" &
done
wait

failed=0
summary=()
for target in "${targets[@]}"; do
    line=$(cat "$logs/$target.summary" 2> /dev/null || echo "fuzz: $target did not finish FAILED")
    [[ $line == *" ok" ]] || failed=1
    summary+=("$line")
done

echo "fuzz summary ($([[ $mode == short ]] && echo "short run, ${seconds} s per target" || echo "up to ${runs} executions per target"), commit $commit):"
printf '%s\n' "${summary[@]}"
exit $failed
