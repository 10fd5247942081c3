/* Kubernetes Services of type LoadBalancer -> services of the configuration
 * document (SPEC.md section 8). One pure function, used by
 * --render-kubernetes and by the watch. */
#ifndef AETHER_K8S_TRANSLATE_H
#define AETHER_K8S_TRANSLATE_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"

/* Why an object was left out: the reason label of
 * aether_kubernetes_rejected_total. */
enum aeth_k8s_reason {
	AETH_K8S_MALFORMED,	/* a field of the wrong type or value */
	AETH_K8S_BAD_CIDR,	/* spec.loadBalancerSourceRanges */
	AETH_K8S_PROTOCOL,	/* a port protocol other than TCP or UDP */
	AETH_K8S_BAD_ANNOTATION,	/* the rate-limit annotations */
	AETH_K8S_PORT_CLASH,	/* one port number twice in a Service */
	AETH_K8S_NAME_CLASH,	/* a service of the base document has the name */
	AETH_K8S_ADDRESS_CLASH,	/* the VIP is another service's */
	AETH_K8S_POOL_EXHAUSTED,	/* no free pool address of the family */
	AETH_K8S_INVALID,	/* the document's own limits refused it */
	AETH_K8S_REASON_MAX,
};

extern const char *const aeth_k8s_reason_names[AETH_K8S_REASON_MAX];

struct aeth_k8s_reject {
	char kind[16];		/* Service, EndpointSlice, Node */
	char object[512];	/* NAMESPACE/NAME, or NAME for a Node */
	char field[160];	/* spec.ports[1].protocol; "" when not one field */
	char message[320];
	enum aeth_k8s_reason reason;
};

/* A served Service and the VIP it got (for the status writer). */
struct aeth_k8s_assigned {
	char ns[254], name[254];
	char vip[48];
	bool from_status;	/* the VIP was already in status */
};

struct aeth_k8s_result {
	char *text;		/* the document, NUL-terminated, ends with \n */
	size_t len;
	struct aeth_k8s_reject *rejects;	/* in (kind, object) order */
	size_t n_rejects;
	struct aeth_k8s_assigned *assigned;	/* in (namespace, name) order */
	size_t n_assigned;
};

/* base: a configuration document with a "kubernetes" member; list: a
 * Kubernetes List of Services, EndpointSlices and Nodes (other kinds are
 * ignored). The result is the base document with one service per port of
 * every served Service appended; Services that cannot be used are left out
 * and listed in rejects. The same inputs give byte-identical text.
 * Returns 0, or -EINVAL when the base document is invalid or lacks
 * "kubernetes", or the list is not a List (err says where), or -ENOMEM. */
int aeth_k8s_translate(const char *base, size_t base_len, json_t *list,
		       struct aeth_k8s_result *out, struct aeth_error *err);
void aeth_k8s_result_free(struct aeth_k8s_result *r);

/* Watch mode: each Service left out keeps the services it had in prev (the
 * document applied before), as long as the result still validates, so a
 * bad edit does not take down what was serving. res->rejects still lists
 * it. prev NULL or not JSON: nothing kept. 0 or -ENOMEM. */
int aeth_k8s_keep_previous(struct aeth_k8s_result *res, const char *prev);

/* "Service default/web: spec.ports[1].protocol: SCTP is not supported" */
void aeth_k8s_reject_format(const struct aeth_k8s_reject *r, char *buf,
			    size_t len);

#endif /* AETHER_K8S_TRANSLATE_H */
