/* The connection table's layout rules (include/aether/ct_table.h), which
 * the data path and every userspace reader share: the bucket count for a
 * size, the slot a key finds, the slot a new key takes, and the keyed
 * hash. */
#include <criterion/criterion.h>
#include <string.h>

#include "aether/ct_table.h"

static struct aeth_ct_key key(__u32 src, __u16 port, __u16 svc)
{
	struct aeth_ct_key k;

	memset(&k, 0, sizeof(k));
	k.src.v4 = src;
	k.sport = port;
	k.svc_id = svc;
	return k;
}

#define TAG 0x1234
/* its two filter bits: 0x1234 >> 11 = 2, (0x1234 >> 6) & 31 = 8 */
#define TAG_BITS (1ull << 2 | 1ull << 8)
#define A000_BITS (1ull << 20 | 1)	/* tag 0xa000's: 20 and 0 */

static void fill(struct aeth_ct_bucket *b, const __u32 *seen)
{
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < AETH_CT_WAYS; i++) {
		b->key[i] = key(0x0a000001 + i, 1000, 1);
		b->slot[i].word = aeth_ct_word(100 + i, TAG, seen[i], false);
	}
}

/* A slot's word holds the entry and the tag, and nothing spills. */
Test(ct_table, slot_word_round_trip)
{
	__u64 w = aeth_ct_word(16383, 0xbeef, 0xfffffffe, false);
	struct aeth_ct_entry e = aeth_ct_word_entry(w);

	cr_assert_eq(e.backend_id, 16383);
	cr_assert_eq(e.seen_s, 0xfffffffe);
	cr_assert_eq(aeth_ct_word_tag(w), 0xbeef);
	cr_assert_eq(aeth_ct_word_seen(aeth_ct_word(0x7fff, 0xffff, 0, true)), 0);
	cr_assert_eq(aeth_ct_word_tag(aeth_ct_word(0xffff, 0x1ffff, 1, true)),
		     0xffff);
	cr_assert_eq(aeth_ct_tag(0xabcd1234u), 0xabcd);
	cr_assert_not(e.confirmed);
	/* the confirmed bit sits above the backend's 15 bits: a backend id
	 * cannot set it, and it changes no other field */
	e = aeth_ct_word_entry(aeth_ct_word(0xffff, 0xbeef, 7, false));
	cr_assert_eq(e.backend_id, 0x7fff);
	cr_assert_not(e.confirmed);
	w = aeth_ct_word(16383, 0xbeef, 0xfffffffe, true);
	e = aeth_ct_word_entry(w);
	cr_assert_eq(e.backend_id, 16383);
	cr_assert_eq(e.seen_s, 0xfffffffe);
	cr_assert(e.confirmed);
	cr_assert_eq(aeth_ct_word_tag(w), 0xbeef);
	/* the bitfields bpftool shows name the same bits */
	union aeth_ct_slot_word u = { .word = w };
	cr_assert_eq(u.backend_id, 16383);
	cr_assert_eq(u.confirmed, 1);
	cr_assert_eq(u.tag, 0xbeef);
	cr_assert_eq(u.seen_s, 0xfffffffe);
}

Test(ct_table, buckets_for_a_size_round_up_to_a_power_of_two)
{
	cr_assert_eq(aeth_ct_buckets_for(1), 1);
	cr_assert_eq(aeth_ct_buckets_for(8), 1);
	cr_assert_eq(aeth_ct_buckets_for(9), 2);
	cr_assert_eq(aeth_ct_buckets_for(1000), 128);	/* 125 -> 128 */
	cr_assert_eq(aeth_ct_buckets_for(1024), 128);
	cr_assert_eq(aeth_ct_buckets_for(1025), 256);
	cr_assert_eq(aeth_ct_buckets_for(AETH_DEFAULT_CT_ENTRIES), 131072);
	cr_assert_eq(aeth_ct_buckets_for(16u << 20), 2u << 20);
}

