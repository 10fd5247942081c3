/* agent/lib/pinned.c: opening a pin directory checks the schema version and the
 * shape of every map, and per-CPU sums add every CPU. The map table
 * (include/aether/map_table.h) agrees with bpf/maps.h and docs/deploy.md.
 * agent/lib/map_iter.c: folding, and whole-map reads batched or (LPM tries)
 * by key. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <criterion/criterion.h>

#include "aether/abi.h"
#include "aether/map_table.h"
#include "aether_lb.skel.h"
#include "ctl_fixture.h"
#include "map_iter.h"
#include "pinned.h"

static struct fx fx;

static void setup(void)
{
	cr_assert_eq(fx_open(&fx), 0, "fixture: load and pin");
}

static void teardown(void)
{
	fx_close(&fx);
}

TestSuite(pinned, .init = setup, .fini = teardown, .timeout = 60);

static void all_closed(const struct aeth_map_fds *fds)
{
	const int *v = (const int *)fds;

	for (size_t i = 0; i < sizeof(*fds) / sizeof(int); i++)
		cr_assert_eq(v[i], -1, "fd %zu closed", i);
}

Test(pinned, opens_every_map)
{
	struct aeth_map_fds fds;
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	struct aeth_error err = { 0 };
	const int *v = (const int *)&fds;

	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, &err), 0, "%s",
		     err.message);
	for (size_t i = 0; i < sizeof(fds) / sizeof(int); i++)
		cr_assert_geq(v[i], 0);
	memset(&info, 0, sizeof(info));
	cr_assert_eq(bpf_obj_get_info_by_fd(fds.ct, &info, &len), 0);
	cr_assert_str_eq(info.name, AETH_MAP_CT);
	aeth_pinned_close(&fds);
	all_closed(&fds);
}

Test(pinned, missing_directory)
{
	struct aeth_map_fds fds;
	char dir[128];
	struct aeth_error err = { 0 };

	snprintf(dir, sizeof(dir), "%s-absent", fx.dir);
	cr_assert_eq(aeth_pinned_open(dir, &fds, &err), -ENOENT);
	cr_assert(strstr(err.message, "no aether-lb state under"), "%s", err.message);
	all_closed(&fds);
}

Test(pinned, schema_version_checked)
{
	struct aeth_map_fds fds;
	struct aeth_meta meta;
	struct aeth_error err = { 0 };
	char want[64];
	__u32 zero = 0;

	cr_assert_eq(bpf_map_lookup_elem(fx.meta, &zero, &meta), 0);
	meta.schema_version = AETH_SCHEMA_VERSION + 1;
	cr_assert_eq(bpf_map_update_elem(fx.meta, &zero, &meta, 0), 0);
	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, &err), -EPROTO);
	snprintf(want, sizeof(want), "schema version %u",
		 AETH_SCHEMA_VERSION + 1);
	cr_assert(strstr(err.message, want), "%s", err.message);
	snprintf(want, sizeof(want), "this build knows %u", AETH_SCHEMA_VERSION);
	cr_assert(strstr(err.message, want), "%s", err.message);
	all_closed(&fds);
}

/* Pins of a release before the connection table's filter (or with the
 * old one, aeth_ct_filter): readable without it; any other map missing
 * is no aether-lb state. */
Test(pinned, missing_ct_filter_tolerated_other_maps_not)
{
	struct aeth_map_fds fds;
	char path[128];
	struct aeth_error err = { 0 };

	snprintf(path, sizeof(path), "%s/%s", fx.dir, AETH_MAP_CT_BLOOM);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, &err), 0, "%s",
		     err.message);
	cr_assert_eq(fds.ct_bloom, -1);
	cr_assert_geq(fds.ct, 0);
	cr_assert_geq(fds.rl_svc, 0);
	aeth_pinned_close(&fds);

	snprintf(path, sizeof(path), "%s/%s", fx.dir, AETH_MAP_RL_SVC);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, &err), -ENOENT);
	cr_assert(strstr(err.message, AETH_MAP_RL_SVC), "%s", err.message);
	all_closed(&fds);
}

Test(pinned, another_layout_refused)
{
	struct aeth_map_fds fds;
	char path[128];
	struct aeth_error err = { 0 };
	int fd;

	/* what an older build might have left: aeth_svc with a shorter value */
	snprintf(path, sizeof(path), "%s/%s", fx.dir, AETH_MAP_SVC);
	cr_assert_eq(unlink(path), 0);
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, AETH_MAP_SVC,
			    sizeof(struct aeth_svc_key), 48, 16, NULL);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bpf_obj_pin(fd, path), 0);
	close(fd);
	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, &err), -EPROTO);
	cr_assert(strstr(err.message, "aeth_svc has another layout"), "%s", err.message);
	all_closed(&fds);
}

