/* Kubernetes Services of type LoadBalancer -> services of the document
 * (SPEC.md section 8): VIPs from status or the pools, one service per
 * port, backends = nodes. Pure: the same base and objects give the same
 * bytes on every node, whatever order the objects came in. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_objects.h"
#include "k8s_translate.h"

const char *const aeth_k8s_reason_names[AETH_K8S_REASON_MAX] = {
	[AETH_K8S_MALFORMED] = "malformed",
	[AETH_K8S_BAD_CIDR] = "bad_cidr",
	[AETH_K8S_PROTOCOL] = "protocol",
	[AETH_K8S_BAD_ANNOTATION] = "bad_annotation",
	[AETH_K8S_PORT_CLASH] = "port_clash",
	[AETH_K8S_NAME_CLASH] = "name_clash",
	[AETH_K8S_ADDRESS_CLASH] = "address_clash",
	[AETH_K8S_POOL_EXHAUSTED] = "pool_exhausted",
	[AETH_K8S_INVALID] = "invalid",
};

/* Everything one translation works on. */
struct tr {
	const struct aeth_config *cfg;
	struct k8s_objects o;
	struct k8s_rejects rej;
	struct aeth_ip *vips;		/* per Service; family 0 = none */
	bool *from_status;
	struct aeth_ip *used;		/* addresses no Service may take */
	size_t n_used;
};

static bool ip_in(const struct aeth_ip *ip, const struct aeth_cfg_cidr *c)
{
	if (ip->family != c->ip.family)
		return false;
	for (unsigned int bit = 0; bit < c->prefixlen; bit++) {
		uint8_t m = (uint8_t)(0x80u >> (bit % 8));

		if ((ip->addr.bytes[bit / 8] ^ c->ip.addr.bytes[bit / 8]) & m)
			return false;
	}
	return true;
}

static void ip_str(const struct aeth_ip *ip, char *buf, size_t len)
{
	inet_ntop(ip->family == AETH_AF_INET ? AF_INET : AF_INET6,
		  ip->addr.bytes, buf, (socklen_t)len);
}

static bool is_used(const struct tr *t, const struct aeth_ip *ip)
{
	for (size_t i = 0; i < t->n_used; i++)
		if (!aeth_ip_cmp(&t->used[i], ip))
			return true;
	return false;
}

static int reject_svc(struct tr *t, size_t i, enum aeth_k8s_reason reason,
		      const char *field, const char *msg)
{
	struct k8s_service *s = &t->o.svcs[i];
	char name[600];

	s->rejected = true;
	k8s_object_name(s->ns, s->name, name, sizeof(name));
	return k8s_reject(&t->rej, reason, "Service", name, field, "%s", msg);
}

static const char *svc_holding(const struct tr *t, const struct aeth_ip *ip)
{
	for (size_t i = 0; i < t->cfg->n_services; i++)
		if (!aeth_ip_cmp(&t->cfg->services[i].vip, ip))
			return t->cfg->services[i].name;
	return NULL;
}

/* A Service keeps the VIP in its status when that lies in a pool; in
 * (namespace, name) order, so the earlier of two claimants wins. */
static int claim_from_status(struct tr *t)
{
	const struct aeth_cfg_kubernetes *k = &t->cfg->k8s;
	char msg[320], addr[48];
	int ret = 0;

	for (size_t i = 0; i < t->o.n_svcs && !ret; i++) {
		struct k8s_service *s = &t->o.svcs[i];
		const struct aeth_ip *ip = NULL;
		const char *holder;

		for (size_t j = 0; j < s->n_ingress && !ip; j++)
			for (size_t p = 0; p < k->n_pools && !ip; p++)
				if (s->ingress[j].family == s->family &&
				    ip_in(&s->ingress[j], &k->pools[p]))
					ip = &s->ingress[j];
		if (!ip)
			continue;
		if (is_used(t, ip)) {
			if (s->rejected)
				continue;
			ip_str(ip, addr, sizeof(addr));
			holder = svc_holding(t, ip);
			snprintf(msg, sizeof(msg), "%s is already the VIP of %s%s",
				 addr, holder ? "service " : "another Service",
				 holder ? holder : "");
			ret = reject_svc(t, i, AETH_K8S_ADDRESS_CLASH,
					 "status.loadBalancer.ingress", msg);
			continue;
		}
		t->used[t->n_used++] = *ip;
		t->vips[i] = *ip;
		t->from_status[i] = true;
	}
	return ret;
}

