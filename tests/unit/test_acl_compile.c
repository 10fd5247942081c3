/* The compiled IPv4 form of an authorized-networks list
 * (agent/daemon/acl_compile.c): the intervals it builds from a list's trie
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
