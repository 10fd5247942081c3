/* https health checks against a TLS server the test runs on 127.0.0.1, with
 * certificates made by the openssl tool: a 2xx /readyz marks the backend
 * up, a 503 down, a certificate from another CA or for another name down. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "health.h"
#include "log.h"

static char dir[64];		/* certificates, removed at the end */
static struct event_base *base;

struct tls_backend {
	struct evhttp *http;
	SSL_CTX *ctx;
	uint16_t port;
	int status;		/* answer to every GET */
	int requests;
	char last_path[128];
	char last_host[128];
};

struct flips {
	int n;
	bool last_up;
};

static void on_flip(void *arg, const char *service, const struct aeth_ip *ip,
		    bool up)
{
	struct flips *f = arg;

	f->n++;
	f->last_up = up;
}

static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "failed: %s", cmd);
}

/* Two CAs; the server's certificate (backend.test, 127.0.0.1) from the
 * first. */
static void make_certs(void)
{
	static const char *quiet = ">/dev/null 2>&1";

	for (int i = 1; i <= 2; i++)
		sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		   "-subj /CN=ca%d -keyout ca%d.key -out ca%d.pem %s", dir, i, i,
		   i, quiet);
	sh("cd %s && printf 'subjectAltName=DNS:backend.test,IP:127.0.0.1\\n' "
	   "> san.ext && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=backend "
	   "-keyout srv.key -out srv.csr %s && openssl x509 -req -in srv.csr "
	   "-CA ca1.pem -CAkey ca1.key -CAcreateserial -days 2 -extfile san.ext "
	   "-out srv.pem %s", dir, quiet, quiet);
}

static struct bufferevent *tls_bev(struct event_base *b, void *arg)
{
	struct tls_backend *t = arg;

	return bufferevent_openssl_socket_new(b, -1, SSL_new(t->ctx),
					      BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static void serve(struct evhttp_request *req, void *arg)
{
	struct tls_backend *t = arg;
	const char *host = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Host");

	t->requests++;
	snprintf(t->last_path, sizeof(t->last_path), "%s",
		 evhttp_request_get_uri(req));
	snprintf(t->last_host, sizeof(t->last_host), "%s", host ? host : "");
	evhttp_send_reply(req, t->status, t->status == 200 ? "OK" : "Nope", NULL);
}

static void backend_open(struct tls_backend *t, int status)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char crt[160], key[160];

	snprintf(crt, sizeof(crt), "%s/srv.pem", dir);
	snprintf(key, sizeof(key), "%s/srv.key", dir);
	t->status = status;
	t->ctx = SSL_CTX_new(TLS_server_method());
	cr_assert_eq(SSL_CTX_use_certificate_file(t->ctx, crt, SSL_FILETYPE_PEM), 1);
	cr_assert_eq(SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM), 1);
	t->http = evhttp_new(base);
	cr_assert_not_null(t->http);
	evhttp_set_bevcb(t->http, tls_bev, t);
	evhttp_set_gencb(t->http, serve, t);
	bound = evhttp_bind_socket_with_handle(t->http, "127.0.0.1", 0);
	cr_assert_not_null(bound);
	getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &sl);
	t->port = ntohs(sin.sin_port);
}

static void backend_close(struct tls_backend *t)
{
	evhttp_free(t->http);
	SSL_CTX_free(t->ctx);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop until f->n reaches want or max_ms passes. */
static void run_until(const struct flips *f, int want, uint64_t max_ms)
{
	uint64_t start = now_ms();
	struct timeval tick = { .tv_sec = 0, .tv_usec = 5000 };

	while (now_ms() - start < max_ms && f->n < want) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
}

static void run_for(uint64_t ms)
{
	struct flips never = { 0 };

	run_until(&never, 1, ms);
}

/* One service "api" with the backend 127.0.0.1 and an https check. */
static struct aeth_config *make_config(uint16_t port, const char *ca,
				       const char *server_name)
{
	struct aeth_config *cfg = calloc(1, sizeof(*cfg));
	struct aeth_cfg_service *svc = calloc(1, sizeof(*svc));
	struct aeth_cfg_backend *be = calloc(1, sizeof(*be));

	cfg->services = svc;
	cfg->n_services = 1;
	snprintf(svc->name, sizeof(svc->name), "api");
	svc->port = port;
	svc->health = (struct aeth_cfg_health){
		.type = AETH_HC_HTTPS, .interval_ms = 40, .timeout_ms = 500,
		.rise = 2, .fall = 2,
	};
	if (ca)
		snprintf(svc->health.ca, sizeof(svc->health.ca), "%s/%s", dir, ca);
	if (server_name)
		snprintf(svc->health.server_name, sizeof(svc->health.server_name),
			 "%s", server_name);
	svc->backends = be;
	svc->n_backends = 1;
	snprintf(be->address_text, sizeof(be->address_text), "127.0.0.1");
	be->ip.family = AETH_AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &be->ip.addr.v4);
	be->weight = 1;
	return cfg;
}

