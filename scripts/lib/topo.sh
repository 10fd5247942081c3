# Shared by scripts/topology.sh, scripts/demo.sh and tests/integration: the
# cluster-in-namespaces (addresses, bring-up, teardown) and helpers to drive
# its agents, servers and clients. Source it, then call topo_init PREFIX.
#
# Layout (every address from the documentation ranges):
#
#   cin  198.51.100.10  2001:db8:100::10 --+            (authorized client)
#   cout 198.51.100.200 2001:db8:200::10 --+-- rtr      (unauthorized client)
#                                               |  ECMP to the VIPs via lb1, lb2 (BGP)
#   fab (bridge br0, 192.0.2.0/24, 2001:db8::/64) -- rtr .1, lb1 .11, lb2 .12,
#                                                    be1 .21, be2 .22, be3 .23
#
# The LB nodes encapsulate VIP traffic to a backend (XDP_TX back onto the
# fabric); the backends strip the tunnel in XDP (only from lb1 and lb2, their
# decap.sources, and only for authorized inner sources) and answer straight
# to the router (direct server return).
# shellcheck shell=bash

TOPO_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOPO_ROOT=$(cd "$TOPO_LIB/../.." && pwd)
# the router's BIRD learns the VIPs over BGP from the LB nodes' agents
. "$TOPO_LIB/topo_bgp.sh"

VIP4=203.0.113.10
VIP6=2001:db8:ffff::10
API_PORT=6443
HEALTH_PORT=8080
API_HOST=prod-1.acme.eu-central-1.aetherplatform.cloud

TOPO_LBS="lb1 lb2"
TOPO_BACKENDS="be1 be2 be3"
TOPO_FABRIC_NODES="rtr lb1 lb2 be1 be2 be3"
TOPO_NODES="fab rtr lb1 lb2 be1 be2 be3 cin cout"

declare -A TOPO_V4=([rtr]=192.0.2.1 [lb1]=192.0.2.11 [lb2]=192.0.2.12
	[be1]=192.0.2.21 [be2]=192.0.2.22 [be3]=192.0.2.23
	[cin]=198.51.100.10 [cout]=198.51.100.200)
declare -A TOPO_V6=([rtr]=2001:db8::1 [lb1]=2001:db8::11 [lb2]=2001:db8::12
	[be1]=2001:db8::21 [be2]=2001:db8::22 [be3]=2001:db8::23
	[cin]=2001:db8:100::10 [cout]=2001:db8:200::10)
# fabric MACs are fixed so neighbour entries can be permanent
declare -A TOPO_MAC=([rtr]=02:ae:00:00:00:01 [lb1]=02:ae:00:00:00:11
	[lb2]=02:ae:00:00:00:12 [be1]=02:ae:00:00:00:21
	[be2]=02:ae:00:00:00:22 [be3]=02:ae:00:00:00:23)
declare -A TOPO_METRICS=([lb1]=9465 [lb2]=9466 [be1]=9471 [be2]=9472
	[be3]=9473)
# the fabric carries IPIP: room for the outer header over 1500-byte packets
TOPO_FABRIC_MTU=1600

topo_log() { printf '[topology] %s\n' "$*" >&2; }

# topo_init PREFIX: names everything after PREFIX. AETH_BUILD picks the build
# directory holding the agent and the CLI (default build/).
topo_init() {
	P=${1:-aeth-sys}
	TOPO_STATE=/run/$P
	TOPO_BUILD=${AETH_BUILD:-$TOPO_ROOT/build}
	AGENT=$TOPO_BUILD/agent/aether-agent
	CTL=$TOPO_BUILD/agent/aetherctl
	CACERT=$TOPO_STATE/certs/ca.crt
}

topo_ns() { echo "$P-$1"; }
topo_exec() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }
topo_pin_dir() { echo "/sys/fs/bpf/$P-$1"; }
topo_sock() { echo "$TOPO_STATE/$1/agent.sock"; }
topo_conf() { echo "$TOPO_STATE/$1/etc/config.json"; }

# --- bring-up -------------------------------------------------------------

topo_sysctl() {
	local n=$1; shift
	local kv
	for kv in "$@"; do
		# nsenter: cheaper than ip netns exec, and /proc/sys/net follows
		# the network namespace
		nsenter --net="/run/netns/$P-$n" sysctl -qw "$kv" >/dev/null
	done
}

topo_make_ns() {
	local n=$1
	ip netns add "$P-$n"
	ip -n "$P-$n" link set lo up
	topo_sysctl "$n" net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0
}

