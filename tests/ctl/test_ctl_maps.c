/* Every pinned map is readable by stock bpftool: short prefixed names that
 * the kernel keeps whole, and BTF that decodes the struct fields. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <criterion/criterion.h>

#include "aether/abi.h"
#include "aether/map_table.h"
#include "ctl_fixture.h"

static struct fx fx;

static void setup(void)
{
	struct aeth_flow f;
	struct aeth_rl_src_key k = { 0 };
	struct aeth_rl_src_state st = { .tat_ns = 1, .admitted = 2 };

	cr_assert_eq(fx_open(&fx), 0, "fixture: load and pin");
	cr_assert_eq(fx_populate(&fx), 0, "fixture: populate");
	/* hash maps show fields only when they hold something */
	f = fx_flow("198.51.100.7", 40000, "203.0.113.10", 6443, IPPROTO_TCP);
	cr_assert_eq(fx_ct(&fx, &f, 0, 0, 1, true), 0);
	k.family = fx_addr("198.51.100.7", &k.prefix);
	cr_assert_eq(bpf_map_update_elem(fx.rl_src, &k, &st, 0), 0);
}

static void teardown(void)
{
	fx_close(&fx);
}

TestSuite(ctl_maps, .init = setup, .fini = teardown, .timeout = 60);

static json_t *bpftool_json(const char *verb, const char *map)
{
	char cmd[512], *buf = NULL;
	size_t len = 0;
	FILE *p, *m;
	json_t *doc;

	snprintf(cmd, sizeof(cmd), "%s -j map %s pinned %s/%s", BPFTOOL_PATH,
		 verb, fx.dir, map);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	m = open_memstream(&buf, &len);
	for (int c; (c = fgetc(p)) != EOF;)
		fputc(c, m);
	cr_assert_eq(pclose(p), 0, "%s", cmd);
	fclose(m);
	doc = json_loads(buf, 0, NULL);
	cr_assert_not_null(doc, "%s: %s", cmd, buf);
	free(buf);
	return doc;
}

/* A field name anywhere in bpftool's "formatted" output. */
static bool has_key(json_t *j, const char *key)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_object(j)) {
		json_object_foreach(j, k, v)
			if (!strcmp(k, key) || has_key(v, key))
				return true;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			if (has_key(v, key))
				return true;
	}
	return false;
}

struct map_expect {
	const char *name;
	const char *field;	/* NULL: a map of maps, values are map ids */
};

static const struct map_expect maps[] = {
	{ AETH_MAP_META, "schema_version" },
	{ AETH_MAP_NODE, "hash_seed" },
	{ AETH_MAP_VIP, "family" },
	{ AETH_MAP_SVC, "maglev_slot" },
	{ AETH_MAP_SVCINFO, "acl_enabled" },
	{ AETH_MAP_BACKEND, "svc_id" },
	{ AETH_MAP_MAGLEV, NULL },
	{ AETH_MAP_ACL, NULL },
	{ AETH_MAP_ACL_RNG, NULL },
	{ AETH_MAP_ACL_RNGIDX, "count" },
	{ AETH_MAP_CT, "backend_id" },
	{ AETH_MAP_CT_BLOOM, NULL },
	{ AETH_MAP_CT_BUDGET, "window_start_ns" },
	{ AETH_MAP_RL_SRC, "tat_ns" },
	{ AETH_MAP_RL_SVC, "tat_ns" },
	{ AETH_MAP_SVC_STATS, "new_flows" },
	{ AETH_MAP_BE_STATS, "packets" },
	{ AETH_MAP_GLOBAL, "events" },
	{ AETH_MAP_DECAP, NULL },
	{ AETH_MAP_PCPU, "icmp_tokens" },
	{ AETH_MAP_TX_PORTS, NULL },
	{ AETH_MAP_STAMP, NULL },
};

Test(ctl_maps, names_are_short_prefixed_and_kept_whole)
{
	/* one expectation per row of include/aether/map_table.h */
	cr_assert_eq(sizeof(maps) / sizeof(maps[0]), AETH_N_PINNED_MAPS);
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		json_t *show = bpftool_json("show", maps[i].name);
		const char *kname = json_string_value(json_object_get(show,
								      "name"));

		cr_assert_leq(strlen(maps[i].name), 15, "%s", maps[i].name);
		cr_assert_eq(strncmp(maps[i].name, "aeth_", 5), 0);
		cr_assert_not_null(kname);
		cr_assert_str_eq(kname, maps[i].name,
				 "kernel name equals the pin name");
		cr_assert(json_integer_value(json_object_get(show, "btf_id")) >
				  0 || maps[i].field == NULL,
			  "%s carries BTF", maps[i].name);
		json_decref(show);
	}
}

Test(ctl_maps, dump_decodes_struct_fields)
{
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		json_t *dump;

		if (!maps[i].field)
			continue;
		dump = bpftool_json("dump", maps[i].name);
		cr_assert(json_is_array(dump) && json_array_size(dump) > 0,
			  "%s dumps entries", maps[i].name);
		cr_assert(has_key(dump, "formatted"),
			  "%s: bpftool decodes it with BTF", maps[i].name);
		cr_assert(has_key(dump, maps[i].field), "%s shows field %s",
			  maps[i].name, maps[i].field);
		json_decref(dump);
	}
}

Test(ctl_maps, every_pinned_map_is_known)
{
	char cmd[256], line[256];
	size_t n = 0;
	FILE *p;

	/* nothing pinned beyond the ABI's list, so aetherctl sees it all */
	snprintf(cmd, sizeof(cmd), "ls %s", fx.dir);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p)) {
		bool known = false;

		line[strcspn(line, "\n")] = '\0';
		for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
			known |= !strcmp(line, maps[i].name);
		cr_assert(known, "pinned map %s is in the ABI list", line);
		n++;
	}
	pclose(p);
	cr_assert_eq(n, sizeof(maps) / sizeof(maps[0]));
}
