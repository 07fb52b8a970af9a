#!/usr/bin/env bash
# stream_bench.sh: snapfs replication streams (snapsend | snaprecv) against their peers,
# side by side in one run on the same workload (shared/bench/workload.sh: same seed, SIZE,
# CHANGE and scaling sizes), so the ratios are not skewed by a different machine, day or
# data set. The peers are measured by the shared baseline scripts, run from here as child
# processes with matching settings: btrfs_baseline.sh (btrfs send/receive; also the zstd
# source and its `send --proto 2 --compressed-data` stream) and peers_baseline.sh
# (zfs-fuse send/recv, rsync -aHAX, restic backup). A peer that cannot run here (no FUSE,
# apt cannot install it, its phase failed) is noted as skipped, and the others go on.
#
# Each run measures snapfs and the peers in turn; the order alternates from run to run
# (odd runs: snapfs, btrfs, zfs/rsync/restic; even runs: the reverse), so a drift of the
# shared machine does not favour one side. The table gives medians over RUNS.
#
# snapfs is measured the way the baselines measure btrfs (lib.sh's helpers): every pool
# is `snapfmt` on a fresh sparse image on its own loop device (--direct-io=LOOP_DIO), sizes
# max(IMG_MIN, 3 x dataset); caches are dropped (sync + drop_caches, when permitted) before
# every timed send and receive; every timed write ends with `sync`. Figures of a run, for
# SIZE and then each size of SCALE_SIZES (the latter prefixed scale_<S>.):
#   raw_seq_read_MBps          O_DIRECT sequential read of a loop device made alike, as
#                              btrfs_baseline.sh's measure_raw: RAW_BYTES written twice,
#                              caches dropped, read with dd iflag=direct bs=1M (SIZE only)
#   copy_s                     `snapctl sync DATASET` into the source pool (set-up; info)
#   full_send_file_s, _MBps    cold `snapsend @A > file`; MB/s of stream bytes (as the
#                              baselines count), full_send_file_data_MBps of dataset bytes
#   full_send_device_read_bytes  bytes the loop device read during that send
#   full_stream_bytes          size of the full stream
#   full_estimate_bytes, _error_pct  `snapsend -n -P @A` size line against the real stream
#   full_send_recv_pipe_s      cold `snapsend @A | snaprecv DST` into a fresh pool, + sync
#   full_recv_file_s           `snaprecv < file` into a fresh pool, the file read into
#                              memory first: the receiver alone (SIZE only)
#   sync_change_s, changed_bytes  `snapctl sync` of the dataset after `workload.sh mutate`
#                              (CHANGE bytes, round 1; the copy is made and mutated once
#                              and cached beside the dataset), then snapshot @B
#   inc_send_file_s, inc_send_warm_s, inc_stream_bytes, inc_stream_per_change
#                              cold `snapsend -i @A @B > file`, then again with warm
#                              caches (medians of INC_REPEATS); stream bytes / changed_bytes
#   inc_estimate_bytes, _error_pct  `snapsend -n -P -i @A @B` against the real stream
#   inc_send_recv_pipe_s       cold `snapsend -i @A @B | snaprecv`, median of INC_REPEATS:
#                              the first into the pool of the full send|receive, each
#                              other into a fresh pool that got @A from the stream file
#                              (untimed): every repeat starts from the same receiver state,
#                              as btrfs (deletes @B) and zfs (rollback -r) repeat theirs
#   incI_*                     (SIZE only) mutate round 2, snapshot @C, then
#                              `snapsend -I @A @C` (parts A->B, B->C): stream to a file,
#                              estimate, send|receive into a fresh pool holding @A
#   *_snapsend_rss_KiB, *_snaprecv_rss_KiB  peak RSS (/usr/bin/time %M) of each command;
#                              peak_snapsend_rss_KiB, peak_snaprecv_rss_KiB: max of the run
#   verified, incI_verified    `snapctl export` of every received snapshot (@A, @B; @B, @C
#                              for -I) has the workload.sh digest of the tree it came from
#   check_src, check_dst, incI_check  `snapctl check` on the pools: clean or not
# Peer figures keep the baselines' names: <run>.btrfs.<name>, <run>.zfs.<name>,
# <run>.rsync.<name>, <run>.restic.<name> (see their --help); their complete output goes
# to <RESULTS without .txt>.peers.log.
#
# Summary table (medians over the runs; "best peer" is the fastest or smallest peer that
# has the figure; ratio = snapfs / best peer unless the target says otherwise):
#   full send to file, full send|receive     < best of btrfs, zfs-fuse
#   full send MB/s (stream)                  >= 0.70 x raw_seq_read_MBps
#   incremental send|receive at each size    < best of btrfs, zfs-fuse, rsync, restic
#   incremental scaling                      time at the largest size / time at the
#                                            smallest (2G / 256M by default) <= 1.5
#   incremental stream bytes                 <= 1.5 x changed_bytes (CHANGE)
#   full stream bytes                        <= btrfs zstd_full_stream_compressed_bytes
#                                            (compress=zstd source, --proto 2 --compressed-data)
#   -n -P estimate (full, inc, -I)           within 2% of the real stream size
#   peak RSS of snapsend, snaprecv           < 256 MiB (max over runs)
#   received = source, snapctl check clean   in every run
#   and, for reference: receive from a file, incremental send to a file, dataset MB/s,
#   the workload check (snapfs' tree after mutate has the digest btrfs' and zfs' have).
#
# Output: one line per figure "<run>.<name>=<value>", the unit in the name (_s, _MBps =
# 10^6 bytes/s, _bytes, _KiB, _pct); then every figure's values run by run; then the
# table. All of it is appended to $RESULTS. Exit status 1 if a snapfs phase failed (its
# figures are missing), 0 otherwise, whatever the verdicts.
#
# The binaries are copied to a private directory at the start, so a rebuild by someone
# else during the run changes nothing.
#
# Settings (environment):
#   SIZE=1G                    main dataset size
#   RUNS=3                     repetitions of the whole measurement (medians over them)
#   SCALE_SIZES="256M 2G"      other dataset sizes, same CHANGE ("" skips them)
#   CHANGE=<1% of SIZE>        bytes `workload.sh mutate` changes, at every size
#   TOOLS="btrfs zfs rsync restic"  peers to measure ("" measures snapfs alone)
#   INC_REPEATS=3              repetitions of each incremental figure (median); also
#                              given to the baselines
#   RAW_BYTES=1G               bytes written and read for the raw device rate
#   IMG_MIN=4G                 smallest image; each is max(IMG_MIN, 3 x dataset), sparse
#   SNAPFMT_OPTS="--history 0" options of snapfmt (no retained history, as btrfs keeps none)
#   BUILD=1                    1: cargo build --release first; auto: only if a binary is missing
#   PEER_TIMEOUT=7200          seconds a baseline script may take per run before it is
#                              stopped (TERM, so it cleans up) and noted as failed
#   INSTALL_DEPS=1             apt-get install what is missing (btrfs-progs, time; the
#                              baselines install zfs-fuse, rsync, restic)
#   RESULTS=bench/results/stream-<date>.txt
#   SHARED_BENCH=<repo>/../shared/bench   where lib.sh, workload.sh and the baselines live
#   and BENCH_DIR (default /tmp/bench; datasets are cached there), LOOP_DIO, KEEP_IMAGES,
#   WORKLOAD_SEED (see lib.sh). Settings of the baselines that this script does not set
#   (ZFS_COLD, ZFS_PROPS, RSYNC_TRANSPORT, ...) pass through the environment; it sets
#   SNAP_REPEATS=0, ZFS_COMPRESS="", RSYNC_CHECKSUM=0 and RESTIC_RESTORE=0 for them, as
#   those figures are not compared here.
#
# Run as root: loop devices, mkfs, mount, drop_caches. On exit, even on failure or Ctrl-C,
# every loop device, mount and daemon of this script and of the baselines is released
# (the baselines clean up after themselves; a running one is sent TERM and awaited).
# Ctrl-C (INT to the whole process group) stops at once; a TERM to this script's PID
# alone takes effect when the snapfs phase running then ends (bash defers traps until
# its foreground subshell returns).
# shellcheck disable=SC2317  # the phases run through isolated "$@" and traps: not unreachable
set -euo pipefail
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,/^set -euo/p' "$0" | sed '/^# shellcheck/d; $d; s/^# \{0,1\}//'; exit 0; fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"

