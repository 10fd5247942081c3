/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What crosses between the XDP data path and userspace: map keys and values,
 * reason codes, limits and the schema version. Fixed-width kernel types only,
 * no libc, so the BPF object and the agent/CLI compile the same layout. */
#ifndef AETHER_ABI_H
#define AETHER_ABI_H

#include <linux/types.h>
#include <linux/bpf.h>	/* struct bpf_spin_lock (aeth_ct_bucket) */

/* Bump on any change to a pinned struct or map definition. The agent refuses
 * (or migrates) pinned maps whose aeth_meta.schema_version differs. */
#define AETH_SCHEMA_VERSION 4

/* Limits. Outer map sizes are fixed at load; inner maps are sized per use. */
#define AETH_MAX_SERVICES 4096
#define AETH_MAX_BACKENDS 16384
#define AETH_MAX_TABLE_SIZE 65537	/* largest supported Maglev table */
#define AETH_MAX_ACL_CIDRS 65536	/* per service */
#define AETH_MAX_INTERFACES 8
#define AETH_MAX_TX_PORTS 64	/* aeth_tx_ports entries */
#define AETH_NAME_LEN 64
#define AETH_IFNAME_LEN 16
#define AETH_DEFAULT_CT_ENTRIES 1048576
#define AETH_DEFAULT_CT_INSERT_RATE 50000 /* per CPU per second */
#define AETH_DEFAULT_UDP_TIMEOUT_S 30	/* idle UDP connection entry */
#define AETH_DEFAULT_ICMP_RATE 1000	/* too-big replies per CPU per second */
#define AETH_MAX_DECAP_SOURCES 1024	/* decap.sources CIDRs */
/* aeth_acl_rng: IPv4 intervals of every compiled list, 8 bytes each
 * (8 MiB). A binary search over a list takes at most AETH_ACL_RNG_STEPS
 * steps, log2 of the capacity. */
#define AETH_ACL_RNG_STEPS 20
#define AETH_ACL_RNG_CAP (1u << AETH_ACL_RNG_STEPS)
/* A compiled list of at least AETH_ACL_DIR_MIN intervals also gets a
 * directory (AETH_ACL_RNG_F_DIR) of at most 2^AETH_ACL_DIR_MAX_BITS
 * entries, so a source's search starts among the few intervals of its
 * address block instead of the whole list. */
#define AETH_ACL_DIR_MIN 8
#define AETH_ACL_DIR_MAX_BITS 16

/* Two outer slots per service for the Maglev table and the ACL: the agent
 * fills the inactive slot, then flips the service entry to it in one update. */
#define AETH_SLOTS_PER_SERVICE 2
#define AETH_MAX_SLOTS (AETH_MAX_SERVICES * AETH_SLOTS_PER_SERVICE)

/* A Maglev slot naming no backend. */
#define AETH_NO_BACKEND 0xffffffffu

/* Pinned map names (also the BPF map names: at most 15 characters). The
 * list of pinned maps is AETH_PINNED_MAPS in map_table.h; a map's name is
 * "aeth_" and its field there. The AETH_MAP_* names below are aliases for
 * the code that names one map. */
