#!/usr/bin/env bash
# Installs on Debian 12 whatever the build, the tests and the demo need, and
# mounts bpffs. Safe to run again: it only installs what is missing.
set -euo pipefail

packages=(
	clang llvm libbpf-dev libxdp-dev bpftool xdp-tools libelf-dev zlib1g-dev
	libevent-dev libssl-dev libjansson-dev libcriterion-dev meson ninja-build pkg-config
	libcurl4-openssl-dev libyaml-dev
	iproute2 iputils-ping curl openssl python3 python3-yaml tcpdump ethtool procps
	nftables iptables ipset hping3 libcap2-bin podman runc uidmap bird2
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	echo "deps: apt-get update"
	apt-get update -qq
	# progress: one line per package fetched and set up (a fresh machine
	# takes a few minutes here); errors still reach stderr
	apt-get install -y --no-install-recommends "${missing[@]}" |
		{ grep --line-buffered -E '^(Get:|Setting up )' |
			sed -u 's/^/deps: /' || true; }
	# the package enables a system-wide bird; the agents and the test
	# router each run their own, on their own sockets
	if [[ " ${missing[*]} " == *" bird2 "* ]] && command -v systemctl >/dev/null; then
		systemctl disable --now bird.service >/dev/null 2>&1 || true
	fi
fi

if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
