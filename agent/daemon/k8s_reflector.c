/* List and watch one kind of object (see k8s_reflector.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "k8s_reflector.h"
#include "log.h"

#define WATCH_TIMEOUT_S 290	/* the server ends the watch; we go on */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define PAGE 500

const char *const k8s_state_names[K8S_STATE_MAX] = {
	[K8S_STATE_CONNECTING] = "connecting",
	[K8S_STATE_WATCHING] = "watching",
	[K8S_STATE_BACKOFF] = "backoff",
};

static time_t mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void set_state(struct k8s_reflector *r, enum k8s_watch_state s)
{
	pthread_mutex_lock(r->lock);
	r->state = s;
	pthread_mutex_unlock(r->lock);
}

/* "ns/name" (or "name") of an object; "" when it has none. */
static void key_of(json_t *obj, char *buf, size_t len)
{
	json_t *m = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	const char *name = json_string_value(json_object_get(m, "name"));

	snprintf(buf, len, "%s%s%s", ns ? ns : "", ns ? "/" : "",
		 name ? name : "");
	if (!name)
		buf[0] = '\0';
}

/* Items of a typed list carry no kind: the translation reads it. */
static void stamp(struct k8s_reflector *r, json_t *obj)
{
	json_object_set_new(obj, "kind", json_string(r->kind));
	json_object_set_new(obj, "apiVersion", json_string(r->api_version));
}

/* One page of a list into cache; *cont gets the continue token. */
static int list_page(struct k8s_reflector *r, json_t *cache, char *cont,
		     size_t clen)
{
	struct k8s_resp resp;
	char path[1024], key[600];
	json_t *doc, *items, *it;
	size_t i;
	int ret;

	snprintf(path, sizeof(path), "%s?limit=%d%s%s", r->path, PAGE,
		 *cont ? "&continue=" : "", cont);
	ret = k8s_request(r->creds, "GET", path, NULL, NULL, 30, r->stop, &resp);
	if (ret || resp.status != 200) {
		log_warn("kubernetes: listing %s: %s%s (HTTP %ld)", r->path,
			 resp.error, resp.body && !resp.error[0] ? resp.body : "",
			 resp.status);
		k8s_resp_free(&resp);
		return -EIO;
	}
	doc = json_loadb(resp.body, resp.len, 0, NULL);
	k8s_resp_free(&resp);
	items = json_object_get(doc, "items");
	if (!json_is_array(items)) {
		json_decref(doc);
		return -EIO;
	}
	json_array_foreach(items, i, it) {
		key_of(it, key, sizeof(key));
		stamp(r, it);
		if (key[0])
			json_object_set(cache, key, it);
	}
	it = json_object_get(doc, "metadata");
	snprintf(r->rv, sizeof(r->rv), "%s",
		 json_string_value(json_object_get(it, "resourceVersion")) ?: "");
	snprintf(cont, clen, "%s",
		 json_string_value(json_object_get(it, "continue")) ?: "");
	json_decref(doc);
	return 0;
}

static int relist(struct k8s_reflector *r)
{
	json_t *cache = json_object(), *old;
	char cont[1024] = "";

	if (!r->synced)
		set_state(r, K8S_STATE_CONNECTING);
	do {
		if (list_page(r, cache, cont, sizeof(cont))) {
			json_decref(cache);
			return -EIO;
		}
	} while (cont[0] && !*r->stop);
	pthread_mutex_lock(r->lock);
	old = r->cache;
	r->cache = cache;
	r->synced = true;
	r->relists++;
	r->last_event = mono_s();
	pthread_mutex_unlock(r->lock);
	json_decref(old);
	r->changed(r->arg);
	return 0;
}

