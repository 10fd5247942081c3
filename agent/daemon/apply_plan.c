/* Plan phase of an apply: the document against the applied state -> a
 * plan (apply_internal.h). Every default is resolved, every id and slot
 * chosen and every entry of the new state decided here; no map is read or
 * written. The only phase that reads struct aeth_config. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "aether/acl_key.h"
#include "apply.h"
#include "apply_internal.h"

/* ---- entries of the new state ------------------------------------------ */

static void svc_key_of(const struct aeth_cfg_service *s, struct aeth_svc_key *k)
{
	memset(k, 0, sizeof(*k));
	k->vip = s->vip.addr;
	k->port = htons(s->port);
	k->proto = s->proto;
	k->family = s->vip.family;
}

static bool be_is_addr(const struct aeth_backend *b, const struct aeth_ip *ip)
{
	return b->family == ip->family &&
	       memcmp(b->addr.bytes, ip->addr.bytes, 16) == 0;
}

static int cmp_mg_id(const void *x, const void *y)
{
	const struct aeth_maglev_backend *p = x, *q = y;

	return p->id < q->id ? -1 : p->id > q->id;
}

static bool mg_equal(const struct aeth_maglev_backend *x, size_t nx,
		     const struct aeth_maglev_backend *y, size_t ny)
{
	if (nx != ny)
		return false;
	for (size_t i = 0; i < nx; i++)
		if (x[i].id != y[i].id || x[i].weight != y[i].weight ||
		    !aeth_ip_equal(&x[i].ip, &y[i].ip))
			return false;
	return true;
}

static bool cidrs_equal(const struct aeth_cfg_cidr *x, size_t nx,
			const struct aeth_cfg_cidr *y, size_t ny)
{
	if (nx != ny)
		return false;
	for (size_t i = 0; i < nx; i++)
		if (x[i].prefixlen != y[i].prefixlen ||
		    !aeth_ip_equal(&x[i].ip, &y[i].ip))
			return false;
	return true;
}

/* rate_limit with its defaults in place: every field as the maps take it,
 * all rates 0 when the object is absent. */
static void rate_limit_resolved(const struct aeth_cfg_rate_limit *rl,
				struct aeth_cfg_rate_limit *r)
{
	memset(r, 0, sizeof(*r));
	r->enabled = rl->enabled;
	r->prefix_v4 = rl->enabled ? rl->prefix_v4 : 32;
	r->prefix_v6 = rl->enabled ? rl->prefix_v6 : 64;
	if (!rl->enabled)
		return;
	r->per_source = rl->per_source;
	r->burst = rl->burst ? rl->burst : rl->per_source;
	r->per_service = rl->per_service;
}

/* GCRA parameters. The per-service cap tolerates a burst of a tenth of a
 * second's worth of its rate (at least one connection) on top of the
 * steady rate, so a brief spike of legitimate clients is not cut. */
static void rate_params(const struct aeth_cfg_rate_limit *r, struct aeth_svc *v)
{
	v->src_prefix_v4 = r->prefix_v4;
	v->src_prefix_v6 = r->prefix_v6;
	if (r->per_source) {
		v->src_interval_ns = NSEC_PER_SEC / r->per_source;
		v->src_tolerance_ns = ((uint64_t)r->burst - 1) *
				      v->src_interval_ns;
	}
	if (r->per_service) {
		uint64_t k = r->per_service / 10;

		if (k < 1)
			k = 1;
		v->svc_interval_ns = NSEC_PER_SEC / r->per_service;
		v->svc_tolerance_ns = k * v->svc_interval_ns;
	}
}

static void svcinfo_of(const struct aeth_cfg_service *s,
		       const struct aeth_cfg_rate_limit *r,
		       uint32_t table_size, struct aeth_svcinfo *i)
{
	memset(i, 0, sizeof(*i));
	snprintf(i->name, sizeof(i->name), "%s", s->name);
	i->vip = s->vip.addr;
	i->family = s->vip.family;
	i->proto = s->proto;
	i->port = htons(s->port);
	i->flags = AETH_SVCINFO_F_IN_USE;
	i->table_size = table_size;
	i->acl_enabled = s->acl_enabled;
	i->acl_cidrs = s->n_cidrs;
	i->n_backends = s->n_backends;
	i->rl_per_source = r->per_source;
	i->rl_burst = r->burst;
	i->rl_per_service = r->per_service;
	i->rl_prefix_v4 = r->prefix_v4;
	i->rl_prefix_v6 = r->prefix_v6;
}

