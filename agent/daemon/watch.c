/* The --config file as a source: inotify on its directory, debounced, and
 * SIGHUP, both feeding the one apply path through a callback. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "watch.h"
#include "config.h"
#include "file_util.h"

struct aeth_watch {
	char path[PATH_MAX];
	int ifd;
	struct event *inotify_ev, *timer_ev, *hup_ev;
	struct timeval debounce;
	uint64_t first_ms;	/* first relevant event not yet delivered */
	char base[NAME_MAX + 1];	/* the file's name in its directory */
	char *last;		/* content last delivered */
	size_t last_len;
	aeth_watch_cb cb;
	void *arg;
};

/* Read the file and hand it on; unchanged content is dropped unless forced
 * (SIGHUP means "apply this again"). */
static void deliver(struct aeth_watch *w, const char *source, bool force)
{
	char *text;
	size_t len;
	int err;

	err = aeth_read_file(w->path, AETH_CONFIG_MAX_BYTES, &text, &len);
	if (err) {
		/* mid-swap the file may be briefly missing: the next event
		 * brings it back */
		if (err != -ENOENT || force)
			log_warn("reading %s: %s; the running state stays",
				 w->path, aeth_read_file_strerror(err));
		return;
	}
	if (!force && w->last && len == w->last_len &&
	    memcmp(text, w->last, len) == 0) {
		free(text);
		return;
	}
	free(w->last);
	w->last = text;
	w->last_len = len;
	w->cb(w->arg, text, len, source);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_watch *w = arg;

	w->first_ms = 0;
	deliver(w, "file", false);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Names in the directory that can change what path reads: the file, the
 * ConfigMap's ..data link, and the first component of a relative symlink
 * target (..data/config.json, or a file beside it). */
static bool relevant(const struct aeth_watch *w, const char *name)
{
	char target[PATH_MAX], *slash;
	ssize_t n;

	if (strcmp(name, w->base) == 0 || strcmp(name, "..data") == 0)
		return true;
	n = readlink(w->path, target, sizeof(target) - 1);
	if (n <= 0 || target[0] == '/')
		return false;
	target[n] = '\0';
	slash = strchr(target, '/');
	if (slash)
		*slash = '\0';
	return strcmp(name, target) == 0;
}

static bool any_relevant(const struct aeth_watch *w, const char *buf,
			 ssize_t len)
{
	const struct inotify_event *ev;

	for (const char *p = buf; p < buf + len; p += sizeof(*ev) + ev->len) {
		ev = (const struct inotify_event *)p;
		if (ev->mask & IN_Q_OVERFLOW)
			return true;	/* events were lost: look anyway */
		if (ev->len && relevant(w, ev->name))
			return true;
	}
	return false;
}

/* Settle for debounce after the last relevant event, but never more than
 * AETH_WATCH_MAX_DELAY_MS after the first: a file written without pause
 * cannot hold a change back for ever. */
static void arm(struct aeth_watch *w)
{
	uint64_t now = now_ms(), due, last;
	struct timeval tv;

	if (!w->first_ms)
		w->first_ms = now;
	due = now + (uint64_t)w->debounce.tv_sec * 1000 +
	      w->debounce.tv_usec / 1000;
	last = w->first_ms + AETH_WATCH_MAX_DELAY_MS;
	if (due > last)
		due = last > now ? last : now;
	tv.tv_sec = (due - now) / 1000;
	tv.tv_usec = ((due - now) % 1000) * 1000;
	evtimer_add(w->timer_ev, &tv);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_watch *w = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool mine = false;
	ssize_t n;

	/* the directory is shared with whatever else lives there (logs,
	 * downloads, other agents): only our names count */
	while ((n = read(w->ifd, buf, sizeof(buf))) > 0)
		if (!mine && any_relevant(w, buf, n))
			mine = true;
	if (mine)
		arm(w);
}

static void on_sighup(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_watch *w = arg;

	log_info("SIGHUP: re-reading %s", w->path);
	deliver(w, "sighup", true);
}

struct aeth_watch *aeth_watch_start(struct event_base *base, const char *path,
				    unsigned int debounce_ms,
				    const char *initial, size_t initial_len,
				    aeth_watch_cb cb, void *arg)
{
	struct aeth_watch *w = calloc(1, sizeof(*w));
	char dir[PATH_MAX];
	int err;

	if (!w)
		return NULL;
	w->ifd = -1;
	w->cb = cb;
	w->arg = arg;
	w->debounce.tv_sec = debounce_ms / 1000;
	w->debounce.tv_usec = (debounce_ms % 1000) * 1000;
	if ((size_t)snprintf(w->path, sizeof(w->path), "%s", path) >=
	    sizeof(w->path)) {
		err = ENAMETOOLONG;
		goto fail;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(w->base, sizeof(w->base), "%s", basename(dir));
	snprintf(dir, sizeof(dir), "%s", path);
	if (initial) {
		w->last = malloc(initial_len + 1);
		if (!w->last) {
			err = ENOMEM;
			goto fail;
		}
		memcpy(w->last, initial, initial_len);
		w->last[initial_len] = '\0';
		w->last_len = initial_len;
	}
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		err = errno;
		goto fail;
	}
	if (inotify_add_watch(w->ifd, dirname(dir),
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
			      IN_CREATE | IN_DELETE | IN_MODIFY) < 0) {
		err = errno;
		log_err("watching the directory of %s: %s", path,
			strerror(err));
		goto fail;
	}
	w->inotify_ev = event_new(base, w->ifd, EV_READ | EV_PERSIST,
				  on_inotify, w);
	w->timer_ev = evtimer_new(base, on_timer, w);
	w->hup_ev = evsignal_new(base, SIGHUP, on_sighup, w);
	if (!w->inotify_ev || !w->timer_ev || !w->hup_ev ||
	    event_add(w->inotify_ev, NULL) || event_add(w->hup_ev, NULL)) {
		err = ENOMEM;
		goto fail;
	}
	return w;
fail:
	aeth_watch_stop(w);
	errno = err;
	return NULL;
}

void aeth_watch_stop(struct aeth_watch *w)
{
	if (!w)
		return;
	if (w->inotify_ev)
		event_free(w->inotify_ev);
	if (w->timer_ev)
		event_free(w->timer_ev);
	if (w->hup_ev)
		event_free(w->hup_ev);
	if (w->ifd >= 0)
		close(w->ifd);
	free(w->last);
	free(w);
}