/* One watch event. Returns non-zero to end the stream. */
static int on_event(void *arg, json_t *ev)
{
	struct k8s_reflector *r = arg;
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	const char *rv = json_string_value(json_object_get(
		json_object_get(obj, "metadata"), "resourceVersion"));
	char key[600];

	if (!type || !json_is_object(obj)) {
		r->stream_failed = true;	/* not the protocol */
		return 1;
	}
	if (!strcmp(type, "ERROR")) {
		/* 410 Gone: our resourceVersion is too old; list again */
		if (json_integer_value(json_object_get(obj, "code")) == 410)
			r->rv[0] = '\0';
		else
			r->stream_failed = true;
		return 1;
	}
	r->stream_events++;
	pthread_mutex_lock(r->lock);
	r->last_event = mono_s();
	pthread_mutex_unlock(r->lock);
	if (rv)
		snprintf(r->rv, sizeof(r->rv), "%s", rv);
	if (!strcmp(type, "BOOKMARK"))
		return 0;
	key_of(obj, key, sizeof(key));
	if (!key[0])
		return 1;
	pthread_mutex_lock(r->lock);
	if (!strcmp(type, "DELETED")) {
		json_object_del(r->cache, key);
	} else {
		json_t *copy = json_deep_copy(obj);

		stamp(r, copy);
		json_object_set_new(r->cache, key, copy);
	}
	pthread_mutex_unlock(r->lock);
	r->changed(r->arg);
	return 0;
}

/* Returns 0 when the stream ended normally, -EIO on an error. */
static int watch(struct k8s_reflector *r)
{
	struct k8s_resp resp;
	char path[1024];
	time_t start;
	int ret;

	snprintf(path, sizeof(path), "%s?watch=true&resourceVersion=%s"
		 "&allowWatchBookmarks=true&timeoutSeconds=%d", r->path, r->rv,
		 WATCH_TIMEOUT_S);
	set_state(r, K8S_STATE_WATCHING);
	r->stream_failed = false;
	r->stream_events = 0;
	start = mono_s();
	ret = k8s_stream(r->creds, path, WATCH_TIMEOUT_S + 30, r->stop, on_event,
			 r, &resp);
	if (!ret && resp.status == 410)
		r->rv[0] = '\0';
	else if (!ret && resp.status != 200)
		ret = -EIO;
	/* an ERROR event, or a stream the server ends at once and again,
	 * backs off rather than spinning */
	if (!ret && r->rv[0] && (r->stream_failed ||
				 (!r->stream_events && mono_s() - start < 1))) {
		snprintf(resp.error, sizeof(resp.error), "%s", r->stream_failed ?
			 "error event" : "stream ended at once");
		ret = -EIO;
	}
	if (ret && !*r->stop)
		log_warn("kubernetes: watching %s: %s (HTTP %ld)", r->path,
			 resp.error[0] ? resp.error : "bad response", resp.status);
	k8s_resp_free(&resp);
	return ret;
}

static void sleep_ms(struct k8s_reflector *r, unsigned int ms)
{
	for (; ms && !*r->stop; ms = ms > 50 ? ms - 50 : 0)
		usleep((ms > 50 ? 50 : ms) * 1000);
}

static void *run(void *arg)
{
	struct k8s_reflector *r = arg;
	unsigned int backoff = BACKOFF_MIN_MS;

	while (!*r->stop) {
		int ret = r->rv[0] ? watch(r) : relist(r);

		if (*r->stop)
			break;
		if (!ret) {
			if (r->rv[0])
				backoff = BACKOFF_MIN_MS;
			continue;
		}
		pthread_mutex_lock(r->lock);
		r->errors++;
		r->state = K8S_STATE_BACKOFF;
		pthread_mutex_unlock(r->lock);
		sleep_ms(r, backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

int k8s_reflector_start(struct k8s_reflector *r)
{
	r->cache = json_object();
	if (!r->cache)
		return -ENOMEM;
	if (pthread_create(&r->thread, NULL, run, r)) {
		json_decref(r->cache);
		r->cache = NULL;
		return -EAGAIN;
	}
	r->started = true;
	return 0;
}

void k8s_reflector_join(struct k8s_reflector *r)
{
	if (r->started)
		pthread_join(r->thread, NULL);
	r->started = false;
	json_decref(r->cache);
	r->cache = NULL;
}
