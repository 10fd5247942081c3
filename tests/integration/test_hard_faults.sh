#!/usr/bin/env bash
# Faults under a running agent:
#  - kill -9 in the middle of an apply, at random points of it, several
#    times: every published service's Maglev table names only in-use
#    backends of that service, and exactly the old or the new document's
#    set (never a mix); the next start converges on its document;
#  - a full map during an apply (aeth_vip filled by someone else): the apply
#    is reported as failed and the previous state stays, then succeeds once
#    there is room;
#  - the interface removed and re-added while the agent runs: the agent
#    logs the loss once and attaches again on its own within 5 s;
#  - the pin directory deleted under the running agent: every pin is back
#    within 5 s, over the same maps.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

BUILD=${AETH_BUILD:-build}
AGENT=$BUILD/agent/aether-agent
CTL=$BUILD/agent/aetherctl
P=${AETH_TEST_PREFIX:-aeth-hd}-flt-$$
NS=$P
PIN=/sys/fs/bpf/$P
RUN=/run/$P
SOCK=$RUN/agent.sock
N_SVC=${AETH_FAULT_SERVICES:-300}
TRIES=${AETH_FAULT_TRIES:-4}
FAILED=0
CHECKS=0
AGENT_PID=

cleanup() {
	local rc=$?
	[ $FAILED -ne 0 ] && rc=1
	stop_agent KILL
	if [ $rc -ne 0 ] && [ -f "$RUN/agent.log" ]; then
		echo "--- agent log (last lines)"
		tail -n 15 "$RUN/agent.log"
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$PIN" "$RUN"
	if [ $rc -eq 0 ]; then
		echo "PASS hard_faults ($CHECKS checks)"
	else
		echo "FAIL hard_faults"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "FAIL $*"; FAILED=1; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok   $*"; }
note() { echo "note $*"; }

[ -x "$AGENT" ] && [ -x "$CTL" ] || die "build first ($AGENT, $CTL)"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

start_agent() {	# start_agent CONFIG
	nsenter --net="/run/netns/$NS" "$AGENT" --config "$1" \
		--pin-dir "$PIN" --socket "$SOCK" --metrics-addr none \
		--log-level info >>"$RUN/agent.log" 2>&1 &
	AGENT_PID=$!
}

stop_agent() {	# stop_agent [SIGNAL]
	[ -n "$AGENT_PID" ] || return 0
	kill "-${1:-TERM}" "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}

status_field() {	# status_field KEY
	curl -sS -m 5 --unix-socket "$SOCK" http://agent/v1/status 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' \
			"$1" 2>/dev/null
}

# wait_applied HASH_OF_FILE SECONDS: until the agent reports that document
wait_applied() {
	local want i
	want=$(sha256sum "$1" | cut -d' ' -f1)
	for ((i = 0; i < $2 * 5; i++)); do
		[ "$(status_field config_hash)" = "$want" ] && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

# gen_doc N a|b OUT: N services; document a gives each two backends,
# document b three others (same services, every table changes)
gen_doc() {
	python3 - "$@" <<'EOF'
import json, sys
n, which, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
svcs = []
for i in range(n):
    hi, lo = divmod(i, 256)
    if which == "a":
        bes = ["2001:db8:a:%x::%x" % (i, k) for k in (1, 2)]
    else:
        bes = ["2001:db8:b:%x::%x" % (i, k) for k in (1, 2, 3)]
    svcs.append({"name": "s%d" % i, "vip": "203.0.113.%d" % (10 + hi),
                 "port": 10000 + lo, "protocol": "tcp", "table_size": 1021,
                 "backends": [{"address": b} for b in bes]})
doc = {"version": 1,
       "node": {"interfaces": ["hd0"], "xdp_mode": "native",
                "addresses": {"ipv4": "192.0.2.11", "ipv6": "2001:db8::11"},
                "mtu": 1500},
       "maglev": {"seed": "5f3c0a1e9b7d2c44a1b2c3d4e5f60718",
                  "table_size": 251},
       "conntrack": {"max_entries": 4096},
       "services": svcs}
json.dump(doc, open(out, "w"))
EOF
}

# check_maps A B: reads the pinned maps with bpf(2) and prints one JSON line
# {"services", "old", "new", "mixed", "bad"}: per published service whether
# its table is exactly document A's backend set, B's, or neither.
check_maps() {
	python3 - "$PIN" "$@" <<'EOF'
import ctypes, ipaddress, json, os, struct, sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_BPF = 321
OBJ_GET, LOOKUP, NEXT_KEY, FD_BY_ID = 7, 1, 4, 14

def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r

def obj_get(path):
    p = ctypes.create_string_buffer(path.encode())
    return bpf(OBJ_GET, struct.pack("QII", ctypes.addressof(p), 0, 0))

def lookup(fd, key, vsize):
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(vsize)
    try:
        bpf(LOOKUP, struct.pack("IIQQQ", fd, 0, ctypes.addressof(k),
                                ctypes.addressof(v), 0))
    except OSError:
        return None
    return v.raw

def keys(fd, ksize):
    out, prev = [], None
    while True:
        nk = ctypes.create_string_buffer(ksize)
        if prev is None:
            attr = struct.pack("IIQQ", fd, 0, 0, ctypes.addressof(nk))
        else:
            pk = ctypes.create_string_buffer(prev, ksize)
            attr = struct.pack("IIQQ", fd, 0, ctypes.addressof(pk),
                               ctypes.addressof(nk))
        try:
            bpf(NEXT_KEY, attr)
        except OSError:
            return out
        prev = nk.raw
        out.append(prev)

def addr(raw16, fam):
    if fam == 2:
        return str(ipaddress.IPv4Address(raw16[:4]))
    return str(ipaddress.IPv6Address(raw16))

pin, fa, fb = sys.argv[1], sys.argv[2], sys.argv[3]
want = {}
for tag, f in (("old", fa), ("new", fb)):
    for s in json.load(open(f))["services"]:
        k = (s["vip"], s["port"])
        want.setdefault(k, {})[tag] = frozenset(
            str(ipaddress.ip_address(b["address"])) for b in s["backends"])

svc = obj_get(pin + "/aeth_svc")
mg = obj_get(pin + "/aeth_maglev")
be = obj_get(pin + "/aeth_backend")
backends = {}
res = {"services": 0, "old": 0, "new": 0, "mixed": [], "bad": []}
for k in keys(svc, 20):
    v = lookup(svc, k, 56)
    if v is None:
        continue
    fam, port = k[19], struct.unpack(">H", k[16:18])[0]
    sid, flags, slot, size = struct.unpack("<IIII", v[:16])
    name = "%s:%d" % (addr(k[:16], fam), port)
    res["services"] += 1
    inner_id = lookup(mg, struct.pack("<I", slot), 4)
    if size == 0 or inner_id is None:
        res["bad"].append(name + ": no table")
        continue
    ifd = bpf(FD_BY_ID, struct.pack("III", struct.unpack("<I", inner_id)[0], 0, 0))
    ids = set()
    for i in range(size):
        e = lookup(ifd, struct.pack("<I", i), 4)
        if e is None:
            res["bad"].append(name + ": table shorter than its size")
            break
        ids.add(struct.unpack("<I", e)[0])
    os.close(ifd)
    got = set()
    for bid in ids:
        if bid == 0xffffffff:
            continue
        if bid not in backends:
            backends[bid] = lookup(be, struct.pack("<I", bid), 28)
        b = backends[bid]
        bflags, bsvc = struct.unpack("<II", b[20:28])
        if not bflags & 1 or bsvc != sid:
            res["bad"].append("%s: backend %d not in use for it" % (name, bid))
        got.add(addr(b[:16], b[16]))
    w = want.get((addr(k[:16], fam), port), {})
    if got == w.get("old"):
        res["old"] += 1
    elif got == w.get("new"):
        res["new"] += 1
    else:
        res["mixed"].append("%s: %s" % (name, sorted(got)))
res["mixed"] = res["mixed"][:5]
res["bad"] = res["bad"][:5]
print(json.dumps(res))
EOF
}

json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
json_len() { python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])[sys.argv[2]]))' "$1" "$2"; }

