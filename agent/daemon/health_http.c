/* http and https health probes on libevent's HTTP client; https through
 * OpenSSL (libevent_openssl), verified against the check's CA when given. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "health_http.h"

/* /readyz answers are short; a page past this is not a health answer */
#define HC_MAX_BODY (256u << 10)
#define HC_MAX_HEADERS (16u << 10)

struct hc_tls {
	SSL_CTX *ctx;
	bool verify;
	char server_name[256];
};

struct hc_http {
	struct evhttp_connection *conn;	/* NULL once libevent freed it */
	struct event *report;		/* delivers the result from the loop */
	hc_http_done cb;
	void *arg;
	bool tls;
	bool verify;			/* the certificate is checked (a ca) */
	bool ok;
	enum evhttp_request_error error;
	bool have_error;
	char reason[256];
	char verify_error[128];		/* the certificate check's complaint */
};

static int verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store,
			SSL_get_ex_data_X509_STORE_CTX_idx());
	struct hc_http *p = ssl ? SSL_get_app_data(ssl) : NULL;

	/* without a ca OpenSSL still reports what it found: not a failure */
	if (!preverify_ok && p && p->verify && !p->verify_error[0])
		snprintf(p->verify_error, sizeof(p->verify_error),
			 "certificate: %s", X509_verify_cert_error_string(
				 X509_STORE_CTX_get_error(store)));
	return preverify_ok;
}

struct hc_tls *hc_tls_new(const struct aeth_cfg_health *cfg,
			  struct aeth_error *err)
{
	struct hc_tls *tls = calloc(1, sizeof(*tls));

	if (!tls || !(tls->ctx = SSL_CTX_new(TLS_client_method()))) {
		aeth_fail(err, -ENOMEM, "", "TLS: out of memory");
		free(tls);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION);
	snprintf(tls->server_name, sizeof(tls->server_name), "%s",
		 cfg->server_name);
	tls->verify = cfg->ca[0] != '\0';
	if (tls->verify && access(cfg->ca, R_OK) < 0) {
		aeth_fail(err, -errno, "", "ca %s: %s", cfg->ca, strerror(errno));
		hc_tls_free(tls);
		return NULL;
	}
	if (tls->verify &&
	    SSL_CTX_load_verify_locations(tls->ctx, cfg->ca, NULL) != 1) {
		aeth_fail(err, -EINVAL, "", "ca %s: no PEM certificate in it",
			  cfg->ca);
		ERR_clear_error();
		hc_tls_free(tls);
		return NULL;
	}
	/* without a CA the certificate is not checked (SPEC section 4) */
	SSL_CTX_set_verify(tls->ctx, tls->verify ? SSL_VERIFY_PEER :
			   SSL_VERIFY_NONE, verify_cb);
	return tls;
}

void hc_tls_free(struct hc_tls *tls)
{
	if (!tls)
		return;
	SSL_CTX_free(tls->ctx);
	free(tls);
}

static const char *error_text(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		return "timed out";
	case EVREQ_HTTP_EOF:
		return "connection closed without a response";
	case EVREQ_HTTP_INVALID_HEADER:
		return "malformed response";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "response too long";
	default:
		return "connection failed";
	}
}

static void report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hc_http *p = arg;

	p->cb(p->arg, p->ok, p->ok ? NULL : p->reason);
}

static void request_error_cb(enum evhttp_request_error e, void *arg)
{
	struct hc_http *p = arg;

	p->error = e;
	p->have_error = true;
}

/* http: 2xx and 3xx pass, as load balancers usually count them; https
 * (kube-apiserver's /readyz): only 2xx (SPEC section 4). */
