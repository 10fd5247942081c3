// SPDX-License-Identifier: GPL-2.0-only
/* The XDP entry point: guard, balance, encapsulate, decapsulate. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"

SEC("xdp")
int aether_lb(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
