/* The compiled IPv4 form of an authorized-networks list
 * (agent/lib/acl_compile.c): the intervals it builds from a list's trie
 * entries, checked exactly on small lists and against the trie's
 * longest-prefix rule on random ones; and where a list's intervals are
 * placed in the shared array. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aether/acl_key.h"
#include "acl_compile.h"

/* A trie entry for the listed prefix a/len of family, keyed as the agent
 * keys it (aeth_acl_prefix_key: IPv4 as ::ffff:a/(len + 96)). */
static struct aeth_acl_entry listed(int af, const char *a, uint32_t len)
{
	struct aeth_acl_entry e = { .family = af == AF_INET ? AETH_AF_INET :
							      AETH_AF_INET6 };
	union aeth_addr addr = { 0 };

	cr_assert_eq(inet_pton(af, a, &addr), 1);
	aeth_acl_prefix_key(&e.key, (__u8)e.family, &addr, len);
	return e;
}

static struct aeth_acl_entry v4(const char *a, uint32_t len)
{
	return listed(AF_INET, a, len);
}

static struct aeth_acl_entry v6(const char *a, uint32_t len)
{
	return listed(AF_INET6, a, len);
}

static uint32_t ip(const char *a)
{
	uint32_t addr;

	cr_assert_eq(inet_pton(AF_INET, a, &addr), 1);
	return ntohl(addr);
}

static size_t compile(const struct aeth_acl_entry *e, size_t n,
		      uint64_t **out)
{
	size_t n_out = 99;

	cr_assert_eq(aeth_acl_compile_v4(e, n, out, &n_out), 0);
	return n_out;
}

static void expect_range(const uint64_t *r, size_t i, const char *first,
			 const char *last)
{
	cr_assert_eq(r[i], aeth_acl_rng(ip(first), ip(last)),
		     "interval %zu: %#llx, want %s - %s", i,
		     (unsigned long long)r[i], first, last);
}

Test(acl_compile, empty_list_admits_no_source)
{
	uint64_t *r = (uint64_t *)1;

	cr_assert_eq(compile(NULL, 0, &r), 0);
	cr_assert_null(r);
	cr_assert_not(aeth_acl_rng_holds(r, 0, ip("10.0.0.1")));
}

/* Nested, overlapping and adjacent prefixes become one interval; a gap
 * keeps two. */
Test(acl_compile, prefixes_merged_into_disjoint_intervals)
{
	struct aeth_acl_entry e[] = {
		v4("10.1.0.0", 16), v4("10.0.0.0", 8), v4("11.0.0.0", 8),
		v4("192.168.3.0", 24), v4("192.168.1.0", 24),
		v4("192.168.1.128", 25),
	};
	uint64_t *r;
	size_t n = compile(e, sizeof(e) / sizeof(e[0]), &r);

	cr_assert_eq(n, 3);
	expect_range(r, 0, "10.0.0.0", "11.255.255.255");
	expect_range(r, 1, "192.168.1.0", "192.168.1.255");
	expect_range(r, 2, "192.168.3.0", "192.168.3.255");
	cr_assert(aeth_acl_rng_holds(r, n, ip("11.255.255.255")));
	cr_assert_not(aeth_acl_rng_holds(r, n, ip("12.0.0.0")));
	cr_assert_not(aeth_acl_rng_holds(r, n, ip("192.168.2.7")));
	cr_assert_not(aeth_acl_rng_holds(r, n, ip("9.255.255.255")));
	free(r);
}

/* 0.0.0.0/0 and a host: the whole space in one interval, both ends held. */
Test(acl_compile, whole_space_and_hosts)
{
	struct aeth_acl_entry e[] = { v4("0.0.0.0", 0), v4("10.0.0.1", 32) };
	struct aeth_acl_entry h[] = { v4("255.255.255.255", 32),
				      v4("0.0.0.0", 32) };
	uint64_t *r;

	cr_assert_eq(compile(e, 2, &r), 1);
	expect_range(r, 0, "0.0.0.0", "255.255.255.255");
	free(r);
	cr_assert_eq(compile(h, 2, &r), 2);
	expect_range(r, 0, "0.0.0.0", "0.0.0.0");
	expect_range(r, 1, "255.255.255.255", "255.255.255.255");
	free(r);
}

