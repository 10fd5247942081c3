/* The agent's side of the VIP filter (include/aether/vip_filter.h), a
 * global of the program it loaded, written through the skeleton's mapping
 * of the program's .bss: a VIP's bit is cleared before the VIP is
 * written, and bits are set only from a state no write will undo (a
 * committed apply, a recovered state), for the buckets that hold none of
 * its VIPs. Every write is one aligned 64-bit store or atomic and, so the
 * data path reads each word whole. */
#ifndef AETHER_VIP_FILTER_AGENT_H
#define AETHER_VIP_FILTER_AGENT_H

#include <stddef.h>

#include "agent.h"
#include "apply_internal.h"

/* Clear the bits of v[0..n). Never undone: a clear bit is always right,
 * and the next committed apply sets what it may. */
void aeth_vip_filter_admit(struct aeth_agent *a, const struct vip_count *v,
			   size_t n);

/* Make the filter say "no VIP" for exactly the buckets that hold none of
 * v[0..n). */
void aeth_vip_filter_sync(struct aeth_agent *a, const struct vip_count *v,
			  size_t n);

/* The filter holds under stamp, the value just written to aeth_stamp:
 * true of this agent's filter at every stamp, since it never has a VIP's
 * bit set (admit before a VIP is written, sync from committed states). */
void aeth_vip_filter_vouch(struct aeth_agent *a, uint64_t stamp);

#endif /* AETHER_VIP_FILTER_AGENT_H */
