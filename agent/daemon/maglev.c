/* Weighted Maglev table building (Eisenbud et al., NSDI 2016). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "maglev.h"

/* Backends take turns by stride scheduling: a backend of weight w advances
 * its pass by STRIDE_ONE / w per slot it claims, and the lowest pass claims
 * next, ties going to the earlier backend in canonical order. Shares come
 * out proportional to weight whatever the weights are, and with equal
 * weights the turns are plain round robin, the paper's algorithm. The heap
 * orders one integer, pass << RANK_BITS | rank: pass stays below 2^49
 * (65538 claims of at most 2^32), rank below 2^14 (AETH_MAX_BACKENDS). */
#define STRIDE_ONE (1ull << 32)
#define RANK_BITS 14
/* Walking costs about twice as much per probe as inverting costs per free
 * slot (measured), so they break even near sqrt(size / 2) free slots. */
#define LATE_RATIO 2

/* Hot fields first: a claim reads next, skip and id. */
struct mg_state {
	uint32_t next;		/* next permutation position to try */
	uint32_t skip;
	uint32_t id;		/* what the table stores */
	uint32_t offset;
	uint32_t inv;		/* skip^-1 mod size; 0 until needed */
	uint32_t group;		/* index into the groups of equal weight */
	uint64_t stride;
};

/* Backends of one weight, in canonical order. They share one heap entry:
 * at each pass every member takes its turn in rank order. */
struct mg_group {
	uint64_t stride;
	uint64_t pass;
	uint32_t first;		/* into the member list */
	uint32_t count;
	uint32_t cursor;	/* member whose turn is next */
};

#define RANK_MASK ((1ull << RANK_BITS) - 1)

static int u64_cmp(const void *pa, const void *pb)
{
	uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;

	return a < b ? -1 : a > b;
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The murmur3 64-bit finaliser: every input bit reaches every output bit. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Keyed hash of a backend address. Bytes are read little-endian explicitly
 * so every node computes the same value whatever its byte order. */
static uint64_t addr_hash(const uint8_t seed[16], const struct aeth_ip *ip,
			  uint64_t domain)
{
	uint64_t k0 = load_le64(seed), k1 = load_le64(seed + 8);
	uint64_t h;

	h = mix64(k0 ^ domain ^ 0x9e3779b97f4a7c15ull);
	h = mix64(h ^ load_le64(ip->addr.bytes));
	h = mix64(h ^ k1 ^ load_le64(ip->addr.bytes + 8));
	h = mix64(h ^ ((uint64_t)ip->family << 56 | domain));
	return h;
}

static int backend_cmp(const void *pa, const void *pb)
{
	const struct aeth_maglev_backend *const *a = pa, *const *b = pb;

	return aeth_ip_cmp(&(*a)->ip, &(*b)->ip);
}

static bool is_prime(uint32_t n)
{
	if (n < 2)
		return false;
	for (uint32_t d = 2; d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

static void heap_sift_down(uint64_t *heap, size_t n, size_t i)
{
	uint64_t item = heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && heap[c + 1] < heap[c])
			c++;
		if (heap[c] >= item)
			break;
		heap[i] = heap[c];
		i = c;
	}
	heap[i] = item;
}

/* Put item in place of the top. The hole goes down to a leaf by the smaller
 * child without comparing against item (a select, not a branch), then item
 * climbs back: keys are unique and a claimed backend's key only grows, so it
 * climbs little. heap[n] must be UINT64_MAX for a lone last child. */
static void heap_replace_top(uint64_t *heap, size_t n, uint64_t item)
{
	size_t i = 0, c;

	while ((c = 2 * i + 1) < n) {
		c += heap[c + 1] < heap[c];
		heap[i] = heap[c];
		i = c;
	}
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (heap[parent] < item)
			break;
		heap[i] = heap[parent];
		i = parent;
	}
	heap[i] = item;
}

/* The table being filled. Early on, a backend walks its permutation
 * (offset + j * skip) % size lazily, only as far as its claims need, probing
 * a bitmap (8 KiB at most, stays in L1) instead of the table. Once few slots
 * are left, walking costs about size / free probes per claim, so each claim
 * instead inverts the permutation for every free slot (j = (slot - offset) *
 * skip^-1 mod size) and takes the smallest j: the same slot the walk would
 * reach, since every slot before it in the permutation is already taken. */
