/* The configuration document: valid documents and their defaults, and
 * invalid ones rejected with the exact place and message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>

#include "config.h"
#include "config_asserts.h"
#include "sha256.h"

/* SPEC.md section 4, verbatim. */
static const char spec_example[] =
	"{\n"
	"  \"version\": 1,\n"
	"  \"node\": {\n"
	"    \"interfaces\": [\"eth0\"],\n"
	"    \"xdp_mode\": \"native\",\n"
	"    \"addresses\": { \"ipv4\": \"192.0.2.11\", \"ipv6\": \"2001:db8::11\" },\n"
	"    \"mtu\": 1500\n"
	"  },\n"
	"  \"maglev\": { \"seed\": \"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\", \"table_size\": 16381 },\n"
	"  \"conntrack\": { \"max_entries\": 1048576 },\n"
	"  \"services\": [\n"
	"    {\n"
	"      \"name\": \"kube-apiserver\",\n"
	"      \"vip\": \"203.0.113.10\",\n"
	"      \"port\": 6443,\n"
	"      \"protocol\": \"tcp\",\n"
	"      \"table_size\": 16381,\n"
	"      \"authorized_networks\": {\n"
	"        \"enabled\": true,\n"
	"        \"cidrs\": [\"198.51.100.0/24\", \"2001:db8:100::/48\"]\n"
	"      },\n"
	"      \"rate_limit\": {\n"
	"        \"new_connections_per_second\": 20,\n"
	"        \"burst\": 40,\n"
	"        \"source_prefix_v4\": 32,\n"
	"        \"source_prefix_v6\": 64,\n"
	"        \"service_new_connections_per_second\": 5000\n"
	"      },\n"
	"      \"health_check\": { \"type\": \"tcp\", \"port\": 6443, \"interval_ms\": 1000,\n"
	"                        \"timeout_ms\": 500, \"rise\": 2, \"fall\": 3 },\n"
	"      \"backends\": [\n"
	"        { \"address\": \"192.0.2.21\", \"weight\": 1 },\n"
	"        { \"address\": \"192.0.2.22\", \"weight\": 1, \"state\": \"draining\" }\n"
	"      ]\n"
	"    }\n"
	"  ]\n"
	"}\n";

static const char minimal[] =
	"{\"version\": 1,"
	" \"node\": {\"interfaces\": [\"veth0\"], \"addresses\": {\"ipv4\": \"192.0.2.1\"}},"
	" \"maglev\": {\"seed\": \"00112233445566778899AABBCCDDEEFF\", \"table_size\": 4093},"
	" \"services\": [{\"name\": \"web\", \"vip\": \"203.0.113.80\", \"port\": 80,"
	"   \"protocol\": \"udp\", \"health_check\": {\"type\": \"tcp\"},"
	"   \"rate_limit\": {\"new_connections_per_second\": 7},"
	"   \"backends\": [{\"address\": \"192.0.2.31\"}]}]}";

/* ---- valid documents ---- */

Test(config, spec_example_parses)
{
	struct aeth_config *cfg = parse_ok(spec_example);
	const struct aeth_cfg_service *s;
	uint8_t hash[32];

	cr_assert_eq(cfg->version, 1);
	cr_assert_eq(cfg->n_interfaces, 1);
	cr_assert_str_eq(cfg->interfaces[0], "eth0");
	cr_assert_eq(cfg->xdp_mode, AETH_XDP_MODE_NATIVE);
	cr_assert_eq(cfg->node_v4.family, AETH_AF_INET);
	cr_assert_eq(cfg->node_v4.addr.bytes[0], 192);
	cr_assert_eq(cfg->node_v4.addr.bytes[3], 11);
	cr_assert_eq(cfg->node_v6.family, AETH_AF_INET6);
	cr_assert_eq(cfg->node_v6.addr.bytes[1], 0x01);
	cr_assert_eq(cfg->node_v6.addr.bytes[15], 0x11);
	cr_assert_eq(cfg->mtu, 1500);
	cr_assert_eq(cfg->seed[0], 0x5f);
	cr_assert_eq(cfg->seed[15], 0x18);
	cr_assert_eq(cfg->table_size, 16381);
	cr_assert_eq(cfg->ct_max_entries, 1048576);
	cr_assert_eq(cfg->ct_insert_rate, AETH_DEFAULT_CT_INSERT_RATE);

	cr_assert_eq(cfg->n_services, 1);
	s = &cfg->services[0];
	cr_assert_str_eq(s->name, "kube-apiserver");
	cr_assert_str_eq(s->vip_text, "203.0.113.10");
	cr_assert_eq(s->vip.family, AETH_AF_INET);
	cr_assert_eq(s->port, 6443);
	cr_assert_eq(s->proto, 6);
	cr_assert_eq(s->table_size, 16381);
	cr_assert(s->acl_enabled);
	cr_assert_eq(s->n_cidrs, 2);
	cr_assert_eq(s->cidrs[0].ip.family, AETH_AF_INET);
	cr_assert_eq(s->cidrs[0].prefixlen, 24);
	cr_assert_eq(s->cidrs[1].ip.family, AETH_AF_INET6);
	cr_assert_eq(s->cidrs[1].prefixlen, 48);
	cr_assert_eq(s->cidrs[1].ip.addr.bytes[5], 0x00);
	cr_assert_eq(s->cidrs[1].ip.addr.bytes[4], 0x01);
	cr_assert(s->rate_limit.enabled);
	cr_assert_eq(s->rate_limit.per_source, 20);
	cr_assert_eq(s->rate_limit.burst, 40);
	cr_assert_eq(s->rate_limit.prefix_v4, 32);
	cr_assert_eq(s->rate_limit.prefix_v6, 64);
	cr_assert_eq(s->rate_limit.per_service, 5000);
	cr_assert_eq(s->health.type, AETH_HC_TCP);
	cr_assert_eq(s->health.port, 6443);
	cr_assert_eq(s->health.interval_ms, 1000);
	cr_assert_eq(s->health.timeout_ms, 500);
	cr_assert_eq(s->health.rise, 2);
	cr_assert_eq(s->health.fall, 3);
	cr_assert_eq(s->n_backends, 2);
	cr_assert_str_eq(s->backends[0].address_text, "192.0.2.21");
	cr_assert_eq(s->backends[0].weight, 1);
	cr_assert(!s->backends[0].draining);
	cr_assert_str_eq(s->backends[1].address_text, "192.0.2.22");
	cr_assert(s->backends[1].draining);

	cr_assert_eq(cfg->text_len, strlen(spec_example));
	cr_assert_str_eq(cfg->text, spec_example);
	aeth_sha256(spec_example, strlen(spec_example), hash);
	cr_assert_arr_eq(cfg->hash, hash, 32);
	aeth_config_free(cfg);
}

