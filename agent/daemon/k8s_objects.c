/* Reading Services, EndpointSlices and Nodes out of a Kubernetes List.
 * Only the fields the translation uses are read, and each is checked:
 * unknown fields are ignored, as every API client must; a used field of
 * the wrong type or value rejects that object, named with the field. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_objects.h"

#define ANN_RATE "lb.aetherplatform.cloud/new-connections-per-second"
#define ANN_BURST "lb.aetherplatform.cloud/burst"
#define LABEL_SERVICE "kubernetes.io/service-name"

/* Where one object is being read, and whether it already failed. */
struct rd {
	struct k8s_rejects *rej;
	const char *kind;
	char object[512];
	bool failed;
	int err;		/* -ENOMEM */
};

void k8s_object_name(const char *ns, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", ns ? ns : "", ns && *ns ? "/" : "",
		 name ? name : "");
}

int k8s_reject(struct k8s_rejects *rej, enum aeth_k8s_reason reason,
	       const char *kind, const char *object, const char *field,
	       const char *fmt, ...)
{
	struct aeth_k8s_reject *r;
	va_list ap;

	if (rej->n == rej->cap) {
		size_t cap = rej->cap ? rej->cap * 2 : 8;
		void *v = realloc(rej->v, cap * sizeof(*rej->v));

		if (!v)
			return -ENOMEM;
		rej->v = v;
		rej->cap = cap;
	}
	r = &rej->v[rej->n++];
	memset(r, 0, sizeof(*r));
	r->reason = reason;
	snprintf(r->kind, sizeof(r->kind), "%s", kind);
	snprintf(r->object, sizeof(r->object), "%s", object);
	snprintf(r->field, sizeof(r->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
	return 0;
}

__attribute__((format(printf, 4, 5)))
static void bad(struct rd *r, enum aeth_k8s_reason reason, const char *field,
		const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	if (r->failed)
		return;
	r->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (k8s_reject(r->rej, reason, r->kind, r->object, field, "%s", msg))
		r->err = -ENOMEM;
}

static const char *type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	default: return "true or false";
	}
}

/* obj[key] when of type want (JSON_TRUE stands for either boolean); NULL
 * when absent or null, which the API treats alike. */
static json_t *get(struct rd *r, json_t *obj, const char *parent,
		   const char *key, json_type want)
{
	char path[160];
	json_t *v;

	if (!obj || r->failed)
		return NULL;
	v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return NULL;
	if (json_typeof(v) == want ||
	    (want == JSON_TRUE && json_is_boolean(v)))
		return v;
	snprintf(path, sizeof(path), "%s%s%s", parent, *parent ? "." : "", key);
	bad(r, AETH_K8S_MALFORMED, path, "must be %s", type_name(want));
	return NULL;
}

static const char *get_str(struct rd *r, json_t *obj, const char *parent,
			   const char *key)
{
	json_t *v = get(r, obj, parent, key, JSON_STRING);

	return v ? json_string_value(v) : NULL;
}

static bool get_bool(struct rd *r, json_t *obj, const char *parent,
		     const char *key, bool def)
{
	json_t *v = get(r, obj, parent, key, JSON_TRUE);

	return v ? json_is_true(v) : def;
}

/* metadata.name (and metadata.namespace when namespaced) into r->object. */
static int read_meta(struct rd *r, json_t *item, bool namespaced,
		     char *ns, char *name)
{
	json_t *meta = get(r, item, "", "metadata", JSON_OBJECT);
	const char *n = get_str(r, meta, "metadata", "name");
	const char *s = namespaced ? get_str(r, meta, "metadata", "namespace") :
				     "";

	k8s_object_name(s, n, r->object, sizeof(r->object));
	if (r->failed)
		return -1;
	if (!n || !*n || strlen(n) >= K8S_NAME_LEN)
		bad(r, AETH_K8S_MALFORMED, "metadata.name",
		    "must be 1 to %d characters", K8S_NAME_LEN - 1);
	else if (namespaced && (!s || !*s || strlen(s) >= K8S_NAME_LEN))
		bad(r, AETH_K8S_MALFORMED, "metadata.namespace",
		    "must be 1 to %d characters", K8S_NAME_LEN - 1);
	if (r->failed)
		return -1;
	strcpy(name, n);
	if (ns)
		strcpy(ns, s);
	return 0;
}

