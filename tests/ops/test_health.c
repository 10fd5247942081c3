/* Health checks against real sockets on 127.0.0.0/8: tcp and http probes,
 * rise/fall flips, reconciliation on update, probe timeouts and jitter. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <event2/event.h>

#include "health.h"
#include "log.h"

/* A backend the test serves: accepts and closes (tcp) or answers one HTTP
 * request with `status` (http). */
struct fake_backend {
	struct event_base *base;
	int lfd;
	uint16_t port;
	struct event *ev;
	int status;		/* 0: plain tcp, close after accept;
				 * SILENT: read, never answer;
				 * SPLIT: 200 status line in two writes */
	int held[64];		/* connections kept open (SILENT) */
	int n_held;
	int accepted;
	uint64_t first_accept_ms;
	char last_request[512];
};

struct flips {
	int n;
	bool last_up;
	char service[AETH_NAME_LEN];
	struct aeth_ip ip;
	uint64_t at_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void on_flip(void *arg, const char *service, const struct aeth_ip *ip,
		    bool up)
{
	struct flips *f = arg;

	f->n++;
	f->last_up = up;
	snprintf(f->service, sizeof(f->service), "%s", service);
	f->ip = *ip;
	f->at_ms = now_ms();
}

enum { SILENT = -1, SPLIT = -2 };

static void split_rest_cb(evutil_socket_t unused, short what, void *arg)
{
	static const char rest[] = "00 OK\r\nContent-Length: 0\r\n\r\n";
	int fd = (int)(intptr_t)arg;	/* a pure timer gets no fd */

	if (send(fd, rest, sizeof(rest) - 1, MSG_NOSIGNAL) < 0)
		perror("send");
	close(fd);
}

static void http_conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake_backend *b = arg;
	struct timeval later = { .tv_sec = 0, .tv_usec = 20000 };
	char resp[128];
	ssize_t n;
	int len;

	n = recv(fd, b->last_request, sizeof(b->last_request) - 1, 0);
	b->last_request[n > 0 ? n : 0] = '\0';
	if (b->status == SILENT) {
		if (b->n_held < 64)
			b->held[b->n_held++] = fd;
		else
			close(fd);
		return;
	}
	if (b->status == SPLIT) {
		if (send(fd, "HTTP/1.1 2", 10, MSG_NOSIGNAL) < 0)
			perror("send");
		event_base_once(b->base, -1, EV_TIMEOUT, split_rest_cb,
				(void *)(intptr_t)fd, &later);
		return;
	}
	len = snprintf(resp, sizeof(resp),
		       "HTTP/1.0 %d Whatever\r\nContent-Length: 0\r\n\r\n",
		       b->status);
	if (send(fd, resp, (size_t)len, MSG_NOSIGNAL) < 0)
		perror("send");
	close(fd);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct fake_backend *b = arg;
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0)
		return;
	if (!b->accepted++)
		b->first_accept_ms = now_ms();
	if (!b->status) {
		close(fd);
		return;
	}
	/* the request is tiny: one read event is enough */
	event_base_once(b->base, fd, EV_READ, http_conn_cb, b, NULL);
}

/* Listen on addr:port (port 0: any; IPv4 or IPv6) and serve from the
 * test's loop. */
static void backend_open(struct fake_backend *b, struct event_base *base,
			 const char *addr, uint16_t port, int status)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	bool v6 = strchr(addr, ':') != NULL;
	socklen_t sl = v6 ? sizeof(*sin6) : sizeof(*sin);
	int one = 1;

	b->base = base;
	b->status = status;
	if (v6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		inet_pton(AF_INET6, addr, &sin6->sin6_addr);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		inet_pton(AF_INET, addr, &sin->sin_addr);
	}
	b->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert(b->lfd >= 0);
	setsockopt(b->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(b->lfd, (struct sockaddr *)&ss, sl), 0,
		     "bind %s:%u: %s", addr, port, strerror(errno));
	cr_assert_eq(listen(b->lfd, 64), 0);
	getsockname(b->lfd, (struct sockaddr *)&ss, &sl);
	b->port = ntohs(v6 ? sin6->sin6_port : sin->sin_port);
	b->ev = event_new(base, b->lfd, EV_READ | EV_PERSIST, accept_cb, b);
	event_add(b->ev, NULL);
}

