/* SPDX-License-Identifier: GPL-2.0-only */
/* Service lookup: is an address a VIP, and which service owns
 * (vip, port, proto), with port 0 as the wildcard. */
#ifndef AETHER_BPF_SERVICE_H
#define AETHER_BPF_SERVICE_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "aether/abi.h"
#include "aether/vip_filter.h"
#include "guard.h"
#include "maps.h"

/* Telling a VIP from other traffic costs a hash lookup (25-40 ns here),
 * most of what non-service packets pay. Each CPU remembers addresses that
 * were not VIPs, stamped with the tables' stamp (aeth_stamp, changed by
 * the agent after every write of the tables, so a new VIP is seen at once)
 * and expiring after SVC_NEG_TTL jiffies (100 ms at HZ=250) for writers
 * that do not change it. For a VIP the entry keeps a copy of the last
 * service found for it (most VIPs serve one port; other ports' services
 * are kept as copies, below), and it also says
 * which protocols are known to have no wildcard-port service, so a port without a service is dropped
 * after the exact lookup alone, without the aeth_vip and wildcard lookups
 * (whatever the port: a scan of random ports is cheap too). It also keeps,
 * per protocol, the last port such a drop found without a service: a flood
 * of one unconfigured port is dropped with no hash lookup at all. So an
 * exact service added on that port is seen, like a new VIP or wildcard,
 * once the stamp changes or the entry expires.
 * Private to the loaded program (no aeth_ prefix: never pinned). */
#define SVC_NEG_SIZE 1024
#define SVC_NEG_TTL 25

/* svc_neg_entry.vip */
#define SVC_NEG_NOT_VIP 0
#define SVC_NEG_VIP (1u << 0)
#define SVC_NEG_NO_WILD_TCP (1u << 1)	/* no (vip, 0, TCP) service */
#define SVC_NEG_NO_WILD_UDP (1u << 2)
#define SVC_NEG_UNKNOWN 0xffffffffu	/* no valid entry for the address */

/* What every per-CPU memory of the tables (here, bpf/acl_memory.h) carries:
 * the stamp it was made under (svc_stamp) and when it lapses (jiffies). */
struct svc_mem_tag {
	__u64 stamp;
	__u64 expires;
};

struct svc_neg_entry {
	union aeth_addr addr;
	struct svc_mem_tag tag;
	__u32 family;
	__u32 vip;		/* SVC_NEG_NOT_VIP or SVC_NEG_VIP | NO_WILD_* */
	/* a port of a VIP with NO_WILD_* for the protocol that has no exact
	 * service either ([0] TCP, [1] UDP; 0: none, and port 0 is the
	 * wildcard key, known to miss then) */
	__be16 no_port[2];
	/* a VIP's last service found (svc_find_port), a copy like those of
	 * lb_svc_copy made under this entry's tag: for the service of
	 * (addr, svc_port, svc_proto) when has_svc. A VIP's packets then need
	 * no second memory (most VIPs serve one port) */
	__be16 svc_port;
	__u8 svc_proto;
	__u8 has_svc;
	struct aeth_svc svc;
	/* with has_svc and the service's ACL on: the directory of its
	 * list's compiled form, from aeth_acl_rngidx[svc.acl_slot] as it was
	 * when the copy was made. The agent writes a slot only while no
	 * service names it and changes the stamp after the flip, so the
	 * index entry cannot change under this entry's tag. */
	struct guard_acl_dir acl_dir;
};

/* Not named like the previous layouts' maps (lb_vip_neg, lb_vip_known,
 * lb_vip_mem), which bench/cost --baseline shares by name with an older
 * build. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SVC_NEG_SIZE);
	__type(key, __u32);
	__type(value, struct svc_neg_entry);
} lb_vip_memory SEC(".maps");

/* What a packet learnt from the cache, for the stores after its lookups,
 * and the stamp every per-CPU memory of this file is checked against. */
struct svc_neg_ref {
	struct svc_neg_entry *e;
	__u64 stamp, now;	/* svc_stamp(); now: jiffies, read once the
				 * VIP filter has not passed the packet */
	__u32 kind;		/* SVC_NEG_* of the address, or SVC_NEG_UNKNOWN */
};