static int parse_ip(const char *s, struct aeth_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, &ip->addr.v4) == 1)
		ip->family = AETH_AF_INET;
	else if (inet_pton(AF_INET6, s, ip->addr.bytes) == 1)
		ip->family = AETH_AF_INET6;
	else
		return -EINVAL;
	return 0;
}

/* A CIDR as the API server accepts it in loadBalancerSourceRanges: spaces
 * around it and host bits allowed (kube-proxy masks them). */
static int parse_range(const char *s, struct aeth_cfg_cidr *c)
{
	char buf[64], *slash, *end;
	unsigned long plen;
	size_t len;
	unsigned int max;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (!slash || !isdigit((unsigned char)slash[1]))
		return -EINVAL;
	*slash = '\0';
	plen = strtoul(slash + 1, &end, 10);
	if (*end || parse_ip(buf, &c->ip))
		return -EINVAL;
	max = c->ip.family == AETH_AF_INET ? 32 : 128;
	if (plen > max)
		return -EINVAL;
	c->prefixlen = (uint8_t)plen;
	for (unsigned int bit = (unsigned int)plen; bit < max; bit++)
		c->ip.addr.bytes[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	return 0;
}

static int cidr_order(const void *pa, const void *pb)
{
	const struct aeth_cfg_cidr *a = pa, *b = pb;

	if (a->ip.family != b->ip.family)
		return a->ip.family < b->ip.family ? -1 : 1;
	int c = memcmp(a->ip.addr.bytes, b->ip.addr.bytes, 16);

	return c ? c : a->prefixlen - b->prefixlen;
}

static void read_ranges(struct rd *r, json_t *spec, struct k8s_service *s)
{
	json_t *list = get(r, spec, "spec", "loadBalancerSourceRanges",
			   JSON_ARRAY);
	char path[160];
	size_t i, n = 0;
	json_t *v;

	if (!list || !json_array_size(list))
		return;
	s->ranges = calloc(json_array_size(list), sizeof(*s->ranges));
	if (!s->ranges) {
		r->err = -ENOMEM;
		r->failed = true;
		return;
	}
	json_array_foreach(list, i, v) {
		snprintf(path, sizeof(path), "spec.loadBalancerSourceRanges[%zu]", i);
		if (!json_is_string(v))
			return bad(r, AETH_K8S_MALFORMED, path, "must be a string");
		if (parse_range(json_string_value(v), &s->ranges[i]))
			return bad(r, AETH_K8S_BAD_CIDR, path,
				   "not a CIDR: \"%s\"", json_string_value(v));
	}
	/* The document refuses duplicates; a repeated range changes nothing. */
	qsort(s->ranges, json_array_size(list), sizeof(*s->ranges), cidr_order);
	for (i = 0; i < json_array_size(list); i++)
		if (!n || cidr_order(&s->ranges[n - 1], &s->ranges[i]))
			s->ranges[n++] = s->ranges[i];
	s->n_ranges = n;
}

static void read_ports(struct rd *r, json_t *spec, struct k8s_service *s)
{
	json_t *list = get(r, spec, "spec", "ports", JSON_ARRAY), *v;
	char path[160];
	size_t i;

	if (!r->failed && (!list || !json_array_size(list)))
		return bad(r, AETH_K8S_MALFORMED, "spec.ports",
			   "a LoadBalancer Service needs at least one port");
	if (r->failed)
		return;
	s->ports = calloc(json_array_size(list), sizeof(*s->ports));
	if (!s->ports) {
		r->err = -ENOMEM;
		r->failed = true;
		return;
	}
	json_array_foreach(list, i, v) {
		struct k8s_port *p = &s->ports[i];
		const char *proto;
		json_t *port;

		snprintf(path, sizeof(path), "spec.ports[%zu]", i);
		if (!json_is_object(v))
			return bad(r, AETH_K8S_MALFORMED, path, "must be an object");
		port = get(r, v, path, "port", JSON_INTEGER);
		proto = get_str(r, v, path, "protocol");
		if (r->failed)
			return;
		snprintf(path, sizeof(path), "spec.ports[%zu].port", i);
		if (!port || json_integer_value(port) < 1 ||
		    json_integer_value(port) > 65535)
			return bad(r, AETH_K8S_MALFORMED, path,
				   "must be an integer from 1 to 65535");
		p->port = (uint16_t)json_integer_value(port);
		snprintf(path, sizeof(path), "spec.ports[%zu].protocol", i);
		if (!proto || !strcmp(proto, "TCP"))
			p->proto = IPPROTO_TCP;
		else if (!strcmp(proto, "UDP"))
			p->proto = IPPROTO_UDP;
		else if (!strcmp(proto, "SCTP"))
			return bad(r, AETH_K8S_PROTOCOL, path,
				   "SCTP is not supported (TCP or UDP)");
		else
			return bad(r, AETH_K8S_MALFORMED, path,
				   "must be TCP, UDP or SCTP");
		/* Each port is a service (k8s_translate.c names it); one
		 * number may carry both protocols, not one protocol twice
		 * (the API server refuses that too). */
		snprintf(path, sizeof(path), "spec.ports[%zu].port", i);
		for (size_t j = 0; j < i; j++)
			if (s->ports[j].port == p->port &&
			    s->ports[j].proto == p->proto)
				return bad(r, AETH_K8S_PORT_CLASH, path,
					   "port %u/%s is also spec.ports[%zu]",
					   p->port, p->proto == IPPROTO_TCP ?
					   "TCP" : "UDP", j);
		s->n_ports = i + 1;
	}
}

/* A positive decimal number in an annotation; 0 when absent. */
static uint32_t read_count(struct rd *r, json_t *ann, const char *key)
{
	char path[160], *end;
	const char *v;
	unsigned long n;

	snprintf(path, sizeof(path), "metadata.annotations[\"%s\"]", key);
	v = get_str(r, ann, "metadata.annotations", key);
	if (!v)
		return 0;
	if (!isdigit((unsigned char)*v) ||
	    (n = strtoul(v, &end, 10), *end) || n < 1 || n > AETH_CFG_MAX_RATE) {
		bad(r, AETH_K8S_BAD_ANNOTATION, path,
		    "must be a whole number from 1 to %u, not \"%s\"",
		    AETH_CFG_MAX_RATE, v);
		return 0;
	}
	return (uint32_t)n;
}

static void read_annotations(struct rd *r, json_t *meta, struct k8s_service *s)
{
	json_t *ann = get(r, meta, "metadata", "annotations", JSON_OBJECT);

	s->rate = read_count(r, ann, ANN_RATE);
	s->burst = read_count(r, ann, ANN_BURST);
	if (!r->failed && s->burst && !s->rate)
		bad(r, AETH_K8S_BAD_ANNOTATION,
		    "metadata.annotations[\"" ANN_BURST "\"]",
		    "needs " ANN_RATE);
}

static void read_ingress(struct rd *r, json_t *item, struct k8s_service *s)
{
	json_t *st = get(r, item, "", "status", JSON_OBJECT);
	json_t *lb = get(r, st, "status", "loadBalancer", JSON_OBJECT);
	json_t *list = get(r, lb, "status.loadBalancer", "ingress", JSON_ARRAY);
	char path[160];
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		const char *ip;

		snprintf(path, sizeof(path), "status.loadBalancer.ingress[%zu]", i);
		if (!json_is_object(v))
			return bad(r, AETH_K8S_MALFORMED, path, "must be an object");
		ip = get_str(r, v, path, "ip");
		if (r->failed)
			return;
		/* hostname-only entries are another provider's */
		if (!ip || s->n_ingress == K8S_MAX_INGRESS)
			continue;
		if (parse_ip(ip, &s->ingress[s->n_ingress]))
			return bad(r, AETH_K8S_MALFORMED, path,
				   "ip: not an IP address: \"%s\"", ip);
		s->n_ingress++;
	}
}

