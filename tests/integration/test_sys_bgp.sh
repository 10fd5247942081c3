#!/usr/bin/env bash
# The VIPs reach the router over BGP (SPEC.md section 7): both LB nodes
# announce both families and the router spreads over them; drain and
# undrain move the next hops within 1 s; a VIP whose backends all fail
# their health checks is withdrawn alone; an LB node whose link goes silent
# is dropped by BFD within 1 s while a long-lived TLS stream through it
# carries on byte for byte through the other node; kill -9 and restart of an
# agent withdraws nothing (BIRD keeps running); a dead BIRD is started again
# and counted; --detach withdraws before it detaches.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin bgp
itest_up

nh() { topo_nexthops "$1" | tr '\n' ' ' | sed 's/ $//'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_nh FAMILY "EXPECTED" MS: until the router's next hops are EXPECTED;
# prints how long it took
wait_nh() {
	local t0 i
	t0=$(now_ms)
	for ((i = 0; i < $3 / 20; i++)); do
		if [ "$(nh "$1")" = "$2" ]; then
			echo $(($(now_ms) - t0))
			return 0
		fi
		sleep 0.02
	done
	echo "never (still '$(nh "$1")')"
	return 1
}
# packets lb NODE forwarded for the IPv4 service
svc_packets() {
	topo_ctl "$1" -j stats | python3 -c 'import json,sys
print(next(s["packets"] for s in json.load(sys.stdin)["services"] if s["name"] == "kube-apiserver"))'
}
node() { local n=$1; shift; "$CTL" -j node "$@" --socket "$(topo_sock "$n")"; }

L1_4=${TOPO_V4[lb1]} L2_4=${TOPO_V4[lb2]}
L1_6=${TOPO_V6[lb1]} L2_6=${TOPO_V6[lb2]}
BOTH4="$L1_4 $L2_4" BOTH6="$L1_6 $L2_6"

# 1. both families from both nodes, one next hop per node
[ "$(nh 4)" = "$BOTH4" ] || die "IPv4 VIP next hops: '$(nh 4)'"
[ "$(nh 6)" = "$BOTH6" ] || die "IPv6 VIP next hops: '$(nh 6)'"
ok "router: $VIP4 via $(nh 4); $VIP6 via $(nh 6)"
# the peer states in the status are polled from BIRD every 500 ms
established() {
	node "$1" show | python3 -c 'import json,sys
d = json.load(sys.stdin)
sys.exit(0 if [p["state"] for p in d["bgp"]["peers"]] == ["established"] * 2 else 1)'
}
for n in $TOPO_LBS; do
	for i in $(seq 1 30); do established "$n" && break; sleep 0.1; done
	s=$(node "$n" show) || die "$n: node show"
	python3 -c 'import json,sys
d = json.loads(sys.argv[1])
assert d["drained"] is False, d
assert sorted(d["bgp"]["announced"]) == sorted(sys.argv[2:4]), d
assert [p["state"] for p in d["bgp"]["peers"]] == ["established"] * 2, d' \
		"$s" "$VIP4/32" "$VIP6/128" || die "$n status: $s"
	[ "$(itest_metric "$n" "aether_bgp_peer_up{peer=\"${TOPO_V4[rtr]}\"}")" = 1 ] &&
		[ "$(itest_metric "$n" "aether_bgp_announced{vip=\"$VIP6\"}")" = 1 ] ||
		die "$n metrics: peer up and VIP announced"
done
ok "each node reports both sessions established and both VIPs announced"
r=$(topo_client cin --vip "$VIP4" get) && r6=$(topo_client cin --vip "$VIP6" get) ||
	die "VIPs answer over the BGP routes: $r $r6"
ok "both VIPs answer through the announced routes"

# 2. drain and undrain
s=$(node lb1 drain) || die "drain lb1: $s"
t=$(wait_nh 4 "$L2_4" 1000) || die "lb1 drained: IPv4 next hop $t"
t6=$(wait_nh 6 "$L2_6" 1000) || die "lb1 drained: IPv6 next hop $t6"
ok "lb1 drained: withdrawn from the router in $t ms (IPv4), $t6 ms (IPv6)"
[ "$(json_get "$(topo_api lb1 GET /v1/status | head -1)" drained)" = True ] ||
	die "GET /v1/status says drained"
[ "$(itest_metric lb1 aether_node_drained)" = 1 ] || die "aether_node_drained 1"
for i in 1 2 3; do
	topo_client cin --vip "$VIP4" get >/dev/null || die "VIP answers while lb1 is drained"
done
ok "VIP answers through lb2 alone; status and metrics say drained"
s=$(node lb1 undrain) || die "undrain lb1: $s"
t=$(wait_nh 4 "$BOTH4" 1000) || die "lb1 undrained: IPv4 next hops $t"
t6=$(wait_nh 6 "$BOTH6" 1000) || die "lb1 undrained: IPv6 next hops $t6"
ok "lb1 undrained: announced again in $t ms (IPv4), $t6 ms (IPv6)"
out=$(topo_api lb1 PUT /v1/drain <(echo '{"drained": "yes"}'))
[ "$(tail -1 <<<"$out")" = 400 ] || die "a bad drain body is refused: $out"
[ "$(nh 4)" = "$BOTH4" ] || die "a refused drain changes nothing"
ok "a bad drain body is refused with 400 and changes nothing"

# a document with an invalid bgp member is refused with its place; a valid
# one without bgp stops lb1's speaker (withdrawn), and bgp back announces
python3 - "$(topo_conf lb1)" "$ITEST_TMP/badbgp.json" "$ITEST_TMP/nobgp.json" <<'EOF2'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["bgp"]["peers"][1]["asn"] = 0
json.dump(doc, open(sys.argv[2], "w"))
del doc["bgp"]
json.dump(doc, open(sys.argv[3], "w"))
EOF2
out=$(topo_api lb1 PUT /v1/config "$ITEST_TMP/badbgp.json")
[ "$(tail -1 <<<"$out")" = 400 ] && grep -q '"path":"bgp.peers\[1\].asn"' <<<"$out" ||
	die "invalid bgp member refused with its place: $out"
[ "$(nh 4)" = "$BOTH4" ] && [ "$(nh 6)" = "$BOTH6" ] || die "nothing withdrawn by a refused document"
ok "invalid bgp member refused (bgp.peers[1].asn), both nodes still announced"
g=$(topo_generation lb1)
out=$(topo_api lb1 PUT /v1/config "$ITEST_TMP/nobgp.json")
[ "$(tail -1 <<<"$out")" = 200 ] || die "document without bgp applied: $out"
t=$(wait_nh 4 "$L2_4" 3000) && wait_nh 6 "$L2_6" 3000 >/dev/null ||
	die "lb1 without bgp withdrawn: $t"
ok "lb1's document without bgp: its speaker stopped, withdrawn in $t ms"
cp "$(topo_conf lb1)" "$ITEST_TMP/lb1.json"
out=$(topo_api lb1 PUT /v1/config "$ITEST_TMP/lb1.json")
[ "$(tail -1 <<<"$out")" = 200 ] || die "document with bgp again: $out"
t=$(wait_nh 4 "$BOTH4" 10000) && wait_nh 6 "$BOTH6" 10000 >/dev/null ||
	die "lb1 announces again with bgp back: $t"
ok "bgp back in lb1's document: announced again in $t ms"

# 3. every backend of the IPv6 service fails its check: that VIP alone goes
itest_template "$ITEST_TMP/v6down.json" "
svc('kube-apiserver-v6')['health_check']['port'] = 8099"
itest_apply_template "$ITEST_TMP/v6down.json"
t6=$(wait_nh 6 "" 5000) || die "IPv6 VIP withdrawn when its backends fail: $t6"
[ "$(nh 4)" = "$BOTH4" ] || die "IPv4 VIP stays announced: '$(nh 4)'"
[ "$(itest_metric lb1 "aether_bgp_announced{vip=\"$VIP6\"}")" = 0 ] ||
	die "aether_bgp_announced 0 for the withdrawn VIP"
ok "IPv6 backends failing: IPv6 VIP withdrawn ($t6 ms after the apply), IPv4 VIP kept"
# a restarted agent's checks start from "up": it must not announce that VIP
# again while they have not failed yet
topo_exec rtr bash -c "for i in \$(seq 1 150); do ip -6 route show $VIP6 proto bird; sleep 0.02; done" \
	>"$ITEST_TMP/watch6" 2>&1 &
wpid=$!
topo_agent_kill lb1 KILL
topo_agent_start lb1
topo_wait_ready lb1 30 || die "lb1 agent restarted"
wait "$wpid"
! grep -q "$L1_6" "$ITEST_TMP/watch6" || die "lb1 announced the failed IPv6 VIP after its restart"
[ "$(nh 6)" = "" ] && [ "$(nh 4)" = "$BOTH4" ] || die "after lb1's restart: '$(nh 4)' '$(nh 6)'"
ok "lb1 agent restarted meanwhile: the failed IPv6 VIP stayed withdrawn"
itest_apply_template "$TOPO_LIB/default-config.json"
t6=$(wait_nh 6 "$BOTH6" 8000) || die "IPv6 VIP back once its backends pass: $t6"
ok "IPv6 backends pass again: announced by both nodes ($t6 ms)"

# 4. a long-lived stream; the link of the LB node it goes through goes silent
sport=41777
topo_client cin --vip "$VIP4" --sport "$sport" stream --seconds 60 --stall 5 \
	--announce "$ITEST_TMP/backend" --until "$ITEST_TMP/stop" \
	>"$ITEST_TMP/stream.json" &
spid=$!
X=$(itest_stream_backend "$ITEST_TMP/backend") || die "stream started"
S=$(topo_lb_of_sport "$sport") || die "an LB node holds the stream from port $sport"
O=lb1
[ "$S" = lb1 ] && O=lb2
ok "stream from port $sport runs through $S to $X"
sleep 1
# silence its port on the fabric: nothing in or out, BGP and BFD included
p0=$(svc_packets "$O")
topo_silence "$S" on || die "nftables on the fabric"
t=$(wait_nh 4 "${TOPO_V4[$O]}" 1500) || die "silenced $S removed by BFD: $t"
t6=$(wait_nh 6 "${TOPO_V6[$O]}" 1500) || die "silenced $S removed (IPv6): $t6"
[ "$t" -le 1000 ] || die "BFD removed $S in $t ms (> 1000)"
ok "$S silenced: the router dropped it in $t ms (IPv4), $t6 ms (IPv6)"
sleep 3
kill -0 "$spid" 2>/dev/null || die "stream ended early: $(cat "$ITEST_TMP/stream.json")"
p1=$(svc_packets "$O")
[ $((p1 - p0)) -gt 100 ] || die "the stream moved to $O ($O forwarded $((p1 - p0)) packets)"
ok "the stream goes on through $O ($((p1 - p0)) packets forwarded there in 3 s)"
topo_silence "$S" off
t=$(wait_nh 4 "$BOTH4" 15000) || die "$S back after its link returns: $t"
wait_nh 6 "$BOTH6" 15000 >/dev/null || die "$S back (IPv6)"
ok "$S's link back: announced again after $t ms"

# 5. kill -9 of lb1's agent and a restart: the router sees nothing
topo_exec rtr bash -c "while :; do ip -4 route show $VIP4 proto bird | grep -c nexthop; sleep 0.02; done" \
	>"$ITEST_TMP/watch" 2>/dev/null &
wpid=$!
sleep 0.3
bpid=$(cat "$TOPO_STATE/lb1/bird.pid")
topo_agent_kill lb1 KILL
sleep 1
topo_agent_start lb1
topo_wait_ready lb1 30 || die "lb1 agent restarted"
sleep 1.5
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
samples=$(wc -l <"$ITEST_TMP/watch")
bad=$(grep -cvx 2 "$ITEST_TMP/watch")
[ "$samples" -gt 20 ] && [ "$bad" -eq 0 ] ||
	die "router kept both next hops through the agent restart ($bad of $samples samples differ)"
[ "$(cat "$TOPO_STATE/lb1/bird.pid")" = "$bpid" ] || die "bird kept running"
grep -q "adopting the running bird" "$TOPO_STATE/lb1/agent.log" ||
	die "the new agent adopted bird"
ok "agent kill -9 and restart: both next hops in all $samples samples, bird $bpid adopted"

touch "$ITEST_TMP/stop"
wait "$spid"
rc=$?
res=$(cat "$ITEST_TMP/stream.json")
[ $rc -eq 0 ] || die "stream: $res"
[ "$(json_get "$res" backend)" = "$X" ] || die "stream kept its backend: $res"
sent=$(json_get "$res" sent)
[ "$sent" -eq "$(json_get "$res" received)" ] && [ "$sent" -gt 100000 ] ||
	die "stream bytes: $res"
ok "stream survived $S's silence and lb1's agent restart: $sent bytes, identical, backend $X"

# 6. BIRD dies: withdrawn, started again with backoff, counted
kill -9 "$(cat "$TOPO_STATE/lb2/bird.pid")"
wait_nh 4 "$L1_4" 2000 >/dev/null || die "dead bird on lb2 withdrawn"
t=$(wait_nh 4 "$BOTH4" 15000) || die "lb2's bird started again: $t"
[ "$(itest_metric lb2 aether_bgp_speaker_restarts_total)" = 1 ] ||
	die "aether_bgp_speaker_restarts_total 1"
grep -q "bird (pid .*) is gone" "$TOPO_STATE/lb2/agent.log" || die "death logged"
ok "lb2's bird killed: withdrawn, restarted and re-announced in $t ms, logged and counted"

# 7. --detach withdraws first
topo_agent_kill lb2 TERM
[ "$(nh 4)" = "$BOTH4" ] || die "an agent stopped by SIGTERM keeps announcing"
nsenter --net="/run/netns/$P-lb2" "$AGENT" --detach --pin-dir "$(topo_pin_dir lb2)" \
	--socket "$(topo_sock lb2)" >"$ITEST_TMP/detach.log" 2>&1 || die "--detach"
[ "$(nh 4)" = "$L1_4" ] && [ "$(nh 6)" = "$L1_6" ] ||
	die "after --detach the router has lb1 only: '$(nh 4)' '$(nh 6)'"
grep -q withdrawing "$ITEST_TMP/detach.log" || die "--detach said it withdrew"
ok "SIGTERM keeps the announcements; --detach withdrew lb2 before detaching"
