/* SPDX-License-Identifier: GPL-2.0-only */
/* ICMP on the service path: "fragmentation needed" / "packet too big"
 * answers built in place from the client's packet, and recognising ICMP
 * errors about a service flow so they can follow the flow to its backend. */
#ifndef AETHER_BPF_ICMP_H
#define AETHER_BPF_ICMP_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/icmpv6.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aether/abi.h"
#include "csum.h"
#include "maps.h"
#include "parse.h"

/* linux/icmp.h drags in libc socket headers; what we need of it: */
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
	} un;
};

#define ICMP_REPLY_TTL 64
#define ICMP_NSEC 1000000000ull
#define ICMP6_QUOTE_MAX 120	/* 8 + 120 bytes: what csum_add_words sums */

static __always_inline void icmp_swap_macs(struct l2_save *l2)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, l2->b, ETH_ALEN);
	__builtin_memcpy(l2->b, l2->b + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(l2->b + ETH_ALEN, tmp, ETH_ALEN);
}

/* Grow the front by room bytes, put the L2 header back with MACs swapped,
 * and cut the frame to l3_off + len. Returns 0 or -1. */
static __always_inline int icmp_reshape(struct xdp_md *ctx,
					const struct lb_pkt *p, int room,
					__u32 len, __be16 proto)
{
	struct l2_save l2;
	__u32 frame_len, want;
	void *data, *end;

	if (l2_save(ctx, p, &l2))
		return -1;
	icmp_swap_macs(&l2);
	if (bpf_xdp_adjust_head(ctx, -room))
		return -1;
	if (l2_restore(ctx, &l2, proto, NULL))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	frame_len = end - data;
	want = p->l3_off + len;
	if (frame_len < want)
		return -1;
	if (frame_len > want &&
	    bpf_xdp_adjust_tail(ctx, (int)want - (int)frame_len))
		return -1;
	return 0;
}

/* Answer an IPv4 packet with DF that would not fit once encapsulated:
 * ICMP 3/4 from the VIP to the client quoting its IP header + 8 bytes. */
static __always_inline int icmp_frag_needed_v4(struct xdp_md *ctx,
					       const struct lb_pkt *p,
					       __u32 mtu)
{
	__u32 ihl = p->l4_off - p->l3_off;
	__u32 l3_off = p->l3_off, quote = ihl + 8;
	struct icmphdr *ic;
	struct iphdr *ip;
	void *data, *end;
	__u32 sum;

	if (ihl > 60 || p->l3_len < quote)
		return -1;
	if (icmp_reshape(ctx, p, sizeof(*ip) + sizeof(*ic),
			 sizeof(*ip) + sizeof(*ic) + quote, bpf_htons(ETH_P_IP)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (l3_off > PARSE_L2_MAX)
		return -1;
	ip = data + l3_off;
	ic = (void *)(ip + 1);
	if ((void *)(ic + 1) > end)
		return -1;
	*(__u8 *)ip = 0x45;
	ip->tos = 0;
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*ic) + quote);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = ICMP_REPLY_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->saddr = p->flow.dst.v4;
	ip->daddr = p->flow.src.v4;
	csum_ipv4_hdr(ip);

	ic->type = ICMP_DEST_UNREACH;
	ic->code = ICMP_FRAG_NEEDED;
	ic->checksum = 0;
	ic->un.frag.__unused = 0;
	ic->un.frag.mtu = bpf_htons(mtu);
	sum = csum_add_words(0, ic, (sizeof(*ic) + quote) / 2, end);
	ic->checksum = csum_fold(sum);
	return 0;
}

/* Answer an IPv6 packet that would not fit: ICMPv6 Packet Too Big from the
 * VIP to the client quoting its IPv6 header, extension headers and 8 bytes
 * (enough for the client's stack to find the connection), at most
 * ICMP6_QUOTE_MAX bytes. */
