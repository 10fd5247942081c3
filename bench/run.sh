#!/usr/bin/env bash
# Builds and runs the cost-per-packet benchmark of the data path (not part of
# the tests): prints the table and writes bench/results/cost-<date>.json.
#   bench/run.sh [--rounds N] [--only ROW]  BUILD_DIR (default build) is the meson
#                                    build directory to use.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
scripts/deps.sh
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" >/dev/null
fi
ninja -C "$build" bench/cost >/dev/null

mkdir -p bench/results
out="bench/results/cost-$(date -u +%Y%m%d-%H%M%S).json"
"$build/bench/cost" --json "$out" "$@"
echo
echo "results: $out"
