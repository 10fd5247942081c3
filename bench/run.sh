#!/usr/bin/env bash
# Runs the benchmarks (not part of the tests) and keeps their results under
# bench/results/:
#   bench/run.sh [all|cost|maglev|throughput|scale|bgp] [ARGS...]
#     cost        cost per packet of every data-path path (cost-<date>.json);
#                 ARGS go to it: --rounds N, --only ROW, --baseline OBJ
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

run_cost() {
	ninja -C "$build" bench/cost >/dev/null
	local out="bench/results/cost-$stamp.json"
	"$build/bench/cost" --json "$out" "$@"
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
