/* Parse and validate the configuration document (SPEC.md section 4). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "config_check.h"
#include "file_util.h"
#include "sha256.h"

/* Primes up to AETH_MAX_TABLE_SIZE; each about 2x the previous. */
const uint32_t aeth_table_sizes[] = {
	251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537, 0,
};

bool aeth_table_size_supported(uint32_t size)
{
	for (const uint32_t *p = aeth_table_sizes; *p; p++)
		if (*p == size)
			return true;
	return false;
}

#define PATH_LEN sizeof(((struct aeth_error *)0)->path)

/* Paths longer than PATH_LEN are cut: only an unknown key of absurd
 * length gets there, and its start still says where it is. */
static void join(char *buf, const char *parent, const char *key)
{
	if (snprintf(buf, PATH_LEN, "%s%s%s", parent, *parent ? "." : "", key) < 0)
		buf[0] = '\0';
}

static void join_index(char *buf, const char *parent, size_t i)
{
	if (snprintf(buf, PATH_LEN, "%s[%zu]", parent, i) < 0)
		buf[0] = '\0';
}

/* Every key of obj must be in known (NULL-terminated). */
static int check_keys(json_t *obj, const char *path, const char *const *known,
		      struct aeth_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const char *const *k;
		char p[PATH_LEN];

		for (k = known; *k; k++)
			if (strcmp(*k, key) == 0)
				break;
		if (!*k) {
			join(p, path, key);
			return aeth_config_fail(err, p, "unknown field");
		}
	}
	return 0;
}

static int expect_object(json_t *v, const char *path, const char *const *known,
			 struct aeth_error *err)
{
	if (!json_is_object(v))
		return aeth_config_fail(err, path, "must be an object");
	return check_keys(v, path, known, err);
}

/* *out = obj[key] or NULL when absent (an error when required). */
static int field(json_t *obj, const char *parent, const char *key,
		 bool required, json_t **out, struct aeth_error *err)
{
	char p[PATH_LEN];

	*out = json_object_get(obj, key);
	if (!*out && required) {
		join(p, parent, key);
		return aeth_config_fail(err, p, "is required");
	}
	return 0;
}

static int get_uint(json_t *obj, const char *parent, const char *key,
		    bool required, uint64_t def, uint64_t min, uint64_t max,
		    uint64_t *out, struct aeth_error *err)
{
	char p[PATH_LEN];
	json_int_t i;
	json_t *v;
	int ret;

	ret = field(obj, parent, key, required, &v, err);
	if (ret)
		return ret;
	if (!v) {
		*out = def;
		return 0;
	}
	join(p, parent, key);
	if (!json_is_integer(v))
		return aeth_config_fail(err, p, "must be an integer");
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min)
		return aeth_config_fail(err, p, "must be >= %llu", (unsigned long long)min);
	if ((uint64_t)i > max)
		return aeth_config_fail(err, p, "must be <= %llu", (unsigned long long)max);
	*out = (uint64_t)i;
	return 0;
}

static int get_string(json_t *obj, const char *parent, const char *key,
		      bool required, const char **out,
		      struct aeth_error *err)
{
	char p[PATH_LEN];
	json_t *v;
	int ret;

	ret = field(obj, parent, key, required, &v, err);
	if (ret)
		return ret;
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v)) {
		join(p, parent, key);
		return aeth_config_fail(err, p, "must be a string");
	}
	*out = json_string_value(v);
	return 0;
}

static int get_bool(json_t *obj, const char *parent, const char *key,
		    bool required, bool def, bool *out,
		    struct aeth_error *err)
{
	char p[PATH_LEN];
	json_t *v;
	int ret;

	ret = field(obj, parent, key, required, &v, err);
	if (ret)
		return ret;
	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v)) {
		join(p, parent, key);
		return aeth_config_fail(err, p, "must be true or false");
	}
	*out = json_is_true(v);
	return 0;
}

/* Index of s in choices (NULL-terminated), or an error listing them. */
static int get_choice(json_t *obj, const char *parent, const char *key,
		      const char *const *choices, int def, int *out,
		      struct aeth_error *err)
{
	char p[PATH_LEN], list[128] = "";
	const char *s;
	size_t n = 0;
	int ret, i;

	ret = get_string(obj, parent, key, def < 0, &s, err);
	if (ret)
		return ret;
	if (!s) {
		*out = def;
		return 0;
	}
	for (i = 0; choices[i]; i++) {
		if (strcmp(s, choices[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	/* must be "a", "b" or "c" */
	for (i = 0; choices[i]; i++)
		n += snprintf(list + n, sizeof(list) - n, "%s\"%s\"",
			      i == 0 ? "" : choices[i + 1] ? ", " : " or ",
			      choices[i]);
	join(p, parent, key);
	return aeth_config_fail(err, p, "must be %s", list);
}

/* 0, -EINVAL (not an address) or -EDOM (an IPv4-mapped IPv6 form). The
 * data path keys IPv4 as ::ffff:a.b.c.d, so a mapped form would alias an
 * IPv4 entry (ACL) or name an address no packet carries (VIP, backend):
 * one rule everywhere, IPv4 is written as IPv4. */
static int parse_ip(const char *s, struct aeth_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, &ip->addr.v4) == 1) {
		ip->family = AETH_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, ip->addr.bytes) == 1) {
		ip->family = AETH_AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)ip->addr.bytes))
			return -EDOM;
		return 0;
	}
	return -EINVAL;
}

#define MAPPED_MSG "IPv4-mapped IPv6 form: write the IPv4 address as IPv4"

static void ip_text(const struct aeth_ip *ip, char *buf, size_t len)
{
	inet_ntop(ip->family == AETH_AF_INET ? AF_INET : AF_INET6,
		  ip->addr.bytes, buf, (socklen_t)len);
}

/* Neither a VIP, a backend nor a node address may be unspecified, multicast
 * or the IPv4 broadcast address: no flow could be balanced to or from it. */