static void node_of(const struct aeth_config *cfg, struct aeth_node *n)
{
	memset(n, 0, sizeof(*n));
	if (cfg->node_v4.family == AETH_AF_INET) {
		n->v4 = cfg->node_v4.addr.v4;
		n->flags |= AETH_NODE_F_V4;
	}
	if (cfg->node_v6.family == AETH_AF_INET6) {
		memcpy(n->v6, cfg->node_v6.addr.v6, sizeof(n->v6));
		n->flags |= AETH_NODE_F_V6;
	}
	n->mtu = cfg->mtu;
	n->ct_insert_rate = cfg->ct_insert_rate;
	n->udp_timeout_s = cfg->udp_timeout_s;
	n->icmp_rate = cfg->icmp_rate;
	memcpy(n->hash_seed, cfg->seed, sizeof(n->hash_seed));
}

void apply_trie_key(const struct aeth_cfg_cidr *c, struct aeth_acl_key *k)
{
	memset(k, 0, sizeof(*k));
	aeth_acl_prefix_key(k, c->ip.family, &c->ip.addr, c->prefixlen);
}

/* ---- VIP reference counts ---------------------------------------------- */

int apply_vip_counts(const struct aeth_state *st, struct vip_count **out,
		     size_t *n_out)
{
	struct vip_count *v = NULL;
	size_t n = 0;

	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		const struct aeth_applied_svc *s = &st->svcs[id];
		struct aeth_vip_key k;
		size_t j;

		if (!s->in_use)
			continue;
		memset(&k, 0, sizeof(k));
		k.addr = s->key.vip;
		k.family = s->key.family;
		for (j = 0; j < n; j++)
			if (memcmp(&v[j].key, &k, sizeof(k)) == 0)
				break;
		if (j == n) {
			struct vip_count *p = realloc(v, (n + 1) * sizeof(*v));

			if (!p) {
				free(v);
				return -ENOMEM;
			}
			v = p;
			v[n].key = k;
			v[n].count = 0;
			n++;
		}
		v[j].count++;
	}
	*out = v;
	*n_out = n;
	return 0;
}

uint32_t apply_vip_lookup(const struct vip_count *v, size_t n,
			  const struct aeth_vip_key *k)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&v[i].key, k, sizeof(*k)) == 0)
			return v[i].count;
	return 0;
}

/* ---- id allocation ----------------------------------------------------- */

/* Old services by key: open addressing over twice the id space, so a
 * document of thousands of services is matched in linear time. */
#define SVC_INDEX_SIZE (2 * AETH_MAX_SERVICES)

struct svc_index {
	int32_t ids[SVC_INDEX_SIZE];	/* -1: empty */
};

static uint32_t svc_key_hash(const struct aeth_svc_key *k)
{
	const uint8_t *p = (const uint8_t *)k;
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (size_t i = 0; i < sizeof(*k); i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void svc_index_build(struct svc_index *x, const struct aeth_state *st)
{
	memset(x->ids, 0xff, sizeof(x->ids));
	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		uint32_t h;

		if (!st->svcs[id].in_use)
			continue;
		h = svc_key_hash(&st->svcs[id].key) % SVC_INDEX_SIZE;
		while (x->ids[h] >= 0)
			h = (h + 1) % SVC_INDEX_SIZE;
		x->ids[h] = id;
	}
}

static int64_t svc_index_find(const struct svc_index *x,
			      const struct aeth_state *st,
			      const struct aeth_svc_key *k)
{
	uint32_t h = svc_key_hash(k) % SVC_INDEX_SIZE;

	for (; x->ids[h] >= 0; h = (h + 1) % SVC_INDEX_SIZE)
		if (memcmp(&st->svcs[x->ids[h]].key, k, sizeof(*k)) == 0)
			return x->ids[h];
	return -1;
}

/* Old backends by (service, address), the same way. */
#define BE_INDEX_SIZE (2 * AETH_MAX_BACKENDS)

static uint32_t be_key_hash(uint32_t svc_id, const union aeth_addr *addr,
			    uint8_t family)
{
	uint32_t h = 2166136261u ^ family;

	h = (h ^ svc_id) * 16777619u;
	for (size_t i = 0; i < sizeof(addr->bytes); i++)
		h = (h ^ addr->bytes[i]) * 16777619u;
	return h % BE_INDEX_SIZE;
}

static int32_t *be_index_build(const struct aeth_state *st)
{
	int32_t *x = malloc(BE_INDEX_SIZE * sizeof(*x));

	if (!x)
		return NULL;
	memset(x, 0xff, BE_INDEX_SIZE * sizeof(*x));
	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		const struct aeth_backend *b = &st->backends[id];
		uint32_t h;

		if (!(b->flags & AETH_BE_F_IN_USE))
			continue;
		h = be_key_hash(b->svc_id, &b->addr, b->family);
		while (x[h] >= 0)
			h = (h + 1) % BE_INDEX_SIZE;
		x[h] = id;
	}
	return x;
}

