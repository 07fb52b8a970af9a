# shellcheck shell=bash
# start.sh: how every benchmark script starts, sourced right after its `set -euo pipefail`
# and its BENCH_DIR default: `--help` prints the script's header comment (the lines
# above `set -euo pipefail`); then REPO, BIN (the release binaries), RESULTS (default
# /dev/null) and the shared bench library (shared-bench.sh, then its lib.sh).
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/shared-bench.sh
source "$REPO/scripts/shared-bench.sh"
# shellcheck source=/dev/null
source "$SHARED_BENCH/lib.sh"
RESULTS=${RESULTS:-/dev/null}
BIN=$REPO/target/release