Test(config, defaults_are_filled)
{
	struct aeth_config *cfg = parse_ok(minimal);
	const struct aeth_cfg_service *s = &cfg->services[0];

	cr_assert_eq(cfg->xdp_mode, AETH_XDP_MODE_NATIVE);
	cr_assert_eq(cfg->mtu, 1500);
	cr_assert_eq(cfg->node_v6.family, 0);
	cr_assert_eq(cfg->seed[9], 0x99);
	cr_assert_eq(cfg->seed[10], 0xaa);
	cr_assert_eq(cfg->ct_max_entries, AETH_DEFAULT_CT_ENTRIES);
	cr_assert_eq(cfg->ct_insert_rate, AETH_DEFAULT_CT_INSERT_RATE);
	cr_assert_eq(cfg->udp_timeout_s, 30);
	cr_assert_eq(cfg->icmp_rate, 1000);
	cr_assert_eq(cfg->n_decap_sources, 0, "no tunnel accepted by default");
	cr_assert_eq(s->proto, 17);
	cr_assert_eq(s->table_size, 4093, "inherits maglev.table_size");
	cr_assert(!s->acl_enabled);
	cr_assert_eq(s->n_cidrs, 0);
	cr_assert(s->rate_limit.enabled);
	cr_assert_eq(s->rate_limit.per_source, 7);
	cr_assert_eq(s->rate_limit.burst, 7, "burst defaults to the rate");
	cr_assert_eq(s->rate_limit.prefix_v4, 32);
	cr_assert_eq(s->rate_limit.prefix_v6, 64);
	cr_assert_eq(s->rate_limit.per_service, 0);
	cr_assert_eq(s->health.type, AETH_HC_TCP);
	cr_assert_eq(s->health.port, 0);
	cr_assert_str_eq(s->health.path, "/");
	cr_assert_eq(s->health.interval_ms, 1000);
	cr_assert_eq(s->health.timeout_ms, 500);
	cr_assert_eq(s->health.rise, 2);
	cr_assert_eq(s->health.fall, 3);
	cr_assert_eq(s->backends[0].weight, 1);
	cr_assert(!s->backends[0].draining);
	aeth_config_free(cfg);
}

Test(config, decap_sources_udp_timeout_and_icmp_rate)
{
	struct aeth_config *cfg = parse_ok(
		"{\"version\": 1,"
		" \"node\": {\"interfaces\": [\"eth0\"], \"addresses\": {\"ipv4\": \"192.0.2.1\"}},"
		" \"maglev\": {\"seed\": \"00112233445566778899AABBCCDDEEFF\"},"
		" \"conntrack\": {\"udp_timeout_s\": 120},"
		" \"decap\": {\"sources\": [\"192.0.2.11/32\", \"2001:db8:1::/64\"]},"
		" \"icmp\": {\"too_big_per_second_per_cpu\": 0},"
		" \"services\": []}");

	cr_assert_eq(cfg->udp_timeout_s, 120);
	cr_assert_eq(cfg->icmp_rate, 0);
	cr_assert_eq(cfg->n_decap_sources, 2);
	cr_assert_eq(cfg->decap_sources[0].ip.family, AETH_AF_INET);
	cr_assert_eq(cfg->decap_sources[0].prefixlen, 32);
	cr_assert_eq(cfg->decap_sources[1].ip.family, AETH_AF_INET6);
	cr_assert_eq(cfg->decap_sources[1].prefixlen, 64);
	aeth_config_free(cfg);
}

Test(config, absent_sections_and_canonical_addresses)
{
	struct aeth_config *cfg = parse_ok(
		"{\"version\": 1, \"node\": {\"interfaces\": [\"eth0\", \"eth1\"],"
		" \"xdp_mode\": \"auto\", \"mtu\": 9000,"
		" \"addresses\": {\"ipv6\": \"2001:DB8:0:0::0011\"}},"
		" \"maglev\": {\"seed\": \"ffffffffffffffffffffffffffffffff\"},"
		" \"conntrack\": {\"max_entries\": 2048, \"insert_rate_per_cpu\": 0},"
		" \"services\": [{\"name\": \"dns\", \"vip\": \"2001:db8:0::53\","
		"  \"port\": 0, \"protocol\": \"udp\","
		"  \"authorized_networks\": {\"enabled\": true},"
		"  \"health_check\": {\"type\": \"http\", \"port\": 8080,"
		"   \"path\": \"/healthz?full=1\", \"interval_ms\": 200},"
		"  \"backends\": [{\"address\": \"2001:0db8::0021\", \"weight\": 0},"
		"   {\"address\": \"2001:db8::22\", \"weight\": 65535}]},"
		"  {\"name\": \"empty\", \"vip\": \"2001:db8::53\", \"port\": 53,"
		"   \"protocol\": \"udp\", \"backends\": []}]}");
	const struct aeth_cfg_service *s = &cfg->services[0];

	cr_assert_eq(cfg->n_interfaces, 2);
	cr_assert_str_eq(cfg->interfaces[1], "eth1");
	cr_assert_eq(cfg->xdp_mode, AETH_XDP_MODE_AUTO);
	cr_assert_eq(cfg->mtu, 9000);
	cr_assert_eq(cfg->node_v4.family, 0);
	cr_assert_eq(cfg->table_size, 16381);
	cr_assert_eq(cfg->ct_max_entries, 2048);
	cr_assert_eq(cfg->ct_insert_rate, 0);
	cr_assert_str_eq(s->vip_text, "2001:db8::53");
	cr_assert_eq(s->port, 0);
	cr_assert(s->acl_enabled, "enabled with no list: nobody gets in");
	cr_assert_eq(s->n_cidrs, 0);
	cr_assert(!s->rate_limit.enabled);
	cr_assert_eq(s->health.type, AETH_HC_HTTP);
	cr_assert_str_eq(s->health.path, "/healthz?full=1");
	cr_assert_eq(s->health.timeout_ms, 100, "half the interval");
	cr_assert_str_eq(s->backends[0].address_text, "2001:db8::21");
	cr_assert_eq(s->backends[0].weight, 0);
	cr_assert_eq(s->backends[1].weight, 65535);
	cr_assert_eq(cfg->services[1].n_backends, 0);
	cr_assert_eq(cfg->services[1].port, 53);
	aeth_config_free(cfg);
}