static int64_t be_index_find(const int32_t *x, const struct aeth_state *st,
			     uint32_t svc_id, const struct aeth_ip *ip)
{
	uint32_t h = be_key_hash(svc_id, &ip->addr, ip->family);

	for (; x[h] >= 0; h = (h + 1) % BE_INDEX_SIZE) {
		const struct aeth_backend *b = &st->backends[x[h]];

		if (b->svc_id == svc_id && be_is_addr(b, ip))
			return x[h];
	}
	return -1;
}

/* What planning needs besides the document: the applied state, the new
 * one being decided, and the indexes into the old. */
struct plan_ctx {
	struct aeth_agent *a;
	const struct aeth_state *old;
	struct aeth_state *ns;
	struct apply_plan *p;
	struct aeth_error *err;
	struct svc_index idx;
	int32_t *bidx;
	uint8_t *be_taken;	/* [AETH_MAX_BACKENDS]: taken by this apply */
	bool seed_changed;
};

/* Find a free id from *cursor on: unused before this apply and not yet taken
 * by it. Returns the id or -ENOSPC. */
static int64_t take_id(uint32_t *cursor, uint32_t max,
		       bool (*busy)(const struct plan_ctx *pc, uint32_t id),
		       const struct plan_ctx *pc)
{
	for (uint32_t n = 0; n < max; n++) {
		uint32_t id = (*cursor + n) % max;

		if (!busy(pc, id)) {
			*cursor = (id + 1) % max;
			return id;
		}
	}
	return -ENOSPC;
}

static bool svc_busy(const struct plan_ctx *pc, uint32_t id)
{
	return pc->old->svcs[id].in_use || pc->ns->svcs[id].in_use;
}

static bool be_busy(const struct plan_ctx *pc, uint32_t id)
{
	return (pc->old->backends[id].flags & AETH_BE_F_IN_USE) ||
	       pc->be_taken[id];
}

/* The document's services keep their ids; new ones take free ids. */
static int plan_svc_ids(struct plan_ctx *pc, const struct aeth_config *cfg)
{
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct aeth_svc_key key;
		int64_t id;
		char path[32];

		svc_key_of(&cfg->services[i], &key);
		id = svc_index_find(&pc->idx, pc->old, &key);
		if (id < 0)
			id = take_id(&pc->ns->svc_cursor, AETH_MAX_SERVICES,
				     svc_busy, pc);
		if (id < 0) {
			snprintf(path, sizeof(path), "services[%zu]", i);
			return aeth_fail(pc->err, -ENOSPC, path,
					 "no free service id (%u in all, the "
					 "running document's included)",
					 AETH_MAX_SERVICES);
		}
		pc->p->svcs[i].id = id;
		pc->ns->svcs[id].in_use = true;
		pc->ns->svcs[id].key = key;
	}
	return 0;
}

/* Backend j of service i: its id (kept, or a free one), its entry, and
 * its place in the Maglev set when it is eligible. */
