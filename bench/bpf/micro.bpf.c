// SPDX-License-Identifier: GPL-2.0-only
/* Single operations the data path is made of, each alone in a program, so
 * the benchmark can say where a path's cost goes. Tail-called by the same
 * wrapper as the real program; the key of each lookup comes from the
 * packet's IPv4 source address, which the wrapper can make distinct. */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aether/abi.h"
#include "aether/ct_table.h"

/* The entry these prototypes store: a backend and a time, 8 bytes. */
struct micro_entry {
	__u32 backend_id;
	__u32 seen_s;
};

/* Like aeth_ct: a large LRU connection table, looked up with new tuples. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AETH_DEFAULT_CT_ENTRIES);
	__type(key, struct aeth_ct_key);
	__type(value, struct micro_entry);
} micro_ct SEC(".maps");

/* Like aeth_vip: a small hash looked up with a key that is present. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AETH_MAX_SERVICES);
	__type(key, struct aeth_vip_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} micro_vip SEC(".maps");

/* Like an authorized-networks trie; filled by the benchmark. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, AETH_MAX_ACL_CIDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct aeth_acl_key);
	__type(value, __u32);
} micro_acl SEC(".maps");

/* Where results go so nothing is optimised away. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} micro_sink SEC(".maps");

static __always_inline void sink(__u64 v)
{
	__u32 zero = 0;
	__u64 *s = bpf_map_lookup_elem(&micro_sink, &zero);

	if (s)
		*s += v;
}

/* The IPv4 source address of an untagged frame, 0 if there is none. */
static __always_inline __be32 src_v4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > end)
		return 0;
	return ip->saddr;
}

SEC("xdp")
int micro_ktime(struct xdp_md *ctx)
{
	sink(bpf_ktime_get_ns());
	return XDP_DROP;
}

SEC("xdp")
int micro_ktime_coarse(struct xdp_md *ctx)
{
	sink(bpf_ktime_get_coarse_ns());
	return XDP_DROP;
}

/* The sink alone: subtract from the two above. */
SEC("xdp")
int micro_sink_only(struct xdp_md *ctx)
{
	sink(1);
	return XDP_DROP;
}

SEC("xdp")
int micro_ct_miss(struct xdp_md *ctx)
{
	struct aeth_ct_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.src.v4 = src_v4(ctx);
	k.sport = bpf_htons(40000);
	k.svc_id = 1;
	return bpf_map_lookup_elem(&micro_ct, &k) ? XDP_PASS : XDP_DROP;
}

/* A table of our own, the design docs/bench.md sketches for the
 * connection table: the same entries in 128-byte buckets of four (an
 * array, no element header, no LRU lists; 32 bytes an entry against the
 * LRU hash's 96), each under its bpf_spin_lock, a full bucket giving up
 * its least recently seen entry. Timed beside micro_ct to know what it
 * would pay before building it. */
#define OWN_WAYS 4

struct own_slot {
	struct aeth_ct_key key;
	struct micro_entry e;		/* seen_s 0: the slot is free */
};

struct own_bucket {
	struct bpf_spin_lock lock;
	struct own_slot slot[OWN_WAYS];
	__u32 pad[3];
};

_Static_assert(sizeof(struct own_bucket) == 128, "own_bucket");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_DEFAULT_CT_ENTRIES / OWN_WAYS);
	__type(key, __u32);
	__type(value, struct own_bucket);
} micro_own SEC(".maps");

/* The connection table's own hash (seed 0) and key compare
 * (include/aether/ct_table.h), so these rows time the same code. */
static __always_inline __u32 own_bucket_of(const struct aeth_ct_key *k)
{
	return aeth_ct_bucket_of(k, 0, AETH_DEFAULT_CT_ENTRIES / OWN_WAYS);
}

static __always_inline void own_key(struct xdp_md *ctx, struct aeth_ct_key *k,
				    __u16 svc_id)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->src.v4 = src_v4(ctx);
	k->sport = bpf_htons(40000);
	k->svc_id = svc_id;
}

/* Under the bucket's lock: the backend of k among slot[0..ways), or -1. */
static __always_inline long own_find(const struct own_slot *slot, int ways,
				     const struct aeth_ct_key *k)
{
	for (int i = 0; i < ways; i++)
		if (slot[i].e.seen_s && aeth_ct_key_eq(&slot[i].key, k))
			return slot[i].e.backend_id;
	return -1;
}

/* Under the bucket's lock: k's entry written over its own slot, else a
 * free one (seen_s 0), else the least recently seen. */
