#!/usr/bin/env bash
# extract_bench.sh: a large subset snapshot never blocks writers longer than one commit
# (issue 16, part 6). A tree of FILES small files (200 B-4 KiB, 1,000 per directory,
# deterministic) is synced into a pool; then, while a writer runs `snapctl put` of a
# small file in a loop (each put one commit, its wall time logged), a subset snapshot of
# half of the files (GLOB) is taken, two ways, order alternating:
#   steps: as snapctl takes it (recorded by one commit, extracted by commits of at most
#          4,096 inodes, the writer lock released between them);
#   whole: every inode copied by the recording commit (SNAPFS_EXTRACT_INODES above the
#          subset's size), as before extraction in steps.
# Reported per run: the snapshot's time, and the writer's puts during it: how many, the
# median and the longest wait; and the puts' median with no snapshot running. Target:
# the longest put during `steps` within a put plus one extraction commit, far below the
# longest during `whole`.
#
# Settings (environment): FILES=80000, GLOB='**/f*[02468]' (half of the files),
# RUNS=3, BENCH_DIR=/tmp/bench-extract. Run as root (loop devices).
set -euo pipefail
BENCH_DIR=${BENCH_DIR:-/tmp/bench-extract}
# shellcheck source=bench/start.sh
source "$(dirname "$0")/start.sh"
FILES=${FILES:-80000} RUNS=${RUNS:-3} GLOB=${GLOB:-'**/f*[02468]'}
on_loop_devices

TREE=$BENCH_DIR/tree-$FILES
if [[ ! -e $TREE.done ]]; then
    rm -rf "$TREE"
    python3 - "$TREE" "$FILES" << 'EOF'
import os, random, sys
root, files = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
for i in range(files):
    d = os.path.join(root, f"d{i // 1000:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(200, 4096)))
EOF
    touch "$TREE.done"
fi
head -c 3000 /dev/urandom > "$BENCH_DIR/small"
new_loop POOL pool $((FILES * 8192 + (512 << 20)))
"$BIN/snapfmt" "$POOL" > /dev/null
"$BIN/snapctl" sync "$TREE" "$POOL" > /dev/null
SELECTED=$("$BIN/snapctl" ls --match "$GLOB" "$POOL" | wc -l)
note "extract_bench: $FILES files, GLOB=$GLOB selects $SELECTED"

# puts OUT: `snapctl put` of a small file until $BENCH_DIR/stop exists; each one's ms
# on a line of OUT.
puts() {
    local i=0
    : > "$1"
    while [[ ! -e $BENCH_DIR/stop ]]; do
        tic
        "$BIN/snapctl" put "$BENCH_DIR/small" "/w$((i % 20))" "$POOL" > /dev/null
        toc
        echo "$MS" >> "$1"
        i=$((i + 1))
    done
}
stats() {  # stats FILE: "N median max" of its numbers
    local values
    mapfile -t values < "$1"
    echo "${#values[@]} $(median "${values[@]}") $(printf '%s\n' "${values[@]}" | sort -g | tail -1)"
}

# The puts alone, for their usual time.
rm -f "$BENCH_DIR/stop"
puts "$BENCH_DIR/alone" &
sleep 3
touch "$BENCH_DIR/stop"
wait
read -r n med max < <(stats "$BENCH_DIR/alone")
echo "puts alone: $n, median ms=$med, longest ms=$max" | tee -a "$RESULTS"

for run in $(seq 1 "$RUNS"); do
    for mode in $(alternating "steps whole" "$run"); do
        case $mode in
            steps) inodes=4096 ;;
            whole) inodes=1000000000 ;;
        esac
        rm -f "$BENCH_DIR/stop"
        puts "$BENCH_DIR/during" &
        sleep 1
        tic
        SNAPFS_EXTRACT_INODES=$inodes "$BIN/snapctl" snapshot "@s$run$mode" --match "$GLOB" "$POOL" > "$BENCH_DIR/out"
        toc
        took=$MS
        sleep 0.5
        touch "$BENCH_DIR/stop"
        wait
        read -r n med max < <(stats "$BENCH_DIR/during")
        commits=$(grep -o 'in [0-9]* commits' "$BENCH_DIR/out" | cut -d' ' -f2 || true)
        echo "run=$run mode=$mode snapshot_ms=$took commits=${commits:-1} puts=$n put_median_ms=$med put_longest_ms=$max" |
            tee -a "$RESULTS"
        "$BIN/snapctl" destroy "@s$run$mode" "$POOL" > /dev/null
    done
done