static bool ip_is_unicast(const struct aeth_ip *ip)
{
	static const uint8_t zero[16];

	if (ip->family == AETH_AF_INET) {
		uint32_t a = ntohl(ip->addr.v4);

		return a != 0 && a != 0xffffffffu && (a >> 28) != 0xe;
	}
	return memcmp(ip->addr.bytes, zero, 16) != 0 && ip->addr.bytes[0] != 0xff;
}

/* A unicast address of either family (or only want_family when non-zero). */
static int get_ip(json_t *obj, const char *parent, const char *key,
		  bool required, uint8_t want_family, struct aeth_ip *ip,
		  struct aeth_error *err)
{
	char p[PATH_LEN];
	const char *s;
	int ret;

	ret = get_string(obj, parent, key, required, &s, err);
	if (ret)
		return ret;
	memset(ip, 0, sizeof(*ip));
	if (!s)
		return 0;
	join(p, parent, key);
	ret = parse_ip(s, ip);
	if (ret == -EDOM)
		return aeth_config_fail(err, p, MAPPED_MSG);
	if (ret)
		return aeth_config_fail(err, p, want_family == AETH_AF_INET ? "not an IPv4 address" :
					want_family == AETH_AF_INET6 ? "not an IPv6 address" :
					"not an IP address");
	if (want_family && ip->family != want_family)
		return aeth_config_fail(err, p, want_family == AETH_AF_INET ?
					"not an IPv4 address" : "not an IPv6 address");
	if (!ip_is_unicast(ip))
		return aeth_config_fail(err, p, "not a unicast address");
	return 0;
}

static int parse_cidr(json_t *v, const char *path, struct aeth_cfg_cidr *c,
		      struct aeth_error *err)
{
	char addr[64], net[INET6_ADDRSTRLEN];
	const char *s, *slash, *d;
	unsigned int plen = 0, max, bit;
	struct aeth_ip masked;

	if (!json_is_string(v))
		return aeth_config_fail(err, path, "must be a string");
	s = json_string_value(v);
	slash = strchr(s, '/');
	if (!slash || (size_t)(slash - s) >= sizeof(addr) || !slash[1] ||
	    strlen(slash + 1) > 3)
		return aeth_config_fail(err, path, "not a CIDR (address/prefix)");
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	for (d = slash + 1; *d; d++) {
		if (!isdigit((unsigned char)*d))
			return aeth_config_fail(err, path, "not a CIDR (address/prefix)");
		plen = plen * 10 + (unsigned int)(*d - '0');
	}
	/* "/024" is not how anyone writes a prefix: refuse rather than guess */
	if (slash[1] == '0' && slash[2])
		return aeth_config_fail(err, path, "prefix length with leading zeros");
	switch (parse_ip(addr, &c->ip)) {
	case 0:
		break;
	case -EDOM:
		return aeth_config_fail(err, path, MAPPED_MSG);
	default:
		return aeth_config_fail(err, path, "not a CIDR (address/prefix)");
	}
	max = c->ip.family == AETH_AF_INET ? 32 : 128;
	if (plen > max)
		return aeth_config_fail(err, path, "prefix length must be <= %u", max);
	c->prefixlen = (uint8_t)plen;

	/* Host bits are an error, not silently cleared: the author most
	 * likely meant another network than the one they would get. */
	masked = c->ip;
	for (bit = plen; bit < max; bit++)
		masked.addr.bytes[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	if (memcmp(&masked.addr, &c->ip.addr, sizeof(masked.addr)) != 0) {
		ip_text(&masked, net, sizeof(net));
		return aeth_config_fail(err, path, "host bits set (the network is %s/%u)",
					net, plen);
	}
	return 0;
}

/* The smallest index that repeats an earlier item, with that earlier item's
 * index in *first; -1 if all differ. O(n log n): lists reach 65536. */
struct dup_ctx {
	int (*cmp)(const void *items, size_t a, size_t b);
	const void *items;
};

static int dup_order(const void *pa, const void *pb, void *arg)
{
	const struct dup_ctx *ctx = arg;
	size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
	int c = ctx->cmp(ctx->items, a, b);

	if (c)
		return c;
	return a < b ? -1 : a > b;
}

static long first_duplicate(const void *items, size_t n,
			    int (*cmp)(const void *items, size_t a, size_t b),
			    size_t *first)
{
	struct dup_ctx ctx = { cmp, items };
	size_t *idx, i, group = 0;
	long best = -1;

	if (n < 2)
		return -1;
	idx = malloc(n * sizeof(*idx));
	if (!idx)
		return -2;
	for (i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), dup_order, &ctx);
	for (i = 1; i < n; i++) {
		if (cmp(items, idx[group], idx[i]) != 0) {
			group = i;
			continue;
		}
		if (best < 0 || idx[i] < (size_t)best) {
			best = (long)idx[i];
			*first = idx[group];
		}
	}
	free(idx);
	return best;
}

static int cidr_cmp(const void *items, size_t a, size_t b)
{
	const struct aeth_cfg_cidr *x = items;
	int c = aeth_ip_cmp(&x[a].ip, &x[b].ip);

	if (c)
		return c;
	return x[a].prefixlen - x[b].prefixlen;
}

static int backend_cmp(const void *items, size_t a, size_t b)
{
	const struct aeth_cfg_backend *x = items;

	return aeth_ip_cmp(&x[a].ip, &x[b].ip);
}

static int service_key_cmp(const void *items, size_t a, size_t b)
{
	const struct aeth_cfg_service *x = items;
	int c = aeth_ip_cmp(&x[a].vip, &x[b].vip);

	if (c)
		return c;
	if (x[a].port != x[b].port)
		return x[a].port - x[b].port;
	return x[a].proto - x[b].proto;
}

static int service_name_cmp(const void *items, size_t a, size_t b)
{
	const struct aeth_cfg_service *x = items;

	return strcmp(x[a].name, x[b].name);
}

static int iface_cmp(const void *items, size_t a, size_t b)
{
	const char (*x)[AETH_IFNAME_LEN] = items;

	return strcmp(x[a], x[b]);
}