SIZE=${SIZE:-1G}
RUNS=${RUNS:-3}
SCALE_SIZES=${SCALE_SIZES-256M 2G}
TOOLS=${TOOLS-btrfs zfs rsync restic}
INC_REPEATS=${INC_REPEATS:-3}
RAW_BYTES=$(bytes_of "${RAW_BYTES:-1G}")
IMG_MIN=$(bytes_of "${IMG_MIN:-4G}")
SNAPFMT_OPTS=${SNAPFMT_OPTS---history 0}
BUILD=${BUILD:-1}
PEER_TIMEOUT=${PEER_TIMEOUT:-7200}
INSTALL_DEPS=${INSTALL_DEPS:-1}
RESULTS=${RESULTS:-$REPO/bench/results/stream-$(date +%Y%m%d-%H%M%S).txt}
PEER_LOG=${RESULTS%.txt}.peers.log
SIZE_BYTES=$(bytes_of "$SIZE")
CHANGE=$(bytes_of "${CHANGE:-$((SIZE_BYTES / 100))}")
STREAMS=$BENCH_DIR/streams
EXPORTS=$BENCH_DIR/stream-export
MEMORY_TARGET_KiB=$((256 * 1024))
TIME=/usr/bin/time
# The main size is measured anyway: keep it out of the scaling sizes.
SCALE_SIZES=$(for s in $SCALE_SIZES; do [[ $s == "$SIZE" ]] || echo "$s"; done | sort -h -u | paste -sd' ')
ALL_SIZES=$(tr ' ' '\n' <<< "$SIZE $SCALE_SIZES" | grep . | sort -h -u | paste -sd' ')
PEER_TOOLS=$(for t in $TOOLS; do [[ $t == btrfs ]] || echo "$t"; done | paste -sd' ')

# ---------------------------------------------------------------- preflight
need_package() {  # need_package COMMAND PACKAGE
    command -v "$1" > /dev/null && return 0
    if [[ $INSTALL_DEPS != 1 ]] || ! command -v apt-get > /dev/null; then die "$1 missing: apt-get install -y $2"; fi
    apt-get update -qq && apt-get install -y -qq "$2" > /dev/null
}

# Copies the binaries to a private directory: others may rebuild target/ during the run.
private_binaries() {
    local bin=$REPO/target/release b
    if [[ $BUILD == 1 || ! -x $bin/snapfmt || ! -x $bin/snapctl || ! -x $bin/snapsend || ! -x $bin/snaprecv ]]; then
        (cd "$REPO" && cargo build --release) >&2 || die "cargo build --release failed"
    fi
    BIN_DIR=$(mktemp -d /tmp/snapfs-stream-bin.XXXXXX)
    for b in snapfmt snapctl snapsend snaprecv; do cp "$bin/$b" "$BIN_DIR/"; done
    SNAPFMT=$BIN_DIR/snapfmt SNAPCTL=$BIN_DIR/snapctl SNAPSEND=$BIN_DIR/snapsend SNAPRECV=$BIN_DIR/snaprecv
}

preflight() {
    local t
    [[ $(id -u) == 0 ]] || die "run as root (loop devices, mkfs, mount, drop_caches)"
    [[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
    [[ $INC_REPEATS =~ ^[1-9][0-9]*$ ]] || die "INC_REPEATS must be a positive number"
    for t in $TOOLS; do
        case $t in btrfs | zfs | rsync | restic) ;; *) die "unknown tool '$t' in TOOLS (btrfs zfs rsync restic)" ;; esac
    done
    if [[ " $TOOLS " == *" btrfs "* ]]; then need_package mkfs.btrfs btrfs-progs; fi
    [[ -x $TIME ]] || need_package "$TIME" time
    for t in losetup python3 numfmt dd timeout; do command -v "$t" > /dev/null || die "$t is missing"; done
    for t in btrfs_baseline.sh peers_baseline.sh; do [[ -x $SHARED_BENCH/$t ]] || die "$SHARED_BENCH/$t is missing"; done
    mkdir -p "$BENCH_DIR" "$(dirname "$RESULTS")" "$STREAMS"
    touch "$RESULTS"
    RESULTS_START=$(wc -l < "$RESULTS")  # this run's figures start after this line
    private_binaries
    WORK=$(mktemp -d /tmp/snapfs-stream-work.XXXXXX)  # logs of the last commands, /usr/bin/time output
}

CHILD=  # the baseline script running now (its timeout process), if any
cleanup() {
    set +e
    if [[ -n $CHILD ]]; then kill -TERM "$CHILD" 2> /dev/null; wait "$CHILD" 2> /dev/null; CHILD=; fi
    release_devices
    detach_ours
    if mountpoint -q "$EXPORTS"; then umount "$EXPORTS" || umount -l "$EXPORTS"; fi
    rm -f "$STREAMS"/snapfs-*.stream
    rm -rf "${BIN_DIR:-/nonexistent}" "${WORK:-/nonexistent}"
    return 0
}