/* ip + 1 within its family; false when it wraps. */
static bool ip_next(struct aeth_ip *ip)
{
	int last = ip->family == AETH_AF_INET ? 3 : 15;

	for (int b = last; b >= 0; b--)
		if (++ip->addr.bytes[b])
			return true;
	return false;
}

static int pool_order(const void *pa, const void *pb)
{
	const struct aeth_cfg_cidr *a = pa, *b = pb;

	return aeth_ip_cmp(&a->ip, &b->ip);
}

/* The lowest address of the family in any pool that nobody holds. */
static bool lowest_free(struct tr *t, uint8_t family, struct aeth_ip *out)
{
	const struct aeth_cfg_kubernetes *k = &t->cfg->k8s;
	struct aeth_cfg_cidr pools[AETH_CFG_MAX_POOLS];
	size_t n = 0;

	for (size_t p = 0; p < k->n_pools; p++)
		if (k->pools[p].ip.family == family)
			pools[n++] = k->pools[p];
	qsort(pools, n, sizeof(pools[0]), pool_order);
	for (size_t p = 0; p < n; p++) {
		struct aeth_ip ip = pools[p].ip;
		static const uint8_t zero[16];

		/* An IPv6 prefix's first address is its subnet-router anycast
		 * address (RFC 4291 2.6.1), not for a host. */
		if (family == AETH_AF_INET6 && pools[p].prefixlen < 127 &&
		    !ip_next(&ip))
			continue;
		/* each step past a held address: at most n_used + 1 steps */
		do {
			if (!is_used(t, &ip) && memcmp(ip.addr.bytes, zero, 16)) {
				*out = ip;
				return true;
			}
		} while (ip_next(&ip) && ip_in(&ip, &pools[p]));
	}
	return false;
}

static int allocate(struct tr *t)
{
	int ret = 0;

	for (size_t i = 0; i < t->o.n_svcs && !ret; i++) {
		struct k8s_service *s = &t->o.svcs[i];
		char msg[160];

		if (s->rejected || t->vips[i].family)
			continue;
		if (!lowest_free(t, s->family, &t->vips[i])) {
			snprintf(msg, sizeof(msg), "no free address of %s in "
				 "kubernetes.ip_pools", s->family == AETH_AF_INET ?
				 "IPv4" : "IPv6");
			ret = reject_svc(t, i, AETH_K8S_POOL_EXHAUSTED,
					 "spec.ipFamilies", msg);
			continue;
		}
		t->used[t->n_used++] = t->vips[i];
	}
	return ret;
}

/* The service name of port p of s: NAMESPACE/NAME:PORT, or, for the
 * second of a port number's two protocols (TCP and UDP on 53, as a DNS
 * Service has), NAMESPACE/NAME:PORT/PROTO. The first one listed keeps the
 * plain name, so adding the other protocol later renames nothing. */
static void port_service_name(const struct k8s_service *s, size_t p,
			      char *out, size_t len)
{
	const struct k8s_port *port = &s->ports[p];
	bool again = false;

	for (size_t j = 0; j < p; j++)
		again |= s->ports[j].port == port->port;
	snprintf(out, len, "%s/%s:%u%s", s->ns, s->name, port->port,
		 !again ? "" : port->proto == IPPROTO_TCP ? "/tcp" : "/udp");
}

/* The service names of the ports must fit and be new to the document. */
static int check_names(struct tr *t)
{
	char name[600], msg[700];
	int ret = 0;

	for (size_t i = 0; i < t->o.n_svcs && !ret; i++) {
		struct k8s_service *s = &t->o.svcs[i];

		for (size_t p = 0; p < s->n_ports && !s->rejected && !ret; p++) {
			port_service_name(s, p, name, sizeof(name));
			if (strlen(name) >= AETH_NAME_LEN) {
				snprintf(msg, sizeof(msg), "the service name %s "
					 "is longer than %d characters", name,
					 AETH_NAME_LEN - 1);
				ret = reject_svc(t, i, AETH_K8S_INVALID,
						 "metadata.name", msg);
			}
			for (size_t j = 0; j < t->cfg->n_services && !s->rejected; j++) {
				if (strcmp(t->cfg->services[j].name, name))
					continue;
				snprintf(msg, sizeof(msg), "the document already "
					 "has a service named %s", name);
				ret = reject_svc(t, i, AETH_K8S_NAME_CLASH,
						 "metadata.name", msg);
			}
		}
	}
	return ret;
}

struct be {
	struct aeth_ip ip;
	uint32_t weight;
	bool draining;
};

