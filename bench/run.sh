#!/usr/bin/env bash
# Runs the benchmarks (not part of the tests) and keeps their results under
# bench/results/:
#   bench/run.sh [all|cost|maglev|throughput|scale|bgp] [ARGS...]
#     cost        cost per packet of every data-path path (cost-<date>.json);
#                 ARGS go to it: --rounds N, --only ROW|micro, --baseline OBJ;
#                 --baseline-rev REV builds REV's program (e.g. main, HEAD~1)
#                 with bpf/meson.build's flags and times it as --baseline
#     maglev      Maglev table build time (maglev-<date>.txt); ARGS: RUNS
#     throughput  live 64-byte traffic against nftables/iptables (+ PNG)
#     scale       control plane, map memory, connection table at 1 M
#     bgp         config change to the router's table over BGP (bgp-<date>.json)
#     all         every one of them in turn (the default)
# BUILD_DIR (default build) is the meson build directory to use.
set -euo pipefail
cd "$(dirname "$0")/.."

what=all
case "${1:-}" in
cost | maglev | throughput | scale | bgp | all) what=$1; shift ;;
esac

build=${BUILD_DIR:-build}
scripts/deps.sh
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" >/dev/null
fi
mkdir -p bench/results
stamp=$(date -u +%Y%m%d-%H%M%S)

# The data path of git revision $1, compiled as bpf/meson.build does, into
# $2 (an object for bench/cost --baseline).
build_rev_obj() {
	local rev=$1 obj=$2 src
	src=$(mktemp -d)
	git archive "$rev" bpf include | tar -x -C "$src"
	clang -O2 -g -target bpf -mcpu=v3 -Wall -Wno-unused-function \
		-I"$src/include" -I"$src/bpf" \
		-idirafter /usr/include/x86_64-linux-gnu \
		-c "$src/bpf/aether_lb.bpf.c" -o "$obj"
	rm -rf "$src"
}

run_cost() {
	local args=() base=""
	while [ $# -gt 0 ]; do
		if [ "$1" = --baseline-rev ] && [ $# -ge 2 ]; then
			base=$(mktemp --suffix=.bpf.o)
			build_rev_obj "$2" "$base"
			args+=(--baseline "$base")
			echo "baseline: the program of $2 ($(git rev-parse --short "$2"))"
			shift 2
		else
			args+=("$1")
			shift
		fi
	done
	ninja -C "$build" bench/cost >/dev/null
	local out="bench/results/cost-$stamp.json"
	"$build/bench/cost" --json "$out" "${args[@]}"
	[ -z "$base" ] || rm -f "$base"
	bench/plot_cost.sh "$out"
	echo
	echo "results: $out"
}

run_maglev() {
	ninja -C "$build" bench/maglev >/dev/null
	local out="bench/results/maglev-$stamp.txt"
	"$build/bench/maglev" "$@" | tee "$out"
	echo
	echo "results: $out"
}

case "$what" in
cost) run_cost "$@" ;;
maglev) run_maglev "$@" ;;
throughput) BUILD_DIR=$build bench/throughput.sh ;;
scale) BUILD_DIR=$build bench/scale.sh ;;
bgp) BUILD_DIR=$build bench/bgp.sh ;;
all)
	echo "== cost per packet"; run_cost
	echo "== Maglev build time"; run_maglev
	echo "== throughput"; BUILD_DIR=$build bench/throughput.sh
	echo "== control plane and scale"; BUILD_DIR=$build bench/scale.sh
	echo "== config change to the router (BGP)"; BUILD_DIR=$build bench/bgp.sh
	;;
esac
