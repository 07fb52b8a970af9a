#!/usr/bin/env bash
# subset_bench.sh: what a subset snapshot costs (issue 16). On the SIZE workload, a
# subset of about 10% of its files (GLOB; by default the files numbered f000000-f000799
# of the 7,950 in the 1G tree) is taken with `snapctl snapshot @S --match GLOB`, beside a
# full `snapctl sync` of those same files (copied out with `cp -a --parents` first) into a fresh pool:
# target, the subset in at most 20% of the sync's time. What the snapshot writes is
# counted (SNAPFS_IO_STATS) beside its own nodes (`show`: what destroying it frees) and
# the file data it holds: target, no data block written.
#
# Then the tree changes by 1% (shared workload mutate, on a copy), is synced, and a
# second subset of the same rule (--like) is taken: the incremental stream between the
# two subsets is compared with the change inside the subset, measured independently as
# the incremental between two whole snapshots of a pool that holds only the selected
# files, before and after (synced from copies of them): target, within 1.2x.
#
# Every timed command opens its device cold (caches dropped first); RUNS rounds, the
# sync and the subset alternating which goes first. Output: "op=... ms=..." per run, the
# medians and ratios per run, then the bytes.
#
# Settings (environment): SIZE=1G, RUNS=5, GLOB='**/f000[0-7][0-9][0-9]' (with NAME, the
# same files for find(1): f000[0-7][0-9][0-9]), BENCH_DIR=/tmp/bench-subset, DATA_DIR
# (datasets are cached by shared/bench); TREE=DIR takes that directory instead of the
# workload (10x the files: bench/extract_bench.sh's 80,000-file tree, with
# GLOB='**/f*0' NAME='f*0', a tenth of them). Run as root (loop devices, drop_caches).
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/bench-subset}
# shellcheck source=bench/start.sh
source "$(dirname "$0")/start.sh"
SIZE=${SIZE:-1G} RUNS=${RUNS:-5}
GLOB=${GLOB:-'**/f000[0-7][0-9][0-9]'} NAME=${NAME:-'f000[0-7][0-9][0-9]'}
DATA_DIR=${DATA_DIR:-/tmp/bench/data}
on_loop_devices

if [[ -n ${TREE:-} ]]; then
    DATA=$TREE
    BYTES=$(du -sb --apparent-size "$DATA" | cut -f1)
else
    dataset DATA "$SIZE"
    BYTES=$(dataset_bytes "$DATA")
fi
# select_files TREE DEST: the files (and symlinks) GLOB selects in TREE, copied to DEST
# with their paths, modes, times and hard links.
select_files() {
    rm -rf "$2"
    mkdir -p "$2"
    (cd "$1" && find . \( -type f -o -type l \) -name "$NAME" -printf '%P\n') > "$BENCH_DIR/list"
    # One cp for them all, so hard links between them stay links.
    (cd "$1" && xargs -d '\n' cp -a --parents -t "$2" < "$BENCH_DIR/list")
}
select_files "$DATA" "$BENCH_DIR/selected"
SELECTED=$(wc -l < "$BENCH_DIR/list")
SELECTED_BYTES=$(du -sb --apparent-size "$BENCH_DIR/selected" | cut -f1)
note "subset_bench: ${TREE:-the $SIZE workload} ($BYTES bytes, $(find "$DATA" -type f | wc -l) files), GLOB=$GLOB: $SELECTED files selected ($SELECTED_BYTES bytes)"

new_loop POOL whole $((BYTES * 2 + (512 << 20)))
new_loop COPY copy $((SELECTED_BYTES * 3 + (256 << 20)))
"$BIN/snapfmt" "$POOL" > /dev/null
"$BIN/snapctl" sync "$DATA" "$POOL" > /dev/null
listed=$("$BIN/snapctl" ls --match "$GLOB" "$POOL" | wc -l)
[[ $listed == "$SELECTED" ]] || die "ls --match lists $listed files, find $SELECTED: the glob and NAME differ"

ms_of() {  # ms_of COMMAND...: runs it cold, prints its wall time in ms
    sync
    drop_caches
    tic
    "$@" > /dev/null 2> "$BENCH_DIR/stderr" || die "failed: $* ($(cat "$BENCH_DIR/stderr"))"
    toc
    printf "%.1f\n" "$MS"
}
json_number() { grep -o "\"$1\":[0-9]*" | cut -d: -f2; }