/* The node's InternalIP of the VIP's family, else of the other; only of a
 * family this node can encapsulate to (node.addresses). */
static const struct aeth_ip *node_addr(const struct tr *t,
				       const struct k8s_node *n, uint8_t family)
{
	const struct aeth_ip *v4 = t->cfg->node_v4.family && n->v4.family ?
				   &n->v4 : NULL;
	const struct aeth_ip *v6 = t->cfg->node_v6.family && n->v6.family ?
				   &n->v6 : NULL;

	if (family == AETH_AF_INET)
		return v4 ? v4 : v6;
	return v6 ? v6 : v4;
}

static int ep_order(const void *pa, const void *pb)
{
	const struct k8s_endpoint *a = *(struct k8s_endpoint *const *)pa;
	const struct k8s_endpoint *b = *(struct k8s_endpoint *const *)pb;
	int c = strcmp(a->node, b->node);

	return c ? c : strcmp(a->key, b->key);
}

/* Endpoints of Service i on nodes, sorted by (node, key). Sets *bad to the
 * index of a malformed slice of the Service, if any. */
static int local_endpoints(const struct tr *t, const struct k8s_service *s,
			   struct k8s_endpoint ***out, size_t *n, long *bad)
{
	struct k8s_endpoint **v = NULL;
	size_t cap = 0;

	*n = 0;
	*bad = -1;
	for (size_t i = 0; i < t->o.n_slices; i++) {
		const struct k8s_slice *sl = &t->o.slices[i];

		if (strcmp(sl->ns, s->ns) || strcmp(sl->service, s->name))
			continue;
		if (sl->rejected) {
			*bad = (long)i;
			continue;
		}
		for (size_t e = 0; e < sl->n_eps; e++) {
			if (!sl->eps[e].node[0])
				continue;	/* cannot be reached through a node */
			if (*n == cap) {
				void *nv = realloc(v, (cap = cap * 2 + 16) * sizeof(*v));

				if (!nv)
					return free(v), -ENOMEM;
				v = nv;
			}
			v[(*n)++] = &sl->eps[e];
		}
	}
	if (*n)
		qsort(v, *n, sizeof(*v), ep_order);
	*out = v;
	return 0;
}

/* Local: a node per ready endpoint count; draining when all its endpoints
 * are terminating but still serving. One endpoint in several slices counts
 * once (ready if any copy is). */
static size_t local_backends(const struct tr *t, const struct k8s_service *s,
			     struct k8s_endpoint **eps, size_t n_eps,
			     uint8_t family, struct be *out)
{
	size_t n = 0, e = 0;

	for (size_t i = 0; i < t->o.n_nodes; i++) {
		const struct k8s_node *node = &t->o.nodes[i];
		uint32_t ready = 0, serving = 0;
		const struct aeth_ip *ip;

		while (e < n_eps && strcmp(eps[e]->node, node->name) < 0)
			e++;
		while (e < n_eps && !strcmp(eps[e]->node, node->name)) {
			bool r = false, sv = false;
			size_t first = e;

			for (; e < n_eps && !strcmp(eps[e]->node, node->name) &&
			       !strcmp(eps[e]->key, eps[first]->key); e++) {
				r |= eps[e]->ready;
				sv |= eps[e]->serving && eps[e]->terminating;
			}
			ready += r;
			serving += !r && sv;
		}
		ip = node_addr(t, node, family);
		if ((!ready && !serving) || !ip)
			continue;
		out[n].ip = *ip;
		out[n].weight = ready ? ready : serving;
		if (out[n].weight > 65535)
			out[n].weight = 65535;
		out[n++].draining = !ready;
	}
	return n;
}

static int be_order(const void *pa, const void *pb)
{
	return aeth_ip_cmp(&((const struct be *)pa)->ip, &((const struct be *)pb)->ip);
}

