/* SPDX-License-Identifier: GPL-2.0-only */
/* Connection table: (service, client) -> backend (aeth_ct_key), with a
 * per-CPU insert budget so a flood of new flows cannot evict established
 * entries from the LRU. */
#ifndef AETHER_BPF_CONNTRACK_H
#define AETHER_BPF_CONNTRACK_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "maps.h"
#include "stats.h"
#include "clock.h"

#define CT_WINDOW_NS 1000000000ull

static __always_inline struct aeth_ct_entry *
ct_lookup(const struct aeth_ct_key *key)
{
	return bpf_map_lookup_elem(&aeth_ct, key);
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
 * Deleting takes no free node and evicts nothing, so it keeps the budget's
 * promise; overwriting would not (an LRU update takes a free node first,
 * evicting when there is none, even when the key exists). Its price is a
 * walk of the tuple's bucket, like the lookup the SYN skipped (and the
 * bucket's lock when there is an entry to delete), paid only by admitted
 * SYNs beyond the budget, never by refused ones. jiffies: the packet's
 * bpf_jiffies64(); one read of the clock memory gives the budget its ns
 * and the entry its seconds. */
static __always_inline void ct_record(const struct aeth_node *node,
				      const struct aeth_ct_key *key,
				      __u32 be_id, bool unread, __u64 jiffies)
{
	struct clock_memory *clk = clock_at(jiffies);
	struct aeth_ct_entry e = {
		.backend_id = be_id,
		.seen_s = clk ? (__u32)clk->s : 0,
	};

	if (!ct_budget_take(node, clk ? clk->ns : 0)) {
		stats_event(AETH_EV_CT_INSERT_SKIPPED);
		/* looked up first: a miss (the usual case: a new tuple)
		 * walks the bucket without taking its lock */
		if (unread && ct_lookup(key))
			bpf_map_delete_elem(&aeth_ct, key);
		return;
	}
	if (bpf_map_update_elem(&aeth_ct, key, &e, BPF_ANY) == 0)
		stats_event(AETH_EV_CT_INSERT);
}

/* Replace the entry of a flow that has one (a re-selection). */
static __always_inline void ct_overwrite(const struct aeth_ct_key *key,
					 __u32 be_id, __u32 now_s)
{
	struct aeth_ct_entry e = {
		.backend_id = be_id,
		.seen_s = now_s,
	};

	bpf_map_update_elem(&aeth_ct, key, &e, BPF_ANY);
}

#endif /* AETHER_BPF_CONNTRACK_H */
