/* SPDX-License-Identifier: GPL-2.0-only */
/* Each CPU's memory of the established flows it forwarded last: the flow,
 * its service and its backend, as the connection table and the tables of
 * the agent gave them. A packet of such a flow skips the service copy, the
 * authorized-network check, the connection-table lookup and the backend's
 * read and goes straight to the encapsulation (lb_forward), which is what
 * those steps would have led to: all of them are answered by tables that
 * only change under a new stamp (aeth_stamp), and a memory holds under its
 * stamp for SVC_NEG_TTL jiffies at most (100 ms), like the other per-CPU
 * memories (bpf/service.h).
 *
 * Only a packet whose connection entry was used (AETH_CT_USE) is
 * remembered, never a new flow, a re-selection or a stray TCP packet, so
 * no memory exists without an entry in aeth_ct. What the data path itself
 * changes in aeth_ct without a stamp is a TCP SYN's new entry for a reused
 * tuple: the SYN forgets the tuple on its CPU (flow_mem_forget). A UDP
 * entry's idle timeout (seconds) is judged at least every 100 ms by the
 * full path, which also refreshes seen_s. Private to the loaded program
 * (never pinned). */
#ifndef AETHER_BPF_FLOW_MEMORY_H
#define AETHER_BPF_FLOW_MEMORY_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "service.h"
#include "encap.h"

/* 256 slots (24 KiB a CPU): with many more flows than slots, nearly every
 * packet misses, and a miss in a memory that stays in the CPU's first
 * caches costs 10-15 ns less than in one of 4,096 slots (bench/cost
 * established_v4_64k); a CPU's few busy flows are what it serves. */
#define FLOW_MEM_SIZE 256

struct flow_memory {
	struct aeth_flow flow;
	struct svc_mem_tag tag;
	struct aeth_backend be;
	__u32 be_id;
	__u32 svc_id;
	/* the backend's next hop for packets in on hop_ingress, good until
	 * hop_until (jiffies; 0: none yet): what the next-hop cache answered
	 * for the first packet forwarded from this memory, so a route change
	 * takes effect as soon as it does there (bpf/encap.h) */
	__u32 hop_ingress;
	struct encap_hop hop;
	__u64 hop_until;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOW_MEM_SIZE);
	__type(key, __u32);
	__type(value, struct flow_memory);
} lb_flow_mem SEC(".maps");

static __always_inline __u32 flow_mem_slot(const struct aeth_flow *f)
{
	const __u32 *w = (const __u32 *)f;
	__u32 h = w[0] ^ w[1] ^ w[2] ^ w[3] ^ (w[4] * 0x85ebca6bu) ^ w[5] ^
		  w[6] ^ w[7] ^ (w[8] * 0xc2b2ae35u) ^ w[9];

	return (h * 0x9e3779b1u) >> 24;	/* 8 bits: FLOW_MEM_SIZE */
}

static __always_inline bool flow_equal(const struct aeth_flow *a,
				       const struct aeth_flow *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) |
		(x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

/* The slot of this CPU's memory where flow f goes. */
static __always_inline struct flow_memory *
flow_mem_at(const struct aeth_flow *f)
{
	__u32 slot = flow_mem_slot(f);

	return bpf_map_lookup_elem(&lb_flow_mem, &slot);
}

/* The memory of flow f on this CPU, or NULL; r holds the stamp. */
static __always_inline struct flow_memory *
flow_mem_find(const struct svc_neg_ref *r, const struct aeth_flow *f)
{
	struct flow_memory *m = flow_mem_at(f);

	if (m && svc_mem_holds(&m->tag, r) && flow_equal(&m->flow, f))
		return m;
	return NULL;
}

/* Remember that f's packets go to backend be_id (a copy of be) of
 * service svc_id, in a slot that holds no other flow's memory: with more
 * flows than slots, a slot keeps one flow until its memory lapses instead
 * of being rewritten by every packet of every flow that shares it (each
 * write a miss for the next packet of the flow it replaced). */
static __always_inline void flow_mem_note(const struct svc_neg_ref *r,
					  const struct aeth_flow *f,
					  const struct aeth_backend *be,
					  __u32 be_id, __u32 svc_id)
{
	struct flow_memory *m = flow_mem_at(f);

	if (!m || (svc_mem_holds(&m->tag, r) && !flow_equal(&m->flow, f)))
		return;
	m->flow = *f;
	m->be = *be;
	m->be_id = be_id;
	m->svc_id = svc_id;
	m->hop_until = 0;	/* the slot's last flow may have had another */
	svc_mem_tag(&m->tag, r);
}

/* Forget f on this CPU (its connection entry is being replaced). */
static __always_inline void flow_mem_forget(const struct aeth_flow *f)
{
	struct flow_memory *m = flow_mem_at(f);

	if (m && flow_equal(&m->flow, f))
		m->tag.expires = 0;
}

#endif /* AETHER_BPF_FLOW_MEMORY_H */
