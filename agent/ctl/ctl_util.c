/* aetherctl helpers: opening the pinned state, addresses, and reading the
 * services and backends every command names things by. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "ctl.h"
#include "map_iter.h"

int ctl_open(struct ctl_ctx *ctx)
{
	struct aeth_error err = { 0 };
	int ret;

	if (ctx->opened)
		return 0;
	ret = aeth_pinned_open(ctx->pin_dir, &ctx->fds, &err);
	if (ret) {
		ctl_error(ctx, "%s", err.message);
		return ret;
	}
	ctx->opened = true;
	return 0;
}

int ctl_parse_u32(const char *s, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

const char *ctl_addr_str(const union aeth_addr *a, uint8_t family, char *buf)
{
	if (family == AETH_AF_INET)
		inet_ntop(AF_INET, &a->v4, buf, CTL_ADDR_LEN);
	else if (family == AETH_AF_INET6)
		inet_ntop(AF_INET6, a->bytes, buf, CTL_ADDR_LEN);
	else
		snprintf(buf, CTL_ADDR_LEN, "family-%u", family);
	return buf;
}

const char *ctl_endpoint_str(const union aeth_addr *a, uint8_t family,
			     uint16_t port, char *buf)
{
	char ip[CTL_ADDR_LEN];

	ctl_addr_str(a, family, ip);
	if (family == AETH_AF_INET6)
		snprintf(buf, CTL_ADDR_LEN, "[%.46s]:%u", ip, port);
	else
		snprintf(buf, CTL_ADDR_LEN, "%.46s:%u", ip, port);
	return buf;
}

int ctl_parse_addr(const char *s, union aeth_addr *a, uint8_t *family)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->v4) == 1) {
		*family = AETH_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a->bytes) == 1) {
		*family = AETH_AF_INET6;
		return 0;
	}
	return -EINVAL;
}

int ctl_parse_endpoint(const char *s, union aeth_addr *a, uint8_t *family,
		       uint16_t *port)
{
	char host[CTL_ADDR_LEN];
	const char *colon, *hs = s;
	size_t hl;
	uint32_t p;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hs = s + 1;
		hl = close - hs;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = colon - s;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	if (ctl_parse_addr(host, a, family))
		return -EINVAL;
	/* a bare IPv6 address with a port needs brackets */
	if (*s != '[' && *family == AETH_AF_INET6)
		return -EINVAL;
	if (ctl_parse_u32(colon + 1, &p) || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

int ctl_addr_cmp(const union aeth_addr *a, uint8_t fa,
		 const union aeth_addr *b, uint8_t fb)
{
	if (fa != fb)
		return fa < fb ? -1 : 1;
	return memcmp(a->bytes, b->bytes, fa == AETH_AF_INET ? 4 : 16);
}

const char *ctl_proto_str(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	default:
		return "?";
	}
}

int ctl_parse_proto(const char *s, uint8_t *proto)
{
	if (!strcasecmp(s, "tcp"))
		*proto = IPPROTO_TCP;
	else if (!strcasecmp(s, "udp"))
		*proto = IPPROTO_UDP;
	else
		return -EINVAL;
	return 0;
}

static int service_cmp(const void *pa, const void *pb)
{
	const struct ctl_service *a = pa, *b = pb;
	int c = strcmp(a->info.name, b->info.name);

	if (c)
		return c;
	c = ctl_addr_cmp(&a->info.vip, a->info.family, &b->info.vip,
			 b->info.family);
	if (c)
		return c;
	if (a->info.port != b->info.port)
		return ntohs(a->info.port) < ntohs(b->info.port) ? -1 : 1;
	if (a->info.proto != b->info.proto)
		return a->info.proto < b->info.proto ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static void service_fill(struct ctl_ctx *ctx, struct ctl_service *s)
{
	struct aeth_svc_key key;
	char ep[CTL_ADDR_LEN];

	memset(&key, 0, sizeof(key));
	key.vip = s->info.vip;
	key.port = s->info.port;
	key.proto = s->info.proto;
	key.family = s->info.family;
	s->live = bpf_map_lookup_elem(ctx->fds.svc, &key, &s->svc) == 0 &&
		  s->svc.id == s->id;
	ctl_endpoint_str(&s->info.vip, s->info.family, ntohs(s->info.port), ep);
	if (s->info.name[0])
		snprintf(s->label, sizeof(s->label), "%.*s", AETH_NAME_LEN,
			 s->info.name);
	else
		snprintf(s->label, sizeof(s->label), "%s/%s", ep,
			 ctl_proto_str(s->info.proto));
}

/* Room for one more element in a growing vector; NULL when out of memory
 * (the vector is left as it was). */
static void *vec_slot(void **v, size_t *cap, size_t n, size_t elem)
{
	if (n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		void *nv = realloc(*v, ncap * elem);

		if (!nv)
			return NULL;
		*v = nv;
		*cap = ncap;
	}
	return (char *)*v + n * elem;
}

struct service_collect {
	struct ctl_ctx *ctx;
	struct ctl_service *v;
	size_t n, cap;
};

static int collect_service(const void *key, const void *value, void *arg)
{
	const struct aeth_svcinfo *info = value;
	struct service_collect *c = arg;
	struct ctl_service *s;

	if (!(info->flags & AETH_SVCINFO_F_IN_USE))
		return 0;
	s = vec_slot((void **)&c->v, &c->cap, c->n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->id = *(const __u32 *)key;
	s->info = *info;
	s->info.name[AETH_NAME_LEN - 1] = '\0';
	service_fill(c->ctx, s);
	c->n++;
	return 0;
}

int ctl_services_load(struct ctl_ctx *ctx, struct ctl_service **out,
		      size_t *n)
{
	struct service_collect c = { .ctx = ctx };
	int ret;

	ret = ctl_open(ctx);
	if (ret)
		return ret;
	ret = ctl_map_foreach(ctx, ctx->fds.svcinfo, AETH_MAP_SVCINFO,
			      sizeof(__u32), sizeof(struct aeth_svcinfo),
			      collect_service, &c);
	if (ret) {
		if (ret == -ENOMEM)
			ctl_error(ctx, "out of memory");
		free(c.v);
		return ret;
	}
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), service_cmp);
	*out = c.v;
	*n = c.n;
	return 0;
}

