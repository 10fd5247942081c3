/* aetherctl acl list: the authorized networks a service enforces, read from
 * its live LPM trie. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aether/acl_key.h"
#include "ctl.h"

struct acl_cidr {
	union aeth_addr addr;
	uint8_t family;
	uint8_t prefixlen;
};

struct acl_collect {
	struct acl_cidr *v;
	size_t n, cap;
};

/* The trie keeps IPv4 as ::ffff:a.b.c.d/(len + 96), and the value names the
 * family of the listed prefix (an IPv6 prefix may lie in that range too):
 * aether/acl_key.h. */
static int acl_collect_one(const void *key, const void *value, void *arg)
{
	__u32 family = *(const __u32 *)value, plen;
	struct acl_collect *c = arg;
	struct acl_cidr *e;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct acl_cidr *nv = realloc(c->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = cap;
	}
	e = &c->v[c->n++];
	memset(e, 0, sizeof(*e));
	aeth_acl_key_prefix(key, family, &e->family, &e->addr, &plen);
	e->prefixlen = (uint8_t)plen;
	return 0;
}

static int acl_cidr_cmp(const void *pa, const void *pb)
{
	const struct acl_cidr *a = pa, *b = pb;
	int c = ctl_addr_cmp(&a->addr, a->family, &b->addr, b->family);

	if (c)
		return c;
	return (int)a->prefixlen - (int)b->prefixlen;
}

static int acl_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const hdr[] = { "CIDR" };
	struct acl_collect c = { 0 };
	struct ctl_service s;
	const char *pos[1];
	bool enabled;
	int ret, fd = -1;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, NULL, 0, NULL, pos, 1, 1);
	if (ret)
		return ret;
	ret = ctl_service_resolve(ctx, pos[0], &s);
	if (ret)
		return ret;
	if (!s.live) {
		ctl_error(ctx, "service %s has no entry in %s", s.label,
			  AETH_MAP_SVC);
		return -ENOENT;
	}
	/* what the data path enforces: the live entry's flag and slot */
	enabled = s.svc.flags & AETH_SVC_F_ACL;
	if (enabled) {
		fd = ctl_inner_map_fd(ctx->fds.acl, s.svc.acl_slot);
		/* no trie behind an enabled ACL lets nobody in */
		if (fd >= 0) {
			ret = ctl_map_foreach(ctx, fd, AETH_MAP_ACL,
					      sizeof(struct aeth_acl_key),
					      sizeof(__u32), acl_collect_one,
					      &c);
			close(fd);
			if (ret == -ENOMEM)
				ctl_error(ctx, "out of memory");
			if (ret)
				goto out;
		}
	}
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), acl_cidr_cmp);

	if (ctx->json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < c.n; i++) {
			char a[CTL_ADDR_LEN], cidr[CTL_ADDR_LEN + 8];

			snprintf(cidr, sizeof(cidr), "%s/%u",
				 ctl_addr_str(&c.v[i].addr, c.v[i].family, a),
				 c.v[i].prefixlen);
			json_array_append_new(arr, json_string(cidr));
		}
		ret = ctl_json_print(ctx, json_pack("{s:s, s:b, s:o}",
						    "service", s.label,
						    "enabled", enabled,
						    "cidrs", arr));
		goto out;
	}
	if (!enabled) {
		printf("service %s: authorized networks off (every source may "
		       "connect)\n", s.label);
		goto out;
	}
	printf("service %s: %zu authorized networks%s\n\n", s.label, c.n,
	       c.n ? "" : " (nobody may connect)");
	struct ctl_table *t = ctl_table_new(1, hdr);

	for (size_t i = 0; i < c.n; i++) {
		char a[CTL_ADDR_LEN], cidr[CTL_ADDR_LEN + 8];

		snprintf(cidr, sizeof(cidr), "%s/%u",
			 ctl_addr_str(&c.v[i].addr, c.v[i].family, a),
			 c.v[i].prefixlen);
		ctl_table_add(t, cidr);
	}
	ctl_table_print(t);
	ctl_table_free(t);
out:
	free(c.v);
	return ret;
}

static const struct ctl_cmd acl_verbs[] = {
	{ "list", acl_list, "list SERVICE" },
};

const struct ctl_object ctl_obj_acl = {
	.name = "acl",
	.verbs = acl_verbs,
	.n_verbs = sizeof(acl_verbs) / sizeof(acl_verbs[0]),
	.summary = "The authorized networks (source CIDR allow-list) a service "
		   "enforces.",
};
