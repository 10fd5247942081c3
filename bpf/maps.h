/* SPDX-License-Identifier: GPL-2.0-only */
/* Every map of the data path: what it holds and who writes it. All are
 * pinned by name under the agent's --pin-dir with BTF, so bpftool decodes
 * them. Layouts live in include/aether/abi.h. */
#ifndef AETHER_BPF_MAPS_H
#define AETHER_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"

/* Schema version, generation, config hash, attach status. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aeth_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_meta SEC(".maps");

/* The tables' stamp: the agent changes it after every write of the tables
 * (the service entries published, an apply committed, a failed one rolled
 * back). Each CPU's memories of what it found in them (bpf/service.h,
 * bpf/acl_memory.h) are good only under the stamp they were made under.
 * Its own map, not a field of aeth_meta: aeth_meta's layout is the schema,
 * and its generation and applied time mean committed documents only.
 * Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_stamp SEC(".maps");

/* Node addresses, MTU, insert budget, hash seed. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aeth_node);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_node SEC(".maps");

/* VIP address -> number of services on it. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AETH_MAX_SERVICES);
	__type(key, struct aeth_vip_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_vip SEC(".maps");

/* (VIP, port, proto) -> service. Agent writes; one update publishes a
 * service's new table and ACL slots together. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AETH_MAX_SERVICES);
	__type(key, struct aeth_svc_key);
	__type(value, struct aeth_svc);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_svc SEC(".maps");

/* Service id -> names and settings for people. Agent writes; the data path
 * never reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aeth_svcinfo);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_svcinfo SEC(".maps");

/* Backend id -> address and state. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aeth_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_backend SEC(".maps");

/* Inner Maglev table: slot -> backend id. Sized per service by the agent
 * (BPF_F_INNER_MAP lets inner arrays differ in size). BPF_F_MMAPABLE lets
 * the agent write a whole table with one mmap and memcpy instead of a
 * kernel update per slot (tests/agent/test_apply: a full apply of 1,000
 * services with 16381-slot tables took 0.5-0.6 s instead of 6.4 s).
 * No schema version change: no layout changed, and either template works
 * with the agent, which probes whether the pinned outer map takes mmapable
 * tables (pins made before keep taking plain ones, written slot by slot,
 * until aether-agent --detach recreates them). Every inner table must be created with exactly these flags
 * (agent/daemon/apply_inner.c, tests/harness/harness.c, tests/ctl/ctl_fixture.c). */
struct aeth_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

/* Slot (svc.maglev_slot) -> Maglev table. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, AETH_MAX_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct aeth_maglev_inner);
} aeth_maglev SEC(".maps");

/* Inner authorized-networks trie of one service (both families). */
struct aeth_acl_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, AETH_MAX_ACL_CIDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	/* sizes, not BTF types: clang emits only a forward declaration for a
	 * struct reached through the outer map's inner pointer */
	__uint(key_size, sizeof(struct aeth_acl_key));
	__uint(value_size, sizeof(__u32));
};

