/* The maps of a loaded program that are no pinned map (its globals' .bss,
 * its private per-CPU memories), found from the program aeth_meta names:
 * among its map ids, the one a reader's test accepts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "ctl.h"

int ctl_prog_map_fd(uint32_t prog_id, ctl_map_match_fn match, void *arg)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info), ids[64];
	int prog_fd, ret;

	prog_fd = prog_id ? bpf_prog_get_fd_by_id(prog_id) : -ENOENT;
	if (prog_fd < 0)
		return prog_id ? -errno : prog_fd;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	ret = bpf_obj_get_info_by_fd(prog_fd, &info, &len) ? -errno : -ENOENT;
	close(prog_fd);
	for (__u32 i = 0; i < info.nr_map_ids && i < 64 && ret == -ENOENT;
	     i++) {
		struct bpf_map_info mi;
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen) && match(&mi, arg)) {
			ret = fd;
			break;
		}
		close(fd);
	}
	return ret;
}

bool ctl_prog_seen_before(const struct aeth_meta *meta, uint32_t i)
{
	for (uint32_t j = 0; j < i; j++)
		if (meta->ifaces[j].prog_id == meta->ifaces[i].prog_id)
			return true;
	return false;
}

static bool is_pcpu_map(const struct bpf_map_info *mi, void *arg)
{
	const struct ctl_pcpu_map *want = arg;

	return !strcmp(mi->name, want->name) &&
	       mi->type == BPF_MAP_TYPE_PERCPU_ARRAY &&
	       mi->value_size == want->value_size &&
	       mi->max_entries == want->max_entries;
}

int ctl_mark_cpus(struct ctl_ctx *ctx, const struct ctl_pcpu_map *map,
		  ctl_cpu_mark_fn fn, void *arg, unsigned int *marked,
		  unsigned int *ncpus)
{
	int n = aeth_ncpus(), ret = 0;
	struct aeth_meta meta;
	bool *mark;
	__u32 zero = 0;

	*marked = *ncpus = 0;
	if (n <= 0)
		return n ? n : -EINVAL;
	if (bpf_map_lookup_elem(ctx->fds.meta, &zero, &meta))
		return -errno;
	mark = calloc((size_t)n, sizeof(*mark));
	if (!mark)
		return -ENOMEM;
	*ncpus = (unsigned int)n;
	for (__u32 i = 0; i < meta.n_interfaces && i < AETH_MAX_INTERFACES &&
			  !ret; i++) {
		int fd;

		if (ctl_prog_seen_before(&meta, i))
			continue;
		fd = ctl_prog_map_fd(meta.ifaces[i].prog_id, is_pcpu_map,
				     (void *)map);
		if (fd == -ENOENT)
			continue;	/* detached meanwhile, or no such map */
		if (fd < 0) {
			ret = fd;
			break;
		}
		ret = fn(fd, n, mark, arg);
		close(fd);
	}
	for (int c = 0; c < n; c++)
		*marked += mark[c];
	free(mark);
	return ret;
}
