/* aetherctl acl list: the authorized networks a service enforces, read from
 * its live LPM trie, and whether IPv4 sources are answered by the list's
 * compiled form (aeth_acl_rng), checked against the trie. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include "aether/acl_key.h"
#include "acl_compile.h"
#include "ctl.h"

struct acl_cidr {
	union aeth_addr addr;
	uint8_t family;
	uint8_t prefixlen;
};

struct acl_collect {
	struct aeth_acl_entry *e;	/* the trie's entries as they are */
	size_t n, cap;
};

/* What answers the service's IPv4 sources. */
struct acl_compiled {
	bool compiled;			/* else the trie */
	struct aeth_acl_rng_at at;
	bool agrees;			/* the region is the trie's, compiled */
};

static int acl_collect_one(const void *key, const void *value, void *arg)
{
	struct acl_collect *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct aeth_acl_entry *ne = realloc(c->e, cap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		c->e = ne;
		c->cap = cap;
	}
	memcpy(&c->e[c->n].key, key, sizeof(c->e[c->n].key));
	c->e[c->n].family = *(const __u32 *)value;
	c->n++;
	return 0;
}

/* The listed prefixes of entries e[0..n): the trie keeps IPv4 as
 * ::ffff:a.b.c.d/(len + 96), and the value names the family of the listed
 * prefix (an IPv6 prefix may lie in that range too): aether/acl_key.h.
 * NULL when out of memory. */
static struct acl_cidr *acl_cidrs_of(const struct aeth_acl_entry *e,
				     size_t n)
{
	struct acl_cidr *v = calloc(n ? n : 1, sizeof(*v));
	__u32 plen;

	for (size_t i = 0; v && i < n; i++) {
		aeth_acl_key_prefix(&e[i].key, e[i].family, &v[i].family,
				    &v[i].addr, &plen);
		v[i].prefixlen = (uint8_t)plen;
	}
	return v;
}

static const char *acl_cidr_str(const struct acl_cidr *c,
				char buf[CTL_ADDR_LEN + 8])
{
	char a[CTL_ADDR_LEN];

	snprintf(buf, CTL_ADDR_LEN + 8, "%s/%u",
		 ctl_addr_str(&c->addr, c->family, a), c->prefixlen);
	return buf;
}

static int acl_cidr_cmp(const void *pa, const void *pb)
{
	const struct acl_cidr *a = pa, *b = pb;
	int c = ctl_addr_cmp(&a->addr, a->family, &b->addr, b->family);

	if (c)
		return c;
	return (int)a->prefixlen - (int)b->prefixlen;
}

/* The slot's compiled form, if any, and whether it is exactly what the
 * agent's builder makes of the trie's entries c (the same region: the
 * intervals, and the directory when it has one). */
static int acl_compiled_read(struct ctl_ctx *ctx, uint32_t slot,
			     const struct acl_collect *c,
			     struct acl_compiled *out)
{
	const size_t bytes = (size_t)AETH_ACL_RNG_CAP * sizeof(uint64_t);
	struct aeth_acl_rng_at want = { 0 };
	uint64_t *rng, *r = NULL, *region = NULL;
	size_t nr = 0;
	int err;

	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem(ctx->fds.acl_rngidx, &slot, &out->at))
		return 0;	/* older pins: the trie answers */
	out->compiled = out->at.flags & AETH_ACL_RNG_F_COMPILED;
	if (!out->compiled)
		return 0;
	err = aeth_acl_compile_v4(c->e, c->n, &r, &nr);
	if (!err)
		err = aeth_acl_rng_region(r, nr, &want, &region);
	free(r);
	if (err) {
		ctl_error(ctx, "out of memory");
		return err;
	}
	if (!(out->at.flags & AETH_ACL_RNG_F_DIR)) {
		/* compiled without its directory (no room for it) */
		want.flags &= ~AETH_ACL_RNG_F_DIR;
		want.dir_bits = 0;
	}
	rng = mmap(NULL, bytes, PROT_READ, MAP_SHARED, ctx->fds.acl_rng, 0);
	if (rng == MAP_FAILED) {
		err = -errno;
		free(region);
		ctl_error(ctx, "reading %s: %s", AETH_MAP_ACL_RNG,
			  strerror(-err));
		return err;
	}
	out->agrees = want.count == out->at.count &&
		      want.flags == out->at.flags &&
		      want.dir_bits == out->at.dir_bits &&
		      out->at.offset + aeth_acl_rng_span(&want) <=
			      AETH_ACL_RNG_CAP &&
		      (!region || !memcmp(rng + out->at.offset, region,
					   aeth_acl_rng_span(&want) *
						   sizeof(*region)));
	munmap(rng, bytes);
	free(region);
	return 0;
}

static void acl_compiled_print(const struct acl_compiled *k)
{
	if (!k->compiled) {
		printf("IPv4 sources: answered by the trie (no compiled form)\n");
		return;
	}
	printf("IPv4 sources: answered by the compiled form, %u intervals",
	       k->at.count);
	if (k->at.flags & AETH_ACL_RNG_F_DIR)
		printf(", directory of %llu blocks",
		       1ull << k->at.dir_bits);
	printf(", which %s\n", k->agrees ? "agrees with the trie" :
		"DIFFERS from the trie");
}

static int acl_list(struct ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const hdr[] = { "CIDR" };
	struct acl_collect c = { 0 };
	struct acl_cidr *v = NULL;
	struct acl_compiled k = { 0 };
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
		ret = acl_compiled_read(ctx, s.svc.acl_slot, &c, &k);
		if (ret)
			goto out;
	}
	v = acl_cidrs_of(c.e, c.n);
	if (!v) {
		ctl_error(ctx, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	if (c.n)
		qsort(v, c.n, sizeof(*v), acl_cidr_cmp);

	if (ctx->json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < c.n; i++) {
			char cidr[CTL_ADDR_LEN + 8];

			json_array_append_new(arr, json_string(
					acl_cidr_str(&v[i], cidr)));
		}
		json_t *ipv4 = json_null();

		if (k.compiled)
			ipv4 = json_pack("{s:I, s:I, s:b}", "intervals",
					 (json_int_t)k.at.count,
					 "directory_blocks",
					 (json_int_t)(k.at.flags &
							      AETH_ACL_RNG_F_DIR ?
						      1ull << k.at.dir_bits : 0),
					 "agrees_with_trie", k.agrees);
		ret = ctl_json_print(ctx, json_pack("{s:s, s:b, s:o, s:o}",
						    "service", s.label,
						    "enabled", enabled,
						    "cidrs", arr,
						    "ipv4_compiled", ipv4));
		goto out;
	}
	if (!enabled) {
		printf("service %s: authorized networks off (every source may "
		       "connect)\n", s.label);
		goto out;
	}
	printf("service %s: %zu authorized networks%s\n", s.label, c.n,
	       c.n ? "" : " (nobody may connect)");
	acl_compiled_print(&k);
	printf("\n");
	struct ctl_table *t = ctl_table_new(1, hdr);

	for (size_t i = 0; i < c.n; i++) {
		char cidr[CTL_ADDR_LEN + 8];

		ctl_table_add(t, acl_cidr_str(&v[i], cidr));
	}
	ctl_table_print(t);
	ctl_table_free(t);
out:
	free(v);
	free(c.e);
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
