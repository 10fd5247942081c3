/* Opening the pinned maps of one pin directory, with the schema version and
 * every map's shape checked before anyone reads or writes them. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "aether/abi.h"
#include "map_iter.h"
#include "pinned.h"

/* What each pinned map must look like: libbpf reuses a pinned map whose
 * sizes match, so a map of another layout must be caught here. */
struct pinned_map_spec {
	const char *name;
	size_t fd_offset;
	__u32 type;
	__u32 key_size;
	__u32 value_size;
};

#define PINNED_MAP(f, t, k, v, ...)                                          \
	{ .name = AETH_MAP_NAME(f),                                           \
	  .fd_offset = offsetof(struct aeth_map_fds, f), .type = t,          \
	  .key_size = sizeof(k), .value_size = sizeof(v) },

static const struct pinned_map_spec pinned_maps[] = {
	AETH_PINNED_MAPS(PINNED_MAP)
};

#define N_PINNED_MAPS (sizeof(pinned_maps) / sizeof(pinned_maps[0]))

static int *fd_slot(struct aeth_map_fds *fds, const struct pinned_map_spec *s)
{
	return (int *)((char *)fds + s->fd_offset);
}

static void fds_reset(struct aeth_map_fds *fds)
{
	for (size_t i = 0; i < N_PINNED_MAPS; i++)
		*fd_slot(fds, &pinned_maps[i]) = -1;
}

void aeth_pinned_close(struct aeth_map_fds *fds)
{
	for (size_t i = 0; i < N_PINNED_MAPS; i++) {
		int *fd = fd_slot(fds, &pinned_maps[i]);

		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
}

/* Pins a reader does without when they are missing: the connection
 * table's filter, which only the data path and the agent use (readers
 * look at the buckets themselves). A pin directory of an earlier release
 * has none (or its predecessor, aeth_ct_filter, another size and name);
 * its maps stay readable until an agent of this release adds it. */
static bool pinned_map_optional(const struct pinned_map_spec *s)
{
	return !strcmp(s->name, AETH_MAP_CT_BLOOM);
}

static int check_shape(int fd, const struct pinned_map_spec *s,
		       struct aeth_error *err, const char *pin_dir)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		int e = errno;

		return aeth_fail(err, -e, "", "%s/%s: cannot read map info: %s",
				 pin_dir, s->name, strerror(e));
	}
	if (info.type != s->type || info.key_size != s->key_size ||
	    info.value_size != s->value_size) {
		return aeth_fail(err, -EPROTO, "",
				 "%s/%s has another layout (type %u, key %u, "
				 "value %u bytes; this build expects type %u, "
				 "key %u, value %u)", pin_dir, s->name, info.type,
				 info.key_size, info.value_size, s->type,
				 s->key_size, s->value_size);
	}
	return 0;
}

int aeth_pinned_open(const char *pin_dir, struct aeth_map_fds *fds,
		     struct aeth_error *err)
{
	struct aeth_meta meta;
	char path[4096];
	struct stat st;
	__u32 key = 0;
	int ret;

	fds_reset(fds);
	if (stat(pin_dir, &st)) {
		ret = -errno;
		return aeth_fail(err, ret, "", "no aether-lb state under %s: %s",
				 pin_dir, strerror(-ret));
	}
	if (!S_ISDIR(st.st_mode)) {
		return aeth_fail(err, -ENOTDIR, "", "no aether-lb state under "
				 "%s: not a directory", pin_dir);
	}

	for (size_t i = 0; i < N_PINNED_MAPS; i++) {
		const struct pinned_map_spec *s = &pinned_maps[i];
		int fd;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", pin_dir,
				     s->name) >= sizeof(path)) {
			ret = aeth_fail(err, -ENAMETOOLONG, "", "pin directory "
					"path too long: %s", pin_dir);
			goto fail;
		}
		fd = bpf_obj_get(path);
		if (fd < 0 && errno == ENOENT && pinned_map_optional(s))
			continue;
		if (fd < 0) {
			ret = aeth_fail(err, -errno, "", "no aether-lb state "
					"under %s: %s: %s", pin_dir, s->name,
					strerror(errno));
			goto fail;
		}
		*fd_slot(fds, s) = fd;
		ret = check_shape(fd, s, err, pin_dir);
		if (ret)
			goto fail;
	}

	memset(&meta, 0, sizeof(meta));
	if (bpf_map_lookup_elem(fds->meta, &key, &meta)) {
		ret = aeth_fail(err, -errno, "", "%s/%s: cannot read: %s",
				pin_dir, AETH_MAP_META, strerror(errno));
		goto fail;
	}
	if (meta.schema_version != AETH_SCHEMA_VERSION) {
		ret = aeth_fail(err, -EPROTO, "", "schema version %u under %s is "
				"not supported (this build knows %u)",
				meta.schema_version, pin_dir,
				AETH_SCHEMA_VERSION);
		goto fail;
	}
	return 0;

fail:
	aeth_pinned_close(fds);
	return ret;
}

int aeth_ncpus(void)
{
	static int ncpus;

	if (!ncpus)
		ncpus = libbpf_num_possible_cpus();
	return ncpus;
}

int aeth_percpu_sum_u64(int map_fd, uint32_t key, void *out, size_t size)
{
	int ncpus = aeth_ncpus();
	char *buf;
	int ret = 0;

	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	if (size % 8)
		return -EINVAL;
	buf = calloc(ncpus, aeth_percpu_stride(size));
	if (!buf)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, &key, buf))
		ret = -errno;
	else
		aeth_percpu_fold_u64(buf, ncpus, size, out);
	free(buf);
	return ret;
}
