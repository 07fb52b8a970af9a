#!/usr/bin/env bash
# bench.sh: snapfs against btrfs, side by side in one run, on the same kind of loop device
# and the same workload (shared/bench/workload.sh), so the ratios are not skewed by a
# different machine, day or data set. btrfs is measured as shared/bench/btrfs_baseline.sh
# does it (caches dropped, source read into memory, `cp -a` + `sync`).
#
# Caches are dropped (when permitted) before every copy-in and export, and the
# source tree is then read back into memory, so copy-ins time writing and exports reading
# the device. snapctl opens the block device itself; the kernel drops a block device's page
# cache at its last close, so every snapctl command starts with a cold device cache anyway.
#
# Memory: this machine is a VM whose balloon reports freed guest memory back to the host
# (free page reporting), so the first write to such memory costs a host fault: 2 GiB into
# fresh tmpfs took 3.5 s, into recently used memory 0.75 s. A timed copy would pay a
# random share of that (drop_caches frees gigabytes just before), so right before every
# timed copy-in and export the bench writes PREFAULT bytes of anonymous memory and frees
# them: the timed part then finds backed pages. This made btrfs' 1 GiB copy-in 2.0 s every
# time instead of 2.7-3.4 s. It costs some 2.5 s per GiB each time; PREFAULT=0 skips it.
#
# Each run measures, snapfs and btrfs each on a fresh loop device (the order alternates
# from run to run, so a drift of the shared machine does not favour one side):
#   1 copy-in    SIZE dataset into an empty pool: `snapctl sync` + `sync` against
#                `cp -a` + `sync` into a fresh btrfs subvolume          (snapfs >= 1.2x btrfs)
#                and into a btrfs mounted compress=zstd (after the main pair)   (>= 1.5x)
#                (with BUSY=1, against plain btrfs                              (>= 1.0x))
#   2 re-sync    `snapctl sync` of the unchanged tree, caches dropped as for the first
#                sync, as a share of the first sync's time                      (< 5%)
#   3 snapshot   median of SNAP_REPEATS snapshots of a clean tree at every size of
#                SNAP_SIZES: `snapctl snapshot` against `btrfs subvolume snapshot -r`
#                after a `sync`                                                  (<= btrfs)
#                and the flatness max/min of snapfs' medians across sizes     (<= 1.5x)
#   4 overwrite  4 KiB at offset 1 MiB of a 256 MiB random file (snapshotted first, so the
#                old block must be kept): bytes snapfs says it wrote (SNAPFS_IO_STATS) and,
#                independently, the loop device's written sectors (/sys/block/loopN/stat);
#                btrfs gets the same with dd conv=notrunc + sync               (< 1 MiB)
#   5 export     `snapctl export @snap` against `cp -a` out of a btrfs snapshot, caches
#                dropped, into the same destination file system (EXPORT_FS)  (>= 0.8x)
#   6 space      after the copy-in: snapfs used_bytes (whole pool, metadata included) and
#                live_stored_bytes against a btrfs mounted compress=zstd filled alike:
#                Data used, and Data + Metadata + System used (DUP counted twice)
#                                                                      (snapfs <= btrfs)
#   7 memory     peak RSS of the copy-in `snapctl sync` (/usr/bin/time %M)       (< 256 MiB)
#   and checks every export against the dataset's digest (MISMATCH if they differ).
#
# Output: one line per figure "<run>.<name>=<value>", the unit in the name (_s, _ms,
# _MBps = 10^6 bytes/s, _bytes, _KiB); then every figure's values run by run; then a
# table of medians over the runs: figure, snapfs, btrfs, ratio, target, PASS/MISS.
# Everything also goes to $RESULTS.
#
# The binaries are copied to a private directory at the start, so a rebuild by someone
# else during the run changes nothing; they are built first if missing (or if BUILD=1).
#
# Settings (environment):
#   SIZE=1G                    dataset of the copy-in, re-sync, export, space, memory figures
#   BUSY=0                     1: a CPU-bound process (sha256sum of /dev/zero) runs beside
#                              both for the whole run, as on a machine that is also busy
#   RUNS=3                     repetitions of the whole measurement (medians over them)
#   SNAP_SIZES="256M 1G 2G"    dataset sizes of the snapshot figures
#   SNAP_REPEATS=20            snapshots per median
#   OVERWRITE_FILE=256M        size of the file that gets the 4 KiB overwrite
#   EXPORT_FS=tmpfs            destination of exports: tmpfs (a private one) or disk
#                              (a directory under $BENCH_DIR, timed with its `sync`)
#   SNAPFMT_OPTS="--history 0" options of snapfmt (no retained history, as btrfs keeps none)
#   PREFAULT=<2 x SIZE + 1G>   memory touched and freed before each timed copy (see Memory)
#   IMG_MIN=4G                 smallest image; each is max(IMG_MIN, 3 x dataset), sparse
#   BUILD=auto                 auto: cargo build --release only if a binary is missing; 1: always
#   INSTALL_DEPS=1             apt-get install btrfs-progs and time when missing
#   RESULTS=bench/results/snapfs-<date>.txt
#   SHARED_BENCH=<repo>/../shared/bench   where lib.sh and workload.sh live (else /work/shared/bench)
#   and BENCH_DIR (default /tmp/bench; datasets are cached there), LOOP_DIO, KEEP_IMAGES,
#   WORKLOAD_SEED (see lib.sh)
#
# Run as root: loop devices, mkfs, mount, drop_caches.
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0; fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"

