// SPDX-License-Identifier: GPL-2.0-only
/* A program that runs for a while (tests/agent/test_prog_barrier.c): it
 * marks its start, spins through bpf_loop, and marks its end, so a test
 * can tell whether a wait returned before or after it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

volatile __u32 started, done;
const volatile __u32 spins = 1;

static long spin_once(__u32 i, void *ctx)
{
	(void)i;
	(void)ctx;
	return 0;
}

SEC("xdp")
int spin(struct xdp_md *ctx)
{
	(void)ctx;
	started = 1;
	for (int i = 0; i < 32; i++)	/* bpf_loop takes 2^23 at most */
		bpf_loop(spins, spin_once, NULL, 0);
	done = 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