/* Report a duplicate found by first_duplicate() at "list[i]suffix". */
static int check_unique(const void *items, size_t n,
			int (*cmp)(const void *items, size_t a, size_t b),
			const char *list, const char *suffix,
			const char *what, struct aeth_error *err)
{
	char p[PATH_LEN];
	size_t first = 0;
	long dup;

	dup = first_duplicate(items, n, cmp, &first);
	if (dup == -2)
		return aeth_config_fail(err, list, "out of memory");
	if (dup < 0)
		return 0;
	snprintf(p, sizeof(p), "%s[%ld]%s", list, dup, suffix);
	return aeth_config_fail(err, p, what, first);
}

/* The name of a Kubernetes Service's port (SPEC.md section 8):
 * NAMESPACE/NAME:PORT with DNS labels and a port number, then /tcp or /udp
 * for the second protocol of one port number (docs/kubernetes.md). */
static bool is_k8s_port_name(const char *s)
{
	size_t ns = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-");
	size_t name, port;

	if (ns == 0 || s[ns] != '/')
		return false;
	s += ns + 1;
	name = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-");
	if (name == 0 || s[name] != ':')
		return false;
	s += name + 1;
	port = strspn(s, "0123456789");
	if (port < 1 || port > 5 || s[0] == '0')
		return false;
	return s[port] == '\0' || !strcmp(s + port, "/tcp") ||
	       !strcmp(s + port, "/udp");
}

static int parse_name(json_t *obj, const char *parent, char *out,
		      struct aeth_error *err)
{
	char p[PATH_LEN];
	const char *s, *c;
	int ret;

	ret = get_string(obj, parent, "name", true, &s, err);
	if (ret)
		return ret;
	join(p, parent, "name");
	if (!*s)
		return aeth_config_fail(err, p, "must not be empty");
	if (strlen(s) >= AETH_NAME_LEN)
		return aeth_config_fail(err, p, "longer than %d characters", AETH_NAME_LEN - 1);
	/* Names are metric labels and aetherctl arguments, where a ':' or
	 * '/' would read as VIP:PORT/PROTO; NAMESPACE/NAME:PORT[/PROTO]
	 * cannot (NAMESPACE/NAME is no address). */
	if (is_k8s_port_name(s)) {
		strcpy(out, s);
		return 0;
	}
	for (c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr("._-", *c))
			return aeth_config_fail(err, p, "may contain only letters, digits, '.', '_' and '-'");
	strcpy(out, s);
	return 0;
}

/* A node address; "" is the same as absent, as a template renders a family
 * the node does not have (an IPv6-only node's empty ipv4). */
static int get_node_ip(json_t *addrs, const char *key, uint8_t family,
		       struct aeth_ip *ip, struct aeth_error *err)
{
	json_t *v = json_object_get(addrs, key);

	if (json_is_string(v) && !*json_string_value(v)) {
		memset(ip, 0, sizeof(*ip));
		return 0;
	}
	return get_ip(addrs, "node.addresses", key, false, family, ip, err);
}

static const char *const node_keys[] = { "interfaces", "xdp_mode", "addresses", "mtu", NULL };
static const char *const addr_keys[] = { "ipv4", "ipv6", NULL };
static const char *const xdp_modes[] = { "native", "generic", "auto", NULL };

static int parse_node(json_t *root, struct aeth_config *cfg,
		      struct aeth_error *err)
{
	json_t *node, *ifs, *addrs, *v;
	char p[PATH_LEN];
	uint64_t mtu;
	size_t i;
	int ret, mode;

	ret = field(root, "", "node", true, &node, err);
	if (!ret)
		ret = expect_object(node, "node", node_keys, err);
	if (!ret)
		ret = field(node, "node", "interfaces", false, &ifs, err);
	if (ret)
		return ret;
	/* absent: the agent finds the NIC (node_detect.c) */
	if (ifs && !json_is_array(ifs))
		return aeth_config_fail(err, "node.interfaces", "must be an array");
	if (ifs && json_array_size(ifs) == 0)
		return aeth_config_fail(err, "node.interfaces", "must name at least one interface");
	if (json_array_size(ifs) > AETH_MAX_INTERFACES)
		return aeth_config_fail(err, "node.interfaces", "too many interfaces (at most %d)",
					AETH_MAX_INTERFACES);
	cfg->n_interfaces = json_array_size(ifs);
	cfg->interfaces = calloc(cfg->n_interfaces ? cfg->n_interfaces : 1,
				 sizeof(*cfg->interfaces));
	if (!cfg->interfaces)
		return aeth_config_fail(err, "node.interfaces", "out of memory");
	json_array_foreach(ifs, i, v) {
		const char *s;

		join_index(p, "node.interfaces", i);
		if (!json_is_string(v))
			return aeth_config_fail(err, p, "must be a string");
		s = json_string_value(v);
		if (!*s)
			return aeth_config_fail(err, p, "must not be empty");
		if (strlen(s) >= AETH_IFNAME_LEN)
			return aeth_config_fail(err, p, "longer than %d characters",
						AETH_IFNAME_LEN - 1);
		/* The kernel's own rule for device names. */
		if (!strcmp(s, ".") || !strcmp(s, "..") || strpbrk(s, "/: \t\n\r\v\f"))
			return aeth_config_fail(err, p, "not a valid interface name");
		strcpy(cfg->interfaces[i], s);
	}
	ret = check_unique(cfg->interfaces, cfg->n_interfaces, iface_cmp,
			   "node.interfaces", "", "duplicate of interfaces[%zu]", err);
	if (ret)
		return ret;

	ret = get_choice(node, "node", "xdp_mode", xdp_modes, 0, &mode, err);
	if (ret)
		return ret;
	cfg->xdp_mode = mode == 0 ? AETH_XDP_MODE_NATIVE :
			mode == 1 ? AETH_XDP_MODE_GENERIC : AETH_XDP_MODE_AUTO;

