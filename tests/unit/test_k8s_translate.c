/* The Kubernetes translation (SPEC.md section 8) on objects as `kubectl get
 * services,endpointslices,nodes -A -o json` prints them (API 1.30): every
 * rule, byte-identical output, and objects it cannot use left out with
 * their name and field while the rest applies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "config.h"
#include "k8s_translate.h"

static char *base_text;

static char *read_text(const char *name)
{
	char path[512], *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", K8S_FIXTURES, name);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static json_t *fixture(void)
{
	char path[512];
	json_t *j;

	snprintf(path, sizeof(path), "%s/cluster.json", K8S_FIXTURES);
	j = json_load_file(path, 0, NULL);
	cr_assert_not_null(j);
	return j;
}

static void setup(void)
{
	base_text = read_text("base.json");
}

static void teardown(void)
{
	free(base_text);
}

TestSuite(k8s, .init = setup, .fini = teardown);

/* Translate; the document must always validate. */
static void translate_base(const char *base, json_t *list,
			   struct aeth_k8s_result *r)
{
	struct aeth_error err;
	struct aeth_config *cfg = NULL;
	char msg[600];
	int ret;

	ret = aeth_k8s_translate(base, strlen(base), list, r, &err);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_eq(ret, 0, "translate: %s", msg);
	ret = aeth_config_parse(r->text, r->len, &cfg, &err);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_eq(ret, 0, "output invalid: %s", msg);
	aeth_config_free(cfg);
}

static void translate(json_t *list, struct aeth_k8s_result *r)
{
	translate_base(base_text, list, r);
}

/* The item of the fixture with that kind and name. */
static json_t *item(json_t *list, const char *kind, const char *ns,
		    const char *name)
{
	json_t *items = json_object_get(list, "items"), *it;
	size_t i;

	json_array_foreach(items, i, it) {
		json_t *m = json_object_get(it, "metadata");
		const char *n = json_string_value(json_object_get(m, "namespace"));

		if (!strcmp(json_string_value(json_object_get(it, "kind")), kind) &&
		    !strcmp(json_string_value(json_object_get(m, "name")), name) &&
		    (!ns || (n && !strcmp(n, ns))))
			return it;
	}
	cr_assert_fail("no %s %s", kind, name);
	return NULL;
}

/* obj at a dotted path; numbers index arrays. */
static json_t *at(json_t *obj, const char *path)
{
	char buf[256], *save, *tok;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && obj;
	     tok = strtok_r(NULL, ".", &save))
		obj = json_is_array(obj) ? json_array_get(obj, strtoul(tok, NULL, 10))
					 : json_object_get(obj, tok);
	cr_assert_not_null(obj, "no %s", path);
	return obj;
}

static void set(json_t *obj, const char *path, const char *key, json_t *v)
{
	json_object_set_new(at(obj, path), key, v);
}

/* The service of the output named name, or NULL. */
static json_t *out_svc(const struct aeth_k8s_result *r, const char *name,
		       json_t **doc)
{
	json_t *svcs, *s;
	size_t i;

	*doc = json_loads(r->text, 0, NULL);
	cr_assert_not_null(*doc);
	svcs = json_object_get(*doc, "services");
	json_array_foreach(svcs, i, s)
		if (!strcmp(json_string_value(json_object_get(s, "name")), name))
			return s;
	return NULL;
}

static const char *out_vip(const struct aeth_k8s_result *r, const char *name,
			   char *buf)
{
	json_t *doc, *s = out_svc(r, name, &doc);

	strcpy(buf, s ? json_string_value(json_object_get(s, "vip")) : "-");
	json_decref(doc);
	return buf;
}

/* "10.0.0.1/2,10.0.0.2/1d" (address/weight, d = draining) */
static const char *out_backends(const struct aeth_k8s_result *r,
				const char *name, char *buf)
{
	json_t *doc, *s = out_svc(r, name, &doc), *b;
	size_t i, n = 0;

	buf[0] = '\0';
	cr_assert_not_null(s, "no service %s in\n%s", name, r->text);
	json_array_foreach(json_object_get(s, "backends"), i, b)
		n += sprintf(buf + n, "%s%s/%lld%s", i ? "," : "",
			     json_string_value(json_object_get(b, "address")),
			     json_integer_value(json_object_get(b, "weight")),
			     json_object_get(b, "state") ? "d" : "");
	json_decref(doc);
	return buf;
}

/* The formatted rejections, one per line, with their reason. */
static const char *rejects(const struct aeth_k8s_result *r, char *buf)
{
	size_t n = 0;
	char line[900];

	buf[0] = '\0';
	for (size_t i = 0; i < r->n_rejects; i++) {
		aeth_k8s_reject_format(&r->rejects[i], line, sizeof(line));
		n += sprintf(buf + n, "%s (%s)\n", line,
			     aeth_k8s_reason_names[r->rejects[i].reason]);
	}
	return buf;
}

#define BUF char buf[4096]