/* A memory tagged under r's stamp, and not lapsed. */
static __always_inline bool svc_mem_holds(const struct svc_mem_tag *t,
					  const struct svc_neg_ref *r)
{
	return t->stamp == r->stamp && r->now < t->expires;
}

static __always_inline void svc_mem_tag(struct svc_mem_tag *t,
					const struct svc_neg_ref *r)
{
	t->stamp = r->stamp;
	t->expires = r->now + SVC_NEG_TTL;
}

static __always_inline bool svc_addr_equal(const union aeth_addr *a,
					   const union aeth_addr *b)
{
	return ((a->v6[0] ^ b->v6[0]) | (a->v6[1] ^ b->v6[1]) |
		(a->v6[2] ^ b->v6[2]) | (a->v6[3] ^ b->v6[3])) == 0;
}

/* The VIP filter (include/aether/vip_filter.h): a global of the loaded
 * program, in its .bss, which the agent that loaded it writes through the
 * skeleton's mapping (agent/daemon/vip_filter.c). Not a pinned map: it is
 * derived from aeth_vip alone, a new program starts with it all clear
 * (every packet the long way) until its agent has written it, and a
 * global is read without a lookup's instructions, which every service
 * packet pays for too. */
__u64 lb_vip_filter[AETH_VIP_FILTER_WORDS];
/* The tables' stamp (aeth_stamp) that lb_vip_filter holds under: the
 * agent that loaded this program writes it after every stamp it writes.
 * A program that no agent writes any more (one left on a NIC that a new
 * agent could not swap for its own) keeps an old filter, and must not
 * pass a VIP created since: its filter lapses with the next stamp. */
__u64 lb_vip_filter_stamp;

/* True when the VIP filter, good under r's stamp, says that no VIP hashes
 * to bucket (an address's aeth_vip_filter_bucket): the address is no VIP,
 * and nothing else need be asked. False says nothing. */
static __always_inline bool svc_filter_not_vip(const struct svc_neg_ref *r,
					       __u32 bucket)
{
	return r->stamp == lb_vip_filter_stamp &&
	       (lb_vip_filter[aeth_vip_filter_word(bucket)] &
		aeth_vip_filter_mask(bucket));
}

/* The tables' stamp (aeth_stamp, bpf/maps.h), read before any lookup it
 * vouches for (the time, r->now, is the caller's to read: a packet that
 * the VIP filter passes needs none). Every writer of the tables in
 * aether-lb changes it (the agent with every generation too); a writer
 * that does not is seen once the memories lapse. The config generation
 * (aeth_meta) is only the answer when the stamp cannot be read (never, for
 * an array of one entry): one array read less per packet, while the
 * reference keeps aeth_meta among the program's maps, by which an agent
 * tells its own program on a NIC (agent/daemon/attach.c), older agents
 * included. */
static __always_inline void svc_stamp(struct svc_neg_ref *r)
{
	__u32 zero = 0;
	__u64 *st = bpf_map_lookup_elem(&aeth_stamp, &zero);
	struct aeth_meta *m;

	if (st) {
		r->stamp = *(volatile __u64 *)st;
	} else {
		m = bpf_map_lookup_elem(&aeth_meta, &zero);
		r->stamp = m ? *(volatile __u64 *)&m->generation << 40 : 0;
	}
}

/* The VIP memory's slot of an address is its VIP filter word: one hash
 * for both. */
_Static_assert(SVC_NEG_SIZE == AETH_VIP_FILTER_WORDS,
	       "a VIP memory slot per word of the VIP filter");

/* The entry for a's slot (bucket: aeth_vip_filter_bucket(a)), and in
 * r->kind what it says of a. */
static __always_inline void svc_neg_find(struct svc_neg_ref *r, __u32 bucket,
					 const union aeth_addr *a, __u8 family)
{
	__u32 slot = aeth_vip_filter_word(bucket);
	struct svc_neg_entry *e = bpf_map_lookup_elem(&lb_vip_memory, &slot);

	r->e = e;
	r->kind = SVC_NEG_UNKNOWN;
	if (e && svc_mem_holds(&e->tag, r) && e->family == family &&
	    svc_addr_equal(&e->addr, a))
		r->kind = e->vip;
}

