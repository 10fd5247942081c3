/* The "bgp" member of the configuration document (SPEC.md section 7). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"

#define PATH_LEN sizeof(((struct aeth_error *)0)->path)

/* 0 and 4294967295 are reserved (RFC 7607, RFC 7300); 23456 is AS_TRANS,
 * which only stands in for a 4-byte ASN on old speakers (RFC 6793). */
#define ASN_MAX 4294967294ull
#define AS_TRANS 23456

static int bgp_keys(json_t *obj, const char *path, const char *const *known,
		    struct aeth_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return aeth_config_fail(err, path, "must be an object");
	json_object_foreach(obj, key, v) {
		const char *const *k = known;

		while (*k && strcmp(*k, key))
			k++;
		if (!*k) {
			char p[PATH_LEN];

			snprintf(p, sizeof(p), "%s.%s", path, key);
			return aeth_config_fail(err, p, "unknown field");
		}
	}
	return 0;
}

static int bgp_uint(json_t *obj, const char *parent, const char *key,
		    bool required, uint64_t min, uint64_t max, uint64_t *out,
		    struct aeth_error *err)
{
	json_t *v = json_object_get(obj, key);
	char p[PATH_LEN];
	json_int_t i;

	snprintf(p, sizeof(p), "%s.%s", parent, key);
	if (!v) {
		*out = 0;
		return required ? aeth_config_fail(err, p, "is required") : 0;
	}
	if (!json_is_integer(v))
		return aeth_config_fail(err, p, "must be an integer");
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
		return aeth_config_fail(err, p, "must be %llu..%llu",
					(unsigned long long)min, (unsigned long long)max);
	*out = (uint64_t)i;
	return 0;
}

static int bgp_asn(json_t *obj, const char *parent, const char *key,
		   uint32_t *out, struct aeth_error *err)
{
	char p[PATH_LEN];
	uint64_t v;
	int ret;

	ret = bgp_uint(obj, parent, key, true, 1, ASN_MAX, &v, err);
	if (ret)
		return ret;
	snprintf(p, sizeof(p), "%s.%s", parent, key);
	if (v == AS_TRANS)
		return aeth_config_fail(err, p, "23456 is AS_TRANS, not an AS number");
	*out = (uint32_t)v;
	return 0;
}

/* A unicast address; family 0 accepts either. */
static int bgp_ip(json_t *v, const char *path, uint8_t family,
		  struct aeth_ip *ip, struct aeth_error *err)
{
	const char *s;

	memset(ip, 0, sizeof(*ip));
	if (!json_is_string(v))
		return aeth_config_fail(err, path, "must be a string");
	s = json_string_value(v);
	if (family != AETH_AF_INET6 && inet_pton(AF_INET, s, &ip->addr.v4) == 1)
		ip->family = AETH_AF_INET;
	else if (family != AETH_AF_INET &&
		 inet_pton(AF_INET6, s, ip->addr.bytes) == 1)
		ip->family = AETH_AF_INET6;
	else
		return aeth_config_fail(err, path, family == AETH_AF_INET ?
					"not an IPv4 address" : "not an IP address");
	if (ip->family == AETH_AF_INET ?
	    (ip->addr.v4 == 0 || (ntohl(ip->addr.v4) >> 28) == 0xe ||
	     ip->addr.v4 == 0xffffffffu) :
	    (ip->addr.bytes[0] == 0xff ||
	     !memcmp(ip->addr.bytes, (uint8_t[16]){ 0 }, 16)))
		return aeth_config_fail(err, path, "not a unicast address");
	return 0;
}

static const char *const peer_keys[] = { "address", "asn", "bfd", NULL };

static int parse_peer(json_t *v, const char *p, struct aeth_cfg_bgp_peer *peer,
		      struct aeth_error *err)
{
	char ap[PATH_LEN + 16], bp[PATH_LEN + 16];
	json_t *bfd;
	int ret;

	ret = bgp_keys(v, p, peer_keys, err);
	if (ret)
		return ret;
	snprintf(ap, sizeof(ap), "%s.address", p);
	if (!json_object_get(v, "address"))
		return aeth_config_fail(err, ap, "is required");
	ret = bgp_ip(json_object_get(v, "address"), ap, 0, &peer->address, err);
	if (ret)
		return ret;
	inet_ntop(peer->address.family == AETH_AF_INET ? AF_INET : AF_INET6,
		  peer->address.addr.bytes, peer->address_text,
		  sizeof(peer->address_text));
	ret = bgp_asn(v, p, "asn", &peer->asn, err);
	if (ret)
		return ret;
	bfd = json_object_get(v, "bfd");
	snprintf(bp, sizeof(bp), "%s.bfd", p);
	if (bfd && !json_is_boolean(bfd))
		return aeth_config_fail(err, bp, "must be true or false");
	peer->bfd = json_is_true(bfd);
	return 0;
}

static int parse_peers(json_t *obj, struct aeth_cfg_bgp *bgp,
		       struct aeth_error *err)
{
	json_t *list = json_object_get(obj, "peers"), *v;
	char p[PATH_LEN];
	size_t i, j;
	int ret;

