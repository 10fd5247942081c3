/* The VIP filter of a loaded program, as aetherctl status shows it. The
 * filter is no pinned map: it is a global of the program (lb_vip_filter
 * and lb_vip_filter_stamp in its .bss, bpf/service.h), written by the
 * agent that loaded it. So it is found from the program: its maps, the one
 * named for its .bss, and in that map's BTF where each global lies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "aether/vip_filter.h"
#include "ctl.h"

#define FILTER_VAR "lb_vip_filter"
#define STAMP_VAR "lb_vip_filter_stamp"

/* The offsets of the filter and its stamp in the .bss map whose BTF is
 * btf_id: 0, or -ENOENT when that map is not this program's .bss. */
static int bss_layout(__u32 btf_id, __u32 *filter_off, __u32 *stamp_off)
{
	struct btf *btf = btf__load_from_kernel_by_id(btf_id);
	const struct btf_var_secinfo *v;
	const struct btf_type *sec;
	int id, found = 0;

	if (!btf)
		return -errno;
	id = btf__find_by_name_kind(btf, ".bss", BTF_KIND_DATASEC);
	sec = id > 0 ? btf__type_by_id(btf, id) : NULL;
	v = sec ? btf_var_secinfos(sec) : NULL;
	for (int i = 0; sec && i < btf_vlen(sec); i++, v++) {
		const char *name = btf__name_by_offset(
			btf, btf__type_by_id(btf, v->type)->name_off);

		if (!strcmp(name, FILTER_VAR) &&
		    v->size == AETH_VIP_FILTER_WORDS * sizeof(__u64)) {
			*filter_off = v->offset;
			found |= 1;
		} else if (!strcmp(name, STAMP_VAR) && v->size == 8) {
			*stamp_off = v->offset;
			found |= 2;
		}
	}
	btf__free(btf);
	return found == 3 ? 0 : -ENOENT;
}

/* The .bss of program prog_fd with its filter, copied into *buf (malloc'd,
 * info->value_size bytes): 0, -ENOENT (no such global), or -errno. */
static int read_bss(int prog_fd, void **buf, __u32 *filter_off,
		    __u32 *stamp_off)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info), ids[64], zero = 0;
	int ret = -ENOENT;

	memset(&info, 0, sizeof(info));
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -errno;
	for (__u32 i = 0; i < info.nr_map_ids && i < 64 && ret == -ENOENT;
	     i++) {
		struct bpf_map_info mi;
		__u32 mlen = sizeof(mi);
		size_t n = strlen(".bss");
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen) && mi.btf_id &&
		    strlen(mi.name) >= n &&
		    !strcmp(mi.name + strlen(mi.name) - n, ".bss") &&
		    !bss_layout(mi.btf_id, filter_off, stamp_off) &&
		    *filter_off + AETH_VIP_FILTER_WORDS * 8 <= mi.value_size &&
		    *stamp_off + 8 <= mi.value_size) {
			*buf = calloc(1, mi.value_size);
			ret = !*buf ? -ENOMEM :
			      bpf_map_lookup_elem(fd, &zero, *buf) ? -errno : 0;
			if (ret) {
				free(*buf);
				*buf = NULL;
			}
		}
		close(fd);
	}
	return ret;
}

struct hidden_count {
	const __u64 *words;
	uint32_t n;
};

static int count_hidden(const void *key, const void *value, void *arg)
{
	const struct aeth_vip_key *k = key;
	struct hidden_count *c = arg;
	__u32 b = aeth_vip_filter_bucket(&k->addr);

	(void)value;
	if (c->words[aeth_vip_filter_word(b)] & aeth_vip_filter_mask(b))
		c->n++;
	return 0;
}

int ctl_vip_filter_view(struct ctl_ctx *ctx, uint32_t prog_id,
			struct ctl_vip_filter *out)
{
	__u32 filter_off = 0, stamp_off = 0, zero = 0;
	struct hidden_count hc = { 0 };
	__u64 stamp = 0;
	void *bss = NULL;
	int fd, ret;

	memset(out, 0, sizeof(*out));
	fd = prog_id ? bpf_prog_get_fd_by_id(prog_id) : -ENOENT;
	if (fd < 0)
		return fd;
	ret = read_bss(fd, &bss, &filter_off, &stamp_off);
	close(fd);
	if (ret)
		return ret;
	memcpy(&out->stamp, (char *)bss + stamp_off, sizeof(out->stamp));
	hc.words = (const __u64 *)((char *)bss + filter_off);
	for (uint32_t w = 0; w < AETH_VIP_FILTER_WORDS; w++)
		out->open_buckets += 64 - __builtin_popcountll(hc.words[w]);
	if (bpf_map_lookup_elem(ctx->fds.stamp, &zero, &stamp)) {
		ret = -errno;
		goto out;
	}
	out->tables_stamp = stamp;
	out->in_force = out->stamp == stamp;
	ret = ctl_map_foreach(ctx, ctx->fds.vip, AETH_MAP_VIP,
			      sizeof(struct aeth_vip_key), sizeof(__u32),
			      count_hidden, &hc);
	out->vips_hidden = hc.n;
	out->read = !ret;
out:
	free(bss);
	return ret;
}
