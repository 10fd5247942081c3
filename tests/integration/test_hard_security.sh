#!/usr/bin/env bash
# The agent's API under hostile callers: non-root peers are refused (by the
# socket's mode, and by the peer-credential check behind it), bodies and
# headers are bounded, junk and idle connections do not stop it answering,
# and nothing a refused request carried is applied.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

BUILD=${AETH_BUILD:-build}
AGENT=$BUILD/agent/aether-agent
P=aeth-hd-sec-$$
NS=$P
PIN=/sys/fs/bpf/$P
RUN=/run/$P
SOCK=$RUN/api/agent.sock
METRICS=127.0.0.1:9481
FAILED=0
CHECKS=0
AGENT_PID=

cleanup() {
	local rc=$?
	[ $FAILED -ne 0 ] && rc=1
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null
		wait "$AGENT_PID" 2>/dev/null
	fi
	# a sanitized agent (AETH_BUILD=build-asan) reports on its way out
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
		"$RUN/agent.log" 2>/dev/null; then
		echo "FAIL sanitizer report in the agent's log:"
		grep -A 12 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
			"$RUN/agent.log" | head -40
		rc=1
	fi
	if [ $rc -ne 0 ] && [ -f "$RUN/agent.log" ]; then
		echo "--- agent log (last lines)"
		tail -n 15 "$RUN/agent.log"
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$RUN"
	if [ $rc -eq 0 ]; then
		echo "PASS hard_security ($CHECKS checks)"
	else
		echo "FAIL hard_security"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "FAIL $*"; FAILED=1; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }

[ -x "$AGENT" ] || die "build first ($AGENT)"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# api METHOD PATH [CURL ARGS...]: prints the HTTP status (000: no answer)
api() {
	local m=$1 p=$2
	shift 2
	curl -sS -m 20 -o "$RUN/body" -w '%{http_code}' --unix-socket "$SOCK" \
		-X "$m" "$@" "http://agent$p" 2>"$RUN/curl.err"
}

as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

generation() {
	curl -sS -m 5 --unix-socket "$SOCK" http://agent/v1/status |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])'
}

alive() {
	kill -0 "$AGENT_PID" 2>/dev/null && [ "$(api GET /v1/status)" = 200 ]
}

mkdir -p "$RUN/api"
chmod 0755 "$RUN" "$RUN/api"	# only the socket's own mode keeps others out
ip netns add "$NS" || die "namespace"
ip -n "$NS" link set lo up
ip -n "$NS" link add hd0 type veth peer name hd1
ip -n "$NS" link set hd0 up
ip -n "$NS" link set hd1 up
ip -n "$NS" addr add 192.0.2.11/24 dev hd0

cat >"$RUN/config.json" <<'EOF'
{"version": 1,
 "node": {"interfaces": ["hd0"], "xdp_mode": "native",
          "addresses": {"ipv4": "192.0.2.11"}, "mtu": 1500},
 "maglev": {"seed": "5f3c0a1e9b7d2c44a1b2c3d4e5f60718", "table_size": 251},
 "conntrack": {"max_entries": 4096},
 "services": [{"name": "api", "vip": "203.0.113.10", "port": 6443,
   "protocol": "tcp",
   "authorized_networks": {"enabled": true, "cidrs": ["198.51.100.0/24"]},
   "backends": [{"address": "192.0.2.21"}]}]}
EOF
# nsenter, not ip netns exec: that one remounts /sys and hides the bpffs
nsenter --net="/run/netns/$NS" "$AGENT" --config "$RUN/config.json" \
	--pin-dir "$PIN" --socket "$SOCK" --metrics-addr "$METRICS" \
	--log-level info >"$RUN/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do
	[ -S "$SOCK" ] && [ "$(api GET /v1/status)" = 200 ] && break
	kill -0 "$AGENT_PID" 2>/dev/null || die "agent exited at start"
	sleep 0.1
done
gen0=$(generation)
[ -n "$gen0" ] && [ "$gen0" -ge 1 ] || die "agent applied its config"
ok "agent up, generation $gen0"

# --- who may talk to it ------------------------------------------------------
mode=$(stat -c %a "$SOCK")
[ "$mode" = 600 ] || die "API socket mode is $mode (want 600)"
ok "API socket is mode 0600, owned by $(stat -c %U "$SOCK")"

