/* SPDX-License-Identifier: GPL-2.0-only */
/* The guard of a public endpoint: authorized networks (per-service LPM trie)
 * and new-connection rate limits (per source prefix, per service). Runs
 * before any connection state is created. */
#ifndef AETHER_BPF_GUARD_H
#define AETHER_BPF_GUARD_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "aether/acl_key.h"
#include "aether/ratelimit_rule.h"
#include "maps.h"

/* Attempts at a contended compare-and-swap before giving up. Losing every
 * attempt means other CPUs are admitting connections from the same bucket
 * right now, so refusing is the conservative answer. */
#define GUARD_CAS_TRIES 8

/* aeth_rl_svc[id].dropped counts every drop until a CPU has dropped this
 * many for the service, then advances in steps (see guard_count_svc_drop). */
#define GUARD_SVC_DROP_EXACT 1024
#define GUARD_SVC_DROP_STEP 64
/* aeth_rl_src[key].dropped and .admitted: each exact up to this, then in
 * GUARD_SVC_DROP_STEP steps (see guard_count_src). */
#define GUARD_SRC_COUNT_EXACT 256

/* True when flow->src lies in one of trie's prefixes (an ACL trie or
 * aeth_decap: both keyed by aeth_acl_host_key, valued by the family of the
 * listed prefix; the rule is aether/acl_key.h, shared with aetherctl). */
static __always_inline bool guard_trie_allows(void *trie,
					      const struct aeth_flow *flow)
{
	struct aeth_acl_key key;
	__u32 *family;

	if (aeth_acl_v4_mapped(flow))
		return false;
	aeth_acl_host_key(&key, flow);
	family = bpf_map_lookup_elem(trie, &key);
	return aeth_acl_hit_admits(family, flow);
}

/* 1 when src lies in interval iv (first << 32 | last), else 0, without a
 * branch: src - first and last - src, widened to 64 bits, are negative
 * (bit 63 set) exactly when src is outside. The barrier keeps the
 * compiler from turning the sign tests back into compares, which BPF only
 * has as jumps. */
static __always_inline __u32 guard_in_interval(__u64 iv, __u32 src)
{
	__u64 below, above, s = src;

	asm volatile("" : "+r"(s));
	below = s - (iv >> 32);
	above = (iv & 0xffffffffull) - s;
	return (__u32)(~(below | above) >> 63);
}

/* Interval i of aeth_acl_rng, or NULL (outside the array). */
static __always_inline __u64 *guard_rng(__u32 i)
{
	return bpf_map_lookup_elem(&aeth_acl_rng, &i);
}

/* The compiled IPv4 form of the list in slot (aeth_acl_rngidx): -1 when
 * the slot has none (the trie answers), else the list's answer for src
 * (host order), 1 to admit, 0 to refuse. A binary search for the last
 * interval starting at or before src, each step one inlined array load,
 * among the intervals of src's block when the list has a directory.
 * A global function: the verifier walks its loop once, not once for every
 * path of the program that reaches it (it takes and returns scalars only). */
__noinline int guard_ranges_answer(__u32 slot, __u32 src)
{
	struct aeth_acl_rng_at *at;
	__u32 lo, n, half, i;
	__u64 *r;

	at = bpf_map_lookup_elem(&aeth_acl_rngidx, &slot);
	if (!at || !(at->flags & AETH_ACL_RNG_F_COMPILED) ||
	    at->count > AETH_ACL_RNG_CAP)
		return -1;
	lo = at->offset;
	n = at->count;
	if (!n)
		return 0;	/* the list admits no IPv4 source */
	if (at->flags & AETH_ACL_RNG_F_DIR) {
		/* the intervals of src's block: one load instead of the
		 * first log2(count / block's count) steps below */
		__u32 bits = at->dir_bits;

		if (bits < 1 || bits > AETH_ACL_DIR_MAX_BITS)
			return -1;
		r = guard_rng(lo + n + (src >> (32 - bits)));
		if (!r)
			return -1;
		lo += (__u32)(*r >> 32);
		n = (__u32)*r;
		if (!n)
			return 0;
	}
	/* [lo, lo + n) holds the answer; n halves (rounded up) each step */
	for (i = 0; i < AETH_ACL_RNG_STEPS && n > 1; i++) {
		half = n / 2;
		r = guard_rng(lo + half);
		if (!r)
			return 0;
		if ((__u32)(*r >> 32) <= src)
			lo += half;
		n -= half;
	}
	r = guard_rng(lo);
	return r && guard_in_interval(*r, src);
}

