/* Applying a document to the maps: ids, backends, tables, services, in an
 * order that never exposes a half state, with an undo log for failures. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "apply.h"
#include "log.h"

#define NSEC_PER_SEC 1000000000ull
#ifndef ENOTSUPP
#define ENOTSUPP 524	/* the kernel's "not supported" */
#endif

unsigned int aeth_apply_fail_at;

/* ---- undo log ---------------------------------------------------------- */

#define UNDO_KEY_MAX 32
#define UNDO_VAL_MAX 128

enum undo_op { UNDO_RESTORE, UNDO_DELETE };

struct undo {
	int fd;
	enum undo_op op;
	uint32_t ksz, vsz;
	uint8_t key[UNDO_KEY_MAX];
	uint8_t val[UNDO_VAL_MAX];
};

struct tx {
	struct undo *u;
	size_t n, cap;
	unsigned int ops;
	char *msg;		/* where a failure is described */
	size_t msglen;
};

static int tx_fault(struct tx *tx)
{
	tx->ops++;
	if (aeth_apply_fail_at && tx->ops == aeth_apply_fail_at)
		return -ENOSPC;
	return 0;
}

static struct undo *tx_push(struct tx *tx)
{
	if (tx->n == tx->cap) {
		size_t cap = tx->cap ? tx->cap * 2 : 256;
		struct undo *u = realloc(tx->u, cap * sizeof(*u));

		if (!u)
			return NULL;
		tx->u = u;
		tx->cap = cap;
	}
	return &tx->u[tx->n++];
}

/* Take an undo record for fd[key] holding what is there now. Returns it
 * with had_value telling whether the key existed, or NULL with *err set. */
static struct undo *tx_record(struct tx *tx, int fd, const void *key,
			      uint32_t ksz, uint32_t vsz, bool *had_value,
			      int *err)
{
	struct undo *u;

	*err = tx_fault(tx);
	if (*err)
		return NULL;
	u = tx_push(tx);
	if (!u) {
		*err = -ENOMEM;
		return NULL;
	}
	u->fd = fd;
	u->ksz = ksz;
	u->vsz = vsz;
	memcpy(u->key, key, ksz);
	*had_value = bpf_map_lookup_elem(fd, key, u->val) == 0;
	return u;
}

/* Update key to val, remembering what was there. */
static int tx_write(struct tx *tx, int fd, const void *key, uint32_t ksz,
		    const void *val, uint32_t vsz)
{
	struct undo *u;
	bool had;
	int err;

	u = tx_record(tx, fd, key, ksz, vsz, &had, &err);
	if (!u)
		return err;
	u->op = had ? UNDO_RESTORE : UNDO_DELETE;
	if (bpf_map_update_elem(fd, key, val, BPF_ANY)) {
		err = -errno;
		tx->n--;
		return err;
	}
	return 0;
}

/* Delete key, remembering its value. Absent keys are fine. */
static int tx_delete(struct tx *tx, int fd, const void *key, uint32_t ksz,
		     uint32_t vsz)
{
	struct undo *u;
	bool had;
	int err;

	u = tx_record(tx, fd, key, ksz, vsz, &had, &err);
	if (!u)
		return err;
	u->op = UNDO_RESTORE;
	if (!had) {
		tx->n--;
		return 0;
	}
	if (bpf_map_delete_elem(fd, key)) {
		err = -errno;
		tx->n--;
		return err;
	}
	return 0;
}

/* Inner maps waiting to go into their outer slots. */
struct slot_batch {
	uint32_t *slots;
	int *fds;
	size_t n, cap;
};

static int batch_add(struct slot_batch *b, uint32_t slot, int fd)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		uint32_t *s = realloc(b->slots, cap * sizeof(*s));
		int *f;

		if (!s)
			return -ENOMEM;
		b->slots = s;
		f = realloc(b->fds, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		b->fds = f;
		b->cap = cap;
	}
	b->slots[b->n] = slot;
	b->fds[b->n] = fd;
	b->n++;
	return 0;
}

static void batch_release(struct slot_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		close(b->fds[i]);
	free(b->slots);
	free(b->fds);
	memset(b, 0, sizeof(*b));
}

/* Put inner maps into outer slots. Only inactive slots are written this
 * way, so undoing is emptying them again. One batch, because the kernel
 * waits for an RCU grace period after each write of a map-in-map from
 * userspace: per slot that is milliseconds each, per batch once. */
static int tx_slots(struct tx *tx, int outer_fd, struct slot_batch *b)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 count = b->n;
	int err;

	if (!b->n)
		return 0;
	err = tx_fault(tx);
	if (err)
		return err;
	for (size_t i = 0; i < b->n; i++) {
		struct undo *u = tx_push(tx);

		if (!u)
			return -ENOMEM;
		u->fd = outer_fd;
		u->op = UNDO_DELETE;
		u->ksz = sizeof(uint32_t);
		memcpy(u->key, &b->slots[i], sizeof(uint32_t));
	}
	if (bpf_map_update_batch(outer_fd, b->slots, b->fds, &count, &opts) == 0)
		return 0;
	if (errno != EINVAL && errno != EOPNOTSUPP && errno != ENOTSUPP)
		return -errno;
	for (size_t i = 0; i < b->n; i++)	/* no batch support */
		if (bpf_map_update_elem(outer_fd, &b->slots[i], &b->fds[i],
					BPF_ANY))
			return -errno;
	return 0;
}

/* Empty outer slots nothing reads any more, in one batch (see tx_slots). */
static void delete_slots(int outer_fd, uint32_t *slots, size_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 count = n;

	if (!n)
		return;
	if (bpf_map_delete_batch(outer_fd, slots, &count, &opts) == 0)
		return;
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(outer_fd, &slots[i]);
}

static void tx_rollback(struct tx *tx)
{
	while (tx->n) {
		struct undo *u = &tx->u[--tx->n];
		int r;

		if (u->op == UNDO_RESTORE)
			r = bpf_map_update_elem(u->fd, u->key, u->val, BPF_ANY);
		else
			r = bpf_map_delete_elem(u->fd, u->key);
		if (r && errno != ENOENT)
			log_err("rollback: restoring a map entry failed: %s",
				strerror(errno));
	}
}