# Loop devices still attached to this script's images (a phase killed before its cleanup).
detach_ours() {
    local img dev
    for img in "$BENCH_DIR"/img/stream-*.img; do
        [[ -e $img ]] || continue
        for dev in $(losetup -n -O NAME -j "$img" 2> /dev/null); do losetup -d "$dev" 2> /dev/null || true; done
        if [[ $KEEP_IMAGES != 1 ]]; then rm -f "$img"; fi
    done
    return 0
}

# ---------------------------------------------------------------- helpers
image_bytes() { local b=$((3 * $1)); echo $((b > IMG_MIN ? b : IMG_MIN)); }
size_prefix() { if [[ $1 == "$SIZE" ]]; then echo ""; else echo "scale_$1."; fi; }

# Runs a command with its output kept in $WORK/last.log, shown only when it fails.
quiet() {
    "$@" > "$WORK/last.log" 2>&1 || { cat "$WORK/last.log" >&2; die "failed: $*"; }
}

rss_of() { tail -1 "$1"; }  # the %M line of /usr/bin/time -o FILE (after any exit notice)
max_of() { printf '%s\n' "$@" | sort -g | tail -1; }

# Bytes read from a loop device so far (field 3 of its stat: 512-byte sectors).
read_sectors_bytes() { awk '{ printf "%.0f\n", $3 * 512 }' "/sys/block/${1#/dev/}/stat"; }

snapfs_status() {  # snapfs_status DEV FIELD: one field of `snapctl status --json`
    "$SNAPCTL" status --json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# emit_median NAME VALUE...: the median as NAME; with several values, all as NAME_all.
emit_median() {
    local name=$1
    shift
    emit "$name" "$(median "$@")"
    if (($# > 1)); then emit "${name%_s}_all_s" "$(IFS=,; echo "$*")"; fi
}

# The dataset of SIZE after `workload.sh mutate` with CHANGE, round ROUND (on top of round
# ROUND-1): made once per seed, size and change from a `cp -a` copy and cached beside the
# dataset; "<tree>.log" holds mutate's summary, "<tree>.digest" (written last) its digests.
# The result is the tree btrfs and zfs have after their in-place mutate (same digests).
mutated_dir() { echo "$BENCH_DIR/data/seed$WORKLOAD_SEED-$1.change$CHANGE.round$2"; }  # mutated_dir SIZE ROUND
mutated() {  # mutated VAR SIZE ROUND
    local _dir _prev  # "_": VAR may be a local of the caller
    _dir=$(mutated_dir "$2" "$3")
    if [[ ! -f $_dir.digest ]]; then
        if (($3 == 1)); then
            dataset _prev "$2"
        else
            mutated _prev "$2" $(($3 - 1))  # sets its own _prev: the path is taken by name below
            _prev=$(mutated_dir "$2" $(($3 - 1)))
        fi
        rm -rf "$_dir" "$_dir.log"
        cp -a "$_prev" "$_dir"
        MUTATE_ROUND=$3 "$WORKLOAD" mutate "$_dir" "$CHANGE" > "$_dir.log"
        sync
        "$WORKLOAD" digest "$_dir" > "$_dir.digest"
    fi
    printf -v "$1" %s "$_dir"
}
changed_of() { grep -o 'changed_bytes=[0-9]*' "$1.log" | cut -d= -f2; }

# A private tmpfs for the exports that verification digests (not timed).
export_fs() {
    local biggest
    biggest=$(bytes_of "${ALL_SIZES##* }")  # sorted smallest first
    mkdir -p "$EXPORTS"
    if ! mountpoint -q "$EXPORTS"; then
        mount -t tmpfs -o "size=$((2 * biggest + biggest / 4 + (512 << 20)))" tmpfs "$EXPORTS"
    fi
}

# ---------------------------------------------------------------- snapfs
snapfs_pool() {  # snapfs_pool VAR NAME IMAGE_BYTES: a freshly formatted pool on a new loop
    local pool_dev  # not "_dev": new_loop has a local of that name
    new_loop pool_dev "$2" "$3"
    # shellcheck disable=SC2086  # SNAPFMT_OPTS is a list of options
    quiet "$SNAPFMT" -f $SNAPFMT_OPTS "$pool_dev"
    printf -v "$1" %s "$pool_dev"
}

release_one() {  # release_one DEV: detaches one loop device of new_loop and removes its image
    local i
    losetup -d "$1"
    for i in "${!LOOPS[@]}"; do
        if [[ ${LOOPS[i]} == "$1" ]]; then
            if [[ $KEEP_IMAGES != 1 ]]; then rm -f "${IMAGES[i]}"; fi
            unset 'LOOPS[i]' 'IMAGES[i]'
        fi
    done
    LOOPS=("${LOOPS[@]}") IMAGES=("${IMAGES[@]}")
}

# snapsend ARG... > FILE, peak RSS in $WORK/send.rss.
send_to_file() {  # send_to_file FILE SNAPSEND_ARG...
    local file=$1
    shift
    "$TIME" -f %M -o "$WORK/send.rss" "$SNAPSEND" "$@" > "$file" 2> "$WORK/send.err" ||
        { cat "$WORK/send.err" >&2; die "failed: snapsend $* > $file"; }
}

# snapsend ARG... | snaprecv DEV, peak RSS of each in $WORK/send.rss and $WORK/recv.rss.
send_recv() {  # send_recv DEV SNAPSEND_ARG...
    local dev=$1
    shift
    "$TIME" -f %M -o "$WORK/send.rss" "$SNAPSEND" "$@" 2> "$WORK/send.err" |
        "$TIME" -f %M -o "$WORK/recv.rss" "$SNAPRECV" "$dev" > "$WORK/recv.log" 2>&1 ||
        { cat "$WORK/send.err" "$WORK/recv.log" >&2; die "failed: snapsend $* | snaprecv $dev"; }
}

# A fresh pool that received the full stream FILE: the receiver alone (the file is read into
# memory first, caches dropped before); sets SECS and $WORK/recv.rss.
base_pool() {  # base_pool VAR NAME IMAGE_BYTES STREAM_FILE
    local base_dev  # not "pool_dev": snapfs_pool has a local of that name
    snapfs_pool base_dev "$2" "$3"
    drop_caches
    cat "$4" > /dev/null
    tic
    "$TIME" -f %M -o "$WORK/recv.rss" "$SNAPRECV" "$base_dev" < "$4" > "$WORK/recv.log" 2>&1 ||
        { cat "$WORK/recv.log" >&2; die "failed: snaprecv $base_dev < $4"; }
    sync
    toc
    printf -v "$1" %s "$base_dev"
}

# `snapsend -n -P ARG...` against the real stream size: the size line, the error in percent,
# the number of parts and the time the dry run took.
estimate_figures() {  # estimate_figures KIND REAL_BYTES SNAPSEND_ARG...
    local kind=$1 real=$2 est
    shift 2
    tic
    "$SNAPSEND" -n -P "$@" > "$WORK/estimate.txt" 2> "$WORK/estimate.err" ||
        { cat "$WORK/estimate.err" >&2; die "failed: snapsend -n -P $*"; }
    toc
    est=$(awk -F'\t' '$1 == "size" { print $2 }' "$WORK/estimate.txt")
    [[ -n $est ]] || { cat "$WORK/estimate.txt" >&2; die "snapsend -n -P $* printed no size line"; }
    emit "${kind}_estimate_bytes" "$est"
    emit "${kind}_estimate_error_pct" "$(awk -v e="$est" -v r="$real" 'BEGIN { printf "%.3f\n", (e - r) * 100 / r }')"
    emit "${kind}_estimate_parts" "$(grep -c -e '^full' -e '^incremental' "$WORK/estimate.txt")"
    emit "${kind}_estimate_s" "$SECS"
    if [[ $est != "$real" ]]; then note "estimate of snapsend -n -P $* is $est bytes, the stream $real bytes"; fi
}

# Exports each @SNAP of DEV and compares its digest with the stored digest of TREE.
verify_received() {  # verify_received DEV FIGURE SNAP=TREE...
    local dev=$1 fig=$2 pair i ok=yes want snaps=() trees=() dirs=()
    shift 2
    for pair; do snaps+=("${pair%%=*}") trees+=("${pair#*=}"); done
    for i in "${!snaps[@]}"; do
        dirs[i]=$EXPORTS/${snaps[i]}
        rm -rf "${dirs[i]}"
        quiet "$SNAPCTL" export "@${snaps[i]}" "${dirs[i]}" "$dev"
    done
    digest_trees "${dirs[@]}"
    for i in "${!snaps[@]}"; do
        want=$(pristine_digest "${trees[i]}")
        if [[ ${DIGESTS[i]} != "$want" ]]; then
            ok=no
            note "MISMATCH: @${snaps[i]} received on $dev: $(short_digest "${DIGESTS[i]}") != $(short_digest "$want") of ${trees[i]}"
        fi
    done
    rm -rf "${dirs[@]}"
    emit "$fig" "$ok"
}

check_pool() {  # check_pool DEV FIGURE: `snapctl check` clean or not
    local out
    out=$("$SNAPCTL" check --json "$1" 2>&1) || true
    if python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1])["clean"] else 1)' "$out" 2> /dev/null; then
        emit "$2" clean
    else
        emit "$2" not_clean
        note "snapctl check $1: $out"
    fi
}

