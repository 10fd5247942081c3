#!/usr/bin/env bash
# Spoofed-source SYN floods at the :6443 VIP while the authorized client
# keeps a TLS stream open and opens new connections at its allowed rate:
#   A. from outside the authorized networks (hping3 --rand-source);
#   B. from inside them (random sources of 198.51.100.0/25, raw socket);
#   C. the same with the service's new-connection cap lowered below what
#      those sources may open;
#   D. B again on the smallest connection table, which the flood churns,
#      with the stream's backend drained in the middle of it.
# The stream never stalls, the client's new connections succeed (A and B:
# every one; C: as the service cap shares out), the LB node's agent keeps
# answering its API and metrics, and the figures are printed. In D the
# stream keeps its entry, and with it its drained backend.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

ITEST_NAME=hard_flood
topo_init "aeth-hd-fl-$$"
trap itest_end EXIT
trap 'exit 130' INT TERM
[ -x "$AGENT" ] && [ -x "$CTL" ] || die "build first ($AGENT, $CTL)"
command -v hping3 >/dev/null || die "hping3 missing (scripts/deps.sh)"
ITEST_TMP=$(mktemp -d)
FLOOD_SECONDS=${AETH_FLOOD_SECONDS:-12}

itest_up
topo_route_via lb1 || die "route via lb1"
# random sources arrive at the router from anywhere: no reverse-path check
topo_sysctl rtr net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.cin.rp_filter=0 \
	net.ipv4.conf.cout.rp_filter=0 net.ipv4.conf.default.rp_filter=0

