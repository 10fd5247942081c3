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

/* A CPU's lease of a service cap's tokens (struct aeth_rl_lease, abi.h;
 * bpf/guard.h: why) holds only for the parameters it was taken under. */
AETH_RULE bool aeth_rl_lease_for(const struct aeth_rl_lease *l,
				 __u64 interval_ns, __u64 tolerance_ns)
{
	return l->interval_ns == interval_ns && l->tolerance_ns == tolerance_ns;
}

/* Whether the CPU holding lease l admits a connection from it at now, the
 * shared bucket at tat: it has tokens left and its clock still reads the
 * time they were taken at, so spending one is charging the bucket at that
 * time, which the take already did. And the bucket is still the one it
 * took from: takes and give-backs never move tat below the end of a lease
 * still held, so a tat below it is a bucket made anew (the agent zeroes
 * it for a service id given to a new service). */
AETH_RULE bool aeth_rl_lease_spends(const struct aeth_rl_lease *l,
				    __u64 interval_ns, __u64 tolerance_ns,
				    __u64 now, __u64 tat)
{
	return l->left && l->now_ns == now && tat >= l->end_tat &&
	       aeth_rl_lease_for(l, interval_ns, tolerance_ns);
}

/* The shared bucket's tat as the CPU holding lease l charges it: the
 * tokens its lease left unspent are given back while tat is still what
 * its take left (no take came after it; later takes only move tat further,
 * so it cannot come back to that value), at the interval they were taken
 * at. Otherwise they stay spent, which only refuses. */
AETH_RULE __u64 aeth_rl_lease_tat(const struct aeth_rl_lease *l, __u64 tat)
{
	if (l->left && tat == l->end_tat)
		return tat - (__u64)l->left * l->interval_ns;
	return tat;
}

/* Whether a lease may take size tokens: at most AETH_RL_LEASE_MAX, and at
 * most 1/AETH_RL_LEASE_SHARE of the burst (tolerance / interval + 1), so
 * what leases hold back from other CPUs stays a small part of it. */
AETH_RULE bool aeth_rl_lease_fits(__u32 size, __u64 interval_ns,
				  __u64 tolerance_ns)
{
	if (size == 1)
		return true;	/* one by one */
	return size > 1 && size <= AETH_RL_LEASE_MAX &&
	       interval_ns <= (1ULL << 40) &&
	       (__u64)size * AETH_RL_LEASE_SHARE * interval_ns <=
		       tolerance_ns + interval_ns;
}

/* How many tokens the next take of lease l asks for at now: twice its
 * last size when the last one was spent within its tick, one again when
 * it left tokens unspent, the same otherwise; 1 for a new lease or changed
 * parameters, and never more than fits. */
AETH_RULE __u32 aeth_rl_lease_next_size(const struct aeth_rl_lease *l,
					__u64 interval_ns, __u64 tolerance_ns,
					__u64 now)
{
	__u32 size;

	if (!aeth_rl_lease_for(l, interval_ns, tolerance_ns) ||
	    !aeth_rl_lease_fits(l->size, interval_ns, tolerance_ns))
		return 1;
	size = l->size;
	if (l->now_ns == now)
		size *= 2;
	else if (l->left)
		size = 1;
	return aeth_rl_lease_fits(size, interval_ns, tolerance_ns) ? size :
								    l->size;
}

/* A take by lease l of up to size tokens from a shared bucket whose tat is
 * tat, at now: how many it takes (0: the bucket refuses). All of size only
 * while more than half of the burst would remain after them, else one: a
 * bucket near empty is charged one by one, so tokens a lease may lose (its
 * tick ends before it spends them) never cost the connections of a busy
 * cap. *next is the tat it leaves; the caller stores it by
 * compare-and-swap against tat. */
AETH_RULE __u32 aeth_rl_lease_take(const struct aeth_rl_lease *l, __u64 tat,
				   __u64 now, __u64 interval_ns,
				   __u64 tolerance_ns, __u32 size,
				   __u64 *next)
{
	__u64 base = aeth_rl_lease_tat(l, tat);
	__u32 k;

	if (base < now)
		base = now;
	if (!aeth_gcra_conforms(base, now, tolerance_ns))
		return 0;
	k = aeth_gcra_conforms(base + (__u64)(size - 1) * interval_ns, now,
			       tolerance_ns / 2) ? size : 1;
	*next = base + (__u64)k * interval_ns;
	return k;
}

/* Lease l once its take of k tokens (of size asked) left the bucket at
 * next: one of them spent on the connection at hand. */
AETH_RULE void aeth_rl_lease_taken(struct aeth_rl_lease *l, __u64 now,
				   __u64 next, __u64 interval_ns,
				   __u64 tolerance_ns, __u32 k, __u32 size)
{
	l->now_ns = now;
	l->end_tat = next;
	l->interval_ns = interval_ns;
	l->tolerance_ns = tolerance_ns;
	l->left = k - 1;
	l->size = size;
}

#endif /* AETHER_RATELIMIT_RULE_H */
