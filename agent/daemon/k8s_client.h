/* Talking to the Kubernetes API server over HTTPS (libcurl): where it is and
 * who we are (in-cluster service account or a kubeconfig), one request, or
 * a watch stream read event by event. Blocking: called from the watch's
 * threads, never from the event loop. */
#ifndef AETHER_K8S_CLIENT_H
#define AETHER_K8S_CLIENT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "error.h"

struct k8s_blob {
	char *data;
	size_t len;
};

struct k8s_creds {
	char server[512];		/* https://HOST:PORT, no trailing / */
	char ca_file[PATH_MAX];		/* or ca (PEM) */
	struct k8s_blob ca;
	char token_file[PATH_MAX];	/* re-read per request: tokens rotate */
	char *token;
	char cert_file[PATH_MAX], key_file[PATH_MAX];	/* or cert, key */
	struct k8s_blob cert, key;
	bool insecure;			/* insecure-skip-tls-verify */
	char ns[254];			/* our namespace (Lease, Events) */
};

/* The service account of the pod: KUBERNETES_SERVICE_HOST/_PORT and
 * /var/run/secrets/kubernetes.io/serviceaccount. 0 or -errno, why in msg. */
int k8s_creds_in_cluster(struct k8s_creds *c, struct aeth_error *err);
/* A kubeconfig (its current context), YAML as kubectl writes it or JSON.
 * 0 or -errno, why in msg. */
int k8s_creds_kubeconfig(const char *path, struct k8s_creds *c,
			 struct aeth_error *err);
void k8s_creds_free(struct k8s_creds *c);

struct k8s_resp {
	long status;		/* HTTP status, 0 when none came */
	char *body;		/* NUL-terminated */
	size_t len;
	char error[256];	/* transport error */
};

/* method path [body of ctype]; stop (may be NULL) aborts when set. Returns
 * 0 when a response came (any status), -EIO otherwise. */
int k8s_request(const struct k8s_creds *c, const char *method,
		const char *path, const char *ctype, const char *body,
		long timeout_s, volatile int *stop, struct k8s_resp *r);
void k8s_resp_free(struct k8s_resp *r);

/* A watch: each line of a 200 response is handed to fn as JSON (fn returns
 * non-zero to end the stream). r gets the status, and the body when it was
 * not 200. Returns as k8s_request. */
typedef int (*k8s_event_fn)(void *arg, json_t *event);
int k8s_stream(const struct k8s_creds *c, const char *path, long timeout_s,
	       volatile int *stop, k8s_event_fn fn, void *arg,
	       struct k8s_resp *r);

#endif /* AETHER_K8S_CLIENT_H */
