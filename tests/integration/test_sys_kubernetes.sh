#!/usr/bin/env bash
# Services of type LoadBalancer with no manual setup (SPEC.md section 8),
# against the stand-in API server (tests/k8s/fake_apiserver.py) in the
# router's namespace: every agent runs with --kubernetes; a Service created
# there answers on its allocated VIP within 2 s, its status gets the VIP,
# endpoints scaled down drain and then remove their node, a 410 Gone makes
# the agents list again, a Service the translation cannot use is refused
# alone with a metric and an Event, a Service that stops being ours (a
# ClusterIP Service now, or the agents' class changed) loses its VIP and
# the VIP leaves its status, deleting the Service removes the VIP, and the
# two LB nodes hold the same tables throughout.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin kubernetes

API_ADDR=${TOPO_V4[rtr]}
KPORT=6444
POOL4=203.0.113.128/29
SVC_PORT=8090
AGENT_TOKEN=agent-$$-$RANDOM
ADMIN_TOKEN=admin-$$-$RANDOM

# --- offline: --render-kubernetes ------------------------------------------
fx=tests/unit/k8s
out=$("$AGENT" --render-kubernetes $fx/cluster.json --config $fx/base.json 2>&1)
[ $? -eq 0 ] && [ "$out" = "$(cat $fx/cluster.expected.json)" ] ||
	die "--render-kubernetes of the fixture: $out"
ok "--render-kubernetes prints the fixture's document, exit 0"
python3 - $fx/cluster.json "$ITEST_TMP/bad.json" <<'EOF'
import json, sys
l = json.load(open(sys.argv[1]))
web = next(i for i in l["items"] if i["metadata"]["name"] == "web")
web["spec"]["ports"][1]["protocol"] = "SCTP"
json.dump(l, open(sys.argv[2], "w"))
EOF
err=$("$AGENT" --render-kubernetes "$ITEST_TMP/bad.json" --config $fx/base.json 2>&1 >"$ITEST_TMP/bad.out")
rc=$?
[ $rc -eq 1 ] && [[ $err == *"Service default/web: spec.ports[1].protocol: SCTP is not supported"* ]] &&
	grep -q '"default/dns:53"' "$ITEST_TMP/bad.out" &&
	! grep -q '"default/web:80"' "$ITEST_TMP/bad.out" ||
	die "--render-kubernetes with SCTP: exit $rc, stderr '$err'"
ok "--render-kubernetes names the object left out, exit 1, the rest printed"

# the stand-in server's rules for the agent are deploy/k8s/rbac.yaml's
python3 -B - <<'EOF' || die "tests/k8s/fake_apiserver.py and deploy/k8s/rbac.yaml disagree"
import sys, yaml
sys.path.insert(0, "tests/k8s")
from fake_apiserver import AGENT_RBAC
got = {}
for d in yaml.safe_load_all(open("deploy/k8s/rbac.yaml")):
    for r in d.get("rules", []):
        for res in r["resources"]:
            plural, _, sub = res.partition("/")
            got.setdefault((plural, sub), set()).update(r["verbs"])
want = {k: set(v) for k, v in AGENT_RBAC.items()}
if got != want:
    print("rbac.yaml", sorted(got.items()), "\nfake", sorted(want.items()))
    sys.exit(1)
EOF
ok "the stand-in API server enforces exactly deploy/k8s/rbac.yaml"

# --- the cluster -----------------------------------------------------------
topo_up --plain || die "topology did not come up"
"$TOPO_LIB/mkcerts.sh" "$TOPO_STATE/kcerts" kubernetes "$API_ADDR" ||
	die "API server certificate"
setsid ip netns exec "$(topo_ns rtr)" python3 tests/k8s/fake_apiserver.py \
	--cert "$TOPO_STATE/kcerts/server.crt" --key "$TOPO_STATE/kcerts/server.key" \
	--addr "$API_ADDR" --port $KPORT --token "$AGENT_TOKEN" \
	--admin-token "$ADMIN_TOKEN" --bookmark-seconds 1 \
	--client-ca "$TOPO_STATE/kcerts/ca.crt" \
	>"$TOPO_STATE/apiserver.log" 2>&1 &
