# Sourced by topo.sh: the router's BGP side. The router runs its own BIRD,
# peers with every LB node over both families (BFD on), and installs what
# they announce as ECMP routes (merge paths). It has no static VIP route; a
# test that pins the VIPs to one LB node puts that route in an override
# table consulted first (topo_route_via).
# shellcheck shell=bash

TOPO_RTR_ASN=64500
TOPO_LB_ASN=64512
TOPO_OVERRIDE_TABLE=100

topo_bgp_router_conf() {
	local n
	cat <<EOF
router id ${TOPO_V4[rtr]};
log "$TOPO_STATE/rtr/bird.log" { info, remote, warning, error, auth, fatal, bug };
protocol device { scan time 10; }
protocol bfd {
	interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
protocol kernel kernel4 {
	ipv4 { import none; export where source = RTS_BGP; };
	merge paths on;
}
protocol kernel kernel6 {
	ipv6 { import none; export where source = RTS_BGP; };
	merge paths on;
}
template bgp lbnode {
	local as $TOPO_RTR_ASN;
	bfd on;
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 16;
}
EOF
	for n in $TOPO_LBS; do
		cat <<EOF
protocol bgp ${n}_4 from lbnode {
	neighbor ${TOPO_V4[$n]} as $TOPO_LB_ASN;
	ipv4 { import all; export none; };
}
protocol bgp ${n}_6 from lbnode {
	neighbor ${TOPO_V6[$n]} as $TOPO_LB_ASN;
	ipv6 { import all; export none; };
}
EOF
	done
}

topo_bgp_router_start() {
	local d=$TOPO_STATE/rtr
	mkdir -p "$d"
	topo_bgp_router_conf >"$d/bird.conf" || return 1
	ip -n "$P-rtr" rule add pref 100 lookup "$TOPO_OVERRIDE_TABLE" &&
		ip -n "$P-rtr" -6 rule add pref 100 lookup "$TOPO_OVERRIDE_TABLE" ||
		return 1
	# bird detaches; topo_down ends it with every process of the namespace
	ip netns exec "$P-rtr" bird -c "$d/bird.conf" -s "$d/bird.ctl" \
		-P "$d/bird.pid"
}

topo_birdc() { birdc -s "$TOPO_STATE/rtr/bird.ctl" "$@"; }

# topo_nexthops FAMILY: the router's next hops to the VIP of FAMILY (4 or
# 6) learnt by BGP, sorted, one per line (nothing when it has no route)
topo_nexthops() {
	local vip=$VIP4 fam=-4
	[ "$1" = 6 ] && vip=$VIP6 fam=-6
	ip -n "$P-rtr" "$fam" route show "$vip" proto bird 2>/dev/null |
		grep -oE 'via (inet6 )?[0-9a-f.:]+' | awk '{print $NF}' | sort
}

# topo_wait_nexthops FAMILY COUNT SECONDS: until the router has COUNT next
# hops for that family's VIP
topo_wait_nexthops() {
	local i c
	for ((i = 0; i < $3 * 20; i++)); do
		c=$(topo_nexthops "$1" | wc -l)
		[ "$c" -eq "$2" ] && return 0
		sleep 0.05
	done
	topo_log "router: $c next hops for the IPv$1 VIP (want $2)"
	return 1
}

# topo_silence NODE on|off: drop everything to and from NODE's fabric port
# (BGP and BFD included), as a dead link or a frozen node would
topo_silence() {
	local t="silence_$1"
	if [ "$2" = off ]; then
		ip netns exec "$P-fab" nft delete table bridge "$t"
		return
	fi
	ip netns exec "$P-fab" nft -f - <<NFT
table bridge $t {
	chain forward { type filter hook forward priority 0; policy accept;
		iifname "$1" drop; oifname "$1" drop; }
}
NFT
}

# topo_lb_of_sport PORT: the LB node that holds the connection from the
# authorized client's source PORT (the router's ECMP choice cannot be told in
# advance: it hashes the sender's own flow hash when the packet carries one)
topo_lb_of_sport() {
	local n
	for n in $TOPO_LBS; do
		if topo_ctl "$n" -j conntrack list 2>/dev/null |
			grep -q "\"src\": \"${TOPO_V4[cin]}\", \"sport\": $1,"; then
			echo "$n"
			return 0
		fi
	done
	return 1
}

# topo_bgp_wait_announced SECONDS: until the router has one next hop per LB
# node for each VIP of the template (nothing to wait for without "bgp")
topo_bgp_wait_announced() {
	local fam lbs
	lbs=$(wc -w <<<"$TOPO_LBS")
	for fam in $(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
vips = {s["vip"] for s in d.get("services", [])} if "bgp" in d else set()
# topo_nexthops watches the two VIPs of the topology
fams = {"4" if v == sys.argv[2] else "6" for v in vips & set(sys.argv[2:4])}
print(" ".join(sorted(fams)))' "$TOPO_STATE/template.json" "$VIP4" "$VIP6"); do
		topo_wait_nexthops "$fam" "$lbs" "$1" || return 1
	done
}