static void free_config(struct aeth_config *cfg)
{
	free(cfg->services[0].backends);
	free(cfg->services);
	free(cfg);
}

static void setup(void)
{
	char cmd[256];

	aeth_log_init(AETH_LOG_WARN, false);
	snprintf(dir, sizeof(dir), "/tmp/aeth-https-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
	cr_assert_eq(system(cmd), 0);
	make_certs();
	base = event_base_new();
	cr_assert_not_null(base);
}

static void teardown(void)
{
	char cmd[256];

	if (base)
		event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(health_https, .init = setup, .fini = teardown, .timeout = 60);

Test(health_https, readyz_status_marks_up_and_down)
{
	struct tls_backend t = { 0 };
	struct flips f = { 0 };
	struct aeth_config *cfg;
	struct aeth_health *h;
	struct aeth_ip ip = { .family = AETH_AF_INET };

	inet_pton(AF_INET, "127.0.0.1", &ip.addr.v4);
	backend_open(&t, 503);
	cfg = make_config(t.port, "ca1.pem", "backend.test");
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg), 0);

	/* a 503 /readyz: down after fall probes */
	run_until(&f, 1, 5000);
	cr_assert_eq(f.n, 1, "a 503 never marked the backend down");
	cr_assert(!f.last_up);
	cr_assert(!aeth_health_is_up(h, "api", &ip));
	cr_assert_geq(t.requests, 2);
	cr_assert_str_eq(t.last_path, "/readyz", "the default path");
	cr_assert_str_eq(t.last_host, "backend.test");

	/* ready: up again over a verified connection */
	t.status = 200;
	run_until(&f, 2, 5000);
	cr_assert_eq(f.n, 2, "a verified 200 never marked the backend up");
	cr_assert(f.last_up);
	cr_assert(aeth_health_is_up(h, "api", &ip));

	aeth_health_stop(h);
	backend_close(&t);
	free_config(cfg);
}

/* Another CA, or a name the certificate does not carry: the handshake
 * fails before any request, and the backend is down although it answers
 * 200. */
static void expect_refused(const char *ca, const char *server_name)
{
	struct tls_backend t = { 0 };
	struct flips f = { 0 };
	struct aeth_config *cfg;
	struct aeth_health *h;

	backend_open(&t, 200);
	cfg = make_config(t.port, ca, server_name);
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg), 0);
	run_until(&f, 1, 5000);
	cr_assert_eq(f.n, 1, "ca %s, name %s: not marked down", ca, server_name);
	cr_assert(!f.last_up);
	cr_assert_eq(t.requests, 0, "a request went to an unverified server");
	aeth_health_stop(h);
	backend_close(&t);
	free_config(cfg);
}

Test(health_https, wrong_ca_marks_down)
{
	expect_refused("ca2.pem", "backend.test");
	expect_refused("ca2.pem", NULL);
}

Test(health_https, wrong_name_marks_down)
{
	expect_refused("ca1.pem", "other.test");
}

Test(health_https, missing_ca_file_marks_down)
{
	expect_refused("no-such-ca.pem", NULL);
}

/* Without a CA the certificate is not checked: a server with a
 * certificate from an unknown CA that answers 200 stays up. */
Test(health_https, no_ca_is_not_verified)
{
	struct tls_backend t = { 0 };
	struct flips f = { 0 };
	struct aeth_config *cfg;
	struct aeth_health *h;

	backend_open(&t, 200);
	cfg = make_config(t.port, NULL, NULL);
	snprintf(cfg->services[0].health.path,
		 sizeof(cfg->services[0].health.path), "/livez");
	h = aeth_health_start(base, on_flip, &f);
	cr_assert_eq(aeth_health_update(h, cfg), 0);
	run_for(400);
	cr_assert_geq(t.requests, 3, "only %d requests", t.requests);
	cr_assert_str_eq(t.last_path, "/livez");
	cr_assert_str_eq(t.last_host, "127.0.0.1");
	cr_assert_eq(f.n, 0, "flipped without a reason");

	/* and a 503 still counts */
	t.status = 503;
	run_until(&f, 1, 5000);
	cr_assert_eq(f.n, 1);
	cr_assert(!f.last_up);
	aeth_health_stop(h);
	backend_close(&t);
	free_config(cfg);
}
