/* Connection bounds for the API socket. evhttp owns its connections and
 * tells nobody when one opens or closes, so they are followed by
 * descriptor and inode: an entry is live while its fd still refers to the
 * same socket. They are ended with shutdown(), never close(): evhttp then
 * sees the end of the stream and frees the connection itself. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "api_conns.h"
#include "log.h"

struct conn {
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t since_ms;	/* accepted, or last request served */
};

struct aeth_api_conns {
	struct aeth_api_conns *next;	/* in listeners */
	const char *what;		/* for the log: "API socket" */
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *learn_ev, *sweep_ev, *resume_ev;
	struct bufferevent **pending;	/* created, fd not yet known */
	size_t n_pending, cap_pending;
	struct conn conns[AETH_API_MAX_CONNS];
	size_t n_conns;
	uint64_t refused, last_refused_log_ms, last_error_log_ms;
};

/* A listener's error callback gets evhttp's argument, not ours: find the
 * owner by listener. */
static struct aeth_api_conns *listeners;

static struct aeth_api_conns *owner_of(struct evconnlistener *l)
{
	struct aeth_api_conns *c = listeners;

	while (c && c->listener != l)
		c = c->next;
	return c;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool same_socket(const struct conn *e)
{
	struct stat st;

	return fstat(e->fd, &st) == 0 && st.st_dev == e->dev &&
	       st.st_ino == e->ino;
}

/* Drop entries whose connection evhttp has closed; end the expired ones. */
static void prune(struct aeth_api_conns *c, uint64_t now)
{
	size_t i = 0;

	while (i < c->n_conns) {
		struct conn *e = &c->conns[i];

		if (same_socket(e) && now < e->since_ms + AETH_API_IDLE_MS) {
			i++;
			continue;
		}
		if (same_socket(e))
			shutdown(e->fd, SHUT_RDWR);
		*e = c->conns[--c->n_conns];
	}
}

/* End the connection that has waited longest for anything to happen: a
 * client that connects now is more likely the operator than one idle
 * since (a burst of idle connections must not lock the operator out).
 * Returns false when there was none. */
static bool evict_oldest(struct aeth_api_conns *c, uint64_t now)
{
	size_t old = 0;

	if (!c->n_conns)
		return false;
	for (size_t i = 1; i < c->n_conns; i++)
		if (c->conns[i].since_ms < c->conns[old].since_ms)
			old = i;
	shutdown(c->conns[old].fd, SHUT_RDWR);
	c->conns[old] = c->conns[--c->n_conns];
	c->refused++;
	if (now - c->last_refused_log_ms >= 10000) {
		c->last_refused_log_ms = now;
		log_warn("%s: more than %d connections; ending the longest "
			 "idle (%llu so far)", c->what, AETH_API_MAX_CONNS,
			 (unsigned long long)c->refused);
	}
	return true;
}

static void track(struct aeth_api_conns *c, int fd, uint64_t now)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st))
		return;
	prune(c, now);
	if (c->n_conns == AETH_API_MAX_CONNS)
		evict_oldest(c, now);
	c->conns[c->n_conns++] = (struct conn){
		.fd = fd, .dev = st.st_dev, .ino = st.st_ino, .since_ms = now,
	};
}

/* Runs once evhttp has given the new bufferevents their descriptors. */
static void on_learn(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_api_conns *c = arg;
	uint64_t now = now_ms();

	for (size_t i = 0; i < c->n_pending; i++) {
		struct bufferevent *bev = c->pending[i];
		bufferevent_data_cb readcb = NULL;

		/* no callbacks: evhttp has already let it go */
		bufferevent_getcb(bev, &readcb, NULL, NULL, NULL);
		if (readcb)
			track(c, bufferevent_getfd(bev), now);
		bufferevent_decref(bev);
	}
	c->n_pending = 0;
}

/* evhttp asks for each accepted connection's bufferevent. The extra
 * reference keeps it (and its fd) valid until on_learn has looked. */
static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	struct aeth_api_conns *c = arg;
	struct bufferevent *bev;

	if (c->n_pending == c->cap_pending) {
		size_t cap = c->cap_pending ? 2 * c->cap_pending : 16;
		void *p = realloc(c->pending, cap * sizeof(*c->pending));

		if (!p)
			return NULL;
		c->pending = p;
		c->cap_pending = cap;
	}
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;
	bufferevent_incref(bev);
	c->pending[c->n_pending++] = bev;
	event_active(c->learn_ev, EV_TIMEOUT, 0);
	return bev;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	prune(arg, now_ms());
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_api_conns *c = arg;

	evconnlistener_enable(c->listener);
}

/* accept() failed for a reason other than "try again". Out of descriptors
 * the socket stays readable: pause instead of spinning on it. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct aeth_api_conns *c = owner_of(l);
	struct timeval tv = { 0, AETH_API_ACCEPT_PAUSE_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();
	uint64_t now = now_ms();

	if (!c)
		return;
	evconnlistener_disable(l);
	evtimer_add(c->resume_ev, &tv);
	/* out of descriptors: free some of ours so that the next accept (and
	 * everything else the agent opens) can succeed */
	if (err == EMFILE || err == ENFILE)
		for (size_t n = (c->n_conns + 3) / 4; n; n--)
			evict_oldest(c, now);
	if (now - c->last_error_log_ms >= 10000) {
		c->last_error_log_ms = now;
		log_warn("%s: accept: %s; pausing %d ms", c->what,
			 strerror(err), AETH_API_ACCEPT_PAUSE_MS);
	}
}

struct aeth_api_conns *aeth_api_conns_start(struct event_base *base,
					    struct evhttp *http,
					    struct evhttp_bound_socket *bound,
					    const char *what)
{
	struct aeth_api_conns *c = calloc(1, sizeof(*c));
	struct timeval second = { 1, 0 };

	if (!c)
		return NULL;
	c->base = base;
	c->what = what;
	c->listener = evhttp_bound_socket_get_listener(bound);
	c->learn_ev = event_new(base, -1, 0, on_learn, c);
	c->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, c);
	c->resume_ev = evtimer_new(base, on_resume, c);
	if (!c->listener || !c->learn_ev || !c->sweep_ev || !c->resume_ev ||
	    event_add(c->sweep_ev, &second)) {
		aeth_api_conns_stop(c);
		return NULL;
	}
	c->next = listeners;
	listeners = c;
	evconnlistener_set_error_cb(c->listener, on_accept_error);
	evhttp_set_bevcb(http, new_bev, c);
	return c;
}

void aeth_api_conns_touch(struct aeth_api_conns *c,
			  struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	int fd;

	bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	fd = bev ? bufferevent_getfd(bev) : -1;
	for (size_t i = 0; c && fd >= 0 && i < c->n_conns; i++)
		if (c->conns[i].fd == fd && same_socket(&c->conns[i]))
			c->conns[i].since_ms = now_ms();
}

/* After evhttp_free: the connections are gone, only our references stay. */
void aeth_api_conns_stop(struct aeth_api_conns *c)
{
	if (!c)
		return;
	for (struct aeth_api_conns **p = &listeners; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	for (size_t i = 0; i < c->n_pending; i++)
		bufferevent_decref(c->pending[i]);
	if (c->learn_ev)
		event_free(c->learn_ev);
	if (c->sweep_ev)
		event_free(c->sweep_ev);
	if (c->resume_ev)
		event_free(c->resume_ev);
	free(c->pending);
	free(c);
}
