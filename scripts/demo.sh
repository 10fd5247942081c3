#!/usr/bin/env bash
# The README's main command: installs what is missing, builds into build/,
# brings up a cluster in network namespaces (scripts/topology.sh) and shows
# the API endpoint balanced and guarded by aether-lb; then tears it down.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

keep=0
for a in "$@"; do
	case $a in
	--keep) keep=1 ;;
	-h|--help)
		echo "usage: $0 [--keep]   (--keep leaves the namespaces running)"
		exit 0
		;;
	*) echo "$0: unknown argument $a" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root (network namespaces, XDP, bpffs)" >&2
	exit 1
fi

. scripts/lib/topo.sh
topo_init aeth-demo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
# a JSON field of the client's one-line answer
field() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$1"; }

cleanup() {
	local rc=$?
	if [ $keep -eq 1 ] && [ $rc -eq 0 ]; then
		step "Left running (--keep)"
		say "enter a node:      ip netns exec $P-cin bash"
		say "call the endpoint: ip netns exec $P-cin curl --cacert $CACERT \\"
		say "                     --resolve $API_HOST:$API_PORT:$VIP4 https://$API_HOST:$API_PORT/"
		say "inspect an LB:     $CTL --pin-dir $(topo_pin_dir lb1) service list"
		say "its API:           curl --unix-socket $(topo_sock lb1) http://agent/v1/status"
		say "agent logs:        $TOPO_STATE/<node>/agent.log"
		say "tear down:         scripts/topology.sh down --prefix $P"
		return
	fi
	[ $rc -ne 0 ] && [ -d "$TOPO_STATE" ] && {
		echo "demo: failed; last lines of the agents' logs:" >&2
		tail -n 5 "$TOPO_STATE"/*/agent.log >&2 2>/dev/null
	}
	step "Tearing down"
	topo_down
	say "namespaces, pins and state removed"
}
trap cleanup EXIT
. scripts/lib/demo_bgp.sh

step "Installing what is missing and building into ${TOPO_BUILD#"$PWD"/}/"
scripts/deps.sh || exit 1
[ -f "$TOPO_BUILD/build.ninja" ] || meson setup "$TOPO_BUILD" >/dev/null || exit 1
ninja -C "$TOPO_BUILD" >/dev/null || { ninja -C "$TOPO_BUILD"; exit 1; }
say "built $AGENT and $CTL"

step "Bringing up the cluster in namespaces ($P-*)"
say "router $P-rtr: BIRD, learns $VIP4 and $VIP6 over BGP from lb1 and lb2 (ECMP)"
say "LB nodes $P-lb1, $P-lb2: aether-agent, XDP on eth0, IPIP to the backends,"
say "  each announcing the VIPs through the BIRD its agent runs (BFD on)"
say "backends $P-be1..3: VIPs on lo, aether-agent decapsulates (tunnels from lb1/lb2 only: decap.sources), HTTPS on :$API_PORT"
say "clients: $P-cin (authorized, ${TOPO_V4[cin]}) and $P-cout (not, ${TOPO_V4[cout]})"
topo_up --config scripts/lib/default-config.json || exit 1
demo_bgp_announced

step "aetherctl status (lb1): the program on its NIC"
topo_ctl lb1 status

step "Authorized client: curl --cacert to https://$API_HOST:$API_PORT"
say "\$ curl --cacert ca.crt --resolve $API_HOST:$API_PORT:$VIP4 https://$API_HOST:$API_PORT/"
for i in 1 2 3; do
	out=$(topo_curl cin "$VIP4" -m 5 -w ' (TLS ok, HTTP %{http_code})' | tr -d '\n') ||
		{ say "request $i failed"; exit 1; }
	say "answered by backend: $out"
done
say "\$ curl ... --resolve $API_HOST:$API_PORT:[$VIP6] (IPv6)"
out=$(topo_curl cin "$VIP6" -m 5 -w ' (TLS ok, HTTP %{http_code})' | tr -d '\n') ||
	{ say "IPv6 request failed"; exit 1; }
say "answered by backend: $out"

step "Unauthorized client ($P-cout, outside the authorized networks)"
before=$(( $(topo_reason_count lb1 not_authorized) + $(topo_reason_count lb2 not_authorized) ))
if out=$(topo_curl cout "$VIP4" -m 3 2>&1); then
	say "unexpected answer: $out"
	exit 1
fi
say "curl: ${out##*curl: }"
after=$(( $(topo_reason_count lb1 not_authorized) + $(topo_reason_count lb2 not_authorized) ))
say "not_authorized drops on the LB nodes: $before -> $after (SYN and its retransmits)"

step "Rate limit: a burst of new connections while an open connection streams"
topo_client cin --vip "$VIP4" stream --seconds 6 >"$TOPO_STATE/stream.json" &
stream_pid=$!
sleep 1
say "streaming an echo connection for 6 s; now 200 new connections at once"
say "(limit: 20/s per source, burst 40, kept by each LB node; ECMP spreads"
say " the flows over both, so about 2 x 40 get in)"
burst=$(topo_client cin --vip "$VIP4" --timeout 0.9 burst --count 200)
say "admitted: $(field admitted <<<"$burst"), refused (SYN dropped): $(field refused <<<"$burst")"
sleep 1
burst=$(topo_client cin --vip "$VIP4" --timeout 0.9 burst --count 200)
say "2 s later (buckets refilled at 20/s), again: admitted $(field admitted <<<"$burst"), refused $(field refused <<<"$burst")"
wait $stream_pid
s=$(cat "$TOPO_STATE/stream.json")
say "open connection (backend $(field backend <<<"$s")): sent $(field sent <<<"$s") bytes, received $(field received <<<"$s"), intact: $(field equal <<<"$s")"
say "rate_limited drops: lb1 $(topo_reason_count lb1 rate_limited), lb2 $(topo_reason_count lb2 rate_limited)"

step "aetherctl service list (lb1)"
topo_ctl lb1 service list
step "aetherctl backend list (lb1)"
topo_ctl lb1 backend list
step "aetherctl maglev show kube-apiserver (lb1 and lb2 agree)"
topo_ctl lb1 maglev show kube-apiserver
a=$(topo_ctl lb1 -j maglev show kube-apiserver --raw | md5sum)
b=$(topo_ctl lb2 -j maglev show kube-apiserver --raw | md5sum)
[ "$a" = "$b" ] && say "lb1 and lb2 tables: identical" ||
	say "lb1 and lb2 tables: DIFFERENT"
step "aetherctl explain: what lb1 does with a SYN from each client"
topo_ctl lb1 explain --src "${TOPO_V4[cin]}:40000" --dst "$VIP4:$API_PORT" --proto tcp --syn
topo_ctl lb1 explain --src "${TOPO_V4[cout]}:40000" --dst "$VIP4:$API_PORT" --proto tcp --syn
step "aetherctl stats (lb1)"
topo_ctl lb1 stats

step "Counters on lb1's /metrics (127.0.0.1:${TOPO_METRICS[lb1]} in $P-lb1)"
topo_http lb1 /metrics | grep -E '^aether_(packets_total|drops_total|backend_up|config_generation)' |
	grep -v ' 0$' | head -n 25

demo_bgp_drain
demo_bgp_failure
