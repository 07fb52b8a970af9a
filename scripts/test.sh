#!/usr/bin/env bash
# test.sh: the whole test suite, as CI runs it (.ci/run calls exactly this).
# Unit tests, CLI tests on image files, loop-device tests (root; they fail rather than
# skip when CI=true), the workload round trip, man pages against --help, the crash
# harness and the corruption injector with short budgets (torture/; scripts/crash-soak.sh
# and `snaptorture corrupt --pools N` run the long ones), lints, a check that the release
# build holds no test code (scripts/product-check.sh), and a short run of every fuzz
# target (scripts/fuzz.sh; the soak is scripts/fuzz.sh --soak).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A lock directory of the run's own (lock.rs): every snapfs process the suite starts
# inherits it, and the machine's /run/lock/snapfs does not fill with the lock files and
# readers' folders of the thousands of pools the tests make (it had 27,000 entries after a
# few weeks of runs, and a test that scanned it polled too slowly to see a short read).
SNAPFS_LOCK_DIR="$(mktemp -d -t snapfs-test-locks.XXXXXX)"
export SNAPFS_LOCK_DIR
trap 'rm -rf "$SNAPFS_LOCK_DIR"' EXIT
cargo fmt --check
cargo clippy --quiet --locked --workspace --all-targets -- -D warnings
scripts/product-check.sh
cargo test --workspace --locked --quiet
scripts/fuzz.sh
