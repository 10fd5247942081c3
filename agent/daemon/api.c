/* The control API on a unix socket: GET/PUT /v1/config, GET /v1/status,
 * PUT /v1/drain.
 * PUT goes through the same apply path as the file and SIGHUP. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "aether/names.h"
#include "api.h"
#include "api_conns.h"
#include "file_util.h"
#include "apply.h"
#include "bgp.h"
#include "log.h"

struct aeth_api {
	struct evhttp *http;
	struct aeth_api_conns *conns;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;		/* the socket file we made, to unlink only it */
	ino_t ino;
	struct aeth_agent *agent;
};

static void reply_json(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *out = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);

	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	if (out && text) {
		evbuffer_add(out, text, strlen(text));
		evbuffer_add(out, "\n", 1);
	}
	evhttp_send_reply(req, code, NULL, out);
	free(text);
	if (out)
		evbuffer_free(out);
	json_decref(body);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
	reply_json(req, code, json_pack("{s:s}", "error", msg));
}

/* Only root may change the data path. */
static bool peer_is_root(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd;

	if (!conn)
		return false;
	bev = evhttp_connection_get_bufferevent(conn);
	fd = bev ? bufferevent_getfd(bev) : -1;
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	return cred.uid == 0;
}

static void get_config(struct aeth_api *api, struct evhttp_request *req)
{
	const struct aeth_config *cfg = api->agent->cfg;
	struct evbuffer *out;

	if (!cfg) {
		reply_error(req, HTTP_NOTFOUND, "no configuration applied yet");
		return;
	}
	out = evbuffer_new();
	if (!out) {
		reply_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evbuffer_add(out, cfg->text, cfg->text_len);
	evhttp_send_reply(req, HTTP_OK, NULL, out);
	evbuffer_free(out);
}

static void put_config(struct aeth_api *api, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct aeth_apply_result res;
	const char *text;
	json_t *body;
	int err;

	text = (const char *)evbuffer_pullup(in, -1);
	if (!text)
		text = "";
	err = aeth_apply_text(api->agent, text, len, "api", &res);
	if (!err) {
		reply_json(req, HTTP_OK, json_pack("{s:I}", "generation",
						   (json_int_t)res.generation));
		return;
	}
	if (res.rejected) {
		body = json_pack("{s:s,s:s}", "error", res.err.message, "path",
				 res.err.path);
		if (body && res.err.line > 0) {
			json_object_set_new(body, "line",
					    json_integer(res.err.line));
			json_object_set_new(body, "column",
					    json_integer(res.err.column));
		}
		reply_json(req, HTTP_BADREQUEST, body);
		return;
	}
	reply_error(req, HTTP_INTERNAL, res.message);
}

static json_t *time_json(uint64_t unix_ns)
{
	char buf[40];
	time_t sec = unix_ns / 1000000000ull;
	struct tm tm;

	if (!unix_ns)
		return json_null();
	gmtime_r(&sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

static void get_status(struct aeth_api *api, struct evhttp_request *req)
{
	const struct aeth_agent *a = api->agent;
	const struct aeth_meta *m = &a->meta;
	json_t *ifaces = json_array(), *st, *last;
	char hash[65];

	for (int i = 0; i < 32; i++)
		snprintf(hash + 2 * i, 3, "%02x", m->config_hash[i]);
	for (uint32_t i = 0; i < m->n_interfaces && i < AETH_MAX_INTERFACES;
	     i++) {
		const struct aeth_iface_status *s = &m->ifaces[i];
		const char *mode = s->mode <= AETH_XDP_MODE_AUTO ?
				   aeth_xdp_mode_names[s->mode] : "unknown";

		json_array_append_new(ifaces, json_pack(
			"{s:s,s:i,s:s,s:I}", "name", s->name, "ifindex",
			(int)s->ifindex, "mode", mode, "prog_id",
			(json_int_t)s->prog_id));
	}
	last = json_pack("{s:s,s:s,s:o}", "result",
			 a->last_result[0] ? a->last_result : "none",
			 "source", a->last_source,
			 "time", time_json(a->last_apply_unix_ns));
	if (last && a->last_error[0])
		json_object_set_new(last, "error", json_string(a->last_error));
	st = json_pack("{s:I,s:s,s:i,s:s,s:o,s:o,s:o,s:b,s:b}",
		       "generation", (json_int_t)m->generation,
		       "config_hash", m->generation ? hash : "",
		       "schema_version", (int)m->schema_version,
		       "pin_dir", a->pin_dir,
		       "applied_time", time_json(m->applied_unix_ns),
		       "interfaces", ifaces,
		       "last_apply", last,
		       "config_applied", a->status.config_applied,
		       "attached", a->status.attached);
	if (!st) {
		reply_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	json_object_set_new(st, "drained", json_boolean(aeth_bgp_drained(a->bgp)));
	json_object_set_new(st, "bgp", aeth_bgp_status_json(a->bgp));
	reply_json(req, HTTP_OK, st);
}

/* PUT /v1/drain {"drained": true|false} (SPEC.md section 3). */
static void put_drain(struct aeth_api *api, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *text = (const char *)evbuffer_pullup(in, -1);
	json_t *body, *v;
	int err;

	body = json_loadb(text ? text : "", len, 0, NULL);
	v = json_object_get(body, "drained");
	if (!json_is_object(body) || json_object_size(body) != 1 ||
	    !json_is_boolean(v)) {
		json_decref(body);
		reply_json(req, HTTP_BADREQUEST, json_pack("{s:s,s:s}",
			   "error", "body must be {\"drained\": true|false}",
			   "path", "drained"));
		return;
	}
	if (!api->agent->bgp) {
		json_decref(body);
		reply_error(req, HTTP_INTERNAL, "the BGP supervisor is not running");
		return;
	}
	err = aeth_bgp_set_drained(api->agent->bgp, json_is_true(v));
	json_decref(body);
	if (err) {
		reply_error(req, HTTP_INTERNAL, strerror(-err));
		return;
	}
	reply_json(req, HTTP_OK, json_pack("{s:b,s:o}", "drained",
		   aeth_bgp_drained(api->agent->bgp), "bgp",
		   aeth_bgp_status_json(api->agent->bgp)));
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct aeth_api *api = arg;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *uri = evhttp_request_get_uri(req);

	aeth_api_conns_touch(api->conns, req);
	if (!peer_is_root(req)) {
		reply_error(req, 403, "only root may use this socket");
		return;
	}
	if (strcmp(uri, "/v1/config") == 0) {
		if (cmd == EVHTTP_REQ_GET)
			get_config(api, req);
		else if (cmd == EVHTTP_REQ_PUT)
			put_config(api, req);
		else
			reply_error(req, HTTP_BADMETHOD, "use GET or PUT");
	} else if (strcmp(uri, "/v1/status") == 0) {
		if (cmd == EVHTTP_REQ_GET)
			get_status(api, req);
		else
			reply_error(req, HTTP_BADMETHOD, "use GET");
	} else if (strcmp(uri, "/v1/drain") == 0) {
		if (cmd == EVHTTP_REQ_PUT)
			put_drain(api, req);
		else
			reply_error(req, HTTP_BADMETHOD, "use PUT");
	} else {
		reply_error(req, HTTP_NOTFOUND, "no such resource");
	}
}

int aeth_api_socket_in_use(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (lstat(path, &st))
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;		/* not a socket: not ours to remove */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* someone accepts (or queues) connections on it: it is live */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
	    errno == EAGAIN)
		ret = -EADDRINUSE;
	close(fd);
	return ret;
}

static int listen_unix(const char *path, struct aeth_api *api)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_mask;
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	err = aeth_mkdir_parents(path, 0755);
	if (err)
		return err;
	/* a socket left by a run that ended; a live one is another agent's */
	err = aeth_api_socket_in_use(path);
	if (err)
		return err;
	if (lstat(path, &st) == 0)
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old_mask = umask(0177);	/* born 0600: no window for other users */
	err = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (err || chmod(path, 0600) || listen(fd, 64) || lstat(path, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	api->dev = st.st_dev;
	api->ino = st.st_ino;
	return fd;
}

/* Remove the socket file only if it is still the one we made. */
static void unlink_own(const struct aeth_api *api)
{
	struct stat st;

	if (lstat(api->path, &st) == 0 && st.st_dev == api->dev &&
	    st.st_ino == api->ino)
		unlink(api->path);
}

struct aeth_api *aeth_api_start(struct event_base *base, const char *path,
				struct aeth_agent *a)
{
	struct aeth_api *api = calloc(1, sizeof(*api));
	struct evhttp_bound_socket *bound;
	int fd, err;

	if (!api)
		return NULL;
	api->agent = a;
	snprintf(api->path, sizeof(api->path), "%s", path);
	fd = listen_unix(path, api);
	if (fd < 0) {
		err = -fd;
		log_err("API socket %s: %s", path, err == EADDRINUSE ?
			"another process serves it" : strerror(err));
		free(api);
		errno = err;
		return NULL;
	}
	api->http = evhttp_new(base);
	bound = api->http ? evhttp_accept_socket_with_handle(api->http, fd) :
			    NULL;
	if (bound)
		api->conns = aeth_api_conns_start(base, api->http, bound,
						  "API socket");
	if (!api->conns) {
		log_err("API socket %s: cannot serve HTTP on it", path);
		if (api->http)
			evhttp_free(api->http);
		if (!bound)
			close(fd);
		unlink_own(api);
		free(api);
		errno = ENOMEM;
		return NULL;
	}
	evhttp_set_max_body_size(api->http, AETH_API_MAX_BODY);
	evhttp_set_max_headers_size(api->http, 16384);
	evhttp_set_timeout(api->http, 30);
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT);
	evhttp_set_gencb(api->http, on_request, api);
	log_info("API listening on %s", path);
	return api;
}

void aeth_api_stop(struct aeth_api *api)
{
	if (!api)
		return;
	evhttp_free(api->http);	/* closes the listening socket */
	aeth_api_conns_stop(api->conns);
	unlink_own(api);
	free(api);
}