static int tx_fail(struct tx *tx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int tx_fail(struct tx *tx, int err, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(tx->msg, tx->msglen, "%s: %s", what, strerror(-err));
	return err;
}

/* ---- state ------------------------------------------------------------- */

static void svc_free(struct aeth_applied_svc *s)
{
	free(s->mg);
	free(s->cidrs);
	free(s->be_ids);
	memset(s, 0, sizeof(*s));
}

void aeth_state_free(struct aeth_state *st)
{
	if (!st)
		return;
	if (st->svcs)
		for (uint32_t i = 0; i < AETH_MAX_SERVICES; i++)
			svc_free(&st->svcs[i]);
	free(st->svcs);
	free(st->backends);
	free(st->retired_mg);
	free(st->retired_acl);
	free(st);
}

static struct aeth_state *state_alloc(void)
{
	struct aeth_state *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->svcs = calloc(AETH_MAX_SERVICES, sizeof(*st->svcs));
	st->backends = calloc(AETH_MAX_BACKENDS, sizeof(*st->backends));
	if (!st->svcs || !st->backends) {
		aeth_state_free(st);
		return NULL;
	}
	return st;
}

int aeth_state_init(struct aeth_agent *a)
{
	struct aeth_state *st = state_alloc();

	if (!st)
		return -ENOMEM;
	aeth_state_free(a->state);
	a->state = st;
	return 0;
}

static int append_u32(uint32_t **arr, size_t *n, uint32_t v)
{
	uint32_t *p = realloc(*arr, (*n + 1) * sizeof(**arr));

	if (!p)
		return -ENOMEM;
	p[(*n)++] = v;
	*arr = p;
	return 0;
}

static int reconcile_vips(struct aeth_agent *a, const struct aeth_state *st);

int aeth_state_recover(struct aeth_agent *a)
{
	struct aeth_state *st = state_alloc();
	struct aeth_svc_key key, next, *prev = NULL;
	uint32_t max_svc = 0, max_be = 0, zero = 0;
	size_t n_svc = 0, n_be = 0, n_stale = 0;
	int err;

	if (!st)
		return -ENOMEM;
	while (bpf_map_get_next_key(a->fds.svc, prev, &next) == 0) {
		struct aeth_svc v;
		struct aeth_applied_svc *s;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(a->fds.svc, &key, &v))
			continue;
		if (v.id >= AETH_MAX_SERVICES || st->svcs[v.id].in_use) {
			log_warn("pinned service entry with bad id %u ignored",
				 v.id);
			continue;
		}
		s = &st->svcs[v.id];
		s->in_use = true;
		s->key = key;
		s->value = v;
		bpf_map_lookup_elem(a->fds.svcinfo, &v.id, &s->info);
		if (v.id + 1 > max_svc)
			max_svc = v.id + 1;
		n_svc++;
	}
	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		struct aeth_backend *b = &st->backends[id];

		if (bpf_map_lookup_elem(a->fds.backend, &id, b))
			continue;
		if (!(b->flags & AETH_BE_F_IN_USE))
			continue;
		if (b->svc_id < AETH_MAX_SERVICES && st->svcs[b->svc_id].in_use) {
			struct aeth_applied_svc *s = &st->svcs[b->svc_id];

			err = append_u32(&s->be_ids, &s->n_be, id);
			if (err)
				goto fail;
			n_be++;
		} else {
			n_stale++;
		}
		if (id + 1 > max_be)
			max_be = id + 1;
	}
	err = reconcile_vips(a, st);
	if (err)
		goto fail;
	if (bpf_map_lookup_elem(a->fds.node, &zero, &st->node) == 0)
		st->node_known = true;
	bpf_map_lookup_elem(a->fds.meta, &zero, &a->meta);
	st->svc_cursor = max_svc % AETH_MAX_SERVICES;
	st->be_cursor = max_be % AETH_MAX_BACKENDS;
	aeth_state_free(a->state);
	a->state = st;
	a->status.generation = a->meta.generation;
	/* Backends of no live service were written by an apply that did
	 * not finish (killed before its switch): not live, and freed by the
	 * next apply. They are told apart so the log counts what serves. */
	if (n_svc || n_be)
		log_info("recovered %zu services and %zu backends from %s "
			 "(generation %llu)", n_svc, n_be, a->pin_dir,
			 (unsigned long long)a->meta.generation);
	if (n_stale)
		log_info("%zu backend entries of an unfinished apply are not "
			 "live; the next apply frees them", n_stale);
	return 0;
fail:
	aeth_state_free(st);
	return err;
}

int aeth_meta_write(struct aeth_agent *a)
{
	uint32_t zero = 0;

	a->meta.schema_version = AETH_SCHEMA_VERSION;
	if (bpf_map_update_elem(a->fds.meta, &zero, &a->meta, BPF_ANY))
		return -errno;
	return 0;
}

/* ---- building the desired entries ------------------------------------- */

static void svc_key_of(const struct aeth_cfg_service *s, struct aeth_svc_key *k)
{
	memset(k, 0, sizeof(*k));
	k->vip = s->vip.addr;
	k->port = htons(s->port);
	k->proto = s->proto;
	k->family = s->vip.family;
}

static bool ip_equal(const struct aeth_ip *x, const struct aeth_ip *y)
{
	return x->family == y->family &&
	       memcmp(x->addr.bytes, y->addr.bytes, 16) == 0;
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
		    !ip_equal(&x[i].ip, &y[i].ip))
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
		    !ip_equal(&x[i].ip, &y[i].ip))
			return false;
	return true;
}

/* GCRA parameters. The per-service cap tolerates a burst of a tenth of a
 * second's worth of its rate (at least one connection) on top of the
 * steady rate, so a brief spike of legitimate clients is not cut. */