Test(config, empty_service_list_is_valid)
{
	struct aeth_config *cfg = parse_ok(
		"{\"version\": 1, \"node\": {\"interfaces\": [\"eth0\"],"
		" \"addresses\": {\"ipv4\": \"192.0.2.1\"}},"
		" \"maglev\": {\"seed\": \"00000000000000000000000000000001\"},"
		" \"services\": []}");

	cr_assert_eq(cfg->n_services, 0);
	cr_assert_null(cfg->services);
	aeth_config_free(cfg);
}

/* An https check defaults to /readyz; ca and server_name are kept as given.
 * An IPv6-only node may say "ipv4": "" (as a template with an empty
 * variable renders it). */
Test(config, https_check_and_ipv6_only_node)
{
	struct aeth_config *cfg = parse_ok(
		"{\"version\": 1, \"node\": {\"interfaces\": [\"eth0\"],"
		" \"addresses\": {\"ipv4\": \"\", \"ipv6\": \"2001:db8::11\"}},"
		" \"maglev\": {\"seed\": \"00000000000000000000000000000001\"},"
		" \"services\": [{\"name\": \"api\", \"vip\": \"2001:db8::10\","
		"  \"port\": 6443, \"protocol\": \"tcp\","
		"  \"health_check\": {\"type\": \"https\", \"ca\": \"/etc/k/ca.crt\","
		"   \"server_name\": \"kubernetes.default\"},"
		"  \"backends\": []},"
		"  {\"name\": \"api2\", \"vip\": \"2001:db8::12\", \"port\": 6443,"
		"   \"protocol\": \"tcp\", \"health_check\": {\"type\": \"https\","
		"   \"path\": \"/livez\"}, \"backends\": []}]}");
	const struct aeth_cfg_health *a = &cfg->services[0].health;
	const struct aeth_cfg_health *b = &cfg->services[1].health;

	cr_assert_eq(cfg->node_v4.family, 0, "empty ipv4 is absent");
	cr_assert_eq(cfg->node_v6.family, AETH_AF_INET6);
	cr_assert_eq(a->type, AETH_HC_HTTPS);
	cr_assert_str_eq(a->path, "/readyz");
	cr_assert_str_eq(a->ca, "/etc/k/ca.crt");
	cr_assert_str_eq(a->server_name, "kubernetes.default");
	cr_assert_str_eq(b->path, "/livez");
	cr_assert_str_eq(b->ca, "", "no ca: not verified");
	cr_assert_str_eq(b->server_name, "");
	aeth_config_free(cfg);
}

/* A document for every node leaves the NIC and the addresses to the
 * agent (its flags or what it finds on the node). */
Test(config, node_nic_and_addresses_may_be_left_to_the_agent)
{
	struct aeth_config *cfg = parse_ok(
		"{\"version\": 1, \"node\": {\"mtu\": 1500},"
		" \"maglev\": {\"seed\": \"00000000000000000000000000000001\"},"
		" \"services\": [{\"name\": \"api\", \"vip\": \"203.0.113.10\","
		"  \"port\": 6443, \"protocol\": \"tcp\","
		"  \"backends\": [{\"address\": \"192.0.2.21\"},"
		"   {\"address\": \"2001:db8::21\"}]}]}");

	cr_assert_eq(cfg->n_interfaces, 0);
	cr_assert_eq(cfg->node_v4.family, 0);
	cr_assert_eq(cfg->node_v6.family, 0);
	cr_assert_eq(cfg->services[0].n_backends, 2);
	aeth_config_free(cfg);
}

/* ---- mutations of the SPEC example ---- */

/* Set (or with value NULL delete) the node at a JSON pointer; an index equal
 * to an array's size appends. */
static void set_at(json_t *root, const char *pointer, const char *value)
{
	char buf[256], *tok, *save, *next;
	json_t *cur = root, *v = NULL;

	snprintf(buf, sizeof(buf), "%s", pointer + 1);
	if (value) {
		json_error_t e;

		v = json_loads(value, JSON_DECODE_ANY, &e);
		cr_assert_not_null(v, "bad test value %s: %s", value, e.text);
	}
	for (tok = strtok_r(buf, "/", &save); tok; tok = next) {
		next = strtok_r(NULL, "/", &save);
		if (next) {
			cur = json_is_array(cur) ?
				json_array_get(cur, (size_t)atoi(tok)) :
				json_object_get(cur, tok);
			cr_assert_not_null(cur, "no %s in %s", tok, pointer);
			continue;
		}
		if (json_is_array(cur)) {
			size_t i = (size_t)atoi(tok);

			if (!v)
				json_array_remove(cur, i);
			else if (i == json_array_size(cur))
				json_array_append_new(cur, v);
			else
				json_array_set_new(cur, i, v);
		} else if (!v) {
			json_object_del(cur, tok);
		} else {
			json_object_set_new(cur, tok, v);
		}
	}
}

