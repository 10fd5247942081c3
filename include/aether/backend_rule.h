/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Backend usability, as the data path (bpf/maglev.h, through ct_rule.h in
 * bpf/aether_lb.bpf.c) and aetherctl (explain, backend states) judge it:
 * a removed backend (not in use, or now another service's) serves nothing;
 * a draining or unhealthy one keeps its connections but takes no new one. */
#ifndef AETHER_BACKEND_RULE_H
#define AETHER_BACKEND_RULE_H

#include <stdbool.h>
#include <linux/types.h>
#include "abi.h"
#include "rule_inline.h"

/* Removed: the slot is free (or reused by another service). */
AETH_RULE bool aeth_backend_removed(const struct aeth_backend *be,
				    __u32 svc_id)
{
	return !(be->flags & AETH_BE_F_IN_USE) || be->svc_id != svc_id;
}

/* A backend that may take a new connection of service svc_id: in use, of
 * that service, neither draining nor unhealthy. */
AETH_RULE bool aeth_backend_usable(const struct aeth_backend *be,
				   __u32 svc_id)
{
	return (be->flags & (AETH_BE_F_IN_USE | AETH_BE_F_DRAINING |
			     AETH_BE_F_UNHEALTHY)) == AETH_BE_F_IN_USE &&
	       be->svc_id == svc_id;
}

#endif /* AETHER_BACKEND_RULE_H */