static __always_inline void own_put(struct own_slot *slot, int ways,
				    const struct aeth_ct_key *k, __u32 be,
				    __u32 now_s)
{
	__u32 victim = 0, oldest = ~0u;

	for (int i = 0; i < ways; i++) {
		__u32 seen = slot[i].e.seen_s;

		if (seen && aeth_ct_key_eq(&slot[i].key, k)) {
			victim = i;
			break;
		}
		if (seen < oldest) {
			oldest = seen;
			victim = i;
		}
	}
	if (victim < (__u32)ways) {
		slot[victim].key = *k;
		slot[victim].e.backend_id = be;
		slot[victim].e.seen_s = now_s;
	}
}

static __always_inline long own_lookup(const struct aeth_ct_key *k)
{
	__u32 idx = own_bucket_of(k);
	struct own_bucket *b = bpf_map_lookup_elem(&micro_own, &idx);
	long be;

	if (!b)
		return -1;
	bpf_spin_lock(&b->lock);
	be = own_find(b->slot, OWN_WAYS, k);
	bpf_spin_unlock(&b->lock);
	return be;
}

static __always_inline void own_insert(const struct aeth_ct_key *k,
				       __u32 be, __u32 now_s)
{
	__u32 idx = own_bucket_of(k);
	struct own_bucket *b = bpf_map_lookup_elem(&micro_own, &idx);

	if (!b)
		return;
	bpf_spin_lock(&b->lock);
	own_put(b->slot, OWN_WAYS, k, be, now_s);
	bpf_spin_unlock(&b->lock);
}

/* The same with eight ways in 256-byte buckets (four cache lines, in a
 * row): a bucket fills far later (docs/bench.md), a miss reads more. */
#define OWN8_WAYS 8

struct own8_bucket {
	struct bpf_spin_lock lock;
	struct own_slot slot[OWN8_WAYS];
	__u32 pad[7];
};

_Static_assert(sizeof(struct own8_bucket) == 256, "own8_bucket");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AETH_DEFAULT_CT_ENTRIES / OWN8_WAYS);
	__type(key, __u32);
	__type(value, struct own8_bucket);
} micro_own8 SEC(".maps");

static __always_inline struct own8_bucket *
own8_bucket_of(const struct aeth_ct_key *k)
{
	__u32 idx = own_bucket_of(k) & (AETH_DEFAULT_CT_ENTRIES / OWN8_WAYS - 1);

	return bpf_map_lookup_elem(&micro_own8, &idx);
}

SEC("xdp")
int micro_ct_own8_insert(struct xdp_md *ctx)
{
	struct aeth_ct_key k;
	struct own8_bucket *b;

	own_key(ctx, &k, 3);
	b = own8_bucket_of(&k);
	if (!b)
		return XDP_ABORTED;
	bpf_spin_lock(&b->lock);
	own_put(b->slot, OWN8_WAYS, &k, 1, 7);
	bpf_spin_unlock(&b->lock);
	return XDP_DROP;
}