static void read_family(struct rd *r, json_t *spec, struct k8s_service *s)
{
	json_t *fams = get(r, spec, "spec", "ipFamilies", JSON_ARRAY);
	json_t *first = fams ? json_array_get(fams, 0) : NULL;
	const char *cip = get_str(r, spec, "spec", "clusterIP");
	struct aeth_ip ip;

	s->family = AETH_AF_INET;
	if (first) {
		const char *f = json_is_string(first) ?
				json_string_value(first) : "";

		if (!strcmp(f, "IPv6"))
			s->family = AETH_AF_INET6;
		else if (strcmp(f, "IPv4"))
			bad(r, AETH_K8S_MALFORMED, "spec.ipFamilies[0]",
			    "must be IPv4 or IPv6");
	} else if (cip && !parse_ip(cip, &ip)) {
		/* objects written before dual-stack have only the cluster IP */
		s->family = ip.family;
	}
}

static int read_service(struct rd *r, json_t *item,
			const struct aeth_cfg_kubernetes *k,
			struct k8s_service *s)
{
	json_t *spec, *meta;
	const char *type, *cls, *etp;

	if (read_meta(r, item, true, s->ns, s->name))
		return -1;
	meta = json_object_get(item, "metadata");
	spec = get(r, item, "", "spec", JSON_OBJECT);
	type = get_str(r, spec, "spec", "type");
	cls = get_str(r, spec, "spec", "loadBalancerClass");
	if (r->failed || !type || strcmp(type, "LoadBalancer"))
		return r->failed ? -1 : 0;
	if (cls ? strcmp(cls, k->lb_class) != 0 : !k->default_class)
		return 0;
	s->served = true;
	/* first, so a Service rejected for another field keeps its VIP */
	read_ingress(r, item, s);
	read_family(r, spec, s);
	read_ports(r, spec, s);
	read_ranges(r, spec, s);
	read_annotations(r, meta, s);
	etp = get_str(r, spec, "spec", "externalTrafficPolicy");
	if (!r->failed && etp && strcmp(etp, "Cluster") && strcmp(etp, "Local"))
		bad(r, AETH_K8S_MALFORMED, "spec.externalTrafficPolicy",
		    "must be Cluster or Local");
	s->local = etp && !strcmp(etp, "Local");
	return r->failed ? -1 : 0;
}

