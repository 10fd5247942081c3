/* SPDX-License-Identifier: GPL-2.0-only */
/* The guard of a public endpoint: authorized networks (per-service LPM trie)
 * and new-connection rate limits (per source prefix, per service). Runs
 * before any connection state is created. */
#ifndef AETHER_BPF_GUARD_H
#define AETHER_BPF_GUARD_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "maps.h"

/* True when flow->src may reach svc (always when the ACL is off). */
static __always_inline bool guard_source_authorized(const struct aeth_svc *svc,
						    const struct aeth_flow *flow)
{
	return true;
}

/* Charge a new connection (TCP SYN without ACK, or a UDP packet with no
 * connection entry) against the service's limiters. Returns -1 when admitted,
 * else the aeth_reason to drop with (AETH_R_RATE_LIMITED or
 * AETH_R_SERVICE_RATE_LIMITED). now_ns is bpf_ktime_get_ns(). */
static __always_inline int guard_admit_new_connection(const struct aeth_svc *svc,
						      const struct aeth_flow *flow,
						      __u64 now_ns)
{
	return -1;
}

#endif /* AETHER_BPF_GUARD_H */
