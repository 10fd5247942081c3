/* Keeping the node as the agent left it: every few seconds, re-pin maps
 * whose pins were deleted and attach again to configured interfaces that
 * came back (a veth deleted and created again) or lost our program. */
#ifndef AETHER_NODE_WATCH_H
#define AETHER_NODE_WATCH_H

#include "agent.h"

struct event_base;
struct aeth_node_watch;

#define AETH_NODE_WATCH_INTERVAL_MS 2000

/* Check every interval_ms on base. Returns NULL with errno set. */
struct aeth_node_watch *aeth_node_watch_start(struct event_base *base,
					      struct aeth_agent *a,
					      unsigned int interval_ms);

/* One check now (the timer calls this). */
void aeth_node_watch_check(struct aeth_node_watch *w);

void aeth_node_watch_stop(struct aeth_node_watch *w);

#endif /* AETHER_NODE_WATCH_H */