SEC("xdp")
int micro_ct_own8_miss_full(struct xdp_md *ctx)
{
	struct aeth_ct_key k;
	struct own8_bucket *b;
	long be;

	own_key(ctx, &k, 2);
	b = own8_bucket_of(&k);
	if (!b)
		return XDP_ABORTED;
	bpf_spin_lock(&b->lock);
	be = own_find(b->slot, OWN8_WAYS, &k);
	bpf_spin_unlock(&b->lock);
	return be >= 0 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int micro_ct_own_miss(struct xdp_md *ctx)
{
	struct aeth_ct_key k;

	own_key(ctx, &k, 1);
	return own_lookup(&k) >= 0 ? XDP_PASS : XDP_DROP;
}

/* New tuples written into the LRU hash (it evicts once full). */
SEC("xdp")
int micro_ct_insert(struct xdp_md *ctx)
{
	struct micro_entry e = { .backend_id = 1, .seen_s = 7 };
	struct aeth_ct_key k;

	own_key(ctx, &k, 3);
	return bpf_map_update_elem(&micro_ct, &k, &e, BPF_ANY) ? XDP_PASS :
								XDP_DROP;
}

SEC("xdp")
int micro_ct_own_insert(struct xdp_md *ctx)
{
	struct aeth_ct_key k;

	own_key(ctx, &k, 3);
	own_insert(&k, 1, 7);
	return XDP_DROP;
}

/* Misses once the inserts above have filled the tables: the buckets
 * walked hold entries. */
SEC("xdp")
int micro_ct_miss_full(struct xdp_md *ctx)
{
	struct aeth_ct_key k;

	own_key(ctx, &k, 2);
	return bpf_map_lookup_elem(&micro_ct, &k) ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int micro_ct_own_miss_full(struct xdp_md *ctx)
{
	struct aeth_ct_key k;

	own_key(ctx, &k, 2);
	return own_lookup(&k) >= 0 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int micro_hash_hit(struct xdp_md *ctx)
{
	struct aeth_vip_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.addr.v4 = bpf_htonl(0xcb00710a);	/* 203.0.113.10 */
	k.family = AETH_AF_INET;
	return bpf_map_lookup_elem(&micro_vip, &k) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int micro_lpm(struct xdp_md *ctx)
{
	struct aeth_acl_key k;
	__be32 *w = (__be32 *)k.addr;

	k.prefixlen = 128;
	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = src_v4(ctx);
	return bpf_map_lookup_elem(&micro_acl, &k) ? XDP_PASS : XDP_DROP;
}

/* One output route lookup, node 192.0.2.11 to backend 192.0.2.21. */
SEC("xdp")
int micro_fib(struct xdp_md *ctx)
{
	struct bpf_fib_lookup fib;
	int rc;

	__builtin_memset(&fib, 0, sizeof(fib));
	fib.family = AETH_AF_INET;
	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = 4;
	fib.ipv4_src = bpf_htonl(0xc000020b);
	fib.ipv4_dst = bpf_htonl(0xc0000215);
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	return rc == BPF_FIB_LKUP_RET_SUCCESS ? XDP_TX : XDP_ABORTED;
}

/* An atomic add, as the limiters count (uncontended here). */
SEC("xdp")
int micro_atomic(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *s = bpf_map_lookup_elem(&micro_sink, &zero);

	if (s)
		__sync_fetch_and_add(s, 1);
	return XDP_DROP;
}

/* One counter every CPU adds to, like a limiter's shared state. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} micro_shared SEC(".maps");

SEC("xdp")
int micro_shared_atomic(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *s = bpf_map_lookup_elem(&micro_shared, &zero);

	if (s)
		__sync_fetch_and_add(s, 1);
	return XDP_DROP;
}

/* Reading that counter only. */
SEC("xdp")
int micro_shared_read(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *s = bpf_map_lookup_elem(&micro_shared, &zero);

	return s && *(volatile __u64 *)s == 1 ? XDP_PASS : XDP_DROP;
}

/* What any IPIP balancer pays at least, here: the head moved 20 bytes
 * (the wrapper moves it back before the next run: that is counted too),
 * an Ethernet and an IPv4 header written, XDP_TX. */
SEC("xdp")
int micro_encap_floor(struct xdp_md *ctx)
{
	void *data, *end;
	__u64 *w;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	w = data;
	if ((void *)(w + 5) > end)
		return XDP_ABORTED;
	/* 40 bytes: the MACs, ethertype and the outer header's words */
	w[0] = 0x0200000000210200ull;
	w[1] = 0x0045000800000000ull;
	w[2] = 0x0000400000004000ull;
	w[3] = 0x0201a8c004000000ull;
	w[4] = 0x00000000150200c0ull;
	return XDP_TX;
}

/* Hits on many flows in two layouts, each at 1,048,576 entries: the
 * connection table's own (struct aeth_ct_bucket with its filter of 32 bits
 * a bucket, by the rules of include/aether/ct_table.h: the filter word,
 * the slot words' line, the key's line) and a denser one that
 * docs/bench.md measures before building it (IPv4 keys of 8 bytes beside
 * their words, four slots in a bucket of one cache line, a filter of 16
 * bits a bucket: the filter word, then the one line). Each looks its flow
 * up and records it on a miss (in a free slot, else over one chosen by
 * the hash), so a row cycling over its flows times hits once its first
 * round has recorded them, and a row of new flows times a miss and a
 * write each: XDP_TX for a hit, XDP_PASS for a miss. One CPU, no other
 * writer: no compare-and-swap. */
#define CT8_BUCKETS (AETH_DEFAULT_CT_ENTRIES / AETH_CT_WAYS)

/* The slot a miss writes, among ways slot words stride words apart from
 * w on: the first free one, else one chosen by the hash h. */
static __always_inline __u32 free_slot_or_hashed(const __u64 *w, __u32 stride,
						 __u32 ways, __u32 h)
{
	for (__u32 i = 0; i < ways; i++)
		if (!w[i * stride])
			return i;
	return h >> 8 & (ways - 1);
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CT8_BUCKETS);
	__type(key, __u32);
	__type(value, struct aeth_ct_bucket);
} micro_ct8 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CT8_BUCKETS / AETH_CT_FILTER_PER_WORD);
	__type(key, __u32);
	__type(value, __u64);
} micro_ct8_filter SEC(".maps");

SEC("xdp")
int micro_ct8_find_or_add(struct xdp_md *ctx)
{
	struct aeth_ct_bucket *b;
	struct aeth_ct_key k;
	__u32 h, idx, tag, word, slot;
	__u64 *fw;

	own_key(ctx, &k, 4);
	h = aeth_ct_hash(&k, 0);
	idx = aeth_ct_bucket_at(h, CT8_BUCKETS);
	tag = aeth_ct_tag(h);
	word = aeth_ct_filter_word_of(idx);
	fw = bpf_map_lookup_elem(&micro_ct8_filter, &word);
	b = bpf_map_lookup_elem(&micro_ct8, &idx);
	if (!fw || !b)
		return XDP_ABORTED;
	if (aeth_ct_filter_may_hold(*fw >> aeth_ct_filter_shift_of(idx), tag))
		for (int i = 0; i < AETH_CT_WAYS; i++) {
			__u64 w = b->slot[i].word;

			if (aeth_ct_word_seen(w) &&
			    aeth_ct_word_tag(w) == tag &&
			    aeth_ct_key_eq(&b->key[i], &k))
				return XDP_TX;
		}
	slot = free_slot_or_hashed(&b->slot[0].word, 1, AETH_CT_WAYS, h) &
	       (AETH_CT_WAYS - 1);
	b->key[slot] = k;
	b->slot[slot].word = aeth_ct_word(1, tag, 7, false);
	*fw |= aeth_ct_filter_bits(tag) << aeth_ct_filter_shift_of(idx);
	return XDP_PASS;
}

#define DENSE4_WAYS 4
#define DENSE4_BUCKETS (AETH_DEFAULT_CT_ENTRIES / DENSE4_WAYS)

struct dense4_bucket {
	struct {
		__u64 key;	/* IPv4 source, source port, service id */
		__u64 word;	/* seen_s << 32 | backend id; 0: free */
	} slot[DENSE4_WAYS];
};

_Static_assert(sizeof(struct dense4_bucket) == 64, "dense4_bucket");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DENSE4_BUCKETS);
	__type(key, __u32);
	__type(value, struct dense4_bucket);
} micro_dense4 SEC(".maps");

