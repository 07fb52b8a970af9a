#!/usr/bin/env bash
# test.sh: the whole test suite, as CI runs it (.ci/run calls exactly this).
# Unit tests, CLI tests on image files, loop-device tests (root; they fail rather than
# skip when CI=true), the workload round trip, man pages against --help, the crash
# harness with a short budget (torture/; scripts/crash-soak.sh runs the long one), lints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --check
cargo clippy --quiet --locked --workspace --all-targets -- -D warnings
cargo test --workspace --locked --quiet
