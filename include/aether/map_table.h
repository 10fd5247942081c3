/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one list of the maps pinned under --pin-dir. Everything that walks
 * the pinned maps comes from this table:
 *   - the pin and kernel name, "aeth_" FIELD (AETH_MAP_NAME, and the
 *     AETH_MAP_* aliases in abi.h),
 *   - struct aeth_map_fds (agent/lib/pinned.h), one fd per row,
 *   - the shape check of agent/lib/pinned.c (type, key and value size),
 *   - the agent's skeleton wiring and --detach (agent/daemon/loader.c:
 *     skel->maps.aeth_FIELD),
 *   - the table of maps in docs/deploy.md (tests/ctl/test_pinned.c
 *     generates it and fails when the document differs).
 * bpf/maps.h still writes the BTF definitions out (they cannot come from a
 * macro); tests/ctl/test_pinned.c opens the skeleton and checks that every
 * definition agrees with its row (type, key, value, max_entries, flags) and
 * that the object has no other "aeth_" map.
 *
 * X(field, type, key, value, max_entries, flags, writer, what)
 *   field        C name: aeth_map_fds.field, skel->maps.aeth_field
 *   type         BPF_MAP_TYPE_*
 *   key, value   C types (an outer map of maps holds __u32 map ids)
 *   max_entries  as defined; aeth_ct and aeth_ct_bloom are sized at load
 *                (conntrack.max_entries) and a pinned map keeps its size
 *   flags        map_flags
 *   writer       "agent" or "data path"
 *   what         one line for the documentation
 * Order is the order of struct aeth_map_fds, not ABI. Keep names under 16
 * characters: the kernel cuts map names at 15. */
#ifndef AETHER_MAP_TABLE_H
#define AETHER_MAP_TABLE_H

#include <linux/bpf.h>
#include "abi.h"

#define AETH_PINNED_MAPS(X)                                                  \
	X(meta, BPF_MAP_TYPE_ARRAY, __u32, struct aeth_meta, 1, 0, "agent",   \
	  "schema version, generation, config hash, attach status")          \
	X(node, BPF_MAP_TYPE_ARRAY, __u32, struct aeth_node, 1, 0, "agent",   \
	  "node addresses, MTU, insert budget, hash seed")                    \
	X(vip, BPF_MAP_TYPE_HASH, struct aeth_vip_key, __u32,                \
	  AETH_MAX_SERVICES, BPF_F_NO_PREALLOC, "agent",                      \
	  "VIP address -> number of services on it")                          \
	X(svc, BPF_MAP_TYPE_HASH, struct aeth_svc_key, struct aeth_svc,      \
	  AETH_MAX_SERVICES, BPF_F_NO_PREALLOC, "agent",                      \
	  "(VIP, port, protocol) -> service")                                 \
	X(svcinfo, BPF_MAP_TYPE_ARRAY, __u32, struct aeth_svcinfo,           \
	  AETH_MAX_SERVICES, 0, "agent",                                      \
	  "service id -> names and settings (for people)")                    \
	X(backend, BPF_MAP_TYPE_ARRAY, __u32, struct aeth_backend,           \
	  AETH_MAX_BACKENDS, 0, "agent", "backend id -> address and state")   \
	X(maglev, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, AETH_MAX_SLOTS,  \
	  0, "agent", "slot -> Maglev table (slot -> backend id)")            \
	X(acl, BPF_MAP_TYPE_ARRAY_OF_MAPS, __u32, __u32, AETH_MAX_SLOTS, 0,  \
	  "agent", "slot -> authorized networks (LPM trie)")                  \
	X(acl_rng, BPF_MAP_TYPE_ARRAY, __u32, __u64, AETH_ACL_RNG_CAP,       \
	  BPF_F_MMAPABLE, "agent",                                            \
	  "IPv4 intervals of the compiled lists: first << 32 + last")        \
	X(acl_rngidx, BPF_MAP_TYPE_ARRAY, __u32, struct aeth_acl_rng_at,     \
	  AETH_MAX_SLOTS, BPF_F_MMAPABLE, "agent",                            \
	  "slot -> its compiled IPv4 intervals in aeth_acl_rng")              \
	X(ct, BPF_MAP_TYPE_ARRAY, __u32, struct aeth_ct_bucket,              \
	  AETH_DEFAULT_CT_ENTRIES / AETH_CT_WAYS, 0, "data path",             \
	  "connection table: buckets of 8 (service, client) -> backend entries (conntrack.max_entries / 8)") \
	X(ct_bloom, BPF_MAP_TYPE_ARRAY, __u32, __u64,                       \
	  AETH_DEFAULT_CT_ENTRIES / AETH_CT_WAYS / AETH_CT_FILTER_PER_WORD,   \
	  BPF_F_MMAPABLE, "data path",                                        \
	  "connection table's filter: 32 bits per bucket, two per key it holds") \
	X(ct_budget, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aeth_ct_budget, \
	  1, 0, "data path", "per-CPU connection-table insert budget")        \
	X(rl_src, BPF_MAP_TYPE_LRU_HASH, struct aeth_rl_src_key,             \
	  struct aeth_rl_src_state, 262144, 0, "data path",                   \
	  "(service, source prefix) -> limiter state")                        \
	X(rl_svc, BPF_MAP_TYPE_ARRAY, __u32, struct aeth_rl_svc_state,       \
	  AETH_MAX_SERVICES, 0, "data path", "service id -> limiter state")   \
	X(svc_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aeth_svc_stats, \
	  AETH_MAX_SERVICES, 0, "data path", "per-service counters")          \
	X(be_stats, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aeth_be_stats,  \
	  AETH_MAX_BACKENDS, 0, "data path", "per-backend counters")          \
	X(global, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aeth_global_stats, \
	  1, 0, "data path", "drop reasons and events")                       \
	X(decap, BPF_MAP_TYPE_LPM_TRIE, struct aeth_acl_key, __u32,          \
	  AETH_MAX_DECAP_SOURCES, BPF_F_NO_PREALLOC, "agent",                 \
	  "decap.sources: tunnel sources accepted")                           \
	X(pcpu, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aeth_pcpu, 1, 0,    \
	  "data path", "per-CPU scratch: too-big reply budget, IPv4 id")      \
	X(tx_ports, BPF_MAP_TYPE_HASH, __u32, __u32, AETH_MAX_TX_PORTS, 0,   \
	  "agent", "ifindex -> ifindex of the interfaces redirected to")     \
	X(stamp, BPF_MAP_TYPE_ARRAY, __u32, __u64, 1, 0, "agent",             \
	  "tables' stamp: changed after every write of the tables")

/* A row's index (enum aeth_map_index: AETH_MAPI_meta, ...) and count. */
#define AETH_MAP_TABLE_INDEX_(f, ...) AETH_MAPI_##f,
enum aeth_map_index {
	AETH_PINNED_MAPS(AETH_MAP_TABLE_INDEX_)
	AETH_N_PINNED_MAPS
};

#endif /* AETHER_MAP_TABLE_H */