static void rate_params(const struct aeth_cfg_rate_limit *rl, struct aeth_svc *v)
{
	v->src_prefix_v4 = rl->enabled ? rl->prefix_v4 : 32;
	v->src_prefix_v6 = rl->enabled ? rl->prefix_v6 : 64;
	if (rl->enabled && rl->per_source) {
		uint64_t burst = rl->burst ? rl->burst : rl->per_source;

		v->src_interval_ns = NSEC_PER_SEC / rl->per_source;
		v->src_tolerance_ns = (burst - 1) * v->src_interval_ns;
	}
	if (rl->enabled && rl->per_service) {
		uint64_t k = rl->per_service / 10;

		if (k < 1)
			k = 1;
		v->svc_interval_ns = NSEC_PER_SEC / rl->per_service;
		v->svc_tolerance_ns = k * v->svc_interval_ns;
	}
}

static void svcinfo_of(const struct aeth_cfg_service *s, uint32_t table_size,
		       struct aeth_svcinfo *i)
{
	const struct aeth_cfg_rate_limit *rl = &s->rate_limit;

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
	if (rl->enabled) {
		i->rl_per_source = rl->per_source;
		i->rl_burst = rl->burst ? rl->burst : rl->per_source;
		i->rl_per_service = rl->per_service;
	}
	i->rl_prefix_v4 = rl->enabled ? rl->prefix_v4 : 32;
	i->rl_prefix_v6 = rl->enabled ? rl->prefix_v6 : 64;
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

/* Find a free id from *cursor on: unused before this apply and not yet taken
 * by it. Returns the id or -ENOSPC. */
static int64_t take_id(uint32_t *cursor, uint32_t max,
		       bool (*busy)(const void *ctx, uint32_t id),
		       const void *ctx)
{
	for (uint32_t n = 0; n < max; n++) {
		uint32_t id = (*cursor + n) % max;

		if (!busy(ctx, id)) {
			*cursor = (id + 1) % max;
			return id;
		}
	}
	return -ENOSPC;
}

struct plan_ctx {
	const struct aeth_state *old;
	const struct aeth_state *new;
	const uint8_t *be_taken;
};

static bool svc_busy(const void *c, uint32_t id)
{
	const struct plan_ctx *p = c;

	return p->old->svcs[id].in_use || p->new->svcs[id].in_use;
}

static bool be_busy(const void *c, uint32_t id)
{
	const struct plan_ctx *p = c;

	return (p->old->backends[id].flags & AETH_BE_F_IN_USE) ||
	       p->be_taken[id];
}

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

/* Per service of the document: what the apply does with it. */
struct svc_plan {
	uint32_t id;
	bool rebuild_mg, rebuild_acl;
};

/* Decide ids and every entry of the new state, touching no map. */
static int plan(struct aeth_agent *a, const struct aeth_config *cfg,
		struct aeth_state *ns, struct svc_plan *sp, char *msg,
		size_t msglen)
{
	const struct aeth_state *old = a->state;
	bool seed_changed = !old->node_known ||
			    memcmp(old->node.hash_seed, cfg->seed, 16) != 0;
	struct plan_ctx pc = { .old = old, .new = ns };
	struct svc_index idx;
	int32_t *bidx;
	uint8_t *be_taken;
	int err = 0;

	be_taken = calloc(AETH_MAX_BACKENDS, 1);
	bidx = be_index_build(old);
	if (!be_taken || !bidx) {
		free(be_taken);
		free(bidx);
		return -ENOMEM;
	}
	svc_index_build(&idx, old);
	pc.be_taken = be_taken;
	ns->svc_cursor = old->svc_cursor;
	ns->be_cursor = old->be_cursor;
	node_of(cfg, &ns->node);
	ns->node_known = true;
	/* Every backend starts as removed; the document re-adds its own. */
	memcpy(ns->backends, old->backends,
	       AETH_MAX_BACKENDS * sizeof(*ns->backends));
	for (uint32_t i = 0; i < AETH_MAX_BACKENDS; i++)
		ns->backends[i].flags = 0;

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct aeth_cfg_service *s = &cfg->services[i];
		struct aeth_svc_key key;
		int64_t id = -1;

		svc_key_of(s, &key);
		id = svc_index_find(&idx, old, &key);
		if (id < 0)
			id = take_id(&ns->svc_cursor, AETH_MAX_SERVICES,
				     svc_busy, &pc);
		if (id < 0) {
			snprintf(msg, msglen, "services[%zu]: no free service id "
				 "(%u in all, the running document's included)",
				 i, AETH_MAX_SERVICES);
			err = -ENOSPC;
			goto out;
		}
		sp[i].id = id;
		ns->svcs[id].in_use = true;
		ns->svcs[id].key = key;
	}

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct aeth_cfg_service *s = &cfg->services[i];
		struct aeth_applied_svc *n = &ns->svcs[sp[i].id];
		const struct aeth_applied_svc *o = &old->svcs[sp[i].id];
		uint32_t table_size = s->table_size ? s->table_size :
						      cfg->table_size;

		n->be_ids = calloc(s->n_backends ? s->n_backends : 1,
				   sizeof(*n->be_ids));
		n->mg = calloc(s->n_backends ? s->n_backends : 1,
			       sizeof(*n->mg));
		n->cidrs = calloc(s->n_cidrs ? s->n_cidrs : 1,
				  sizeof(*n->cidrs));
		if (!n->be_ids || !n->mg || !n->cidrs) {
			err = -ENOMEM;
			goto out;
		}
		for (size_t j = 0; j < s->n_backends; j++) {
			const struct aeth_cfg_backend *b = &s->backends[j];
			struct aeth_backend *e;
			int64_t id = -1;
			bool up = true;

			if (o->in_use)
				id = be_index_find(bidx, old, sp[i].id, &b->ip);
			if (id < 0)
				id = take_id(&ns->be_cursor, AETH_MAX_BACKENDS,
					     be_busy, &pc);
			if (id < 0) {
				snprintf(msg, msglen,
					 "services[%zu].backends[%zu]: no free "
					 "backend id (%u in all, the running "
					 "document's included)", i, j,
					 AETH_MAX_BACKENDS);
				err = -ENOSPC;
				goto out;
			}
			be_taken[id] = 1;
			n->be_ids[n->n_be++] = id;
			if (a->backend_up)
				up = a->backend_up(a->backend_up_arg, s->name,
						   &b->ip);
			e = &ns->backends[id];
			memset(e, 0, sizeof(*e));
			e->addr = b->ip.addr;
			e->family = b->ip.family;
			e->weight = b->weight;
			e->svc_id = sp[i].id;
			e->flags = AETH_BE_F_IN_USE;
			if (b->draining)
				e->flags |= AETH_BE_F_DRAINING;
			if (!up)
				e->flags |= AETH_BE_F_UNHEALTHY;
			if (b->draining || !up || !b->weight)
				continue;
			n->mg[n->n_mg].ip = b->ip;
			n->mg[n->n_mg].id = id;
			n->mg[n->n_mg].weight = b->weight;
			n->n_mg++;
		}
		qsort(n->mg, n->n_mg, sizeof(*n->mg), cmp_mg_id);
		n->acl_enabled = s->acl_enabled;
		n->n_cidrs = s->n_cidrs;
		if (s->n_cidrs)
			memcpy(n->cidrs, s->cidrs, s->n_cidrs * sizeof(*n->cidrs));
		n->built = true;

