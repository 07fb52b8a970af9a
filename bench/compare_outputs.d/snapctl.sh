#!/bin/bash
# Usage: compare.sh BEFORE_DIR AFTER_DIR — runs every snapctl command (human and --json)
# with both builds on identical copies of the same sample pools; prints any difference.
set -u
B=$1; A=$2
W=$(mktemp -d "${TMPDIR:-/tmp}/snapfs-compare.XXXXXX")
cd $W
mkdir -p host/docs/deep host2
for i in $(seq 1 20); do head -c $((i*3000)) /dev/urandom > host/docs/f$i; done
yes hello | head -c 200000 > host/docs/deep/text
ln -s docs/f1 host/link
mkfifo host/fifo
mknod host/dev c 1 3
cp host/docs/f1 host/suid; chmod 4755 host/suid
ln host/docs/f2 host/hard
echo xattr > host/x; setfattr -n user.a -v 1 host/x 2>/dev/null
$B/snapfmt pool.img >/dev/null 2>&1 || truncate -s 256M pool.img && $B/snapfmt -f pool.img >/dev/null
truncate -s 256M pool.img; $B/snapfmt -f pool.img >/dev/null
$B/snapctl sync host pool.img >/dev/null
$B/snapctl snapshot @a pool.img >/dev/null
echo more > host/new; rm host/docs/f3
$B/snapctl sync host pool.img >/dev/null
$B/snapctl snapshot @b pool.img >/dev/null
$B/snapctl rm -r docs/deep pool.img
$B/snapctl snapshot @c pool.img >/dev/null
# a pool with a saved partial receive
truncate -s 128M target.img; $B/snapfmt -f target.img >/dev/null
$B/snapsend @b pool.img > full.stream
head -c $(( $(stat -c %s full.stream) / 2 )) full.stream | $B/snaprecv -s target.img >/dev/null 2>&1
# a pool without history
truncate -s 128M nohist.img; $B/snapfmt -f --history 0 --compress none nohist.img >/dev/null
$B/snapctl sync host nohist.img >/dev/null; $B/snapctl snapshot @x nohist.img >/dev/null
$B/snapctl sync host2 nohist.img >/dev/null
cp pool.img grown.img; truncate -s 300M grown.img
cp pool.img bad_data.img; dd if=/dev/urandom of=bad_data.img bs=4096 seek=32768 count=100 conv=notrunc 2>/dev/null
cp pool.img bad_ditto.img; dd if=/dev/urandom of=bad_ditto.img bs=4096 seek=49120 count=80 conv=notrunc 2>/dev/null
n=0; fails=0
run() { # run IMG ARGS... (IMG is copied for each build; the word DEV in ARGS is it)
  local img=$1; shift; n=$((n+1))
  for side in B A; do
    local bin=${!side}; cp $img $side.img; rm -rf out$side
    local args=("${@/DEV/$side.img}"); args=("${args[@]/OUT/out$side}")
    (cd $W; $bin/snapctl "${args[@]}" >$side.out 2>$side.err; echo "rc=$?" >>$side.err)
    sed -i -E "s/$side\.img/DEV/g; s/out$side/OUT/g; s/[0-9]{19}/NS/g; s/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z/TIME/g; s/[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}/MINUTE/g; s/in [0-9.]+ s \([0-9.]+ [KMG]?i?B\/s\)/in T s (R\/s)/; s/\"(metadata_)?seconds\":[0-9.e-]+/\"\1seconds\":S/g" $side.out $side.err
  done
  if ! cmp -s B.out A.out || ! cmp -s B.err A.err; then
    fails=$((fails+1)); echo "=== DIFF: snapctl $*"; diff B.out A.out; diff B.err A.err
  fi
}
for img in pool.img target.img nohist.img grown.img; do
  for j in "" --json; do
    run $img status $j DEV; run $img list $j DEV; run $img check $j DEV; run $img history $j DEV
    run $img scrub -n $j DEV; run $img scrub $j DEV
    run $img history --keep 1h $j DEV; run $img history --prune $j DEV; run $img history --keep 0 --prune $j DEV
  done
  run $img ls DEV; run $img ls -l -R DEV; run $img ls -lR @a DEV; run $img ls -l @b:docs DEV; run $img ls -l link DEV
  run $img cat docs/f2 DEV; run $img cat @a:docs/deep/text DEV; run $img cat docs DEV; run $img cat nope DEV
  run $img snapshot @new DEV; run $img snapshot @a DEV; run $img snapshot a DEV
  run $img destroy @a DEV; run $img destroy @b DEV; run $img destroy @x DEV; run $img destroy @nope DEV
  run $img export / OUT DEV; run $img export --nodev --nosuid @a OUT DEV; run $img export @b:docs OUT DEV; run $img export "" OUT DEV
  run $img mkdir d DEV; run $img mkdir -p d/e/f DEV; run $img mkdir docs DEV; run $img mkdir @a:x DEV
  run $img rm link DEV; run $img rm docs DEV; run $img rm -r docs DEV; run $img rm nope DEV
  run $img mv docs/f1 docs2 DEV; run $img mv docs/f1 docs/deep DEV; run $img mv nope x DEV
  run $img put host/new newfile DEV; run $img put --offset 5 host/new docs/f1 DEV; run $img put nope x DEV
  run $img sync host DEV; run $img sync host2 sub/dir DEV; run $img sync host @a DEV
  run $img dump DEV; run $img expand DEV
done
for img in bad_data.img bad_ditto.img; do
  for j in "" --json; do run $img check $j DEV; run $img scrub -n $j DEV; run $img scrub $j DEV; run $img status $j DEV; run $img list $j DEV; done
  run $img ls -lR DEV; run $img cat docs/f20 DEV; run $img export / OUT DEV; run $img sync host DEV
done
run pool.img history --keep 5y nope.img; run pool.img snapshot bad nope.img; run pool.img ls -l @b:nope DEV
echo "$n commands compared, $fails differ (work dir $W)"