static void backend_close(struct fake_backend *b)
{
	while (b->n_held)
		close(b->held[--b->n_held]);
	if (b->ev)
		event_free(b->ev);
	b->ev = NULL;
	if (b->lfd >= 0)
		close(b->lfd);
	b->lfd = -1;
}

/* Run the loop until *flag reaches want (or any change when want < 0) or
 * max_ms passes. Returns the time it took. */
static uint64_t run_until(struct event_base *base, const int *flag, int want,
			  uint64_t max_ms)
{
	uint64_t start = now_ms();
	struct timeval tick = { .tv_sec = 0, .tv_usec = 5000 };

	while (now_ms() - start < max_ms && (want < 0 || *flag != want)) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	return now_ms() - start;
}

static void run_for(struct event_base *base, uint64_t ms)
{
	int never = 0;

	run_until(base, &never, 1, ms);
}

/* One service per name, each with the listed backends (dotted quads). */
struct svc_spec {
	const char *name;
	uint16_t port;
	struct aeth_cfg_health hc;
	const char *backends[20];
};

static struct aeth_config *make_config(const struct svc_spec *specs, size_t n)
{
	struct aeth_config *cfg = calloc(1, sizeof(*cfg));

	cfg->services = calloc(n, sizeof(*cfg->services));
	cfg->n_services = n;
	for (size_t i = 0; i < n; i++) {
		struct aeth_cfg_service *svc = &cfg->services[i];
		size_t nb = 0;

		while (nb < 20 && specs[i].backends[nb])
			nb++;
		snprintf(svc->name, sizeof(svc->name), "%s", specs[i].name);
		svc->port = specs[i].port;
		svc->proto = IPPROTO_TCP;
		svc->health = specs[i].hc;
		svc->backends = calloc(nb, sizeof(*svc->backends));
		svc->n_backends = nb;
		for (size_t j = 0; j < nb; j++) {
			struct aeth_cfg_backend *be = &svc->backends[j];

			snprintf(be->address_text, sizeof(be->address_text), "%s",
				 specs[i].backends[j]);
			if (strchr(be->address_text, ':')) {
				be->ip.family = AETH_AF_INET6;
				cr_assert_eq(inet_pton(AF_INET6, be->address_text,
						       be->ip.addr.bytes), 1);
			} else {
				be->ip.family = AETH_AF_INET;
				cr_assert_eq(inet_pton(AF_INET, be->address_text,
						       &be->ip.addr.v4), 1);
			}
			be->weight = 1;
		}
	}
	return cfg;
}

static void free_config(struct aeth_config *cfg)
{
	for (size_t i = 0; i < cfg->n_services; i++)
		free(cfg->services[i].backends);
	free(cfg->services);
	free(cfg);
}

static struct aeth_ip ip4(const char *s)
{
	struct aeth_ip ip = { .family = AETH_AF_INET };

	inet_pton(AF_INET, s, &ip.addr.v4);
	return ip;
}

static struct event_base *base;

static void setup(void)
{
	aeth_log_init(AETH_LOG_INFO, false);
	base = event_base_new();
	cr_assert_not_null(base);
}

static void teardown(void)
{
	event_base_free(base);
}

TestSuite(health, .init = setup, .fini = teardown, .timeout = 30);