Test(k8s, fixture_renders_the_expected_document)
{
	struct aeth_k8s_result r;
	char *want = read_text("cluster.expected.json");
	json_t *list = fixture();

	translate(list, &r);
	cr_assert_eq(r.n_rejects, 0);
	cr_assert_str_eq(r.text, want);
	cr_assert_eq(r.n_assigned, 3);
	cr_assert_str_eq(r.assigned[0].name, "dns");
	cr_assert_str_eq(r.assigned[0].vip, "203.0.113.128");
	cr_assert_not(r.assigned[0].from_status);
	cr_assert_str_eq(r.assigned[1].vip, "203.0.113.133");
	cr_assert(r.assigned[1].from_status);
	aeth_k8s_result_free(&r);
	json_decref(list);
	free(want);
}

Test(k8s, object_order_does_not_change_a_byte)
{
	struct aeth_k8s_result a, b;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	json_t *rev = json_array();
	size_t n = json_array_size(items);

	translate(list, &a);
	for (size_t i = n; i-- > 0;)
		json_array_append(rev, json_array_get(items, (i * 7) % n));
	json_object_set_new(list, "items", rev);
	translate(list, &b);
	cr_assert_str_eq(a.text, b.text);
	aeth_k8s_result_free(&a);
	aeth_k8s_result_free(&b);
	json_decref(list);
}

Test(k8s, base_services_stay_and_kubernetes_member_too)
{
	struct aeth_k8s_result r;
	json_t *list = fixture(), *doc, *s;

	translate(list, &r);
	s = out_svc(&r, "kube-apiserver", &doc);
	cr_assert_not_null(s);
	cr_assert_str_eq(json_string_value(json_object_get(s, "vip")), "203.0.113.10");
	cr_assert_eq(json_array_size(json_object_get(doc, "services")), 5);
	cr_assert_not_null(json_object_get(doc, "kubernetes"));
	json_decref(doc);
	aeth_k8s_result_free(&r);
	json_decref(list);
}

/* The base document with one piece of text replaced. */
static char *base_with(const char *from, const char *to)
{
	const char *p = strstr(base_text, from);
	char *s;

	cr_assert_not_null(p, "base has no %s", from);
	s = calloc(1, strlen(base_text) + strlen(to) + 1);
	memcpy(s, base_text, (size_t)(p - base_text));
	strcat(s, to);
	strcat(s, p + strlen(from));
	return s;
}

Test(k8s, class_selection)
{
	char *base = base_with("\"default_class\": true", "\"default_class\": false");
	struct aeth_k8s_result r;
	json_t *list = fixture();
	char vip[48];

	/* default_class false: only Services naming our class */
	translate_base(base, list, &r);
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "-");
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.128");
	cr_assert_str_eq(out_vip(&r, "other/foreign:80", vip), "-");
	aeth_k8s_result_free(&r);
	/* another class is never ours; ClusterIP Services are never served */
	translate(list, &r);
	cr_assert_str_eq(out_vip(&r, "other/foreign:80", vip), "-");
	cr_assert_str_eq(out_vip(&r, "kube-system/kube-dns:53", vip), "-");
	cr_assert_str_eq(out_vip(&r, "default/kubernetes:443", vip), "-");
	aeth_k8s_result_free(&r);
	/* our class named explicitly is served whatever default_class says */
	set(item(list, "Service", "other", "foreign"), "spec", "loadBalancerClass",
	    json_string("aetherplatform.cloud/lb"));
	translate_base(base, list, &r);
	cr_assert_str_eq(out_vip(&r, "other/foreign:80", vip), "203.0.113.129");
	aeth_k8s_result_free(&r);
	free(base);
	json_decref(list);
}

Test(k8s, vip_from_status_only_inside_a_pool)
{
	struct aeth_k8s_result r;
	json_t *list = fixture();
	json_t *web = item(list, "Service", "default", "web");
	char vip[48];

	/* outside every pool: another provider's address, allocate */
	json_object_set_new(at(web, "status.loadBalancer.ingress.0"), "ip",
			    json_string("198.51.100.77"));
	translate(list, &r);
	/* dns (default/dns < default/web) took .128 first */
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "203.0.113.129");
	cr_assert_str_eq(out_vip(&r, "default/web:443", vip), "203.0.113.129");
	cr_assert_not(r.assigned[1].from_status);
	aeth_k8s_result_free(&r);

	/* a status address in the pool is kept even when lower ones are free,
	 * and is not handed to anyone else */
	json_object_set_new(at(web, "status.loadBalancer.ingress.0"), "ip",
			    json_string("203.0.113.128"));
	translate(list, &r);
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "203.0.113.128");
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.129");
	aeth_k8s_result_free(&r);

	/* hostname-only ingress (another provider) is ignored */
	json_object_set_new(at(web, "status.loadBalancer"), "ingress",
			    json_pack("[{s:s}]", "hostname", "lb.example.com"));
	translate(list, &r);
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "203.0.113.129");
	cr_assert_eq(r.n_rejects, 0);
	aeth_k8s_result_free(&r);
	json_decref(list);
}

