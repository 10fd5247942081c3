#!/usr/bin/env bash
# Plots a cost-per-packet result (bench/results/cost-*.json, the newest by
# default) as ns above the empty-program floor per path, with the targets,
# into a PNG beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
json=${1:-$(ls bench/results/cost-*.json | sort | tail -n 1)}
png=${json%.json}.png
dat=$(mktemp)
trap 'rm -f "$dat"' EXIT
command -v gnuplot >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
python3 - "$json" >"$dat" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["rows"]:
    target = r.get("target_ns")
    print('"%s"\t%.1f\t%s' % (r["name"], r["above_floor_ns"],
                               target if target is not None else "NaN"))
PY
gnuplot <<GP
set terminal pngcairo size 1000,560 font ",10"
set output "$png"
set title "Cost per packet above an empty XDP program ($(basename "$json"))"
set ylabel "ns per packet above the floor (best round)"
set style fill solid 0.8 border -1
set boxwidth 0.7
set yrange [0:*]
set grid ytics
set xtics rotate by -40 left
set bmargin 12
set rmargin 10
set key top left
plot "$dat" using 0:2:xtic(1) with boxes title "aether-lb", \
     "" using 0:3 with points pt 7 ps 1.4 title "target"
GP
echo "plot: $png"