static int plan_backend(struct plan_ctx *pc, const struct aeth_cfg_service *s,
			size_t i, size_t j)
{
	const struct aeth_cfg_backend *b = &s->backends[j];
	uint32_t svc_id = pc->p->svcs[i].id;
	struct aeth_applied_svc *n = &pc->ns->svcs[svc_id];
	struct aeth_backend *e;
	int64_t id = -1;
	bool up = true;
	char path[64];

	if (pc->old->svcs[svc_id].in_use)
		id = be_index_find(pc->bidx, pc->old, svc_id, &b->ip);
	if (id < 0)
		id = take_id(&pc->ns->be_cursor, AETH_MAX_BACKENDS, be_busy,
			     pc);
	if (id < 0) {
		snprintf(path, sizeof(path), "services[%zu].backends[%zu]", i,
			 j);
		return aeth_fail(pc->err, -ENOSPC, path,
				 "no free backend id (%u in all, the running "
				 "document's included)", AETH_MAX_BACKENDS);
	}
	pc->be_taken[id] = 1;
	n->be_ids[n->n_be++] = id;
	if (pc->a->backend_up)
		up = pc->a->backend_up(pc->a->backend_up_arg, s->name, &b->ip);
	e = &pc->ns->backends[id];
	memset(e, 0, sizeof(*e));
	e->addr = b->ip.addr;
	e->family = b->ip.family;
	e->weight = b->weight;
	e->svc_id = svc_id;
	e->flags = AETH_BE_F_IN_USE;
	if (b->draining)
		e->flags |= AETH_BE_F_DRAINING;
	if (!up)
		e->flags |= AETH_BE_F_UNHEALTHY;
	if (b->draining || !up || !b->weight)
		return 0;
	n->mg[n->n_mg].ip = b->ip;
	n->mg[n->n_mg].id = id;
	n->mg[n->n_mg].weight = b->weight;
	n->n_mg++;
	return 0;
}

/* The service's aeth_svc value and whether its table and trie are
 * rebuilt: then into the slot it does not use now, which the value names
 * from here on (published only once the new table is in it). */
static void plan_svc_value(struct plan_ctx *pc,
			   const struct aeth_cfg_service *s,
			   struct svc_plan *sp, uint32_t table_size)
{
	struct aeth_applied_svc *n = &pc->ns->svcs[sp->id];
	const struct aeth_applied_svc *o = &pc->old->svcs[sp->id];
	uint32_t base = sp->id * AETH_SLOTS_PER_SERVICE;
	struct aeth_cfg_rate_limit rl;

	rate_limit_resolved(&s->rate_limit, &rl);
	memset(&n->value, 0, sizeof(n->value));
	n->value.id = sp->id;
	if (s->acl_enabled)
		n->value.flags |= AETH_SVC_F_ACL;
	n->value.table_size = n->n_mg ? table_size : 0;
	n->value.maglev_slot = o->in_use ? o->value.maglev_slot : base;
	n->value.acl_slot = o->in_use ? o->value.acl_slot : base;
	rate_params(&rl, &n->value);
	svcinfo_of(s, &rl, table_size, &n->info);

	sp->rebuild_mg = n->n_mg &&
		(!o->in_use || !o->built || pc->seed_changed ||
		 o->value.table_size != table_size ||
		 !mg_equal(o->mg, o->n_mg, n->mg, n->n_mg));
	sp->rebuild_acl = s->acl_enabled &&
		(!o->in_use || !o->built || !o->acl_enabled ||
		 !cidrs_equal(o->cidrs, o->n_cidrs, n->cidrs, n->n_cidrs));
	/* the other of the service's two slots */
	if (sp->rebuild_mg)
		n->value.maglev_slot = n->value.maglev_slot == base ? base + 1 :
				       base;
	if (sp->rebuild_acl)
		n->value.acl_slot = n->value.acl_slot == base ? base + 1 : base;
}

/* Everything of service i after its id: backends, tables' inputs, value. */
static int plan_svc(struct plan_ctx *pc, const struct aeth_config *cfg,
		    size_t i)
{
	const struct aeth_cfg_service *s = &cfg->services[i];
	struct aeth_applied_svc *n = &pc->ns->svcs[pc->p->svcs[i].id];
	uint32_t table_size = s->table_size ? s->table_size : cfg->table_size;
	int err;

	n->be_ids = calloc(s->n_backends ? s->n_backends : 1,
			   sizeof(*n->be_ids));
	n->mg = calloc(s->n_backends ? s->n_backends : 1, sizeof(*n->mg));
	n->cidrs = calloc(s->n_cidrs ? s->n_cidrs : 1, sizeof(*n->cidrs));
	if (!n->be_ids || !n->mg || !n->cidrs)
		return -ENOMEM;
	for (size_t j = 0; j < s->n_backends; j++) {
		err = plan_backend(pc, s, i, j);
		if (err)
			return err;
	}
	qsort(n->mg, n->n_mg, sizeof(*n->mg), cmp_mg_id);
	n->acl_enabled = s->acl_enabled;
	n->n_cidrs = s->n_cidrs;
	if (s->n_cidrs)
		memcpy(n->cidrs, s->cidrs, s->n_cidrs * sizeof(*n->cidrs));
	n->built = true;
	plan_svc_value(pc, s, &pc->p->svcs[i], table_size);
	return 0;
}

