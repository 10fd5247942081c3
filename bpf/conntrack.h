/* SPDX-License-Identifier: GPL-2.0-only */
/* Connection table: (service, client) -> backend (aeth_ct_key) in buckets
 * of AETH_CT_WAYS slots (include/aether/ct_table.h: the layout, and how a
 * reader goes without the lock), with a per-CPU insert budget so a flood
 * of new flows cannot evict established entries. */
#ifndef AETHER_BPF_CONNTRACK_H
#define AETHER_BPF_CONNTRACK_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "aether/ct_table.h"
#include "maps.h"
#include "stats.h"
#include "clock.h"

#define CT_WINDOW_NS 1000000000ull

/* What ct_store does with the slot of its key (how & CT_ACTION). */
#define CT_PUT 0	/* write it: its own slot, a free one, or the one its
			 * bucket gives up (aeth_ct_victim) */
#define CT_DEL 1	/* free the key's slot, if it has one */
#define CT_TOUCH 2	/* refresh seen_s of the key's slot if it still
			 * names backend be_id */
#define CT_ACTION 3
/* With CT_PUT or CT_TOUCH: the entry written is confirmed (a packet of
 * its flow used it). */
#define CT_CONFIRM 4

/* What ct_store did. */
#define CT_STORED 0	/* into the key's own slot or a free one */
#define CT_EVICTED 1	/* over another key's entry */
#define CT_UNCHANGED 2

/* The kernel's struct bpf_map, for the table's size (CO-RE: the field's
 * offset comes from the running kernel). */
struct bpf_map___ct {
	__u32 max_entries;
} __attribute__((preserve_access_index));

#define ct_barrier() asm volatile("" ::: "memory")

/* Load two words for their lines, nothing else. */
static __always_inline void ct_touch(const __u64 *a, const __u64 *b)
{
	__u64 x = *(volatile const __u64 *)a, y = *(volatile const __u64 *)b;

	asm volatile("" :: "r"(x), "r"(y));
}

static __always_inline __u64 ct_load_word(const struct aeth_ct_bucket *b,
					  __u32 i)
{
	return *(volatile const __u64 *)&b->slot[i].word;
}

/* Where k lives: its bucket, its tag, and its bucket's filter word
 * (ct_table.h), from bucket 0's seed and the array's size (a power
 * of two, set at load: the loader rounds conntrack.max_entries up). Only
 * addresses: nothing of the bucket or the filter is read here. */
struct ct_place {
	struct aeth_ct_bucket *b;
	__u64 *filter;		/* the word with the bucket's filter bits;
				 * NULL: a filter smaller than the table */
	__u32 shift;		/* of the bucket's bits in *filter */
	__u32 tag;
};

/* Compare-and-swap rounds a writer makes before it gives up: a loss
 * means another CPU wrote the same slot or filter word meanwhile. */
#define CT_TRIES 3

static __always_inline bool ct_swap(struct aeth_ct_bucket *b, __u32 i,
				    __u64 old, __u64 w)
{
	return __sync_val_compare_and_swap(&b->slot[i].word, old, w) == old;
}

/* Rewrite the bucket's filter bits from its slots (ct_table.h): its 32
 * bits of the filter word swapped in whole, made again from the slots
 * when another writer changed the word meanwhile. The word is read before
 * the slots: a writer that claims a slot after our read of the slots
 * claimed it after our read of the word too, and reads the word only
 * after its claim, so its own swap either comes first (ours then fails
 * and reads its claim) or sees ours. One case is left, since a swap that
 * changes no bit changes nothing: the claimer's bits were already set,
 * its swap left the word as it was, and ours, made from slots read
 * before its claim, clears them. So after our swap the slots are read
 * again, and the bits of any slot claimed meanwhile are put back (its
 * entry cannot be looked up by them until then, for a few instructions).
 * Out of tries, the slots' bits are added to what is there: a stale bit
 * at worst, never a missing one. */
static __always_inline void ct_filter_refresh(const struct ct_place *at)
{
	__u64 mask = AETH_CT_FILTER_MASK << at->shift, fw, bits = 0;

	if (!at->filter)
		return;
	for (int t = 0; t < CT_TRIES; t++) {
		fw = *(volatile __u64 *)at->filter;
		bits = aeth_ct_filter_of(at->b, -1) << at->shift;
		if (__sync_val_compare_and_swap(at->filter, fw,
						(fw & ~mask) | bits) == fw)
			break;
		bits = 0;
	}
	fw = aeth_ct_filter_of(at->b, -1) << at->shift;
	if (fw & ~bits)
		__sync_fetch_and_or(at->filter, fw);
}

/* Add the bits of the tag of a slot just claimed in a free slot (no entry
 * replaced, so none to clear): one atomic or instead of the rewrite. A
 * racing rewrite made from slots read before the claim may clear them;
 * it reads the slots again after its swap and puts them back
 * (ct_filter_refresh), as it does for a claimer whose bits were already
 * set. */
