/* Lease, Service status and Events (see k8s_status.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "k8s_status.h"
#include "log.h"

#define MAX_REPORTED 4096	/* Events remembered, so each is sent once */

struct k8s_status {
	const struct k8s_creds *creds;
	volatile int *stop;
	char identity[300];
	pthread_t thread;
	pthread_mutex_t lock;
	bool leading;
	/* the latest translation, guarded by lock */
	struct aeth_k8s_assigned *assigned;
	size_t n_assigned;
	struct aeth_k8s_reject *rejects;
	size_t n_rejects;
	char **reported;		/* "kind object message" sent as Events */
	size_t n_reported;
	/* Services served with a VIP while this agent led (its thread's
	 * own): the status of one that leaves is cleared */
	struct aeth_k8s_assigned *served;
	size_t n_served;
};

static void micro_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
}

static time_t parse_time(const char *s)
{
	struct tm tm = { 0 };

	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

static void lease_path(const struct k8s_status *st, char *buf, size_t len,
		       bool item)
{
	snprintf(buf, len, "/apis/coordination.k8s.io/v1/namespaces/%s/leases%s%s",
		 st->creds->ns, item ? "/" : "", item ? K8S_LEASE_NAME : "");
}

/* Create the Lease, or write it back (rv) as ours. true when we hold it. */
static bool lease_write(struct k8s_status *st, const char *rv, json_t *spec,
			bool takeover)
{
	char path[512], now[40];
	struct k8s_resp r;
	json_t *doc;
	char *body;
	bool ok;

	micro_time(time(NULL), now, sizeof(now));
	spec = spec ? json_deep_copy(spec) : json_object();
	if (takeover || !rv) {
		json_object_set_new(spec, "acquireTime", json_string(now));
		json_object_set_new(spec, "leaseTransitions", json_integer(
			json_integer_value(json_object_get(spec, "leaseTransitions")) +
			(rv ? 1 : 0)));
	}
	json_object_set_new(spec, "holderIdentity", json_string(st->identity));
	json_object_set_new(spec, "leaseDurationSeconds",
			    json_integer(K8S_LEASE_SECONDS));
	json_object_set_new(spec, "renewTime", json_string(now));
	doc = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion",
			"coordination.k8s.io/v1", "kind", "Lease", "metadata",
			"name", K8S_LEASE_NAME, "namespace", st->creds->ns,
			"spec", spec);
	if (rv)
		json_object_set_new(json_object_get(doc, "metadata"),
				    "resourceVersion", json_string(rv));
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	lease_path(st, path, sizeof(path), rv != NULL);
	ok = !k8s_request(st->creds, rv ? "PUT" : "POST", path,
			  "application/json", body, 10, st->stop, &r) &&
	     (r.status == 200 || r.status == 201);
	if (takeover && ok)
		log_info("kubernetes: took over the Lease %s/%s", st->creds->ns,
			 K8S_LEASE_NAME);
	k8s_resp_free(&r);
	free(body);
	return ok;
}

/* Renew our Lease, take it over when it expired, or create it. */
static bool lease_round(struct k8s_status *st)
{
	char path[512];
	struct k8s_resp r;
	json_t *doc, *spec;
	const char *holder, *rv;
	time_t renew;
	long dur;
	bool ours = false;

	lease_path(st, path, sizeof(path), true);
	if (k8s_request(st->creds, "GET", path, NULL, NULL, 10, st->stop, &r))
		return false;
	if (r.status == 404) {
		k8s_resp_free(&r);
		return lease_write(st, NULL, NULL, false);
	}
	doc = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
	k8s_resp_free(&r);
	spec = json_object_get(doc, "spec");
	holder = json_string_value(json_object_get(spec, "holderIdentity"));
	rv = json_string_value(json_object_get(json_object_get(doc, "metadata"),
					       "resourceVersion"));
	renew = parse_time(json_string_value(json_object_get(spec, "renewTime")));
	dur = (long)json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
	if (doc && rv) {
		if (holder && !strcmp(holder, st->identity))
			ours = lease_write(st, rv, spec, false);
		else if (!holder || !*holder || time(NULL) > renew + dur)
			ours = lease_write(st, rv, spec, true);
	}
	json_decref(doc);
	return ours;
}

