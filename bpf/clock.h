/* SPDX-License-Identifier: GPL-2.0-only */
/* The coarse clock of the limits, the connection entries and the insert
 * budget, read once per tick on each CPU. bpf_ktime_get_coarse_ns() is a
 * helper call (19-28 ns here) and its value only moves at a tick, when
 * jiffies does (bpf_jiffies64() is inlined: a load). So each CPU keeps the
 * value it read under the jiffies it had read before, and every packet of
 * the same jiffies on that CPU takes it without the call.
 *
 * The kernel moves jiffies a moment before the coarse clock in the same
 * tick. A read in between keeps the previous tick's value for the rest of
 * that tick on that CPU: the clock then lags by one tick at most, for one
 * tick at most, and never runs ahead (a packet that reads jiffies after
 * a read that saw the new clock already sees the new jiffies). A lagging
 * clock only makes the limits stricter by one tick's refill, which they
 * already allow for (docs/guard.md). Private to the loaded program. */
#ifndef AETHER_BPF_CLOCK_H
#define AETHER_BPF_CLOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct clock_memory {
	__u64 jiffies;		/* as read before ns */
	__u64 ns;		/* bpf_ktime_get_coarse_ns() */
	__u64 s;		/* ns in whole seconds: one division a tick */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clock_memory);
} lb_clock_mem SEC(".maps");

/* This CPU's memory of the clock at jiffies (bpf_jiffies64(), read
 * earlier by the caller for this packet), read anew when jiffies moved.
 * NULL never happens (a per-CPU array's one slot). */
static __always_inline struct clock_memory *clock_at(__u64 jiffies)
{
	struct clock_memory *m;
	__u32 zero = 0;
	__u64 ns;

	m = bpf_map_lookup_elem(&lb_clock_mem, &zero);
	if (m && (m->jiffies != jiffies || !m->ns)) {
		ns = bpf_ktime_get_coarse_ns();
		m->jiffies = jiffies;
		m->ns = ns;
		m->s = ns / 1000000000ull;
	}
	return m;
}

/* The coarse clock now. */
static __always_inline __u64 clock_coarse_ns(__u64 jiffies)
{
	struct clock_memory *m = clock_at(jiffies);

	return m ? m->ns : 0;
}

/* The same clock in whole seconds: what connection entries keep. */
static __always_inline __u32 clock_coarse_s(__u64 jiffies)
{
	struct clock_memory *m = clock_at(jiffies);

	return m ? (__u32)m->s : 0;
}

#endif /* AETHER_BPF_CLOCK_H */