/* A compiled list's directory as guard_ranges_direct uses it, prepared
 * from the list's index entry once (guard_acl_dir_of) and kept with each
 * CPU's copy of the service entry (bpf/service.h): the index entry's
 * checks and where the directory starts are not redone for every packet.
 * usable 0: the list has no compiled form with a directory. */
struct guard_acl_dir {
	__u32 offset;		/* the list's first interval in aeth_acl_rng */
	__u32 dir;		/* its directory's first entry there */
	__u32 shift;		/* 32 - dir_bits: src's block is src >> shift */
	__u32 usable;
};

static __always_inline void guard_acl_dir_of(const struct aeth_acl_rng_at *at,
					      struct guard_acl_dir *g)
{
	const __u32 want = AETH_ACL_RNG_F_COMPILED | AETH_ACL_RNG_F_DIR;

	g->usable = 0;
	if (!at || (at->flags & want) != want || at->dir_bits < 1 ||
	    at->dir_bits > AETH_ACL_DIR_MAX_BITS ||
	    at->count > AETH_ACL_RNG_CAP)
		return;
	g->offset = at->offset;
	g->dir = at->offset + at->count;
	g->shift = 32 - at->dir_bits;
	g->usable = 1;
}

/* The answer for src of the compiled list whose directory is g, when the
 * directory settles it with one interval's load: 1 to admit, 0 to refuse;
 * -1 when it cannot (no compiled form or no directory, or src's block
 * overlaps several intervals: guard_ranges_answer searches them). Most blocks overlap
 * none or one (the directory has about two blocks per interval), and the
 * answer is computed, not branched on: a flood of random sources would
 * mispredict a branch on "no interval" / "outside it" half the time. A
 * block without intervals names the first interval after it (or the
 * directory's first entry, past the intervals): loaded, and masked out by
 * its count of 0. */
static __always_inline int guard_ranges_direct(const struct guard_acl_dir *g,
					       __u32 src)
{
	__u64 *d, *r;
	__u32 n;

	if (!g->usable)
		return -1;
	d = guard_rng(g->dir + (src >> g->shift));
	if (!d)
		return -1;
	n = (__u32)*d;
	if (n > 1)
		return -1;
	r = guard_rng(g->offset + (__u32)(*d >> 32));
	if (!r)
		return -1;
	return guard_in_interval(*r, src) & n;
}

/* True when flow->src may reach svc (always when the ACL is off). */
static __always_inline bool guard_source_authorized(const struct aeth_svc *svc,
						    const struct aeth_flow *flow)
{
	__u32 slot;
	void *trie;
	int answer;

	if (!(svc->flags & AETH_SVC_F_ACL))
		return true;
	/* svc is this packet's snapshot of the service entry: the agent
	 * replaces the whole entry to flip slots, so the slot read here and
	 * the trie (or compiled form) behind it belong to one list, old or
	 * new, never a mix. Both forms give the same answer (docs/guard.md). */
	slot = svc->acl_slot;
	if (flow->family == AETH_AF_INET) {
		answer = guard_ranges_answer(slot, bpf_ntohl(flow->src.v4));
		if (answer >= 0)
			return answer;
	}
	trie = bpf_map_lookup_elem(&aeth_acl, &slot);
	if (!trie)
		return false;	/* enabled without a list: fail closed */
	return guard_trie_allows(trie, flow);
}

/* Charge one request to the bucket at *tat. True when it conformed and was
 * charged. Shared by all CPUs, so the GCRA step (aether/ratelimit_rule.h) is
 * applied by compare-and-swap. On a refusal *seen is the tat that refused. */
static __always_inline bool guard_gcra_charge(__u64 *tat, __u64 now,
					      __u64 interval, __u64 tolerance,
					      __u64 *seen)
{
	__u64 old = 0;
	int i;

	for (i = 0; i < GUARD_CAS_TRIES; i++) {
		old = *(volatile __u64 *)tat;
		if (!aeth_gcra_conforms(old, now, tolerance))
			break;
		if (__sync_val_compare_and_swap(tat, old,
						aeth_gcra_next_tat(old, now, interval)) == old)
			return true;
	}
	*seen = old;
	return false;
}

