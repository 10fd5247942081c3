/* aetherctl service list: every configured service with its settings. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"

static json_t *rate_limit_json(const struct aeth_svcinfo *in)
{
	if (!in->rl_per_source && !in->rl_per_service)
		return json_null();
	return json_pack("{s:I, s:I, s:i, s:i, s:I}",
			 "new_connections_per_second", (json_int_t)in->rl_per_source,
			 "burst", (json_int_t)in->rl_burst,
			 "source_prefix_v4", in->rl_prefix_v4,
			 "source_prefix_v6", in->rl_prefix_v6,
			 "service_new_connections_per_second",
			 (json_int_t)in->rl_per_service);
}

static void rate_limit_text(const struct aeth_svcinfo *in, char *buf,
			    size_t len)
{
	int off = 0;

	buf[0] = '\0';
	if (in->rl_per_source)
		off = snprintf(buf, len, "%u/s burst %u per /%u,/%u",
			       in->rl_per_source, in->rl_burst,
			       in->rl_prefix_v4, in->rl_prefix_v6);
	if (in->rl_per_service)
		snprintf(buf + off, len - off, "%sservice %u/s", off ? "; " : "",
			 in->rl_per_service);
	if (!buf[0])
		snprintf(buf, len, "off");
}

static int service_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const hdr[] = { "NAME", "VIP", "PORT", "PROTO",
					   "TABLE", "BACKENDS", "ACL",
					   "RATE LIMIT" };
	struct ctl_service *v;
	struct ctl_table *t;
	json_t *arr;
	size_t n;
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, NULL, 0, NULL, NULL, 0, 0);
	if (ret)
		return ret;
	ret = ctl_services_load(ctx, &v, &n);
	if (ret)
		return ret;

	if (ctx->json) {
		arr = json_array();
		for (size_t i = 0; i < n; i++) {
			const struct aeth_svcinfo *in = &v[i].info;
			char vip[CTL_ADDR_LEN];

			json_array_append_new(arr, json_pack(
				"{s:s, s:s, s:i, s:s, s:I, s:I, s:b, s:I, s:o, s:I, s:b}",
				"name", v[i].label,
				"vip", ctl_addr_str(&in->vip, in->family, vip),
				"port", ntohs(in->port),
				"protocol", ctl_proto_str(in->proto),
				"table_size", (json_int_t)in->table_size,
				"backends", (json_int_t)in->n_backends,
				"acl_enabled", in->acl_enabled != 0,
				"acl_cidrs", (json_int_t)in->acl_cidrs,
				"rate_limit", rate_limit_json(in),
				"id", (json_int_t)v[i].id,
				"live", v[i].live));
		}
		free(v);
		return ctl_json_print(ctx, arr);
	}

	t = ctl_table_new(8, hdr);
	ctl_table_align_right(t, 2);
	ctl_table_align_right(t, 4);
	ctl_table_align_right(t, 5);
	for (size_t i = 0; i < n; i++) {
		const struct aeth_svcinfo *in = &v[i].info;
		char vip[CTL_ADDR_LEN], port[8], ts[16], nb[16], acl[32], rl[96];

		snprintf(port, sizeof(port), "%u", ntohs(in->port));
		snprintf(ts, sizeof(ts), "%u", in->table_size);
		snprintf(nb, sizeof(nb), "%u", in->n_backends);
		if (in->acl_enabled)
			snprintf(acl, sizeof(acl), "%u cidrs", in->acl_cidrs);
		else
			snprintf(acl, sizeof(acl), "off");
		rate_limit_text(in, rl, sizeof(rl));
		ctl_table_add(t, v[i].label,
			      ctl_addr_str(&in->vip, in->family, vip), port,
			      ctl_proto_str(in->proto), ts, nb, acl, rl);
	}
	ctl_table_print(t);
	ctl_table_free(t);
	free(v);
	return 0;
}

static const struct ctl_cmd service_verbs[] = {
	{ "list", service_list, "list" },
};

const struct ctl_object ctl_obj_service = {
	.name = "service",
	.verbs = service_verbs,
	.n_verbs = sizeof(service_verbs) / sizeof(service_verbs[0]),
	.summary = "Configured services: VIP, port, protocol, Maglev table "
		   "size, backends,\nauthorized networks and rate limits.",
};