/* An IPv6 prefix that covers ::ffff:0:0/96 (::/0, "every IPv6 source")
 * admits no IPv4 source, and loses to any IPv4 prefix; one that does not
 * cover it says nothing of IPv4. */
Test(acl_compile, ipv6_prefixes_admit_no_ipv4_source)
{
	struct aeth_acl_entry all6[] = { v6("::", 0) };
	struct aeth_acl_entry mixed[] = { v6("::", 0), v4("10.0.0.0", 8),
					  v6("2001:db8::", 32) };
	uint64_t *r;

	cr_assert_eq(compile(all6, 1, &r), 0);
	cr_assert_null(r);
	cr_assert_eq(compile(mixed, 3, &r), 1);
	expect_range(r, 0, "10.0.0.0", "10.255.255.255");
	free(r);
}

/* Two entries of one key: the later written is the trie's. */
Test(acl_compile, later_entry_of_a_key_wins)
{
	struct aeth_acl_entry e[] = { v4("10.0.0.0", 8), v4("10.0.0.0", 8) };
	uint64_t *r;

	e[1].family = AETH_AF_INET6;
	cr_assert_eq(compile(e, 2, &r), 0);
	e[0].family = AETH_AF_INET6;
	e[1].family = AETH_AF_INET;
	cr_assert_eq(compile(e, 2, &r), 1);
	expect_range(r, 0, "10.0.0.0", "10.255.255.255");
	free(r);
}

/* The trie's answer for IPv4 source a, by its rule: the longest entry
 * covering a (the later of equal keys) decides. */
static bool trie_admits(const struct aeth_acl_entry *e, size_t n, uint32_t a)
{
	uint32_t best = 0, first, last;
	bool found = false, admits, verdict = false;

	for (size_t i = 0; i < n; i++) {
		if (!aeth_acl_key_v4_span(&e[i].key, e[i].family, &first,
					  &last, &admits) ||
		    a < first || a > last)
			continue;
		if (!found || e[i].key.prefixlen >= best) {
			best = e[i].key.prefixlen;
			verdict = admits;
			found = true;
		}
	}
	return found && verdict;
}

/* Random lists (IPv4 prefixes of every length around a few networks, some
 * IPv6 prefixes, repeated keys): the intervals are sorted, disjoint and not
 * adjacent, and hold exactly the sources the trie admits, at the edges of
 * every prefix and at random addresses. */