#define AETH_MAP_NAME(field) "aeth_" #field
#define AETH_MAP_META AETH_MAP_NAME(meta)
#define AETH_MAP_NODE AETH_MAP_NAME(node)
#define AETH_MAP_VIP AETH_MAP_NAME(vip)
#define AETH_MAP_SVC AETH_MAP_NAME(svc)
#define AETH_MAP_SVCINFO AETH_MAP_NAME(svcinfo)
#define AETH_MAP_BACKEND AETH_MAP_NAME(backend)
#define AETH_MAP_MAGLEV AETH_MAP_NAME(maglev)
#define AETH_MAP_ACL AETH_MAP_NAME(acl)
#define AETH_MAP_ACL_RNG AETH_MAP_NAME(acl_rng)
#define AETH_MAP_ACL_RNGIDX AETH_MAP_NAME(acl_rngidx)
#define AETH_MAP_STAMP AETH_MAP_NAME(stamp)
#define AETH_MAP_CT AETH_MAP_NAME(ct)
#define AETH_MAP_CT_BLOOM AETH_MAP_NAME(ct_bloom)
#define AETH_MAP_CT_BUDGET AETH_MAP_NAME(ct_budget)
#define AETH_MAP_RL_SRC AETH_MAP_NAME(rl_src)
#define AETH_MAP_RL_SVC AETH_MAP_NAME(rl_svc)
#define AETH_MAP_SVC_STATS AETH_MAP_NAME(svc_stats)
#define AETH_MAP_BE_STATS AETH_MAP_NAME(be_stats)
#define AETH_MAP_GLOBAL AETH_MAP_NAME(global)
#define AETH_MAP_DECAP AETH_MAP_NAME(decap)
#define AETH_MAP_PCPU AETH_MAP_NAME(pcpu)
#define AETH_MAP_TX_PORTS AETH_MAP_NAME(tx_ports)

#define AETH_PROG_NAME "aether_lb"	/* SEC("xdp") entry point */

/* Drop and pass reasons (SPEC.md section 6). Order is ABI. */
enum aeth_reason {
	AETH_R_NOT_AUTHORIZED = 0,
	AETH_R_RATE_LIMITED,
	AETH_R_SERVICE_RATE_LIMITED,
	AETH_R_NO_BACKEND,
	AETH_R_UNCONFIGURED_PORT,
	AETH_R_MALFORMED,
	AETH_R_FRAGMENT,
	AETH_R_DECAP_INVALID,
	AETH_R_MTU_EXCEEDED,
	AETH_R_NO_ROUTE,
	AETH_R_MAX,
};

/* Things that happen without a drop, counted globally. Order is ABI. */
enum aeth_event {
	AETH_EV_PASS_NOT_SERVICE = 0, /* not a VIP and not for decap: XDP_PASS */
	AETH_EV_TX,		/* encapsulated, XDP_TX */
	AETH_EV_REDIRECT,	/* encapsulated, redirected to another NIC */
	AETH_EV_TO_STACK_NO_NEIGH, /* encapsulated, no neighbour: XDP_PASS */
	AETH_EV_TO_STACK_FRAG,	/* unused: a too-big packet is answered, never fragmented */
	AETH_EV_DECAP,		/* valid tunnel packet stripped, XDP_PASS */
	AETH_EV_CT_HIT,
	AETH_EV_CT_MISS,
	AETH_EV_CT_INSERT,
	AETH_EV_CT_INSERT_SKIPPED, /* new flow not recorded: insert budget spent */
	AETH_EV_CT_RESELECT,	/* entry named a removed backend: re-selected */
	AETH_EV_ICMP_TOO_BIG_SENT, /* frag-needed / packet-too-big answered */
	AETH_EV_ICMP_STEERED,	/* ICMP error forwarded to its flow's backend */
	AETH_EV_ICMP_TOO_BIG_LIMITED, /* too big, reply refused by the ICMP budget */
	AETH_EV_CT_EXPIRED,	/* idle UDP entry found expired: a new connection */
	AETH_EV_CT_STRAY,	/* TCP non-SYN without entry: Maglev, not recorded */
	AETH_EV_CT_EVICTED,	/* a new entry took the slot of another (full bucket) */
	AETH_EV_MAX,
};

#define AETH_AF_INET 2
#define AETH_AF_INET6 10

/* An address of either family; IPv4 lives in v4 with the rest zero. */
union aeth_addr {
	__be32 v4;
	__be32 v6[4];
	__u8 bytes[16];
};

/* aeth_meta[0]: written by the agent only. */
struct aeth_iface_status {
	__u32 ifindex;
	__u32 mode;		/* enum aeth_xdp_mode obtained */
	__u32 prog_id;
	__u32 pad;
	char name[AETH_IFNAME_LEN];
};

