/* Whole-document checks: UTF-8, NUL in strings, addresses that cannot work
 * together; and opening a document file without blocking. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_check.h"

#define PATH_LEN sizeof(((struct aeth_error *)0)->path)

/* Length of the UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	size_t n;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

int aeth_config_check_utf8(const char *text, size_t len,
			   struct aeth_error *err)
{
	const unsigned char *p = (const unsigned char *)text;
	int line = 1, column = 0;
	size_t i = 0, n;

	while (i < len) {
		n = utf8_seq(p + i, len - i);
		column++;
		if (!n) {
			err->path[0] = '\0';
			err->line = line;
			err->column = column;
			snprintf(err->message, sizeof(err->message),
				 "invalid UTF-8 (byte 0x%02x): the document, "
				 "names included, must be UTF-8", p[i]);
			return -EINVAL;
		}
		if (p[i] == '\n') {
			line++;
			column = 0;
		}
		i += n;
	}
	return 0;
}

static int nul_walk(json_t *v, char *path, struct aeth_error *err)
{
	size_t len = strlen(path), i;
	const char *key;
	json_t *child;
	int ret = 0;

	if (json_is_string(v)) {
		if (memchr(json_string_value(v), '\0', json_string_length(v)))
			return aeth_config_fail(err, path[0] ? path : "document",
						"contains a NUL character (\\u0000)");
		return 0;
	}
	if (json_is_object(v)) {
		json_object_foreach(v, key, child) {
			snprintf(path + len, PATH_LEN - len, "%s%s",
				 len ? "." : "", key);
			ret = nul_walk(child, path, err);
			if (ret)
				break;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			snprintf(path + len, PATH_LEN - len, "[%zu]", i);
			ret = nul_walk(child, path, err);
			if (ret)
				break;
		}
	}
	path[len] = '\0';
	return ret;
}

int aeth_config_check_nul(json_t *root, struct aeth_error *err)
{
	char path[PATH_LEN] = "";

	return nul_walk(root, path, err);
}

static bool ip_eq(const struct aeth_ip *a, const struct aeth_ip *b)
{
	return a->family && a->family == b->family &&
	       memcmp(a->addr.bytes, b->addr.bytes, sizeof(a->addr)) == 0;
}

/* 127.0.0.0/8 and ::1: nothing from outside reaches them. */
static bool ip_is_loopback(const struct aeth_ip *ip)
{
	static const uint8_t one[16] = { [15] = 1 };

	if (ip->family == AETH_AF_INET)
		return (ntohl(ip->addr.v4) >> 24) == 127;
	return memcmp(ip->addr.bytes, one, 16) == 0;
}

/* Which node address ip is, or NULL. */
static const char *node_addr_name(const struct aeth_config *cfg,
				  const struct aeth_ip *ip)
{
	if (ip_eq(ip, &cfg->node_v4))
		return "node.addresses.ipv4";
	if (ip_eq(ip, &cfg->node_v6))
		return "node.addresses.ipv6";
	return NULL;
}

struct vip_ref {
	struct aeth_ip ip;
	size_t svc;
};

static int vip_ref_cmp(const void *a, const void *b)
{
	const struct vip_ref *x = a, *y = b;

	if (x->ip.family != y->ip.family)
		return x->ip.family < y->ip.family ? -1 : 1;
	return memcmp(x->ip.addr.bytes, y->ip.addr.bytes, sizeof(x->ip.addr));
}

static int check_vip(const struct aeth_config *cfg, size_t i,
		     struct aeth_error *err)
{
	const struct aeth_cfg_service *s = &cfg->services[i];
	const char *node = node_addr_name(cfg, &s->vip);
	char p[PATH_LEN];

	snprintf(p, sizeof(p), "services[%zu].vip", i);
	if (ip_is_loopback(&s->vip))
		return aeth_config_fail(err, p, "a loopback address: no packet from "
					"outside the node can reach it");
	if (node)
		return aeth_config_fail(err, p, "the node's own address (%s): packets "
					"to it belong to the node's stack", node);
	return 0;
}

static int check_backend(const struct aeth_config *cfg, size_t i, size_t j,
			 const struct vip_ref *vips, size_t n_vips,
			 struct aeth_error *err)
{
	const struct aeth_cfg_backend *b = &cfg->services[i].backends[j];
	const char *node = node_addr_name(cfg, &b->ip);
	struct vip_ref key = { .ip = b->ip }, *hit;
	char p[PATH_LEN];

	snprintf(p, sizeof(p), "services[%zu].backends[%zu].address", i, j);
	if (ip_is_loopback(&b->ip))
		return aeth_config_fail(err, p, "a loopback address: no tunnel reaches "
					"it");
	if (node)
		return aeth_config_fail(err, p, "the node's own address (%s): the node "
					"would tunnel to itself", node);
	hit = bsearch(&key, vips, n_vips, sizeof(*vips), vip_ref_cmp);
	if (hit)
		return aeth_config_fail(err, p, "the VIP of services[%zu]: its traffic "
					"would come back to the balancer", hit->svc);
	return 0;
}

int aeth_config_check_addresses(const struct aeth_config *cfg,
				struct aeth_error *err)
{
	struct vip_ref *vips;
	int ret = 0;

	if (ip_is_loopback(&cfg->node_v4) && cfg->node_v4.family)
		return aeth_config_fail(err, "node.addresses.ipv4", "a loopback address");
	if (ip_is_loopback(&cfg->node_v6) && cfg->node_v6.family)
		return aeth_config_fail(err, "node.addresses.ipv6", "a loopback address");
	vips = calloc(cfg->n_services ? cfg->n_services : 1, sizeof(*vips));
	if (!vips)
		return aeth_config_fail(err, "services", "out of memory");
	for (size_t i = 0; i < cfg->n_services && !ret; i++) {
		vips[i].ip = cfg->services[i].vip;
		vips[i].svc = i;
		ret = check_vip(cfg, i, err);
	}
	/* sorted for bsearch: any service of a shared VIP will do */
	if (!ret)
		qsort(vips, cfg->n_services, sizeof(*vips), vip_ref_cmp);
	for (size_t i = 0; i < cfg->n_services && !ret; i++)
		for (size_t j = 0; j < cfg->services[i].n_backends && !ret; j++)
			ret = check_backend(cfg, i, j, vips, cfg->n_services,
					    err);
	free(vips);
	return ret;
}
