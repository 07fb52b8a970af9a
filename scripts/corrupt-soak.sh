#!/usr/bin/env bash
# corrupt-soak.sh: the corruption injector with a long budget (the test suite runs it on
# two pools: torture/tests/corrupt.rs). Builds the release binaries, then runs
#   snaptorture corrupt --pools $POOLS --seed $SEED --data-per-pool $DATA
# Each pool gets its own workload (seeds SEED, SEED+1, ...); every copy of every metadata
# block and DATA data blocks of it get one flipped bit each, one at a time, and the labels
# and commit rings are zeroed and torn. Prints a summary (flips injected, detected,
# repaired); exits non-zero on any failure, printed with the seed and block that reproduce it.
#
#   POOLS  pools in all (default 100)
#   SEED   first seed (default 1000)
#   DATA   data blocks flipped per pool (default 40)
# Extra arguments go to snaptorture corrupt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --locked --workspace
exec target/release/snaptorture corrupt --pools "${POOLS:-100}" --seed "${SEED:-1000}" \
    --data-per-pool "${DATA:-40}" "$@"
