/* aetherctl against pinned maps filled by the test: every OBJECT VERB in
 * JSON and human form, prefixes, help, errors and exit codes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <criterion/criterion.h>

#include "aether/flow_hash.h"
#include "aether/vip_filter.h"
#include "acl_compile.h"
#include "ctl_fixture.h"

static struct fx fx;

static void setup(void)
{
	cr_assert_eq(fx_open(&fx), 0, "fixture: load and pin");
	cr_assert_eq(fx_populate(&fx), 0, "fixture: populate");
}

static void teardown(void)
{
	fx_close(&fx);
}

TestSuite(ctl, .init = setup, .fini = teardown, .timeout = 120);

/* The element of a JSON array whose key equals value. */
static json_t *find_by(json_t *arr, const char *key, const char *value)
{
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e) {
		const char *s = json_string_value(json_object_get(e, key));

		if (s && !strcmp(s, value))
			return e;
	}
	return NULL;
}

static long long jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_integer(v), "key %s is an integer", key);
	return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_string(v), "key %s is a string", key);
	return json_string_value(v);
}

static void ok_json(struct fx_res *r)
{
	cr_assert_eq(r->status, 0, "exit 0 (stderr: %s, stdout: %s)", r->err,
		     r->out);
	cr_assert_not_null(r->json, "stdout is JSON: %s", r->out);
}

Test(ctl, service_list_json)
{
	struct fx_res r;
	json_t *s, *rl;

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "service", "list", NULL), 0);
	ok_json(&r);
	cr_assert(json_is_array(r.json));
	cr_assert_eq(json_array_size(r.json), 3);
	/* sorted by name */
	cr_assert_str_eq(jstr(json_array_get(r.json, 0), "name"), "dns");
	cr_assert_str_eq(jstr(json_array_get(r.json, 1), "name"),
			 "kube-apiserver");
	cr_assert_str_eq(jstr(json_array_get(r.json, 2), "name"), "web");

	s = find_by(r.json, "name", "kube-apiserver");
	cr_assert_str_eq(jstr(s, "vip"), "203.0.113.10");
	cr_assert_eq(jint(s, "port"), 6443);
	cr_assert_str_eq(jstr(s, "protocol"), "tcp");
	cr_assert_eq(jint(s, "table_size"), FX_TABLE);
	cr_assert_eq(jint(s, "backends"), 3);
	cr_assert(json_is_true(json_object_get(s, "acl_enabled")));
	cr_assert_eq(jint(s, "acl_cidrs"), 2);
	rl = json_object_get(s, "rate_limit");
	cr_assert(json_is_object(rl));
	cr_assert_eq(jint(rl, "new_connections_per_second"), 20);
	cr_assert_eq(jint(rl, "burst"), 40);
	cr_assert_eq(jint(rl, "service_new_connections_per_second"), 5000);

	s = find_by(r.json, "name", "dns");
	cr_assert_str_eq(jstr(s, "vip"), "2001:db8:f::53");
	cr_assert_eq(jint(s, "port"), 0);
	cr_assert_str_eq(jstr(s, "protocol"), "udp");
	cr_assert(json_is_false(json_object_get(s, "acl_enabled")));
	cr_assert(json_is_null(json_object_get(s, "rate_limit")));
	fx_res_free(&r);
}

/* Global options anywhere on the line, as in "aetherctl service list -j". */
Test(ctl, global_options_anywhere)
{
	struct fx_res r;

	cr_assert_eq(fx_ctl(&fx, &r, "service", "list", "-j", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 3);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "backend", "-p", "list", NULL), 0);
	ok_json(&r);
	cr_assert(strchr(r.out, '\n') && strstr(r.out, "[\n"), "not indented: %s",
		  r.out);
	fx_res_free(&r);

	/* the last --pin-dir wins: a later one on the line is used */
	cr_assert_eq(fx_ctl(&fx, &r, "service", "list", "--pin-dir",
			    "/nonexistent-aeth", "-j", NULL), 0);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.out, "/nonexistent-aeth"), "%s", r.out);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "service", "list", "--socket", NULL), 0);
	cr_assert_eq(r.status, 2, "a missing value is a usage error");
	fx_res_free(&r);
}

Test(ctl, service_list_human_and_prefixes)
{
	struct fx_res full, abbr;
	char *l1, *l2, *l3;

	cr_assert_eq(fx_ctl(&fx, &full, "service", "list", NULL), 0);
	cr_assert_eq(full.status, 0, "stderr: %s", full.err);
	cr_assert_null(full.json);
	/* header, then rows in name order */
	l1 = strstr(full.out, "NAME");
	l2 = strstr(full.out, "\ndns ");
	l3 = strstr(full.out, "\nkube-apiserver ");
	cr_assert(l1 && l2 && l3 && l1 < l2 && l2 < l3, "table: %s", full.out);
	cr_assert(strstr(full.out, "2 cidrs"), "acl column: %s", full.out);
	cr_assert(strstr(full.out, "20/s burst 40"), "limit: %s", full.out);

	cr_assert_eq(fx_ctl(&fx, &abbr, "serv", "l", NULL), 0);
	cr_assert_eq(abbr.status, 0);
	cr_assert_str_eq(abbr.out, full.out, "prefixes give the same output");
	fx_res_free(&abbr);
	/* the same output twice: a stable order */
	cr_assert_eq(fx_ctl(&fx, &abbr, "service", "list", NULL), 0);
	cr_assert_str_eq(abbr.out, full.out);
	fx_res_free(&abbr);
	fx_res_free(&full);
}

