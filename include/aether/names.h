/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Userspace names of the ABI's enums: metric labels, CLI and JSON keys. */
#ifndef AETHER_NAMES_H
#define AETHER_NAMES_H

#include "abi.h"

static const char *const aeth_reason_names[AETH_R_MAX] = {
	[AETH_R_NOT_AUTHORIZED] = "not_authorized",
	[AETH_R_RATE_LIMITED] = "rate_limited",
	[AETH_R_SERVICE_RATE_LIMITED] = "service_rate_limited",
	[AETH_R_NO_BACKEND] = "no_backend",
	[AETH_R_UNCONFIGURED_PORT] = "unconfigured_port",
	[AETH_R_MALFORMED] = "malformed",
	[AETH_R_FRAGMENT] = "fragment",
	[AETH_R_DECAP_INVALID] = "decap_invalid",
	[AETH_R_MTU_EXCEEDED] = "mtu_exceeded",
	[AETH_R_NO_ROUTE] = "no_route",
};

static const char *const aeth_event_names[AETH_EV_MAX] = {
	[AETH_EV_PASS_NOT_SERVICE] = "pass_not_service",
	[AETH_EV_TX] = "tx",
	[AETH_EV_REDIRECT] = "redirect",
	[AETH_EV_TO_STACK_NO_NEIGH] = "to_stack_no_neigh",
	[AETH_EV_TO_STACK_FRAG] = "to_stack_frag",
	[AETH_EV_DECAP] = "decap",
	[AETH_EV_CT_HIT] = "conntrack_hit",
	[AETH_EV_CT_MISS] = "conntrack_miss",
	[AETH_EV_CT_INSERT] = "conntrack_insert",
	[AETH_EV_CT_INSERT_SKIPPED] = "conntrack_insert_skipped",
	[AETH_EV_CT_RESELECT] = "conntrack_reselect",
	[AETH_EV_ICMP_TOO_BIG_SENT] = "icmp_too_big_sent",
	[AETH_EV_ICMP_STEERED] = "icmp_steered",
	[AETH_EV_ICMP_TOO_BIG_LIMITED] = "icmp_too_big_limited",
	[AETH_EV_CT_EXPIRED] = "conntrack_expired",
	[AETH_EV_CT_STRAY] = "conntrack_stray",
	[AETH_EV_CT_EVICTED] = "conntrack_evicted",
};

static const char *const aeth_xdp_mode_names[] = {
	[AETH_XDP_MODE_NONE] = "none",
	[AETH_XDP_MODE_NATIVE] = "native",
	[AETH_XDP_MODE_GENERIC] = "generic",
	[AETH_XDP_MODE_AUTO] = "auto",
};

#endif /* AETHER_NAMES_H */
