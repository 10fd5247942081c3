#!/usr/bin/env bash
# bench/profile/verifier.sh [N]: where the verifier's work on the data path
# goes, by source line (the top N, default 30), and its count of processed
# instructions against the limit of 1,000,000. A level-2 log of a program
# near the limit is about 1 GiB: it is written to a temporary file and
# removed. Needs root. BUILD_DIR (default build) is the meson build.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build}
ninja -C "$build" bench/profile/verifier_log bpf/aether_lb.bpf.o >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bench/profile/verifier_log" "$build/bpf/aether_lb.bpf.o" aether_lb 2 \
	"$work/log" || true
python3 bench/profile/verifier_lines.py "$work/log" "${1:-30}"
