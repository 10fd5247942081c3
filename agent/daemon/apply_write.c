/* Write phase of an apply: the plan into the maps, every write through the
 * undo log. Reads the plan, a->state (what the maps hold) and the maps;
 * never the document. The order keeps established flows and fails closed:
 * what is named is written before what names it (backends before tables,
 * tables before the service entries, VIPs before the services on them),
 * one update per service switches it over, and removals go last in the
 * reverse order. Slots a switch retires are emptied one apply later. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "apply.h"
#include "apply_internal.h"
#include "log.h"
#include "prog_barrier.h"
#include "vip_filter.h"

static int write_node(struct tx *tx, struct aeth_agent *a,
		      const struct aeth_state *ns)
{
	const struct aeth_state *old = a->state;
	uint32_t zero = 0;
	int err;

	if (old->node_known && !memcmp(&old->node, &ns->node, sizeof(ns->node)))
		return 0;
	err = tx_write(tx, a->fds.node, &zero, sizeof(zero), &ns->node,
		       sizeof(ns->node));
	if (err)
		return tx_fail(tx, err, "writing %s", AETH_MAP_NODE);
	return 0;
}

static bool decap_listed(const struct apply_plan *p,
			 const struct aeth_acl_key *k)
{
	for (size_t i = 0; i < p->n_decap; i++)
		if (memcmp(&p->decap[i].key, k, sizeof(*k)) == 0)
			return true;
	return false;
}

/* The keys of aeth_decap the plan does not list; *out is malloc'ed. */
static int decap_stale(int fd, const struct apply_plan *p,
		       struct aeth_acl_key **out, size_t *n_out)
{
	struct aeth_acl_key k, next, *stale = NULL, *s;
	size_t n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (decap_listed(p, &next))
			continue;
		s = realloc(stale, (n + 1) * sizeof(*stale));
		if (!s) {
			free(stale);
			return -ENOMEM;
		}
		stale = s;
		stale[n++] = next;
	}
	*out = stale;
	*n_out = n;
	return 0;
}

/* aeth_decap = decap.sources: new entries first, then the stale ones go, so
 * an LB node listed before and after is never refused in between. */
static int write_decap(struct tx *tx, struct aeth_agent *a,
		       const struct apply_plan *p)
{
	struct aeth_acl_key *stale = NULL;
	size_t n_stale = 0;
	int err = 0;

	for (size_t i = 0; i < p->n_decap && !err; i++)
		err = tx_write(tx, a->fds.decap, &p->decap[i].key,
			       sizeof(p->decap[i].key), &p->decap[i].family,
			       sizeof(p->decap[i].family));
	if (!err)
		err = decap_stale(a->fds.decap, p, &stale, &n_stale);
	for (size_t i = 0; i < n_stale && !err; i++)
		err = tx_delete(tx, a->fds.decap, &stale[i], sizeof(stale[i]),
				sizeof(uint32_t));
	free(stale);
	if (err)
		return tx_fail(tx, err, "writing %s", AETH_MAP_DECAP);
	return 0;
}

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

/* New and changed backends, before the tables that name them. */
static int write_backends(struct tx *tx, struct aeth_agent *a,
			  const struct aeth_state *ns)
{
	const struct aeth_state *old = a->state;
	int err;

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
	return 0;
}

/* Build the tables and tries the plan rebuilds, into batches. */
static int build_inner(struct tx *tx, struct aeth_agent *a,
		       const struct apply_plan *p, struct slot_batch *mgb,
		       struct slot_batch *aclb)
{
	const struct aeth_state *ns = p->ns;
	/* maglev.seed: node_of copied the document's bytes */
	const uint8_t *seed = (const uint8_t *)ns->node.hash_seed;
	int err;

	for (size_t i = 0; i < p->n_svcs; i++) {
		const struct svc_plan *sp = &p->svcs[i];
		const struct aeth_applied_svc *n = &ns->svcs[sp->id];

		if (sp->rebuild_mg) {
			err = apply_build_maglev(tx, a, mgb, n, seed);
			if (err)
				return tx_fail(tx, err, "services[%zu] (%s): "
					       "building the Maglev table", i,
					       n->info.name);
		}
		if (sp->rebuild_acl) {
			err = apply_build_acl(tx, aclb, n);
			if (!err)
				err = apply_build_acl_rng(tx, a, n);
			if (err)
				return tx_fail(tx, err, "services[%zu] (%s): "
					       "building the authorized "
					       "networks", i, n->info.name);
		}
	}
	return 0;
}

/* Tables and tries into their inactive slots: nothing reads them until
 * the service entry names them. */