/* The same buckets each in one cache line. An array's values start where
 * the kernel's struct bpf_array ends (312 bytes in on this kernel, 56 past
 * a line), so each bucket of micro_dense4 straddles two lines; a mappable
 * array's start on a page of their own. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DENSE4_BUCKETS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct dense4_bucket);
} micro_dense4_lined SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DENSE4_BUCKETS / 4);
	__type(key, __u32);
	__type(value, __u64);
} micro_dense4_filter SEC(".maps");

/* A key's two bits among its bucket's 16, from the hash's top byte. */
static __always_inline __u64 dense4_filter_bits(__u32 h)
{
	return 1ull << (h >> 28) | 1ull << (h >> 24 & 15);
}

static __always_inline int dense4_find_or_add(struct xdp_md *ctx,
					      void *buckets)
{
	struct dense4_bucket *b;
	struct aeth_ct_key k;
	__u32 h, idx, word, shift, slot;
	__u64 *fw, bits, key;

	own_key(ctx, &k, 4);
	h = aeth_ct_hash(&k, 0);
	idx = h & (DENSE4_BUCKETS - 1);
	word = idx / 4;
	shift = idx % 4 * 16;
	fw = bpf_map_lookup_elem(&micro_dense4_filter, &word);
	b = bpf_map_lookup_elem(buckets, &idx);
	if (!fw || !b)
		return XDP_ABORTED;
	key = (__u64)k.src.v4 << 32 | k.port_svc;
	bits = dense4_filter_bits(h);
	if ((*fw >> shift & bits) == bits)
		for (int i = 0; i < DENSE4_WAYS; i++)
			if (b->slot[i].word && b->slot[i].key == key)
				return XDP_TX;
	slot = free_slot_or_hashed(&b->slot[0].word, 2, DENSE4_WAYS, h) &
	       (DENSE4_WAYS - 1);
	b->slot[slot].key = key;
	b->slot[slot].word = 7ull << 32 | 1;
	*fw |= bits << shift;
	return XDP_PASS;
}

SEC("xdp")
int micro_dense4_find_or_add(struct xdp_md *ctx)
{
	return dense4_find_or_add(ctx, &micro_dense4);
}

SEC("xdp")
int micro_dense4_lined_find_or_add(struct xdp_md *ctx)
{
	return dense4_find_or_add(ctx, &micro_dense4_lined);
}

char LICENSE[] SEC("license") = "GPL";
