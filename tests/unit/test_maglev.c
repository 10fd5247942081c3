/* Maglev table building: balance, weights, disruption, order independence
 * and a golden table. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "maglev.h"

static const uint8_t seed[16] = {
	0x5f, 0x3c, 0x0a, 0x1e, 0x9b, 0x7d, 0x2c, 0x44,
	0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18,
};

/* Backend i: 2001:db8::/32 for odd i, 198.51.100.0/24 + 203.0.113.0/24 and
 * onwards for even i, id 1000 + i, weight 1. */
static struct aeth_maglev_backend *make_backends(size_t n)
{
	struct aeth_maglev_backend *b = calloc(n, sizeof(*b));

	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++) {
		if (i % 2) {
			b[i].ip.family = AETH_AF_INET6;
			b[i].ip.addr.v6[0] = htonl(0x20010db8);
			b[i].ip.addr.v6[3] = htonl((uint32_t)i);
		} else {
			b[i].ip.family = AETH_AF_INET;
			b[i].ip.addr.v4 = htonl(0xc6336400u + (uint32_t)i);
		}
		b[i].id = 1000 + (uint32_t)i;
		b[i].weight = 1;
	}
	return b;
}

static uint32_t *build_seeded(const struct aeth_maglev_backend *b, size_t n,
			      const uint8_t *key, uint32_t m)
{
	uint32_t *t = malloc(m * sizeof(*t));

	cr_assert_not_null(t);
	cr_assert_eq(aeth_maglev_build(b, n, key, m, t), 0, "n %zu m %u", n, m);
	return t;
}

static uint32_t *build(const struct aeth_maglev_backend *b, size_t n,
		       uint32_t m)
{
	return build_seeded(b, n, seed, m);
}

/* Slots per backend index (ids are 1000 + index). */
static void count_slots(const uint32_t *t, uint32_t m, size_t n, size_t *cnt)
{
	memset(cnt, 0, n * sizeof(*cnt));
	for (uint32_t s = 0; s < m; s++) {
		cr_assert_geq(t[s], 1000u, "slot %u empty or foreign", s);
		cr_assert_lt(t[s], 1000u + n, "slot %u foreign", s);
		cnt[t[s] - 1000]++;
	}
}

static const uint32_t sizes[] = { 251, 1021, 4093, 16381, 65537 };

Test(maglev, equal_weights_give_floor_or_ceil)
{
	static const size_t ns[] = { 1, 2, 3, 5, 7, 10, 64, 100, 251, 1000 };

	for (size_t a = 0; a < sizeof(sizes) / sizeof(sizes[0]); a++) {
		for (size_t c = 0; c < sizeof(ns) / sizeof(ns[0]); c++) {
			uint32_t m = sizes[a];
			size_t n = ns[c], cnt[1000];
			struct aeth_maglev_backend *b;
			uint32_t *t;

			if (n > m)
				continue;
			b = make_backends(n);
			t = build(b, n, m);
			count_slots(t, m, n, cnt);
			for (size_t i = 0; i < n; i++) {
				cr_assert(cnt[i] == m / n || cnt[i] == (m + n - 1) / n,
					  "m %u n %zu backend %zu has %zu slots",
					  m, n, i, cnt[i]);
			}
			free(t);
			free(b);
		}
	}
}

static void check_weighted(const uint16_t *w, size_t n, uint32_t m)
{
	struct aeth_maglev_backend *b = make_backends(n);
	size_t cnt[64];
	double sum = 0;
	uint32_t *t;

	for (size_t i = 0; i < n; i++) {
		b[i].weight = w[i];
		sum += w[i];
	}
	t = build(b, n, m);
	count_slots(t, m, n, cnt);
	for (size_t i = 0; i < n; i++) {
		double want = m * w[i] / sum;

		cr_assert_leq(cnt[i] > want ? cnt[i] - want : want - cnt[i],
			      want * 0.01,
			      "m %u weight %u: %zu slots, proportional %.1f",
			      m, w[i], cnt[i], want);
	}
	free(t);
	free(b);
}

Test(maglev, weights_give_proportional_shares_within_one_percent)
{
	static const uint16_t w1[] = { 1, 2, 3, 4 };
	static const uint16_t w2[] = { 1, 10, 100 };
	static const uint16_t w3[] = { 65535, 1000, 1000, 3000, 7 * 1000 };
	static const uint16_t w4[] = { 3, 3, 3, 5, 5, 8, 13, 21, 34, 55 };
	uint16_t w5[50];

	srand(7);
	for (size_t i = 0; i < 50; i++)
		w5[i] = (uint16_t)(100 + rand() % 900);
	check_weighted(w1, 4, 16381);
	check_weighted(w1, 4, 65537);
	check_weighted(w2, 3, 16381);
	check_weighted(w2, 3, 65537);
	check_weighted(w3, 5, 65537);
	check_weighted(w4, 10, 16381);
	check_weighted(w5, 50, 65537);
}