# Sequential limit of a loop device made like the pools', as btrfs_baseline.sh's measure_raw.
snapfs_raw() {
    local dev count=$((RAW_BYTES >> 20))  # 1 MiB blocks
    FIG_PREFIX=snapfs.
    new_loop dev stream-raw "$RAW_BYTES"
    drop_caches
    tic; dd if=/dev/zero of="$dev" bs=1M count="$count" oflag=direct conv=fsync status=none; toc
    emit raw_seq_write_MBps "$(mbps "$RAW_BYTES" "$SECS")"
    tic; dd if=/dev/zero of="$dev" bs=1M count="$count" oflag=direct conv=fsync status=none; toc
    emit raw_seq_rewrite_MBps "$(mbps "$RAW_BYTES" "$SECS")"
    drop_caches
    tic; dd if="$dev" of=/dev/null bs=1M count="$count" iflag=direct status=none; toc
    emit raw_seq_read_MBps "$(mbps "$RAW_BYTES" "$SECS")"
    release_devices
}

# -I @A @C after a second change (round 2): stream to a file, estimate, send | receive into
# a fresh pool holding @A (from the full stream FILE), and check what it received.
snapfs_multi() {  # snapfs_multi SRC IMAGE_BYTES FULL_STREAM SIZE
    local src=$1 img=$2 full=$3 multi=$STREAMS/snapfs-multi.stream mut1 mut2 pool bytes
    mutated mut1 "$4" 1
    mutated mut2 "$4" 2
    drop_caches
    warm_tree "$mut2"
    tic; quiet "$SNAPCTL" sync "$mut2" "$src"; sync; toc
    emit sync_change2_s "$SECS"
    emit changed2_bytes "$(changed_of "$mut2")"
    quiet "$SNAPCTL" snapshot @C "$src"

    drop_caches
    tic; send_to_file "$multi" -I @A @C "$src"; toc
    bytes=$(stat -c %s "$multi")
    emit incI_stream_bytes "$bytes"
    emit incI_send_file_s "$SECS"
    emit incI_file_snapsend_rss_KiB "$(rss_of "$WORK/send.rss")"
    estimate_figures incI "$bytes" -I @A @C "$src"
    rm -f "$multi"

    base_pool pool stream-multi "$img" "$full"
    drop_caches
    tic; send_recv "$pool" -I @A @C "$src"; sync; toc
    emit incI_send_recv_pipe_s "$SECS"
    emit incI_pipe_snapsend_rss_KiB "$(rss_of "$WORK/send.rss")"
    emit incI_pipe_snaprecv_rss_KiB "$(rss_of "$WORK/recv.rss")"
    emit incI_received_snapshots "$("$SNAPCTL" list --json "$pool" |
        python3 -c 'import json, sys; print(",".join(s["name"] for s in json.load(sys.stdin)))')"
    verify_received "$pool" incI_verified "B=$mut1" "C=$mut2"
    check_pool "$pool" incI_check
    release_one "$pool"
}