static __always_inline void ct_filter_add(const struct ct_place *at)
{
	if (at->filter)
		__sync_fetch_and_or(at->filter,
				    aeth_ct_filter_bits(at->tag) << at->shift);
}

static __always_inline bool ct_locate(const struct aeth_ct_key *k,
				      struct ct_place *at)
{
	__u32 idx = 0, word, h;

	at->b = bpf_map_lookup_elem(&aeth_ct, &idx);
	if (!at->b)
		return false;
	h = aeth_ct_hash(k, at->b->seed);
	at->tag = aeth_ct_tag(h);
	idx = aeth_ct_bucket_at(h,
			((struct bpf_map___ct *)&aeth_ct)->max_entries);
	at->shift = aeth_ct_filter_shift_of(idx);
	word = aeth_ct_filter_word_of(idx);
	at->filter = bpf_map_lookup_elem(&aeth_ct_bloom, &word);
	at->b = bpf_map_lookup_elem(&aeth_ct, &idx);
	return at->b != NULL;
}

/* Whether slot i of b holds k (of tag tag) with word w, read without the
 * lock: w nonzero with k's tag, k's key in the slot, and the word
 * unchanged once the key was compared (ct_table.h: why that is enough). */
static __always_inline bool ct_slot_is(const struct aeth_ct_bucket *b,
				       __u32 i, const struct aeth_ct_key *k,
				       __u32 tag, __u64 w)
{
	if (!aeth_ct_word_seen(w) || aeth_ct_word_tag(w) != tag ||
	    !aeth_ct_key_eq(&b->key[i], k))
		return false;
	ct_barrier();
	return ct_load_word(b, i) == w;
}

/* The entry of k into *out: its slot (0..AETH_CT_WAYS-1), or -1 when it
 * has none. The bucket is read only when its filter bits have k's; its
 * slots' words share a cache line; a key is compared only where the tag
 * matches. Without the lock: a slot whose word changed
 * while its key was compared is read once more (a refresh of seen_s by
 * another CPU changes the word and nothing else), and taken as missing
 * when it changed again (its flow then goes by Maglev, as on a node that
 * never saw it). A global function: the verifier walks the bucket once,
 * not on every path that reads the table. */
__noinline int ct_find(const struct aeth_ct_key *k, struct aeth_ct_entry *out)
{
	struct ct_place at;

	if (!k || !out || !ct_locate(k, &at))
		return -1;
	/* the filter first: a clear bit is a miss without the bucket's read */
	if (at.filter &&
	    !aeth_ct_filter_may_hold(*(volatile __u64 *)at.filter >> at.shift,
				     at.tag))
		return -1;
	for (__u32 i = 0; i < AETH_CT_WAYS; i++) {
		__u64 w = ct_load_word(at.b, i);

		if (!aeth_ct_word_seen(w) || aeth_ct_word_tag(w) != at.tag)
			continue;
		if (!ct_slot_is(at.b, i, k, at.tag, w)) {
			w = ct_load_word(at.b, i);
			if (!ct_slot_is(at.b, i, k, at.tag, w))
				continue;
		}
		*out = aeth_ct_word_entry(w);
		return i;
	}
	return -1;
}

/* Write as how says (CT_PUT, CT_DEL or CT_TOUCH, maybe | CT_CONFIRM),
 * without a lock (ct_table.h:
 * a slot changes hands by compare-and-swap of its word): returns
 * CT_STORED, CT_EVICTED or CT_UNCHANGED (also when CT_TRIES rounds lost
 * to other CPUs' writes of the bucket, or another CPU is writing this
 * key). now_s 0 is stored as 1 (0 marks a free slot). A lock would cost
 * two helper calls and a save and restore of interrupts on every insert,
 * and its locked instruction waits for the bucket's cold line with
 * nothing else under way (about 25 ns of a new flow here). A global
 * function, like ct_find. */