/* Each CPU remembers the sources it refused last, so a flood from one
 * source prefix is refused without the aeth_rl_src lookup (a hash of its
 * 24-byte key and a bucket walk) and without reading the shared entry's
 * cache line. A refusal is remembered until the time the bucket could
 * conform again (tat - tolerance, seen at the refusal: no more than one
 * interval ahead, since an admission leaves tat at most tolerance +
 * interval ahead); other CPUs' admissions only move tat later, so the
 * shared bucket refuses at least as long. The memory is kept only once the
 * shared entry counts its refusals in steps (GUARD_SRC_COUNT_EXACT), so a
 * client meeting its limit still sees every refusal counted, and it holds
 * the service's parameters: a changed rate or burst is used at once.
 * One case makes the memory refuse longer than the bucket would: a charge
 * given back (guard_refund_source) moves tat earlier by one interval, so
 * a memory made before it may refuse for up to that interval after the
 * bucket conforms again; aetherctl explain says so when it sees one.
 * Private to the loaded program (never pinned): the layout and the rules
 * are abi.h's and aether/ratelimit_rule.h's, which explain shares. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AETH_RL_REFUSED_SIZE);
	__type(key, __u32);
	__type(value, struct aeth_rl_refusal);
} lb_rl_refused SEC(".maps");

static __always_inline struct aeth_rl_refusal *
guard_refusal_slot(const struct aeth_rl_src_key *k)
{
	__u32 slot = aeth_rl_refusal_slot(k);

	return bpf_map_lookup_elem(&lb_rl_refused, &slot);
}

/* A refusal out of the memory: counted in the shared entry in steps of
 * GUARD_SVC_DROP_STEP, as guard_count_src does past its exact part. */
static __always_inline void guard_refusal_count(struct aeth_rl_refusal *m,
						const struct aeth_rl_src_key *k)
{
	struct aeth_rl_src_state *st;

	if (++m->pending < GUARD_SVC_DROP_STEP)
		return;
	m->pending = 0;
	st = bpf_map_lookup_elem(&aeth_rl_src, k);
	if (st)
		__sync_fetch_and_add(&st->dropped, GUARD_SVC_DROP_STEP);
}

static __always_inline void guard_refusal_note(struct aeth_rl_refusal *m,
					       const struct aeth_rl_src_key *k,
					       const struct aeth_svc *svc,
					       __u64 tat)
{
	m->key = *k;
	m->until_ns = tat - svc->src_tolerance_ns;
	m->interval_ns = svc->src_interval_ns;
	m->tolerance_ns = svc->src_tolerance_ns;
	m->pending = 0;
}

/* Count a per-source refusal (admission: false) or admission in the
 * bucket's shared entry (*counter: its dropped or admitted). A flood from
 * one source is refused on every CPU, and a busy client is admitted on
 * several: an atomic add per packet would bounce that entry's cache line
 * between them, and it costs a locked instruction besides the bucket's
 * compare-and-swap. Exact for the entry's first GUARD_SRC_COUNT_EXACT
 * (an operator sees a client meet its limit; reading the line is cheap,
 * writing it is not), then in steps of GUARD_SVC_DROP_STEP paced by this
 * CPU's exact per-CPU count of the same events for the service: its
 * rate_limited drops or its new flows (which the caller adds this one
 * to). */
static __always_inline void guard_count_src(__u64 *counter, __u32 id,
					    bool admission)
{
	struct aeth_svc_stats *s;
	__u64 pace;

	if (*(volatile __u64 *)counter < GUARD_SRC_COUNT_EXACT) {
		__sync_fetch_and_add(counter, 1);
		return;
	}
	s = bpf_map_lookup_elem(&aeth_svc_stats, &id);
	if (!s)
		return;
	pace = admission ? s->new_flows : s->drops[AETH_R_RATE_LIMITED];
	if ((pace + 1) % GUARD_SVC_DROP_STEP == 0)
		__sync_fetch_and_add(counter, GUARD_SVC_DROP_STEP);
}

/* The per-source bucket: charge it, creating it on a source's first new
 * connection. Returns true when the source may open this connection. */
