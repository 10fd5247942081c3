/* aetherctl config get|apply and node drain|undrain|show: the agent's API
 * over its unix socket (HTTP/1.1, one request per connection). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent_api.h"
#include "ctl.h"

#define API_MAX_RESPONSE (AETH_CONFIG_MAX_BYTES + 65536)

struct api_reply {
	int code;
	char *text;		/* the whole response, NUL-terminated */
	const char *body;	/* into text */
};

static int api_connect(struct ctl_ctx *ctx)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(ctx->socket) >= sizeof(sa.sun_path)) {
		ctl_error(ctx, "%s: socket path too long", ctx->socket);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, ctx->socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		ctl_error(ctx, "cannot reach the agent at %s: %s (is it running? "
			  "--socket PATH)", ctx->socket, strerror(err));
		if (fd >= 0)
			close(fd);
		return -err;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_reply(struct ctl_ctx *ctx, int fd, struct api_reply *r)
{
	size_t cap = 65536, len = 0;
	char *p;
	ssize_t n;

	r->text = malloc(cap);
	for (;;) {
		if (!r->text)
			return -ENOMEM;
		n = recv(fd, r->text + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (cap - len < 4096 && cap < API_MAX_RESPONSE) {
			cap *= 2;
			r->text = realloc(r->text, cap);
		}
	}
	r->text[len] = '\0';
	p = strstr(r->text, "\r\n\r\n");
	if (sscanf(r->text, "HTTP/1.%*d %d", &r->code) != 1 || !p) {
		ctl_error(ctx, "%s: not an HTTP answer", ctx->socket);
		return -EPROTO;
	}
	r->body = p + 4;
	return 0;
}

static int api_call(struct ctl_ctx *ctx, const char *method, const char *path,
		    const char *body, size_t len, struct api_reply *r)
{
	char head[256];
	int fd, err;

	memset(r, 0, sizeof(*r));
	fd = api_connect(ctx);
	if (fd < 0)
		return fd;
	snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: aether-agent\r\n"
		 "Connection: close\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n", method, path, len);
	err = send_all(fd, head, strlen(head));
	if (!err && len)
		err = send_all(fd, body, len);
	if (err)
		ctl_error(ctx, "%s: sending: %s", ctx->socket, strerror(-err));
	else
		err = read_reply(ctx, fd, r);
	close(fd);
	return err;
}

/* A non-2xx answer: the agent's {"error", "path"} as one error line. */
static int api_failed(struct ctl_ctx *ctx, const char *what,
		      const struct api_reply *r)
{
	json_t *doc = json_loads(r->body, 0, NULL);
	const char *msg = json_string_value(json_object_get(doc, "error"));
	const char *at = json_string_value(json_object_get(doc, "path"));

	if (r->code == 404)
		ctl_error(ctx, "%s: this agent has no such API", what);
	else if (at && *at)
		ctl_error(ctx, "%s: %s: %s", what, at, msg ? msg : r->body);
	else
		ctl_error(ctx, "%s: %s", what, msg ? msg : r->body);
	json_decref(doc);
	return -EIO;
}

/* JSON mode: the agent's JSON as is (indented with -p); else text. */
static int print_body(struct ctl_ctx *ctx, const struct api_reply *r)
{
	json_t *doc;

	if (!ctx->json) {
		fputs(r->body, stdout);
		return 0;
	}
	doc = json_loads(r->body, 0, NULL);
	if (!doc) {
		ctl_error(ctx, "the agent answered something other than JSON");
		return -EPROTO;
	}
	return ctl_json_print(ctx, doc);
}

static int run_get(struct ctl_ctx *ctx, const char *what, const char *path)
{
	struct api_reply r;
	int err = api_call(ctx, "GET", path, NULL, 0, &r);

	if (!err)
		err = r.code / 100 == 2 ? print_body(ctx, &r) : api_failed(ctx, what, &r);
	free(r.text);
	return err;
}

static int config_get(struct ctl_ctx *ctx, int argc, char **argv)
{
	if (ctl_parse_args(ctx, argv[0], argc, argv, NULL, 0, NULL, NULL, 0, 0))
		return -EINVAL;
	return run_get(ctx, "config get", "/v1/config");
}

/* The whole file, up to the agent's own limit. 0 or -errno. */
static int read_document(const char *path, char **text, size_t *len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0, cap = 65536;
	char *buf = malloc(cap);
	int err = 0;

	if (!f || !buf) {
		err = f ? -ENOMEM : -errno;
		goto out;
	}
	while ((n += fread(buf + n, 1, cap - n, f)) == cap) {
		if (cap >= AETH_CONFIG_MAX_BYTES) {
			err = -EFBIG;
			goto out;
		}
		cap *= 2;
		buf = realloc(buf, cap);
		if (!buf) {
			err = -ENOMEM;
			goto out;
		}
	}
	if (ferror(f))
		err = -EIO;
out:
	if (f)
		fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	*text = buf;
	*len = n;
	return 0;
}

static int config_apply(struct ctl_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	struct api_reply r;
	char *text = NULL;
	size_t len;
	json_t *doc;
	int err;

	if (ctl_parse_args(ctx, argv[0], argc, argv, NULL, 0, NULL, pos, 1, 1))
		return -EINVAL;
	err = read_document(pos[0], &text, &len);
	if (err) {
		ctl_error(ctx, "%s: %s", pos[0], strerror(-err));
		return err;
	}
	err = api_call(ctx, "PUT", "/v1/config", text, len, &r);
	free(text);
	if (!err && r.code / 100 != 2)
		err = api_failed(ctx, pos[0], &r);
	else if (!err && ctx->json)
		err = print_body(ctx, &r);
	else if (!err) {
		doc = json_loads(r.body, 0, NULL);
		printf("applied %s: generation %lld\n", pos[0],
		       (long long)json_integer_value(json_object_get(doc, "generation")));
		json_decref(doc);
	}
	free(r.text);
	return err;
}

static int node_drain_set(struct ctl_ctx *ctx, int argc, char **argv,
			  bool drained)
{
	const char *body = drained ? "{\"drained\": true}" : "{\"drained\": false}";
	struct api_reply r;
	int err;

	if (ctl_parse_args(ctx, argv[0], argc, argv, NULL, 0, NULL, NULL, 0, 0))
		return -EINVAL;
	err = api_call(ctx, "PUT", "/v1/drain", body, strlen(body), &r);
	if (!err && r.code / 100 != 2)
		err = api_failed(ctx, argv[0], &r);
	else if (!err && ctx->json)
		err = print_body(ctx, &r);
	else if (!err)
		printf("node %s\n", drained ? "drained" : "undrained");
	free(r.text);
	return err;
}

static int node_drain(struct ctl_ctx *ctx, int argc, char **argv)
{
	return node_drain_set(ctx, argc, argv, true);
}

static int node_undrain(struct ctl_ctx *ctx, int argc, char **argv)
{
	return node_drain_set(ctx, argc, argv, false);
}

static int node_show(struct ctl_ctx *ctx, int argc, char **argv)
{
	if (ctl_parse_args(ctx, argv[0], argc, argv, NULL, 0, NULL, NULL, 0, 0))
		return -EINVAL;
	return run_get(ctx, "node show", "/v1/status");
}

static const struct ctl_cmd config_verbs[] = {
	{ "get", config_get, "get" },
	{ "apply", config_apply, "apply FILE" },
};

static const struct ctl_cmd node_verbs[] = {
	{ "drain", node_drain, "drain" },
	{ "undrain", node_undrain, "undrain" },
	{ "show", node_show, "show" },
};

const struct ctl_object ctl_obj_config = {
	.name = "config",
	.verbs = config_verbs,
	.n_verbs = sizeof(config_verbs) / sizeof(config_verbs[0]),
	.summary = "The agent's document, through its API socket (--socket): get "
		   "prints the last\napplied one, apply replaces it with FILE "
		   "(validated whole; errors name the place).",
};

const struct ctl_object ctl_obj_node = {
	.name = "node",
	.verbs = node_verbs,
	.n_verbs = sizeof(node_verbs) / sizeof(node_verbs[0]),
	.summary = "The node, through the agent's API socket (--socket): drain "
		   "withdraws its\nannouncements (forwarding goes on), undrain "
		   "restores them, show prints the\nagent's status.",
};