		/* the service entry; slots are filled in when tables are built */
		memset(&n->value, 0, sizeof(n->value));
		n->value.id = sp[i].id;
		if (s->acl_enabled)
			n->value.flags |= AETH_SVC_F_ACL;
		n->value.table_size = n->n_mg ? table_size : 0;
		n->value.maglev_slot = o->in_use ? o->value.maglev_slot :
				       sp[i].id * AETH_SLOTS_PER_SERVICE;
		n->value.acl_slot = o->in_use ? o->value.acl_slot :
				    sp[i].id * AETH_SLOTS_PER_SERVICE;
		rate_params(&s->rate_limit, &n->value);
		svcinfo_of(s, table_size, &n->info);

		sp[i].rebuild_mg = n->n_mg &&
			(!o->in_use || !o->built || seed_changed ||
			 o->value.table_size != table_size ||
			 !mg_equal(o->mg, o->n_mg, n->mg, n->n_mg));
		sp[i].rebuild_acl = s->acl_enabled &&
			(!o->in_use || !o->built || !o->acl_enabled ||
			 !cidrs_equal(o->cidrs, o->n_cidrs, n->cidrs,
				      n->n_cidrs));
	}
out:
	free(be_taken);
	free(bidx);
	return err;
}

/* ---- inner maps -------------------------------------------------------- */

static uint32_t *slot_keys;	/* 0..AETH_MAX_TABLE_SIZE-1, for batch updates */

static uint32_t other_slot(uint32_t id, uint32_t slot)
{
	uint32_t base = id * AETH_SLOTS_PER_SERVICE;

	return slot == base ? base + 1 : base;
}

/* A fresh Maglev table for n in the service's inactive slot. */
/* Whether the outer Maglev map takes mmapable inner arrays (its template
 * says BPF_F_MMAPABLE). Then a table is written with one memcpy; otherwise
 * element by element through a batch update, which costs about 1 us per
 * slot in the kernel (16 ms for a 16381-slot table). Probed once with a
 * one-slot table in a slot no service names. */
static bool inner_mmap_supported(struct aeth_agent *a)
{
	LIBBPF_OPTS(bpf_map_create_opts, copts,
		    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	uint32_t slot, id;
	int fd;

	if (a->inner_mmap)
		return a->inner_mmap > 0;
	a->inner_mmap = -1;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_mg_probe",
			    sizeof(uint32_t), sizeof(uint32_t), 1, &copts);
	if (fd < 0)
		return false;
	for (slot = AETH_MAX_SLOTS; slot-- > 0;) {
		if (a->state->svcs[slot / AETH_SLOTS_PER_SERVICE].in_use ||
		    bpf_map_lookup_elem(a->fds.maglev, &slot, &id) == 0)
			continue;
		if (bpf_map_update_elem(a->fds.maglev, &slot, &fd, BPF_ANY) == 0) {
			bpf_map_delete_elem(a->fds.maglev, &slot);
			a->inner_mmap = 1;
		}
		break;
	}
	close(fd);
	log_debug("Maglev tables are written %s",
		  a->inner_mmap > 0 ? "through mmap" : "by batch updates");
	return a->inner_mmap > 0;
}

static int fill_table(int fd, const uint32_t *table, uint32_t size, bool mmapable)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	uint32_t count = size;

	if (mmapable) {
		/* array elements are 8-byte aligned: a u32 takes 8 bytes */
		size_t page = sysconf(_SC_PAGESIZE);
		size_t len = ((size_t)size * 8 + page - 1) & ~(page - 1);
		uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
				  fd, 0);

		if (p == MAP_FAILED)
			return -errno;
		for (uint32_t i = 0; i < size; i++)
			memcpy(p + (size_t)i * 8, &table[i], sizeof(*table));
		munmap(p, len);
		return 0;
	}
	if (!slot_keys) {
		slot_keys = malloc(AETH_MAX_TABLE_SIZE * sizeof(*slot_keys));
		if (!slot_keys)
			return -ENOMEM;
		for (uint32_t i = 0; i < AETH_MAX_TABLE_SIZE; i++)
			slot_keys[i] = i;
	}
	if (bpf_map_update_batch(fd, slot_keys, table, &count, &bopts) == 0)
		return 0;
	for (uint32_t i = 0; i < size; i++)	/* no batch support */
		if (bpf_map_update_elem(fd, &i, &table[i], BPF_ANY))
			return -errno;
	return 0;
}

