/* One kind of object kept equal to the API server's: list, then watch from
 * the list's resourceVersion (bookmarks move it on), list again on 410
 * Gone, reconnect with backoff after errors. Runs in its own thread. */
#ifndef AETHER_K8S_REFLECTOR_H
#define AETHER_K8S_REFLECTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "k8s_client.h"

enum k8s_watch_state {
	K8S_STATE_CONNECTING = 0,	/* listing, nothing yet */
	K8S_STATE_WATCHING,		/* a watch stream is open */
	K8S_STATE_BACKOFF,		/* waiting after an error */
	K8S_STATE_MAX,
};

extern const char *const k8s_state_names[K8S_STATE_MAX];

struct k8s_reflector {
	const char *kind, *api_version, *path;	/* "/api/v1/services" */
	const struct k8s_creds *creds;
	pthread_mutex_t *lock;		/* guards cache, synced, state */
	void (*changed)(void *arg);	/* called (from the thread) on change */
	void *arg;
	volatile int *stop;

	json_t *cache;			/* "ns/name" -> object (kind set) */
	bool synced;			/* listed at least once */
	enum k8s_watch_state state;
	time_t last_event;		/* monotonic seconds of the last event */
	uint64_t relists, errors;
	char rv[64];			/* resume from here; "" = list */
	bool stream_failed;		/* the open watch sent an ERROR */
	uint64_t stream_events;		/* events of the open watch */
	pthread_t thread;
	bool started;
};

int k8s_reflector_start(struct k8s_reflector *r);
/* *r->stop must be set first. */
void k8s_reflector_join(struct k8s_reflector *r);

#endif /* AETHER_K8S_REFLECTOR_H */
