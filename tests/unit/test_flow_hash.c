/* Maglev's flow hash (include/aether/flow_hash.h): every field of a flow
 * and every word of the seed it reads moves the hash, and the flows a
 * balancer sees most (one client's ports, a block of clients) spread
 * evenly over a table's slots. The data path runs the same header; the
 * explain suites check that both pick the same backend. */
#include <arpa/inet.h>
#include <string.h>

#include <criterion/criterion.h>

#include "aether/flow_hash.h"

static const __u32 seed[4] = { 0x5f3c0a1e, 0x9b7d2c44, 0xa1b2c3d4,
			       0xe5f60718 };

static struct aeth_flow flow_v4(__u32 src, __u16 sport)
{
	struct aeth_flow f;

	memset(&f, 0, sizeof(f));
	f.family = AETH_AF_INET;
	f.proto = IPPROTO_TCP;
	f.src.v4 = htonl(src);
	f.dst.v4 = htonl(0xcb007150);	/* 203.0.113.80 */
	f.sport = htons(sport);
	f.dport = htons(443);
	return f;
}

static struct aeth_flow flow_v6(__u32 low, __u16 sport)
{
	struct aeth_flow f;

	memset(&f, 0, sizeof(f));
	f.family = AETH_AF_INET6;
	f.proto = IPPROTO_TCP;
	f.src.v6[0] = htonl(0x20010db8);
	f.src.v6[3] = htonl(low);
	f.dst.v6[0] = htonl(0x20010db8);
	f.dst.v6[1] = htonl(0x100);
	f.dst.v6[3] = htonl(0x80);
	f.sport = htons(sport);
	f.dport = htons(443);
	return f;
}

/* Flip each bit of the n bytes at field (inside f) and of the seed: every
 * flip changes the hash, by 12-20 of its 32 bits on average (a good mix
 * changes each output bit with probability one half). */
static void check_avalanche(struct aeth_flow f, size_t off, size_t n,
			    const char *what)
{
	__u32 h0 = aeth_flow_hash(&f, seed), total = 0, flips = 0;
	__u8 *bytes = (__u8 *)&f;

	for (size_t i = off; i < off + n; i++)
		for (int b = 0; b < 8; b++) {
			__u32 h;

			bytes[i] ^= (__u8)(1u << b);
			h = aeth_flow_hash(&f, seed);
			bytes[i] ^= (__u8)(1u << b);
			cr_assert_neq(h, h0, "%s: byte %zu bit %d moves nothing",
				      what, i - off, b);
			total += (__u32)__builtin_popcount(h ^ h0);
			flips++;
		}
	cr_assert(total >= 12 * flips && total <= 20 * flips,
		  "%s: %u output bits changed over %u flips", what, total,
		  flips);
}

static void check_seed_avalanche(const struct aeth_flow *f, const char *what)
{
	__u32 h0 = aeth_flow_hash(f, seed);

	for (int w = 0; w < 4; w++)
		for (int b = 0; b < 32; b++) {
			__u32 s[4] = { seed[0], seed[1], seed[2], seed[3] };

			s[w] ^= 1u << b;
			cr_assert_neq(aeth_flow_hash(f, s), h0,
				      "%s: seed word %d bit %d moves nothing",
				      what, w, b);
		}
}

/* Every field of f (addresses of addr_bytes) and every seed word. */
static void check_every_field(struct aeth_flow f, size_t addr_bytes,
			      const char *what)
{
	check_avalanche(f, offsetof(struct aeth_flow, src), addr_bytes, "src");
	check_avalanche(f, offsetof(struct aeth_flow, dst), addr_bytes, "dst");
	check_avalanche(f, offsetof(struct aeth_flow, sport), 2, "sport");
	check_avalanche(f, offsetof(struct aeth_flow, dport), 2, "dport");
	check_avalanche(f, offsetof(struct aeth_flow, proto), 1, "proto");
	check_seed_avalanche(&f, what);
}

