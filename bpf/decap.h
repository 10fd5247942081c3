/* SPDX-License-Identifier: GPL-2.0-only */
/* Inline decapsulation on a backend node: an IPIP / IPv6-in-IPv4 /
 * IPv4-in-IPv6 / IPv6-in-IPv6 packet to one of the node's addresses is
 * stripped and passed to the stack only when
 *   - its outer source is one of decap.sources (the LB nodes, aeth_decap),
 *   - its inner packet is for a configured service, and
 *   - the inner source passes that service's authorized networks (the check
 *     the LB node made; a forged outer source does not skip it).
 * Inner ICMP/ICMPv6 is accepted only as an error about a service flow whose
 * client passes the service's authorized networks: that is an ICMP error
 * some balancer steered here. Anything else is dropped (decap_invalid), so
 * the node is never an open tunnel and tunnels do not bypass the guard.
 * ECN follows RFC 6040 (normal mode): CE on the outer header is carried to
 * an ECN-capable inner packet; CE over a not-ECT inner packet is dropped. */
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
#include "maps.h"
#include "parse.h"
#include "service.h"
#include "guard.h"
#include "icmp.h"
#include "csum.h"

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

/* An IPv4 or IPv6 tunnel packet (after p's extension headers)? */
static __always_inline bool decap_is_tunnel(const struct lb_pkt *p)
{
	return p->proto == IPPROTO_IPIP || p->proto == IPPROTO_IPV6;
}

#define DECAP_PASS 0		/* not a tunnel packet: leave it to the stack */
#define DECAP_DONE 1		/* stripped */
#define DECAP_INVALID (-1)
#define DECAP_MALFORMED (-2)

#define DECAP_ECN_MASK 0x03
#define DECAP_ECN_CE 0x03

/* Parse the inner IP header at p->l4_off into in (flow addresses, family,
 * proto, l3_off/l4_off/l3_len, tos). Returns 0 or DECAP_INVALID. */
static __always_inline int decap_inner_parse(struct xdp_md *ctx,
					     const struct lb_pkt *p,
					     struct lb_pkt *in)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 off = p->l4_off, l3_end = p->l3_off + p->l3_len;

	if (off > PARSE_MAX_OFF)
		return DECAP_INVALID;
	in->l3_off = off;
	if (p->proto == IPPROTO_IPIP) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
			return DECAP_INVALID;
		if (off + bpf_ntohs(ip->tot_len) > l3_end ||
		    ip->frag_off & bpf_htons(IP_MF | IP_OFFMASK))
			return DECAP_INVALID;
		in->flow.family = AETH_AF_INET;
		in->flow.src.v4 = ip->saddr;
		in->flow.dst.v4 = ip->daddr;
		in->proto = ip->protocol;
		in->l4_off = off + ip->ihl * 4;
		in->l3_len = bpf_ntohs(ip->tot_len);
		in->tos = ip->tos;
		return 0;
	}
	{
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return DECAP_INVALID;
		if (off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > l3_end)
			return DECAP_INVALID;
		in->flow.family = AETH_AF_INET6;
		__builtin_memcpy(in->flow.src.bytes, &ip6->saddr, 16);
		__builtin_memcpy(in->flow.dst.bytes, &ip6->daddr, 16);
		in->proto = ip6->nexthdr;
		in->l4_off = off + sizeof(*ip6);
		in->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		in->tos = (bpf_ntohl(*(__be32 *)ip6) >> 20) & 0xff;
		return 0;
	}
}

/* Is the inner packet one the service accepts from its source: TCP/UDP to a
 * service whose authorized networks hold the inner source, or an ICMP error
 * quoting such a flow? in->flow is rewritten for the check. */
