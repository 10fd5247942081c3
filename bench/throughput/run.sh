#!/usr/bin/env bash
# Live-traffic throughput through an LB node: our XDP program against
# nftables and iptables+ipset configured equivalently, same topology, same
# run. Called by bench/throughput.sh; prints one JSON document on stdout.
#
#   aeth-tp-g  [gen0] ---veth--- [l0]  aeth-tp-l  [l1] ---veth--- [b0] aeth-tp-b
#   generator (CPU 0)           LB node (NAPI thread on CPU 1)     sink (CPU 0)
#
# The generator sends 64-byte frames (XDP live frames); the LB node's veth
# runs threaded NAPI pinned to CPU 1, so everything the node does with a
# packet (XDP, or GRO + netfilter + forwarding) runs in that one thread. We
# count, at the node, the packets it dropped or forwarded per second.
#
# Fresh state: every implementation's turn in every round gets a new
# topology (all three namespaces and their veths made again), so nothing a
# turn leaves behind is there for the next: conntrack entries, nft sets,
# hashlimit tables, ipsets, iptables tables that stay registered once made,
# neighbour and route state. Ours gets new maps too (--detach unpins them,
# the next agent creates them). Each turn records the state it started and
# ended with (conntrack entries, nft set elements, hashlimit entries, our
# connection table and limiter entries and map ids); the report checks
# that every turn started empty.
#
# Environment: BUILD (build directory, required), ROUNDS (3), DUR (4 s
# measured per case), WARM (1 s), IMPLS ("floor ours nft ipt": which to
# run), NAPI_PRIO (50: SCHED_FIFO priority of the node's NAPI threads),
# DEBUG (set: print our counters after our cases), SETTLE (1 s: pause
# after the topology is made, for the old namespaces' teardown to finish),
# CASES ("guard ratelimit forward": which cases to run; the floor's
# always runs), PACED_PPS (unset: the generator floods; set: it offers
# that many frames a second, which every implementation keeps up with,
# and each case also records the CPU time the node's NAPI thread spent
# per packet).
#
# Why paced: flooded, the node's receive ring overflows and the frames it
# could not take go back to the generator's page pool, whose lock both
# CPUs then wait on (docs/bench-throughput.md): the rate measures that
# feedback as much as the node. At a rate all keep up with, the thread's
# CPU time per packet is the node's own cost, its capacity's inverse.
set -euo pipefail

BUILD=${BUILD:?}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-4}		# seconds measured per case
WARM=${WARM:-1}		# seconds of traffic before measuring

P=aeth-tp
NG=$P-g NL=$P-l NB=$P-b
G0=$P-g0 L0=$P-l0 L1=$P-l1 B0=$P-b0
PIN=/sys/fs/bpf/$P-lb
SINK_B=/sys/fs/bpf/$P-sink-b
SINK_L=/sys/fs/bpf/$P-sink-l
TMP=$(mktemp -d /tmp/$P.XXXXXX)
SOCK=$TMP/agent.sock
TPUT=$BUILD/bench/throughput/tput
AGENT=$BUILD/agent/aether-agent
CTL=$BUILD/agent/aetherctl
IPT=iptables-legacy	# the classic xtables path (iptables here is nft-based)

VIP_GUARD=203.0.113.10
VIP_RL=203.0.113.11
VIP_FWD=203.0.113.12
BACKENDS=(192.0.2.21 192.0.2.22 192.0.2.23 192.0.2.24)

pids=()

log() { echo "throughput: $*" >&2; }

# nsenter, not ip netns exec: that one remounts /sys and hides the bpffs
nsx() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }

