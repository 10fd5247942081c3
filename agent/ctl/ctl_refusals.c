/* Each CPU's memory of the sources it refused (lb_rl_refused, bpf/guard.h),
 * as aetherctl explain reads it. The memory is no pinned map: it belongs
 * to the loaded program, so it is found from the programs aeth_meta names
 * (one per attached interface, the same one on several), among each
 * program's maps by name and shape. Its layout and rules are abi.h's and
 * aether/ratelimit_rule.h's, shared with the data path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "aether/ratelimit_rule.h"
#include "ctl.h"

#define REFUSED_MAP "lb_rl_refused"

static bool is_refused_map(const struct bpf_map_info *mi, void *arg)
{
	(void)arg;
	return !strcmp(mi->name, REFUSED_MAP) &&
	       mi->type == BPF_MAP_TYPE_PERCPU_ARRAY &&
	       mi->value_size == sizeof(struct aeth_rl_refusal) &&
	       mi->max_entries == AETH_RL_REFUSED_SIZE;
}

/* Mark in refusing[] the CPUs whose memory in map fd refuses k at now;
 * *until: the latest end of those refusals. */
static int refusals_in(int fd, const struct aeth_rl_src_key *k,
		       const struct aeth_svc *svc, uint64_t now, int ncpus,
		       bool *refusing, uint64_t *until)
{
	struct aeth_rl_refusal *v = calloc((size_t)ncpus, sizeof(*v));
	__u32 slot = aeth_rl_refusal_slot(k);
	int ret = 0;

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &slot, v)) {
		ret = -errno;
		goto out;
	}
	for (int c = 0; c < ncpus; c++) {
		if (!aeth_rl_refusal_holds(&v[c], k, svc->src_interval_ns,
					   svc->src_tolerance_ns, now))
			continue;
		refusing[c] = true;
		if (v[c].until_ns > *until)
			*until = v[c].until_ns;
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
	struct aeth_meta meta;
	__u32 zero = 0;
	bool *refusing;
	int ncpus = aeth_ncpus(), ret = 0;

	memset(out, 0, sizeof(*out));
	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	if (bpf_map_lookup_elem(ctx->fds.meta, &zero, &meta))
		return -errno;
	refusing = calloc((size_t)ncpus, sizeof(*refusing));
	if (!refusing)
		return -ENOMEM;
	out->ncpus = (unsigned int)ncpus;
	for (__u32 i = 0; i < meta.n_interfaces && i < AETH_MAX_INTERFACES &&
			  !ret; i++) {
		int fd;

		if (ctl_prog_seen_before(&meta, i))
			continue;
		fd = ctl_prog_map_fd(meta.ifaces[i].prog_id, is_refused_map,
				     NULL);
		if (fd == -ENOENT)
			continue;	/* detached meanwhile, or no memory */
		if (fd < 0) {
			ret = fd;
			break;
		}
		ret = refusals_in(fd, k, svc, now, ncpus, refusing,
				  &out->until_ns);
		close(fd);
	}
	for (int c = 0; c < ncpus; c++)
		out->cpus += refusing[c];
	free(refusing);
	return ret;
}
