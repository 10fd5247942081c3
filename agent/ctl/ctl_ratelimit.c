/* aetherctl ratelimit list: a service's limiter settings, its service-wide
 * bucket, and the source prefixes with the most refused connections. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "aether/ratelimit_rule.h"
#include "ctl.h"

#define RL_DEFAULT_TOP 20

struct rl_row {
	struct aeth_rl_src_key key;
	struct aeth_rl_src_state st;
};

struct rl_collect {
	uint32_t svc_id;
	struct rl_row *v;
	size_t n, cap;
};

static int rl_collect_one(const void *key, const void *value, void *arg)
{
	const struct aeth_rl_src_key *k = key;
	struct rl_collect *c = arg;

	if (k->svc_id != c->svc_id)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		struct rl_row *nv = realloc(c->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = cap;
	}
	c->v[c->n].key = *k;
	memcpy(&c->v[c->n].st, value, sizeof(struct aeth_rl_src_state));
	c->n++;
	return 0;
}

/* Most refused first, then most admitted, then by prefix. */
static int rl_row_cmp(const void *pa, const void *pb)
{
	const struct rl_row *a = pa, *b = pb;

	if (a->st.dropped != b->st.dropped)
		return a->st.dropped > b->st.dropped ? -1 : 1;
	if (a->st.admitted != b->st.admitted)
		return a->st.admitted > b->st.admitted ? -1 : 1;
	return ctl_addr_cmp(&a->key.prefix, a->key.family, &b->key.prefix,
			    b->key.family);
}

/* The bucket refuses while its theoretical arrival time is more than the
 * tolerance ahead of now (GCRA, aether/ratelimit_rule.h). */
static bool gcra_refusing(uint64_t tat, uint64_t now, uint64_t tolerance)
{
	return !aeth_gcra_conforms(tat, now, tolerance);
}

/* What ratelimit list reads about one service. */
struct rl_listing {
	struct ctl_service s;
	struct rl_collect c;		/* its sources, most refused first */
	struct aeth_rl_svc_state svc_st;
	bool svc_limited;		/* the service cap refuses now */
	uint64_t now;
	size_t shown;
};

/* The service's buckets: its sources and the service-wide one. */
static int ratelimit_load(struct ctl_ctx *ctx, const char *arg, uint32_t top,
			  struct rl_listing *l)
{
	int ret;

	ret = ctl_service_resolve(ctx, arg, &l->s);
	if (ret)
		return ret;
	l->c.svc_id = l->s.id;
	ret = ctl_map_foreach(ctx, ctx->fds.rl_src, AETH_MAP_RL_SRC,
			      sizeof(struct aeth_rl_src_key),
			      sizeof(struct aeth_rl_src_state), rl_collect_one,
			      &l->c);
	if (ret == -ENOMEM)
		ctl_error(ctx, "out of memory");
	if (ret)
		return ret;
	if (bpf_map_lookup_elem(ctx->fds.rl_svc, &l->s.id, &l->svc_st)) {
		ret = -errno;
		ctl_error(ctx, "reading %s[%u]: %s", AETH_MAP_RL_SVC, l->s.id,
			  strerror(-ret));
		return ret;
	}
	l->now = ctl_now_coarse_ns();
	l->svc_limited = l->s.live && l->s.svc.svc_interval_ns &&
			 gcra_refusing(l->svc_st.tat_ns, l->now,
				       l->s.svc.svc_tolerance_ns);
	if (l->c.n)
		qsort(l->c.v, l->c.n, sizeof(*l->c.v), rl_row_cmp);
	l->shown = top && top < l->c.n ? top : l->c.n;
	return 0;
}

/* A source row's prefix ("198.51.100.0/24", the live prefix length when
 * the service is live, else the configured one) and whether its bucket
 * refuses now. */
static bool rl_row_describe(const struct rl_listing *l, const struct rl_row *r,
			    char *pfx, size_t len)
{
	const struct ctl_service *s = &l->s;
	uint8_t plen = r->key.family == AETH_AF_INET ? s->info.rl_prefix_v4
						     : s->info.rl_prefix_v6;
	char a[CTL_ADDR_LEN];

	if (s->live)
		plen = r->key.family == AETH_AF_INET ? s->svc.src_prefix_v4
						     : s->svc.src_prefix_v6;
	snprintf(pfx, len, "%s/%u",
		 ctl_addr_str(&r->key.prefix, r->key.family, a), plen);
	return s->live && s->svc.src_interval_ns &&
	       gcra_refusing(r->st.tat_ns, l->now, s->svc.src_tolerance_ns);
}

