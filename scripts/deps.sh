#!/usr/bin/env bash
# Installs on Debian 12 whatever the build, the tests and the demo need, and
# mounts bpffs. Safe to run again: it only installs what is missing.
set -euo pipefail

packages=(
	clang llvm libbpf-dev libxdp-dev bpftool xdp-tools libelf-dev zlib1g-dev
	libevent-dev libjansson-dev libcriterion-dev meson ninja-build pkg-config
	iproute2 iputils-ping curl openssl python3 python3-yaml tcpdump ethtool procps
	nftables iptables ipset hping3 libcap2-bin bird2
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# the package enables a system-wide bird; the agents and the test
	# router each run their own, on their own sockets
	if [[ " ${missing[*]} " == *" bird2 "* ]] && command -v systemctl >/dev/null; then
		systemctl disable --now bird.service >/dev/null 2>&1 || true
	fi
fi

if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
