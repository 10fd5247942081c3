/* aetherctl conntrack list: the connection table, filtered by service,
 * source or backend and limited, in a stable order. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define CT_DEFAULT_LIMIT 1000

struct ct_row {
	struct aeth_flow flow;
	struct aeth_ct_entry e;
};

struct ct_collect {
	struct ct_row *rows;
	size_t n, cap;
	bool by_svc, by_src;
	uint32_t svc_id;
	union aeth_addr src;
	uint8_t src_family;
};

static int ct_collect_one(const void *key, const void *value, void *arg)
{
	struct ct_collect *c = arg;
	const struct aeth_ct_entry *e = value;

	const struct aeth_flow *f = key;

	if (c->by_svc && e->svc_id != c->svc_id)
		return 0;
	if (c->by_src && ctl_addr_cmp(&f->src, f->family, &c->src,
				      c->src_family))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct ct_row *r = realloc(c->rows, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		c->rows = r;
		c->cap = cap;
	}
	memcpy(&c->rows[c->n].flow, key, sizeof(struct aeth_flow));
	c->rows[c->n].e = *e;
	c->n++;
	return 0;
}

static int ct_row_cmp(const void *pa, const void *pb)
{
	const struct ct_row *a = pa, *b = pb;
	int c;

	if (a->e.svc_id != b->e.svc_id)
		return a->e.svc_id < b->e.svc_id ? -1 : 1;
	c = ctl_addr_cmp(&a->flow.src, a->flow.family, &b->flow.src,
			 b->flow.family);
	if (c)
		return c;
	if (a->flow.sport != b->flow.sport)
		return ntohs(a->flow.sport) < ntohs(b->flow.sport) ? -1 : 1;
	c = ctl_addr_cmp(&a->flow.dst, a->flow.family, &b->flow.dst,
			 b->flow.family);
	if (c)
		return c;
	if (a->flow.dport != b->flow.dport)
		return ntohs(a->flow.dport) < ntohs(b->flow.dport) ? -1 : 1;
	return (int)a->flow.proto - (int)b->flow.proto;
}

static int conntrack_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct ctl_opt opts[] = { { "service", true },
					       { "limit", true },
					       { "source", true },
					       { "backend", true } };
	static const char *const hdr[] = { "SERVICE", "PROTO", "SOURCE",
					   "DESTINATION", "BACKEND", "AGE" };
	struct ct_collect c = { 0 };
	struct ctl_service *svcs = NULL, s;
	struct ctl_backend *bes = NULL;
	uint32_t limit = CT_DEFAULT_LIMIT;
	union aeth_addr be_addr;
	uint8_t be_family = 0;
	const char *val[4];
	size_t ns, nb, shown;
	uint64_t now;
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, opts, 4, val, NULL, 0, 0);
	if (ret)
		return ret;
	if (val[1] && ctl_parse_u32(val[1], &limit))
		return ctl_usage_error(ctx, "%s: --limit: not a count: %s",
				       argv[0], val[1]);
	if (val[0]) {
		ret = ctl_service_resolve(ctx, val[0], &s);
		if (ret)
			return ret;
		c.by_svc = true;
		c.svc_id = s.id;
	}
	if (val[2]) {
		if (ctl_parse_addr(val[2], &c.src, &c.src_family))
			return ctl_usage_error(ctx, "%s: --source: not an IP "
					       "address: %s", argv[0], val[2]);
		c.by_src = true;
	}
	if (val[3] && ctl_parse_addr(val[3], &be_addr, &be_family))
		return ctl_usage_error(ctx, "%s: --backend: not an IP address: "
				       "%s", argv[0], val[3]);
	ret = ctl_services_load(ctx, &svcs, &ns);
	if (ret)
		return ret;
	ret = ctl_backends_load(ctx, &bes, &nb);
	if (ret)
		goto out;
	ret = ctl_map_foreach(ctx, ctx->fds.ct, AETH_MAP_CT,
			      sizeof(struct aeth_flow),
			      sizeof(struct aeth_ct_entry), ct_collect_one, &c);
	if (ret == -ENOMEM)
		ctl_error(ctx, "out of memory");
	if (ret)
		goto out;
	if (be_family) {
		size_t kept = 0;

		for (size_t i = 0; i < c.n; i++) {
			const struct ctl_backend *b = ctl_backend_find(
				bes, nb, c.rows[i].e.backend_id);

			if (b && !ctl_addr_cmp(&b->be.addr, b->be.family,
					       &be_addr, be_family))
				c.rows[kept++] = c.rows[i];
		}
		c.n = kept;
	}
	if (c.n)
		qsort(c.rows, c.n, sizeof(*c.rows), ct_row_cmp);
	shown = limit && limit < c.n ? limit : c.n;
	now = ctl_now_coarse_ns();

	struct ctl_json_stream js;
	struct ctl_table *t = ctx->json ? NULL : ctl_table_new(6, hdr);

	/* a million entries would not fit one document in memory */
	if (ctx->json)
		ctl_json_stream_begin(ctx, &js);

	if (t)
		ctl_table_align_right(t, 5);
	for (size_t i = 0; i < shown; i++) {
		const struct aeth_flow *f = &c.rows[i].flow;
		const struct aeth_ct_entry *e = &c.rows[i].e;
		const struct ctl_backend *b = ctl_backend_find(bes, nb,
							       e->backend_id);
		char src[CTL_ADDR_LEN], dst[CTL_ADDR_LEN], be[CTL_ADDR_LEN];
		char lbl[24], age[32];
		const char *svc = ctl_service_label(svcs, ns, e->svc_id, lbl,
						    sizeof(lbl));
		double age_s = now > e->created_ns
				       ? (now - e->created_ns) / 1e9 : 0.0;

		if (b)
			ctl_addr_str(&b->be.addr, b->be.family, be);
		else
			snprintf(be, sizeof(be), "#%u", e->backend_id);
		if (ctx->json) {
			char sa[CTL_ADDR_LEN], da[CTL_ADDR_LEN];

			ret = ctl_json_stream_item(ctx, &js, json_pack(
				"{s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:I, s:f}",
				"service", svc,
				"protocol", ctl_proto_str(f->proto),
				"src", ctl_addr_str(&f->src, f->family, sa),
				"sport", ntohs(f->sport),
				"dst", ctl_addr_str(&f->dst, f->family, da),
				"dport", ntohs(f->dport),
				"backend", be,
				"backend_id", (json_int_t)e->backend_id,
				"age_s", age_s));
			if (ret)
				break;
			continue;
		}
		ctl_endpoint_str(&f->src, f->family, ntohs(f->sport), src);
		ctl_endpoint_str(&f->dst, f->family, ntohs(f->dport), dst);
		snprintf(age, sizeof(age), "%.1fs", age_s);
		ctl_table_add(t, svc, ctl_proto_str(f->proto), src, dst, be, age);
	}
	if (ctx->json) {
		ctl_json_stream_end(ctx, &js);
	} else {
		ctl_table_print(t);
		ctl_table_free(t);
		if (shown < c.n)
			fprintf(stderr, "(%zu of %zu entries shown; --limit 0 "
				"shows all)\n", shown, c.n);
	}
out:
	free(c.rows);
	free(bes);
	free(svcs);
	return ret;
}

static const struct ctl_cmd conntrack_verbs[] = {
	{ "list", conntrack_list,
	  "list [--service SERVICE] [--source IP] [--backend IP] [--limit N]" },
};

const struct ctl_object ctl_obj_conntrack = {
	.name = "conntrack",
	.verbs = conntrack_verbs,
	.n_verbs = sizeof(conntrack_verbs) / sizeof(conntrack_verbs[0]),
	.summary = "The connection table: flow -> backend, with the age of "
		   "each entry, sorted by\nservice, source, destination. "
		   "--limit N shows the first N (default 1000, 0: all).",
};