Test(ct_table, a_key_is_found_only_in_a_used_slot)
{
	__u32 seen[AETH_CT_WAYS] = { 5, 5, 5, 5, 5, 5, 5, 5 };
	struct aeth_ct_bucket b;
	struct aeth_ct_key k = key(0x0a000004, 1000, 1);

	fill(&b, seen);
	cr_assert_eq(aeth_ct_slot_of(&b, &k, TAG), 3);
	/* another tag: the key is not even compared */
	cr_assert_eq(aeth_ct_slot_of(&b, &k, TAG + 1), -1);
	b.slot[3].word = aeth_ct_word(103, TAG, 0, false);	/* seen 0: claimed */
	cr_assert_eq(aeth_ct_slot_of(&b, &k, TAG), -1);
	k = key(0x0a000004, 1000, 2);	/* another service: another key */
	b.slot[3].word = aeth_ct_word(103, TAG, 5, false);
	cr_assert_eq(aeth_ct_slot_of(&b, &k, TAG), -1);
	k = key(0x0a000004, 1001, 1);
	cr_assert_eq(aeth_ct_slot_of(&b, &k, TAG), -1);
}

Test(ct_table, a_new_key_takes_its_own_then_a_free_then_the_oldest_slot)
{
	__u32 seen[AETH_CT_WAYS] = { 50, 40, 30, 20, 60, 20, 70, 80 };
	struct aeth_ct_bucket b;
	struct aeth_ct_key own = key(0x0a000007, 1000, 1);
	struct aeth_ct_key other = key(0xc0000201, 2000, 1);
	bool is_own;

	fill(&b, seen);
	cr_assert_eq(aeth_ct_victim(&b, &own, TAG, &is_own), 6);
	cr_assert(is_own);
	/* the least recently seen, the first of equals */
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 3);
	cr_assert_not(is_own);
	/* a free slot before any used one, wherever it is */
	b.slot[7].word = 0;
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 7);
	cr_assert_not(is_own);
	/* its own slot even when a free one comes first */
	b.slot[0].word = 0;
	cr_assert_eq(aeth_ct_victim(&b, &own, TAG, &is_own), 6);
	cr_assert(is_own);
}

/* A full bucket gives up an entry no packet confirmed (a lone SYN's)
 * before a connection's, unless the connection has been idle for
 * AETH_CT_UNCONFIRMED_AGE_S seconds longer: a flood of SYNs then replaces
 * its own entries, not those of flows with a packet in the last minute. */
Test(ct_table, a_full_bucket_gives_up_unconfirmed_entries_first)
{
	__u32 seen[AETH_CT_WAYS] = { 1000, 1000, 1000, 1000,
				     1000, 1000, 1000, 1000 };
	const __u32 age = AETH_CT_UNCONFIRMED_AGE_S;
	struct aeth_ct_key other = key(0xc0000201, 2000, 1);
	struct aeth_ct_bucket b;
	bool is_own;

	fill(&b, seen);
	/* slots 0-5 confirmed, seen long before slots 6 and 7 */
	for (int i = 0; i < 6; i++)
		b.slot[i].word = aeth_ct_word(100 + i, TAG, 1000 - age + 10 + i,
					      true);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 6);
	cr_assert_not(is_own);
	/* of the unconfirmed, the least recently seen */
	b.slot[6].word = aeth_ct_word(106, TAG, 1001, false);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 7);
	/* a connection idle for the age longer than the lone SYN: even */
	b.slot[7].word = aeth_ct_word(107, TAG, 1001 + 1, false);
	b.slot[3].word = aeth_ct_word(103, TAG, 1001 - age, true);
	cr_assert_eq(aeth_ct_word_worth(b.slot[3].word),
		     aeth_ct_word_worth(b.slot[6].word));
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 3,
		     "the first of equals");
	/* one second more: the connection is given up */
	b.slot[3].word = aeth_ct_word(103, TAG, 1001 - age - 1, true);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 3);
	/* one second less: the lone SYN is */
	b.slot[3].word = aeth_ct_word(103, TAG, 1001 - age + 1, true);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 6);
	/* all confirmed: the least recently seen, as without the bit */
	b.slot[6].word = aeth_ct_word(106, TAG, 1001, true);
	b.slot[7].word = aeth_ct_word(107, TAG, 1002, true);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 3);
	/* and a free slot before any of them */
	b.slot[5].word = 0;
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 5);
}

