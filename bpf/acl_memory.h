/* SPDX-License-Identifier: GPL-2.0-only */
/* Each CPU's memory of authorized-network verdicts: the last verdict for a
 * source under a service's list, so the packets of an established
 * connection (and a flood from one source) do not walk the list for each
 * packet. Stamped like the service copies (bpf/service.h): good while
 * aeth_stamp holds the stamp it was made under, SVC_NEG_TTL jiffies at
 * most. A list is keyed by its ACL slot, and the agent fills a slot only
 * while no service entry names it, then changes the stamp after the flip:
 * a slot's contents never change under one stamp. Both verdicts are kept:
 * a refusal is as much the list's answer as an admission. An IPv4 source
 * whose block the compiled list's directory answers at once
 * (guard_ranges_direct) skips the memory: two loads cost less than a
 * probe and a store that a flood of random sources never reads back.
 * Private to the loaded program (never pinned). */
#ifndef AETHER_BPF_ACL_MEMORY_H
#define AETHER_BPF_ACL_MEMORY_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "guard.h"
#include "service.h"

#define ACL_MEM_SIZE 1024

struct acl_memory {
	union aeth_addr src;
	__u32 acl_slot;
	__u8 family;
	__u8 allowed;
	__u16 pad;
	struct svc_mem_tag tag;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ACL_MEM_SIZE);
	__type(key, __u32);
	__type(value, struct acl_memory);
} lb_acl_mem SEC(".maps");

static __always_inline bool acl_mem_matches(const struct acl_memory *m,
					    const struct svc_neg_ref *r,
					    __u32 acl_slot,
					    const struct aeth_flow *flow)
{
	return svc_mem_holds(&m->tag, r) && m->acl_slot == acl_slot &&
	       m->family == flow->family && svc_addr_equal(&m->src, &flow->src);
}

/* guard_source_authorized through this CPU's memory; r holds the stamp. */
static __always_inline bool acl_mem_authorized(const struct svc_neg_ref *r,
					       const struct aeth_svc *svc,
					       const struct aeth_flow *flow)
{
	const __u32 *w = flow->src.v6;
	struct acl_memory *m;
	__u32 slot;
	bool ok;

	if (!(svc->flags & AETH_SVC_F_ACL))
		return true;
	/* a compiled IPv4 list's directory answers most sources in two
	 * loads, cheaper than a memory that a flood of sources only fills */
	if (flow->family == AETH_AF_INET) {
		struct guard_acl_dir spare;
		int answer = guard_ranges_direct(svc_acl_dir(r, svc, &spare),
						 bpf_ntohl(flow->src.v4));

		if (answer >= 0)
			return answer;
	}
	slot = ((w[0] ^ w[1] ^ w[2] ^ w[3] ^ svc->acl_slot) * 0x9e3779b1u) >>
	       22;	/* 10 bits: ACL_MEM_SIZE */
	m = bpf_map_lookup_elem(&lb_acl_mem, &slot);
	if (m && acl_mem_matches(m, r, svc->acl_slot, flow))
		return m->allowed;
	ok = guard_source_authorized(svc, flow);
	if (m) {
		m->src = flow->src;
		m->acl_slot = svc->acl_slot;
		m->family = flow->family;
		m->allowed = ok;
		svc_mem_tag(&m->tag, r);
	}
	return ok;
}

#endif /* AETHER_BPF_ACL_MEMORY_H */