# topo_link NODE IFNAME PEER_NODE PEER_IFNAME: a veth pair between two nodes
topo_link() {
	ip -n "$P-$1" link add "$2" type veth peer name "$4" netns "$P-$3"
}

topo_build_xdp_pass() {
	local obj=$TOPO_STATE/xdp_pass.bpf.o
	clang -O2 -g -target bpf -idirafter /usr/include/x86_64-linux-gnu \
		-c "$TOPO_LIB/xdp_pass.bpf.c" -o "$obj" || return 1
	echo "$obj"
}

topo_make_network() {
	local n obj
	for n in $TOPO_NODES; do
		topo_make_ns "$n" || return 1
	done

	# fabric: one bridge, one port per node
	ip -n "$P-fab" link add br0 type bridge
	ip -n "$P-fab" link set br0 mtu "$TOPO_FABRIC_MTU" up
	for n in $TOPO_FABRIC_NODES; do
		topo_link "$n" eth0 fab "$n" || return 1
		ip -n "$P-fab" link set "$n" mtu "$TOPO_FABRIC_MTU" master br0 up
		ip -n "$P-$n" link set eth0 address "${TOPO_MAC[$n]}" \
			mtu "$TOPO_FABRIC_MTU" up
		ip -n "$P-$n" addr add "${TOPO_V4[$n]}/24" dev eth0
		ip -n "$P-$n" addr add "${TOPO_V6[$n]}/64" dev eth0 nodad
	done
	# the LB nodes send their encapsulated packets back out with XDP_TX:
	# veth drops those unless the receiving peer runs XDP
	obj=$(topo_build_xdp_pass) || return 1
	for n in $TOPO_LBS; do
		ip -n "$P-fab" link set dev "$n" xdp obj "$obj" sec xdp || return 1
	done
	# permanent neighbours: bpf_fib_lookup on the LB nodes always finds them
	local a b
	for a in $TOPO_FABRIC_NODES; do
		for b in $TOPO_FABRIC_NODES; do
			[ "$a" = "$b" ] && continue
			ip -n "$P-$a" neigh replace "${TOPO_V4[$b]}" \
				lladdr "${TOPO_MAC[$b]}" dev eth0 nud permanent
			ip -n "$P-$a" -6 neigh replace "${TOPO_V6[$b]}" \
				lladdr "${TOPO_MAC[$b]}" dev eth0 nud permanent
		done
	done

	# clients: each behind its own router port
	topo_link cin eth0 rtr cin
	topo_link cout eth0 rtr cout
	ip -n "$P-rtr" link set cin up
	ip -n "$P-rtr" link set cout up
	ip -n "$P-rtr" addr add 198.51.100.1/25 dev cin
	ip -n "$P-rtr" addr add 2001:db8:100::1/64 dev cin nodad
	ip -n "$P-rtr" addr add 198.51.100.129/25 dev cout
	ip -n "$P-rtr" addr add 2001:db8:200::1/64 dev cout nodad
	ip -n "$P-cin" link set eth0 up
	ip -n "$P-cin" addr add "${TOPO_V4[cin]}/25" dev eth0
	ip -n "$P-cin" addr add "${TOPO_V6[cin]}/64" dev eth0 nodad
	ip -n "$P-cin" route add default via 198.51.100.1
	ip -n "$P-cin" -6 route add default via 2001:db8:100::1
	ip -n "$P-cout" link set eth0 up
	ip -n "$P-cout" addr add "${TOPO_V4[cout]}/25" dev eth0
	ip -n "$P-cout" addr add "${TOPO_V6[cout]}/64" dev eth0 nodad
	ip -n "$P-cout" route add default via 198.51.100.129
	ip -n "$P-cout" -6 route add default via 2001:db8:200::1
	# veth checksum offload leaves TCP/UDP checksums partial (to be filled
	# in by "hardware" that never comes): the LB nodes' XDP_TX would carry
	# them to the backends as they are. Real NICs deliver full checksums;
	# have the clients compute theirs.
	for n in cin cout; do
		topo_exec "$n" ethtool -K eth0 tx off >/dev/null || return 1
	done

	# router: forwards, hashes ECMP on the L4 5-tuple, learns the VIPs
	# from the LB nodes over BGP
	topo_sysctl rtr net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.fib_multipath_hash_policy=1 \
		net.ipv6.fib_multipath_hash_policy=1
	topo_bgp_router_start || return 1

	# LB nodes: what the stack fallback of the data path needs (packets it
	# encapsulated but passes up carry the node's own source address)
	for n in $TOPO_LBS; do
		topo_sysctl "$n" net.ipv4.ip_forward=1 \
			net.ipv6.conf.all.forwarding=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 \
			net.ipv4.conf.all.accept_local=1 \
			net.ipv4.conf.eth0.accept_local=1 \
			net.ipv4.conf.all.send_redirects=0 \
			net.ipv4.conf.eth0.send_redirects=0
		ip -n "$P-$n" route add default via "${TOPO_V4[rtr]}"
		ip -n "$P-$n" -6 route add default via "${TOPO_V6[rtr]}"
	done

	# backends: the VIPs on loopback, replies straight back via the router
	for n in $TOPO_BACKENDS; do
		ip -n "$P-$n" addr add "$VIP4/32" dev lo
		ip -n "$P-$n" addr add "$VIP6/128" dev lo nodad
		topo_sysctl "$n" net.ipv4.conf.all.rp_filter=0 \
			net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.lo.rp_filter=0
		ip -n "$P-$n" route add default via "${TOPO_V4[rtr]}"
		ip -n "$P-$n" -6 route add default via "${TOPO_V6[rtr]}"
	done
}