Test(maglev, zero_weight_takes_no_slot)
{
	struct aeth_maglev_backend *b = make_backends(4);
	size_t cnt[4];
	uint32_t *t;

	b[2].weight = 0;
	t = build(b, 4, 1021);
	count_slots(t, 1021, 4, cnt);
	cr_assert_eq(cnt[2], 0);
	cr_assert(cnt[0] == 340 || cnt[0] == 341);
	free(t);
	free(b);
}

Test(maglev, no_backend_or_all_zero_weights_give_empty_table)
{
	struct aeth_maglev_backend *b = make_backends(3);
	uint32_t t[251];

	for (size_t i = 0; i < 3; i++)
		b[i].weight = 0;
	cr_assert_eq(aeth_maglev_build(b, 3, seed, 251, t), 0);
	for (size_t s = 0; s < 251; s++)
		cr_assert_eq(t[s], AETH_NO_BACKEND);
	memset(t, 0, sizeof(t));
	cr_assert_eq(aeth_maglev_build(NULL, 0, seed, 251, t), 0);
	for (size_t s = 0; s < 251; s++)
		cr_assert_eq(t[s], AETH_NO_BACKEND);
	free(b);
}

Test(maglev, bad_arguments_are_refused)
{
	struct aeth_maglev_backend *b = make_backends(3);
	uint32_t t[256];

	cr_assert_eq(aeth_maglev_build(b, 3, seed, 255, t), -EINVAL); /* 3 * 5 * 17 */
	cr_assert_eq(aeth_maglev_build(b, 3, seed, 1, t), -EINVAL);
	b[2].ip = b[0].ip;	/* same address twice: order would matter */
	cr_assert_eq(aeth_maglev_build(b, 3, seed, 251, t), -EINVAL);
	free(b);
	b = make_backends(3);
	b[1].id = AETH_NO_BACKEND;
	cr_assert_eq(aeth_maglev_build(b, 3, seed, 251, t), -EINVAL);
	free(b);
}

/* Slots that changed owner although their old owner is still there. */
static size_t collateral_moves(size_t n, size_t removed, const uint8_t *key,
			       uint32_t m)
{
	struct aeth_maglev_backend *b = make_backends(n), *rest;
	uint32_t *before, *after;
	size_t moved = 0, k = 0;

	rest = calloc(n, sizeof(*rest));
	cr_assert_not_null(rest);
	for (size_t i = 0; i < n; i++)
		if (i != removed)
			rest[k++] = b[i];
	before = build_seeded(b, n, key, m);
	after = build_seeded(rest, n - 1, key, m);
	for (uint32_t s = 0; s < m; s++) {
		cr_assert_neq(after[s], 1000 + removed);
		if (before[s] != 1000 + removed && after[s] != before[s])
			moved++;
	}
	free(before);
	free(after);
	free(rest);
	free(b);
	return moved;
}

Test(maglev, removing_a_backend_moves_few_other_slots)
{
	/* Measured with this hash and seed at M = 16381 over N = 2..10 and
	 * every removed backend: worst 156 slots (0.95%, N = 9), mean 59
	 * (0.36%). Bounds: 1% for each case, 0.5% on average. */
	const uint32_t m = 16381;
	size_t worst = 0, total = 0, cases = 0;

	for (size_t n = 2; n <= 10; n++) {
		for (size_t r = 0; r < n; r++) {
			size_t moved = collateral_moves(n, r, seed, m);

			cr_assert_leq(moved, m / 100, "n %zu removing %zu moved %zu",
				      n, r, moved);
			if (moved > worst)
				worst = moved;
			total += moved;
			cases++;
		}
	}
	cr_assert_leq(total / cases, m / 200, "mean %zu", total / cases);
	cr_log_info("collateral moves: worst %zu, mean %zu of %u slots",
		    worst, total / cases, m);
}

Test(maglev, removal_bound_holds_for_other_seeds)
{
	/* Over 8 other seeds (same cases as above) the mean was 52-75 slots
	 * (0.32-0.46%) per seed and the single worst case 196 (1.20%): the
	 * turn order changes after a removal and a few contested slots
	 * cascade. Bounds: a mean of 0.6% per seed, 2% for any one case. */
	const uint32_t m = 16381;

	for (int s = 0; s < 8; s++) {
		size_t total = 0, cases = 0;
		uint8_t key[16];

		for (int i = 0; i < 16; i++)
			key[i] = (uint8_t)(s * 31 + i * 7);
		for (size_t n = 2; n <= 10; n++) {
			for (size_t r = 0; r < n; r++) {
				size_t moved = collateral_moves(n, r, key, m);

				cr_assert_leq(moved, m / 50, "seed %d n %zu removing %zu moved %zu",
					      s, n, r, moved);
				total += moved;
				cases++;
			}
		}
		cr_assert_leq(total / cases, m * 6 / 1000, "seed %d mean %zu",
			      s, total / cases);
	}
}

