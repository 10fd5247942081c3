#!/usr/bin/env bash
# Control plane and scale, measured on a real agent in its own namespace:
# validating and applying 1,000 services (start, and PUT /v1/config), time
# from a config file change to the new Maglev table live, memory of the maps
# for 1, 100 and 1,000 services and with 1 M connections, and the cost of a
# connection hit and of a new connection at 1 M live entries. Called by
# bench/scale.sh; prints one JSON document on stdout.
set -euo pipefail

BUILD=${BUILD:?}
REPS=${REPS:-5}
P=aeth-tp
NS=$P-sc
PIN=/sys/fs/bpf/$P-sc
TMP=$(mktemp -d /tmp/$P-sc.XXXXXX)
SOCK=$TMP/agent.sock
AGENT=$BUILD/agent/aether-agent
CTL=$BUILD/agent/aetherctl
SCALE=$BUILD/bench/scale/scale
agent_pid=

log() { echo "scale: $*" >&2; }

# nsenter, not ip netns exec: that one remounts /sys and hides the bpffs
nsx() { nsenter --net=/run/netns/"$NS" "$@"; }

cleanup() {
	set +e
	[ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid"
	[ -e "$PIN" ] && nsx "$AGENT" --detach --pin-dir "$PIN" >/dev/null 2>&1
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# gen_doc N VARIANT: N services of 3 backends (16381-slot tables); VARIANT
# moves the last backend of service s0.
gen_doc() {
	python3 - "$1" "$2" <<-'EOF'
	import json, sys
	n, variant = int(sys.argv[1]), int(sys.argv[2])
	svcs = []
	for i in range(n):
	    last = "192.0.2.%d" % (250 + variant if i == 0 else i % 50 + 201)
	    svcs.append({"name": "s%d" % i, "vip": "203.0.113.%d" % (i % 250 + 1),
	                 "port": 1000 + i, "protocol": "tcp",
	                 "backends": [{"address": "192.0.2.%d" % (i % 200 + 1)},
	                              {"address": "198.51.100.%d" % (i % 250 + 1)},
	                              {"address": last}]})
	print(json.dumps({
	    "version": 1,
	    "node": {"interfaces": ["aeth-tp-s0"], "xdp_mode": "native",
	             "addresses": {"ipv4": "198.51.100.254"}},
	    "maglev": {"seed": "5f3c0a1e9b7d2c44a1b2c3d4e5f60718",
	               "table_size": 16381},
	    "conntrack": {"max_entries": 1048576, "insert_rate_per_cpu": 0},
	    "services": svcs}))
	EOF
}

topo_up() {
	ip netns add "$NS"
	ip -n "$NS" link add aeth-tp-s0 type veth peer name aeth-tp-s1
	ip -n "$NS" link set lo up
	ip -n "$NS" link set aeth-tp-s0 up
	ip -n "$NS" link set aeth-tp-s1 up
	ip -n "$NS" addr add 192.0.2.254/24 dev aeth-tp-s0
	ip -n "$NS" addr add 198.51.100.254/24 dev aeth-tp-s0
	# resolved neighbours, so a forwarded packet takes the XDP path
	local mac
	mac=$(ip netns exec "$NS" cat /sys/class/net/aeth-tp-s1/address)
	for i in $(seq 1 253); do
		echo "neigh replace 192.0.2.$i lladdr $mac dev aeth-tp-s0 nud permanent"
		echo "neigh replace 198.51.100.$i lladdr $mac dev aeth-tp-s0 nud permanent"
	done | ip -n "$NS" -batch -
}

# Start the agent on a document; START_MS: the ms until it has applied it
# and attached (generation >= 1 in the pinned maps, API socket up).
agent_start() {
	local t0 g=0
	t0=$(date +%s%N)
	# nsenter itself, not the nsx function: $! must be the agent
	nsenter --net=/run/netns/"$NS" "$AGENT" --config "$1" --pin-dir "$PIN" --socket "$SOCK" \
		--metrics-addr none --log-level warn >/dev/null 2>>"$TMP/agent.log" &
	agent_pid=$!
	for _ in $(seq 3000); do
		g=$("$CTL" --pin-dir "$PIN" -j status 2>/dev/null |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])' \
			2>/dev/null) || g=0
		[ "${g:-0}" -ge 1 ] && [ -S "$SOCK" ] && break
		sleep 0.02
	done
	[ "${g:-0}" -ge 1 ] || { log "agent not ready"; cat "$TMP/agent.log" >&2; return 1; }
	START_MS=$(ms_since "$t0")
}

agent_stop() {
	kill "$agent_pid"
	wait "$agent_pid" || true
	agent_pid=
	nsx "$AGENT" --detach --pin-dir "$PIN" 2>>"$TMP/agent.log"
	rm -f "$SOCK"
}

# PUT a document; prints "<http code> <seconds>".
put_doc() {
	curl -s -o "$TMP/put.out" -w '%{http_code} %{time_total}\n' \
		--unix-socket "$SOCK" -X PUT --data-binary @"$1" \
		http://agent/v1/config
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for t in "$AGENT" "$CTL" "$SCALE"; do
	[ -x "$t" ] || { log "missing $t (build first)"; exit 1; }
done
command -v curl >/dev/null || { log "missing curl"; exit 1; }
topo_up

out="{"
# validation only
gen_doc 1000 0 >"$TMP/doc1000.json"
for _ in $(seq "$REPS"); do
	t0=$(date +%s%N)
	nsx "$AGENT" --check-config "$TMP/doc1000.json" >/dev/null
	ms_since "$t0"
done >"$TMP/check.txt"
out+="\"check_config_1000_ms\": {\"median\": $(median <"$TMP/check.txt"), \"runs\": [$(paste -sd, "$TMP/check.txt")]},"
log "check-config of 1,000 services: $(paste -sd' ' "$TMP/check.txt") ms"

out+="\"services\": ["
first=1
for n in 1 100 1000; do
	gen_doc "$n" 0 >"$TMP/doc$n-0.json"
	gen_doc "$n" 1 >"$TMP/doc$n-1.json"
	agent_start "$TMP/doc$n-0.json"
	start_ms=$START_MS
	mem=$("$SCALE" mem --pin-dir "$PIN")
	puts=()
	for r in $(seq "$REPS"); do
		read -r code secs < <(put_doc "$TMP/doc$n-$((r % 2)).json")
		[ "$code" = 200 ] || { log "PUT $n services: $code $(cat "$TMP/put.out")"; exit 1; }
		puts+=("$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }')")
	done
	log "$n services: start+apply $start_ms ms, PUT (one backend moved) ${puts[*]} ms"
	flips=()
	if [ "$n" = 1000 ]; then
		# the agent watches the file: replace it atomically (rename) with
		# one backend of s0 moved, time until s0's table flips. The new
		# file is written outside the watched directory, so only the
		# rename is seen.
		mkdir -p "$TMP/watched"
		cp "$TMP/doc$n-0.json" "$TMP/watched/live.json"
		agent_stop
		agent_start "$TMP/watched/live.json"
		for r in $(seq "$REPS"); do
			cp "$TMP/doc$n-$((r % 2)).json" "$TMP/next.json"
			sleep 0.5
			f=$("$SCALE" flip --pin-dir "$PIN" --vip 203.0.113.1 \
				--port 1000 --config "$TMP/watched/live.json" \
				--new "$TMP/next.json")
			flips+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["flip_ms"])' "$f")")
			sleep 0.5
		done
		log "file change to new table live: ${flips[*]} ms"
	fi
	[ $first = 1 ] || out+=","
	first=0
	out+="{\"services\": $n, \"start_and_apply_ms\": $start_ms,"
	out+="\"put_one_backend_moved_ms\": [$(IFS=,; echo "${puts[*]}")],"
	out+="\"file_change_to_table_live_ms\": [$(IFS=,; echo "${flips[*]}")],"
	out+="\"memory\": $mem}"
	agent_stop
done
out+="],"

# the connection table at 1 M live entries
gen_doc 1 0 >"$TMP/ct.json"
agent_start "$TMP/ct.json"
# inside the namespace: the program's route lookup must find the backends
ct=$(nsx "$SCALE" ct --pin-dir "$PIN" --vip 203.0.113.1 --port 1000 \
	--entries 1048576 --samples "${SAMPLES:-20000}")
mem=$("$SCALE" mem --pin-dir "$PIN")
agent_stop
out+="\"conntrack\": $ct, \"memory_with_1m_connections\": $mem}"
echo "$out" | python3 -m json.tool