static void read_endpoint(struct rd *r, json_t *v, const char *path,
			  struct k8s_endpoint *ep)
{
	json_t *addrs = get(r, v, path, "addresses", JSON_ARRAY);
	json_t *cond = get(r, v, path, "conditions", JSON_OBJECT);
	json_t *ref = get(r, v, path, "targetRef", JSON_OBJECT);
	const char *node = get_str(r, v, path, "nodeName");
	json_t *a0 = addrs ? json_array_get(addrs, 0) : NULL;
	char p[200];
	const char *uid, *name;

	snprintf(p, sizeof(p), "%s.conditions", path);
	/* API: a ready condition that is not set reads as ready */
	ep->ready = get_bool(r, cond, p, "ready", true);
	ep->serving = get_bool(r, cond, p, "serving", ep->ready);
	ep->terminating = get_bool(r, cond, p, "terminating", false);
	snprintf(p, sizeof(p), "%s.targetRef", path);
	uid = get_str(r, ref, p, "uid");
	name = get_str(r, ref, p, "name");
	if (r->failed)
		return;
	snprintf(p, sizeof(p), "%s.addresses", path);
	if (!a0 || !json_is_string(a0))
		return bad(r, AETH_K8S_MALFORMED, p,
			   "must hold at least one address");
	snprintf(ep->key, sizeof(ep->key), "%s", uid ? uid : name ? name :
		 json_string_value(a0));
	snprintf(ep->node, sizeof(ep->node), "%s", node ? node : "");
}

static int read_slice(struct rd *r, json_t *item, struct k8s_slice *sl)
{
	json_t *meta, *labels, *list, *v;
	const char *svc, *type;
	char path[160];
	size_t i;

	if (read_meta(r, item, true, sl->ns, sl->name))
		return -1;
	meta = json_object_get(item, "metadata");
	labels = get(r, meta, "metadata", "labels", JSON_OBJECT);
	svc = get_str(r, labels, "metadata.labels", LABEL_SERVICE);
	type = get_str(r, item, "", "addressType");
	list = get(r, item, "", "endpoints", JSON_ARRAY);
	if (r->failed)
		return -1;
	/* Not a Service's slice, or names rather than addresses. */
	if (!svc || strlen(svc) >= sizeof(sl->service) ||
	    (type && !strcmp(type, "FQDN")))
		return 0;
	strcpy(sl->service, svc);
	if (!list || !json_array_size(list))
		return 0;
	sl->eps = calloc(json_array_size(list), sizeof(*sl->eps));
	if (!sl->eps)
		return r->err = -ENOMEM;
	json_array_foreach(list, i, v) {
		snprintf(path, sizeof(path), "endpoints[%zu]", i);
		if (!json_is_object(v))
			bad(r, AETH_K8S_MALFORMED, path, "must be an object");
		else
			read_endpoint(r, v, path, &sl->eps[i]);
		if (r->failed)
			return -1;
		sl->n_eps = i + 1;
	}
	return 0;
}