enum aeth_xdp_mode {
	AETH_XDP_MODE_NONE = 0,
	AETH_XDP_MODE_NATIVE,
	AETH_XDP_MODE_GENERIC,
	AETH_XDP_MODE_AUTO,	/* requested only */
};

struct aeth_meta {
	__u32 schema_version;
	__u32 n_interfaces;
	__u64 generation;	/* applied config generation */
	__u64 applied_unix_ns;	/* wall clock of the last successful apply */
	__u8 config_hash[32];	/* SHA-256 of the applied document text */
	struct aeth_iface_status ifaces[AETH_MAX_INTERFACES];
};

/* aeth_node[0]: node settings the data path reads. Written by the agent. */
#define AETH_NODE_F_V4 (1u << 0)	/* v4 is set */
#define AETH_NODE_F_V6 (1u << 1)	/* v6 is set */
struct aeth_node {
	__be32 v4;
	__be32 v6[4];
	__u32 flags;
	__u32 mtu;		/* largest encapsulated packet, L3 bytes */
	__u32 ct_insert_rate;	/* conntrack inserts per second per CPU; 0 = no cap */
	__u32 hash_seed[4];	/* maglev.seed, the flow hash key */
	__u32 udp_timeout_s;	/* idle UDP entry lifetime; 0 = never expires */
	__u32 icmp_rate;	/* too-big replies per CPU per second; 0 = none */
};

/* aeth_vip: every address that is some service's VIP -> number of services
 * on it. A miss means "not ours": XDP_PASS untouched. */
struct aeth_vip_key {
	union aeth_addr addr;
	__u8 family;
	__u8 pad[3];
};

/* aeth_svc: (vip, port, proto) -> service. port 0 is the wildcard. */
struct aeth_svc_key {
	union aeth_addr vip;
	__be16 port;
	__u8 proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;
};

#define AETH_SVC_F_ACL (1u << 0)	/* authorized networks enforced */

struct aeth_svc {
	__u32 id;		/* index into aeth_svcinfo, stats, rl_svc */
	__u32 flags;
	__u32 maglev_slot;	/* index into aeth_maglev */
	__u32 table_size;	/* entries in that table; 0 = no backend */
	__u32 acl_slot;		/* index into aeth_acl (when AETH_SVC_F_ACL) */
	__u8 src_prefix_v4;	/* per-source limiter granularity */
	__u8 src_prefix_v6;
	__u16 pad;
	/* GCRA parameters; interval 0 disables that limiter. */
	__u64 src_interval_ns;	/* 1e9 / new_connections_per_second */
	__u64 src_tolerance_ns;	/* (burst - 1) * src_interval_ns */
	__u64 svc_interval_ns;	/* 1e9 / service_new_connections_per_second */
	__u64 svc_tolerance_ns;
};

/* aeth_svcinfo[id]: what people and aetherctl read. Written by the agent. */
#define AETH_SVCINFO_F_IN_USE (1u << 0)
struct aeth_svcinfo {
	char name[AETH_NAME_LEN];
	union aeth_addr vip;
	__u8 family;
	__u8 proto;
	__be16 port;
	__u32 flags;
	__u32 table_size;
	__u32 acl_enabled;
	__u32 acl_cidrs;
	__u32 n_backends;
	__u32 rl_per_source;	/* new connections per second, 0 = off */
	__u32 rl_burst;
	__u32 rl_per_service;	/* 0 = off */
	__u8 rl_prefix_v4;
	__u8 rl_prefix_v6;
	__u16 pad;
};

/* aeth_backend[id]: backend ids are stable across updates. */
#define AETH_BE_F_IN_USE (1u << 0)	/* clear: removed, re-select its flows */
#define AETH_BE_F_DRAINING (1u << 1)	/* not in tables; keeps its flows */
#define AETH_BE_F_UNHEALTHY (1u << 2)	/* health check failing; not in tables */
struct aeth_backend {
	union aeth_addr addr;
	__u8 family;
	__u8 pad;
	__u16 weight;
	__u32 flags;
	__u32 svc_id;
};

