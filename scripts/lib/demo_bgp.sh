# Sourced by scripts/demo.sh: the BGP part of the demo (the announcement, a
# drain, and a node failure that a long-lived stream survives). Uses step,
# say and field from demo.sh and the topology of topo.sh.
# shellcheck shell=bash

demo_routes() {
	say "router: $VIP4 via $(topo_nexthops 4 | tr '\n' ' ')"
	say "router: $VIP6 via $(topo_nexthops 6 | tr '\n' ' ')"
}

demo_ms_until() {
	local fam=$1 want=$2 t0=${EPOCHREALTIME/./} i
	for ((i = 0; i < ${3:-3} * 100; i++)); do
		if [ "$(topo_nexthops "$fam" | wc -l)" -eq "$want" ]; then
			echo $(((${EPOCHREALTIME/./} - t0) / 1000))
			return 0
		fi
		sleep 0.01
	done
	echo "more than $((${3:-3} * 1000))"
	return 1
}

demo_bgp_announced() {
	step "BGP: the router learnt the VIPs from both LB nodes"
	topo_birdc show protocols | sed -n '2,$p' | sed 's/^/   /'
	demo_routes
	step "aetherctl node show (lb1): drained, BGP peers, what it announces"
	"$CTL" -j node show --socket "$(topo_sock lb1)" | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(json.dumps({"drained": d["drained"], "bgp": d["bgp"]}, indent=2))' |
		sed 's/^/   /'
}

demo_bgp_drain() {
	local t
	step "Maintenance: aetherctl node drain on lb1"
	"$CTL" node drain --socket "$(topo_sock lb1)" >/dev/null || return 1
	t=$(demo_ms_until 4 1)
	say "withdrawn: the router moved to lb2 alone in $t ms"
	demo_routes
	out=$(topo_curl cin "$VIP4" -m 5 | tr -d '\n') && say "the endpoint still answers (backend $out)"
	"$CTL" node undrain --socket "$(topo_sock lb1)" >/dev/null || return 1
	t=$(demo_ms_until 4 2)
	say "aetherctl node undrain: both next hops back in $t ms"
}

demo_bgp_failure() {
	local sport=41777 lb t pid s
	step "Node failure: an LB node's link goes silent under a long-lived TLS stream"
	topo_client cin --vip "$VIP4" --sport "$sport" stream --seconds 8 \
		>"$TOPO_STATE/stream-bgp.json" &
	pid=$!
	sleep 2
	lb=$(topo_lb_of_sport "$sport") || { say "stream not found"; return 1; }
	say "the router's ECMP sent the stream (port $sport) to $lb; now every"
	say "packet to and from $lb is dropped (nftables on its fabric port)"
	topo_silence "$lb" on || return 1
	t=$(demo_ms_until 4 1)
	say "BFD noticed: the router dropped $lb in $t ms"
	demo_routes
	wait "$pid"
	s=$(cat "$TOPO_STATE/stream-bgp.json")
	say "stream (backend $(field backend <<<"$s")): sent $(field sent <<<"$s"), received $(field received <<<"$s"), intact: $(field equal <<<"$s")"
	say "(the other node builds the same Maglev table: the flow kept its backend)"
	topo_silence "$lb" off
	t=$(demo_ms_until 4 2 20) || true
	say "$lb's link back: announced again (${t} ms)"
}
