/* aetherctl maglev show: how a service's live Maglev table shares its slots
 * among backends, and with --raw the table itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "ctl.h"

struct slot_count {
	uint32_t id;
	uint32_t slots;
	const struct ctl_backend *b;	/* NULL: not an in-use backend */
};

static int slot_count_cmp(const void *pa, const void *pb)
{
	const struct slot_count *a = pa, *b = pb;

	/* in-use backends by address, then unknown ids by id */
	if (!a->b != !b->b)
		return a->b ? -1 : 1;
	if (a->b) {
		int c = ctl_addr_cmp(&a->b->be.addr, a->b->be.family,
				     &b->b->be.addr, b->b->be.family);
		if (c)
			return c;
	}
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Read the live table of svc into *table (table_size entries). */
static int read_table(struct ctl_ctx *ctx, const struct ctl_service *s,
		      uint32_t **table)
{
	uint32_t size = s->svc.table_size, *v;
	int fd, ret = 0;

	fd = ctl_inner_map_fd(ctx->fds.maglev, s->svc.maglev_slot);
	if (fd < 0) {
		ctl_error(ctx, "service %s: no Maglev table in %s[%u]: %s",
			  s->label, AETH_MAP_MAGLEV, s->svc.maglev_slot,
			  strerror(-fd));
		return fd;
	}
	v = calloc(size ? size : 1, sizeof(*v));
	if (!v) {
		close(fd);
		ctl_error(ctx, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < size; i++) {
		if (bpf_map_lookup_elem(fd, &i, &v[i])) {
			ret = -errno;
			ctl_error(ctx, "service %s: reading Maglev slot %u: %s",
				  s->label, i, strerror(-ret));
			free(v);
			v = NULL;
			break;
		}
	}
	close(fd);
	*table = v;
	return ret;
}

static const char *backend_label(const struct ctl_backend *bes, size_t nb,
				 uint32_t id, char *buf)
{
	const struct ctl_backend *b;

	if (id == AETH_NO_BACKEND)
		return "-";
	b = ctl_backend_find(bes, nb, id);
	if (!b) {
		snprintf(buf, CTL_ADDR_LEN, "#%u", id);
		return buf;
	}
	return ctl_addr_str(&b->be.addr, b->be.family, buf);
}

static const char *count_state(const struct slot_count *c)
{
	return c->b ? ctl_backend_state(&c->b->be) : "unknown";
}

/* One --raw table entry: the backend's address, null for an empty slot. */
static json_t *raw_entry(const struct ctl_backend *bes, size_t nb,
			 uint32_t id)
{
	char addr[CTL_ADDR_LEN];

	if (id == AETH_NO_BACKEND)
		return json_null();
	return json_string(backend_label(bes, nb, id, addr));
}

/* What maglev show reads and prints. */
struct maglev_view {
	struct ctl_service s;
	char seed[33];		/* the cluster hash seed, hex */
	struct ctl_backend *bes;
	size_t nb;
	uint32_t *table, size;	/* the live table (NULL when size is 0) */
	uint32_t none;		/* slots naming no backend */
	struct slot_count *counts;
	size_t nc;
};

static void maglev_view_free(struct maglev_view *v)
{
	free(v->counts);
	free(v->table);
	free(v->bes);
}

/* The service, the seed, the backends and the live table. */
static int maglev_load(struct ctl_ctx *ctx, const char *arg,
		       struct maglev_view *v)
{
	struct aeth_node node;
	__u32 zero = 0;
	int ret;

	ret = ctl_service_resolve(ctx, arg, &v->s);
	if (ret)
		return ret;
	if (!v->s.live) {
		ctl_error(ctx, "service %s has no entry in %s", v->s.label,
			  AETH_MAP_SVC);
		return -ENOENT;
	}
	v->size = v->s.svc.table_size;
	if (bpf_map_lookup_elem(ctx->fds.node, &zero, &node)) {
		ret = -errno;
		ctl_error(ctx, "reading %s: %s", AETH_MAP_NODE, strerror(-ret));
		return ret;
	}
	for (int i = 0; i < 16; i++)
		snprintf(v->seed + 2 * i, 3, "%02x",
			 ((const uint8_t *)node.hash_seed)[i]);
	ret = ctl_backends_load(ctx, &v->bes, &v->nb);
	if (ret || !v->size)
		return ret;
	return read_table(ctx, &v->s, &v->table);
}

/* One row per backend of the service, plus any other id the table names
 * (which would be a bug worth seeing), sorted for printing. */
static int maglev_count(struct ctl_ctx *ctx, struct maglev_view *v)
{
	v->counts = calloc(v->nb + v->size + 1, sizeof(*v->counts));
	if (!v->counts) {
		ctl_error(ctx, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->nb; i++) {
		if (v->bes[i].be.svc_id != v->s.id)
			continue;
		v->counts[v->nc].id = v->bes[i].id;
		v->counts[v->nc].b = &v->bes[i];
		v->nc++;
	}
	for (uint32_t i = 0; i < v->size; i++) {
		uint32_t id = v->table[i];
		size_t k;

		if (id == AETH_NO_BACKEND) {
			v->none++;
			continue;
		}
		for (k = 0; k < v->nc && v->counts[k].id != id; k++)
			;
		if (k == v->nc) {
			v->counts[v->nc].id = id;
			v->counts[v->nc].b = ctl_backend_find(v->bes, v->nb, id);
			v->nc++;
		}
		v->counts[k].slots++;
	}
	qsort(v->counts, v->nc, sizeof(*v->counts), slot_count_cmp);
	return 0;
}

static int maglev_print_json(struct ctl_ctx *ctx, const struct maglev_view *v,
			     bool raw)
{
	json_t *doc, *arr = json_array();
	char addr[CTL_ADDR_LEN];

	for (size_t i = 0; i < v->nc; i++)
		json_array_append_new(arr, json_pack(
			"{s:s, s:I, s:f, s:s, s:I}",
			"address", backend_label(v->bes, v->nb, v->counts[i].id,
						 addr),
			"slots", (json_int_t)v->counts[i].slots,
			"share", v->size ? (double)v->counts[i].slots / v->size
					 : 0.0,
			"state", count_state(&v->counts[i]),
			"id", (json_int_t)v->counts[i].id));
	doc = json_pack("{s:s, s:I, s:s, s:o, s:I}", "service", v->s.label,
			"table_size", (json_int_t)v->size, "seed", v->seed,
			"backends", arr, "empty_slots", (json_int_t)v->none);
	if (raw) {
		json_t *t = json_array();

		for (uint32_t i = 0; i < v->size; i++)
			json_array_append_new(t, raw_entry(v->bes, v->nb,
							   v->table[i]));
		json_object_set_new(doc, "table", t);
	}
	return ctl_json_print(ctx, doc);
}

/* --raw as text: the backend of every slot. */
static void maglev_print_raw(const struct maglev_view *v)
{
	static const char *const rhdr[] = { "SLOT", "BACKEND" };
	struct ctl_table *rt = ctl_table_new(2, rhdr);

	putchar('\n');
	ctl_table_align_right(rt, 0);
	for (uint32_t i = 0; i < v->size; i++) {
		char addr[CTL_ADDR_LEN], sl[16];

		snprintf(sl, sizeof(sl), "%u", i);
		ctl_table_add(rt, sl, backend_label(v->bes, v->nb, v->table[i],
						    addr));
	}
	ctl_table_print(rt);
	ctl_table_free(rt);
}

static void maglev_print_text(const struct maglev_view *v, bool raw)
{
	static const char *const hdr[] = { "BACKEND", "SLOTS", "SHARE",
					   "STATE" };
	struct ctl_table *t;

	printf("service %s  table_size %u  seed %s\n\n", v->s.label, v->size,
	       v->seed);
	t = ctl_table_new(4, hdr);
	ctl_table_align_right(t, 1);
	ctl_table_align_right(t, 2);
	for (size_t i = 0; i < v->nc; i++) {
		char addr[CTL_ADDR_LEN], sl[16], sh[16];

		snprintf(sl, sizeof(sl), "%u", v->counts[i].slots);
		snprintf(sh, sizeof(sh), "%.2f%%",
			 v->size ? 100.0 * v->counts[i].slots / v->size : 0.0);
		ctl_table_add(t, backend_label(v->bes, v->nb, v->counts[i].id,
					       addr), sl,
			      sh, count_state(&v->counts[i]));
	}
	ctl_table_print(t);
	ctl_table_free(t);
	if (v->none)
		printf("\n%u slots name no backend\n", v->none);
	if (raw)
		maglev_print_raw(v);
}

static int maglev_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct ctl_opt opts[] = { { "raw", false } };
	const char *val[1], *pos[1];
	struct maglev_view v = { 0 };
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, opts, 1, val, pos, 1, 1);
	if (ret)
		return ret;
	ret = maglev_load(ctx, pos[0], &v);
	if (!ret)
		ret = maglev_count(ctx, &v);
	if (!ret && ctx->json)
		ret = maglev_print_json(ctx, &v, val[0] != NULL);
	else if (!ret)
		maglev_print_text(&v, val[0] != NULL);
	maglev_view_free(&v);
	return ret;
}

static const struct ctl_cmd maglev_verbs[] = {
	{ "show", maglev_show, "show SERVICE [--raw]" },
};

const struct ctl_object ctl_obj_maglev = {
	.name = "maglev",
	.verbs = maglev_verbs,
	.n_verbs = sizeof(maglev_verbs) / sizeof(maglev_verbs[0]),
	.summary = "A service's live Maglev table: slots and share per backend; "
		   "--raw the\nbackend of every slot.",
};
