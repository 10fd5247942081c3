/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The new-connection rate-limit rules: which bucket a source charges (its
 * address masked to the service's prefix) and GCRA, the arithmetic of a
 * bucket. Shared by the data path (bpf/guard.h, which adds the atomic
 * compare-and-swap around the step) and aetherctl (explain, ratelimit list),
 * so the two cannot drift. */
#ifndef AETHER_RATELIMIT_RULE_H
#define AETHER_RATELIMIT_RULE_H

#include <stdbool.h>
#include <linux/types.h>
#include "abi.h"
#include "rule_inline.h"

/* Top `bits` bits of a 32-bit word, in network order (bits 0..32). */
AETH_RULE __be32 aeth_rl_mask32(__u32 bits)
{
	if (bits > 32)
		bits = 32;
	return aeth_htonl((__u32)(0xffffffff00000000ULL >> bits));
}

/* bits of word i (0..3) of a 128-bit prefix of length plen. */
AETH_RULE __u32 aeth_rl_word_bits(__u32 plen, __u32 i)
{
	if (plen <= 32 * i)
		return 0;
	return plen - 32 * i;
}

/* The per-source bucket's key (aeth_rl_src): the service and the flow's
 * source masked to the service's src_prefix_v4 / src_prefix_v6. Unrolled by
 * hand: no loop for the verifier to bound. */
AETH_RULE void aeth_rl_src_key(struct aeth_rl_src_key *key,
			       const struct aeth_svc *svc,
			       const struct aeth_flow *flow)
{
	union {
		struct {
			__u8 family;
			__u8 pad[3];
		} b;
		__u32 w;
	} fam = { .b = { .family = flow->family } };
	__u32 p;

	/* family and its padding as one 32-bit store: the key's readers (the
	 * hashes, the compares) load whole words, and a load that straddles
	 * a narrower store waits for it to reach the cache */
	__builtin_memset(key, 0, sizeof(*key));
	key->svc_id = svc->id;
	((aeth_u32_alias *)key)[1] = fam.w;
	if (flow->family == AETH_AF_INET) {
		key->prefix.v4 = flow->src.v4 & aeth_rl_mask32(svc->src_prefix_v4);
		return;
	}
	p = svc->src_prefix_v6;
	key->prefix.v6[0] = flow->src.v6[0] & aeth_rl_mask32(aeth_rl_word_bits(p, 0));
	key->prefix.v6[1] = flow->src.v6[1] & aeth_rl_mask32(aeth_rl_word_bits(p, 1));
	key->prefix.v6[2] = flow->src.v6[2] & aeth_rl_mask32(aeth_rl_word_bits(p, 2));
	key->prefix.v6[3] = flow->src.v6[3] & aeth_rl_mask32(aeth_rl_word_bits(p, 3));
}

/* GCRA: a request at now conforms when tat <= now + tolerance; it then moves
 * tat to max(tat, now) + interval. A fresh bucket (tat <= now) therefore
 * admits tolerance / interval + 1 = burst requests back to back, then one
 * per interval. A bucket refuses while !aeth_gcra_conforms. */
AETH_RULE bool aeth_gcra_conforms(__u64 tat, __u64 now, __u64 tolerance)
{
	return tat <= now + tolerance;
}

/* The theoretical arrival time after charging one conforming request. */
AETH_RULE __u64 aeth_gcra_next_tat(__u64 tat, __u64 now, __u64 interval)
{
	__u64 base = tat > now ? tat : now;

	return base + interval;
}

/* The theoretical arrival time of a bucket created by its first request at
 * now (aeth_gcra_next_tat of an empty bucket, tat <= now). */
AETH_RULE __u64 aeth_gcra_first_tat(__u64 now, __u64 interval)
{
	return now + interval;
}

/* The slot of a CPU's memory of refusals (lb_rl_refused, abi.h) that
 * holds source key k: its six words folded and multiplied, top 10 bits. */
AETH_RULE __u32 aeth_rl_refusal_slot(const struct aeth_rl_src_key *k)
{
	const aeth_u32_alias *w = (const aeth_u32_alias *)k;

	return ((w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[5]) * 0x9e3779b1u) >>
	       22;	/* 10 bits: AETH_RL_REFUSED_SIZE */
}

/* Whether remembered refusal m still refuses source k at now under the
 * service's per-source interval and tolerance: made for k, not lapsed,
 * and under the same parameters (a changed rate or burst is used at
 * once, not after the memory lapses). */
AETH_RULE bool aeth_rl_refusal_holds(const struct aeth_rl_refusal *m,
				     const struct aeth_rl_src_key *k,
				     __u64 interval_ns, __u64 tolerance_ns,
				     __u64 now)
{
	const aeth_u32_alias *x = (const aeth_u32_alias *)&m->key;
	const aeth_u32_alias *y = (const aeth_u32_alias *)k;

	return now < m->until_ns && m->interval_ns == interval_ns &&
	       m->tolerance_ns == tolerance_ns &&
	       ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) |
		(x[3] ^ y[3]) | (x[4] ^ y[4]) | (x[5] ^ y[5])) == 0;
}

#endif /* AETHER_RATELIMIT_RULE_H */
