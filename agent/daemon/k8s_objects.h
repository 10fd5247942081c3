/* The parts of Services, EndpointSlices and Nodes the translation uses, read
 * from a Kubernetes List with every used field checked. Internal to the
 * translation (k8s_translate.c). */
#ifndef AETHER_K8S_OBJECTS_H
#define AETHER_K8S_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "k8s_translate.h"

#define K8S_NAME_LEN 254	/* DNS subdomain names, 253 characters */
#define K8S_MAX_INGRESS 8

struct k8s_port {
	uint16_t port;
	uint8_t proto;		/* IPPROTO_TCP or IPPROTO_UDP */
};

struct k8s_service {
	char ns[K8S_NAME_LEN], name[K8S_NAME_LEN];
	bool served;		/* type LoadBalancer of our class */
	bool rejected;
	uint8_t family;		/* spec.ipFamilies[0] */
	bool local;		/* externalTrafficPolicy: Local */
	struct k8s_port *ports;
	size_t n_ports;
	struct aeth_cfg_cidr *ranges;	/* masked, unique, sorted */
	size_t n_ranges;
	uint32_t rate, burst;	/* annotations; 0 = absent */
	struct aeth_ip ingress[K8S_MAX_INGRESS];
	size_t n_ingress;
};

/* One endpoint, counted once per node even when it is in several slices
 * (one per address family, or during a slice handover). */
struct k8s_endpoint {
	char key[2 * K8S_NAME_LEN];	/* targetRef or first address */
	char node[K8S_NAME_LEN];
	bool ready, serving, terminating;
};

struct k8s_slice {
	char ns[K8S_NAME_LEN], name[K8S_NAME_LEN];
	char service[K8S_NAME_LEN];	/* label kubernetes.io/service-name */
	bool rejected;
	struct k8s_endpoint *eps;
	size_t n_eps;
};

struct k8s_node {
	char name[K8S_NAME_LEN];
	bool ready;
	struct aeth_ip v4, v6;	/* first InternalIP of each family */
};

struct k8s_rejects {
	struct aeth_k8s_reject *v;
	size_t n, cap;
};

/* Every array is sorted by (namespace, name). */
struct k8s_objects {
	struct k8s_service *svcs;
	size_t n_svcs;
	struct k8s_slice *slices;
	size_t n_slices;
	struct k8s_node *nodes;
	size_t n_nodes;
};

/* Reads list against the class settings of k; an object that cannot be
 * used is recorded in rej (and marked rejected or dropped). Returns 0,
 * -EINVAL when list is not a List (err filled), or -ENOMEM. */
int k8s_objects_read(json_t *list, const struct aeth_cfg_kubernetes *k,
		     struct k8s_objects *out, struct k8s_rejects *rej,
		     struct aeth_error *err);
void k8s_objects_free(struct k8s_objects *o);

/* Appends a rejection; returns -ENOMEM when it cannot. */
__attribute__((format(printf, 6, 7)))
int k8s_reject(struct k8s_rejects *rej, enum aeth_k8s_reason reason,
	       const char *kind, const char *object, const char *field,
	       const char *fmt, ...);

/* "ns/name" into buf */
void k8s_object_name(const char *ns, const char *name, char *buf, size_t len);

#endif /* AETHER_K8S_OBJECTS_H */
