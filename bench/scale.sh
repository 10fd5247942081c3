#!/usr/bin/env bash
# Control-plane and scale benchmark (not part of the tests): apply of 1,000
# services, file change to new table live, map memory for 1/100/1,000
# services and 1 M connections, connection hit and insert at 1 M entries.
# Prints the tables and writes bench/results/scale-<date>.json.
#   bench/scale.sh                REPS (5) and BUILD_DIR (build) from the
#                                 environment
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
scripts/deps.sh
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" >/dev/null
fi
ninja -C "$build" agent/aether-agent agent/aetherctl bench/scale/scale \
	>/dev/null

mkdir -p bench/results
# the commit measured: COMMIT when BUILD_DIR was built from another tree
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
raw=$(mktemp /tmp/aeth-tp-sc-raw.XXXXXX)
trap 'rm -f "$raw"' EXIT
BUILD=$build bench/scale/run.sh >"$raw"
out=bench/results/scale-$(date -u +%Y%m%d-%H%M%S).json
python3 bench/scale/report.py "$raw" "$out" "$commit"
echo "results: $out"
