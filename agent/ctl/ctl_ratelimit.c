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

static int ratelimit_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const struct ctl_opt opts[] = { { "top", true } };
	static const char *const hdr[] = { "SOURCE", "ADMITTED", "DROPPED",
					   "LIMITED" };
	struct rl_collect c = { 0 };
	struct aeth_rl_svc_state svc_st = { 0 };
	uint32_t top = RL_DEFAULT_TOP;
	const char *val[1], *pos[1];
	struct ctl_service s;
	bool svc_limited;
	size_t shown;
	uint64_t now;
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, opts, 1, val, pos, 1, 1);
	if (ret)
		return ret;
	if (val[0] && ctl_parse_u32(val[0], &top))
		return ctl_usage_error(ctx, "%s: --top: not a count: %s",
				       argv[0], val[0]);
	ret = ctl_service_resolve(ctx, pos[0], &s);
	if (ret)
		return ret;
	c.svc_id = s.id;
	ret = ctl_map_foreach(ctx, ctx->fds.rl_src, AETH_MAP_RL_SRC,
			      sizeof(struct aeth_rl_src_key),
			      sizeof(struct aeth_rl_src_state), rl_collect_one,
			      &c);
	if (ret == -ENOMEM)
		ctl_error(ctx, "out of memory");
	if (ret)
		goto out;
	if (bpf_map_lookup_elem(ctx->fds.rl_svc, &s.id, &svc_st)) {
		ret = -errno;
		ctl_error(ctx, "reading %s[%u]: %s", AETH_MAP_RL_SVC, s.id,
			  strerror(errno));
		goto out;
	}
	now = ctl_now_ns();
	svc_limited = s.live && s.svc.svc_interval_ns &&
		      gcra_refusing(svc_st.tat_ns, now, s.svc.svc_tolerance_ns);
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), rl_row_cmp);
	shown = top && top < c.n ? top : c.n;

	json_t *arr = ctx->json ? json_array() : NULL;
	struct ctl_table *t = ctx->json ? NULL : ctl_table_new(4, hdr);

	if (t) {
		ctl_table_align_right(t, 1);
		ctl_table_align_right(t, 2);
	}
	for (size_t i = 0; i < shown; i++) {
		const struct rl_row *r = &c.v[i];
		uint8_t plen = r->key.family == AETH_AF_INET
				       ? s.info.rl_prefix_v4
				       : s.info.rl_prefix_v6;
		bool limited = s.live && s.svc.src_interval_ns &&
			       gcra_refusing(r->st.tat_ns, now,
					     s.svc.src_tolerance_ns);
		char a[CTL_ADDR_LEN], pfx[CTL_ADDR_LEN + 8], ad[24], dr[24];

		if (s.live)
			plen = r->key.family == AETH_AF_INET
				       ? s.svc.src_prefix_v4
				       : s.svc.src_prefix_v6;
		snprintf(pfx, sizeof(pfx), "%s/%u",
			 ctl_addr_str(&r->key.prefix, r->key.family, a), plen);
		if (arr) {
			json_array_append_new(arr, json_pack(
				"{s:s, s:I, s:I, s:b}", "prefix", pfx,
				"admitted", (json_int_t)r->st.admitted,
				"dropped", (json_int_t)r->st.dropped,
				"limited", limited));
			continue;
		}
		snprintf(ad, sizeof(ad), "%llu",
			 (unsigned long long)r->st.admitted);
		snprintf(dr, sizeof(dr), "%llu",
			 (unsigned long long)r->st.dropped);
		ctl_table_add(t, pfx, ad, dr, limited ? "yes" : "no");
	}

	if (arr) {
		ret = ctl_json_print(ctx, json_pack(
			"{s:s, s:I, s:I, s:i, s:i, s:I, s:I, s:b, s:I, s:o}",
			"service", s.label,
			"new_connections_per_second",
			(json_int_t)s.info.rl_per_source,
			"burst", (json_int_t)s.info.rl_burst,
			"source_prefix_v4", s.info.rl_prefix_v4,
			"source_prefix_v6", s.info.rl_prefix_v6,
			"service_new_connections_per_second",
			(json_int_t)s.info.rl_per_service,
			"service_dropped", (json_int_t)svc_st.dropped,
			"service_limited", svc_limited,
			"sources_total", (json_int_t)c.n,
			"sources", arr));
		goto out;
	}
	printf("service %s\n", s.label);
	if (s.info.rl_per_source)
		printf("  per source: %u/s, burst %u, per /%u (IPv4) /%u (IPv6)\n",
		       s.info.rl_per_source, s.info.rl_burst,
		       s.info.rl_prefix_v4, s.info.rl_prefix_v6);
	else
		printf("  per source: off\n");
	if (s.info.rl_per_service)
		printf("  service-wide: %u/s, %llu refused, %s\n",
		       s.info.rl_per_service,
		       (unsigned long long)svc_st.dropped,
		       svc_limited ? "refusing now" : "admitting");
	else
		printf("  service-wide: off\n");
	printf("  %zu source prefixes tracked, top %zu by refused "
	       "connections:\n\n", c.n, shown);
	ctl_table_print(t);
	ctl_table_free(t);
out:
	free(c.v);
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