SYNC_MS=() SUBSET_MS=() RATIOS=()
for run in $(seq 1 "$RUNS"); do
    declare -A took=()
    for op in $(alternating "sync subset" "$run"); do
        case $op in
            sync)
                "$BIN/snapfmt" -f "$COPY" > /dev/null
                took[sync]=$(ms_of "$BIN/snapctl" sync "$BENCH_DIR/selected" "$COPY")
                ;;
            subset)
                took[subset]=$(ms_of env SNAPFS_IO_STATS=1 "$BIN/snapctl" snapshot "@sub$run" --match "$GLOB" "$POOL")
                written=$(grep -o 'written_bytes=[0-9]*' "$BENCH_DIR/stderr" | cut -d= -f2)
                show=$("$BIN/snapctl" show --json "@sub$run" "$POOL")
                own=$(json_number unique_bytes <<< "$show") held=$(json_number file_bytes <<< "$show")
                files=$(json_number files <<< "$show")
                note "run $run: the subset holds $files files, $held bytes of file data; the snapshot wrote $written bytes, its own nodes $own"
                "$BIN/snapctl" destroy "@sub$run" "$POOL" > /dev/null
                ;;
        esac
        echo "run=$run op=$op ms=${took[$op]}" | tee -a "$RESULTS"
    done
    SYNC_MS+=("${took[sync]}") SUBSET_MS+=("${took[subset]}")
    RATIOS+=("$(awk -v a="${took[subset]}" -v b="${took[sync]}" 'BEGIN { printf "%.3f", a / b }')")
done
echo "median op=sync ms=$(median "${SYNC_MS[@]}") op=subset ms=$(median "${SUBSET_MS[@]}")" | tee -a "$RESULTS"
echo "subset/sync per run: ${RATIOS[*]}; median $(median "${RATIOS[@]}") (target <= 0.20)" | tee -a "$RESULTS"

# The incremental after a 1% change of the whole tree (the workload's: its mutate needs
# the large files a TREE may lack).
if [[ -n ${TREE:-} ]]; then
    rm -rf "$BENCH_DIR/selected"
    exit 0
fi
"$BIN/snapctl" snapshot @s1 --match "$GLOB" "$POOL" > /dev/null
"$BIN/snapctl" snapshot @w1 "$POOL" > /dev/null
rm -rf "$BENCH_DIR/tree"
cp -a "$DATA" "$BENCH_DIR/tree"
"$WORKLOAD" mutate "$BENCH_DIR/tree" > /dev/null
"$BIN/snapctl" sync "$BENCH_DIR/tree" "$POOL" > /dev/null
"$BIN/snapctl" snapshot @s2 --like @s1 "$POOL" > /dev/null
"$BIN/snapctl" snapshot @w2 "$POOL" > /dev/null
subset_bytes=$("$BIN/snapsend" -i @s1 @s2 "$POOL" | wc -c)
whole_bytes=$("$BIN/snapsend" -i @w1 @w2 "$POOL" | wc -c)
# The change inside the subset, measured without subsets: a pool of the selected files only.
"$BIN/snapfmt" -f "$COPY" > /dev/null
"$BIN/snapctl" sync "$BENCH_DIR/selected" "$COPY" > /dev/null
"$BIN/snapctl" snapshot @c1 "$COPY" > /dev/null
select_files "$BENCH_DIR/tree" "$BENCH_DIR/selected-after"
"$BIN/snapctl" sync "$BENCH_DIR/selected-after" "$COPY" > /dev/null
"$BIN/snapctl" snapshot @c2 "$COPY" > /dev/null
inside_bytes=$("$BIN/snapsend" -i @c1 @c2 "$COPY" | wc -c)
echo "incremental bytes: subset $subset_bytes, the change inside it $inside_bytes, the whole tree's $whole_bytes; subset/inside $(awk -v a="$subset_bytes" -v b="$inside_bytes" 'BEGIN { printf "%.2f", a / b }') (target <= 1.2)" | tee -a "$RESULTS"
rm -rf "$BENCH_DIR/tree" "$BENCH_DIR/selected" "$BENCH_DIR/selected-after"
