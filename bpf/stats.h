/* SPDX-License-Identifier: GPL-2.0-only */
/* Per-CPU counters of the data path: reasons and events globally, packets,
 * bytes, new flows and drops per service, packets and bytes per backend. */
#ifndef AETHER_BPF_STATS_H
#define AETHER_BPF_STATS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "maps.h"

#define STATS_NO_SVC 0xffffffffu

static __always_inline void stats_event(__u32 ev)
{
	__u32 zero = 0;
	struct aeth_global_stats *g = bpf_map_lookup_elem(&aeth_global, &zero);

	if (g && ev < AETH_EV_MAX)
		g->events[ev]++;
}

/* Count a drop globally and, when the service is known, for it. Returns
 * XDP_DROP so callers can `return stats_drop(...)`. */
static __always_inline int stats_drop(__u32 reason, __u32 svc_id)
{
	__u32 zero = 0;
	struct aeth_global_stats *g = bpf_map_lookup_elem(&aeth_global, &zero);
	struct aeth_svc_stats *s;

	if (reason >= AETH_R_MAX)
		return XDP_DROP;
	if (g)
		g->reasons[reason]++;
	if (svc_id != STATS_NO_SVC) {
		s = bpf_map_lookup_elem(&aeth_svc_stats, &svc_id);
		if (s)
			s->drops[reason]++;
	}
	return XDP_DROP;
}

static __always_inline void stats_new_flow(__u32 svc_id)
{
	struct aeth_svc_stats *s = bpf_map_lookup_elem(&aeth_svc_stats, &svc_id);

	if (s)
		s->new_flows++;
}

/* A packet handed to a backend (bytes: the client's L3 packet). */
static __always_inline void stats_forward(__u32 svc_id, __u32 be_id,
					  __u32 bytes)
{
	struct aeth_svc_stats *s = bpf_map_lookup_elem(&aeth_svc_stats, &svc_id);
	struct aeth_be_stats *b = bpf_map_lookup_elem(&aeth_be_stats, &be_id);

	if (s) {
		s->packets++;
		s->bytes += bytes;
	}
	if (b) {
		b->packets++;
		b->bytes += bytes;
	}
}

#endif /* AETHER_BPF_STATS_H */