struct mutation_case {
	const char *name;
	const char *edits[3][2];	/* pointer, value (NULL: delete) */
	const char *want;
};

#define SVC "/services/0"
#define BIG_SEED "\"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\""

static const struct mutation_case cases[] = {
	/* top level */
	{ "unknown top-level field", { { "/extra", "1" } }, "extra: unknown field" },
	{ "version 2", { { "/version", "2" } }, "version: must be 1" },
	{ "version 2^32 + 1", { { "/version", "4294967297" } }, "version: must be 1" },
	{ "version string", { { "/version", "\"1\"" } }, "version: must be an integer" },
	{ "version missing", { { "/version", NULL } }, "version: is required" },
	{ "node missing", { { "/node", NULL } }, "node: is required" },
	{ "maglev missing", { { "/maglev", NULL } }, "maglev: is required" },
	{ "services missing", { { "/services", NULL } }, "services: is required" },
	{ "services not an array", { { "/services", "{}" } }, "services: must be an array" },
	/* node */
	{ "node not an object", { { "/node", "[]" } }, "node: must be an object" },
	{ "unknown node field", { { "/node/speed", "10" } }, "node.speed: unknown field" },
	{ "no interface", { { "/node/interfaces", "[]" } },
	  "node.interfaces: must name at least one interface" },
	{ "interfaces not an array", { { "/node/interfaces", "\"eth0\"" } },
	  "node.interfaces: must be an array" },
	{ "nine interfaces",
	  { { "/node/interfaces", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]" } },
	  "node.interfaces: too many interfaces (at most 8)" },
	{ "duplicate interface", { { "/node/interfaces", "[\"eth0\", \"eth1\", \"eth0\"]" } },
	  "node.interfaces[2]: duplicate of interfaces[0]" },
	{ "interface name too long", { { "/node/interfaces/0", "\"abcdefghijklmnop\"" } },
	  "node.interfaces[0]: longer than 15 characters" },
	{ "interface name with slash", { { "/node/interfaces/0", "\"eth/0\"" } },
	  "node.interfaces[0]: not a valid interface name" },
	{ "interface not a string", { { "/node/interfaces/0", "7" } },
	  "node.interfaces[0]: must be a string" },
	{ "xdp mode", { { "/node/xdp_mode", "\"fast\"" } },
	  "node.xdp_mode: must be \"native\", \"generic\" or \"auto\"" },
	{ "mtu too small", { { "/node/mtu", "575" } }, "node.mtu: must be >= 576" },
	{ "mtu too large", { { "/node/mtu", "65536" } }, "node.mtu: must be <= 65535" },
	{ "mtu below IPv6 minimum", { { "/node/mtu", "1279" } },
	  "node.mtu: must be >= 1280 when IPv6 is used" },
	{ "no node address", { { "/node/addresses", "{}" } },
	  "node.addresses: needs ipv4 or ipv6" },
	{ "node ipv4 is v6", { { "/node/addresses/ipv4", "\"2001:db8::1\"" } },
	  "node.addresses.ipv4: not an IPv4 address" },
	{ "node ipv6 is v4", { { "/node/addresses/ipv6", "\"192.0.2.1\"" } },
	  "node.addresses.ipv6: not an IPv6 address" },
	{ "node ipv4 multicast", { { "/node/addresses/ipv4", "\"224.0.0.1\"" } },
	  "node.addresses.ipv4: not a unicast address" },
	{ "node address field", { { "/node/addresses/ipv5", "\"x\"" } },
	  "node.addresses.ipv5: unknown field" },
	/* maglev and conntrack */
	{ "seed too short", { { "/maglev/seed", "\"5f3c0a1e\"" } },
	  "maglev.seed: must be 32 hexadecimal digits" },
	{ "seed not hex", { { "/maglev/seed", "\"5f3c0a1e9b7d2c44a1b2c3d4e5f6071g\"" } },
	  "maglev.seed: must be 32 hexadecimal digits" },
	{ "seed missing", { { "/maglev/seed", NULL } }, "maglev.seed: is required" },
	{ "table size not prime", { { "/maglev/table_size", "16384" } },
	  "maglev.table_size: must be one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537" },
	{ "table size real", { { "/maglev/table_size", "16381.0" } },
	  "maglev.table_size: must be an integer" },
	{ "table size huge", { { "/maglev/table_size", "4294983677" } },
	  "maglev.table_size: must be one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537" },
	{ "table size negative", { { "/maglev/table_size", "-16381" } },
	  "maglev.table_size: must be one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537" },
	{ "conntrack too small", { { "/conntrack/max_entries", "1023" } },
	  "conntrack.max_entries: must be >= 1024" },
	{ "conntrack too large", { { "/conntrack/max_entries", "1000000000" } },
	  "conntrack.max_entries: must be <= 16777216" },
	{ "insert rate negative", { { "/conntrack/insert_rate_per_cpu", "-1" } },
	  "conntrack.insert_rate_per_cpu: must be >= 0" },
	{ "conntrack field", { { "/conntrack/timeout", "30" } },
	  "conntrack.timeout: unknown field" },
	{ "udp timeout zero", { { "/conntrack/udp_timeout_s", "0" } },
	  "conntrack.udp_timeout_s: must be >= 1" },
	{ "decap not an object", { { "/decap", "[]" } },
	  "decap: must be an object" },
	{ "decap field", { { "/decap", "{\"source\": []}" } },
	  "decap.source: unknown field" },
	{ "decap sources not a list", { { "/decap", "{\"sources\": \"x\"}" } },
	  "decap.sources: must be an array" },
	{ "decap source not a CIDR",
	  { { "/decap", "{\"sources\": [\"192.0.2.11/32\", \"192.0.2.12\"]}" } },
	  "decap.sources[1]: not a CIDR (address/prefix)" },
	{ "decap source host bits",
	  { { "/decap", "{\"sources\": [\"192.0.2.11/24\"]}" } },
	  "decap.sources[0]: host bits set (the network is 192.0.2.0/24)" },
	{ "decap source twice",
	  { { "/decap", "{\"sources\": [\"2001:db8::/64\", \"2001:db8::/64\"]}" } },
	  "decap.sources[1]: duplicate of sources[0]" },
	{ "icmp rate negative", { { "/icmp", "{\"too_big_per_second_per_cpu\": -1}" } },
	  "icmp.too_big_per_second_per_cpu: must be >= 0" },
	{ "icmp field", { { "/icmp", "{\"rate\": 1}" } },
	  "icmp.rate: unknown field" },
	/* service */
	{ "service not an object", { { SVC, "\"kube\"" } }, "services[0]: must be an object" },
	{ "unknown service field", { { SVC "/bogus", "true" } },
	  "services[0].bogus: unknown field" },
	{ "name empty", { { SVC "/name", "\"\"" } }, "services[0].name: must not be empty" },
	{ "name with space", { { SVC "/name", "\"kube api\"" } },
	  "services[0].name: may contain only letters, digits, '.', '_' and '-'" },
	{ "name too long",
	  { { SVC "/name", "\"a123456789b123456789c123456789d123456789e123456789f123456789abcd\"" } },
	  "services[0].name: longer than 63 characters" },
	{ "vip not an address", { { SVC "/vip", "\"203.0.113.300\"" } },
	  "services[0].vip: not an IP address" },
	{ "vip with zone", { { SVC "/vip", "\"fe80::1%eth0\"" } },
	  "services[0].vip: not an IP address" },
	{ "vip unspecified", { { SVC "/vip", "\"0.0.0.0\"" } },
	  "services[0].vip: not a unicast address" },
	{ "vip missing", { { SVC "/vip", NULL } }, "services[0].vip: is required" },
	{ "port too large", { { SVC "/port", "65536" } }, "services[0].port: must be <= 65535" },
	{ "port negative", { { SVC "/port", "-1" } }, "services[0].port: must be >= 0" },
	{ "protocol", { { SVC "/protocol", "\"sctp\"" } },
	  "services[0].protocol: must be \"tcp\" or \"udp\"" },
	{ "protocol upper case", { { SVC "/protocol", "\"TCP\"" } },
	  "services[0].protocol: must be \"tcp\" or \"udp\"" },
	{ "service table size", { { SVC "/table_size", "100" } },
	  "services[0].table_size: must be one of 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537" },
	/* authorized networks */
	{ "acl host bits", { { SVC "/authorized_networks/cidrs/0", "\"198.51.100.1/24\"" } },
	  "services[0].authorized_networks.cidrs[0]: host bits set (the network is 198.51.100.0/24)" },
	{ "acl v6 host bits", { { SVC "/authorized_networks/cidrs/1", "\"2001:db8:100::1/48\"" } },
	  "services[0].authorized_networks.cidrs[1]: host bits set (the network is 2001:db8:100::/48)" },
	{ "acl v6 prefix", { { SVC "/authorized_networks/cidrs/1", "\"2001:db8:100::/129\"" } },
	  "services[0].authorized_networks.cidrs[1]: prefix length must be <= 128" },
	{ "acl v4 prefix", { { SVC "/authorized_networks/cidrs/0", "\"198.51.100.0/33\"" } },
	  "services[0].authorized_networks.cidrs[0]: prefix length must be <= 32" },
	{ "acl no prefix", { { SVC "/authorized_networks/cidrs/0", "\"198.51.100.0\"" } },
	  "services[0].authorized_networks.cidrs[0]: not a CIDR (address/prefix)" },
	{ "acl bad prefix", { { SVC "/authorized_networks/cidrs/0", "\"198.51.100.0/2x\"" } },
	  "services[0].authorized_networks.cidrs[0]: not a CIDR (address/prefix)" },
	{ "acl bad address", { { SVC "/authorized_networks/cidrs/0", "\"198.51.100/24\"" } },
	  "services[0].authorized_networks.cidrs[0]: not a CIDR (address/prefix)" },
	{ "acl not a string", { { SVC "/authorized_networks/cidrs/0", "24" } },
	  "services[0].authorized_networks.cidrs[0]: must be a string" },
	{ "acl duplicate", { { SVC "/authorized_networks/cidrs/2", "\"198.51.100.0/24\"" } },
	  "services[0].authorized_networks.cidrs[2]: duplicate of cidrs[0]" },
	{ "acl enabled missing", { { SVC "/authorized_networks/enabled", NULL } },
	  "services[0].authorized_networks.enabled: is required" },
	{ "acl enabled string", { { SVC "/authorized_networks/enabled", "\"yes\"" } },
	  "services[0].authorized_networks.enabled: must be true or false" },
	{ "acl cidrs object", { { SVC "/authorized_networks/cidrs", "{}" } },
	  "services[0].authorized_networks.cidrs: must be an array" },
	/* rate limit */
	{ "burst zero", { { SVC "/rate_limit/burst", "0" } },
	  "services[0].rate_limit.burst: must be >= 1" },
	{ "rate zero", { { SVC "/rate_limit/new_connections_per_second", "0" } },
	  "services[0].rate_limit.new_connections_per_second: must be >= 1" },
	{ "burst without rate", { { SVC "/rate_limit/new_connections_per_second", NULL } },
	  "services[0].rate_limit.burst: needs new_connections_per_second" },
	{ "v4 prefix", { { SVC "/rate_limit/source_prefix_v4", "33" } },
	  "services[0].rate_limit.source_prefix_v4: must be <= 32" },
	{ "v6 prefix", { { SVC "/rate_limit/source_prefix_v6", "129" } },
	  "services[0].rate_limit.source_prefix_v6: must be <= 128" },
	{ "service rate real", { { SVC "/rate_limit/service_new_connections_per_second", "0.5" } },
	  "services[0].rate_limit.service_new_connections_per_second: must be an integer" },
	{ "rate too high", { { SVC "/rate_limit/new_connections_per_second", "1000000001" } },
	  "services[0].rate_limit.new_connections_per_second: must be <= 1000000000" },
	{ "rate limit field", { { SVC "/rate_limit/per_minute", "1" } },
	  "services[0].rate_limit.per_minute: unknown field" },
	/* health check */
	{ "health type", { { SVC "/health_check/type", "\"icmp\"" } },
	  "services[0].health_check.type: must be \"tcp\", \"http\" or \"https\"" },
	{ "health type missing", { { SVC "/health_check/type", NULL } },
	  "services[0].health_check.type: is required" },
	{ "timeout not below interval", { { SVC "/health_check/timeout_ms", "1000" } },
	  "services[0].health_check.timeout_ms: must be less than interval_ms" },
	{ "timeout zero", { { SVC "/health_check/timeout_ms", "0" } },
	  "services[0].health_check.timeout_ms: must be >= 1" },
	{ "rise zero", { { SVC "/health_check/rise", "0" } },
	  "services[0].health_check.rise: must be >= 1" },
	{ "fall zero", { { SVC "/health_check/fall", "0" } },
	  "services[0].health_check.fall: must be >= 1" },
	{ "path on tcp check", { { SVC "/health_check/path", "\"/healthz\"" } },
	  "services[0].health_check.path: only allowed when type is \"http\" or \"https\"" },
	{ "ca on http check",
	  { { SVC "/health_check/type", "\"http\"" }, { SVC "/health_check/ca", "\"/etc/ca.pem\"" } },
	  "services[0].health_check.ca: only allowed when type is \"https\"" },
	{ "server name on tcp check", { { SVC "/health_check/server_name", "\"kubernetes\"" } },
	  "services[0].health_check.server_name: only allowed when type is \"https\"" },
	{ "relative ca",
	  { { SVC "/health_check/type", "\"https\"" }, { SVC "/health_check/ca", "\"ca.pem\"" } },
	  "services[0].health_check.ca: must be an absolute file name" },
	{ "empty server name",
	  { { SVC "/health_check/type", "\"https\"" }, { SVC "/health_check/server_name", "\"\"" } },
	  "services[0].health_check.server_name: must not be empty" },
	{ "ca not a string",
	  { { SVC "/health_check/type", "\"https\"" }, { SVC "/health_check/ca", "7" } },
	  "services[0].health_check.ca: must be a string" },
	{ "relative http path",
	  { { SVC "/health_check/type", "\"http\"" }, { SVC "/health_check/path", "\"healthz\"" } },
	  "services[0].health_check.path: must start with '/'" },
	{ "http path with space",
	  { { SVC "/health_check/type", "\"http\"" }, { SVC "/health_check/path", "\"/a b\"" } },
	  "services[0].health_check.path: may not contain spaces or control characters" },
	{ "no port to check",
	  { { SVC "/port", "0" }, { SVC "/health_check/port", NULL } },
	  "services[0].health_check.port: required when the service port is 0" },
	/* backends */
	{ "backends missing", { { SVC "/backends", NULL } },
	  "services[0].backends: is required" },
	{ "backends string", { { SVC "/backends", "\"x\"" } },
	  "services[0].backends: must be an array" },
	{ "backend as string", { { SVC "/backends/0", "\"192.0.2.21\"" } },
	  "services[0].backends[0]: must be an object" },
	{ "backend address", { { SVC "/backends/1/address", "\"192.0.2.300\"" } },
	  "services[0].backends[1].address: not an IP address" },
	{ "backend address missing", { { SVC "/backends/1/address", NULL } },
	  "services[0].backends[1].address: is required" },
	{ "backend duplicate", { { SVC "/backends/1/address", "\"192.0.2.21\"" } },
	  "services[0].backends[1].address: duplicate of backends[0]" },
	{ "backend duplicate in other spelling",
	  { { SVC "/backends/0/address", "\"2001:db8::21\"" },
	    { SVC "/backends/1/address", "\"2001:DB8:0::21\"" } },
	  "services[0].backends[1].address: duplicate of backends[0]" },
	{ "weight too large", { { SVC "/backends/0/weight", "65536" } },
	  "services[0].backends[0].weight: must be <= 65535" },
	{ "weight bool", { { SVC "/backends/0/weight", "true" } },
	  "services[0].backends[0].weight: must be an integer" },
	{ "backend state", { { SVC "/backends/1/state", "\"down\"" } },
	  "services[0].backends[1].state: must be \"active\" or \"draining\"" },
	{ "backend field", { { SVC "/backends/0/port", "80" } },
	  "services[0].backends[0].port: unknown field" },
	{ "v6 backend without node v6",
	  { { "/node/addresses/ipv6", NULL }, { SVC "/backends/1/address", "\"2001:db8::22\"" } },
	  "services[0].backends[1].address: IPv6 backend needs node.addresses.ipv6" },
	{ "v4 backend without node v4", { { "/node/addresses/ipv4", NULL } },
	  "services[0].backends[0].address: IPv4 backend needs node.addresses.ipv4" },
	/* across services */
	{ "duplicate service name",
	  { { "/services/1", "{\"name\": \"kube-apiserver\", \"vip\": \"203.0.113.11\","
			     " \"port\": 6443, \"protocol\": \"tcp\", \"backends\": []}" } },
	  "services[1].name: duplicate of services[0]" },
	{ "duplicate service key",
	  { { "/services/1", "{\"name\": \"other\", \"vip\": \"203.0.113.10\","
			     " \"port\": 6443, \"protocol\": \"tcp\", \"backends\": []}" } },
	  "services[1]: same vip, port and protocol as services[0]" },
	{ "error in a later service",
	  { { "/services/1", "{\"name\": \"other\", \"vip\": \"203.0.113.10\","
			     " \"port\": 6443, \"protocol\": \"udp\", \"backends\": [{}]}" } },
	  "services[1].backends[0].address: is required" },
};

/* One test per case, so each is counted and reported on its own. Tests
 * may run in a fresh process where pointers differ: pass indices. */
ParameterizedTestParameters(config_invalid, rejected_with_place_and_reason)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);
	size_t *idx = cr_malloc(n * sizeof(*idx));

	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, n);
}

