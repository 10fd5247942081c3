#!/usr/bin/env bash
# The cluster-in-namespaces itself, without aether-lb: scripts/topology.sh
# up --plain (the LB nodes just route) carries TLS over IPv4 and IPv6 through
# each LB node with replies straight from the backend (direct server
# return), ECMP spreads flows over both LB nodes, and down removes every
# namespace, pin and state file, also a second time.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/topo.sh

P=aeth-sys-topo-$$
topo_init "$P"
CHECKS=0
die() { echo "FAIL $*"; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }
trap 'rc=$?; scripts/topology.sh down --prefix "$P"; [ $rc -eq 0 ] && echo "PASS topology ($CHECKS checks)" || echo "FAIL topology"; exit $rc' EXIT
trap 'exit 130' INT TERM

scripts/topology.sh up --plain --prefix "$P" || die "topology.sh up --plain"
ok "topology up (plain routing)"

# lb1 routes the VIPs to be1, lb2 to be2 in plain mode
for lb in lb1 lb2; do
	want=be${lb#lb}
	topo_route_via "$lb"
	for vip in "$VIP4" "$VIP6"; do
		out=$(topo_curl cin "$vip" -m 5 2>&1) || die "curl via $lb to $vip: $out"
		[ "$out" = "$want" ] || die "via $lb to $vip answered by $want (got $out)"
	done
	ok "TLS via $lb over IPv4 and IPv6 answered by $want"
done

# direct server return: a 2 MB echo stream through lb1; lb1 forwards only
# the client's direction, so it sends far fewer bytes than the backend
topo_route_via lb1
tx0=$(topo_exec lb1 cat /sys/class/net/eth0/statistics/tx_bytes)
r=$(topo_client cin --vip "$VIP4" stream --seconds 4 --rate 524288) ||
	die "stream through lb1: $r"
tx1=$(topo_exec lb1 cat /sys/class/net/eth0/statistics/tx_bytes)
sent=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["sent"])' "$r")
fwd=$((tx1 - tx0))
# lb1 carries the client's bytes once (to the backend); the echo comes back
# without it: well under twice the stream
[ "$fwd" -ge "$sent" ] && [ "$fwd" -lt $((sent * 3 / 2)) ] ||
	die "lb1 forwarded $fwd bytes for a $sent-byte echo stream (want one direction)"
ok "replies bypass the LB node: lb1 sent $fwd bytes for $sent echoed both ways"

# ECMP on the L4 hash: many flows use both LB nodes
topo_route_via ecmp
f=$(topo_client cin --vip "$VIP4" flows --sports 47000-47039)
n=$(python3 -c 'import json,sys; print(len(set(json.loads(sys.argv[1])["flows"].values()) - {None}))' "$f")
[ "$n" -eq 2 ] || die "40 flows over the ECMP route reach both LB nodes ($f)"
ok "ECMP spreads 40 flows over both LB nodes"

# the unauthorized client's network is routed too (plain mode guards nothing)
out=$(topo_curl cout "$VIP4" -m 5 2>&1) || die "curl from cout: $out"
ok "the outside client reaches the VIP without a guard ($out)"

scripts/topology.sh down --prefix "$P" || die "topology.sh down"
left=$(ip netns list | awk '{print $1}' | grep -c "^$P-")
[ "$left" -eq 0 ] || die "$left namespaces left after down"
ls -d /sys/fs/bpf/"$P"-* /run/"$P" >/dev/null 2>&1 && die "pins or state left after down"
scripts/topology.sh down --prefix "$P" || die "second down"
ok "down removes everything and can run again"