/* A slot being filled by a writer (claimed) is no entry for readers, no
 * victim for other writers, and a claim of the key's own tag (most likely
 * the key itself, written by another CPU) makes the write give way. */
Test(ct_table, a_claimed_slot_is_never_taken_and_a_claim_of_the_tag_gives_way)
{
	__u32 seen[AETH_CT_WAYS] = { 50, 40, 30, 20, 60, 20, 70, 80 };
	struct aeth_ct_bucket b;
	struct aeth_ct_key own = key(0x0a000007, 1000, 1);
	struct aeth_ct_key other = key(0xc0000201, 2000, 1);
	bool is_own;

	cr_assert(aeth_ct_word_claimed(aeth_ct_word_claim(0)));
	cr_assert(aeth_ct_word_claimed(aeth_ct_word_claim(TAG)));
	cr_assert_eq(aeth_ct_word_seen(aeth_ct_word_claim(TAG)), 0);
	cr_assert_eq(aeth_ct_word_tag(aeth_ct_word_claim(TAG)), TAG);
	cr_assert_not(aeth_ct_word_claimed(0));
	cr_assert_not(aeth_ct_word_claimed(aeth_ct_word(1, TAG, 5, false)));

	fill(&b, seen);
	/* the oldest slot claimed for another tag: the next oldest */
	b.slot[3].word = aeth_ct_word_claim(0xa000);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 5);
	cr_assert_not(is_own);
	cr_assert_eq(aeth_ct_slot_of(&b, &own, TAG), 6);
	/* a claimed slot is not free either: a free one still wins */
	b.slot[7].word = 0;
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), 7);
	/* a claim of the key's tag: give way, own slot or not */
	b.slot[1].word = aeth_ct_word_claim(TAG);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), -1);
	cr_assert_eq(aeth_ct_victim(&b, &own, TAG, &is_own), -1);
	/* every slot claimed for other tags: no slot at all */
	for (int i = 0; i < AETH_CT_WAYS; i++)
		b.slot[i].word = aeth_ct_word_claim(0xa000 + i);
	cr_assert_eq(aeth_ct_victim(&b, &other, TAG, &is_own), -1);
	/* a claimed slot's tag is in the bucket's filter bits (the entry
	 * it becomes must not be published without it) */
	fill(&b, seen);
	b.slot[1].word = aeth_ct_word_claim(0xa000);
	cr_assert_eq(aeth_ct_filter_of(&b, -1), TAG_BITS | A000_BITS);
}

/* The bucket depends on the seed (the point of keeping it secret) and on
 * every word of the key; buckets spread evenly. */
Test(ct_table, the_hash_depends_on_the_seed_and_the_whole_key)
{
	enum { N = 1 << 16, BUCKETS = 1024 };
	static unsigned int count[BUCKETS];
	struct aeth_ct_key k = key(0xc6336407, 40000, 3), k2;
	int same_bucket = 0, max = 0;

	for (__u32 seed = 1; seed <= 64; seed++)
		same_bucket += aeth_ct_bucket_of(&k, seed, BUCKETS) ==
			       aeth_ct_bucket_of(&k, seed + 1000, BUCKETS);
	cr_assert_lt(same_bucket, 8, "%d of 64 seeds kept the bucket",
		     same_bucket);
	for (int w = 0; w < 5; w++) {
		k2 = k;
		((__u32 *)&k2)[w] ^= 1u << (w * 5);
		cr_assert_neq(aeth_ct_hash(&k, 7), aeth_ct_hash(&k2, 7),
			      "word %d", w);
	}
	for (__u32 i = 0; i < N; i++) {
		k2 = key(0xc6336400 + (i >> 8), 1024 + (i & 0xff), 1);
		count[aeth_ct_bucket_of(&k2, 0x1234567, BUCKETS)]++;
	}
	for (int i = 0; i < BUCKETS; i++)
		max = count[i] > (unsigned)max ? (int)count[i] : max;
	/* 64 a bucket on average; Poisson's tail puts the largest near 90 */
	cr_assert_lt(max, 110, "a bucket got %d of %d keys", max, N);
}