Test(ctl, ambiguous_and_unknown_words)
{
	struct fx_res r;

	/* s: service, stats, status */
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "s", "list", NULL), 0);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(jstr(r.json, "error"), "ambiguous"), "%s", r.out);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "bogus", NULL), 0);
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.out, "");
	cr_assert(strstr(r.err, "unknown object 'bogus'"), "%s", r.err);
	/* one clear line */
	cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "service", "frob", NULL), 0);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(jstr(r.json, "error"), "unknown verb 'frob'"));
	fx_res_free(&r);

	/* stats and status: exact names win over the other's prefix */
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "stats", NULL), 0);
	ok_json(&r);
	cr_assert_not_null(json_object_get(r.json, "services"));
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "statu", NULL), 0);
	ok_json(&r);
	cr_assert_not_null(json_object_get(r.json, "schema_version"));
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "ex", "--src", "198.51.100.7:1",
			    "--dst", "192.0.2.99:80", "--pr", "tcp", NULL), 0);
	ok_json(&r);
	cr_assert_str_eq(jstr(r.json, "verdict"), "pass");
	fx_res_free(&r);
}

Test(ctl, help_at_every_level)
{
	static const char *const objs[] = { "service", "backend", "maglev",
					    "conntrack", "acl", "ratelimit",
					    "stats", "status", "explain" };
	struct fx_res r;

	cr_assert_eq(fx_ctl(&fx, &r, "--help", NULL), 0);
	cr_assert_eq(r.status, 0);
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++)
		cr_assert(strstr(r.out, objs[i]), "top help names %s", objs[i]);
	fx_res_free(&r);

	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		cr_assert_eq(fx_ctl(&fx, &r, objs[i], "--help", NULL), 0);
		cr_assert_eq(r.status, 0, "%s --help", objs[i]);
		cr_assert(strstr(r.out, "Usage: aetherctl"), "%s", r.out);
		cr_assert(strstr(r.out, objs[i]));
		fx_res_free(&r);
	}
	cr_assert_eq(fx_ctl(&fx, &r, "maglev", "show", "--help", NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "show SERVICE [--raw]"), "%s", r.out);
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "conn", "l", "-h", NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "--limit N"), "%s", r.out);
	fx_res_free(&r);
}

/* The names of a Kubernetes port with both protocols (docs/kubernetes.md):
 * NAMESPACE/NAME:PORT/PROTO is a name, not VIP:PORT/PROTO, and each name
 * finds its own service. */
Test(ctl, kubernetes_port_names_resolve_by_name)
{
	static uint32_t table[FX_TABLE];	/* every slot backend 0 */
	struct fx_res r;

	cr_assert_eq(fx_service(&fx, 3, "default/dns:53", "203.0.113.20", 53,
				IPPROTO_UDP, FX_TABLE, 6, NULL), 0);
	cr_assert_eq(fx_service(&fx, 4, "default/dns:53/tcp", "203.0.113.20",
				53, IPPROTO_TCP, FX_TABLE, 8, NULL), 0);
	cr_assert_eq(fx_maglev(&fx, 6, table, FX_TABLE), 0);
	cr_assert_eq(fx_maglev(&fx, 8, table, FX_TABLE), 0);
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "maglev", "show",
			    "default/dns:53/tcp", NULL), 0);
	ok_json(&r);
	cr_assert_str_eq(jstr(r.json, "service"), "default/dns:53/tcp");
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "maglev", "show", "default/dns:53",
			    NULL), 0);
	ok_json(&r);
	cr_assert_str_eq(jstr(r.json, "service"), "default/dns:53");
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "maglev", "show",
			    "203.0.113.20:53/tcp", NULL), 0);
	ok_json(&r);
	cr_assert_str_eq(jstr(r.json, "service"), "default/dns:53/tcp");
	fx_res_free(&r);
}

Test(ctl, backend_list)
{
	struct fx_res r;
	json_t *b;

	/* counters of backend 2 on two CPUs */
	cr_assert_eq(fx_percpu_add(&fx, fx.be_stats, 2, sizeof(struct aeth_be_stats),
				   0, 0, 5), 0);
	cr_assert_eq(fx_percpu_add(&fx, fx.be_stats, 2, sizeof(struct aeth_be_stats),
				   fx.ncpus - 1, 0, 7), 0);
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "backend", "list", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 6);
	b = find_by(r.json, "address", "192.0.2.22");
	cr_assert_str_eq(jstr(b, "service"), "kube-apiserver");
	cr_assert_str_eq(jstr(b, "state"), "draining");
	cr_assert(json_is_true(json_object_get(b, "healthy")));
	b = find_by(r.json, "address", "192.0.2.23");
	cr_assert_eq(jint(b, "weight"), 2);
	cr_assert_str_eq(jstr(b, "state"), "active");
	cr_assert_eq(jint(b, "packets"), 12);
	b = find_by(r.json, "address", "2001:db8::32");
	cr_assert_str_eq(jstr(b, "service"), "dns");
	cr_assert(json_is_false(json_object_get(b, "healthy")));
	/* sorted by service, then address */
	cr_assert_str_eq(jstr(json_array_get(r.json, 0), "address"),
			 "2001:db8::31");
	cr_assert_str_eq(jstr(json_array_get(r.json, 2), "address"),
			 "192.0.2.21");
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "b", "l", NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "kube-apiserver  192.0.2.22"), "%s", r.out);
	cr_assert(strstr(r.out, "draining"));
	fx_res_free(&r);
}