	/* absent: from the agent's flags or the NIC (node_detect.c) */
	ret = field(node, "node", "addresses", false, &addrs, err);
	if (!ret && addrs)
		ret = expect_object(addrs, "node.addresses", addr_keys, err);
	if (!ret && addrs)
		ret = get_node_ip(addrs, "ipv4", AETH_AF_INET, &cfg->node_v4, err);
	if (!ret && addrs)
		ret = get_node_ip(addrs, "ipv6", AETH_AF_INET6, &cfg->node_v6, err);
	if (ret)
		return ret;
	if (addrs && !cfg->node_v4.family && !cfg->node_v6.family)
		return aeth_config_fail(err, "node.addresses", "needs ipv4 or ipv6");

	/* 576: the smallest datagram every IPv4 host accepts (RFC 791). */
	ret = get_uint(node, "node", "mtu", false, 1500, 576, 65535, &mtu, err);
	cfg->mtu = (uint32_t)mtu;
	return ret;
}

static const char *const maglev_keys[] = { "seed", "table_size", NULL };

static int parse_table_size(json_t *obj, const char *parent, uint32_t def,
			    uint32_t *out, struct aeth_error *err)
{
	char p[PATH_LEN], list[128];
	json_int_t v = def;
	size_t n = 0;
	json_t *jv;

	join(p, parent, "table_size");
	jv = json_object_get(obj, "table_size");
	if (jv && !json_is_integer(jv))
		return aeth_config_fail(err, p, "must be an integer");
	if (jv)
		v = json_integer_value(jv);
	if (v < 0 || v > UINT32_MAX || !aeth_table_size_supported((uint32_t)v)) {
		for (const uint32_t *s = aeth_table_sizes; *s; s++)
			n += snprintf(list + n, sizeof(list) - n, "%s%u",
				      n ? ", " : "", *s);
		return aeth_config_fail(err, p, "must be one of %s", list);
	}
	*out = (uint32_t)v;
	return 0;
}

static int parse_maglev(json_t *root, struct aeth_config *cfg,
			struct aeth_error *err)
{
	const char *seed;
	json_t *mg;
	int ret, i;

	ret = field(root, "", "maglev", true, &mg, err);
	if (!ret)
		ret = expect_object(mg, "maglev", maglev_keys, err);
	/* Required: every node must build the same tables, so the seed comes
	 * from the document, never from a local default. */
	if (!ret)
		ret = get_string(mg, "maglev", "seed", true, &seed, err);
	if (ret)
		return ret;
	if (strlen(seed) != 32 || strspn(seed, "0123456789abcdefABCDEF") != 32)
		return aeth_config_fail(err, "maglev.seed", "must be 32 hexadecimal digits");
	for (i = 0; i < 16; i++) {
		char byte[3] = { seed[2 * i], seed[2 * i + 1], '\0' };

		cfg->seed[i] = (uint8_t)strtoul(byte, NULL, 16);
	}
	return parse_table_size(mg, "maglev", 16381, &cfg->table_size, err);
}

static const char *const ct_keys[] = {
	"max_entries", "insert_rate_per_cpu", "udp_timeout_s", NULL,
};

static int parse_conntrack(json_t *root, struct aeth_config *cfg,
			   struct aeth_error *err)
{
	uint64_t max = AETH_DEFAULT_CT_ENTRIES, rate = AETH_DEFAULT_CT_INSERT_RATE;
	uint64_t udp = AETH_DEFAULT_UDP_TIMEOUT_S;
	json_t *ct;
	int ret;

	ret = field(root, "", "conntrack", false, &ct, err);
	if (!ret && ct)
		ret = expect_object(ct, "conntrack", ct_keys, err);
	if (!ret && ct)
		ret = get_uint(ct, "conntrack", "max_entries", false,
			       AETH_DEFAULT_CT_ENTRIES, AETH_CFG_CT_MIN_ENTRIES,
			       AETH_CFG_CT_MAX_ENTRIES, &max, err);
	if (!ret && ct)
		ret = get_uint(ct, "conntrack", "insert_rate_per_cpu", false,
			       AETH_DEFAULT_CT_INSERT_RATE, 0,
			       AETH_CFG_MAX_RATE, &rate, err);
	if (!ret && ct)
		ret = get_uint(ct, "conntrack", "udp_timeout_s", false,
			       AETH_DEFAULT_UDP_TIMEOUT_S, 1, 86400, &udp, err);
	cfg->ct_max_entries = (uint32_t)max;
	cfg->ct_insert_rate = (uint32_t)rate;
	cfg->udp_timeout_s = (uint32_t)udp;
	return ret;
}

static const char *const decap_keys[] = { "sources", NULL };

/* decap.sources: the LB nodes whose tunnels this node accepts. */
static int parse_decap(json_t *root, struct aeth_config *cfg,
		       struct aeth_error *err)
{
	char p[PATH_LEN];
	json_t *decap, *list, *v;
	size_t i;
	int ret;

	ret = field(root, "", "decap", false, &decap, err);
	if (ret || !decap)
		return ret;
	ret = expect_object(decap, "decap", decap_keys, err);
	if (!ret)
		ret = field(decap, "decap", "sources", false, &list, err);
	if (ret || !list)
		return ret;
	if (!json_is_array(list))
		return aeth_config_fail(err, "decap.sources", "must be an array");
	if (json_array_size(list) > AETH_MAX_DECAP_SOURCES)
		return aeth_config_fail(err, "decap.sources", "too many CIDRs (at most %d)",
					AETH_MAX_DECAP_SOURCES);
	cfg->n_decap_sources = json_array_size(list);
	if (!cfg->n_decap_sources)
		return 0;
	cfg->decap_sources = calloc(cfg->n_decap_sources,
				    sizeof(*cfg->decap_sources));
	if (!cfg->decap_sources)
		return aeth_config_fail(err, "decap.sources", "out of memory");
	json_array_foreach(list, i, v) {
		join_index(p, "decap.sources", i);
		ret = parse_cidr(v, p, &cfg->decap_sources[i], err);
		if (ret)
			return ret;
	}
	return check_unique(cfg->decap_sources, cfg->n_decap_sources, cidr_cmp,
			    "decap.sources", "", "duplicate of sources[%zu]",
			    err);
}

