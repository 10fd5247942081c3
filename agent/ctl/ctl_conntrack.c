/* aetherctl conntrack list: the connection table, filtered by service,
 * source or backend and limited, in a stable order. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define CT_DEFAULT_LIMIT 1000

/* An entry with the flow it stands for: the key holds the client and the
 * service id, the service the rest (its VIP, port and protocol). */
struct ct_row {
	struct aeth_ct_key key;
	struct aeth_ct_entry e;
	struct aeth_flow flow;
	const struct ctl_service *svc;	/* NULL: dst, dport, proto unknown */
};

struct ct_collect {
	struct ct_row *rows;
	size_t n, cap;
	bool by_svc, by_src;
	uint32_t svc_id;
	union aeth_addr src;
	uint8_t src_family;
	const struct ctl_service *svcs;	/* to name each entry's flow */
	size_t ns;
};

/* The flow of an entry of service svc (NULL: an id no service holds now;
 * the family is then told by the address, an IPv4 source leaving the rest
 * of it zero). */
static void ct_row_flow(struct ct_row *r, const struct ctl_service *svc)
{
	const union aeth_addr *a = &r->key.src;

	memset(&r->flow, 0, sizeof(r->flow));
	r->flow.src = r->key.src;
	r->flow.sport = r->key.sport;
	r->svc = svc;
	if (svc) {
		r->flow.dst = svc->info.vip;
		r->flow.dport = svc->info.port;
		r->flow.proto = svc->info.proto;
		r->flow.family = svc->info.family;
	} else {
		r->flow.family = a->v6[1] | a->v6[2] | a->v6[3] ?
				 AETH_AF_INET6 : AETH_AF_INET;
	}
}

static int ct_collect_one(const struct aeth_ct_key *k,
			  const struct aeth_ct_entry *e, void *arg)
{
	struct ct_collect *c = arg;
	struct ct_row row;

	if (c->by_svc && k->svc_id != c->svc_id)
		return 0;
	row.key = *k;
	row.e = *e;
	ct_row_flow(&row, ctl_service_by_id(c->svcs, c->ns, k->svc_id));
	if (c->by_src && ctl_addr_cmp(&row.flow.src, row.flow.family,
				      &c->src, c->src_family))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct ct_row *r = realloc(c->rows, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		c->rows = r;
		c->cap = cap;
	}
	c->rows[c->n++] = row;
	return 0;
}

static int ct_row_cmp(const void *pa, const void *pb)
{
	const struct ct_row *a = pa, *b = pb;
	int c;

	if (a->key.svc_id != b->key.svc_id)
		return a->key.svc_id < b->key.svc_id ? -1 : 1;
	c = ctl_addr_cmp(&a->flow.src, a->flow.family, &b->flow.src,
			 b->flow.family);
	if (c)
		return c;
	if (a->flow.sport != b->flow.sport)
		return ntohs(a->flow.sport) < ntohs(b->flow.sport) ? -1 : 1;
	return 0;
}

/* What conntrack list reads, for the rows to name their service and
 * backend. */
struct ct_listing {
	struct ct_collect c;
	struct ctl_service *svcs;
	size_t ns;
	struct ctl_backend *bes;
	size_t nb;
	uint64_t now;		/* coarse ns, the clock of the entries' seen_s */
};

/* The options: --limit into *limit, --service and --source into the
 * collection's filters, --backend into *be_addr and *be_family (0: none). */