Test(ctl, maglev_show)
{
	struct fx_res r;
	json_t *b, *t;

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "maglev", "show", "kube-apiserver",
			    NULL), 0);
	ok_json(&r);
	cr_assert_str_eq(jstr(r.json, "service"), "kube-apiserver");
	cr_assert_eq(jint(r.json, "table_size"), FX_TABLE);
	cr_assert_str_eq(jstr(r.json, "seed"),
			 "5f3c0a1e9b7d2c44a1b2c3d4e5f60718");
	cr_assert_null(json_object_get(r.json, "table"));
	b = json_object_get(r.json, "backends");
	/* slots i % 3 == 0 -> be 0: 84 of 251; the rest be 2: 167 */
	cr_assert_eq(jint(find_by(b, "address", "192.0.2.21"), "slots"), 84);
	cr_assert_eq(jint(find_by(b, "address", "192.0.2.23"), "slots"), 167);
	cr_assert_eq(jint(find_by(b, "address", "192.0.2.22"), "slots"), 0);
	fx_res_free(&r);

	/* by VIP:PORT/PROTO, raw */
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "mag", "s", "203.0.113.10:80/tcp",
			    "--raw", NULL), 0);
	ok_json(&r);
	cr_assert_str_eq(jstr(r.json, "service"), "web");
	t = json_object_get(r.json, "table");
	cr_assert_eq(json_array_size(t), FX_TABLE);
	cr_assert_str_eq(json_string_value(json_array_get(t, 0)), "192.0.2.41");
	cr_assert(json_is_null(json_array_get(t, 1)));
	cr_assert_eq(jint(r.json, "empty_slots"), 125);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "maglev", "show", "[2001:db8:f::53]:0/udp",
			    NULL), 0);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "2001:db8::31"), "%s", r.out);
	cr_assert(strstr(r.out, "100.00%"), "%s", r.out);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "maglev", "show", "nosuch", NULL), 0);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(jstr(r.json, "error"), "no service nosuch"));
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "-j", "maglev", "show", NULL), 0);
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(json_object_get(r.json, "error"));
	fx_res_free(&r);
}

Test(ctl, conntrack_list)
{
	struct aeth_flow f1 = fx_flow("198.51.100.7", 40000, "203.0.113.10",
				      6443, IPPROTO_TCP);
	struct aeth_flow f2 = fx_flow("198.51.100.8", 40001, "203.0.113.10",
				      6443, IPPROTO_TCP);
	struct aeth_flow f3 = fx_flow("2001:db8:100::9", 5353,
				      "2001:db8:f::53", 53, IPPROTO_UDP);
	uint64_t now = fx_now_ns();
	struct fx_res r;
	json_t *e;

	cr_assert_eq(fx_ct(&fx, &f2, 2, 0, now - 3000000000ull, false), 0);
	cr_assert_eq(fx_ct(&fx, &f1, 0, 0, now, true), 0);
	cr_assert_eq(fx_ct(&fx, &f3, 3, 1, now, true), 0);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "conntrack", "list", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 3);
	e = json_array_get(r.json, 0);	/* svc 0, lowest source first */
	cr_assert_str_eq(jstr(e, "src"), "198.51.100.7");
	cr_assert_eq(jint(e, "sport"), 40000);
	cr_assert_str_eq(jstr(e, "dst"), "203.0.113.10");
	cr_assert_eq(jint(e, "dport"), 6443);
	cr_assert_str_eq(jstr(e, "protocol"), "tcp");
	cr_assert_str_eq(jstr(e, "service"), "kube-apiserver");
	cr_assert_str_eq(jstr(e, "backend"), "192.0.2.21");
	cr_assert(json_is_true(json_object_get(e, "confirmed")));
	e = json_array_get(r.json, 1);
	cr_assert_str_eq(jstr(e, "backend"), "192.0.2.23");
	/* no packet used it after the one that wrote it (a lone SYN) */
	cr_assert(json_is_false(json_object_get(e, "confirmed")));
	cr_assert_geq(json_real_value(json_object_get(e, "updated_s_ago")),
		      2.5);
	fx_res_free(&r);

	/* streamed element by element: still one valid document, indented */
	cr_assert_eq(fx_ctl(&fx, &r, "-p", "conntrack", "list", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 3);
	cr_assert(strstr(r.out, "\n  \"service\": \"kube-apiserver\""), "%s",
		  r.out);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "conntrack", "list", "--service",
			    "dns", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 1);
	cr_assert_str_eq(jstr(json_array_get(r.json, 0), "backend"),
			 "2001:db8::31");
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "conntrack", "list", "--backend",
			    "192.0.2.23", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 1);
	cr_assert_str_eq(jstr(json_array_get(r.json, 0), "src"), "198.51.100.8");
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "conntrack", "list", "--source",
			    "2001:db8:100::9", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 1);
	cr_assert_eq(jint(json_array_get(r.json, 0), "sport"), 5353);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "conntrack", "list", "--source",
			    "198.51.100.7", "--service", "dns", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 0, "filters combine");
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "conntrack", "list", "--limit", "1",
			    NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(r.json), 1);
	fx_res_free(&r);

	/* "co" is config or conntrack since config joined */
	cr_assert_eq(fx_ctl(&fx, &r, "conn", "li", "--lim=2", NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "198.51.100.7:40000"), "%s", r.out);
	cr_assert(strstr(r.out, "203.0.113.10:6443"));
	cr_assert(strstr(r.out, "UPDATED"), "%s", r.out);
	cr_assert(strstr(r.out, "CONFIRMED"), "%s", r.out);
	cr_assert(strstr(r.out, "192.0.2.21  yes "), "%s", r.out);
	cr_assert(strstr(r.out, "192.0.2.23  no "), "%s", r.out);
	cr_assert(strstr(r.out, "s ago\n"), "%s", r.out);
	cr_assert_null(strstr(r.out, "2001:db8:100::9"));
	cr_assert(strstr(r.err, "2 of 3 entries shown"), "%s", r.err);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "conntrack", "list", "--limit", "x",
			    NULL), 0);
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(json_object_get(r.json, "error"));
	fx_res_free(&r);
}

Test(ctl, acl_list)
{
	struct fx_res r;
	json_t *c;

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "acl", "list", "kube-apiserver",
			    NULL), 0);
	ok_json(&r);
	cr_assert(json_is_true(json_object_get(r.json, "enabled")));
	c = json_object_get(r.json, "cidrs");
	cr_assert_eq(json_array_size(c), 2);
	/* IPv4 from the ::ffff: mapped trie key, first */
	cr_assert_str_eq(json_string_value(json_array_get(c, 0)),
			 "198.51.100.0/24");
	cr_assert_str_eq(json_string_value(json_array_get(c, 1)),
			 "2001:db8:100::/48");
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "acl", "list", "web", NULL), 0);
	ok_json(&r);
	cr_assert(json_is_false(json_object_get(r.json, "enabled")));
	cr_assert_eq(json_array_size(json_object_get(r.json, "cidrs")), 0);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "acl", "list", "203.0.113.10:6443/tcp",
			    NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "198.51.100.0/24\n"), "%s", r.out);
	cr_assert(strstr(r.out, "2 authorized networks"), "%s", r.out);
	cr_assert(strstr(r.out, "answered by the trie (no compiled form)"),
		  "%s", r.out);
	fx_res_free(&r);
}