/* A new Service of the fixture's shape. */
static json_t *new_service(const char *ns, const char *name, const char *family)
{
	return json_pack("{s:s,s:s,s:{s:s,s:s,s:s},s:{s:[{s:i,s:s,s:i}],"
			 "s:[s],s:s,s:s},s:{s:{}}}",
			 "apiVersion", "v1", "kind", "Service",
			 "metadata", "name", name, "namespace", ns, "uid", name,
			 "spec", "ports", "port", 80, "protocol", "TCP", "nodePort", 30080,
			 "ipFamilies", family, "type", "LoadBalancer",
			 "externalTrafficPolicy", "Cluster",
			 "status", "loadBalancer");
}

Test(k8s, allocation_lowest_free_in_namespace_name_order)
{
	struct aeth_k8s_result r;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	char vip[48];

	/* inserted out of order: zz/a, aa/z, aa/b */
	json_array_insert_new(items, 0, new_service("zz", "a", "IPv4"));
	json_array_append_new(items, new_service("aa", "z", "IPv4"));
	json_array_append_new(items, new_service("aa", "b", "IPv6"));
	translate(list, &r);
	cr_assert_str_eq(out_vip(&r, "aa/z:80", vip), "203.0.113.128");
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.129");
	/* .133 is web's from status: skipped */
	cr_assert_str_eq(out_vip(&r, "zz/a:80", vip), "203.0.113.130");
	cr_assert_str_eq(out_vip(&r, "aa/b:80", vip), "2001:db8:f:1::1");
	cr_assert_str_eq(out_vip(&r, "shop/api:8443", vip), "2001:db8:f:1::2");
	aeth_k8s_result_free(&r);
	json_decref(list);
}

Test(k8s, pool_exhausted_rejects_that_service_only)
{
	char *base = base_with("203.0.113.128/29", "203.0.113.128/31");
	struct aeth_k8s_result r;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	char vip[48], buf[4096];

	/* web's .133 is outside the smaller pool: it is allocated too */
	json_array_append_new(items, new_service("zz", "last", "IPv4"));
	translate_base(base, list, &r);
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.128");
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "203.0.113.129");
	cr_assert_str_eq(out_vip(&r, "zz/last:80", vip), "-");
	cr_assert_str_eq(out_vip(&r, "shop/api:8443", vip), "2001:db8:f:1::1");
	cr_assert_str_eq(rejects(&r, buf),
			 "Service zz/last: spec.ipFamilies: no free address of "
			 "IPv4 in kubernetes.ip_pools (pool_exhausted)\n");
	aeth_k8s_result_free(&r);
	free(base);
	json_decref(list);
}

Test(k8s, name_clash_with_the_base_document)
{
	char *base = base_with("\"kube-apiserver\"", "\"default/web:443\"");
	struct aeth_k8s_result r;
	json_t *list = fixture();
	char vip[48], buf[4096];

	translate_base(base, list, &r);
	cr_assert_str_eq(rejects(&r, buf),
			 "Service default/web: metadata.name: the document already "
			 "has a service named default/web:443 (name_clash)\n");
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "-");
	cr_assert_str_eq(out_vip(&r, "default/web:443", vip), "203.0.113.10");
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.128");
	aeth_k8s_result_free(&r);
	free(base);
	json_decref(list);
}

Test(k8s, address_clash_with_base_and_between_services)
{
	char *base = base_with("\"203.0.113.10\"", "\"203.0.113.133\"");
	struct aeth_k8s_result r;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	json_t *dup = new_service("zz", "copy", "IPv4");
	char vip[48], buf[4096];

	/* the base document's VIP is in web's status */
	translate_base(base, list, &r);
	cr_assert_str_eq(rejects(&r, buf),
			 "Service default/web: status.loadBalancer.ingress: "
			 "203.0.113.133 is already the VIP of service "
			 "kube-apiserver (address_clash)\n");
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "-");
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.128");
	aeth_k8s_result_free(&r);

	/* two Services with one address in status: (namespace, name) order */
	json_object_set_new(at(dup, "status.loadBalancer"), "ingress",
			    json_pack("[{s:s}]", "ip", "203.0.113.133"));
	json_array_insert_new(items, 0, dup);
	translate(list, &r);
	cr_assert_str_eq(rejects(&r, buf),
			 "Service zz/copy: status.loadBalancer.ingress: "
			 "203.0.113.133 is already the VIP of another Service "
			 "(address_clash)\n");
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "203.0.113.133");
	aeth_k8s_result_free(&r);
	free(base);
	json_decref(list);
}

Test(k8s, backends_cluster_policy_every_ready_node_by_family)
{
	char *v4only = base_with(", \"ipv6\": \"2001:db8::11\"", "");
	struct aeth_k8s_result r;
	json_t *list = fixture();
	BUF;

	translate(list, &r);
	/* IPv4 VIP: node-c is not Ready; node-d has only IPv6 (fallback) */
	cr_assert_str_eq(out_backends(&r, "default/web:80", buf),
			 "10.0.0.1/1,10.0.0.2/1,fd00::4/1");
	/* IPv6 VIP: node-b has only IPv4 (fallback) */
	cr_assert_str_eq(out_backends(&r, "shop/api:8443", buf),
			 "10.0.0.2/1,fd00::1/1,fd00::4/1");
	aeth_k8s_result_free(&r);

	/* a node without IPv6 cannot tunnel to IPv6 backends: v4 or nothing */
	translate_base(v4only, list, &r);
	cr_assert_str_eq(out_backends(&r, "default/web:80", buf),
			 "10.0.0.1/1,10.0.0.2/1");
	cr_assert_str_eq(out_backends(&r, "shop/api:8443", buf),
			 "10.0.0.1/1,10.0.0.2/1");
	aeth_k8s_result_free(&r);

	/* a node turning NotReady leaves; Unknown counts as not ready */
	json_string_set(at(item(list, "Node", NULL, "node-b"),
			   "status.conditions.1.status"), "False");
	translate(list, &r);
	cr_assert_str_eq(out_backends(&r, "default/web:80", buf),
			 "10.0.0.1/1,fd00::4/1");
	aeth_k8s_result_free(&r);
	free(v4only);
	json_decref(list);
}

