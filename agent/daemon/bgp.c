/* The BGP speaker's supervisor: which VIPs to announce, BIRD kept running
 * and configured with them, peer states, drain; --detach's withdrawal. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bgp.h"
#include "bgp_state.h"
#include "bird.h"
#include "bird_conf.h"
#include "log.h"

#define PEER_POLL_TICKS 5		/* peer states every 500 ms */
#define STABLE_MS 60000			/* up this long: backoff starts over */
#define HUNG_MS 30000			/* alive but silent this long: killed */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A command's outcome: an answer (even a refusal) means BIRD is there. */
static void note_answer(struct aeth_bgp *g, int err)
{
	if (!err || err == -EPROTO)
		g->silent_since_ms = 0;
	else if (!g->silent_since_ms)
		g->silent_since_ms = now_ms();
}

static bool service_usable(const struct aeth_agent *a,
			   const struct aeth_cfg_service *s)
{
	for (size_t j = 0; j < s->n_backends; j++) {
		const struct aeth_cfg_backend *b = &s->backends[j];

		if (b->draining || !b->weight)
			continue;
		if (!a->backend_up ||
		    a->backend_up(a->backend_up_arg, s->name, &b->ip))
			return true;
	}
	return false;
}

bool aeth_bgp_ip_in(const struct aeth_ip *list, size_t n,
		     const struct aeth_ip *ip)
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(&list[i], ip, sizeof(*ip)))
			return true;
	return false;
}

static int ip_order(const void *pa, const void *pb)
{
	const struct aeth_ip *a = pa, *b = pb;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->addr.bytes, b->addr.bytes, 16);
}

/* SPEC.md section 7: attached, applied, a usable backend, not drained.
 * Sorted, each VIP once. *out is malloc'd (NULL when empty). */
static int desired_vips(struct aeth_bgp *g, struct aeth_ip **out, size_t *n)
{
	const struct aeth_agent *a = g->agent;
	const struct aeth_config *cfg = a->cfg;

	*out = NULL;
	*n = 0;
	if (!cfg || !cfg->n_services || !a->status.config_applied ||
	    !a->status.attached || g->drained)
		return 0;
	*out = calloc(cfg->n_services, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct aeth_cfg_service *s = &cfg->services[i];

		if (!aeth_bgp_ip_in(*out, *n, &s->vip) && service_usable(a, s))
			(*out)[(*n)++] = s->vip;
	}
	qsort(*out, *n, sizeof(**out), ip_order);
	aeth_bgp_hold_filter(g, *out, n, now_ms());
	return 0;
}

static void set_announced(struct aeth_bgp *g, struct aeth_ip *vips, size_t n)
{
	free(g->announced);
	g->announced = vips;
	g->n_announced = n;
}

static int write_conf(struct aeth_bgp *g, const struct aeth_cfg_bgp *cfg,
		      const struct aeth_ip *vips, size_t n)
{
	char *text = aeth_bird_config(cfg, vips, n, g->bird.log);
	int err;

	if (!text)
		return -ENOMEM;
	err = aeth_bird_write_conf(&g->bird, text);
	free(text);
	if (err)
		log_warn("bgp: writing %s: %s", g->bird.conf, strerror(-err));
	return err;
}

static void mark_peers(struct aeth_bgp *g, const char *state)
{
	for (size_t i = 0; i < AETH_CFG_BGP_MAX_PEERS; i++)
		snprintf(g->peer_state[i], STATE_LEN, "%s", state);
}

/* Start BIRD on the desired set; on failure retry after a growing delay. */
static void speaker_start(struct aeth_bgp *g, const struct aeth_cfg_bgp *cfg,
			  struct aeth_ip *vips, size_t n)
{
	struct aeth_error err = { 0 };
	pid_t pid;

	if (write_conf(g, cfg, vips, n) == 0) {
		pid = aeth_bird_start(&g->bird, &err);
		if (pid > 0) {
			log_info("bgp: bird started (pid %d), announcing %zu VIPs",
				 (int)pid, n);
			g->pid = pid;
			g->started_ms = now_ms();
			g->cfg = *cfg;
			g->configured = true;
			set_announced(g, vips, n);
			mark_peers(g, "idle");
			return;
		}
		log_err("bgp: %s; retrying in %u ms", err.message,
			g->backoff_ms);
	}
	free(vips);
	g->start_failures++;
	g->next_start_ms = now_ms() + g->backoff_ms;
	g->backoff_ms = g->backoff_ms * 2 > AETH_BGP_BACKOFF_MAX_MS ?
			AETH_BGP_BACKOFF_MAX_MS : g->backoff_ms * 2;
}