struct mg_fill {
	uint32_t *table;
	uint32_t size;
	uint32_t left;		/* free slots */
	uint32_t late_at;	/* switch to inversion at this many free slots */
	uint64_t *used;		/* bitmap, walking phase */
	uint32_t *free;		/* free slots, inversion phase */
	uint64_t barrett;	/* floor(2^64 / size): x % size without a divide */
};

/* x % size for x < 2^40 (Barrett reduction). */
static inline uint32_t mod_reduce(const struct mg_fill *f, uint64_t x)
{
	uint64_t q = (uint64_t)(((unsigned __int128)x * f->barrett) >> 64);
	uint64_t r = x - q * f->size;

	return (uint32_t)(r >= f->size ? r - f->size : r);
}

static uint32_t mod_inverse(uint32_t a, uint32_t m)
{
	int64_t t = 0, new_t = 1, r = m, new_r = a;

	while (new_r) {
		int64_t q = r / new_r, tmp;

		tmp = t - q * new_t; t = new_t; new_t = tmp;
		tmp = r - q * new_r; r = new_r; new_r = tmp;
	}
	return (uint32_t)(t < 0 ? t + m : t);
}

static void enter_late_phase(struct mg_fill *f)
{
	uint32_t w, n = 0;

	for (w = 0; w <= (f->size - 1) / 64; w++) {
		uint64_t free_bits = ~f->used[w];

		while (free_bits) {
			uint32_t slot = w * 64 + (uint32_t)__builtin_ctzll(free_bits);

			if (slot >= f->size)
				break;
			f->free[n++] = slot;
			free_bits &= free_bits - 1;
		}
	}
}

static void claim_slot(struct mg_fill *f, struct mg_state *s)
{
	uint32_t size = f->size, slot;

	if (f->left <= f->late_at) {
		uint32_t k, best = 0, best_j = UINT32_MAX;

		if (!s->inv)
			s->inv = mod_inverse(s->skip, size);
		for (k = 0; k < f->left; k++) {
			uint32_t d = f->free[k] >= s->offset ?
				f->free[k] - s->offset :
				f->free[k] + size - s->offset;
			uint32_t j = mod_reduce(f, (uint64_t)d * s->inv);

			if (j < best_j) {
				best_j = j;
				best = k;
			}
		}
		slot = f->free[best];
		f->free[best] = f->free[f->left - 1];
	} else {
		slot = s->next;
		while (f->used[slot >> 6] & (1ull << (slot & 63))) {
			slot += s->skip;
			if (slot >= size)
				slot -= size;
		}
		f->used[slot >> 6] |= 1ull << (slot & 63);
		s->next = slot + s->skip >= size ? slot + s->skip - size :
						   slot + s->skip;
	}
	f->table[slot] = s->id;
	if (--f->left == f->late_at && f->left)
		enter_late_phase(f);
}

/* The working set of one build, freed together. */
struct mg_work {
	const struct aeth_maglev_backend **order;
	struct mg_state *st;
	struct mg_group *groups;
	uint64_t *heap, *members;
	size_t live, n_groups;
	struct mg_fill fill;
};

static void work_free(struct mg_work *w)
{
	free(w->fill.free);
	free(w->fill.used);
	free(w->groups);
	free(w->members);
	free(w->heap);
	free(w->st);
	free(w->order);
}

static int work_alloc(struct mg_work *w, size_t n, uint32_t size)
{
	w->order = calloc(n, sizeof(*w->order));
	w->st = calloc(n, sizeof(*w->st));
	w->heap = calloc(n + 1, sizeof(*w->heap));
	w->members = calloc(n, sizeof(*w->members));
	w->groups = calloc(n, sizeof(*w->groups));
	w->fill.used = calloc(size / 64 + 1, sizeof(*w->fill.used));
	if (!w->order || !w->st || !w->heap || !w->members || !w->groups ||
	    !w->fill.used)
		return -ENOMEM;
	return 0;
}

/* The canonical order makes the table independent of input order; a
 * reserved id or a duplicate address is refused. */
static int canonical_order(struct mg_work *w,
			   const struct aeth_maglev_backend *backends, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w->order[i] = &backends[i];
	qsort(w->order, n, sizeof(*w->order), backend_cmp);
	for (size_t i = 0; i < n; i++)
		if (w->order[i]->id == AETH_NO_BACKEND ||
		    (i && aeth_ip_cmp(&w->order[i - 1]->ip, &w->order[i]->ip) == 0))
			return -EINVAL;
	return 0;
}

