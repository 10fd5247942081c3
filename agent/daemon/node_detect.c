/* Finding the node's NIC and addresses when the document leaves them out:
 * from the agent's flags, the NIC that holds the node address, or the
 * default route's NIC (/proc/net/route, /proc/net/ipv6_route). */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_detect.h"

int aeth_node_hint_address(struct aeth_node_hint *hint, const char *text)
{
	struct aeth_ip ip = { 0 };

	if (inet_pton(AF_INET, text, &ip.addr.v4) == 1) {
		ip.family = AETH_AF_INET;
		hint->v4 = ip;
		return 0;
	}
	if (inet_pton(AF_INET6, text, ip.addr.bytes) == 1) {
		ip.family = AETH_AF_INET6;
		hint->v6 = ip;
		return 0;
	}
	return -EINVAL;
}

static bool sockaddr_ip(const struct sockaddr *sa, struct aeth_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (sa && sa->sa_family == AF_INET) {
		ip->family = AETH_AF_INET;
		ip->addr.v4 = ((const struct sockaddr_in *)sa)->sin_addr.s_addr;
		return true;
	}
	if (sa && sa->sa_family == AF_INET6) {
		ip->family = AETH_AF_INET6;
		memcpy(ip->addr.bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

/* Not loopback, not link-local: an address other hosts can reach. */
static bool is_global(const struct aeth_ip *ip)
{
	const uint8_t *b = ip->addr.bytes;

	if (ip->family == AETH_AF_INET)
		return b[0] != 127 && !(b[0] == 169 && b[1] == 254) && b[0] != 0;
	return !(b[0] == 0xfe && (b[1] & 0xc0) == 0x80) &&
	       !IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)b) &&
	       !IN6_IS_ADDR_UNSPECIFIED((const struct in6_addr *)b) &&
	       b[0] != 0xff;
}

static bool ip_same(const struct aeth_ip *a, const struct aeth_ip *b)
{
	return a->family && a->family == b->family &&
	       memcmp(a->addr.bytes, b->addr.bytes,
		      a->family == AETH_AF_INET ? 4 : 16) == 0;
}

/* The NIC holding one of the node's addresses; "" when none does. */
static void nic_of_address(const struct aeth_config *cfg, char *out)
{
	struct ifaddrs *list, *i;
	struct aeth_ip ip;

	out[0] = '\0';
	if (getifaddrs(&list))
		return;
	for (i = list; i && !out[0]; i = i->ifa_next)
		if (sockaddr_ip(i->ifa_addr, &ip) &&
		    (ip_same(&ip, &cfg->node_v4) || ip_same(&ip, &cfg->node_v6)))
			snprintf(out, AETH_IFNAME_LEN, "%s", i->ifa_name);
	freeifaddrs(list);
}

/* The NIC of the default route: IPv4 first, then IPv6; "" when none. */
static void nic_of_default_route(char *out)
{
	char line[512], name[64], dest[64], plen[8];
	unsigned long flags;
	FILE *f;

	out[0] = '\0';
	f = fopen("/proc/net/route", "r");
	/* Iface Destination Gateway Flags ... Mask ... */
	while (f && !out[0] && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %63s %*s %lx", name, dest, &flags) == 3 &&
		    !strcmp(dest, "00000000") && (flags & 1) && strcmp(name, "lo"))
			snprintf(out, AETH_IFNAME_LEN, "%.*s", AETH_IFNAME_LEN - 1, name);
	if (f)
		fclose(f);
	f = out[0] ? NULL : fopen("/proc/net/ipv6_route", "r");
	/* dest plen src srcplen nexthop metric refcnt use flags iface */
	while (f && !out[0] && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %7s %*s %*s %*s %*s %*s %*s %lx %63s", dest,
			   plen, &flags, name) == 4 &&
		    strspn(dest, "0") == 32 && !strcmp(plen, "00") &&
		    (flags & 1) && strcmp(name, "lo"))
			snprintf(out, AETH_IFNAME_LEN, "%.*s", AETH_IFNAME_LEN - 1, name);
	if (f)
		fclose(f);
}

/* The first global address of family on ifname into *ip (left alone when
 * there is none). */
static void address_on(const char *ifname, uint8_t family, struct aeth_ip *ip)
{
	struct ifaddrs *list, *i;
	struct aeth_ip cand;

	if (getifaddrs(&list))
		return;
	for (i = list; i; i = i->ifa_next) {
		if (strcmp(i->ifa_name, ifname) || !sockaddr_ip(i->ifa_addr, &cand) ||
		    cand.family != family || !is_global(&cand))
			continue;
		*ip = cand;
		break;
	}
	freeifaddrs(list);
}

__attribute__((format(printf, 3, 4)))
static int fail(struct aeth_error *err, const char *path,
		const char *fmt, ...)
{
	va_list ap;

	memset(err, 0, sizeof(*err));
	snprintf(err->path, sizeof(err->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int pick_interface(struct aeth_config *cfg, const struct aeth_node_hint *hint,
			  struct aeth_error *err)
{
	char name[AETH_IFNAME_LEN];

	snprintf(name, sizeof(name), "%s", hint->interface);
	if (!name[0])
		nic_of_address(cfg, name);
	if (!name[0])
		nic_of_default_route(name);
	if (!name[0])
		return fail(err, "node.interfaces", "absent, and no NIC holds "
			    "a node address or the default route (give --interface)");
	cfg->interfaces = calloc(1, sizeof(*cfg->interfaces));
	if (!cfg->interfaces)
		return fail(err, "node.interfaces", "out of memory");
	memcpy(cfg->interfaces[0], name, sizeof(name));
	cfg->n_interfaces = 1;
	return 0;
}

/* The tunnel's outer source is the node's address of the backend's
 * family: the check config.c defers when the document has no addresses. */
static int check_backend_families(const struct aeth_config *cfg,
				  struct aeth_error *err)
{
	char path[128];

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct aeth_cfg_service *s = &cfg->services[i];

		for (size_t j = 0; j < s->n_backends; j++) {
			bool v6 = s->backends[j].ip.family == AETH_AF_INET6;

			if ((v6 ? cfg->node_v6 : cfg->node_v4).family)
				continue;
			snprintf(path, sizeof(path), "services[%zu].backends[%zu].address",
				 i, j);
			return fail(err, path, "%s backend, but the node has no "
				    "address of that family (node.addresses, "
				    "--node-address or on %s)", v6 ? "IPv6" : "IPv4",
				    cfg->interfaces[0]);
		}
	}
	return 0;
}

int aeth_node_complete(struct aeth_config *cfg, const struct aeth_node_hint *hint,
		       struct aeth_error *err)
{
	bool find_addresses = !cfg->node_v4.family && !cfg->node_v6.family;
	int ret;

	if (find_addresses) {
		cfg->node_v4 = hint->v4;
		cfg->node_v6 = hint->v6;
	}
	if (!cfg->n_interfaces) {
		ret = pick_interface(cfg, hint, err);
		if (ret)
			return ret;
	}
	if (find_addresses) {
		if (!cfg->node_v4.family)
			address_on(cfg->interfaces[0], AETH_AF_INET, &cfg->node_v4);
		if (!cfg->node_v6.family)
			address_on(cfg->interfaces[0], AETH_AF_INET6, &cfg->node_v6);
		if (!cfg->node_v4.family && !cfg->node_v6.family)
			return fail(err, "node.addresses", "absent, and none given "
				    "(--node-address) or found on %s",
				    cfg->interfaces[0]);
	}
	ret = check_backend_families(cfg, err);
	return ret ? ret : aeth_config_bgp_complete(cfg, err);
}