static int write_tables(struct tx *tx, struct aeth_agent *a,
			const struct apply_plan *p)
{
	struct slot_batch mgb = { 0 }, aclb = { 0 };
	int err;

	err = build_inner(tx, a, p, &mgb, &aclb);
	if (!err) {
		err = tx_slots(tx, a->fds.maglev, &mgb);
		if (err)
			tx_fail(tx, err, "filling %s", AETH_MAP_MAGLEV);
	}
	if (!err) {
		err = tx_slots(tx, a->fds.acl, &aclb);
		if (err)
			tx_fail(tx, err, "filling %s", AETH_MAP_ACL);
	}
	batch_release(&mgb);
	batch_release(&aclb);
	return err;
}

/* The descriptions of the document's services (new ones start with
 * zeroed counters). */
static int write_svcinfo(struct tx *tx, struct aeth_agent *a,
			 const struct apply_plan *p)
{
	const struct aeth_state *old = a->state;
	int err;

	for (size_t i = 0; i < p->n_svcs; i++) {
		uint32_t id = p->svcs[i].id;
		const struct aeth_applied_svc *n = &p->ns->svcs[id];

		if (!old->svcs[id].in_use)
			reset_svc_counters(a, id);
		if (memcmp(&n->info, &old->svcs[id].info, sizeof(n->info)) == 0)
			continue;
		err = tx_write(tx, a->fds.svcinfo, &id, sizeof(id), &n->info,
			       sizeof(n->info));
		if (err)
			return tx_fail(tx, err, "writing %s[%u]",
				       AETH_MAP_SVCINFO, id);
	}
	return 0;
}

/* VIPs before the services on them, each with its bit of the VIP
 * filter cleared first (a VIP never has it set while it exists). */
static int write_vips(struct tx *tx, struct aeth_agent *a,
		      const struct apply_plan *p)
{
	const struct vip_count *nv = p->new_vips;
	int err;

	aeth_vip_filter_admit(a, nv, p->n_new_vips);
	for (size_t i = 0; i < p->n_new_vips; i++) {
		if (apply_vip_lookup(p->old_vips, p->n_old_vips, &nv[i].key) ==
		    nv[i].count)
			continue;
		err = tx_write(tx, a->fds.vip, &nv[i].key, sizeof(nv[i].key),
			       &nv[i].count, sizeof(uint32_t));
		if (err)
			return tx_fail(tx, err, "writing %s", AETH_MAP_VIP);
	}
	return 0;
}

/* The switch: one update per service flips its slots and settings. */
static int publish(struct tx *tx, struct aeth_agent *a,
		   const struct apply_plan *p)
{
	int err;

	for (size_t i = 0; i < p->n_svcs; i++) {
		uint32_t id = p->svcs[i].id;
		const struct aeth_applied_svc *n = &p->ns->svcs[id];
		const struct aeth_applied_svc *o = &a->state->svcs[id];

		if (o->in_use &&
		    memcmp(&o->value, &n->value, sizeof(n->value)) == 0)
			continue;
		err = tx_write(tx, a->fds.svc, &n->key, sizeof(n->key),
			       &n->value, sizeof(n->value));
		if (err)
			return tx_fail(tx, err,
				       "services[%zu] (%s): publishing", i,
				       n->info.name);
	}
	return 0;
}

/* Removals, in reverse: services, VIPs, descriptions. */
static int remove_services(struct tx *tx, struct aeth_agent *a,
			   const struct apply_plan *p)
{
	const struct aeth_state *old = a->state, *ns = p->ns;
	int err;

	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		const struct aeth_applied_svc *o = &old->svcs[id];

		if (!o->in_use || ns->svcs[id].in_use)
			continue;
		err = tx_delete(tx, a->fds.svc, &o->key, sizeof(o->key),
				sizeof(struct aeth_svc));
		if (err)
			return tx_fail(tx, err, "removing service %u", id);
	}
	for (size_t i = 0; i < p->n_old_vips; i++) {
		const struct vip_count *v = &p->old_vips[i];

		if (apply_vip_lookup(p->new_vips, p->n_new_vips, &v->key))
			continue;
		err = tx_delete(tx, a->fds.vip, &v->key, sizeof(v->key),
				sizeof(uint32_t));
		if (err)
			return tx_fail(tx, err, "removing a VIP");
	}
	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		const struct aeth_svcinfo *info = &ns->svcs[id].info;

		if (!old->svcs[id].in_use || ns->svcs[id].in_use)
			continue;
		err = tx_write(tx, a->fds.svcinfo, &id, sizeof(id), info,
			       sizeof(*info));
		if (err)
			return tx_fail(tx, err, "clearing %s[%u]",
				       AETH_MAP_SVCINFO, id);
	}
	return 0;
}

