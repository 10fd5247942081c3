// SPDX-License-Identifier: GPL-2.0-only
/* Traffic generator for the throughput benchmark: run by BPF_PROG_TEST_RUN
 * with BPF_F_TEST_XDP_LIVE_FRAMES, it gives each frame the next source
 * address and port of the configured ranges, fixes the checksums and
 * redirects the frame out of the generator's veth, so it really leaves.
 * With gap_ns set it paces itself: each frame waits for its turn, gap_ns
 * after the one before, so the node is offered a set rate it can keep up
 * with (its CPU time per packet is then measured without the overflow of
 * its receive ring that a flood brings). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GEN_FRAME_LEN 60

/* Set by the loader before load. */
const volatile __u8 frame_tmpl[GEN_FRAME_LEN];	/* the frame as built */
const volatile __u32 out_ifindex;
const volatile __u32 src_base;		/* host order */
const volatile __u32 n_sources;		/* >= 1 */
const volatile __u16 sport_base;	/* host order */
const volatile __u32 n_ports;		/* >= 1 */
const volatile __u64 gap_ns;		/* 0: as fast as the CPU goes */

/* Per CPU: frames sent (the sequence that picks source and port), and
 * when the next one may leave (paced). */
struct gen_state {
	__u64 seq;
	__u64 next_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} gen_seq SEC(".maps");

static long gen_wait_step(__u64 index, void *ctx)
{
	return bpf_ktime_get_ns() >= *(__u64 *)ctx;	/* 1 ends the loop */
}

/* Wait for this frame's turn. A generator that fell more than 64 gaps
 * behind (preempted) starts again from now instead of catching up with a
 * burst. */
static __always_inline void gen_pace(struct gen_state *st)
{
	__u64 now = bpf_ktime_get_ns(), until;

	if (!st->next_ns || now > st->next_ns + 64 * gap_ns)
		st->next_ns = now;
	until = st->next_ns;
	bpf_loop(1 << 20, gen_wait_step, &until, 0);
	st->next_ns += gap_ns;
}

/* RFC 1624 incremental update of a checksum for one changed 16-bit word. */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u16 csum_replace4(__u16 check, __u32 old, __u32 new)
{
	check = csum_replace2(check, old & 0xffff, new & 0xffff);
	return csum_replace2(check, old >> 16, new >> 16);
}

SEC("xdp")
int gen_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0, saddr, seq32;
	__u16 sport, *l4check, *l4sport;
	struct gen_state *st;
	int i;

	if (data + GEN_FRAME_LEN > end)
		return XDP_ABORTED;
	/* Pages come back from wherever the frame went (the LB node's XDP
	 * encapsulates in place, the stack rewrites MACs and NATs), so the
	 * whole frame is written again from the template every time. */
#pragma unroll
	for (i = 0; i < GEN_FRAME_LEN; i++)
		((__u8 *)data)[i] = frame_tmpl[i];
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(ip + 1);

		if ((void *)(th + 1) > end)
			return XDP_ABORTED;
		l4check = &th->check;
		l4sport = &th->source;
	} else {
		struct udphdr *uh = (void *)(ip + 1);

		if ((void *)(uh + 1) > end)
			return XDP_ABORTED;
		l4check = &uh->check;
		l4sport = &uh->source;
	}
	st = bpf_map_lookup_elem(&gen_seq, &zero);
	if (!st)
		return XDP_ABORTED;
	if (gap_ns)
		gen_pace(st);
	seq32 = (__u32)st->seq++;
	saddr = bpf_htonl(src_base + seq32 % n_sources);
	sport = bpf_htons(sport_base + (seq32 / n_sources) % n_ports);

	ip->check = csum_replace4(ip->check, ip->saddr, saddr);
	*l4check = csum_replace4(*l4check, ip->saddr, saddr);
	*l4check = csum_replace2(*l4check, *l4sport, sport);
	ip->saddr = saddr;
	*l4sport = sport;
	return bpf_redirect(out_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