/* Backends of Service i into *out (sorted by address, unique). */
static int backends(struct tr *t, size_t i, struct be **out, size_t *n)
{
	const struct k8s_service *s = &t->o.svcs[i];
	struct k8s_endpoint **eps = NULL;
	size_t n_eps = 0, m = 0;
	struct be *v;
	long bad = -1;
	char msg[600];

	v = calloc(t->o.n_nodes + 1, sizeof(*v));
	if (!v || (s->local && local_endpoints(t, s, &eps, &n_eps, &bad)))
		return free(v), -ENOMEM;
	if (bad >= 0) {
		snprintf(msg, sizeof(msg), "its EndpointSlice %s/%s is malformed",
			 t->o.slices[bad].ns, t->o.slices[bad].name);
		free(v);
		free(eps);
		*n = 0;
		return reject_svc(t, i, AETH_K8S_MALFORMED, "", msg);
	}
	if (s->local) {
		*n = local_backends(t, s, eps, n_eps, t->vips[i].family, v);
	} else {
		*n = 0;
		for (size_t j = 0; j < t->o.n_nodes; j++) {
			const struct aeth_ip *ip = node_addr(t, &t->o.nodes[j],
							     t->vips[i].family);

			if (t->o.nodes[j].ready && ip)
				v[(*n)++] = (struct be){ *ip, 1, false };
		}
	}
	free(eps);
	qsort(v, *n, sizeof(*v), be_order);
	/* two nodes reporting one address: the document takes it once; this
	 * node leaves itself out (it would tunnel to itself, which the
	 * document's rules refuse), so its table differs from the other
	 * nodes' when it is both an LB node and a backend */
	for (size_t j = 0; j < *n; j++) {
		if (!aeth_ip_cmp(&v[j].ip, &t->cfg->node_v4) ||
		    !aeth_ip_cmp(&v[j].ip, &t->cfg->node_v6))
			continue;
		if (!m || aeth_ip_cmp(&v[m - 1].ip, &v[j].ip))
			v[m++] = v[j];
	}
	*n = m;
	*out = v;
	return 0;
}

static json_t *acl_json(const struct k8s_service *s)
{
	json_t *acl = json_object(), *cidrs = json_array();
	char addr[48], buf[64];

	for (size_t i = 0; i < s->n_ranges; i++) {
		ip_str(&s->ranges[i].ip, addr, sizeof(addr));
		snprintf(buf, sizeof(buf), "%s/%u", addr, s->ranges[i].prefixlen);
		json_array_append_new(cidrs, json_string(buf));
	}
	json_object_set_new(acl, "enabled", json_true());
	json_object_set_new(acl, "cidrs", cidrs);
	return acl;
}

static json_t *backends_json(const struct be *v, size_t n)
{
	json_t *list = json_array();
	char addr[48];

	for (size_t i = 0; i < n; i++) {
		json_t *b = json_object();

		ip_str(&v[i].ip, addr, sizeof(addr));
		json_object_set_new(b, "address", json_string(addr));
		json_object_set_new(b, "weight", json_integer(v[i].weight));
		if (v[i].draining)
			json_object_set_new(b, "state", json_string("draining"));
		json_array_append_new(list, b);
	}
	return list;
}

/* One service per port of Service i, appended to services; owner[] gets i
 * for each, so a later refusal can be traced back to the Service. */
static int emit(struct tr *t, size_t i, json_t *services, size_t **owner)
{
	const struct k8s_service *s = &t->o.svcs[i];
	char name[600], vip[48];
	struct be *v = NULL;
	size_t n = 0, base = json_array_size(services);
	void *no;
	int ret;

	ret = backends(t, i, &v, &n);
	if (ret || s->rejected)
		return ret;
	no = realloc(*owner, (base + s->n_ports) * sizeof(**owner));
	if (!no)
		return free(v), -ENOMEM;
	*owner = no;
	ip_str(&t->vips[i], vip, sizeof(vip));
	for (size_t p = 0; p < s->n_ports; p++) {
		json_t *svc = json_object();

		port_service_name(s, p, name, sizeof(name));
		json_object_set_new(svc, "name", json_string(name));
		json_object_set_new(svc, "vip", json_string(vip));
		json_object_set_new(svc, "port", json_integer(s->ports[p].port));
		json_object_set_new(svc, "protocol", json_string(
			s->ports[p].proto == IPPROTO_TCP ? "tcp" : "udp"));
		if (s->n_ranges)
			json_object_set_new(svc, "authorized_networks", acl_json(s));
		if (s->rate) {
			json_t *rl = json_object();

			json_object_set_new(rl, "new_connections_per_second",
					    json_integer(s->rate));
			if (s->burst)
				json_object_set_new(rl, "burst", json_integer(s->burst));
			json_object_set_new(svc, "rate_limit", rl);
		}
		json_object_set_new(svc, "backends", backends_json(v, n));
		json_array_append_new(services, svc);
		(*owner)[base + p] = i;
	}
	free(v);
	return 0;
}

/* The document's own limits (backends per table, totals, ...) may still
 * refuse what was built: the Service named by the error's path (or the
 * last one, when the path names none) is left out and the rest tried
 * again, so the result always validates. */
