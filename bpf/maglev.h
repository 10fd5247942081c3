/* SPDX-License-Identifier: GPL-2.0-only */
/* Maglev selection: the seeded flow hash indexes the service's current
 * table (an inner array swapped atomically by the agent). */
#ifndef AETHER_BPF_MAGLEV_H
#define AETHER_BPF_MAGLEV_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "aether/flow_hash.h"
#include "aether/backend_rule.h"
#include "maps.h"

/* Maglev's hash of a flow (aether/flow_hash.h). A global function: its
 * rounds are verified once, not on every path that picks a backend. The
 * pointers are never NULL; the verifier makes it check. */
__noinline __u32 mg_flow_hash(const struct aeth_flow *flow,
			      const struct aeth_node *node)
{
	if (!flow || !node)
		return 0;
	return aeth_flow_hash(flow, node->hash_seed);
}

/* Pick the backend of a flow; NULL when the table is empty, missing, or
 * names a backend that cannot take new flows. */
static __always_inline struct aeth_backend *
mg_select(const struct aeth_svc *svc, const struct aeth_flow *flow,
	  const struct aeth_node *node, __u32 *be_id)
{
	struct aeth_backend *be;
	__u32 slot, *id;
	void *table;

	if (!svc->table_size)
		return NULL;
	table = bpf_map_lookup_elem(&aeth_maglev, &svc->maglev_slot);
	if (!table)
		return NULL;
	slot = aeth_maglev_slot(mg_flow_hash(flow, node), svc->table_size);
	id = bpf_map_lookup_elem(table, &slot);
	if (!id || *id == AETH_NO_BACKEND)
		return NULL;
	be = bpf_map_lookup_elem(&aeth_backend, id);
	/* a backend that may take a new flow: the rule aetherctl shares */
	if (!be || !aeth_backend_usable(be, svc->id))
		return NULL;
	*be_id = *id;
	return be;
}

#endif /* AETHER_BPF_MAGLEV_H */