/* Backends last: connection entries naming one re-select a backend. */
static int remove_backends(struct tx *tx, struct aeth_agent *a,
			   const struct aeth_state *ns)
{
	const struct aeth_state *old = a->state;
	int err;

	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		const struct aeth_backend *b = &ns->backends[id];

		if (!(old->backends[id].flags & AETH_BE_F_IN_USE) ||
		    (b->flags & AETH_BE_F_IN_USE))
			continue;
		err = tx_write(tx, a->fds.backend, &id, sizeof(id), b,
			       sizeof(*b));
		if (err)
			return tx_fail(tx, err, "removing %s[%u]",
				       AETH_MAP_BACKEND, id);
	}
	return 0;
}

/* Without the wait, a removal may meet a packet that read the old entry
 * just before the switch (a CPU held up in between, by an interrupt or
 * by the hypervisor): it is dropped as no_backend. */
static void wait_for_packets_in_flight(void)
{
	int err = aeth_wait_running_programs();

	if (err)
		log_warn("waiting for packets in flight: %s; removing anyway",
			 strerror(-err));
}

int apply_write(struct tx *tx, struct aeth_agent *a,
		const struct apply_plan *p)
{
	int err;

	err = write_node(tx, a, p->ns);
	if (!err)
		err = write_decap(tx, a, p);
	if (!err)
		err = write_backends(tx, a, p->ns);
	if (!err)
		err = write_tables(tx, a, p);
	if (!err)
		err = write_svcinfo(tx, a, p);
	if (!err)
		err = write_vips(tx, a, p);
	if (!err)
		err = publish(tx, a, p);
	/* copies of the old entries go before what they name is removed,
	 * and so do the packets that were reading them: one that read an old
	 * service entry (or its copy, under the old stamp) a moment ago may
	 * still be on its way to a backend about to be removed */
	if (!err) {
		aeth_stamp_bump(a);
		wait_for_packets_in_flight();
	}
	if (!err)
		err = remove_services(tx, a, p);
	if (!err)
		err = remove_backends(tx, a, p->ns);
	return err;
}

/* ---- slots after the switch -------------------------------------------- */

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

/* A whole apply has passed since the switch away from these slots, and
 * with it the wait for packets in flight (apply_write), so no packet that
 * read the old service entry is still running. */
void apply_free_retired(struct aeth_agent *a, const struct aeth_state *ns)
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
	apply_drop_acl_rng(a, old->retired_acl, n);
}

/* The slots of service id that ns no longer names, into mg and acl.
 * Unchanged services are not touched at all. */
static void retire_svc_slots(const struct aeth_state *old,
			     const struct aeth_state *ns, uint32_t id,
			     uint32_t *mg, size_t *n_mg, uint32_t *acl,
			     size_t *n_acl)
{
	const struct aeth_applied_svc *o = &old->svcs[id];
	const struct aeth_applied_svc *n = &ns->svcs[id];
	uint32_t base = id * AETH_SLOTS_PER_SERVICE;
	bool mg_changed, acl_changed;

	if (!o->in_use && !n->in_use)
		return;
	mg_changed = !o->in_use || !n->in_use || !o->built ||
		     o->value.maglev_slot != n->value.maglev_slot ||
		     o->value.table_size != n->value.table_size;
	acl_changed = !o->in_use || !n->in_use || !o->built ||
		      o->value.acl_slot != n->value.acl_slot ||
		      o->value.flags != n->value.flags;
	for (uint32_t slot = base; slot < base + AETH_SLOTS_PER_SERVICE;
	     slot++) {
		if (mg_changed && !slot_in_use(ns, slot, false))
			mg[(*n_mg)++] = slot;
		if (acl_changed && !slot_in_use(ns, slot, true))
			acl[(*n_acl)++] = slot;
	}
}

void apply_release_slots(struct aeth_agent *a, struct aeth_state *ns)
{
	uint32_t *mg, *acl;
	size_t n_mg = 0, n_acl = 0;

	apply_free_retired(a, ns);
	mg = malloc(AETH_MAX_SLOTS * sizeof(*mg));
	acl = malloc(AETH_MAX_SLOTS * sizeof(*acl));
	if (!mg || !acl) {
		free(mg);
		free(acl);
		return;
	}
	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++)
		retire_svc_slots(a->state, ns, id, mg, &n_mg, acl, &n_acl);
	ns->retired_mg = mg;
	ns->n_retired_mg = n_mg;
	ns->retired_acl = acl;
	ns->n_retired_acl = n_acl;
}
