/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The VIP filter (lb_vip_filter, a global of the program: bpf/service.h):
 * one bit per bucket of destination addresses, set when the agent knows
 * that no VIP hashes to the bucket.
 * The data path passes a packet whose destination's bit is set without
 * asking anything else; most packets through a node are for no VIP (the
 * node's pods, routed traffic), and the bit is one load where the VIP
 * memory is a stamp, a clock and five compares (bpf/service.h).
 *
 * Fail closed by construction: a clear bit only sends a packet the long
 * way (the VIP memory, then aeth_vip), so an empty filter (a program just
 * loaded, before its agent has written it; the test harness) changes no
 * verdict. The agent clears a VIP's bit before it writes the VIP, and sets
 * bits only after an apply is committed (or the state recovered at a
 * start), for the buckets that hold none of its VIPs
 * (agent/daemon/vip_filter.c). The filter holds only under the tables'
 * stamp its agent vouched for last (lb_vip_filter_stamp), so the filter
 * of a program no agent writes any more lapses with the next stamp.
 * Shared by the data path and the agent. */
#ifndef AETHER_VIP_FILTER_H
#define AETHER_VIP_FILTER_H

#include <linux/types.h>
#include "abi.h"
#include "rule_inline.h"

#define AETH_VIP_FILTER_BITS 65536u
#define AETH_VIP_FILTER_WORDS (AETH_VIP_FILTER_BITS / 64)

/* The bucket of an address whose four words xor to folded. */
AETH_RULE __u32 aeth_vip_filter_bucket_of(__u32 folded)
{
	return (folded * 0x9e3779b1u) >> 16;	/* 16 bits: AETH_VIP_FILTER_BITS */
}

/* The bucket of address a (of either family: an IPv4 address is its first
 * word, the others zero, as in aeth_vip_key and the flow, so its words
 * fold to that word). Not keyed: an address aimed at a VIP's bucket only
 * takes the long way. */
AETH_RULE __u32 aeth_vip_filter_bucket(const union aeth_addr *a)
{
	return aeth_vip_filter_bucket_of(a->v6[0] ^ a->v6[1] ^ a->v6[2] ^
					 a->v6[3]);
}

AETH_RULE __u32 aeth_vip_filter_word(__u32 bucket)
{
	return bucket / 64;
}

AETH_RULE __u64 aeth_vip_filter_mask(__u32 bucket)
{
	return 1ull << (bucket % 64);
}

/* The filter as its writers build it, in words[AETH_VIP_FILTER_WORDS]:
 * every bucket "no VIP" (all set), then each VIP's bit cleared. */
AETH_RULE void aeth_vip_filter_all_set(__u64 *words)
{
	for (__u32 w = 0; w < AETH_VIP_FILTER_WORDS; w++)
		words[w] = ~0ull;
}

AETH_RULE void aeth_vip_filter_clear(__u64 *words, const union aeth_addr *a)
{
	__u32 bucket = aeth_vip_filter_bucket(a);

	words[aeth_vip_filter_word(bucket)] &= ~aeth_vip_filter_mask(bucket);
}

#endif /* AETHER_VIP_FILTER_H */
