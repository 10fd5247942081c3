#!/usr/bin/env bash
# Health checks and draining end to end: a backend whose server stops leaves
# the tables of both LB nodes and new connections go to the others, and it
# comes back when its server does; a draining backend keeps its established
# stream while new connections avoid it.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin health
itest_template "$ITEST_TMP/base.json" "
for s in doc['services']:
    s.pop('rate_limit', None)"
itest_up "$ITEST_TMP/base.json"

# new SPORTS: backends answering new flows from those source ports
new_flows() {
	topo_client cin --vip "$VIP4" flows --sports "$1" | python3 -c 'import json,sys
f = json.load(sys.stdin)["flows"]
print(" ".join("%s=%d" % (b, sum(1 for v in f.values() if v == b))
               for b in sorted(set(map(str, f.values())))))'
}

all=$(new_flows 43000-43059)
[[ $all == *be1=* && $all == *be2=* && $all == *be3=* && $all != *None* ]] ||
	die "60 new flows reach all three backends ($all)"
ok "60 new flows before: $all"

topo_server_stop be2
ok "be2's server stopped"
for n in $TOPO_LBS; do
	wait_backend_health "$n" "${TOPO_V4[be2]}" false 10 ||
		die "$n marks be2 unhealthy"
done
ok "both LB nodes took be2 out (health check)"
# the removal reaches the tables: no slot left for be2
topo_ctl lb1 -j maglev show kube-apiserver | python3 -c 'import json,sys
d = json.load(sys.stdin)
sys.exit(1 if any(b["address"] == sys.argv[1] and b["slots"] for b in d["backends"]) else 0)' \
	"${TOPO_V4[be2]}" || die "be2 has no Maglev slots while unhealthy"
r=$(new_flows 44000-44059)
[[ $r != *be2* && $r != *None* ]] || die "60 new flows avoid be2 and all succeed ($r)"
ok "60 new flows while be2 is down: $r"

topo_server_start be2 || die "be2's server restarted"
for n in $TOPO_LBS; do
	wait_backend_health "$n" "${TOPO_V4[be2]}" true 10 ||
		die "$n takes be2 back"
done
r=$(new_flows 45000-45059)
[[ $r == *be2=* && $r != *None* ]] || die "new flows reach be2 again ($r)"
ok "be2 back after its server restarted: $r"

# draining: the stream's backend goes draining, the stream goes on
topo_route_via lb1
topo_client cin --vip "$VIP4" stream --seconds 12 \
	--announce "$ITEST_TMP/backend" >"$ITEST_TMP/stream.json" &
spid=$!
X=$(itest_stream_backend "$ITEST_TMP/backend") || die "stream started"
itest_template "$ITEST_TMP/drain.json" "
be('kube-apiserver', '${TOPO_V4[$X]}')['state'] = 'draining'" "$ITEST_TMP/base.json"
itest_apply_template "$ITEST_TMP/drain.json"
st=$(topo_ctl lb1 -j backend list | python3 -c 'import json,sys
print([b["state"] for b in json.load(sys.stdin) if b["address"] == sys.argv[1]][0])' "${TOPO_V4[$X]}")
[ "$st" = draining ] || die "$X is draining on lb1 (state $st)"
ok "stream's backend $X set draining"
r=$(new_flows 46000-46059)
[[ $r != *"$X"* && $r != *None* ]] || die "new flows avoid draining $X ($r)"
ok "60 new flows while $X drains: $r"
wait "$spid"
rc=$?
res=$(cat "$ITEST_TMP/stream.json")
[ $rc -eq 0 ] && [ "$(json_get "$res" backend)" = "$X" ] ||
	die "established stream kept on draining $X: $res"
ok "established stream kept its draining backend: $res"
