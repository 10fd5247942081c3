/* agent/lib/pinned.c: opening a pin directory checks the schema version and the
 * shape of every map, and per-CPU sums add every CPU. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <criterion/criterion.h>

#include "aether/abi.h"
#include "ctl_fixture.h"
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
	char err[256] = "";
	const int *v = (const int *)&fds;

	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, err, sizeof(err)), 0, "%s",
		     err);
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
	char dir[128], err[256] = "";

	snprintf(dir, sizeof(dir), "%s-absent", fx.dir);
	cr_assert_eq(aeth_pinned_open(dir, &fds, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "no aether-lb state under"), "%s", err);
	all_closed(&fds);
}

Test(pinned, schema_version_checked)
{
	struct aeth_map_fds fds;
	struct aeth_meta meta;
	char err[256] = "", want[64];
	__u32 zero = 0;

	cr_assert_eq(bpf_map_lookup_elem(fx.meta, &zero, &meta), 0);
	meta.schema_version = AETH_SCHEMA_VERSION + 1;
	cr_assert_eq(bpf_map_update_elem(fx.meta, &zero, &meta, 0), 0);
	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, err, sizeof(err)), -EPROTO);
	snprintf(want, sizeof(want), "schema version %u",
		 AETH_SCHEMA_VERSION + 1);
	cr_assert(strstr(err, want), "%s", err);
	snprintf(want, sizeof(want), "this build knows %u", AETH_SCHEMA_VERSION);
	cr_assert(strstr(err, want), "%s", err);
	all_closed(&fds);
}

Test(pinned, another_layout_refused)
{
	struct aeth_map_fds fds;
	char path[128], err[256] = "";
	int fd;

	/* what an older build might have left: aeth_svc with a shorter value */
	snprintf(path, sizeof(path), "%s/%s", fx.dir, AETH_MAP_SVC);
	cr_assert_eq(unlink(path), 0);
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, AETH_MAP_SVC,
			    sizeof(struct aeth_svc_key), 48, 16, NULL);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bpf_obj_pin(fd, path), 0);
	close(fd);
	cr_assert_eq(aeth_pinned_open(fx.dir, &fds, err, sizeof(err)), -EPROTO);
	cr_assert(strstr(err, "aeth_svc has another layout"), "%s", err);
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
