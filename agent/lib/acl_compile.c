/* The compiled IPv4 form of an authorized-networks list (acl_compile.h).
 *
 * Each trie entry that covers IPv4 sources is a span [first, last] with a
 * priority (its key length) and a verdict (aeth_acl_key_v4_span). Prefixes
 * are nested or disjoint, so one sweep in order of first address, with a
 * stack of the spans that contain the current address (innermost on top),
 * gives every address the verdict of its longest match. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "aether/acl_key.h"
#include "acl_compile.h"

struct span {
	uint32_t first, last;
	uint32_t len;		/* trie key length: longer wins */
	uint32_t seq;		/* order written: later replaces an equal key */
	bool admits;
};

/* By first address; of nested spans the outer (then shorter key) first;
 * equal keys in the order written. */
static int span_cmp(const void *pa, const void *pb)
{
	const struct span *a = pa, *b = pb;

	if (a->first != b->first)
		return a->first < b->first ? -1 : 1;
	if (a->last != b->last)
		return a->last > b->last ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static bool same_key(const struct span *a, const struct span *b)
{
	return a->first == b->first && a->last == b->last && a->len == b->len;
}

struct sweep {
	uint64_t *out;
	size_t n;
	uint64_t cur;		/* first address not yet judged (2^32: done) */
};

/* Addresses [sw->cur, last] get verdict admits. */
static void judge_to(struct sweep *sw, uint64_t last, bool admits)
{
	uint64_t first = sw->cur;

	if (first > last)
		return;
	sw->cur = last + 1;
	if (!admits)
		return;
	if (sw->n && (uint32_t)sw->out[sw->n - 1] + 1ull == first) {
		sw->out[sw->n - 1] = (sw->out[sw->n - 1] & ~0xffffffffull) |
				     (uint32_t)last;
		return;
	}
	sw->out[sw->n++] = aeth_acl_rng((uint32_t)first, (uint32_t)last);
}

/* The spans of e that cover IPv4 sources, sorted, equal keys merged into
 * the last written. */
static size_t collect_spans(const struct aeth_acl_entry *e, size_t n,
			    struct span *s)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		struct span *p = &s[k];

		if (!aeth_acl_key_v4_span(&e[i].key, e[i].family, &p->first,
					  &p->last, &p->admits))
			continue;
		p->len = e[i].key.prefixlen;
		p->seq = (uint32_t)i;
		k++;
	}
	qsort(s, k, sizeof(*s), span_cmp);
	for (i = n = 0; i < k; i++) {
		if (n && same_key(&s[n - 1], &s[i]))
			n--;
		s[n++] = s[i];
	}
	return n;
}

static void sweep_spans(struct sweep *sw, const struct span *s, size_t n,
			const struct span **stack)
{
	size_t depth = 0;

	for (size_t i = 0; i < n; i++) {
		while (depth && stack[depth - 1]->last < s[i].first) {
			judge_to(sw, stack[depth - 1]->last,
				 stack[depth - 1]->admits);
			depth--;
		}
		if (s[i].first)
			judge_to(sw, s[i].first - 1ull,
				 depth && stack[depth - 1]->admits);
		stack[depth++] = &s[i];
	}
	while (depth) {
		judge_to(sw, stack[depth - 1]->last, stack[depth - 1]->admits);
		depth--;
	}
}

int aeth_acl_compile_v4(const struct aeth_acl_entry *e, size_t n,
			uint64_t **out, size_t *n_out)
{
	struct sweep sw = { 0 };
	const struct span **stack;
	struct span *s;

	*out = NULL;
	*n_out = 0;
	if (!n)
		return 0;
	s = malloc(n * sizeof(*s));
	stack = malloc(n * sizeof(*stack));
	/* each span ends at most one interval and starts at most one more */
	sw.out = malloc((2 * n + 1) * sizeof(*sw.out));
	if (!s || !stack || !sw.out) {
		free(s);
		free(stack);
		free(sw.out);
		return -ENOMEM;
	}
	sweep_spans(&sw, s, collect_spans(e, n, s), stack);
	free(s);
	free(stack);
	if (!sw.n) {
		free(sw.out);
		sw.out = NULL;
	}
	*out = sw.out;
	*n_out = sw.n;
	return 0;
}

uint32_t aeth_acl_dir_bits(size_t n)
{
	uint32_t bits = 1;

	if (n < AETH_ACL_DIR_MIN)
		return 0;
	while (bits < AETH_ACL_DIR_MAX_BITS && (1ull << bits) < 2 * n)
		bits++;
	return bits;
}

/* dir[b] for each block b of 2^bits: the intervals of r[0..n) (sorted,
 * disjoint) that overlap the block, as first << 32 | count. One sweep:
 * first only moves forward from block to block. */