echo $! >"$TOPO_STATE/apiserver.pid"
topo_wait_port rtr "$API_ADDR" $KPORT 10 || die "the API server did not start"

cat >"$TOPO_STATE/kubeconfig.json" <<EOF
{"apiVersion": "v1", "kind": "Config", "current-context": "test",
 "clusters": [{"name": "c", "cluster": {"server": "https://$API_ADDR:$KPORT/",
   "certificate-authority": "$TOPO_STATE/kcerts/ca.crt"}}],
 "users": [{"name": "u", "user": {"token": "$AGENT_TOKEN"}}],
 "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u",
   "namespace": "aether-system"}}]}
EOF

# lb2 authenticates with a client certificate instead (inline, base64)
kc=$TOPO_STATE/kcerts
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$kc/client.key" -out "$kc/client.csr" -subj "/CN=aether-agent" \
	2>/dev/null &&
	openssl x509 -req -in "$kc/client.csr" -CA "$kc/ca.crt" -CAkey "$kc/ca.key" \
		-CAcreateserial -out "$kc/client.crt" -days 1 2>/dev/null ||
	die "client certificate"
python3 - "$TOPO_STATE/kubeconfig.json" "$kc" <<'EOF' || die "client kubeconfig"
import base64, json, sys
k = json.load(open(sys.argv[1]))
b64 = lambda f: base64.b64encode(open(sys.argv[2] + "/" + f, "rb").read()).decode()
k["users"] = [{"name": "u", "user": {"client-certificate-data": b64("client.crt"),
                                     "client-key-data": b64("client.key")}}]
c = k["clusters"][0]["cluster"]
del c["certificate-authority"]
c["certificate-authority-data"] = b64("ca.crt")
json.dump(k, open(sys.argv[1].replace(".json", "-cert.json"), "w"))
EOF

# kube: METHOD PATH [JSON] as the cluster's administrator; prints the body
kube() {
	local args=(-sS -m 5 --cacert "$TOPO_STATE/kcerts/ca.crt" -X "$1"
		-H "Authorization: Bearer $ADMIN_TOKEN")
	[ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	topo_exec rtr curl "${args[@]}" "https://$API_ADDR:$KPORT$2"
}

# kube_patch PATH JSON: a merge patch as the administrator; prints the HTTP
# status code
kube_patch() {
	topo_exec rtr curl -sS -m 5 --cacert "$TOPO_STATE/kcerts/ca.crt" \
		-X PATCH -H "Authorization: Bearer $ADMIN_TOKEN" \
		-H 'Content-Type: application/merge-patch+json' \
		--data-binary "$2" -o /dev/null -w '%{http_code}' \
		"https://$API_ADDR:$KPORT$1"
}

# ingress_of NAME: the Service's status.loadBalancer.ingress IPs, by commas
ingress_of() {
	kube GET "/api/v1/namespaces/default/services/$1" | python3 -c 'import json,sys
print(",".join(i.get("ip", "") for i in json.load(sys.stdin).get("status", {}).get("loadBalancer", {}).get("ingress", [])))'
}

# wait_ingress NAME empty|set: prints the Service's ingress IPs once they
# are empty, or set, within 10 s; fails with what they are otherwise
wait_ingress() {
	local i ing
	for ((i = 0; i < 50; i++)); do
		ing=$(ingress_of "$1")
		case $2 in
		empty) [ -z "$ing" ] && return 0 ;;
		*) [ -n "$ing" ] && { echo "$ing"; return 0; } ;;
		esac
		sleep 0.2
	done
	echo "$ing"
	return 1
}

# web_gone: succeeds once neither LB node serves default/web (within 2 s)
web_gone() {
	local i
	for ((i = 0; i < 20; i++)); do
		topo_ctl lb1 -j service list | grep -q "default/web:" ||
			topo_ctl lb2 -j service list | grep -q "default/web:" ||
			return 0
		sleep 0.1
	done
	return 1
}

node_json() {
	printf '{"apiVersion":"v1","kind":"Node","metadata":{"name":"%s"},"status":{"conditions":[{"type":"Ready","status":"True"}],"addresses":[{"type":"InternalIP","address":"%s"},{"type":"Hostname","address":"%s"}]}}' \
		"$1" "${TOPO_V4[$1]}" "$1"
}

