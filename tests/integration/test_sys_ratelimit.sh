#!/usr/bin/env bash
# Per-source new-connection limit end to end (20/s, burst 40): a burst from
# one source beyond 40 is refused (SYNs dropped: the connects time out), the
# source is admitted again at the configured rate, and a second source is
# not affected by the first one's limit.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin rate
itest_up
# one LB node sees every flow: the limiter state is per node
topo_route_via lb1 || die "route via lb1"

rl0=$(topo_reason_count lb1 rate_limited)
# connect timeout under the 1 s SYN retransmit: one SYN per attempt
b=$(topo_client cin --vip "$VIP4" --timeout 0.9 burst --count 120)
adm=$(json_get "$b" admitted)
# 40 from the bucket, plus what accrues at 20/s while the SYNs go out
[ "$adm" -ge 36 ] && [ "$adm" -le 55 ] ||
	die "burst of 120 from one source admits about 40 ($b)"
ok "burst of 120 new connections: $adm admitted, $(json_get "$b" refused) refused"
rl1=$(topo_reason_count lb1 rate_limited)
[ $((rl1 - rl0)) -ge $((120 - adm)) ] ||
	die "rate_limited counted $((rl1 - rl0)) (want >= $((120 - adm)))"
ok "rate_limited counted $((rl1 - rl0)) drops"

# another source in the same authorized network has its own bucket
topo_exec cin ip addr add 198.51.100.11/25 dev eth0 || die "second address"
b2=$(topo_client cin --vip "$VIP4" --src 198.51.100.11 --timeout 0.9 burst --count 30)
[ "$(json_get "$b2" admitted)" -eq 30 ] || die "other source unaffected ($b2)"
ok "another source is not affected: $b2"

# offered 40/s for 5 s: once what the bucket held is spent (within the
# first second or two), admitted at the configured 20/s
p=$(topo_client cin --vip "$VIP4" --timeout 0.9 pace --rate 40 --seconds 5)
rate=$(python3 -c 'import json,sys
s = json.loads(sys.argv[1])["per_second"][2:]
print(round(sum(s) / len(s), 1))' "$p")
python3 -c 'import sys; sys.exit(0 if 16 <= float(sys.argv[1]) <= 24 else 1)' "$rate" ||
	die "40/s offered: admitted at 20/s after the first seconds ($p)"
ok "40/s offered for 5 s: admitted $rate/s in seconds 3-5 (configured 20/s): $p"

# after 2 s of quiet the bucket holds 40 again
sleep 2.2
b=$(topo_client cin --vip "$VIP4" --timeout 0.9 burst --count 30)
[ "$(json_get "$b" admitted)" -eq 30 ] || die "refilled after 2 s ($b)"
ok "after 2 s of quiet, 30 at once all admitted"

# and a full TLS request goes through
r=$(topo_client cin --vip "$VIP4" get) || die "request after the floods: $r"
ok "TLS requests work again: $(json_get "$r" backend)"