	if (!list)
		return aeth_config_fail(err, "bgp.peers", "is required");
	if (!json_is_array(list))
		return aeth_config_fail(err, "bgp.peers", "must be an array");
	if (json_array_size(list) == 0)
		return aeth_config_fail(err, "bgp.peers", "must name at least one peer");
	if (json_array_size(list) > AETH_CFG_BGP_MAX_PEERS)
		return aeth_config_fail(err, "bgp.peers", "too many peers (at most %d)",
					AETH_CFG_BGP_MAX_PEERS);
	json_array_foreach(list, i, v) {
		snprintf(p, sizeof(p), "bgp.peers[%zu]", i);
		ret = parse_peer(v, p, &bgp->peers[i], err);
		if (ret)
			return ret;
		for (j = 0; j < i; j++) {
			if (memcmp(&bgp->peers[j].address, &bgp->peers[i].address,
				   sizeof(struct aeth_ip)))
				continue;
			snprintf(p, sizeof(p), "bgp.peers[%zu].address", i);
			return aeth_config_fail(err, p, "duplicate of peers[%zu]", j);
		}
		bgp->n_peers++;
	}
	return 0;
}

/* "ASN:VALUE", both 0..65535 (standard communities, RFC 1997). */
static int parse_community(json_t *v, const char *p, uint16_t out[2],
			   struct aeth_error *err)
{
	unsigned int a, b;
	char tail;

	if (!json_is_string(v))
		return aeth_config_fail(err, p, "must be a string");
	if (sscanf(json_string_value(v), "%5u:%5u%c", &a, &b, &tail) != 2 ||
	    strspn(json_string_value(v), "0123456789:") !=
		    strlen(json_string_value(v)) || a > 65535 || b > 65535)
		return aeth_config_fail(err, p, "must be \"ASN:VALUE\" with both 0..65535");
	out[0] = (uint16_t)a;
	out[1] = (uint16_t)b;
	return 0;
}

static int parse_communities(json_t *obj, struct aeth_cfg_bgp *bgp,
			     struct aeth_error *err)
{
	json_t *list = json_object_get(obj, "communities"), *v;
	char p[PATH_LEN];
	size_t i;
	int ret;

	if (!list)
		return 0;
	if (!json_is_array(list))
		return aeth_config_fail(err, "bgp.communities", "must be an array");
	if (json_array_size(list) > AETH_CFG_BGP_MAX_COMMUNITIES)
		return aeth_config_fail(err, "bgp.communities",
					"too many communities (at most %d)",
					AETH_CFG_BGP_MAX_COMMUNITIES);
	json_array_foreach(list, i, v) {
		snprintf(p, sizeof(p), "bgp.communities[%zu]", i);
		ret = parse_community(v, p, bgp->communities[i], err);
		if (ret)
			return ret;
		bgp->n_communities++;
	}
	return 0;
}

static int parse_router_id(json_t *obj, struct aeth_cfg_bgp *bgp,
			   struct aeth_error *err)
{
	json_t *v = json_object_get(obj, "router_id");

	if (!v)
		return 0;	/* node.addresses.ipv4, see below */
	return bgp_ip(v, "bgp.router_id", AETH_AF_INET, &bgp->router_id, err);
}

int aeth_config_bgp_complete(struct aeth_config *cfg,
			     struct aeth_error *err)
{
	struct aeth_cfg_bgp *bgp = cfg->bgp;
	char p[PATH_LEN];

	if (!bgp)
		return 0;
	/* the session's source is the node's address of the peer's family */
	for (size_t i = 0; i < bgp->n_peers; i++) {
		uint8_t fam = bgp->peers[i].address.family;

		snprintf(p, sizeof(p), "bgp.peers[%zu].address", i);
		if (fam == AETH_AF_INET && !cfg->node_v4.family)
			return aeth_config_fail(err, p, "IPv4 peer needs node.addresses.ipv4");
		if (fam == AETH_AF_INET6 && !cfg->node_v6.family)
			return aeth_config_fail(err, p, "IPv6 peer needs node.addresses.ipv6");
	}
	if (bgp->router_id.family)
		return 0;
	if (!cfg->node_v4.family)
		return aeth_config_fail(err, "bgp.router_id",
					"required when node.addresses.ipv4 is absent");
	bgp->router_id = cfg->node_v4;
	return 0;
}

static const char *const bgp_keys_known[] = {
	"local_asn", "router_id", "hold_time", "communities", "peers", NULL,
};

int aeth_config_parse_bgp(json_t *root, struct aeth_config *cfg,
			  struct aeth_error *err)
{
	json_t *obj = json_object_get(root, "bgp");
	struct aeth_cfg_bgp *bgp;
	uint64_t hold;
	int ret;

	if (!obj)
		return 0;
	ret = bgp_keys(obj, "bgp", bgp_keys_known, err);
	if (ret)
		return ret;
	bgp = calloc(1, sizeof(*bgp));
	if (!bgp)
		return aeth_config_fail(err, "bgp", "out of memory");
	ret = bgp_asn(obj, "bgp", "local_asn", &bgp->local_asn, err);
	if (!ret)
		ret = parse_router_id(obj, bgp, err);
	/* 3 s is the least RFC 4271 allows besides 0 (no keepalives) */
	if (!ret)
		ret = bgp_uint(obj, "bgp", "hold_time", false, 3, 65535, &hold,
			       err);
	if (!ret)
		ret = parse_communities(obj, bgp, err);
	if (!ret)
		ret = parse_peers(obj, bgp, err);
	if (ret) {
		free(bgp);
		return ret;
	}
	bgp->hold_time = (uint32_t)hold;
	cfg->bgp = bgp;
	/* without node addresses the agent checks once it has them */
	if (!cfg->node_v4.family && !cfg->node_v6.family)
		return 0;
	return aeth_config_bgp_complete(cfg, err);
}