/* A fresh Maglev table for n, to go into the service's inactive slot. */
static int build_maglev(struct tx *tx, struct aeth_agent *a,
			struct slot_batch *batch, struct aeth_applied_svc *n,
			const uint8_t seed[16], uint32_t size)
{
	bool mmapable = inner_mmap_supported(a);
	LIBBPF_OPTS(bpf_map_create_opts, copts,
		    .map_flags = BPF_F_INNER_MAP |
				 (mmapable ? BPF_F_MMAPABLE : 0));
	uint32_t slot = other_slot(n->value.id, n->value.maglev_slot);
	uint32_t *table;
	int fd, err;

	if (size > AETH_MAX_TABLE_SIZE)
		return -EINVAL;
	table = malloc(size * sizeof(*table));
	if (!table)
		return -ENOMEM;
	err = aeth_maglev_build(n->mg, n->n_mg, seed, size, table);
	if (!err)
		err = tx_fault(tx);
	if (err) {
		free(table);
		return err;
	}
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_mg_tbl", sizeof(uint32_t),
			    sizeof(uint32_t), size, &copts);
	if (fd < 0) {
		free(table);
		return -errno;
	}
	err = fill_table(fd, table, size, mmapable);
	if (!err)
		err = batch_add(batch, slot, fd);
	if (!err) {
		n->value.maglev_slot = slot;
		fd = -1;
	}
	free(table);
	if (fd >= 0)
		close(fd);
	return err;
}

/* A fresh authorized-networks trie in the service's inactive ACL slot. */
static int build_acl(struct tx *tx, struct slot_batch *batch,
		     struct aeth_applied_svc *n)
{
	LIBBPF_OPTS(bpf_map_create_opts, copts, .map_flags = BPF_F_NO_PREALLOC);
	uint32_t slot = other_slot(n->value.id, n->value.acl_slot);
	int fd, err;

	err = tx_fault(tx);
	if (err)
		return err;
	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "aeth_acl_trie",
			    sizeof(struct aeth_acl_key), sizeof(uint32_t),
			    n->n_cidrs ? n->n_cidrs : 1, &copts);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < n->n_cidrs; i++) {
		const struct aeth_cfg_cidr *c = &n->cidrs[i];
		struct aeth_acl_key k;
		uint32_t family;

		memset(&k, 0, sizeof(k));
		if (c->ip.family == AETH_AF_INET) {
			/* ::ffff:a.b.c.d, so one trie serves both families */
			k.addr[10] = 0xff;
			k.addr[11] = 0xff;
			memcpy(&k.addr[12], &c->ip.addr.v4, 4);
			k.prefixlen = c->prefixlen + 96;
		} else {
			memcpy(k.addr, c->ip.addr.bytes, 16);
			k.prefixlen = c->prefixlen;
		}
		/* the value names the prefix's family: the data path must
		 * not let an IPv6 prefix covering ::ffff:0:0/96 (::/0, say)
		 * admit IPv4 sources */
		family = c->ip.family;
		if (bpf_map_update_elem(fd, &k, &family, BPF_ANY)) {
			err = -errno;
			goto out;
		}
	}
	err = batch_add(batch, slot, fd);
	if (!err) {
		n->value.acl_slot = slot;
		fd = -1;
	}
out:
	if (fd >= 0)
		close(fd);
	return err;
}

/* ---- VIP reference counts ---------------------------------------------- */

struct vip_count {
	struct aeth_vip_key key;
	uint32_t count;
};

static int vip_counts(const struct aeth_state *st, struct vip_count **out,
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

static uint32_t vip_lookup(const struct vip_count *v, size_t n,
			   const struct aeth_vip_key *k)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(&v[i].key, k, sizeof(*k)) == 0)
			return v[i].count;
	return 0;
}

/* After a restart: make aeth_vip match the recovered services (an apply
 * interrupted by a crash may have left a count behind). */
static int reconcile_vips(struct aeth_agent *a, const struct aeth_state *st)
{
	struct aeth_vip_key k, nk, *prev = NULL;
	struct vip_count *v;
	size_t n;
	int err;

	err = vip_counts(st, &v, &n);
	if (err)
		return err;
	while (bpf_map_get_next_key(a->fds.vip, prev, &nk) == 0) {
		uint32_t count;

		k = nk;
		if (bpf_map_lookup_elem(a->fds.vip, &k, &count) == 0 &&
		    vip_lookup(v, n, &k) == 0) {
			log_warn("removing a VIP entry no service uses");
			bpf_map_delete_elem(a->fds.vip, &k);
			continue;	/* k is gone: restart from prev */
		}
		prev = &k;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t count = 0;

		bpf_map_lookup_elem(a->fds.vip, &v[i].key, &count);
		if (count != v[i].count)
			bpf_map_update_elem(a->fds.vip, &v[i].key, &v[i].count,
					    BPF_ANY);
	}
	free(v);
	return 0;
}

/* ---- per-id counters --------------------------------------------------- */

/* A new id starts with zeroed limiter state and counters. */
static void zero_percpu(int fd, uint32_t id, size_t size)
{
	size_t stride = (size + 7) & ~(size_t)7;
	int ncpus = aeth_ncpus();
	void *buf;

	if (fd < 0 || ncpus <= 0)
		return;
	buf = calloc(ncpus, stride);
	if (!buf)
		return;
	bpf_map_update_elem(fd, &id, buf, BPF_ANY);
	free(buf);
}

static void reset_svc_counters(struct aeth_agent *a, uint32_t id)
{
	struct aeth_rl_svc_state z;

	memset(&z, 0, sizeof(z));
	if (a->fds.rl_svc >= 0)
		bpf_map_update_elem(a->fds.rl_svc, &id, &z, BPF_ANY);
	zero_percpu(a->fds.svc_stats, id, sizeof(struct aeth_svc_stats));
}

/* ---- the apply --------------------------------------------------------- */

static uint64_t now_unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* Write the new state ns over the old one. Returns 0 or a negative errno
 * with tx->msg filled; the caller rolls back. */
/* The trie key of a CIDR as the data path looks it up (guard.h). */
static void trie_key_of(const struct aeth_cfg_cidr *c, struct aeth_acl_key *k)
{
	memset(k, 0, sizeof(*k));
	if (c->ip.family == AETH_AF_INET) {
		k->addr[10] = 0xff;
		k->addr[11] = 0xff;
		memcpy(k->addr + 12, &c->ip.addr.v4, 4);
		k->prefixlen = c->prefixlen + 96u;
	} else {
		memcpy(k->addr, c->ip.addr.bytes, 16);
		k->prefixlen = c->prefixlen;
	}
}