/* A node that is also a backend leaves itself out: it would tunnel to its
 * own address, which the document's rules refuse. */
Test(k8s, backends_leave_out_this_node)
{
	char *on_a = base_with("\"ipv4\": \"192.0.2.11\"", "\"ipv4\": \"10.0.0.1\"");
	struct aeth_k8s_result r;
	json_t *list = fixture();
	BUF;

	translate_base(on_a, list, &r);
	cr_assert_str_eq(out_backends(&r, "default/web:80", buf),
			 "10.0.0.2/1,fd00::4/1");
	aeth_k8s_result_free(&r);
	free(on_a);
	json_decref(list);
}

Test(k8s, backends_local_policy_weights_and_draining)
{
	struct aeth_k8s_result r;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	json_t *sl = item(list, "EndpointSlice", "default", "dns-7x2kq"), *v6;
	BUF;

	/* node-a 2 ready; node-b only terminating+serving; node-c none
	 * serving; endpoints without a node are unreachable through one */
	translate(list, &r);
	cr_assert_str_eq(out_backends(&r, "default/dns:53", buf),
			 "10.0.0.1/2,10.0.0.2/1d");
	aeth_k8s_result_free(&r);

	/* The IPv6 slice of a dual-stack Service names the same pods: each
	 * pod counts once. A second slice adds a new pod on node-d. */
	v6 = json_deep_copy(sl);
	json_string_set(at(v6, "metadata.name"), "dns-v6abc");
	json_string_set(at(v6, "addressType"), "IPv6");
	json_string_set(at(v6, "endpoints.0.addresses.0"), "fd44::5");
	json_array_append_new(at(v6, "endpoints"), json_pack(
		"{s:[s],s:{s:b},s:s,s:{s:s,s:s,s:s}}", "addresses", "fd44::9",
		"conditions", "ready", 1, "nodeName", "node-d", "targetRef",
		"kind", "Pod", "name", "dns-9", "uid", "uid-dns-9"));
	json_array_append_new(at(v6, "endpoints"), json_pack(
		"{s:[s],s:{s:b}}", "addresses", "fd44::10", "conditions", "ready", 1));
	json_array_append_new(items, v6);
	translate(list, &r);
	cr_assert_str_eq(out_backends(&r, "default/dns:53", buf),
			 "10.0.0.1/2,10.0.0.2/1d,fd00::4/1");
	aeth_k8s_result_free(&r);

	/* no endpoints at all: the VIP stays, with no backend */
	json_object_set_new(sl, "endpoints", json_null());
	json_object_set_new(v6, "endpoints", json_array());
	translate(list, &r);
	cr_assert_str_eq(out_backends(&r, "default/dns:53", buf), "");
	aeth_k8s_result_free(&r);
	json_decref(list);
}

static const char *compact(json_t *v)
{
	static char buf[1024];
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);

	snprintf(buf, sizeof(buf), "%s", s ? s : "null");
	free(s);
	return buf;
}

Test(k8s, source_ranges_and_rate_limit_annotations)
{
	struct aeth_k8s_result r;
	json_t *list = fixture(), *doc, *s;

	translate(list, &r);
	/* host bits masked, spaces trimmed, duplicates merged, sorted */
	s = out_svc(&r, "default/dns:53", &doc);
	cr_assert_str_eq(compact(json_object_get(s, "authorized_networks")),
			 "{\"cidrs\":[\"198.51.100.0/24\",\"2001:db8:100::/48\"],"
			 "\"enabled\":true}");
	cr_assert_str_eq(compact(json_object_get(s, "rate_limit")),
			 "{\"burst\":400,\"new_connections_per_second\":200}");
	json_decref(doc);
	/* absent: every source, no limit */
	s = out_svc(&r, "default/web:80", &doc);
	cr_assert_null(json_object_get(s, "authorized_networks"));
	cr_assert_null(json_object_get(s, "rate_limit"));
	json_decref(doc);
	aeth_k8s_result_free(&r);

	/* an empty list is every source too (not nobody) */
	set(item(list, "Service", "default", "dns"), "spec",
	    "loadBalancerSourceRanges", json_array());
	translate(list, &r);
	s = out_svc(&r, "default/dns:53", &doc);
	cr_assert_null(json_object_get(s, "authorized_networks"));
	json_decref(doc);
	aeth_k8s_result_free(&r);
	json_decref(list);
}

