#!/usr/bin/env bash
# Authorized networks end to end: clients inside them complete TLS
# handshakes over IPv4 and IPv6 and get a backend's answer through the LB
# nodes; a client outside them times out, and not_authorized counts it.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

itest_begin access
itest_up

for vip in "$VIP4" "$VIP6"; do
	out=$(topo_curl cin "$vip" -m 5 -w '|%{http_code}|%{ssl_verify_result}' 2>&1 | tr -d '\n')
	case $out in
	be[123]"|200|0") ok "authorized client: curl --cacert via $vip answered by ${out%%|*}" ;;
	*) die "authorized client via $vip: got '$out'" ;;
	esac
	seen=""
	for i in $(seq 1 12); do
		r=$(topo_client cin --vip "$vip" get) || die "TLS request $i via $vip: $r"
		seen+=" $(json_get "$r" backend)"
	done
	n=$(tr ' ' '\n' <<<"$seen" | grep -c '^be[123]$')
	[ "$n" -eq 12 ] || die "12 TLS requests via $vip answered by backends: $seen"
	d=$(tr ' ' '\n' <<<"$seen" | grep '^be' | sort -u | wc -l)
	[ "$d" -ge 2 ] || die "12 new flows via $vip spread over backends: $seen"
	ok "12 TLS requests via $vip, answered by $d different backends"
done

before=$(reason_total not_authorized)
for vip in "$VIP4" "$VIP6"; do
	start=$(date +%s.%N)
	if out=$(topo_curl cout "$vip" -m 3 2>&1); then
		die "unauthorized client via $vip got an answer: $out"
	fi
	took=$(python3 -c "import sys; print(int(float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")
	# a timeout, not a refusal: the SYN is dropped without a word
	[[ $out == *"timed out"* ]] && [ "$took" -ge 2 ] ||
		die "unauthorized client via $vip: want a timeout, got '$out' after ${took}s"
	ok "unauthorized client via $vip times out"
	r=$(topo_client cout --vip "$vip" --timeout 2 get)
	[[ $r == *error* ]] || die "unauthorized TLS client via $vip: $r"
done
after=$(reason_total not_authorized)
# curl: SYN + 1 retransmit at least per family; the client: 1 SYN + retransmit
[ $((after - before)) -ge 4 ] ||
	die "not_authorized counted $((after - before)) drops (want >= 4)"
ok "not_authorized counted $((after - before)) dropped packets"

m=$(topo_http lb1 /metrics; topo_http lb2 /metrics)
grep -E '^aether_drops_total\{.*reason="not_authorized".*\} [1-9]' <<<"$m" >/dev/null ||
	die "/metrics: no non-zero aether_drops_total{reason=\"not_authorized\"}"
ok "/metrics shows aether_drops_total{reason=\"not_authorized\"}"

# a port of the VIP that no service names: dropped and counted, even for an
# authorized source
u0=$(reason_total unconfigured_port)
r=$(topo_client cin --vip "$VIP4" --port 443 --timeout 2 get)
[[ $r == *error* ]] || die "VIP port 443 (no service) answered: $r"
u1=$(reason_total unconfigured_port)
[ "$u1" -gt "$u0" ] || die "unconfigured_port counted ($u0 -> $u1)"
ok "VIP port 443 (no service): connection fails, unconfigured_port $u0 -> $u1"

# the authorized client was never counted as unauthorized: its flows still work
r=$(topo_client cin --vip "$VIP4" get) || die "authorized client after: $r"
ok "authorized client still answered by $(json_get "$r" backend)"