static int validate(struct tr *t, json_t *doc, size_t n_base, size_t *owner,
		    char **text)
{
	json_t *services = json_object_get(doc, "services");
	struct aeth_error err;
	struct aeth_config *cfg;
	char msg[600];

	for (;;) {
		size_t n = json_array_size(services), idx = n, o;
		bool named;
		int ret;

		*text = json_dumps(doc, JSON_INDENT(2));
		if (!*text)
			return -ENOMEM;
		ret = aeth_config_parse(*text, strlen(*text), &cfg, &err);
		if (!ret) {
			aeth_config_free(cfg);
			return 0;
		}
		if (ret != -EINVAL || n == n_base)
			return ret == -EINVAL ? -EIO : ret;
		free(*text);
		named = sscanf(err.path, "services[%zu]", &idx) == 1 &&
			idx >= n_base && idx < n;
		if (!named)
			idx = n - 1;
		o = owner[idx];
		aeth_error_format(&err, msg, sizeof(msg));
		if (named) {
			json_t *svc = json_array_get(services, idx);

			const char *rest = strchr(err.path, ']') + 1;

			snprintf(msg, sizeof(msg), "as service %s%s%s%s: %s",
				 json_string_value(json_object_get(svc, "name")),
				 *rest ? " (" : "", *rest == '.' ? rest + 1 : rest,
				 *rest ? ")" : "", err.message);
		}
		ret = reject_svc(t, o, AETH_K8S_INVALID, "", msg);
		if (ret)
			return ret;
		for (size_t j = n; j-- > n_base;)
			if (owner[j] == o) {
				json_array_remove(services, j);
				memmove(&owner[j], &owner[j + 1],
					(n - j - 1) * sizeof(*owner));
				n--;
			}
	}
}

static int reject_order(const void *pa, const void *pb)
{
	const struct aeth_k8s_reject *a = pa, *b = pb;
	int c = strcmp(a->kind, b->kind);

	if (!c)
		c = strcmp(a->object, b->object);
	if (!c)
		c = strcmp(a->field, b->field);
	return c ? c : strcmp(a->message, b->message);
}

static int fill_assigned(struct tr *t, struct aeth_k8s_result *out)
{
	out->assigned = calloc(t->o.n_svcs + 1, sizeof(*out->assigned));
	if (!out->assigned)
		return -ENOMEM;
	for (size_t i = 0; i < t->o.n_svcs; i++) {
		const struct k8s_service *s = &t->o.svcs[i];
		struct aeth_k8s_assigned *a = &out->assigned[out->n_assigned];

		if (s->rejected || !t->vips[i].family)
			continue;
		snprintf(a->ns, sizeof(a->ns), "%s", s->ns);
		snprintf(a->name, sizeof(a->name), "%s", s->name);
		ip_str(&t->vips[i], a->vip, sizeof(a->vip));
		a->from_status = t->from_status[i];
		out->n_assigned++;
	}
	return 0;
}

/* VIPs, then one service per port of each Service still standing. */
static int build(struct tr *t, json_t *doc, char **text)
{
	json_t *services = json_object_get(doc, "services");
	size_t n_base = json_array_size(services), *owner = NULL;
	int ret;

	for (size_t i = 0; i < t->cfg->n_services; i++)
		t->used[t->n_used++] = t->cfg->services[i].vip;
	ret = check_names(t);
	if (!ret)
		ret = claim_from_status(t);
	if (!ret)
		ret = allocate(t);
	for (size_t i = 0; i < t->o.n_svcs && !ret; i++)
		if (!t->o.svcs[i].rejected)
			ret = emit(t, i, services, &owner);
	if (!ret)
		ret = validate(t, doc, n_base, owner, text);
	free(owner);
	return ret;
}

static int open_base(const char *base, size_t len, struct aeth_config **cfg,
		     json_t **doc, struct aeth_error *err)
{
	int ret = aeth_config_parse(base, len, cfg, err);

	if (ret)
		return ret;
	if (!(*cfg)->k8s.present) {
		aeth_config_free(*cfg);
		snprintf(err->path, sizeof(err->path), "kubernetes");
		snprintf(err->message, sizeof(err->message),
			 "is required to serve Kubernetes Services");
		return -EINVAL;
	}
	/* the document just validated: it loads */
	*doc = json_loadb(base, len, JSON_REJECT_DUPLICATES, NULL);
	if (!*doc) {
		aeth_config_free(*cfg);
		return -ENOMEM;
	}
	return 0;
}

