/* SPDX-License-Identifier: GPL-2.0-only */
/* IPIP encapsulation towards a backend (4in4, 6in6, 6in4, 4in6) and the
 * next hop from the kernel's FIB. The L2 header and its VLAN tags stay at
 * the front; the outer header carries the inner TTL/hop limit, TOS/traffic
 * class and DF (always DF for an IPv6 inner packet). */
#ifndef AETHER_BPF_ENCAP_H
#define AETHER_BPF_ENCAP_H

#include <linux/bpf.h>
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

static __always_inline __u32 encap_overhead(const struct aeth_backend *be)
{
	return be->family == AETH_AF_INET ? sizeof(struct iphdr) :
					    sizeof(struct ipv6hdr);
}

static __always_inline void encap_fib_params(struct xdp_md *ctx,
					     const struct lb_pkt *p,
					     const struct aeth_node *node,
					     const struct aeth_backend *be,
					     struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = ctx->ingress_ifindex;
	fib->l4_protocol = p->flow.family == AETH_AF_INET ? IPPROTO_IPIP :
							    IPPROTO_IPV6;
	if (be->family == AETH_AF_INET) {
		fib->family = AETH_AF_INET;
		fib->tos = p->tos;
		fib->ipv4_src = node->v4;
		fib->ipv4_dst = be->addr.v4;
	} else {
		fib->family = AETH_AF_INET6;
		__builtin_memcpy(fib->ipv6_src, node->v6, 16);
		__builtin_memcpy(fib->ipv6_dst, be->addr.v6, 16);
	}
}

/* Next hop for the outer packet. Returns the bpf_fib_lookup result.
 * An output lookup only matches routes through the ingress device (the
 * usual case: backends behind the same NIC). If none does, look again as a
 * forwarding lookup, which may pick another device (needs IP forwarding
 * enabled on the node). */
static __always_inline int encap_fib_lookup(struct xdp_md *ctx,
					    const struct lb_pkt *p,
					    const struct aeth_node *node,
					    const struct aeth_backend *be,
					    struct bpf_fib_lookup *fib)
{
	int rc;

	encap_fib_params(ctx, p, node, be, fib);
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return rc;
	encap_fib_params(ctx, p, node, be, fib);
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/* A FIB lookup costs about 130-250 ns here, more than the rest of the
 * established path: each CPU remembers a backend's resolved next hop for
 * NH_CACHE_TTL jiffies (the verifier inlines bpf_jiffies64(); a clock read
 * costs 20-45 ns): 100 ms at Debian's HZ=250, 25-250 ms for HZ 1000-100
 * (not read from the kernel config: that would make loading depend on
 * /boot or /proc/config.gz). A route or neighbour change therefore takes
 * effect within that time. Only complete answers are kept (never NO_NEIGH
 * or failures). The map is private to the loaded program (no aeth_ prefix:
 * the agent pins only those), so a new program starts with an empty cache. */
#define NH_CACHE_SIZE 4096
#define NH_CACHE_TTL 25

/* Where the outer packet goes: the egress device and the MACs (the next
 * hop's, then ours) as the three words l2_restore writes. */
struct encap_hop {
	__u32 ifindex;
	__u32 macs[3];
};

struct nh_cache_entry {
	__u64 expires;		/* jiffies */
	union aeth_addr dst;	/* the backend address it was resolved for */
	__u32 be_id;
	__u32 ingress;
	__u8 family;
	__u8 pad[3];
	struct encap_hop hop;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NH_CACHE_SIZE);
	__type(key, __u32);
	__type(value, struct nh_cache_entry);
} lb_nh_cache SEC(".maps");

static __always_inline bool nh_cache_match(const struct nh_cache_entry *c,
					   const struct aeth_backend *be,
					   __u32 be_id, __u32 ingress)
{
	return c->be_id == be_id && c->ingress == ingress &&
	       c->family == be->family &&
	       ((c->dst.v6[0] ^ be->addr.v6[0]) | (c->dst.v6[1] ^ be->addr.v6[1]) |
		(c->dst.v6[2] ^ be->addr.v6[2]) |
		(c->dst.v6[3] ^ be->addr.v6[3])) == 0;
}

/* The next hop of backend be_id into *hop (complete for a success only;
 * NO_NEIGH leaves the MACs unset), and in *until the jiffies until which
 * it may be used again: the cache entry's expiry, or NH_CACHE_TTL from
 * now for a fresh lookup. */
