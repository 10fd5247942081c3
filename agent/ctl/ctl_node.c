/* aetherctl node drain | undrain | show: the node's BGP announcements,
 * through the agent's API socket (the only command that needs the agent). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

#define DEFAULT_SOCKET "/run/aether/agent.sock"
#define REPLY_MAX (1u << 20)

static const struct ctl_opt node_opts[] = { { "socket", true } };

static int api_connect(struct ctl_ctx *ctx, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 10, 0 };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		ctl_error(ctx, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = errno;

		ctl_error(ctx, "agent API %s: %s", path, strerror(err));
		if (fd >= 0)
			close(fd);
		return -err;
	}
	return fd;
}

static char *read_all(int fd, size_t *len)
{
	size_t cap = 8192;
	char *buf = malloc(cap), *nb;
	ssize_t n;

	*len = 0;
	while (buf) {
		if (*len + 1 >= cap) {
			if (cap >= REPLY_MAX)
				break;
			nb = realloc(buf, cap * 2);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + *len, cap - 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			buf[*len] = '\0';
			return buf;
		}
		*len += (size_t)n;
	}
	free(buf);
	return NULL;
}

/* One request; *body gets the parsed JSON reply. Returns the HTTP status or
 * a negative errno (reported). */
static int api_call(struct ctl_ctx *ctx, const char *sock, const char *method,
		    const char *uri, const char *req_body, json_t **body)
{
	char head[256], *reply, *payload;
	size_t blen = req_body ? strlen(req_body) : 0, len;
	int fd, n, status = 0;

	fd = api_connect(ctx, sock);
	if (fd < 0)
		return fd;
	n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: agent\r\n"
		     "Connection: close\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n", method, uri, blen);
	if (write(fd, head, (size_t)n) != n ||
	    (blen && write(fd, req_body, blen) != (ssize_t)blen)) {
		ctl_error(ctx, "agent API %s: %s", sock, strerror(errno));
		close(fd);
		return -EIO;
	}
	reply = read_all(fd, &len);
	close(fd);
	payload = reply ? strstr(reply, "\r\n\r\n") : NULL;
	if (!payload || sscanf(reply, "HTTP/1.%*d %d", &status) != 1) {
		ctl_error(ctx, "agent API %s: no HTTP reply", sock);
		free(reply);
		return -EPROTO;
	}
	*body = json_loads(payload + 4, 0, NULL);
	free(reply);
	if (!*body) {
		ctl_error(ctx, "agent API %s: reply is not JSON", sock);
		return -EPROTO;
	}
	return status;
}

static void print_bgp(json_t *bgp)
{
	json_t *v, *speaker = json_object_get(bgp, "speaker");
	size_t i;

	if (!json_is_true(json_object_get(bgp, "enabled"))) {
		printf("bgp:      not configured\n");
		return;
	}
	printf("speaker:  %s (pid %lld, %lld restarts)\n",
	       json_is_true(json_object_get(speaker, "running")) ? "running" :
	       "not running",
	       json_integer_value(json_object_get(speaker, "pid")),
	       json_integer_value(json_object_get(speaker, "restarts")));
	printf("\n%-40s %-10s %-4s %s\n", "PEER", "ASN", "BFD", "STATE");
	json_array_foreach(json_object_get(bgp, "peers"), i, v)
		printf("%-40s %-10lld %-4s %s\n",
		       json_string_value(json_object_get(v, "address")),
		       json_integer_value(json_object_get(v, "asn")),
		       json_is_true(json_object_get(v, "bfd")) ? "yes" : "no",
		       json_string_value(json_object_get(v, "state")));
	printf("\nANNOUNCED\n");
	json_array_foreach(json_object_get(bgp, "announced"), i, v)
		printf("%s\n", json_string_value(v));
}

static int node_print(struct ctl_ctx *ctx, json_t *status)
{
	json_t *out;

	if (ctx->json) {
		out = json_pack("{s:O,s:O}", "drained",
				json_object_get(status, "drained"), "bgp",
				json_object_get(status, "bgp"));
		json_decref(status);
		return ctl_json_print(ctx, out);
	}
	printf("drained:  %s\n",
	       json_is_true(json_object_get(status, "drained")) ? "yes" : "no");
	print_bgp(json_object_get(status, "bgp"));
	json_decref(status);
	return 0;
}

static int node_request(struct ctl_ctx *ctx, int argc, char **argv,
			const char *method, const char *uri, const char *body)
{
	const char *vals[1], *sock;
	json_t *reply = NULL;
	int ret;

	ret = ctl_parse_args(ctx, argv[0], argc, argv, node_opts, 1, vals,
			     NULL, 0, 0);
	if (ret)
		return ret;
	sock = vals[0] ? vals[0] : DEFAULT_SOCKET;
	ret = api_call(ctx, sock, method, uri, body, &reply);
	if (ret < 0)
		return ret;
	if (ret != 200) {
		ctl_error(ctx, "agent: %s", json_string_value(
			  json_object_get(reply, "error")) ?: "request failed");
		json_decref(reply);
		return -EIO;
	}
	return node_print(ctx, reply);
}

static int node_drain(struct ctl_ctx *ctx, int argc, char **argv)
{
	return node_request(ctx, argc, argv, "PUT", "/v1/drain",
			    "{\"drained\": true}");
}

static int node_undrain(struct ctl_ctx *ctx, int argc, char **argv)
{
	return node_request(ctx, argc, argv, "PUT", "/v1/drain",
			    "{\"drained\": false}");
}

static int node_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	return node_request(ctx, argc, argv, "GET", "/v1/status", NULL);
}

static const struct ctl_cmd node_verbs[] = {
	{ "drain", node_drain, "drain [--socket PATH]" },
	{ "undrain", node_undrain, "undrain [--socket PATH]" },
	{ "show", node_show, "show [--socket PATH]" },
};

const struct ctl_object ctl_obj_node = {
	.name = "node",
	.verbs = node_verbs,
	.n_verbs = sizeof(node_verbs) / sizeof(node_verbs[0]),
	.summary = "Drain the node (its VIPs are withdrawn from the routers; "
		   "what still reaches it is forwarded), undrain it, or show "
		   "its BGP peers and announcements. Talks to the agent over "
		   "its API socket (default " DEFAULT_SOCKET ").",
};