/* The pinned map name under the fixture's pin directory, opened. */
static int fx_pinned(const char *name)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
	fd = bpf_obj_get(path);
	cr_assert_geq(fd, 0, "%s", path);
	return fd;
}

/* Writes the region of the intervals r[0..n) at offset for slot 0 (the
 * kube-apiserver's list), as the agent places it. */
static struct aeth_acl_rng_at fx_compiled(const uint64_t *r, size_t n,
					  uint32_t offset)
{
	int rng = fx_pinned(AETH_MAP_ACL_RNG), idx = fx_pinned(AETH_MAP_ACL_RNGIDX);
	struct aeth_acl_rng_at at = { 0 };
	uint64_t *region;
	uint32_t slot = 0;

	cr_assert_eq(aeth_acl_rng_region(r, n, &at, &region), 0);
	at.offset = offset;
	for (uint32_t i = 0; i < aeth_acl_rng_span(&at); i++) {
		uint32_t k = offset + i;

		cr_assert_eq(bpf_map_update_elem(rng, &k, &region[i], 0), 0);
	}
	cr_assert_eq(bpf_map_update_elem(idx, &slot, &at, 0), 0);
	free(region);
	close(rng);
	close(idx);
	return at;
}

static json_t *acl_compiled_json(struct fx_res *r)
{
	cr_assert_eq(fx_ctl(&fx, r, "-j", "acl", "list", "kube-apiserver",
			    NULL), 0);
	ok_json(r);
	return json_object_get(r->json, "ipv4_compiled");
}

/* acl list says what answers IPv4 sources: the compiled form, with its
 * directory when it has one, checked against the trie (a region that is
 * not the trie's, compiled, is reported), or the trie. */
Test(ctl, acl_list_compiled_form)
{
	const uint64_t one = aeth_acl_rng(0xc6336400, 0xc63364ff);
	const uint64_t wrong = aeth_acl_rng(0xc6336400, 0xc63365ff);
	static const char *const nine[] = {
		"10.0.0.0/16", "20.0.0.0/16", "30.0.0.0/16", "40.0.0.0/16",
		"50.0.0.0/16", "60.0.0.0/16", "70.0.0.0/16", "80.0.0.0/16",
		"90.0.0.0/16",
	};
	uint64_t r9[9];
	struct fx_res r;
	json_t *c;

	c = acl_compiled_json(&r);
	cr_assert(json_is_null(c), "no compiled form yet");
	fx_res_free(&r);

	fx_compiled(&one, 1, 7);	/* 198.51.100.0/24, the trie's */
	c = acl_compiled_json(&r);
	cr_assert_eq(jint(c, "intervals"), 1);
	cr_assert_eq(jint(c, "directory_blocks"), 0);
	cr_assert(json_is_true(json_object_get(c, "agrees_with_trie")));
	fx_res_free(&r);

	fx_compiled(&wrong, 1, 7);	/* one address block too many */
	c = acl_compiled_json(&r);
	cr_assert(json_is_false(json_object_get(c, "agrees_with_trie")));
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "acl", "list", "kube-apiserver", NULL), 0);
	cr_assert(strstr(r.out, "1 intervals, which DIFFERS from the trie"),
		  "%s", r.out);
	fx_res_free(&r);

	/* nine prefixes: a directory of 32 blocks after the intervals */
	cr_assert_eq(fx_acl(&fx, 0, nine, 9), 0);
	for (int i = 0; i < 9; i++)
		r9[i] = aeth_acl_rng((uint32_t)(10 * (i + 1)) << 24,
				     ((uint32_t)(10 * (i + 1)) << 24) | 0xffff);
	fx_compiled(r9, 9, 100);
	c = acl_compiled_json(&r);
	cr_assert_eq(jint(c, "intervals"), 9);
	cr_assert_eq(jint(c, "directory_blocks"), 32);
	cr_assert(json_is_true(json_object_get(c, "agrees_with_trie")));
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "acl", "list", "kube-apiserver", NULL), 0);
	cr_assert(strstr(r.out, "answered by the compiled form, 9 intervals, "
			 "directory of 32 blocks, which agrees with the trie"),
		  "%s", r.out);
	fx_res_free(&r);
}

Test(ctl, ratelimit_list)
{
	struct aeth_rl_src_key k;
	struct aeth_rl_src_state st;
	struct aeth_rl_svc_state ss = { 0 };
	uint64_t now = fx_now_ns();
	const char *srcs[] = { "198.51.100.7", "198.51.100.8", "198.51.100.9" };
	const uint64_t drops[] = { 5, 50, 0 };
	struct fx_res r;
	json_t *s;
	__u32 id = 0;

	for (int i = 0; i < 3; i++) {
		memset(&k, 0, sizeof(k));
		k.svc_id = 0;
		k.family = fx_addr(srcs[i], &k.prefix);
		st.admitted = 40 + i;
		st.dropped = drops[i];
		/* the second source is far over its budget right now */
		st.tat_ns = i == 1 ? now + 60000000000ull : now;
		cr_assert_eq(bpf_map_update_elem(fx.rl_src, &k, &st, 0), 0);
	}
	/* another service's source must not show */
	k.svc_id = 2;
	cr_assert_eq(bpf_map_update_elem(fx.rl_src, &k, &st, 0), 0);
	ss.dropped = 77;
	ss.tat_ns = now + 60000000000ull;
	cr_assert_eq(bpf_map_update_elem(fx.rl_svc, &id, &ss, 0), 0);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "ratelimit", "list",
			    "kube-apiserver", NULL), 0);
	ok_json(&r);
	cr_assert_eq(jint(r.json, "sources_total"), 3);
	cr_assert_eq(jint(r.json, "service_dropped"), 77);
	cr_assert(json_is_true(json_object_get(r.json, "service_limited")));
	s = json_object_get(r.json, "sources");
	cr_assert_eq(json_array_size(s), 3);
	cr_assert_str_eq(jstr(json_array_get(s, 0), "prefix"),
			 "198.51.100.8/32");
	cr_assert_eq(jint(json_array_get(s, 0), "dropped"), 50);
	cr_assert(json_is_true(json_object_get(json_array_get(s, 0),
					       "limited")));
	cr_assert_str_eq(jstr(json_array_get(s, 1), "prefix"),
			 "198.51.100.7/32");
	cr_assert(json_is_false(json_object_get(json_array_get(s, 1),
						"limited")));
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "rate", "l", "kube-apiserver",
			    "--top", "1", NULL), 0);
	ok_json(&r);
	cr_assert_eq(json_array_size(json_object_get(r.json, "sources")), 1);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "ratelimit", "list", "kube-apiserver",
			    NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "198.51.100.8/32"), "%s", r.out);
	cr_assert(strstr(r.out, "refusing now"), "%s", r.out);
	fx_res_free(&r);
}