static void fill_dir(const uint64_t *r, size_t n, uint32_t bits,
		     uint64_t *dir)
{
	uint32_t shift = 32 - bits;
	size_t first = 0, end;
	uint64_t b;

	for (b = 0; b < (1ull << bits); b++) {
		uint64_t lo = b << shift, hi = lo | ((1ull << shift) - 1);

		/* skip the intervals that end before the block */
		while (first < n && (uint32_t)r[first] < lo)
			first++;
		end = first;
		while (end < n && (r[end] >> 32) <= hi)
			end++;
		dir[b] = (uint64_t)first << 32 | (end - first);
	}
}

/* The index entry of n intervals, but its offset (the placement's). */
static void rng_at_of(size_t n, struct aeth_acl_rng_at *at)
{
	uint32_t bits = aeth_acl_dir_bits(n);

	at->count = (uint32_t)n;
	at->flags = AETH_ACL_RNG_F_COMPILED | (bits ? AETH_ACL_RNG_F_DIR : 0);
	at->dir_bits = bits;
}

/* The intervals r[0..n) at out, then their directory if at has one. */
static void write_region(const uint64_t *r, size_t n,
			 const struct aeth_acl_rng_at *at, uint64_t *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = r[i];
	if (at->flags & AETH_ACL_RNG_F_DIR)
		fill_dir(r, n, at->dir_bits, out + n);
}

int aeth_acl_rng_region(const uint64_t *r, size_t n,
			struct aeth_acl_rng_at *at, uint64_t **region)
{
	uint64_t *out = NULL;

	rng_at_of(n, at);
	if (aeth_acl_rng_span(at)) {
		out = malloc(aeth_acl_rng_span(at) * sizeof(*out));
		if (!out)
			return -ENOMEM;
		write_region(r, n, at, out);
	}
	*region = out;
	return 0;
}

int aeth_acl_rng_store(const uint64_t *r, size_t n,
		       const struct aeth_acl_rng_at *idx, uint32_t n_slots,
		       uint32_t slot, uint32_t cap, uint64_t *rng,
		       struct aeth_acl_rng_at *at)
{
	int err;

	rng_at_of(n, at);
	err = aeth_acl_rng_fit(idx, n_slots, slot, cap, at);
	if (!err)
		write_region(r, n, at, rng + at->offset);
	return err;
}

bool aeth_acl_region_holds(const uint64_t *region,
			   const struct aeth_acl_rng_at *at, uint32_t addr)
{
	uint64_t d;

	if (!(at->flags & AETH_ACL_RNG_F_DIR) || !at->count)
		return aeth_acl_rng_holds(region, at->count, addr);
	d = region[at->count + (addr >> (32 - at->dir_bits))];
	return aeth_acl_rng_holds(region + (d >> 32), (uint32_t)d, addr);
}

bool aeth_acl_rng_holds(const uint64_t *r, size_t n, uint32_t addr)
{
	size_t lo = 0, half;

	if (!n)
		return false;
	while (n > 1) {
		half = n / 2;
		if ((uint32_t)(r[lo + half] >> 32) <= addr)
			lo += half;
		n -= half;
	}
	return (uint32_t)(r[lo] >> 32) <= addr && addr <= (uint32_t)r[lo];
}

static int region_cmp(const void *pa, const void *pb)
{
	const struct aeth_acl_rng_at *a = pa, *b = pb;

	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

int aeth_acl_rng_place(const struct aeth_acl_rng_at *idx, uint32_t n_slots,
		       uint32_t slot, uint64_t span, uint32_t cap,
		       uint32_t *offset)
{
	struct aeth_acl_rng_at *used;
	uint64_t at = 0;
	uint32_t i, n = 0;
	int err = -ENOSPC;

	used = malloc((n_slots ? n_slots : 1) * sizeof(*used));
	if (!used)
		return -ENOMEM;
	for (i = 0; i < n_slots; i++)
		if (i != slot && (idx[i].flags & AETH_ACL_RNG_F_COMPILED) &&
		    aeth_acl_rng_span(&idx[i]))
			used[n++] = idx[i];
	qsort(used, n, sizeof(*used), region_cmp);
	/* first fit: the gap before each region, then the tail */
	for (i = 0; i <= n; i++) {
		uint64_t end = i < n && used[i].offset < cap ? used[i].offset :
							     cap;

		if (at + span <= end) {
			*offset = (uint32_t)at;
			err = 0;
			break;
		}
		if (i < n && used[i].offset + aeth_acl_rng_span(&used[i]) > at)
			at = used[i].offset + aeth_acl_rng_span(&used[i]);
	}
	free(used);
	return err;
}

int aeth_acl_rng_fit(const struct aeth_acl_rng_at *idx, uint32_t n_slots,
		     uint32_t slot, uint32_t cap, struct aeth_acl_rng_at *at)
{
	int err = aeth_acl_rng_place(idx, n_slots, slot, aeth_acl_rng_span(at),
				     cap, &at->offset);

	if (err == -ENOSPC && (at->flags & AETH_ACL_RNG_F_DIR)) {
		/* searched whole, the intervals alone may still fit */
		at->flags &= ~AETH_ACL_RNG_F_DIR;
		at->dir_bits = 0;
		err = aeth_acl_rng_place(idx, n_slots, slot, at->count, cap,
					 &at->offset);
	}
	return err;
}
