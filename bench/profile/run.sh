#!/usr/bin/env bash
# bench/profile/run.sh ROW [N]: where the data path's own time goes on one
# row of bench/cost (a JSON row key, e.g. established_v4), by source line.
# perf samples CPU 0 while `bench/cost --only ROW` runs there; the program
# is then loaded once more, unpinned (the same object gives the same JIT
# image), and its line table joins the samples' offsets (jit_lines.c,
# by_line.py).
# Needs root and perf. BUILD_DIR (default build) is the meson build.
set -euo pipefail
cd "$(dirname "$0")/../.."
row=${1:?usage: bench/profile/run.sh ROW [N]}
top=${2:-30}
build=${BUILD_DIR:-build}
ninja -C "$build" bench/cost bench/profile/jit_lines bpf/aether_lb.bpf.o >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
perf record -q -C 0 -o "$work/perf.data" -- \
	"$build/bench/cost" --only "$row" --rounds 61 >"$work/cost.txt" 2>&1
cat "$work/cost.txt"
perf report -i "$work/perf.data" --sort sym 2>/dev/null | sed -n '/%/p' | sed -n "1,${PROFILE_SYMS:-12}p"
perf script -i "$work/perf.data" -F ip,sym,symoff 2>/dev/null |
	sed -n 's/.*_aether_lb+0x\([0-9a-f]*\)$/\1/p' | sort | uniq -c \
	>"$work/samples"
"$build/bench/profile/jit_lines" "$build/bpf/aether_lb.bpf.o" aether_lb \
	>"$work/lines"
python3 bench/profile/by_line.py "$work/lines" "$work/samples" "$top"