Test(ctl, stats_summed_and_per_cpu)
{
	size_t ssz = sizeof(struct aeth_svc_stats);
	size_t gsz = sizeof(struct aeth_global_stats);
	size_t drop_na = offsetof(struct aeth_svc_stats, drops) +
			 8 * AETH_R_NOT_AUTHORIZED;
	size_t g_up = offsetof(struct aeth_global_stats, reasons) +
		      8 * AETH_R_UNCONFIGURED_PORT;
	size_t g_tx = offsetof(struct aeth_global_stats, events) +
		      8 * AETH_EV_TX;
	int last = fx.ncpus - 1;
	struct fx_res r;
	json_t *s, *pc;

	cr_assert_eq(fx_percpu_add(&fx, fx.svc_stats, 0, ssz, 0, 0, 10), 0);
	cr_assert_eq(fx_percpu_add(&fx, fx.svc_stats, 0, ssz, last, 0, 32), 0);
	cr_assert_eq(fx_percpu_add(&fx, fx.svc_stats, 0, ssz, last, 8, 4200), 0);
	cr_assert_eq(fx_percpu_add(&fx, fx.svc_stats, 0, ssz, 0, drop_na, 3), 0);
	cr_assert_eq(fx_percpu_add(&fx, fx.global, 0, gsz, last, g_up, 9), 0);
	cr_assert_eq(fx_percpu_add(&fx, fx.global, 0, gsz, 0, g_tx, 42), 0);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "stats", NULL), 0);
	ok_json(&r);
	s = find_by(json_object_get(r.json, "services"), "name",
		    "kube-apiserver");
	cr_assert_not_null(s);
	cr_assert_eq(jint(s, "packets"), 42);
	cr_assert_eq(jint(s, "bytes"), 4200);
	cr_assert_eq(jint(json_object_get(s, "drops"), "not_authorized"), 3);
	cr_assert_eq(jint(json_object_get(s, "drops"), "no_route"), 0);
	cr_assert_eq(jint(json_object_get(r.json, "reasons"),
			  "unconfigured_port"), 9);
	cr_assert_eq(jint(json_object_get(r.json, "events"), "tx"), 42);
	cr_assert_null(json_object_get(s, "per_cpu"));
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "stats", "--per-cpu", NULL), 0);
	ok_json(&r);
	s = find_by(json_object_get(r.json, "services"), "name",
		    "kube-apiserver");
	pc = json_object_get(s, "per_cpu");
	cr_assert_eq(json_array_size(pc), (size_t)fx.ncpus);
	cr_assert_eq(jint(json_array_get(pc, 0), "packets"), 10);
	cr_assert_eq(jint(json_array_get(pc, last), "packets"),
		     last ? 32 : 42);
	cr_assert_eq(json_array_size(json_object_get(r.json, "per_cpu")),
		     (size_t)fx.ncpus);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "stats", NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "not_authorized=3"), "%s", r.out);
	cr_assert(strstr(r.out, "drop unconfigured_port"), "%s", r.out);
	fx_res_free(&r);
}

Test(ctl, stats_rates_over_interval)
{
	char out_path[] = "/tmp/aeth-ct-stats-XXXXXX";
	int ofd = mkstemp(out_path), st;
	pid_t pid;
	json_t *doc, *s;
	char buf[65536] = "";
	ssize_t n;

	cr_assert_geq(ofd, 0);
	unlink(out_path);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(ofd, 1);
		execl(AETHERCTL_PATH, AETHERCTL_PATH, "--pin-dir", fx.dir, "-j",
		      "stats", "--interval", "2", "--count", "1", NULL);
		_exit(127);
	}
	/* between the two readings (at about 0 s and 2 s), 500 packets */
	usleep(1000000);
	cr_assert_eq(fx_percpu_add(&fx, fx.svc_stats, 0,
				   sizeof(struct aeth_svc_stats), 0, 0, 500), 0);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	n = pread(ofd, buf, sizeof(buf) - 1, 0);
	close(ofd);
	cr_assert_gt(n, 0);
	doc = json_loads(buf, 0, NULL);
	cr_assert_not_null(doc, "%s", buf);
	s = find_by(json_object_get(doc, "services"), "name", "kube-apiserver");
	cr_assert_float_eq(json_real_value(json_object_get(s, "packets")), 250.0,
			   1e-6, "%s", buf);
	cr_assert_float_eq(json_real_value(json_object_get(doc, "interval")),
			   2.0, 1e-9);
	json_decref(doc);
}

