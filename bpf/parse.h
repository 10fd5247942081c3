/* SPDX-License-Identifier: GPL-2.0-only */
/* Packet parsing: Ethernet with up to two VLAN tags, IPv4 (options), IPv6
 * (hop-by-hop, routing and destination-options headers skipped), TCP, UDP.
 * Nothing is read past data_end; every offset is bounded for the verifier.
 *
 * Policy on broken packets: a frame too short for its Ethernet, VLAN or
 * fixed IP header is dropped as malformed whatever its destination (the
 * kernel would drop it too). An IP header that is complete but inconsistent
 * (length fields, options, extension headers, L4 header) is only judged when
 * the packet is for a VIP or the node's decap address; traffic for anyone
 * else passes untouched and the stack decides. */
#ifndef AETHER_BPF_PARSE_H
#define AETHER_BPF_PARSE_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aether/abi.h"

#define PARSE_OK 0
#define PARSE_NOT_IP 1
#define PARSE_MALFORMED (-1)

#define PARSE_MAX_VLAN 2
#define PARSE_MAX_EXT 4		/* IPv6 extension headers skipped */
#define PARSE_MAX_OFF 4096	/* largest L4 offset accepted */
#define PARSE_L2_MAX (ETH_HLEN + 4 * PARSE_MAX_VLAN)

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60

struct parse_vlan {
	__be16 tci;
	__be16 proto;
};

/* The flow as five 64-bit words, as the memories compare and hash it.
 * The parser stores the words it sets whole: a load that spans several
 * smaller stores still in flight cannot be forwarded from them and waits
 * for them to retire (about 7 ns of an established packet, whose path
 * loads the key a few times). */
typedef __u64 __attribute__((may_alias)) flow_word;

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "parse_l4 composes the flow's last word for a little-endian target"
#endif

static __always_inline flow_word *flow_key_words(struct aeth_flow *f)
{
	return (flow_word *)f;
}

/* What the data path knows about one packet. */
struct lb_pkt {
	struct aeth_flow flow;	/* as seen from the client; padding zero */
	__u32 l3_off;		/* Ethernet header and VLAN tags */
	__u32 l4_off;		/* after IPv4 options / IPv6 extensions */
	__u32 l3_len;		/* IP packet length from its header */
	__u32 n_vlan;
	__be32 v6_word0;	/* version, traffic class, flow label */
	__be16 ip_id;
	__u8 proto;		/* L4 protocol after extension headers */
	__u8 tos;		/* IPv4 TOS or IPv6 traffic class */
	__u8 ttl;		/* TTL or hop limit */
	__u8 df;
	__u8 frag;
	__u8 tcp_flags;
};

/* Ethernet, VLAN tags and the fixed IP header's family, addresses and
 * protocol: enough to know where the packet goes. Cheap on purpose: this is
 * all non-service traffic pays, so lengths, TOS, TTL and fragment bits wait
 * for parse_l3_rest() (and the IPv6 l4_off only is set here: the extension
 * walk starts from it). */
static __always_inline int parse_front(struct xdp_md *ctx, struct lb_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 off = ETH_HLEN;
	__be16 proto;
	int i;

	if (data + ETH_HLEN > end)
		return PARSE_MALFORMED;
	proto = eth->h_proto;
#pragma unroll
	for (i = 0; i < PARSE_MAX_VLAN; i++) {
		struct parse_vlan *v = data + off;

		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(v + 1) > end)
			return PARSE_MALFORMED;
		proto = v->proto;
		off += sizeof(*v);
		p->n_vlan++;
	}
	p->l3_off = off;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;

		if ((void *)(ip + 1) > end)
			return PARSE_MALFORMED;
		if (ip->version != 4 || ip->ihl < 5)
			return PARSE_MALFORMED;
		p->flow.family = AETH_AF_INET;
		/* as the 64-bit words the flow's readers load (flow_key_words) */
		flow_key_words(&p->flow)[0] = ip->saddr;
		flow_key_words(&p->flow)[2] = ip->daddr;
		p->proto = ip->protocol;
		return PARSE_OK;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;

		if ((void *)(ip6 + 1) > end)
			return PARSE_MALFORMED;
		if (ip6->version != 6)
			return PARSE_MALFORMED;
		p->flow.family = AETH_AF_INET6;
		__builtin_memcpy(p->flow.src.bytes, &ip6->saddr, 16);
		__builtin_memcpy(p->flow.dst.bytes, &ip6->daddr, 16);
		p->proto = ip6->nexthdr;
		p->l4_off = off + sizeof(*ip6);
		return PARSE_OK;
	}
	return PARSE_NOT_IP;
}

/* The rest of the IP layer, for packets that are ours: lengths, TOS, TTL,
 * IPv4 identification and fragment bits read, lengths checked against the
 * frame, IPv6 extension headers skipped, fragments flagged. Idempotent:
 * calling it again sees the same. */
