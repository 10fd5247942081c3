#!/usr/bin/env bash
# An upgrade in place from the release before the connection table's
# filter was replaced (aeth_ct_filter, 16 bits a bucket, to aeth_ct_bloom,
# 32 bits and two per entry, a map of another size and name): every node
# runs that release's agent and program; a long-lived stream goes through
# lb1 and its backend is set draining, so that only its connection entry
# keeps it there; then lb1's agent is stopped and this build's started on
# the same pins. The stream keeps its backend and every byte (the new
# program finds the entry the old one wrote), the old filter's pin is
# removed and the new one holds the entry's bits, and new connections go
# to the active backends.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

OLD_REV=aed169e	# the last commit with aeth_ct_filter
if ! git cat-file -e "$OLD_REV^{commit}" 2>/dev/null; then
	# a clone without history (an exported tarball) cannot build it
	echo "SKIP upgrade: commit $OLD_REV is not in this checkout"
	exit 77
fi

itest_begin upgrade
OLD=$ITEST_TMP/old
mkdir -p "$OLD/src"
git archive "$OLD_REV" | tar -x -C "$OLD/src" || die "exporting $OLD_REV"
meson setup "$OLD/build" "$OLD/src" >"$OLD/setup.log" 2>&1 ||
	die "configuring $OLD_REV: $(tail -n 5 "$OLD/setup.log")"
nice ninja -C "$OLD/build" agent/aether-agent >"$OLD/build.log" 2>&1 ||
	die "building $OLD_REV's agent: $(tail -n 5 "$OLD/build.log")"
ok "built the agent of $OLD_REV"

NEW_AGENT=$AGENT
AGENT=$OLD/build/agent/aether-agent
itest_up
PIN=$(topo_pin_dir lb1)
[ -e "$PIN/aeth_ct_filter" ] && [ ! -e "$PIN/aeth_ct_bloom" ] ||
	die "lb1 runs $OLD_REV's agent (pins: $(ls "$PIN" | tr '\n' ' '))"
ok "lb1 runs $OLD_REV's agent and program (aeth_ct_filter pinned)"
topo_route_via lb1 || die "route via lb1"

topo_client cin --vip "$VIP4" stream --seconds 90 --stall 5 \
	--announce "$ITEST_TMP/backend" --until "$ITEST_TMP/stop" \
	>"$ITEST_TMP/stream.json" &
spid=$!
X=$(itest_stream_backend "$ITEST_TMP/backend") || die "stream started"
XA=${TOPO_V4[$X]}
ok "stream running on backend $X"

# its backend draining: Maglev no longer picks it, only the entry does
itest_template "$ITEST_TMP/drain.json" "
for b in svc('kube-apiserver')['backends']:
    if b['address'] == '$XA':
        b['state'] = 'draining'"
itest_apply_template "$ITEST_TMP/drain.json"
ok "backend $X draining under $OLD_REV"
sleep 1

hits0=$(topo_stat lb1 events conntrack_hit)
topo_agent_kill lb1 TERM
AGENT=$NEW_AGENT
topo_agent_start lb1
topo_wait_ready lb1 30 || die "lb1 started with this build's agent"
ok "lb1 upgraded in place"
[ ! -e "$PIN/aeth_ct_filter" ] || die "the old filter's pin is left"
[ -e "$PIN/aeth_ct_bloom" ] || die "aeth_ct_bloom pinned"
ok "aeth_ct_filter unpinned, aeth_ct_bloom pinned"

# new connections follow Maglev, which no longer picks the draining one
sleep 2
for i in $(seq 1 5); do
	r=$(topo_client cin --vip "$VIP4" get) || die "new connection after the upgrade: $r"
	[ "$(json_get "$r" backend)" != "$X" ] ||
		die "a new connection went to draining $X: $r"
done
ok "new connections after the upgrade avoid draining $X"

itest_stream_kept "$spid" "$ITEST_TMP/stream.json" "$X" || die "$ITEST_STREAM"
sent=$(json_get "$ITEST_STREAM" sent)
recv=$(json_get "$ITEST_STREAM" received)
ok "stream kept backend $X across the upgrade: $sent bytes sent, $recv received"
# the new program starts with empty memories: the stream's first packets
# after the upgrade were looked up in the table (a miss would have sent
# them by Maglev to another backend, which resets the connection)
hits1=$(topo_stat lb1 events conntrack_hit)
[ "$hits1" -gt "$hits0" ] ||
	die "lb1 forwarded by the table's entries after the upgrade ($hits0 -> $hits1)"
ok "lb1's table hits after the upgrade: $hits0 -> $hits1"
