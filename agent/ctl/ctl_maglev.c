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
				  s->label, i, strerror(errno));
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

static int maglev_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct ctl_opt opts[] = { { "raw", false } };
	static const char *const hdr[] = { "BACKEND", "SLOTS", "SHARE",
					   "STATE" };
	const char *val[1], *pos[1];
	struct ctl_backend *bes = NULL;
	struct slot_count *counts = NULL;
	uint32_t *table = NULL, none = 0, size;
	struct aeth_node node;
	struct ctl_service s;
	size_t nb, nc = 0;
	char seed[33];
	__u32 zero = 0;
	bool raw;
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, opts, 1, val, pos, 1, 1);
	if (ret)
		return ret;
	raw = val[0] != NULL;
	ret = ctl_service_resolve(ctx, pos[0], &s);
	if (ret)
		return ret;
	if (!s.live) {
		ctl_error(ctx, "service %s has no entry in %s", s.label,
			  AETH_MAP_SVC);
		return -ENOENT;
	}
	size = s.svc.table_size;
	if (bpf_map_lookup_elem(ctx->fds.node, &zero, &node)) {
		ret = -errno;
		ctl_error(ctx, "reading %s: %s", AETH_MAP_NODE, strerror(errno));
		return ret;
	}
	for (int i = 0; i < 16; i++)
		snprintf(seed + 2 * i, 3, "%02x",
			 ((const uint8_t *)node.hash_seed)[i]);
	ret = ctl_backends_load(ctx, &bes, &nb);
	if (ret)
		return ret;
	if (size) {
		ret = read_table(ctx, &s, &table);
		if (ret)
			goto out;
	}

	/* one row per backend of the service, plus any other id the table
	 * names (which would be a bug worth seeing) */
	counts = calloc(nb + size + 1, sizeof(*counts));
	if (!counts) {
		ctl_error(ctx, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nb; i++) {
		if (bes[i].be.svc_id != s.id)
			continue;
		counts[nc].id = bes[i].id;
		counts[nc].b = &bes[i];
		nc++;
	}
	for (uint32_t i = 0; i < size; i++) {
		size_t k;

		if (table[i] == AETH_NO_BACKEND) {
			none++;
			continue;
		}
		for (k = 0; k < nc && counts[k].id != table[i]; k++)
			;
		if (k == nc) {
			counts[nc].id = table[i];
			counts[nc].b = ctl_backend_find(bes, nb, table[i]);
			nc++;
		}
		counts[k].slots++;
	}
	qsort(counts, nc, sizeof(*counts), slot_count_cmp);

	if (ctx->json) {
		json_t *doc, *arr = json_array();
		char addr[CTL_ADDR_LEN];

		for (size_t i = 0; i < nc; i++)
			json_array_append_new(arr, json_pack(
				"{s:s, s:I, s:f, s:s, s:I}",
				"address", backend_label(bes, nb, counts[i].id, addr),
				"slots", (json_int_t)counts[i].slots,
				"share", size ? (double)counts[i].slots / size : 0.0,
				"state", count_state(&counts[i]),
				"id", (json_int_t)counts[i].id));
		doc = json_pack("{s:s, s:I, s:s, s:o, s:I}", "service", s.label,
				"table_size", (json_int_t)size, "seed", seed,
				"backends", arr, "empty_slots", (json_int_t)none);
		if (raw) {
			json_t *t = json_array();

			for (uint32_t i = 0; i < size; i++)
				json_array_append_new(t, raw_entry(bes, nb, table[i]));
			json_object_set_new(doc, "table", t);
		}
		ret = ctl_json_print(ctx, doc);
		goto out;
	}

	printf("service %s  table_size %u  seed %s\n\n", s.label, size, seed);
	struct ctl_table *t = ctl_table_new(4, hdr);

	ctl_table_align_right(t, 1);
	ctl_table_align_right(t, 2);
	for (size_t i = 0; i < nc; i++) {
		char addr[CTL_ADDR_LEN], sl[16], sh[16];

		snprintf(sl, sizeof(sl), "%u", counts[i].slots);
		snprintf(sh, sizeof(sh), "%.2f%%",
			 size ? 100.0 * counts[i].slots / size : 0.0);
		ctl_table_add(t, backend_label(bes, nb, counts[i].id, addr), sl,
			      sh, count_state(&counts[i]));
	}
	ctl_table_print(t);
	ctl_table_free(t);
	if (none)
		printf("\n%u slots name no backend\n", none);
	if (raw) {
		static const char *const rhdr[] = { "SLOT", "BACKEND" };
		struct ctl_table *rt = ctl_table_new(2, rhdr);

		putchar('\n');
		ctl_table_align_right(rt, 0);
		for (uint32_t i = 0; i < size; i++) {
			char addr[CTL_ADDR_LEN], sl[16];

			snprintf(sl, sizeof(sl), "%u", i);
			ctl_table_add(rt, sl, backend_label(bes, nb, table[i], addr));
		}
		ctl_table_print(rt);
		ctl_table_free(rt);
	}
out:
	free(counts);
	free(table);
	free(bes);
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