ParameterizedTest(size_t *i, config_invalid, rejected_with_place_and_reason)
{
	const struct mutation_case *c = &cases[*i];
	json_error_t e;
	json_t *base;
	char *text;

	base = json_loads(spec_example, 0, &e);
	cr_assert_not_null(base);
	for (size_t k = 0; k < 3 && c->edits[k][0]; k++)
		set_at(base, c->edits[k][0], c->edits[k][1]);
	text = json_dumps(base, JSON_INDENT(2));
	cr_assert_not_null(text);
	expect_refused_len(c->name, text, strlen(text), c->want);
	free(text);
	json_decref(base);
}

Test(config_invalid, at_least_forty_cases)
{
	cr_assert_geq(sizeof(cases) / sizeof(cases[0]), 40);
}

Test(config, syntax_errors_give_line_and_column)
{
	static const char dup[] = "{\"version\": 1, \"version\": 1}";
	static const char trunc[] = "{\n  \"version\": 1,\n  \"node\": }\n";
	static const char nul[] = "{\"version\": 1\0}";

	expect_refused_len("unexpected token", trunc, strlen(trunc),
		     "line 3, column 11: unexpected token near '}'");
	expect_refused_len("duplicate key", dup, strlen(dup),
		     "line 1, column 24: duplicate object key near '\"version\"'");
	expect_refused_len("empty", "", 0,
		     "line 1, column 0: '[' or '{' expected near end of file");
	expect_refused_len("trailing comma", "{\"a\": 1,}", 9,
		     "line 1, column 9: string or '}' expected near '}'");
	expect_refused_len("huge integer", "{\"version\": 99999999999999999999}", 33,
		     "line 1, column 32: too big integer near '99999999999999999999'");
	expect_refused_len("NUL byte", nul, sizeof(nul) - 1,
		     "line 1, column 14: NUL byte in document");
	expect_refused_len("top-level array", "[1]", 3, "document: must be a JSON object");
	/* Columns count characters: each e-acute is two bytes, one column. */
	expect_refused_len("NUL after UTF-8", "{\n \"n\xc3\xa9\": \"\xc3\xa9\0\"}", 16,
		     "line 2, column 10: NUL byte in document");
}