# slice_json READY_NODES TERMINATING_NODES: one endpoint per node listed
slice_json() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
eps = []
for i, (nodes, ready) in enumerate(((sys.argv[1], True), (sys.argv[2], False))):
    for n in nodes.split():
        eps.append({"addresses": ["10.244.%d.%d" % (i, len(eps) + 1)],
                    "conditions": {"ready": ready, "serving": True,
                                   "terminating": not ready},
                    "nodeName": n, "targetRef": {"kind": "Pod",
                    "namespace": "default", "name": "web-" + n}})
print(json.dumps({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "web-x7k2p", "namespace": "default",
                 "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4", "endpoints": eps,
    "ports": [{"name": "http", "port": 8090, "protocol": "TCP"}]}))
EOF
}

# svc_json NAME PORT PROTOCOL [FAMILY [POLICY]]
svc_json() {
	printf '{"apiVersion":"v1","kind":"Service","metadata":{"name":"%s","namespace":"default"},"spec":{"type":"LoadBalancer","loadBalancerClass":"aetherplatform.cloud/lb","externalTrafficPolicy":"%s","ipFamilies":["%s"],"ports":[{"name":"http","port":%s,"protocol":"%s","targetPort":8090}]}}' \
		"$1" "${5:-Local}" "${4:-IPv4}" "$2" "$3"
}

for n in $TOPO_BACKENDS; do
	kube POST /api/v1/nodes "$(node_json "$n")" >/dev/null || die "creating Node $n"
done
kube POST /apis/discovery.k8s.io/v1/namespaces/default/endpointslices \
	"$(slice_json "be1 be2" "")" >/dev/null || die "creating the EndpointSlice"

# Each backend answers on every pool address with its name (the node's
# stack delivering VIP:port to the pods); the router sends the pool to
# the LB nodes.
for n in $TOPO_BACKENDS; do
	ip -n "$(topo_ns "$n")" addr add "$POOL4" dev lo
	setsid ip netns exec "$(topo_ns "$n")" python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = sys.argv[1].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b)))
        self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
' "$n" $SVC_PORT >/dev/null 2>&1 &
done
ip -n "$(topo_ns rtr)" route replace "$POOL4" \
	nexthop via "${TOPO_V4[lb1]}" dev eth0 nexthop via "${TOPO_V4[lb2]}" dev eth0

itest_template "$ITEST_TMP/k8s.json" '
doc["kubernetes"] = {"load_balancer_class": "aetherplatform.cloud/lb",
                     "default_class": False,
                     "ip_pools": ["203.0.113.128/29", "2001:db8:ffff:1::1/128"]}'
topo_set_template "$ITEST_TMP/k8s.json" || die "writing the documents"
for n in $TOPO_BACKENDS $TOPO_LBS; do
	mkdir -p "$TOPO_STATE/$n"
	NODE_NAME=$n nsenter --net="/run/netns/$(topo_ns "$n")" "$AGENT" \
		--config "$(topo_conf "$n")" --pin-dir "$(topo_pin_dir "$n")" \
		--socket "$(topo_sock "$n")" \
		--metrics-addr "127.0.0.1:${TOPO_METRICS[$n]}" \
		--kubernetes --kubeconfig "$TOPO_STATE/kubeconfig$([ "$n" = lb2 ] && echo -cert).json" \
		--log-level info >>"$TOPO_STATE/$n/agent.log" 2>&1 &
	echo $! >"$TOPO_STATE/$n/agent.pid"
done
for n in $TOPO_BACKENDS $TOPO_LBS; do
	topo_wait_ready "$n" 30 || die "$n not ready"
done
ok "five agents ready with --kubernetes (lb2 with a client certificate)"


wait_metric_ge() {
	local i v
	for ((i = 0; i < $4 * 10; i++)); do
		v=$(itest_metric "$1" "$2")
		[ -n "$v" ] && [ "${v%.*}" -ge "$3" ] && return 0
		sleep 0.1
	done
	topo_log "$1: $2 = ${v:-none}, want >= $3"
	return 1
}