static int read_node(struct rd *r, json_t *item, struct k8s_node *n)
{
	json_t *st, *conds, *addrs, *v;
	char path[160];
	size_t i;

	if (read_meta(r, item, false, NULL, n->name))
		return -1;
	st = get(r, item, "", "status", JSON_OBJECT);
	conds = get(r, st, "status", "conditions", JSON_ARRAY);
	addrs = get(r, st, "status", "addresses", JSON_ARRAY);
	json_array_foreach(conds, i, v) {
		const char *type, *status;

		snprintf(path, sizeof(path), "status.conditions[%zu]", i);
		if (!json_is_object(v))
			bad(r, AETH_K8S_MALFORMED, path, "must be an object");
		type = get_str(r, v, path, "type");
		status = get_str(r, v, path, "status");
		if (!r->failed && type && !strcmp(type, "Ready"))
			n->ready = status && !strcmp(status, "True");
	}
	json_array_foreach(addrs, i, v) {
		const char *type, *addr;
		struct aeth_ip ip;

		snprintf(path, sizeof(path), "status.addresses[%zu]", i);
		if (!json_is_object(v))
			bad(r, AETH_K8S_MALFORMED, path, "must be an object");
		type = get_str(r, v, path, "type");
		addr = get_str(r, v, path, "address");
		if (r->failed)
			return -1;
		if (!type || strcmp(type, "InternalIP"))
			continue;
		if (!addr || parse_ip(addr, &ip)) {
			bad(r, AETH_K8S_MALFORMED, path,
			    "address: not an IP address: \"%s\"", addr ? addr : "");
			return -1;
		}
		if (ip.family == AETH_AF_INET && !n->v4.family)
			n->v4 = ip;
		if (ip.family == AETH_AF_INET6 && !n->v6.family)
			n->v6 = ip;
	}
	return r->failed ? -1 : 0;
}

static int svc_order(const void *pa, const void *pb)
{
	const struct k8s_service *a = pa, *b = pb;
	int c = strcmp(a->ns, b->ns);

	return c ? c : strcmp(a->name, b->name);
}

static int slice_order(const void *pa, const void *pb)
{
	const struct k8s_slice *a = pa, *b = pb;
	int c = strcmp(a->ns, b->ns);

	return c ? c : strcmp(a->name, b->name);
}

static int node_order(const void *pa, const void *pb)
{
	const struct k8s_node *a = pa, *b = pb;

	return strcmp(a->name, b->name);
}

struct kind {
	const char *name, *api;
};

static const struct kind kinds[] = {
	{ "Service", "v1" },
	{ "EndpointSlice", "discovery.k8s.io/v1" },
	{ "Node", "v1" },
};

/* Which of kinds[] item is, -1 for another kind (ignored), -2 when it
 * cannot be told (recorded). */
static int item_kind(json_t *item, size_t i, struct k8s_rejects *rej)
{
	const char *kind = json_string_value(json_object_get(item, "kind"));
	const char *api = json_string_value(json_object_get(item, "apiVersion"));
	char where[32];

	snprintf(where, sizeof(where), "items[%zu]", i);
	if (!json_is_object(item) || !kind || !api)
		return k8s_reject(rej, AETH_K8S_MALFORMED, "", where, "",
				  "must be an object with kind and apiVersion") ?: -2;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		if (strcmp(kind, kinds[k].name))
			continue;
		if (strcmp(api, kinds[k].api))
			return k8s_reject(rej, AETH_K8S_MALFORMED, kind, where,
					  "apiVersion", "must be %s, not %s",
					  kinds[k].api, api) ?: -2;
		return (int)k;
	}
	return -1;
}

static int read_item(json_t *item, size_t i, const struct aeth_cfg_kubernetes *k,
		     struct k8s_objects *o, struct k8s_rejects *rej)
{
	struct rd r = { .rej = rej };
	int kind = item_kind(item, i, rej);