/* A document of n services with n_backends each, all distinct. */
static char *many_services(size_t n, size_t n_backends, uint32_t table_size)
{
	json_t *root, *svcs;
	json_error_t e;
	char *text;

	root = json_loads(spec_example, 0, &e);
	svcs = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *bes = json_array();
		char name[32], vip[64];

		for (size_t b = 0; b < n_backends; b++) {
			char addr[64];

			snprintf(addr, sizeof(addr), "2001:db8:%zx::%zx", i + 1, b + 1);
			json_array_append_new(bes, json_pack("{s:s}", "address", addr));
		}
		snprintf(name, sizeof(name), "svc-%zu", i);
		snprintf(vip, sizeof(vip), "2001:db8:ffff::%zx", i + 1);
		json_array_append_new(svcs, json_pack("{s:s, s:s, s:i, s:s, s:i, s:o}",
			"name", name, "vip", vip, "port", 443, "protocol", "tcp",
			"table_size", (int)table_size, "backends", bes));
	}
	json_object_set_new(root, "services", svcs);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	cr_assert_not_null(text);
	return text;
}

Test(config, limits_are_enforced)
{
	char *text;

	/* half of each id space: the running document keeps its ids until
	 * the switch, so any valid document replaces any other at once */
	cr_assert_eq(AETH_CFG_MAX_SERVICES, AETH_MAX_SERVICES / 2);
	cr_assert_eq(AETH_CFG_MAX_BACKENDS, AETH_MAX_BACKENDS / 2);
	text = many_services(AETH_CFG_MAX_SERVICES, 0, 251);
	aeth_config_free(parse_ok(text));
	free(text);
	text = many_services(AETH_CFG_MAX_SERVICES + 1, 0, 251);
	expect_refused_len("services", text, strlen(text),
		     "services: too many services (at most 2048)");
	free(text);

	text = many_services(2, AETH_CFG_MAX_BACKENDS / 2, 65537);
	aeth_config_free(parse_ok(text));
	free(text);
	text = many_services(3, AETH_CFG_MAX_BACKENDS / 2 - 1, 65537);
	expect_refused_len("backends", text, strlen(text),
		     "services[2].backends: too many backends in total (at most 8192)");
	free(text);

	text = many_services(1, 252, 251);
	expect_refused_len("table", text, strlen(text),
		     "services[0].backends: more backends (252) than table_size (251)");
	free(text);
}