static bool decap_listed(const struct aeth_config *cfg,
			 const struct aeth_acl_key *k)
{
	struct aeth_acl_key c;

	for (size_t i = 0; i < cfg->n_decap_sources; i++) {
		trie_key_of(&cfg->decap_sources[i], &c);
		if (memcmp(&c, k, sizeof(c)) == 0)
			return true;
	}
	return false;
}

/* aeth_decap = decap.sources: new entries first, then the stale ones go, so
 * an LB node listed before and after is never refused in between. */
static int write_decap(struct tx *tx, struct aeth_agent *a,
		       const struct aeth_config *cfg)
{
	struct aeth_acl_key k, next, *stale = NULL;
	size_t n_stale = 0;
	void *prev = NULL;
	__u32 family;
	int err = 0;

	for (size_t i = 0; i < cfg->n_decap_sources && !err; i++) {
		trie_key_of(&cfg->decap_sources[i], &k);
		family = cfg->decap_sources[i].ip.family;
		err = tx_write(tx, a->fds.decap, &k, sizeof(k), &family,
			       sizeof(family));
	}
	while (!err && bpf_map_get_next_key(a->fds.decap, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (decap_listed(cfg, &next))
			continue;
		struct aeth_acl_key *s = realloc(stale, (n_stale + 1) *
							sizeof(*stale));
		if (!s) {
			err = -ENOMEM;
			break;
		}
		stale = s;
		stale[n_stale++] = next;
	}
	for (size_t i = 0; i < n_stale && !err; i++)
		err = tx_delete(tx, a->fds.decap, &stale[i], sizeof(stale[i]),
				sizeof(family));
	free(stale);
	return err;
}

static int write_state(struct tx *tx, struct aeth_agent *a,
		       const struct aeth_config *cfg, struct aeth_state *ns,
		       struct svc_plan *sp)
{
	const struct aeth_state *old = a->state;
	struct slot_batch mgb = { 0 }, aclb = { 0 };
	struct vip_count *ov = NULL, *nv = NULL;
	size_t n_ov = 0, n_nv = 0;
	uint32_t zero = 0;
	int err;

	/* node settings */
	if (!old->node_known || memcmp(&old->node, &ns->node, sizeof(ns->node))) {
		err = tx_write(tx, a->fds.node, &zero, sizeof(zero), &ns->node,
			       sizeof(ns->node));
		if (err)
			return tx_fail(tx, err, "writing %s", AETH_MAP_NODE);
	}
	err = write_decap(tx, a, cfg);
	if (err)
		return tx_fail(tx, err, "writing %s", AETH_MAP_DECAP);

	/* backends before the tables that name them */
	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		const struct aeth_backend *b = &ns->backends[id];

		if (!(b->flags & AETH_BE_F_IN_USE) ||
		    memcmp(b, &old->backends[id], sizeof(*b)) == 0)
			continue;
		if (!(old->backends[id].flags & AETH_BE_F_IN_USE))
			zero_percpu(a->fds.be_stats, id,
				    sizeof(struct aeth_be_stats));
		err = tx_write(tx, a->fds.backend, &id, sizeof(id), b,
			       sizeof(*b));
		if (err)
			return tx_fail(tx, err, "writing %s[%u]",
				       AETH_MAP_BACKEND, id);
	}

	/* tables into inactive slots, then the descriptions */
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct aeth_applied_svc *n = &ns->svcs[sp[i].id];
		const struct aeth_cfg_service *s = &cfg->services[i];

		if (sp[i].rebuild_mg) {
			err = build_maglev(tx, a, &mgb, n, cfg->seed,
					   n->value.table_size);
			if (err) {
				tx_fail(tx, err, "services[%zu] (%s): building "
					"the Maglev table", i, s->name);
				goto out;
			}
		}
		if (sp[i].rebuild_acl) {
			err = build_acl(tx, &aclb, n);
			if (err) {
				tx_fail(tx, err, "services[%zu] (%s): building "
					"the authorized networks", i, s->name);
				goto out;
			}
		}
	}
	err = tx_slots(tx, a->fds.maglev, &mgb);
	if (err) {
		tx_fail(tx, err, "filling %s", AETH_MAP_MAGLEV);
		goto out;
	}
	err = tx_slots(tx, a->fds.acl, &aclb);
	if (err) {
		tx_fail(tx, err, "filling %s", AETH_MAP_ACL);
		goto out;
	}
	for (size_t i = 0; i < cfg->n_services; i++) {
		struct aeth_applied_svc *n = &ns->svcs[sp[i].id];

		if (!old->svcs[sp[i].id].in_use)
			reset_svc_counters(a, sp[i].id);
		if (memcmp(&n->info, &old->svcs[sp[i].id].info,
			   sizeof(n->info)) == 0)
			continue;
		err = tx_write(tx, a->fds.svcinfo, &sp[i].id, sizeof(uint32_t),
			       &n->info, sizeof(n->info));
		if (err) {
			tx_fail(tx, err, "writing %s[%u]", AETH_MAP_SVCINFO,
				sp[i].id);
			goto out;
		}
	}

	/* VIPs before the services on them */
	err = vip_counts(old, &ov, &n_ov);
	if (!err)
		err = vip_counts(ns, &nv, &n_nv);
	if (err)
		goto out_nomem;
	for (size_t i = 0; i < n_nv; i++) {
		if (vip_lookup(ov, n_ov, &nv[i].key) == nv[i].count)
			continue;
		err = tx_write(tx, a->fds.vip, &nv[i].key, sizeof(nv[i].key),
			       &nv[i].count, sizeof(uint32_t));
		if (err) {
			tx_fail(tx, err, "writing %s", AETH_MAP_VIP);
			goto out;
		}
	}

	/* publish: one update per service flips its slots and settings */
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct aeth_applied_svc *n = &ns->svcs[sp[i].id];
		const struct aeth_applied_svc *o = &old->svcs[sp[i].id];

		if (o->in_use &&
		    memcmp(&o->value, &n->value, sizeof(n->value)) == 0)
			continue;
		err = tx_write(tx, a->fds.svc, &n->key, sizeof(n->key),
			       &n->value, sizeof(n->value));
		if (err) {
			tx_fail(tx, err, "services[%zu] (%s): publishing", i,
				cfg->services[i].name);
			goto out;
		}
	}

	/* removals in reverse: services, VIPs, descriptions, backends */
	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		const struct aeth_applied_svc *o = &old->svcs[id];

		if (!o->in_use || ns->svcs[id].in_use)
			continue;
		err = tx_delete(tx, a->fds.svc, &o->key, sizeof(o->key),
				sizeof(struct aeth_svc));
		if (err) {
			tx_fail(tx, err, "removing service %u", id);
			goto out;
		}
	}
	for (size_t i = 0; i < n_ov; i++) {
		if (vip_lookup(nv, n_nv, &ov[i].key))
			continue;
		err = tx_delete(tx, a->fds.vip, &ov[i].key, sizeof(ov[i].key),
				sizeof(uint32_t));
		if (err) {
			tx_fail(tx, err, "removing a VIP");
			goto out;
		}
	}
	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		const struct aeth_applied_svc *o = &old->svcs[id];
		struct aeth_svcinfo info;

		if (!o->in_use || ns->svcs[id].in_use)
			continue;
		info = o->info;
		info.flags &= ~AETH_SVCINFO_F_IN_USE;
		err = tx_write(tx, a->fds.svcinfo, &id, sizeof(id), &info,
			       sizeof(info));
		if (err) {
			tx_fail(tx, err, "clearing %s[%u]", AETH_MAP_SVCINFO, id);
			goto out;
		}
		ns->svcs[id].info = info;
	}
	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		const struct aeth_backend *b = &ns->backends[id];

		if (!(old->backends[id].flags & AETH_BE_F_IN_USE) ||
		    (b->flags & AETH_BE_F_IN_USE))
			continue;
		/* connection entries naming it re-select a backend */
		err = tx_write(tx, a->fds.backend, &id, sizeof(id), b,
			       sizeof(*b));
		if (err) {
			tx_fail(tx, err, "removing %s[%u]", AETH_MAP_BACKEND, id);
			goto out;
		}
	}
	err = 0;
	goto out;