# One replication cycle on fresh pools: copy in, snapshot @A, full send to a file and
# piped into a receiver, mutate + snapshot @B, incremental send to a file and piped,
# (SIZE: also receive from a file and -I over @A @B @C), then verify and check.
snapfs_cycle() {  # snapfs_cycle SIZE DATASET
    local size=$1 data=$2 main="" img src dst pool mut1 bytes before i
    local full=$STREAMS/snapfs-full.stream inc=$STREAMS/snapfs-inc.stream
    local send=() warm=() pipe=() srss=() rrss=() fsrss=()
    if [[ $size == "$SIZE" ]]; then main=1; fi
    FIG_PREFIX="snapfs.$(size_prefix "$size")"
    emit loadavg "$(cut -d' ' -f1 /proc/loadavg)"  # how busy the shared machine was
    mutated mut1 "$size" 1
    img=$(image_bytes "$(bytes_of "$size")")
    snapfs_pool src stream-src "$img"
    emit loop_direct_io "$(cat "/sys/block/${src#/dev/}/loop/dio")"

    drop_caches
    warm_tree "$data"
    tic; quiet "$SNAPCTL" sync "$data" "$src"; sync; toc
    emit copy_s "$SECS"
    quiet "$SNAPCTL" snapshot @A "$src"
    emit src_used_bytes "$(snapfs_status "$src" used_bytes)"

    # full send to a file, cold
    drop_caches
    before=$(read_sectors_bytes "$src")
    tic; send_to_file "$full" @A "$src"; toc
    bytes=$(stat -c %s "$full")
    emit full_stream_bytes "$bytes"
    emit full_send_file_s "$SECS"
    emit full_send_file_MBps "$(mbps "$bytes" "$SECS")"
    emit full_send_file_data_MBps "$(mbps "$(dataset_bytes "$data")" "$SECS")"
    emit full_send_device_read_bytes "$(($(read_sectors_bytes "$src") - before))"
    emit full_file_snapsend_rss_KiB "$(rss_of "$WORK/send.rss")"
    estimate_figures full "$bytes" @A "$src"

    # full send | receive into a fresh pool
    snapfs_pool dst stream-dst "$img"
    drop_caches
    tic; send_recv "$dst" @A "$src"; sync; toc
    emit full_send_recv_pipe_s "$SECS"
    emit full_send_recv_pipe_MBps "$(mbps "$bytes" "$SECS")"
    emit full_pipe_snapsend_rss_KiB "$(rss_of "$WORK/send.rss")"
    emit full_pipe_snaprecv_rss_KiB "$(rss_of "$WORK/recv.rss")"

    if [[ -n $main ]]; then  # the receiver alone
        base_pool pool stream-file "$img" "$full"
        emit full_recv_file_s "$SECS"
        emit full_file_snaprecv_rss_KiB "$(rss_of "$WORK/recv.rss")"
        release_one "$pool"
    fi

    # the change: the live tree becomes the mutated copy, snapshot @B
    drop_caches
    warm_tree "$mut1"
    tic; quiet "$SNAPCTL" sync "$mut1" "$src"; sync; toc
    emit sync_change_s "$SECS"
    emit changed_bytes "$(changed_of "$mut1")"
    quiet "$SNAPCTL" snapshot @B "$src"
    if [[ -n $main ]]; then emit tree_B_digest "$(short_digest "$(pristine_digest "$mut1")")"; fi

    # incremental send to a file: cold, then warm
    for ((i = 1; i <= INC_REPEATS; i++)); do
        drop_caches
        before=$(read_sectors_bytes "$src")
        tic; send_to_file "$inc" -i @A @B "$src"; toc
        send+=("$SECS")
        fsrss+=("$(rss_of "$WORK/send.rss")")
        if ((i == 1)); then emit inc_send_device_read_bytes "$(($(read_sectors_bytes "$src") - before))"; fi
        tic; "$SNAPSEND" -i @A @B "$src" > /dev/null; toc
        warm+=("$SECS")
    done
    bytes=$(stat -c %s "$inc")
    emit inc_stream_bytes "$bytes"
    emit inc_stream_per_change "$(awk -v b="$bytes" -v c="${FIG[$RUN_TAG.${FIG_PREFIX}changed_bytes]}" 'BEGIN { printf "%.3f\n", b / c }')"
    emit_median inc_send_file_s "${send[@]}"
    emit_median inc_send_warm_s "${warm[@]}"
    emit inc_file_snapsend_rss_KiB "$(max_of "${fsrss[@]}")"
    estimate_figures inc "$bytes" -i @A @B "$src"
    rm -f "$inc"

    # incremental send | receive; every repeat into a receiver that holds exactly @A
    for ((i = 1; i <= INC_REPEATS; i++)); do
        if ((i == 1)); then pool=$dst; else base_pool pool stream-rep "$img" "$full"; fi
        drop_caches
        tic; send_recv "$pool" -i @A @B "$src"; sync; toc
        pipe+=("$SECS")
        srss+=("$(rss_of "$WORK/send.rss")") rrss+=("$(rss_of "$WORK/recv.rss")")
        if ((i > 1)); then release_one "$pool"; fi
    done
    emit_median inc_send_recv_pipe_s "${pipe[@]}"
    emit inc_pipe_snapsend_rss_KiB "$(max_of "${srss[@]}")"
    emit inc_pipe_snaprecv_rss_KiB "$(max_of "${rrss[@]}")"

    if [[ -n $main ]]; then snapfs_multi "$src" "$img" "$full" "$size"; fi
    rm -f "$full"

    verify_received "$dst" verified "A=$data" "B=$mut1"
    check_pool "$src" check_src
    check_pool "$dst" check_dst
    release_devices
}

# ---------------------------------------------------------------- phases
# FIG and FIG_ORDER from what this script has appended to $RESULTS: snapfs phases run in
# subshells, whose own copies of them are lost.
reload_figs() {
    local line name
    FIG=() FIG_ORDER=() FIG_SEEN=()
    while IFS= read -r line; do
        [[ $line =~ ^(setup|run[0-9]+)\.([^=]+)=(.*)$ ]] || continue
        name=${BASH_REMATCH[2]}
        if [[ -z ${FIG_SEEN[$name]:-} ]]; then
            FIG_SEEN["$name"]=1
            FIG_ORDER+=("$name")
        fi
        FIG["${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"]=${BASH_REMATCH[3]}
    done < <(tail -n +"$((RESULTS_START + 1))" "$RESULTS")
    return 0
}

FAILED=()
# isolated LABEL FUNCTION ARG...: runs a snapfs phase in a subshell that releases its devices
# however it ends; a failure is noted (snapfs.LABEL.failed=exit_N, and the failing command)
# and the benchmark goes on with the next phase and the peers.
isolated() {
    local label=$1 rc
    shift
    set +e
    (
        set -eE
        trap 'note "FAILED (snapfs $label): exit $? at ${FUNCNAME[0]:-main} line $LINENO: $BASH_COMMAND"' ERR
        trap 'release_devices; rm -f "$STREAMS"/snapfs-*.stream' EXIT
        trap 'exit 130' INT TERM
        "$@"
    )
    rc=$?
    set -e
    FIG_PREFIX=
    reload_figs
    if ((rc == 130)); then exit 130; fi
    if ((rc != 0)); then
        FAILED+=("$RUN_TAG:snapfs.$label")
        emit "snapfs.$label.failed" "exit_$rc"
    fi
    return 0
}

phase_snapfs() {
    local size name run_send=() run_recv=()
    note "snapfs, run ${RUN_TAG#run}"
    isolated raw snapfs_raw
    isolated "$SIZE" snapfs_cycle "$SIZE" "$DATA"
    for size in $SCALE_SIZES; do isolated "scale_$size" snapfs_cycle "$size" "${SCALE_DATA[$size]}"; done
    for name in "${!FIG[@]}"; do
        if [[ $name == "$RUN_TAG".snapfs.*snapsend_rss_KiB ]]; then run_send+=("${FIG[$name]}"); fi
        if [[ $name == "$RUN_TAG".snapfs.*snaprecv_rss_KiB ]]; then run_recv+=("${FIG[$name]}"); fi
    done
    if ((${#run_send[@]})); then emit snapfs.peak_snapsend_rss_KiB "$(max_of "${run_send[@]}")"; fi
    if ((${#run_recv[@]})); then emit snapfs.peak_snaprecv_rss_KiB "$(max_of "${run_recv[@]}")"; fi
    return 0
}

# Takes the figures of a baseline's run (its "run1." lines) as this run's, named
# "btrfs.<name>" for btrfs_baseline.sh, as they are ("zfs.<name>", ...) for
# peers_baseline.sh. Skips, failures and mismatches it noted are noted here too.
import_figures() {  # import_figures KIND FILE
    local kind=$1 line name value ours prefix='' setup_prefix=peers.
    if [[ $kind == btrfs ]]; then prefix=btrfs. setup_prefix=btrfs.; fi
    while IFS= read -r line; do
        if [[ $line =~ ^run1\.([^=]+)=(.*)$ ]]; then
            name=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
            if [[ $kind == peers && ! $name =~ ^(zfs|rsync|restic)\. ]]; then name=peers.$name; fi
            emit "$prefix$name" "$value"
        elif [[ $line =~ ^setup\.([^=]+)=(.*)$ ]]; then
            name=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
            case $name in
            *_skipped)
                note "SKIPPED ${name%_skipped}: ${value//_/ }"
                emit "${name%_skipped}.skipped" "$value" ;;
            size | change_bytes | workload_seed)
                case $name in size) ours=$SIZE ;; change_bytes) ours=$CHANGE ;; *) ours=$WORKLOAD_SEED ;; esac
                if [[ $value != "$ours" ]]; then note "MISMATCH: $kind baseline ran with $name=$value, this script with $ours"; fi ;;
            btrfs_progs | *_version | zfs_daemon | drop_caches_works | rsync_transport | zfs_cold | zfs_props)
                emit "$setup_prefix$name" "$value" ;;
            esac
        elif [[ $line == "# FAILED"* || $line == "# MISMATCH"* || $line == "# error"* ]]; then
            note "$kind baseline: ${line#\# }"
        fi
    done < "$2.figures"
}

# run_baseline KIND: btrfs_baseline.sh (KIND btrfs) or peers_baseline.sh (KIND peers, for
# PEER_TOOLS) with RUNS=1 and this script's settings, in the background so that a signal to
# this script can be passed on; its figures are imported, its output kept in $PEER_LOG.
run_baseline() {
    local kind=$1 script out rc=0 t0
    if [[ $kind == btrfs ]]; then script=$SHARED_BENCH/btrfs_baseline.sh; else script=$SHARED_BENCH/peers_baseline.sh; fi
    out=$WORK/$kind-$RUN_TAG
    rm -f "$out.figures" "$out.log"
    note "$kind baseline$(if [[ $kind == peers ]]; then echo " ($PEER_TOOLS)"; fi), run ${RUN_TAG#run}: $script (output in $PEER_LOG)"
    t0=${EPOCHREALTIME/./}
    env SIZE="$SIZE" RUNS=1 CHANGE="$CHANGE" SCALE_SIZES="$SCALE_SIZES" WORKLOAD_SEED="$WORKLOAD_SEED" \
        BENCH_DIR="$BENCH_DIR" LOOP_DIO="$LOOP_DIO" KEEP_IMAGES=0 INC_REPEATS="$INC_REPEATS" \
        RAW_BYTES="$RAW_BYTES" IMG_MIN="$IMG_MIN" INSTALL_DEPS="$INSTALL_DEPS" RESULTS="$out.figures" \
        SNAP_REPEATS=0 COMPRESS_TEST=1 TOOLS="$PEER_TOOLS" ZFS_COMPRESS= RSYNC_CHECKSUM=0 RESTIC_RESTORE=0 \
        timeout -k 120 "$PEER_TIMEOUT" "$script" > "$out.log" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    { echo "===== $kind baseline, $RUN_TAG, exit $rc ====="; cat "$out.log"; } >> "$PEER_LOG"
    touch "$out.figures"
    import_figures "$kind" "$out"
    emit "$kind.wall_s" "$(((${EPOCHREALTIME/./} - t0) / 1000000))"
    if ((rc != 0)); then
        if ((rc == 124 || rc == 137)); then note "FAILED $kind baseline: stopped after PEER_TIMEOUT=$PEER_TIMEOUT s"; fi
        note "FAILED $kind baseline (exit $rc), last lines:"
        tail -5 "$out.log" | sed 's/^/#   /' | tee -a "$RESULTS"
        emit "$kind.failed" "exit_$rc"
    fi
    return 0
}

phase_peers() {  # phase_peers forward|reverse
    local kinds=() k
    if [[ " $TOOLS " == *" btrfs "* ]]; then kinds+=(btrfs); fi
    if [[ -n $PEER_TOOLS ]]; then
        if [[ $1 == reverse ]]; then kinds=(peers "${kinds[@]}"); else kinds+=(peers); fi
    fi
    for k in "${kinds[@]}"; do run_baseline "$k"; done
    return 0
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

maxrun() {  # the largest value of a figure over the runs ("-" if none)
    local run values=()
    for run in "${RUNS_SEEN[@]}"; do if [[ -n ${FIG["$run.$1"]:-} ]]; then values+=("${FIG["$run.$1"]}"); fi; done
    if ((${#values[@]} == 0)); then echo -; else max_of "${values[@]}"; fi
}

# verdict VALUE OP LIMIT: PASS if VALUE OP LIMIT holds (OP one of < <= >= >, or "within":
# |VALUE - 1| <= LIMIT), unrounded; n/a without a value.
verdict() {
    [[ $1 == - ]] && { echo "n/a"; return 0; }
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        d = v - 1; if (d < 0) d = -d
        ok = (op == "<" && v < l) || (op == "<=" && v <= l) || (op == ">=" && v >= l) || (op == ">" && v > l) ||
             (op == "within" && d <= l)
        print (ok ? "PASS" : "FAIL") }'
}

ratio_exact() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.9g\n", a / b }'; }
rounded() { [[ $1 == - ]] && echo - || printf "%.${2:-3}f\n" "$1"; }

# best_peer MIN|MAX TOOL=FIGURE...: the smallest (largest) median among the peers that
# have the figure: BEST (value or "-") and BEST_TEXT ("value (tool)" or "-").
best_peer() {
    local how=$1 pair v
    shift
    BEST=- BEST_TEXT=-
    for pair; do
        v=$(med "${pair#*=}")
        [[ $v == - ]] && continue
        if [[ $BEST == - ]] || awk -v v="$v" -v b="$BEST" -v h="$how" 'BEGIN { exit !(h == "min" ? v < b : v > b) }'; then
            BEST=$v BEST_TEXT="$v (${pair%%=*})"
        fi
    done
}

TABLE_FORMAT='%-44s %14s %24s %9s %-26s %s\n'
row() {  # row FIGURE SNAPFS BEST_PEER RATIO TARGET VERDICT
    # shellcheck disable=SC2059  # the format is a constant
    printf "$TABLE_FORMAT" "$@" | tee -a "$RESULTS"
}

# A row comparing snapfs with the best peer: ratio = snapfs / best, judged by OP LIMIT
# (OP "info": shown, not judged).
vs_peers() {  # vs_peers LABEL SNAPFS_FIGURE MIN|MAX OP LIMIT TARGET_TEXT TOOL=FIGURE...
    local label=$1 s r how=$3 op=$4 limit=$5 target=$6
    s=$(med "$2")
    shift 6
    best_peer "$how" "$@"
    r=$(ratio_exact "$s" "$BEST")
    row "$label" "$s" "$BEST_TEXT" "$(rounded "$r")" "$target" "$(if [[ $op == info ]]; then echo info; else verdict "$r" "$op" "$limit"; fi)"
}

peer_list() {  # peer_list FIGURE TOOL...: TOOL=TOOL.FIGURE for each tool in TOOLS
    local figure=$1 t
    shift
    for t; do if [[ " $TOOLS " == *" $t "* ]]; then echo "$t=$t.$figure"; fi; done
}

same_of() {  # same_of FIGURE: its value if every run that has it gives the same, "varies" if not, "-" if none
    local run v=-
    for run in "${RUNS_SEEN[@]}"; do
        [[ -n ${FIG["$run.$1"]:-} ]] || continue
        if [[ $v == - ]]; then v=${FIG["$run.$1"]}; elif [[ $v != "${FIG["$run.$1"]}" ]]; then v=varies; fi
    done
    echo "$v"
}

all_of() {  # all_of VALUE FIGURE...: yes if every run's every figure (that exists) is VALUE, no if one is not, - if none exists
    local want=$1 run f seen=0
    shift
    for run in "${RUNS_SEEN[@]}"; do
        for f; do
            [[ -n ${FIG["$run.$f"]:-} ]] || continue
            seen=1
            [[ ${FIG["$run.$f"]} == "$want" ]] || { echo no; return 0; }
        done
    done
    if ((seen)); then echo yes; else echo -; fi
}

summary_table() {
    local size p s r lo hi t peers=() checks=() verifies=() text
    local smallest largest
    smallest=${ALL_SIZES%% *} largest=${ALL_SIZES##* }
    note "medians over ${#RUNS_SEEN[@]} run(s) (${RUNS_SEEN[*]}); ratio = snapfs / best peer unless the target says otherwise; CHANGE=$CHANGE bytes"
    for t in $TOOLS peers; do  # peers without figures: skipped or failed ("peers": the whole peers_baseline.sh)
        s=$(same_of "$t.skipped") r=$(same_of "$t.failed")
        if [[ $s != - ]]; then note "peer $t skipped: ${s//_/ }"; fi
        if [[ $r != - ]]; then note "$(if [[ $t == peers ]]; then echo "peers_baseline.sh ($PEER_TOOLS)"; else echo "peer $t"; fi) failed in some runs: $r"; fi
    done
    row figure snapfs "best peer (which)" ratio target verdict
    mapfile -t peers < <(peer_list full_send_file_s btrfs zfs)
    vs_peers "full send to file $SIZE (s)" snapfs.full_send_file_s min '<' 1 "< best peer" "${peers[@]}"
    s=$(med snapfs.full_send_file_MBps) t=$(med snapfs.raw_seq_read_MBps)
    r=$(ratio_exact "$s" "$t")
    row "full send MB/s (stream) vs raw O_DIRECT read" "$s" "$t (raw read)" "$(rounded "$r")" ">= 0.70x raw read" "$(verdict "$r" '>=' 0.70)"
    mapfile -t peers < <(peer_list full_send_file_MBps btrfs zfs)
    vs_peers "full send MB/s of dataset (info)" snapfs.full_send_file_data_MBps max info - "(peers: stream MB/s)" "${peers[@]}"
    mapfile -t peers < <(peer_list full_send_recv_pipe_s btrfs zfs)
    vs_peers "full send | receive $SIZE (s)" snapfs.full_send_recv_pipe_s min '<' 1 "< best peer" "${peers[@]}"
    mapfile -t peers < <(peer_list full_recv_file_s btrfs zfs)
    vs_peers "full receive from file $SIZE (s)" snapfs.full_recv_file_s min info - "(for reference)" "${peers[@]}"
    for size in $ALL_SIZES; do
        p=$(size_prefix "$size")
        mapfile -t peers < <(peer_list "${p}inc_send_recv_pipe_s" btrfs zfs; peer_list "${p}inc_s" rsync restic)
        vs_peers "inc send | receive $size (s)" "snapfs.${p}inc_send_recv_pipe_s" min '<' 1 "< best peer" "${peers[@]}"
    done
    mapfile -t peers < <(peer_list inc_send_file_s btrfs zfs)
    vs_peers "inc send to file $SIZE (s)" snapfs.inc_send_file_s min info - "(for reference)" "${peers[@]}"
    if [[ $smallest != "$largest" ]]; then  # does the incremental cost follow the change or the dataset?
        lo=$(size_prefix "$smallest") hi=$(size_prefix "$largest")
        s=$(ratio_exact "$(med "snapfs.${hi}inc_send_recv_pipe_s")" "$(med "snapfs.${lo}inc_send_recv_pipe_s")")
        text=-
        for t in btrfs=inc_send_recv_pipe_s zfs=inc_send_recv_pipe_s rsync=inc_s restic=inc_s; do
            [[ " $TOOLS " == *" ${t%%=*} "* ]] || continue
            r=$(ratio_exact "$(med "${t%%=*}.${hi}${t#*=}")" "$(med "${t%%=*}.${lo}${t#*=}")")
            [[ $r == - ]] && continue
            if [[ $text == - ]] || awk -v a="$r" -v b="${text%% *}" 'BEGIN { exit !(a < b) }'; then text="$(rounded "$r") (${t%%=*})"; fi
        done
        row "inc send | receive $largest / $smallest" "$(rounded "$s")" "$text" "$(rounded "$s")" "<= 1.5" "$(verdict "$s" '<=' 1.5)"
    fi
    for size in $ALL_SIZES; do
        p=$(size_prefix "$size")
        s=$(med "snapfs.${p}inc_stream_bytes")
        r=$(ratio_exact "$s" "$(med "snapfs.${p}changed_bytes")")
        mapfile -t peers < <(peer_list "${p}inc_stream_bytes" btrfs zfs)
        best_peer min "${peers[@]}"
        row "inc stream bytes $size" "$s" "$BEST_TEXT" "$(rounded "$r")" "<= 1.5x CHANGE" "$(verdict "$r" '<=' 1.5)"
    done
    mapfile -t peers < <(peer_list zstd_full_stream_compressed_bytes btrfs)
    vs_peers "full stream bytes $SIZE" snapfs.full_stream_bytes min '<=' 1 "<= btrfs zstd compressed" "${peers[@]}"
    for size in $ALL_SIZES; do
        p=$(size_prefix "$size")
        for t in full inc; do
            s=$(med "snapfs.${p}${t}_estimate_bytes") r=$(med "snapfs.${p}${t}_stream_bytes")
            row "-n -P estimate, $t $size (bytes)" "$s" "$r (real)" "$(rounded "$(ratio_exact "$s" "$r")" 4)" \
                "within 2% (est/real)" "$(verdict "$(ratio_exact "$s" "$r")" within 0.02)"
        done
    done
    s=$(med snapfs.incI_estimate_bytes) r=$(med snapfs.incI_stream_bytes)
    row "-n -P estimate, -I @A..@C $SIZE (bytes)" "$s" "$r (real)" "$(rounded "$(ratio_exact "$s" "$r")" 4)" \
        "within 2% (est/real)" "$(verdict "$(ratio_exact "$s" "$r")" within 0.02)"
    s=$(maxrun snapfs.peak_snapsend_rss_KiB)
    row "peak RSS snapsend, max of runs (KiB)" "$s" - - "< 262144 KiB" "$(verdict "$s" '<' "$MEMORY_TARGET_KiB")"
    s=$(maxrun snapfs.peak_snaprecv_rss_KiB)
    row "peak RSS snaprecv, max of runs (KiB)" "$s" - - "< 262144 KiB" "$(verdict "$s" '<' "$MEMORY_TARGET_KiB")"
    for size in $ALL_SIZES; do
        p=$(size_prefix "$size")
        verifies+=("snapfs.${p}verified") checks+=("snapfs.${p}check_src" "snapfs.${p}check_dst")
    done
    verifies+=(snapfs.incI_verified) checks+=(snapfs.incI_check)
    s=$(all_of yes "${verifies[@]}")
    text=$(for t in btrfs zfs; do if [[ " $TOOLS " == *" $t "* ]]; then printf '%s ' "$t:$(all_of yes "$t.verified")"; fi; done)
    row "received = source digests (all runs)" "$s" "${text:--}" - yes "$(if [[ $s == yes ]]; then echo PASS; else echo FAIL; fi)"
    s=$(all_of clean "${checks[@]}")
    row "snapctl check clean (all pools, runs)" "$s" - - yes "$(if [[ $s == yes ]]; then echo PASS; else echo FAIL; fi)"
    if [[ " $TOOLS " == *" btrfs "* || " $TOOLS " == *" zfs "* ]]; then
        s=$(same_of snapfs.tree_B_digest) text='' r=PASS
        for t in btrfs zfs; do
            [[ " $TOOLS " == *" $t "* ]] || continue
            p=$(same_of "$t.tree_B_digest")
            text+="$t:${p:0:8} "
            [[ $p == - || $p == "$s" ]] || r=FAIL
        done
        if [[ $s == - || $s == varies ]]; then r=FAIL; fi
        row "workload: tree after mutate (digest)" "${s:0:16}" "${text% }" - "same as peers" "$r"
    fi
}

# ---------------------------------------------------------------- main
one_run() {
    local run=$1
    RUN_TAG=run$run
    RUNS_SEEN+=("$RUN_TAG")
    note "run $run of $RUNS"
    emit loadavg "$(cut -d' ' -f1 /proc/loadavg)"  # how busy the shared machine was
    tic_run=${EPOCHREALTIME/./}
    if ((run % 2)); then
        phase_snapfs; phase_peers forward
    else
        phase_peers reverse; phase_snapfs
    fi
    emit run_s "$(((${EPOCHREALTIME/./} - tic_run) / 1000000))"
}

SCRIPT_T0=${EPOCHREALTIME/./}
trap cleanup EXIT
trap 'exit 130' INT TERM
preflight
detach_ours  # leftovers of a run that was killed before its cleanup
export_fs

note "snapfs streams vs peers ($TOOLS) $(date -Is), results also in $RESULTS"
probe_drop_caches
emit snapfs_commit "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
emit snapsend_sha256 "$(sha256sum "$SNAPSEND" | cut -c1-16)"
emit snapsend_built "$(date -r "$REPO/target/release/snapsend" -Is)"  # the tree may have moved on since
emit kernel "$(uname -r)"
emit cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) x$(nproc)"
emit mem_GiB "$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
emit bench_dir_fs "$(findmnt -n -o FSTYPE,SOURCE --target "$BENCH_DIR" | tr -s ' ' ':')"
emit drop_caches_works "$DROP_CACHES"
emit loop_dio_setting "$LOOP_DIO"
emit snapfmt_opts "${SNAPFMT_OPTS:-none}"
emit workload_seed "$WORKLOAD_SEED"
emit size "$SIZE"
emit scale_sizes "${SCALE_SIZES:-none}"
emit change_bytes "$CHANGE"
emit inc_repeats "$INC_REPEATS"
emit tools "${TOOLS:-none}"

DATA="" path=""  # set by dataset() and mutated()
dataset DATA "$SIZE"
mutated path "$SIZE" 1
mutated path "$SIZE" 2
declare -A SCALE_DATA=()
for size in $SCALE_SIZES; do
    dataset path "$size"
    SCALE_DATA[$size]=$path
    mutated path "$size" 1
done

for ((run = 1; run <= RUNS; run++)); do one_run "$run"; done

RUN_TAG=setup
if ((${#FAILED[@]} > 0)); then note "FAILED snapfs phases: ${FAILED[*]} (see the FAILED lines above)"; fi
summary
summary_table
emit script_s "$(((${EPOCHREALTIME/./} - SCRIPT_T0) / 1000000))"
if ((${#FAILED[@]} > 0)); then exit 1; fi
exit 0
