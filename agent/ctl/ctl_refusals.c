/* Each CPU's memory of the sources it refused (lb_rl_refused, bpf/guard.h),
 * as aetherctl explain reads it. The memory is no pinned map: it belongs
 * to the loaded program, so it is found from the programs aeth_meta names
 * (one per attached interface, the same one on several), among each
 * program's maps by name and shape. Its layout and rules are abi.h's and
 * aether/ratelimit_rule.h's, shared with the data path. */
#include <errno.h>
#include <stdlib.h>

#include <bpf/bpf.h>

#include "aether/ratelimit_rule.h"
#include "ctl.h"

static const struct ctl_pcpu_map refused_map = {
	.name = "lb_rl_refused",
	.value_size = sizeof(struct aeth_rl_refusal),
	.max_entries = AETH_RL_REFUSED_SIZE,
};

struct refusals_read {
	const struct aeth_rl_src_key *k;
	const struct aeth_svc *svc;
	uint64_t now;
	uint64_t until;		/* the latest end of those refusals */
};

/* Mark the CPUs whose memory in map fd refuses r->k. */
static int refusals_in(int fd, int ncpus, bool *refusing, void *arg)
{
	struct refusals_read *r = arg;
	struct aeth_rl_refusal *v = calloc((size_t)ncpus, sizeof(*v));
	__u32 slot = aeth_rl_refusal_slot(r->k);
	int ret = 0;

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &slot, v)) {
		ret = -errno;
		goto out;
	}
	for (int c = 0; c < ncpus; c++) {
		if (!aeth_rl_refusal_holds(&v[c], r->k, r->svc->src_interval_ns,
					   r->svc->src_tolerance_ns, r->now))
			continue;
		refusing[c] = true;
		if (v[c].until_ns > r->until)
			r->until = v[c].until_ns;
	}
out:
	free(v);
	return ret;
}

int ctl_remembered_refusals(struct ctl_ctx *ctx,
			    const struct aeth_rl_src_key *k,
			    const struct aeth_svc *svc, uint64_t now,
			    struct ctl_refusals *out)
{
	struct refusals_read r = { .k = k, .svc = svc, .now = now };
	int ret;

	ret = ctl_mark_cpus(ctx, &refused_map, refusals_in, &r, &out->cpus,
			    &out->ncpus);
	out->until_ns = r.until;
	return ret;
}