static void speaker_configure(struct aeth_bgp *g, const struct aeth_cfg_bgp *cfg,
			      struct aeth_ip *vips, size_t n)
{
	char reply[512];
	int err;

	err = write_conf(g, cfg, vips, n);
	if (!err) {
		err = aeth_bird_command(&g->bird, "configure", reply,
					sizeof(reply));
		note_answer(g, err);
	}
	if (err) {
		if (err == -EPROTO)
			log_err("bgp: bird refused its configuration: %s", reply);
		else if (err != -ENOMEM)
			log_warn("bgp: configuring bird: %s", strerror(-err));
		free(vips);
		/* growing, so a BIRD that hangs does not hold the loop often */
		g->configure_backoff_ms = g->configure_backoff_ms ?
			(g->configure_backoff_ms * 2 > AETH_BGP_BACKOFF_MAX_MS ?
			 AETH_BGP_BACKOFF_MAX_MS : g->configure_backoff_ms * 2) :
			AETH_BGP_BACKOFF_MS;
		g->next_configure_ms = now_ms() + g->configure_backoff_ms;
		return;
	}
	g->configure_backoff_ms = 0;
	log_info("bgp: announcing %zu VIPs%s", n, g->drained ? " (drained)" : "");
	g->cfg = *cfg;
	g->configured = true;
	set_announced(g, vips, n);
}

static void speaker_died(struct aeth_bgp *g)
{
	g->silent_since_ms = 0;
	/* where the agent is the container's init, the orphaned daemon is
	 * its child: reap it (ECHILD everywhere else) */
	waitpid(g->pid, NULL, WNOHANG);
	log_err("bgp: bird (pid %d) is gone; starting it again in %u ms",
		(int)g->pid, g->backoff_ms);
	g->pid = 0;
	g->restarts++;
	g->configured = false;
	set_announced(g, NULL, 0);
	mark_peers(g, "down");
	g->next_start_ms = now_ms() + g->backoff_ms;
}

/* No bgp member any more: stop the speaker, so nothing stays announced. */
static void speaker_retire(struct aeth_bgp *g)
{
	if (g->pid > 0) {
		log_info("bgp: no bgp configuration; stopping bird (pid %d)",
			 (int)g->pid);
		if (aeth_bird_stop(g->pid, 2000))
			log_warn("bgp: bird (pid %d) did not stop", (int)g->pid);
	}
	g->pid = 0;
	g->configured = false;
	set_announced(g, NULL, 0);
}

static bool same_set(const struct aeth_bgp *g, const struct aeth_ip *vips,
		     size_t n)
{
	return g->n_announced == n &&
	       (!n || !memcmp(g->announced, vips, n * sizeof(*vips)));
}

static void reconcile(struct aeth_bgp *g)
{
	const struct aeth_config *cfg = g->agent->cfg;
	uint64_t now = now_ms();
	struct aeth_ip *vips;
	size_t n;

	if (!cfg || !cfg->bgp) {
		if (g->pid > 0 || g->configured)
			speaker_retire(g);
		return;
	}
	if (g->pid > 0 && g->silent_since_ms &&
	    now - g->silent_since_ms > HUNG_MS) {
		log_err("bgp: bird (pid %d) has not answered for %d s; killing it",
			(int)g->pid, HUNG_MS / 1000);
		kill(g->pid, SIGKILL);
		g->silent_since_ms = 0;
		aeth_bird_stop(g->pid, 1000);	/* waits for it to go */
	}
	if (g->pid > 0 && !aeth_bird_alive(g->pid))
		speaker_died(g);
	if (g->pid > 0 && now - g->started_ms > STABLE_MS)
		g->backoff_ms = AETH_BGP_BACKOFF_MS;
	if (g->pid <= 0 && now < g->next_start_ms)
		return;
	if (desired_vips(g, &vips, &n))
		return;
	if (g->pid <= 0) {
		speaker_start(g, cfg->bgp, vips, n);
		return;
	}
	if (g->configured && same_set(g, vips, n) &&
	    !memcmp(&g->cfg, cfg->bgp, sizeof(g->cfg))) {
		free(vips);
		return;
	}
	if (now < g->next_configure_ms) {
		free(vips);
		return;
	}
	speaker_configure(g, cfg->bgp, vips, n);
}

/* "BGP state:          Established" in `show protocols all NAME`. Returns
 * the command's error: a BIRD that does not answer is not asked again. */