static int ratelimit_print_json(struct ctl_ctx *ctx, const struct rl_listing *l)
{
	const struct ctl_service *s = &l->s;
	json_t *arr = json_array();

	for (size_t i = 0; i < l->shown; i++) {
		const struct rl_row *r = &l->c.v[i];
		char pfx[CTL_ADDR_LEN + 8];
		bool limited = rl_row_describe(l, r, pfx, sizeof(pfx));

		json_array_append_new(arr, json_pack(
			"{s:s, s:I, s:I, s:b}", "prefix", pfx,
			"admitted", (json_int_t)r->st.admitted,
			"dropped", (json_int_t)r->st.dropped,
			"limited", limited));
	}
	return ctl_json_print(ctx, json_pack(
		"{s:s, s:I, s:I, s:i, s:i, s:I, s:I, s:b, s:I, s:o}",
		"service", s->label,
		"new_connections_per_second",
		(json_int_t)s->info.rl_per_source,
		"burst", (json_int_t)s->info.rl_burst,
		"source_prefix_v4", s->info.rl_prefix_v4,
		"source_prefix_v6", s->info.rl_prefix_v6,
		"service_new_connections_per_second",
		(json_int_t)s->info.rl_per_service,
		"service_dropped", (json_int_t)l->svc_st.dropped,
		"service_limited", l->svc_limited,
		"sources_total", (json_int_t)l->c.n,
		"sources", arr));
}

static void ratelimit_print_text(const struct rl_listing *l)
{
	static const char *const hdr[] = { "SOURCE", "ADMITTED", "DROPPED",
					   "LIMITED" };
	const struct ctl_service *s = &l->s;
	struct ctl_table *t = ctl_table_new(4, hdr);

	if (t) {
		ctl_table_align_right(t, 1);
		ctl_table_align_right(t, 2);
	}
	for (size_t i = 0; i < l->shown; i++) {
		const struct rl_row *r = &l->c.v[i];
		char pfx[CTL_ADDR_LEN + 8], ad[24], dr[24];
		bool limited = rl_row_describe(l, r, pfx, sizeof(pfx));

		snprintf(ad, sizeof(ad), "%llu",
			 (unsigned long long)r->st.admitted);
		snprintf(dr, sizeof(dr), "%llu",
			 (unsigned long long)r->st.dropped);
		ctl_table_add(t, pfx, ad, dr, limited ? "yes" : "no");
	}
	printf("service %s\n", s->label);
	if (s->info.rl_per_source)
		printf("  per source: %u/s, burst %u, per /%u (IPv4) /%u (IPv6)\n",
		       s->info.rl_per_source, s->info.rl_burst,
		       s->info.rl_prefix_v4, s->info.rl_prefix_v6);
	else
		printf("  per source: off\n");
	if (s->info.rl_per_service)
		printf("  service-wide: %u/s, %llu refused, %s\n",
		       s->info.rl_per_service,
		       (unsigned long long)l->svc_st.dropped,
		       l->svc_limited ? "refusing now" : "admitting");
	else
		printf("  service-wide: off\n");
	printf("  %zu source prefixes tracked, top %zu by refused "
	       "connections:\n\n", l->c.n, l->shown);
	ctl_table_print(t);
	ctl_table_free(t);
}

static int ratelimit_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct ctl_opt opts[] = { { "top", true } };
	struct rl_listing l = { 0 };
	uint32_t top = RL_DEFAULT_TOP;
	const char *val[1], *pos[1];
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, opts, 1, val, pos, 1, 1);
	if (ret)
		return ret;
	if (val[0] && ctl_parse_u32(val[0], &top))
		return ctl_usage_error(ctx, "%s: --top: not a count: %s",
				       argv[0], val[0]);
	ret = ratelimit_load(ctx, pos[0], top, &l);
	if (!ret && ctx->json)
		ret = ratelimit_print_json(ctx, &l);
	else if (!ret)
		ratelimit_print_text(&l);
	free(l.c.v);
	return ret;
}

static const struct ctl_cmd ratelimit_verbs[] = {
	{ "list", ratelimit_list,
	  "list SERVICE [--top N]" },
};

const struct ctl_object ctl_obj_ratelimit = {
	.name = "ratelimit",
	.verbs = ratelimit_verbs,
	.n_verbs = sizeof(ratelimit_verbs) / sizeof(ratelimit_verbs[0]),
	.summary = "New-connection rate limits of a service: settings, the "
		   "service-wide bucket,\nand the source prefixes refused most "
		   "(--top N: the first N, default 20, 0: all).",
};