code=$(as_nobody curl -sS -m 5 -o /dev/null -w '%{http_code}' \
	--unix-socket "$SOCK" http://agent/v1/status 2>/dev/null)
[ "$code" = 000 ] || die "nobody reached the API through a 0600 socket ($code)"
ok "nobody cannot connect to the 0600 socket"

# were the mode ever wrong, the peer-credential check still refuses
chmod 0666 "$SOCK"
code=$(as_nobody curl -sS -m 5 -o /dev/null -w '%{http_code}' \
	--unix-socket "$SOCK" http://agent/v1/status 2>/dev/null)
[ "$code" = 403 ] || die "GET as nobody on a 0666 socket gave $code (want 403)"
sed 's/"cidrs": \["198.51.100.0\/24"\]/"cidrs": ["0.0.0.0\/0"]/' \
	"$RUN/config.json" >"$RUN/open.json"
code=$(as_nobody curl -sS -m 5 -o /dev/null -w '%{http_code}' \
	--unix-socket "$SOCK" -X PUT --data-binary "@$RUN/open.json" \
	http://agent/v1/config 2>/dev/null)
[ "$code" = 403 ] || die "PUT as nobody on a 0666 socket gave $code (want 403)"
[ "$(generation)" = "$gen0" ] || die "a refused PUT changed the generation"
chmod 0600 "$SOCK"
ok "with the socket opened to all, nobody still gets 403 and applies nothing"

# --- bounded requests -------------------------------------------------------
# 64 MiB is the body limit (agent/daemon/api.h): one byte more
head -c $((64 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$RUN/big.json"
code=$(api PUT /v1/config --data-binary "@$RUN/big.json" \
	-H 'Content-Type: application/json')
rm -f "$RUN/big.json"
case $code in
413 | 000) ;;
*) die "oversized PUT gave $code (want 413 or a closed connection)" ;;
esac
alive || die "agent answers after an oversized PUT"
[ "$(generation)" = "$gen0" ] || die "oversized PUT changed the generation"
ok "PUT of 64 MiB + 1 refused ($code), agent answers, nothing applied"

# a chunked body grows without a Content-Length up front
code=$(head -c $((64 * 1024 * 1024 + 4096)) /dev/zero | tr '\0' ' ' |
	api PUT /v1/config -H 'Transfer-Encoding: chunked' --data-binary @-)
[ "$code" != 200 ] || die "oversized chunked PUT accepted"
alive || die "agent answers after an oversized chunked PUT"
[ "$(generation)" = "$gen0" ] || die "oversized chunked PUT changed state"
ok "chunked PUT over the limit refused ($code), agent answers"

long=$(head -c 40000 /dev/zero | tr '\0' a)
code=$(api GET /v1/status -H "X-Junk: $long")
[ "$code" != 200 ] || die "40 kB of headers accepted"
alive || die "agent answers after oversized headers"
ok "40 kB header refused ($code), agent answers"

code=$(api PUT /v1/config --data-binary '{"version": 1, "node": ')
[ "$code" = 400 ] || die "truncated document gave $code (want 400)"
grep -q '"error"' "$RUN/body" || die "400 without an error message"
[ "$(generation)" = "$gen0" ] || die "invalid document changed the generation"
ok "invalid document: 400 with $(head -c 120 "$RUN/body")"

# junk on the socket, then many idle connections held open
python3 - "$SOCK" <<'EOF' || die "junk sender"
import os, socket, sys
path = sys.argv[1]
junk = [b"\x00" * 100, b"GET /" + b"A" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"PUT /v1/config HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"PUT /v1/config HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"\r\n\r\n\r\n", b"GET /v1/status HTTP/9.9\r\n\r\n",
        b"DELETE /v1/config HTTP/1.1\r\n\r\n", os.urandom(3000)]
for j in junk:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(path)
    try:
        s.sendall(j)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
EOF
alive || die "agent answers after junk requests"
ok "junk requests (NUL bytes, long URI, bad lengths, bad version, random)"

python3 - "$SOCK" "$RUN" <<'EOF' &
import socket, sys, time, os
held = []
for i in range(200):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: a\r\n")  # never finished
    held.append(s)
open(os.path.join(sys.argv[2], "held"), "w").close()
time.sleep(15)
EOF
holder=$!
for _ in $(seq 100); do [ -f "$RUN/held" ] && break; sleep 0.1; done
[ -f "$RUN/held" ] || die "opening 200 idle connections"
t0=$(date +%s%N)
code=$(api GET /v1/status)
ms=$((($(date +%s%N) - t0) / 1000000))
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
[ "$code" = 200 ] || die "status with 200 idle connections open gave $code"
ok "with 200 half-sent requests held open, status answered in ${ms} ms"

# the metrics listener is on loopback only
ip netns exec "$NS" ss -ltnH | awk '{print $4}' | grep -qx "$METRICS" ||
	die "metrics listener not on $METRICS"
ok "metrics listener bound to $METRICS only"