static const char *const icmp_keys[] = { "too_big_per_second_per_cpu", NULL };

/* icmp.too_big_per_second_per_cpu: the budget of frag-needed / packet-too-big
 * replies (our addition to SPEC.md). */
static int parse_icmp(json_t *root, struct aeth_config *cfg,
		      struct aeth_error *err)
{
	uint64_t rate = AETH_DEFAULT_ICMP_RATE;
	json_t *icmp;
	int ret;

	ret = field(root, "", "icmp", false, &icmp, err);
	if (!ret && icmp)
		ret = expect_object(icmp, "icmp", icmp_keys, err);
	if (!ret && icmp)
		ret = get_uint(icmp, "icmp", "too_big_per_second_per_cpu", false,
			       AETH_DEFAULT_ICMP_RATE, 0, AETH_CFG_MAX_RATE,
			       &rate, err);
	cfg->icmp_rate = (uint32_t)rate;
	return ret;
}

static const char *const acl_keys[] = { "enabled", "cidrs", NULL };

static int parse_acl(json_t *svc, const char *sp, struct aeth_cfg_service *s,
		     struct aeth_error *err)
{
	char p[PATH_LEN], lp[PATH_LEN];
	json_t *acl, *list, *v;
	size_t i;
	int ret;

	ret = field(svc, sp, "authorized_networks", false, &acl, err);
	if (ret || !acl)
		return ret;
	join(p, sp, "authorized_networks");
	ret = expect_object(acl, p, acl_keys, err);
	/* Required so that a list without "enabled" is not silently open. */
	if (!ret)
		ret = get_bool(acl, p, "enabled", true, false, &s->acl_enabled, err);
	if (!ret)
		ret = field(acl, p, "cidrs", false, &list, err);
	if (ret || !list)
		return ret;
	join(lp, p, "cidrs");
	if (!json_is_array(list))
		return aeth_config_fail(err, lp, "must be an array");
	if (json_array_size(list) > AETH_MAX_ACL_CIDRS)
		return aeth_config_fail(err, lp, "too many CIDRs (at most %d)", AETH_MAX_ACL_CIDRS);
	s->n_cidrs = json_array_size(list);
	if (!s->n_cidrs)
		return 0;
	s->cidrs = calloc(s->n_cidrs, sizeof(*s->cidrs));
	if (!s->cidrs)
		return aeth_config_fail(err, lp, "out of memory");
	json_array_foreach(list, i, v) {
		join_index(p, lp, i);
		ret = parse_cidr(v, p, &s->cidrs[i], err);
		if (ret)
			return ret;
	}
	return check_unique(s->cidrs, s->n_cidrs, cidr_cmp, lp, "",
			    "duplicate of cidrs[%zu]", err);
}

static const char *const rl_keys[] = {
	"new_connections_per_second", "burst", "source_prefix_v4",
	"source_prefix_v6", "service_new_connections_per_second", NULL,
};

static int parse_rate_limit(json_t *svc, const char *sp,
			    struct aeth_cfg_service *s,
			    struct aeth_error *err)
{
	struct aeth_cfg_rate_limit *rl = &s->rate_limit;
	uint64_t per_source, burst, v4, v6, per_service;
	char p[PATH_LEN], bp[PATH_LEN];
	json_t *obj;
	int ret;

	ret = field(svc, sp, "rate_limit", false, &obj, err);
	if (ret || !obj)
		return ret;
	join(p, sp, "rate_limit");
	ret = expect_object(obj, p, rl_keys, err);
	/* A rate that is present must be >= 1; absent means that limiter is
	 * off. 0 is refused rather than read as "off" or "block all". */
	if (!ret)
		ret = get_uint(obj, p, "new_connections_per_second", false, 0, 1,
			       AETH_CFG_MAX_RATE, &per_source, err);
	if (!ret)
		ret = get_uint(obj, p, "burst", false, per_source, 1,
			       AETH_CFG_MAX_RATE, &burst, err);
	if (!ret && json_object_get(obj, "burst") && !per_source) {
		join(bp, p, "burst");
		return aeth_config_fail(err, bp, "needs new_connections_per_second");
	}
	if (!ret)
		ret = get_uint(obj, p, "source_prefix_v4", false, 32, 0, 32, &v4, err);
	if (!ret)
		ret = get_uint(obj, p, "source_prefix_v6", false, 64, 0, 128, &v6, err);
	if (!ret)
		ret = get_uint(obj, p, "service_new_connections_per_second", false,
			       0, 1, AETH_CFG_MAX_RATE, &per_service, err);
	if (ret)
		return ret;
	rl->enabled = true;
	rl->per_source = (uint32_t)per_source;
	rl->burst = (uint32_t)burst;
	rl->prefix_v4 = (uint8_t)v4;
	rl->prefix_v6 = (uint8_t)v6;
	rl->per_service = (uint32_t)per_service;
	return 0;
}

static const char *const hc_keys[] = {
	"type", "port", "path", "ca", "server_name", "interval_ms", "timeout_ms",
	"rise", "fall", NULL,
};
static const char *const hc_types[] = { "tcp", "http", "https", NULL };

/* A string member that only some check types take: printable, no spaces,
 * shorter than max. *out NULL when absent. */