/* Node settings, cursors, and every backend as removed: the document
 * re-adds its own. */
static void plan_node(struct plan_ctx *pc, const struct aeth_config *cfg)
{
	struct aeth_state *ns = pc->ns;

	ns->svc_cursor = pc->old->svc_cursor;
	ns->be_cursor = pc->old->be_cursor;
	node_of(cfg, &ns->node);
	ns->node_known = true;
	memcpy(ns->backends, pc->old->backends,
	       AETH_MAX_BACKENDS * sizeof(*ns->backends));
	for (uint32_t i = 0; i < AETH_MAX_BACKENDS; i++)
		ns->backends[i].flags = 0;
}

/* The services the document drops keep their aeth_svcinfo entry, cleared:
 * its counters stay readable under the name they were counted for. */
static void plan_removals(struct plan_ctx *pc)
{
	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		const struct aeth_applied_svc *o = &pc->old->svcs[id];

		if (!o->in_use || pc->ns->svcs[id].in_use)
			continue;
		pc->ns->svcs[id].info = o->info;
		pc->ns->svcs[id].info.flags &= ~AETH_SVCINFO_F_IN_USE;
	}
}

static int plan_decap(struct apply_plan *p, const struct aeth_config *cfg)
{
	p->decap = calloc(cfg->n_decap_sources ? cfg->n_decap_sources : 1,
			  sizeof(*p->decap));
	if (!p->decap)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_decap_sources; i++) {
		apply_trie_key(&cfg->decap_sources[i], &p->decap[i].key);
		p->decap[i].family = cfg->decap_sources[i].ip.family;
	}
	p->n_decap = cfg->n_decap_sources;
	return 0;
}

static int plan_vips(struct apply_plan *p, const struct aeth_state *old,
		     struct aeth_error *err)
{
	int r = apply_vip_counts(old, &p->old_vips, &p->n_old_vips);

	if (!r)
		r = apply_vip_counts(p->ns, &p->new_vips, &p->n_new_vips);
	if (r)
		return aeth_fail(err, r, NULL, "counting VIPs: %s",
				 strerror(-r));
	return 0;
}

static int plan_ctx_init(struct plan_ctx *pc, struct aeth_agent *a,
			 const struct aeth_config *cfg, struct apply_plan *p,
			 struct aeth_error *err)
{
	pc->a = a;
	pc->old = a->state;
	pc->ns = p->ns;
	pc->p = p;
	pc->err = err;
	pc->seed_changed = !a->state->node_known ||
			   memcmp(a->state->node.hash_seed, cfg->seed, 16) != 0;
	pc->be_taken = calloc(AETH_MAX_BACKENDS, 1);
	pc->bidx = be_index_build(a->state);
	if (!pc->be_taken || !pc->bidx)
		return -ENOMEM;
	svc_index_build(&pc->idx, a->state);
	return 0;
}

int apply_plan_build(struct aeth_agent *a, const struct aeth_config *cfg,
		     struct apply_plan *p, struct aeth_error *err)
{
	struct plan_ctx *pc;
	int r;

	memset(p, 0, sizeof(*p));
	p->ns = apply_state_alloc();
	p->svcs = calloc(cfg->n_services ? cfg->n_services : 1,
			 sizeof(*p->svcs));
	p->n_svcs = cfg->n_services;
	pc = calloc(1, sizeof(*pc));	/* the service index is 32 KiB */
	if (!p->ns || !p->svcs || !pc) {
		free(pc);
		return aeth_fail(err, -ENOMEM, NULL, "out of memory");
	}
	r = plan_ctx_init(pc, a, cfg, p, err);
	if (!r) {
		plan_node(pc, cfg);
		r = plan_svc_ids(pc, cfg);
	}
	for (size_t i = 0; !r && i < cfg->n_services; i++)
		r = plan_svc(pc, cfg, i);
	if (!r) {
		plan_removals(pc);
		r = plan_decap(p, cfg);
	}
	if (!r)
		r = plan_vips(p, a->state, err);
	free(pc->be_taken);
	free(pc->bidx);
	free(pc);
	return r;
}

void apply_plan_free(struct apply_plan *p)
{
	aeth_state_free(p->ns);
	free(p->svcs);
	free(p->decap);
	free(p->old_vips);
	free(p->new_vips);
	memset(p, 0, sizeof(*p));
}