int ctl_service_resolve(struct ctl_ctx *ctx, const char *arg,
			struct ctl_service *out)
{
	struct ctl_service *v;
	union aeth_addr vip;
	uint8_t family = 0, proto = 0;
	uint16_t port = 0;
	bool by_key = false;
	char ep[CTL_ADDR_LEN * 2];
	const char *slash;
	size_t n;
	int ret;

	slash = strrchr(arg, '/');
	if (slash && (size_t)(slash - arg) < sizeof(ep)) {
		memcpy(ep, arg, slash - arg);
		ep[slash - arg] = '\0';
		by_key = ctl_parse_endpoint(ep, &vip, &family, &port) == 0 &&
			 ctl_parse_proto(slash + 1, &proto) == 0;
	}
	ret = ctl_services_load(ctx, &v, &n);
	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		bool hit;

		if (by_key)
			hit = v[i].info.family == family &&
			      v[i].info.proto == proto &&
			      ntohs(v[i].info.port) == port &&
			      !ctl_addr_cmp(&v[i].info.vip, family, &vip,
					    family);
		else
			hit = !strcmp(v[i].info.name, arg);
		if (hit) {
			*out = v[i];
			free(v);
			return 0;
		}
	}
	free(v);
	ctl_error(ctx, "no service %s under %s (a name or VIP:PORT/PROTO)", arg,
		  ctx->pin_dir);
	return -ENOENT;
}

const struct ctl_service *ctl_service_by_id(const struct ctl_service *svcs,
					    size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (svcs[i].id == id)
			return &svcs[i];
	return NULL;
}

const char *ctl_service_label(const struct ctl_service *svcs, size_t n,
			      uint32_t id, char *buf, size_t len)
{
	const struct ctl_service *s = ctl_service_by_id(svcs, n, id);

	if (s)
		return s->label;
	snprintf(buf, len, "#%u", id);
	return buf;
}

struct backend_collect {
	struct ctl_backend *v;
	size_t n, cap;
};

static int collect_backend(const void *key, const void *value, void *arg)
{
	const struct aeth_backend *be = value;
	struct backend_collect *c = arg;
	struct ctl_backend *b;

	if (!(be->flags & AETH_BE_F_IN_USE))
		return 0;
	b = vec_slot((void **)&c->v, &c->cap, c->n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->id = *(const __u32 *)key;
	b->be = *be;
	c->n++;
	return 0;
}

/* An array map is read in key order, so the result is sorted by id. */
int ctl_backends_load(struct ctl_ctx *ctx, struct ctl_backend **out,
		      size_t *n)
{
	struct backend_collect c = { 0 };
	int ret;

	ret = ctl_open(ctx);
	if (ret)
		return ret;
	ret = ctl_map_foreach(ctx, ctx->fds.backend, AETH_MAP_BACKEND,
			      sizeof(__u32), sizeof(struct aeth_backend),
			      collect_backend, &c);
	if (ret) {
		if (ret == -ENOMEM)
			ctl_error(ctx, "out of memory");
		free(c.v);
		return ret;
	}
	*out = c.v;
	*n = c.n;
	return 0;
}

const struct ctl_backend *ctl_backend_find(const struct ctl_backend *bes,
					   size_t n, uint32_t id)
{
	size_t lo = 0, hi = n;

	/* loaded in id order */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (bes[mid].id == id)
			return &bes[mid];
		if (bes[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *ctl_backend_state(const struct aeth_backend *be)
{
	if (!(be->flags & AETH_BE_F_IN_USE))
		return "removed";
	if (be->flags & AETH_BE_F_DRAINING)
		return "draining";
	return "active";
}

int ctl_inner_map_fd(int outer_fd, uint32_t slot)
{
	__u32 inner_id = 0;
	int fd;

	if (bpf_map_lookup_elem(outer_fd, &slot, &inner_id))
		return -errno;
	fd = bpf_map_get_fd_by_id(inner_id);
	return fd < 0 ? -errno : fd;
}

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t ctl_now_coarse_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC_COARSE);
}

int ctl_map_foreach(struct ctl_ctx *ctx, int fd, const char *map_name,
		    size_t key_size, size_t value_size, ctl_entry_fn fn,
		    void *arg)
{
	bool fn_stopped;
	int ret;

	ret = aeth_map_foreach(fd, key_size, value_size, 0, fn, arg,
			       &fn_stopped);
	if (!ret || fn_stopped)
		return ret;	/* fn's own error is the caller's to report */
	if (ret == -ENOMEM)
		ctl_error(ctx, "out of memory");
	else
		ctl_error(ctx, "reading %s: %s", map_name, strerror(-ret));
	return ret;
}

int ctl_ct_table(struct ctl_ctx *ctx, struct aeth_ct_table *t)
{
	int ret = aeth_ct_table_open(t, ctx->fds.ct, -1);

	if (ret == -EINVAL)
		ctl_error(ctx, "%s is not a connection table of this build "
			  "(buckets of %zu bytes, a power of two of them)",
			  AETH_MAP_CT, sizeof(struct aeth_ct_bucket));
	else if (ret)
		ctl_error(ctx, "reading %s: %s", AETH_MAP_CT, strerror(-ret));
	return ret;
}
