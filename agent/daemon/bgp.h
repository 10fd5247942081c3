/* Announcing the VIPs over BGP (SPEC.md section 7): the agent supervises a
 * BIRD daemon and keeps what it announces equal to what may be announced. */
#ifndef AETHER_BGP_H
#define AETHER_BGP_H

#include <stdbool.h>
#include <stddef.h>

#include "agent.h"

struct event_base;
struct evbuffer;
struct json_t;
struct aeth_bgp;

/* How often the announced set and the speaker are checked: a change is
 * seen within this, so a withdrawal leaves within 1 s with room to spare. */
#define AETH_BGP_TICK_MS 100
/* Restarts of a dead speaker: first after this, doubling up to the max. */
#define AETH_BGP_BACKOFF_MS 500
#define AETH_BGP_BACKOFF_MAX_MS 30000

/* Start supervising the speaker whose files live in state_dir (created
 * with BIRD's config, control socket, pid file and log). A BIRD already
 * running there (left by a previous agent) is adopted, not restarted, so
 * an agent restart withdraws nothing. The drained flag is kept in a file
 * there across restarts. NULL with errno set on failure. */
struct aeth_bgp *aeth_bgp_start(struct event_base *base, struct aeth_agent *a,
				const char *state_dir);
/* Something that decides the announced set changed (an apply, a health
 * flip): bring BIRD in line now rather than at the next tick. */
void aeth_bgp_update(struct aeth_bgp *g);
/* Drain (announce nothing) or undrain; persisted. Returns 0 or -errno. */
int aeth_bgp_set_drained(struct aeth_bgp *g, bool drained);
bool aeth_bgp_drained(const struct aeth_bgp *g);
/* {"peers": [{"address", "asn", "bfd", "state"}], "announced": [PREFIX],
 *  "speaker": {"running", "pid", "restarts"}} */
struct json_t *aeth_bgp_status_json(const struct aeth_bgp *g);
/* The aether_bgp_* and aether_node_drained families (arg: the aeth_bgp). */
void aeth_bgp_scrape(struct evbuffer *b, void *arg);
/* Stop supervising; BIRD keeps running and announcing. */
void aeth_bgp_stop(struct aeth_bgp *g);

/* --detach: stop the BIRD running in state_dir (its sessions close, the
 * routers withdraw this node), then give the routers withdraw_wait_ms to
 * move the flows. Returns 1 when a speaker was stopped, 0 when none ran,
 * or a negative errno. */
int aeth_bgp_withdraw_all(const char *state_dir, int withdraw_wait_ms);

#endif /* AETHER_BGP_H */