/* status.loadBalancer.ingress of one Service, as a JSON merge patch. */
static void patch_status(struct k8s_status *st, const struct aeth_k8s_assigned *a)
{
	char path[700], body[256];
	struct k8s_resp r;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s/status",
		 a->ns, a->name);
	snprintf(body, sizeof(body), "{\"status\":{\"loadBalancer\":{\"ingress\":"
		 "[{\"ip\":\"%s\",\"ipMode\":\"VIP\"}]}}}", a->vip);
	if (k8s_request(st->creds, "PATCH", path, "application/merge-patch+json",
			body, 10, st->stop, &r) || r.status != 200)
		log_warn("kubernetes: writing the status of %s/%s: HTTP %ld %s",
			 a->ns, a->name, r.status, r.error);
	else
		log_info("kubernetes: %s/%s has VIP %s", a->ns, a->name, a->vip);
	k8s_resp_free(&r);
}

static bool reported(struct k8s_status *st, const char *key)
{
	for (size_t i = 0; i < st->n_reported; i++)
		if (!strcmp(st->reported[i], key))
			return true;
	return false;
}

/* A Warning Event on the Service that was left out. */
static void post_event(struct k8s_status *st, const struct aeth_k8s_reject *rj)
{
	char ns[254], path[512], now[40], msg[1200], name[400];
	const char *slash = strchr(rj->object, '/');
	struct k8s_resp r;
	json_t *ev;
	char *body;

	if (!slash || (size_t)(slash - rj->object) >= sizeof(ns))
		return;
	snprintf(ns, sizeof(ns), "%.*s", (int)(slash - rj->object), rj->object);
	micro_time(time(NULL), now, sizeof(now));
	now[19] = 'Z';		/* Event timestamps are whole seconds */
	now[20] = '\0';
	aeth_k8s_reject_format(rj, msg, sizeof(msg));
	snprintf(name, sizeof(name), "%s.%llx", slash + 1,
		 (unsigned long long)time(NULL) * 1000003ull + st->n_reported);
	ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s,s:s},s:s,s:s,s:s,"
		       "s:{s:s},s:s,s:s,s:i}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name", name,
		       "namespace", ns, "involvedObject", "apiVersion", "v1",
		       "kind", rj->kind, "namespace", ns, "name", slash + 1,
		       "reason", rj->reason == AETH_K8S_POOL_EXHAUSTED ?
		       "PoolExhausted" : "LoadBalancerRejected",
		       "message", msg, "type", "Warning",
		       "source", "component", "aether-agent",
		       "firstTimestamp", now, "lastTimestamp", now, "count", 1);
	body = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
	if (k8s_request(st->creds, "POST", path, "application/json", body, 10,
			st->stop, &r) || r.status != 201)
		log_warn("kubernetes: Event for %s: HTTP %ld %s", rj->object,
			 r.status, r.error);
	k8s_resp_free(&r);
	free(body);
}

static bool assigned_has(const struct aeth_k8s_assigned *as, size_t n,
			 const struct aeth_k8s_assigned *a)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(as[i].ns, a->ns) && !strcmp(as[i].name, a->name))
			return true;
	return false;
}

static bool rejected(const struct aeth_k8s_reject *rj, size_t n,
		     const struct aeth_k8s_assigned *a)
{
	char object[520];

	snprintf(object, sizeof(object), "%s/%s", a->ns, a->name);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(rj[i].kind, "Service") && !strcmp(rj[i].object, object))
			return true;
	return false;
}

/* Take VIP a->vip out of the status of Service a, which we served and no
 * longer serve (it left the class: the agent's class changed; a Service
 * that stopped being a LoadBalancer has its status wiped by the API server
 * itself). Only while the status still holds that VIP, and only the
 * version read (a resourceVersion precondition): another controller that
 * took the Service over meanwhile keeps what it wrote. Returns true when
 * done (cleared, the Service gone, the VIP no longer there, or refused for
 * good), false to try again next round (a conflict, no answer). */