/* A port number with both protocols (a DNS Service on 53): two services,
 * the first listed under the plain name, the second with its protocol;
 * both on the Service's VIP, and the document valid (translate checks). */
Test(k8s, one_port_number_with_both_protocols)
{
	struct aeth_k8s_result r;
	json_t *list = fixture(), *doc, *s, *ports, *tcp;
	char vip[48];

	ports = at(item(list, "Service", "default", "dns"), "spec.ports");
	tcp = json_deep_copy(json_array_get(ports, 0));
	json_object_set_new(tcp, "protocol", json_string("TCP"));
	json_object_set_new(tcp, "nodePort", json_integer(31054));
	json_array_append_new(ports, tcp);
	translate(list, &r);
	cr_assert_eq(r.n_rejects, 0);
	s = out_svc(&r, "default/dns:53", &doc);
	cr_assert_not_null(s);
	cr_assert_str_eq(json_string_value(json_object_get(s, "protocol")), "udp");
	cr_assert_eq(json_integer_value(json_object_get(s, "port")), 53);
	json_decref(doc);
	s = out_svc(&r, "default/dns:53/tcp", &doc);
	cr_assert_not_null(s, "no service default/dns:53/tcp");
	cr_assert_str_eq(json_string_value(json_object_get(s, "protocol")), "tcp");
	cr_assert_eq(json_integer_value(json_object_get(s, "port")), 53);
	json_decref(doc);
	cr_assert_str_eq(out_vip(&r, "default/dns:53/tcp", vip), "203.0.113.128");
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.128");
	aeth_k8s_result_free(&r);
	json_decref(list);
}

/* One Service spoiled in the fixture: only it is left out, with the
 * reason and the field; the rest of the document is as without it. */
struct spoil {
	const char *what, *kind, *ns, *name, *path, *key;
	const char *value;	/* JSON */
	const char *want;
};

static const struct spoil spoils[] = {
	{ "bad CIDR", "Service", "default", "dns", "spec.loadBalancerSourceRanges",
	  "1", NULL, "Service default/dns: spec.loadBalancerSourceRanges[3]: not "
	  "a CIDR: \"2001:db8:100::/129\" (bad_cidr)\n" },
	{ "SCTP", "Service", "default", "web", "spec.ports.1", "protocol",
	  "\"SCTP\"", "Service default/web: spec.ports[1].protocol: SCTP is not "
	  "supported (TCP or UDP) (protocol)\n" },
	{ "port as string", "Service", "default", "web", "spec.ports.0", "port",
	  "\"80\"", "Service default/web: spec.ports[0].port: must be an integer "
	  "(malformed)\n" },
	{ "port clash", "Service", "default", "web", "spec.ports.1", "port",
	  "80", "Service default/web: spec.ports[1].port: port 80/TCP is also "
	  "spec.ports[0] (port_clash)\n" },
	{ "rate not a number", "Service", "default", "dns", "metadata.annotations",
	  "lb.aetherplatform.cloud/new-connections-per-second", "\"fast\"",
	  "Service default/dns: metadata.annotations[\"lb.aetherplatform.cloud/"
	  "new-connections-per-second\"]: must be a whole number from 1 to "
	  "1000000000, not \"fast\" (bad_annotation)\n" },
	{ "rate zero", "Service", "default", "dns", "metadata.annotations",
	  "lb.aetherplatform.cloud/new-connections-per-second", "\"0\"",
	  "Service default/dns: metadata.annotations[\"lb.aetherplatform.cloud/"
	  "new-connections-per-second\"]: must be a whole number from 1 to "
	  "1000000000, not \"0\" (bad_annotation)\n" },
	{ "family", "Service", "default", "web", "spec.ipFamilies", "0",
	  "\"IPv5\"", "Service default/web: spec.ipFamilies[0]: must be IPv4 or "
	  "IPv6 (malformed)\n" },
	{ "traffic policy", "Service", "default", "web", "spec",
	  "externalTrafficPolicy", "\"Everywhere\"", "Service default/web: "
	  "spec.externalTrafficPolicy: must be Cluster or Local (malformed)\n" },
	{ "ingress ip", "Service", "default", "web", "status.loadBalancer.ingress.0",
	  "ip", "\"203.0.113.999\"", "Service default/web: "
	  "status.loadBalancer.ingress[0]: ip: not an IP address: "
	  "\"203.0.113.999\" (malformed)\n" },
	{ "ports not a list", "Service", "default", "web", "spec", "ports",
	  "{}", "Service default/web: spec.ports: must be an array (malformed)\n" },
	{ "no ports", "Service", "default", "web", "spec", "ports",
	  "[]", "Service default/web: spec.ports: a LoadBalancer Service needs "
	  "at least one port (malformed)\n" },
	{ "slice endpoint", "EndpointSlice", "default", "dns-7x2kq",
	  "endpoints.1", "addresses", "[]", "EndpointSlice default/dns-7x2kq: "
	  "endpoints[1].addresses: must hold at least one address (malformed)\n"
	  "Service default/dns: its EndpointSlice default/dns-7x2kq is malformed "
	  "(malformed)\n" },
	{ "slice condition", "EndpointSlice", "default", "dns-7x2kq",
	  "endpoints.0.conditions", "ready", "\"yes\"", "EndpointSlice "
	  "default/dns-7x2kq: endpoints[0].conditions.ready: must be true or "
	  "false (malformed)\nService default/dns: its EndpointSlice "
	  "default/dns-7x2kq is malformed (malformed)\n" },
};