static __always_inline int parse_l3_rest(struct xdp_md *ctx, struct lb_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 frame_len = end - data, l3_off = p->l3_off;
	__u32 off, l3_end;
	__u8 nh;
	int i;

	if (l3_off > PARSE_L2_MAX)
		return PARSE_MALFORMED;
	if (p->flow.family == AETH_AF_INET) {
		struct iphdr *ip = data + l3_off;
		__be16 frag_off;

		if ((void *)(ip + 1) > end)
			return PARSE_MALFORMED;
		p->l3_len = bpf_ntohs(ip->tot_len);
		p->l4_off = l3_off + ip->ihl * 4;
		p->tos = ip->tos;
		p->ttl = ip->ttl;
		p->ip_id = ip->id;
		frag_off = ip->frag_off;
		p->df = !!(frag_off & bpf_htons(IP_DF));
		p->frag = !!(frag_off & bpf_htons(IP_MF | IP_OFFMASK));
		if (p->l3_len > frame_len - l3_off)
			return PARSE_MALFORMED;
		return p->l4_off > l3_off + p->l3_len ? PARSE_MALFORMED :
							 PARSE_OK;
	}
	{
		struct ipv6hdr *ip6 = data + l3_off;

		if ((void *)(ip6 + 1) > end)
			return PARSE_MALFORMED;
		p->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		p->v6_word0 = *(__be32 *)ip6;
		p->tos = (bpf_ntohl(p->v6_word0) >> 20) & 0xff;
		p->ttl = ip6->hop_limit;
	}
	if (p->l3_len > frame_len - l3_off)
		return PARSE_MALFORMED;
	l3_end = l3_off + p->l3_len;

	off = p->l4_off;
	nh = p->proto;
	for (i = 0; i < PARSE_MAX_EXT; i++) {
		__u8 *h;

		if (nh != NEXTHDR_HOP && nh != NEXTHDR_ROUTING &&
		    nh != NEXTHDR_DEST && nh != NEXTHDR_FRAGMENT)
			break;
		if (off > PARSE_MAX_OFF || off + 8 > l3_end)
			return PARSE_MALFORMED;
		h = data + off;
		if ((void *)(h + 8) > end)
			return PARSE_MALFORMED;
		if (nh == NEXTHDR_FRAGMENT) {
			p->frag = 1;
			nh = h[0];
			off += 8;
			break;
		}
		nh = h[0];
		off += (h[1] + 1) * 8;
	}
	if (!p->frag && (nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING ||
			 nh == NEXTHDR_DEST || nh == NEXTHDR_FRAGMENT))
		return PARSE_MALFORMED;	/* more than we walk */
	if (off > l3_end)
		return PARSE_MALFORMED;
	p->proto = nh;
	p->l4_off = off;
	return PARSE_OK;
}

/* TCP or UDP ports (and TCP flags) into the flow. */
static __always_inline int parse_l4(struct xdp_md *ctx, struct lb_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 off = p->l4_off, l3_end = p->l3_off + p->l3_len, ports;

	if (off > PARSE_MAX_OFF)
		return PARSE_MALFORMED;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *t = data + off;

		if ((void *)(t + 1) > end || off + sizeof(*t) > l3_end)
			return PARSE_MALFORMED;
		if (t->doff < 5 || off + t->doff * 4 > l3_end)
			return PARSE_MALFORMED;
		p->tcp_flags = ((__u8 *)t)[13];
		ports = *(__u32 *)t;
	} else {
		struct udphdr *u = data + off;

		if ((void *)(u + 1) > end || off + sizeof(*u) > l3_end)
			return PARSE_MALFORMED;
		ports = *(__u32 *)u;
	}
	/* both ports as they sit in the header (source, then destination),
	 * protocol and family: one store of the word flow_key_words reads */
	flow_key_words(&p->flow)[4] =
		ports |
		(__u64)(p->proto | (__u32)p->flow.family << 8) << 32;
	return PARSE_OK;
}

/* The L2 header (with its tags) saved across a head adjustment. Copied in
 * 32-bit words: a byte-wise memcpy (what clang makes of a copy from an
 * unaligned packet pointer) cost about 8% of an established flow's time.
 * The verifier allows unaligned packet access on x86 and arm64 (no
 * BPF_F_STRICT_ALIGNMENT). */
struct l2_save {
	union {
		__u32 w[PARSE_L2_MAX / 4 + 1];
		__u8 b[PARSE_L2_MAX / 4 * 4 + 4];
	};
	__u32 n_vlan;
};

static __always_inline int l2_save(struct xdp_md *ctx, const struct lb_pkt *p,
				   struct l2_save *s)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 *w = data;

	s->n_vlan = p->n_vlan;
	if (data + PARSE_L2_MAX > end)
		return -1;	/* callers only save frames longer than this */
	/* 22 bytes: five words and the ethertype after them */
	s->w[0] = w[0];
	s->w[1] = w[1];
	s->w[2] = w[2];
	s->w[3] = w[3];
	s->w[4] = w[4];
	s->w[5] = *(__u16 *)(data + 20);
	return 0;
}

/* Write the saved L2 header at the (new) front with ethertype proto, and
 * with the MACs macs (destination, then source, as three words) unless
 * NULL (the saved ones then). */
static __always_inline int l2_restore(struct xdp_md *ctx,
				      const struct l2_save *s, __be16 proto,
				      const __u32 *macs)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 *w = data;

	if (data + PARSE_L2_MAX > end)
		return -1;
	if (!macs)
		macs = s->w;
	/* MACs, then each VLAN tag, then the new ethertype */
	w[0] = macs[0];
	w[1] = macs[1];
	w[2] = macs[2];
	if (s->n_vlan == 0) {
		*(__be16 *)(data + 12) = proto;
	} else if (s->n_vlan == 1) {
		w[3] = s->w[3];
		*(__be16 *)(data + 16) = proto;
	} else {
		w[3] = s->w[3];
		w[4] = s->w[4];
		*(__be16 *)(data + 20) = proto;
	}
	return 0;
}

#endif /* AETHER_BPF_PARSE_H */