Test(health, tcp_down_after_fall_up_after_rise)
{
	struct fake_backend b = { .lfd = -1 };
	struct flips f = { 0 };
	struct aeth_ip be = ip4("127.0.0.1");
	struct aeth_health *h;
	struct aeth_config *cfg;
	uint64_t t;
	const uint32_t interval = 40, fall = 3, rise = 2;

	backend_open(&b, base, "127.0.0.1", 0, 0);
	struct svc_spec spec = {
		.name = "kube-apiserver", .port = b.port,
		.hc = { .type = AETH_HC_TCP, .interval_ms = interval,
			.timeout_ms = 200, .rise = rise, .fall = fall },
		.backends = { "127.0.0.1" },
	};
	cfg = make_config(&spec, 1);
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_not_null(h);
	cr_assert_eq(aeth_health_update(h, cfg), 0);
	cr_assert_eq(aeth_health_count(h), 1);
	cr_assert(aeth_health_is_up(h, "kube-apiserver", &be), "starts up");

	/* healthy: probes arrive, nothing flips */
	run_for(base, 300);
	cr_assert_geq(b.accepted, 4, "only %d probes in 300 ms", b.accepted);
	cr_assert_eq(f.n, 0);

	/* listener gone: refused, down after exactly `fall` failures */
	backend_close(&b);
	t = run_until(base, &f.n, 1, 2000);
	cr_assert_eq(f.n, 1, "no down flip within 2 s");
	cr_assert(!f.last_up);
	cr_assert_str_eq(f.service, "kube-apiserver");
	cr_assert_eq(f.ip.addr.v4, be.addr.v4);
	cr_assert(!aeth_health_is_up(h, "kube-apiserver", &be));
	cr_assert_geq(t, (fall - 1) * interval - 10, "down after %lu ms", t);
	cr_assert_leq(t, fall * interval + 500, "down after %lu ms", t);

	/* back: up after `rise` successes */
	backend_open(&b, base, "127.0.0.1", spec.port, 0);
	b.accepted = 0;
	t = run_until(base, &f.n, 2, 2000);
	cr_assert_eq(f.n, 2, "no up flip within 2 s");
	cr_assert(f.last_up);
	cr_assert(aeth_health_is_up(h, "kube-apiserver", &be));
	cr_assert_geq(b.accepted, (int)rise);
	cr_assert_geq(t, (rise - 1) * interval - 10, "up after %lu ms", t);

	/* and stays up */
	run_for(base, 200);
	cr_assert_eq(f.n, 2);

	aeth_health_stop(h);
	backend_close(&b);
	free_config(cfg);
}

Test(health, http_status_decides)
{
	struct fake_backend b = { .lfd = -1 };
	struct flips f = { 0 };
	struct aeth_ip be = ip4("127.0.0.1");
	struct aeth_health *h;
	struct aeth_config *cfg;

	backend_open(&b, base, "127.0.0.1", 0, 200);
	struct svc_spec spec = {
		.name = "web", .port = 1,	/* check port overrides it */
		.hc = { .type = AETH_HC_HTTP, .port = b.port, .path = "/healthz",
			.interval_ms = 30, .timeout_ms = 200, .rise = 2, .fall = 2 },
		.backends = { "127.0.0.1" },
	};
	cfg = make_config(&spec, 1);
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg), 0);

	run_for(base, 250);
	cr_assert_geq(b.accepted, 3);
	cr_assert(starts_with(b.last_request, "GET /healthz HTTP/1.1\r\n"),
		  "request: %s", b.last_request);
	cr_assert_not_null(strstr(b.last_request, "\r\nHost: 127.0.0.1\r\n"),
			   "request: %s", b.last_request);
	cr_assert_eq(f.n, 0, "200 must pass");

	b.status = 500;
	run_until(base, &f.n, 1, 2000);
	cr_assert_eq(f.n, 1, "500 must fail");
	cr_assert(!f.last_up);
	cr_assert(!aeth_health_is_up(h, "web", &be));

	b.status = 302;	/* a redirect counts as alive */
	run_until(base, &f.n, 2, 2000);
	cr_assert_eq(f.n, 2);
	cr_assert(f.last_up);

	b.status = 404;
	run_until(base, &f.n, 3, 2000);
	cr_assert_eq(f.n, 3);
	cr_assert(!f.last_up);

	aeth_health_stop(h);
	backend_close(&b);
	free_config(cfg);
}