out_nomem:
	tx_fail(tx, err, "counting VIPs");
out:
	batch_release(&mgb);
	batch_release(&aclb);
	free(ov);
	free(nv);
	return err;
}

/* Is slot still named by a service of st (as its table or its list)? */
static bool slot_in_use(const struct aeth_state *st, uint32_t slot, bool acl)
{
	const struct aeth_applied_svc *n =
		&st->svcs[slot / AETH_SLOTS_PER_SERVICE];

	if (!n->in_use)
		return false;
	if (acl)
		return (n->value.flags & AETH_SVC_F_ACL) &&
		       n->value.acl_slot == slot;
	return n->value.table_size && n->value.maglev_slot == slot;
}

/* Empty the slots the previous apply retired that this one did not take
 * back. A whole apply has passed since the switch away from them, so no
 * packet that read the old service entry is still running. */
static void free_retired(struct aeth_agent *a, const struct aeth_state *ns)
{
	const struct aeth_state *old = a->state;
	size_t i, n;

	for (i = n = 0; i < old->n_retired_mg; i++)
		if (!slot_in_use(ns, old->retired_mg[i], false))
			old->retired_mg[n++] = old->retired_mg[i];
	delete_slots(a->fds.maglev, old->retired_mg, n);
	for (i = n = 0; i < old->n_retired_acl; i++)
		if (!slot_in_use(ns, old->retired_acl[i], true))
			old->retired_acl[n++] = old->retired_acl[i];
	delete_slots(a->fds.acl, old->retired_acl, n);
}

/* After the switch: free what the previous apply retired, and retire (not
 * yet empty) the slots this apply switched away from. */
static void release_old_slots(struct aeth_agent *a, struct aeth_state *ns)
{
	const struct aeth_state *old = a->state;
	uint32_t *mg, *acl;
	size_t n_mg = 0, n_acl = 0;

	free_retired(a, ns);
	mg = malloc(AETH_MAX_SLOTS * sizeof(*mg));
	acl = malloc(AETH_MAX_SLOTS * sizeof(*acl));
	if (!mg || !acl)
		goto out;
	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		const struct aeth_applied_svc *o = &old->svcs[id];
		const struct aeth_applied_svc *n = &ns->svcs[id];
		uint32_t base = id * AETH_SLOTS_PER_SERVICE;
		bool mg_changed, acl_changed;

		if (!o->in_use && !n->in_use)
			continue;
		/* unchanged services are not touched at all */
		mg_changed = !o->in_use || !n->in_use || !o->built ||
			     o->value.maglev_slot != n->value.maglev_slot ||
			     o->value.table_size != n->value.table_size;
		acl_changed = !o->in_use || !n->in_use || !o->built ||
			      o->value.acl_slot != n->value.acl_slot ||
			      o->value.flags != n->value.flags;
		for (uint32_t slot = base; slot < base + AETH_SLOTS_PER_SERVICE;
		     slot++) {
			if (mg_changed && !slot_in_use(ns, slot, false))
				mg[n_mg++] = slot;
			if (acl_changed && !slot_in_use(ns, slot, true))
				acl[n_acl++] = slot;
		}
	}
	ns->retired_mg = mg;
	ns->n_retired_mg = n_mg;
	ns->retired_acl = acl;
	ns->n_retired_acl = n_acl;
	return;
out:
	free(mg);
	free(acl);
}

/* "services[1].backends[2]: no free ..." into res->err, split at ": " */
static void id_space_rejection(struct aeth_apply_result *res)
{
	const char *sep = strstr(res->message, ": ");
	size_t n = sep ? (size_t)(sep - res->message) : 0;

	res->rejected = true;
	if (n >= sizeof(res->err.path))
		n = sizeof(res->err.path) - 1;
	memcpy(res->err.path, res->message, n);
	res->err.path[n] = '\0';
	snprintf(res->err.message, sizeof(res->err.message), "%.255s",
		 sep ? sep + 2 : res->message);
}

