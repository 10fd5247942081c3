/* The entry points of an apply: parse and check a document, plan it
 * (apply_plan.c), write the plan (apply_write.c) or roll the writes back
 * (apply_undo.c), then take the new state and record the outcome. Also the
 * applied state itself: empty, recovered from pinned maps, freed; and
 * aeth_meta. Reads the document only to hand it to the plan and to keep
 * it (and its hash) once applied. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "apply.h"
#include "apply_internal.h"
#include "log.h"
#include "vip_filter.h"

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

struct aeth_state *apply_state_alloc(void)
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
	struct aeth_state *st = apply_state_alloc();

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

/* The services of aeth_svc into st. Returns the count; *max_id is one
 * past the highest id. */
static size_t recover_services(struct aeth_agent *a, struct aeth_state *st,
			       uint32_t *max_id)
{
	struct aeth_svc_key key, next, *prev = NULL;
	size_t n = 0;

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
		if (v.id + 1 > *max_id)
			*max_id = v.id + 1;
		n++;
	}
	return n;
}

/* The backends of aeth_backend into st, each under its service. Backends
 * of no live service were written by an apply that did not finish (killed
 * before its switch): not live, and freed by the next apply; they are
 * counted apart (*n_stale) so the log counts what serves. */
static int recover_backends(struct aeth_agent *a, struct aeth_state *st,
			    uint32_t *max_id, size_t *n_live, size_t *n_stale)
{
	int err;

	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		struct aeth_backend *b = &st->backends[id];
		struct aeth_applied_svc *s = NULL;

		if (bpf_map_lookup_elem(a->fds.backend, &id, b))
			continue;
		if (!(b->flags & AETH_BE_F_IN_USE))
			continue;
		if (b->svc_id < AETH_MAX_SERVICES)
			s = &st->svcs[b->svc_id];
		if (s && s->in_use) {
			err = append_u32(&s->be_ids, &s->n_be, id);
			if (err)
				return err;
			(*n_live)++;
		} else {
			(*n_stale)++;
		}
		if (id + 1 > *max_id)
			*max_id = id + 1;
	}
	return 0;
}

/* After a restart: make aeth_vip match the recovered services, whose VIPs
 * are v[0..n) (an apply interrupted by a crash may have left a count
 * behind). */
