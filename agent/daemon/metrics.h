/* The operators' HTTP listener: /metrics (Prometheus text), /healthz, /readyz. */
#ifndef AETHER_METRICS_H
#define AETHER_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct aeth_map_fds;

/* What the metrics listener reads of the agent besides the maps. The agent
 * owns it and updates the fields in place (single-threaded event loop). */
struct aeth_agent_status {
	uint64_t generation;		/* aether_config_generation */
	uint64_t apply_ok;		/* aether_config_apply_total{result="ok"} */
	uint64_t apply_rejected;	/* {result="rejected"}: invalid document */
	uint64_t apply_failed;		/* {result="failed"}: valid, but the maps refused */
	bool last_apply_ok;		/* the last document offered was applied */
	uint64_t last_apply_unix_ns;	/* when it was offered; 0 = never */
	uint64_t last_success_unix_ns;	/* the last one applied; 0 = never */
	bool config_applied;		/* a first document is live */
	bool attached;			/* the program is on every interface */
	/* more families appended to each scrape (BGP), when set */
	void (*scrape_more)(struct evbuffer *b, void *arg);
	void *scrape_more_arg;
};

struct aeth_metrics;

/* Listen on addr ("HOST:PORT", IPv6 as "[::1]:9464"). Counters and labels
 * come from the maps (service names from aeth_svcinfo, backend addresses and
 * health from aeth_backend) summed over CPUs at each scrape. NULL with errno
 * set on failure (EINVAL: not a literal address). maps and status are read
 * in place and must outlive the listener; a map fd of -1 leaves its metrics
 * out. Port 0 picks a free port (see aeth_metrics_port). */
struct aeth_metrics *aeth_metrics_start(struct event_base *base, const char *addr,
					const struct aeth_map_fds *maps,
					const struct aeth_agent_status *status);
/* One more producer of samples, called at each scrape (one at most). */
struct evbuffer;
typedef void (*aeth_metrics_source_fn)(struct evbuffer *b, void *arg);
void aeth_metrics_add_source(struct aeth_metrics *m, aeth_metrics_source_fn fn,
			     void *arg);
/* The port listened on. */
uint16_t aeth_metrics_port(const struct aeth_metrics *m);
void aeth_metrics_stop(struct aeth_metrics *m);

#endif /* AETHER_METRICS_H */
