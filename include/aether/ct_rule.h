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

/* Judge entry e (naming backend be, NULL when unreadable) for a packet of
 * service svc_id. syn: a TCP SYN without ACK. A SYN (a client reusing a
 * tuple, e.g. behind NAT) needs a backend that takes new connections;
 * other packets keep a draining or unhealthy backend; a UDP entry idle for
 * more than udp_timeout_s (0: never) at now_ns is gone. */
AETH_RULE int aeth_ct_judge(const struct aeth_ct_entry *e,
			    const struct aeth_backend *be, __u32 svc_id,
			    __u8 proto, bool syn, __u64 now_ns,
			    __u32 udp_timeout_s)
{
	if (!be || aeth_backend_removed(be, svc_id) || e->svc_id != svc_id)
		return syn ? AETH_CT_NEW : AETH_CT_RESELECT;
	if (syn && !aeth_backend_usable(be, svc_id))
		return AETH_CT_NEW;
	if (proto == 17 /* IPPROTO_UDP */ && udp_timeout_s &&
	    now_ns - e->seen_ns > (__u64)udp_timeout_s * 1000000000ull)
		return AETH_CT_EXPIRED;
	return AETH_CT_USE;
}

#endif /* AETHER_CT_RULE_H */
