#!/usr/bin/env bash
# product-check.sh: the shipped build holds no test code. The library's test code (the
# `testing` feature: snapfs::fuzzing, MemoryDevice, OverlayDevice, SimClock) is for the tests, the
# fuzz targets and the crash harness only.
#
# Builds the release binaries as scripts/setup.sh and `cargo build --release` do (no
# feature), lints that build (clippy --all-targets in test.sh lints it with the
# feature on), then reads what cargo built and the symbols of the library the binaries
# link and of each binary. Fails if the build has the feature, if any symbol of the test
# code is there, or if the library shows no symbol of snapfs::stream (nm read nothing).
#
#   scripts/product-check.sh                      as scripts/test.sh runs it
#   scripts/product-check.sh --features testing   shows the check failing
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nm > /dev/null || { echo "product-check: nm is missing (binutils)" >&2 && exit 1; }

cargo clippy --quiet --locked -p snapfs --lib --bins "$@" -- -D warnings
# Each artifact of the snapfs package: its kind, the features it was built with, its files.
artifacts=$(cargo build --quiet --release --locked -p snapfs --lib --bins "$@" --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] in ("snapfs", "snapfmt", "snapctl", "snapsend", "snaprecv"):
        files = [f for f in m["filenames"] if not f.endswith((".rmeta", ".d"))]
        print(m["target"]["kind"][0], ",".join(m["features"]) or "-", *files)
')

test_code='snapfs::fuzzing::|snapfs::device::memory::|snapfs::device::overlay::|MemoryDevice|OverlayDevice|SimClock'
failed=0
checked=0
while read -r kind features file; do
    [[ -f $file ]] || { echo "product-check: cargo named $file, which does not exist" >&2 && failed=1 && continue; }
    if [[ ,$features, == *,testing,* ]]; then
        echo "product-check: $file was built with the testing feature" >&2
        failed=1
    fi
    symbols=$(nm -C --defined-only "$file" 2> /dev/null || true) # an rlib's metadata member is not an object
    found=$(grep -E -c "$test_code" <<< "$symbols" || true)
    if ((found > 0)); then
        echo "product-check: $file holds $found symbols of test code, such as:" >&2
        grep -E -m3 "$test_code" <<< "$symbols" >&2
        failed=1
    fi
    control='snapfs::'
    [[ $kind == lib ]] && control='snapfs::stream::'
    if ! grep -q "$control" <<< "$symbols"; then
        echo "product-check: no $control symbol in $file: nm read nothing, the check proves nothing" >&2
        failed=1
    fi
    checked=$((checked + 1))
done <<< "$artifacts"
if ((checked != 5)); then
    echo "product-check: checked $checked artifacts, not the library and the 4 binaries" >&2
    failed=1
fi
((failed == 0)) && echo "product-check: the release library and 4 binaries hold no test code"
exit $failed