Test(health, update_keeps_unchanged_drops_removed_starts_new_up)
{
	struct fake_backend good = { .lfd = -1 }, gone = { .lfd = -1 };
	struct flips f = { 0 };
	struct aeth_ip a1 = ip4("127.0.0.1"), a2 = ip4("127.0.0.2");
	struct aeth_health *h;
	struct aeth_config *cfg1, *cfg2, *cfg3;

	backend_open(&good, base, "127.0.0.1", 0, 0);
	/* a port that refuses: take one, then close it */
	backend_open(&gone, base, "127.0.0.2", 0, 0);
	backend_close(&gone);

	struct aeth_cfg_health hc = { .type = AETH_HC_TCP, .interval_ms = 30,
				      .timeout_ms = 100, .rise = 2, .fall = 2 };
	struct svc_spec v1[] = {
		{ .name = "alpha", .port = good.port, .hc = hc,
		  .backends = { "127.0.0.1" } },
		{ .name = "beta", .port = gone.port, .hc = hc,
		  .backends = { "127.0.0.2" } },
		{ .name = "gamma", .port = gone.port, .hc = hc,
		  .backends = { "127.0.0.2" } },
	};
	cfg1 = make_config(v1, 3);
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg1), 0);
	cr_assert_eq(aeth_health_count(h), 3);
	run_until(base, &f.n, 2, 2000);
	cr_assert_eq(f.n, 2, "beta and gamma must go down");
	cr_assert(aeth_health_is_up(h, "alpha", &a1));
	cr_assert(!aeth_health_is_up(h, "beta", &a2));
	cr_assert(!aeth_health_is_up(h, "gamma", &a2));

	/* alpha and beta unchanged, gamma removed, delta new (also refusing):
	 * beta stays down, delta starts up, gamma is forgotten */
	struct svc_spec v2[] = {
		v1[0], v1[1],
		{ .name = "delta", .port = gone.port, .hc = hc,
		  .backends = { "127.0.0.2" } },
	};
	cfg2 = make_config(v2, 3);
	f.n = 0;
	cr_assert_eq(aeth_health_update(h, cfg2), 0);
	cr_assert_eq(f.n, 0, "update must not call back");
	cr_assert_eq(aeth_health_count(h), 3);
	cr_assert(!aeth_health_is_up(h, "beta", &a2), "unchanged keeps state");
	cr_assert(aeth_health_is_up(h, "gamma", &a2), "no check: up");
	cr_assert(aeth_health_is_up(h, "delta", &a2), "new starts up");
	cr_assert(aeth_health_is_up(h, "alpha", &a1));
	/* only delta can flip now: beta is already down, gamma is gone */
	run_for(base, 400);
	cr_assert_eq(f.n, 1, "%d flips", f.n);
	cr_assert_str_eq(f.service, "delta");
	cr_assert(!f.last_up);

	/* beta's settings change (slower interval): still down, still checked;
	 * alpha loses its check; a service without checks adds nothing */
	struct svc_spec v3[] = {
		{ .name = "alpha", .port = good.port, .backends = { "127.0.0.1" } },
		v1[1],
	};
	v3[1].hc.interval_ms = 50;
	cfg3 = make_config(v3, 2);
	cr_assert_eq(aeth_health_update(h, cfg3), 0);
	cr_assert_eq(aeth_health_count(h), 1);
	cr_assert(!aeth_health_is_up(h, "beta", &a2));
	cr_assert(aeth_health_is_up(h, "delta", &a2));

	/* beta recovers with its new settings */
	backend_open(&gone, base, "127.0.0.2", gone.port, 0);
	f.n = 0;
	run_until(base, &f.n, 1, 2000);
	cr_assert_eq(f.n, 1);
	cr_assert_str_eq(f.service, "beta");
	cr_assert(f.last_up);

	/* an empty document stops every check */
	cr_assert_eq(aeth_health_update(h, NULL), 0);
	cr_assert_eq(aeth_health_count(h), 0);

	aeth_health_stop(h);
	backend_close(&good);
	backend_close(&gone);
	free_config(cfg1);
	free_config(cfg2);
	free_config(cfg3);
}

Test(health, blackholed_backend_times_out)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	struct flips f = { 0 };
	struct aeth_health *h;
	struct aeth_config *cfg;
	int lfd, fillers[4];
	uint64_t start, t;
	const uint32_t interval = 100, timeout = 150;

	/* A listener that never accepts, with its queue full: the kernel drops
	 * further SYNs, so a connect hangs as it would to a dead host. */
	inet_pton(AF_INET, "127.0.0.3", &sin.sin_addr);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &sl);
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(50000);

	struct svc_spec spec = {
		.name = "slow", .port = ntohs(sin.sin_port),
		.hc = { .type = AETH_HC_TCP, .interval_ms = interval,
			.timeout_ms = timeout, .rise = 1, .fall = 1 },
		.backends = { "127.0.0.3" },
	};
	cfg = make_config(&spec, 1);
	h = aeth_health_start(base, on_flip, &f);
	start = now_ms();
	cr_assert_eq(aeth_health_update(h, cfg), 0);
	run_until(base, &f.n, 1, 3000);
	t = f.at_ms - start;
	cr_assert_eq(f.n, 1, "no timeout within 3 s");
	cr_assert(!f.last_up);
	/* first probe within one interval (jitter), then exactly the timeout */
	cr_assert_geq(t, timeout - 5, "failed after %lu ms: not a timeout", t);
	cr_assert_leq(t, interval + timeout + 300, "failed after %lu ms", t);

	aeth_health_stop(h);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfd);
	free_config(cfg);
}