static int get_hc_text(json_t *obj, const char *p, const char *key,
		       bool allowed, const char *types, size_t max,
		       const char **out, struct aeth_error *err)
{
	char fp[PATH_LEN];
	const char *c;
	int ret;

	ret = get_string(obj, p, key, false, out, err);
	if (ret || !*out)
		return ret;
	join(fp, p, key);
	if (!allowed)
		return aeth_config_fail(err, fp, "only allowed when type is %s", types);
	if (!**out)
		return aeth_config_fail(err, fp, "must not be empty");
	if (strlen(*out) >= max)
		return aeth_config_fail(err, fp, "longer than %zu characters", max - 1);
	for (c = *out; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return aeth_config_fail(err, fp, "may not contain spaces or control characters");
	return 0;
}

/* path (http, https), ca and server_name (https). */
static int parse_health_target(json_t *obj, const char *p, int type,
			       struct aeth_cfg_health *hc,
			       struct aeth_error *err)
{
	const char *path, *ca, *name;
	char fp[PATH_LEN];
	int ret;

	ret = get_hc_text(obj, p, "path", type != 0, "\"http\" or \"https\"",
			  sizeof(hc->path), &path, err);
	if (!ret)
		ret = get_hc_text(obj, p, "ca", type == 2, "\"https\"",
				  sizeof(hc->ca), &ca, err);
	if (!ret)
		ret = get_hc_text(obj, p, "server_name", type == 2, "\"https\"",
				  sizeof(hc->server_name), &name, err);
	if (ret)
		return ret;
	if (path && path[0] != '/') {
		join(fp, p, "path");
		return aeth_config_fail(err, fp, "must start with '/'");
	}
	/* the agent may run with another working directory than the tool
	 * that validated the document */
	if (ca && ca[0] != '/') {
		join(fp, p, "ca");
		return aeth_config_fail(err, fp, "must be an absolute file name");
	}
	snprintf(hc->path, sizeof(hc->path), "%s",
		 path ? path : type == 2 ? "/readyz" : "/");
	snprintf(hc->ca, sizeof(hc->ca), "%s", ca ? ca : "");
	snprintf(hc->server_name, sizeof(hc->server_name), "%s", name ? name : "");
	return 0;
}

static int parse_health(json_t *svc, const char *sp, struct aeth_cfg_service *s,
			struct aeth_error *err)
{
	static const enum aeth_hc_type types[] = {
		AETH_HC_TCP, AETH_HC_HTTP, AETH_HC_HTTPS,
	};
	struct aeth_cfg_health *hc = &s->health;
	uint64_t port, interval, timeout, rise, fall;
	char p[PATH_LEN], fp[PATH_LEN];
	json_t *obj;
	int ret, type;

	ret = field(svc, sp, "health_check", false, &obj, err);
	if (ret || !obj)
		return ret;
	join(p, sp, "health_check");
	ret = expect_object(obj, p, hc_keys, err);
	if (!ret)
		ret = get_choice(obj, p, "type", hc_types, -1, &type, err);
	if (!ret)
		ret = get_uint(obj, p, "port", false, 0, 0, 65535, &port, err);
	if (ret)
		return ret;
	if (port == 0 && s->port == 0) {
		join(fp, p, "port");
		return aeth_config_fail(err, fp, "required when the service port is 0");
	}
	ret = parse_health_target(obj, p, type, hc, err);
	if (!ret)
		ret = get_uint(obj, p, "interval_ms", false, 1000, 10, 3600000,
			       &interval, err);
	/* The default timeout is half the interval (500 ms by default). */
	if (!ret)
		ret = get_uint(obj, p, "timeout_ms", false, interval / 2, 1,
			       3600000, &timeout, err);
	if (!ret && timeout >= interval) {
		join(fp, p, "timeout_ms");
		return aeth_config_fail(err, fp, "must be less than interval_ms");
	}
	if (!ret)
		ret = get_uint(obj, p, "rise", false, 2, 1, 1000, &rise, err);
	if (!ret)
		ret = get_uint(obj, p, "fall", false, 3, 1, 1000, &fall, err);
	if (ret)
		return ret;
	hc->type = types[type];
	hc->port = (uint16_t)port;
	hc->interval_ms = (uint32_t)interval;
	hc->timeout_ms = (uint32_t)timeout;
	hc->rise = (uint32_t)rise;
	hc->fall = (uint32_t)fall;
	return 0;
}

static const char *const be_keys[] = { "address", "weight", "state", NULL };
static const char *const be_states[] = { "active", "draining", NULL };

static int parse_backends(json_t *svc, const char *sp,
			  struct aeth_cfg_service *s, struct aeth_config *cfg,
			  size_t *total, struct aeth_error *err)
{
	char lp[PATH_LEN], p[PATH_LEN], ap[PATH_LEN];
	json_t *list, *v;
	uint64_t weight;
	size_t i;
	int ret, state;

	ret = field(svc, sp, "backends", true, &list, err);
	if (ret)
		return ret;
	join(lp, sp, "backends");
	if (!json_is_array(list))
		return aeth_config_fail(err, lp, "must be an array");
	s->n_backends = json_array_size(list);
	if (*total + s->n_backends > AETH_CFG_MAX_BACKENDS)
		return aeth_config_fail(err, lp, "too many backends in total (at most %d)",
					AETH_CFG_MAX_BACKENDS);
	*total += s->n_backends;
	if (s->n_backends > s->table_size)
		return aeth_config_fail(err, lp, "more backends (%zu) than table_size (%u)",
					s->n_backends, s->table_size);
	if (!s->n_backends)
		return 0;
	s->backends = calloc(s->n_backends, sizeof(*s->backends));
	if (!s->backends)
		return aeth_config_fail(err, lp, "out of memory");

	json_array_foreach(list, i, v) {
		struct aeth_cfg_backend *be = &s->backends[i];

		join_index(p, lp, i);
		ret = expect_object(v, p, be_keys, err);
		if (!ret)
			ret = get_ip(v, p, "address", true, 0, &be->ip, err);
		if (ret)
			return ret;
		/* The outer header of the tunnel is of the backend's family,
		 * its source the node's address of that family. */
		join(ap, p, "address");
		/* without node addresses in the document the agent checks
		 * once it has them (node_detect.c) */
		if (cfg->node_v4.family || cfg->node_v6.family) {
			if (be->ip.family == AETH_AF_INET && !cfg->node_v4.family)
				return aeth_config_fail(err, ap, "IPv4 backend needs node.addresses.ipv4");
			if (be->ip.family == AETH_AF_INET6 && !cfg->node_v6.family)
				return aeth_config_fail(err, ap, "IPv6 backend needs node.addresses.ipv6");
		}
		ip_text(&be->ip, be->address_text, sizeof(be->address_text));
		ret = get_uint(v, p, "weight", false, 1, 0, 65535, &weight, err);
		if (!ret)
			ret = get_choice(v, p, "state", be_states, 0, &state, err);
		if (ret)
			return ret;
		be->weight = (uint16_t)weight;
		be->draining = state == 1;
	}
	return check_unique(s->backends, s->n_backends, backend_cmp, lp,
			    ".address", "duplicate of backends[%zu]", err);
}

static const char *const svc_keys[] = {
	"name", "vip", "port", "protocol", "table_size", "authorized_networks",
	"rate_limit", "health_check", "backends", NULL,
};
static const char *const protocols[] = { "tcp", "udp", NULL };

static int parse_service(json_t *v, const char *sp, struct aeth_cfg_service *s,
			 struct aeth_config *cfg, size_t *total,
			 struct aeth_error *err)
{
	uint64_t port;
	int ret, proto;

	ret = expect_object(v, sp, svc_keys, err);
	if (!ret)
		ret = parse_name(v, sp, s->name, err);
	if (!ret)
		ret = get_ip(v, sp, "vip", true, 0, &s->vip, err);
	if (!ret)
		ret = get_uint(v, sp, "port", true, 0, 0, 65535, &port, err);
	if (!ret)
		ret = get_choice(v, sp, "protocol", protocols, -1, &proto, err);
	if (!ret)
		ret = parse_table_size(v, sp, cfg->table_size, &s->table_size, err);
	if (ret)
		return ret;
	ip_text(&s->vip, s->vip_text, sizeof(s->vip_text));
	s->port = (uint16_t)port;
	s->proto = proto == 0 ? IPPROTO_TCP : IPPROTO_UDP;

	ret = parse_acl(v, sp, s, err);
	if (!ret)
		ret = parse_rate_limit(v, sp, s, err);
	if (!ret)
		ret = parse_health(v, sp, s, err);
	if (!ret)
		ret = parse_backends(v, sp, s, cfg, total, err);
	return ret;
}

static int parse_services(json_t *root, struct aeth_config *cfg,
			  struct aeth_error *err)
{
	size_t i, total = 0;
	char p[PATH_LEN];
	json_t *list, *v;
	int ret;

	ret = field(root, "", "services", true, &list, err);
	if (ret)
		return ret;
	if (!json_is_array(list))
		return aeth_config_fail(err, "services", "must be an array");
	if (json_array_size(list) > AETH_CFG_MAX_SERVICES)
		return aeth_config_fail(err, "services", "too many services (at most %d)",
					AETH_CFG_MAX_SERVICES);
	cfg->n_services = json_array_size(list);
	if (!cfg->n_services)
		return 0;
	cfg->services = calloc(cfg->n_services, sizeof(*cfg->services));
	if (!cfg->services)
		return aeth_config_fail(err, "services", "out of memory");
	json_array_foreach(list, i, v) {
		join_index(p, "services", i);
		ret = parse_service(v, p, &cfg->services[i], cfg, &total, err);
		if (ret)
			return ret;
	}
	ret = check_unique(cfg->services, cfg->n_services, service_name_cmp,
			   "services", ".name", "duplicate of services[%zu]", err);
	if (!ret)
		ret = check_unique(cfg->services, cfg->n_services, service_key_cmp,
				   "services", "",
				   "same vip, port and protocol as services[%zu]", err);
	return ret;
}

static bool uses_ipv6(const struct aeth_config *cfg)
{
	if (cfg->node_v6.family)
		return true;
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct aeth_cfg_service *s = &cfg->services[i];

		if (s->vip.family == AETH_AF_INET6)
			return true;
		for (size_t j = 0; j < s->n_backends; j++)
			if (s->backends[j].ip.family == AETH_AF_INET6)
				return true;
	}
	return false;
}

