#!/usr/bin/env bash
# demo.sh: the main job end to end on image files, no spare disk needed.
# Formats a pool, syncs the shared workload into it, snapshots, changes the data,
# snapshots again, exports both snapshots and proves them identical (content and
# metadata) to the trees they were taken of; replicates both to a second pool (full,
# then incremental) and proves the replica identical too; breaks a transfer and resumes
# it; damages a copy of the replica's metadata and lets scrub rewrite it; then destroys a
# snapshot and checks the pool.
#
#   DEMO_SIZE=256M   workload size (1G for the full benchmark data set)
#   DEMO_DIR=/tmp/snapfs-demo
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SIZE=${DEMO_SIZE:-256M}
DIR=${DEMO_DIR:-/tmp/snapfs-demo}
source scripts/shared-bench.sh
WORKLOAD=$SHARED_BENCH/workload.sh
BIN=$(pwd)/target/release
PATH=$BIN:$PATH

step() { printf '\n== %s\n' "$*"; }
digest() { "$WORKLOAD" digest "$1" | cut -d' ' -f1,2; }

rm -rf "$DIR"
mkdir -p "$DIR"
cd "$DIR"
step "generate a $SIZE workload tree"
"$WORKLOAD" generate data "$SIZE"
truncate -s "$(( $(numfmt --from=iec "$SIZE") * 3 + (256 << 20) ))" pool.img

step "snapfmt pool.img"
snapfmt pool.img
step "snapctl sync data pool.img (one transaction)"
time snapctl sync data pool.img
step "snapctl snapshot @monday"
snapctl snapshot @monday pool.img
monday=$(digest data)

step "change about 1% of the data, sync again, snapshot @tuesday"
"$WORKLOAD" mutate data
time snapctl sync data pool.img
snapctl snapshot @tuesday pool.img
tuesday=$(digest data)

step "put and cat a single file"
echo "remember the milk" > notes.txt
snapctl mkdir -p docs pool.img
snapctl put notes.txt docs/notes.txt pool.img
snapctl cat docs/notes.txt pool.img

step "export both snapshots and compare with the trees they were taken of"
snapctl export @monday restore-monday pool.img
snapctl export @tuesday restore-tuesday pool.img
ok=yes
[[ $(digest restore-monday) == "$monday" ]] || { echo "MISMATCH: @monday"; ok=no; }
[[ $(digest restore-tuesday) == "$tuesday" ]] || { echo "MISMATCH: @tuesday"; ok=no; }
echo "@monday:  $monday"
echo "@tuesday: $tuesday"
[[ $ok == yes ]] && echo "both snapshots are byte and metadata identical to their sources"

step "snapctl list, status, ls -l @monday"
snapctl list pool.img
snapctl status pool.img
snapctl ls -l @monday pool.img | head -5

step "replicate to a second pool: full stream of @monday, then the incremental to @tuesday"
truncate -s "$(stat -c %s pool.img)" replica.img
snapfmt replica.img
snapsend -nv @monday pool.img
time (snapsend @monday pool.img | snaprecv replica.img)
snapsend -nv -i @monday @tuesday pool.img
time (snapsend -i @monday @tuesday pool.img | snaprecv replica.img)
snapctl list replica.img
snapctl check replica.img
snapctl export @monday replica-monday replica.img
snapctl export @tuesday replica-tuesday replica.img
[[ $(digest replica-monday) == "$monday" ]] || { echo "MISMATCH: replica @monday"; ok=no; }
[[ $(digest replica-tuesday) == "$tuesday" ]] || { echo "MISMATCH: replica @tuesday"; ok=no; }
[[ $ok == yes ]] && echo "the replica's snapshots are byte and metadata identical to the sources"

step "a broken transfer, resumed: snaprecv -s keeps what arrived, snapsend -t sends the rest"
truncate -s "$(stat -c %s pool.img)" replica2.img
snapfmt replica2.img
snapsend @monday pool.img > monday.stream
half=$(( $(stat -c %s monday.stream) / 2 ))
head -c "$half" monday.stream | snaprecv -s replica2.img || echo "(the receive broke, as it should)"
token=$(snapctl status --json replica2.img | python3 -c 'import json, sys; print(json.load(sys.stdin)["receive_resume_token"])')
snapsend -nv -t "$token" pool.img
snapsend -t "$token" pool.img | snaprecv -s replica2.img
snapctl export @monday replica2-monday replica2.img
[[ $(digest replica2-monday) == "$monday" ]] || { echo "MISMATCH: resumed @monday"; ok=no; }
[[ $ok == yes ]] && echo "the resumed transfer gives the same tree"

step "bit rot: damage the second copy of the replica's trees table; reads survive, scrub rewrites it"
ditto=$(snapctl dump replica.img | sed -n 's/^  trees *tree-node@[0-9]*,\([0-9]*\) .*/\1/p')
printf '\xff\xff\xff\xff' | dd of=replica.img bs=1 seek=$((ditto * 4096 + 40)) conv=notrunc status=none
snapctl ls @tuesday replica.img > /dev/null && echo "the replica still reads"
snapctl scrub -n replica.img || echo "(scrub -n found the bad copy, as it should, and left it)"
snapctl scrub replica.img
snapctl check replica.img

step "snapctl destroy @monday; release the commit history that still sees its blocks; check"
snapctl destroy @monday pool.img
snapctl history --prune pool.img
snapctl status pool.img | grep -E '^(used|free|snapshots):'
snapctl check pool.img
[[ $ok == yes ]]
echo
echo "demo done: files are in $DIR"