Test(ctl, status)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info), zero = 0;
	struct aeth_meta meta;
	char tag[17];
	struct fx_res r;
	json_t *ifs, *i0;

	memset(&info, 0, sizeof(info));
	cr_assert_eq(bpf_obj_get_info_by_fd(fx.prog_fd, &info, &len), 0);
	for (int i = 0; i < 8; i++)
		snprintf(tag + 2 * i, 3, "%02x", info.tag[i]);
	cr_assert_eq(bpf_map_lookup_elem(fx.meta, &zero, &meta), 0);
	meta.generation = 7;
	meta.applied_unix_ns = 1795000000ull * 1000000000ull;
	for (int i = 0; i < 32; i++)
		meta.config_hash[i] = (uint8_t)i;
	meta.n_interfaces = 2;
	snprintf(meta.ifaces[0].name, AETH_IFNAME_LEN, "eth0");
	meta.ifaces[0].ifindex = 2;
	meta.ifaces[0].mode = AETH_XDP_MODE_NATIVE;
	meta.ifaces[0].prog_id = info.id;
	snprintf(meta.ifaces[1].name, AETH_IFNAME_LEN, "eth1");
	meta.ifaces[1].ifindex = 3;
	meta.ifaces[1].mode = AETH_XDP_MODE_GENERIC;
	meta.ifaces[1].prog_id = 0;
	cr_assert_eq(bpf_map_update_elem(fx.meta, &zero, &meta, 0), 0);

	cr_assert_eq(fx_ctl(&fx, &r, "-p", "status", NULL), 0);
	ok_json(&r);
	cr_assert_eq(jint(r.json, "schema_version"), AETH_SCHEMA_VERSION);
	cr_assert_eq(jint(r.json, "generation"), 7);
	cr_assert_str_eq(jstr(r.json, "config_hash"),
			 "000102030405060708090a0b0c0d0e0f"
			 "101112131415161718191a1b1c1d1e1f");
	cr_assert_str_eq(jstr(r.json, "applied_at"), "2026-11-18T11:06:40Z");
	ifs = json_object_get(r.json, "interfaces");
	cr_assert_eq(json_array_size(ifs), 2);
	i0 = json_array_get(ifs, 0);
	cr_assert_str_eq(jstr(i0, "name"), "eth0");
	cr_assert_str_eq(jstr(i0, "mode"), "native");
	cr_assert_eq(jint(i0, "prog_id"), info.id);
	cr_assert_str_eq(jstr(i0, "prog_tag"), tag);
	cr_assert(json_is_true(json_object_get(i0, "prog_loaded")));
	cr_assert_str_eq(jstr(json_array_get(ifs, 1), "mode"), "generic");
	cr_assert(json_is_false(json_object_get(json_array_get(ifs, 1),
						"prog_loaded")));
	cr_assert_str_eq(jstr(json_object_get(r.json, "node"), "ipv4"),
			 "192.0.2.11");
	/* -p indents */
	cr_assert(strstr(r.out, "\n  \"schema_version\""), "%s", r.out);
	fx_res_free(&r);

	cr_assert_eq(fx_ctl(&fx, &r, "status", NULL), 0);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "generation      7"), "%s", r.out);
	cr_assert(strstr(r.out, tag), "%s", r.out);
	cr_assert(strstr(r.out, "generic"));
	fx_res_free(&r);
}

static void add_vip(const char *addr)
{
	struct aeth_vip_key k;
	__u32 one = 1;

	memset(&k, 0, sizeof(k));
	cr_assert_eq(inet_pton(AF_INET, addr, &k.addr.v4), 1);
	k.family = AETH_AF_INET;
	cr_assert_eq(bpf_map_update_elem(fx.vip, &k, &one, BPF_ANY), 0);
}

static bool addr_same(const union aeth_addr *x, const union aeth_addr *y)
{
	return !memcmp(x, y, sizeof(*x));
}

static json_t *status_vip_filter(struct fx_res *r)
{
	cr_assert_eq(fx_ctl(&fx, r, "-j", "status", NULL), 0);
	ok_json(r);
	return json_object_get(json_array_get(json_object_get(r->json,
							      "interfaces"),
					      0),
			       "vip_filter");
}

/* status reads the VIP filter out of the program on each interface (a
 * global of the program, not a pinned map): in force while it holds under
 * the tables' stamp, lapsed otherwise, and any VIP whose bit says "no VIP
 * here" is counted, and warned of while the filter is in force. */
Test(ctl, status_shows_the_vip_filter_of_each_program)
{
	static __u64 words[AETH_VIP_FILTER_WORDS];
	struct bpf_prog_info info;
	__u32 len = sizeof(info), zero = 0;
	struct aeth_vip_key k, *prev = NULL;
	struct aeth_meta meta;
	union aeth_addr b;
	struct fx_res r;
	long long open;
	int shared = 0;
	json_t *vf;

	memset(&info, 0, sizeof(info));
	cr_assert_eq(bpf_obj_get_info_by_fd(fx.prog_fd, &info, &len), 0);
	cr_assert_eq(bpf_map_lookup_elem(fx.meta, &zero, &meta), 0);
	/* two interfaces, one program: its filter counted once */
	meta.n_interfaces = 2;
	snprintf(meta.ifaces[0].name, AETH_IFNAME_LEN, "eth0");
	meta.ifaces[0].prog_id = info.id;
	snprintf(meta.ifaces[1].name, AETH_IFNAME_LEN, "eth1");
	meta.ifaces[1].prog_id = info.id;
	cr_assert_eq(bpf_map_update_elem(fx.meta, &zero, &meta, 0), 0);
	add_vip("192.0.2.202");
	memset(&b, 0, sizeof(b));
	inet_pton(AF_INET, "192.0.2.202", &b.v4);

	/* as its agent writes it: every VIP's bit clear */
	aeth_vip_filter_all_set(words);
	while (!bpf_map_get_next_key(fx.vip, prev, &k)) {
		aeth_vip_filter_clear(words, &k.addr);
		if (!addr_same(&k.addr, &b))
			shared += aeth_vip_filter_bucket(&k.addr) ==
				  aeth_vip_filter_bucket(&b);
		prev = &k;
	}
	cr_assert_eq(shared, 0, "192.0.2.202 has a bucket of its own");
	cr_assert_eq(fx_vip_filter_set(&fx, words, true), 0);
	vf = status_vip_filter(&r);
	cr_assert(json_is_true(json_object_get(vf, "in_force")));
	cr_assert_eq(jint(vf, "stamp"), jint(vf, "tables_stamp"));
	open = jint(vf, "open_buckets");
	cr_assert_gt(open, 0);
	cr_assert_eq(jint(vf, "vips_hidden"), 0);
	fx_res_free(&r);

	/* one VIP's bit set: that VIP's packets would pass as no VIP's */
	words[aeth_vip_filter_word(aeth_vip_filter_bucket(&b))] |=
		aeth_vip_filter_mask(aeth_vip_filter_bucket(&b));
	cr_assert_eq(fx_vip_filter_set(&fx, words, true), 0);
	vf = status_vip_filter(&r);
	cr_assert_eq(jint(vf, "open_buckets"), open - 1);
	cr_assert_eq(jint(vf, "vips_hidden"), 1);
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "status", NULL), 0);
	cr_assert(strstr(r.out, "in force"), "%s", r.out);
	cr_assert(strstr(r.out, "warning: a VIP filter in force passes 1 VIP "
				"as no VIP"), "%s", r.out);
	fx_res_free(&r);

	/* not vouched for: lapsed, every packet the long way, no warning */
	cr_assert_eq(fx_vip_filter_set(&fx, words, false), 0);
	vf = status_vip_filter(&r);
	cr_assert(json_is_false(json_object_get(vf, "in_force")));
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "status", NULL), 0);
	cr_assert(strstr(r.out, "lapsed"), "%s", r.out);
	cr_assert_null(strstr(r.out, "warning"), "%s", r.out);
	fx_res_free(&r);
}