static bool cidr_overlap(const struct aeth_cfg_cidr *a,
			 const struct aeth_cfg_cidr *b)
{
	unsigned int plen = a->prefixlen < b->prefixlen ? a->prefixlen :
							  b->prefixlen;

	if (a->ip.family != b->ip.family)
		return false;
	for (unsigned int bit = 0; bit < plen; bit++) {
		uint8_t m = (uint8_t)(0x80u >> (bit % 8));

		if ((a->ip.addr.bytes[bit / 8] & m) != (b->ip.addr.bytes[bit / 8] & m))
			return false;
	}
	return true;
}

static const char *const k8s_keys[] = {
	"load_balancer_class", "default_class", "ip_pools", NULL,
};

/* kubernetes (SPEC.md section 8): the class served and the VIP pools. */
static int parse_kubernetes(json_t *root, struct aeth_config *cfg,
			    struct aeth_error *err)
{
	struct aeth_cfg_kubernetes *k = &cfg->k8s;
	const char *cls;
	char p[PATH_LEN];
	json_t *obj, *list, *v;
	size_t i;
	int ret;

	ret = field(root, "", "kubernetes", false, &obj, err);
	if (ret || !obj)
		return ret;
	ret = expect_object(obj, "kubernetes", k8s_keys, err);
	if (!ret)
		ret = get_string(obj, "kubernetes", "load_balancer_class", true,
				 &cls, err);
	if (ret)
		return ret;
	/* The API server's own limit for a qualified name. */
	if (!*cls || strlen(cls) >= sizeof(k->lb_class))
		return aeth_config_fail(err, "kubernetes.load_balancer_class",
					"must be 1 to %zu characters", sizeof(k->lb_class) - 1);
	strcpy(k->lb_class, cls);
	ret = get_bool(obj, "kubernetes", "default_class", false, false,
		       &k->default_class, err);
	if (!ret)
		ret = field(obj, "kubernetes", "ip_pools", true, &list, err);
	if (ret)
		return ret;
	if (!json_is_array(list))
		return aeth_config_fail(err, "kubernetes.ip_pools", "must be an array");
	if (json_array_size(list) > AETH_CFG_MAX_POOLS)
		return aeth_config_fail(err, "kubernetes.ip_pools", "too many pools (at most %d)",
					AETH_CFG_MAX_POOLS);
	k->present = true;
	k->n_pools = json_array_size(list);
	if (!k->n_pools)
		return 0;
	k->pools = calloc(k->n_pools, sizeof(*k->pools));
	if (!k->pools)
		return aeth_config_fail(err, "kubernetes.ip_pools", "out of memory");
	json_array_foreach(list, i, v) {
		join_index(p, "kubernetes.ip_pools", i);
		ret = parse_cidr(v, p, &k->pools[i], err);
		if (ret)
			return ret;
	}
	/* An address in two pools could be handed out twice. */
	for (i = 1; i < k->n_pools; i++)
		for (size_t j = 0; j < i; j++)
			if (cidr_overlap(&k->pools[i], &k->pools[j])) {
				join_index(p, "kubernetes.ip_pools", i);
				return aeth_config_fail(err, p, "overlaps ip_pools[%zu]", j);
			}
	return 0;
}