cleanup() {
	local p
	set +e
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	if [ -e "$PIN" ]; then
		nsx "$NL" "$AGENT" --detach --pin-dir "$PIN" >/dev/null 2>&1
	fi
	for n in "$NG" "$NL" "$NB"; do
		ip netns del "$n" 2>/dev/null
	done
	rm -rf "$PIN" "$SINK_B" "$SINK_L" "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start a background process and remember it. Only real commands (never a
# shell function: $! would be a subshell that kill does not pass on).
bg_start() {
	"$@" &
	pids+=($!)
}

bg_stop() {
	local p=$1 keep=() q
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for q in "${pids[@]}"; do
		[ "$q" = "$p" ] || keep+=("$q")
	done
	pids=("${keep[@]}")
}

# The NAPI threads of a device: pin to a CPU and run them real-time, so a
# wakeup is served at once: the veth ring holds only 256 frames and a thread
# that wakes late drops a burst it had the CPU time for.
napi_pids() {
	local c name
	for c in /proc/[0-9]*/comm; do
		name=$(cat "$c" 2>/dev/null) || continue
		case $name in
		napi/"$1"-*) c=${c#/proc/}; echo "${c%/comm}" ;;
		esac
	done
}

napi_pin() {
	local dev=$1 cpu=$2 p n=0
	for p in $(napi_pids "$dev"); do
		taskset -pc "$cpu" "$p" >/dev/null
		chrt -f -p "${NAPI_PRIO:-50}" "$p"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || { log "no NAPI thread for $dev"; return 1; }
}

napi_threaded() {
	ip netns exec "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
}

topo_up() {
	ip netns add "$NG"
	ip netns add "$NL"
	ip netns add "$NB"
	ip link add "$G0" netns "$NG" type veth peer name "$L0" netns "$NL"
	ip link add "$L1" netns "$NL" type veth peer name "$B0" netns "$NB"
	ip -n "$NG" addr add 198.51.100.1/24 dev "$G0"
	ip -n "$NL" addr add 198.51.100.2/24 dev "$L0"
	ip -n "$NL" addr add 192.0.2.1/24 dev "$L1"
	ip -n "$NB" addr add 192.0.2.21/24 dev "$B0"
	for n in "$NG" "$NL" "$NB"; do
		ip -n "$n" link set lo up
	done
	ip -n "$NG" link set "$G0" up
	ip -n "$NL" link set "$L0" up
	ip -n "$NL" link set "$L1" up
	ip -n "$NB" link set "$B0" up
	ip netns exec "$NL" sysctl -qw net.ipv4.ip_forward=1
	# without XDP on l0, GRO gives the veth the NAPI that takes the
	# generator's redirected frames (FACTS.md)
	ip netns exec "$NL" ethtool -K "$L0" gro on
	B0_MAC=$(ip netns exec "$NB" cat "/sys/class/net/$B0/address")
	L0_MAC=$(ip netns exec "$NL" cat "/sys/class/net/$L0/address")
	for b in "${BACKENDS[@]}"; do
		ip -n "$NL" neigh replace "$b" lladdr "$B0_MAC" dev "$L1" nud permanent
	done
	napi_threaded "$NL" "$L0"
	# the backends' sink: counts what reaches them, on the generator's CPU
	bg_start nsenter --net=/run/netns/"$NB" "$TPUT" sink --dev "$B0" --pin "$SINK_B" >/dev/null
	SINK_B_PID=${pids[-1]}
	for _ in $(seq 50); do [ -e "$SINK_B" ] && break; sleep 0.1; done
	[ -e "$SINK_B" ] || { log "backend sink did not start"; return 1; }
	napi_threaded "$NB" "$B0"
	napi_pin "$B0" 0
	sleep "${SETTLE:-1}"
}

# Everything topo_up made, gone: the next turn starts from nothing.
topo_down() {
	local n
	bg_stop "$SINK_B_PID"
	for n in "$NG" "$NL" "$NB"; do
		ip netns del "$n"
	done
	rm -f "$SINK_B" "$SINK_L"
	[ ! -e "$PIN" ] || { log "$PIN left behind"; return 1; }
}

# The allow-list: every /32 of 192.0.2.0/24 and 198.51.100.0/24 and the
# /28s of 203.0.113.0/25; the attack comes from 203.0.113.128/25.
acl_prefixes() {
	local i
	for i in $(seq 0 255); do echo "192.0.2.$i/32"; done
	for i in $(seq 0 255); do echo "198.51.100.$i/32"; done
	for i in $(seq 0 16 112); do echo "203.0.113.$i/28"; done
}

# Ours on both of the node's interfaces: the program redirects only to an
# interface it is attached to (l1, towards the backends).
agent_doc() {
	local cidrs bes
	cidrs=$(acl_prefixes | sed 's/.*/"&"/' | paste -sd, -)
	bes=$(printf '{"address": "%s"},' "${BACKENDS[@]}")
	bes=${bes%,}
	cat <<-EOF
	{
	  "version": 1,
	  "node": { "interfaces": ["$L0", "$L1"], "xdp_mode": "native",
	            "addresses": { "ipv4": "192.0.2.1" }, "mtu": 1500 },
	  "maglev": { "seed": "5f3c0a1e9b7d2c44a1b2c3d4e5f60718",
	              "table_size": 16381 },
	  "conntrack": { "max_entries": 1048576 },
	  "services": [
	    { "name": "guard", "vip": "$VIP_GUARD", "port": 6443,
	      "protocol": "tcp",
	      "authorized_networks": { "enabled": true, "cidrs": [$cidrs] },
	      "backends": [{"address": "${BACKENDS[0]}"}] },
	    { "name": "ratelimit", "vip": "$VIP_RL", "port": 6443,
	      "protocol": "tcp",
	      "rate_limit": { "new_connections_per_second": 20, "burst": 40,
	                      "source_prefix_v4": 32 },
	      "backends": [$bes] },
	    { "name": "forward", "vip": "$VIP_FWD", "port": 6443,
	      "protocol": "tcp", "backends": [$bes] }
	  ]
	}
	EOF
}

nft_rules() {
	local elems bmap i
	elems=$(acl_prefixes | paste -sd, -)
	bmap=""
	for i in "${!BACKENDS[@]}"; do
		bmap+="$i : ${BACKENDS[$i]}, "
	done
	cat <<-EOF
	table netdev aeth_tp {
	  set allow4 { type ipv4_addr; flags interval; elements = { $elems } }
	  set rl4 { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 10s; }
	  counter guard { }
	  counter rl { }
	  chain ingress {
	    type filter hook ingress device "$L0" priority 0; policy accept;
	    ip daddr $VIP_GUARD tcp dport 6443 ip saddr != @allow4 counter name guard drop
	    ip daddr $VIP_RL tcp dport 6443 tcp flags & (syn | ack) == syn add @rl4 { ip saddr limit rate over 20/second burst 40 packets } counter name rl drop
	  }
	}
	table ip aeth_tp_nat {
	  counter forwarded { }
	  chain count_forwarded {
	    type filter hook forward priority 0; policy accept;
	    ip daddr { $(IFS=,; echo "${BACKENDS[*]}") } tcp dport 6443 counter name forwarded
	  }
	  chain pre {
	    type nat hook prerouting priority dstnat; policy accept;
	    ip daddr $VIP_FWD tcp dport 6443 dnat to jhash ip saddr . tcp sport mod ${#BACKENDS[@]} map { ${bmap%, } }
	  }
	}
	EOF
}

ipt_up() {
	{
		echo "create aethtp-allow hash:net family inet maxelem 65536"
		acl_prefixes | sed 's/^/add aethtp-allow /'
	} | ip netns exec "$NL" ipset restore
	ip netns exec "$NL" $IPT -t raw -A PREROUTING -d "$VIP_GUARD" -p tcp \
		--dport 6443 -m set ! --match-set aethtp-allow src -j DROP
	ip netns exec "$NL" $IPT -t raw -A PREROUTING -d "$VIP_RL" -p tcp \
		--dport 6443 --syn -m hashlimit --hashlimit-above 20/sec \
		--hashlimit-burst 40 --hashlimit-mode srcip \
		--hashlimit-name aethtp -j DROP
}

# Counter readers: print "<monotonic ns> <packets>".
count_ours() { "$TPUT" count "$PIN/aeth_global:$1"; }
count_sink() { "$TPUT" count "$1"; }
count_nft() {
	local t n
	t=$(date +%s%N)
	n=$(ip netns exec "$NL" nft list counter "$2" "$3" "$1" |
		sed -n 's/.*packets \([0-9]*\).*/\1/p')
	# wall clock here, monotonic in tput: each is only differenced
	echo "$t $n"
}
count_ipt() {
	local t n
	t=$(date +%s%N)
	n=$(ip netns exec "$NL" $IPT -t raw -nvxL PREROUTING |
		awk -v d="$1" '$3 == "DROP" && $9 == d { s += $1 } END { print s + 0 }')
	echo "$t $n"
}

results=()

# state WHEN: one record of the LB node's state for this turn (WHEN: start,
# after the rules or the agent are in place and before any traffic; end,
# after the last case). null where the implementation has no such state.
state() {
	local when=$1 ct rl4=null hl=null oct=null orl=null ids=null e ict irl
	ct=$(nsx "$NL" cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null) ||
		ct=null
	case $IMPL in
	nftables)
		rl4=$(nsx "$NL" nft -j list set netdev aeth_tp rl4 | python3 -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "set" in o:
        print(len(o["set"].get("elem", [])))')
		;;
	iptables)
		hl=$(nsx "$NL" cat /proc/net/ipt_hashlimit/aethtp | wc -l)
		;;
	ours)
		# "<map id> <entries>" of the connection table and the limiter
		e=$("$TPUT" entries "$PIN/aeth_ct")
		read -r ict oct <<<"$e"
		e=$("$TPUT" entries "$PIN/aeth_rl_src")
		read -r irl orl <<<"$e"
		ids="{\"ct\": $ict, \"rl_src\": $irl}"
		;;
	esac
	results+=("{\"state\": \"$when\", \"impl\": \"$IMPL\", \"round\": $ROUND, \"conntrack\": $ct, \"nft_rl4\": $rl4, \"hashlimit\": $hl, \"ours_ct\": $oct, \"ours_rl_src\": $orl, \"ours_map_ids\": $ids}")
	log "${results[-1]}"
}