int aeth_apply_config(struct aeth_agent *a, struct aeth_config *cfg,
		      bool new_generation, struct aeth_apply_result *res)
{
	struct tx tx = { 0 };
	struct aeth_state *ns;
	struct svc_plan *sp;
	int err;

	memset(res, 0, sizeof(*res));
	tx.msg = res->message;
	tx.msglen = sizeof(res->message);
	if (!a->state) {
		err = aeth_state_init(a);
		if (err)
			return err;
	}
	ns = state_alloc();
	sp = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*sp));
	if (!ns || !sp) {
		err = -ENOMEM;
		snprintf(res->message, sizeof(res->message), "out of memory");
		goto out;
	}
	err = plan(a, cfg, ns, sp, res->message, sizeof(res->message));
	if (err == -ENOSPC) {
		/* a limit of this document against what runs: the client's
		 * to fix (apply in two steps), so a rejection with its place */
		id_space_rejection(res);
		goto out;
	}
	if (err) {
		if (!res->message[0])
			snprintf(res->message, sizeof(res->message),
				 "planning: %s", strerror(-err));
		goto out;
	}
	err = write_state(&tx, a, cfg, ns, sp);
	if (err) {
		tx_rollback(&tx);
		goto out;
	}
	release_old_slots(a, ns);

	if (new_generation)
		a->meta.generation++;
	memcpy(a->meta.config_hash, cfg->hash, sizeof(a->meta.config_hash));
	a->meta.applied_unix_ns = now_unix_ns();
	err = aeth_meta_write(a);
	if (err)	/* the state is live; only the bookkeeping is stale */
		log_warn("writing %s: %s", AETH_MAP_META, strerror(-err));
	err = 0;

	aeth_state_free(a->state);
	a->state = ns;
	ns = NULL;
	if (a->cfg != cfg)
		aeth_config_free(a->cfg);
	a->cfg = cfg;
	res->generation = a->meta.generation;
	a->status.generation = a->meta.generation;
	a->status.config_applied = true;
out:
	free(tx.u);
	free(sp);
	aeth_state_free(ns);
	return err;
}

static void record(struct aeth_agent *a, const char *source,
		   const char *result, const char *error)
{
	snprintf(a->last_result, sizeof(a->last_result), "%s", result);
	snprintf(a->last_error, sizeof(a->last_error), "%s", error ? error : "");
	snprintf(a->last_source, sizeof(a->last_source), "%s", source);
	a->last_apply_unix_ns = now_unix_ns();
	/* the same, for /metrics */
	a->status.last_apply_ok = !strcmp(result, "ok");
	a->status.last_apply_unix_ns = a->last_apply_unix_ns;
	if (a->status.last_apply_ok)
		a->status.last_success_unix_ns = a->last_apply_unix_ns;
}

static int reject(struct aeth_agent *a, const char *source,
		  struct aeth_apply_result *res)
{
	res->rejected = true;
	aeth_error_format(&res->err, res->message,
				 sizeof(res->message));
	a->status.apply_rejected++;
	record(a, source, "rejected", res->message);
	log_err("config from %s rejected: %s", source, res->message);
	return -EINVAL;
}

/* The document that runs, again (SIGHUP, a rewrite with the same bytes):
 * nothing to change, so no new generation; the interfaces are still
 * checked and attached (on_applied). */
static bool unchanged(struct aeth_agent *a, const struct aeth_config *cfg,
		      const char *source, struct aeth_apply_result *res)
{
	if (!a->cfg || !a->status.config_applied ||
	    memcmp(a->cfg->hash, cfg->hash, sizeof(cfg->hash)))
		return false;
	/* the grace of the slots the previous apply retired ends here too, so
	 * a re-applied document frees them as a changed one would */
	if (a->state) {
		free_retired(a, a->state);
		a->state->n_retired_mg = 0;
		a->state->n_retired_acl = 0;
	}
	res->generation = a->meta.generation;
	a->status.apply_ok++;
	record(a, source, "ok", NULL);
	log_info("config from %s unchanged: generation %llu stays", source,
		 (unsigned long long)res->generation);
	if (a->on_applied)
		a->on_applied(a);
	return true;
}

int aeth_apply_text(struct aeth_agent *a, const char *text, size_t len,
		    const char *source, struct aeth_apply_result *res)
{
	struct aeth_config *cfg = NULL;
	int err;

	memset(res, 0, sizeof(*res));
	err = aeth_config_parse(text, len, &cfg, &res->err);
	if (err)
		return reject(a, source, res);
	if (a->complete && a->complete(a, cfg, &res->err)) {
		aeth_config_free(cfg);
		return reject(a, source, res);
	}
	if (a->precheck && a->precheck(a, cfg, &res->err)) {
		aeth_config_free(cfg);
		return reject(a, source, res);
	}
	if (unchanged(a, cfg, source, res)) {
		aeth_config_free(cfg);
		return 0;
	}
	err = aeth_apply_config(a, cfg, true, res);
	if (err && res->rejected) {
		aeth_config_free(cfg);
		return reject(a, source, res);
	}
	if (err) {
		aeth_config_free(cfg);
		a->status.apply_failed++;
		record(a, source, "failed", res->message);
		log_err("config from %s not applied, previous state kept: %s",
			source, res->message);
		return err == -EINVAL ? -EIO : err;
	}
	a->status.apply_ok++;
	record(a, source, "ok", NULL);
	log_info("config from %s applied: generation %llu, %zu services",
		 source, (unsigned long long)res->generation,
		 a->cfg->n_services);
	if (a->on_applied)
		a->on_applied(a);
	return 0;
}

int aeth_apply_refresh(struct aeth_agent *a)
{
	struct aeth_apply_result res;
	int err;

	if (!a->cfg)
		return 0;
	err = aeth_apply_config(a, a->cfg, false, &res);
	if (err)
		log_err("updating tables after a health change failed: %s",
			res.message);
	return err;
}
