/* Each CPU's lease of a service cap's tokens (lb_rl_svc_lease, bpf/guard.h),
 * as aetherctl explain reads it: a CPU whose lease still holds tokens of
 * its tick admits a new connection that the shared bucket alone would
 * refuse. Like the memory of refusals (ctl_refusals.c), the leases are the
 * loaded program's, found from the programs aeth_meta names; the layout
 * and rules are abi.h's and aether/ratelimit_rule.h's, shared with the
 * data path. */
#include <errno.h>
#include <stdlib.h>

#include <bpf/bpf.h>

#include "aether/ratelimit_rule.h"
#include "ctl.h"

static const struct ctl_pcpu_map lease_map = {
	.name = "lb_rl_svc_lease",
	.value_size = sizeof(struct aeth_rl_lease),
	.max_entries = AETH_MAX_SERVICES,
};

struct leases_read {
	const struct aeth_svc *svc;
	uint64_t tat, now;
};

/* Mark the CPUs whose lease in map fd admits: a token of this tick to
 * spend, or unspent tokens that go back to the bucket (the data path's own
 * test, guard_admit_new_connection). */
static int leases_in(int fd, int ncpus, bool *admitting, void *arg)
{
	struct leases_read *r = arg;
	struct aeth_rl_lease *v = calloc((size_t)ncpus, sizeof(*v));
	__u64 interval = r->svc->svc_interval_ns;
	__u64 tol = r->svc->svc_tolerance_ns;
	__u32 id = r->svc->id;
	int ret = 0;

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &id, v)) {
		ret = -errno;
		goto out;
	}
	for (int c = 0; c < ncpus; c++)
		if (aeth_rl_lease_spends(&v[c], interval, tol, r->now, r->tat) ||
		    aeth_gcra_conforms(aeth_rl_lease_tat(&v[c], r->tat),
				       r->now, tol))
			admitting[c] = true;
out:
	free(v);
	return ret;
}

int ctl_service_leases(struct ctl_ctx *ctx, const struct aeth_svc *svc,
		       uint64_t tat, uint64_t now, struct ctl_leases *out)
{
	struct leases_read r = { .svc = svc, .tat = tat, .now = now };

	return ctl_mark_cpus(ctx, &lease_map, leases_in, &r, &out->cpus,
			     &out->ncpus);
}