static void request_done_cb(struct evhttp_request *req, void *arg)
{
	struct hc_http *p = arg;
	int code = req ? evhttp_request_get_response_code(req) : 0;
	bool tls = p->tls;

	p->conn = NULL;	/* freed by libevent once this returns (or before) */
	if (code == 0)
		snprintf(p->reason, sizeof(p->reason), "%s: %s",
			 tls ? "https" : "http", p->verify_error[0] ?
			 p->verify_error : p->have_error ?
			 error_text(p->error) : "connection failed");
	else if (code >= 200 && code < (tls ? 300 : 400))
		p->ok = true;
	else
		snprintf(p->reason, sizeof(p->reason), "%s: status %d",
			 tls ? "https" : "http", code);
	event_active(p->report, EV_TIMEOUT, 1);
}

static struct bufferevent *tls_bufferevent(struct event_base *base,
					   struct hc_tls *tls, struct hc_http *p)
{
	struct bufferevent *bev;
	SSL *ssl = SSL_new(tls->ctx);

	if (!ssl)
		return NULL;
	SSL_set_app_data(ssl, p);
	if (tls->server_name[0] &&
	    (!SSL_set_tlsext_host_name(ssl, tls->server_name) ||
	     (tls->verify && !SSL_set1_host(ssl, tls->server_name)))) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
			BUFFEREVENT_SSL_CONNECTING,
			BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	/* servers often close without close_notify after the answer */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* The request with its headers; the connection gets it either way. */
static int send_request(struct hc_http *p, struct hc_tls *tls,
			const struct aeth_cfg_health *cfg, const char *addr,
			bool v6)
{
	struct evhttp_request *req = evhttp_request_new(request_done_cb, p);
	struct evkeyvalq *h;
	char host[300];

	if (!req)
		return -1;
	evhttp_request_set_error_cb(req, request_error_cb);
	if (tls && tls->server_name[0])
		snprintf(host, sizeof(host), "%s", tls->server_name);
	else
		snprintf(host, sizeof(host), v6 ? "[%s]" : "%s", addr);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", host);
	evhttp_add_header(h, "User-Agent", "aether-agent health check");
	evhttp_add_header(h, "Connection", "close");
	return evhttp_make_request(p->conn, req, EVHTTP_REQ_GET, cfg->path);
}

struct hc_http *hc_http_start(struct event_base *base, struct hc_tls *tls,
			      const struct aeth_cfg_health *cfg,
			      const char *addr, bool v6, hc_http_done cb,
			      void *arg)
{
	struct hc_http *p = calloc(1, sizeof(*p));
	struct bufferevent *bev = NULL;

	if (!p)
		return NULL;
	p->cb = cb;
	p->arg = arg;
	p->tls = tls != NULL;
	p->verify = tls && tls->verify;
	p->report = event_new(base, -1, 0, report_cb, p);
	if (p->report && tls)
		bev = tls_bufferevent(base, tls, p);
	if (!p->report || (tls && !bev))
		goto fail;
	p->conn = evhttp_connection_base_bufferevent_new(base, NULL, bev, addr,
							 cfg->port);
	if (!p->conn) {
		if (bev)
			bufferevent_free(bev);
		goto fail;
	}
	evhttp_connection_set_max_body_size(p->conn, HC_MAX_BODY);
	evhttp_connection_set_max_headers_size(p->conn, HC_MAX_HEADERS);
	/* our caller's deadline ends the probe; libevent's own is a backstop */
	evhttp_connection_set_timeout(p->conn, 60);
	evhttp_connection_free_on_completion(p->conn);
	if (send_request(p, tls, cfg, addr, v6) < 0) {
		/* the connection still owns nothing: free it here */
		evhttp_connection_free(p->conn);
		p->conn = NULL;
		goto fail;
	}
	return p;
fail:
	if (p->report)
		event_free(p->report);
	free(p);
	errno = ENOMEM;
	return NULL;
}

void hc_http_cancel(struct hc_http *p)
{
	if (!p)
		return;
	/* frees a pending request without calling it back */
	if (p->conn)
		evhttp_connection_free(p->conn);
	event_free(p->report);
	free(p);
}