/* explain's verdict for one packet (JSON). */
static json_t *explain(const char *src, const char *dst, const char *proto,
		       bool syn)
{
	struct fx_res r;
	json_t *doc;

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "explain", "--src", src, "--dst",
			    dst, "--proto", proto, syn ? "--syn" : NULL, NULL),
		     0);
	ok_json(&r);
	doc = json_incref(r.json);
	fx_res_free(&r);
	return doc;
}

static void expect(json_t *doc, const char *verdict, const char *reason,
		   const char *backend)
{
	cr_assert_str_eq(jstr(doc, "verdict"), verdict, "verdict");
	cr_assert_str_eq(jstr(doc, "reason"), reason, "reason");
	if (backend)
		cr_assert_str_eq(jstr(doc, "backend"), backend);
	else
		cr_assert(json_is_null(json_object_get(doc, "backend")));
	json_decref(doc);
}

Test(ctl, explain_rules)
{
	const __u32 seed[4] = FX_SEED;
	struct aeth_flow f = fx_flow("198.51.100.7", 40000, "203.0.113.10",
				     6443, IPPROTO_TCP);
	uint32_t slot = aeth_maglev_slot(aeth_flow_hash(&f, seed), FX_TABLE);
	struct aeth_rl_src_key k;
	struct aeth_rl_src_state st = { 0 };
	struct aeth_rl_svc_state ss = { 0 };
	json_t *plain, *syn;
	__u32 id = 0;

	expect(explain("198.51.100.7:40000", "192.0.2.99:6443", "tcp", false),
	       "pass", "not_service", NULL);
	expect(explain("198.51.100.7:40000", "203.0.113.10:22", "tcp", false),
	       "drop", "unconfigured_port", NULL);
	expect(explain("203.0.113.77:40000", "203.0.113.10:6443", "tcp", true),
	       "drop", "not_authorized", NULL);
	/* Maglev: slot from the shared hash, i % 3 == 0 -> be 0 else be 2 */
	expect(explain("198.51.100.7:40000", "203.0.113.10:6443", "tcp", true),
	       "tx", "maglev", slot % 3 == 0 ? "192.0.2.21" : "192.0.2.23");
	/* a connection entry wins, even to a draining backend */
	cr_assert_eq(fx_ct(&fx, &f, 1, 0, fx_now_ns(), true), 0);
	expect(explain("198.51.100.7:40000", "203.0.113.10:6443", "tcp", false),
	       "tx", "conntrack", "192.0.2.22");

	/* the source over its budget: SYNs refused, other packets not */
	memset(&k, 0, sizeof(k));
	k.family = fx_addr("198.51.100.8", &k.prefix);
	st.tat_ns = fx_now_ns() + 60000000000ull;
	cr_assert_eq(bpf_map_update_elem(fx.rl_src, &k, &st, 0), 0);
	expect(explain("198.51.100.8:1234", "203.0.113.10:6443", "tcp", true),
	       "drop", "rate_limited", NULL);
	plain = explain("198.51.100.8:1234", "203.0.113.10:6443", "tcp", false);
	cr_assert_str_eq(jstr(plain, "verdict"), "tx");
	json_decref(plain);
	/* another source is not limited: its SYN goes where its packets go */
	plain = explain("198.51.100.9:1234", "203.0.113.10:6443", "tcp", false);
	syn = explain("198.51.100.9:1234", "203.0.113.10:6443", "tcp", true);
	cr_assert_str_eq(jstr(syn, "verdict"), "tx");
	cr_assert_str_eq(jstr(syn, "backend"), jstr(plain, "backend"));
	json_decref(plain);
	json_decref(syn);
	/* the service cap is looked at first */
	ss.tat_ns = fx_now_ns() + 60000000000ull;
	cr_assert_eq(bpf_map_update_elem(fx.rl_svc, &id, &ss, 0), 0);
	expect(explain("198.51.100.8:1234", "203.0.113.10:6443", "tcp", true),
	       "drop", "service_rate_limited", NULL);

	/* IPv6, every-port UDP service; unhealthy backend never chosen */
	expect(explain("[2001:db8:100::9]:5353", "[2001:db8:f::53]:53", "udp",
		       false), "tx", "maglev", "2001:db8::31");
}