Test(health, first_probes_are_spread)
{
	enum { N = 16 };
	struct fake_backend b[N];
	struct svc_spec spec = {
		.name = "many",
		.hc = { .type = AETH_HC_TCP, .interval_ms = 200, .timeout_ms = 100,
			.rise = 1, .fall = 1 },
	};
	char addrs[N][16];
	struct aeth_health *h;
	struct aeth_config *cfg;
	uint64_t lo = UINT64_MAX, hi = 0;

	/* every backend on its own loopback address, all on one port */
	for (int i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.1.%d", i + 1);
		memset(&b[i], 0, sizeof(b[i]));
		b[i].lfd = -1;
		backend_open(&b[i], base, addrs[i], i ? b[0].port : 0, 0);
		spec.backends[i] = addrs[i];
	}
	spec.port = b[0].port;
	cfg = make_config(&spec, 1);
	h = aeth_health_start(base, NULL, NULL);
	cr_assert_eq(aeth_health_update(h, cfg), 0);
	run_for(base, 400);
	for (int i = 0; i < N; i++) {
		cr_assert_geq(b[i].accepted, 1, "backend %d never probed", i);
		if (b[i].first_accept_ms < lo)
			lo = b[i].first_accept_ms;
		if (b[i].first_accept_ms > hi)
			hi = b[i].first_accept_ms;
	}
	/* 16 uniform starts over 200 ms span less than 50 ms with odds ~1e-8 */
	cr_assert_geq(hi - lo, 50, "first probes within %lu ms", hi - lo);

	aeth_health_stop(h);
	for (int i = 0; i < N; i++)
		backend_close(&b[i]);
	free_config(cfg);
}

Test(health, down_backend_losing_its_check_is_reported_up)
{
	struct fake_backend gone = { .lfd = -1 };
	struct flips f = { 0 };
	struct aeth_ip a = ip4("127.0.0.4");
	struct aeth_health *h;
	struct aeth_config *cfg1, *cfg2;

	backend_open(&gone, base, "127.0.0.4", 0, 0);
	backend_close(&gone);
	struct aeth_cfg_health hc = { .type = AETH_HC_TCP, .interval_ms = 20,
				      .timeout_ms = 100, .rise = 1, .fall = 1 };
	struct svc_spec v1[] = {
		{ .name = "eps", .port = gone.port, .hc = hc,
		  .backends = { "127.0.0.4" } },
		{ .name = "zeta", .port = gone.port, .hc = hc,
		  .backends = { "127.0.0.4" } },
	};
	cfg1 = make_config(v1, 2);
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg1), 0);
	run_until(base, &f.n, 2, 2000);
	cr_assert_eq(f.n, 2);
	cr_assert(!aeth_health_is_up(h, "eps", &a));

	/* eps keeps its backend without a check; zeta is gone altogether */
	struct svc_spec v2[] = {
		{ .name = "eps", .port = gone.port, .backends = { "127.0.0.4" } },
	};
	cfg2 = make_config(v2, 1);
	f.n = 0;
	cr_assert_eq(aeth_health_update(h, cfg2), 0);
	cr_assert_eq(f.n, 0, "no callback from inside the update");
	cr_assert(aeth_health_is_up(h, "eps", &a));
	run_for(base, 100);
	cr_assert_eq(f.n, 1, "%d callbacks", f.n);
	cr_assert_str_eq(f.service, "eps");
	cr_assert(f.last_up);

	/* a notice still pending when the checks stop is dropped cleanly */
	cr_assert_eq(aeth_health_update(h, cfg1), 0);
	run_until(base, &f.n, 3, 2000);
	cr_assert_eq(aeth_health_update(h, cfg2), 0);
	aeth_health_stop(h);
	free_config(cfg1);
	free_config(cfg2);
}