mkdir -p "$RUN"
ip netns add "$NS" || die "namespace"
ip -n "$NS" link set lo up
ip -n "$NS" link add hd0 type veth peer name hd1
ip -n "$NS" link set hd0 up
ip -n "$NS" link set hd1 up

gen_doc "$N_SVC" a "$RUN/a.json"
gen_doc "$N_SVC" b "$RUN/b.json"

# --- kill -9 in the middle of applies ---------------------------------------
# how long an apply of b over a takes here, to aim the kills inside it:
# measured as in the tries, over an agent just restarted on a
start_agent "$RUN/a.json"
wait_applied "$RUN/a.json" 120 || die "agent applied document a"
stop_agent TERM
start_agent "$RUN/a.json"
wait_applied "$RUN/a.json" 120 || die "agent restarted on document a"
t0=$(date +%s%N)
curl -sS -m 300 --unix-socket "$SOCK" -X PUT --data-binary "@$RUN/b.json" \
	http://agent/v1/config >/dev/null || die "PUT of document b"
apply_ms=$((($(date +%s%N) - t0) / 1000000))
r=$(check_maps "$RUN/a.json" "$RUN/b.json")
[ "$(json_field "$r" new)" = "$N_SVC" ] || die "document b applied: $r"
ok "an apply of $N_SVC services over $N_SVC others takes ${apply_ms} ms"