static char *with_cidrs(size_t n)
{
	json_t *root, *list;
	json_error_t e;
	char *text;

	root = json_loads(spec_example, 0, &e);
	list = json_array();
	for (size_t i = 0; i < n; i++) {
		char c[64];

		snprintf(c, sizeof(c), "2001:db8:%zx:%zx::/64", i >> 16, i & 0xffff);
		json_array_append_new(list, json_string(c));
	}
	json_object_set_new(json_object_get(json_array_get(
		json_object_get(root, "services"), 0), "authorized_networks"),
		"cidrs", list);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

Test(config, acl_list_limit)
{
	struct aeth_config *cfg;
	char *text;

	text = with_cidrs(AETH_MAX_ACL_CIDRS);
	cfg = parse_ok(text);
	cr_assert_eq(cfg->services[0].n_cidrs, AETH_MAX_ACL_CIDRS);
	cr_assert_eq(cfg->services[0].cidrs[65535].prefixlen, 64);
	aeth_config_free(cfg);
	free(text);
	text = with_cidrs(AETH_MAX_ACL_CIDRS + 1);
	expect_refused_len("cidrs", text, strlen(text),
		     "services[0].authorized_networks.cidrs: too many CIDRs (at most 65536)");
	free(text);
}

Test(config, rejected_document_leaves_previous_config_untouched)
{
	struct aeth_config *cfg = parse_ok(spec_example), *keep = cfg;
	struct aeth_error err;
	uint8_t hash[32];
	char *bad = strdup(spec_example);

	memcpy(hash, cfg->hash, sizeof(hash));
	/* The second backend's address gets an impossible octet. */
	memcpy(strstr(bad, "192.0.2.22"), "192.0.2.99", 10);
	memcpy(strstr(bad, "192.0.2.99") + 7, "999", 3);
	cr_assert_eq(aeth_config_parse(bad, strlen(bad), &cfg, &err), -EINVAL);
	cr_assert_str_eq(err.path, "services[0].backends[1].address");
	cr_assert_eq(cfg, keep);
	cr_assert_arr_eq(cfg->hash, hash, 32);
	cr_assert_str_eq(cfg->text, spec_example);
	cr_assert_eq(cfg->n_services, 1);
	cr_assert_str_eq(cfg->services[0].backends[1].address_text, "192.0.2.22");
	free(bad);
	aeth_config_free(cfg);
}

Test(config, load_file_reads_and_reports_the_file)
{
	char path[] = "/tmp/aeth-cfg-test-XXXXXX", msg[600];
	struct aeth_config *cfg = NULL;
	struct aeth_error err;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, spec_example, strlen(spec_example)),
		     (ssize_t)strlen(spec_example));
	close(fd);
	cr_assert_eq(aeth_config_load_file(path, &cfg, &err), 0);
	cr_assert_str_eq(cfg->services[0].name, "kube-apiserver");
	aeth_config_free(cfg);
	cfg = NULL;
	unlink(path);

	cr_assert_eq(aeth_config_load_file(path, &cfg, &err), -ENOENT);
	cr_assert_null(cfg);
	aeth_error_format(&err, msg, sizeof(msg));
	cr_assert_eq(strncmp(msg, path, strlen(path)), 0, "%s", msg);
	cr_assert_str_eq(msg + strlen(path), ": No such file or directory");

	cr_assert_eq(aeth_config_load_file("/tmp", &cfg, &err), -EISDIR);
	cr_assert_str_eq(err.path, "/tmp");
}