/* The filter: 32 bits per bucket, two buckets to a 64-bit word; a tag's
 * two bits come from its top ten bits (the hash's, not the bucket's),
 * five for each. */
Test(ct_table, filter_bits_of_tags_and_buckets)
{
	__u32 seen[AETH_CT_WAYS] = { 5, 5, 5, 5, 5, 5, 5, 5 };
	struct aeth_ct_bucket b;

	cr_assert_eq(aeth_ct_filter_bits(0x0000), 1);
	cr_assert_eq(aeth_ct_filter_bits(0x003f), 1);	/* low six: none */
	cr_assert_eq(aeth_ct_filter_bits(0xf800), 1ull << 31 | 1);
	cr_assert_eq(aeth_ct_filter_bits(0x07c0), 1ull << 31 | 1);
	cr_assert_eq(aeth_ct_filter_bits(TAG), TAG_BITS);
	cr_assert_eq(aeth_ct_filter_bits(0xa000), A000_BITS);
	/* a key may be in the bucket only when both of its bits are set */
	cr_assert(aeth_ct_filter_may_hold(TAG_BITS, TAG));
	cr_assert(aeth_ct_filter_may_hold(TAG_BITS | A000_BITS, TAG));
	cr_assert_not(aeth_ct_filter_may_hold(1ull << 2, TAG));
	cr_assert_not(aeth_ct_filter_may_hold(1ull << 8 | A000_BITS, TAG));
	cr_assert_not(aeth_ct_filter_may_hold(0, 0x0000));

	/* every slot of TAG: its two bits */
	fill(&b, seen);
	cr_assert_eq(aeth_ct_filter_of(&b, -1), TAG_BITS);
	/* slots of other tags add theirs; a free slot and a skipped one
	 * add nothing */
	b.slot[1].word = aeth_ct_word(1, 0xa000, 5, false);
	b.slot[2].word = aeth_ct_word(1, 0x5a50, 5, false);
	cr_assert_eq(aeth_ct_filter_of(&b, -1),
		     TAG_BITS | A000_BITS | 1ull << 11 | 1ull << 9);
	cr_assert_eq(aeth_ct_filter_of(&b, 2), TAG_BITS | A000_BITS);
	b.slot[1].word = 0;
	cr_assert_eq(aeth_ct_filter_of(&b, 2), TAG_BITS);
	memset(&b, 0, sizeof(b));
	cr_assert_eq(aeth_ct_filter_of(&b, -1), 0);
}

/* What the filter is for: a full bucket (eight entries, tags from a
 * hash) sends few of the keys it does not hold on to read the bucket.
 * Two bits of 32 per key let about 16% through ((1 - (31/32)^16)^2);
 * the sixteen bits a bucket had before, one per key, let about 40%. */
Test(ct_table, full_bucket_turns_away_most_absent_keys)
{
	enum { BUCKETS = 4096, PROBES = 64 };
	__u32 x = 0x2545f491;
	long through = 0, n = 0;

	for (int b = 0; b < BUCKETS; b++) {
		__u64 fw = 0;

		for (int i = 0; i < AETH_CT_WAYS; i++) {
			x = x * 1664525u + 1013904223u;
			fw |= aeth_ct_filter_bits(aeth_ct_tag(aeth_ct_hash(
				&(struct aeth_ct_key){ .src.v4 = x }, 7)));
		}
		for (int p = 0; p < PROBES; p++, n++) {
			x = x * 1664525u + 1013904223u;
			through += aeth_ct_filter_may_hold(fw, aeth_ct_tag(
				aeth_ct_hash(&(struct aeth_ct_key){ .src.v4 = x },
					     7)));
		}
	}
	cr_assert_lt(through * 1000, n * 185, "%ld of %ld absent keys got "
		     "through a full bucket's filter", through, n);
	cr_assert_gt(through * 1000, n * 130, "%ld of %ld: not a Bloom filter "
		     "of two bits in 32", through, n);
}
