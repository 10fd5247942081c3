#!/usr/bin/env bash
# aetherctl on the maps of real agents in the namespace cluster: every object
# reads what the agent applied, explain names the backend that really
# answered a connection, and everything still reads after kill -9 of the
# agent. Namespaces and pins are prefixed aeth-ct and removed on any exit.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/topo.sh

topo_init aeth-ct
TMP=$(mktemp -d)
FAILED=0
CHECKS=0

finish() {
	local rc=$?
	[ $FAILED -ne 0 ] && rc=1
	if [ $rc -ne 0 ] && [ -f "$TOPO_STATE/lb1/agent.log" ]; then
		echo "--- lb1/agent.log (last lines)"
		tail -n 8 "$TOPO_STATE/lb1/agent.log"
	fi
	topo_down
	rm -rf "$TMP"
	if [ $rc -eq 0 ]; then
		echo "PASS aetherctl_agent ($CHECKS checks)"
	else
		echo "FAIL aetherctl_agent"
	fi
	exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

die() { echo "FAIL $*"; FAILED=1; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }
# py CODE [ARGS...]: python3 with the JSON document on stdin as d
py() {
	local code=$1; shift
	python3 -c "import json, sys
d = json.load(sys.stdin)
$code" "$@"
}

[ -x "$AGENT" ] && [ -x "$CTL" ] || die "build first ($AGENT, $CTL)"
topo_up || die "topology with agents came up"
ok "topology with agents up"

# service list: names and settings as configured
topo_ctl lb1 -j service list >"$TMP/svc.json" || die "service list"
py '
s = {x["name"]: x for x in d}
a = s["kube-apiserver"]
assert a["vip"] == "203.0.113.10" and a["port"] == 6443, a
assert a["protocol"] == "tcp" and a["table_size"] == 16381, a
assert a["acl_enabled"] and a["acl_cidrs"] == 2 and a["backends"] == 3, a
assert a["rate_limit"]["new_connections_per_second"] == 20, a
assert s["kube-apiserver-v6"]["vip"] == "2001:db8:ffff::10"
' <"$TMP/svc.json" || die "service list shows both services as configured"
ok "service list: both services with their settings"

# backend list: names, not ids; every backend active and healthy
topo_ctl lb1 -j backend list | py '
assert len(d) == 6, d
assert {b["service"] for b in d} == {"kube-apiserver", "kube-apiserver-v6"}
assert all(b["state"] == "active" and b["healthy"] for b in d), d
' || die "backend list: six active healthy backends under service names"
ok "backend list: six backends under their service names"

# maglev show: the whole table is shared by the three backends
topo_ctl lb1 -j maglev show kube-apiserver | py '
assert d["table_size"] == 16381 and d["seed"] == "5f3c0a1e9b7d2c44a1b2c3d4e5f60718"
slots = [b["slots"] for b in d["backends"]]
assert sum(slots) == 16381 and len(slots) == 3, slots
assert all(abs(s - 16381 / 3) < 16381 * 0.05 for s in slots), slots
' || die "maglev show: 16381 slots over three backends"
ok "maglev show: 16381 slots evenly over three backends"

topo_ctl lb1 -j acl list kube-apiserver | py '
assert d["enabled"] and d["cidrs"] == ["198.51.100.0/25", "2001:db8:100::/48"], d
c = d["ipv4_compiled"]
assert c == {"intervals": 1, "directory_blocks": 0, "agrees_with_trie": True}, c
' || die "acl list shows the configured networks"
ok "acl list: the configured networks, IPv4 shown as IPv4, compiled as the trie says"

# real connections through lb1: explain names the backend that answered
topo_route_via lb1
topo_client cin --vip "$VIP4" flows --sports 47000-47009 >"$TMP/flows.json" ||
	die "ten connections through lb1"
n=0
for port in $(seq 47000 47009); do
	be=$(py 'print(d["flows"][sys.argv[1]] or "")' "$port" <"$TMP/flows.json")
	[ -n "$be" ] || die "flow $port answered"
	want=${TOPO_V4[$be]}
	got=$(topo_ctl lb1 -j explain --src "${TOPO_V4[cin]}:$port" \
		--dst "$VIP4:$API_PORT" --proto tcp --syn | py '
print(d["verdict"], d["backend"])')
	[ "$got" = "tx $want" ] || die "explain of flow $port: '$got', answered by $be ($want)"
	n=$((n + 1))
done
ok "explain names the backend that answered, for $n real connections"

# the connection table holds them, with the same backends
topo_ctl lb1 -j conntrack list --service kube-apiserver --limit 0 >"$TMP/ct.json" ||
	die "conntrack list"
py '
f = json.load(open(sys.argv[1]))["flows"]
seen = {str(e["sport"]): e["backend"] for e in d if e["src"] == sys.argv[2]}
confirmed = {str(e["sport"]): e["confirmed"] for e in d
             if e["src"] == sys.argv[2]}
names = dict(x.split("=") for x in sys.argv[3:])
for port, be in f.items():
    assert seen.get(port) == names[be], (port, be, seen.get(port))
    # the handshake ACK used the entry the SYN wrote
    assert confirmed.get(port) is True, (port, confirmed.get(port))
' "$TMP/flows.json" "${TOPO_V4[cin]}" be1=192.0.2.21 be2=192.0.2.22 \
	be3=192.0.2.23 <"$TMP/ct.json" || die "conntrack list holds the ten flows"
ok "conntrack list: the ten flows with their backends, confirmed by their handshakes"

# the unauthorized client: explained, then really dropped and counted
got=$(topo_ctl lb1 -j explain --src "${TOPO_V4[cout]}:40000" \
	--dst "$VIP4:$API_PORT" --proto tcp --syn | py 'print(d["verdict"], d["reason"])')
[ "$got" = "drop not_authorized" ] || die "explain of the outside client: $got"
na0=$(topo_reason_count lb1 not_authorized)
topo_client cout --vip "$VIP4" --timeout 1 get >/dev/null 2>&1 &&
	die "the outside client is refused"
na1=$(topo_reason_count lb1 not_authorized)
[ "$na1" -gt "$na0" ] || die "not_authorized counted ($na0 -> $na1)"
ok "outside client: explain says not_authorized, stats count it ($na0 -> $na1)"

topo_ctl lb1 -j stats --per-cpu | py '
s = {x["name"]: x for x in d["services"]}["kube-apiserver"]
assert s["packets"] > 0 and s["bytes"] > 0, s
assert sum(c["packets"] for c in s["per_cpu"]) == s["packets"], s
assert d["events"]["tx"] > 0, d["events"]
' || die "stats: packets forwarded and per-CPU values sum to the total"
ok "stats: forwarded packets, per-CPU values sum to the total"

# status: generation, the hash of the applied document, attach and program
topo_ctl lb1 -j status >"$TMP/status.json" || die "status"
sha=$(sha256sum <"$(topo_conf lb1)" | cut -d' ' -f1)
schema=$(sed -n 's/^#define AETH_SCHEMA_VERSION \([0-9]*\).*/\1/p' include/aether/abi.h)
py '
assert d["schema_version"] == int(sys.argv[2]) and d["generation"] >= 1, d
assert d["config_hash"] == sys.argv[1], (d["config_hash"], sys.argv[1])
i = d["interfaces"]
assert i and all(x["prog_loaded"] and x["prog_id"] > 0 for x in i), i
assert all(x["mode"] in ("native", "generic") for x in i), i
assert all(len(x["prog_tag"]) == 16 for x in i), i
f = [x["vip_filter"] for x in i]
assert all(v and v["in_force"] and v["vips_hidden"] == 0 for v in f), f
assert all(0 < v["open_buckets"] < 65536 for v in f), f
' "$sha" "$schema" <"$TMP/status.json" ||
	die "status: schema, generation, config hash, attached program, VIP filter"
ok "status: generation, config hash of the document, program attached, its VIP filter in force with no VIP hidden"

# the agent gone: the maps still read, and the program still runs
topo_agent_kill lb1 KILL
topo_ctl lb1 -j service list | py 'assert len(d) == 2' ||
	die "service list after kill -9 of the agent"
topo_ctl lb1 status | grep -q 'native\|generic' || die "status after kill -9"
got=$(topo_ctl lb1 -j explain --src "${TOPO_V4[cin]}:47000" \
	--dst "$VIP4:$API_PORT" --proto tcp | py 'print(d["verdict"], d["reason"])')
[ "$got" = "tx conntrack" ] || die "explain after kill -9: $got"
ok "agent killed: aetherctl still reads every map"

# a missing pin directory: one line, exit 1, nothing created
out=$("$CTL" --pin-dir "/sys/fs/bpf/aeth-ct-none" status 2>&1)
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] ||
	die "missing pin directory: one line, exit 1 (rc $rc: $out)"
[ ! -e /sys/fs/bpf/aeth-ct-none ] || die "nothing created"
ok "missing pin directory: '$out'"