# The CPU time (ns) the node's NAPI threads of l0 have run, all told.
napi_ns() {
	local p t=0 r
	for p in $(napi_pids "$L0"); do
		read -r r _ <"/proc/$p/schedstat"
		t=$((t + r))
	done
	echo "$t"
}

# Whether case CASE is to run (CASES; the floor's always).
want_case() {
	case " ${CASES:-guard ratelimit forward} xdp_drop " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

# measure CASE IMPL COUNTER... -- GEN_ARGS...
measure() {
	local case=$1 impl=$2 counter=() gen=() gpid c0 c1 n0 n1 out pace=()
	want_case "$case" || return 0
	shift 2
	while [ "$1" != "--" ]; do counter+=("$1"); shift; done
	shift
	gen=("$@")
	napi_pin "$L0" 1
	# paced: batches of 64, which the node's 256-frame ring always takes
	if [ -n "${PACED_PPS:-}" ]; then
		pace=(--pps "$PACED_PPS" --batch 64)
	else
		pace=(--batch 256)
	fi
	nsenter --net=/run/netns/"$NG" nice -n -20 taskset -c 0 "$TPUT" gen --dev "$G0" \
		--dst-mac "$L0_MAC" --seconds $((WARM + DUR + 1)) \
		"${pace[@]}" "${gen[@]}" >"$TMP/gen.json" &
	gpid=$!
	pids+=("$gpid")
	sleep "$WARM"
	c0=$("${counter[@]}")
	n0=$(napi_ns)
	sleep "$DUR"
	c1=$("${counter[@]}")
	n1=$(napi_ns)
	wait "$gpid" || { log "generator failed"; return 1; }
	bg_stop "$gpid"
	out=$(python3 - "$case" "$impl" "$c0" "$c1" "$TMP/gen.json" "$ROUND" \
		"$n0" "$n1" "${PACED_PPS:-0}" <<-'EOF'
	import json, sys
	case, impl, c0, c1, genf, rnd, n0, n1, paced = sys.argv[1:]
	t0, p0 = map(int, c0.split()); t1, p1 = map(int, c1.split())
	secs = (t1 - t0) / 1e9
	gen = json.load(open(genf))
	pkts = p1 - p0
	load = float(open("/proc/loadavg").read().split()[0])
	rec = {"case": case, "impl": impl, "round": int(rnd),
	       "pps": round(pkts / secs),
	       "offered_pps": round(gen["pps"]), "loadavg_1min": load}
	if int(paced):
	    # the node's NAPI thread: CPU time per packet it handled, and
	    # the share of its CPU that took
	    rec["paced_pps"] = int(paced)
	    rec["napi_ns_per_packet"] = (round((int(n1) - int(n0)) / pkts, 1)
	                                 if pkts else None)
	    rec["napi_cpu_share"] = round((int(n1) - int(n0)) / (t1 - t0), 3)
	print(json.dumps(rec))
	EOF
	)
	log "$out"
	results+=("$out")
}

# The three kinds of traffic.
GEN_GUARD=(--dst "$VIP_GUARD" --dport 6443 --syn --src 203.0.113.128 --sources 64 --ports 1000)
GEN_RL=(--dst "$VIP_RL" --dport 6443 --syn --src 198.51.100.128 --sources 16 --ports 60000)
FWD_FLOWS=1024		# 64 sources x 16 ports
GEN_FWD=(--dst "$VIP_FWD" --dport 6443 --src 198.51.100.128 --sources 64 --ports 16)

# Ours: one SYN for every flow of the forwarding case first, as each
# connection starts. A TCP packet that is not a SYN and has no entry is
# forwarded by Maglev but not recorded, so ACKs alone would never make the
# flows established in our table (conntrack takes them up from the first
# ACK). A pass of FWD_FLOWS SYNs covers every flow once; frames the veth
# ring drops are sent again by the next pass, until every flow is recorded.
prime_ours() {
	local e id n0 n1 pass
	e=$("$TPUT" entries "$PIN/aeth_ct")
	read -r id n0 <<<"$e"
	for pass in 1 2 3 4 5; do
		nsx "$NG" "$TPUT" gen --dev "$G0" --dst-mac "$L0_MAC" \
			--count "$FWD_FLOWS" --batch 16 "${GEN_FWD[@]}" --syn >/dev/null
		sleep 0.2
		e=$("$TPUT" entries "$PIN/aeth_ct")
		read -r id n1 <<<"$e"
		[ $((n1 - n0)) -lt "$FWD_FLOWS" ] || return 0
	done
	log "ours: $((n1 - n0)) of $FWD_FLOWS flows recorded after $pass passes"
	return 1
}

run_floor() {
	local sp
	bg_start nsenter --net=/run/netns/"$NL" "$TPUT" sink --dev "$L0" --pin "$SINK_L" >/dev/null
	sp=${pids[-1]}
	for _ in $(seq 50); do [ -e "$SINK_L" ] && break; sleep 0.1; done
	sleep 0.3
	state start
	measure xdp_drop floor count_sink "$SINK_L" -- "${GEN_GUARD[@]}"
	state end
	bg_stop "$sp"
}

run_ours() {
	local ap g
	[ ! -e "$PIN" ] || { log "$PIN exists before the agent starts"; return 1; }
	agent_doc >"$TMP/agent.json"
	bg_start nsenter --net=/run/netns/"$NL" "$AGENT" --config "$TMP/agent.json" --pin-dir "$PIN" \
		--socket "$SOCK" --metrics-addr none --log-level warn \
		2>>"$TMP/agent.log"
	ap=${pids[-1]}
	for _ in $(seq 100); do
		g=$("$CTL" --pin-dir "$PIN" -j status 2>/dev/null |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])' \
			2>/dev/null) || g=0
		[ "${g:-0}" -ge 1 ] && [ -S "$SOCK" ] && break
		sleep 0.1
	done
	[ "${g:-0}" -ge 1 ] || { log "agent not ready"; cat "$TMP/agent.log" >&2; return 1; }
	sleep 0.3
	state start
	measure guard ours count_ours reason:not_authorized -- "${GEN_GUARD[@]}"
	measure ratelimit ours count_ours reason:rate_limited -- "${GEN_RL[@]}"
	! want_case forward || prime_ours
	measure forward ours count_ours event:redirect -- "${GEN_FWD[@]}"
	state end
	[ -z "${DEBUG:-}" ] || "$CTL" --pin-dir "$PIN" stats >&2
	bg_stop "$ap"
	nsx "$NL" "$AGENT" --detach --pin-dir "$PIN" --log-level warn ||
		{ log "detaching the agent failed"; return 1; }
}

