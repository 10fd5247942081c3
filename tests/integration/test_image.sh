#!/usr/bin/env bash
# The image, built and run for real: scripts/image.sh builds it from the
# repository, every agent of the namespace cluster runs from it under podman
# (the host network of its node's namespace, the bpffs mounted, the
# DaemonSet's capabilities and nothing more, a read-only root), and clients
# reach the backends through it over IPv4 and IPv6. Prints the image size.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. scripts/lib/itest.sh

if ! command -v podman >/dev/null; then
	echo "FAIL image: podman missing (scripts/deps.sh installs it)"
	exit 1
fi

itest_begin image
IMAGE=localhost/aether-agent:itest-$$
# our containers and image go first (a container killed with its namespace
# is not removed by --rm), then the topology
image_cleanup() {
	local rc=$? ids
	ids=$(podman ps -a -q --filter "name=aeth-img-$$-")
	# shellcheck disable=SC2086
	[ -n "$ids" ] && podman rm -f -t 2 $ids >/dev/null 2>&1
	podman rmi -f "$IMAGE" >/dev/null 2>&1
	(exit $rc)
	itest_end
}
trap image_cleanup EXIT

out=$(scripts/image.sh "$IMAGE" 2>&1) || die "scripts/image.sh: $out"
ok "$(tail -n 1 <<<"$out")"

# the agent command the topology runs (inside the node's namespace): the
# same arguments, to the agent in a container of that namespace
wrapper=$ITEST_TMP/agent-in-image
cat >"$wrapper" <<EOF
#!/usr/bin/env bash
# --config FILE --pin-dir DIR --socket PATH ...: mount what they name.
# CAPS: the capabilities to run with (default: the DaemonSet's)
args=("\$@") mounts=() node=agent
for ((i = 0; i < \${#args[@]}; i++)); do
	case \${args[i]} in
	--pin-dir) node=\$(basename "\${args[i + 1]}") ;;
	--config) mounts+=(-v "\$(dirname "\${args[i + 1]}"):\$(dirname "\${args[i + 1]}"):ro") ;;
	--socket) mounts+=(-v "\$(dirname "\${args[i + 1]}"):\$(dirname "\${args[i + 1]}")") ;;
	esac
done
exec podman run --rm --name "aeth-img-$$-\$node" \\
	--runtime runc --cgroup-manager cgroupfs \\
	--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \\
	--network host --read-only --security-opt apparmor=unconfined \\
	--security-opt no-new-privileges \\
	--cap-drop ALL --cap-add "\${CAPS:-BPF,PERFMON,NET_ADMIN,SYS_ADMIN,NET_BIND_SERVICE}" \\
	-v /sys/fs/bpf:/sys/fs/bpf "\${mounts[@]}" "$IMAGE" "\$@"
EOF
chmod +x "$wrapper"
AGENT=$wrapper
itest_up

# every agent runs in a container of the image
n=$(podman ps --filter "name=aeth-img-$$-" --filter "ancestor=$IMAGE" -q | wc -l)
[ "$n" -eq $(($(wc -w <<<"$TOPO_LBS $TOPO_BACKENDS"))) ] ||
	die "$n agents in containers of $IMAGE"
ok "$n agents run from $IMAGE"

# with the DaemonSet's capabilities only
name=$(podman ps --filter "name=aeth-img-$$-" --format '{{.Names}}' | head -n 1)
pid=$(podman inspect --format '{{.State.Pid}}' "$name")
eff=$(awk '/^CapEff/ { print $2 }' "/proc/$pid/status")
# CAP_NET_BIND_SERVICE 10 (BIRD on TCP 179), CAP_NET_ADMIN 12,
# CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39
[ "$eff" = "000000c000201400" ] || die "$name runs with capabilities $eff"
ok "$name runs with BPF, PERFMON, NET_ADMIN, SYS_ADMIN and NET_BIND_SERVICE only"

# SYS_ADMIN is there for the runtime: podman's seccomp profile here allows
# bpf(2) only with it. Without it the agent stops at its first bpf(2) call
# and says so (the day this passes the agent through, SYS_ADMIN can go
# from the DaemonSet: docs/deploy.md)
out=$(CAPS=BPF,PERFMON,NET_ADMIN,NET_BIND_SERVICE timeout 30 "$wrapper" \
	--config "$(topo_conf lb1)" \
	--pin-dir "/sys/fs/bpf/aeth-img-$$-nosysadmin" \
	--socket "$ITEST_TMP/nosysadmin.sock" 2>&1)
rc=$?
rm -rf "/sys/fs/bpf/aeth-img-$$-nosysadmin"
[ $rc -ne 0 ] && grep -q 'aeth_meta: Operation not permitted (bpf(2) refused' <<<"$out" ||
	die "without SYS_ADMIN under podman (exit $rc): $out"
ok "without SYS_ADMIN podman's seccomp profile refuses bpf(2), and the agent says so"

for vip in "$VIP4" "$VIP6"; do
	seen=""
	for i in $(seq 1 6); do
		r=$(topo_client cin --vip "$vip" get) || die "TLS request $i via $vip: $r"
		seen+=" $(json_get "$r" backend)"
	done
	[ "$(tr ' ' '\n' <<<"$seen" | grep -c '^be[123]$')" -eq 6 ] ||
		die "6 TLS requests via $vip: $seen"
	ok "6 TLS requests via $vip through the containerised agents:$seen"
done

before=$(reason_total not_authorized)
topo_client cout --vip "$VIP4" --timeout 2 get >/dev/null 2>&1
after=$(reason_total not_authorized)
[ "$after" -gt "$before" ] || die "the outside client was not dropped"
ok "the outside client is dropped (not_authorized $before -> $after)"
