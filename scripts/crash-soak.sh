#!/usr/bin/env bash
# crash-soak.sh: the crash-consistency harness with a long budget (the test suite runs it
# with a short one: torture/tests/crash.rs). Builds the release binaries, then runs
#   snaptorture crash --states $STATES --rounds $ROUNDS --seed $SEED
# ROUNDS workloads (seeds SEED, SEED+1, ...) share the states. Prints a summary; exits
# non-zero on any failure, each printed with the seed and crash point that reproduce it.
#
#   STATES  crash states in all (default 100000)
#   ROUNDS  workloads, each with its own seed (default 5)
#   SEED    first seed (default: from the clock, printed)
#   THREADS judging threads (default: the number of CPUs)
# Extra arguments go to snaptorture crash (e.g. --keep DIR, --no-digest-cache).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --locked --workspace
args=(crash --states "${STATES:-100000}" --rounds "${ROUNDS:-5}")
[[ -n ${SEED:-} ]] && args+=(--seed "$SEED")
[[ -n ${THREADS:-} ]] && args+=(--threads "$THREADS")
exec target/release/snaptorture "${args[@]}" "$@"