static __always_inline int encap_fib(struct xdp_md *ctx,
				     const struct lb_pkt *p,
				     const struct aeth_node *node,
				     const struct aeth_backend *be,
				     __u32 be_id, struct encap_hop *hop,
				     __u64 *until)
{
	__u32 key = be_id % NH_CACHE_SIZE, ingress = ctx->ingress_ifindex;
	struct nh_cache_entry *c = bpf_map_lookup_elem(&lb_nh_cache, &key);
	__u64 now = bpf_jiffies64();
	struct bpf_fib_lookup fib;
	int rc;

	if (c && now < c->expires && nh_cache_match(c, be, be_id, ingress)) {
		*hop = c->hop;
		*until = c->expires;
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	rc = encap_fib_lookup(ctx, p, node, be, &fib);
	hop->ifindex = fib.ifindex;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	__builtin_memcpy(hop->macs, fib.dmac, ETH_ALEN);
	__builtin_memcpy((__u8 *)hop->macs + ETH_ALEN, fib.smac, ETH_ALEN);
	*until = now + NH_CACHE_TTL;
	if (c) {
		c->expires = *until;
		c->dst = be->addr;
		c->be_id = be_id;
		c->ingress = ingress;
		c->family = be->family;
		c->hop = *hop;
	}
	return rc;
}

/* The outer IPv4 identification of a packet that may be fragmented on
 * the way (no DF). Never the client's own id: the outer header is ours
 * (node -> backend), and ids copied from many clients would collide at the
 * backend's reassembly. A per-CPU counter from a random start; with DF the
 * packet is atomic and the id 0 (RFC 6864). */
static __always_inline __be16 encap_next_ip_id(void)
{
	struct aeth_pcpu *pc;
	__u32 zero = 0;

	pc = bpf_map_lookup_elem(&aeth_pcpu, &zero);
	if (!pc)
		return (__be16)bpf_get_prandom_u32();
	if (!pc->ip_id)
		pc->ip_id = bpf_get_prandom_u32() | 1;
	return bpf_htons((__u16)pc->ip_id++);
}

/* Put the outer header in front of the client's IP packet (Ethernet
 * padding trimmed first), with the next hop's MACs (macs: encap_hop.macs)
 * or, when NULL, the frame's own. Returns 0 or -1 (no headroom). */
static __always_inline int encap_push(struct xdp_md *ctx,
				      const struct lb_pkt *p,
				      const struct aeth_node *node,
				      const struct aeth_backend *be,
				      const __u32 *macs)
{
	__u8 inner_proto = p->flow.family == AETH_AF_INET ? IPPROTO_IPIP :
							    IPPROTO_IPV6;
	int hlen = encap_overhead(be);
	__u32 l3_off = p->l3_off, want, frame_len;
	struct l2_save l2;
	void *data, *end;

	if (l2_save(ctx, p, &l2))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	frame_len = end - data;
	want = l3_off + p->l3_len;
	if (frame_len > want && bpf_xdp_adjust_tail(ctx, (int)want - (int)frame_len))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -hlen))
		return -1;
	if (l2_restore(ctx, &l2, be->family == AETH_AF_INET ?
				       bpf_htons(ETH_P_IP) :
				       bpf_htons(ETH_P_IPV6), macs))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (l3_off > PARSE_L2_MAX)
		return -1;

	if (be->family == AETH_AF_INET) {
		struct iphdr *ip = data + l3_off;
		__u16 frag = 0;

		if ((void *)(ip + 1) > end)
			return -1;
		if (p->flow.family == AETH_AF_INET6 || p->df)
			frag = IP_DF;
		/* the checksum from the values, not read back from the
		 * packet: 16-bit loads of what was just stored as bytes and
		 * 32-bit words defeat store forwarding (about 6% of an
		 * established flow's time) */
		__u16 w0 = csum_bytes_as_stored(0x45, p->tos);
		__u16 w4 = csum_bytes_as_stored(p->ttl, inner_proto);
		__be16 tot_len = bpf_htons(p->l3_len + hlen);
		__be16 id = frag ? 0 : encap_next_ip_id();
		__be16 frag_off = bpf_htons(frag);
		__be32 saddr = node->v4, daddr = be->addr.v4;
		__u32 sum = (__u32)w0 + tot_len + id + frag_off + w4 +
			    (saddr & 0xffff) + (saddr >> 16) +
			    (daddr & 0xffff) + (daddr >> 16);

		*(__u16 *)ip = w0;
		ip->tot_len = tot_len;
		ip->id = id;
		ip->frag_off = frag_off;
		*((__u16 *)ip + 4) = w4;
		ip->check = csum_fold(sum);
		ip->saddr = saddr;
		ip->daddr = daddr;
	} else {
		struct ipv6hdr *ip6 = data + l3_off;
		__u32 label = 0;

		if ((void *)(ip6 + 1) > end)
			return -1;
		if (p->flow.family == AETH_AF_INET6)
			label = bpf_ntohl(p->v6_word0) & 0xfffff;
		*(__be32 *)ip6 = bpf_htonl(6u << 28 | (__u32)p->tos << 20 | label);
		ip6->payload_len = bpf_htons(p->l3_len);
		ip6->nexthdr = inner_proto;
		ip6->hop_limit = p->ttl;
		__builtin_memcpy(&ip6->saddr, node->v6, 16);
		__builtin_memcpy(&ip6->daddr, be->addr.v6, 16);
	}
	return 0;
}

#endif /* AETHER_BPF_ENCAP_H */