# topo_route_via ecmp|lb1|lb2: how the router reaches the VIPs. ecmp: as
# BGP says (every announcing LB node; without agents, --plain, a static
# route over both); an LB node: pinned to it by a route in the override
# table, which the router consults before BGP's.
topo_route_via() {
	local t=$TOPO_OVERRIDE_TABLE v4="" v6="" n
	case $1 in
	ecmp)
		ip -n "$P-rtr" route flush table "$t" &&
			ip -n "$P-rtr" -6 route flush table "$t" || return 1
		[ -f "$TOPO_STATE/plain" ] || return 0
		for n in $TOPO_LBS; do
			v4+=" nexthop via ${TOPO_V4[$n]} dev eth0"
			v6+=" nexthop via ${TOPO_V6[$n]} dev eth0"
		done
		# shellcheck disable=SC2086
		ip -n "$P-rtr" route replace "$VIP4/32" table "$t" $v4 &&
			ip -n "$P-rtr" -6 route replace "$VIP6/128" table "$t" $v6
		;;
	*)
		ip -n "$P-rtr" route replace "$VIP4/32" via "${TOPO_V4[$1]}" \
			dev eth0 table "$t" &&
			ip -n "$P-rtr" -6 route replace "$VIP6/128" \
				via "${TOPO_V6[$1]}" dev eth0 table "$t"
		;;
	esac
}

# Without agents: each LB node routes the VIPs to one backend, so the
# topology (DSR replies, certificates, servers) can be checked alone.
topo_plain_routes() {
	ip -n "$P-lb1" route replace "$VIP4/32" via "${TOPO_V4[be1]}"
	ip -n "$P-lb1" -6 route replace "$VIP6/128" via "${TOPO_V6[be1]}"
	ip -n "$P-lb2" route replace "$VIP4/32" via "${TOPO_V4[be2]}"
	ip -n "$P-lb2" -6 route replace "$VIP6/128" via "${TOPO_V6[be2]}"
}

topo_server_start() {
	local n=$1 d=$TOPO_STATE/$1
	mkdir -p "$d"
	# its own process group: python3 may be a wrapper script (pyenv) whose
	# child is the server
	setsid ip netns exec "$P-$n" python3 "$TOPO_LIB/backend_server.py" --name "$n" \
		--cert "$TOPO_STATE/certs/server.crt" \
		--key "$TOPO_STATE/certs/server.key" \
		--port "$API_PORT" --health-port "$HEALTH_PORT" \
		--tls "$VIP4" --tls "$VIP6" \
		--health "${TOPO_V4[$n]}" --health "${TOPO_V6[$n]}" \
		>>"$d/server.log" 2>&1 &
	echo $! >"$d/server.pid"
	topo_wait_port "$n" "${TOPO_V4[$n]}" "$HEALTH_PORT" 10
}

topo_server_stop() {
	local f=$TOPO_STATE/$1/server.pid pg i
	[ -f "$f" ] || return 0
	pg=$(cat "$f")
	kill -- "-$pg" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 -- "-$pg" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$f"
}

# topo_wait_port NODE ADDR PORT SECONDS: until something listens there
topo_wait_port() {
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		if topo_exec "$1" python3 -c 'import socket,sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.5)' \
			"$2" "$3" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	topo_log "$1: nothing listens on $2:$3"
	return 1
}