__noinline int ct_store(const struct aeth_ct_key *k, __u32 be_id, __u32 now_s,
			__u32 how)
{
	__u32 act = how & CT_ACTION;
	struct ct_place at;
	__u64 w, old;
	bool own;
	int i;

	if (!k || !ct_locate(k, &at))
		return CT_UNCHANGED;
	w = aeth_ct_word(be_id, at.tag, now_s ? now_s : 1, how & CT_CONFIRM);
	/* the filter's line and the bucket's read side by side, their misses
	 * overlapping */
	if (at.filter)
		ct_touch(at.filter, &at.b->slot[0].word);
	for (int t = 0; t < CT_TRIES; t++) {
		i = aeth_ct_victim(at.b, k, at.tag, &own);
		if (i < 0 || i >= AETH_CT_WAYS)
			return CT_UNCHANGED;
		old = ct_load_word(at.b, i);
		/* k published in the victim since the scan (by another CPU):
		 * its own slot after all */
		own = own || ct_slot_is(at.b, i, k, at.tag, old);
		if (own) {
			/* still k's: the word the swap expects names k */
			if (!ct_slot_is(at.b, i, k, at.tag, old))
				continue;
			if (act == CT_DEL) {
				if (!ct_swap(at.b, i, old, 0))
					continue;
				ct_filter_refresh(&at);
				return CT_STORED;
			}
			if (act == CT_TOUCH &&
			    aeth_ct_word_entry(old).backend_id != be_id)
				return CT_UNCHANGED;
			if (ct_swap(at.b, i, old, w))
				return CT_STORED;
			/* another CPU wrote the slot meanwhile (most likely its
			 * own refresh of it): a refresh need not be made twice */
			if (act == CT_TOUCH)
				return CT_UNCHANGED;
			continue;
		}
		if (act != CT_PUT)
			return CT_UNCHANGED;
		if (aeth_ct_word_claimed(old) ||
		    !ct_swap(at.b, i, old, aeth_ct_word_claim(at.tag)))
			continue;
		/* the slot is ours: the filter with our tag's bits and without
		 * the replaced entry's (a free slot replaced none), then the
		 * key, then the word */
		if (old)
			ct_filter_refresh(&at);
		else
			ct_filter_add(&at);
		at.b->key[i] = *k;
		ct_barrier();
		*(volatile __u64 *)&at.b->slot[i].word = w;
		return aeth_ct_word_seen(old) ? CT_EVICTED : CT_STORED;
	}
	return CT_UNCHANGED;
}

/* Take one insert from this CPU's budget for the current second. */
static __always_inline bool ct_budget_take(const struct aeth_node *node,
					   __u64 now)
{
	struct aeth_ct_budget *b;
	__u32 zero = 0;

	if (!node->ct_insert_rate)
		return true;
	b = bpf_map_lookup_elem(&aeth_ct_budget, &zero);
	if (!b)
		return true;
	if (now - b->window_start_ns >= CT_WINDOW_NS) {
		b->window_start_ns = now;
		b->inserts = 0;
	}
	if (b->inserts >= node->ct_insert_rate)
		return false;
	b->inserts++;
	return true;
}

/* Record a new flow unless the budget is spent (then it is still
 * forwarded, just not remembered). unread: the table was not read for
 * this flow (a TCP SYN, include/aether/ct_rule.h), so it may hold an entry
 * of the tuple, which the write replaces. When the budget refuses the
 * write, that entry is deleted: it may name another backend than the one
 * Maglev just gave the SYN, and the connection's next packets would follow
 * it there (where the backend knows no such connection) instead of
 * following Maglev like the SYN (a miss: stray TCP, Maglev, not recorded).
 * Deleting takes no slot and evicts nothing, so it keeps the budget's
 * promise. Its price is a read of the bucket's filter bits (and of the
 * bucket when its bit is set, and a compare-and-swap when there is an
 * entry to delete), paid only by admitted SYNs beyond the budget, never
 * by refused ones.
 * jiffies: the packet's bpf_jiffies64(); one read of the clock memory
 * gives the budget its ns and the entry its seconds. */
static __always_inline void ct_record(const struct aeth_node *node,
				      const struct aeth_ct_key *key,
				      __u32 be_id, bool unread, __u64 jiffies)
{
	struct clock_memory *clk = clock_at(jiffies);
	__u32 now_s = clk ? (__u32)clk->s : 0;
	int rc;

	if (!ct_budget_take(node, clk ? clk->ns : 0)) {
		struct aeth_ct_entry old;

		stats_event(AETH_EV_CT_INSERT_SKIPPED);
		/* looked up first: a miss (the usual case: a new tuple)
		 * reads the bucket without taking its lock */
		if (unread && ct_find(key, &old) >= 0)
			ct_store(key, 0, 0, CT_DEL);
		return;
	}
	rc = ct_store(key, be_id, now_s, CT_PUT);
	if (rc == CT_EVICTED)
		stats_event(AETH_EV_CT_EVICTED);
	/* unchanged: another CPU was writing the tuple's slot */
	stats_event(rc == CT_UNCHANGED ? AETH_EV_CT_INSERT_SKIPPED :
					 AETH_EV_CT_INSERT);
}

/* Replace the entry of a flow that has one: a re-selection (confirmed:
 * its packets used the entry), or a new connection on the tuple of an
 * expired one (not confirmed). */
static __always_inline void ct_overwrite(const struct aeth_ct_key *key,
					 __u32 be_id, __u32 now_s,
					 bool confirmed)
{
	ct_store(key, be_id, now_s, confirmed ? CT_PUT | CT_CONFIRM : CT_PUT);
}

#endif /* AETHER_BPF_CONNTRACK_H */
