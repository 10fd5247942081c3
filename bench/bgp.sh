#!/usr/bin/env bash
# Configuration change to the router's table (not part of the tests): in the
# namespace cluster, lb1's document loses the IPv6 service (its VIP must be
# withdrawn) and gets it back (announced), ROUNDS times each; every time is
# from the rename of the document to the router's kernel route changing
# (the agent's file watch, its 100 ms settle delay, BIRD's reconfiguration,
# BGP and the router's BIRD included). Drain and undrain through the API are
# timed the same way. Prints median and worst, writes
# bench/results/bgp-<date>.json.
#   bench/bgp.sh        ROUNDS (20) and BUILD_DIR (build) from the environment
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

rounds=${ROUNDS:-20}
export AETH_BUILD=${BUILD_DIR:-build}
scripts/deps.sh
if [ ! -f "$AETH_BUILD/build.ninja" ]; then
	meson setup "$AETH_BUILD" >/dev/null
fi
ninja -C "$AETH_BUILD" agent/aether-agent agent/aetherctl >/dev/null || exit 1

. scripts/lib/topo.sh
topo_init "aeth-bench-bgp-$$"
trap topo_down EXIT
trap 'exit 130' INT TERM
topo_up || { echo "topology did not come up"; exit 1; }

# microseconds of the wall clock, without a fork
now_us() { echo "${EPOCHREALTIME/./}"; }
# until FAMILY has N next hops; prints the time it saw it
until_nexthops() {
	local i
	for ((i = 0; i < 1000; i++)); do
		if [ "$(topo_nexthops "$1" | wc -l)" -eq "$2" ]; then
			now_us
			return 0
		fi
		sleep 0.005
	done
	return 1
}

conf=$(topo_conf lb1)
dir=$(dirname "$conf")
full=$TOPO_STATE/bench-full.json
less=$TOPO_STATE/bench-no-v6.json
cp "$conf" "$full"
python3 - "$conf" "$less" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["services"] = [s for s in doc["services"] if ":" not in s["vip"]]
json.dump(doc, open(sys.argv[2], "w"), indent=2)
EOF

# put FILE: replace lb1's document atomically; prints the time of the rename
put() {
	cp "$1" "$dir/.bench.new"
	now_us
	mv -f "$dir/.bench.new" "$conf"
}
api_drain() {
	local t
	t=$(now_us)
	curl -sS -m 5 --unix-socket "$(topo_sock lb1)" -X PUT \
		--data "{\"drained\": $1}" http://agent/v1/drain >/dev/null
	echo "$t"
}

withdraw=() announce=() drain=() undrain=()
for ((r = 0; r < rounds; r++)); do
	t0=$(put "$less"); t1=$(until_nexthops 6 1) || exit 1
	withdraw+=("$(((t1 - t0) / 1000))")
	sleep 0.5
	t0=$(put "$full"); t1=$(until_nexthops 6 2) || exit 1
	announce+=("$(((t1 - t0) / 1000))")
	sleep 0.5
	t0=$(api_drain true); t1=$(until_nexthops 4 1) || exit 1
	drain+=("$(((t1 - t0) / 1000))")
	sleep 0.3
	t0=$(api_drain false); t1=$(until_nexthops 4 2) || exit 1
	undrain+=("$(((t1 - t0) / 1000))")
	sleep 0.3
done

mkdir -p bench/results
out=bench/results/bgp-$(date -u +%Y%m%d-%H%M%S).json
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
python3 - "$out" "$commit" "${withdraw[*]}" "${announce[*]}" "${drain[*]}" \
	"${undrain[*]}" <<'EOF'
import json, statistics, sys
out, commit = sys.argv[1], sys.argv[2]
names = ["file change, VIP withdrawn", "file change, VIP announced",
         "API drain, VIPs withdrawn", "API undrain, VIPs announced"]
res = {"commit": commit, "unit": "ms", "cases": {}}
print(f"{'case':32} {'median':>8} {'worst':>8}  (ms, {len(sys.argv[3].split())} rounds)")
for name, raw in zip(names, sys.argv[3:7]):
    v = [float(x) for x in raw.split()]
    res["cases"][name] = {"median": statistics.median(v), "worst": max(v),
                          "samples": v}
    print(f"{name:32} {statistics.median(v):8.1f} {max(v):8.1f}")
json.dump(res, open(out, "w"), indent=2)
EOF
echo "results: $out"