static int poll_peer(struct aeth_bgp *g, size_t i)
{
	char cmd[64], name[32], reply[2048], *s = NULL;
	size_t len;
	int err;

	aeth_bird_peer_name(i, name, sizeof(name));
	snprintf(cmd, sizeof(cmd), "show protocols all %s", name);
	err = aeth_bird_command(&g->bird, cmd, reply, sizeof(reply));
	note_answer(g, err);
	if (!err)
		s = strstr(reply, "BGP state:");
	if (!s) {
		snprintf(g->peer_state[i], STATE_LEN, "unknown");
		return err == -EPROTO ? 0 : err;
	}
	s += strlen("BGP state:");
	s += strspn(s, " \t");
	len = strcspn(s, " \t\n");
	if (len >= STATE_LEN)
		len = STATE_LEN - 1;
	for (size_t k = 0; k < len; k++)
		g->peer_state[i][k] = (char)(s[k] | 0x20);	/* lower case */
	g->peer_state[i][len] = '\0';
	return 0;
}

static void poll_peers(struct aeth_bgp *g)
{
	if (g->pid <= 0 || !g->configured || now_ms() < g->next_poll_ms)
		return;
	for (size_t i = 0; i < g->cfg.n_peers; i++) {
		if (poll_peer(g, i) == 0)
			continue;
		/* a frozen BIRD holds the event loop for the command timeout:
		 * not once per peer, and not every tick */
		for (; i < g->cfg.n_peers; i++)
			snprintf(g->peer_state[i], STATE_LEN, "unknown");
		g->next_poll_ms = now_ms() + 5000;
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_bgp *g = arg;

	(void)fd;
	(void)what;
	reconcile(g);
	if (++g->ticks % PEER_POLL_TICKS == 0)
		poll_peers(g);
}

void aeth_bgp_update(struct aeth_bgp *g)
{
	if (g)
		reconcile(g);
}

static bool read_drained(const char *path)
{
	return access(path, F_OK) == 0;
}

int aeth_bgp_set_drained(struct aeth_bgp *g, bool drained)
{
	int fd;

	if (drained) {
		fd = open(g->drain_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		close(fd);
	} else if (unlink(g->drain_file) && errno != ENOENT) {
		return -errno;
	}
	if (g->drained != drained)
		log_info("node %s", drained ? "drained: withdrawing every VIP" :
			 "undrained: announcing again");
	g->drained = drained;
	g->next_configure_ms = 0;
	reconcile(g);
	return 0;
}

bool aeth_bgp_drained(const struct aeth_bgp *g)
{
	return g && g->drained;
}

struct aeth_bgp *aeth_bgp_start(struct event_base *base, struct aeth_agent *a,
				const char *state_dir)
{
	struct timeval tv = { 0, AETH_BGP_TICK_MS * 1000 };
	struct aeth_bgp *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->agent = a;
	g->backoff_ms = AETH_BGP_BACKOFF_MS;
	if (aeth_bird_init(&g->bird, state_dir) ||
	    (size_t)snprintf(g->drain_file, sizeof(g->drain_file), "%s/drained",
			     state_dir) >= sizeof(g->drain_file)) {
		free(g);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (mkdir(state_dir, 0700) && errno != EEXIST) {
		free(g);
		return NULL;
	}
	g->drained = read_drained(g->drain_file);
	g->pid = aeth_bird_find(&g->bird);
	mark_peers(g, "down");
	if (g->pid > 0)
		aeth_bgp_hold_begin(g);
	if (g->pid > 0)
		log_info("bgp: adopting the running bird (pid %d): nothing is "
			 "withdrawn", (int)g->pid);
	if (g->drained)
		log_info("node is drained (%s)", g->drain_file);
	g->tick = event_new(base, -1, EV_PERSIST, on_tick, g);
	if (!g->tick || event_add(g->tick, &tv)) {
		if (g->tick)
			event_free(g->tick);
		free(g);
		errno = ENOMEM;
		return NULL;
	}
	reconcile(g);
	poll_peers(g);
	return g;
}

void aeth_bgp_stop(struct aeth_bgp *g)
{
	if (!g)
		return;
	event_free(g->tick);
	free(g->announced);
	free(g->held);
	free(g);
}

int aeth_bgp_withdraw_all(const char *state_dir, int withdraw_wait_ms)
{
	struct aeth_bird bird;
	pid_t pid;
	int err;

	err = aeth_bird_init(&bird, state_dir);
	if (err)
		return err;
	pid = aeth_bird_find(&bird);
	if (pid <= 0)
		return 0;
	log_info("withdrawing: stopping bird (pid %d)", (int)pid);
	err = aeth_bird_stop(pid, 3000);
	if (err)
		return err;
	if (withdraw_wait_ms > 0) {
		struct timespec ts = { withdraw_wait_ms / 1000,
				       (withdraw_wait_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	return 1;
}
