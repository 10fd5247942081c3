/* aether-agent --kubernetes: three reflectors (Services, EndpointSlices,
 * Nodes) fill caches from their threads; the event loop turns a change into
 * at most one translation and apply per AETH_K8S_BATCH_MS, through the
 * same apply path as the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "agent.h"
#include "apply.h"
#include "k8s_reflector.h"
#include "k8s_status.h"
#include "k8s_translate.h"
#include "k8s_watch.h"
#include "log.h"

enum { R_SVC, R_SLICE, R_NODE, R_MAX };

struct aeth_k8s_watch {
	struct aeth_agent *agent;
	struct k8s_creds creds;
	pthread_mutex_t lock;
	volatile int stop;
	struct k8s_reflector refl[R_MAX];
	int pipe[2];			/* reflector threads -> event loop */
	struct event *ev_pipe, *ev_batch;
	bool batch_pending;
	char *base;			/* the document of --config */
	size_t base_len;
	char *last_text;		/* last document handed to apply */
	bool force_apply;		/* the base changed: apply again */
	char *last_rejects;		/* formatted, to log each set once */
	uint64_t rejected[AETH_K8S_REASON_MAX];
	uint64_t translations;
	struct k8s_status *status;	/* the Lease holder writes status */
};

static const struct {
	const char *kind, *api, *path;
} kinds[R_MAX] = {
	[R_SVC] = { "Service", "v1", "/api/v1/services" },
	[R_SLICE] = { "EndpointSlice", "discovery.k8s.io/v1",
		      "/apis/discovery.k8s.io/v1/endpointslices" },
	[R_NODE] = { "Node", "v1", "/api/v1/nodes" },
};

/* From a reflector thread: wake the event loop. */
static void changed(void *arg)
{
	struct aeth_k8s_watch *w = arg;
	char c = 1;

	if (write(w->pipe[1], &c, 1) < 0) {
		/* full pipe: a wake-up is already pending */
	}
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_k8s_watch *w = arg;
	struct timeval tv = { 0, AETH_K8S_BATCH_MS * 1000 };
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (!w->batch_pending) {
		w->batch_pending = true;
		evtimer_add(w->ev_batch, &tv);
	}
}

/* The List the translation reads, from the caches (shared references). */
static json_t *snapshot(struct aeth_k8s_watch *w, bool *synced)
{
	json_t *items = json_array(), *list;
	const char *key;
	json_t *obj;

	*synced = true;
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < R_MAX; i++) {
		*synced &= w->refl[i].synced;
		json_object_foreach(w->refl[i].cache, key, obj)
			json_array_append(items, obj);
	}
	pthread_mutex_unlock(&w->lock);
	list = json_pack("{s:s,s:s,s:o}", "apiVersion", "v1", "kind", "List",
			 "items", items);
	return list;
}

/* Log and count each rejection once, when it first appears. */
static void note_rejects(struct aeth_k8s_watch *w,
			 const struct aeth_k8s_result *res)
{
	char line[1200], *all = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&all, &len);

	if (!f)
		return;
	for (size_t i = 0; i < res->n_rejects; i++) {
		const struct aeth_k8s_reject *r = &res->rejects[i];

		aeth_k8s_reject_format(r, line, sizeof(line));
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 " (%s)\n", aeth_k8s_reason_names[r->reason]);
		fputs(line, f);
		if (w->last_rejects && strstr(w->last_rejects, line))
			continue;
		line[strlen(line) - 1] = '\0';
		log_warn("kubernetes: left out: %s", line);
		w->rejected[r->reason]++;
	}
	fclose(f);
	free(w->last_rejects);
	w->last_rejects = all;
}

static void translate_and_apply(struct aeth_k8s_watch *w)
{
	struct aeth_error err;
	struct aeth_apply_result ar;
	struct aeth_k8s_result res;
	char msg[600];
	bool synced;
	json_t *list = snapshot(w, &synced);

	/* half the picture (Services but no Nodes yet) would drop backends */
	if (!synced) {
		json_decref(list);
		return;
	}
	w->translations++;
	if (aeth_k8s_translate(w->base, w->base_len, list, &res, &err)) {
		json_decref(list);
		/* A new file that cannot be a base goes to the apply path as it
		 * is: rejected, logged and counted there with its place, or
		 * applied alone when it has no "kubernetes" member. */
		if (w->force_apply) {
			w->force_apply = false;
			aeth_error_format(&err, msg, sizeof(msg));
			log_warn("kubernetes: not a base document: %s", msg);
			aeth_apply_text(w->agent, w->base, w->base_len, "file", &ar);
			free(w->last_text);
			w->last_text = NULL;
		}
		return;
	}
	json_decref(list);
	note_rejects(w, &res);
	if (aeth_k8s_keep_previous(&res, w->last_text))
		log_warn("kubernetes: out of memory keeping refused Services");
	if (w->status)
		k8s_status_update(w->status, &res);
	if (w->force_apply || !w->last_text || strcmp(w->last_text, res.text)) {
		w->force_apply = false;
		/* what failed is tried again with the next change */
		if (!aeth_apply_text(w->agent, res.text, res.len, "kubernetes",
				     &ar)) {
			free(w->last_text);
			w->last_text = res.text;
			res.text = NULL;
		}
	}
	aeth_k8s_result_free(&res);
}

static void on_batch(evutil_socket_t fd, short what, void *arg)
{
	struct aeth_k8s_watch *w = arg;

	w->batch_pending = false;
	translate_and_apply(w);
}

void aeth_k8s_watch_set_base(struct aeth_k8s_watch *w, const char *text,
			     size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy) {
		log_err("kubernetes: out of memory for the new document");
		return;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	free(w->base);
	w->base = copy;
	w->base_len = len;
	w->force_apply = true;	/* even if the translation is the same */
	translate_and_apply(w);
}