Test(maglev, input_order_does_not_matter)
{
	struct aeth_maglev_backend *b = make_backends(100);
	uint32_t *ref, *t;

	for (size_t i = 0; i < 100; i++)
		b[i].weight = (uint16_t)(1 + i % 4);
	ref = build(b, 100, 16381);
	srand(11);
	for (int round = 0; round < 10; round++) {
		for (size_t i = 99; i > 0; i--) {
			size_t j = (size_t)rand() % (i + 1);
			struct aeth_maglev_backend tmp = b[i];

			b[i] = b[j];
			b[j] = tmp;
		}
		t = build(b, 100, 16381);
		cr_assert_arr_eq(t, ref, 16381 * sizeof(*t), "shuffle %d", round);
		free(t);
	}
	free(ref);
	free(b);
}

Test(maglev, seed_changes_the_table)
{
	struct aeth_maglev_backend *b = make_backends(10);
	uint8_t other[16];
	uint32_t *a, *c;
	size_t same = 0;

	memcpy(other, seed, sizeof(other));
	other[15] ^= 1;
	a = build(b, 10, 4093);
	c = malloc(4093 * sizeof(*c));
	cr_assert_eq(aeth_maglev_build(b, 10, other, 4093, c), 0);
	for (size_t s = 0; s < 4093; s++)
		same += a[s] == c[s];
	/* Independent tables agree on about 1/N of the slots. */
	cr_assert_lt(same, 4093 / 5, "%zu slots equal", same);
	free(a);
	free(c);
	free(b);
}

static uint64_t fnv1a(const uint32_t *t, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < 4; k++) {
			h ^= (t[i] >> (8 * k)) & 0xff;
			h *= 0x100000001b3ull;
		}
	}
	return h;
}

/* The same document must give the same table on every node and in every
 * release: a change here changes which backend every flow goes to. */
Test(maglev, fixed_input_gives_fixed_table)
{
	static const uint32_t want_head[16] = {
		1004, 1004, 1003, 1001, 1004, 1004, 1000, 1004,
		1004, 1004, 1004, 1004, 1004, 1004, 1000, 1004,
	};
	struct aeth_maglev_backend *b = make_backends(5);
	uint32_t *t;

	b[4].weight = 3;
	t = build(b, 5, 251);
	cr_assert_arr_eq(t, want_head, sizeof(want_head),
			 "head %u %u %u %u", t[0], t[1], t[2], t[3]);
	cr_assert_eq(fnv1a(t, 251), 0x3bd74b3aacaad567ull, "hash %#llx",
		     (unsigned long long)fnv1a(t, 251));
	free(t);

	free(b);
	b = make_backends(1000);
	t = build(b, 1000, 65537);
	cr_assert_eq(fnv1a(t, 65537), 0x2c2cf6234f04aa7cull, "hash %#llx",
		     (unsigned long long)fnv1a(t, 65537));
	free(t);
	free(b);

	/* Four weights taking turns. */
	b = make_backends(50);
	for (size_t i = 0; i < 50; i++)
		b[i].weight = (uint16_t)(1 + i % 4);
	t = build(b, 50, 16381);
	cr_assert_eq(fnv1a(t, 16381), 0xc523d33b13aac4dull, "hash %#llx",
		     (unsigned long long)fnv1a(t, 16381));
	free(t);
	free(b);
}

Test(maglev, tiny_tables_are_filled_and_balanced)
{
	static const uint32_t tiny[] = { 2, 3, 5, 7, 13, 31 };

	for (size_t a = 0; a < sizeof(tiny) / sizeof(tiny[0]); a++) {
		for (size_t n = 1; n <= tiny[a]; n++) {
			struct aeth_maglev_backend *b = make_backends(n);
			uint32_t *t = build(b, n, tiny[a]);
			size_t cnt[31];

			count_slots(t, tiny[a], n, cnt);
			for (size_t i = 0; i < n; i++)
				cr_assert(cnt[i] == tiny[a] / n ||
					  cnt[i] == (tiny[a] + n - 1) / n,
					  "m %u n %zu: %zu slots", tiny[a], n, cnt[i]);
			free(t);
			free(b);
		}
	}
}