	if (kind < 0)
		return kind == -ENOMEM ? kind : 0;
	r.kind = kinds[kind].name;
	if (kind == 0) {
		struct k8s_service *s = &o->svcs[o->n_svcs];

		/* a Service that is not ours is left alone, whatever it holds */
		if (read_service(&r, item, k, s) && !s->name[0])
			return r.err;
		s->rejected = r.failed;
		if (s->served)
			o->n_svcs++;
		else
			free(s->ports), free(s->ranges), memset(s, 0, sizeof(*s));
	} else if (kind == 1) {
		struct k8s_slice *sl = &o->slices[o->n_slices];

		read_slice(&r, item, sl);
		sl->rejected = r.failed;
		if (sl->name[0])
			o->n_slices++;
		else
			free(sl->eps), memset(sl, 0, sizeof(*sl));
	} else if (!read_node(&r, item, &o->nodes[o->n_nodes])) {
		o->n_nodes++;
	} else {
		memset(&o->nodes[o->n_nodes], 0, sizeof(o->nodes[0]));
	}
	return r.err;
}

/* A List never holds one object twice; if it does, the later is refused. */
static int refuse_duplicates(struct k8s_objects *o, struct k8s_rejects *rej)
{
	char name[512];
	size_t i, n = 0;
	int ret = 0;

	for (i = 1; i < o->n_svcs && !ret; i++)
		if (!svc_order(&o->svcs[i - 1], &o->svcs[i])) {
			o->svcs[i].rejected = true;
			k8s_object_name(o->svcs[i].ns, o->svcs[i].name, name, sizeof(name));
			ret = k8s_reject(rej, AETH_K8S_MALFORMED, "Service", name,
					 "", "listed twice");
		}
	for (i = 1; i < o->n_slices && !ret; i++)
		if (!slice_order(&o->slices[i - 1], &o->slices[i])) {
			o->slices[i].rejected = true;
			k8s_object_name(o->slices[i].ns, o->slices[i].name, name, sizeof(name));
			ret = k8s_reject(rej, AETH_K8S_MALFORMED, "EndpointSlice",
					 name, "", "listed twice");
		}
	for (i = 0; i < o->n_nodes && !ret; i++) {
		if (n && !node_order(&o->nodes[n - 1], &o->nodes[i]))
			ret = k8s_reject(rej, AETH_K8S_MALFORMED, "Node",
					 o->nodes[i].name, "", "listed twice");
		else
			o->nodes[n++] = o->nodes[i];
	}
	if (!ret)
		o->n_nodes = n;
	return ret;
}

int k8s_objects_read(json_t *list, const struct aeth_cfg_kubernetes *k,
		     struct k8s_objects *out, struct k8s_rejects *rej,
		     struct aeth_error *err)
{
	json_t *items = json_object_get(list, "items"), *item;
	const char *kind = json_string_value(json_object_get(list, "kind"));
	size_t i, n;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(list) || !kind || !strstr(kind, "List") ||
	    !json_is_array(items)) {
		snprintf(err->path, sizeof(err->path), "objects");
		snprintf(err->message, sizeof(err->message),
			 "not a Kubernetes List (kind List and an items array)");
		return -EINVAL;
	}
	n = json_array_size(items);
	out->svcs = calloc(n + 1, sizeof(*out->svcs));
	out->slices = calloc(n + 1, sizeof(*out->slices));
	out->nodes = calloc(n + 1, sizeof(*out->nodes));
	if (!out->svcs || !out->slices || !out->nodes)
		ret = -ENOMEM;
	json_array_foreach(items, i, item) {
		if (ret)
			break;
		ret = read_item(item, i, k, out, rej);
	}
	qsort(out->svcs, out->n_svcs, sizeof(*out->svcs), svc_order);
	qsort(out->slices, out->n_slices, sizeof(*out->slices), slice_order);
	qsort(out->nodes, out->n_nodes, sizeof(*out->nodes), node_order);
	if (!ret)
		ret = refuse_duplicates(out, rej);
	if (ret)
		k8s_objects_free(out);
	return ret;
}

void k8s_objects_free(struct k8s_objects *o)
{
	for (size_t i = 0; i < o->n_svcs; i++) {
		free(o->svcs[i].ports);
		free(o->svcs[i].ranges);
	}
	for (size_t i = 0; i < o->n_slices; i++)
		free(o->slices[i].eps);
	free(o->svcs);
	free(o->slices);
	free(o->nodes);
	memset(o, 0, sizeof(*o));
}
