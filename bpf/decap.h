/* SPDX-License-Identifier: GPL-2.0-only */
/* Inline decapsulation on a backend node: an IPIP / IPv6-in-IPv4 /
 * IPv4-in-IPv6 / IPv6-in-IPv6 packet to one of the node's addresses is
 * stripped and passed to the stack only when its inner packet is for a
 * configured service; anything else is dropped, so the node is never an
 * open tunnel. Inner ICMP/ICMPv6 to a known VIP is accepted too: that is an
 * ICMP error some balancer steered here. */
#ifndef AETHER_BPF_DECAP_H
#define AETHER_BPF_DECAP_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aether/abi.h"
#include "parse.h"
#include "service.h"

/* Is the packet's destination one of the node's addresses? */
static __always_inline bool decap_for_node(const struct lb_pkt *p,
					   const struct aeth_node *node)
{
	const __u32 *d = p->flow.dst.v6;

	if (p->flow.family == AETH_AF_INET)
		return (node->flags & AETH_NODE_F_V4) && node->v4 == d[0];
	return (node->flags & AETH_NODE_F_V6) &&
	       ((node->v6[0] ^ d[0]) | (node->v6[1] ^ d[1]) |
		(node->v6[2] ^ d[2]) | (node->v6[3] ^ d[3])) == 0;
}

#define DECAP_PASS 0		/* not a tunnel packet: leave it to the stack */
#define DECAP_DONE 1		/* stripped */
#define DECAP_INVALID (-1)
#define DECAP_MALFORMED (-2)

/* Check the inner packet and strip the outer header. p has been through
 * parse_l3_rest (outer). */
static __always_inline int decap_strip(struct xdp_md *ctx,
				       const struct lb_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 off = p->l4_off, l3_end = p->l3_off + p->l3_len, l4;
	union aeth_addr dst = {};
	struct l2_save l2;
	__be16 inner_eth;
	__be16 *ports;
	__u8 family, proto;

	if (p->proto != IPPROTO_IPIP && p->proto != IPPROTO_IPV6)
		return DECAP_PASS;
	if (p->frag)
		return DECAP_INVALID;
	if (off > PARSE_MAX_OFF)
		return DECAP_MALFORMED;
	if (p->proto == IPPROTO_IPIP) {
		struct iphdr *in = data + off;

		if ((void *)(in + 1) > end || in->version != 4 || in->ihl < 5)
			return DECAP_INVALID;
		if (off + bpf_ntohs(in->tot_len) > l3_end ||
		    in->frag_off & bpf_htons(IP_MF | IP_OFFMASK))
			return DECAP_INVALID;
		family = AETH_AF_INET;
		dst.v4 = in->daddr;
		proto = in->protocol;
		l4 = off + in->ihl * 4;
		inner_eth = bpf_htons(ETH_P_IP);
	} else {
		struct ipv6hdr *in = data + off;

		if ((void *)(in + 1) > end || in->version != 6)
			return DECAP_INVALID;
		if (off + sizeof(*in) + bpf_ntohs(in->payload_len) > l3_end)
			return DECAP_INVALID;
		family = AETH_AF_INET6;
		__builtin_memcpy(dst.bytes, &in->daddr, 16);
		proto = in->nexthdr;
		l4 = off + sizeof(*in);
		inner_eth = bpf_htons(ETH_P_IPV6);
	}
	if (!svc_is_vip(&dst, family))
		return DECAP_INVALID;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		if (l4 > PARSE_MAX_OFF + 60)
			return DECAP_INVALID;
		ports = data + l4;
		if ((void *)(ports + 2) > end || l4 + 4 > l3_end)
			return DECAP_INVALID;
		if (!svc_lookup(&dst, family, ports[1], proto))
			return DECAP_INVALID;
	} else if (!(family == AETH_AF_INET && proto == IPPROTO_ICMP) &&
		   !(family == AETH_AF_INET6 && proto == IPPROTO_ICMPV6)) {
		return DECAP_INVALID;
	}

	if (l2_save(ctx, p, &l2))
		return DECAP_MALFORMED;
	if (bpf_xdp_adjust_head(ctx, (int)(off - p->l3_off)))
		return DECAP_MALFORMED;
	if (l2_restore(ctx, &l2, inner_eth))
		return DECAP_MALFORMED;
	return DECAP_DONE;
}

#endif /* AETHER_BPF_DECAP_H */