static void reconcile_vips(struct aeth_agent *a, const struct vip_count *v,
			   size_t n)
{
	struct aeth_vip_key k, nk, *prev = NULL;

	while (bpf_map_get_next_key(a->fds.vip, prev, &nk) == 0) {
		uint32_t count;

		k = nk;
		if (bpf_map_lookup_elem(a->fds.vip, &k, &count) == 0 &&
		    apply_vip_lookup(v, n, &k) == 0) {
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
}

int aeth_state_recover(struct aeth_agent *a)
{
	struct aeth_state *st = apply_state_alloc();
	uint32_t max_svc = 0, max_be = 0, zero = 0;
	size_t n_svc, n_be = 0, n_stale = 0, n_vips = 0;
	struct vip_count *vips = NULL;
	int err;

	if (!st)
		return -ENOMEM;
	n_svc = recover_services(a, st, &max_svc);
	err = recover_backends(a, st, &max_be, &n_be, &n_stale);
	if (!err)
		err = apply_vip_counts(st, &vips, &n_vips);
	if (err) {
		aeth_state_free(st);
		return err;
	}
	reconcile_vips(a, vips, n_vips);
	/* the program just loaded has its filter all clear: aeth_vip is
	 * settled first, then the filter set from it */
	aeth_vip_filter_sync(a, vips, n_vips);
	free(vips);
	if (bpf_map_lookup_elem(a->fds.node, &zero, &st->node) == 0)
		st->node_known = true;
	bpf_map_lookup_elem(a->fds.meta, &zero, &a->meta);
	st->svc_cursor = max_svc % AETH_MAX_SERVICES;
	st->be_cursor = max_be % AETH_MAX_BACKENDS;
	aeth_state_free(a->state);
	a->state = st;
	a->status.generation = a->meta.generation;
	aeth_stamp_bump(a);	/* reconcile_vips may have changed aeth_vip */
	if (n_svc || n_be)
		log_info("recovered %zu services and %zu backends from %s "
			 "(generation %llu)", n_svc, n_be, a->pin_dir,
			 (unsigned long long)a->meta.generation);
	if (n_stale)
		log_info("%zu backend entries of an unfinished apply are not "
			 "live; the next apply frees them", n_stale);
	return 0;
}

int aeth_meta_write(struct aeth_agent *a)
{
	uint32_t zero = 0;

	a->meta.schema_version = AETH_SCHEMA_VERSION;
	return bpf_map_update_elem(a->fds.meta, &zero, &a->meta, BPF_ANY);
}

void aeth_stamp_bump(struct aeth_agent *a)
{
	uint32_t zero = 0;
	uint64_t stamp = 0;

	bpf_map_lookup_elem(a->fds.stamp, &zero, &stamp);
	stamp++;
	/* without it the memories still lapse within 100 ms (SVC_NEG_TTL) */
	if (bpf_map_update_elem(a->fds.stamp, &zero, &stamp, BPF_ANY) == 0)
		aeth_vip_filter_vouch(a, stamp);
	else
		log_warn("writing %s: %s; the data path may use what it "
			 "remembered of the old tables for up to 100 ms",
			 AETH_MAP_STAMP, strerror(errno));
}

/* ---- the apply --------------------------------------------------------- */

static uint64_t now_unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* The plan is written: a takes the new state and cfg, and a new generation
 * when asked for. */
static void commit(struct aeth_agent *a, struct aeth_config *cfg,
		   struct apply_plan *p, bool new_generation,
		   struct aeth_apply_result *res)
{
	int err;

	apply_release_slots(a, p->ns);
	if (new_generation)
		a->meta.generation++;
	memcpy(a->meta.config_hash, cfg->hash, sizeof(a->meta.config_hash));
	a->meta.applied_unix_ns = now_unix_ns();
	err = aeth_meta_write(a);
	if (err)	/* the state is live; only the bookkeeping is stale */
		log_warn("writing %s: %s", AETH_MAP_META, strerror(-err));
	aeth_stamp_bump(a);	/* removed services and VIPs are gone now */
	/* nothing of this apply can be undone now */
	aeth_vip_filter_sync(a, p->new_vips, p->n_new_vips);

	aeth_state_free(a->state);
	a->state = p->ns;
	p->ns = NULL;
	if (a->cfg != cfg)
		aeth_config_free(a->cfg);
	a->cfg = cfg;
	res->generation = a->meta.generation;
	a->status.generation = a->meta.generation;
	a->status.config_applied = true;
}

int aeth_apply_config(struct aeth_agent *a, struct aeth_config *cfg,
		      bool new_generation, struct aeth_apply_result *res)
{
	struct tx tx = { .err = &res->err };
	struct apply_plan p;
	int err;

	memset(res, 0, sizeof(*res));
	memset(&p, 0, sizeof(p));
	if (!a->state && aeth_state_init(a))
		err = aeth_fail(&res->err, -ENOMEM, NULL, "out of memory");
	else
		err = apply_plan_build(a, cfg, &p, &res->err);
	/* -ENOSPC: a limit of this document against what runs, the client's
	 * to fix (apply in two steps), so a rejection with its place */
	if (err == -ENOSPC)
		res->rejected = true;
	else if (err && !res->err.message[0])
		aeth_fail(&res->err, err, NULL, "planning: %s", strerror(-err));
	if (!err) {
		err = apply_write(&tx, a, &p);
		if (err) {
			tx_rollback(&tx);
			/* what was published and undone is forgotten */
			aeth_stamp_bump(a);
		}
	}
	if (!err)
		commit(a, cfg, &p, new_generation, res);
	else
		aeth_error_format(&res->err, res->message,
				  sizeof(res->message));
	tx_free(&tx);
	apply_plan_free(&p);
	return err;
}

/* ---- the outcome ------------------------------------------------------- */

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
		apply_free_retired(a, a->state);
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
