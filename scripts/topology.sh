#!/usr/bin/env bash
# Brings the cluster-in-namespaces up or down: a router with ECMP routes to
# the VIPs over two LB nodes, three backends, an authorized and an
# unauthorized client. Layout and helpers: scripts/lib/topo.sh.
set -uo pipefail

usage() {
	cat <<USAGE
usage: $0 up [--prefix P] [--config TEMPLATE] [--plain]
       $0 down [--prefix P]
       $0 env [--prefix P]

  up      make namespaces P-* (default prefix aeth-sys), start the backend
          servers and one aether-agent per LB and backend node with a
          document derived from TEMPLATE (default scripts/lib/default-config.json);
          --plain: no agents, the LB nodes just route (checks the topology)
  down    stop everything in P-*, delete the namespaces, pins and state
  env     print where things are (namespaces, pins, sockets, certificate)

AETH_BUILD selects the build directory (default build/).
USAGE
}

. "$(dirname "$0")/lib/topo.sh"

cmd=${1:-}
[ $# -gt 0 ] && shift
prefix=aeth-sys
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) prefix=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) args+=("$1") ;;
	esac
	shift
done
topo_init "$prefix"

case $cmd in
up)
	if ! topo_up "${args[@]}"; then
		topo_log "bring-up failed; tearing down"
		topo_down
		exit 1
	fi
	topo_log "up: prefix $P, state in $TOPO_STATE"
	;;
down)
	topo_down
	;;
env)
	echo "namespaces: $(for n in $TOPO_NODES; do printf '%s ' "$P-$n"; done)"
	echo "enter:      ip netns exec $P-cin bash"
	echo "pins:       /sys/fs/bpf/$P-{lb1,lb2,be1,be2,be3}"
	echo "sockets:    $TOPO_STATE/<node>/agent.sock"
	echo "ca cert:    $CACERT"
	echo "api:        https://$API_HOST:$API_PORT ($VIP4, $VIP6)"
	;;
*)
	usage
	exit 2
	;;
esac
