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

/* Judge entry e (naming backend be, NULL when unreadable) for a packet of
 * service svc_id that reads the table (aeth_ct_reads_table: never a TCP
 * SYN). Packets keep a draining or unhealthy backend (only new connections
 * avoid it, through Maglev); an entry whose backend is gone or belongs to
 * another service is re-selected without a charge; a UDP entry idle for
 * more than udp_timeout_s (0: never) at now_ns is gone (a new connection). */
AETH_RULE int aeth_ct_judge(const struct aeth_ct_entry *e,
			    const struct aeth_backend *be, __u32 svc_id,
			    __u8 proto, __u64 now_ns, __u32 udp_timeout_s)
{
	if (!be || aeth_backend_removed(be, svc_id) || e->svc_id != svc_id)
		return AETH_CT_RESELECT;
	if (proto == 17 /* IPPROTO_UDP */ && udp_timeout_s &&
	    now_ns - e->seen_ns > (__u64)udp_timeout_s * 1000000000ull)
		return AETH_CT_EXPIRED;
	return AETH_CT_USE;
}

#endif /* AETHER_CT_RULE_H */
