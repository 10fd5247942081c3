/* Backend health checks: non-blocking tcp connect and http GET on libevent. */
#ifndef AETHER_HEALTH_H
#define AETHER_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct aeth_health;

/* Called when a backend's state flips (after `fall` failures or `rise`
 * successes in a row). */
typedef void (*aeth_health_cb)(void *arg, const char *service,
			       const struct aeth_ip *backend, bool up);

struct aeth_health *aeth_health_start(struct event_base *base, aeth_health_cb cb,
				      void *arg);
/* Make the set of running checks equal to cfg's (services with a
 * health_check, each of their backends). Checks of unchanged (service,
 * backend, check settings) keep their state; new ones start up. A backend
 * whose check settings changed keeps its up/down state and counts afresh
 * with the new settings. Never calls the callback itself; a backend that
 * was down and keeps being configured without a check is reported up by a
 * callback from the event loop right after. */
int aeth_health_update(struct aeth_health *h, const struct aeth_config *cfg);
/* Current state; true for a backend that has no check. */
bool aeth_health_is_up(const struct aeth_health *h, const char *service,
		       const struct aeth_ip *backend);
/* Number of running checks. */
size_t aeth_health_count(const struct aeth_health *h);
void aeth_health_stop(struct aeth_health *h);

#endif /* AETHER_HEALTH_H */
