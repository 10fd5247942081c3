/* Backend health checks: non-blocking tcp connect, or http / https GET on
 * libevent's HTTP client (health_http.c), counted against rise/fall, with a
 * callback and a log line on each flip. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "health.h"
#include "health_http.h"
#include "log.h"

#define HC_BUCKETS 4096

enum hc_phase { HC_IDLE = 0, HC_CONNECTING, HC_HTTP };

struct hc_check {
	struct hc_check *next;		/* hash bucket chain */
	struct aeth_health *h;
	char service[AETH_NAME_LEN];
	struct aeth_ip ip;
	char addr_text[48];
	struct aeth_cfg_health cfg;	/* port resolved to the service port */
	bool up;
	bool seen;			/* named by the update in progress */
	uint32_t successes, failures;	/* consecutive */
	enum hc_phase phase;
	int fd;				/* tcp */
	struct event *timer;		/* next probe */
	struct event *io;		/* fd readiness; its timeout is the deadline */
	struct hc_http *http;		/* http, https: the probe in flight */
	struct event *deadline;		/* http, https: the probe's timeout */
	struct hc_tls *tls;		/* https: the CA loaded once */
	char tls_error[256];		/* https: why tls is NULL */
	uint64_t started_ms;		/* CLOCK_MONOTONIC at probe start */
};

/* A backend that was down and lost its check: reported up from the loop,
 * after the update (and the apply that called it) has finished. */
struct hc_notice {
	struct hc_notice *next;
	struct aeth_health *h;
	struct event *ev;
	char service[AETH_NAME_LEN];
	struct aeth_ip ip;
};