static int conntrack_parse(struct ctl_ctx *ctx, int argc, char **argv,
			   struct ct_collect *c, uint32_t *limit,
			   union aeth_addr *be_addr, uint8_t *be_family)
{
	static const struct ctl_opt opts[] = { { "service", true },
					       { "limit", true },
					       { "source", true },
					       { "backend", true } };
	struct ctl_service s;
	const char *val[4];
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, opts, 4, val, NULL, 0, 0);
	if (ret)
		return ret;
	if (val[1] && ctl_parse_u32(val[1], limit))
		return ctl_usage_error(ctx, "%s: --limit: not a count: %s",
				       argv[0], val[1]);
	if (val[0]) {
		ret = ctl_service_resolve(ctx, val[0], &s);
		if (ret)
			return ret;
		c->by_svc = true;
		c->svc_id = s.id;
	}
	if (val[2]) {
		if (ctl_parse_addr(val[2], &c->src, &c->src_family))
			return ctl_usage_error(ctx, "%s: --source: not an IP "
					       "address: %s", argv[0], val[2]);
		c->by_src = true;
	}
	if (val[3] && ctl_parse_addr(val[3], be_addr, be_family))
		return ctl_usage_error(ctx, "%s: --backend: not an IP address: "
				       "%s", argv[0], val[3]);
	return 0;
}

/* Services, backends and the matching entries, sorted. */
static int conntrack_load(struct ctl_ctx *ctx, struct ct_listing *l,
			  const union aeth_addr *be_addr, uint8_t be_family)
{
	struct aeth_ct_table t;
	int ret;

	ret = ctl_services_load(ctx, &l->svcs, &l->ns);
	if (ret)
		return ret;
	l->c.svcs = l->svcs;
	l->c.ns = l->ns;
	ret = ctl_backends_load(ctx, &l->bes, &l->nb);
	if (ret)
		return ret;
	ret = ctl_ct_table(ctx, &t);	/* reports its own error */
	if (ret)
		return ret;
	ret = aeth_ct_table_foreach(&t, ct_collect_one, &l->c);
	if (ret == -ENOMEM)
		ctl_error(ctx, "out of memory");
	else if (ret)
		ctl_error(ctx, "reading %s: %s", AETH_MAP_CT, strerror(-ret));
	if (ret)
		return ret;
	if (be_family) {
		size_t kept = 0;

		for (size_t i = 0; i < l->c.n; i++) {
			const struct ctl_backend *b = ctl_backend_find(
				l->bes, l->nb, l->c.rows[i].e.backend_id);

			if (b && !ctl_addr_cmp(&b->be.addr, b->be.family,
					       be_addr, be_family))
				l->c.rows[kept++] = l->c.rows[i];
		}
		l->c.n = kept;
	}
	if (l->c.n)
		qsort(l->c.rows, l->c.n, sizeof(*l->c.rows), ct_row_cmp);
	l->now = ctl_now_coarse_ns();
	return 0;
}

/* A row's service label (in lbl when not a known service), backend
 * address (in be) and the time since the entry was written or refreshed
 * by its flow's packets (at most once a second, and only by packets that
 * reach the connection table: a busy flow's may be answered by its CPU's
 * memory for up to 100 ms), an upper bound as the entry keeps whole
 * seconds. */
static const char *ct_row_names(const struct ct_listing *l,
				const struct ct_row *r, char *lbl,
				size_t lbl_len, char *be, double *updated_s)
{
	const struct ctl_backend *b = ctl_backend_find(l->bes, l->nb,
						       r->e.backend_id);
	double now_s = l->now / 1e9;

	if (b)
		ctl_addr_str(&b->be.addr, b->be.family, be);
	else
		snprintf(be, CTL_ADDR_LEN, "#%u", r->e.backend_id);
	*updated_s = now_s > r->e.seen_s ? now_s - r->e.seen_s : 0.0;
	if (r->svc)
		return r->svc->label;
	snprintf(lbl, lbl_len, "#%u", r->key.svc_id);
	return lbl;
}

/* The first shown rows as a JSON array, element by element (a million
 * entries would not fit one document in memory). */
