#!/bin/bash
# Compares what two builds of the binaries print, for refactors that must not change
# output (issue 13): every snapctl command, human and --json, snaprecv's and snapsend's modes, run
# by each build on identical copies of the same sample pools (healthy, a saved partial
# receive, no history, a grown device, damaged copies, too small a target). Times, ns
# stamps and scrub's speed are masked. Needs root (mknod) and setfattr.
# Usage: bench/compare_outputs.sh BEFORE_DIR AFTER_DIR  (each holds snapctl, snapfmt, snapsend, snaprecv)
# Prints each difference and "N commands compared, M differ"; exits 1 if any differ.
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
bash "$DIR/compare_outputs.d/snapctl.sh" "$1" "$2" | tee /dev/stderr | tail -1 | grep -q ", 0 differ" || exit 1
bash "$DIR/compare_outputs.d/snaprecv.sh" "$1" "$2" | tee /dev/stderr | tail -1 | grep -q ", 0 differ" || exit 1
bash "$DIR/compare_outputs.d/snapsend.sh" "$1" "$2" | tee /dev/stderr | tail -1 | grep -q ", 0 differ" || exit 1