static bool clear_left(struct k8s_status *st, const struct aeth_k8s_assigned *a)
{
	char path[700];
	const char *rv;
	struct k8s_resp r;
	json_t *doc, *ingress, *keep, *patch, *item;
	size_t i;
	bool held = false, done;
	char *body;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s",
		 a->ns, a->name);
	if (k8s_request(st->creds, "GET", path, NULL, NULL, 10, st->stop, &r))
		return false;
	if (r.status != 200) {
		done = r.status == 404;
		k8s_resp_free(&r);
		return done;
	}
	doc = json_loadb(r.body, r.len, 0, NULL);
	k8s_resp_free(&r);
	rv = json_string_value(json_object_get(json_object_get(doc, "metadata"),
					       "resourceVersion"));
	ingress = json_object_get(json_object_get(json_object_get(doc, "status"),
						  "loadBalancer"), "ingress");
	keep = json_array();
	json_array_foreach(ingress, i, item) {
		if (!strcmp(json_string_value(json_object_get(item, "ip")) ?: "",
			    a->vip))
			held = true;
		else
			json_array_append(keep, item);
	}
	if (!held || !rv) {
		json_decref(keep);
		json_decref(doc);
		return true;
	}
	patch = json_pack("{s:{s:s},s:{s:{s:o}}}", "metadata", "resourceVersion",
			  rv, "status", "loadBalancer", "ingress",
			  json_array_size(keep) ? keep : json_null());
	if (!json_array_size(keep))
		json_decref(keep);
	json_decref(doc);
	body = json_dumps(patch, JSON_COMPACT);
	json_decref(patch);
	strcat(path, "/status");
	done = true;
	if (!body || k8s_request(st->creds, "PATCH", path,
				 "application/merge-patch+json", body, 10,
				 st->stop, &r)) {
		done = false;
	} else if (r.status == 200) {
		log_info("kubernetes: %s/%s is no longer ours: VIP %s taken out "
			 "of its status", a->ns, a->name, a->vip);
	} else {
		done = r.status != 409;	/* a conflict: read it again */
		if (done)
			log_warn("kubernetes: clearing the status of %s/%s: "
				 "HTTP %ld", a->ns, a->name, r.status);
	}
	if (body)
		k8s_resp_free(&r);
	free(body);
	return done;
}

/* The Services served before and no longer, neither served nor refused:
 * cleared (clear_left); then what is served now, and what could not be
 * cleared yet, is remembered for the next round. */
static void clear_round(struct k8s_status *st, const struct aeth_k8s_assigned *as,
			size_t na, const struct aeth_k8s_reject *rj, size_t nr)
{
	struct aeth_k8s_assigned *next = malloc((na + st->n_served + 1) *
						sizeof(*next));
	size_t n = 0;

	if (!next)
		return;
	for (size_t i = 0; i < st->n_served && !*st->stop; i++) {
		const struct aeth_k8s_assigned *a = &st->served[i];

		if (assigned_has(as, na, a) || rejected(rj, nr, a))
			continue;
		if (!clear_left(st, a))
			next[n++] = *a;
	}
	if (na)
		memcpy(next + n, as, na * sizeof(*as));
	free(st->served);
	st->served = next;
	st->n_served = n + na;
}