static int conntrack_print_json(struct ctl_ctx *ctx, const struct ct_listing *l,
				size_t shown)
{
	struct ctl_json_stream js;
	int ret = 0;

	ctl_json_stream_begin(ctx, &js);
	for (size_t i = 0; i < shown; i++) {
		const struct ct_row *row = &l->c.rows[i];
		const struct aeth_flow *f = &row->flow;
		char sa[CTL_ADDR_LEN], da[CTL_ADDR_LEN], be[CTL_ADDR_LEN];
		char lbl[24];
		double updated_s;
		const char *svc = ct_row_names(l, row, lbl, sizeof(lbl), be,
					       &updated_s);

		ret = ctl_json_stream_item(ctx, &js, json_pack(
			"{s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:I, s:b, s:f}",
			"service", svc,
			"protocol", row->svc ?
				    ctl_proto_str(f->proto) : "?",
			"src", ctl_addr_str(&f->src, f->family, sa),
			"sport", ntohs(f->sport),
			"dst", row->svc ?
			       ctl_addr_str(&f->dst, f->family, da) : "?",
			"dport", ntohs(f->dport),
			"backend", be,
			"backend_id", (json_int_t)row->e.backend_id,
			"confirmed", (int)row->e.confirmed,
			"updated_s_ago", updated_s));
		if (ret)
			break;
	}
	ctl_json_stream_end(ctx, &js);
	return ret;
}

static void conntrack_print_text(const struct ct_listing *l, size_t shown)
{
	static const char *const hdr[] = { "SERVICE", "PROTO", "SOURCE",
					   "DESTINATION", "BACKEND",
					   "CONFIRMED", "UPDATED" };
	struct ctl_table *t = ctl_table_new(7, hdr);

	if (t)
		ctl_table_align_right(t, 6);
	for (size_t i = 0; i < shown; i++) {
		const struct ct_row *row = &l->c.rows[i];
		const struct aeth_flow *f = &row->flow;
		char src[CTL_ADDR_LEN], dst[CTL_ADDR_LEN], be[CTL_ADDR_LEN];
		char lbl[24], updated[32];
		double updated_s;
		const char *svc = ct_row_names(l, row, lbl, sizeof(lbl), be,
					       &updated_s);

		ctl_endpoint_str(&f->src, f->family, ntohs(f->sport), src);
		if (row->svc)
			ctl_endpoint_str(&f->dst, f->family, ntohs(f->dport),
					 dst);
		else
			snprintf(dst, sizeof(dst), "?");
		snprintf(updated, sizeof(updated), "%.0fs ago", updated_s);
		ctl_table_add(t, svc, row->svc ?
			      ctl_proto_str(f->proto) : "?", src, dst, be,
			      row->e.confirmed ? "yes" : "no", updated);
	}
	ctl_table_print(t);
	ctl_table_free(t);
	if (shown < l->c.n)
		fprintf(stderr, "(%zu of %zu entries shown; --limit 0 "
			"shows all)\n", shown, l->c.n);
}

static int conntrack_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct ct_listing l = { 0 };
	uint32_t limit = CT_DEFAULT_LIMIT;
	union aeth_addr be_addr;
	uint8_t be_family = 0;
	size_t shown;
	int ret;

	ret = conntrack_parse(ctx, argc, argv, &l.c, &limit, &be_addr,
			      &be_family);
	if (ret)
		return ret;
	ret = conntrack_load(ctx, &l, &be_addr, be_family);
	if (ret)
		goto out;
	shown = limit && limit < l.c.n ? limit : l.c.n;
	if (ctx->json)
		ret = conntrack_print_json(ctx, &l, shown);
	else
		conntrack_print_text(&l, shown);
out:
	free(l.c.rows);
	free(l.bes);
	free(l.svcs);
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
	.summary = "The connection table: flow -> backend, whether a packet "
		   "confirmed the entry\nafter the one that wrote it (no: a "
		   "lone SYN, given up first when its bucket is full),\nand "
		   "how long ago it was updated (written at its first packet, "
		   "refreshed by its\npackets; whole seconds), sorted by "
		   "service, source. "
		   "--limit N shows the first N (default 1000, 0: all).",
};
