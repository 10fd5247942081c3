#!/usr/bin/env bash
# The README's main command: build, then show the data path at work.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build