static __always_inline void svc_neg_store(const struct svc_neg_ref *r,
					  const union aeth_addr *a,
					  __u8 family, __u32 kind)
{
	struct svc_neg_entry *e = r->e;

	if (!e)
		return;
	e->addr = *a;
	e->family = family;
	svc_mem_tag(&e->tag, r);
	e->vip = kind;
	e->no_port[0] = 0;
	e->no_port[1] = 0;
	e->has_svc = 0;
}

static __always_inline __u32 svc_neg_no_wild(__u8 proto)
{
	return proto == IPPROTO_TCP ? SVC_NEG_NO_WILD_TCP : SVC_NEG_NO_WILD_UDP;
}

/* True when the address is a VIP known to have no wildcard-port service
 * for proto (TCP or UDP). */
static __always_inline bool svc_neg_no_wildcard(const struct svc_neg_ref *r,
						__u8 proto)
{
	return r->kind != SVC_NEG_UNKNOWN && (r->kind & SVC_NEG_VIP) &&
	       (r->kind & svc_neg_no_wild(proto));
}

/* True when r's VIP is known to have neither a wildcard-port service for
 * proto nor an exact one for port (the last port found without one). */
static __always_inline bool svc_neg_no_port(const struct svc_neg_ref *r,
					    __u8 proto, __be16 port)
{
	return svc_neg_no_wildcard(r, proto) && r->e &&
	       r->e->no_port[proto == IPPROTO_UDP] == port;
}

/* Remember that r's VIP (known to have no wildcard service for proto) has
 * no exact service for port either. */
static __always_inline void svc_neg_note_no_port(const struct svc_neg_ref *r,
						 __u8 proto, __be16 port)
{
	if (r->e)
		r->e->no_port[proto == IPPROTO_UDP] = port;
}

/* Remember that the VIP a has no wildcard-port service for proto. An entry
 * already valid for a keeps its expiry (what it knew was learnt then). */
static __always_inline void svc_neg_note_no_wildcard(struct svc_neg_ref *r,
						     const union aeth_addr *a,
						     __u8 family, __u8 proto)
{
	if (r->e && r->kind != SVC_NEG_UNKNOWN && (r->kind & SVC_NEG_VIP))
		r->e->vip = r->kind | svc_neg_no_wild(proto);
	else
		svc_neg_store(r, a, family, SVC_NEG_VIP | svc_neg_no_wild(proto));
}

static __always_inline bool svc_is_vip(const union aeth_addr *addr, __u8 family)
{
	struct aeth_vip_key k;

	__builtin_memset(&k, 0, sizeof(k));
	k.addr = *addr;
	k.family = family;
	return bpf_map_lookup_elem(&aeth_vip, &k) != NULL;
}

static __always_inline void svc_key(struct aeth_svc_key *k,
				    const union aeth_addr *vip, __u8 family,
				    __be16 port, __u8 proto)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->vip = *vip;
	k->family = family;
	k->port = port;
	k->proto = proto;
}

/* The service of (vip, port, proto) exactly; port 0 looks up the
 * wildcard service. */
static __always_inline struct aeth_svc *
svc_lookup_port(const union aeth_addr *vip, __u8 family, __be16 port,
		__u8 proto)
{
	struct aeth_svc_key k;

	svc_key(&k, vip, family, port, proto);
	return bpf_map_lookup_elem(&aeth_svc, &k);
}

/* Each CPU's copies of the service entries it used last. The aeth_svc
 * lookup (a hash of the 20-byte key and a bucket walk, 35-50 ns) was the
 * largest cost every service packet shared; a copy is found by one
 * inlined array index and five compares. A copy is good while aeth_stamp
 * holds the stamp it was made under (the agent changes it after
 * publishing service entries and again when the apply is committed or
 * rolled back, before any slot or backend a copy may name is reused), and
 * for SVC_NEG_TTL jiffies at most, so a writer that changes aeth_svc
 * without aeth_stamp is seen within 100 ms. Each copy is a snapshot of
 * one version of the entry, as the hash map's element was: its ACL and
 * Maglev slots belong together. Only hits are kept; a miss is the VIP
 * memory's business. */
#define SVC_COPY_SIZE 1024