# topo_write_config NODE TEMPLATE: the node's document from the template,
# replaced atomically (rename) as a ConfigMap update would.
topo_write_config() {
	local n=$1 tpl=$2 role=lb dir lb decap=()
	dir=$(dirname "$(topo_conf "$n")")
	mkdir -p "$dir"
	case " $TOPO_BACKENDS " in *" $n "*) role=backend ;; esac
	# backends accept tunnels from the LB nodes only (decap.sources)
	for lb in $TOPO_LBS; do
		decap+=(--decap-source "${TOPO_V4[$lb]}/32"
			--decap-source "${TOPO_V6[$lb]}/128")
	done
	python3 "$TOPO_LIB/nodeconf.py" "$tpl" --role "$role" \
		--v4 "${TOPO_V4[$n]}" --v6 "${TOPO_V6[$n]}" "${decap[@]}" \
		>"$dir/.config.new" &&
		mv -f "$dir/.config.new" "$dir/config.json"
}

# topo_set_template TEMPLATE: every agent's document from one template
topo_set_template() {
	local n
	cp -f "$1" "$TOPO_STATE/template.json.new" &&
		mv -f "$TOPO_STATE/template.json.new" "$TOPO_STATE/template.json"
	for n in $TOPO_LBS $TOPO_BACKENDS; do
		topo_write_config "$n" "$TOPO_STATE/template.json" || return 1
	done
}

topo_agent_start() {
	local n=$1 d=$TOPO_STATE/$1
	mkdir -p "$d"
	# nsenter, not ip netns exec: that one remounts /sys, which hides the
	# bpffs under /sys/fs/bpf where the maps are pinned
	nsenter --net="/run/netns/$P-$n" "$AGENT" --config "$(topo_conf "$n")" \
		--pin-dir "$(topo_pin_dir "$n")" --socket "$(topo_sock "$n")" \
		--metrics-addr "127.0.0.1:${TOPO_METRICS[$n]}" \
		--log-level info >>"$d/agent.log" 2>&1 &
	echo $! >"$d/agent.pid"
}

topo_agent_pid() { cat "$TOPO_STATE/$1/agent.pid" 2>/dev/null; }

# topo_agent_kill NODE [SIGNAL]
topo_agent_kill() {
	local pid
	pid=$(topo_agent_pid "$1") || return 0
	kill "-${2:-TERM}" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$TOPO_STATE/$1/agent.pid"
	return 0
}

# topo_http NODE PATH: GET on the node agent's metrics/health listener
topo_http() {
	topo_exec "$1" curl -sS -m 3 "http://127.0.0.1:${TOPO_METRICS[$1]}$2"
}

