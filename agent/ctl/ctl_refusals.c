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
#include <bpf/libbpf.h>

#include "aether/ratelimit_rule.h"
#include "ctl.h"

#define REFUSED_MAP "lb_rl_refused"

/* The fd of program prog_id's lb_rl_refused, or -ENOENT. */
static int refused_map_of(uint32_t prog_id)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info), ids[64];
	int prog_fd, ret = -ENOENT;

	prog_fd = bpf_prog_get_fd_by_id(prog_id);
	if (prog_fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len)) {
		ret = -errno;
		close(prog_fd);
		return ret;
	}
	close(prog_fd);
	for (__u32 i = 0; i < info.nr_map_ids && i < 64 && ret < 0; i++) {
		struct bpf_map_info mi;
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen) &&
		    !strcmp(mi.name, REFUSED_MAP) &&
		    mi.type == BPF_MAP_TYPE_PERCPU_ARRAY &&
		    mi.value_size == sizeof(struct aeth_rl_refusal) &&
		    mi.max_entries == AETH_RL_REFUSED_SIZE) {
			ret = fd;
			continue;
		}
		close(fd);
	}
	return ret;
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
	int ncpus = libbpf_num_possible_cpus(), ret = 0;

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
		__u32 id = meta.ifaces[i].prog_id;
		bool seen = false;
		int fd;

		for (__u32 j = 0; j < i; j++)
			seen = seen || meta.ifaces[j].prog_id == id;
		if (!id || seen)
			continue;
		fd = refused_map_of(id);
		if (fd == -ENOENT)
			continue;	/* detached meanwhile, or no memory */
		if (fd < 0) {
			ret = fd;
			break;
		}
		out->programs++;
		ret = refusals_in(fd, k, svc, now, ncpus, refusing,
				  &out->until_ns);
		close(fd);
	}
	for (int c = 0; c < ncpus; c++)
		out->cpus += refusing[c];
	free(refusing);
	return ret;
}