struct aeth_health {
	struct event_base *base;
	aeth_health_cb cb;
	void *arg;
	uint64_t rng;
	size_t n_checks;
	struct hc_notice *notices;
	struct hc_check *buckets[HC_BUCKETS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t hc_random(struct aeth_health *h)
{
	/* xorshift64: only spreads probe times, nothing depends on quality */
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 7;
	h->rng ^= h->rng << 17;
	return h->rng;
}

static uint32_t hc_hash(const char *service, const struct aeth_ip *ip)
{
	uint32_t x = 2166136261u;	/* FNV-1a */

	for (const char *p = service; *p; p++)
		x = (x ^ (uint8_t)*p) * 16777619u;
	for (int i = 0; i < 16; i++)
		x = (x ^ ip->addr.bytes[i]) * 16777619u;
	x = (x ^ ip->family) * 16777619u;
	return x % HC_BUCKETS;
}

static struct hc_check **hc_find(const struct aeth_health *h, const char *service,
				 const struct aeth_ip *ip)
{
	struct hc_check **pp = (struct hc_check **)&h->buckets[hc_hash(service, ip)];

	for (; *pp; pp = &(*pp)->next)
		if (aeth_ip_equal(&(*pp)->ip, ip) && strcmp((*pp)->service, service) == 0)
			return pp;
	return pp;
}

static bool settings_equal(const struct aeth_cfg_health *a,
			   const struct aeth_cfg_health *b)
{
	return a->type == b->type && a->port == b->port &&
	       a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
	       a->rise == b->rise && a->fall == b->fall &&
	       strcmp(a->path, b->path) == 0 && strcmp(a->ca, b->ca) == 0 &&
	       strcmp(a->server_name, b->server_name) == 0;
}

/* The settings a check runs with: port 0 is the service port, and values a
 * validated document never holds are clamped rather than trusted. */
static void effective_settings(const struct aeth_cfg_service *svc,
			       struct aeth_cfg_health *out)
{
	*out = svc->health;
	if (!out->port)
		out->port = svc->port;
	if (!out->interval_ms)
		out->interval_ms = 1000;
	if (!out->timeout_ms)
		out->timeout_ms = 1000;
	if (!out->rise)
		out->rise = 1;
	if (!out->fall)
		out->fall = 1;
	out->path[sizeof(out->path) - 1] = '\0';
	if (!out->path[0])
		strcpy(out->path, out->type == AETH_HC_HTTPS ? "/readyz" : "/");
}

static void hc_close_probe(struct hc_check *c)
{
	if (c->io) {
		event_free(c->io);
		c->io = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	hc_http_cancel(c->http);
	c->http = NULL;
	if (c->deadline)
		evtimer_del(c->deadline);
	c->phase = HC_IDLE;
}

static void hc_schedule(struct hc_check *c, uint64_t delay_ms)
{
	struct timeval tv = {
		.tv_sec = delay_ms / 1000,
		.tv_usec = (delay_ms % 1000) * 1000,
	};

	evtimer_add(c->timer, &tv);
}

/* End of one probe: count it, schedule the next, and report a flip. The
 * callback comes last: it may reconcile the checks and free this one. */
__attribute__((format(printf, 3, 4)))
static void hc_probe_done(struct hc_check *c, bool ok, const char *fmt, ...)
{
	struct aeth_health *h = c->h;
	uint64_t elapsed = now_ms() - c->started_ms;
	char reason[256] = "";
	bool flipped = false;
	struct aeth_ip ip;
	char service[AETH_NAME_LEN];
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(reason, sizeof(reason), fmt, ap);
		va_end(ap);
	}
	hc_close_probe(c);

	if (ok) {
		c->failures = 0;
		c->successes++;
		if (!c->up && c->successes >= c->cfg.rise) {
			c->up = true;
			flipped = true;
			log_info("backend %s of %s is up (%u successes)",
				 c->addr_text, c->service, c->successes);
		}
	} else {
		c->successes = 0;
		c->failures++;
		log_debug("health check of backend %s of %s failed: %s",
			  c->addr_text, c->service, reason);
		if (c->up && c->failures >= c->cfg.fall) {
			c->up = false;
			flipped = true;
			log_info("backend %s of %s is down: %s (%u failures)",
				 c->addr_text, c->service, reason, c->failures);
		}
	}

	hc_schedule(c, elapsed >= c->cfg.interval_ms ? 0 :
			       c->cfg.interval_ms - elapsed);

	if (flipped && h->cb) {
		memcpy(service, c->service, sizeof(service));
		ip = c->ip;
		h->cb(h->arg, service, &ip, c->up);
	}
}

static void hc_io_cb(evutil_socket_t fd, short what, void *arg);

/* Wait for fd readiness until the probe's deadline. Returns false (and ends
 * the probe as failed) when it cannot wait. */
static bool hc_wait(struct hc_check *c, short events)
{
	uint64_t elapsed = now_ms() - c->started_ms;
	uint64_t left;
	struct timeval tv;

	/* Past the deadline already (a busy loop ran late): one last look, so
	 * an answer that is already there still counts. */
	left = elapsed < c->cfg.timeout_ms ? c->cfg.timeout_ms - elapsed : 1;
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	if (c->io)
		event_free(c->io);
	c->io = event_new(c->h->base, c->fd, events, hc_io_cb, c);
	if (!c->io || event_add(c->io, &tv) < 0) {
		hc_probe_done(c, false, "cannot wait for the socket");
		return false;
	}
	return true;
}

static void hc_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_check *c = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	/* readiness and an expired timeout can come together when the loop
	 * was busy: the socket's answer wins */
	if (!(what & (EV_READ | EV_WRITE))) {
		hc_probe_done(c, false, "connect: timed out after %u ms",
			      c->cfg.timeout_ms);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		hc_probe_done(c, false, "connect: %s", strerror(err));
	else
		hc_probe_done(c, true, NULL);
}

static void hc_http_result(void *arg, bool ok, const char *reason)
{
	struct hc_check *c = arg;

	hc_probe_done(c, ok, "%s", reason ? reason : "");
}

static void hc_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_check *c = arg;

	hc_probe_done(c, false, "%s: timed out after %u ms",
		      c->cfg.type == AETH_HC_HTTPS ? "https" : "http",
		      c->cfg.timeout_ms);
}

/* An http or https probe, bounded by our own deadline (libevent's
 * connection timeouts count in whole seconds). */
static void hc_start_http(struct hc_check *c)
{
	struct timeval tv = {
		.tv_sec = c->cfg.timeout_ms / 1000,
		.tv_usec = (c->cfg.timeout_ms % 1000) * 1000,
	};

	if (c->cfg.type == AETH_HC_HTTPS && !c->tls) {
		hc_probe_done(c, false, "https: %s", c->tls_error);
		return;
	}
	c->phase = HC_HTTP;
	c->http = hc_http_start(c->h->base, c->tls, &c->cfg, c->addr_text,
				c->ip.family == AETH_AF_INET6, hc_http_result, c);
	if (!c->http) {
		hc_probe_done(c, false, "cannot start the request: %s",
			      strerror(errno));
		return;
	}
	evtimer_add(c->deadline, &tv);
}

static socklen_t hc_sockaddr(const struct hc_check *c, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (c->ip.family == AETH_AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(c->cfg.port);
		memcpy(&sin6->sin6_addr, c->ip.addr.bytes, 16);
		return sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(c->cfg.port);
		sin->sin_addr.s_addr = c->ip.addr.v4;
		return sizeof(*sin);
	}
}

static void hc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_check *c = arg;
	struct sockaddr_storage ss;
	socklen_t sl = hc_sockaddr(c, &ss);

