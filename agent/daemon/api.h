/* The control API: HTTP/1.1 over a unix socket (SPEC.md section 3). */
#ifndef AETHER_API_H
#define AETHER_API_H

#include "agent.h"

struct event_base;
struct aeth_api;

#define AETH_API_MAX_BODY (64u << 20)	/* largest PUT body accepted */

/* Listen on the unix socket path (parents created, a stale socket
 * replaced, a live one refused, mode 0600) and serve GET/PUT /v1/config
 * and GET /v1/status for a. Only uid 0 peers are served. NULL with errno
 * set on failure. */
struct aeth_api *aeth_api_start(struct event_base *base, const char *path,
				struct aeth_agent *a);
/* Is path a socket that a live process serves (-EADDRINUSE), something
 * other than a socket (-EEXIST), or free or stale (0)? */
int aeth_api_socket_in_use(const char *path);
/* Stop serving and remove the socket file (only the one we made). */
void aeth_api_stop(struct aeth_api *api);

#endif /* AETHER_API_H */