Test(pinned, percpu_sum)
{
	struct aeth_be_stats sum;
	int ncpus = aeth_ncpus();

	cr_assert_eq(ncpus, fx.ncpus);
	for (int cpu = 0; cpu < ncpus; cpu++) {
		cr_assert_eq(fx_percpu_add(&fx, fx.be_stats, 9,
					   sizeof(struct aeth_be_stats), cpu,
					   0, cpu + 1), 0);
		cr_assert_eq(fx_percpu_add(&fx, fx.be_stats, 9,
					   sizeof(struct aeth_be_stats), cpu,
					   8, 100), 0);
	}
	cr_assert_eq(aeth_percpu_sum_u64(fx.be_stats, 9, &sum, sizeof(sum)), 0);
	cr_assert_eq(sum.packets, (uint64_t)ncpus * (ncpus + 1) / 2);
	cr_assert_eq(sum.bytes, 100ull * ncpus);
	cr_assert_eq(aeth_percpu_sum_u64(fx.be_stats, 9, &sum, 12), -EINVAL);
	cr_assert_eq(aeth_percpu_sum_u64(fx.be_stats, AETH_MAX_BACKENDS, &sum,
					 sizeof(sum)), -ENOENT);
}

/* ---- include/aether/map_table.h against bpf/maps.h and the docs --------- */

TestSuite(map_table, .timeout = 60);

static void check_def(const struct bpf_map *m, const char *name, __u32 type,
		      __u32 key, __u32 value, __u32 max, __u32 flags)
{
	cr_assert_not_null(m, "%s: in the BPF object", name);
	cr_assert_str_eq(bpf_map__name(m), name);
	cr_assert_leq(strlen(name), 15, "%s: kernel names are cut at 15", name);
	cr_assert_eq(bpf_map__type(m), type, "%s: type", name);
	cr_assert_eq(bpf_map__key_size(m), key, "%s: key size", name);
	cr_assert_eq(bpf_map__value_size(m), value, "%s: value size", name);
	cr_assert_eq(bpf_map__max_entries(m), max, "%s: max_entries", name);
	cr_assert_eq(bpf_map__map_flags(m), flags, "%s: map_flags", name);
	cr_assert_not_null(bpf_map__pin_path(m), "%s: pinned by name", name);
}

/* Every row is a map of bpf/maps.h with that definition, and the object
 * has no "aeth_" map the table lacks. */
Test(map_table, agrees_with_the_bpf_definitions)
{
	struct aether_lb *s = aether_lb__open();
	struct bpf_map *m;
	size_t n = 0;

	cr_assert_not_null(s);
#define CHECK_ROW(f, t, k, v, max, fl, ...)                                  \
	check_def(s->maps.aeth_##f, AETH_MAP_NAME(f), t, sizeof(k),          \
		  sizeof(v), max, fl);
	AETH_PINNED_MAPS(CHECK_ROW)
#undef CHECK_ROW
	bpf_object__for_each_map(m, s->obj)
		if (!strncmp(bpf_map__name(m), "aeth_", 5))
			n++;
	cr_assert_eq(n, AETH_N_PINNED_MAPS, "maps named aeth_ in the object");
	aether_lb__destroy(s);
}

/* "BPF_MAP_TYPE_PERCPU_ARRAY" -> "percpu_array" */
static const char *type_name(const char *macro, char *buf, size_t len)
{
	size_t i;

	macro += strlen("BPF_MAP_TYPE_");
	for (i = 0; macro[i] && i + 1 < len; i++)
		buf[i] = (char)tolower((unsigned char)macro[i]);
	buf[i] = '\0';
	return buf;
}

