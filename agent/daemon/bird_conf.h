/* BIRD's configuration for a node: sessions to the peers of the "bgp"
 * member, BFD where asked, and the VIPs to announce as host routes. */
#ifndef AETHER_BIRD_CONF_H
#define AETHER_BIRD_CONF_H

#include <stddef.h>

#include "config.h"

/* BFD timers on the node's side: a silent peer is down after 3 x 100 ms. */
#define AETH_BFD_INTERVAL_MS 100
#define AETH_BFD_MULTIPLIER 3

/* Name of the BGP protocol of peer i ("aeth_peer0"), as BIRD shows it. */
void aeth_bird_peer_name(size_t i, char *buf, size_t len);

/* The configuration text (malloc'd, NULL on ENOMEM): vips are announced,
 * each IPv4 one over the IPv4 sessions as a /32, each IPv6 one over the
 * IPv6 sessions as a /128. log_path: BIRD's own log file. */
char *aeth_bird_config(const struct aeth_cfg_bgp *bgp,
		       const struct aeth_ip *vips, size_t n_vips,
		       const char *log_path);

/* "203.0.113.10/32" or "2001:db8::10/128". */
void aeth_bird_prefix(const struct aeth_ip *ip, char *buf, size_t len);

#endif /* AETHER_BIRD_CONF_H */