partial=0	# tries whose kill left some tables old and some new
for ((try = 1; try <= TRIES; try++)); do
	# back to a (a restart over the pinned maps converges on it)
	stop_agent TERM
	start_agent "$RUN/a.json"
	wait_applied "$RUN/a.json" 120 || die "try $try: restart converges on a"
	r=$(check_maps "$RUN/a.json" "$RUN/b.json")
	[ "$(json_field "$r" old)" = "$N_SVC" ] ||
		die "try $try: after the restart every service has a's table: $r"
	# the kill lands somewhere in 1%..95% of the apply, log-uniformly: the
	# tables switch early in an apply, the rest is cleaning up behind
	delay_ms=$(awk -v s="$RANDOM" -v t="$apply_ms" \
		'BEGIN { srand(s); printf "%d", t * exp(log(0.01) + rand() * (log(0.95) - log(0.01))) }')
	curl -sS -m 300 --unix-socket "$SOCK" -X PUT \
		--data-binary "@$RUN/b.json" http://agent/v1/config \
		>/dev/null 2>&1 &
	put=$!
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	stop_agent KILL
	wait "$put" 2>/dev/null
	r=$(check_maps "$RUN/a.json" "$RUN/b.json")
	[ "$(json_field "$r" services)" = "$N_SVC" ] ||
		die "try $try: every service still published after kill -9: $r"
	[ "$(json_len "$r" mixed)" = 0 ] && [ "$(json_len "$r" bad)" = 0 ] ||
		die "try $try: a table mixes documents or names a stale backend: $r"
	n_old=$(json_field "$r" old)
	[ "$n_old" -gt 0 ] && [ "$n_old" -lt "$N_SVC" ] && partial=$((partial + 1))
	ok "try $try: kill -9 at ${delay_ms} ms: $n_old tables old, $(json_field "$r" new) new, none mixed"
	# the next start converges on b
	start_agent "$RUN/b.json"
	wait_applied "$RUN/b.json" 120 || die "try $try: restart converges on b"
	r=$(check_maps "$RUN/a.json" "$RUN/b.json")
	[ "$(json_field "$r" new)" = "$N_SVC" ] && [ "$(json_len "$r" bad)" = 0 ] ||
		die "try $try: after the restart every table is b's: $r"
	ok "try $try: restarted agent converged on b"
done

note "$partial of $TRIES kills landed while tables were being switched"

# --- a full map during an apply ---------------------------------------------
# someone else fills aeth_vip (4096 entries) so the next new VIP has no room
stop_agent TERM
gen_doc 2 a "$RUN/small.json"
start_agent "$RUN/small.json"
wait_applied "$RUN/small.json" 60 || die "agent applied the small document"
gen_small=$(status_field generation)
python3 - "$RUN/small.json" "$RUN/grown.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["services"].append({"name": "new-vip", "vip": "2001:db8:f::77", "port": 443,
                      "protocol": "tcp",
                      "backends": [{"address": "2001:db8:a::77"}]})