SIZE=${SIZE:-1G}
BUSY=${BUSY:-0}
RUNS=${RUNS:-3}
SNAP_SIZES=${SNAP_SIZES-256M 1G 2G}
SNAP_REPEATS=${SNAP_REPEATS:-20}
OVERWRITE_FILE=${OVERWRITE_FILE:-256M}
EXPORT_FS=${EXPORT_FS:-tmpfs}
SNAPFMT_OPTS=${SNAPFMT_OPTS---history 0}
IMG_MIN=$(bytes_of "${IMG_MIN:-4G}")
BUILD=${BUILD:-auto}
INSTALL_DEPS=${INSTALL_DEPS:-1}
RESULTS=${RESULTS:-$REPO/bench/results/snapfs-$(date +%Y%m%d-%H%M%S).txt}
SIZE_BYTES=$(bytes_of "$SIZE")
PREFAULT=$(bytes_of "${PREFAULT:-$((2 * SIZE_BYTES + (1 << 30)))}")
MNT=$BENCH_DIR/mnt/btrfs
EXPORTS=$BENCH_DIR/export
OVERWRITE_OFFSET=1048576
OVERWRITE_TARGET=$((1 << 20))
MEMORY_TARGET_KiB=$((256 * 1024))

# ---------------------------------------------------------------- preflight
need_package() {  # need_package COMMAND PACKAGE
    command -v "$1" > /dev/null && return 0
    if [[ $INSTALL_DEPS != 1 ]] || ! command -v apt-get > /dev/null; then die "$1 missing: apt-get install -y $2"; fi
    apt-get update -qq && apt-get install -y -qq "$2" > /dev/null
}

# Copies the binaries to a private directory: others may rebuild target/ during the run.
private_binaries() {
    local bin=$REPO/target/release
    if [[ $BUILD == 1 || ! -x $bin/snapfmt || ! -x $bin/snapctl ]]; then
        (cd "$REPO" && cargo build --release) >&2 || die "cargo build --release failed"
    fi
    BIN_DIR=$(mktemp -d /tmp/snapfs-bench-bin.XXXXXX)
    cp "$bin/snapfmt" "$bin/snapctl" "$BIN_DIR/"
    SNAPFMT=$BIN_DIR/snapfmt SNAPCTL=$BIN_DIR/snapctl
}