	c->started_ms = now_ms();
	if (c->cfg.type != AETH_HC_TCP) {
		hc_start_http(c);
		return;
	}
	c->phase = HC_CONNECTING;
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		hc_probe_done(c, false, "socket: %s", strerror(errno));
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&ss, sl) == 0) {
		hc_probe_done(c, true, NULL);
		return;
	}
	if (errno != EINPROGRESS) {
		hc_probe_done(c, false, "connect: %s", strerror(errno));
		return;
	}
	hc_wait(c, EV_WRITE);
}

static void hc_free(struct hc_check *c)
{
	hc_close_probe(c);
	if (c->timer)
		event_free(c->timer);
	if (c->deadline)
		event_free(c->deadline);
	hc_tls_free(c->tls);
	free(c);
}

/* (Re)arm a check: counters from zero and a first probe at a random point of
 * the first interval, so N backends are not all probed in the same tick. */
static void hc_restart(struct hc_check *c)
{
	hc_close_probe(c);
	evtimer_del(c->timer);
	c->successes = 0;
	c->failures = 0;
	hc_tls_free(c->tls);
	c->tls = NULL;
	if (c->cfg.type == AETH_HC_HTTPS) {
		struct aeth_error err = { 0 };

		c->tls = hc_tls_new(&c->cfg, &err);
		aeth_error_format(&err, c->tls_error, sizeof(c->tls_error));
		/* every probe fails until the settings change: say why once */
		if (!c->tls)
			log_warn("health check of backend %s of %s: %s",
				 c->addr_text, c->service, c->tls_error);
	}
	hc_schedule(c, hc_random(c->h) % c->cfg.interval_ms);
}

static struct hc_check *hc_new(struct aeth_health *h, const char *service,
			       const struct aeth_cfg_backend *be,
			       const struct aeth_cfg_health *cfg)
{
	struct hc_check *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->h = h;
	c->fd = -1;
	c->up = true;	/* never empty a table before the checks have run */
	snprintf(c->service, sizeof(c->service), "%s", service);
	c->ip = be->ip;
	if (!inet_ntop(be->ip.family == AETH_AF_INET6 ? AF_INET6 : AF_INET,
		       be->ip.addr.bytes, c->addr_text, sizeof(c->addr_text)))
		snprintf(c->addr_text, sizeof(c->addr_text), "%s", be->address_text);
	c->cfg = *cfg;
	c->timer = evtimer_new(h->base, hc_timer_cb, c);
	c->deadline = evtimer_new(h->base, hc_deadline_cb, c);
	if (!c->timer || !c->deadline) {
		hc_free(c);
		return NULL;
	}
	return c;
}

static void hc_notice_unlink(struct hc_notice *n)
{
	struct hc_notice **pp;

	for (pp = &n->h->notices; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	event_free(n->ev);
	free(n);
}

static void hc_notice_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_notice *n = arg;
	struct aeth_health *h = n->h;
	char service[AETH_NAME_LEN];
	struct aeth_ip ip = n->ip;

	memcpy(service, n->service, sizeof(service));
	hc_notice_unlink(n);
	if (h->cb)
		h->cb(h->arg, service, &ip, true);
}

