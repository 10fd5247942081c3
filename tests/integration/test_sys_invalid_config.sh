#!/usr/bin/env bash
# An invalid document, written to the watched file or PUT on the API, is
# rejected as a whole with the place of the error, counted, and changes
# nothing: traffic, including an open stream, goes on.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin invalid
itest_up
topo_route_via lb1

topo_client cin --vip "$VIP4" stream --seconds 10 >"$ITEST_TMP/stream.json" &
spid=$!
sleep 1

rejected() {
	topo_http lb1 /metrics | sed -n 's/^aether_config_apply_total{result="rejected"} \([0-9]*\).*/\1/p'
}
g0=$(topo_generation lb1)
r0=$(rejected)
[ -n "$g0" ] && [ -n "$r0" ] || die "lb1 reports generation ($g0) and rejections ($r0)"
conf0=$(topo_api lb1 GET /v1/config | head -n -1 | md5sum)

# 1. the file: a backend address that is not one
cp "$(topo_conf lb1)" "$ITEST_TMP/good.json"
python3 - "$(topo_conf lb1)" <<'EOF2'
import json, os, sys
doc = json.load(open(sys.argv[1]))
doc["services"][0]["backends"][1]["address"] = "not-an-ip"
tmp = sys.argv[1] + ".tmp"
json.dump(doc, open(tmp, "w"), indent=2)
os.rename(tmp, sys.argv[1])
EOF2
for i in $(seq 1 50); do
	[ "$(rejected)" -gt "$r0" ] && break
	sleep 0.1
done
r1=$(rejected)
[ "$r1" -gt "$r0" ] || die "invalid file counted as rejected ($r0 -> $r1)"
ok "invalid file rejected and counted ($r0 -> $r1)"
grep -q 'services\[0\]\.backends\[1\]\.address' "$TOPO_STATE/lb1/agent.log" ||
	die "the log names services[0].backends[1].address"
ok "the log names services[0].backends[1].address"
[ "$(topo_generation lb1)" = "$g0" ] || die "generation unchanged after rejection"
ok "generation unchanged ($g0)"
r=$(topo_client cin --vip "$VIP4" get) || die "new connection after invalid file: $r"
ok "new connections still answered ($(json_get "$r" backend))"
mv -f "$ITEST_TMP/good.json" "$(topo_conf lb1)"
sleep 1
# restoring the file may count as an apply of the same document
g0=$(topo_generation lb1)

# 2. the API: a semantic error, then a syntax error
python3 - "$ITEST_TMP/bad.json" "$(topo_conf lb1)" <<'EOF2'
import json, sys
doc = json.load(open(sys.argv[2]))
doc["services"][0]["rate_limit"]["burst"] = 0
doc["services"][0]["unknown_field"] = 1
json.dump(doc, open(sys.argv[1], "w"))
EOF2
out=$(topo_api lb1 PUT /v1/config "$ITEST_TMP/bad.json")
code=$(tail -n 1 <<<"$out")
body=$(head -n -1 <<<"$out")
[ "$code" = 400 ] || die "PUT of an invalid document answers 400 (got $code: $body)"
python3 -c 'import json,sys
d = json.loads(sys.argv[1])
sys.exit(0 if d.get("error") and d.get("path", "").startswith("services[0].") else 1)' "$body" ||
	die "the 400 names the place: $body"
ok "API rejects an invalid document: $body"
printf '{"version": 1, "node": {' >"$ITEST_TMP/syntax.json"
out=$(topo_api lb1 PUT /v1/config "$ITEST_TMP/syntax.json")
code=$(tail -n 1 <<<"$out")
[ "$code" = 400 ] || die "PUT of broken JSON answers 400 (got $code)"
ok "API rejects broken JSON: $(head -n -1 <<<"$out")"
r2=$(rejected)
[ "$r2" -ge $((r1 + 2)) ] || die "API rejections counted ($r1 -> $r2)"
ok "API rejections counted ($r1 -> $r2)"
[ "$(topo_generation lb1)" = "$g0" ] || die "generation unchanged after API rejections"
[ "$(topo_api lb1 GET /v1/config | head -n -1 | md5sum)" = "$conf0" ] ||
	die "GET /v1/config still returns the applied document"
ok "generation and applied document unchanged"

r=$(topo_client cin --vip "$VIP4" get) || die "new connection after API rejections: $r"
ok "new connections still answered ($(json_get "$r" backend))"
wait "$spid" || die "stream across the rejections: $(cat "$ITEST_TMP/stream.json")"
ok "open stream intact: $(cat "$ITEST_TMP/stream.json")"

# a valid PUT is applied
out=$(topo_api lb1 PUT /v1/config "$(topo_conf lb1)")
[ "$(tail -n 1 <<<"$out")" = 200 ] || die "valid PUT accepted: $out"
ok "a valid document over the API is accepted: $(head -n -1 <<<"$out")"