preflight() {
    [[ $(id -u) == 0 ]] || die "run as root (loop devices, mkfs, mount, drop_caches)"
    need_package mkfs.btrfs btrfs-progs
    [[ -x /usr/bin/time ]] || need_package /usr/bin/time time
    for tool in btrfs losetup python3 numfmt; do command -v "$tool" > /dev/null || die "$tool is missing"; done
    grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || die "this kernel has no btrfs"
    [[ $EXPORT_FS == tmpfs || $EXPORT_FS == disk ]] || die "EXPORT_FS must be tmpfs or disk"
    mkdir -p "$BENCH_DIR" "$(dirname "$RESULTS")"
    private_binaries
    WORK=$(mktemp -d /tmp/snapfs-bench-work.XXXXXX)  # logs of the last commands, /usr/bin/time output
}

cleanup() {
    if [[ -n ${BUSY_PID:-} ]]; then kill "$BUSY_PID" 2>/dev/null || true; fi
    release_devices
    if mountpoint -q "$EXPORTS"; then umount "$EXPORTS"; fi
    rm -rf "${BIN_DIR:-/nonexistent}" "${WORK:-/nonexistent}"
}

# ---------------------------------------------------------------- helpers
image_bytes() { local b=$((3 * $1)); echo $((b > IMG_MIN ? b : IMG_MIN)); }
in_list() { [[ " $2 " == *" $1 "* ]]; }  # in_list WORD "LIST"

# Runs a command with its output kept in $WORK/last.log, shown only when it fails.
quiet() {
    "$@" > "$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; die "failed: $*"; }
}

# Bytes written to a loop device so far (field 7 of its stat: 512-byte sectors).
written_sectors_bytes() { awk '{ printf "%.0f\n", $7 * 512 }' "/sys/block/${1#/dev/}/stat"; }

