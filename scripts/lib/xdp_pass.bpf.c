// SPDX-License-Identifier: GPL-2.0-only
/* Passes every frame. Attached to the veth peers that receive XDP_TX'd or
 * redirected frames: veth delivers those only when the receiving peer runs
 * XDP (or has GRO on). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
