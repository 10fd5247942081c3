/* aether-agent --kubernetes: follow Services, EndpointSlices and Nodes and
 * apply the translation of the base document (SPEC.md section 8). */
#ifndef AETHER_K8S_WATCH_H
#define AETHER_K8S_WATCH_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct aeth_agent;
struct aeth_k8s_watch;

#define AETH_K8S_BATCH_MS 100	/* at most one apply per this */

/* kubeconfig NULL: in-cluster credentials. base is the document of
 * --config; it is copied. NULL with a message logged on failure. */
struct aeth_k8s_watch *aeth_k8s_watch_start(struct event_base *base,
					    struct aeth_agent *a,
					    const char *kubeconfig,
					    const char *text, size_t len);
/* A new base document (the file changed): translate again. */
void aeth_k8s_watch_set_base(struct aeth_k8s_watch *w, const char *text,
			     size_t len);
void aeth_k8s_watch_stop(struct aeth_k8s_watch *w);

/* aether_kubernetes_* metrics (a metrics source). */
void aeth_k8s_watch_metrics(struct evbuffer *b, void *w);

#endif /* AETHER_K8S_WATCH_H */
