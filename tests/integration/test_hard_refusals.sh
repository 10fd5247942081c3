#!/usr/bin/env bash
# What the agent refuses, through its real interfaces (PUT on the socket,
# the config file, a second process, a FIFO), and that what runs stays:
#  1. a document naming an interface missing here, or one the program cannot
#     go on (400 with its place, the program stays on the one that exists,
#     nothing is left on the others; --check-config says so); an interface
#     carrying a program that is not ours is never taken;
#  2. IPv4-mapped IPv6 forms, 3. meaningless addresses, NUL and invalid
#     UTF-8 in a name: 400 with the place;
#  4. a document beyond the id limits: 400 with the place, and the largest
#     valid document replaces another of that size in one apply;
#  5. a second agent on the same socket or the same NIC refuses to start
#     and leaves the first one's socket and program alone;
#  6. thousands of idle connections, slowloris and fd exhaustion: the API
#     and /metrics keep answering, the agent does not spin or flood its log;
#  7. a FIFO at the config path: refused, the agent keeps answering;
#  8. a neighbour file written without pause does not hold back a change of
#     the document (in the maps within 500 ms);
#  and an identical document re-applied keeps the generation.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

BUILD=${AETH_BUILD:-build}
AGENT=$BUILD/agent/aether-agent
CTL=$BUILD/agent/aetherctl
P=${AETH_TEST_PREFIX:-aeth-hd}-ref-$$
NS=$P
PIN=/sys/fs/bpf/$P
PIN2=/sys/fs/bpf/$P-2
RUN=/run/$P
SOCK=$RUN/agent.sock
CONF=$RUN/cfg/config.json
FD_LIMIT=${AETH_TEST_FD_LIMIT:-100}
FAILED=0
CHECKS=0
AGENT_PID=
BG_PIDS=()

cleanup() {
	local rc=$? p
	[ $FAILED -ne 0 ] && rc=1
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	stop_agent KILL
	# a sanitized agent (AETH_BUILD=build-asan) reports into its log
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$RUN/agent.log" "$RUN/second.log" 2>/dev/null; then
		echo "FAIL sanitizer report in the agent's log:"
		grep -hE -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
			"$RUN/agent.log" "$RUN/second.log" | head -40
		rc=1
	fi
	if [ $rc -ne 0 ] && [ -f "$RUN/agent.log" ]; then
		echo "--- agent log (last lines)"
		tail -n 15 "$RUN/agent.log"
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$PIN2" "$RUN"
	if [ $rc -eq 0 ]; then
		echo "PASS hard_refusals ($CHECKS checks)"
	else
		echo "FAIL hard_refusals"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "FAIL $*"; FAILED=1; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }

[ -x "$AGENT" ] && [ -x "$CTL" ] || die "build first ($AGENT, $CTL)"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

in_ns() { nsenter --net="/run/netns/$NS" "$@"; }

# nsenter itself in the background (not a shell function): $! must be the
# agent, which signals and /proc are checked against
start_agent() {
	nsenter --net="/run/netns/$NS" "$AGENT" --config "$CONF" --pin-dir "$PIN" --socket "$SOCK" \
		--metrics-addr 127.0.0.1:9464 --log-level info \
		>>"$RUN/agent.log" 2>&1 &
	AGENT_PID=$!
}

stop_agent() {
	[ -n "$AGENT_PID" ] || return 0
	kill "-${1:-TERM}" "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	echo "(agent exit status $?)" >>"$RUN/agent.log"
	AGENT_PID=
}

