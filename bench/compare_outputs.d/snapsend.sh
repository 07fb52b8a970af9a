#!/bin/bash
# Usage: snapsend.sh BEFORE_DIR AFTER_DIR — runs snapsend's modes (dry runs with -v and
# -P, full, incremental, intermediates, resume, errors, a reader that goes away: how far
# it got is masked, it depends on timing) with
# both builds on identical copies of one sample pool; compares stdout (the stream, byte
# for byte), stderr and the exit status.
set -u
B=$1; A=$2
W=$(mktemp -d "${TMPDIR:-/tmp}/snapfs-compare.XXXXXX"); cd $W
mkdir -p host; for i in $(seq 1 20); do head -c $((i*30000)) /dev/urandom > host/f$i; done
truncate -s 256M src.img; $B/snapfmt -f src.img >/dev/null
$B/snapctl sync host src.img >/dev/null; $B/snapctl snapshot @a src.img >/dev/null
echo x > host/g; $B/snapctl sync host src.img >/dev/null; $B/snapctl snapshot @b src.img >/dev/null
head -c 5M /dev/urandom > host/big; $B/snapctl sync host src.img >/dev/null; $B/snapctl snapshot @c src.img >/dev/null
truncate -s 128M partial.img; $B/snapfmt -f partial.img >/dev/null
$B/snapsend @c src.img > full.s
head -c $(( $(stat -c %s full.s) / 2 )) full.s | $B/snaprecv -s partial.img >/dev/null 2>&1
TOKEN=$($B/snapctl status --json partial.img | sed -E 's/.*"receive_resume_token":"([^"]*)".*/\1/')
n=0; fails=0
run() { n=$((n+1))
  for side in B A; do local bin=${!side}; cp src.img $side.img
    local args=("${@/DEV/$side.img}")
    $bin/snapsend "${args[@]}" >$side.out 2>$side.err; echo "rc=$?" >>$side.err
    sed -i -E "s/$side\.img/DEV/g" $side.err
  done
  if ! cmp -s B.out A.out || ! cmp -s B.err A.err; then fails=$((fails+1)); echo "=== DIFF: snapsend $*"; cmp B.out A.out; diff B.err A.err; fi
}
piped() { n=$((n+1)) # a reader that takes 1000 bytes and goes away
  for side in B A; do local bin=${!side}; cp src.img $side.img
    $bin/snapsend "$@" $side.img 2>$side.err | head -c 1000 >/dev/null; echo "rc=${PIPESTATUS[0]}" >>$side.err
    sed -i -E "s/$side\.img/DEV/g; s/after [0-9]+ bytes/after N bytes/" $side.err # as far as the pipe took
  done
  if ! cmp -s B.err A.err; then fails=$((fails+1)); echo "=== DIFF: snapsend $* | head"; diff B.err A.err; fi
}
for mode in "-n -v" "-n -P" "-n -v -P" "" "-v" "-P" "-v -P"; do
  run $mode @a DEV; run $mode -i @a @c DEV; run $mode -I @a @c DEV; run $mode -i @b @c DEV
  run $mode -t "$TOKEN" DEV
done
run @nope DEV; run -i @c @a DEV; run -i @nope @c DEV; run -I @c @c DEV; run -t garbage DEV; run -t "$TOKEN" @a DEV
run DEV; run bad DEV; run -i bad @c DEV; run @a nope.img; run -n @a
piped @c; piped -v @c; piped -I @a @c
echo "$n commands compared, $fails differ (work dir $W)"
