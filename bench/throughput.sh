#!/usr/bin/env bash
# Live-traffic throughput benchmark (not part of the tests): our XDP program
# against nftables and iptables on the same veth topology, same run. Prints
# the tables (median and best of the rounds, ratios, targets, drift from the
# first round to the last, the state each turn started and ended with) and
# writes bench/results/throughput-<date>.json and a PNG plot. Every
# implementation gets a new topology, and so fresh state, every round.
#   bench/throughput.sh           ROUNDS (3), DUR (4 s per case) and
#                                 BUILD_DIR (build) from the environment
#   PACED_PPS=100000 bench/throughput.sh
#                                 the same rate offered to every
#                                 implementation, and the node's CPU time
#                                 per packet compared instead of the rates
#                                 (bench/throughput/run.sh: why)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
scripts/deps.sh
if ! command -v gnuplot >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
fi
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" >/dev/null
fi
ninja -C "$build" agent/aether-agent agent/aetherctl bench/throughput/tput \
	>/dev/null

mkdir -p bench/results
# the commit measured: COMMIT when BUILD_DIR was built from another tree
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
stamp=$(date -u +%Y%m%d-%H%M%S)
raw=$(mktemp /tmp/aeth-tp-raw.XXXXXX)
trap 'rm -f "$raw" "$raw.dat"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
BUILD=$build bench/throughput/run.sh >"$raw"
out=bench/results/throughput-${PACED_PPS:+paced-}$stamp.json
python3 bench/throughput/report.py "$raw" "$out" "$raw.dat" "$commit" "$load0"
# a paced run's rates are the offer's: its figures are the costs, printed
if [ -z "${PACED_PPS:-}" ] && command -v gnuplot >/dev/null; then
	gnuplot -e "dat='$raw.dat'; out='bench/results/throughput-$stamp.png'" \
		bench/throughput/plot.gp
	echo "plot: bench/results/throughput-$stamp.png"
fi
echo "results: $out"
