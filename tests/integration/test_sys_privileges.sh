#!/usr/bin/env bash
# The capabilities deploy/k8s/daemonset.yaml grants are enough, and why each
# is there: with exactly them the agent loads, attaches, and after kill -9
# starts again over the program it left on the NIC. Without CAP_SYS_ADMIN the
# first start works but the restart fails; CAP_SYS_ADMIN also passes the
# kernel's CAP_BPF and CAP_PERFMON checks, so those two are shown needed on
# the set without it: no CAP_PERFMON, the program does not load; no
# CAP_NET_ADMIN, it cannot attach.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

AGENT=${AETH_BUILD:-build}/agent/aether-agent
AGENT=$(cd "$(dirname "$AGENT")" 2>/dev/null && pwd)/aether-agent
NS=aeth-sys-caps-$$
PIN=/sys/fs/bpf/$NS
TMP=$(mktemp -d)
PORT=9464
CHECKS=0
pid=""

cleanup() {
	local rc=$?
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	# the BGP speaker the agents started outlives them by design
	pkill -f -- "-c $TMP/bird.conf" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$TMP"
	[ $rc -eq 0 ] && echo "PASS privileges ($CHECKS checks)" || echo "FAIL privileges"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "FAIL $*"; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }

[ -x "$AGENT" ] || die "build first ($AGENT)"
command -v capsh >/dev/null || die "capsh (libcap2-bin) missing"

caps=$(python3 - <<'EOF'
import yaml
ds = next(d for d in yaml.safe_load_all(open("deploy/k8s/daemonset.yaml"))
          if d and d.get("kind") == "DaemonSet")
c = next(c for c in ds["spec"]["template"]["spec"]["containers"]
         if c.get("command", [""])[0] == "aether-agent")
print(",".join("cap_" + x.lower() for x in c["securityContext"]["capabilities"]["add"]))
EOF
) || die "capabilities from daemonset.yaml"
ok "daemonset.yaml grants $caps"

ip netns add "$NS" || die "netns"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name peer0
ip -n "$NS" link set eth0 up
ip -n "$NS" link set peer0 up
python3 scripts/lib/nodeconf.py scripts/lib/default-config.json --role lb \
	--v4 192.0.2.11 --v6 2001:db8::11 >"$TMP/config.json" || die "document"

# run_agent KEEP LABEL: the agent with every capability but KEEP dropped from
# its bounding set (root keeps no others); 0 once ready, 1 if it exits
run_agent() {
	local all drop i
	all=$(capsh --print | sed -n 's/^Bounding set =//p' | tr ',' '\n')
	drop=$(grep -vxF -f <(tr ',' '\n' <<<"$1") <<<"$all" | paste -sd,)
	nsenter --net="/run/netns/$NS" capsh --drop="$drop" -- -c \
		"exec '$AGENT' --config '$TMP/config.json' --pin-dir '$PIN' \
		 --socket '$TMP/agent.sock' --metrics-addr 127.0.0.1:$PORT" \
		>>"$TMP/$2.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		if nsenter --net="/run/netns/$NS" curl -sf -m 1 -o /dev/null \
			"http://127.0.0.1:$PORT/readyz" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			pid=""
			return 1
		fi
		sleep 0.1
	done
	return 1
}

kill_agent() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	pid=""
}

unpin() {
	kill_agent
	ip -n "$NS" link set dev eth0 xdp off 2>/dev/null
	rm -rf "$PIN"
}

run_agent "$caps" granted || { cat "$TMP/granted.log"; die "agent starts with $caps"; }
ip -n "$NS" link show dev eth0 | grep -q 'prog/xdp' || die "program attached"
ok "agent loads and attaches with exactly $caps"
kill_agent
run_agent "$caps" restart || { cat "$TMP/restart.log"; die "restart over the running program with $caps"; }
ok "agent restarts over its running program with exactly $caps"
unpin

without() { tr ',' '\n' <<<"$caps" | grep -vx "$1" | paste -sd,; }

# the agent itself needs no CAP_SYS_ADMIN: a restart knows the running
# program as its own by the link pinned under --pin-dir (not by opening it
# by id) and replaces it through that link. The DaemonSet keeps it for
# runtimes whose seccomp profile allows bpf(2) only with it
# (tests/integration/test_image.sh: podman's here).
base=$(without cap_sys_admin)
run_agent "$base" nosysadmin ||
	{ cat "$TMP/nosysadmin.log"; die "first start with $base"; }
ok "first start works with $base"
kill_agent
run_agent "$base" nosysadmin2 ||
	{ cat "$TMP/nosysadmin2.log"; die "restart over the running program with $base"; }
grep -q 'updated in place' "$TMP/nosysadmin2.log" ||
	{ cat "$TMP/nosysadmin2.log"; die "restart: the program not replaced through the link"; }
ok "without CAP_SYS_ADMIN a restart over the running program works (its link updated in place)"
unpin

for c in cap_perfmon cap_net_admin; do
	set=$(tr ',' '\n' <<<"$base" | grep -vx "$c" | paste -sd,)
	if run_agent "$set" "no_$c"; then
		die "the agent runs with $set: drop $c from the DaemonSet"
	fi
	grep -q 'Permission denied\|Operation not permitted' "$TMP/no_$c.log" ||
		{ cat "$TMP/no_$c.log"; die "without $c: a permission error"; }
	ok "without $c (and CAP_SYS_ADMIN) the agent fails: $(grep -m1 -E '^[^ ]+ error ' "$TMP/no_$c.log" | sed 's/^[^ ]* //')"
	unpin
done

# the host unit runs the agent with its AmbientCapabilities and no seccomp
# filter: start and restart with exactly those
unitcaps=$(sed -n 's/^AmbientCapabilities=//p' deploy/host/aether-agent.service.in |
	tr ' ' '\n' | tr 'A-Z' 'a-z' | paste -sd,)
[ -n "$unitcaps" ] || die "no AmbientCapabilities in the host unit"
run_agent "$unitcaps" unit || { cat "$TMP/unit.log"; die "start with the host unit's $unitcaps"; }
kill_agent
run_agent "$unitcaps" unit2 ||
	{ cat "$TMP/unit2.log"; die "restart with the host unit's $unitcaps"; }
ok "the host unit's set ($unitcaps) starts and restarts the agent"
unpin
