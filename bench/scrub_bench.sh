#!/usr/bin/env bash
# scrub_bench.sh: `snapctl scrub` throughput against the raw sequential read rate of the
# same loop device, in one run, with `btrfs scrub` on the same data beside it.
#
# Each run, on a fresh loop device: snapfmt, `snapctl sync` of the SIZE dataset
# (shared/bench/workload.sh), a snapshot; then, caches dropped before each:
#   raw_seq_read_MBps    dd of RAW_BYTES from the device, O_DIRECT, 1 MiB requests (as
#                        btrfs_baseline.sh's measure_raw): median of REPS + 1 reads
#                        alternating with the scrubs
#   scrub_MBps           bytes `snapctl scrub --json` verified (every copy) / its wall time,
#                        process start and pool open included: median of REPS scrubs
#   scrub_s, scrub_bytes
# and, with TOOLS=btrfs, a btrfs (compress=zstd, DUP metadata, as mkfs makes it) filled
# with `cp -a` of the same dataset: `btrfs scrub start -B`, bytes scrubbed / its wall time.
#
# Target (issue 5): scrub_MBps >= 0.80 x raw_seq_read_MBps, median of the per-run ratios.
#
# Settings (environment): SIZE=1G, RUNS=3, REPS=3, RAW_BYTES=1G, TOOLS=btrfs ("" for snapfs alone),
# IMG_MIN=4G, BUILD=auto (1: cargo build --release first), RESULTS=bench/results/scrub-<date>.txt,
# and BENCH_DIR, LOOP_DIO, KEEP_IMAGES, WORKLOAD_SEED (see shared/bench/lib.sh).
# Run as root: loop devices, mkfs, mount, drop_caches.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"

SIZE=${SIZE:-1G}
RUNS=${RUNS:-3}
REPS=${REPS:-3}
RAW_BYTES=$(bytes_of "${RAW_BYTES:-1G}")
TOOLS=${TOOLS-btrfs}
IMG_MIN=$(bytes_of "${IMG_MIN:-4G}")
BUILD=${BUILD:-auto}
RESULTS=${RESULTS:-$REPO/bench/results/scrub-$(date +%Y%m%d-%H%M%S).txt}
SIZE_BYTES=$(bytes_of "$SIZE")
IMG_BYTES=$((3 * SIZE_BYTES > IMG_MIN ? 3 * SIZE_BYTES : IMG_MIN))
MNT=$BENCH_DIR/mnt-scrub

[[ $(id -u) == 0 ]] || die "run as root (loop devices, mkfs, mount, drop_caches)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"

# The binaries are copied aside: a rebuild by someone else during the run changes nothing.
bin=$REPO/target/release
if [[ $BUILD == 1 || ! -x $bin/snapfmt || ! -x $bin/snapctl ]]; then
    (cd "$REPO" && cargo build --release) >&2 || die "cargo build --release failed"
fi
BIN_DIR=$(mktemp -d /tmp/snapfs-scrub-bin.XXXXXX)
cp "$bin/snapfmt" "$bin/snapctl" "$BIN_DIR/"
cleanup() {
    set +e
    release_devices
    rm -rf "$BIN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

probe_drop_caches
note "scrub_bench: SIZE=$SIZE RUNS=$RUNS RAW_BYTES=$RAW_BYTES TOOLS=$TOOLS drop_caches=$DROP_CACHES $(date -u +%FT%TZ) $(git -C "$REPO" rev-parse --short HEAD)"
dataset SRC "$SIZE"

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Times a read of RAW_BYTES from the start of the device into SECS.
raw_read() {
    drop_caches
    tic; dd if="$1" of=/dev/null bs=1M count=$((RAW_BYTES / MiB)) iflag=direct status=none; toc
}

snapfs_run() {
    local dev out bytes
    FIG_PREFIX=snapfs.
    new_loop dev scrub-snapfs "$IMG_BYTES"
    "$BIN_DIR/snapfmt" --history 0 "$dev" > /dev/null
    "$BIN_DIR/snapctl" sync "$SRC" "$dev" > /dev/null
    "$BIN_DIR/snapctl" snapshot @a "$dev" > /dev/null
    # The device's rate drifts from second to second on a shared host (dd of the same
    # bytes: 0.64 to 1.13 s within a minute): raw reads and scrubs alternate, REPS
    # scrubs between REPS + 1 raw reads, and the medians are compared.
    local raws=() scrubs=() rep
    raw_read "$dev"
    raws+=("$SECS")
    for ((rep = 1; rep <= REPS; rep++)); do
        drop_caches
        tic; out=$("$BIN_DIR/snapctl" scrub --json "$dev"); toc
        scrubs+=("$SECS")
        raw_read "$dev"
        raws+=("$SECS")
    done
    SECS=$(median "${raws[@]}")
    emit raw_seq_read_MBps "$(mbps "$RAW_BYTES" "$SECS")"
    SECS=$(median "${scrubs[@]}")
    [[ $(json_field clean <<< "$out") == True ]] || die "scrub found damage on a fresh pool: $out"
    bytes=$(json_field bytes_verified <<< "$out")
    emit scrub_s "$SECS"
    emit scrub_bytes "$bytes"
    emit scrub_MBps "$(mbps "$bytes" "$SECS")"
    emit scrub_over_raw "$(awk -v a="${FIG[$RUN_TAG.snapfs.scrub_MBps]}" -v b="${FIG[$RUN_TAG.snapfs.raw_seq_read_MBps]}" 'BEGIN { printf "%.3f", a / b }')"
    release_devices
}

btrfs_run() {
    local dev line bytes
    FIG_PREFIX=btrfs.
    new_loop dev scrub-btrfs "$IMG_BYTES"
    mkfs.btrfs -q -f "$dev"
    mount_dev "$dev" "$MNT" noatime,compress=zstd
    cp -a "$SRC/." "$MNT/"
    sync
    drop_caches
    tic; line=$(btrfs scrub start -B "$MNT" 2>&1); toc
    bytes=$(btrfs scrub status -R "$MNT" | awk '/data_bytes_scrubbed|tree_bytes_scrubbed/ { s += $2 } END { print s + 0 }')
    emit scrub_s "$SECS"
    emit scrub_bytes "$bytes"
    emit scrub_MBps "$(mbps "$bytes" "$SECS")"
    grep -q "Error summary: *no errors found" <<< "$line" || note "btrfs scrub: $line"
    release_devices
}

for ((run = 1; run <= RUNS; run++)); do
    RUN_TAG=run$run
    RUNS_SEEN+=("$RUN_TAG")
    snapfs_run
    if [[ " $TOOLS " == *" btrfs "* ]]; then btrfs_run; fi
done
FIG_PREFIX=
RUN_TAG=summary
summary
ratios=()
for run in "${RUNS_SEEN[@]}"; do ratios+=("${FIG[$run.snapfs.scrub_over_raw]}"); done
ratio=$(median "${ratios[@]}")
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.80 ? "PASS" : "MISS") }')
note "scrub rate / raw read rate, median of runs: $ratio (target >= 0.80): $verdict"