/* One permutation state per backend of non-zero weight. */
static void init_states(struct mg_work *w, size_t n, const uint8_t seed[16],
			uint32_t size)
{
	for (size_t i = 0; i < n; i++) {
		const struct aeth_maglev_backend *be = w->order[i];
		struct mg_state *s = &w->st[w->live];

		if (be->weight == 0)
			continue;
		s->id = be->id;
		s->stride = STRIDE_ONE / be->weight;
		s->offset = (uint32_t)(addr_hash(seed, &be->ip, 1) % size);
		s->skip = (uint32_t)(addr_hash(seed, &be->ip, 2) % (size - 1)) + 1;
		s->next = s->offset;
		/* stride <= 2^32 and rank < 2^14: sorts by stride, then rank */
		w->members[w->live] = s->stride << RANK_BITS | w->live;
		w->live++;
	}
}

/* The late phase (a free list instead of probing) starts when about
 * sqrt(size / LATE_RATIO) slots are left. */
static int init_fill(struct mg_fill *f, uint32_t size)
{
	while ((uint64_t)f->late_at * f->late_at * LATE_RATIO < size)
		f->late_at++;
	if (f->late_at > size)
		f->late_at = size;
	/* The free list only ever holds the last late_at slots. */
	f->free = malloc(f->late_at * sizeof(*f->free));
	if (!f->free)
		return -ENOMEM;
	f->barrett = UINT64_MAX / size;
	if (f->left <= f->late_at)
		enter_late_phase(f);
	return 0;
}

/* Group by weight. With one weight this is the paper's round robin with a
 * heap of one entry; with a few weights the heap stays tiny. */
static void group_by_weight(struct mg_work *w)
{
	qsort(w->members, w->live, sizeof(*w->members), u64_cmp);
	for (size_t i = 0; i < w->live; i++) {
		struct mg_state *s = &w->st[w->members[i] & RANK_MASK];
		struct mg_group *g = &w->groups[w->n_groups];

		if (i == 0 || s->stride != w->groups[w->n_groups - 1].stride) {
			g->stride = s->stride;
			g->pass = s->stride;
			g->first = (uint32_t)i;
			w->heap[w->n_groups++] = g->pass << RANK_BITS |
						 (w->members[i] & RANK_MASK);
		}
		w->groups[w->n_groups - 1].count++;
		s->group = (uint32_t)(w->n_groups - 1);
		w->members[i] &= RANK_MASK;
	}
}

static void fill_weighted(struct mg_work *w)
{
	uint64_t *heap = w->heap;
	size_t ng = w->n_groups;

	heap[ng] = UINT64_MAX;
	for (size_t i = ng / 2; i-- > 0;)
		heap_sift_down(heap, ng, i);
	while (w->fill.left) {
		struct mg_state *s = &w->st[heap[0] & RANK_MASK];
		struct mg_group *g = &w->groups[s->group];

		claim_slot(&w->fill, s);
		if (++g->cursor == g->count) {
			g->cursor = 0;
			g->pass += g->stride;
		}
		heap_replace_top(heap, ng, g->pass << RANK_BITS |
				 w->members[g->first + g->cursor]);
	}
}

int aeth_maglev_build(const struct aeth_maglev_backend *backends, size_t n,
		      const uint8_t seed[16], uint32_t size, uint32_t *table)
{
	struct mg_work w = {
		.fill = { .table = table, .size = size, .left = size },
	};
	int err;

	if (!table || (n && !backends) || !seed || size > AETH_MAX_TABLE_SIZE ||
	    !is_prime(size))
		return -EINVAL;
	for (uint32_t i = 0; i < size; i++)
		table[i] = AETH_NO_BACKEND;
	if (n == 0)
		return 0;
	if (n > AETH_MAX_BACKENDS)
		return -E2BIG;

	err = work_alloc(&w, n, size);
	if (!err)
		err = canonical_order(&w, backends, n);
	if (!err)
		init_states(&w, n, seed, size);
	if (!err && w.live)
		err = init_fill(&w.fill, size);
	if (!err && w.live) {
		group_by_weight(&w);
		if (w.n_groups == 1) {
			/* The common case, without the bookkeeping. */
			while (w.fill.left)
				for (size_t i = 0; i < w.live && w.fill.left; i++)
					claim_slot(&w.fill, &w.st[i]);
		} else {
			fill_weighted(&w);
		}
	}
	work_free(&w);
	return err;
}