static __always_inline bool decap_inner_allowed(struct xdp_md *ctx,
						struct lb_pkt *in)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l4 = in->l4_off;
	struct aeth_svc *svc;
	__be16 *ports;

	if (in->proto == IPPROTO_TCP || in->proto == IPPROTO_UDP) {
		if (l4 > PARSE_MAX_OFF + 60)
			return false;
		ports = data + l4;
		if ((void *)(ports + 2) > end ||
		    l4 + 4 > in->l3_off + in->l3_len)
			return false;
		svc = svc_lookup(&in->flow.dst, in->flow.family, ports[1],
				 in->proto);
	} else if ((in->flow.family == AETH_AF_INET &&
		    in->proto == IPPROTO_ICMP) ||
		   (in->flow.family == AETH_AF_INET6 &&
		    in->proto == IPPROTO_ICMPV6)) {
		/* the quoted flow, client -> VIP, is what the guard judges */
		if (!svc_is_vip(&in->flow.dst, in->flow.family) ||
		    icmp_error_flow(ctx, in))
			return false;
		svc = svc_lookup(&in->flow.dst, in->flow.family,
				 in->flow.dport, in->flow.proto);
	} else {
		return false;
	}
	return svc && guard_source_authorized(svc, &in->flow);
}

/* RFC 6040 normal mode: CE on the outer header marks an ECN-capable inner
 * packet CE (IPv4 header checksum updated); CE over not-ECT is refused. */
static __always_inline int decap_ecn(struct xdp_md *ctx, const struct lb_pkt *p,
				     const struct lb_pkt *in)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 off = in->l3_off;

	if ((p->tos & DECAP_ECN_MASK) != DECAP_ECN_CE ||
	    (in->tos & DECAP_ECN_MASK) == DECAP_ECN_CE)
		return 0;
	if (!(in->tos & DECAP_ECN_MASK))
		return DECAP_INVALID;
	if (off > PARSE_MAX_OFF)
		return DECAP_INVALID;
	if (in->flow.family == AETH_AF_INET) {
		struct iphdr *ip = data + off;
		__u16 *w0 = (__u16 *)ip, old;
		__u32 sum;

		if ((void *)(ip + 1) > end)
			return DECAP_INVALID;
		/* incremental update (RFC 1624): the header may have options */
		old = *w0;
		ip->tos |= DECAP_ECN_CE;
		sum = (__u16)~ip->check + (__u16)~old + *w0;
		ip->check = csum_fold(sum);
	} else {
		__u8 *w = data + off;

		if ((void *)(w + 2) > end)
			return DECAP_INVALID;
		/* traffic class straddles bytes 0 and 1: ECN bits are the
		 * top two bits of byte 1's high nibble */
		w[1] |= DECAP_ECN_CE << 4;
	}
	return 0;
}

/* Check the tunnel and strip the outer header. p has been through
 * parse_l3_rest (outer) and is for one of the node's addresses. */
static __always_inline int decap_strip(struct xdp_md *ctx,
				       const struct lb_pkt *p)
{
	__u32 off = p->l4_off;
	struct l2_save l2;
	struct lb_pkt in;

	if (!decap_is_tunnel(p))
		return DECAP_PASS;
	if (p->frag)
		return DECAP_INVALID;
	if (off > PARSE_MAX_OFF)
		return DECAP_MALFORMED;
	if (!guard_trie_allows(&aeth_decap, &p->flow))
		return DECAP_INVALID;
	__builtin_memset(&in, 0, sizeof(in));
	if (decap_inner_parse(ctx, p, &in))
		return DECAP_INVALID;
	if (!decap_inner_allowed(ctx, &in))
		return DECAP_INVALID;
	if (decap_ecn(ctx, p, &in))
		return DECAP_INVALID;

	if (l2_save(ctx, p, &l2))
		return DECAP_MALFORMED;
	if (bpf_xdp_adjust_head(ctx, (int)(off - p->l3_off)))
		return DECAP_MALFORMED;
	if (l2_restore(ctx, &l2, in.flow.family == AETH_AF_INET ?
					 bpf_htons(ETH_P_IP) :
					 bpf_htons(ETH_P_IPV6), NULL))
		return DECAP_MALFORMED;
	return DECAP_DONE;
}

#endif /* AETHER_BPF_DECAP_H */