static __always_inline int icmp_too_big_v6(struct xdp_md *ctx,
					   const struct lb_pkt *p, __u32 mtu)
{
	__u32 l3_off = p->l3_off, quote = p->l4_off - p->l3_off + 8;
	struct icmp6hdr *ic;
	struct ipv6hdr *ip6;
	void *data, *end;
	__u32 sum;

	if (quote > ICMP6_QUOTE_MAX)
		quote = ICMP6_QUOTE_MAX;
	if (p->l3_len < quote)
		return -1;
	if (icmp_reshape(ctx, p, sizeof(*ip6) + sizeof(*ic),
			 sizeof(*ip6) + sizeof(*ic) + quote,
			 bpf_htons(ETH_P_IPV6)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (l3_off > PARSE_L2_MAX)
		return -1;
	ip6 = data + l3_off;
	ic = (void *)(ip6 + 1);
	if ((void *)(ic + 1) > end)
		return -1;
	*(__be32 *)ip6 = bpf_htonl(6u << 28);
	ip6->payload_len = bpf_htons(sizeof(*ic) + quote);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = ICMP_REPLY_TTL;
	__builtin_memcpy(&ip6->saddr, p->flow.dst.bytes, 16);
	__builtin_memcpy(&ip6->daddr, p->flow.src.bytes, 16);

	ic->icmp6_type = ICMPV6_PKT_TOOBIG;
	ic->icmp6_code = 0;
	ic->icmp6_cksum = 0;
	ic->icmp6_mtu = bpf_htonl(mtu);
	/* pseudo-header: addresses, upper-layer length, next header */
	sum = csum_add_words(0, &ip6->saddr, 16, end);
	sum += bpf_htons(sizeof(*ic) + quote);
	sum += bpf_htons(IPPROTO_ICMPV6);
	sum = csum_add_words(sum, ic, (sizeof(*ic) + quote) / 2, end);
	ic->icmp6_cksum = csum_fold(sum);
	return 0;
}

/* May a too-big answer go to p's source? Never to an address that is no
 * single host (unspecified, loopback, multicast, broadcast and the reserved
 * 240/4): a forged source there would make us answer many or nobody. */
static __always_inline bool icmp_source_answerable(const struct lb_pkt *p)
{
	__u32 a = bpf_ntohl(p->flow.src.v4), w0;

	if (p->flow.family == AETH_AF_INET)
		return (a >> 24) != 0 && (a >> 24) != 127 && (a >> 28) < 14;
	w0 = bpf_ntohl(p->flow.src.v6[0]);
	if ((w0 >> 24) == 0xff)
		return false;	/* multicast */
	/* :: and ::1 */
	return (w0 | p->flow.src.v6[1] | p->flow.src.v6[2] |
		(bpf_ntohl(p->flow.src.v6[3]) & ~1u)) != 0;
}

/* Take one answer from this CPU's too-big budget: a token bucket of
 * node->icmp_rate tokens per second, holding at most one second's worth.
 * Per CPU, so a flood of too-big packets costs no shared cache line. */
static __always_inline bool icmp_budget_take(const struct aeth_node *node)
{
	__u64 now, add, rate = node->icmp_rate;
	struct aeth_pcpu *pc;
	__u32 zero = 0;

	if (!rate)
		return false;
	pc = bpf_map_lookup_elem(&aeth_pcpu, &zero);
	if (!pc)
		return false;
	now = bpf_ktime_get_coarse_ns();
	if (now - pc->icmp_refill_ns >= ICMP_NSEC) {
		pc->icmp_tokens = rate;
		pc->icmp_refill_ns = now;
	} else {
		add = (now - pc->icmp_refill_ns) * rate / ICMP_NSEC;
		if (add) {
			pc->icmp_tokens += add;
			if (pc->icmp_tokens > rate)
				pc->icmp_tokens = rate;
			pc->icmp_refill_ns += add * ICMP_NSEC / rate;
		}
	}
	if (!pc->icmp_tokens)
		return false;
	pc->icmp_tokens--;
	return true;
}

static __always_inline bool addr6_eq(const __u32 *a, const __u32 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) |
		(a[3] ^ b[3])) == 0;
}

static __always_inline bool icmp_is_error(__u8 family, __u8 type)
{
	if (family == AETH_AF_INET)
		return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
		       type == ICMP_PARAMETERPROB;
	return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

/* For an ICMP error to the VIP quoting a packet the VIP sent (inner source
 * the VIP), rewrite p->flow into the client -> VIP flow it belongs to.
 * Returns 0, or -1 when it is not such an error. */
static __always_inline int icmp_error_flow(struct xdp_md *ctx,
					   struct lb_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 off = p->l4_off;
	__u8 *type = data + off;
	__be16 *ports;
	__u8 proto;

	if (off > PARSE_MAX_OFF || (void *)(type + 8) > end)
		return -1;
	if (!icmp_is_error(p->flow.family, *type))
		return -1;
	off += 8;
	if (p->flow.family == AETH_AF_INET) {
		struct iphdr *in = data + off;

		if ((void *)(in + 1) > end || in->version != 4 || in->ihl < 5)
			return -1;
		if (in->saddr != p->flow.dst.v4)
			return -1;
		proto = in->protocol;
		ports = (void *)in + in->ihl * 4;
		if ((void *)(ports + 2) > end)
			return -1;
		p->flow.src.v4 = in->daddr;
	} else {
		struct ipv6hdr *in = data + off;

		if ((void *)(in + 1) > end || in->version != 6)
			return -1;
		if (!addr6_eq((const __u32 *)&in->saddr, p->flow.dst.v6))
			return -1;
		proto = in->nexthdr;
		ports = (void *)(in + 1);
		if ((void *)(ports + 2) > end)
			return -1;
		__builtin_memcpy(p->flow.src.bytes, &in->daddr, 16);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return -1;
	p->flow.sport = ports[1];
	p->flow.dport = ports[0];
	p->flow.proto = proto;
	return 0;
}

#endif /* AETHER_BPF_ICMP_H */
