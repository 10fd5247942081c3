/* Bounds on an HTTP listener's connections (the API socket, /metrics): at
 * most AETH_API_MAX_CONNS open, each closed AETH_API_IDLE_MS after it was
 * accepted or last completed a request (idle and trickling clients alike;
 * beyond the cap the longest idle one is ended), and accept() paused for a
 * while when the process is out of descriptors (ending the longest idle
 * quarter) instead of spinning. */
#ifndef AETHER_API_CONNS_H
#define AETHER_API_CONNS_H

#define AETH_API_MAX_CONNS 64
#define AETH_API_IDLE_MS 10000
#define AETH_API_ACCEPT_PAUSE_MS 250

struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct aeth_api_conns;

/* Watch the connections evhttp accepts on bound (the API socket, or the
 * metrics listener); what names it in the log and must outlive it. NULL on
 * failure. */
struct aeth_api_conns *aeth_api_conns_start(struct event_base *base,
					    struct evhttp *http,
					    struct evhttp_bound_socket *bound,
					    const char *what);
/* A request came on req's connection: its idle time starts again. */
void aeth_api_conns_touch(struct aeth_api_conns *c,
			  struct evhttp_request *req);
void aeth_api_conns_stop(struct aeth_api_conns *c);

#endif /* AETHER_API_CONNS_H */