/* Write what the latest translation says, as the Lease holder. */
static void write_round(struct k8s_status *st)
{
	struct aeth_k8s_assigned *as;
	struct aeth_k8s_reject *rj;
	size_t na, nr;
	char key[1400];

	pthread_mutex_lock(&st->lock);
	na = st->n_assigned;
	nr = st->n_rejects;
	as = na ? malloc(na * sizeof(*as)) : NULL;
	rj = nr ? malloc(nr * sizeof(*rj)) : NULL;
	if (as)
		memcpy(as, st->assigned, na * sizeof(*as));
	if (rj)
		memcpy(rj, st->rejects, nr * sizeof(*rj));
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; as && i < na && !*st->stop; i++)
		if (!as[i].from_status)
			patch_status(st, &as[i]);
	if ((as || !na) && (rj || !nr))
		clear_round(st, as, na, rj, nr);
	for (size_t i = 0; rj && i < nr && !*st->stop; i++) {
		snprintf(key, sizeof(key), "%s %s %s", rj[i].kind, rj[i].object,
			 rj[i].message);
		if (!strcmp(rj[i].kind, "Service") && !reported(st, key) &&
		    st->n_reported < MAX_REPORTED) {
			post_event(st, &rj[i]);
			st->reported[st->n_reported++] = strdup(key);
		}
	}
	free(as);
	free(rj);
}

static void *run(void *arg)
{
	struct k8s_status *st = arg;

	while (!*st->stop) {
		bool lead = lease_round(st);

		pthread_mutex_lock(&st->lock);
		if (lead != st->leading)
			log_info("kubernetes: %s the status writer (%s)",
				 lead ? "now" : "no longer", st->identity);
		st->leading = lead;
		pthread_mutex_unlock(&st->lock);
		if (!lead) {
			/* a holder clears only what it served itself */
			free(st->served);
			st->served = NULL;
			st->n_served = 0;
		}
		if (lead)
			write_round(st);
		for (int ms = 0; ms < K8S_RENEW_MS && !*st->stop; ms += 50)
			usleep(50 * 1000);
	}
	return NULL;
}

struct k8s_status *k8s_status_start(const struct k8s_creds *creds,
				    volatile int *stop)
{
	struct k8s_status *st = calloc(1, sizeof(*st));
	const char *node = getenv("NODE_NAME");
	char host[256] = "";

	if (!st)
		return NULL;
	st->creds = creds;
	st->stop = stop;
	gethostname(host, sizeof(host) - 1);
	if (node && *node)
		snprintf(st->identity, sizeof(st->identity), "%s", node);
	else
		snprintf(st->identity, sizeof(st->identity), "%s:%d", host,
			 (int)getpid());
	st->reported = calloc(MAX_REPORTED, sizeof(*st->reported));
	pthread_mutex_init(&st->lock, NULL);
	if (!st->reported || pthread_create(&st->thread, NULL, run, st)) {
		pthread_mutex_destroy(&st->lock);
		free(st->reported);
		free(st);
		return NULL;
	}
	return st;
}

void k8s_status_update(struct k8s_status *st, const struct aeth_k8s_result *res)
{
	void *a = malloc((res->n_assigned + 1) * sizeof(*res->assigned));
	void *r = malloc((res->n_rejects + 1) * sizeof(*res->rejects));

	if (!a || !r) {
		free(a);
		free(r);
		return;
	}
	if (res->n_assigned)
		memcpy(a, res->assigned, res->n_assigned * sizeof(*res->assigned));
	if (res->n_rejects)
		memcpy(r, res->rejects, res->n_rejects * sizeof(*res->rejects));
	pthread_mutex_lock(&st->lock);
	free(st->assigned);
	free(st->rejects);
	st->assigned = a;
	st->n_assigned = res->n_assigned;
	st->rejects = r;
	st->n_rejects = res->n_rejects;
	pthread_mutex_unlock(&st->lock);
}

bool k8s_status_leading(struct k8s_status *st)
{
	bool l;

	pthread_mutex_lock(&st->lock);
	l = st->leading;
	pthread_mutex_unlock(&st->lock);
	return l;
}

void k8s_status_stop(struct k8s_status *st)
{
	if (!st)
		return;
	pthread_join(st->thread, NULL);
	for (size_t i = 0; i < st->n_reported; i++)
		free(st->reported[i]);
	free(st->reported);
	free(st->assigned);
	free(st->rejects);
	free(st->served);
	pthread_mutex_destroy(&st->lock);
	free(st);
}