static void apply_spoil(json_t *list, const struct spoil *sp)
{
	json_t *obj = at(item(list, sp->kind, sp->ns, sp->name), sp->path);

	if (json_is_array(obj) && !sp->value)
		json_array_append_new(obj, json_string("2001:db8:100::/129"));
	else if (json_is_array(obj))
		json_array_set_new(obj, strtoul(sp->key, NULL, 10),
				   json_loads(sp->value, JSON_DECODE_ANY, NULL));
	else
		json_object_set_new(obj, sp->key,
				    json_loads(sp->value, JSON_DECODE_ANY, NULL));
}

/* The document without the services of the spoiled Service must equal
 * the one rendered with that Service spoiled. */
static void check_spoil(const struct spoil *sp, const char *want)
{
	struct aeth_k8s_result good, bad;
	json_t *list = fixture(), *doc, *svcs, *s;
	const char *svc = !strcmp(sp->kind, "Service") ? sp->name : "dns";
	char prefix[128], *rest;
	size_t i;
	BUF;

	translate(list, &good);
	apply_spoil(list, sp);
	translate(list, &bad);
	cr_assert_str_eq(rejects(&bad, buf), want, "%s", sp->what);
	/* the rest is intact: drop the spoiled Service from the good one */
	doc = json_loads(good.text, 0, NULL);
	svcs = json_object_get(doc, "services");
	snprintf(prefix, sizeof(prefix), "%s/%s:", sp->ns, svc);
	for (i = json_array_size(svcs); i-- > 0;) {
		s = json_array_get(svcs, i);
		if (!strncmp(json_string_value(json_object_get(s, "name")), prefix,
			     strlen(prefix)))
			json_array_remove(svcs, i);
	}
	rest = json_dumps(doc, JSON_INDENT(2));
	cr_assert_eq(strncmp(bad.text, rest, strlen(rest)), 0,
		     "%s: others changed:\n%s", sp->what, bad.text);
	free(rest);
	json_decref(doc);
	aeth_k8s_result_free(&good);
	aeth_k8s_result_free(&bad);
	json_decref(list);
}

Test(k8s, bad_input_leaves_out_that_service_only)
{
	for (size_t i = 0; i < sizeof(spoils) / sizeof(spoils[0]); i++)
		check_spoil(&spoils[i], spoils[i].want);
}

Test(k8s, malformed_nodes_and_items_are_named)
{
	struct aeth_k8s_result r;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	BUF;

	json_string_set(at(item(list, "Node", NULL, "node-b"),
			   "status.addresses.0.address"), "10.0.0.300");
	json_object_set_new(at(item(list, "Node", NULL, "node-d"), "status"),
			    "conditions", json_string("Ready"));
	json_array_append_new(items, json_pack("{s:s}", "kind", "Service"));
	json_array_append_new(items, json_pack("{s:s,s:s,s:{s:s,s:s}}",
		"kind", "EndpointSlice", "apiVersion", "discovery.k8s.io/v1beta1",
		"metadata", "name", "old", "namespace", "default"));
	/* other kinds in the List are not ours to judge */
	json_array_append_new(items, json_pack("{s:s,s:s,s:{s:s}}",
		"kind", "Pod", "apiVersion", "v1", "metadata", "name", "p"));
	translate(list, &r);
	cr_assert_str_eq(rejects(&r, buf),
		"items[12]: must be an object with kind and apiVersion (malformed)\n"
		"EndpointSlice items[13]: apiVersion: must be discovery.k8s.io/v1, "
		"not discovery.k8s.io/v1beta1 (malformed)\n"
		"Node node-b: status.addresses[0]: address: not an IP address: "
		"\"10.0.0.300\" (malformed)\n"
		"Node node-d: status.conditions: must be an array (malformed)\n");
	/* the rejected nodes are not backends; everything else applies */
	cr_assert_str_eq(out_backends(&r, "default/web:80", buf), "10.0.0.1/1");
	aeth_k8s_result_free(&r);
	json_decref(list);
}