for n in $TOPO_LBS; do
	wait_metric_ge "$n" 'aether_kubernetes_watch_state{kind="Node",state="watching"}' 1 10 ||
		die "$n: the Node watch is not open"
done
ok "both LB nodes watch Services, EndpointSlices and Nodes"

# --- a Service appears -----------------------------------------------------
VIP=203.0.113.128
t0=$(date +%s.%N)
kube POST /api/v1/namespaces/default/services "$(svc_json web $SVC_PORT TCP)" \
	>/dev/null || die "creating the Service"
answer=""
for ((i = 0; i < 40; i++)); do
	answer=$(topo_exec cin curl -s -m 0.3 "http://$VIP:$SVC_PORT/" 2>/dev/null) &&
		[ -n "$answer" ] && break
	answer=""
	sleep 0.05
done
took=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$t0" "$(date +%s.%N)")
[ -n "$answer" ] || die "the Service never answered on $VIP:$SVC_PORT"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 2.0 else 1)" "$took" ||
	die "the Service answered only after ${took}s"
ok "Service default/web answers on $VIP:$SVC_PORT after ${took}s (from $answer)"

for ((i = 0; i < 50; i++)); do
	ing=$(kube GET /api/v1/namespaces/default/services/web | python3 -c 'import json,sys
print(",".join(i.get("ip", "") for i in json.load(sys.stdin).get("status", {}).get("loadBalancer", {}).get("ingress", [])))')
	[ "$ing" = "$VIP" ] && break
	sleep 0.2
done
[ "$ing" = "$VIP" ] || die "status.loadBalancer.ingress is '$ing', want $VIP"
ok "the Lease holder wrote $VIP into the Service's status"
leases=$(kube GET /apis/coordination.k8s.io/v1/namespaces/aether-system/leases/aether-lb-status |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["holderIdentity"])')
[[ " $TOPO_BACKENDS $TOPO_LBS " == *" $leases "* ]] || die "Lease holder '$leases'"
held=0
for n in $TOPO_BACKENDS $TOPO_LBS; do
	h=$(itest_metric "$n" aether_kubernetes_lease_held)
	held=$((held + ${h:-0}))
	[ "$n" = "$leases" ] && [ "${h:-0}" != 1 ] && die "$n holds the Lease but says $h"
done
[ $held -eq 1 ] || die "$held agents say they hold the Lease"
ok "one agent ($leases) holds the Lease, and only it says so"

# backends NODE: "address/weight/state ..." of default/web:8090
backends() {
	topo_ctl "$1" -j backend list | python3 -c 'import json,sys
print(" ".join("%s/%s/%s" % (b["address"], b["weight"], b["state"])
    for b in sorted(json.load(sys.stdin), key=lambda b: b["address"])
    if b["service"] == sys.argv[1]))' "default/web:$SVC_PORT"
}

wait_backends() {
	local i n got
	for ((i = 0; i < $2 * 10; i++)); do
		got=1
		for n in $TOPO_LBS; do
			[ "$(backends "$n")" = "$1" ] || got=0
		done
		[ $got -eq 1 ] && return 0
		sleep 0.1
	done
	topo_log "backends: lb1 '$(backends lb1)' lb2 '$(backends lb2)', want '$1'"
	return 1
}

tables_agree() {
	local a b
	a=$(topo_ctl lb1 -j maglev show "default/web:$SVC_PORT" --raw) &&
		b=$(topo_ctl lb2 -j maglev show "default/web:$SVC_PORT" --raw) &&
		[ -n "$a" ] && [ "$a" = "$b" ] &&
		[ "$(topo_ctl lb1 -j service list)" = "$(topo_ctl lb2 -j service list)" ]
}

wait_backends "192.0.2.21/1/active 192.0.2.22/1/active" 3 ||
	die "both ready nodes as backends"
ok "Local policy: be1 and be2 (one ready endpoint each) are the backends"
check "lb1 and lb2 hold byte-identical Maglev tables and services" tables_agree

# --- a bad --config while watching: refused, nothing lost ---------------------
conf=$(topo_conf lb1)
cp "$conf" "$ITEST_TMP/lb1.good"
rej0=$(itest_metric lb1 'aether_config_apply_total{result="rejected"}')
printf '{"version": 1, "services": "none"}\n' >"$conf.new" && mv -f "$conf.new" "$conf"
wait_metric_ge lb1 'aether_config_apply_total{result="rejected"}' $((rej0 + 1)) 3 ||
	die "a broken --config was not refused"
[ "$(backends lb1)" = "192.0.2.21/1/active 192.0.2.22/1/active" ] ||
	die "a broken --config changed lb1's backends: $(backends lb1)"
# the same document as before the broken one: applied again (ok counted),
# with no new generation (an identical document changes nothing)
ok0=$(itest_metric lb1 'aether_config_apply_total{result="ok"}')
cp "$ITEST_TMP/lb1.good" "$conf.new" && mv -f "$conf.new" "$conf"
wait_metric_ge lb1 'aether_config_apply_total{result="ok"}' $((ok0 + 1)) 3 ||
	die "the fixed --config not applied"
check "the fixed --config applied: lb1 and lb2 agree again" tables_agree
ok "a broken --config while watching is refused and counted; the state stays"

# --- endpoints scaled down -------------------------------------------------
kube PUT /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-x7k2p \
	"$(slice_json "be1" "be2")" >/dev/null || die "updating the EndpointSlice"
wait_backends "192.0.2.21/1/active 192.0.2.22/1/draining" 2 ||
	die "be2 draining while its endpoint terminates"
ok "an endpoint terminating but serving: be2 draining"
kube PUT /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-x7k2p \
	"$(slice_json "be1" "")" >/dev/null || die "updating the EndpointSlice"
wait_backends "192.0.2.21/1/active" 2 || die "be2 removed"
ok "its endpoint gone: be2 removed"
check "lb1 and lb2 still agree" tables_agree

# --- an endpoint storm: at most one apply per 100 ms -------------------------
gen0=$(topo_generation lb1)
storm=$(topo_exec rtr python3 - "$API_ADDR" $KPORT "$TOPO_STATE/kcerts/ca.crt" \
	"$ADMIN_TOKEN" "$(slice_json "be1" "")" "$(slice_json "be1 be3" "")" <<'EOF'
import http.client, ssl, sys, time
addr, port, ca, tok, a, b = sys.argv[1:]
c = http.client.HTTPSConnection(addr, int(port),
                                context=ssl.create_default_context(cafile=ca))
t0 = time.monotonic()
for i in range(40):
    c.request("PUT", "/apis/discovery.k8s.io/v1/namespaces/default/"
              "endpointslices/web-x7k2p", body=(a if i % 2 == 0 else b),
              headers={"Authorization": "Bearer " + tok,
                       "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
print(int((time.monotonic() - t0) * 1000))
EOF
) || die "the endpoint storm"
wait_backends "192.0.2.21/1/active 192.0.2.23/1/active" 3 || die "after the storm"
sleep 0.3
applies=$(( $(topo_generation lb1) - gen0 ))
[ "$applies" -ge 1 ] && [ "$applies" -le $((storm / 100 + 2)) ] ||
	die "40 endpoint changes in ${storm} ms made $applies applies"
ok "40 endpoint changes in ${storm} ms: $applies applies on lb1, final state right"

# --- 410 Gone: the agents list again ---------------------------------------
before=$(itest_metric lb1 'aether_kubernetes_relists_total{kind="EndpointSlice"}')
kube POST /fake/compact >/dev/null || die "compacting"
kube PUT /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-x7k2p \
	"$(slice_json "be1 be2" "")" >/dev/null || die "updating the EndpointSlice"
wait_metric_ge lb1 'aether_kubernetes_relists_total{kind="EndpointSlice"}' \
	$((before + 1)) 5 || die "no list after 410 Gone"
wait_backends "192.0.2.21/1/active 192.0.2.22/1/active" 3 ||
	die "the change made while the watches were cut"
ok "watches cut and history compacted: listed again, change applied"

# slow responses and connections dropped mid-stream
kube POST "/fake/slow?ms=400" >/dev/null && kube POST /fake/drop >/dev/null ||
	die "slowing and dropping"
kube PUT /apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-x7k2p \
	"$(slice_json "be1" "")" >/dev/null || die "updating the EndpointSlice"
wait_backends "192.0.2.21/1/active" 5 || die "the change made while dropped"
kube POST "/fake/slow?ms=0" >/dev/null
ok "watches dropped mid-stream and slow answers: reconnected, change applied"

# --- a Service the translation cannot use ----------------------------------
kube POST /api/v1/namespaces/default/services "$(svc_json sctp 9000 SCTP)" \
	>/dev/null || die "creating the SCTP Service"
wait_metric_ge lb1 'aether_kubernetes_rejected_total{reason="protocol"}' 1 3 ||
	die "the SCTP Service not counted"
ok "an SCTP Service is counted in aether_kubernetes_rejected_total{reason=\"protocol\"}"
for ((i = 0; i < 40; i++)); do
	ev=$(kube GET /api/v1/namespaces/default/events | python3 -c 'import json,sys
print(" ".join(e["reason"] + ":" + e["involvedObject"]["name"] for e in json.load(sys.stdin)["items"]))')
	[[ $ev == *"LoadBalancerRejected:sctp"* ]] && break
	sleep 0.2
done
[[ $ev == *"LoadBalancerRejected:sctp"* ]] || die "no Event for the SCTP Service: '$ev'"
ok "and reported as an Event on it"

# IPv6 Services: the one-address IPv6 pool serves the first (its nodes have
# only IPv4: backends by the other family), the second is refused with an Event
kube POST /api/v1/namespaces/default/services "$(svc_json v6a 80 TCP IPv6 Cluster)" \
	>/dev/null && kube POST /api/v1/namespaces/default/services \
	"$(svc_json v6b 80 TCP IPv6 Cluster)" >/dev/null || die "creating IPv6 Services"
wait_metric_ge lb1 'aether_kubernetes_rejected_total{reason="pool_exhausted"}' 1 3 ||
	die "the second IPv6 Service not counted as pool_exhausted"
v6=$(topo_ctl lb2 -j service list | python3 -c 'import json,sys
print(" ".join(s["name"] + "=" + s["vip"] for s in json.load(sys.stdin) if s["name"].startswith("default/v6")))')
[ "$v6" = "default/v6a:80=2001:db8:ffff:1::1" ] || die "IPv6 Services on lb2: '$v6'"
[ "$(topo_ctl lb2 -j backend list | python3 -c 'import json,sys
print(" ".join(sorted(b["address"] for b in json.load(sys.stdin) if b["service"] == "default/v6a:80")))')" = \
	"192.0.2.21 192.0.2.22 192.0.2.23" ] || die "v6a backends are not the Ready nodes by IPv4"
for ((i = 0; i < 40; i++)); do
	ev=$(kube GET /api/v1/namespaces/default/events | python3 -c 'import json,sys
print(" ".join(e["reason"] + ":" + e["involvedObject"]["name"] for e in json.load(sys.stdin)["items"]))')
	[[ $ev == *"PoolExhausted:v6b"* ]] && break
	sleep 0.2
done
[[ $ev == *"PoolExhausted:v6b"* ]] || die "no PoolExhausted Event for v6b: '$ev'"
ok "IPv6: v6a got the pool's one address with IPv4 node backends; v6b refused with a PoolExhausted Event"
check "default/web still answers" topo_exec cin curl -sf -m 2 -o /dev/null "http://$VIP:$SVC_PORT/"

# --- one port number with both protocols (a DNS Service) -------------------
# TCP and UDP on 8053: two services, default/both:8053 (UDP, listed first)
# and default/both:8053/tcp; a real connection and a real datagram each.
kube POST /api/v1/namespaces/default/services '{"apiVersion":"v1","kind":"Service","metadata":{"name":"both","namespace":"default"},"spec":{"type":"LoadBalancer","loadBalancerClass":"aetherplatform.cloud/lb","externalTrafficPolicy":"Cluster","ipFamilies":["IPv4"],"ports":[{"name":"dns","port":8053,"protocol":"UDP","targetPort":8053},{"name":"dns-tcp","port":8053,"protocol":"TCP","targetPort":8053}]}}' \
	>/dev/null || die "creating the TCP+UDP Service"
both=""
for ((i = 0; i < 40; i++)); do
	both=$(topo_ctl lb2 -j service list | python3 -c 'import json,sys
print(" ".join(sorted(s["name"] + "=" + s["vip"] + "/" + s["protocol"] for s in json.load(sys.stdin) if s["name"].startswith("default/both"))))')
	[[ $both == *" "* ]] && break
	sleep 0.1
done
BOTH_VIP=${both#*=}
BOTH_VIP=${BOTH_VIP%%/*}
[ "$both" = "default/both:8053/tcp=$BOTH_VIP/tcp default/both:8053=$BOTH_VIP/udp" ] ||
	die "the TCP+UDP Service on lb2: '$both'"
# each backend answers on the VIP (UDP bound to it, so its replies leave
# from the VIP, as a DNS server's do)
for n in $TOPO_BACKENDS; do
	setsid ip netns exec "$(topo_ns "$n")" python3 -c '
import socket, sys, threading
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[2], 8053))
    while True:
        d, a = s.recvfrom(512); s.sendto(b"udp " + sys.argv[1].encode(), a)
threading.Thread(target=udp, daemon=True).start()
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 8053)); t.listen(16)
while True:
    c, _ = t.accept(); c.sendall(b"tcp " + sys.argv[1].encode()); c.close()
' "$n" "$BOTH_VIP" >/dev/null 2>&1 &
done
answer=""
for ((i = 0; i < 20; i++)); do
	answer=$(topo_exec cin python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], 8053), timeout=0.5)
print(c.recv(64).decode())' "$BOTH_VIP" 2>/dev/null) && [ -n "$answer" ] && break
	answer=""
	sleep 0.1
done
[[ $answer == "tcp be"* ]] || die "TCP to $BOTH_VIP:8053 answered '$answer'"
uanswer=""
for ((i = 0; i < 20; i++)); do
	uanswer=$(topo_exec cin python3 -c '
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(0.5)
u.connect((sys.argv[1], 8053)); u.send(b"q"); print(u.recv(64).decode())' \
		"$BOTH_VIP" 2>/dev/null) && [ -n "$uanswer" ] && break
	uanswer=""
	sleep 0.1
done
[[ $uanswer == "udp be"* ]] || die "UDP to $BOTH_VIP:8053 answered '$uanswer'"
ok "TCP and UDP on one port: two services on $BOTH_VIP, a connection ($answer) and a datagram ($uanswer)"
kube DELETE /api/v1/namespaces/default/services/both >/dev/null || die "deleting both"

# --- the Service leaves type LoadBalancer, and comes back ------------------
# its class may not change while it is a LoadBalancer (the real server's
# rule, which the stand-in keeps)
WEB=/api/v1/namespaces/default/services/web
code=$(kube_patch $WEB '{"spec":{"loadBalancerClass":"other.example/lb"}}')
[ "$code" = 422 ] || die "changing the class of a LoadBalancer answered $code"
# and a patch naming a resourceVersion applies to that version only
code=$(kube_patch $WEB '{"metadata":{"resourceVersion":"1"},"spec":{"type":"ClusterIP"}}')
[ "$code" = 409 ] || die "a patch of a stale resourceVersion answered $code"
# as a ClusterIP Service it is no one's load balancer: the server wipes its
# status, and the agents drop its VIP
code=$(kube_patch $WEB '{"spec":{"type":"ClusterIP"}}')
[ "$code" = 200 ] || die "making web a ClusterIP Service answered $code"
web_gone || die "web's VIP stayed after it became a ClusterIP Service"
[ -z "$(ingress_of web)" ] || die "a ClusterIP Service kept status.loadBalancer"
topo_exec cin curl -s -m 1 "http://$VIP:$SVC_PORT/" >/dev/null 2>&1 &&
	die "$VIP still answers"
ok "web as a ClusterIP Service: its VIP gone from both LB nodes, its status empty"
# a LoadBalancer of our class again: a VIP, an answer there, and the status
code=$(kube_patch $WEB '{"spec":{"type":"LoadBalancer","loadBalancerClass":"aetherplatform.cloud/lb"}}')
[ "$code" = 200 ] || die "making web a LoadBalancer again answered $code"
ing=$(wait_ingress web set) || die "web's status never got a VIP again"
VIP=$ing
check "web answers again on $VIP" topo_exec cin curl -sf -m 2 -o /dev/null "http://$VIP:$SVC_PORT/"

# --- the agents' class changes: web is no longer ours ----------------------
# every agent drops web's VIP, and the Lease holder, which wrote that VIP
# into web's status, takes it out again
set_class() {
	local n conf
	for n in $TOPO_BACKENDS $TOPO_LBS; do
		conf=$(topo_conf "$n")
		sed "s#\"load_balancer_class\": *\"[^\"]*\"#\"load_balancer_class\": \"$1\"#" \
			"$conf" >"$conf.new" && mv -f "$conf.new" "$conf"
		grep -q "\"$1\"" "$conf" || die "$n: the class not written"
	done
}
set_class other.example/lb
ing=$(wait_ingress web empty) ||
	die "web's status kept $ing after the agents' class changed"
web_gone || die "an LB node still serves web after the agents' class changed"
ok "the agents' class changed: web's VIP gone, and taken out of its status"
set_class aetherplatform.cloud/lb
ing=$(wait_ingress web set) || die "web's status never got a VIP back"
VIP=$ing
check "the class back: web answers on $VIP" topo_exec cin curl -sf -m 2 -o /dev/null "http://$VIP:$SVC_PORT/"

# --- the Service deleted ---------------------------------------------------
kube DELETE /api/v1/namespaces/default/services/web >/dev/null || die "deleting"
web_gone || die "the VIP stayed after the Service was deleted"
topo_exec cin curl -s -m 1 "http://$VIP:$SVC_PORT/" >/dev/null 2>&1 &&
	die "$VIP still answers"
ok "Service deleted: its VIP is gone from both LB nodes within 2 s"

# --- the Lease holder dies: another agent takes over ------------------------
holder() {
	kube GET /apis/coordination.k8s.io/v1/namespaces/aether-system/leases/aether-lb-status |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["holderIdentity"])'
}
old=$(holder)
topo_agent_kill "$old" KILL
for ((i = 0; i < 250; i++)); do
	new=$(holder)
	[ -n "$new" ] && [ "$new" != "$old" ] && break
	sleep 0.1
done
[ -n "$new" ] && [ "$new" != "$old" ] || die "nobody took the Lease over from $old"
ok "$old killed: $new took the Lease over"
kube POST /api/v1/namespaces/default/services "$(svc_json web2 $SVC_PORT TCP)" \
	>/dev/null || die "creating Service web2"
for ((i = 0; i < 50; i++)); do
	ing=$(kube GET /api/v1/namespaces/default/services/web2 | python3 -c 'import json,sys
print(",".join(i.get("ip", "") for i in json.load(sys.stdin).get("status", {}).get("loadBalancer", {}).get("ingress", [])))')
	[ "$ing" = "$VIP" ] && break
	sleep 0.2
done
[ "$ing" = "$VIP" ] || die "the new holder did not write web2's status ('$ing')"
ok "the new holder writes status: web2 got $VIP"
alive=lb1
[ "$old" = lb1 ] && alive=lb2

# --- the API server gone ---------------------------------------------------
gen=$(topo_generation $alive)
kill -- "-$(cat "$TOPO_STATE/apiserver.pid")" 2>/dev/null
sleep 1.5
check "API server down: $alive still ready" topo_exec $alive curl -sf -m 1 -o /dev/null \
	"http://127.0.0.1:${TOPO_METRICS[$alive]}/readyz"
[ "$(topo_generation $alive)" = "$gen" ] || die "the state changed with the API server down"
topo_ctl $alive -j service list | grep -q '"kube-apiserver"' || die "base services lost"
wait_metric_ge $alive 'aether_kubernetes_watch_state{kind="Service",state="backoff"}' 1 5 ||
	die "the watch state does not show the outage"
ok "API server down: last state kept, the watch backs off"
