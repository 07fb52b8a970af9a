#!/usr/bin/env bash
# sparse_bench.sh: `snapctl sync` of a sparse file, then its re-sync after a 2-byte change,
# each timed with /usr/bin/time -v (wall seconds, max RSS), as issue 12 class 5 measured.
#
# The source directory holds one file of APPARENT bytes (truncate -s) with 12 bytes of
# data written at four offsets (dd conv=notrunc): 3 bytes at 0, 1 GiB, half way and 3
# bytes before the end. The re-sync follows a 2-byte change at 1 GiB, so size stays and
# mtime changes: the file is read again. Prints one line per sync:
#   first_sync  seconds=S max_rss_kib=K records_stored=N
#   resync      seconds=S max_rss_kib=K records_stored=N
# records_stored is `snapctl status --json`'s live_logical_bytes over 128 KiB, rounded up:
# the holes are not stored when it stays at a few records.
#
# Settings (environment): APPARENT=100G, BIN=target/release (a directory holding snapctl
# and snapfmt; point it at an older build to measure before a change), POOL_BYTES=1G,
# BENCH_DIR=/tmp/snapfs-sparse-bench (removed at the end unless KEEP=1).
# Needs no root: the pool is an image file. The source must sit on a file system that
# keeps holes (ext4, xfs, btrfs, tmpfs).
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
APPARENT=${APPARENT:-100G}
BIN=${BIN:-$REPO/target/release}
POOL_BYTES=${POOL_BYTES:-1G}
BENCH_DIR=${BENCH_DIR:-/tmp/snapfs-sparse-bench}

die() { echo "sparse_bench: $*" >&2; exit 1; }
[[ -x $BIN/snapctl && -x $BIN/snapfmt ]] || die "no snapctl and snapfmt in $BIN (cargo build --release, or set BIN)"
[[ -x /usr/bin/time ]] || die "needs GNU time at /usr/bin/time"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/src"
trap '[[ ${KEEP:-0} == 1 ]] || rm -rf "$BENCH_DIR"' EXIT
file=$BENCH_DIR/src/sparse
truncate -s "$APPARENT" "$file"
size=$(stat -c %s "$file")
poke() { printf '%s' "$2" | dd of="$file" bs=1 seek="$1" conv=notrunc status=none; }
poke 0 abc
poke $((1 << 30)) def
poke $((size / 2)) ghi
poke $((size - 3)) jkl
img=$BENCH_DIR/pool.img
truncate -s "$POOL_BYTES" "$img"
"$BIN/snapfmt" "$img" > /dev/null

# One timed sync: prints "NAME seconds=... max_rss_kib=... records_stored=...".
timed_sync() {
    local name=$1 log=$BENCH_DIR/time-$1.txt
    /usr/bin/time -v "$BIN/snapctl" sync "$BENCH_DIR/src" "$img" > "$BENCH_DIR/sync-$name.txt" 2> "$log" \
        || { cat "$log" >&2; die "$name: snapctl sync failed"; }
    local wall rss logical
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log" \
        | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    logical=$("$BIN/snapctl" status --json "$img" | sed -n 's/.*"live_logical_bytes": *\([0-9]*\).*/\1/p')
    echo "$name seconds=$wall max_rss_kib=$rss records_stored=$(((logical + 131071) / 131072))"
}

echo "sparse_bench: $APPARENT apparent, 12 bytes of data, snapctl from $BIN"
timed_sync first_sync
poke $((1 << 30)) XY
timed_sync resync
"$BIN/snapctl" check "$img" > /dev/null || die "check failed after the syncs"