api() {	# api METHOD PATH [BODY_FILE]: prints "CODE BODY"
	local args=(-sS -m 5 --unix-socket "$SOCK" -X "$1" -o "$RUN/body"
		    -w '%{http_code}')
	[ $# -ge 3 ] && args+=(--data-binary "@$3")
	local code
	code=$(curl "${args[@]}" "http://agent$2" 2>/dev/null) || code=000
	echo "$code $(cat "$RUN/body" 2>/dev/null)"
}

status_field() {
	curl -sS -m 5 --unix-socket "$SOCK" http://agent/v1/status 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' \
			"$1" 2>/dev/null
}

prog_on() {	# prog_on IFNAME: XDP program id attached there (0: none)
	in_ns ip -j link show dev "$1" | python3 -c 'import json,sys
l = json.load(sys.stdin)[0]
x = l.get("xdp", {})
print(x.get("prog", {}).get("id", 0) or
      max([a.get("prog", {}).get("id", 0) for a in x.get("attached", [])] or [0]))'
}

# doc OUT [PYTHON]: the base document after running PYTHON on it (doc, svc)
doc() {
	python3 - "$1" "${2:-}" <<'EOF'
import json, sys
doc = {"version": 1,
       "node": {"interfaces": ["rf0"], "xdp_mode": "native",
                "addresses": {"ipv4": "192.0.2.11", "ipv6": "2001:db8::11"}},
       "maglev": {"seed": "5f3c0a1e9b7d2c44a1b2c3d4e5f60718", "table_size": 251},
       "conntrack": {"max_entries": 4096},
       "services": [{"name": "api", "vip": "203.0.113.10", "port": 6443,
                     "protocol": "tcp",
                     "authorized_networks": {"enabled": True,
                                             "cidrs": ["198.51.100.0/24"]},
                     "backends": [{"address": "192.0.2.21"},
                                  {"address": "192.0.2.22"}]}]}
svc = doc["services"][0]
exec(sys.argv[2])
open(sys.argv[1], "wb").write(json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogateescape"))
EOF
}

# expect_400 WHAT FILE PATH [MESSAGE_PART]: a PUT refused with that path
expect_400() {
	local gen out
	gen=$(status_field generation)
	out=$(api PUT /v1/config "$2")
	python3 - "$out" "$3" "${4:-}" <<'EOF' || die "$1: got $out"
import json, sys
code, _, body = sys.argv[1].partition(" ")
b = json.loads(body)
assert code == "400", code
assert b.get("path") == sys.argv[2], b
assert sys.argv[3] in b.get("error", "") + b.get("message", ""), b
EOF
	[ "$(status_field generation)" = "$gen" ] || die "$1: generation moved"
	ok "$1: 400 at $3"
}

ip netns add "$NS" || die "creating $NS"
in_ns ip link set lo up
in_ns ip link add rf0 type veth peer name rf1
in_ns ip link set rf0 up
in_ns ip link set rf1 up
mkdir -p "$RUN/cfg" || die "mkdir"
doc "$CONF"
start_agent
for _ in $(seq 50); do [ "$(status_field generation)" = 1 ] && break; sleep 0.2; done
[ "$(status_field generation)" = 1 ] || die "agent did not apply its first document"
PROG=$(prog_on rf0)
[ "$PROG" != 0 ] || die "no program on rf0"
ok "agent up, program $PROG on rf0"

# ---- 1. interfaces ---------------------------------------------------------
doc "$RUN/d" 'doc["node"]["interfaces"] = ["rf0", "nosuch0"]'
expect_400 "missing NIC" "$RUN/d" "node.interfaces[1]" "no interface nosuch0 on this node"
[ "$(prog_on rf0)" = "$PROG" ] || die "program left rf0 after a refused document"
ok "rf0 keeps program $PROG"
out=$(in_ns timeout 10 "$AGENT" --check-config "$RUN/d"); rc=$?
[ $rc = 1 ] && [[ "$out" == *"node.interfaces[1]: no interface nosuch0 on this node"* ]] ||
	die "--check-config on a missing NIC: rc $rc: $out"
ok "--check-config says the NIC is missing"

OBJ=$RUN/xdp_pass.o
clang -O2 -g -target bpf -idirafter /usr/include/x86_64-linux-gnu \
	-c scripts/lib/xdp_pass.bpf.c -o "$OBJ" || die "building xdp_pass"
in_ns ip link set dev rf1 xdpdrv obj "$OBJ" sec xdp || die "foreign program on rf1"
FOREIGN=$(prog_on rf1)
doc "$RUN/d" 'doc["node"]["interfaces"] = ["rf0", "rf1"]'
expect_400 "foreign program" "$RUN/d" "node.interfaces[1]" "not aether-lb's"
[ "$(prog_on rf1)" = "$FOREIGN" ] || die "foreign program on rf1 replaced"
ok "foreign program $FOREIGN on rf1 left alone"
in_ns ip link set dev rf1 xdpdrv off
# a NIC the program cannot go on in the mode asked (a bridge: no native XDP)
in_ns ip link add dm0 type bridge && in_ns ip link set dm0 up
doc "$RUN/d" 'doc["node"]["interfaces"] = ["rf1", "dm0"]'
expect_400 "NIC without native XDP" "$RUN/d" "node.interfaces[1]" "dm0: attaching in native mode"
[ "$(prog_on rf0)" = "$PROG" ] && [ "$(prog_on rf1)" = 0 ] && [ "$(prog_on dm0)" = 0 ] ||
	die "a refused document left programs behind: rf0 $(prog_on rf0) rf1 $(prog_on rf1) dm0 $(prog_on dm0)"
ok "rf0 keeps $PROG; nothing left on rf1 and dm0"

# ---- 2, 3 and names ----------------------------------------------------------
doc "$RUN/d" 'svc["authorized_networks"]["cidrs"].append("::ffff:198.51.100.0/120")'
expect_400 "mapped CIDR" "$RUN/d" "services[0].authorized_networks.cidrs[1]" "IPv4-mapped"
doc "$RUN/d" 'svc["backends"].append({"address": "::ffff:192.0.2.21"})'
expect_400 "mapped backend" "$RUN/d" "services[0].backends[2].address" "IPv4-mapped"
doc "$RUN/d" 'svc["vip"] = "::ffff:203.0.113.10"'
expect_400 "mapped VIP" "$RUN/d" "services[0].vip" "IPv4-mapped"
doc "$RUN/d" 'svc["authorized_networks"]["cidrs"] = ["198.51.100.0/024"]'
expect_400 "leading zeros" "$RUN/d" "services[0].authorized_networks.cidrs[0]" "leading zeros"
doc "$RUN/d" 'svc["vip"] = "192.0.2.11"'
expect_400 "VIP = node" "$RUN/d" "services[0].vip" "node's own address"
doc "$RUN/d" 'svc["vip"] = "127.0.0.10"'
expect_400 "VIP on loopback" "$RUN/d" "services[0].vip" "loopback"
doc "$RUN/d" 'svc["backends"].append({"address": "203.0.113.10"})'
expect_400 "backend = VIP" "$RUN/d" "services[0].backends[2].address" "the VIP of services[0]"
doc "$RUN/d" 'svc["backends"].append({"address": "192.0.2.11"})'
expect_400 "backend = node" "$RUN/d" "services[0].backends[2].address" "node's own address"
doc "$RUN/d" 'svc["name"] = "api\u0000x"'
expect_400 "NUL in a name" "$RUN/d" "services[0].name" "NUL character"
doc "$RUN/d" 'svc["name"] = "api\udcff"'
out=$(api PUT /v1/config "$RUN/d")
[[ "$out" == 400* && "$out" == *'"line"'* && "$out" == *"invalid UTF-8 (byte 0xff)"* ]] ||
	die "invalid UTF-8: $out"
ok "invalid UTF-8 in a name: 400 with line and column"

# ---- 4. id limits ------------------------------------------------------------
BIG='svc_of = lambda s, n, p: {"name": "s%d" % s, "vip": "203.0.113.%d" % (s + 20), "port": 80, "protocol": "tcp", "table_size": 2039, "backends": [{"address": "2001:db8:%x:%x::%x" % (p, s, b + 1)} for b in range(n)]}'
doc "$RUN/d" "$BIG"'
doc["services"] = [svc_of(s, 1024, 1) for s in range(9)]'
expect_400 "beyond the backend limit" "$RUN/d" "services[8].backends" "at most 8192"
doc "$RUN/a" "$BIG"'
doc["services"] = [svc_of(s, 1024, 1) for s in range(8)]'
doc "$RUN/b" "$BIG"'
doc["services"] = [svc_of(s, 1024, 2) for s in range(8)]'
for f in a b; do
	out=$(curl -sS -m 60 --unix-socket "$SOCK" -X PUT --data-binary "@$RUN/$f" \
		-o /dev/null -w '%{http_code}' http://agent/v1/config)
	[ "$out" = 200 ] || die "8,192 backends replacing 8,192 others: $out"
done
ok "the largest valid document replaces another of that size in one apply"
api PUT /v1/config "$CONF" >/dev/null

# ---- identical document ----------------------------------------------------
gen=$(status_field generation)
out=$(api PUT /v1/config "$CONF")
[[ "$out" == "200 {\"generation\":$gen}" ]] || die "identical PUT: $out (was $gen)"
kill -HUP "$AGENT_PID"; sleep 0.5
[ "$(status_field generation)" = "$gen" ] || die "SIGHUP of the same document moved the generation"
ok "identical document (PUT, SIGHUP) keeps generation $gen"

# ---- 5. a second agent -------------------------------------------------------
in_ns timeout 20 "$AGENT" --config "$CONF" --pin-dir "$PIN2" --socket "$SOCK" \
	--metrics-addr none >"$RUN/second.log" 2>&1
rc=$?
[ $rc != 0 ] && grep -q "another process serves it" "$RUN/second.log" ||
	die "second agent on a live socket: rc $rc, $(cat "$RUN/second.log")"
[ -S "$SOCK" ] && [ "$(status_field generation)" = "$gen" ] || die "first agent lost its socket"
ok "second agent on the same socket refused; the first still serves"
in_ns timeout 20 "$AGENT" --config "$CONF" --pin-dir "$PIN2" --socket "$RUN/other.sock" \
	--metrics-addr none >"$RUN/second.log" 2>&1
rc=$?
[ $rc != 0 ] && grep -q "another aether-agent" "$RUN/second.log" ||
	die "second agent on the same NIC: rc $rc, $(cat "$RUN/second.log")"
[ "$(prog_on rf0)" = "$PROG" ] || die "second agent took rf0"
sleep 2.5	# the first agent's node watch runs every 2 s: no swapping
[ "$(prog_on rf0)" = "$PROG" ] || die "program on rf0 changed"
ok "second agent on the same NIC refused; program $PROG stays"
rm -rf "$PIN2"

# ---- 7. a FIFO at the config path ------------------------------------------
cp "$CONF" "$RUN/conf.saved"
mkfifo "$RUN/cfg/fifo" && mv -f "$RUN/cfg/fifo" "$CONF"
sleep 0.5
kill -HUP "$AGENT_PID"
sleep 0.3
[ "$(status_field generation)" = "$gen" ] || die "agent stopped answering after a FIFO"
grep -q "not a regular file" "$RUN/agent.log" || die "no clear message about the FIFO"
out=$(in_ns timeout 5 "$AGENT" --check-config "$CONF"); rc=$?
[ $rc = 1 ] && [[ "$out" == *"not a regular file"* ]] || die "--check-config on a FIFO: rc $rc $out"
ok "FIFO refused (watch, SIGHUP, --check-config); the agent answers"
cp "$RUN/conf.saved" "$RUN/cfg/tmp" && mv -f "$RUN/cfg/tmp" "$CONF"

# ---- 8. a busy neighbour does not delay the document ----------------------
( while :; do echo line >>"$RUN/cfg/neighbour.log"; sleep 0.01; done ) &
BG_PIDS+=($!)
sleep 0.5
doc "$RUN/cfg/tmp" 'svc["backends"].append({"address": "192.0.2.23"})'
t0=$(date +%s%N)
mv -f "$RUN/cfg/tmp" "$CONF"
seen=
while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 3000 ]; do
	if "$CTL" --pin-dir "$PIN" -j backend list 2>/dev/null | grep -q '"192.0.2.23"'; then
		seen=$(( ($(date +%s%N) - t0) / 1000000 )); break
	fi
	sleep 0.02
done
[ -n "$seen" ] && [ "$seen" -le 500 ] || die "change under a busy neighbour took ${seen:-over 3000} ms"
ok "change in the maps after $seen ms while a neighbour file is written"
kill "${BG_PIDS[0]}"; wait "${BG_PIDS[0]}" 2>/dev/null; BG_PIDS=()

# ---- 6. connections ----------------------------------------------------------
# slowloris: 20 connections trickling a header that never ends
python3 - "$SOCK" >"$RUN/conns.out" 2>&1 <<'EOF'
import socket, sys, time
slow = []
for _ in range(20):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"GET /v1/status HTTP/1.1\r\n")
    slow.append(s)
t0 = time.time()
open_slow = len(slow)
while time.time() - t0 < 20 and open_slow:
    time.sleep(0.5)
    open_slow = 0
    for s in slow:
        try:
            s.sendall(b"X")
            open_slow += 1
        except OSError:
            pass
print("slowloris open after %.1f s: %d" % (time.time() - t0, open_slow))
EOF
awk '/slowloris/ { exit !($6 == 0 && $4 + 0 <= 13) }' "$RUN/conns.out" ||
	die "slowloris connections not closed: $(cat "$RUN/conns.out")"
ok "slowloris connections closed ($(cat "$RUN/conns.out"))"

# hold N connections open for S seconds, in the background
hold_conns() {
	python3 - "$SOCK" "$1" "$2" <<'EOF' &
import resource, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(int(sys.argv[2])):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        s.connect(sys.argv[1])
    except OSError:
        continue
    held.append(s)
time.sleep(float(sys.argv[3]))
EOF
	BG_PIDS+=($!)
}

metrics_ok() {
	in_ns curl -sf -m 5 http://127.0.0.1:9464/metrics | grep -q aether_config_generation
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$AGENT_PID/stat"; }

gen=$(status_field generation)
hold_conns 3000 10
sleep 2
t_cpu0=$(cpu_ticks)
log0=$(wc -l <"$RUN/agent.log")
for i in 1 2 3; do
	[ "$(status_field generation)" = "$gen" ] || die "status did not answer under 3,000 connections"
	# a loaded machine may be slow, never silent: one retry
	metrics_ok || metrics_ok || die "/metrics did not answer under 3,000 connections"
	sleep 1
done
t_cpu1=$(cpu_ticks)
log1=$(wc -l <"$RUN/agent.log")
[ $((t_cpu1 - t_cpu0)) -lt 150 ] || die "agent spun: $((t_cpu1 - t_cpu0)) ticks in 3 s"
[ $((log1 - log0)) -lt 50 ] || die "log flooded: $((log1 - log0)) lines in 3 s"
ok "status and /metrics answer under 3,000 connections; no spin, no log flood"
kill "${BG_PIDS[0]}" 2>/dev/null; wait "${BG_PIDS[0]}" 2>/dev/null; BG_PIDS=()

# the socket path taken over by someone else while the agent runs: on exit
# the agent removes only the socket it made
rm -f "$SOCK"
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
time.sleep(30)' "$SOCK" &
BG_PIDS+=($!)
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
stop_agent TERM
[ -S "$SOCK" ] || die "the agent removed a socket it did not make"
ok "on exit the agent leaves a socket it did not make"
kill "${BG_PIDS[0]}"; wait "${BG_PIDS[0]}" 2>/dev/null; BG_PIDS=()

# out of descriptors: a low limit, many connections held open
nsenter --net="/run/netns/$NS" prlimit --nofile="$FD_LIMIT:$FD_LIMIT" \
	"$AGENT" --config "$CONF" \
	--pin-dir "$PIN" --socket "$SOCK" --metrics-addr 127.0.0.1:9464 \
	--log-level info >>"$RUN/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 50); do [ -n "$(status_field generation)" ] && break; sleep 0.2; done
[ -n "$(status_field generation)" ] || die "agent with $FD_LIMIT descriptors did not start"
hold_conns 400 12
sleep 1
t_cpu0=$(cpu_ticks)
log0=$(wc -l <"$RUN/agent.log")
sleep 3
t_cpu1=$(cpu_ticks)
log1=$(wc -l <"$RUN/agent.log")
[ $((t_cpu1 - t_cpu0)) -lt 100 ] || die "agent spun out of descriptors: $((t_cpu1 - t_cpu0)) ticks in 3 s"
[ $((log1 - log0)) -lt 30 ] || die "log flooded out of descriptors: $((log1 - log0)) lines"
ok "out of descriptors: no spin ($((t_cpu1 - t_cpu0)) ticks in 3 s), $((log1 - log0)) log lines"
[ -n "$(status_field generation)" ] || die "API did not answer while the connections were held"
grep -q "interface is gone" "$RUN/agent.log" && die "out of descriptors read as a lost interface"
ok "API answers while the connections are still held"
grep -q "libevent: .*Error from accept\|accept: Too many open files" "$RUN/agent.log" &&
	ok "accept errors in the agent's own log format" || true
