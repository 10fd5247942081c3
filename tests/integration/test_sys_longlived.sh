#!/usr/bin/env bash
# A long-lived connection keeps its backend and every byte through what
# happens around it: a change of its backend's Maglev table, the removal of
# another backend, a rate-limit flood from its own source, kill -9 and
# restart of its LB node's agent, and a config reload.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin long
itest_up
# every packet of the stream through lb1, the node whose agent gets killed
topo_route_via lb1 || die "route via lb1"

# the stream runs until every event is done (at most 150 s)
topo_client cin --vip "$VIP4" stream --seconds 150 --stall 5 \
	--announce "$ITEST_TMP/backend" --until "$ITEST_TMP/stop" \
	>"$ITEST_TMP/stream.json" &
spid=$!
# and one over IPv6 (IP6IP6 to the backend) through the same events
topo_client cin --vip "$VIP6" stream --seconds 150 --stall 5 \
	--until "$ITEST_TMP/stop" >"$ITEST_TMP/stream6.json" &
spid6=$!
X=$(itest_stream_backend "$ITEST_TMP/backend") || die "stream started"
ok "stream running on backend $X"
others=$(tr ' ' '\n' <<<"$TOPO_BACKENDS" | grep -vx "$X" | tr '\n' ' ')
Y=${others%% *}
XA=${TOPO_V4[$X]} YA=${TOPO_V4[$Y]}

slots() {
	topo_ctl lb1 -j maglev show kube-apiserver | python3 -c 'import json,sys
d = json.load(sys.stdin)
print(sum(b["slots"] for b in d["backends"] if b["address"] == sys.argv[1]))' "$1"
}

# 1. its backend's table changes: the others get four times its weight
s0=$(slots "$XA")
itest_template "$ITEST_TMP/t1.json" "
for b in svc('kube-apiserver')['backends']:
    b['weight'] = 1 if b['address'] == '$XA' else 4"
itest_apply_template "$ITEST_TMP/t1.json"
s1=$(slots "$XA")
[ -n "$s1" ] && [ "$s1" -lt "$s0" ] || die "weights change $X's slots ($s0 -> $s1)"
ok "table changed under the stream: $X slots $s0 -> $s1"
sleep 2

# 2. another backend is removed
itest_template "$ITEST_TMP/t2.json" "
s = svc('kube-apiserver')
s['backends'] = [b for b in s['backends'] if b['address'] != '$YA']
for b in s['backends']:
    b['weight'] = 1 if b['address'] == '$XA' else 4" 
itest_apply_template "$ITEST_TMP/t2.json"
topo_ctl lb1 -j maglev show kube-apiserver | grep -q "\"$YA\"" &&
	die "$Y still has slots after its removal"
ok "backend $Y removed"
sleep 2

# 3. a flood of new connections from the stream's own source
rl0=$(topo_reason_count lb1 rate_limited)
b=$(topo_client cin --vip "$VIP4" --timeout 0.9 burst --count 200)
rl1=$(topo_reason_count lb1 rate_limited)
[ "$(json_get "$b" refused)" -ge 100 ] && [ "$rl1" -gt "$rl0" ] ||
	die "flood from the stream's source rate limited ($b, rate_limited $rl0 -> $rl1)"
ok "flood from the stream's source: $b"
sleep 2

# 4. kill -9 of lb1's agent; the program stays and forwards; then a restart
topo_agent_kill lb1 KILL
ok "lb1 agent killed (-9)"
topo_exec lb1 ip link show dev eth0 | grep -q 'prog/xdp' ||
	die "XDP program still attached to lb1's eth0 with no agent"
ok "program still attached on lb1 with no agent"
sleep 3
r=$(topo_client cin --vip "$VIP4" get) || die "new connection while lb1 has no agent: $r"
ok "new connection while lb1 has no agent answered by $(json_get "$r" backend)"
topo_agent_start lb1
topo_wait_ready lb1 30 || die "lb1 agent restarted"
ok "lb1 agent restarted"
sleep 2

# 5. a config reload: file change everywhere, and SIGHUP on lb1
g=$(topo_generation lb1)
itest_apply_template "$TOPO_LIB/default-config.json"
kill -HUP "$(topo_agent_pid lb1)"
sleep 1
topo_generation lb1 >/dev/null || die "lb1 API after SIGHUP"
kill -0 "$(topo_agent_pid lb1)" || die "lb1 agent alive after SIGHUP"
ok "document reloaded (lb1 generation $g -> $(topo_generation lb1)), SIGHUP handled"

sleep 2
itest_stream_kept "$spid" "$ITEST_TMP/stream.json" "$X" || die "$ITEST_STREAM"
sent=$(json_get "$ITEST_STREAM" sent)
recv=$(json_get "$ITEST_STREAM" received)
ok "stream survived everything: $sent bytes sent, $recv received, identical"
wait "$spid6" || die "IPv6 stream: $(cat "$ITEST_TMP/stream6.json")"
res=$(cat "$ITEST_TMP/stream6.json")
sent=$(json_get "$res" sent)
[ "$sent" -eq "$(json_get "$res" received)" ] && [ "$sent" -gt 1000000 ] ||
	die "IPv6 stream bytes: $res"
ok "IPv6 stream survived too: $res"
