/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The connection-table rules both the data path (bpf/aether_lb.bpf.c) and
 * aetherctl explain apply, so the two cannot drift: what a connection entry
 * is worth to a packet (which backend may take a new connection:
 * backend_rule.h). */
#ifndef AETHER_CT_RULE_H
#define AETHER_CT_RULE_H

#include <stdbool.h>
#include <linux/types.h>
#include "abi.h"
#include "backend_rule.h"
#include "rule_inline.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "aeth_ct_key_of composes the key's last word for a little-endian target"
#endif

#define AETH_CT_USE 0		/* forward to the recorded backend */
#define AETH_CT_NEW 1		/* a new connection on the tuple: admit, pick */
#define AETH_CT_RESELECT 2	/* backend removed mid-flow: pick, no charge */
#define AETH_CT_EXPIRED 3	/* idle UDP entry: a new connection too */

/* Whether a packet reads the connection table at all. A TCP SYN without
 * ACK (syn) never does: it is always a new connection. It is judged by the
 * authorized networks and charged to the limits, Maglev picks its backend,
 * and its entry is written, replacing any entry of the same tuple (within
 * the per-CPU insert budget; when the budget refuses, an entry of the
 * tuple is deleted instead: bpf/conntrack.h ct_record). So a client that
 * retransmits its SYN, or reuses a tuple (behind NAT), is charged again
 * and lands where Maglev points now, which is where it landed the first
 * time unless the service's table changed meanwhile. Reading the table
 * first would cost a cold miss in a table of a million entries on every
 * SYN of a flood, more than all the limits' work. Every other packet
 * (TCP without SYN or with SYN+ACK, UDP) reads it: aeth_ct_judge. */
AETH_RULE bool aeth_ct_reads_table(__u8 proto, bool syn)
{
	return !(proto == 6 /* IPPROTO_TCP */ && syn);
}

/* The connection-table key of a flow of service svc_id. */
AETH_RULE struct aeth_ct_key aeth_ct_key_of(const struct aeth_flow *f,
					    __u32 svc_id)
{
	struct aeth_ct_key k;

	k.src = f->src;
	/* one store of the word the hash reads (two 16-bit stores would
	 * stall its load); the layout of sport then svc_id is little-endian
	 * here, like every target this builds for (bpf/parse.h) */
	k.port_svc = (__u32)f->sport | (__u32)(__u16)svc_id << 16;
	return k;
}

/* Judge entry e (naming backend be, NULL when unreadable) for a packet of
 * service svc_id that reads the table (aeth_ct_reads_table: never a TCP
 * SYN); the entry's key holds svc_id. Packets keep a draining or
 * unhealthy backend (only new connections avoid it, through Maglev); an
 * entry whose backend is gone or belongs to another service (the id was
 * reused) is re-selected without a charge; a UDP entry idle for more than
 * udp_timeout_s whole seconds (0: never) at now_s is gone (a new
 * connection). */
AETH_RULE int aeth_ct_judge(const struct aeth_ct_entry *e,
			    const struct aeth_backend *be, __u32 svc_id,
			    __u8 proto, __u32 now_s, __u32 udp_timeout_s)
{
	if (!be || aeth_backend_removed(be, svc_id))
		return AETH_CT_RESELECT;
	if (proto == 17 /* IPPROTO_UDP */ && udp_timeout_s &&
	    now_s - e->seen_s > udp_timeout_s)
		return AETH_CT_EXPIRED;
	return AETH_CT_USE;
}

#endif /* AETHER_CT_RULE_H */
