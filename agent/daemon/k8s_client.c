/* HTTPS to the Kubernetes API server with libcurl: credentials, requests
 * and watch streams. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "k8s_client.h"
#include "file_util.h"
#include "yaml_json.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_BODY (64u << 20)

int k8s_creds_in_cluster(struct k8s_creds *c, struct aeth_error *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *ns = NULL;
	size_t n;

	memset(c, 0, sizeof(*c));
	if (!host || !port) {
		return aeth_fail(err, -ENOENT, "", "not in a cluster "
				 "(KUBERNETES_SERVICE_HOST unset): give "
				 "--kubeconfig");
	}
	snprintf(c->server, sizeof(c->server), strchr(host, ':') ?
		 "https://[%s]:%s" : "https://%s:%s", host, port);
	snprintf(c->ca_file, sizeof(c->ca_file), "%s/ca.crt", SA_DIR);
	snprintf(c->token_file, sizeof(c->token_file), "%s/token", SA_DIR);
	if (!aeth_read_file(SA_DIR "/namespace", sizeof(c->ns) - 1, &ns, &n)) {
		snprintf(c->ns, sizeof(c->ns), "%.*s", (int)strcspn(ns, "\n"), ns);
		free(ns);
	}
	if (!c->ns[0])
		snprintf(c->ns, sizeof(c->ns), "default");
	return 0;
}

static int b64_value(int ch)
{
	const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = ch ? strchr(abc, ch) : NULL;

	return p ? (int)(p - abc) : -1;
}

/* *-data fields of a kubeconfig: base64 (padding and newlines allowed). */
static int b64_decode(const char *in, struct k8s_blob *out)
{
	unsigned int acc = 0, bits = 0;

	out->data = malloc(strlen(in) * 3 / 4 + 4);
	out->len = 0;
	if (!out->data)
		return -ENOMEM;
	for (; *in && *in != '='; in++) {
		int v = b64_value(*in);

		if (v < 0) {
			if (strchr("\r\n ", *in))
				continue;
			free(out->data);
			out->data = NULL;
			return -EINVAL;
		}
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out->data[out->len++] = (char)(acc >> bits);
		}
	}
	return 0;
}

/* The entry of list (clusters, users, contexts) named name. */
static json_t *named(json_t *doc, const char *list, const char *name,
		     const char *inner)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(doc, list), i, v)
		if (name && !strcmp(json_string_value(json_object_get(v, "name")) ?: "",
				    name))
			return json_object_get(v, inner);
	return NULL;
}

static int file_or_data(json_t *obj, const char *file_key, const char *data_key,
			char *file, size_t flen, struct k8s_blob *blob)
{
	const char *f = json_string_value(json_object_get(obj, file_key));
	const char *d = json_string_value(json_object_get(obj, data_key));

	if (f)
		snprintf(file, flen, "%s", f);
	return d ? b64_decode(d, blob) : 0;
}

int k8s_creds_kubeconfig(const char *path, struct k8s_creds *c,
			 struct aeth_error *err)
{
	json_error_t jerr;
	json_t *doc, *ctx, *cl, *user;
	const char *cur, *server, *ns, *tok;
	int ret = -EINVAL;

	memset(c, 0, sizeof(*c));
	/* JSON (kubectl config view -o json), else YAML */
	doc = json_load_file(path, 0, &jerr);
	if (!doc && !(doc = aeth_yaml_load_file(path, err)))
		return -EINVAL;
	cur = json_string_value(json_object_get(doc, "current-context"));
	ctx = named(doc, "contexts", cur, "context");
	cl = named(doc, "clusters", json_string_value(json_object_get(ctx, "cluster")),
		   "cluster");
	user = named(doc, "users", json_string_value(json_object_get(ctx, "user")),
		     "user");
	server = json_string_value(json_object_get(cl, "server"));
	if (!ctx || !cl || !server || strncmp(server, "https://", 8)) {
		aeth_fail(err, -EINVAL, path, "current-context needs a cluster "
			  "with an https:// server");
		goto out;
	}
	snprintf(c->server, sizeof(c->server), "%.*s",
		 (int)(strlen(server) - (server[strlen(server) - 1] == '/')), server);
	c->insecure = json_is_true(json_object_get(cl, "insecure-skip-tls-verify"));
	ns = json_string_value(json_object_get(ctx, "namespace"));
	snprintf(c->ns, sizeof(c->ns), "%s", ns ? ns : "default");
	tok = json_string_value(json_object_get(user, "token"));
	if (tok && !(c->token = strdup(tok)))
		goto out;
	snprintf(c->token_file, sizeof(c->token_file), "%s",
		 json_string_value(json_object_get(user, "tokenFile")) ?: "");
	if (file_or_data(cl, "certificate-authority", "certificate-authority-data",
			 c->ca_file, sizeof(c->ca_file), &c->ca) ||
	    file_or_data(user, "client-certificate", "client-certificate-data",
			 c->cert_file, sizeof(c->cert_file), &c->cert) ||
	    file_or_data(user, "client-key", "client-key-data",
			 c->key_file, sizeof(c->key_file), &c->key)) {
		aeth_fail(err, -EINVAL, path, "a *-data field is not base64");
		goto out;
	}
	ret = 0;
out:
	json_decref(doc);
	if (ret)
		k8s_creds_free(c);
	return ret;
}

