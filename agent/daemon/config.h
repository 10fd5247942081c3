/* The desired state: a validated configuration document (SPEC.md section 4). */
#ifndef AETHER_CONFIG_H
#define AETHER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aether/abi.h"
#include "agent_api.h"
#include "error.h"


/* Ranges the parser enforces beyond abi.h's limits. */
#define AETH_CFG_CT_MIN_ENTRIES 1024u		/* conntrack.max_entries */
#define AETH_CFG_CT_MAX_ENTRIES (16u << 20)
#define AETH_CFG_MAX_RATE 1000000000u	/* any per-second rate or burst */
/* A document may use at most half of each id space: the ids of the running
 * document stay taken until the switch, so any valid document can replace
 * any other in one apply. */
#define AETH_CFG_MAX_SERVICES (AETH_MAX_SERVICES / 2)
#define AETH_CFG_MAX_BACKENDS (AETH_MAX_BACKENDS / 2)

/* An address as the data path stores it (union aeth_addr + family). */
struct aeth_ip {
	union aeth_addr addr;
	uint8_t family;		/* AETH_AF_INET or AETH_AF_INET6; 0 = unset */
};

/* The one order of addresses (family, then bytes): sorting, dedup and
 * lookups of the document, Maglev's canonical order and the Kubernetes
 * translation all use it. All 16 bytes count: the unused ones are zero. */
static inline int aeth_ip_cmp(const struct aeth_ip *a, const struct aeth_ip *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->addr.bytes, b->addr.bytes, sizeof(a->addr.bytes));
}

static inline bool aeth_ip_equal(const struct aeth_ip *a,
				 const struct aeth_ip *b)
{
	return aeth_ip_cmp(a, b) == 0;
}

struct aeth_cfg_cidr {
	struct aeth_ip ip;	/* host bits are zero */
	uint8_t prefixlen;	/* 0..32 or 0..128 */
};

enum aeth_hc_type { AETH_HC_NONE = 0, AETH_HC_TCP, AETH_HC_HTTP, AETH_HC_HTTPS };

/* health_check: type required; port 0..65535 (0 = the service port, which
 * then must not be 0); path only for http and https, starts with '/';
 * ca (an absolute file name) and server_name only for https; interval_ms
 * 10..3600000 (default 1000); timeout_ms 1..interval_ms-1 (default half the
 * interval); rise and fall 1..1000 (default 2 and 3). */
struct aeth_cfg_health {
	enum aeth_hc_type type;
	uint16_t port;		/* 0: the service port */
	char path[256];		/* default "/" (http), "/readyz" (https) */
	char ca[256];		/* https: PEM CA bundle; "" = not verified */
	char server_name[256];	/* https: SNI and the name checked; "" = none */
	uint32_t interval_ms, timeout_ms, rise, fall;
};

struct aeth_cfg_backend {
	char address_text[48];	/* canonical text form (inet_ntop) */
	struct aeth_ip ip;
	uint16_t weight;	/* default 1 */
	bool draining;
};

/* rate_limit: each rate, when present, is 1..AETH_CFG_MAX_RATE; an absent
 * rate turns that limiter off (0 is refused, not read as "off"). burst
 * 1..AETH_CFG_MAX_RATE only together with new_connections_per_second. */
struct aeth_cfg_rate_limit {
	bool enabled;		/* the object is present */
	uint32_t per_source;	/* new_connections_per_second; 0 = off */
	uint32_t burst;		/* default = per_source */
	uint8_t prefix_v4;	/* default 32 */
	uint8_t prefix_v6;	/* default 64 */
	uint32_t per_service;	/* service_new_connections_per_second; 0 = off */
};

struct aeth_cfg_service {
	char name[AETH_NAME_LEN];
	struct aeth_ip vip;
	char vip_text[48];
	uint16_t port;		/* host order; 0 = every port */
	uint8_t proto;		/* IPPROTO_TCP / IPPROTO_UDP */
	uint32_t table_size;	/* default: maglev.table_size */
	bool acl_enabled;
	struct aeth_cfg_cidr *cidrs;
	size_t n_cidrs;
	struct aeth_cfg_rate_limit rate_limit;
	struct aeth_cfg_health health;
	struct aeth_cfg_backend *backends;
	size_t n_backends;
};

/* kubernetes (SPEC.md section 8): which Services of type LoadBalancer are
 * served (load_balancer_class required, default_class default false) and
 * the pools their VIPs come from (ip_pools required, no overlaps). */
#define AETH_CFG_MAX_POOLS 64
struct aeth_cfg_kubernetes {
	bool present;
	char lb_class[254];
	bool default_class;
	struct aeth_cfg_cidr *pools;
	size_t n_pools;
};