static bool config_has_backend(const struct aeth_config *cfg, const char *service,
			       const struct aeth_ip *ip)
{
	for (size_t i = 0; cfg && i < cfg->n_services; i++) {
		const struct aeth_cfg_service *svc = &cfg->services[i];

		if (strcmp(svc->name, service))
			continue;
		for (size_t j = 0; j < svc->n_backends; j++)
			if (aeth_ip_equal(&svc->backends[j].ip, ip))
				return true;
	}
	return false;
}

/* A down backend whose check goes away while it stays configured is up from
 * now on: tell the owner, or the tables would keep it out until the next
 * unrelated change. */
static void hc_removed(struct aeth_health *h, const struct hc_check *c,
		       const struct aeth_config *cfg)
{
	struct timeval now = { 0, 0 };
	struct hc_notice *n;

	if (c->up || !config_has_backend(cfg, c->service, &c->ip))
		return;
	log_info("backend %s of %s is up (its health check was removed)",
		 c->addr_text, c->service);
	n = calloc(1, sizeof(*n));
	if (!n)
		return;
	n->h = h;
	memcpy(n->service, c->service, sizeof(n->service));
	n->ip = c->ip;
	n->ev = evtimer_new(h->base, hc_notice_cb, n);
	if (!n->ev || evtimer_add(n->ev, &now)) {
		if (n->ev)
			event_free(n->ev);
		free(n);
		return;
	}
	n->next = h->notices;
	h->notices = n;
}

struct aeth_health *aeth_health_start(struct event_base *base, aeth_health_cb cb,
				      void *arg)
{
	struct aeth_health *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->base = base;
	h->cb = cb;
	h->arg = arg;
	h->rng = ((uint64_t)getpid() << 32) ^ now_ms() ^ (uintptr_t)h;
	if (!h->rng)
		h->rng = 0x9e3779b97f4a7c15ull;
	return h;
}

int aeth_health_update(struct aeth_health *h, const struct aeth_config *cfg)
{
	struct aeth_cfg_health want;
	struct hc_check **pp, *c;

	/* Create or refresh everything first, so an allocation failure leaves
	 * the previous set running. */
	for (size_t i = 0; cfg && i < cfg->n_services; i++) {
		const struct aeth_cfg_service *svc = &cfg->services[i];

		if (svc->health.type == AETH_HC_NONE)
			continue;
		effective_settings(svc, &want);
		for (size_t j = 0; j < svc->n_backends; j++) {
			const struct aeth_cfg_backend *be = &svc->backends[j];

			pp = hc_find(h, svc->name, &be->ip);
			c = *pp;
			if (c && settings_equal(&c->cfg, &want)) {
				c->seen = true;
				continue;
			}
			if (c) {
				/* same backend, new settings: keep whether it
				 * is up, count afresh with the new settings */
				c->cfg = want;
				c->seen = true;
				hc_restart(c);
				continue;
			}
			c = hc_new(h, svc->name, be, &want);
			if (!c) {
				log_err("health checks: %s", strerror(ENOMEM));
				return -ENOMEM;
			}
			c->seen = true;
			*pp = c;
			h->n_checks++;
			hc_restart(c);
		}
	}

	for (int b = 0; b < HC_BUCKETS; b++) {
		for (pp = &h->buckets[b]; *pp;) {
			c = *pp;
			if (c->seen) {
				c->seen = false;
				pp = &c->next;
				continue;
			}
			*pp = c->next;
			h->n_checks--;
			hc_removed(h, c, cfg);
			hc_free(c);
		}
	}
	return 0;
}

bool aeth_health_is_up(const struct aeth_health *h, const char *service,
		       const struct aeth_ip *backend)
{
	const struct hc_check *c;

	if (!h)
		return true;
	c = *hc_find(h, service, backend);
	return c ? c->up : true;
}

size_t aeth_health_count(const struct aeth_health *h)
{
	return h ? h->n_checks : 0;
}

void aeth_health_stop(struct aeth_health *h)
{
	struct hc_check *c, *next;

	if (!h)
		return;
	while (h->notices)
		hc_notice_unlink(h->notices);
	for (int b = 0; b < HC_BUCKETS; b++) {
		for (c = h->buckets[b]; c; c = next) {
			next = c->next;
			hc_free(c);
		}
	}
	free(h);
}