void k8s_creds_free(struct k8s_creds *c)
{
	free(c->ca.data);
	free(c->cert.data);
	free(c->key.data);
	free(c->token);
	memset(c, 0, sizeof(*c));
}

struct xfer {
	struct k8s_resp *r;
	volatile int *stop;
	k8s_event_fn fn;	/* NULL: collect the whole body */
	void *arg;
	CURL *h;
	bool ended;		/* fn asked to end the stream */
};

static int append(struct k8s_resp *r, const char *p, size_t n)
{
	char *b;

	if (r->len + n > MAX_BODY)
		return -EFBIG;
	b = realloc(r->body, r->len + n + 1);
	if (!b)
		return -ENOMEM;
	memcpy(b + r->len, p, n);
	r->len += n;
	b[r->len] = '\0';
	r->body = b;
	return 0;
}

/* Hand every complete line of the buffer to fn; keep the rest. */
static int deliver_lines(struct xfer *x)
{
	struct k8s_resp *r = x->r;
	char *nl;

	while (r->body && (nl = memchr(r->body, '\n', r->len))) {
		size_t n = (size_t)(nl - r->body) + 1;
		json_t *ev = json_loadb(r->body, n - 1, 0, NULL);
		int stop;

		memmove(r->body, r->body + n, r->len - n + 1);
		r->len -= n;
		if (!ev)
			continue;	/* an empty line keeps the stream alive */
		stop = x->fn(x->arg, ev);
		json_decref(ev);
		if (stop) {
			x->ended = true;
			return -1;
		}
	}
	return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;

	if (!x->r->status)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->r->status);
	if (append(x->r, p, size * n))
		return 0;
	if (x->fn && x->r->status == 200 && deliver_lines(x))
		return 0;
	return size * n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
		       curl_off_t d)
{
	struct xfer *x = arg;

	return x->stop && *x->stop;
}

/* The bearer token: the file each time (projected tokens rotate). */
static char *bearer(const struct k8s_creds *c)
{
	char *tok = NULL, *hdr;
	size_t n;

	if (c->token_file[0] &&
	    !aeth_read_file(c->token_file, 65536, &tok, &n))
		tok[strcspn(tok, "\r\n")] = '\0';
	else if (c->token)
		tok = strdup(c->token);
	if (!tok || !*tok) {
		free(tok);
		return NULL;
	}
	if (asprintf(&hdr, "Authorization: Bearer %s", tok) < 0)
		hdr = NULL;
	free(tok);
	return hdr;
}

static void set_tls(CURL *h, const struct k8s_creds *c)
{
	struct curl_blob b = { .flags = CURL_BLOB_COPY };

	if (c->ca.data) {
		b.data = c->ca.data;
		b.len = c->ca.len;
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	} else if (c->ca_file[0]) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	}
	if (c->cert.data) {
		b.data = c->cert.data;
		b.len = c->cert.len;
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
	} else if (c->cert_file[0]) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
	}
	if (c->key.data) {
		b.data = c->key.data;
		b.len = c->key.len;
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
	} else if (c->key_file[0]) {
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
	}
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static int perform(const struct k8s_creds *c, const char *method,
		   const char *path, const char *ctype, const char *body,
		   long timeout_s, struct xfer *x)
{
	struct curl_slist *hdrs = NULL;
	char url[2048], ct[128], *auth = bearer(c);
	CURLcode rc;
	CURL *h;

	memset(x->r, 0, sizeof(*x->r));
	h = x->h = curl_easy_init();
	if (!h) {
		free(auth);
		snprintf(x->r->error, sizeof(x->r->error), "curl_easy_init failed");
		return -EIO;
	}
	snprintf(url, sizeof(url), "%s%s", c->server, path);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (auth)
		hdrs = curl_slist_append(hdrs, auth);
	if (ctype) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, ct);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "aether-agent");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	set_tls(h, c);
	rc = curl_easy_perform(h);
	if (!x->r->status)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->r->status);
	if (rc != CURLE_OK && !x->ended)
		snprintf(x->r->error, sizeof(x->r->error), "%s",
			 curl_easy_strerror(rc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	free(auth);
	/* a stream we ended ourselves, or one the server closed, is fine */
	return rc == CURLE_OK || x->ended ? 0 : -EIO;
}

int k8s_request(const struct k8s_creds *c, const char *method,
		const char *path, const char *ctype, const char *body,
		long timeout_s, volatile int *stop, struct k8s_resp *r)
{
	struct xfer x = { .r = r, .stop = stop };

	return perform(c, method, path, ctype, body, timeout_s, &x);
}

int k8s_stream(const struct k8s_creds *c, const char *path, long timeout_s,
	       volatile int *stop, k8s_event_fn fn, void *arg,
	       struct k8s_resp *r)
{
	struct xfer x = { .r = r, .stop = stop, .fn = fn, .arg = arg };

	return perform(c, "GET", path, NULL, NULL, timeout_s, &x);
}

void k8s_resp_free(struct k8s_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}