reasons() { topo_ctl lb1 -j stats | python3 -c 'import json,sys
r = json.load(sys.stdin)["reasons"]
print(" ".join(str(r.get(k, 0)) for k in ("not_authorized", "rate_limited", "service_rate_limited")))'; }

# ms_of CMD...: run it, print its wall time in ms, fail if it fails
ms_of() {
	local t0 rc
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1
	rc=$?
	echo $((($(date +%s%N) - t0) / 1000000))
	return $rc
}

# probe_agent SECONDS OUT: API status and /metrics of lb1 every 0.5 s; the
# worst time of each and the failures into OUT
probe_agent() {
	local end=$((SECONDS + $1)) worst_api=0 worst_met=0 fails=0 t
	while [ $SECONDS -lt $end ]; do
		if t=$(ms_of curl -sf -m 3 --unix-socket "$(topo_sock lb1)" \
			http://agent/v1/status); then
			[ "$t" -gt $worst_api ] && worst_api=$t
		else
			fails=$((fails + 1))
		fi
		if t=$(ms_of topo_http lb1 /metrics); then
			[ "$t" -gt $worst_met ] && worst_met=$t
		else
			fails=$((fails + 1))
		fi
		sleep 0.5
	done
	echo "$worst_api $worst_met $fails" >"$2"
}

# inside_flood SECONDS: SYNs from random sources of 198.51.100.0/25 (the
# authorized /25 of the default document) as fast as one process can
inside_flood() {
	topo_exec cin python3 - "$VIP4" "$API_PORT" "$1" <<'EOF'
import random, socket, struct, sys, time
vip, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
dst = socket.inet_aton(vip)
# one template per source; every SYN a new 5-tuple (a repeated one would be
# a connection already recorded, not a new one), its checksum from a
# precomputed partial sum plus the source port
tmpl, part = [], []
for h in range(20, 127):
    src = socket.inet_aton("198.51.100.%d" % h)
    tcp = struct.pack("!HHIIBBHHH", 0, port, random.getrandbits(32), 0,
                      5 << 4, 0x02, 64240, 0, 0)
    p = src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp
    part.append(sum(struct.unpack("!%dH" % (len(p) // 2), p)))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
    tmpl.append(bytearray(ip + tcp))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
addr = (vip, 0)
n, i, sport, end = 0, 0, 1024, time.monotonic() + secs
while time.monotonic() < end:
    for _ in range(512):
        i = i + 1 if i + 1 < len(tmpl) else 0
        sport = sport + 1 if sport < 65535 else 1024
        buf = tmpl[i]
        c = part[i] + sport
        c = (c & 0xffff) + (c >> 16)
        c = (c & 0xffff) + (c >> 16)
        struct.pack_into("!H", buf, 20, sport)
        struct.pack_into("!H", buf, 36, ~c & 0xffff)
        try:
            s.sendto(buf, addr)
            n += 1
        except OSError:
            pass
print(n)
EOF
}

# phase NAME: stream + paced new connections + agent probes during a flood
# started by the caller; results in $ITEST_TMP/NAME.*
phase_start() {
	local name=$1
	topo_client cin --vip "$VIP4" stream --seconds $((FLOOD_SECONDS + 4)) \
		--stall 2 --rate 131072 >"$ITEST_TMP/$name.stream" 2>&1 &
	STREAM_PID=$!
	sleep 2
	read -r NA0 RL0 SRL0 <<<"$(reasons)"
}

phase_measure() {
	local name=$1
	probe_agent "$FLOOD_SECONDS" "$ITEST_TMP/$name.probe" &
	local probe=$!
	sleep 1
	# the client's allowed rate is 20/s with a burst of 40: 10/s, with the
	# usual TCP SYN retries (3 s connect timeout)
	topo_client cin --vip "$VIP4" --timeout 3 pace --rate 10 \
		--seconds $((FLOOD_SECONDS - 4)) >"$ITEST_TMP/$name.pace"
	wait "$probe"
	read -r NA1 RL1 SRL1 <<<"$(reasons)"
	wait "$STREAM_PID"
	STREAM_RC=$?
}

phase_report() {
	local name=$1 what=$2 s p a r
	s=$(cat "$ITEST_TMP/$name.stream")
	p=$(cat "$ITEST_TMP/$name.pace")
	read -r worst_api worst_met fails <"$ITEST_TMP/$name.probe"
	[ "$STREAM_RC" -eq 0 ] ||
		die "$what: the established stream stalled or broke: $s"
	ok "$what: stream kept flowing ($(json_get "$s" received) bytes echoed, no stall over 2 s)"
	[ "$fails" -eq 0 ] || die "$what: $fails agent API/metrics probes failed"
	[ "$worst_api" -lt 2000 ] && [ "$worst_met" -lt 2000 ] ||
		die "$what: agent slow: API ${worst_api} ms, metrics ${worst_met} ms"
	ok "$what: agent answered every probe (worst: API ${worst_api} ms, /metrics ${worst_met} ms)"
	a=$(json_get "$p" admitted)
	r=$(json_get "$p" refused)
	echo "     new connections of the authorized client at 10/s: $a admitted, $r refused"
	echo "     drops on lb1: not_authorized +$((NA1 - NA0)), rate_limited +$((RL1 - RL0)), service_rate_limited +$((SRL1 - SRL0))"
}

# --- A: from outside the authorized networks ---------------------------------
phase_start outside
topo_exec cout timeout -s INT "$FLOOD_SECONDS" hping3 -q -S -p "$API_PORT" \
	--rand-source -i u20 "$VIP4" >"$ITEST_TMP/hping.out" 2>&1 &
flood=$!
phase_measure outside
wait "$flood"
sent=$(grep -o '^[0-9]* packets transmitted' "$ITEST_TMP/hping.out" | cut -d' ' -f1)
echo "     hping3 --rand-source from cout: ${sent:-?} SYNs in ${FLOOD_SECONDS} s"
phase_report outside "outside flood"
[ $((NA1 - NA0)) -gt 1000 ] || die "outside flood reached lb1 (not_authorized +$((NA1 - NA0)))"
[ "$(json_get "$(cat "$ITEST_TMP/outside.pace")" refused)" -eq 0 ] ||
	die "outside flood: every new connection of the authorized client succeeds"
ok "outside flood: every new connection of the authorized client succeeded"

# --- B: spoofed sources inside the authorized networks -----------------------
# 107 sources of the authorized /25: each source's own limit (20/s, burst
# 40) holds them, the client's bucket is its own
phase_start inside
inside_flood "$FLOOD_SECONDS" >"$ITEST_TMP/inside.sent" 2>&1 &
flood=$!
phase_measure inside
wait "$flood"
echo "     raw SYNs from random 198.51.100.20-126 sources: $(cat "$ITEST_TMP/inside.sent") in ${FLOOD_SECONDS} s"
phase_report inside "inside flood"
[ $((RL1 - RL0)) -gt 1000 ] ||
	die "inside flood: per-source limits held (rate_limited +$((RL1 - RL0)))"
ok "inside flood: per-source limits dropped $((RL1 - RL0)) SYNs"
[ "$(json_get "$(cat "$ITEST_TMP/inside.pace")" refused)" -eq 0 ] ||
	die "inside flood: every new connection of the authorized client succeeds"
ok "inside flood: every new connection of the authorized client succeeded"

# --- C: the same, with the service cap below what the sources may send -------
# 107 sources x 20/s is over a cap of 1000/s: the cap holds the total, and
# the client's new connections share what it lets through
itest_template "$ITEST_TMP/capped.json" \
	'svc("kube-apiserver")["rate_limit"]["service_new_connections_per_second"] = 1000'
itest_apply_template "$ITEST_TMP/capped.json"
phase_start capped
inside_flood "$FLOOD_SECONDS" >"$ITEST_TMP/capped.sent" 2>&1 &
flood=$!
phase_measure capped
wait "$flood"
echo "     raw SYNs from random 198.51.100.20-126 sources: $(cat "$ITEST_TMP/capped.sent") in ${FLOOD_SECONDS} s"
phase_report capped "inside flood, service cap 1000/s"
[ $((SRL1 - SRL0)) -gt 0 ] ||
	die "capped flood: the service cap held (service_rate_limited +0)"
ok "capped flood: the service cap dropped $((SRL1 - SRL0)) SYNs"
a=$(json_get "$(cat "$ITEST_TMP/capped.pace")" admitted)
[ "$a" -gt 0 ] || die "capped flood: some new connections of the client succeed"
ok "capped flood: $a new connections of the authorized client succeeded (TCP retries included)"

# --- D: a connection table far too small, and the stream's backend drained --
# lb1 restarted on the smallest table, 1,024 entries (128 buckets), whose
# every entry the admitted SYNs of the inside flood (107 sources at 20/s,
# over 2,000 a second) replace twice a second. The stream's entry was confirmed by its handshake, the flood's
# never are, so the flood replaces its own entries (docs/guard.md). Then
# the stream's backend is drained mid-flood: had its entry been given up,
# its packets would follow Maglev to another backend, which resets it.
itest_template "$ITEST_TMP/small.json" "doc['conntrack']['max_entries'] = 1024"
topo_agent_kill lb1
nsenter --net="/run/netns/$P-lb1" "$AGENT" --detach --pin-dir "$(topo_pin_dir lb1)" \
	--socket "$(topo_sock lb1)" >"$ITEST_TMP/detach.log" 2>&1 ||
	die "lb1 --detach: $(cat "$ITEST_TMP/detach.log")"
topo_set_template "$ITEST_TMP/small.json" || die "writing the documents"
topo_agent_start lb1
topo_wait_ready lb1 30 || die "lb1 agent restarted"
[ "$(itest_metric lb1 aether_conntrack_max_entries)" = 1024 ] ||
	die "lb1's table of 1,024 entries (max_entries $(itest_metric lb1 aether_conntrack_max_entries))"
rm -f "$ITEST_TMP/stop"
topo_client cin --vip "$VIP4" stream --seconds 60 --stall 2 --rate 131072 \
	--announce "$ITEST_TMP/small.backend" --until "$ITEST_TMP/stop" \
	>"$ITEST_TMP/small.stream" 2>&1 &
spid=$!
X=$(itest_stream_backend "$ITEST_TMP/small.backend") || die "stream started"
ev0=$(itest_metric lb1 aether_conntrack_evicted_total)
inside_flood "$FLOOD_SECONDS" >"$ITEST_TMP/small.sent" 2>&1 &
flood=$!
sleep 3
itest_template "$ITEST_TMP/drained.json" "doc['conntrack']['max_entries'] = 1024
be('kube-apiserver', '${TOPO_V4[$X]}')['state'] = 'draining'"
itest_apply_template "$ITEST_TMP/drained.json"
ok "backend $X of the stream drained in the middle of the flood"
wait "$flood"
ev1=$(itest_metric lb1 aether_conntrack_evicted_total)
echo "     raw SYNs from random 198.51.100.20-126 sources: $(cat "$ITEST_TMP/small.sent"); lb1 evicted $((ev1 - ev0)) entries of its 1,024"
[ $((ev1 - ev0)) -gt 1000 ] ||
	die "the flood churned lb1's table (conntrack_evicted +$((ev1 - ev0)))"
itest_stream_kept "$spid" "$ITEST_TMP/small.stream" "$X" || die "$ITEST_STREAM"
ok "stream kept its drained backend through the flood: $(json_get "$ITEST_STREAM" received) bytes, every one echoed"
topo_ctl lb1 -j conntrack list --source "${TOPO_V4[cin]}" >"$ITEST_TMP/small.ct" ||
	die "conntrack list on lb1"
python3 -c 'import json, sys
rows = json.load(open(sys.argv[1]))
assert any(r["backend"] == sys.argv[2] and r["confirmed"] for r in rows), rows
' "$ITEST_TMP/small.ct" "${TOPO_V4[$X]}" ||
	die "the stream's confirmed entry on $X is in lb1's table: $(cat "$ITEST_TMP/small.ct")"
ok "the stream's entry outlived $((ev1 - ev0)) evictions, confirmed, on $X"
