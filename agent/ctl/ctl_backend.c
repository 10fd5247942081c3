/* aetherctl backend list: every backend with its service, state and
 * counters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct backend_row {
	const char *service;
	const struct ctl_backend *b;
	struct aeth_be_stats st;
};

static int backend_row_cmp(const void *pa, const void *pb)
{
	const struct backend_row *a = pa, *b = pb;
	int c = strcmp(a->service, b->service);

	if (c)
		return c;
	c = ctl_addr_cmp(&a->b->be.addr, a->b->be.family, &b->b->be.addr,
			 b->b->be.family);
	if (c)
		return c;
	return a->b->id < b->b->id ? -1 : a->b->id > b->b->id;
}

static int backend_print_json(struct ctl_ctx *ctx,
			      const struct backend_row *rows, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < n; i++) {
		const struct aeth_backend *be = &rows[i].b->be;
		char addr[CTL_ADDR_LEN];

		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:i, s:s, s:b, s:I, s:I, s:I}",
			"service", rows[i].service,
			"address", ctl_addr_str(&be->addr, be->family, addr),
			"weight", be->weight,
			"state", ctl_backend_state(be),
			"healthy", !(be->flags & AETH_BE_F_UNHEALTHY),
			"id", (json_int_t)rows[i].b->id,
			"packets", (json_int_t)rows[i].st.packets,
			"bytes", (json_int_t)rows[i].st.bytes));
	}
	return ctl_json_print(ctx, arr);
}

static void backend_print_text(const struct backend_row *rows, size_t n)
{
	static const char *const hdr[] = { "SERVICE", "ADDRESS", "WEIGHT",
					   "STATE", "HEALTHY", "PACKETS",
					   "BYTES" };
	struct ctl_table *t = ctl_table_new(7, hdr);

	ctl_table_align_right(t, 2);
	ctl_table_align_right(t, 5);
	ctl_table_align_right(t, 6);
	for (size_t i = 0; i < n; i++) {
		const struct aeth_backend *be = &rows[i].b->be;
		char addr[CTL_ADDR_LEN], w[8], p[24], by[24];

		snprintf(w, sizeof(w), "%u", be->weight);
		snprintf(p, sizeof(p), "%llu",
			 (unsigned long long)rows[i].st.packets);
		snprintf(by, sizeof(by), "%llu",
			 (unsigned long long)rows[i].st.bytes);
		ctl_table_add(t, rows[i].service,
			      ctl_addr_str(&be->addr, be->family, addr), w,
			      ctl_backend_state(be),
			      be->flags & AETH_BE_F_UNHEALTHY ? "no" : "yes", p,
			      by);
	}
	ctl_table_print(t);
	ctl_table_free(t);
}

static int backend_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ctl_service *svcs = NULL;
	struct ctl_backend *bes = NULL;
	struct backend_row *rows = NULL;
	char (*labels)[24] = NULL;
	size_t ns, nb;
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, NULL, 0, NULL, NULL, 0, 0);
	if (ret)
		return ret;
	ret = ctl_services_load(ctx, &svcs, &ns);
	if (ret)
		return ret;
	ret = ctl_backends_load(ctx, &bes, &nb);
	if (ret)
		goto out;
	rows = calloc(nb ? nb : 1, sizeof(*rows));
	labels = calloc(nb ? nb : 1, sizeof(*labels));
	if (!rows || !labels) {
		ctl_error(ctx, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nb; i++) {
		rows[i].b = &bes[i];
		rows[i].service = ctl_service_label(svcs, ns, bes[i].be.svc_id,
						    labels[i], sizeof(labels[i]));
		/* counters are optional detail: a failed read shows zeros */
		aeth_percpu_sum_u64(ctx->fds.be_stats, bes[i].id, &rows[i].st,
				    sizeof(rows[i].st));
	}
	if (nb)
		qsort(rows, nb, sizeof(*rows), backend_row_cmp);

	if (ctx->json)
		ret = backend_print_json(ctx, rows, nb);
	else
		backend_print_text(rows, nb);
out:
	free(labels);
	free(rows);
	free(bes);
	free(svcs);
	return ret;
}

static const struct ctl_cmd backend_verbs[] = {
	{ "list", backend_list, "list" },
};

const struct ctl_object ctl_obj_backend = {
	.name = "backend",
	.verbs = backend_verbs,
	.n_verbs = sizeof(backend_verbs) / sizeof(backend_verbs[0]),
	.summary = "Backends of every service: address, weight, state "
		   "(active, draining),\nhealth and forwarded packets.",
};