Test(k8s, missing_fields_take_the_api_defaults)
{
	struct aeth_k8s_result r;
	json_t *list = fixture();
	json_t *api = item(list, "Service", "shop", "api");
	json_t *web = item(list, "Service", "default", "web");
	json_t *sl = item(list, "EndpointSlice", "default", "dns-7x2kq");
	char vip[48];
	BUF;

	/* no ipFamilies (written before dual-stack): the cluster IP's family */
	json_object_del(at(api, "spec"), "ipFamilies");
	/* no protocol: TCP; no status at all; no externalTrafficPolicy */
	json_object_del(at(web, "spec.ports.0"), "protocol");
	json_object_del(web, "status");
	json_object_del(at(web, "spec"), "externalTrafficPolicy");
	/* conditions absent: ready; no targetRef: keyed by address */
	json_object_del(at(sl, "endpoints.0"), "conditions");
	json_object_del(at(sl, "endpoints.0"), "targetRef");
	json_object_del(at(sl, "endpoints.1"), "targetRef");
	translate(list, &r);
	cr_assert_eq(r.n_rejects, 0, "%s", rejects(&r, buf));
	cr_assert_str_eq(out_vip(&r, "shop/api:8443", vip), "2001:db8:f:1::1");
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "203.0.113.129");
	cr_assert_str_eq(out_backends(&r, "default/web:80", buf),
			 "10.0.0.1/1,10.0.0.2/1,fd00::4/1");
	cr_assert_str_eq(out_backends(&r, "default/dns:53", buf),
			 "10.0.0.1/2,10.0.0.2/1d");
	aeth_k8s_result_free(&r);

	/* neither ipFamilies nor a cluster IP: IPv4 */
	json_object_del(at(api, "spec"), "clusterIP");
	translate(list, &r);
	cr_assert_str_eq(out_vip(&r, "shop/api:8443", vip), "203.0.113.130");
	aeth_k8s_result_free(&r);
	json_decref(list);
}

/* Adds a field nobody knows to every object of v, recursively. */
static void add_unknown(json_t *v)
{
	const char *key;
	json_t *sub;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach(v, key, sub)
			add_unknown(sub);
		json_object_set_new(v, "zzFutureField", json_pack("{s:[i]}", "x", 1));
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, sub)
			add_unknown(sub);
	}
}

Test(k8s, unknown_fields_are_ignored)
{
	struct aeth_k8s_result a, b;
	json_t *list = fixture();

	translate(list, &a);
	add_unknown(json_object_get(list, "items"));
	translate(list, &b);
	cr_assert_eq(b.n_rejects, 0);
	cr_assert_str_eq(a.text, b.text);
	aeth_k8s_result_free(&a);
	aeth_k8s_result_free(&b);
	json_decref(list);
}

Test(k8s, duplicates_and_long_names)
{
	struct aeth_k8s_result r;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	char name[80];
	BUF;

	json_array_append(items, item(list, "Service", "shop", "api"));
	memset(name, 'n', 60);
	name[60] = '\0';
	json_array_append_new(items, new_service("default", name, "IPv4"));
	translate(list, &r);
	cr_assert_str_eq(rejects(&r, buf),
		"Service default/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn: "
		"metadata.name: the service name default/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
		"nnnnnnnnnnnnnnnnnnnnnnnnnnnn:80 is longer than 63 characters (invalid)\n"
		"Service shop/api: listed twice (malformed)\n");
	aeth_k8s_result_free(&r);
	json_decref(list);
}

Test(k8s, limits_of_the_document_leave_out_that_service)
{
	char *base = base_with("\"table_size\": 4093", "\"table_size\": 251");
	struct aeth_k8s_result r;
	json_t *list = fixture(), *items = json_object_get(list, "items");
	char vip[48], nm[32], ip[32];
	BUF;

	/* 260 Ready nodes: more backends than a 251-slot table holds */
	for (int i = 0; i < 260; i++) {
		json_t *n = json_deep_copy(item(list, "Node", NULL, "node-b"));

		snprintf(nm, sizeof(nm), "bulk-%03d", i);
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 200, i % 200 + 1);
		json_string_set(at(n, "metadata.name"), nm);
		json_string_set(at(n, "status.addresses.0.address"), ip);
		json_array_append_new(items, n);
	}
	translate_base(base, list, &r);
	cr_assert_str_eq(rejects(&r, buf),
		"Service default/web: as service default/web:80 (backends): more "
		"backends (263) than table_size (251) (invalid)\n"
		"Service shop/api: as service shop/api:8443 (backends): more "
		"backends (263) than table_size (251) (invalid)\n");
	/* Local dns has 2 backends and stays */
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.128");
	aeth_k8s_result_free(&r);
	free(base);
	json_decref(list);
}

Test(k8s, refuses_what_is_not_a_list_or_a_base_without_kubernetes)
{
	struct aeth_error err;
	struct aeth_k8s_result r;
	json_t *list = fixture(), *notlist = json_pack("{s:s}", "kind", "Service");
	char *base = base_with("\"kubernetes\"", "\"x\": 1, \"kubernetes_off\"");
	char *nok8s;
	char msg[600];

	cr_assert_eq(aeth_k8s_translate(base_text, strlen(base_text), notlist, &r,
					&err), -EINVAL);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_str_eq(msg, "objects: not a Kubernetes List (kind List and an "
			 "items array)");
	cr_assert_eq(aeth_k8s_translate(base, strlen(base), list, &r, &err), -EINVAL);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_str_eq(msg, "x: unknown field");
	nok8s = calloc(1, strlen(base_text) + 1);
	memcpy(nok8s, base_text, strstr(base_text, ",\n  \"kubernetes\"") - base_text);
	strcat(nok8s, "\n}\n");
	cr_assert_eq(aeth_k8s_translate(nok8s, strlen(nok8s), list, &r, &err), -EINVAL);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_str_eq(msg, "kubernetes: is required to serve Kubernetes Services");
	free(nok8s);
	free(base);
	json_decref(notlist);
	json_decref(list);
}

