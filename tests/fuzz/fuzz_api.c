/* libFuzzer target for the API's request handling (agent/daemon/api.c over a real
 * unix socket and libevent's HTTP parser): any bytes from a client give an
 * answer or a closed connection, never a crash, leak or bad access. The
 * apply path is the real parser and validator without maps: a valid
 * document becomes the applied one, an invalid one is rejected. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "api.h"
#include "apply.h"
#include "config.h"
#include "log.h"

static struct event_base *base;
static struct aeth_agent agent;
static struct sockaddr_un sa = { .sun_family = AF_UNIX };

int aeth_apply_text(struct aeth_agent *a, const char *text, size_t len,
		    const char *source, struct aeth_apply_result *res)
{
	struct aeth_config *cfg;

	memset(res, 0, sizeof(*res));
	if (aeth_config_parse(text, len, &cfg, &res->err)) {
		res->rejected = true;
		aeth_error_format(&res->err, res->message,
					 sizeof(res->message));
		return -EINVAL;
	}
	aeth_config_free(a->cfg);
	a->cfg = cfg;
	res->generation = ++a->meta.generation;
	snprintf(a->last_result, sizeof(a->last_result), "ok");
	snprintf(a->last_source, sizeof(a->last_source), "%s", source);
	return 0;
}

static void cleanup(void)
{
	unlink(sa.sun_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	aeth_log_init(AETH_LOG_ERROR, false);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/aeth-hd-fuzz-api-%d.sock",
		 (int)getpid());
	base = event_base_new();
	agent.meta.n_interfaces = 1;
	agent.meta.ifaces[0].mode = 1;
	snprintf(agent.meta.ifaces[0].name, sizeof(agent.meta.ifaces[0].name),
		 "eth0");
	snprintf(agent.pin_dir, sizeof(agent.pin_dir), "/sys/fs/bpf/none");
	if (!base || !aeth_api_start(base, sa.sun_path, &agent)) {
		fprintf(stderr, "fuzz_api: cannot start the API\n");
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

/* Serve until the server has answered and closed, or gone quiet. */
static void drain(int fd)
{
	char buf[65536];
	int idle = 0;

	while (idle < 200) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		event_base_loop(base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 1) <= 0) {
			idle++;
			continue;
		}
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return;
		idle = 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	int fd, i;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while (off < size) {
		ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);

		if (n < 0 && errno != EAGAIN)
			break;
		if (n > 0)
			off += n;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	shutdown(fd, SHUT_WR);
	drain(fd);
	close(fd);
	/* let the server notice the close and free the connection */
	for (i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return 0;
}