static int open_creds(struct aeth_k8s_watch *w, const char *kubeconfig)
{
	struct aeth_error err = { 0 };
	char msg[800];
	int ret;

	ret = kubeconfig ? k8s_creds_kubeconfig(kubeconfig, &w->creds, &err)
			 : k8s_creds_in_cluster(&w->creds, &err);
	if (ret) {
		aeth_error_format(&err, msg, sizeof(msg));
		log_err("kubernetes: %s", msg);
	}
	return ret;
}

static int start_events(struct aeth_k8s_watch *w, struct event_base *base)
{
	if (pipe2(w->pipe, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	w->ev_pipe = event_new(base, w->pipe[0], EV_READ | EV_PERSIST, on_pipe, w);
	w->ev_batch = evtimer_new(base, on_batch, w);
	if (!w->ev_pipe || !w->ev_batch || event_add(w->ev_pipe, NULL))
		return -ENOMEM;
	return 0;
}

struct aeth_k8s_watch *aeth_k8s_watch_start(struct event_base *base,
					    struct aeth_agent *a,
					    const char *kubeconfig,
					    const char *text, size_t len)
{
	struct aeth_k8s_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	/* before any thread: neither is thread-safe the first time */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	json_object_seed(0);
	w->pipe[0] = w->pipe[1] = -1;
	w->agent = a;
	pthread_mutex_init(&w->lock, NULL);
	w->base = malloc(len + 1);
	if (!w->base || open_creds(w, kubeconfig) || start_events(w, base))
		goto fail;
	memcpy(w->base, text, len);
	w->base[len] = '\0';
	w->base_len = len;
	for (int i = 0; i < R_MAX; i++) {
		struct k8s_reflector *r = &w->refl[i];

		r->kind = kinds[i].kind;
		r->api_version = kinds[i].api;
		r->path = kinds[i].path;
		r->creds = &w->creds;
		r->lock = &w->lock;
		r->changed = changed;
		r->arg = w;
		r->stop = &w->stop;
		if (k8s_reflector_start(r))
			goto fail;
	}
	w->status = k8s_status_start(&w->creds, &w->stop);
	log_info("kubernetes: watching Services, EndpointSlices and Nodes at %s",
		 w->creds.server);
	return w;
fail:
	log_err("kubernetes: cannot start the watch");
	aeth_k8s_watch_stop(w);
	return NULL;
}

void aeth_k8s_watch_stop(struct aeth_k8s_watch *w)
{
	if (!w)
		return;
	w->stop = 1;
	for (int i = 0; i < R_MAX; i++)
		k8s_reflector_join(&w->refl[i]);
	k8s_status_stop(w->status);
	if (w->ev_pipe)
		event_free(w->ev_pipe);
	if (w->ev_batch)
		event_free(w->ev_batch);
	if (w->pipe[0] >= 0)
		close(w->pipe[0]);
	if (w->pipe[1] >= 0)
		close(w->pipe[1]);
	k8s_creds_free(&w->creds);
	pthread_mutex_destroy(&w->lock);
	free(w->base);
	free(w->last_text);
	free(w->last_rejects);
	free(w);
}

void aeth_k8s_watch_metrics(struct evbuffer *b, void *arg)
{
	struct aeth_k8s_watch *w = arg;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	evbuffer_add_printf(b, "# HELP aether_kubernetes_watch_state 1 for the "
			    "state each watch is in\n# TYPE aether_kubernetes_watch_state gauge\n");
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < R_MAX; i++)
		for (int s = 0; s < K8S_STATE_MAX; s++)
			evbuffer_add_printf(b, "aether_kubernetes_watch_state{kind=\"%s\","
					    "state=\"%s\"} %d\n", w->refl[i].kind,
					    k8s_state_names[s], (int)w->refl[i].state == s);
	evbuffer_add_printf(b, "# HELP aether_kubernetes_watch_age_seconds since "
			    "the last event or list of each watch (-1: none yet)\n"
			    "# TYPE aether_kubernetes_watch_age_seconds gauge\n");
	for (int i = 0; i < R_MAX; i++)
		evbuffer_add_printf(b, "aether_kubernetes_watch_age_seconds{kind=\"%s\"} %lld\n",
				    w->refl[i].kind, w->refl[i].synced ?
				    (long long)(now.tv_sec - w->refl[i].last_event) : -1LL);
	evbuffer_add_printf(b, "# HELP aether_kubernetes_relists_total full lists "
			    "(first, after 410 Gone or errors)\n"
			    "# TYPE aether_kubernetes_relists_total counter\n");
	for (int i = 0; i < R_MAX; i++)
		evbuffer_add_printf(b, "aether_kubernetes_relists_total{kind=\"%s\"} %llu\n",
				    w->refl[i].kind, (unsigned long long)w->refl[i].relists);
	pthread_mutex_unlock(&w->lock);
	evbuffer_add_printf(b, "# HELP aether_kubernetes_lease_held 1 while this "
			    "agent holds the Lease and writes Service status\n"
			    "# TYPE aether_kubernetes_lease_held gauge\n"
			    "aether_kubernetes_lease_held %d\n",
			    w->status && k8s_status_leading(w->status));
	evbuffer_add_printf(b, "# HELP aether_kubernetes_rejected_total objects "
			    "left out of the document, by reason\n"
			    "# TYPE aether_kubernetes_rejected_total counter\n");
	for (int i = 0; i < AETH_K8S_REASON_MAX; i++)
		evbuffer_add_printf(b, "aether_kubernetes_rejected_total{reason=\"%s\"} %llu\n",
				    aeth_k8s_reason_names[i],
				    (unsigned long long)w->rejected[i]);
}