/* Slot (svc.acl_slot) -> authorized networks. Agent writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, AETH_MAX_SLOTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct aeth_acl_inner);
} aeth_acl SEC(".maps");

/* The IPv4 part of every list in aeth_acl, compiled by the agent into
 * sorted, disjoint intervals of addresses the list admits, (first << 32 |
 * last) in host order: a global array, so each step of the binary search
 * (bpf/guard.h) is an inlined load, not the trie walk. Agent writes
 * (through mmap, one region per slot, before the service entry names the
 * slot). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_ACL_RNG_CAP);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_acl_rng SEC(".maps");

/* Slot (svc.acl_slot) -> where its intervals lie in aeth_acl_rng; no
 * AETH_ACL_RNG_F_COMPILED: look the trie up. Agent writes, with the trie
 * of the slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_MAX_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct aeth_acl_rng_at);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_acl_rngidx SEC(".maps");

/* Connection table: (service, client) -> backend (aeth_ct_key, abi.h), in
 * buckets of AETH_CT_WAYS slots (include/aether/ct_table.h). Data path
 * writes; the agent sizes it (conntrack.max_entries / AETH_CT_WAYS,
 * rounded up to a power of two) and seeds it once when it is created.
 * Not a kernel hash map: an LRU hash took 96 bytes an entry (48 of element
 * header, 16 of bucket) and an insert locked lists shared by the CPUs
 * (two CPUs inserted no faster than one); a bucket of ours takes 32 bytes
 * an entry, and its writers take no lock: a slot changes hands by
 * compare-and-swap of its word (docs/bench.md). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_DEFAULT_CT_ENTRIES / AETH_CT_WAYS);
	__type(key, __u32);
	__type(value, struct aeth_ct_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_ct SEC(".maps");

/* The connection table's filter: bucket index -> a Bloom filter of the
 * bucket's keys, two bits of each entry's tag (include/aether/ct_table.h),
 * so a miss costs a read of this array (1/64 of the table) instead of the
 * bucket's. Data path writes; the agent sizes it like aeth_ct and fills it
 * from the table when it loads (a table pinned by a build without this
 * filter). Mapped by userspace, which only ever sets bits, atomically. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_DEFAULT_CT_ENTRIES / AETH_CT_WAYS /
			    AETH_CT_FILTER_PER_WORD);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_ct_bloom SEC(".maps");

/* Connection table policy for TCP packets that are not a SYN and miss the
 * table (a flow moved here by ECMP, an entry evicted, or a spoofed ACK):
 * they are forwarded by Maglev and NOT recorded. Every node builds the same
 * table, so such a packet reaches the same backend any node would pick; what
 * is lost is only stickiness when the backend set changes while a flow
 * lives on a node that never saw its SYN. Recording them would let a flood
 * of spoofed ACKs from inside the authorized networks buy entries (an insert
 * and, in a full bucket, an eviction of an established flow each) at line
 * rate; not recording makes such a packet cost a Maglev lookup, less than a
 * new flow, and evict nothing. UDP has no SYN: a UDP packet without entry is
 * a new connection, charged and recorded; its entry expires after
 * node.udp_timeout_s idle (seen_s). */

/* Per-CPU conntrack insert budget window. Data path writes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aeth_ct_budget);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_ct_budget SEC(".maps");

/* Per-source new-connection limiter, shared by all CPUs. Data path writes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct aeth_rl_src_key);
	__type(value, struct aeth_rl_src_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_rl_src SEC(".maps");

/* Per-service new-connection cap. Data path writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aeth_rl_svc_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_rl_svc SEC(".maps");

/* decap.sources: the outer sources (LB nodes) whose tunnels this node
 * decapsulates; key and value as in the ACL tries (IPv4 as ::ffff:a.b.c.d,
 * value the listed prefix's family). Agent writes. An LPM trie because the
 * document names CIDRs; empty means no tunnel is accepted. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, AETH_MAX_DECAP_SOURCES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct aeth_acl_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_decap SEC(".maps");

/* Per-CPU scratch: the too-big reply token bucket and the outer IPv4 id
 * counter. Data path writes. Per CPU so neither costs a shared cache line. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aeth_pcpu);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_pcpu SEC(".maps");

/* ifindex -> ifindex of the interfaces the program is attached to: the
 * only ones a forwarded packet is redirected to. Agent writes. A redirect
 * to anything else (a VLAN sub-interface, a bridge, a tunnel the route
 * names) would fail inside the kernel after the program counted it sent;
 * checked here it is a no_route drop instead. A hash: ifindexes are
 * large and sparse. (Not a devmap: libbpf 1.1 cannot reuse a pinned one,
 * the kernel adds BPF_F_RDONLY_PROG to its flags.) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AETH_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_tx_ports SEC(".maps");

/* Counters. Data path writes, everyone sums over CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AETH_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aeth_svc_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AETH_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aeth_be_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_be_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aeth_global_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aeth_global SEC(".maps");

#endif /* AETHER_BPF_MAPS_H */