static void config_fails(const char *from, const char *to, const char *want)
{
	char *text = base_with(from, to), msg[600];
	struct aeth_error err;
	struct aeth_config *cfg = NULL;

	cr_assert_eq(aeth_config_parse(text, strlen(text), &cfg, &err), -EINVAL,
		     "accepted: %s", to);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_str_eq(msg, want);
	cr_assert_null(cfg);
	free(text);
}

Test(k8s, kubernetes_member_of_the_document)
{
	struct aeth_config *cfg = NULL;
	char *named = base_with("\"kube-apiserver\"", "\"default/web:80\"");

	cr_assert_eq(aeth_config_parse(base_text, strlen(base_text), &cfg, NULL), 0);
	cr_assert(cfg->k8s.present);
	cr_assert_str_eq(cfg->k8s.lb_class, "aetherplatform.cloud/lb");
	cr_assert(cfg->k8s.default_class);
	cr_assert_eq(cfg->k8s.n_pools, 2);
	cr_assert_eq(cfg->k8s.pools[1].prefixlen, 120);
	aeth_config_free(cfg);
	/* NAMESPACE/NAME:PORT is a valid service name */
	cr_assert_eq(aeth_config_parse(named, strlen(named), &cfg, NULL), 0);
	aeth_config_free(cfg);
	free(named);
	/* and so is NAMESPACE/NAME:PORT/PROTO, the second protocol's */
	named = base_with("\"kube-apiserver\"", "\"default/dns:53/tcp\"");
	cr_assert_eq(aeth_config_parse(named, strlen(named), &cfg, NULL), 0);
	aeth_config_free(cfg);
	free(named);
	config_fails("\"kube-apiserver\"", "\"default/dns:53/sctp\"",
		     "services[0].name: may contain only letters, digits, '.', "
		     "'_' and '-'");
	config_fails("\"kube-apiserver\"", "\"default/dns:53/udp/tcp\"",
		     "services[0].name: may contain only letters, digits, '.', "
		     "'_' and '-'");
	config_fails("\"kube-apiserver\"", "\"default/dns:53/\"",
		     "services[0].name: may contain only letters, digits, '.', "
		     "'_' and '-'");

	config_fails("\"default_class\": true", "\"default_class\": true, \"pools\": []",
		     "kubernetes.pools: unknown field");
	config_fails("\"load_balancer_class\": \"aetherplatform.cloud/lb\",", "",
		     "kubernetes.load_balancer_class: is required");
	config_fails("\"aetherplatform.cloud/lb\"", "\"\"",
		     "kubernetes.load_balancer_class: must be 1 to 253 characters");
	config_fails("\"default_class\": true", "\"default_class\": 1",
		     "kubernetes.default_class: must be true or false");
	config_fails("\"2001:db8:f:1::/120\"", "\"2001:db8:f:1::\"",
		     "kubernetes.ip_pools[1]: not a CIDR (address/prefix)");
	config_fails("\"2001:db8:f:1::/120\"", "\"203.0.113.129/29\"",
		     "kubernetes.ip_pools[1]: host bits set (the network is "
		     "203.0.113.128/29)");
	config_fails("\"2001:db8:f:1::/120\"", "\"203.0.113.132/30\"",
		     "kubernetes.ip_pools[1]: overlaps ip_pools[0]");
	config_fails("\"2001:db8:f:1::/120\"", "\"203.0.0.0/16\"",
		     "kubernetes.ip_pools[1]: overlaps ip_pools[0]");
	config_fails("\"kube-apiserver\"", "\"default/web:http\"",
		     "services[0].name: may contain only letters, digits, '.', "
		     "'_' and '-'");
	config_fails("\"kube-apiserver\"", "\"10.0.0.1:80/tcp\"",
		     "services[0].name: may contain only letters, digits, '.', "
		     "'_' and '-'");
}

Test(k8s, watch_mode_keeps_what_a_refused_service_had)
{
	struct aeth_k8s_result prev, r;
	json_t *list = fixture();
	char vip[48];
	BUF;

	translate(list, &prev);
	json_string_set(at(item(list, "Service", "default", "web"),
			   "spec.ports.1.protocol"), "SCTP");
	translate(list, &r);
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "-");
	cr_assert_eq(aeth_k8s_keep_previous(&r, prev.text), 0);
	/* both ports as they were; still reported; the rest as translated */
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "203.0.113.133");
	cr_assert_str_eq(out_backends(&r, "default/web:443", buf),
			 "10.0.0.1/1,10.0.0.2/1,fd00::4/1");
	cr_assert_eq(r.n_rejects, 1);
	cr_assert_str_eq(out_vip(&r, "default/dns:53", vip), "203.0.113.128");
	aeth_k8s_result_free(&r);

	/* deleted, not refused: gone */
	json_array_remove(json_object_get(list, "items"), 5);
	translate(list, &r);
	cr_assert_eq(aeth_k8s_keep_previous(&r, prev.text), 0);
	cr_assert_str_eq(out_vip(&r, "default/web:80", vip), "-");
	aeth_k8s_result_free(&r);
	aeth_k8s_result_free(&prev);
	json_decref(list);
}
