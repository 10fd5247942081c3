# Shared by tests/integration/test_sys_*.sh: bring-up with teardown on exit,
# assertions, and document edits. Source after cd to the repository root.
# shellcheck shell=bash

. "$(dirname "${BASH_SOURCE[0]}")/topo.sh"

ITEST_FAILED=0
ITEST_CHECKS=0

# itest_begin NAME: topology prefix aeth-sys-NAME-PID (two runs of one test
# at the same time do not meet), torn down on any exit
itest_begin() {
	ITEST_NAME=$1
	topo_init "aeth-sys-$1-$$"
	trap itest_end EXIT
	trap 'exit 130' INT TERM
	if [ ! -x "$AGENT" ] || [ ! -x "$CTL" ]; then
		echo "FAIL $ITEST_NAME: build first ($AGENT, $CTL)"
		exit 1
	fi
	ITEST_TMP=$(mktemp -d)
}

itest_end() {
	local rc=$?
	[ $ITEST_FAILED -ne 0 ] && rc=1
	if [ $rc -ne 0 ] && [ -d "$TOPO_STATE" ]; then
		local f
		for f in "$TOPO_STATE"/*/agent.log; do
			[ -f "$f" ] || continue
			echo "--- ${f#"$TOPO_STATE"/} (last lines)"
			tail -n 8 "$f"
		done
	fi
	topo_down
	rm -rf "$ITEST_TMP"
	if [ $rc -eq 0 ]; then
		echo "PASS $ITEST_NAME ($ITEST_CHECKS checks)"
	else
		echo "FAIL $ITEST_NAME"
	fi
	exit $rc
}

# itest_up [TEMPLATE]: the topology with agents, or fail the test
itest_up() {
	topo_up --config "${1:-$TOPO_LIB/default-config.json}" ||
		die "topology did not come up"
}

die() { echo "FAIL $*"; ITEST_FAILED=1; exit 1; }
ok() { ITEST_CHECKS=$((ITEST_CHECKS + 1)); echo "ok   $*"; }
# check DESCRIPTION COMMAND...: the command must succeed
check() {
	local what=$1; shift
	if "$@"; then ok "$what"; else die "$what"; fi
}

# itest_stream_backend FILE: the backend a stream started by client.py
# --announce FILE names within 5 s (be1-be3); fails when none did
itest_stream_backend() {
	local i x
	for ((i = 0; i < 50; i++)); do
		[ -s "$1" ] && break
		sleep 0.1
	done
	x=$(cat "$1" 2>/dev/null)
	[[ $x == be[123] ]] || return 1
	echo "$x"
}

# itest_stream_kept PID FILE BACKEND: stop the stream (started with
# --until $ITEST_TMP/stop; not from a subshell, which cannot wait for it)
# and leave its result in ITEST_STREAM; fails, with the reason there
# instead, unless it was still running, ended well on BACKEND, and
# received every byte it sent, over 1 MB
itest_stream_kept() {
	local sent
	if ! kill -0 "$1" 2>/dev/null; then
		ITEST_STREAM="stream ended early: $(cat "$2")"
		return 1
	fi
	touch "$ITEST_TMP/stop"
	if ! wait "$1"; then
		ITEST_STREAM="stream: $(cat "$2")"
		return 1
	fi
	ITEST_STREAM=$(cat "$2")
	if [ "$(json_get "$ITEST_STREAM" backend)" != "$3" ]; then
		ITEST_STREAM="stream backend changed: $ITEST_STREAM"
		return 1
	fi
	sent=$(json_get "$ITEST_STREAM" sent)
	if ! [ "$sent" -eq "$(json_get "$ITEST_STREAM" received)" ] ||
		! [ "$sent" -gt 1000000 ]; then
		ITEST_STREAM="bytes received equal bytes sent: $ITEST_STREAM"
		return 1
	fi
}

# itest_template OUT PYTHON: OUT = the default document after running
# PYTHON on it (the variable doc, plus helpers svc(name) and be(svc, addr))
itest_template() {
	local out=$1 code=$2 base=${3:-$TOPO_LIB/default-config.json}
	python3 - "$base" "$out" "$code" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
def svc(name):
    return next(s for s in doc["services"] if s["name"] == name)
def be(s, addr):
    return next(b for b in svc(s)["backends"] if b["address"] == addr)
exec(sys.argv[3])
json.dump(doc, open(sys.argv[2], "w"), indent=2)
EOF
}

# itest_apply_template FILE: every agent's document from FILE, and wait until
# every agent whose document changed has applied it
itest_apply_template() {
	local n gens=() olds=()
	for n in $TOPO_LBS $TOPO_BACKENDS; do
		gens+=("$(topo_generation "$n")")
		olds+=("$(md5sum <"$(topo_conf "$n")")")
	done
	topo_set_template "$1" || die "writing the documents"
	local i=0
	for n in $TOPO_LBS $TOPO_BACKENDS; do
		if [ "$(md5sum <"$(topo_conf "$n")")" != "${olds[$i]}" ]; then
			topo_wait_generation "$n" "${gens[$i]}" 10 ||
				die "$n did not apply the new document"
		fi
		i=$((i + 1))
	done
}

# json_get JSON KEY: one field of a JSON object
json_get() {
	python3 -c 'import json,sys; v = json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
}

# itest_metric NODE NAME{LABELS}: one sample of the node agent's /metrics
itest_metric() {
	topo_http "$1" /metrics | awk -v m="$2" '$1 == m { print $2 }'
}

# reason_total REASON: a drop reason summed over both LB nodes
reason_total() {
	echo $(( $(topo_reason_count lb1 "$1") + $(topo_reason_count lb2 "$1") ))
}

# backend_of NAME: fabric address of backend NAME for FAMILY (4 or 6)
backend_addr() {
	if [ "$2" = 6 ]; then echo "${TOPO_V6[$1]}"; else echo "${TOPO_V4[$1]}"; fi
}

# wait_backend_health NODE ADDR true|false SECONDS
wait_backend_health() {
	local i
	for ((i = 0; i < $4 * 5; i++)); do
		if topo_ctl "$1" -j backend list 2>/dev/null | python3 -c 'import json,sys
rows = [b for b in json.load(sys.stdin) if b["address"] == sys.argv[1]]
sys.exit(0 if rows and all(str(b["healthy"]).lower() == sys.argv[2] for b in rows) else 1)' "$2" "$3"; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}