snapfs_status() {  # snapfs_status DEV FIELD: one field of `snapctl status --json`
    "$SNAPCTL" status --json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

io_written() { grep -o 'io: written_bytes=[0-9]*' "$1" | tail -1 | cut -d= -f2; }

# Random, incompressible files for the overwrite test, made once per size.
random_file() {  # random_file VAR BYTES
    local _f="$BENCH_DIR/data/random-$2.bin"
    if [[ ! -f $_f ]]; then
        mkdir -p "$BENCH_DIR/data"
        python3 -c 'import random, sys
r, n = random.Random(42), int(sys.argv[1])
with open(sys.argv[2] + ".tmp", "wb") as f:
    for i in range(0, n, 1 << 20): f.write(r.randbytes(min(1 << 20, n - i)))' "$2" "$_f"
        mv "$_f.tmp" "$_f"
    fi
    printf -v "$1" %s "$_f"
}

# Touches PREFAULT bytes of memory and frees them, so that the timed command after it
# finds memory the host has backed (see Memory in the header).
prefault() {
    ((PREFAULT > 0)) || return 0
    python3 -c 'import mmap, sys
n = int(sys.argv[1]); m = mmap.mmap(-1, n); z = bytes(1 << 26)
for i in range(0, n, len(z)): m.write(z[: n - i])' "$PREFAULT"
}

# A fresh, empty directory for an export. With EXPORT_FS=tmpfs it lies on a private
# tmpfs, so an export times reading the store, not the host disk.
export_dest() {  # export_dest VAR NAME
    mkdir -p "$EXPORTS"
    if [[ $EXPORT_FS == tmpfs ]] && ! mountpoint -q "$EXPORTS"; then
        mount -t tmpfs -o "size=$((4 * SIZE_BYTES + (256 << 20)))" tmpfs "$EXPORTS"
    fi
    rm -rf "${EXPORTS:?}/$2"
    printf -v "$1" %s "$EXPORTS/$2"
}

# ---------------------------------------------------------------- snapfs
snapfs_pool() {  # snapfs_pool VAR NAME DATASET_BYTES: a freshly formatted pool on a new loop
    local pool_dev  # not "_dev": new_loop has a local of that name
    new_loop pool_dev "$2" "$(image_bytes "$3")"
    # shellcheck disable=SC2086  # SNAPFMT_OPTS is a list of options
    quiet "$SNAPFMT" -f $SNAPFMT_OPTS "$pool_dev"
    printf -v "$1" %s "$pool_dev"
}

# Copy-in of a dataset, timed the way btrfs' fill is: source read into memory first, so
# this times writing; the `sync` after adds nothing if snapctl's fdatasync did its job.
# /usr/bin/time keeps the peak RSS and where the CPU time went (user vs kernel) in
# $WORK/time, and SNAPFS_IO_STATS the bytes snapctl wrote in $WORK/sync.log.
snapfs_fill() {  # snapfs_fill DEV DATASET [timed]: sets SECS; "timed" prefaults first
    drop_caches
    warm_tree "$2"
    if [[ ${3:-} == timed ]]; then prefault; fi
    tic
    SNAPFS_IO_STATS=1 /usr/bin/time -f '%M %U %S' -o "$WORK/time" "$SNAPCTL" sync "$2" "$1" > "$WORK/sync.log" 2>&1 ||
        { cat "$WORK/sync.log" >&2; die "snapctl sync failed"; }
    sync
    toc
}

snapfs_copy_figures() {  # snapfs_copy_figures DATASET: of the snapfs_fill just done
    local rss user sys
    emit snapfs_copy_s "$SECS"
    emit snapfs_copy_MBps "$(mbps "$(dataset_bytes "$1")" "$SECS")"
    emit snapfs_copy_written_bytes "$(io_written "$WORK/sync.log")"
    read -r rss user sys < "$WORK/time"
    emit snapfs_copy_peak_rss_KiB "$rss"
    emit snapfs_copy_user_s "$user"
    emit snapfs_copy_sys_s "$sys"
}

# A re-sync of the unchanged tree should read metadata only. Caches are dropped as for the
# first sync, so the pool's metadata must come from the device.
snapfs_resync() {  # snapfs_resync DEV DATASET
    drop_caches
    warm_tree "$2"
    tic; quiet "$SNAPCTL" sync "$2" "$1"; sync; toc
    emit snapfs_resync_s "$SECS"
    emit snapfs_resync_share "$(awk -v a="$SECS" -v b="${FIG[$RUN_TAG.snapfs_copy_s]}" 'BEGIN { printf "%.4f\n", a / b }')"
}

snapfs_space() {  # snapfs_space DEV
    emit snapfs_used_bytes "$(snapfs_status "$1" used_bytes)"
    emit snapfs_live_stored_bytes "$(snapfs_status "$1" live_stored_bytes)"
}

snapfs_export() {  # snapfs_export DEV SNAP DATASET: exports @SNAP; leaves it for verify
    local dest
    export_dest dest snapfs
    drop_caches
    prefault
    tic; quiet "$SNAPCTL" export "@$2" "$dest" "$1"; sync; toc
    emit snapfs_export_s "$SECS"
    emit snapfs_export_MBps "$(mbps "$(dataset_bytes "$3")" "$SECS")"
}

snapfs_snapshot_repeats() {  # snapfs_snapshot_repeats DEV SIZE
    local i times=()
    sync
    for ((i = 1; i <= SNAP_REPEATS; i++)); do
        tic; "$SNAPCTL" snapshot "@rep$i" "$1" > /dev/null; toc  # as bare as btrfs' command
        times+=("$MS")
    done
    emit "snapfs_snapshot_${2}_ms" "$(median "${times[@]}")"
}

# 4 KiB into a large file that a snapshot holds: the cost should follow the change.
snapfs_overwrite() {  # snapfs_overwrite DEV
    local dev=$1 big small before after
    random_file big "$(bytes_of "$OVERWRITE_FILE")"
    random_file small 4096
    quiet "$SNAPCTL" put "$big" bigfile "$dev"
    quiet "$SNAPCTL" snapshot @before-overwrite "$dev"
    sync
    before=$(written_sectors_bytes "$dev")
    SNAPFS_IO_STATS=1 "$SNAPCTL" put --offset "$OVERWRITE_OFFSET" "$small" bigfile "$dev" > "$WORK/put.log" 2>&1 ||
        { cat "$WORK/put.log" >&2; die "snapctl put --offset failed"; }
    sync
    after=$(written_sectors_bytes "$dev")
    emit snapfs_overwrite_io_bytes "$(io_written "$WORK/put.log")"
    emit snapfs_overwrite_device_bytes "$((after - before))"
}

phase_snapfs_main() {  # phase_snapfs_main DATASET
    local data=$1 dev
    snapfs_pool dev snapfs "$SIZE_BYTES"
    snapfs_fill "$dev" "$data" timed
    snapfs_copy_figures "$data"
    snapfs_space "$dev"
    snapfs_resync "$dev" "$data"
    quiet "$SNAPCTL" snapshot @A "$dev"
    snapfs_export "$dev" A "$data"
    if in_list "$SIZE" "$SNAP_SIZES"; then snapfs_snapshot_repeats "$dev" "$SIZE"; fi
    snapfs_overwrite "$dev"
    release_devices
}

phase_snapfs_snapshots() {  # phase_snapfs_snapshots SIZE DATASET
    local dev
    snapfs_pool dev snapfs "$(bytes_of "$1")"
    snapfs_fill "$dev" "$2"
    snapfs_snapshot_repeats "$dev" "$1"
    release_devices
}

# ---------------------------------------------------------------- btrfs
btrfs_pool() {  # btrfs_pool DATASET_BYTES [MOUNT_OPTIONS]: fresh btrfs at $MNT, subvolume live
    local dev opts="noatime${2:+,$2}"
    new_loop dev btrfs "$(image_bytes "$1")"
    BTRFS_DEV=$dev
    quiet mkfs.btrfs -f -q "$dev"
    mount_dev "$dev" "$MNT" "$opts"
    btrfs -q subvolume create "$MNT/live"
    mkdir -p "$MNT/snaps"
}

btrfs_fill() {  # btrfs_fill DATASET [FIGURE_PREFIX]: the prefix, if any, names the figures
    drop_caches
    warm_tree "$1"
    if [[ -n ${2:-} ]]; then prefault; fi
    tic; cp -a "$1/." "$MNT/live/"; sync; toc
    [[ -n ${2:-} ]] || return 0
    emit "${2}copy_s" "$SECS"
    emit "${2}copy_MBps" "$(mbps "$(dataset_bytes "$1")" "$SECS")"
}

# Bytes btrfs uses, from `btrfs filesystem df -b`: KINDS is a regex of block group types;
# DUP and RAID1 groups hold two copies, counted twice (snapfs' used_bytes counts its copies).
btrfs_used() {  # btrfs_used MNT KINDS
    sync
    btrfs filesystem df -b "$1" | awk -v kinds="^($2)," '
        $0 ~ kinds { split($0, u, "used="); copies = ($2 ~ /DUP|RAID1/) ? 2 : 1; sum += u[2] * copies }
        END { printf "%.0f\n", sum }'
}

btrfs_export() {  # btrfs_export SNAP DATASET: cp -a out of a snapshot; leaves it for verify
    local dest
    export_dest dest btrfs
    mkdir "$dest"
    drop_caches
    prefault
    tic; cp -a "$MNT/snaps/$1/." "$dest/"; sync; toc
    emit btrfs_export_s "$SECS"
    emit btrfs_export_MBps "$(mbps "$(dataset_bytes "$2")" "$SECS")"
}

btrfs_snapshot_repeats() {  # btrfs_snapshot_repeats SIZE
    local i times=()
    sync
    for ((i = 1; i <= SNAP_REPEATS; i++)); do
        tic; btrfs -q subvolume snapshot -r "$MNT/live" "$MNT/snaps/rep$i"; toc
        times+=("$MS")
    done
    emit "btrfs_snapshot_${1}_ms" "$(median "${times[@]}")"
}

btrfs_overwrite() {  # the same 4 KiB overwrite, counted on btrfs' loop device
    local big small before after
    random_file big "$(bytes_of "$OVERWRITE_FILE")"
    random_file small 4096
    cp "$big" "$MNT/live/bigfile"
    btrfs -q subvolume snapshot -r "$MNT/live" "$MNT/snaps/before-overwrite"
    sync
    before=$(written_sectors_bytes "$BTRFS_DEV")
    dd if="$small" of="$MNT/live/bigfile" bs=4096 seek=$((OVERWRITE_OFFSET / 4096)) conv=notrunc status=none
    sync
    after=$(written_sectors_bytes "$BTRFS_DEV")
    emit btrfs_overwrite_device_bytes "$((after - before))"
}

phase_btrfs_main() {  # phase_btrfs_main DATASET
    local data=$1
    btrfs_pool "$SIZE_BYTES"
    btrfs_fill "$data" btrfs_
    emit btrfs_data_used_bytes "$(btrfs_used "$MNT" Data)"
    btrfs -q subvolume snapshot -r "$MNT/live" "$MNT/snaps/A"
    btrfs_export A "$data"
    if in_list "$SIZE" "$SNAP_SIZES"; then btrfs_snapshot_repeats "$SIZE"; fi
    btrfs_overwrite
    release_devices
}

# snapfs compresses (zstd:1 by default), so its space is compared with btrfs compress=zstd.
phase_btrfs_zstd() {  # phase_btrfs_zstd DATASET
    btrfs_pool "$SIZE_BYTES" compress=zstd
    btrfs_fill "$1" btrfs_zstd_
    emit btrfs_zstd_data_used_bytes "$(btrfs_used "$MNT" Data)"
    emit btrfs_zstd_all_used_bytes "$(btrfs_used "$MNT" 'Data|Metadata|System')"
    release_devices
}

phase_btrfs_snapshots() {  # phase_btrfs_snapshots SIZE DATASET
    btrfs_pool "$(bytes_of "$1")"
    btrfs_fill "$2"
    btrfs_snapshot_repeats "$1"
    release_devices
}

# ---------------------------------------------------------------- checks
verify_exports() {  # verify_exports DATASET: both exports against the dataset's digest
    local want side i sides=(snapfs btrfs)
    want=$(pristine_digest "$1")
    digest_trees "$EXPORTS/snapfs" "$EXPORTS/btrfs"
    for i in 0 1; do
        side=${sides[i]}
        if [[ ${DIGESTS[i]} == "$want" ]]; then
            emit "${side}_export_verified" yes
        else
            emit "${side}_export_verified" no
            note "MISMATCH: $side export differs from the dataset ($(short_digest "${DIGESTS[i]}") != $(short_digest "$want"))"
        fi
    done
    rm -rf "${EXPORTS:?}/snapfs" "${EXPORTS:?}/btrfs"
}

# ---------------------------------------------------------------- summary table
# Median over the runs of one figure ("-" if no run has it).
med() {
    local run values=()
    for run in "${RUNS_SEEN[@]}"; do
        [[ -n ${FIG["$run.$1"]:-} && ${FIG["$run.$1"]} != - ]] && values+=("${FIG["$run.$1"]}")
    done
    if ((${#values[@]} == 0)); then echo -; return 0; fi
    # Byte and KiB counts stay integers (median() gives 3 decimals for an even count).
    if [[ " ${values[*]}" =~ ^(\ [0-9]+)+$ ]]; then median "${values[@]}" | awk '{ printf "%.0f\n", $1 }'
    else median "${values[@]}"; fi
}

# verdict VALUE OP LIMIT: PASS if VALUE OP LIMIT holds (OP one of < <= >= >), unrounded.
verdict() {
    [[ $1 == - ]] && { echo "n/a"; return 0; }
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        ok = (op == "<" && v < l) || (op == "<=" && v <= l) || (op == ">=" && v >= l) || (op == ">" && v > l)
        print (ok ? "PASS" : "MISS") }'
}

ratio_exact() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.9g\n", a / b }'; }
rounded() { [[ $1 == - ]] && echo - || printf '%.3f\n' "$1"; }

TABLE_FORMAT='%-36s %14s %14s %8s %-22s %s\n'
row() {  # row FIGURE SNAPFS BTRFS RATIO TARGET VERDICT
    # shellcheck disable=SC2059  # the format is a constant
    printf "$TABLE_FORMAT" "$@" | tee -a "$RESULTS"
}

# A row comparing snapfs with btrfs: ratio = snapfs / btrfs, judged against OP LIMIT
# (OP "info": shown, not judged).
compare() {  # compare LABEL SNAPFS_FIGURE BTRFS_FIGURE OP LIMIT TARGET_TEXT
    local s b r
    s=$(med "$2") b=$(med "$3")
    r=$(ratio_exact "$s" "$b")
    row "$1" "$s" "$b" "$(rounded "$r")" "$6" "$(if [[ $4 == info ]]; then echo info; else verdict "$r" "$4" "$5"; fi)"
}

# A row judging a snapfs figure by itself; the btrfs figure, if any, is for reference.
absolute() {  # absolute LABEL SNAPFS_FIGURE BTRFS_FIGURE|- OP LIMIT TARGET_TEXT
    local s b=-
    s=$(med "$2")
    [[ $3 == - ]] || b=$(med "$3")
    row "$1" "$s" "$b" "$(rounded "$(ratio_exact "$s" "$b")")" "$6" "$(verdict "$s" "$4" "$5")"
}

# Flatness of the snapshot medians across sizes: max / min.
flatness() {  # flatness SIDE
    local size values=()
    for size in $SNAP_SIZES; do values+=("$(med "${1}_snapshot_${size}_ms")"); done
    printf '%s\n' "${values[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END {
        if (lo > 0) printf "%.3f\n", hi / lo; else print "-" }'
}

all_yes() {  # all_yes FIGURE: yes if every run says yes
    local run
    for run in "${RUNS_SEEN[@]}"; do [[ ${FIG["$run.$1"]:-no} == yes ]] || { echo no; return 0; }; done
    echo yes
}

summary_table() {
    local size s b ok
    note "medians over ${#RUNS_SEEN[@]} run(s); ratio = snapfs / btrfs"
    row figure snapfs btrfs ratio target verdict
    if [[ $BUSY == 1 ]]; then
        compare "1 copy-in $SIZE, busy (MB/s)" snapfs_copy_MBps btrfs_copy_MBps '>=' 1.0 ">= 1.0x btrfs"
        compare "1 copy-in $SIZE vs btrfs zstd, busy (MB/s)" snapfs_copy_MBps btrfs_zstd_copy_MBps info - "(for reference)"
    else
        compare "1 copy-in $SIZE (MB/s)" snapfs_copy_MBps btrfs_copy_MBps '>=' 1.2 ">= 1.2x btrfs"
        compare "1 copy-in $SIZE vs btrfs zstd (MB/s)" snapfs_copy_MBps btrfs_zstd_copy_MBps '>=' 1.5 ">= 1.5x btrfs zstd"
    fi
    s=$(med snapfs_resync_share)
    row "2 re-sync unchanged (s)" "$(med snapfs_resync_s)" - "$(rounded "$s")" "< 0.05x first sync" "$(verdict "$s" '<' 0.05)"
    for size in $SNAP_SIZES; do
        compare "3 snapshot $size (ms)" "snapfs_snapshot_${size}_ms" "btrfs_snapshot_${size}_ms" '<=' 1 "<= 1x btrfs"
    done
    if [[ -n $SNAP_SIZES ]]; then
        s=$(flatness snapfs) b=$(flatness btrfs)
        row "3 snapshot flatness (max/min)" "$s" "$b" - "<= 1.5 (snapfs)" "$(verdict "$s" '<=' 1.5)"
    fi
    absolute "4 4K overwrite, io stats (bytes)" snapfs_overwrite_io_bytes - '<' "$OVERWRITE_TARGET" "< 1 MiB"
    absolute "4 4K overwrite, loop stat (bytes)" snapfs_overwrite_device_bytes btrfs_overwrite_device_bytes \
        '<' "$OVERWRITE_TARGET" "< 1 MiB"
    compare "5 export $SIZE (MB/s)" snapfs_export_MBps btrfs_export_MBps '>=' 0.8 ">= 0.8x btrfs"
    compare "6 used vs zstd data+meta (bytes)" snapfs_used_bytes btrfs_zstd_all_used_bytes '<=' 1 "<= 1x btrfs zstd"
    compare "6 used vs zstd data (bytes)" snapfs_used_bytes btrfs_zstd_data_used_bytes '<=' 1 "<= 1x btrfs zstd"
    compare "6 live_stored vs zstd data (bytes)" snapfs_live_stored_bytes btrfs_zstd_data_used_bytes '<=' 1 "<= 1x btrfs zstd"
    absolute "7 peak RSS of sync (KiB)" snapfs_copy_peak_rss_KiB - '<' "$MEMORY_TARGET_KiB" "< 262144 KiB"
    s=$(all_yes snapfs_export_verified) b=$(all_yes btrfs_export_verified)
    if [[ $s == yes && $b == yes ]]; then ok=PASS; else ok=MISMATCH; fi
    row "export digest = dataset (all runs)" "$s" "$b" - "yes" "$ok"
}

# ---------------------------------------------------------------- main
one_run() {
    local run=$1 size
    RUN_TAG=run$run
    RUNS_SEEN+=("$RUN_TAG")
    note "run $run of $RUNS"
    emit loadavg "$(cut -d' ' -f1 /proc/loadavg)"  # how busy the shared machine was
    tic_run=${EPOCHREALTIME/./}
    if ((run % 2)); then
        phase_snapfs_main "$DATA"; phase_btrfs_main "$DATA"
    else
        phase_btrfs_main "$DATA"; phase_snapfs_main "$DATA"
    fi
    verify_exports "$DATA"
    phase_btrfs_zstd "$DATA"
    for size in $SNAP_SIZES; do
        [[ $size == "$SIZE" ]] && continue  # measured on the main pools
        if ((run % 2)); then
            phase_snapfs_snapshots "$size" "${SNAP_DATA[$size]}"; phase_btrfs_snapshots "$size" "${SNAP_DATA[$size]}"
        else
            phase_btrfs_snapshots "$size" "${SNAP_DATA[$size]}"; phase_snapfs_snapshots "$size" "${SNAP_DATA[$size]}"
        fi
    done
    emit run_s "$(((${EPOCHREALTIME/./} - tic_run) / 1000000))"
}

SCRIPT_T0=${EPOCHREALTIME/./}
trap cleanup EXIT
trap 'exit 130' INT TERM
preflight

note "snapfs vs btrfs $(date -Is), results also in $RESULTS"
if [[ $BUSY == 1 ]]; then
    # Started from a subshell, so that it is not a job of this shell: a bare `wait`
    # below (shared/bench/lib.sh waits for its own background work) would wait for it forever.
    BUSY_PID=$( (sha256sum /dev/zero > /dev/null 2>&1 & echo $!) )
    note "BUSY=1: sha256sum /dev/zero (pid $BUSY_PID) runs beside both"
fi
emit busy "$BUSY"
probe_drop_caches
emit snapfs_commit "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
emit snapctl_sha256 "$(sha256sum "$SNAPCTL" | cut -c1-16)"
emit snapctl_built "$(date -r "$REPO/target/release/snapctl" -Is)"  # the tree may have moved on since
emit kernel "$(uname -r)"
emit btrfs_progs "$(btrfs --version | awk '{print $2}')"
emit cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) x$(nproc)"
emit drop_caches_works "$DROP_CACHES"
emit loop_dio_setting "$LOOP_DIO"
emit export_fs "$EXPORT_FS"
emit snapfmt_opts "${SNAPFMT_OPTS:-none}"
emit size "$SIZE"
emit snap_sizes "${SNAP_SIZES:-none}"
emit prefault_bytes "$PREFAULT"

DATA="" path=""  # set by dataset()
dataset DATA "$SIZE"
declare -A SNAP_DATA=()
for size in $SNAP_SIZES; do dataset path "$size"; SNAP_DATA[$size]=$path; done

for ((run = 1; run <= RUNS; run++)); do one_run "$run"; done

RUN_TAG=setup
summary
summary_table
emit script_s "$(((${EPOCHREALTIME/./} - SCRIPT_T0) / 1000000))"