static __always_inline bool guard_charge_source(const struct aeth_rl_src_key *key,
						const struct aeth_svc *svc,
						__u64 now)
{
	struct aeth_rl_src_state *st, init = {};
	struct aeth_rl_refusal *m = guard_refusal_slot(key);
	__u64 tat;

	if (m && aeth_rl_refusal_holds(m, key, svc->src_interval_ns,
					svc->src_tolerance_ns, now)) {
		guard_refusal_count(m, key);
		return false;
	}
	st = bpf_map_lookup_elem(&aeth_rl_src, key);
	if (!st) {
		/* A new bucket holds this connection's charge from birth. */
		init.tat_ns = aeth_gcra_first_tat(now, svc->src_interval_ns);
		init.admitted = 1;
		if (bpf_map_update_elem(&aeth_rl_src, key, &init, BPF_NOEXIST) == 0)
			return true;
		/* another CPU created it meanwhile: charge that one */
		st = bpf_map_lookup_elem(&aeth_rl_src, key);
		if (!st)
			return true;	/* evicted at once: nothing to hold */
	}
	if (guard_gcra_charge(&st->tat_ns, now, svc->src_interval_ns,
			      svc->src_tolerance_ns, &tat)) {
		guard_count_src(&st->admitted, svc->id, true);
		return true;
	}
	guard_count_src(&st->dropped, svc->id, false);
	/* lost every compare-and-swap (tat conformed): nothing to remember */
	if (m && !aeth_gcra_conforms(tat, now, svc->src_tolerance_ns) &&
	    *(volatile __u64 *)&st->dropped >= GUARD_SRC_COUNT_EXACT)
		guard_refusal_note(m, key, svc, tat);
	return false;
}

/* Give back a per-source charge whose connection the service cap refused
 * after all (another CPU took the service's last token meanwhile). */
static __always_inline void guard_refund_source(const struct aeth_rl_src_key *key,
						const struct aeth_svc *svc)
{
	struct aeth_rl_src_state *st;

	st = bpf_map_lookup_elem(&aeth_rl_src, key);
	if (!st)
		return;
	__sync_fetch_and_add(&st->tat_ns, -svc->src_interval_ns);
	__sync_fetch_and_add(&st->admitted, -1ULL);
}

/* Count a service-cap drop in the shared aeth_rl_svc entry. Under a flood
 * every CPU drops here, and an atomic add per packet on that one cache line
 * would make the cheapest drop a contended one, more so the more CPUs
 * receive the flood. The exact count is per CPU in aeth_svc_stats, where the
 * caller adds this drop after we return; the shared counter is exact for the
 * first GUARD_SVC_DROP_EXACT drops of each CPU (an operator trying the limit
 * sees every drop), then follows in steps of GUARD_SVC_DROP_STEP. */
static __always_inline void guard_count_svc_drop(struct aeth_rl_svc_state *st,
						 __u32 id)
{
	struct aeth_svc_stats *s = bpf_map_lookup_elem(&aeth_svc_stats, &id);
	__u64 n;

	if (!s) {
		__sync_fetch_and_add(&st->dropped, 1);
		return;
	}
	n = s->drops[AETH_R_SERVICE_RATE_LIMITED] + 1;	/* with this one */
	if (n <= GUARD_SVC_DROP_EXACT)
		__sync_fetch_and_add(&st->dropped, 1);
	else if (n % GUARD_SVC_DROP_STEP == 0)
		__sync_fetch_and_add(&st->dropped, GUARD_SVC_DROP_STEP);
}

/* Each CPU's lease of each service cap's tokens. Every new connection of a
 * capped service charges one bucket, so on several CPUs every SYN would
 * write the same cache line (two CPUs made about 1.4 times one CPU's SYNs:
 * docs/bench.md). Instead a CPU takes up to 16 tokens in one
 * compare-and-swap and spends them while its coarse clock reads the time
 * they were taken at: the bucket's rules judge connections by that clock,
 * so a token spent later in the same tick was charged at the same time,
 * and the cap admits exactly what it would one by one. A CPU that runs out
 * within its tick asks for twice as many next time, one that left tokens
 * unspent asks for one; more than one only while more than half of the
 * burst remains. Unspent tokens go back at the CPU's next take if no other
 * take came between, else they stay spent (fewer admissions, never more).
 * On one CPU this is the bucket charged one by one, verdict for verdict
 * (the rules: aether/ratelimit_rule.h, which aetherctl explain shares;
 * docs/guard.md). Private to the loaded program (never pinned). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AETH_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aeth_rl_lease);
} lb_rl_svc_lease SEC(".maps");

/* Take tokens of the service cap of svc (its bucket st) at now into this
 * CPU's lease l, one of them for the connection at hand: 1 when admitted,
 * 0 when refused. A global function: inlined, the verifier walks its loop
 * on every path that reaches it, past its budget. */
