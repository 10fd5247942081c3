/* One http or https health probe on libevent's HTTP client (OpenSSL for
 * https): GET path, the status decides. */
#ifndef AETHER_HEALTH_HTTP_H
#define AETHER_HEALTH_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct hc_tls;
struct hc_http;

/* The result of a probe, delivered from the event loop (never from inside
 * hc_http_start or hc_http_cancel). reason is NULL on success. */
typedef void (*hc_http_done)(void *arg, bool ok, const char *reason);

/* TLS settings of an https check: the CA bundle loaded once. NULL with
 * err filled when the CA cannot be loaded. */
struct hc_tls *hc_tls_new(const struct aeth_cfg_health *cfg,
			  struct aeth_error *err);
void hc_tls_free(struct hc_tls *tls);

/* GET cfg->path from addr:cfg->port (addr as inet_ntop prints it), over
 * TLS when tls is not NULL. The caller bounds the probe's time and cancels
 * it. NULL when it cannot start (errno set). */
struct hc_http *hc_http_start(struct event_base *base, struct hc_tls *tls,
			      const struct aeth_cfg_health *cfg,
			      const char *addr, bool v6, hc_http_done cb,
			      void *arg);
/* Stop a probe (if still running) and free it; no callback follows. */
void hc_http_cancel(struct hc_http *p);

#endif /* AETHER_HEALTH_HTTP_H */