run_nft() {
	nft_rules >"$TMP/rules.nft"
	ip netns exec "$NL" nft -f "$TMP/rules.nft"
	sleep 0.3
	state start
	measure guard nftables count_nft guard netdev aeth_tp -- "${GEN_GUARD[@]}"
	measure ratelimit nftables count_nft rl netdev aeth_tp -- "${GEN_RL[@]}"
	measure forward nftables count_nft forwarded ip aeth_tp_nat -- "${GEN_FWD[@]}"
	state end
}

run_ipt() {
	ipt_up
	sleep 0.3
	state start
	measure guard iptables count_ipt "$VIP_GUARD" -- "${GEN_GUARD[@]}"
	measure ratelimit iptables count_ipt "$VIP_RL" -- "${GEN_RL[@]}"
	state end
}

for t in "$TPUT" "$AGENT" "$CTL"; do
	[ -x "$t" ] || { log "missing $t (build first)"; exit 1; }
done
command -v $IPT >/dev/null || { log "missing $IPT"; exit 1; }
declare -A IMPL_NAME=([floor]=floor [ours]=ours [nft]=nftables [ipt]=iptables)
for ROUND in $(seq "$ROUNDS"); do
	log "round $ROUND of $ROUNDS"
	for impl in ${IMPLS:-floor ours nft ipt}; do
		IMPL=${IMPL_NAME[$impl]}
		topo_up
		"run_$impl"
		topo_down
	done
done
printf '%s\n' "${results[@]}" | python3 -c '
import json, sys
print(json.dumps([json.loads(l) for l in sys.stdin], indent=1))'