json.dump(d, open(sys.argv[2], "w"))
EOF
used=$(bpftool -j map dump pinned "$PIN/aeth_vip" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
for ((i = 0; i < 4096 - used; i++)); do
	# 2001:db8:eeee::i, family 10
	printf 'map update pinned %s key 0x20 0x01 0x0d 0xb8 0xee 0xee 0 0 0 0 0 0 0 0 0x%02x 0x%02x 0x0a 0 0 0 value 1 0 0 0\n' \
		"$PIN/aeth_vip" $((i >> 8)) $((i & 255))
done >"$RUN/fill.batch"
bpftool batch file "$RUN/fill.batch" >/dev/null 2>&1 || die "filling aeth_vip"
code=$(curl -sS -m 60 -o "$RUN/body" -w '%{http_code}' --unix-socket "$SOCK" \
	-X PUT --data-binary "@$RUN/grown.json" http://agent/v1/config)
[ "$code" != 200 ] || die "apply into a full aeth_vip reported success"
kill -0 "$AGENT_PID" || die "agent survived the failed apply"
[ "$(status_field generation)" = "$gen_small" ] ||
	die "failed apply changed the generation"
r=$(check_maps "$RUN/small.json" "$RUN/small.json")
[ "$(json_field "$r" services)" = 2 ] && [ "$(json_field "$r" old)" = 2 ] ||
	die "previous state kept after the failed apply: $r"
"$CTL" --pin-dir "$PIN" -j service list | grep -q new-vip &&
	die "the service that did not fit is listed"
ok "apply into a full map: HTTP $code ($(head -c 150 "$RUN/body")), previous state kept"
sed 's/^map update/map delete/; s/ value.*//' "$RUN/fill.batch" >"$RUN/unfill.batch"
bpftool batch file "$RUN/unfill.batch" >/dev/null 2>&1 || die "emptying aeth_vip"
code=$(curl -sS -m 60 -o "$RUN/body" -w '%{http_code}' --unix-socket "$SOCK" \
	-X PUT --data-binary "@$RUN/grown.json" http://agent/v1/config)
[ "$code" = 200 ] || die "apply once there is room: $code $(cat "$RUN/body")"
"$CTL" --pin-dir "$PIN" -j service list | grep -q new-vip ||
	die "the new service is listed once it fits"
ok "with room again the same document applies"

# --- the interface removed and re-added -------------------------------------
# the XDP program id on hd0 (ip -j), empty when none
xdp_prog() {
	ip -n "$NS" -j -d link show hd0 2>/dev/null | python3 -c '
import json, sys
try:
    l = json.load(sys.stdin)[0]
    print(l.get("xdp", {}).get("prog", {}).get("id", ""))
except Exception:
    print("")'
}
# "ifindex prog_id" of hd0 as aetherctl status reports it
ctl_iface() {
	"$CTL" --pin-dir "$PIN" -j status 2>/dev/null | python3 -c '
import json, sys
for f in json.load(sys.stdin)["interfaces"]:
    if f["name"] == "hd0":
        print(f["ifindex"], f["prog_id"])'
}
ifindex_of() { ip -n "$NS" -j link show hd0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ifindex"])'; }
prog0=$(xdp_prog)
[ -n "$prog0" ] || die "program attached to hd0"
log_lines=$(wc -l <"$RUN/agent.log")
ip -n "$NS" link del hd0
sleep 3
kill -0 "$AGENT_PID" || die "agent survives its interface going away"
[ -n "$(status_field generation)" ] || die "API answers with the interface gone"
[ "$(tail -n +$((log_lines + 1)) "$RUN/agent.log" | grep -c 'hd0: interface is gone')" = 1 ] ||
	die "the missing interface is logged once: $(tail -n +$((log_lines + 1)) "$RUN/agent.log")"
[ "$(ctl_iface)" = "0 0" ] || die "aetherctl status shows hd0 absent: $(ctl_iface)"
ok "interface removed: the agent keeps running, answering, and logs it once"
ip -n "$NS" link add hd0 type veth peer name hd1
ip -n "$NS" link set hd0 up
ip -n "$NS" link set hd1 up
for _ in $(seq 25); do [ -n "$(xdp_prog)" ] && break; sleep 0.2; done
prog1=$(xdp_prog)
[ -n "$prog1" ] || die "interface re-added: program attached again within 5 s"
# the agent's own program (a restarted agent may have kept an earlier
# instance, so the id can differ): its name, over the pinned aeth_svc
svc_id=$(bpftool -j map show pinned "$PIN/aeth_svc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
bpftool -j prog show id "$prog1" | python3 -c '
import json, sys
p = json.load(sys.stdin)
sys.exit(0 if p["name"].startswith("aether_lb") and int(sys.argv[1]) in p["map_ids"] else 1)' "$svc_id" ||
	die "interface re-added: program $prog1 is aether_lb over the pinned maps"
nsenter --net="/run/netns/$NS" bpftool -j net show dev hd0 | grep -q "\"id\":$prog1" ||
	die "bpftool net shows program $prog1 on hd0"
want="$(ifindex_of) $prog1"
for _ in $(seq 10); do [ "$(ctl_iface)" = "$want" ] && break; sleep 0.2; done
[ "$(ctl_iface)" = "$want" ] || die "aetherctl status shows hd0 as '$want': $(ctl_iface)"
ok "interface re-added: program $prog1 attached again on its own (ifindex and program in aetherctl status)"

# --- the pin directory deleted ----------------------------------------------
pins0=$(ls "$PIN" | sort | tr '\n' ' ')
map_id() { bpftool -j map show pinned "$PIN/$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
ids0="$(map_id aeth_svc) $(map_id aeth_ct) $(map_id aeth_meta)"
gen0=$("$CTL" --pin-dir "$PIN" -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
log_lines=$(wc -l <"$RUN/agent.log")
rm -rf "$PIN"
for _ in $(seq 25); do
	[ "$(ls "$PIN" 2>/dev/null | sort | tr '\n' ' ')" = "$pins0" ] && break
	sleep 0.2
done
kill -0 "$AGENT_PID" || die "agent survives its pin directory being deleted"
[ -n "$(status_field generation)" ] || die "API answers without the pin dir"
[ "$(ls "$PIN" 2>/dev/null | sort | tr '\n' ' ')" = "$pins0" ] ||
	die "pins back within 5 s: want '$pins0', have '$(ls "$PIN" 2>/dev/null | tr '\n' ' ')'"
gen1=$("$CTL" --pin-dir "$PIN" -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
[ "$gen1" = "$gen0" ] || die "aetherctl status over the re-pinned maps: generation $gen0, got '$gen1'"
tail -n +$((log_lines + 1)) "$RUN/agent.log" | grep -q 're-pinned.*aeth_svc' ||
	die "re-pinning is logged"
ok "pin directory deleted: recreated with every pin, aetherctl status reads generation $gen1"
# the recreated directory is locked again: a second agent is refused
out=$(timeout 10 nsenter --net="/run/netns/$NS" "$AGENT" --config "$RUN/small.json" \
	--pin-dir "$PIN" --socket "$RUN/second.sock" --metrics-addr none 2>&1)
[ $? = 1 ] && grep -q "another aether-agent uses this pin directory" <<<"$out" ||
	die "a second agent on the recreated pin dir is refused: $out"
ok "the recreated pin directory is locked by the running agent"
# the re-pinned maps are the live ones (same map ids), and an apply after
# the loss goes through them
[ "$(map_id aeth_svc) $(map_id aeth_ct) $(map_id aeth_meta)" = "$ids0" ] ||
	die "the same maps are pinned again (ids $ids0)"
code=$(curl -sS -m 60 -o "$RUN/body" -w '%{http_code}' --unix-socket "$SOCK" \
	-X PUT --data-binary "@$RUN/small.json" http://agent/v1/config)
[ "$code" = 200 ] || die "apply after the pin dir loss: $code $(cat "$RUN/body")"
gen2=$("$CTL" --pin-dir "$PIN" -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
[ "$gen2" -gt "$gen1" ] || die "aetherctl sees the next apply: generation $gen2 after $gen1"
"$CTL" --pin-dir "$PIN" -j service list | grep -q new-vip &&
	die "aetherctl lists the services of the next apply"
ok "the re-pinned maps are the live ones (ids $ids0; next apply seen as generation $gen2)"
