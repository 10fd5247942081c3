/* The status writer of --kubernetes: the agent holding the Lease
 * (coordination.k8s.io/v1, renewed, taken over when it expires) writes each
 * served Service's status.loadBalancer.ingress and an Event for each
 * Service left out, and takes its VIP out of the status of a Service it
 * served that is no longer ours. The others only read. Runs in its own
 * thread. */
#ifndef AETHER_K8S_STATUS_H
#define AETHER_K8S_STATUS_H

#include <stdbool.h>

#include "k8s_client.h"
#include "k8s_translate.h"

#define K8S_LEASE_NAME "aether-lb-status"
#define K8S_LEASE_SECONDS 15
#define K8S_RENEW_MS 2000

struct k8s_status;

/* Identity: $NODE_NAME, else hostname:pid. NULL when it cannot start (the
 * agent then only reads). */
struct k8s_status *k8s_status_start(const struct k8s_creds *creds,
				    volatile int *stop);
/* The latest translation (copied): what to write while leading. */
void k8s_status_update(struct k8s_status *st, const struct aeth_k8s_result *res);
/* Whether this agent held the Lease at its last renewal. */
bool k8s_status_leading(struct k8s_status *st);
/* *stop must be set first. */
void k8s_status_stop(struct k8s_status *st);

#endif /* AETHER_K8S_STATUS_H */
