/* The desired state: a validated configuration document (SPEC.md section 4). */
#ifndef AETHER_CONFIG_H
#define AETHER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aether/abi.h"

#define AETH_CONFIG_MAX_BYTES (64u << 20) /* largest document accepted */

/* An address as the data path stores it (union aeth_addr + family). */
struct aeth_ip {
	union aeth_addr addr;
	uint8_t family;		/* AETH_AF_INET or AETH_AF_INET6; 0 = unset */
};

struct aeth_cfg_cidr {
	struct aeth_ip ip;	/* host bits are zero */
	uint8_t prefixlen;	/* 0..32 or 0..128 */
};

enum aeth_hc_type { AETH_HC_NONE = 0, AETH_HC_TCP, AETH_HC_HTTP };

struct aeth_cfg_health {
	enum aeth_hc_type type;
	uint16_t port;		/* 0: the service port */
	char path[256];		/* http only; default "/" */
	uint32_t interval_ms, timeout_ms, rise, fall;
};

struct aeth_cfg_backend {
	char address_text[48];	/* canonical text form (inet_ntop) */
	struct aeth_ip ip;
	uint16_t weight;	/* default 1 */
	bool draining;
};

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
	uint32_t ct_insert_rate;	/* per CPU per second; default AETH_DEFAULT_CT_INSERT_RATE */
	struct aeth_cfg_service *services;
	size_t n_services;
	char *text;			/* the document as received */
	size_t text_len;
	uint8_t hash[32];		/* SHA-256 of text */
};

/* Where and why a document was rejected. path is "" for syntax errors, which
 * carry line and column instead. */
struct aeth_config_error {
	char path[256];
	char message[256];
	int line, column;
};

/* Parse and validate; on success *out owns a new config. Returns 0 or
 * -EINVAL with err filled ("services[2].rate_limit.burst: must be >= 1"). */
int aeth_config_parse(const char *text, size_t len, struct aeth_config **out,
		      struct aeth_config_error *err);
int aeth_config_load_file(const char *path, struct aeth_config **out,
			  struct aeth_config_error *err);
void aeth_config_free(struct aeth_config *cfg);

/* "path: message" or "line L, column C: message" into buf. */
void aeth_config_error_format(const struct aeth_config_error *err, char *buf,
			      size_t len);

/* Supported Maglev table sizes (primes), ascending, 0-terminated. */
extern const uint32_t aeth_table_sizes[];
bool aeth_table_size_supported(uint32_t size);

#endif /* AETHER_CONFIG_H */
