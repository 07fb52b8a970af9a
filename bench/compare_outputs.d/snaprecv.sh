#!/bin/bash
set -u
B=$1; A=$2
W=$(mktemp -d "${TMPDIR:-/tmp}/snapfs-compare.XXXXXX"); cd $W
mkdir -p host; for i in $(seq 1 30); do head -c $((i*20000)) /dev/urandom > host/f$i; done
truncate -s 256M src.img; $B/snapfmt -f src.img >/dev/null
$B/snapctl sync host src.img >/dev/null; $B/snapctl snapshot @a src.img >/dev/null
echo x > host/g; head -c 30M /dev/urandom > host/big; $B/snapctl sync host src.img >/dev/null; $B/snapctl snapshot @b src.img >/dev/null
$B/snapsend @a src.img > full.s; $B/snapsend -i @a @b src.img > inc.s; $B/snapsend @b src.img > fullb.s
truncate -s 128M empty.img; $B/snapfmt -f empty.img >/dev/null
truncate -s 16M tiny.img; $B/snapfmt -f tiny.img >/dev/null 2>&1 || { truncate -s 32M tiny.img; $B/snapfmt -f tiny.img >/dev/null; }
cp empty.img partial.img; head -c $(( $(stat -c %s full.s) / 2 )) full.s | $B/snaprecv -s partial.img >/dev/null 2>&1
cp empty.img hasa.img; $B/snaprecv hasa.img < full.s >/dev/null
cat full.s inc.s > both.s
n=0; fails=0
run() { local img=$1 in=$2; shift 2; n=$((n+1))
  for side in B A; do local bin=${!side}; cp $img $side.img
    local args=("${@/DEV/$side.img}")
    $bin/snaprecv "${args[@]}" < $in >$side.out 2>$side.err; echo "rc=$?" >>$side.err
    sed -i -E "s/$side\.img/DEV/g; s/[0-9]{19}/NS/g; s/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z/TIME/g" $side.out $side.err
  done
  if ! cmp -s B.out A.out || ! cmp -s B.err A.err; then fails=$((fails+1)); echo "=== DIFF: snaprecv $* < $in"; diff B.out A.out; diff B.err A.err; fi
}
for s in full.s inc.s fullb.s both.s; do
  for img in empty.img tiny.img partial.img hasa.img; do
    run $img $s -n DEV; run $img $s DEV; run $img $s -F DEV; run $img $s -s DEV
  done
  run empty.img $s -n; run empty.img $s --dump
done
for img in empty.img partial.img; do run $img /dev/null -A DEV; done
run empty.img /dev/null -A; run empty.img /dev/null -A nope.img
echo "$n commands compared, $fails differ (work dir $W)"
