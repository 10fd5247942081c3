/* SPDX-License-Identifier: GPL-2.0-only */
/* Service lookup: is an address a VIP, and which service owns
 * (vip, port, proto), with port 0 as the wildcard. */
#ifndef AETHER_BPF_SERVICE_H
#define AETHER_BPF_SERVICE_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "maps.h"

/* Telling a VIP from other traffic costs a hash lookup (25-40 ns here),
 * most of what non-service packets pay. Each CPU remembers addresses that
 * were not VIPs, stamped with the applied config generation (aeth_meta,
 * bumped by the agent after every apply, so a new VIP is seen at once) and
 * expiring after SVC_NEG_TTL jiffies (100 ms at HZ=250) for writers that do
 * not bump it. Only negative answers are kept: a VIP is always looked up.
 * Private to the loaded program (no aeth_ prefix: never pinned). */
#define SVC_NEG_SIZE 1024
#define SVC_NEG_TTL 25

struct svc_neg_entry {
	union aeth_addr addr;
	__u64 generation;
	__u64 expires;		/* jiffies */
	__u32 family;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SVC_NEG_SIZE);
	__type(key, __u32);
	__type(value, struct svc_neg_entry);
} lb_vip_neg SEC(".maps");

static __always_inline __u32 svc_neg_slot(const union aeth_addr *a)
{
	__u32 h = a->v6[0] ^ a->v6[1] ^ a->v6[2] ^ a->v6[3];

	return (h * 0x9e3779b1u) >> 22;	/* 10 bits: SVC_NEG_SIZE */
}

/* The config generation, read before any lookup it vouches for. */
static __always_inline __u64 svc_generation(void)
{
	__u32 zero = 0;
	struct aeth_meta *m = bpf_map_lookup_elem(&aeth_meta, &zero);

	return m ? *(volatile __u64 *)&m->generation : 0;
}

/* The entry for addr's slot, and whether it says "not a VIP". */
static __always_inline struct svc_neg_entry *
svc_neg_find(const union aeth_addr *a, __u8 family, __u64 gen, __u64 now,
	     bool *hit)
{
	__u32 slot = svc_neg_slot(a);
	struct svc_neg_entry *e = bpf_map_lookup_elem(&lb_vip_neg, &slot);

	*hit = e && e->generation == gen && now < e->expires &&
	       e->family == family &&
	       ((e->addr.v6[0] ^ a->v6[0]) | (e->addr.v6[1] ^ a->v6[1]) |
		(e->addr.v6[2] ^ a->v6[2]) | (e->addr.v6[3] ^ a->v6[3])) == 0;
	return e;
}

static __always_inline void svc_neg_store(struct svc_neg_entry *e,
					  const union aeth_addr *a,
					  __u8 family, __u64 gen, __u64 now)
{
	e->addr = *a;
	e->family = family;
	e->generation = gen;
	e->expires = now + SVC_NEG_TTL;
}

static __always_inline bool svc_is_vip(const union aeth_addr *addr, __u8 family)
{
	struct aeth_vip_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.addr = *addr;
	k.family = family;
	return bpf_map_lookup_elem(&aeth_vip, &k) != NULL;
}

/* The service of (vip, port, proto) exactly; port 0 looks up the
 * wildcard service. */
static __always_inline struct aeth_svc *
svc_lookup_port(const union aeth_addr *vip, __u8 family, __be16 port,
		__u8 proto)
{
	struct aeth_svc_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.vip = *vip;
	k.family = family;
	k.port = port;
	k.proto = proto;
	return bpf_map_lookup_elem(&aeth_svc, &k);
}

static __always_inline struct aeth_svc *
svc_lookup(const union aeth_addr *vip, __u8 family, __be16 port, __u8 proto)
{
	struct aeth_svc *svc = svc_lookup_port(vip, family, port, proto);

	if (svc)
		return svc;
	return svc_lookup_port(vip, family, 0, proto);
}

#endif /* AETHER_BPF_SERVICE_H */
