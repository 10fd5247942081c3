/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The connection table's layout rules, shared by the data path
 * (bpf/conntrack.h) and the readers in userspace (agent/lib/ct_table.c):
 * which bucket holds a key, which slot of it, what a slot's word holds,
 * and which slot a new key takes.
 *
 * A key lives in bucket aeth_ct_bucket_of(key, seed, nbuckets) of the
 * array aeth_ct (nbuckets a power of two), in any of its AETH_CT_WAYS
 * slots. The hash is keyed by bucket 0's seed, random and secret, so no
 * one can aim flows at one bucket to evict a chosen connection. Its top
 * 16 bits are the key's tag, kept in the slot's word: a lookup compares
 * a key only in the slots whose tag matches.
 *
 * No one in the data path takes a lock. A slot changes hands by a
 * compare-and-swap of its word: a writer that gives a slot to a new key
 * swaps the word it saw (free, or the entry it replaces) for a claim
 * (aeth_ct_word_claim: nonzero, so no other writer takes the slot, with
 * seen_s 0, so no reader takes it as an entry), writes the key, then
 * publishes the entry's word; refreshing or deleting an entry swaps its
 * word for the new one or 0. A writer whose swap fails (another CPU
 * wrote the slot since it looked) looks again. A reader loads the word,
 * compares the key, and loads the word again, taking the slot only when
 * both loads agree and are an entry. Stores and loads are not reordered
 * with others of their kind on x86-64, the machines this runs on, so a
 * reader that matched a key written after its first load sees the second
 * load differ. The bucket's lock (BPF_F_LOCK) only orders userspace's
 * copies and writes among themselves: userspace writes buckets (the tests'
 * entries) only while no packet runs.
 *
 * Two CPUs writing one key at once (the same tuple seen on two queues) do
 * not give it two slots: the second sees the first's claim, which carries
 * the key's tag, and gives way (aeth_ct_victim); the first's entry stands.
 *
 * Beside the table, aeth_ct_bloom holds 32 bits per bucket, a Bloom
 * filter of the keys the bucket holds: the two bits
 * aeth_ct_filter_bits(tag) of every entry's tag are set (and maybe
 * others). A reader that finds either of its two bits clear knows the key
 * is absent without touching the bucket, one cold read (and TLB miss) in
 * a table of tens of MiB saved for every miss; the filter is 1/64 of the
 * table's size. A full bucket (8 entries, up to 16 bits set) lets about
 * 16% of absent keys through to the bucket (tests/unit/test_ct_table.c
 * measures it). The data path rewrites a bucket's bits from its slots, by
 * compare-and-swap of the filter's word, after it claims a slot and before
 * it publishes the entry's word (so a published entry lacks its bits at
 * most for the instant a racing rewrite takes to put them back): a
 * claimed slot's tag counts as an entry's, a rewrite that raced another's
 * is made again from the slots as they are then, and a writer reads the
 * slots once more after its rewrite and puts back the bits of any slot
 * claimed meanwhile (bpf/conntrack.h ct_filter_refresh: why). A writer
 * that claimed a free slot replaced no entry, so it only sets its tag's
 * bits by an atomic or (ct_filter_add), which such a rewrite restores in
 * the same way. Userspace only ever sets bits (atomically, through the
 * map's mmap), so no entry's bits are ever missing. */
#ifndef AETHER_CT_TABLE_H
#define AETHER_CT_TABLE_H

#include <stdbool.h>
#include <linux/types.h>
#include "abi.h"
#include "rule_inline.h"

/* The key's five words mixed under seed (each round a multiply and a
 * shift, so the bucket depends on every bit of the key and of the seed). */
AETH_RULE __u32 aeth_ct_hash(const struct aeth_ct_key *k, __u32 seed)
{
	const aeth_u32_alias *w = (const aeth_u32_alias *)k;
	__u32 h = seed ^ 0x5f3c0a1eu;

	for (int i = 0; i < 5; i++) {
		h ^= w[i];
		h *= 0x9e3779b1u;
		h ^= h >> 15;
	}
	return h;
}

/* The bucket of hash h in a table of nbuckets (a power of two). */
AETH_RULE __u32 aeth_ct_bucket_at(__u32 h, __u32 nbuckets)
{
	return h & (nbuckets - 1);
}

AETH_RULE __u32 aeth_ct_bucket_of(const struct aeth_ct_key *k, __u32 seed,
				  __u32 nbuckets)
{
	return aeth_ct_bucket_at(aeth_ct_hash(k, seed), nbuckets);
}

/* The tag of hash h: its top 16 bits (the bucket takes the low ones). */
AETH_RULE __u32 aeth_ct_tag(__u32 h)
{
	return h >> 16;
}

/* The filter's words for a table of nbuckets. */
AETH_RULE __u32 aeth_ct_filter_words(__u32 nbuckets)
{
	return (nbuckets + AETH_CT_FILTER_PER_WORD - 1) /
	       AETH_CT_FILTER_PER_WORD;
}

/* Where bucket idx's bits are: the word, and the shift in it. */
AETH_RULE __u32 aeth_ct_filter_word_of(__u32 idx)
{
	return idx / AETH_CT_FILTER_PER_WORD;
}

AETH_RULE __u32 aeth_ct_filter_shift_of(__u32 idx)
{
	return idx % AETH_CT_FILTER_PER_WORD * AETH_CT_FILTER_BITS;
}

/* A tag's two bits among its bucket's 32: from the tag's top ten bits
 * (the hash's, above the bucket bits of any table under 2^22 buckets;
 * conntrack.max_entries allows 2^21). */
AETH_RULE __u64 aeth_ct_filter_bits(__u32 tag)
{
	return 1ull << (tag >> 11 & 31) | 1ull << (tag >> 6 & 31);
}

/* Whether a bucket whose filter bits are fb may hold a key of tag: both
 * of the tag's bits are set. */
AETH_RULE bool aeth_ct_filter_may_hold(__u64 fb, __u32 tag)
{
	__u64 bits = aeth_ct_filter_bits(tag);

	return (fb & bits) == bits;
}

/* A slot word's low 16 bits: the backend id (15 bits), and the bit a
 * packet of the flow sets when it uses the entry after the one that wrote
 * it (aeth_ct_entry.confirmed). */
#define AETH_CT_WORD_BACKEND 0x7fffu
#define AETH_CT_WORD_CONFIRMED 0x8000u

/* How many seconds older than its seen_s a full bucket takes an entry no
 * packet confirmed to be, when it picks the entry it gives up
 * (aeth_ct_victim). A client's handshake confirms its entry within a
 * round trip; a SYN whose sender never answers (a flood's, spoofed)
 * leaves an entry that is never confirmed. So a flood's entries give way
 * to each other before they push out a connection that had a packet in
 * the last minute, however many CPUs insert them (docs/guard.md). */
#define AETH_CT_UNCONFIRMED_AGE_S 60

/* A slot's word: seen_s (never 0 in a used slot), the tag, confirmed or
 * not, the backend. */
AETH_RULE __u64 aeth_ct_word(__u32 backend_id, __u32 tag, __u32 seen_s,
			     bool confirmed)
{
	return (__u64)seen_s << 32 | (tag & 0xffff) << 16 |
	       (confirmed ? AETH_CT_WORD_CONFIRMED : 0) |
	       (backend_id & AETH_CT_WORD_BACKEND);
}

AETH_RULE __u32 aeth_ct_word_seen(__u64 w)
{
	return (__u32)(w >> 32);
}

/* The word of a slot a writer is filling with a key of tag: never free
 * (nonzero even for tag 0), never an entry (seen_s 0). */
AETH_RULE __u64 aeth_ct_word_claim(__u32 tag)
{
	return (tag & 0xffff) << 16 | 1;
}

AETH_RULE bool aeth_ct_word_claimed(__u64 w)
{
	return w && !aeth_ct_word_seen(w);
}

AETH_RULE __u32 aeth_ct_word_tag(__u64 w)
{
	return (__u32)(w >> 16) & 0xffff;
}

AETH_RULE bool aeth_ct_word_confirmed(__u64 w)
{
	return w & AETH_CT_WORD_CONFIRMED;
}

AETH_RULE struct aeth_ct_entry aeth_ct_word_entry(__u64 w)
{
	struct aeth_ct_entry e = {
		.backend_id = (__u32)w & AETH_CT_WORD_BACKEND,
		.seen_s = (__u32)(w >> 32),
		.confirmed = aeth_ct_word_confirmed(w),
	};

	return e;
}

/* What a full bucket weighs its entry of word w by, the least given up
 * first: seen_s, and AETH_CT_UNCONFIRMED_AGE_S more once a packet
 * confirmed it (so an unconfirmed entry counts as that much older; in 64
 * bits, which do not wrap). A free slot weighs 0. */
AETH_RULE __u64 aeth_ct_word_worth(__u64 w)
{
	/* the bit times the age, not a branch on it (which the compiler
	 * makes of aeth_ct_word_confirmed's bool): the bit differs slot to
	 * slot */
	return aeth_ct_word_seen(w) + (w & AETH_CT_WORD_CONFIRMED) /
				      AETH_CT_WORD_CONFIRMED *
				      AETH_CT_UNCONFIRMED_AGE_S;
}

AETH_RULE bool aeth_ct_key_eq(const struct aeth_ct_key *a,
			      const struct aeth_ct_key *b)
{
	const aeth_u32_alias *x = (const aeth_u32_alias *)a;
	const aeth_u32_alias *y = (const aeth_u32_alias *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) |
		(x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

/* The buckets of a table of at least entries entries (a power of two; the
 * table holds AETH_CT_WAYS times as many entries). */
AETH_RULE __u32 aeth_ct_buckets_for(__u32 entries)
{
	__u32 want = (entries + AETH_CT_WAYS - 1) / AETH_CT_WAYS, n = 1;

	while (n < want && n < (1u << 30))
		n <<= 1;
	return n;
}

/* The filter word of bucket b: the bits of every used or claimed slot's
 * tag but slot skip's (-1: none skipped). */
AETH_RULE __u64 aeth_ct_filter_of(const struct aeth_ct_bucket *b, int skip)
{
	__u64 bits = 0;

	for (int i = 0; i < AETH_CT_WAYS; i++) {
		__u64 w = *(volatile const __u64 *)&b->slot[i].word;

		if (i != skip && w)
			bits |= aeth_ct_filter_bits(aeth_ct_word_tag(w));
	}
	return bits;
}

/* Whether slot i holds k (of tag tag). */
AETH_RULE bool aeth_ct_slot_holds(const struct aeth_ct_bucket *b, int i,
				  const struct aeth_ct_key *k, __u32 tag)
{
	__u64 w = b->slot[i].word;

	return aeth_ct_word_seen(w) && aeth_ct_word_tag(w) == tag &&
	       aeth_ct_key_eq(&b->key[i], k);
}

/* In a bucket copied whole (userspace, under BPF_F_LOCK): the slot of k,
 * or -1. */
AETH_RULE int aeth_ct_slot_of(const struct aeth_ct_bucket *b,
			      const struct aeth_ct_key *k, __u32 tag)
{
	for (int i = 0; i < AETH_CT_WAYS; i++)
		if (aeth_ct_slot_holds(b, i, k, tag))
			return i;
	return -1;
}

/* The slot a write of k takes: k's own, else a free one, else the entry
 * of least worth (aeth_ct_word_worth: the least recently seen, an entry no
 * packet confirmed counting AETH_CT_UNCONFIRMED_AGE_S older; the first of
 * equals); never a claimed one. *own tells whether it is k's. -1: none,
 * because a slot is claimed for a key of k's tag (most likely k itself,
 * written by another CPU: that write stands), or because every slot is
 * claimed. */
AETH_RULE int aeth_ct_victim(const struct aeth_ct_bucket *b,
			     const struct aeth_ct_key *k, __u32 tag, bool *own)
{
	__u64 least = ~0ull;
	int victim = -1;

	*own = false;
	for (int i = 0; i < AETH_CT_WAYS; i++) {
		__u64 w = *(volatile const __u64 *)&b->slot[i].word;
		__u32 seen = aeth_ct_word_seen(w);

		if (aeth_ct_word_claimed(w)) {
			if (aeth_ct_word_tag(w) == (tag & 0xffff))
				return -1;
			continue;
		}
		if (seen && aeth_ct_word_tag(w) == (tag & 0xffff) &&
		    aeth_ct_key_eq(&b->key[i], k)) {
			*own = true;
			return i;
		}
		if (victim < 0 || aeth_ct_word_worth(w) < least) {
			least = aeth_ct_word_worth(w);
			victim = i;
		}
	}
	return victim;
}

#endif /* AETHER_CT_TABLE_H */