/* Re-applying the same document must not restart counting: a backend that
 * fails keeps accumulating failures across frequent updates. */
Test(health, unchanged_check_keeps_counting_across_updates)
{
	struct fake_backend gone = { .lfd = -1 };
	struct flips f = { 0 };
	struct aeth_health *h;
	struct aeth_config *cfg;
	uint64_t start = now_ms();

	backend_open(&gone, base, "127.0.0.5", 0, 0);
	backend_close(&gone);
	struct svc_spec spec = {
		.name = "steady", .port = gone.port,
		.hc = { .type = AETH_HC_TCP, .interval_ms = 40, .timeout_ms = 100,
			.rise = 2, .fall = 4 },
		.backends = { "127.0.0.5" },
	};
	cfg = make_config(&spec, 1);
	h = aeth_health_start(base, on_flip, &f);
	/* an update every 25 ms, faster than one interval: restarting the
	 * count would never reach fall = 4 */
	while (f.n == 0 && now_ms() - start < 2000) {
		cr_assert_eq(aeth_health_update(h, cfg), 0);
		run_for(base, 25);
	}
	cr_assert_eq(f.n, 1, "never went down under repeated updates");
	cr_assert(!f.last_up);
	aeth_health_stop(h);
	free_config(cfg);
}

Test(health, http_over_ipv6)
{
	struct fake_backend b = { .lfd = -1 };
	struct flips f = { 0 };
	struct aeth_ip be = { .family = AETH_AF_INET6 };
	struct aeth_health *h;
	struct aeth_config *cfg;

	inet_pton(AF_INET6, "::1", be.addr.bytes);
	backend_open(&b, base, "::1", 0, 204);
	struct svc_spec spec = {
		.name = "v6", .port = b.port,
		.hc = { .type = AETH_HC_HTTP, .interval_ms = 30, .timeout_ms = 200,
			.rise = 1, .fall = 2 },	/* path: default "/" */
		.backends = { "::1" },
	};
	cfg = make_config(&spec, 1);
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg), 0);
	run_for(base, 200);
	cr_assert_geq(b.accepted, 2);
	cr_assert(starts_with(b.last_request, "GET / HTTP/1.1\r\n"),
		  "request: %s", b.last_request);
	cr_assert_not_null(strstr(b.last_request, "\r\nHost: [::1]\r\n"),
			   "request: %s", b.last_request);
	cr_assert_eq(f.n, 0);

	b.status = 503;
	run_until(base, &f.n, 1, 2000);
	cr_assert_eq(f.n, 1);
	cr_assert(!f.last_up);
	cr_assert_eq(memcmp(f.ip.addr.bytes, be.addr.bytes, 16), 0);
	cr_assert(!aeth_health_is_up(h, "v6", &be));

	aeth_health_stop(h);
	backend_close(&b);
	free_config(cfg);
}

Test(health, http_split_status_line_and_silent_server)
{
	struct fake_backend b = { .lfd = -1 };
	struct flips f = { 0 };
	struct aeth_health *h;
	struct aeth_config *cfg;
	uint64_t t;

	backend_open(&b, base, "127.0.0.1", 0, SPLIT);
	struct svc_spec spec = {
		.name = "slowweb", .port = b.port,
		.hc = { .type = AETH_HC_HTTP, .interval_ms = 50, .timeout_ms = 120,
			.rise = 1, .fall = 2 },
		.backends = { "127.0.0.1" },
	};
	cfg = make_config(&spec, 1);
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg), 0);
	/* the status line arrives in two pieces 20 ms apart: still a 200 */
	run_for(base, 300);
	cr_assert_geq(b.accepted, 3);
	cr_assert_eq(f.n, 0, "a split status line was not read whole");

	/* accepts and reads, never answers: each probe times out */
	b.status = SILENT;
	t = run_until(base, &f.n, 1, 2000);
	cr_assert_eq(f.n, 1);
	cr_assert(!f.last_up);
	/* two probes, each waiting its full timeout */
	cr_assert_geq(t, 2 * 120 - 10, "down after %lu ms", t);

	aeth_health_stop(h);
	backend_close(&b);
	free_config(cfg);
}