/* The table of docs/deploy.md, as the map table makes it. */
static size_t doc_table(char *out, size_t len)
{
	size_t used = 0;
	char t[32];

	used += snprintf(out + used, len - used,
			 "| map | type | key | value | entries | written by | "
			 "holds |\n| --- | --- | --- | --- | --- | --- | --- |\n");
#define DOC_ROW(f, ty, k, v, max, fl, who, what)                            \
	used += snprintf(out + used, len - used,                             \
			 "| `%s` | %s | `%s` | `%s` | %u | %s | %s |\n",     \
			 AETH_MAP_NAME(f), type_name(#ty, t, sizeof(t)), #k, \
			 #v, (unsigned)(max), who, what);
	AETH_PINNED_MAPS(DOC_ROW)
#undef DOC_ROW
	return used;
}

#define DOC_PATH AETH_SOURCE_ROOT "/docs/deploy.md"
#define DOC_BEGIN "<!-- pinned maps: generated from include/aether/map_table.h " \
	"(tests/ctl/test_pinned.c checks it) -->\n"
#define DOC_END "<!-- end of pinned maps -->"

Test(map_table, docs_table_is_generated_from_it)
{
	static char doc[1 << 20], want[16384];
	FILE *f = fopen(DOC_PATH, "r");
	char *begin, *end;
	size_t n;

	cr_assert_not_null(f, "%s", DOC_PATH);
	n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	doc_table(want, sizeof(want));
	begin = strstr(doc, DOC_BEGIN);
	end = begin ? strstr(begin, DOC_END) : NULL;
	cr_assert(begin && end, "%s: no '%s' ... '%s' block", DOC_PATH,
		  DOC_BEGIN, DOC_END);
	begin += strlen(DOC_BEGIN);
	*end = '\0';
	cr_assert_str_eq(begin, want,
			 "%s differs from the map table; the table should read:"
			 "\n%s", DOC_PATH, want);
}

Test(map_iter, percpu_fold_adds_every_cpu)
{
	uint64_t v[3][2] = { { 1, 10 }, { 2, 20 }, { 4, 40 } }, sum[2];

	aeth_percpu_fold_u64(v, 3, sizeof(sum), sum);
	cr_assert_eq(sum[0], 7);
	cr_assert_eq(sum[1], 70);
	cr_assert_eq(aeth_percpu_stride(12), 16);
}

struct iter_count {
	size_t n;
	uint64_t key_sum;
	size_t stop_at;		/* 0: never */
};

static int count_u32(const void *key, const void *value, void *arg)
{
	struct iter_count *c = arg;

	cr_assert_eq(*(const uint32_t *)value, *(const uint32_t *)key * 3);
	c->key_sum += *(const uint32_t *)key;
	if (++c->n == c->stop_at)
		return -ECANCELED;
	return 0;
}

/* A hash map of more entries than a chunk: read whole (batched), and fn's
 * error stops the pass and is told apart. */
Test(map_iter, hash_map_read_whole)
{
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "t_iter", 4, 4, 10000, NULL);
	struct iter_count c = { 0 };
	bool stopped;

	cr_assert_geq(fd, 0);
	for (uint32_t k = 1; k <= 9000; k++) {
		uint32_t v = k * 3;

		cr_assert_eq(bpf_map_update_elem(fd, &k, &v, 0), 0);
	}
	cr_assert_eq(aeth_map_foreach(fd, 4, 4, 0, count_u32, &c, &stopped), 0);
	cr_assert_not(stopped);
	cr_assert_eq(c.n, 9000);
	cr_assert_eq(c.key_sum, 9000ull * 9001 / 2);

	memset(&c, 0, sizeof(c));
	c.stop_at = 5000;
	cr_assert_eq(aeth_map_foreach(fd, 4, 4, 0, count_u32, &c, &stopped),
		     -ECANCELED);
	cr_assert(stopped);
	cr_assert_eq(c.n, 5000);
	close(fd);
}

static int count_lpm(const void *key, const void *value, void *arg)
{
	const struct aeth_acl_key *k = key;
	struct iter_count *c = arg;

	cr_assert_eq(*(const uint32_t *)value, k->prefixlen);
	c->key_sum += k->addr[0];
	c->n++;
	return 0;
}

/* An LPM trie (no batch lookup on older kernels) read whole, then stepped
 * by hand by key (as where batches are unsupported) in chunks of 7. */
Test(map_iter, lpm_trie_by_key)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
	int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "t_iter_lpm",
				sizeof(struct aeth_acl_key), 4, 100, &opts);
	struct aeth_acl_key keys[7];
	uint32_t values[7], count;
	struct aeth_map_iter it;
	struct iter_count c = { 0 };
	int more;

	cr_assert_geq(fd, 0);
	for (uint32_t i = 1; i <= 20; i++) {
		struct aeth_acl_key k = { .prefixlen = 8 };
		uint32_t v = 8;

		k.addr[0] = (uint8_t)i;
		cr_assert_eq(bpf_map_update_elem(fd, &k, &v, 0), 0);
	}
	cr_assert_eq(aeth_map_foreach(fd, sizeof(keys[0]), 4, 0, count_lpm, &c,
				      NULL), 0);
	cr_assert_eq(c.n, 20);
	cr_assert_eq(c.key_sum, 210);

	memset(&c, 0, sizeof(c));
	cr_assert_eq(aeth_map_iter_init(&it, fd, sizeof(keys[0]), 4), 0);
	it.by_key = true;
	do {
		count = 7;
		more = aeth_map_iter_next(&it, keys, values, &count);
		cr_assert_geq(more, 0);
		cr_assert_leq(count, 7);
		c.n += count;
	} while (more);
	cr_assert_eq(c.n, 20);
	count = 7;
	cr_assert_eq(aeth_map_iter_next(&it, keys, values, &count), 0);
	cr_assert_eq(count, 0, "a finished pass reads nothing more");
	aeth_map_iter_rewind(&it);
	it.by_key = true;
	count = 7;
	cr_assert_eq(aeth_map_iter_next(&it, keys, values, &count), 1);
	cr_assert_eq(count, 7, "rewound: from the first entry again");
	aeth_map_iter_free(&it);
	close(fd);
}