int aeth_k8s_translate(const char *base, size_t base_len, json_t *list,
		       struct aeth_k8s_result *out, struct aeth_error *err)
{
	struct aeth_error local;
	struct aeth_config *cfg = NULL;
	struct tr t = { 0 };
	json_t *doc = NULL;
	char *text = NULL;
	int ret;

	if (!err)
		err = &local;
	memset(err, 0, sizeof(*err));
	memset(out, 0, sizeof(*out));
	ret = open_base(base, base_len, &cfg, &doc, err);
	if (ret)
		return ret;
	t.cfg = cfg;
	ret = k8s_objects_read(list, &cfg->k8s, &t.o, &t.rej, err);
	if (!ret) {
		t.vips = calloc(t.o.n_svcs + 1, sizeof(*t.vips));
		t.from_status = calloc(t.o.n_svcs + 1, sizeof(*t.from_status));
		t.used = calloc(t.o.n_svcs + cfg->n_services + 1, sizeof(*t.used));
		ret = t.vips && t.from_status && t.used ? 0 : -ENOMEM;
	}
	if (!ret)
		ret = build(&t, doc, &text);
	if (!ret)
		ret = fill_assigned(&t, out);
	if (!ret) {
		out->len = strlen(text) + 1;
		out->text = realloc(text, out->len + 1);
		ret = out->text ? 0 : -ENOMEM;
	}
	if (!ret) {
		text = NULL;
		strcpy(out->text + out->len - 1, "\n");
		if (t.rej.n)
			qsort(t.rej.v, t.rej.n, sizeof(*t.rej.v), reject_order);
		out->rejects = t.rej.v;
		out->n_rejects = t.rej.n;
		t.rej.v = NULL;
	}
	free(text);
	free(t.rej.v);
	free(t.vips);
	free(t.from_status);
	free(t.used);
	k8s_objects_free(&t.o);
	json_decref(doc);
	aeth_config_free(cfg);
	if (ret)
		aeth_k8s_result_free(out);
	if (ret == -EIO) {
		snprintf(err->path, sizeof(err->path), "document");
		snprintf(err->message, sizeof(err->message),
			 "invalid even without the Kubernetes services");
		ret = -EINVAL;
	}
	return ret;
}

void aeth_k8s_result_free(struct aeth_k8s_result *r)
{
	free(r->text);
	free(r->rejects);
	free(r->assigned);
	memset(r, 0, sizeof(*r));
}

void aeth_k8s_reject_format(const struct aeth_k8s_reject *r, char *buf,
			    size_t len)
{
	snprintf(buf, len, "%s%s%s: %s%s%s", r->kind, *r->kind ? " " : "",
		 r->object, r->field, *r->field ? ": " : "", r->message);
}

/* prev's services of the Service named by "ns/name" appended to doc when the
 * result still validates. */
static void keep_one(json_t *doc, json_t *prev, const char *object)
{
	json_t *svcs = json_object_get(doc, "services"), *s;
	struct aeth_config *cfg;
	size_t i, n = json_array_size(svcs), plen = strlen(object);
	char *text;

	json_array_foreach(json_object_get(prev, "services"), i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));

		if (name && !strncmp(name, object, plen) && name[plen] == ':')
			json_array_append(svcs, s);
	}
	if (json_array_size(svcs) == n)
		return;
	text = json_dumps(doc, JSON_INDENT(2));
	if (!text || aeth_config_parse(text, strlen(text), &cfg, NULL)) {
		while (json_array_size(svcs) > n)
			json_array_remove(svcs, n);
	} else {
		aeth_config_free(cfg);
	}
	free(text);
}

int aeth_k8s_keep_previous(struct aeth_k8s_result *res, const char *prev)
{
	json_t *doc, *old;
	char *text;

	old = prev ? json_loads(prev, 0, NULL) : NULL;
	if (!old)
		return 0;
	doc = json_loads(res->text, 0, NULL);
	if (!doc) {
		json_decref(old);
		return -ENOMEM;
	}
	for (size_t i = 0; i < res->n_rejects; i++)
		if (!strcmp(res->rejects[i].kind, "Service"))
			keep_one(doc, old, res->rejects[i].object);
	text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	json_decref(old);
	if (!text)
		return -ENOMEM;
	free(res->text);
	res->len = strlen(text) + 1;
	res->text = realloc(text, res->len + 1);
	if (!res->text) {
		free(text);
		res->len = 0;
		return -ENOMEM;
	}
	strcpy(res->text + res->len - 1, "\n");
	return 0;
}