struct svc_copy {
	struct aeth_svc_key key;
	__u32 pad;
	struct svc_mem_tag tag;
	struct aeth_svc svc;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SVC_COPY_SIZE);
	__type(key, __u32);
	__type(value, struct svc_copy);
} lb_svc_copy SEC(".maps");

static __always_inline __u32 svc_copy_slot(const struct aeth_svc_key *k)
{
	__u32 h = k->vip.v6[0] ^ k->vip.v6[1] ^ k->vip.v6[2] ^ k->vip.v6[3] ^
		  ((__u32)k->port << 8 | k->proto);

	return (h * 0x9e3779b1u) >> 22;	/* 10 bits: SVC_COPY_SIZE */
}

static __always_inline bool svc_key_equal(const struct aeth_svc_key *a,
					  const struct aeth_svc_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) |
		(x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

/* The directory of svc's compiled list into *g, from its index entry. */
static __always_inline void svc_acl_dir_read(const struct aeth_svc *svc,
					     struct guard_acl_dir *g)
{
	__u32 slot = svc->acl_slot;

	g->usable = 0;
	if (svc->flags & AETH_SVC_F_ACL)
		guard_acl_dir_of(bpf_map_lookup_elem(&aeth_acl_rngidx, &slot),
				 g);
}

/* The directory of svc's compiled list: the VIP memory's entry's when
 * svc is its copy (what svc_find_port returns), read once with the copy;
 * else read now into *spare. */
static __always_inline const struct guard_acl_dir *
svc_acl_dir(const struct svc_neg_ref *r, const struct aeth_svc *svc,
	    struct guard_acl_dir *spare)
{
	if (r->e && svc == &r->e->svc)
		return &r->e->acl_dir;
	svc_acl_dir_read(svc, spare);
	return spare;
}

/* Remember svc as the VIP's last service found, (port, proto)'s, in the
 * VIP memory's entry e: into an entry already good for the VIP (r->kind;
 * the copy is made under its stamp and lapses with it), else into a new
 * one that knows the address is a VIP and nothing more. */
static __always_inline void svc_neg_note_service(struct svc_neg_ref *r,
						 struct svc_neg_entry *e,
						 const union aeth_addr *vip,
						 __u8 family, __be16 port,
						 __u8 proto,
						 const struct aeth_svc *svc)
{
	/* r->kind is left as it was: a packet whose service was found asks
	 * nothing more of it */
	if (r->kind == SVC_NEG_UNKNOWN || !(r->kind & SVC_NEG_VIP))
		svc_neg_store(r, vip, family, SVC_NEG_VIP);
	e->svc = *svc;
	e->svc_port = port;
	e->svc_proto = proto;
	e->has_svc = 1;
	svc_acl_dir_read(&e->svc, &e->acl_dir);
}

/* svc_lookup_port through this CPU's memories: the VIP memory's entry of
 * the packet's address (r, which holds the stamp), then the copies. What
 * is found is answered from the VIP memory's entry (one kind of pointer for
 * the verifier to follow, whichever memory knew it). */
static __always_inline struct aeth_svc *
svc_find_port(struct svc_neg_ref *r, const union aeth_addr *vip,
	      __u8 family, __be16 port, __u8 proto)
{
	struct svc_neg_entry *e = r->e;
	struct aeth_svc_key k;
	struct aeth_svc *svc;
	struct svc_copy *c;
	__u32 slot;

	svc_key(&k, vip, family, port, proto);
	if (!e)		/* never: the slot is in range */
		return bpf_map_lookup_elem(&aeth_svc, &k);
	if (r->kind != SVC_NEG_UNKNOWN && e->has_svc &&
	    e->svc_port == port && e->svc_proto == proto)
		return &e->svc;
	slot = svc_copy_slot(&k);
	c = bpf_map_lookup_elem(&lb_svc_copy, &slot);
	if (c && svc_mem_holds(&c->tag, r) && svc_key_equal(&c->key, &k)) {
		svc_neg_note_service(r, e, vip, family, port, proto, &c->svc);
		return &e->svc;
	}
	svc = bpf_map_lookup_elem(&aeth_svc, &k);
	if (!svc)
		return NULL;
	if (c) {
		c->key = k;
		c->svc = *svc;
		svc_mem_tag(&c->tag, r);
	}
	svc_neg_note_service(r, e, vip, family, port, proto, svc);
	return &e->svc;
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
