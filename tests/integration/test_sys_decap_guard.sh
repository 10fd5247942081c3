#!/usr/bin/env bash
# A tunnel is no way around the guard: hand-made IPIP packets to a backend
# node carrying a SYN for the API VIP get no SYN-ACK when they come from a
# client outside the authorized networks, from a forged LB-node source with
# an unauthorized inner source, or from a host that is no LB node with an
# authorized inner source; each is counted as decap_invalid on the backend.
# A plain SYN through the LB nodes (the control) does get its SYN-ACK.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin decap
itest_up

# rp_filter off on the router so a forged source reaches the fabric: the
# test is about what the backend accepts, not about the router
topo_sysctl rtr net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.cin.rp_filter=0 \
	net.ipv4.conf.cout.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 >/dev/null

probe() { # NODE ARGS...: {"synack": ...} from ipip_probe.py run on NODE
	local n=$1; shift
	topo_exec "$n" python3 scripts/lib/ipip_probe.py --vip "$VIP4" \
		--port "$API_PORT" --listen-for 3 "$@"
}
synack() { [ "$(json_get "$1" synack)" = True ]; }

r=$(probe cin) || die "control probe: $r"
synack "$r" || die "control: a plain SYN from the authorized client through the LB nodes got no SYN-ACK ($r)"
ok "control: plain SYN from cin through the LB nodes answered with a SYN-ACK"

BE=${TOPO_V4[be1]}
LB=${TOPO_V4[lb1]}
COUT=${TOPO_V4[cout]}
CIN=${TOPO_V4[cin]}

expect_refused() { # WHAT NODE ARGS...
	local what=$1 n=$2 before after r; shift 2
	before=$(topo_reason_count be1 decap_invalid)
	r=$(probe "$n" --tunnel-to "$BE" "$@") || die "$what: probe failed: $r"
	synack "$r" && die "$what: got a SYN-ACK ($r)"
	after=$(topo_reason_count be1 decap_invalid)
	[ "$after" -gt "$before" ] ||
		die "$what: be1 decap_invalid $before -> $after (did the tunnel arrive?)"
	ok "$what: no SYN-ACK, be1 decap_invalid $before -> $after"
}

expect_refused "IPIP from the unauthorized client (outer and inner $COUT)" \
	cout --outer-src "$COUT" --inner-src "$COUT"
expect_refused "IPIP with a forged LB source (outer $LB, inner $COUT)" \
	cout --outer-src "$LB" --inner-src "$COUT"
expect_refused "IPIP from a non-LB host with an authorized inner source ($CIN)" \
	cin --outer-src "$CIN" --inner-src "$CIN"

# the legitimate path is intact
out=$(topo_curl cin "$VIP4" -m 5 2>&1) || die "authorized client after the probes: $out"
ok "authorized client still answered by $out"