Test(ctl, explain_holes_give_no_backend)
{
	const __u32 seed[4] = FX_SEED;
	int seen_hole = 0, seen_tx = 0;

	for (uint16_t port = 1000; port < 1040; port++) {
		struct aeth_flow f = fx_flow("198.51.100.7", port,
					     "203.0.113.10", 80, IPPROTO_TCP);
		uint32_t slot = aeth_maglev_slot(aeth_flow_hash(&f, seed), FX_TABLE);
		char src[64];
		json_t *d;

		snprintf(src, sizeof(src), "198.51.100.7:%u", port);
		d = explain(src, "203.0.113.10:80", "tcp", false);
		cr_assert_eq(jint(d, "slot"), slot);
		if (slot % 2) {
			expect(d, "drop", "no_backend", NULL);
			seen_hole++;
		} else {
			expect(d, "tx", "maglev", "192.0.2.41");
			seen_tx++;
		}
	}
	cr_assert(seen_hole && seen_tx);
}

Test(ctl, explain_bad_arguments)
{
	static const char *const bad[][6] = {
		{ "--src", "198.51.100.7", "--dst", "203.0.113.10:1", "--proto", "tcp" },
		{ "--src", "198.51.100.7:1", "--dst", "203.0.113.10:1", "--proto", "icmp" },
		{ "--src", "198.51.100.7:1", "--dst", "[2001:db8::1]:1", "--proto", "tcp" },
		{ "--src", "198.51.100.7:99999", "--dst", "203.0.113.10:1", "--proto", "tcp" },
		{ "--src", "2001:db8::1:80", "--dst", "[2001:db8::2]:1", "--proto", "tcp" },
	};
	struct fx_res r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(fx_ctl(&fx, &r, "-j", "explain", bad[i][0], bad[i][1],
				    bad[i][2], bad[i][3], bad[i][4], bad[i][5],
				    NULL), 0);
		cr_assert_eq(r.status, 2, "case %zu: %s", i, r.out);
		cr_assert_not_null(json_object_get(r.json, "error"), "%s", r.out);
		fx_res_free(&r);
	}
	cr_assert_eq(fx_ctl(&fx, &r, "explain", "--src", "198.51.100.7:1", NULL),
		     0);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "required"), "%s", r.err);
	fx_res_free(&r);
}

/* Every map's bytes, to show a failing run wrote nothing. */
static char *snapshot(void)
{
	char cmd[256], *buf = NULL;
	size_t len = 0;
	FILE *f, *m = open_memstream(&buf, &len);

	snprintf(cmd, sizeof(cmd),
		 "for m in %s/*; do /usr/sbin/bpftool -j map dump pinned $m; done",
		 fx.dir);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	for (int c; (c = fgetc(f)) != EOF;)
		fputc(c, m);
	pclose(f);
	fclose(m);
	return buf;
}

Test(ctl, schema_mismatch_refused_and_nothing_written)
{
	struct aeth_meta meta;
	struct fx_res r;
	__u32 zero = 0;
	char *before, *after, want[64];

	cr_assert_eq(bpf_map_lookup_elem(fx.meta, &zero, &meta), 0);
	meta.schema_version = 99;	/* not this build's */
	cr_assert_eq(bpf_map_update_elem(fx.meta, &zero, &meta, 0), 0);
	before = snapshot();

	cr_assert_eq(fx_ctl(&fx, &r, "-j", "service", "list", NULL), 0);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(jstr(r.json, "error"), "schema version 99"), "%s",
		  r.out);
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "status", NULL), 0);
	cr_assert_eq(r.status, 1);
	cr_assert_str_eq(r.out, "");
	snprintf(want, sizeof(want), "is not supported (this build knows %u)",
		 AETH_SCHEMA_VERSION);
	cr_assert(strstr(r.err, want), "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1,
		     "one line: %s", r.err);
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "explain", "--src", "198.51.100.7:1",
			    "--dst", "203.0.113.10:6443", "--proto", "tcp",
			    "--syn", NULL), 0);
	cr_assert_eq(r.status, 1);
	fx_res_free(&r);

	after = snapshot();
	cr_assert_str_eq(after, before, "no map changed");
	free(before);
	free(after);
}

Test(ctl, reads_change_nothing)
{
	struct aeth_flow f = fx_flow("198.51.100.7", 40000, "203.0.113.10",
				     6443, IPPROTO_TCP);
	struct fx_res r;
	char *before, *after;

	cr_assert_eq(fx_ct(&fx, &f, 0, 0, 1, true), 0);
	before = snapshot();
	cr_assert_eq(fx_ctl(&fx, &r, "explain", "--src", "198.51.100.9:1",
			    "--dst", "203.0.113.10:6443", "--proto", "tcp",
			    "--syn", NULL), 0);
	cr_assert_eq(r.status, 0);
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "conntrack", "list", NULL), 0);
	fx_res_free(&r);
	cr_assert_eq(fx_ctl(&fx, &r, "ratelimit", "list", "kube-apiserver",
			    NULL), 0);
	fx_res_free(&r);
	after = snapshot();
	cr_assert_str_eq(after, before, "explain charges no limiter, adds no "
			 "connection");
	free(before);
	free(after);
}

Test(ctl, missing_pin_dir)
{
	struct fx_res r;
	char dir[128];

	snprintf(dir, sizeof(dir), "%s-missing", fx.dir);
	cr_assert_eq(fx_ctl_dir(dir, &r, "-j", "service", "list", NULL), 0);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(jstr(r.json, "error"), "no aether-lb state under"),
		  "%s", r.out);
	fx_res_free(&r);
	cr_assert_eq(fx_ctl_dir(dir, &r, "status", NULL), 0);
	cr_assert_eq(r.status, 1);
	cr_assert_str_eq(r.out, "");
	cr_assert(strstr(r.err, dir), "%s", r.err);
	cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1);
	fx_res_free(&r);
	cr_assert_eq(access(dir, F_OK), -1, "nothing created");

	cr_assert_eq(fx_ctl_dir(dir, &r, "-j", "--frob", "status", NULL), 0);
	cr_assert_eq(r.status, 2);
	cr_assert_not_null(json_object_get(r.json, "error"));
	fx_res_free(&r);
}