Test(acl_compile, random_lists_agree_with_the_trie)
{
	static const char *nets[] = { "10.0.0.0", "10.128.0.0", "192.0.2.0",
				      "0.0.0.0", "255.255.255.0" };
	struct aeth_acl_entry e[64];
	unsigned int seed = 12345;
	int round;

	for (round = 0; round < 300; round++) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 64), k, i;
		uint64_t *r;

		for (i = 0; i < n; i++) {
			uint32_t len = (uint32_t)(rand_r(&seed) % 33);
			uint32_t a = ip(nets[rand_r(&seed) % 5]) ^
				     ((uint32_t)rand_r(&seed) & 0x00ffffff);
			struct in_addr in = { htonl(a) };

			if (rand_r(&seed) % 16 == 0)
				e[i] = v6(rand_r(&seed) % 2 ? "::" : "2001:db8::",
					  rand_r(&seed) % 2 ? 0 : 32);
			else
				e[i] = v4(inet_ntoa(in), len);
			if (i && rand_r(&seed) % 8 == 0) {	/* a key again */
				e[i] = e[rand_r(&seed) % i];
				e[i].family = rand_r(&seed) % 2 ?
						      AETH_AF_INET :
						      AETH_AF_INET6;
			}
		}
		k = compile(e, n, &r);
		for (i = 1; i < k; i++)
			cr_assert_gt(r[i] >> 32, (uint64_t)(uint32_t)r[i - 1] + 1,
				     "round %d: intervals %zu and %zu touch",
				     round, i - 1, i);
		for (i = 0; i < k; i++)
			cr_assert_leq(r[i] >> 32, (uint32_t)r[i]);
		for (i = 0; i < n; i++) {
			uint32_t first, last, probe[4];
			bool admits;

			if (!aeth_acl_key_v4_span(&e[i].key, e[i].family,
						  &first, &last, &admits))
				continue;
			probe[0] = first - 1;
			probe[1] = first;
			probe[2] = last;
			probe[3] = last + 1;
			for (int j = 0; j < 4; j++)
				cr_assert_eq(aeth_acl_rng_holds(r, k, probe[j]),
					     trie_admits(e, n, probe[j]),
					     "round %d: %#x", round, probe[j]);
		}
		for (i = 0; i < 200; i++) {
			uint32_t a = (uint32_t)rand_r(&seed) << 16 ^
				     (uint32_t)rand_r(&seed);

			cr_assert_eq(aeth_acl_rng_holds(r, k, a),
				     trie_admits(e, n, a), "round %d: %#x",
				     round, a);
		}
		free(r);
	}
}

/* ---- placement in aeth_acl_rng ---- */

static struct aeth_acl_rng_at region(uint32_t offset, uint32_t count)
{
	return (struct aeth_acl_rng_at){ .offset = offset, .count = count,
					 .flags = AETH_ACL_RNG_F_COMPILED };
}

/* First fit around the other slots' regions: a gap that fits, else after
 * the last region, else no space. */
Test(acl_compile, placed_in_the_first_gap_that_fits)
{
	struct aeth_acl_rng_at idx[4] = { region(0, 10), region(20, 10) };
	uint32_t off = 99;

	cr_assert_eq(aeth_acl_rng_place(idx, 4, 2, 10, 100, &off), 0);
	cr_assert_eq(off, 10);
	cr_assert_eq(aeth_acl_rng_place(idx, 4, 2, 11, 100, &off), 0);
	cr_assert_eq(off, 30);
	cr_assert_eq(aeth_acl_rng_place(idx, 4, 2, 71, 100, &off), -ENOSPC);
	cr_assert_eq(aeth_acl_rng_place(idx, 4, 2, 70, 100, &off), 0);
	cr_assert_eq(off, 30);
}

/* A slot's own old region is free to it (it is not in use while it is
 * rewritten); regions of slots without a compiled form or with no
 * intervals take no room. */
Test(acl_compile, own_and_uncompiled_regions_are_free)
{
	struct aeth_acl_rng_at idx[4] = { region(0, 10), region(10, 10),
					   { .offset = 20, .count = 10 },
					   region(30, 0) };
	uint32_t off = 99;

	cr_assert_eq(aeth_acl_rng_place(idx, 4, 1, 15, 100, &off), 0);
	cr_assert_eq(off, 10);
	cr_assert_eq(aeth_acl_rng_place(idx, 4, 2, 80, 100, &off), 0);
	cr_assert_eq(off, 20);
	cr_assert_eq(aeth_acl_rng_place(idx, 4, 2, 81, 100, &off), -ENOSPC);
}

/* ---- the directory of a long list ---- */

/* Eight intervals (a directory of 16 blocks of 2^28 addresses): each
 * block's entry names exactly the intervals that overlap it, one that
 * spans two blocks in both, one at a block's last address in it. */
