#!/usr/bin/env bash
# receive_check_bench.sh [BASE]: what checking a received tree costs (fs/validate.rs), as
# alternating receives by the binaries of commit BASE (default 5e1fafb, before the
# check; built in a throwaway worktree) and by this checkout's release binaries, at two
# tree sizes, the second FACTOR times the first, to show that an incremental's cost
# follows the change and not the tree.
#
# For each size N (files, in directories of 100): a source pool gets the tree (@a), then
# a small change (@b: 10 files rewritten, 10 added, 10 removed, one directory renamed).
# Each run, for each side (the order alternates from run to run), a fresh image
# receives the full stream of @a, then the incremental @a..@b:
#   full_s   the full receive      incr_s   the incremental receive
# The summary prints the medians per side and the ratio new / old. The data are tiny
# files, so the tree's metadata, which the check reads, is most of each stream.
#
# Settings (environment): FILES=20000, FACTOR=10, RUNS=3, WORK=/tmp; image files, no
# root needed.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE=${1:-5e1fafb}
FILES=${FILES:-20000}
FACTOR=${FACTOR:-10}
RUNS=${RUNS:-3}
die() { echo "receive_check_bench: $*" >&2 && exit 1; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
git -C "$REPO" rev-parse --verify --quiet "$BASE^{commit}" > /dev/null || die "no commit $BASE in $REPO"

WORK=$(mktemp -d "${WORK:-/tmp}/snapfs-recv-check.XXXXXX")
cleanup() {
    git -C "$REPO" worktree remove --force "$WORK/base" 2> /dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building $BASE and this checkout" >&2
git -C "$REPO" worktree add --quiet --detach "$WORK/base" "$BASE"
(cd "$WORK/base" && CARGO_TARGET_DIR=$WORK/base-target cargo build --release --quiet --locked)
(cd "$REPO" && cargo build --release --quiet --locked)
old=$WORK/base-target/release
new=$REPO/target/release

# make_tree DIR N: N small files in directories of 100.
make_tree() {
    python3 - "$1" "$2" << 'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 100:05d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07d}"), "w") as f:
        f.write(f"file {i}\n")
EOF
}

# change_tree DIR: the small change between @a and @b.
change_tree() {
    python3 - "$1" << 'EOF'
import os, sys
root = sys.argv[1]
dirs = sorted(os.listdir(root))
for i in range(10):
    d = os.path.join(root, dirs[(i * 7) % len(dirs)])
    names = sorted(os.listdir(d))
    with open(os.path.join(d, names[0]), "w") as f:
        f.write(f"rewritten {i}\n")
    with open(os.path.join(d, f"new{i}"), "w") as f:
        f.write(f"new {i}\n")
    os.remove(os.path.join(d, names[-1]))
os.rename(os.path.join(root, dirs[-1]), os.path.join(root, dirs[0], "moved"))
EOF
}

seconds() { # seconds COMMAND...: wall time of a command, in seconds with 3 decimals
    local start end
    start=$(date +%s%N)
    "$@" > /dev/null
    end=$(date +%s%N)
    echo "$(((end - start) / 1000000))" | awk '{printf "%.3f", $1 / 1000}'
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

printf '%-8s %-4s %-4s %-9s %-9s\n' files run side full_s incr_s
results=$WORK/results
: > "$results"
for n in "$FILES" $((FILES * FACTOR)); do
    src=$WORK/src-$n.img tree=$WORK/tree-$n
    truncate -s $((n * 16384 + (256 << 20))) "$src"
    "$new/snapfmt" "$src" > /dev/null
    make_tree "$tree" "$n"
    "$new/snapctl" sync "$tree" "$src" > /dev/null
    "$new/snapctl" snapshot @a "$src" > /dev/null
    change_tree "$tree"
    "$new/snapctl" sync "$tree" "$src" > /dev/null
    "$new/snapctl" snapshot @b "$src" > /dev/null
    "$new/snapsend" @a "$src" > "$WORK/full.stream"
    "$new/snapsend" -i @a @b "$src" > "$WORK/incr.stream"
    rm -rf "$tree" "$src"
    for run in $(seq 1 "$RUNS"); do
        sides=(old new)
        ((run % 2 == 0)) && sides=(new old)
        for side in "${sides[@]}"; do
            bin=$old
            [[ $side == new ]] && bin=$new
            target=$WORK/target.img
            rm -f "$target"
            truncate -s $((n * 16384 + (256 << 20))) "$target"
            "$bin/snapfmt" "$target" > /dev/null
            full=$(seconds "$bin/snaprecv" "$target" < "$WORK/full.stream")
            incr=$(seconds "$bin/snaprecv" "$target" < "$WORK/incr.stream")
            "$new/snapctl" check "$target" > /dev/null || die "$side: the target does not check clean"
            printf '%-8s %-4s %-4s %-9s %-9s\n' "$n" "$run" "$side" "$full" "$incr"
            echo "$n $side $full $incr" >> "$results"
        done
    done
done

echo
echo "medians of $RUNS runs ($BASE = old, this checkout = new):"
printf '%-8s %-10s %-10s %-7s %-10s %-10s %-7s\n' files full_old full_new ratio incr_old incr_new ratio
for n in "$FILES" $((FILES * FACTOR)); do
    fo=$(awk -v n="$n" '$1 == n && $2 == "old" {print $3}' "$results" | median)
    fn=$(awk -v n="$n" '$1 == n && $2 == "new" {print $3}' "$results" | median)
    io=$(awk -v n="$n" '$1 == n && $2 == "old" {print $4}' "$results" | median)
    in=$(awk -v n="$n" '$1 == n && $2 == "new" {print $4}' "$results" | median)
    printf '%-8s %-10s %-10s %-7s %-10s %-10s %-7s\n' "$n" "$fo" "$fn" \
        "$(awk -v a="$fn" -v b="$fo" 'BEGIN {printf "%.2f", a / b}')" "$io" "$in" \
        "$(awk -v a="$in" -v b="$io" 'BEGIN {printf "%.2f", a / b}')"
done