/* A packet's 5-tuple, as parsed (bpf/parse.h): the flow hash, the limiters
 * and the flow memory read it. */
struct aeth_flow {
	union aeth_addr src;
	union aeth_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* aeth_ct: (service, client) -> backend. Written by the data path.
 * The key is relative to the service: the service id stands for the VIP,
 * the port and the protocol, so a flow is its source address and port
 * within its service (20 bytes instead of the 40 of aeth_flow). Build it
 * with aeth_ct_key_of (ct_rule.h): the port and the service share one
 * 32-bit word, written and hashed as one. */
struct aeth_ct_key {
	union aeth_addr src;	/* IPv4: first word, the rest zero */
	union {
		struct {
			__be16 sport;
			__u16 svc_id;
		};
		__u32 port_svc;
	};
};

struct aeth_ct_entry {
	__u32 backend_id;
	/* coarse clock (bpf_ktime_get_coarse_ns) in whole seconds when the
	 * entry was written or last used, refreshed at most once a second
	 * (never 0: 0 marks a free slot) */
	__u32 seen_s;
	/* 1 once a packet of the flow used the entry after the one that
	 * wrote it: a connection, not a lone SYN (a flood's), which a full
	 * bucket gives up first (include/aether/ct_table.h aeth_ct_victim) */
	__u32 confirmed;
};

/* The table is an array of buckets (include/aether/ct_table.h): a key
 * lives in one bucket, chosen by a keyed hash, in one of its
 * AETH_CT_WAYS slots; a full bucket gives up its least recently seen
 * entry, counting an entry no packet confirmed as older (ct_table.h
 * aeth_ct_victim). 32 bytes an entry (the kernel's LRU hash took 96). A
 * slot's entry is one aligned 64-bit word (aeth_ct_word: seen_s, a 16-bit
 * tag of the key's hash, the confirmed bit, the backend id; 0: free), and
 * the eight words share one cache line apart from the keys, so a lookup
 * reads the words, and a key only where the tag matches: in a full
 * bucket, a miss reads no key and a hit one (ct_table.h also says how
 * readers go without the lock).
 * Bucket 0's seed is the whole table's secret hash seed, written once
 * when the table is created and kept with it (others: 0). */
#define AETH_CT_WAYS 8
/* aeth_ct_bloom: 32 bits per bucket, two set for each key the bucket
 * holds (include/aether/ct_table.h); buckets 2i and 2i + 1 in the low and
 * high half of 64-bit word i: 512 KiB for the default table, 1/64 of its
 * size. A word per bucket (1/32) measured 7-22 ns more on the misses of
 * an empty table (the filter no longer stays in the CPU's cache;
 * docs/bench.md). */
#define AETH_CT_FILTER_BITS 32
#define AETH_CT_FILTER_PER_WORD (64 / AETH_CT_FILTER_BITS)
#define AETH_CT_FILTER_MASK ((1ull << AETH_CT_FILTER_BITS) - 1) /* a bucket's bits */

union aeth_ct_slot_word {
	__u64 word;		/* aeth_ct_word (ct_table.h) */
	struct {		/* the same bits, named for BTF readers */
		__u64 backend_id : 15;
		__u64 confirmed : 1;
		__u64 tag : 16;
		__u64 seen_s : 32;	/* 0: the slot is free */
	};
};

struct aeth_ct_bucket {
	struct bpf_spin_lock lock;	/* userspace only (BPF_F_LOCK): the
					 * data path takes none (ct_table.h) */
	__u32 seed;
	union aeth_ct_slot_word slot[AETH_CT_WAYS];
	struct aeth_ct_key key[AETH_CT_WAYS];
	__u32 pad[6];
};

/* aeth_ct_budget[0] (per CPU): inserts in the current one-second window. */
struct aeth_ct_budget {
	__u64 window_start_ns;
	__u64 inserts;
};

/* aeth_pcpu[0] (per CPU): scratch state of the data path on one CPU. */
struct aeth_pcpu {
	__u64 icmp_tokens;	/* too-big replies left (token bucket) */
	__u64 icmp_refill_ns;	/* when icmp_tokens was last refilled */
	__u32 ip_id;		/* next outer IPv4 identification */
	__u32 pad;
};

/* aeth_acl inner LPM trie key: IPv4 is stored as ::ffff:a.b.c.d with
 * prefixlen + 96, so both families share one trie and one lookup. aeth_decap
 * (decap.sources) uses the same key and value. */
struct aeth_acl_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* aeth_acl_rngidx[slot]: where the compiled IPv4 form of the list in
 * aeth_acl[slot] lies in aeth_acl_rng: count intervals from offset, each
 * (first << 32 | last) in host order, sorted, disjoint and not adjacent.
 * Without AETH_ACL_RNG_F_COMPILED the slot has no compiled form and IPv4
 * sources are looked up in the trie; with it and count 0 the list admits no
 * IPv4 source. With AETH_ACL_RNG_F_DIR the intervals are followed by a
 * directory of 2^dir_bits entries, one per block of addresses sharing
 * their top dir_bits bits: entry b is (first << 32 | n), the n intervals
 * from first (counted from offset) that overlap block b; n = 0: no source
 * of the block is admitted. The slot's region of aeth_acl_rng is count
 * entries, plus the directory's (aeth_acl_rng_span, acl_compile.h). */
struct aeth_acl_rng_at {
	__u32 offset;
	__u32 count;
	__u32 flags;		/* AETH_ACL_RNG_F_* */
	__u32 dir_bits;		/* with AETH_ACL_RNG_F_DIR: 1..AETH_ACL_DIR_MAX_BITS */
};

#define AETH_ACL_RNG_F_COMPILED 1u
#define AETH_ACL_RNG_F_DIR 2u

/* aeth_rl_src: (service, source prefix) -> GCRA state (LRU, shared). */
struct aeth_rl_src_key {
	__u32 svc_id;
	__u8 family;
	__u8 pad[3];
	union aeth_addr prefix;	/* source masked to the service's prefix */
};

struct aeth_rl_src_state {
	__u64 tat_ns;		/* theoretical arrival time (GCRA), CAS-updated */
	__u64 admitted;
	__u64 dropped;
};

/* lb_rl_refused (per CPU, AETH_RL_REFUSED_SIZE slots): each CPU's memory
 * of the sources it refused last (bpf/guard.h: why and for how long). A
 * map of the loaded program, never pinned: aetherctl explain finds it
 * through the programs aeth_meta names (the rules: ratelimit_rule.h). */
#define AETH_RL_REFUSED_SIZE 1024

struct aeth_rl_refusal {
	struct aeth_rl_src_key key;
	__u64 until_ns;		/* refused while now < until_ns */
	__u64 interval_ns, tolerance_ns;	/* the service's, when made */
	__u64 pending;		/* refusals not yet added to the entry */
};

/* lb_rl_svc_lease[id] (per CPU): each CPU's lease of a service cap's
 * tokens (bpf/guard.h: why; aether/ratelimit_rule.h: the rules, shared
 * with aetherctl explain). Tokens taken from the shared bucket in one
 * step at now_ns and spent by this CPU while its clock still reads
 * now_ns. A map of the loaded program, never pinned. */
#define AETH_RL_LEASE_MAX 16	/* tokens a lease takes at most */
#define AETH_RL_LEASE_SHARE 16	/* and at most 1/16 of the burst */

struct aeth_rl_lease {
	__u64 now_ns;		/* the coarse clock it was taken at */
	__u64 end_tat;		/* the shared tat the take left */
	__u64 interval_ns, tolerance_ns;	/* the service's, when taken */
	__u32 left;		/* tokens taken and not yet spent */
	__u32 size;		/* tokens the next take asks for */
};

/* aeth_rl_svc[id]: per-service cap state. */
struct aeth_rl_svc_state {
	__u64 tat_ns;
	__u64 dropped;
};

/* aeth_svc_stats[id] (per CPU). */
struct aeth_svc_stats {
	__u64 packets;		/* forwarded to a backend */
	__u64 bytes;
	__u64 new_flows;
	__u64 drops[AETH_R_MAX];
};

/* aeth_be_stats[id] (per CPU). */
struct aeth_be_stats {
	__u64 packets;
	__u64 bytes;
};

/* aeth_global[0] (per CPU). */
struct aeth_global_stats {
	__u64 reasons[AETH_R_MAX];
	__u64 events[AETH_EV_MAX];
};

_Static_assert(sizeof(union aeth_addr) == 16, "aeth_addr");
_Static_assert(sizeof(struct aeth_iface_status) == 32, "aeth_iface_status");
_Static_assert(sizeof(struct aeth_meta) == 56 + 32 * AETH_MAX_INTERFACES, "aeth_meta");
_Static_assert(sizeof(struct aeth_node) == 56, "aeth_node");
_Static_assert(sizeof(struct aeth_vip_key) == 20, "aeth_vip_key");
_Static_assert(sizeof(struct aeth_svc_key) == 20, "aeth_svc_key");
_Static_assert(sizeof(struct aeth_svc) == 56, "aeth_svc");
_Static_assert(sizeof(struct aeth_svcinfo) == 120, "aeth_svcinfo");
_Static_assert(sizeof(struct aeth_backend) == 28, "aeth_backend");
_Static_assert(sizeof(struct aeth_flow) == 40, "aeth_flow");
_Static_assert(sizeof(struct aeth_ct_key) == 20, "aeth_ct_key");
_Static_assert(sizeof(struct aeth_ct_entry) == 12, "aeth_ct_entry");
_Static_assert(sizeof(struct aeth_ct_bucket) == 256, "aeth_ct_bucket");
_Static_assert(__builtin_offsetof(struct aeth_ct_bucket, slot) == 8,
	       "aeth_ct_bucket.slot: aligned 64-bit words");
_Static_assert(sizeof(union aeth_ct_slot_word) == 8, "aeth_ct_slot_word");
_Static_assert(AETH_MAX_BACKENDS <= 32768, "a slot word's backend id is 15 bits");
_Static_assert(AETH_MAX_SERVICES <= 65536, "aeth_ct_key.svc_id is 16 bits");
_Static_assert(sizeof(struct aeth_pcpu) == 24, "aeth_pcpu");
_Static_assert(sizeof(struct aeth_ct_budget) == 16, "aeth_ct_budget");
_Static_assert(sizeof(struct aeth_acl_key) == 20, "aeth_acl_key");
_Static_assert(sizeof(struct aeth_acl_rng_at) == 16, "aeth_acl_rng_at");
_Static_assert(sizeof(struct aeth_rl_src_key) == 24, "aeth_rl_src_key");
_Static_assert(sizeof(struct aeth_rl_src_state) == 24, "aeth_rl_src_state");
_Static_assert(sizeof(struct aeth_rl_svc_state) == 16, "aeth_rl_svc_state");
_Static_assert(sizeof(struct aeth_rl_refusal) == 56, "aeth_rl_refusal");
_Static_assert(sizeof(struct aeth_rl_lease) == 40, "aeth_rl_lease");
_Static_assert(sizeof(struct aeth_svc_stats) == 8 * (3 + AETH_R_MAX), "aeth_svc_stats");
_Static_assert(sizeof(struct aeth_be_stats) == 16, "aeth_be_stats");
_Static_assert(sizeof(struct aeth_global_stats) == 8 * (AETH_R_MAX + AETH_EV_MAX), "aeth_global_stats");

#endif /* AETHER_ABI_H */