Test(acl_compile, directory_names_each_blocks_intervals)
{
	static const uint64_t r[] = {
		0x05000000ull << 32 | 0x05ffffff, 0x0f000000ull << 32 | 0x10ffffff,
		0x20000000ull << 32 | 0x5fffffff, 0x70000000ull << 32 | 0x700000ff,
		0x70000200ull << 32 | 0x700002ff, 0x9fffffffull << 32 | 0x9fffffff,
		0xe0000000ull << 32 | 0xefffffff, 0xffffff00ull << 32 | 0xffffffff,
	};
	/* block -> first interval, count */
	static const uint32_t want[16][2] = {
		{ 0, 2 }, { 1, 1 }, { 2, 1 }, { 2, 1 }, { 2, 1 }, { 2, 1 },
		{ 3, 0 }, { 3, 2 }, { 5, 0 }, { 5, 1 }, { 6, 0 }, { 6, 0 },
		{ 6, 0 }, { 6, 0 }, { 6, 1 }, { 7, 1 },
	};
	struct aeth_acl_rng_at at = { .offset = 77 };
	uint64_t *region;

	cr_assert_eq(aeth_acl_rng_region(r, 8, &at, &region), 0);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED | AETH_ACL_RNG_F_DIR);
	cr_assert_eq(at.dir_bits, 4);
	cr_assert_eq(at.count, 8);
	cr_assert_eq(at.offset, 77, "the offset is the placement's");
	cr_assert_eq(aeth_acl_rng_span(&at), 8 + 16);
	cr_assert_eq(memcmp(region, r, sizeof(r)), 0);
	for (int b = 0; b < 16; b++) {
		uint64_t d = region[8 + b];

		cr_expect_eq((uint32_t)d, want[b][1], "block %d: %u intervals",
			     b, (uint32_t)d);
		if (want[b][1])
			cr_expect_eq(d >> 32, want[b][0], "block %d: from %llu",
				     b, (unsigned long long)(d >> 32));
	}
	cr_expect(aeth_acl_region_holds(region, &at, 0x10000000));
	cr_expect(aeth_acl_region_holds(region, &at, 0x0fffffff));
	cr_expect_not(aeth_acl_region_holds(region, &at, 0x11000000));
	cr_expect(aeth_acl_region_holds(region, &at, 0x3fffffff));
	cr_expect_not(aeth_acl_region_holds(region, &at, 0x700001ff));
	cr_expect(aeth_acl_region_holds(region, &at, 0x70000200));
	cr_expect_not(aeth_acl_region_holds(region, &at, 0x6fffffff));
	cr_expect(aeth_acl_region_holds(region, &at, 0x9fffffff));
	cr_expect_not(aeth_acl_region_holds(region, &at, 0xa0000000));
	free(region);
}

/* Short lists get no directory; long ones about two blocks an interval,
 * up to 2^AETH_ACL_DIR_MAX_BITS. */
Test(acl_compile, directory_size_follows_the_list)
{
	struct aeth_acl_rng_at at = { 0 };
	uint64_t r[7] = { 1ull << 32 | 1, 3ull << 32 | 3, 5ull << 32 | 5,
			  7ull << 32 | 7, 9ull << 32 | 9, 11ull << 32 | 11,
			  13ull << 32 | 13 };
	uint64_t *region;

	cr_assert_eq(aeth_acl_dir_bits(AETH_ACL_DIR_MIN - 1), 0);
	cr_assert_eq(aeth_acl_dir_bits(AETH_ACL_DIR_MIN), 4);
	cr_assert_eq(aeth_acl_dir_bits(750), 11);
	cr_assert_eq(aeth_acl_dir_bits(1u << 20), AETH_ACL_DIR_MAX_BITS);
	cr_assert_eq(aeth_acl_rng_region(r, 7, &at, &region), 0);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED);
	cr_assert_eq(aeth_acl_rng_span(&at), 7);
	free(region);
	cr_assert_eq(aeth_acl_rng_region(r, 0, &at, &region), 0);
	cr_assert_null(region);
	cr_assert_eq(at.count, 0);
}

/* The directory's search and the whole list's answer alike for each
 * probe (those outside 32 bits skipped). */