/* bgp (SPEC.md section 7): every peer's family needs a node address of that
 * family; router_id defaults to node.addresses.ipv4. A document without
 * node.addresses is checked for both once the agent filled them in. */
#define AETH_CFG_BGP_MAX_PEERS 16
#define AETH_CFG_BGP_MAX_COMMUNITIES 16

struct aeth_cfg_bgp_peer {
	struct aeth_ip address;
	char address_text[48];
	uint32_t asn;
	bool bfd;
};

struct aeth_cfg_bgp {
	uint32_t local_asn;
	struct aeth_ip router_id;	/* IPv4 */
	uint32_t hold_time;		/* seconds; 0 = the speaker's default */
	uint16_t communities[AETH_CFG_BGP_MAX_COMMUNITIES][2];	/* ASN:VALUE */
	size_t n_communities;
	struct aeth_cfg_bgp_peer peers[AETH_CFG_BGP_MAX_PEERS];
	size_t n_peers;
};

struct aeth_config;
struct aeth_error;
struct json_t;
/* The optional top-level "bgp" member into cfg->bgp (config_bgp.c); needs
 * node parsed first. */
int aeth_config_parse_bgp(struct json_t *root, struct aeth_config *cfg,
			  struct aeth_error *err);
/* The checks that need the node addresses (peer families, the router_id
 * default), once a document without them was completed (node_detect.c). */
int aeth_config_bgp_complete(struct aeth_config *cfg,
			     struct aeth_error *err);

/* Required: version (1), node.interfaces (1..AETH_MAX_INTERFACES),
 * node.addresses (ipv4 and/or ipv6), maglev.seed (so that every node builds
 * the same tables), services (may be empty) and in each service name, vip,
 * port, protocol and backends (may be empty). Everything else has the
 * default given beside its field. */
struct aeth_config {
	int version;
	char (*interfaces)[AETH_IFNAME_LEN];
	size_t n_interfaces;
	enum aeth_xdp_mode xdp_mode;	/* default native */
	struct aeth_ip node_v4, node_v6;	/* family 0 when absent */
	uint32_t mtu;			/* default 1500 */
	uint8_t seed[16];
	uint32_t table_size;		/* default 16381 */
	uint32_t ct_max_entries;	/* default AETH_DEFAULT_CT_ENTRIES */
	/* conntrack.insert_rate_per_cpu (our addition to SPEC.md): connection
	 * entries each CPU may insert per second before new flows stop being
	 * recorded (they are still balanced by Maglev). Bounds the cost of a
	 * SYN flood. Default AETH_DEFAULT_CT_INSERT_RATE, 0 = unlimited. */
	uint32_t ct_insert_rate;
	uint32_t udp_timeout_s;		/* conntrack.udp_timeout_s, default 30 */
	/* decap.sources: outer sources whose tunnels are accepted; none when
	 * empty or absent. */
	struct aeth_cfg_cidr *decap_sources;
	size_t n_decap_sources;
	/* icmp.too_big_per_second_per_cpu (our addition): frag-needed /
	 * packet-too-big replies per CPU per second, default 1000, 0 = none. */
	uint32_t icmp_rate;
	struct aeth_cfg_service *services;
	size_t n_services;
	struct aeth_cfg_kubernetes k8s;	/* present false when absent */
	struct aeth_cfg_bgp *bgp;	/* NULL when absent */
	char *text;			/* the document as received */
	size_t text_len;
	uint8_t hash[32];		/* SHA-256 of text */
};


/* Parse and validate; on success *out owns a new config, on failure *out is
 * not written. Returns 0 or -EINVAL with err filled
 * ("services[2].rate_limit.burst: must be >= 1"). err may be NULL. */
int aeth_config_parse(const char *text, size_t len, struct aeth_config **out,
		      struct aeth_error *err);
/* As aeth_config_parse on a file's contents. I/O errors return -errno
 * (-EFBIG above AETH_CONFIG_MAX_BYTES) with err->path the file name. */
int aeth_config_load_file(const char *path, struct aeth_config **out,
			  struct aeth_error *err);
void aeth_config_free(struct aeth_config *cfg);

/* The document's checks report a refusal with this: err gets the path and
 * the message (no line or column), and -EINVAL is returned. */
#define aeth_config_fail(err, path, ...) \
	aeth_fail((err), -EINVAL, (path), __VA_ARGS__)

/* Supported Maglev table sizes (primes), ascending, 0-terminated. */
extern const uint32_t aeth_table_sizes[];
bool aeth_table_size_supported(uint32_t size);

#endif /* AETHER_CONFIG_H */
