// SPDX-License-Identifier: GPL-2.0-only
/* The XDP entry point: guard, balance, encapsulate, decapsulate.
 *
 * Per packet: parse; to one of the node's addresses -> decap if it is a
 * tunnel packet from an LB node (decap.h), else XDP_PASS; a tunnel packet
 * to anyone else -> dropped; not a VIP -> XDP_PASS untouched.
 * To a VIP: fragments dropped, ICMP errors about a service flow with a
 * connection entry steered to its backend, other ICMP and unconfigured
 * ports/protocols dropped
 * (unconfigured_port: a VIP only accepts what was configured), then guard,
 * conntrack, Maglev, MTU check and encapsulation towards the backend.
 * A VIP must not be one of the node's own addresses. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "service.h"
#include "guard.h"
#include "acl_memory.h"
#include "flow_memory.h"
#include "conntrack.h"
#include "clock.h"
#include "maglev.h"
#include "encap.h"
#include "icmp.h"
#include "decap.h"
#include "aether/ct_rule.h"

#define LB_TCP_SYN 0x02
#define LB_TCP_ACK 0x10

/* A TCP SYN without ACK: the only TCP packet that opens a connection. */
static __always_inline bool lb_tcp_syn(const struct lb_pkt *p)
{
	return p->flow.proto == IPPROTO_TCP &&
	       (p->tcp_flags & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN;
}

/* Entry e of this flow judged by include/aether/ct_rule.h (never for a TCP
 * SYN), its backend into *bep when usable. *now_s gets the clock
 * (bpf/clock.h, at jiffies) in seconds. */
static __always_inline int lb_ct_verdict(const struct lb_pkt *p,
					 const struct aeth_node *node,
					 const struct aeth_svc *svc,
					 const struct aeth_ct_entry *e,
					 struct aeth_backend **bep,
					 __u32 *now_s, __u64 jiffies)
{
	__u32 id = e->backend_id;
	struct aeth_backend *be = bpf_map_lookup_elem(&aeth_backend, &id);
	int v;

	*now_s = clock_coarse_s(jiffies);
	v = aeth_ct_judge(e, be, svc->id, p->flow.proto, *now_s,
			  node->udp_timeout_s);
	if (v == AETH_CT_USE)
		*bep = be;
	return v;
}

/* lb_ct_verdict for a packet of the flow itself (entry e of key): an
 * expired entry is a new connection, and an entry in use has its seen_s
 * refreshed (at most once a second: when the second changed), which keeps
 * a UDP flow alive and any live flow from being the one its bucket gives
 * up (include/aether/ct_table.h), and is confirmed by its first use (one
 * write more a connection: its handshake's ACK). */
static __always_inline int lb_ct_judge(const struct lb_pkt *p,
				       const struct aeth_node *node,
				       const struct aeth_svc *svc,
				       const struct aeth_ct_key *key,
				       const struct aeth_ct_entry *e,
				       struct aeth_backend **bep, __u64 jiffies)
{
	__u32 now_s;
	int v = lb_ct_verdict(p, node, svc, e, bep, &now_s, jiffies);

	if (v == AETH_CT_EXPIRED) {
		stats_event(AETH_EV_CT_EXPIRED);
		return AETH_CT_NEW;
	}
	if (v == AETH_CT_USE && (e->seen_s != now_s || !e->confirmed) &&
	    now_s)
		ct_store(key, e->backend_id, now_s, CT_TOUCH | CT_CONFIRM);
	return v;
}

/* The coarse clock (bpf/clock.h), at most once per packet: *now is 0 until
 * read; jiffies: the packet's bpf_jiffies64(). The limits, the connection
 * entry and the insert budget all run on it (one tick, 4 ms at HZ=250, per
 * step): GCRA keeps the rate exact over time and a burst is never
 * exceeded, it only moves by up to one tick when the refill is seen
 * (docs/guard.md). */
static __always_inline __u64 lb_clock(__u64 *now, __u64 jiffies)
{
	if (!*now)
		*now = clock_coarse_ns(jiffies);
	return *now;
}

/* Charge a new connection to the service's limiters. Returns -1 or the
 * reason to drop with. A service without limits has nothing to charge. */
static __always_inline int lb_admit(const struct aeth_svc *svc,
				    const struct lb_pkt *p, __u64 *now,
				    __u64 jiffies)
{
	if (!(svc->src_interval_ns | svc->svc_interval_ns))
		return -1;
	return guard_admit_new_connection(svc, &p->flow,
					  lb_clock(now, jiffies));
}

/* The backend of a flow: its recorded one when still good for this packet,
 * else a Maglev pick, recorded for admitted new connections and
 * re-selections; a TCP non-SYN that misses the table is forwarded by
 * Maglev and not recorded (bpf/maps.h, aeth_ct: why). A TCP SYN reads no
 * entry (include/aether/ct_rule.h aeth_ct_reads_table): it is a new
 * connection whatever the table holds, and its entry replaces any other. */
static __always_inline struct aeth_backend *
lb_backend(struct lb_pkt *p, const struct aeth_node *node,
	   const struct svc_neg_ref *neg, const struct aeth_svc *svc,
	   __u32 *be_id, int *drop)
{
	struct aeth_ct_key key = aeth_ct_key_of(&p->flow, svc->id);
	bool syn = lb_tcp_syn(p), stray = false, found = false;
	struct aeth_ct_entry ce;
	struct aeth_backend *be = NULL;
	int verdict = AETH_CT_NEW;
	__u64 now = 0;

	*drop = -1;
	if (aeth_ct_reads_table(p->flow.proto, syn)) {
		found = ct_find(&key, &ce) >= 0;
		if (found) {
			verdict = lb_ct_judge(p, node, svc, &key, &ce, &be,
					      neg->now);
			if (verdict == AETH_CT_USE) {
				stats_event(AETH_EV_CT_HIT);
				*be_id = ce.backend_id;
				flow_mem_note(neg, &p->flow, be, *be_id,
					      svc->id);
				return be;
			}
			stats_event(AETH_EV_CT_RESELECT);
		} else {
			stats_event(AETH_EV_CT_MISS);
			/* a TCP non-SYN without entry: not charged, not
			 * recorded */
			stray = p->flow.proto == IPPROTO_TCP;
		}
	}
	if (verdict == AETH_CT_NEW && !stray) {
		*drop = lb_admit(svc, p, &now, neg->now);
		if (*drop >= 0)
			return NULL;
	}
	be = mg_select(svc, &p->flow, node, be_id);
	if (!be) {
		*drop = AETH_R_NO_BACKEND;
		return NULL;
	}
	if (stray) {
		stats_event(AETH_EV_CT_STRAY);
		return be;
	}
	if (verdict == AETH_CT_NEW)
		stats_new_flow(svc->id);
	/* overwriting a key's own slot adds no entry: no budget. A SYN read
	 * no entry, so it goes through the budget, replacing any */
	if (found) {
		ct_overwrite(&key, *be_id, clock_coarse_s(neg->now),
			     verdict == AETH_CT_RESELECT);
	} else {
		/* a SYN replaces (or deletes) any entry of its tuple: no
		 * memory of the old one may outlive it (refused SYNs change
		 * no entry and pay nothing for this) */
		if (syn)
			flow_mem_forget(&p->flow);
		ct_record(node, &key, *be_id, syn, neg->now);
	}
	return be;
}

/* A packet that would not fit the MTU once encapsulated. It is never
 * handed on to be fragmented: the backend's decap refuses outer fragments,
 * so a fragmented tunnel packet would be lost without a word. Instead the
 * client gets "fragmentation needed" / "packet too big" (with or without
 * DF), within this CPU's ICMP budget, never to a source that is no single
 * host and never about an ICMP error (steer); either way the packet is
 * counted as mtu_exceeded. */
static __always_inline int lb_too_big(struct xdp_md *ctx, struct lb_pkt *p,
				      const struct aeth_node *node, __u32 hlen,
				      __u32 svc_id, bool steer)
{
	__u32 mtu = node->mtu > hlen ? node->mtu - hlen : 0;
	int rc;

	if (steer || !icmp_source_answerable(p))
		return stats_drop(AETH_R_MTU_EXCEEDED, svc_id);
	if (!icmp_budget_take(node)) {
		stats_event(AETH_EV_ICMP_TOO_BIG_LIMITED);
		return stats_drop(AETH_R_MTU_EXCEEDED, svc_id);
	}
	if (p->flow.family == AETH_AF_INET)
		rc = icmp_frag_needed_v4(ctx, p, mtu < 68 ? 68 : mtu);
	else
		rc = icmp_too_big_v6(ctx, p, mtu < 1280 ? 1280 : mtu);
	/* counted as a drop of the client's packet; the answer is sent */
	stats_drop(AETH_R_MTU_EXCEEDED, svc_id);
	if (rc)
		return XDP_DROP;
	stats_event(AETH_EV_ICMP_TOO_BIG_SENT);
	return XDP_TX;
}

/* The next hop towards be: from the flow's memory (memo, or NULL) while it
 * holds one for this ingress at now (jiffies), else from encap_fib, whose
 * complete answer the memory then keeps. */
static __always_inline int lb_next_hop(struct xdp_md *ctx, struct lb_pkt *p,
				       const struct aeth_node *node,
				       const struct aeth_backend *be,
				       __u32 be_id, struct flow_memory *memo,
				       __u64 now, struct encap_hop *hop)
{
	__u32 ingress = ctx->ingress_ifindex;
	__u64 until;
	int rc;

	if (memo && now < memo->hop_until && memo->hop_ingress == ingress) {
		*hop = memo->hop;
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	rc = encap_fib(ctx, p, node, be, be_id, hop, &until);
	if (memo && rc == BPF_FIB_LKUP_RET_SUCCESS) {
		memo->hop = *hop;
		memo->hop_ingress = ingress;
		memo->hop_until = until;
	}
	return rc;
}

/* Encapsulate towards the backend and send it on its way. steer: an ICMP
 * error being forwarded (never answered with another ICMP); memo: the
 * flow's memory it is forwarded from (NULL: none), now: jiffies then. */
static __always_inline int lb_forward(struct xdp_md *ctx, struct lb_pkt *p,
				      const struct aeth_node *node, __u32 svc_id,
				      const struct aeth_backend *be,
				      __u32 be_id, bool steer,
				      struct flow_memory *memo, __u64 now)
{
	__u32 hlen = encap_overhead(be), bytes = p->l3_len;
	__u32 ingress = ctx->ingress_ifindex;
	struct encap_hop hop;
	int rc;

	if (!(node->flags & (be->family == AETH_AF_INET ? AETH_NODE_F_V4 :
							   AETH_NODE_F_V6)))
		return stats_drop(AETH_R_NO_ROUTE, svc_id);
	if (node->mtu && p->l3_len + hlen > node->mtu)
		return lb_too_big(ctx, p, node, hlen, svc_id, steer);

	rc = lb_next_hop(ctx, p, node, be, be_id, memo, now, &hop);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return stats_drop(AETH_R_NO_ROUTE, svc_id);
	/* without a neighbour the frame keeps its MACs: the stack forwards it
	 * and resolves the neighbour */
	if (encap_push(ctx, p, node, be,
		       rc == BPF_FIB_LKUP_RET_SUCCESS ? hop.macs : NULL))
		return stats_drop(AETH_R_NO_ROUTE, svc_id);
	stats_forward(svc_id, be_id, bytes);

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		stats_event(AETH_EV_TO_STACK_NO_NEIGH);
		return XDP_PASS;
	}
	if (hop.ifindex == ingress) {
		stats_event(AETH_EV_TX);
		return XDP_TX;
	}
	/* only to an interface the agent attached us to: XDP cannot send on
	 * the others, and the kernel would drop it after we counted it */
	if (!bpf_map_lookup_elem(&aeth_tx_ports, &hop.ifindex))
		return stats_drop(AETH_R_NO_ROUTE, svc_id);
	stats_event(AETH_EV_REDIRECT);
	return bpf_redirect(hop.ifindex, 0);
}

/* The backend of the flow an ICMP error quotes: only a flow with a live
 * connection entry on a backend still in use is followed. A Maglev guess
 * would let anyone aim forged errors at any backend. */
static __always_inline struct aeth_backend *
lb_icmp_backend(const struct lb_pkt *p, const struct aeth_node *node,
		const struct aeth_svc *svc, __u32 *be_id)
{
	struct aeth_ct_key key = aeth_ct_key_of(&p->flow, svc->id);
	struct aeth_backend *be = NULL;
	struct aeth_ct_entry ce;
	__u32 now_s;

	/* an error never refreshes the entry it quotes */
	if (ct_find(&key, &ce) < 0 ||
	    lb_ct_verdict(p, node, svc, &ce, &be, &now_s,
			  bpf_jiffies64()) != AETH_CT_USE)
		return NULL;
	*be_id = ce.backend_id;
	return be;
}

/* ICMP to a VIP: errors about a service flow with an entry follow the flow;
 * anything else is not something a VIP was configured for. */
static __always_inline int lb_icmp(struct xdp_md *ctx, struct lb_pkt *p,
				   const struct aeth_node *node)
{
	struct aeth_backend *be;
	struct aeth_svc *svc;
	__u32 be_id = 0;
	int rc;

	if (icmp_error_flow(ctx, p))
		return stats_drop(AETH_R_UNCONFIGURED_PORT, STATS_NO_SVC);
	svc = svc_lookup(&p->flow.dst, p->flow.family, p->flow.dport,
			 p->flow.proto);
	if (!svc)
		return stats_drop(AETH_R_UNCONFIGURED_PORT, STATS_NO_SVC);
	if (!guard_source_authorized(svc, &p->flow))
		return stats_drop(AETH_R_NOT_AUTHORIZED, svc->id);
	be = lb_icmp_backend(p, node, svc, &be_id);
	if (!be)	/* about no flow we carry */
		return stats_drop(AETH_R_UNCONFIGURED_PORT, svc->id);
	rc = lb_forward(ctx, p, node, svc->id, be, be_id, true, NULL, 0);
	if (rc != XDP_DROP)
		stats_event(AETH_EV_ICMP_STEERED);
	return rc;
}

/* A packet for a service found by its exact (VIP, port, proto) or its
 * wildcard; neg holds the stamp of the per-CPU memories. */
static __always_inline int lb_service_found(struct xdp_md *ctx,
					    struct lb_pkt *p,
					    const struct aeth_node *node,
					    const struct svc_neg_ref *neg,
					    struct aeth_svc *svc)
{
	struct aeth_backend *be;
	__u32 be_id = 0;
	int drop;

	if (!acl_mem_authorized(neg, svc, &p->flow))
		return stats_drop(AETH_R_NOT_AUTHORIZED, svc->id);
	be = lb_backend(p, node, neg, svc, &be_id, &drop);
	if (!be)
		return stats_drop(drop, svc->id);
	return lb_forward(ctx, p, node, svc->id, be, be_id, false, NULL, 0);
}

/* A packet to a VIP that no exact (VIP, port, proto) service took. l3 and
 * l4: what parse_l3_rest() and parse_l4() returned (l4 is only meaningful
 * for TCP and UDP); neg: the VIP cache's entry, told of a missing wildcard. */
static __always_inline int lb_service(struct xdp_md *ctx, struct lb_pkt *p,
				      const struct aeth_node *node, int l3,
				      int l4, struct svc_neg_ref *neg)
{
	struct aeth_svc *svc;

	if (l3)
		return stats_drop(AETH_R_MALFORMED, STATS_NO_SVC);
	if (p->frag)
		return stats_drop(AETH_R_FRAGMENT, STATS_NO_SVC);
	/* each family's own ICMP only: ICMPv4 inside IPv6 is no error */
	if ((p->flow.family == AETH_AF_INET && p->proto == IPPROTO_ICMP) ||
	    (p->flow.family == AETH_AF_INET6 && p->proto == IPPROTO_ICMPV6))
		return lb_icmp(ctx, p, node);
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return stats_drop(AETH_R_UNCONFIGURED_PORT, STATS_NO_SVC);
	if (l4)
		return stats_drop(AETH_R_MALFORMED, STATS_NO_SVC);
	/* the exact port missed already: the wildcard service, if any */
	svc = svc_find_port(neg, &p->flow.dst, p->flow.family, 0,
			    p->flow.proto);
	if (!svc) {
		svc_neg_note_no_wildcard(neg, &p->flow.dst, p->flow.family,
					 p->flow.proto);
		return stats_drop(AETH_R_UNCONFIGURED_PORT, STATS_NO_SVC);
	}
	return lb_service_found(ctx, p, node, neg, svc);
}

static __always_inline int lb_decap(struct xdp_md *ctx, struct lb_pkt *p)
{
	int r;

	/* plain traffic to the node: not ours to judge */
	if (p->proto != IPPROTO_IPIP && p->proto != IPPROTO_IPV6 &&
	    (p->flow.family == AETH_AF_INET ||
	     (p->proto != NEXTHDR_HOP && p->proto != NEXTHDR_ROUTING &&
	      p->proto != NEXTHDR_DEST && p->proto != NEXTHDR_FRAGMENT)))
		goto pass;
	if (parse_l3_rest(ctx, p))
		return stats_drop(AETH_R_MALFORMED, STATS_NO_SVC);
	r = decap_strip(ctx, p);
	if (r == DECAP_DONE) {
		stats_event(AETH_EV_DECAP);
		return XDP_PASS;
	}
	if (r != DECAP_PASS)
		return stats_drop(r == DECAP_MALFORMED ? AETH_R_MALFORMED :
							 AETH_R_DECAP_INVALID,
				  STATS_NO_SVC);
pass:
	stats_event(AETH_EV_PASS_NOT_SERVICE);
	return XDP_PASS;
}

/* A tunnel packet to an address of the node other than node.addresses
 * (or to anyone: the node is no router of tunnels) must not reach the
 * kernel's own tunnel devices, which would decapsulate it without our
 * checks. IPv6 extension headers are walked to find the tunnel (only
 * packets that carry some pay for that). */
static __always_inline bool lb_stray_tunnel(struct xdp_md *ctx,
					    struct lb_pkt *p)
{
	if (decap_is_tunnel(p))
		return true;
	if (p->flow.family != AETH_AF_INET6 ||
	    (p->proto != NEXTHDR_HOP && p->proto != NEXTHDR_ROUTING &&
	     p->proto != NEXTHDR_DEST && p->proto != NEXTHDR_FRAGMENT))
		return false;
	/* parse_l3_rest is idempotent: the later call sees the same */
	return parse_l3_rest(ctx, p) == 0 && decap_is_tunnel(p);
}

SEC("xdp")
int aether_lb(struct xdp_md *ctx)
{
	struct svc_neg_ref neg;
	struct aeth_node *node;
	struct aeth_svc *svc;
	struct lb_pkt p;
	__u32 zero = 0, bucket;
	int r, l3, l4 = 0;

	__builtin_memset(&p, 0, sizeof(p));
	r = parse_front(ctx, &p);
	if (r == PARSE_MALFORMED)
		return stats_drop(AETH_R_MALFORMED, STATS_NO_SVC);
	node = bpf_map_lookup_elem(&aeth_node, &zero);
	if (r == PARSE_NOT_IP || !node)
		goto pass;
	/* The node's own traffic is the commonest non-service traffic: two
	 * compares spare it the VIP hash lookup (a VIP is never one of the
	 * node's addresses). */
	if (decap_for_node(&p, node))
		return lb_decap(ctx, &p);
	if (lb_stray_tunnel(ctx, &p))
		return stats_drop(AETH_R_DECAP_INVALID, STATS_NO_SVC);
	/* the rest of non-service traffic (pods, routed): the VIP filter's
	 * bit (an IPv4 address's other words are zero: not folded) */
	bucket = p.flow.family == AETH_AF_INET ?
			 aeth_vip_filter_bucket_of(p.flow.dst.v4) :
			 aeth_vip_filter_bucket(&p.flow.dst);
	svc_stamp(&neg);
	if (svc_filter_not_vip(&neg, bucket))
		goto pass;
	neg.now = bpf_jiffies64();
	svc_neg_find(&neg, bucket, &p.flow.dst, p.flow.family);
	if (neg.kind == SVC_NEG_NOT_VIP)
		goto pass;
	/* TCP and UDP: the service lookup itself tells a VIP (a hit), which
	 * spares established and new flows the aeth_vip lookup; only a miss
	 * asks aeth_vip (wildcard port, ICMP, drops, or no VIP at all). The
	 * rest of the IP header is parsed before anything is known to be
	 * ours; a packet that is not for a VIP passes whatever it holds. */
	l3 = parse_l3_rest(ctx, &p);
	if (!l3 && !p.frag &&
	    (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP)) {
		l4 = parse_l4(ctx, &p);
		if (!l4) {
			/* the port this VIP's memory last found without a
			 * service: no lookup (a flood of one port). Before the
			 * flow memory: no flow of a port without a service is
			 * remembered under the same stamp */
			if (svc_neg_no_port(&neg, p.flow.proto, p.flow.dport))
				return stats_drop(AETH_R_UNCONFIGURED_PORT,
						  STATS_NO_SVC);
			/* a flow this CPU forwarded by its entry lately */
			if (!lb_tcp_syn(&p)) {
				struct flow_memory *m = flow_mem_find(&neg,
								      &p.flow);

				if (m) {
					stats_event(AETH_EV_CT_HIT);
					return lb_forward(ctx, &p, node,
							  m->svc_id, &m->be,
							  m->be_id, false, m,
							  neg.now);
				}
			}
			svc = svc_find_port(&neg, &p.flow.dst,
					    p.flow.family, p.flow.dport,
					    p.flow.proto);
			if (svc)
				return lb_service_found(ctx, &p, node, &neg,
							svc);
			/* a VIP known to have no wildcard service: no
			 * other lookup can find one */
			if (svc_neg_no_wildcard(&neg, p.flow.proto)) {
				svc_neg_note_no_port(&neg, p.flow.proto,
						     p.flow.dport);
				return stats_drop(AETH_R_UNCONFIGURED_PORT,
						  STATS_NO_SVC);
			}
		}
	}
	if (svc_is_vip(&p.flow.dst, p.flow.family))
		return lb_service(ctx, &p, node, l3, l4, &neg);
	svc_neg_store(&neg, &p.flow.dst, p.flow.family, SVC_NEG_NOT_VIP);
pass:
	stats_event(AETH_EV_PASS_NOT_SERVICE);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