static void expect_same_answers(const uint64_t *region,
				const struct aeth_acl_rng_at *at,
				const uint64_t *r, size_t n,
				const uint64_t probe[4], int round)
{
	for (int j = 0; j < 4; j++) {
		uint32_t a = (uint32_t)probe[j];

		if (probe[j] > 0xffffffffull)
			continue;
		cr_assert_eq(aeth_acl_region_holds(region, at, a),
			     aeth_acl_rng_holds(r, n, a), "round %d: %#x",
			     round, a);
	}
}

/* On random lists of every size the directory's search answers as the
 * search of the whole list, at every block's edges and every interval's. */
Test(acl_compile, directory_agrees_with_whole_search)
{
	unsigned int seed = 4242;

	for (int round = 0; round < 12; round++) {
		size_t n = (size_t)(round * round * 40 + 8), k, i;
		uint64_t *r = malloc(n * sizeof(*r)), *region, b;
		struct aeth_acl_rng_at at = { 0 };
		uint32_t a = 0;

		cr_assert_not_null(r);
		/* sorted, disjoint, not adjacent: gaps and lengths of every
		 * scale, some intervals spanning many blocks */
		for (k = 0; k < n; k++) {
			uint64_t gap = 2 + (uint64_t)rand_r(&seed) %
					       (round % 3 ? 1000000u : 20000000u);
			uint64_t len = (uint64_t)rand_r(&seed) %
				       (rand_r(&seed) % 8 ? 5000u : 50000000u);

			if ((uint64_t)a + gap + len > 0xffffffffull)
				break;
			r[k] = aeth_acl_rng(a + (uint32_t)gap,
					    a + (uint32_t)(gap + len));
			a += (uint32_t)(gap + len);
		}
		cr_assert_eq(aeth_acl_rng_region(r, k, &at, &region), 0);
		if (k >= AETH_ACL_DIR_MIN)
			cr_assert(at.flags & AETH_ACL_RNG_F_DIR);
		for (b = 0; at.dir_bits && b < (1ull << at.dir_bits); b++) {
			uint64_t lo = b << (32 - at.dir_bits);
			uint64_t hi = lo | ((1ull << (32 - at.dir_bits)) - 1);
			const uint64_t probe[4] = { lo, lo + 1, hi, hi - 1 };

			expect_same_answers(region, &at, r, k, probe, round);
		}
		for (i = 0; i < k; i++) {
			uint64_t first = r[i] >> 32, last = (uint32_t)r[i];
			const uint64_t probe[4] = { first - 1, first, last,
						    last + 1 };

			expect_same_answers(region, &at, r, k, probe, round);
		}
		free(region);
		free(r);
	}
}

/* Another slot's directory takes room as its intervals do; a region that
 * fits only without its directory is placed without it. */
Test(acl_compile, directory_takes_room_and_is_dropped_when_full)
{
	struct aeth_acl_rng_at idx[4] = {
		{ .offset = 0, .count = 10, .dir_bits = 5,
		  .flags = AETH_ACL_RNG_F_COMPILED | AETH_ACL_RNG_F_DIR },
	};
	struct aeth_acl_rng_at at = { .count = 10, .dir_bits = 5,
				      .flags = AETH_ACL_RNG_F_COMPILED |
					       AETH_ACL_RNG_F_DIR };
	uint32_t off = 99;

	cr_assert_eq(aeth_acl_rng_place(idx, 4, 1, 5, 100, &off), 0);
	cr_assert_eq(off, 42, "after the 10 intervals and 32 blocks");
	cr_assert_eq(aeth_acl_rng_fit(idx, 4, 1, 84, &at), 0);
	cr_assert_eq(at.offset, 42);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED | AETH_ACL_RNG_F_DIR);
	cr_assert_eq(aeth_acl_rng_fit(idx, 4, 1, 83, &at), 0);
	cr_assert_eq(at.offset, 42);
	cr_assert_eq(at.flags, AETH_ACL_RNG_F_COMPILED, "directory dropped");
	cr_assert_eq(at.dir_bits, 0);
	cr_assert_eq(aeth_acl_rng_fit(idx, 4, 1, 51, &at), -ENOSPC);
}