__noinline int guard_service_take(struct aeth_rl_svc_state *st,
				  struct aeth_rl_lease *l,
				  const struct aeth_svc *svc, __u64 now)
{
	__u64 interval, tol, old, next = 0;
	__u32 size, k;
	int i;

	if (!st || !l || !svc)
		return 1;	/* never: the caller's own pointers */
	interval = svc->svc_interval_ns;
	tol = svc->svc_tolerance_ns;
	size = aeth_rl_lease_next_size(l, interval, tol, now);
	for (i = 0; i < GUARD_CAS_TRIES; i++) {
		old = *(volatile __u64 *)&st->tat_ns;
		k = aeth_rl_lease_take(l, old, now, interval, tol, size, &next);
		if (!k)
			return 0;
		if (__sync_val_compare_and_swap(&st->tat_ns, old, next) == old) {
			aeth_rl_lease_taken(l, now, next, interval, tol, k,
					    size);
			return 1;
		}
	}
	return 0;	/* lost every race: refusing is the conservative answer */
}

/* Charge a new connection (TCP SYN without ACK, or a UDP packet with no
 * connection entry) against the service's limiters. Returns -1 when admitted,
 * else the aeth_reason to drop with (AETH_R_RATE_LIMITED or
 * AETH_R_SERVICE_RATE_LIMITED). now_ns is bpf_ktime_get_coarse_ns().
 *
 * Order: (1) peek the service bucket and drop if it is exhausted, so a
 * spoofed flood costs one array read per packet and never inserts a
 * per-source entry; (2) charge the source's bucket, so an abusive source is
 * refused by its own limit without spending the service's budget; (3) charge
 * the service bucket, giving the source's charge back if another CPU took
 * the last of the budget between (1) and (3). */
static __always_inline int guard_admit_new_connection(const struct aeth_svc *svc,
						      const struct aeth_flow *flow,
						      __u64 now_ns)
{
	struct aeth_rl_svc_state *svc_st = NULL;
	struct aeth_rl_lease *lease = NULL;
	struct aeth_rl_src_key key;
	bool spend = false, src_limited = svc->src_interval_ns != 0;
	__u32 id = svc->id;
	__u64 svc_tat = 0;

	if (svc->svc_interval_ns) {
		svc_st = bpf_map_lookup_elem(&aeth_rl_svc, &id);
		lease = bpf_map_lookup_elem(&lb_rl_svc_lease, &id);
		if (!lease)
			svc_st = NULL;	/* never: both are arrays of the ids */
		if (svc_st) {
			svc_tat = *(volatile __u64 *)&svc_st->tat_ns;
			spend = aeth_rl_lease_spends(lease,
						     svc->svc_interval_ns,
						     svc->svc_tolerance_ns,
						     now_ns, svc_tat);
		}
		if (svc_st && !spend &&
		    !aeth_gcra_conforms(aeth_rl_lease_tat(lease, svc_tat),
					now_ns, svc->svc_tolerance_ns)) {
			guard_count_svc_drop(svc_st, id);
			return AETH_R_SERVICE_RATE_LIMITED;
		}
	}

	if (src_limited) {
		aeth_rl_src_key(&key, svc, flow);
		if (!guard_charge_source(&key, svc, now_ns))
			return AETH_R_RATE_LIMITED;
	}

	if (!svc_st)
		return -1;
	if (spend && lease) {
		lease->left--;
		return -1;
	}
	if (!guard_service_take(svc_st, lease, svc, now_ns)) {
		guard_count_svc_drop(svc_st, id);
		if (src_limited)
			guard_refund_source(&key, svc);
		return AETH_R_SERVICE_RATE_LIMITED;
	}
	return -1;
}

#endif /* AETHER_BPF_GUARD_H */