# topo_api NODE METHOD PATH [FILE]: the agent's API over its unix socket
topo_api() {
	local args=(-sS -m 5 --unix-socket "$(topo_sock "$1")" -X "$2")
	[ $# -ge 4 ] && args+=(--data-binary "@$4" -H 'Content-Type: application/json')
	curl "${args[@]}" -w '\n%{http_code}\n' "http://agent$3"
}

topo_wait_ready() {
	local n=$1 secs=${2:-30} i
	for ((i = 0; i < secs * 5; i++)); do
		if topo_exec "$n" curl -sf -m 1 -o /dev/null \
			"http://127.0.0.1:${TOPO_METRICS[$n]}/readyz" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$(topo_agent_pid "$n")" 2>/dev/null; then
			topo_log "$n: aether-agent exited; its log:"
			tail -n 20 "$TOPO_STATE/$n/agent.log" >&2
			return 1
		fi
		sleep 0.2
	done
	topo_log "$n: aether-agent not ready after ${secs}s; its log:"
	tail -n 20 "$TOPO_STATE/$n/agent.log" >&2
	return 1
}

# topo_generation NODE: the applied config generation (from the API)
topo_generation() {
	curl -sS -m 3 --unix-socket "$(topo_sock "$1")" http://agent/v1/status |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])'
}

# topo_wait_generation NODE GREATER_THAN [SECONDS]
topo_wait_generation() {
	local i g
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		g=$(topo_generation "$1" 2>/dev/null)
		[ -n "$g" ] && [ "$g" -gt "$2" ] && return 0
		sleep 0.1
	done
	topo_log "$1: generation still ${g:-unknown} (want > $2)"
	return 1
}

# topo_ctl NODE ARGS...: aetherctl on that node's pinned maps
topo_ctl() { local n=$1; shift; "$CTL" --pin-dir "$(topo_pin_dir "$n")" "$@"; }

# topo_client NODE [CLIENT ARGS...] SUBCOMMAND ...: scripts/lib/client.py run
# in a client namespace against the v4 VIP (pass --vip for another)
topo_client() {
	local n=$1; shift
	topo_exec "$n" python3 "$TOPO_LIB/client.py" --cacert "$CACERT" \
		--sni "$API_HOST" "$@"
}

# topo_curl NODE VIP [CURL ARGS...]: curl of the API endpoint by name
topo_curl() {
	local n=$1 vip=$2 r
	shift 2
	r=$vip
	[[ $vip == *:* ]] && r="[$vip]"
	topo_exec "$n" curl -sS --cacert "$CACERT" \
		--resolve "$API_HOST:$API_PORT:$r" "$@" \
		"https://$API_HOST:$API_PORT/"
}

# topo_stat NODE GROUP NAME: one counter of aetherctl stats, summed (GROUP
# reasons or events)
topo_stat() {
	topo_ctl "$1" -j stats | python3 -c 'import json,sys
print(json.load(sys.stdin).get(sys.argv[1], {}).get(sys.argv[2], 0))' "$2" "$3"
}

# topo_reason_count NODE REASON: one drop reason
topo_reason_count() { topo_stat "$1" reasons "$2"; }

# topo_up [--plain] [--config TEMPLATE]
topo_up() {
	local plain=0 tpl=$TOPO_LIB/default-config.json n
	while [ $# -gt 0 ]; do
		case $1 in
		--plain) plain=1 ;;
		--config) tpl=$2; shift ;;
		*) topo_log "unknown option $1"; return 1 ;;
		esac
		shift
	done
	topo_down 2>/dev/null
	mkdir -p "$TOPO_STATE"
	if [ $plain -eq 0 ] && [ ! -x "$AGENT" ]; then
		topo_log "no agent at $AGENT (build first, or use --plain)"
		return 1
	fi
	if ! mountpoint -q /sys/fs/bpf; then
		mount -t bpf bpf /sys/fs/bpf || return 1
	fi
	topo_log "network namespaces $P-*"
	topo_make_network || { topo_log "network set-up failed"; return 1; }
	"$TOPO_LIB/mkcerts.sh" "$TOPO_STATE/certs" "$API_HOST" "$VIP4" "$VIP6" ||
		return 1
	topo_log "backend servers"
	for n in $TOPO_BACKENDS; do
		topo_server_start "$n" || return 1
	done
	if [ $plain -eq 1 ]; then
		touch "$TOPO_STATE/plain"	# no BGP: topo_route_via ecmp is static
		topo_plain_routes
		return 0
	fi
	topo_log "agents"
	topo_set_template "$tpl" || return 1
	for n in $TOPO_BACKENDS $TOPO_LBS; do
		topo_agent_start "$n"
	done
	for n in $TOPO_BACKENDS $TOPO_LBS; do
		topo_wait_ready "$n" 30 || return 1
	done
	# health checks need rise successes before backends count
	topo_wait_backends_up 15 || return 1
	# every LB node announces the VIPs
	topo_bgp_wait_announced 20
}

# topo_wait_backends_up SECONDS: until every LB node reports every backend up
topo_wait_backends_up() {
	local i n ok
	for ((i = 0; i < $1 * 5; i++)); do
		ok=1
		for n in $TOPO_LBS; do
			topo_ctl "$n" -j backend list 2>/dev/null | python3 -c 'import json,sys
b = json.load(sys.stdin)
sys.exit(0 if all(x.get("healthy", True) for x in b if x.get("state", "active") == "active") else 1)' ||
				ok=0
		done
		[ $ok -eq 1 ] && return 0
		sleep 0.2
	done
	topo_log "backends not all healthy after $1s"
	return 1
}

topo_ns_exists() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF "$1"
}

# Stop every process in our namespaces, delete them, unpin. Safe to run
# any number of times, also on a half-built topology.
topo_down() {
	local n ns pids
	for n in $TOPO_NODES; do
		ns=$P-$n
		topo_ns_exists "$ns" || continue
		pids=$(ip netns pids "$ns" 2>/dev/null)
		# shellcheck disable=SC2086
		[ -n "$pids" ] && kill $pids 2>/dev/null
	done
	sleep 0.3
	for n in $TOPO_NODES; do
		ns=$P-$n
		topo_ns_exists "$ns" || continue
		pids=$(ip netns pids "$ns" 2>/dev/null)
		# shellcheck disable=SC2086
		[ -n "$pids" ] && kill -9 $pids 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	for n in $TOPO_LBS $TOPO_BACKENDS; do
		rm -rf "/sys/fs/bpf/$P-$n"
	done
	[ -n "$TOPO_STATE" ] && rm -rf "$TOPO_STATE"
	return 0
}