Test(config, supported_table_sizes_are_primes)
{
	static const uint32_t required[] = { 251, 1021, 4093, 16381, 65537 };
	uint32_t prev = 0;
	size_t n = 0;

	for (const uint32_t *s = aeth_table_sizes; *s; s++, n++) {
		cr_assert_gt(*s, prev);
		cr_assert_leq(*s, AETH_MAX_TABLE_SIZE);
		for (uint32_t d = 2; d * d <= *s; d++)
			cr_assert_neq(*s % d, 0, "%u divisible by %u", *s, d);
		prev = *s;
	}
	cr_assert_geq(n, 5);
	for (size_t i = 0; i < 5; i++)
		cr_assert(aeth_table_size_supported(required[i]));
	cr_assert(!aeth_table_size_supported(16383));
	cr_assert(!aeth_table_size_supported(0));
}

/* Random byte edits of a valid document: each result is either a valid
 * document or rejected with a message; never a crash or a silent failure. */
Test(config, random_corruption_is_rejected_cleanly)
{
	size_t len = strlen(spec_example), accepted = 0, rejected = 0;
	char *buf = malloc(len + 8);

	cr_assert_not_null(buf);
	srand(1);
	for (int round = 0; round < 20000; round++) {
		struct aeth_config *cfg = NULL;
		struct aeth_error err;
		size_t n = len;
		int edits = 1 + rand() % 3, ret;

		memcpy(buf, spec_example, len);
		for (int e = 0; e < edits; e++) {
			size_t at = (size_t)rand() % n;

			switch (rand() % 3) {
			case 0:	/* replace */
				buf[at] = (char)(rand() % 256);
				break;
			case 1:	/* delete */
				memmove(buf + at, buf + at + 1, n - at - 1);
				n--;
				break;
			default: /* duplicate */
				memmove(buf + at + 1, buf + at, n - at);
				n++;
				break;
			}
		}
		ret = aeth_config_parse(buf, n, &cfg, &err);
		if (ret == 0) {
			cr_assert_not_null(cfg);
			cr_assert_eq(cfg->text_len, n);
			aeth_config_free(cfg);
			accepted++;
		} else {
			cr_assert_eq(ret, -EINVAL);
			cr_assert_null(cfg);
			cr_assert_neq(err.message[0], '\0', "round %d", round);
			rejected++;
		}
	}
	/* Both outcomes happen: some edits only touch values or spacing. */
	cr_assert_gt(accepted, 0);
	cr_assert_gt(rejected, 10000);
	free(buf);
}

Test(config, load_file_refuses_oversized_documents)
{
	char path[] = "/tmp/aeth-cfg-big-XXXXXX";
	struct aeth_config *cfg = NULL;
	struct aeth_error err;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	/* A sparse file one byte over the limit (reads as NUL bytes). */
	cr_assert_eq(ftruncate(fd, (off_t)AETH_CONFIG_MAX_BYTES + 1), 0);
	close(fd);
	cr_assert_eq(aeth_config_load_file(path, &cfg, &err), -EFBIG);
	unlink(path);
	cr_assert_null(cfg);
	cr_assert_str_eq(err.path, path);
	cr_assert_str_eq(err.message, "larger than 67108864 bytes");
}