static const char *const root_keys[] = {
	"version", "node", "maglev", "conntrack", "services", "decap", "icmp",
	"kubernetes", "bgp",
	NULL,
};

static int parse_root(json_t *root, struct aeth_config *cfg,
		      struct aeth_error *err)
{
	json_t *version;
	int ret;

	if (!json_is_object(root))
		return aeth_config_fail(err, "document", "must be a JSON object");
	ret = check_keys(root, "", root_keys, err);
	if (!ret)
		ret = field(root, "", "version", true, &version, err);
	if (ret)
		return ret;
	if (!json_is_integer(version))
		return aeth_config_fail(err, "version", "must be an integer");
	if (json_integer_value(version) != 1)
		return aeth_config_fail(err, "version", "must be 1");
	cfg->version = 1;

	ret = parse_node(root, cfg, err);
	if (!ret)
		ret = parse_maglev(root, cfg, err);
	if (!ret)
		ret = parse_conntrack(root, cfg, err);
	if (!ret)
		ret = parse_decap(root, cfg, err);
	if (!ret)
		ret = parse_icmp(root, cfg, err);
	if (!ret)
		ret = parse_services(root, cfg, err);
	if (!ret)
		ret = parse_kubernetes(root, cfg, err);
	if (!ret)
		ret = aeth_config_parse_bgp(root, cfg, err);
	if (ret)
		return ret;
	/* IPv6 requires every link to carry 1280 bytes (RFC 8200). */
	if (cfg->mtu < 1280 && uses_ipv6(cfg))
		return aeth_config_fail(err, "node.mtu", "must be >= 1280 when IPv6 is used");
	return 0;
}

int aeth_config_parse(const char *text, size_t len, struct aeth_config **out,
		      struct aeth_error *err)
{
	struct aeth_error local;
	struct aeth_config *cfg;
	json_error_t jerr;
	const char *nul;
	json_t *root;
	int ret;

	if (!err)
		err = &local;
	memset(err, 0, sizeof(*err));
	if (len > AETH_CONFIG_MAX_BYTES)
		return aeth_config_fail(err, "document", "larger than %u bytes",
					AETH_CONFIG_MAX_BYTES);

	/* jansson reads a NUL byte as the end of the buffer's text and would
	 * accept what follows unseen: refuse it where it is, counting columns
	 * in characters as jansson does. */
	nul = memchr(text, '\0', len);
	if (nul) {
		err->line = 1;
		for (const char *c = text; c < nul; c++) {
			if ((*c & 0xc0) != 0x80)
				err->column++;
			if (*c == '\n') {
				err->line++;
				err->column = 0;
			}
		}
		err->column++;
		snprintf(err->message, sizeof(err->message), "NUL byte in document");
		return -EINVAL;
	}

	if (aeth_config_check_utf8(text, len, err))
		return -EINVAL;
	/* NUL escapes are let through the parser so that the check below can
	 * name the field that holds one */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
			  &jerr);
	if (!root) {
		err->path[0] = '\0';
		snprintf(err->message, sizeof(err->message), "%s", jerr.text);
		err->line = jerr.line;
		err->column = jerr.column;
		return -EINVAL;
	}

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		json_decref(root);
		return aeth_config_fail(err, "document", "out of memory");
	}
	ret = aeth_config_check_nul(root, err);
	if (!ret)
		ret = parse_root(root, cfg, err);
	if (!ret)
		ret = aeth_config_check_addresses(cfg, err);
	json_decref(root);
	if (!ret) {
		cfg->text = malloc(len + 1);
		if (!cfg->text)
			ret = aeth_config_fail(err, "document", "out of memory");
	}
	if (ret) {
		aeth_config_free(cfg);
		return ret;
	}
	memcpy(cfg->text, text, len);
	cfg->text[len] = '\0';
	cfg->text_len = len;
	aeth_sha256(text, len, cfg->hash);
	*out = cfg;
	return 0;
}

int aeth_config_load_file(const char *path, struct aeth_config **out,
			  struct aeth_error *err)
{
	struct aeth_error local;
	size_t len;
	char *text;
	int ret;

	if (!err)
		err = &local;
	memset(err, 0, sizeof(*err));
	ret = aeth_read_file(path, AETH_CONFIG_MAX_BYTES, &text, &len);
	if (ret) {
		snprintf(err->path, sizeof(err->path), "%s", path);
		if (ret == -EFBIG)
			snprintf(err->message, sizeof(err->message),
				 "larger than %u bytes", AETH_CONFIG_MAX_BYTES);
		else
			snprintf(err->message, sizeof(err->message), "%s",
				 ret == -ENOTSUP ? "not a regular file (a FIFO, "
				 "device or directory is refused)" :
				 strerror(-ret));
		return ret;
	}
	ret = aeth_config_parse(text, len, out, err);
	free(text);
	return ret;
}

void aeth_config_free(struct aeth_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_services; i++) {
		free(cfg->services[i].cidrs);
		free(cfg->services[i].backends);
	}
	free(cfg->services);
	free(cfg->k8s.pools);
	free(cfg->bgp);
	free(cfg->decap_sources);
	free(cfg->interfaces);
	free(cfg->text);
	free(cfg);
}