Test(flow_hash, every_ipv4_field_and_seed_word_moves_the_hash)
{
	check_every_field(flow_v4(0xc6336407, 40000), 4, "ipv4");
}

Test(flow_hash, every_ipv6_field_and_seed_word_moves_the_hash)
{
	check_every_field(flow_v6(7, 40000), 16, "ipv6");
}

Test(flow_hash, an_ipv4_and_an_ipv6_flow_of_the_same_words_differ)
{
	struct aeth_flow a = flow_v4(0x20010db8, 40000), b = a;

	/* the same words in both forms, only the family differs */
	b.family = AETH_AF_INET6;
	cr_assert_neq(aeth_flow_hash(&a, seed), aeth_flow_hash(&b, seed));
}

#define SLOTS 251	/* a Maglev table size (prime) */
#define FLOWS (SLOTS * 256)

/* FLOWS flows into SLOTS slots, by the slot rule of the data path: every
 * slot within 30% of its share
 * (about 4.8 standard deviations of a uniform spread). */
static void check_spread(struct aeth_flow (*make)(__u32 i), const char *what)
{
	static unsigned count[SLOTS];
	unsigned lo = FLOWS / SLOTS * 7 / 10, hi = FLOWS / SLOTS * 13 / 10;

	memset(count, 0, sizeof(count));
	for (__u32 i = 0; i < FLOWS; i++) {
		struct aeth_flow f = make(i);

		count[aeth_maglev_slot(aeth_flow_hash(&f, seed), SLOTS)]++;
	}
	for (unsigned s = 0; s < SLOTS; s++)
		cr_assert(count[s] >= lo && count[s] <= hi,
			  "%s: slot %u got %u flows, not %u-%u", what, s,
			  count[s], lo, hi);
}

static struct aeth_flow one_client_v4(__u32 i)
{
	return flow_v4(0xc6336407, (__u16)(1024 + i % 64000));
}

static struct aeth_flow client_block_v4(__u32 i)
{
	return flow_v4(0x0a000000 + i, 40000);
}

static struct aeth_flow one_client_v6(__u32 i)
{
	return flow_v6(7, (__u16)(1024 + i % 64000));
}

static struct aeth_flow client_block_v6(__u32 i)
{
	return flow_v6(i, 40000);
}

Test(flow_hash, one_clients_ports_and_a_block_of_clients_spread_evenly)
{
	check_spread(one_client_v4, "one IPv4 client's ports");
	check_spread(client_block_v4, "10.0.0.0/16's clients");
	check_spread(one_client_v6, "one IPv6 client's ports");
	check_spread(client_block_v6, "an IPv6 block's clients");
}

/* The slot rule maps the whole range of the hash onto the table, in
 * order: 0 to slot 0, the top to the last slot, and every slot takes
 * the same share of hashes (within one) for the supported sizes. */
Test(flow_hash, maglev_slot_covers_the_table_evenly)
{
	static const __u32 sizes[] = { 251, 1021, 4093, 16381, 65537 };

	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		__u32 n = sizes[i], prev = 0;
		__u64 share = (1ull << 32) / n, start = 0;

		cr_assert_eq(aeth_maglev_slot(0, n), 0);
		cr_assert_eq(aeth_maglev_slot(0xffffffffu, n), n - 1);
		/* the first hash of each slot: slots are runs of share or
		 * share + 1 hashes */
		for (__u32 slot = 1; slot < n; slot++) {
			__u64 first = ((__u64)slot << 32) / n;

			if (((__u64)slot << 32) % n)
				first++;
			cr_assert_eq(aeth_maglev_slot((__u32)first, n), slot);
			cr_assert_eq(aeth_maglev_slot((__u32)first - 1, n),
				     slot - 1);
			cr_assert(first - start == share ||
				  first - start == share + 1,
				  "size %u slot %u: %llu hashes", n, slot - 1,
				  (unsigned long long)(first - start));
			start = first;
			prev = slot;
		}
		cr_assert_eq(prev, n - 1);
	}
}
